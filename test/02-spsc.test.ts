import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createThreadRing, openConsumer, openProducer } from '../lib/ring/thread-ring.js';
import { SpscConsumer, SpscProducer } from '../lib/ring/spsc.js';
import { isRingwireError } from '../lib/errors.js';
import { prng, testSeed } from './helpers/index.js';

const seed = testSeed();

function pair(capacity: number): { p: SpscProducer; c: SpscConsumer } {
  const d = createThreadRing(capacity, 'spsc');
  return { p: openProducer(d) as SpscProducer, c: openConsumer(d) as SpscConsumer };
}

function fill(r: ReturnType<typeof prng>, n: number): Uint8Array {
  return r.bytes(n);
}

test('send and receive keep order, bytes and type', () => {
  const { p, c } = pair(1024);
  assert.ok(p.send(new Uint8Array([1, 2, 3]), 7));
  assert.ok(p.send(new Uint8Array(0), 0));
  assert.is(c.read(), 3);
  assert.is(c.type, 7);
  assert.equal([...c.view()], [1, 2, 3]);
  c.release();
  const empty = c.receive();
  assert.ok(empty);
  assert.is(empty.length, 0);
  assert.is(c.receive(), null);
  assert.is(c.read(), -1);
});

test('model check: random claims, commits, reads and releases against a queue', () => {
  const r = prng(seed);
  for (const capacity of [64, 128, 1024, 4096]) {
    const { p, c } = pair(capacity);
    const model: { bytes: Uint8Array; type: number }[] = [];
    let claimed: { bytes: Uint8Array; type: number }[] = [];
    let read = 0;
    let sent = 0;
    let received = 0;
    for (let step = 0; step < 20000; step++) {
      const op = r.next();
      if (op < 0.45) {
        const len = r.next() < 0.1 ? r.int(0, p.maxMessageSize) : r.int(0, Math.min(100, p.maxMessageSize));
        const bytes = fill(r, len);
        const type = r.int(0, 0x7fffffff);
        const off = p.claim(len, type);
        if (off >= 0) {
          p.data.set(bytes, off);
          claimed.push({ bytes, type });
        } else {
          // A failed claim publishes what was claimed before it.
          model.push(...claimed);
          claimed = [];
        }
      } else if (op < 0.6) {
        p.commit();
        model.push(...claimed);
        sent += claimed.length;
        claimed = [];
      } else if (op < 0.9) {
        const len = c.read();
        if (len < 0) {
          assert.is(model.length - read, 0, 'reader saw empty while published messages remain');
          continue;
        }
        const want = model[read++]!;
        assert.is(len, want.bytes.length);
        assert.is(c.type, want.type);
        assert.equal(c.data.subarray(c.offset, c.offset + len), want.bytes);
        received++;
      } else {
        c.release();
        model.splice(0, read);
        read = 0;
      }
    }
    assert.ok(received > 1000, `only ${received} messages moved at capacity ${capacity}`);
    assert.ok(sent > 0);
  }
});

test('full is back-pressure: claim returns -1 and nothing is dropped', () => {
  const { p, c } = pair(256);
  const msg = new Uint8Array(24);
  let n = 0;
  while (p.send(msg.fill(n & 0xff))) n++;
  // The last 8 bytes stay free (SPSC_SLACK), so one record fewer than capacity / recordBytes(24).
  assert.is(n, 256 / 32 - 1, 'ring takes every record that leaves the slack free');
  assert.is(p.claim(24), -1);
  for (let i = 0; i < n; i++) {
    const got = c.receive();
    assert.ok(got);
    assert.is(got[0], i & 0xff);
  }
  assert.is(c.receive(), null);
  assert.ok(p.send(msg));
});

test('the largest message fits, from any starting offset, after padding', () => {
  const { p, c } = pair(128);
  for (let start = 0; start < 16; start++) {
    assert.ok(p.send(new Uint8Array(start % 9)));
    assert.ok(c.receive());
    const big = new Uint8Array(p.maxMessageSize).fill(start);
    while (!p.send(big)) {
      assert.is(c.read(), -1, 'only padding can stand in the way');
    }
    const got = c.receive();
    assert.ok(got);
    assert.is(got.length, p.maxMessageSize);
    assert.is(got[got.length - 1], start);
  }
});

test('too large is a typed RangeError; bad lengths and types are typed errors', () => {
  const { p } = pair(64);
  try {
    p.claim(49);
    assert.unreachable();
  } catch (err) {
    assert.ok(err instanceof RangeError);
    assert.ok(isRingwireError(err, 'ERR_RING_TOO_LARGE'));
  }
  for (const bad of [-1, 1.5, NaN]) {
    try { p.claim(bad); assert.unreachable(); } catch (err) { assert.ok(isRingwireError(err, 'ERR_INVALID_ARG'), String(err)); }
  }
  try { p.claim(1, 0x80000000); assert.unreachable(); } catch (err) { assert.ok(isRingwireError(err, 'ERR_INVALID_ARG')); }
  assert.ok(p.send(new Uint8Array(48)), 'exactly the maximum (capacity - 16) fits');
});

test('drain batches: one release for many records', () => {
  const { p, c } = pair(4096);
  for (let i = 0; i < 50; i++) {
    const off = p.claim(4, i);
    assert.ok(off >= 0);
    p.data.fill(i, off, off + 4);
  }
  p.commit();
  const types: number[] = [];
  const n = c.drain((_d, _o, len, type) => { assert.is(len, 4); types.push(type); });
  assert.is(n, 50);
  assert.equal(types, Array.from({ length: 50 }, (_, i) => i));
  assert.is(c.stats().messages, 50);
  assert.is(p.stats().messages, 50);
});

test('indices keep working across u32 wrap-around', () => {
  const d = createThreadRing(256, 'spsc');
  // Start both sides near 2^32 as if the ring had moved 4 GiB already.
  const start = 0xffffff00 | 0;
  new Int32Array(d.producer)[16] = start;
  new Int32Array(d.consumer)[16] = start;
  const p = openProducer(d) as SpscProducer;
  const c = openConsumer(d) as SpscConsumer;
  const r = prng(seed ^ 0x5a5a);
  for (let i = 0; i < 2000; i++) {
    const msg = r.bytes(r.int(0, 60));
    assert.ok(p.send(msg, i));
    const got = c.receive();
    assert.ok(got);
    assert.equal(got, msg);
  }
});

test('async iteration and waitForData wake on send (Atomics doorbell)', async () => {
  const { p, c } = pair(1024);
  const it = c[Symbol.asyncIterator]();
  const first = it.next();
  setImmediate(() => p.send(new Uint8Array([42])));
  const got = await first;
  assert.equal([...got.value!], [42]);
  assert.is(await c.waitForData({ timeoutMs: 5, spin: 0 }), false);
});

test.run();
