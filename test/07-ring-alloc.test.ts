/**
 * The zero-copy path allocates nothing per message: 10 M messages through claim/commit and
 * drain/release must not trigger young-generation collections (each would mean megabytes allocated;
 * 10 M messages allocating even 16 bytes each would cause dozens).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { createThreadRing, openConsumer, openProducer } from '../lib/ring/thread-ring.js';

const MESSAGES = 10_000_000;

function collections(kind: number, fn: () => void): Promise<number> {
  let n = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as { detail?: { kind?: number } }).detail?.kind === kind) n++;
  });
  obs.observe({ entryTypes: ['gc'] });
  fn();
  // Node queues a GC's entry from its GC callback with setImmediate, and the observer callback
  // runs one more immediate later: two turns of the check phase deliver everything.
  return new Promise((resolve) => setImmediate(() => setImmediate(() => { obs.disconnect(); resolve(n); })));
}

for (const kind of ['spsc', 'mpsc'] as const) {
  test(`${kind}: 10 M messages through claim/commit and drain cause no young-generation GC`, async () => {
    const d = createThreadRing(1 << 16, kind);
    const p = openProducer(d);
    const c = openConsumer(d);
    let sum = 0;
    const onRecord = (data: Uint8Array, off: number, len: number): void => { sum += data[off]! + len; };
    const loop = (count: number): void => {
      for (let i = 0; i < count; i++) {
        const off = p.claim(56, 1);
        if (off < 0) {
          c.drain(onRecord);
          i--;
          continue;
        }
        p.data[off] = i & 0xff;
        if ((i & 31) === 31) p.commit();
      }
      p.commit();
      c.drain(onRecord);
    };
    loop(200_000); // warm up and let the JIT settle before counting
    (globalThis as { gc?: () => void }).gc?.();
    const before = getHeapStatistics().used_heap_size;
    const minor = await collections(constants.NODE_PERFORMANCE_GC_MINOR, () => loop(MESSAGES));
    const after = getHeapStatistics().used_heap_size;
    console.log(`  ${kind}: ${minor} minor GCs over ${MESSAGES} messages; heap ${before} -> ${after} bytes`);
    assert.ok(sum > 0);
    assert.is(c.stats().messages, MESSAGES + 200_000);
    assert.ok(minor <= 1, `${minor} young-generation collections: the hot path allocates`);
  });
}

test('control: the copying receive allocates, and this test sees it', async () => {
  const d = createThreadRing(1 << 16);
  const p = openProducer(d);
  const c = openConsumer(d);
  const msg = new Uint8Array(56);
  let total = 0;
  const minor = await collections(constants.NODE_PERFORMANCE_GC_MINOR, () => {
    for (let i = 0; i < 2_000_000; i++) {
      p.send(msg);
      total += c.receive()!.length;
    }
  });
  assert.is(total, 2_000_000 * 56);
  assert.ok(minor > 1, `only ${minor} collections seen while allocating ~200 MB`);
});

test.run();
