/**
 * ivshmem between the host and two TCG guests, in one boot of each: request/response and 10,000
 * checksummed messages each way with guest A; A and B exchanging messages through the region;
 * B scribbling over its ring to the host (ERR_RING_CORRUPT for B's channel only, A still served);
 * B killed mid-stream (the host sees the leave, frees B's slot and channel, A still served and told
 * its peer is gone).
 */
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RingwireError } from '../lib/errors.js';
import { IvshmemHost } from '../lib/ivshmem/host.js';
import type { IvshmemChannel } from '../lib/ivshmem/channel.js';
import { readSlot } from '../lib/ivshmem/layout.js';
import { requireOrSkip, withTimeout } from '../test/helpers/index.js';
import { missingVmPrerequisites, REPO_ROOT, withVms } from './harness/index.js';

const missing = missingVmPrerequisites();
const ready = (): boolean => requireOrSkip(`VM test prerequisites (${missing.join(', ')})`, missing.length === 0);
const VM_TIMEOUT_MS = 300_000;
const STREAM = 10_000;
const PEER_MESSAGES = 1000;

/** First payload byte: what the message is. */
const T = { HELLO: 1, RPC: 2, RPC_REPLY: 3, UP: 4, UP_END: 5, DOWN_REQ: 6, DOWN: 7, DOWN_END: 8, DOWN_OK: 9, WAIT_PEER: 10, PEER: 11, PEER_OK: 12, GO: 13, B_GONE: 14, PEER_ACK: 15 } as const;

/** Message `seq` of a stream: its type, the seq, and bytes derived from both; lengths vary. */
function gen(type: number, seq: number): Uint8Array {
  const len = 5 + ((seq * 7919) % 251);
  const b = new Uint8Array(len);
  b[0] = type;
  new DataView(b.buffer).setUint32(1, seq, true);
  for (let i = 5; i < len; i++) b[i] = (seq * 31 + i * 17) & 255;
  return b;
}
function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
/** FNV-1a, the running checksum of a stream. */
function fnv(h: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 16777619) >>> 0;
  return h;
}
function u32s(type: number, ...values: number[]): Uint8Array {
  const b = new Uint8Array(1 + 4 * values.length);
  b[0] = type;
  values.forEach((v, i) => new DataView(b.buffer).setUint32(1 + 4 * i, v >>> 0, true));
  return b;
}
function u32at(b: Uint8Array, i: number): number {
  return new DataView(b.buffer, b.byteOffset).getUint32(1 + 4 * i, true);
}
/** The same functions, compiled, for the guest's script. */
const COMMON = [gen, same, fnv, u32s, u32at].map((f) => f.toString()).join('\n');

const GUEST = `
import { randomFillSync } from 'node:crypto';
import { IvshmemGuest, channelOffset } from ${JSON.stringify(`${REPO_ROOT}/dist/lib/ivshmem/index.js`)};
${COMMON}
const T = ${JSON.stringify(T)};
const role = process.env.ROLE;
const g = IvshmemGuest.open();
const host = await g.channel(0, { timeoutMs: 60000 });
const log = (s) => console.log('ivshmem-guest ' + role + ' ' + s);
log('id=' + g.id);
const recv = (ch) => ch.receiveAsync({ timeoutMs: 120000 });
const expectType = async (ch, type) => {
  const m = await recv(ch);
  if (m[0] !== type) throw new Error('expected message type ' + type + ', got ' + m[0]);
  return m;
};
async function rpc(n) {
  for (let i = 0; i < n; i++) {
    const req = gen(T.RPC, i);
    await host.sendAsync(req);
    const rep = await expectType(host, T.RPC_REPLY);
    if (!same(rep.subarray(1), req.subarray(1).map((x) => x ^ 0xff))) throw new Error('bad rpc reply ' + i);
  }
  log('rpc ' + n + ' ok');
}
async function exchange(peerCh, sendType, n) {
  let sum = 2166136261, got = 0;
  const send = (async () => { for (let i = 0; i < n; i++) await peerCh.sendAsync(gen(sendType, i)); })();
  for (; got < n; got++) {
    const m = await recv(peerCh);
    if (!same(m, gen(m[0], got))) throw new Error('peer message ' + got + ' is damaged');
    sum = fnv(sum, m);
  }
  await send;
  return sum;
}
await host.sendAsync(u32s(T.HELLO, g.id));
if (role === 'A') {
  await rpc(20);
  let sum = 2166136261;
  for (let i = 0; i < ${STREAM}; i++) { const m = gen(T.UP, i); sum = fnv(sum, m); await host.sendAsync(m); }
  await host.sendAsync(u32s(T.UP_END, ${STREAM}, sum));
  log('up sent');
  await host.sendAsync(u32s(T.DOWN_REQ));
  let down = 2166136261, n = 0;
  for (;;) {
    const m = await recv(host);
    if (m[0] === T.DOWN_END) { await host.sendAsync(u32s(T.DOWN_OK, n, down, u32at(m, 0) === n && u32at(m, 1) === down ? 1 : 0)); break; }
    if (!same(m, gen(T.DOWN, n))) throw new Error('down message ' + n + ' is damaged');
    down = fnv(down, m); n++;
  }
  log('down ' + n + ' ok');
}
if (role === 'B') await rpc(5);
await host.sendAsync(u32s(T.WAIT_PEER));
const peerId = u32at(await expectType(host, T.PEER), 0);
const peer = await g.channel(peerId, { timeoutMs: 60000 });
const peerSum = await exchange(peer, role === 'A' ? 20 : 21, ${PEER_MESSAGES});
await host.sendAsync(u32s(T.PEER_OK, ${PEER_MESSAGES}, peerSum));
await expectType(host, T.PEER_ACK);
log('peer ' + peerId + ' exchange ok');
if (role === 'B') {
  // Garbage over our own ring to the host, with a tail no ring can have; then wake the host.
  const at = channelOffset(g.geometry, g.id, 0);
  const block = new Uint8Array(g.region.buffer, at, 192 + g.geometry.ringCapacity);
  randomFillSync(block);
  new Int32Array(g.region.buffer, at + 64, 1)[0] |= 1;
  g.ring(0, 0);
  log('corrupted');
  for (let i = 0; ; i++) { await peer.sendAsync(gen(22, i)); if (i === 200) log('streaming'); }
}
await expectType(host, T.GO);
await rpc(5);
let fromB = 0;
try { for (;;) { const m = await recv(peer); if (!same(m, gen(22, fromB))) throw new Error('stream from B damaged at ' + fromB); fromB++; } }
catch (err) { if (err.code !== 'ERR_PEER_GONE') throw err; }
log('peer gone after ' + fromB);
await host.sendAsync(u32s(T.B_GONE, fromB));
await rpc(3);
log('done');
`;

interface GuestState {
  id: number;
  rpcs: number;
  up: { n: number; sum: number; end?: [number, number] };
  downOk?: number[];
  peerOk?: [number, number];
  bGone?: number;
  waiting: Promise<void>;
  error?: unknown;
}

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** The host's side of the conversation with one guest, until the channel fails. */
async function serve(ch: IvshmemChannel, st: GuestState, waiting: () => void): Promise<void> {
  let upSum = 2166136261;
  for (;;) {
    const m = await ch.receiveAsync();
    switch (m[0]) {
      case T.HELLO: break;
      case T.RPC:
        st.rpcs++;
        await ch.sendAsync(new Uint8Array([T.RPC_REPLY, ...m.subarray(1).map((x) => x ^ 0xff)]), 0, { timeoutMs: 60_000 });
        break;
      case T.UP:
        if (!same(m, gen(T.UP, st.up.n))) throw new Error(`up message ${st.up.n} from ${st.id} is damaged`);
        upSum = fnv(upSum, m);
        st.up.n++;
        st.up.sum = upSum;
        break;
      case T.UP_END: st.up.end = [u32at(m, 0), u32at(m, 1)]; break;
      case T.DOWN_REQ: {
        let sum = 2166136261;
        for (let i = 0; i < STREAM; i++) {
          const d = gen(T.DOWN, i);
          sum = fnv(sum, d);
          await ch.sendAsync(d, 0, { timeoutMs: 60_000 });
        }
        await ch.sendAsync(u32s(T.DOWN_END, STREAM, sum), 0, { timeoutMs: 60_000 });
        break;
      }
      case T.DOWN_OK: st.downOk = [u32at(m, 0), u32at(m, 1), u32at(m, 2)]; break;
      case T.WAIT_PEER: waiting(); break;
      case T.PEER_OK:
        st.peerOk = [u32at(m, 0), u32at(m, 1)];
        await ch.sendAsync(new Uint8Array([T.PEER_ACK]), 0, { timeoutMs: 60_000 });
        break;
      case T.B_GONE: st.bGone = u32at(m, 0); break;
      default: throw new Error(`unexpected message type ${m[0]} from ${st.id}`);
    }
  }
}

test('host and two guests over ivshmem: streams, VM to VM, a corrupt ring, a killed guest', async () => {
  if (!ready()) return;
  await withVms(async (vms) => {
    const path = join(vms.dir, 'ivshmem.sock');
    const host = IvshmemHost.listen({ path, size: 1 << 20, slots: 4 });
    const states = new Map<number, GuestState>();
    const waits = new Map<number, { promise: Promise<void>; resolve(): void }>();
    const channelErrors: Array<[number, string]> = [];
    const leaves: number[] = [];
    const served = new Map<number, Promise<void>>();
    host.on('join', (ch, info) => {
      const w = deferred();
      waits.set(info.id, w);
      const st: GuestState = { id: info.id, rpcs: 0, up: { n: 0, sum: 0 }, waiting: w.promise };
      states.set(info.id, st);
      served.set(info.id, serve(ch, st, w.resolve).catch((err: unknown) => void (st.error = err)));
    });
    host.on('channel-error', (id, err) => channelErrors.push([id, err.code]));
    const left = new Map<number, () => void>();
    host.on('leave', (id) => {
      leaves.push(id);
      left.get(id)?.();
    });
    const leaveOf = (id: number): Promise<void> => (leaves.includes(id) ? Promise.resolve() : new Promise<void>((r) => left.set(id, r)));
    vms.children.onCleanup(() => host.close());
    const device = (name: string): string[] => [
      '-chardev', `socket,path=${path},id=ivs-${name}`, '-device', `ivshmem-doorbell,chardev=ivs-${name},vectors=2`,
    ];
    const start = (name: 'A' | 'B') => vms.start({ name, script: 'node "$RINGWIRE_JOB/guest.mjs"', files: { 'guest.mjs': GUEST }, env: { ROLE: name }, timeoutMs: VM_TIMEOUT_MS, extraArgs: device(name) });
    const a = await start('A');
    const b = await start('B');
    const idOf = async (vm: typeof a): Promise<number> => Number((await vm.waitForLine(/^ivshmem-guest \w id=(\d+)/, VM_TIMEOUT_MS))[1]);
    const [idA, idB] = await Promise.all([idOf(a), idOf(b)]);
    assert.not.equal(idA, idB);
    await withTimeout('both guests to finish with the host', VM_TIMEOUT_MS, () => Promise.all([waits.get(idA)!.promise, waits.get(idB)!.promise]));
    const sa = states.get(idA)!, sb = states.get(idB)!;
    assert.equal(sa.up.end, [STREAM, sa.up.sum], 'the host got every message A sent, in order and intact');
    assert.is(sa.up.n, STREAM);
    assert.equal(sa.downOk?.[0], STREAM);
    assert.is(sa.downOk?.[2], 1, 'A got every message the host sent, with the host\'s checksum');
    host.channel(idA)!.send(u32s(T.PEER, idB));
    host.channel(idB)!.send(u32s(T.PEER, idA));

    await b.waitForLine(/ivshmem-guest B corrupted/, VM_TIMEOUT_MS);
    await withTimeout('the host to see B\'s ring corrupt', 30_000, async () => {
      while (channelErrors.length === 0) await new Promise((r) => setTimeout(r, 20));
    });
    assert.equal(channelErrors, [[idB, 'ERR_RING_CORRUPT']], 'only B\'s channel broke');
    assert.is((sb.error as RingwireError | undefined)?.code, 'ERR_RING_CORRUPT');
    assert.is(host.channel(idA)!.error, undefined);
    await withTimeout('A to finish the VM-to-VM exchange', 60_000, async () => {
      while (!sa.peerOk) await new Promise((r) => setTimeout(r, 20));
    });
    assert.ok(sb.peerOk, 'B reported its exchange before it broke its ring');
    const streamSum = (type: number): number => Array.from({ length: PEER_MESSAGES }, (_, i) => gen(type, i)).reduce(fnv, 2166136261);
    assert.is(sa.peerOk![1], streamSum(21), 'A got B\'s messages intact');
    assert.is(sb.peerOk![1], streamSum(20), 'B got A\'s messages intact');
    assert.is(sa.peerOk![0], PEER_MESSAGES);
    assert.is(sb.peerOk![0], PEER_MESSAGES);
    const rpcsBefore = sa.rpcs;
    host.channel(idA)!.send(new Uint8Array([T.GO]));

    await b.waitForLine(/ivshmem-guest B streaming/, VM_TIMEOUT_MS);
    const bLeft = leaveOf(idB);
    await b.kill();
    await withTimeout('the leave notice for B', 30_000, () => bLeft);
    assert.is(host.channel(idB), undefined, 'B\'s channel is freed');
    assert.not.ok(readSlot(host.buffer, host.geometry, idB).live, 'B\'s slot is free');
    const ra = await a.waitSuccess();
    await withTimeout('the leave notice for A', 30_000, () => leaveOf(idA));
    assert.match(ra.output, /ivshmem-guest A peer gone after [1-9]\d*/);
    assert.ok(sa.bGone !== undefined && sa.bGone > 0, `A received ${sa.bGone} messages of B's stream before B died`);
    assert.is(sa.rpcs, rpcsBefore + 5 + 3, 'A was served after the corruption and after B died');
    assert.is((sa.error as RingwireError | undefined)?.code, 'ERR_PEER_GONE', 'A\'s channel ended only because A left');
    assert.equal(leaves.sort(), [idA, idB].sort());
  });
});

test.run();
