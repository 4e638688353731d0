// one-off: client-side CPU per 8 KB round trip, native vs node net, echo peer in a child
import { spawn } from 'node:child_process';
import net from 'node:net';
const mode = process.argv[2];
if (mode === 'child') {
  const { listen } = await import('/work/main/native/transport/dist/index.js');
  const s = await listen({ host: '127.0.0.1', port: 0, secret: 'x', rdma: 'off' });
  s.on('connection', (c) => c.on('frame', (h, p) => c.send(h, p)));
  const ns = net.createServer((sock) => { sock.setNoDelay(true); sock.on('data', (d) => sock.write(d)); });
  await new Promise((r) => ns.listen(0, '127.0.0.1', r));
  console.log(JSON.stringify({ native: s.port, net: ns.address().port }));
} else {
  const child = spawn(process.execPath, [process.argv[1], 'child'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ports = JSON.parse(await new Promise((r) => child.stdout.once('data', (d) => r(d.toString()))));
  const { connect } = await import('/work/main/native/transport/dist/index.js');
  const { emptyFrameHeader, FrameKind } = await import('@baton/contracts');
  const payload = Buffer.alloc(Number(process.env.SIZE ?? 8192), 1);
  const N = Number(process.env.N ?? 3000);
  for (let rep = 0; rep < 2; rep++) {
    const c = await connect({ port: ports.native, secret: 'x', rdma: 'off' });
    const h = emptyFrameHeader(FrameKind.HIDDEN);
    let n = 0; let cpu0 = process.cpuUsage(); let t0 = process.hrtime.bigint();
    await new Promise((res) => { c.on('frame', () => { if (++n === N) res(); else c.send(h, payload); }); c.send(h, payload); });
    let cpu = process.cpuUsage(cpu0); let wall = Number(process.hrtime.bigint() - t0) / 1e3 / N;
    console.log(`native(${process.env.BATON_TRANSPORT_IO ?? 'uv'}) wall ${wall.toFixed(1)} us/rt, client cpu ${((cpu.user + cpu.system) / N).toFixed(1)} us/rt`);
    await c.close();
    const s = await new Promise((r) => { const so = net.connect(ports.net, '127.0.0.1', () => r(so)); });
    s.setNoDelay(true);
    const frame = Buffer.concat([Buffer.alloc(128), payload]);
    n = 0; let got = 0; cpu0 = process.cpuUsage(); t0 = process.hrtime.bigint();
    await new Promise((res) => { s.on('data', (d) => { got += d.length; if (got >= frame.length) { got -= frame.length; if (++n === N) res(); else s.write(frame); } }); s.write(frame); });
    cpu = process.cpuUsage(cpu0); wall = Number(process.hrtime.bigint() - t0) / 1e3 / N;
    console.log(`node-net (raw echo, no framing) wall ${wall.toFixed(1)} us/rt, client cpu ${((cpu.user + cpu.system) / N).toFixed(1)} us/rt`);
    s.destroy();
  }
  child.kill();
}
