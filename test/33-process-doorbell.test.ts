// The EventFdDoorbell as the ring's cross-process Doorbell: the consumer here parks in
// waitForData (spin 0, so every wait really sleeps on the eventfd through the event loop), and a
// producer in another process rings it only when the consumer's waiting flag is up. Bursts larger
// than the ring make the producer run while the consumer is awake, so suppression shows up too.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addonAvailable } from '../lib/native/native.js';
import { EventFdDoorbell } from '../lib/native/doorbell-eventfd.js';
import { attachSpscConsumer, createSpscConsumerHalf } from '../lib/process/process-ring.js';
import type { ProducerStats } from '../lib/ring/ring-types.js';
import { requireOrSkip, scratch } from './helpers/index.js';
import { CHILD_WAIT_MS, report, startRingPeer } from './helpers/ring-child.js';
import { SequenceChecker } from './workers/ring-worker.js';

const available = requireOrSkip('the ringwire native addon (npm install)', addonAvailable());

test('a consumer parked on an EventFdDoorbell is woken by a producer process; rings are suppressed while it is awake', async () => {
  if (!available) return;
  await scratch('cross-process doorbell', 90_000, async ({ dir, children, own }) => {
    const half = own(createSpscConsumerHalf(1 << 10, 'parked-consumer'));
    const groups = 20;
    const groupSize = 500;
    const count = groups * groupSize;
    assert.instance(half.dataBell, EventFdDoorbell);
    const { child, peerFds } = await startRingPeer(children, dir, 'spsc-producer', { count, capacity: 1 << 10, groupSize }, half.fds);
    const { ring, close } = attachSpscConsumer(half, peerFds, { spin: 0 });
    children.onCleanup(close);
    const check = new SequenceChecker(1);
    const boundaryWaitsMs: number[] = [];
    while (check.total < count) {
      if (ring.drain(check.onRecord, 64) > 0) {
        // A whole burst is in: let the producer start the next one, then sleep until it rings.
        if (check.total % groupSize !== 0 || check.total === count) continue;
        child.sock.send(Buffer.from('next'));
        const t0 = performance.now();
        if (!(await ring.waitForData({ timeoutMs: CHILD_WAIT_MS }))) throw new Error(`not woken after ${check.total}`);
        boundaryWaitsMs.push(performance.now() - t0);
        continue;
      }
      if (!(await ring.waitForData({ timeoutMs: CHILD_WAIT_MS }))) throw new Error(`starved at ${check.total}`);
    }
    const done = await report<{ checksum: number; stats: ProducerStats }>(child);
    assert.equal(check.next, [count]);
    assert.is(check.checksum, done.checksum);
    const p = done.stats;
    // A commit either rings or is suppressed; a wrap that meets a full ring publishes its padding alone, one more commit.
    assert.ok(p.doorbellsRung + p.doorbellsSuppressed >= count, 'every commit either rang or was suppressed');
    assert.ok(p.doorbellsRung >= groups / 2, `rung ${p.doorbellsRung} times: the first message of a burst finds the consumer asleep`);
    assert.ok(p.doorbellsSuppressed > 0, `suppressed ${p.doorbellsSuppressed} times while the consumer was draining`);
    assert.ok(ring.stats().parks >= groups - 1, `the consumer parked ${ring.stats().parks} times`);
    // A lost wake-up would only end at the ring's 1 s re-check; the bell answers in far less.
    boundaryWaitsMs.sort((a, b) => a - b);
    const median = boundaryWaitsMs[boundaryWaitsMs.length >> 1]!;
    assert.ok(median < 250, `median wake-up ${median.toFixed(2)} ms`);
    assert.is((await child.exited).code, 0);
  });
});

test.run();
