/**
 * Seeded fuzz of the device-side descriptor walker: hostile bytes in the descriptor table, the
 * available ring and indirect tables must give either chains whose views lie inside guest memory
 * or ERR_VIRTQUEUE_BROKEN: never another exception, never a view outside a region, never a hang.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isRingwireError } from '../lib/errors.js';
import { prng, testSeed } from './helpers/index.js';
import { GuestMemory, SplitQueueDevice, splitQueueLayout } from '../virtio/index.js';

const REGIONS = [
  { gpa: 0x100000, size: 0x10000 }, // rings, indirect tables, data
  { gpa: 0x110000, size: 0x2000 }, // adjacent: ranges across the boundary must be refused
  { gpa: 0xfffffffffff00000n, size: 0x1000 }, // near the top of u64
];

test('random rings and tables yield valid chains or ERR_VIRTQUEUE_BROKEN, within bounds', () => {
  const rnd = prng(testSeed());
  const buffers = REGIONS.map((r) => new Uint8Array(new SharedArrayBuffer(r.size)));
  const mem = new GuestMemory(REGIONS.map((r, i) => ({ guestPhysAddr: r.gpa, size: r.size, bytes: buffers[i]! })));
  const inside = (v: Uint8Array): boolean =>
    buffers.some((b) => v.buffer === b.buffer && v.byteOffset >= b.byteOffset && v.byteOffset + v.byteLength <= b.byteOffset + b.byteLength);
  const base = BigInt(REGIONS[0]!.gpa);
  const view0 = new DataView(buffers[0]!.buffer);
  // Plausible field values make valid chains common enough that both outcomes are exercised.
  const addr = (): bigint => {
    const pick = rnd.next();
    if (pick < 0.6) return base + 0x8000n + BigInt(rnd.int(0, 0x7fff));
    if (pick < 0.7) return 0x10fff0n + BigInt(rnd.int(0, 0x20)); // straddles the two regions
    if (pick < 0.8) return 0xfffffffffff00000n + BigInt(rnd.int(0, 0x1100));
    if (pick < 0.9) return 0xfffffffffffffff0n + BigInt(rnd.int(0, 0xf));
    return (BigInt(rnd.int(0, 0xffffffff)) << 32n) | BigInt(rnd.int(0, 0xffffffff));
  };
  const len = (): number => (rnd.next() < 0.8 ? rnd.int(0, 0x200) : rnd.int(0, 0xffffffff));
  const writeDesc = (off: number, n: number, indirectAt: number): void => {
    if (rnd.next() < 0.15) {
      buffers[0]!.set(rnd.bytes(16), off);
      return;
    }
    let flags = rnd.int(0, 7) & (rnd.next() < 0.8 ? 3 : 7);
    if (rnd.next() < 0.05) flags |= rnd.int(0, 0xffff);
    const ind = (flags & 4) !== 0;
    view0.setBigUint64(off, ind && rnd.next() < 0.8 ? base + BigInt(indirectAt) + BigInt(16 * rnd.int(0, 3)) : addr(), true);
    view0.setUint32(off + 8, ind && rnd.next() < 0.8 ? 16 * rnd.int(0, 8) + (rnd.next() < 0.1 ? rnd.int(1, 15) : 0) : len(), true);
    view0.setUint16(off + 12, flags, true);
    view0.setUint16(off + 14, rnd.next() < 0.9 ? rnd.int(0, n) : rnd.int(0, 0xffff), true);
  };

  let chains = 0;
  let errors = 0;
  let buffersSeen = 0;
  const started = Date.now();
  for (let iter = 0; iter < 20000; iter++) {
    const n = 1 << rnd.int(0, 6);
    const layout = splitQueueLayout(n, base);
    const availOff = Number(layout.avail - base);
    const indirectAt = 0x4000;
    for (let i = 0; i < n; i++) writeDesc(16 * i, n, indirectAt);
    for (let i = 0; i < 64; i++) writeDesc(indirectAt + 16 * i, 8, indirectAt);
    for (let i = 0; i < n; i++) view0.setUint16(availOff + 4 + 2 * i, rnd.next() < 0.9 ? rnd.int(0, n - 1) : rnd.int(0, 0xffff), true);
    const baseIdx = rnd.int(0, 0xffff);
    view0.setUint16(availOff + 2, (baseIdx + (rnd.next() < 0.9 ? rnd.int(0, n) : rnd.int(0, 0xffff))) & 0xffff, true);
    let device: SplitQueueDevice;
    try {
      device = new SplitQueueDevice({ memory: mem, size: n, addresses: layout, base: baseIdx, indirect: rnd.next() < 0.9, eventIdx: rnd.next() < 0.5 });
    } catch (err) {
      assert.unreachable(`constructing over valid ring addresses failed: ${String(err)}`);
      return;
    }
    // pop() consumes one entry per call and pending is at most n, so n + 1 calls must finish.
    let done = false;
    for (let k = 0; k <= n + 1 && !done; k++) {
      try {
        const chain = device.pop();
        if (chain === null) { done = true; break; }
        chains++;
        assert.ok(chain.head < n);
        const all = [...chain.readable, ...chain.writable];
        assert.ok(all.length <= Math.max(n, 1024));
        for (const v of all) if (!inside(v)) assert.unreachable(`view outside guest memory at iteration ${iter}`);
        buffersSeen += all.length;
        assert.is(chain.readableBytes, chain.readable.reduce((s, v) => s + v.byteLength, 0));
        if (rnd.next() < 0.5) device.pushUsed(chain.head, rnd.int(0, chain.writableBytes));
      } catch (err) {
        if (!isRingwireError(err, 'ERR_VIRTQUEUE_BROKEN')) throw err;
        assert.ok(device.broken, 'a thrown ERR_VIRTQUEUE_BROKEN marks the queue broken');
        errors++;
        done = true;
      }
    }
    assert.ok(done, `iteration ${iter}: pop() did not drain a queue of ${n} within ${n + 1} calls`);
    if (Date.now() - started > 60_000) break;
  }
  console.log(`  ${chains} valid chains (${buffersSeen} buffers), ${errors} broken queues`);
  assert.ok(chains > 100 && errors > 100, 'the fuzzer exercises both outcomes');
});

test.run();
