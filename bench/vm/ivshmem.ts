/**
 * Host↔guest round trips under QEMU: ringwire over ivshmem next to TCP over the same guest's
 * user-mode NIC, in one boot, so the ratio holds even though TCG makes every absolute figure slow.
 *
 *   npm run build && node dist/bench/vm/ivshmem.js [--count 2000] [--json FILE]
 *
 * The host sends a 64-byte message and times until the guest's echo is back. Transports:
 * `ringwire-ivshmem` (the guest polls adaptively, as it must without interrupts; the host parks on
 * its doorbell eventfd), `ringwire-ivshmem-busypoll` (both sides spin), `tcp-vm-usernet` (guest
 * connects to the host through QEMU's user-mode network; Nagle off on both ends).
 * Writes the bench JSON contract: { env, results: [{ transport, pattern, size, rttP50Us, ... }] }.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { IvshmemHost } from '../../lib/ivshmem/host.js';
import type { IvshmemChannel } from '../../lib/ivshmem/channel.js';
import { missingVmPrerequisites, REPO_ROOT, withVms } from '../../qemu-test/harness/index.js';

const SIZE = 64;
const WARMUP = 200;

interface Row {
  transport: string;
  pattern: 'pingpong';
  size: number;
  rttP50Us: number;
  rttP99Us: number;
  rttP999Us: number;
  msgsPerSec: null;
  bytesPerSec: null;
  samples: number;
  accel: string;
}

const GUEST = (count: number, port: number): string => `
import { connect } from 'node:net';
import { IvshmemGuest } from ${JSON.stringify(`${REPO_ROOT}/dist/lib/ivshmem/index.js`)};
const g = IvshmemGuest.open();
const ch = await g.channel(0, { timeoutMs: 60000 });
for (const spin of [undefined, 1e9]) {
  for (let i = 0; i < ${count + WARMUP}; i++) {
    const m = await ch.receiveAsync(spin === undefined ? {} : { spin });
    await ch.sendAsync(m);
  }
}
const s = connect(${port}, '10.0.2.2', () => s.setNoDelay(true));
s.on('data', (d) => s.write(d));
s.on('error', (err) => { console.error(err); process.exitCode = 1; });
`;

function summarize(transport: string, samples: number[], accel: string): Row {
  const sorted = samples.slice(WARMUP).sort((a, b) => a - b);
  const at = (q: number): number => Number(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(2));
  return { transport, pattern: 'pingpong', size: SIZE, rttP50Us: at(0.5), rttP99Us: at(0.99), rttP999Us: at(0.999), msgsPerSec: null, bytesPerSec: null, samples: sorted.length, accel };
}

async function ivshmemRtts(ch: IvshmemChannel, n: number, spin: number | undefined): Promise<number[]> {
  const msg = new Uint8Array(SIZE);
  const out: number[] = [];
  const opts = spin === undefined ? { timeoutMs: 60_000 } : { timeoutMs: 60_000, spin };
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await ch.sendAsync(msg, 0, { timeoutMs: 60_000 });
    await ch.receiveAsync(opts);
    out.push((performance.now() - t0) * 1000);
  }
  return out;
}

async function tcpRtts(sock: Socket, n: number): Promise<number[]> {
  const msg = Buffer.alloc(SIZE, 7);
  const out: number[] = [];
  let got = 0;
  let wake: (() => void) | undefined;
  sock.on('data', (d: Buffer) => {
    got += d.length;
    if (got >= SIZE) wake?.();
  });
  for (let i = 0; i < n; i++) {
    got = 0;
    const echoed = new Promise<void>((r) => (wake = r));
    const t0 = performance.now();
    sock.write(msg);
    await echoed;
    out.push((performance.now() - t0) * 1000);
  }
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { count: { type: 'string', default: '2000' }, json: { type: 'string' } } });
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 10) throw new Error('--count must be an integer >= 10');
  const missing = missingVmPrerequisites();
  if (missing.length) throw new Error(`cannot run the VM benchmark without ${missing.join(', ')}`);
  const rows: Row[] = [];
  await withVms(async (vms) => {
    const host = IvshmemHost.listen({ path: join(vms.dir, 'ivshmem.sock'), size: 1 << 20, slots: 2 });
    vms.children.onCleanup(() => host.close());
    const joined = new Promise<IvshmemChannel>((r) => host.once('join', (ch: IvshmemChannel) => r(ch)));
    let accept!: (s: Socket) => void;
    const accepted = new Promise<Socket>((r) => (accept = r));
    const server = createServer((s) => {
      s.setNoDelay(true);
      accept(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    vms.children.onCleanup(() => new Promise((r) => server.close(r)));
    const port = (server.address() as { port: number }).port;
    const vm = await vms.start({
      name: 'bench', net: true, timeoutMs: 600_000, script: 'node "$RINGWIRE_JOB/guest.mjs"', files: { 'guest.mjs': GUEST(count, port) },
      extraArgs: ['-chardev', `socket,path=${join(vms.dir, 'ivshmem.sock')},id=ivs`, '-device', 'ivshmem-doorbell,chardev=ivs,vectors=2'],
    });
    const ch = await joined;
    rows.push(summarize('ringwire-ivshmem', await ivshmemRtts(ch, count + WARMUP, undefined), vm.accel));
    rows.push(summarize('ringwire-ivshmem-busypoll', await ivshmemRtts(ch, count + WARMUP, 1e9), vm.accel));
    const sock = await accepted;
    rows.push(summarize('tcp-vm-usernet', await tcpRtts(sock, count + WARMUP), vm.accel));
    sock.destroy();
    await vm.kill();
  });
  const env = { node: process.version, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, kernel: release(), date: new Date().toISOString() };
  console.log(`VM round trips, ${SIZE}-byte messages, ${count} samples each (${rows[0]?.accel}; only the ratios mean anything under TCG):`);
  for (const r of rows) console.log(`  ${r.transport.padEnd(26)} p50 ${String(r.rttP50Us).padStart(9)} µs   p99 ${String(r.rttP99Us).padStart(9)} µs   p99.9 ${String(r.rttP999Us).padStart(9)} µs`);
  if (values.json) writeFileSync(values.json, JSON.stringify({ env, results: rows }, null, 2) + '\n');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
