// SPSC rings between processes: a child producer streams 1 M generated messages to a sleeping
// consumer in this process (eventfd data bell), and this process streams to a child consumer while
// parking on the child's space bell. Every byte, the sequence and a checksum are checked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addonAvailable } from '../lib/native/native.js';
import { attachSpscConsumer, attachSpscProducer, createSpscConsumerHalf, createSpscProducerHalf } from '../lib/process/process-ring.js';
import type { ConsumerStats, ProducerStats } from '../lib/ring/ring-types.js';
import { requireOrSkip, scratch } from './helpers/index.js';
import { CHILD_WAIT_MS, produceSequence, report, startRingPeer } from './helpers/ring-child.js';
import { SequenceChecker } from './workers/ring-worker.js';

const available = requireOrSkip('the ringwire native addon (npm install)', addonAvailable());

test('SPSC child -> parent: 1 M messages to a consumer that sleeps on an eventfd', async () => {
  if (!available) return;
  await scratch('spsc child -> parent', 150_000, async ({ dir, children, own }) => {
    const half = own(createSpscConsumerHalf(1 << 14, 'parent-consumer'));
    const count = 1_000_000;
    const { child, peerFds } = await startRingPeer(children, dir, 'spsc-producer', { count, capacity: 1 << 14 }, half.fds);
    const { ring, close } = attachSpscConsumer(half, peerFds, { spin: 16 });
    children.onCleanup(close);
    const check = new SequenceChecker(1);
    while (check.total < count) {
      if (ring.drain(check.onRecord, 512) > 0) continue;
      if (!(await ring.waitForData({ timeoutMs: CHILD_WAIT_MS }))) throw new Error(`starved at ${check.total}/${count}`);
    }
    const done = await report<{ checksum: number; stats: ProducerStats }>(child);
    assert.equal(check.next, [count]);
    assert.is(check.checksum, done.checksum, 'checksum over (seq + length) matches the producer');
    assert.is(done.stats.messages, count);
    const stats = ring.stats();
    assert.is(stats.messages, count);
    assert.ok(stats.parks > 0, 'the consumer slept on its eventfd');
    assert.ok(done.stats.doorbellsRung > 0, 'the producer rang the sleeping consumer');
    assert.ok(done.stats.fullWaits > 0, 'a 16 KiB ring filled up, so the producer waited on the space bell too');
    assert.is((await child.exited).code, 0);
  });
});

test('SPSC parent -> child: the producer here parks on the child\'s space bell when full', async () => {
  if (!available) return;
  await scratch('spsc parent -> child', 120_000, async ({ dir, children, own }) => {
    const half = own(createSpscProducerHalf(1 << 12, 'parent-producer'));
    const count = 200_000;
    const { child, peerFds } = await startRingPeer(children, dir, 'spsc-consumer', { count, capacity: 1 << 12 }, half.fds);
    const { ring, close } = attachSpscProducer(half, peerFds, { spin: 0 });
    children.onCleanup(close);
    const checksum = await produceSequence(ring, count);
    const done = await report<{ checksum: number; next: number[]; stats: ConsumerStats }>(child);
    assert.equal(done.next, [count]);
    assert.is(done.checksum, checksum);
    const stats = ring.stats();
    assert.ok(stats.fullWaits > 0, 'a 4 KiB ring filled up');
    assert.ok(done.stats.doorbellsRung > 0, 'the child rang our space bell');
    assert.is((await child.exited).code, 0);
  });
});

test.run();
