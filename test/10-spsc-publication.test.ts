// SPSC layout v2: records are published by word 0 of their own header, not by the tail. These tests
// hold the producer and consumer to an exact model of positions (padding, slack, wrap-around, u32
// overflow, in-place reads, re-attach), then attack the publication protocol from both sides.
import { test } from 'uvu';
import { Worker } from 'node:worker_threads';
import * as assert from 'uvu/assert';
import { createThreadRing, openConsumer, type ThreadRingDescriptor } from '../lib/ring/thread-ring.js';
import { SpscConsumer, SpscProducer } from '../lib/ring/spsc.js';
import { AtomicsDoorbell } from '../lib/ring/doorbell.js';
import { CW, PRODUCER_DATA, PW, SPSC_PRESENT, SPSC_SLACK, recordBytes } from '../lib/ring/layout.js';
import { isRingwireError } from '../lib/errors.js';
import type { RingMemory } from '../lib/ring/ring-memory.js';
import { prng, scratch, testSeed } from './helpers/index.js';

const seed = testSeed();

function memory(d: ThreadRingDescriptor): RingMemory {
  return { producer: { buffer: d.producer }, consumer: { buffer: d.consumer } };
}

/** A fresh ring whose positions start at `start` on both sides, as if it had carried that many bytes. */
function ringAt(capacity: number, start: number): ThreadRingDescriptor {
  const d = createThreadRing(capacity, 'spsc');
  new Int32Array(d.producer)[PW.tail] = start;
  new Int32Array(d.consumer)[CW.head] = start;
  return d;
}

interface Entry {
  pad: boolean;
  /** Byte position of the record (u32, as an int32). */
  pos: number;
  rec: number;
  bytes: Uint8Array;
  type: number;
}

/**
 * The ring as the layout describes it: every claim's outcome follows from the released head alone
 * (a producer re-reads the head before it says full), and the consumer's position from the records.
 */
class Model {
  tail: number;
  head: number;
  /** Published entries from the head on; `read` of them are read (or skipped) and not released. */
  published: Entry[] = [];
  read = 0;
  pending: Entry[] = [];
  held: Entry[] = [];

  constructor(readonly capacity: number, start: number) {
    this.tail = this.head = start;
  }

  fits(bytes: number): boolean {
    return ((this.tail - this.head) | 0) + bytes <= this.capacity - SPSC_SLACK;
  }

  /** Whether claim(len) can make progress now: write its record, or at least the padding before it. */
  progress(len: number): boolean {
    const off = this.tail & (this.capacity - 1);
    return this.fits(off + recordBytes(len) > this.capacity ? this.capacity - off : recordBytes(len));
  }

  /** Expected outcome of claim(len): the payload offset, or -1 (which publishes what was pending). */
  claim(len: number, type: number, bytes: Uint8Array): number {
    const rec = recordBytes(len);
    let off = this.tail & (this.capacity - 1);
    if (off + rec > this.capacity) {
      const pad = this.capacity - off;
      if (!this.fits(pad)) return this.commit(), -1;
      this.pending.push({ pad: true, pos: this.tail, rec: pad, bytes: new Uint8Array(0), type: 0 });
      this.tail = (this.tail + pad) | 0;
      off = 0;
    }
    if (!this.fits(rec)) return this.commit(), -1;
    this.pending.push({ pad: false, pos: this.tail, rec, bytes, type });
    this.tail = (this.tail + rec) | 0;
    return off + 8;
  }

  commit(): void {
    this.published.push(...this.pending);
    this.pending = [];
  }

  /** Expected read(): the entry, or undefined for -1. Padding at the head is released at once. */
  next(): Entry | undefined {
    for (;;) {
      const e = this.published[this.read];
      if (!e) return undefined;
      if (!e.pad) {
        this.read++;
        this.held.push(e);
        return e;
      }
      if (this.read === 0) {
        this.published.shift();
        this.head = (this.head + e.rec) | 0;
      } else {
        this.read++;
      }
    }
  }

  release(): void {
    for (const e of this.published.splice(0, this.read)) this.head = (this.head + e.rec) | 0;
    this.read = 0;
    this.held = [];
  }

  /** A new consumer starts at the released head: it reads again what the old one had not released. */
  reattachConsumer(): void {
    this.read = 0;
    this.held = [];
  }

  /** A new producer starts at the published tail: claims never committed are gone. */
  reattachProducer(): void {
    for (const e of this.pending) this.tail = (this.tail - e.rec) | 0;
    this.pending = [];
  }
}

/** A length whose record lands on, or one slot either side of, the edge of the free space or the area. */
function edgeLength(r: ReturnType<typeof prng>, m: Model, max: number): number {
  const off = m.tail & (m.capacity - 1);
  const free = m.capacity - SPSC_SLACK - ((m.tail - m.head) | 0);
  const targets = [free, free - 8, free + 8, m.capacity - off, m.capacity - off + 8, free - (m.capacity - off)];
  const rec = targets[r.int(0, targets.length - 1)]!;
  return Math.max(0, Math.min(max, rec - 8 - r.int(0, 7)));
}

function runModel(r: ReturnType<typeof prng>, capacity: number, start: number, steps: number): number {
  const d = ringAt(capacity, start);
  const ctl = new Int32Array(d.producer);
  const words = new Int32Array(d.producer, PRODUCER_DATA, capacity >> 2);
  const head = new Int32Array(d.consumer);
  const producer = (): SpscProducer => new SpscProducer(memory(d), { spin: 0, spaceBell: AtomicsDoorbell.create() });
  let p = producer();
  let c = new SpscConsumer(memory(d));
  const m = new Model(capacity, start);
  const max = p.maxMessageSize;
  let received = 0;
  for (let step = 0; step < steps; step++) {
    const op = r.next();
    const where = `capacity ${capacity}, start ${start >>> 0}, step ${step}`;
    if (op < 0.4) {
      const pick = r.next();
      const len = pick < 0.4 ? r.int(0, Math.min(40, max)) : pick < 0.55 ? max : pick < 0.9 ? edgeLength(r, m, max) : r.int(0, max);
      const bytes = r.bytes(len);
      const type = r.int(0, 0x7fffffff);
      assert.is(p.waitForSpaceSync(len, 0), m.progress(len), `${where}: space for ${len} at tail ${m.tail >>> 0}, head ${m.head >>> 0}`);
      const want = m.claim(len, type, bytes);
      const off = p.claim(len, type);
      assert.is(off, want, `${where}: claim(${len}) at tail ${m.tail >>> 0}, head ${m.head >>> 0}`);
      if (off >= 0) p.data.set(bytes, off);
    } else if (op < 0.55) {
      m.commit();
      p.commit();
      assert.is(ctl[PW.tail], m.tail, `${where}: the tail names the published end`);
      assert.is(words[(m.tail & (capacity - 1)) >> 2], 0, `${where}: the slot after the last batch reads 0`);
    } else if (op < 0.8) {
      const want = m.next();
      const len = c.read();
      if (!want) {
        assert.is(len, -1, `${where}: read() found a record the model does not have`);
        continue;
      }
      assert.is(len, want.bytes.length, `${where}: length`);
      assert.is(c.offset, (want.pos & (capacity - 1)) + 8, `${where}: offset`);
      assert.is(c.type, want.type, `${where}: type`);
      assert.equal(c.view(), want.bytes, `${where}: payload`);
      received++;
    } else if (op < 0.9) {
      // Records read in place stay intact until release(), however far the producer got meanwhile.
      for (const e of m.held) {
        const off = (e.pos & (capacity - 1)) + 8;
        assert.equal(c.data.subarray(off, off + e.bytes.length), e.bytes, `${where}: a held record was overwritten`);
      }
      m.release();
      c.release();
    } else if (op < 0.96) {
      assert.is(c.available(), m.published.length > m.read, `${where}: available()`);
    } else if (op < 0.98) {
      m.reattachConsumer();
      c = new SpscConsumer(memory(d));
    } else {
      m.reattachProducer();
      p = producer();
    }
    assert.is(head[CW.head], m.head, `${where}: released head`);
  }
  return received;
}

test('model: claims, padding, slack, in-place reads, releases and re-attach follow the layout exactly', () => {
  const r = prng(seed);
  let received = 0;
  for (const capacity of [64, 128, 256, 1024]) {
    for (const start of [0, -capacity * 2, -8 * r.int(1, capacity)]) received += runModel(r, capacity, start, 4000);
  }
  assert.ok(received > 5000, `only ${received} messages moved`);
});


/**
 * Runs `fn` as a producer that stops for good at its commit's store of word 0 (a terminated worker):
 * `stored` says whether that store landed before it stopped.
 */
function stopAtPublish(d: ThreadRingDescriptor, stored: boolean, fn: () => void): void {
  const real = Atomics.store;
  const stop = new Error('producer stopped');
  (Atomics as { store: unknown }).store = (arr: Int32Array, index: number, value: number): number => {
    if (arr.buffer !== d.producer || arr.byteOffset !== PRODUCER_DATA) return real(arr, index, value);
    if (stored) real(arr, index, value);
    throw stop;
  };
  try {
    fn();
    assert.unreachable('the producer never published');
  } catch (err) {
    if (err !== stop) throw err;
  } finally {
    Atomics.store = real;
  }
}

for (const stored of [false, true]) {
  test(`a producer that stops ${stored ? 'just after' : 'just before'} publishing a batch: a new producer carries on where the consumer will look`, () => {
    for (const capacity of [64, 256]) {
      // A lead record of capacity - 24 bytes makes the stopped batch wrap (padding, then its record at 0).
      for (const lead of [0, capacity - 32]) {
        const d = createThreadRing(capacity, 'spsc');
        const p = new SpscProducer(memory(d));
        const c = new SpscConsumer(memory(d));
        if (lead > 0) {
          assert.ok(p.send(new Uint8Array(lead), 1));
          assert.is(c.receive()?.length, lead);
        }
        assert.ok(p.send(new Uint8Array(3).fill(2), 2));
        stopAtPublish(d, stored, () => {
          const off = p.claim(5, 3);
          assert.ok(off >= 0);
          p.data.fill(3, off, off + 5);
          p.commit();
        });
        const again = new SpscProducer(memory(d));
        assert.ok(again.send(new Uint8Array(7).fill(4), 4));
        const got: number[] = [];
        for (let msg = c.receive(); msg; msg = c.receive()) got.push(c.type);
        // The stopped batch arrives only if its publishing store landed; the new message always does.
        assert.equal(got, stored ? [2, 3, 4] : [2, 4], `capacity ${capacity}, lead ${lead}`);
      }
    }
  });
}


test('a new producer refuses, with ERR_RING_CORRUPT, records past the tail that no commit leaves', () => {
  const damages: [string, (w: Int32Array) => void][] = [
    ['no present bit', (w) => { w[0] = 24; }],
    ['a length past the area', (w) => { w[0] = 4096 | SPSC_PRESENT; }],
    ['a length of 2^31 - 1', (w) => { w[0] = -1; }],
    // Zero-length records all the way round: a commit always leaves a zero word within the area.
    ['no zero word anywhere', (w) => { for (let i = 0; i < w.length; i += 2) w[i] = SPSC_PRESENT | 0; }],
  ];
  for (const [what, damage] of damages) {
    const d = createThreadRing(256, 'spsc');
    damage(new Int32Array(d.producer, PRODUCER_DATA, 64));
    expectRefused(d, what);
  }
  const misaligned = createThreadRing(256, 'spsc');
  new Int32Array(misaligned.producer)[PW.tail] = 13;
  expectRefused(misaligned, 'a tail that is not 8-aligned');
});

function expectRefused(d: ThreadRingDescriptor, what: string): void {
  try {
    new SpscProducer(memory(d));
    assert.unreachable(what);
  } catch (err) {
    assert.ok(isRingwireError(err, 'ERR_RING_CORRUPT'), `${what}: ${String(err)}`);
  }
}

/** Message `seq`'s length, drawn so that padding, exactly-full rings and maximum sizes are common. */
function lengthOf(r: ReturnType<typeof prng>, max: number): number {
  const pick = r.next();
  return pick < 0.6 ? r.int(0, 24) : pick < 0.75 ? max : pick < 0.9 ? r.int(max >> 1, max) : r.int(0, max);
}

function byteOf(seq: number, i: number): number {
  return (seq * 131 + i * 7) & 0xff;
}

test('threads: batched commits and held in-place reads, both sides parking (spin 0), nothing lost, doubled or stale', async () => {
  await scratch('batched stream', 30_000, async ({ children }) => {
    const d = createThreadRing(256, 'spsc');
    const n = 20_000;
    // The worker draws lengths from the same seed as the checker below, and batch sizes from another.
    const src = `
      const { workerData: w, parentPort } = require('node:worker_threads');
      Promise.all([import(w.ring), import(w.helpers)]).then(([{ openProducer }, { prng }]) => {
        const p = openProducer(w.d, { spin: 0 });
        const lengths = prng(w.seed);
        const batches = prng(w.seed ^ 0x77);
        const lengthOf = ${lengthOf.toString()};
        const byteOf = ${byteOf.toString()};
        for (let seq = 0; seq < w.n;) {
          for (let k = batches.int(1, 6); k > 0 && seq < w.n; k--, seq++) {
            const len = lengthOf(lengths, p.maxMessageSize);
            let off = p.claim(len, seq);
            while (off < 0) {
              if (!p.waitForSpaceSync(len, 10000)) throw new Error('no space for message ' + seq);
              off = p.claim(len, seq);
            }
            for (let i = 0; i < len; i++) p.data[off + i] = byteOf(seq, i);
          }
          p.commit();
        }
        parentPort.postMessage(p.stats());
      });`;
    const w = new Worker(src, {
      eval: true,
      workerData: { d, n, seed, ring: new URL('../lib/ring/thread-ring.js', import.meta.url).href, helpers: new URL('./helpers/index.js', import.meta.url).href },
    });
    children.onCleanup(() => w.terminate());
    const done = new Promise<{ fullWaits: number }>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    const c = openConsumer(d, { spin: 0 }) as SpscConsumer;
    const lengths = prng(seed);
    const holds = prng(seed ^ 0x99);
    let held: { seq: number; off: number; len: number }[] = [];
    let hold = 0;
    const intact = (m: { seq: number; off: number; len: number }): boolean => {
      for (let i = 0; i < m.len; i++) if (c.data[m.off + i] !== byteOf(m.seq, i)) return false;
      return true;
    };
    const release = (): void => {
      for (const m of held) assert.ok(intact(m), `message ${m.seq} changed while held`);
      c.release();
      held = [];
      hold = holds.int(0, 4);
    };
    for (let seq = 0; seq < n;) {
      if (c.read() < 0) {
        release();
        assert.ok(await c.waitForData({ timeoutMs: 10_000 }), `no message ${seq} within 10 s`);
        continue;
      }
      const m = { seq, off: c.offset, len: c.length };
      assert.is(c.type, seq, 'messages arrive once and in order');
      assert.is(m.len, lengthOf(lengths, c.capacity - 16), `message ${seq}: length`);
      assert.ok(intact(m), `message ${seq}: payload`);
      held.push(m);
      seq++;
      if (held.length > hold) release();
    }
    release();
    const stats = await done;
    assert.is(c.read(), -1, 'nothing after the last message');
    assert.ok(stats.fullWaits > 0 && c.stats().parks > 0, 'both sides really waited');
  });
});

test.run();
