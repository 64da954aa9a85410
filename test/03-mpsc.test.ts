import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createThreadRing, openConsumer, openProducer, type ThreadRingDescriptor } from '../lib/ring/thread-ring.js';
import { MpscConsumer, MpscProducer } from '../lib/ring/mpsc.js';
import { CW, MPSC_STATE_COMMITTED, PRODUCER_DATA, PW } from '../lib/ring/layout.js';
import { allocateRing } from '../lib/ring/ring-memory.js';
import { RingKind } from '../lib/ring/layout.js';
import { isRingwireError } from '../lib/errors.js';
import { prng, testSeed } from './helpers/index.js';

const seed = testSeed();

function ring(capacity: number, producers: number, abandonTimeoutMs = 1000): { ps: MpscProducer[]; c: MpscConsumer; ctl: Int32Array } {
  const d = createThreadRing(capacity, 'mpsc');
  return {
    ps: Array.from({ length: producers }, () => openProducer(d) as MpscProducer),
    c: openConsumer(d, { abandonTimeoutMs }) as MpscConsumer,
    ctl: new Int32Array(d.producer),
  };
}

test('interleaved producers: per-producer order, bytes and types survive random schedules', () => {
  const r = prng(seed);
  for (const capacity of [64, 256, 4096]) {
    const { ps, c } = ring(capacity, 3);
    const sent = ps.map(() => [] as Uint8Array[]);
    const open = ps.map(() => null as { off: number; bytes: Uint8Array } | null);
    const got = ps.map(() => 0);
    let unreleased = 0;
    for (let step = 0; step < 30000; step++) {
      const who = r.int(0, 2);
      const p = ps[who]!;
      const op = r.next();
      if (op < 0.35) {
        if (open[who]) continue;
        const len = r.next() < 0.05 ? r.int(0, p.maxMessageSize) : r.int(1, Math.min(40, p.maxMessageSize));
        const bytes = r.bytes(len);
        if (len > 0) bytes[0] = sent[who]!.length & 0xff;
        const off = p.claim(len, who);
        if (off >= 0) open[who] = { off, bytes };
      } else if (op < 0.55) {
        const o = open[who];
        if (!o) continue;
        p.data.set(o.bytes, o.off);
        p.commit();
        sent[who]!.push(o.bytes);
        open[who] = null;
      } else if (op < 0.9) {
        const len = c.read();
        if (len < 0) continue;
        unreleased++;
        const from = c.type;
        assert.ok(from < 3, `type ${from}`);
        const want = sent[from]![got[from]!];
        assert.ok(want, `producer ${from} message ${got[from]} was never committed`);
        assert.equal(c.data.slice(c.offset, c.offset + len), want);
        got[from]!++;
      } else if (unreleased) {
        c.release();
        unreleased = 0;
      }
    }
    assert.ok(got.reduce((a, b) => a + b, 0) > 1000, `too few messages moved at capacity ${capacity}`);
    assert.is(c.stats().abandoned, 0);
  }
});

test('a reservation never marked (writer died right after its CAS) is skipped after the timeout', async () => {
  const { ps, c, ctl } = ring(1024, 2, 20);
  const [a, b] = ps as [MpscProducer, MpscProducer];
  assert.ok(a.send(new Uint8Array([1])));
  // A producer that won its CAS for 32 bytes and died before writing anything.
  Atomics.add(ctl, PW.tail, 32);
  assert.ok(b.send(new Uint8Array([2, 2])));
  assert.equal([...c.receive()!], [1]);
  assert.is(c.receive(), null, 'the dead reservation blocks until the timeout');
  assert.ok(await c.waitForData({ timeoutMs: 2000 }));
  assert.equal([...c.receive()!], [2, 2]);
  assert.is(c.stats().abandoned, 1);
  assert.ok(a.send(new Uint8Array(500)), 'the skipped space is returned to producers');
});

test('a reservation marked but never committed is skipped by its size', async () => {
  const { ps, c } = ring(1024, 2, 20);
  const [a, b] = ps as [MpscProducer, MpscProducer];
  const off = a.claim(40, 0);
  assert.ok(off >= 0);
  assert.ok(b.send(new Uint8Array([9]), 1));
  assert.is(c.read(), -1);
  assert.ok(await c.waitForData({ timeoutMs: 2000 }));
  assert.is(c.read(), 1);
  assert.is(c.type, 1);
  c.release();
  assert.is(c.stats().abandoned, 1);
});

test('a reservation that appears while the consumer sleeps on an empty ring is skipped after the timeout', async () => {
  const d = createThreadRing(1024, 'mpsc');
  const [dead, live] = [openProducer(d) as MpscProducer, openProducer(d) as MpscProducer];
  const c = openConsumer(d, { spin: 0, abandonTimeoutMs: 20 }) as MpscConsumer;
  // Parked on an empty ring: nothing is blocked yet, so no abandon timer runs.
  const parked = c.waitForData({ timeoutMs: 3000 });
  assert.ok(dead.claim(40, 0) >= 0, 'a producer reserves and dies holding the record');
  assert.ok(live.send(new Uint8Array([7]), 1), 'a live record behind it rings the sleeping consumer');
  assert.ok(await parked, 'the dead reservation was skipped while waiting, well within the wait');
  assert.is(c.read(), 1);
  assert.is(c.type, 1);
  c.release();
  assert.is(c.stats().abandoned, 1);
});

/** A 1 KiB MPSC ring whose tail and record words a test writes by hand, playing producers caught between their steps. */
function reservationRig(abandonTimeoutMs: number): { d: ThreadRingDescriptor; tail: Int32Array; words: Int32Array; c: MpscConsumer } {
  const d = createThreadRing(1024, 'mpsc');
  return { d, tail: new Int32Array(d.producer), words: new Int32Array(d.producer, PRODUCER_DATA), c: openConsumer(d, { abandonTimeoutMs }) as MpscConsumer };
}

test('skipping an unmarked dead reservation leaves alone a reservation made after the abandon timer started', async () => {
  const { tail, words, c } = reservationRig(20);
  // A producer won its CAS for 32 bytes at offset 0 and died before marking it.
  Atomics.add(tail, PW.tail, 32);
  assert.is(c.read(), -1, 'the abandon timer starts');
  // A live producer, by hand between its two steps: its tail CAS (16 bytes at offset 32) is done,
  // its reserved mark (lap 0, 16 bytes) is not stored yet.
  Atomics.add(tail, PW.tail, 16);
  // The first read() after the timeout skips the dead record, then finds the live one unmarked.
  while (c.stats().abandoned === 0) {
    await new Promise((r) => setTimeout(r, 5));
    assert.is(c.read(), -1, 'nothing is committed yet');
  }
  words[32 / 4 + 1] = 5;
  Atomics.store(words, 32 / 4, 16);
  words[32 / 4 + 2] = 0x01020304;
  assert.is(Atomics.compareExchange(words, 32 / 4, 16, MPSC_STATE_COMMITTED | (4 + 1)), 16, 'the live producer commits');
  assert.is(c.read(), 4, 'its committed record is delivered, not skipped with the dead one');
  assert.is(c.type, 5);
  assert.is(c.stats().abandoned, 1);
});

test('a producer late to mark a reservation the consumer skipped cannot mark it afterwards', async () => {
  const { d, tail, words, c } = reservationRig(0);
  // A dead producer's 32 bytes, then a stalled one's 16 bytes: both tail CASes done, no marks.
  Atomics.add(tail, PW.tail, 48);
  assert.is(c.read(), -1, 'the abandon timer starts');
  assert.is(c.read(), -1, 'both unmarked reservations are skipped');
  assert.is(c.stats().abandoned, 1);
  // The stalled producer wakes and marks the way claim() does: a CAS from the word it saw (0).
  assert.is.not(Atomics.compareExchange(words, 32 / 4, 0, 16), 0, 'its mark does not land in space the consumer passed');
  const p = openProducer(d) as MpscProducer;
  assert.ok(p.send(new Uint8Array([3]), 4));
  assert.is(c.read(), 1);
  assert.is(c.type, 4);
});

test('a producer whose reservation the consumer already skipped reserves again', () => {
  const d = createThreadRing(1024, 'mpsc');
  const words = new Int32Array(d.producer, PRODUCER_DATA);
  const p = openProducer(d) as MpscProducer;
  // What a consumer leaves in a slot it skipped unmarked: lap 0, committed, value 0.
  Atomics.store(words, 0, MPSC_STATE_COMMITTED);
  const off = p.claim(8, 1);
  assert.is(off, 16 + 8, 'the record went to the next reservation, not the skipped one');
  assert.is(Atomics.load(words, 0), MPSC_STATE_COMMITTED, 'the skipped slot was left alone');
  p.commit();
  assert.is(Atomics.load(words, 16 / 4), MPSC_STATE_COMMITTED | (8 + 1));
});

test('dead reservations, marked or not, skipped at once over many laps: every committed message arrives in order', () => {
  const r = prng(seed ^ 0x5eed);
  for (const capacity of [64, 256, 1024]) {
    const d = createThreadRing(capacity, 'mpsc');
    const tail = new Int32Array(d.producer);
    const head = new Int32Array(d.consumer);
    const ps = [0, 1].map(() => openProducer(d) as MpscProducer);
    // Timeout 0: any record not committed when the consumer looks twice is skipped.
    const c = openConsumer(d, { abandonTimeoutMs: 0 }) as MpscConsumer;
    const sent: number[][] = [[], []];
    const got = [0, 0];
    const open = [false, false];
    let deadUnmarked = 0;
    for (let step = 0; step < 40000; step++) {
      const who = r.int(0, 1);
      const p = ps[who]!;
      const op = r.next();
      if (op < 0.3 && !open[who]) {
        const len = r.int(0, Math.min(24, p.maxMessageSize));
        const off = p.claim(len, who);
        if (off >= 0) {
          p.data.fill(sent[who]!.length & 0xff, off, off + len);
          open[who] = true;
        }
      } else if (op < 0.5 && open[who]) {
        open[who] = false;
        const seq = sent[who]!.length;
        try {
          p.commit();
          sent[who]!.push(seq);
        } catch (err) {
          assert.ok(isRingwireError(err, 'ERR_TIMEOUT'), String(err));
        }
      } else if (op < 0.55) {
        // A producer that won its tail CAS and died before marking; never across the end.
        const t = Atomics.load(tail, PW.tail);
        const bytes = 8 * r.int(1, 4);
        const room = capacity - ((t - Atomics.load(head, CW.head)) | 0);
        if ((t & (capacity - 1)) + bytes <= capacity && bytes <= room && Atomics.compareExchange(tail, PW.tail, t, t + bytes) === t) deadUnmarked++;
      } else if (op < 0.9) {
        while (c.read() >= 0) {
          const from = c.type;
          assert.ok(from < 2, `type ${from}`);
          assert.ok(got[from]! < sent[from]!.length, `producer ${from} record ${got[from]} was never committed`);
          if (c.length > 0) assert.is(c.data[c.offset], sent[from]![got[from]!]! & 0xff, 'payload of the right message');
          got[from]!++;
        }
      } else {
        c.release();
      }
    }
    for (const [who, p] of ps.entries()) {
      if (!open[who]) continue;
      try {
        p.commit();
        sent[who]!.push(sent[who]!.length);
      } catch (err) {
        assert.ok(isRingwireError(err, 'ERR_TIMEOUT'), String(err));
      }
    }
    for (let i = 0; i < 4; i++) while (c.read() >= 0) got[c.type]!++;
    c.release();
    assert.equal(got, sent.map((s) => s.length), `every committed message arrived at capacity ${capacity}`);
    // Adjacent unmarked ones go in one skip.
    assert.ok(deadUnmarked > 100 && c.stats().abandoned > 100, `${deadUnmarked} unmarked dead reservations, ${c.stats().abandoned} skips`);
  }
});

test('full is back-pressure for every producer, and space returns after release', () => {
  const { ps, c } = ring(256, 2);
  const [a, b] = ps as [MpscProducer, MpscProducer];
  let n = 0;
  while ((n % 2 ? b : a).send(new Uint8Array(24))) n++;
  assert.is(n, 8);
  assert.is(b.claim(24), -1);
  assert.ok(c.receive());
  assert.ok(b.send(new Uint8Array(24)));
});

test('a producer idle while 2 GiB passed re-reads the head instead of trusting its stale copy', () => {
  const mem = allocateRing(RingKind.Mpsc, 1024);
  const idle = new MpscProducer(mem); // caches head 0
  // Move both indices 2^31 + 64 bytes on, as if 2 GiB had flowed through from other producers.
  const far = (0x80000000 + 64) | 0;
  Atomics.store(new Int32Array(mem.producer.buffer), PW.tail, far);
  Atomics.store(new Int32Array(mem.consumer.buffer), CW.head, far);
  const busy = new MpscProducer(mem);
  const c = new MpscConsumer(mem);
  while (busy.send(new Uint8Array(56), 7));
  assert.is(idle.claim(8, 99), -1, 'the ring is full for every producer');
  let n = 0;
  while (c.read() >= 0) {
    assert.is(c.type, 7);
    n++;
  }
  c.release();
  assert.is(n, 1024 / 64);
  assert.ok(idle.send(new Uint8Array(8), 99), 'space freed by the consumer is seen by the idle producer');
});

test('a stalled producer whose record was skipped gets ERR_TIMEOUT at commit, and its late writes are never read as records', async () => {
  const mem = allocateRing(RingKind.Mpsc, 256);
  const slow = new MpscProducer(mem);
  const other = new MpscProducer(mem);
  const c = new MpscConsumer(mem, { abandonTimeoutMs: 10 });
  const slowOff = slow.claim(8, 111);
  assert.is(c.read(), -1);
  assert.is(await c.waitForData({ timeoutMs: 200 }), false, 'after the skip the ring is empty');
  assert.is(c.stats().abandoned, 1, 'the consumer gave the stalled record up');
  for (let i = 0; i < 15; i++) assert.ok(other.send(new Uint8Array(8).fill(i), 200 + i));
  while (c.read() >= 0) c.release();
  // The next lap: `other` reserves offset 0 again and has not committed yet.
  const o2 = other.claim(8, 999);
  assert.is(o2, slowOff);
  slow.data.fill(0x11, slowOff, slowOff + 8);
  try {
    slow.commit();
    assert.unreachable('a revoked record must not commit');
  } catch (err) {
    assert.ok(isRingwireError(err, 'ERR_TIMEOUT'), String(err));
  }
  assert.is(slow.revoked, 1);
  assert.is(c.read(), -1, 'nothing committed at the head: the late commit did not publish anything');
  other.commit();
  assert.is(c.read(), 8);
  assert.is(c.type, 999);
  c.release();
  assert.is(new Int32Array(mem.producer.buffer, 192, 1)[0], 0, 'released space is zero again');
});

test('a record skipped while earlier ones are still unreleased cannot be committed late', () => {
  const d = createThreadRing(1024, 'mpsc');
  const [a, slow] = [openProducer(d) as MpscProducer, openProducer(d) as MpscProducer];
  const c = openConsumer(d, { abandonTimeoutMs: 0 }) as MpscConsumer;
  assert.ok(a.send(new Uint8Array([1]), 1));
  assert.ok(slow.claim(8, 2) >= 0);
  assert.is(c.read(), 1, 'read, and held: not released yet');
  assert.is(c.read(), -1, 'the abandon timer starts');
  assert.is(c.read(), -1, 'the slow record is skipped');
  assert.is(c.stats().abandoned, 1);
  assert.throws(() => slow.commit(), (err: unknown) => isRingwireError(err, 'ERR_TIMEOUT'), 'the late commit is refused, not published behind the consumer');
  assert.is(slow.revoked, 1);
  c.release();
  assert.ok(a.send(new Uint8Array([3]), 1));
  assert.is(c.read(), 1);
  assert.is(c.data[c.offset], 3);
});

test('padding committed on the way to a full ring wakes a sleeping consumer', async () => {
  const d = createThreadRing(256, 'mpsc');
  const p = openProducer(d);
  const c = openConsumer(d, { spin: 0 });
  assert.ok(p.send(new Uint8Array(120)));
  assert.ok(c.receive());
  const parked = c.waitForData({ timeoutMs: 5000 });
  // A 200-byte record does not fit after offset 128: the producer pads to the end and must say so.
  assert.is(p.claim(200), -1);
  assert.is(p.stats().doorbellsRung, 1, 'the padding rang the parked consumer');
  assert.ok(await parked);
  assert.is(c.read(), -1, 'only padding was there');
  assert.ok(p.send(new Uint8Array(200)), 'the skipped padding freed the space');
});

test.run();
