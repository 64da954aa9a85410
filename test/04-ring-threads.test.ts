import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { createThreadRing, openConsumer, type ThreadRingDescriptor } from '../lib/ring/thread-ring.js';
import { type Children, scratch } from './helpers/index.js';
import { checkMessage, type WorkerJob } from './workers/ring-worker.js';

const workerFile = new URL('./workers/ring-worker.js', import.meta.url);

/**
 * Live producers run beside the dead one: a timeout shorter than a scheduler stall on a loaded
 * 2-core machine would revoke a live producer's record (ERR_TIMEOUT at its commit).
 */
const LIVE_SAFE_ABANDON_MS = 1500;

interface Done { done: true; total?: number; next?: number[]; stats: Record<string, number> }

function start(children: Children, job: WorkerJob): { worker: Worker; result: Promise<Done> } {
  const worker = new Worker(workerFile, { workerData: job });
  children.onCleanup(() => worker.terminate());
  const result = new Promise<Done>((resolve, reject) => {
    worker.on('message', (m) => { if (m.done) resolve(m as Done); });
    worker.on('error', reject);
    worker.on('exit', (code) => reject(new Error(`${job.role} ${job.producerId} exited with ${code} before finishing`)));
  });
  return { worker, result };
}

test('SPSC: 2 M messages between two threads, every byte and sequence checked', async () => {
  await scratch('spsc stress', 120_000, async ({ children }) => {
    const desc = createThreadRing(1 << 16, 'spsc');
    const count = 2_000_000;
    const consumer = start(children, { role: 'consumer', desc, producerId: 0, count, producers: 1 });
    const producer = start(children, { role: 'producer', desc, producerId: 0, count });
    const [c, p] = await Promise.all([consumer.result, producer.result]);
    assert.is(c.total, count);
    assert.equal(c.next, [count]);
    assert.is(p.stats.messages, count);
    assert.is(c.stats.messages, count);
  });
});

test('MPSC: 3 producers, 1.2 M messages, per-producer order and bytes checked', async () => {
  await scratch('mpsc stress', 150_000, async ({ children }) => {
    const desc = createThreadRing(1 << 16, 'mpsc');
    const per = 400_000;
    const producers = 3;
    const consumer = start(children, { role: 'consumer', desc, producerId: 0, count: per * producers, producers });
    const ps = Array.from({ length: producers }, (_, id) => start(children, { role: 'producer', desc, producerId: id, count: per }));
    const c = await consumer.result;
    const stats = await Promise.all(ps.map((p) => p.result));
    assert.equal(c.next, [per, per, per]);
    assert.is(c.stats.abandoned, 0);
    for (const s of stats) assert.is(s.stats.messages, per);
  });
});

test('MPSC: a producer terminated mid-write is skipped after the timeout; the others lose nothing', async () => {
  await scratch('mpsc stuck producer', 60_000, async ({ children }) => {
    const desc = createThreadRing(1 << 12, 'mpsc');
    const stuckWorker = new Worker(workerFile, { workerData: { role: 'stuck-producer', desc, producerId: 2, count: 1 } satisfies WorkerJob });
    children.onCleanup(() => stuckWorker.terminate());
    const claimed = await new Promise<number>((resolve) => stuckWorker.once('message', (m) => resolve(m.claimed)));
    assert.ok(claimed >= 0, 'stuck producer got its reservation');
    await stuckWorker.terminate();
    const per = 50_000;
    const consumer = start(children, { role: 'consumer', desc, producerId: 0, count: per * 2, producers: 3, abandonTimeoutMs: LIVE_SAFE_ABANDON_MS });
    const ps = [0, 1].map((id) => start(children, { role: 'producer', desc, producerId: id, count: per }));
    const c = await consumer.result;
    await Promise.all(ps.map((p) => p.result));
    assert.equal(c.next, [per, per, 0]);
    assert.is(c.stats.abandoned, 1);
  });
});

test('MPSC: producers terminated at random points never wedge the consumer or break order', async () => {
  await scratch('mpsc random kill', 90_000, async ({ children }) => {
    const desc: ThreadRingDescriptor = createThreadRing(1 << 12, 'mpsc');
    const consumer = openConsumer(desc, { abandonTimeoutMs: LIVE_SAFE_ABANDON_MS });
    const survivors = 40_000;
    const doomed = [2, 3].map((id) => start(children, { role: 'producer', desc, producerId: id, count: 10_000_000 }));
    // Their results reject when they are killed; that is the point of this test.
    for (const d of doomed) d.result.catch(() => {});
    const ps = [0, 1].map((id) => start(children, { role: 'producer', desc, producerId: id, count: survivors }));
    const next = [0, 0, 0, 0];
    let killed = false;
    const onRecord = (data: Uint8Array, off: number, len: number): void => {
      const [producer, seq] = checkMessage(data, off, len);
      assert.is(seq, next[producer], `producer ${producer} out of order`);
      next[producer] = seq + 1;
    };
    while (next[0]! < survivors || next[1]! < survivors) {
      if (!killed && next[2]! > 1000 && next[3]! > 1000) {
        killed = true;
        // Not awaited: the consumer must keep draining while the workers die, or they block on space.
        for (const d of doomed) void d.worker.terminate();
      }
      if (consumer.drain(onRecord, 512) === 0) {
        assert.ok(await consumer.waitForData({ timeoutMs: 10_000 }), `starved at ${JSON.stringify(next)}`);
      }
    }
    assert.ok(killed, 'the doomed producers were terminated mid-stream');
    await Promise.all(ps.map((p) => p.result));
    assert.is(next[0], survivors);
    assert.is(next[1], survivors);
    assert.ok(consumer.stats().abandoned <= 2, `at most one record per killed producer is abandoned, got ${consumer.stats().abandoned}`);
  });
});

test.run();
