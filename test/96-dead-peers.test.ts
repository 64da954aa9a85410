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
import { addonAvailable } from '../lib/native/native.js';
import { isRingwireError } from '../lib/errors.js';
import {
  attachMpscConsumer, attachSpscConsumer, createMpscConsumerHalf, createSpscConsumerHalf,
} from '../lib/process/process-ring.js';
import { prng, requireOrSkip, scratch, testSeed } from './helpers/index.js';
import { CHILD_WAIT_MS, joinProducer, startChild, startRingPeer } from './helpers/ring-child.js';

const native = requireOrSkip('native addon', addonAvailable());

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

if (native) {
  for (const via of ['socket', 'pid'] as const) {
    test(`process ring: a consumer waiting for data notices its producer SIGKILLed (liveness by ${via})`, () => scratch(`liveness ${via}`, 60000, async ({ dir, children, own }) => {
      const half = own(createSpscConsumerHalf(1 << 12, 'parent-consumer'));
      // The child sends 10 messages, then waits for word from us that never comes.
      const { child, peerFds } = await startRingPeer(children, dir, 'spsc-producer', { count: 1000, capacity: 1 << 12, groupSize: 10 }, half.fds);
      const pr = attachSpscConsumer(half, peerFds, { peer: via === 'socket' ? { socket: child.sock } : { pid: child.proc.pid! } });
      children.onCleanup(pr.close);
      let got = 0;
      while (got < 10) {
        got += pr.ring.drain(() => {}, 64);
        if (got < 10) assert.ok(await pr.ring.waitForData({ timeoutMs: CHILD_WAIT_MS, signal: pr.signal }));
      }
      const waiting = pr.ring.waitForData({ signal: pr.signal }).then(() => 'woke', (e: Error) => e);
      assert.is(pr.peerGone, false);
      child.proc.kill('SIGKILL');
      const err = await waiting;
      assert.ok(err instanceof Error && isRingwireError(err, 'ERR_ABORTED'), `the wait ended with ${String(err)}`);
      assert.ok(isRingwireError((err as Error).cause, 'ERR_PEER_GONE'), String((err as Error).cause));
      assert.is(pr.peerGone, true);
      assert.ok(isRingwireError(pr.signal.reason, 'ERR_PEER_GONE'));
    }));
  }

  test('process ring: an MPSC consumer drops the space bell of a producer that died (liveness by pid) and says so', () => scratch('mpsc liveness', 60000, async ({ dir, children, own }) => {
    const half = own(createMpscConsumerHalf(1 << 14, 'parent-mpsc'));
    const consumer = attachMpscConsumer(half, { abandonTimeoutMs: 200 });
    children.onCleanup(consumer.close);
    const child = await startChild(children, dir, 'producer', 'mpsc-producer', { count: 1000, producerId: 1, stallAfter: 5 });
    let gone: Error | undefined;
    const died = new Promise<void>((resolve) => {
      void joinProducer(child, half.fds, (fd) => consumer.addProducer(fd, { peer: { pid: child.proc.pid! }, onGone: (e) => { gone = e; resolve(); } }));
    });
    while (consumer.ring.stats().messages < 5) {
      consumer.ring.drain(() => {}, 64);
      await consumer.ring.waitForData({ timeoutMs: 100 });
    }
    child.proc.kill('SIGKILL');
    await died;
    assert.ok(isRingwireError(gone, 'ERR_PEER_GONE'));
  }));
}

test.run();
