import { spawn } from 'node:child_process';
const mode = process.argv[2];
const { listen, connect } = await import('/work/main/native/transport/dist/index.js');
const { emptyFrameHeader, FrameKind } = await import('@baton/contracts');
if (mode === 'child') {
  const s = await listen({ host: '127.0.0.1', port: 0, secret: 'x', rdma: 'off' });
  s.on('connection', (c) => c.on('frame', (h) => { if (h.kind === FrameKind.CONTROL) c.send(h); }));
  console.log(s.port);
  const cpu0 = process.cpuUsage();
  process.on('SIGTERM', () => { const cpu = process.cpuUsage(cpu0); console.error(`receiver cpu ${((cpu.user + cpu.system) / 1024).toFixed(0)} us/MB`); process.exit(0); });
} else {
  const child = spawn(process.execPath, [process.argv[1], 'child'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = Number(await new Promise((r) => child.stdout.once('data', (d) => r(d.toString()))));
  const c = await connect({ port, secret: 'x', rdma: 'off' });
  const payload = Buffer.alloc(1 << 20, 1);
  const h = emptyFrameHeader(FrameKind.TOKENS);
  const ctl = emptyFrameHeader(FrameKind.CONTROL);
  let ack; c.on('frame', () => ack());
  const t0 = process.hrtime.bigint(); const cpu0 = process.cpuUsage();
  for (let w = 0; w < 32; w++) {
    const acked = new Promise((r) => (ack = r));
    for (let i = 0; i < 32; i++) if (!c.send(h, payload)) await new Promise((r) => c.once('drain', r));
    c.send(ctl); await acked;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9; const cpu = process.cpuUsage(cpu0);
  console.log(`${(1 / s).toFixed(2)} GB/s, sender cpu ${((cpu.user + cpu.system) / 1024).toFixed(0)} us/MB`);
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
}
