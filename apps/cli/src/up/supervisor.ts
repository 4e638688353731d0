// Child processes of `baton up`: spawned with their output prefixed by name, stopped together
// (SIGTERM, then SIGKILL after a grace period) when the user presses Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Supervised {
  name: string;
  child: ChildProcess;
}

export class Supervisor {
  readonly children: Supervised[] = [];
  private stopping = false;

  constructor(private readonly out: (line: string) => void, private readonly onUnexpectedExit: (name: string, code: number | null, signal: string | null) => void) {}

  start(name: string, script: string, args: string[], env: NodeJS.ProcessEnv = {}): Supervised {
    const child = spawn(process.execPath, [script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', BATON_SUPERVISOR_PID: String(process.pid), ...env },
    });
    const width = 10;
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => this.out(`${`[${name}]`.padEnd(width)} ${line.replace(/^\[Nest\] \d+\s+-\s+/, '')}`));
    }
    child.on('exit', (code, signal) => {
      if (!this.stopping) this.onUnexpectedExit(name, code, signal);
    });
    const entry = { name, child };
    this.children.push(entry);
    return entry;
  }

  /** Stops children in reverse start order; SIGKILL after `graceMs`. */
  async stopAll(graceMs = 5000): Promise<void> {
    this.stopping = true;
    for (const { child } of [...this.children].reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      child.kill('SIGTERM');
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    }
  }
}
