// Children of `baton up` stop by themselves when `baton up` is gone (killed with SIGKILL, or
// crashed), instead of living on as orphans: up passes its pid in BATON_SUPERVISOR_PID.
export const SUPERVISOR_ENV = 'BATON_SUPERVISOR_PID';

/** Calls `stop` once if this process's parent is no longer the supervisor that started it. */
export function watchSupervisor(stop: () => unknown, env: NodeJS.ProcessEnv = process.env, intervalMs = 1000): void {
  const supervisor = Number(env[SUPERVISOR_ENV]);
  if (!Number.isInteger(supervisor) || supervisor <= 0) return;
  const timer = setInterval(() => {
    if (process.ppid !== supervisor) {
      clearInterval(timer);
      console.error(`baton up (pid ${supervisor}) is gone: stopping`);
      void stop();
    }
  }, intervalMs);
  timer.unref();
}

/**
 * The shutdown of a service process: on SIGINT, SIGTERM or its supervisor going away, runs `close`
 * once and exits 0.
 */
export function stopOnSignals(close: () => Promise<unknown>): void {
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  watchSupervisor(stop);
}
