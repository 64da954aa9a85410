/**
 * The vhost-user back-end without a VM: a TypeScript front-end speaks the protocol over a real UNIX
 * stream socket, shares memfd "guest memory" and eventfds with SCM_RIGHTS, and drives the rng
 * device's queue with SplitQueueDriver, exactly as QEMU and a guest kernel would.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isRingwireError } from '../lib/errors.js';
import { EventFd } from '../lib/native/eventfd.js';
import { RngDevice } from '../virtio/devices/rng.js';
import { TRANSPORT_FEATURES } from '../virtio/vhost-user/device.js';
import { FrontendGuest, type GuestQueue } from '../virtio/vhost-user/frontend-guest.js';
import { VhostUserFrontend } from '../virtio/vhost-user/frontend.js';
import { MemoryTablePayload, U64Payload, VringAddressPayload, VringFdPayload, VringStatePayload } from '../virtio/vhost-user/payloads.js';
import { splitQueueLayout } from '../virtio/split-layout.js';
import { SplitQueueDriver } from '../virtio/split-driver.js';
import { VHOST_USER_F_PROTOCOL_FEATURES, VhostUserProtocolFeature as PF, VhostUserRequest as R } from '../virtio/vhost-user/protocol.js';
import { VhostUserServer } from '../virtio/vhost-user/server.js';
import { prng, scratch, testSeed, withTimeout, type Scratch } from './helpers/index.js';

const seed = testSeed();

/** Every test gets a hard deadline, so a reply that never comes fails with a name instead of hanging the file. */
function t(name: string, fn: (s: Scratch) => Promise<void>): void {
  test(name, () => scratch(name, 60_000, fn));
}

async function rejects(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.unreachable('expected a rejection');
}

/** A known stream: the device serves prng(seed) bytes in order, so the test can predict every byte. */
function streamDevice(s: number): { device: RngDevice; expect: (n: number) => Uint8Array } {
  const served = prng(s);
  const mirror = prng(s);
  return {
    device: new RngDevice({ fill: (b) => b.set(served.bytes(b.byteLength)) }),
    expect: (n) => mirror.bytes(n),
  };
}

interface Rig {
  server: VhostUserServer;
  fe: VhostUserFrontend;
  guest: FrontendGuest;
  logs: string[];
  path: string;
}

/** A server for `device` and a connected front-end, closed when the test's scratch is cleaned up. */
async function rig(device: RngDevice, { dir, defer }: Scratch): Promise<Rig> {
  const logs: string[] = [];
  const path = join(dir, 'rng.sock');
  const server = VhostUserServer.listen(path, device, { log: (m) => logs.push(m) });
  defer(() => server.close());
  const fe = await VhostUserFrontend.connect(path);
  const guest = new FrontendGuest();
  defer(() => {
    fe.close();
    guest.close();
  });
  return { server, fe, guest, logs, path };
}

/** A rig whose guest has started one queue, which most tests then drive. */
async function startedRig(device: RngDevice, s: Scratch): Promise<Rig & { q: GuestQueue }> {
  const r = await rig(device, s);
  await r.guest.start(r.fe, 1);
  return { ...r, q: r.guest.queues[0]! };
}

/** Resolves when the device signals the queue's call eventfd. */
function called(q: GuestQueue, what: string): Promise<void> {
  return withTimeout(what, 5000, () => new Promise<void>((resolve) => {
    q.call.onReadable(() => {
      q.call.drain();
      q.call.offReadable();
      resolve();
    });
  }));
}

/** Posts writable buffers of the given sizes (every third one through an indirect table), kicks, returns their addresses by head. */
function post(guest: FrontendGuest, q: GuestQueue, sizes: number[]): Map<number, { addr: number[]; lens: number[] }> {
  const out = new Map<number, { addr: number[]; lens: number[] }>();
  sizes.forEach((size, i) => {
    const parts = size > 64 ? [size >> 1, size - (size >> 1)] : [size];
    const bufs = parts.map((len) => ({ addr: guest.alloc(len), len }));
    const indirect = i % 3 === 2 ? { indirectTable: guest.alloc(16 * bufs.length) } : {};
    const head = q.driver.add([], bufs, indirect);
    assert.ok(head !== null, 'queue full');
    out.set(head, { addr: bufs.map((b) => b.addr), lens: parts });
  });
  if (q.driver.publish()) q.kick.signal();
  return out;
}

/** Posts buffers as `post` does and waits for the device's call; the wait is armed before the kick. */
async function served(guest: FrontendGuest, q: GuestQueue, sizes: number[], what: string): Promise<Map<number, { addr: number[]; lens: number[] }>> {
  const wake = called(q, what);
  const posted = post(guest, q, sizes);
  await wake;
  return posted;
}

t('GET_FEATURES / GET_PROTOCOL_FEATURES / GET_QUEUE_NUM answer with flags 0x5 and what the device offers', async (s) => {
  const r = await rig(new RngDevice(), s);
  const f = await r.fe.getU64(R.GET_FEATURES);
  assert.is(f, TRANSPORT_FEATURES | (1n << BigInt(VHOST_USER_F_PROTOCOL_FEATURES)));
  const pf = await r.fe.getU64(R.GET_PROTOCOL_FEATURES);
  assert.is(pf & (1n << BigInt(PF.REPLY_ACK)), 1n << BigInt(PF.REPLY_ACK));
  assert.is(pf & (1n << BigInt(PF.CONFIG)), 0n, 'rng has no config space, so CONFIG is not offered');
  assert.is(await r.fe.getU64(R.GET_QUEUE_NUM), 1n);
  // Without REPLY_ACK negotiated a need_reply request gets no status: the next reply is GET_FEATURES'.
  await r.fe.request(R.SET_OWNER, undefined, [], { flags: 0x1 });
  assert.is(await r.fe.getU64(R.GET_FEATURES), f);
});

t('the guest gets exactly the bytes the device served, through direct and indirect chains', async (s) => {
  const { device, expect } = streamDevice(seed);
  const r = await startedRig(device, s);
  const q = r.q;
  const rand = prng(seed ^ 0x5a5a);
  let total = 0;
  for (let round = 0; round < 20; round++) {
    const sizes = Array.from({ length: rand.int(1, 16) }, () => rand.int(1, 300));
    const posted = await served(r.guest, q, sizes, `call after round ${round}`);
    // The device fills chains in the order the driver made them available: predict each.
    for (const [head, bufs] of posted) {
      const used = q.driver.popUsed();
      assert.ok(used, `round ${round}: used entry missing`);
      assert.is(used.id, head, 'used entries come back in order here');
      const want = expect(bufs.lens.reduce((a, b) => a + b, 0));
      assert.is(used.len, want.byteLength);
      let off = 0;
      bufs.addr.forEach((addr, i) => {
        assert.equal(r.guest.bytes(addr, bufs.lens[i]!), want.subarray(off, off + bufs.lens[i]!), `round ${round} head ${head} part ${i}`);
        off += bufs.lens[i]!;
      });
      total += used.len;
    }
    assert.is(q.driver.popUsed(), null);
  }
  assert.is(device.bytesServed, total);
  assert.equal(r.logs, []);
});

t('GET_VRING_BASE stops the ring at the avail index it reached; SET_VRING_BASE + KICK resume from there', async (s) => {
  const device = new RngDevice();
  const r = await startedRig(device, s);
  const q = r.q;
  await served(r.guest, q, [8, 8, 8], 'first batch');
  while (q.driver.popUsed());
  assert.is(await r.fe.getVringBase(0), 3);
  // Stopped: buffers made available now are not served, kick or not.
  post(r.guest, q, [8, 8]);
  q.kick.signal();
  const before = device.requests;
  // One round trip on the socket proves the back-end's loop has run past the kick.
  await r.fe.getU64(R.GET_FEATURES);
  assert.is(device.requests, before);
  assert.is(q.driver.popUsed(), null);
  // Restart the way QEMU does after a stop: base, then a fresh kick fd.
  await r.fe.requestAck(R.SET_VRING_BASE, VringStatePayload.encode(0, 3));
  const kick = EventFd.create();
  s.defer(() => kick.close());
  const wake = called(q, 'after restart');
  await r.fe.requestAck(R.SET_VRING_KICK, VringFdPayload.encode(0), [kick.fd]);
  await wake;
  assert.ok(q.driver.popUsed() && q.driver.popUsed(), 'both pending chains served at restart');
  assert.is(await r.fe.getVringBase(0), 5);
});

t('a new SET_MEM_TABLE replaces the mapping: running rings continue over the new regions and offsets', async (s) => {
  const { device, expect } = streamDevice(seed + 1);
  const r = await startedRig(device, s);
  const extra: number[] = [];
  const q = r.q;
  await served(r.guest, q, [32], 'before remap');
  assert.is(q.driver.popUsed()?.len, 32);
  expect(32);
  // The same RAM as two regions, each through its own fd and mmap_offset, as QEMU describes RAM
  // split around a hole: the back-end must map both and rebuild the running queue over them.
  const size = r.guest.region.size;
  const half = size / 2;
  // sendmsg passes copies of these; ours stay open until the test ends.
  s.defer(() => { for (const fd of extra) closeSync(fd); });
  for (let i = 0; i < 2; i++) extra.push(openSync(`/proc/self/fd/${r.guest.region.fd}`, 'r+'));
  await r.fe.requestAck(R.SET_MEM_TABLE, MemoryTablePayload.encode([
    { guestPhysAddr: 0n, memorySize: BigInt(half), userspaceAddr: r.guest.uvaBase, mmapOffset: 0n },
    { guestPhysAddr: BigInt(half), memorySize: BigInt(half), userspaceAddr: r.guest.uvaBase + BigInt(half), mmapOffset: BigInt(half) },
  ]), extra);
  r.guest.alloc(Math.max(0, half - r.guest.alloc(0)));
  const hi = r.guest.alloc(64);
  assert.ok(hi >= half);
  const wake = called(q, 'after remap');
  q.driver.add([], [{ addr: hi, len: 64 }]);
  if (q.driver.publish()) q.kick.signal();
  await wake;
  assert.is(q.driver.popUsed()?.len, 64);
  assert.equal(r.guest.bytes(hi, 64), expect(64), 'served through the second region');
  // A table whose fd count does not match is refused and the connection dropped.
  // With REPLY_ACK the front-end first hears the failure status, then loses the connection.
  const refused = await rejects(r.fe.requestAck(R.SET_MEM_TABLE, MemoryTablePayload.encode([
    { guestPhysAddr: 0n, memorySize: BigInt(size), userspaceAddr: r.guest.uvaBase, mmapOffset: 0n },
  ])));
  assert.match(String(refused), /SET_MEM_TABLE failed with status 1/);
  assert.match(r.logs.join('\n'), /SET_MEM_TABLE came with 0 fds, expected 1/);
});

t('one front-end at a time; after it leaves the device is reset and the next one starts clean', async (s) => {
  const device = new RngDevice();
  const r = await rig(device, s);
  await r.guest.start(r.fe, 1);
  const second = await VhostUserFrontend.connect(r.path);
  await rejects(second.getU64(R.GET_FEATURES));
  assert.ok(second.closed && isRingwireError(second.closed), `second connection: ${String(second.closed)}`);
  assert.match(r.logs.join('\n'), /refusing a second front-end/);
  const gone = new Promise<void>((res) => r.server.once('disconnect', () => res()));
  r.fe.close();
  await withTimeout('disconnect', 5000, () => gone);
  const fe2 = await VhostUserFrontend.connect(r.path);
  s.defer(() => fe2.close());
  const guest2 = new FrontendGuest();
  s.defer(() => guest2.close());
  await guest2.start(fe2, 1);
  const q = guest2.queues[0]!;
  await served(guest2, q, [16], 'second front-end');
  assert.is(q.driver.popUsed()?.len, 16);
});

t('QEMU 7.2 style: EVENT_IDX acked without being offered still gets kicks (avail_event is published)', async (s) => {
  class NoEventIdx extends RngDevice {
    override features(): bigint {
      return super.features() & ~(1n << 29n);
    }
  }
  const r = await rig(new NoEventIdx(), s);
  assert.is((await r.fe.getU64(R.GET_FEATURES)) & (1n << 29n), 0n);
  await r.guest.start(r.fe, 1, { forceFeatures: 1n << 29n });
  const q = r.guest.queues[0]!;
  assert.ok(q.driver.eventIdx);
  for (let i = 0; i < 50; i++) {
    await served(r.guest, q, [4], `event-idx round ${i}`);
    assert.is(q.driver.popUsed()?.len, 4);
  }
});

t('a ring starts whatever order it is programmed in: kick and enable first, memory table last', async (s) => {
  const { device, expect } = streamDevice(seed + 2);
  const r = await rig(device, s);
  const kick = EventFd.create();
  s.defer(() => kick.close());
  const call = EventFd.create();
  s.defer(() => call.close());
  const g = r.guest;
  await r.fe.getU64(R.GET_FEATURES);
  await r.fe.request(R.SET_PROTOCOL_FEATURES, U64Payload.encode(1n << BigInt(PF.REPLY_ACK)));
  await r.fe.requestAck(R.SET_OWNER);
  await r.fe.requestAck(R.SET_FEATURES, U64Payload.encode(1n << BigInt(VHOST_USER_F_PROTOCOL_FEATURES)));
  const layout = splitQueueLayout(16, g.alloc(Number(splitQueueLayout(16).end), 4096));
  const driver = new SplitQueueDriver({ memory: g.memory, size: 16, addresses: layout });
  await r.fe.requestAck(R.SET_VRING_KICK, VringFdPayload.encode(0), [kick.fd]);
  await r.fe.requestAck(R.SET_VRING_CALL, VringFdPayload.encode(0), [call.fd]);
  await r.fe.requestAck(R.SET_VRING_ENABLE, VringStatePayload.encode(0, 1));
  await r.fe.requestAck(R.SET_VRING_NUM, VringStatePayload.encode(0, 16));
  const uva = (a: bigint): bigint => a + g.uvaBase;
  await r.fe.requestAck(R.SET_VRING_ADDR, VringAddressPayload.encode({ index: 0, desc: uva(layout.desc), avail: uva(layout.avail), used: uva(layout.used) }));
  // A buffer is already waiting when the last piece arrives: starting must look for it without a kick.
  const addr = g.alloc(24);
  driver.add([], [{ addr, len: 24 }]);
  driver.publish();
  assert.ok(!r.server.connection?.state.vrings[0]!.running);
  const wake = called({ index: 0, driver, kick, call }, 'served at start');
  await r.fe.requestAck(R.SET_MEM_TABLE, MemoryTablePayload.encode([
    { guestPhysAddr: 0n, memorySize: BigInt(g.region.size), userspaceAddr: g.uvaBase, mmapOffset: 0n },
  ]), [g.region.fd]);
  await wake;
  assert.is(driver.popUsed()?.len, 24);
  assert.equal(g.bytes(addr, 24), expect(24));
});

t('RESET_DEVICE (a guest reboot) stops every ring and forgets memory; the same connection programs it again', async (s) => {
  const device = new RngDevice();
  const r = await startedRig(device, s);
  await served(r.guest, r.q, [8], 'before reset');
  await r.fe.requestAck(R.RESET_DEVICE);
  assert.is(r.server.connection?.state.memory, undefined);
  assert.ok(!r.server.connection?.state.vrings[0]!.started);
  // The front-end restarts the device as QEMU does after a reboot: no SET_OWNER, new table and rings.
  const again = new FrontendGuest();
  s.defer(() => again.close());
  await again.start(r.fe, 1, { skipOwner: true });
  const q2 = again.queues[0]!;
  await served(again, q2, [8], 'after reset');
  assert.is(q2.driver.popUsed()?.len, 8);
});

t('ringwire vhost-user-rng: the CLI serves a front-end and reports what it served on SIGTERM', async ({ dir, children }) => {
  const path = join(dir, 'cli-rng.sock');
  const child = children.add(spawn(process.execPath, [fileURLToPath(new URL('../bin/ringwire.js', import.meta.url)), 'vhost-user-rng', '--socket', path], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  await withTimeout('the CLI to listen', 10_000, async () => {
    while (!out.includes('"ready":true')) await new Promise((res) => setTimeout(res, 10));
  });
  const fe = await VhostUserFrontend.connect(path);
  const guest = new FrontendGuest();
  await guest.start(fe, 1);
  const q = guest.queues[0]!;
  await served(guest, q, [100, 28], 'CLI rng');
  assert.is(q.driver.popUsed()?.len, 100);
  assert.is(q.driver.popUsed()?.len, 28);
  fe.close();
  guest.close();
  const code = new Promise<number | null>((res) => child.once('exit', (c) => res(c)));
  child.kill('SIGTERM');
  assert.is(await withTimeout('the CLI to exit', 10_000, () => code), 0);
  assert.match(out, /"bytesServed":128,"requests":2/);
});

t('guest memory without F_SEAL_SHRINK is refused before it is mapped; allowUnsealedMemory serves it', async ({ dir, defer }) => {
  // A front-end that could ftruncate its memfd after SET_MEM_TABLE would make the back-end's next
  // ring access a SIGBUS, killing the process; so the seal is checked before mmap.
  const logs: string[] = [];
  const strict = VhostUserServer.listen(join(dir, 'strict.sock'), new RngDevice(), { log: (m) => logs.push(m) });
  defer(() => strict.close());
  const trusting = VhostUserServer.listen(join(dir, 'trusting.sock'), new RngDevice(), { log: (m) => logs.push(m), allowUnsealedMemory: true });
  defer(() => trusting.close());
  const refusedFe = await VhostUserFrontend.connect(strict.path);
  defer(() => refusedFe.close());
  const unsealed = new FrontendGuest({ unsealedMemory: true });
  defer(() => unsealed.close());
  const err = await rejects(unsealed.start(refusedFe, 1));
  assert.ok(isRingwireError(err), String(err));
  assert.match(logs.join('\n'), /SET_MEM_TABLE|region 0/);
  assert.match(logs.join('\n'), /missing required seals: shrink/);

  const fe = await VhostUserFrontend.connect(trusting.path);
  defer(() => fe.close());
  const trusted = new FrontendGuest({ unsealedMemory: true });
  defer(() => trusted.close());
  await trusted.start(fe, 1);
  const q = trusted.queues[0]!;
  await served(trusted, q, [32], 'rng over unsealed memory');
  assert.is(q.driver.popUsed()?.len, 32);
});

t('a guest that re-posts every buffer as soon as it is used cannot hold the event loop: one ring per turn, then the next turn', async ({ dir, defer }) => {
  const QUEUE = 64;
  const ALLOWANCE = 400 * QUEUE; // far more chains than the loop serves in a few milliseconds
  let q: GuestQueue | undefined;
  const buffers = new Map<number, { addr: number; len: number }>();
  let reposted = 0;
  let timerFired = false;
  let largestRun = 0;
  class MeasuredRng extends RngDevice {
    override handleQueue(vring: Parameters<RngDevice['handleQueue']>[0]): void {
      const before = this.requests;
      super.handleQueue(vring);
      largestRun = Math.max(largestRun, this.requests - before);
    }
  }
  // The hostile driver runs inside the device's fill(): every used chain goes straight back.
  const device = new MeasuredRng({
    fill: (b) => {
      b.fill(0x5a);
      if (timerFired || !q) return;
      for (let u = q.driver.popUsed(); u && reposted < ALLOWANCE; u = q.driver.popUsed()) {
        const buf = buffers.get(u.id)!;
        buffers.delete(u.id);
        buffers.set(q.driver.add([], [buf])!, buf);
        reposted++;
      }
      q.driver.publish();
    },
  });
  const logs: string[] = [];
  const server = VhostUserServer.listen(join(dir, 'rng.sock'), device, { log: (m) => logs.push(m) });
  defer(() => server.close());
  const fe = await VhostUserFrontend.connect(server.path);
  defer(() => fe.close());
  const guest = new FrontendGuest();
  defer(() => guest.close());
  await guest.start(fe, 1, { queueSize: QUEUE });
  const gq = guest.queues[0]!;
  for (let i = 0; i < QUEUE; i++) {
    const buf = { addr: guest.alloc(16), len: 16 };
    buffers.set(gq.driver.add([], [buf])!, buf);
  }
  setTimeout(() => (timerFired = true), 1);
  q = gq;
  if (gq.driver.publish()) gq.kick.signal();
  await withTimeout('the device to serve every posted chain', 20_000, async () => {
    while (device.requests < QUEUE + reposted || !timerFired) await new Promise((r) => setImmediate(r));
  });
  assert.ok(largestRun <= QUEUE, `one handleQueue() served ${largestRun} chains; a ring holds ${QUEUE}`);
  assert.ok(reposted < ALLOWANCE, `a 1 ms timer only fired after the guest had re-posted all ${reposted} chains`);
  assert.is(device.requests, QUEUE + reposted);
  assert.not.match(logs.join('\n'), /broken/);
});

test.run();
