// MPSC ring across processes: three producer processes write 1.05 M generated messages into one
// consumer here, which sleeps on its eventfd when the ring is empty and rings every producer's own
// space bell when they wait. Per-producer order, every byte and each producer's checksum are checked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addonAvailable } from '../lib/native/native.js';
import { attachMpscConsumer, createMpscConsumerHalf } from '../lib/process/process-ring.js';
import type { ProducerStats } from '../lib/ring/ring-types.js';
import { requireOrSkip, scratch } from './helpers/index.js';
import { CHILD_WAIT_MS, joinProducer, report, startChild } from './helpers/ring-child.js';
import { SequenceChecker } from './workers/ring-worker.js';

const available = requireOrSkip('the ringwire native addon (npm install)', addonAvailable());

test('MPSC: 3 producer processes, 1.05 M messages into one sleeping consumer', async () => {
  if (!available) return;
  await scratch('mpsc 3 processes', 170_000, async ({ dir, children, own }) => {
    const half = own(createMpscConsumerHalf(1 << 16, 'parent-mpsc'));
    const per = 350_000;
    const producers = 3;
    const consumer = attachMpscConsumer(half, { spin: 16 });
    children.onCleanup(consumer.close);
    const kids = await Promise.all(Array.from({ length: producers }, (_, id) => startChild(children, dir, `producer-${id}`, 'mpsc-producer', { producerId: id, count: per })));
    for (const kid of kids) await joinProducer(kid, half.fds, consumer.addProducer);
    const { ring } = consumer;
    const check = new SequenceChecker(producers);
    const checksums = new Array<number>(producers).fill(0);
    const onRecord = (data: Uint8Array, off: number, len: number, type: number): void => {
      const seq = check.next[type] ?? 0;
      check.onRecord(data, off, len, type);
      checksums[type] = (checksums[type]! + seq + len) >>> 0;
    };
    while (check.total < per * producers) {
      if (ring.drain(onRecord, 512) > 0) continue;
      if (!(await ring.waitForData({ timeoutMs: CHILD_WAIT_MS }))) throw new Error(`starved at ${JSON.stringify(check.next)}`);
    }
    assert.equal(check.next, [per, per, per]);
    const reports = await Promise.all(kids.map((k) => report<{ checksum: number; stats: ProducerStats }>(k)));
    reports.forEach((r, id) => {
      assert.is(r.stats.messages, per);
      assert.is(r.checksum, checksums[id], `producer ${id}'s checksum`);
    });
    const stats = ring.stats();
    assert.is(stats.abandoned, 0);
    assert.is(stats.messages, per * producers);
    assert.ok(stats.parks > 0, 'the consumer slept on its eventfd');
    for (const kid of kids) assert.is((await kid.exited).code, 0);
  });
});

test.run();
