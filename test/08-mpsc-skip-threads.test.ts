// The consumer's skip of an uncommitted record races live producers' marks and commits on real
// threads: exactly one side wins each state word, so every message whose commit succeeded arrives
// once and in order, and no revoked message arrives. The consumer here skips anything it finds
// uncommitted twice (abandonTimeoutMs 0), far below the live-producer contract, so the races run
// constantly. The ring is larger than everything reserved, so no space is ever reused: a revoked
// producer's payload bytes, written late by contract, cannot land in another record.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import type { MpscConsumer } from '../lib/ring/mpsc.js';
import { recordBytes } from '../lib/ring/layout.js';
import { createThreadRing, openConsumer } from '../lib/ring/thread-ring.js';
import { type Children, scratch, testSeed } from './helpers/index.js';
import { skipMessageLength, type SkipJob, type SkipReport } from './workers/mpsc-skip-producer.js';

const workerFile = new URL('./workers/mpsc-skip-producer.js', import.meta.url);
const PRODUCERS = 2;
const COUNT = 60_000;
const CAPACITY = 1 << 22;

function start(children: Children, job: SkipJob): Promise<SkipReport> {
  const worker = new Worker(workerFile, { workerData: job });
  children.onCleanup(() => worker.terminate());
  return new Promise<SkipReport>((resolve, reject) => {
    worker.on('message', (m: SkipReport) => resolve(m));
    worker.on('error', reject);
    worker.on('exit', (code) => reject(new Error(`producer ${job.producerId} exited with ${code} before reporting`)));
  });
}

test('MPSC: skips race live marks and commits; committed messages arrive once, in order, revoked ones never', async () => {
  let reserved = 0;
  for (let p = 0; p < PRODUCERS; p++) for (let s = 0; s < COUNT; s++) reserved += recordBytes(skipMessageLength(p, s));
  assert.ok(reserved * 1.1 < CAPACITY, 'the ring never wraps, with room for reservations given up after a skip');
  await scratch('mpsc skip races', 60_000, async ({ children }) => {
    const desc = createThreadRing(CAPACITY, 'mpsc');
    const c = openConsumer(desc, { abandonTimeoutMs: 0, spin: 64 }) as MpscConsumer;
    const seen = Array.from({ length: PRODUCERS }, () => new Uint8Array(COUNT));
    const last = new Array<number>(PRODUCERS).fill(-1);
    const onRecord = (data: Uint8Array, off: number, len: number, type: number): void => {
      const dv = new DataView(data.buffer, data.byteOffset + off, len);
      const producer = dv.getUint32(0, true);
      const seq = dv.getUint32(4, true);
      if (producer !== type || producer >= PRODUCERS || seq >= COUNT) throw new Error(`record from producer ${producer} (type ${type}) seq ${seq}`);
      if (len !== skipMessageLength(producer, seq)) throw new Error(`producer ${producer} seq ${seq}: length ${len}`);
      for (let i = 8; i < len; i++) if (data[off + i] !== ((seq + i * 11 + producer) & 0xff)) throw new Error(`producer ${producer} seq ${seq}: byte ${i} damaged`);
      if (seq <= last[producer]!) throw new Error(`producer ${producer}: seq ${seq} after ${last[producer]}`);
      last[producer] = seq;
      seen[producer]![seq] = 1;
    };
    let finished = false;
    const reports = Promise.all(Array.from({ length: PRODUCERS }, (_, producerId) => start(children, { desc, producerId, count: COUNT, seed: testSeed() + producerId })));
    void reports.then(() => { finished = true; }, () => {});
    while (!finished) {
      if (c.drain(onRecord, 256) === 0) await c.waitForData({ timeoutMs: 20 });
    }
    const done = await reports;
    // Every commit has returned: what was committed is in the ring, behind nothing uncommitted.
    while (c.drain(onRecord) > 0 || (await c.waitForData({ timeoutMs: 50 })));
    let revokedTotal = 0;
    for (const [p, report] of done.entries()) {
      const revoked = new Set(report.revoked);
      revokedTotal += revoked.size;
      for (let s = 0; s < COUNT; s++) {
        if (revoked.has(s)) assert.is(seen[p]![s], 0, `producer ${p} seq ${s} was revoked, yet it arrived`);
        else assert.is(seen[p]![s], 1, `producer ${p} seq ${s} was committed, yet it never arrived`);
      }
      assert.is(report.committed, COUNT - revoked.size);
    }
    assert.ok(c.stats().abandoned > 0 && revokedTotal > 0, `skips happened (${c.stats().abandoned}), so the races ran`);
  });
});

test.run();
