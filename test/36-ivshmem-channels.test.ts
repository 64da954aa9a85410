/**
 * The ivshmem region layout and its channels, between the host and host-process peers that join
 * through the server protocol (the same channels a guest opens over BAR2).
 */
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isRingwireError } from '../lib/errors.js';
import { IvshmemHost } from '../lib/ivshmem/host.js';
import { channelOffset, HEADER_FIELDS, initChannelsOf, planLayout, publishSlot, readLayout, readSlot, SLOT_TABLE_OFFSET, writeLayout } from '../lib/ivshmem/layout.js';
import { IvshmemPeer } from '../lib/ivshmem/peer.js';
import { IvshmemChannel } from '../lib/ivshmem/channel.js';
import { CONSUMER_BLOCK_SIZE, CW, PW, producerBlockSize } from '../lib/ring/layout.js';
import { addonAvailable } from '../lib/native/native.js';
import { makeTempDir, prng, requireOrSkip, testSeed, withTimeout } from './helpers/index.js';

const ready = (): boolean => requireOrSkip('the native addon (npm install)', addonAvailable());
const corrupt = (err: unknown): boolean => isRingwireError(err, 'ERR_RING_CORRUPT');

test('layout: header fields fit before the slot table; every ring is aligned, inside the region, and alone', () => {
  for (const f of HEADER_FIELDS) assert.ok(f.offset % f.size === 0 && f.offset + f.size <= SLOT_TABLE_OFFSET, f.name);
  for (const [size, slots] of [[1 << 16, 2], [1 << 20, 4], [1 << 22, 16], [1 << 20, 17]] as const) {
    const g = planLayout(size, slots, 2);
    const spans: Array<[number, number]> = [];
    for (let s = 0; s < slots; s++) {
      for (let d = 0; d < slots; d++) {
        if (s === d) continue;
        const at = channelOffset(g, s, d);
        assert.is(at % 64, 0);
        spans.push([at, at + producerBlockSize(g.ringCapacity) + CONSUMER_BLOCK_SIZE]);
      }
    }
    spans.sort((x, y) => x[0] - y[0]);
    assert.ok(spans[0]![0] >= SLOT_TABLE_OFFSET + 4 * slots);
    for (let i = 1; i < spans.length; i++) assert.ok(spans[i]![0] >= spans[i - 1]![1], `rings ${i - 1} and ${i} overlap`);
    assert.ok(spans[spans.length - 1]![1] <= size);
    assert.ok(planLayout(size, slots, 2, g.ringCapacity).ringCapacity === g.ringCapacity);
    assert.throws(() => planLayout(size, slots, 2, g.ringCapacity * 2), (e: unknown) => isRingwireError(e, 'ERR_OUT_OF_RANGE'), 'the largest ring that fits was chosen');
  }
  const g = planLayout(1 << 16, 2, 2);
  assert.throws(() => channelOffset(g, 1, 1), (e: unknown) => isRingwireError(e, 'ERR_INVALID_ARG'));
  assert.throws(() => channelOffset(g, 0, 2), (e: unknown) => isRingwireError(e, 'ERR_OUT_OF_RANGE'));
});

test('layout: a guest reading a damaged header gets ERR_RING_CORRUPT, never a bad geometry', () => {
  const seed = testSeed();
  const rnd = prng(seed);
  const g = planLayout(1 << 16, 4, 2);
  const buf = new SharedArrayBuffer(1 << 16);
  assert.throws(() => readLayout(buf), corrupt, 'no magic yet');
  writeLayout(buf, g);
  assert.equal(readLayout(buf), g);
  assert.throws(() => readLayout(new SharedArrayBuffer(1 << 17)), corrupt, 'size mismatch');
  const words = new Int32Array(buf, 0, 16);
  for (let i = 0; i < 500; i++) {
    writeLayout(buf, g);
    const w = rnd.int(1, HEADER_FIELDS.length - 1);
    words[w] = rnd.next() < 0.5 ? rnd.int(-5, 1 << 20) : words[w]! ^ (1 << rnd.int(0, 30));
    try {
      // hostId and vectors take any in-range value; everything that places rings must match exactly.
      const got = readLayout(buf);
      assert.equal({ ...got, hostId: g.hostId, vectors: g.vectors }, g, `field ${w} changed yet the layout was accepted as different (seed ${seed})`);
      assert.ok(got.hostId < got.slots && got.vectors >= 1 && got.vectors <= 64);
    } catch (err) {
      assert.ok(corrupt(err), String(err));
    }
  }
});

async function withHost(fn: (host: IvshmemHost, path: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = makeTempDir('ringwire-ivshmem-');
  const path = join(dir, 'ivshmem.sock');
  const host = IvshmemHost.listen({ path, size: 1 << 18, slots: 4 });
  try {
    await withTimeout('ivshmem channel test', 30_000, () => fn(host, path));
  } finally {
    host.close();
    cleanup();
  }
}

function joined(host: IvshmemHost): Promise<IvshmemChannel> {
  return new Promise((resolve) => host.once('join', (ch: IvshmemChannel) => resolve(ch)));
}

test('host and peers: request/response with sleeping sides, peer to peer, and a leave that frees the channel', async () => {
  if (!ready()) return;
  await withHost(async (host, path) => {
    const j1 = joined(host);
    const p1 = await IvshmemPeer.connect(path);
    const h1 = await j1;
    const j2 = joined(host);
    const p2 = await IvshmemPeer.connect(path);
    await j2;
    try {
      const c1 = p1.channel(0);
      // The peer parks on its eventfd (spin 0), so only the host's doorbell can wake it.
      const answer = c1.receiveAsync({ spin: 0, timeoutMs: 5000 });
      await new Promise((r) => setTimeout(r, 20));
      assert.ok(h1.send(new Uint8Array([1, 2, 3])));
      assert.equal([...await answer], [1, 2, 3]);
      const request = h1.receiveAsync({ spin: 0, timeoutMs: 5000 });
      await new Promise((r) => setTimeout(r, 20));
      assert.ok(c1.send(new Uint8Array([9])));
      assert.equal([...await request], [9]);
      assert.ok(h1.tx.stats().doorbellsRung >= 1 && c1.tx.stats().doorbellsRung >= 1, 'both sides rang a sleeping peer');

      const a = p1.channel(p2.id), b = p2.channel(p1.id);
      for (let i = 0; i < 2000; i++) {
        await a.sendAsync(new Uint8Array([i & 255, i >> 8]), 0, { timeoutMs: 5000 });
        const m = await b.receiveAsync({ timeoutMs: 5000 });
        assert.equal([m[0], m[1]], [i & 255, i >> 8]);
      }

      const pending = h1.receiveAsync({ timeoutMs: 10_000 }).then(() => 'message', (err: unknown) => (isRingwireError(err) ? err.code : String(err)));
      const stale = b.receiveAsync({ timeoutMs: 10_000 }).then(() => 'message', (err: unknown) => (isRingwireError(err) ? err.code : String(err)));
      const left = new Promise<number>((r) => host.once('leave', (id: number) => r(id)));
      const id1 = p1.id;
      p1.close();
      assert.is(await left, id1);
      assert.is(await pending, 'ERR_PEER_GONE', 'a wait on the leaving peer ends');
      assert.is(await stale, 'ERR_PEER_GONE', 'the other peer learns from the slot table');
      assert.is(host.channel(id1), undefined);
      assert.not.ok(readSlot(host.buffer, host.geometry, id1).live);
      assert.equal(host.peers(), [p2.id]);
    } finally {
      p1.close();
      p2.close();
    }
  });
});

test('a peer that writes garbage over its ring breaks only that channel; the host serves the others', async () => {
  if (!ready()) return;
  const rnd = prng(testSeed());
  await withHost(async (host, path) => {
    const errors: Array<[number, string]> = [];
    host.on('channel-error', (id, err) => errors.push([id, err.code]));
    const j1 = joined(host);
    const good = await IvshmemPeer.connect(path);
    const hGood = await j1;
    const j2 = joined(host);
    const bad = await IvshmemPeer.connect(path);
    const hBad = await j2;
    try {
      const at = channelOffset(host.geometry, bad.id, 0);
      const mine = new Uint8Array(bad.client.region.buffer, at, producerBlockSize(host.geometry.ringCapacity));
      mine.set(rnd.bytes(mine.length));
      new Int32Array(bad.client.region.buffer, at + 64, 1)[0]! |= 1;
      const r = await hBad.receiveAsync({ timeoutMs: 2000 }).then(() => 'message', (err: unknown) => (isRingwireError(err) ? err.code : String(err)));
      assert.is(r, 'ERR_RING_CORRUPT');
      assert.equal(errors, [[bad.id, 'ERR_RING_CORRUPT']]);
      assert.throws(() => hBad.send(new Uint8Array(1)), corrupt, 'the broken channel stays broken');
      const c = good.channel(0);
      for (let i = 0; i < 100; i++) {
        await c.sendAsync(new Uint8Array([i]), 0, { timeoutMs: 5000 });
        assert.equal([...await hGood.receiveAsync({ timeoutMs: 5000 })], [i]);
      }
      assert.is(hGood.error, undefined);
      assert.equal(errors.length, 1);
    } finally {
      good.close();
      bad.close();
    }
  });
});

test('attaching refuses ring headers whose capacity is not the layout\'s, so a peer cannot make us write into the next channel', () => {
  const size = 1 << 20;
  const buffer = new SharedArrayBuffer(size);
  const g = planLayout(size, 4, 2);
  writeLayout(buffer, g);
  for (const id of [0, 1, 2, 3]) {
    initChannelsOf(buffer, g, id);
    publishSlot(buffer, g, id, true);
  }
  const neighbour = new Uint8Array(buffer, channelOffset(g, 1, 3), 64).slice();
  // Peer 2 doubles both capacity words of ring 1→2 (still inside the region, so the ring code alone accepts it).
  const at = channelOffset(g, 1, 2);
  new Int32Array(buffer, at, 16)[PW.capacity] = g.ringCapacity * 2;
  new Int32Array(buffer, at + producerBlockSize(g.ringCapacity), 16)[CW.capacity] = g.ringCapacity * 2;
  let refused: unknown;
  try {
    const ch = new IvshmemChannel({ buffer, geometry: g, self: 1, peer: 2, ringPeer() {} });
    const msg = new Uint8Array(1024).fill(0xab);
    while (ch.send(msg));
  } catch (err) {
    refused = err;
  }
  assert.equal(new Uint8Array(buffer, channelOffset(g, 1, 3), 64), neighbour, 'the neighbouring channel is untouched');
  assert.ok(isRingwireError(refused, 'ERR_RING_CORRUPT'), String(refused));
  assert.match((refused as Error).message, /tx ring capacity 131072, the layout's is 65536/);
  // The other direction is intact and attaches.
  assert.is(new IvshmemChannel({ buffer, geometry: g, self: 3, peer: 1, ringPeer() {} }).tx.capacity, g.ringCapacity);
});

test.run();
