/**
 * `node dist/bench/agent-connect.js [--quick] [--json FILE]`: the node agent's control-path costs,
 * measured side by side in one run (ratios hold, absolute figures drift):
 *   - connect latency: a brokered connect('svc:echo') vs a direct connect(path) to a listener in the
 *     same child process, each to an open channel plus one request, then closed (p50, p99);
 *   - admission rate: connects per second the agent brokers (socketpair + two SCM_RIGHTS sends)
 *     for a raw client that closes each end at once, with no handshake behind it;
 *   - policy lookup: authorize() with 10 and 10,000 per-service policies (ns per decision).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '../lib/channel/connect.js';
import { authorize, compilePolicies, connectAgent, startAgent, type Policy } from '../lib/agent/index.js';
import { workloadIdentity } from '../lib/agent/identity.js';
import { FdSocket } from '../lib/native/unix-socket.js';
import { closeAll } from '../lib/native/unix-socket-sys.js';

const quick = process.argv.includes('--quick');
const jsonAt = process.argv.indexOf('--json');
const jsonPath = jsonAt > 0 ? process.argv[jsonAt + 1] : undefined;
const peerScript = fileURLToPath(new URL('./peers/agent-connect-peer.js', import.meta.url));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function timeConnects(n: number, once: () => Promise<void>): Promise<{ p50Us: number; p99Us: number }> {
  for (let i = 0; i < Math.min(50, n); i++) await once();
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await once();
    t.push((performance.now() - t0) * 1000);
  }
  t.sort((a, b) => a - b);
  return { p50Us: percentile(t, 0.5), p99Us: percentile(t, 0.99) };
}

async function connectLatency(n: number): Promise<Record<string, { p50Us: number; p99Us: number }>> {
  const agentAddress = `@ringwire-bench-connect-${process.pid}`;
  const direct = join(tmpdir(), `ringwire-bench-connect-${process.pid}.sock`);
  const child = spawn(process.execPath, [peerScript, agentAddress, direct], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`agent-connect peer exited with ${code}`)));
    });
    const client = await connectAgent({ address: agentAddress, reconnect: false });
    const opts = { sendRingBytes: 64 * 1024, receiveRingBytes: 64 * 1024 };
    const out: Record<string, { p50Us: number; p99Us: number }> = {};
    // Interleaved rounds, so both see the same machine.
    const rounds = 4;
    const d: number[][] = [[], []];
    for (let r = 0; r < rounds; r++) {
      const a = await timeConnects(n / rounds, async () => { const ch = await connect(direct, opts); await ch.request(Buffer.from('x')); ch.destroy(); });
      const b = await timeConnects(n / rounds, async () => { const ch = await client.connect('echo'); await ch.request(Buffer.from('x')); ch.destroy(); });
      d[0]!.push(a.p50Us);
      d[1]!.push(b.p50Us);
      out.direct = a;
      out.brokered = b;
    }
    out.direct!.p50Us = d[0]!.sort((x, y) => x - y)[rounds >> 1]!;
    out.brokered!.p50Us = d[1]!.sort((x, y) => x - y)[rounds >> 1]!;
    client.close();
    return out;
  } finally {
    child.kill('SIGKILL');
  }
}

let perCpuSecond = 0;

async function admissionRate(ms: number): Promise<number> {
  const address = `@ringwire-bench-admit-${process.pid}`;
  const agent = await startAgent({
    config: { version: 1, listen: [address], identities: [{ match: { uid: process.getuid!() }, namespace: 'bench', serviceAccount: 'b' }], services: { echo: { serve: ['*'] } } },
    metrics: false, log: () => {},
  });
  const open = async (): Promise<FdSocket> => {
    const s = await FdSocket.connect(address, { maxMessageSize: 65536, maxFds: 1 });
    s.on('error', () => {});
    s.send(Buffer.from('{"op":"hello","v":1}'));
    return s;
  };
  const server = await open();
  server.on('message', (_d, fds) => closeAll(fds));
  server.send(Buffer.from('{"op":"register","id":1,"name":"echo"}'));
  const client = await open();
  let done = 0;
  let errors = 0;
  const cpu0 = process.cpuUsage();
  let id = 1;
  const inFlight = 32;
  const end = performance.now() + ms;
  await new Promise<void>((resolve) => {
    client.on('message', (data, fds) => {
      closeAll(fds);
      const msg = JSON.parse(data.toString()) as { op: string; channel?: number };
      if (msg.op !== 'channel' && msg.op !== 'error') return;
      // As a real client does when its channel closes: the agent forgets it.
      if (msg.op === 'channel') client.send(Buffer.from(`{"op":"closed","channel":${msg.channel},"stats":{"messagesSent":0,"messagesReceived":0,"bytesSent":0,"bytesReceived":0}}`));
      done++;
      if (msg.op === 'error') errors++;
      if (performance.now() < end) client.send(Buffer.from(`{"op":"connect","id":${++id},"service":"echo"}`));
      else if (done >= id - 1) resolve();
    });
    // The registration is acked before the first connect is read (one socket each, in order).
    setTimeout(() => { for (let i = 0; i < inFlight; i++) client.send(Buffer.from(`{"op":"connect","id":${++id},"service":"echo"}`)); }, 50);
  });
  if (errors > 0) throw new Error(`bench: ${errors} of ${done} connects were refused`);
  const cpu = process.cpuUsage(cpu0);
  const rate = done / (ms / 1000);
  // CPU seconds spent (agent + both raw peers, one process): what a machine under other load still shows.
  perCpuSecond = done / ((cpu.user + cpu.system) / 1e6);
  client.close();
  server.close();
  await agent.close();
  return rate;
}

function policyLookupNs(policies: number): number {
  const list: Policy[] = [];
  for (let i = 0; i < policies; i++) list.push({ name: `p${i}`, action: i % 2 ? 'DENY' : 'ALLOW', selector: { services: [`svc${i % Math.max(1, policies / 2)}`] }, rules: [{ from: [{ source: { principals: [`cluster.local/ns/n${i}/sa/*`] } }] }] });
  const compiled = compilePolicies(list);
  const ids = Array.from({ length: 64 }, (_, i) => workloadIdentity('cluster.local', `n${i * 7}`, 'a', 'bench'));
  const n = 200_000;
  let allowed = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) if (authorize(compiled, { source: ids[i & 63]!, service: `svc${i % Math.max(1, policies / 2)}` }).allowed) allowed++;
  const ns = Number(process.hrtime.bigint() - t0) / n;
  if (allowed < 0) throw new Error('unreachable');
  return ns;
}

const latency = await connectLatency(quick ? 400 : 2000);
const rate = await admissionRate(quick ? 1000 : 3000);
const lookup = { rules10: policyLookupNs(10), rules10000: policyLookupNs(10000) };
console.log(`connect + 1 request + close, p50 (p99):  direct ${latency.direct!.p50Us.toFixed(0)} µs (${latency.direct!.p99Us.toFixed(0)})  brokered ${latency.brokered!.p50Us.toFixed(0)} µs (${latency.brokered!.p99Us.toFixed(0)})  ratio ${(latency.brokered!.p50Us / latency.direct!.p50Us).toFixed(2)}×`);
console.log(`agent admission: ${rate.toFixed(0)} connects/s wall clock; ${perCpuSecond.toFixed(0)} per CPU-second (agent and both raw peers in one process; socketpair + 2 SCM_RIGHTS sends each, no handshake)`);
console.log(`policy lookup: ${lookup.rules10.toFixed(0)} ns with 10 policies, ${lookup.rules10000.toFixed(0)} ns with 10,000 (ratio ${(lookup.rules10000 / lookup.rules10).toFixed(2)}×)`);
if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ date: new Date().toISOString(), connect: latency, admissionPerSec: rate, admissionPerCpuSecond: perCpuSecond, policyLookupNs: lookup }, null, 2));
