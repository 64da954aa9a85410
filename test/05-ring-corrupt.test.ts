import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createThreadRing, openConsumer, openProducer, type ThreadRingDescriptor } from '../lib/ring/thread-ring.js';
import { isRingwireError } from '../lib/errors.js';
import { CW, PRODUCER_DATA, PW, SPSC_PRESENT, SPSC_SLACK, TYPE_PADDING } from '../lib/ring/layout.js';
import type { RingConsumer, RingProducer } from '../lib/ring/ring-types.js';
import { prng, testSeed } from './helpers/index.js';

const seed = testSeed();

function expectCorrupt(fn: () => unknown, what: string): void {
  try {
    fn();
  } catch (err) {
    assert.ok(isRingwireError(err, 'ERR_RING_CORRUPT'), `${what}: expected ERR_RING_CORRUPT, got ${String(err)}`);
    return;
  }
  assert.unreachable(`${what}: no error`);
}

function loaded(kind: 'spsc' | 'mpsc', capacity = 1024): { d: ThreadRingDescriptor; p: RingProducer; c: RingConsumer } {
  const d = createThreadRing(capacity, kind);
  const p = openProducer(d);
  const c = openConsumer(d, { abandonTimeoutMs: 0 });
  for (let i = 0; i < 10; i++) assert.ok(p.send(new Uint8Array(i * 3).fill(i), i));
  return { d, p, c };
}

test('attach rejects bad magic, version, kind and capacity', () => {
  const cases: [string, (d: ThreadRingDescriptor) => void][] = [
    ['magic', (d) => { new Int32Array(d.producer)[PW.magic] = 0x1234; }],
    ['version', (d) => { new Uint16Array(d.producer)[2] = 99; }],
    ['kind', (d) => { new Uint16Array(d.producer)[3] = 2; }],
    ['capacity not a power of two', (d) => { new Int32Array(d.producer)[PW.capacity] = 1000; }],
    ['capacity past the buffer', (d) => { new Int32Array(d.producer)[PW.capacity] = 1 << 20; }],
    ['consumer magic', (d) => { new Int32Array(d.consumer)[CW.magic] = 0; }],
    ['consumer capacity mismatch', (d) => { new Int32Array(d.consumer)[CW.capacity] = 2048; }],
  ];
  for (const [what, damage] of cases) {
    const d = createThreadRing(1024, 'spsc');
    damage(d);
    expectCorrupt(() => openConsumer(d), what);
  }
});

test('SPSC consumer: impossible records are ERR_RING_CORRUPT, and stay so', () => {
  // The reader follows record headers (it never reads the tail), so damage shows up there. Word 0
  // of the first record is length | SPSC_PRESENT; the loaded ring's records use about 250 bytes.
  const first = (d: ThreadRingDescriptor): Int32Array => new Int32Array(d.producer, PRODUCER_DATA);
  const damages: [string, (d: ThreadRingDescriptor) => void][] = [
    ['word 0 without the present bit', (d) => { first(d)[0] = 900; }],
    ['length past the data area', (d) => { first(d)[0] = 1020 | SPSC_PRESENT; }],
    ['length of 2^31 - 1', (d) => { first(d)[0] = -1; }],
    ['length into the slack', (d) => { first(d)[0] = 1012 | SPSC_PRESENT; }],
    ['a later record over unreleased ones', (d) => { first(d)[2] = 1008 | SPSC_PRESENT; }],
    ['padding that does not end the ring', (d) => { new Uint32Array(d.producer, PRODUCER_DATA)[1] = 0x80000000; }],
    ['reserved type bits', (d) => { new Uint32Array(d.producer, PRODUCER_DATA)[1] = 0x80000001; }],
  ];
  for (const [what, damage] of damages) {
    const { d, c } = loaded('spsc');
    damage(d);
    expectCorrupt(() => { for (let i = 0; i < 20; i++) c.read(); }, what);
    expectCorrupt(() => c.read(), `${what} (poisoned)`);
  }
});

test('SPSC consumer: a damaged tail is not trusted, and every record still arrives intact', () => {
  for (const tail of [4096, 13, -8]) {
    const { d, c } = loaded('spsc');
    new Int32Array(d.producer)[PW.tail] = tail;
    for (let i = 0; i < 10; i++) {
      const got = c.receive();
      assert.ok(got, `record ${i} with tail ${tail}`);
      assert.equal(got, new Uint8Array(i * 3).fill(i));
    }
    assert.is(c.receive(), null);
  }
});

test('SPSC consumer: a producer that publishes without end is stopped by the slack bound, not followed round', () => {
  // Every slot a zero-length record: no zero word ever ends a batch, so only the bound on what an
  // honest producer can have outstanding (capacity - SPSC_SLACK) stops a batched read.
  const d = createThreadRing(256, 'spsc');
  const c = openConsumer(d);
  const words = new Int32Array(d.producer, PRODUCER_DATA, 64);
  for (let i = 0; i < words.length; i += 2) words[i] = SPSC_PRESENT | 0;
  let n = 0;
  expectCorrupt(() => c.drain(() => { n++; }), 'records all the way round');
  assert.is(n, (256 - 8) / 8, 'every record an honest producer could have published, and no more');
  assert.is(new Int32Array(d.consumer)[CW.head], 256 - 8, 'drain() releases what it delivered, and that is all');
});

test('SPSC consumer: padding that leads into padding over the whole area is ERR_RING_CORRUPT, not a loop', () => {
  const d = createThreadRing(256, 'spsc');
  new Int32Array(d.consumer)[CW.head] = 240;
  const c = openConsumer(d);
  const words = new Int32Array(d.producer, PRODUCER_DATA, 64);
  // Honest padding from 240 to the end (released at once), then "padding" from 0 to the end.
  words[240 >> 2] = 8 | SPSC_PRESENT;
  words[(240 >> 2) + 1] = TYPE_PADDING | 0;
  words[0] = (256 - 8) | SPSC_PRESENT;
  words[1] = TYPE_PADDING | 0;
  expectCorrupt(() => c.read(), 'padding over the whole area');
  assert.is(new Int32Array(d.consumer)[CW.head], 256, 'only the honest padding was released');
});

test('SPSC producer: a hostile consumer head is ERR_RING_CORRUPT', () => {
  // Fill the ring (the producer then trusts nothing cached), then move the head somewhere impossible:
  // past the published tail, misaligned, or backwards.
  for (const delta of [264, 13, -8, 1 << 20]) {
    const d = createThreadRing(256, 'spsc');
    const p = openProducer(d);
    while (p.send(new Uint8Array(24)));
    const head = new Int32Array(d.consumer);
    head[CW.head] = delta;
    expectCorrupt(() => p.send(new Uint8Array(24)), `head set to ${delta}`);
  }
});

test('SPSC producer: attaching, a head that leaves no slack behind the tail is ERR_RING_CORRUPT; one that leaves it is fine', () => {
  for (const [head, ok] of [[0, false], [-8, false], [8, true], [256, true]] as const) {
    const d = createThreadRing(256, 'spsc');
    new Int32Array(d.producer)[PW.tail] = 256;
    new Int32Array(d.consumer)[CW.head] = head;
    if (ok) assert.ok(openProducer(d), `head ${head}`);
    else expectCorrupt(() => openProducer(d), `head ${head} with the tail at 256`);
  }
});

/** Scribbles random bytes over a loaded ring and drains it: data within bounds, or the typed error. */
function scribbleAndDrain(kind: 'spsc' | 'mpsc', r: ReturnType<typeof prng>): 'ok' | 'corrupt' {
  const { d, c, p } = loaded(kind, 512);
  const target = r.next() < 0.5 ? d.producer : d.consumer;
  const bytes = new Uint8Array(target);
  const hits = r.int(1, 6);
  for (let i = 0; i < hits; i++) {
    // Bias towards the control words and record headers, where damage matters most.
    const at = r.next() < 0.5 ? r.int(0, Math.min(bytes.length - 1, PRODUCER_DATA + 64)) : r.int(0, bytes.length - 1);
    bytes[at] = r.int(0, 255);
  }
  // What a damaged producer block can make an SPSC consumer release: aligned, forwards, and never
  // more at once than an honest producer could have published (capacity - SPSC_SLACK).
  let released = 0;
  const release = (): void => {
    c.release();
    if (kind !== 'spsc') return;
    const head = Atomics.load(new Int32Array(d.consumer), CW.head);
    const moved = (head - released) | 0;
    assert.ok((head & 7) === 0 && moved >= 0 && moved <= c.capacity - SPSC_SLACK, `head moved from ${released} to ${head}`);
    released = head;
  };
  try {
    for (let i = 0; i < 200; i++) {
      const len = c.read();
      if (len >= 0) {
        assert.ok(c.offset >= 0 && c.offset + len <= c.capacity, 'record stays inside the data area');
        if (i % 3 === 0) release();
      } else {
        release();
        const off = p.claim(r.int(0, 100));
        if (off >= 0) {
          assert.ok(off + 100 <= p.capacity + 100 && off <= p.capacity, 'claim stays inside the data area');
          p.commit();
        }
      }
    }
    return 'ok';
  } catch (err) {
    assert.ok(isRingwireError(err, 'ERR_RING_CORRUPT'), `${kind}: unexpected ${String(err)}`);
    return 'corrupt';
  }
}

for (const kind of ['spsc', 'mpsc'] as const) {
  test(`${kind}: random scribbles give bounded reads or ERR_RING_CORRUPT, never another error or a hang`, () => {
    const r = prng(seed ^ (kind === 'spsc' ? 1 : 2));
    const outcomes = { ok: 0, corrupt: 0 };
    for (let i = 0; i < 3000; i++) outcomes[scribbleAndDrain(kind, r)]++;
    assert.ok(outcomes.corrupt > 100, `damage was detected only ${outcomes.corrupt} times`);
  });
}

test.run();
