/**
 * CPU cost per HTTP request, client and server, for the http rows (bench/peers/http-rows.ts): on a
 * shared machine whose load makes wall-clock latency meaningless, the CPU each side spends per
 * request still compares the stacks. Runs N serial requests (then N with 16 in flight) per row
 * against the http peer child and reads the child's utime+stime from /proc.
 *   node dist/bench/http-cpu.js [N] [undici|fastify|grpc]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http2 from 'node:http2';
import { fileURLToPath } from 'node:url';
import { Agent, request, type Dispatcher } from 'undici';
import { connect, createDuplex } from '../lib/index.js';
import { RingwireDispatcher } from '../lib/http/index.js';
import { httpPeerAddresses } from './peers/http-addresses.js';

const N = Number(process.argv[2] ?? 2000);
const dir = mkdtempSync(join(tmpdir(), 'ringwire-http-cpu-'));
const a = httpPeerAddresses(dir);
const child = spawn(process.execPath, [fileURLToPath(new URL('./peers/http-peer.js', import.meta.url)), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((r) => child.stdout!.once('data', r));
const ticks = 100; // USER_HZ
function childCpuUs(): number {
  const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) / ticks) * 1e6;
}

async function measure(name: string, call: () => Promise<void>): Promise<void> {
  for (let i = 0; i < 200; i++) await call();
  for (const inFlight of [1, 16]) {
    const c0 = process.cpuUsage();
    const s0 = childCpuUs();
    const t0 = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: inFlight }, async () => { while (next++ < N) await call(); }));
    const wall = performance.now() - t0;
    const c = process.cpuUsage(c0);
    const s = childCpuUs() - s0;
    console.log(`${name.padEnd(17)} in flight ${String(inFlight).padStart(2)}: client ${((c.user + c.system) / N).toFixed(1).padStart(6)} µs/req  server ${(s / N).toFixed(1).padStart(6)} µs/req  wall ${(wall * 1000 / N).toFixed(1).padStart(7)} µs/req`);
  }
}

const body = Buffer.alloc(64, 0xa5);
const undiciCall = (d: Dispatcher, path: string, post: boolean) => async (): Promise<void> => {
  const r = await request(`http://bench.local${path}`, post ? { dispatcher: d, method: 'POST', body } : { dispatcher: d });
  await r.body.arrayBuffer();
};
const rw = (addr: string): Dispatcher => new RingwireDispatcher({ address: addr, connect: { sendRingBytes: 1 << 22, receiveRingBytes: 1 << 22 } });
const uds = (path: string): Dispatcher => new Agent({ connect: { socketPath: path }, keepAliveTimeout: 60_000 });
const only = process.argv[3];
if (!only || only === 'undici') await measure('undici-uds', undiciCall(uds(a.echoUds), '/echo', true));
if (!only || only === 'undici') await measure('undici-ringwire', undiciCall(rw(a.echoRingwire), '/echo', true));
if (!only || only === 'fastify') await measure('fastify-uds', undiciCall(uds(a.fastifyUds), '/', false));
if (!only || only === 'fastify') await measure('fastify-ringwire', undiciCall(rw(a.fastifyRingwire), '/', false));
for (const over of (!only || only === 'grpc' ? ['uds', 'ringwire'] : []) as Array<'uds' | 'ringwire'>) {
  const ch = over === 'ringwire' ? await connect(a.grpcRingwire, { sendRingBytes: 1 << 22, receiveRingBytes: 1 << 22 }) : undefined;
  const session = ch
    ? http2.connect('http://grpc.invalid', { createConnection: () => createDuplex(ch) })
    : http2.connect('http://grpc.invalid', { path: a.grpcUds } as http2.SecureClientSessionOptions);
  const msg = Buffer.concat([Buffer.from([0, 0, 0, 0, 64]), body]);
  await measure(`grpc-${over}`, () => new Promise<void>((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/bench.Echo/Echo', 'content-type': 'application/grpc', te: 'trailers' });
    req.on('data', () => {});
    req.on('end', resolve);
    req.on('error', reject);
    req.end(msg);
  }));
  session.destroy();
}
child.kill('SIGKILL');
rmSync(dir, { recursive: true, force: true });
process.exit(0);
