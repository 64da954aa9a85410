/**
 * Producer thread for test/08-mpsc-skip-threads.test.ts: sends `count` messages through an MPSC
 * ring whose consumer skips any record it finds uncommitted twice (abandonTimeoutMs 0), and reports
 * the sequence numbers whose commit was refused (ERR_TIMEOUT). Messages carry (producer, seq) and a
 * pattern, so the consumer checks every byte: see skipMessageLength() and writeSkipMessage().
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isRingwireError } from '../../lib/errors.js';
import type { MpscProducer } from '../../lib/ring/mpsc.js';
import { openProducer, type ThreadRingDescriptor } from '../../lib/ring/thread-ring.js';

export interface SkipJob {
  desc: ThreadRingDescriptor;
  producerId: number;
  count: number;
  seed: number;
}

export interface SkipReport {
  done: true;
  revoked: number[];
  committed: number;
}

export function skipMessageLength(producer: number, seq: number): number {
  return 8 + ((seq * 5 + producer * 3) % 17);
}

export function writeSkipMessage(dst: Uint8Array, off: number, producer: number, seq: number, len: number): void {
  const dv = new DataView(dst.buffer, dst.byteOffset + off, len);
  dv.setUint32(0, producer, true);
  dv.setUint32(4, seq, true);
  for (let i = 8; i < len; i++) dst[off + i] = (seq + i * 11 + producer) & 0xff;
}

function run(job: SkipJob): void {
  const p = openProducer(job.desc) as MpscProducer;
  const revoked: number[] = [];
  let x = job.seed | 1;
  for (let seq = 0; seq < job.count; seq++) {
    const len = skipMessageLength(job.producerId, seq);
    const off = p.claim(len, job.producerId);
    if (off < 0) throw new Error(`producer ${job.producerId}: the ring is sized never to fill, yet it did at seq ${seq}`);
    writeSkipMessage(p.data, off, job.producerId, seq, len);
    // Now and then dawdle before committing, so the consumer's skip and our commit often race.
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    if ((x & 7) === 0) for (let i = (x >>> 8) & 1023; i > 0; i--) x = (Math.imul(x, 1103515245) + 12345) | 0;
    try {
      p.commit();
    } catch (err) {
      if (!isRingwireError(err, 'ERR_TIMEOUT')) throw err;
      revoked.push(seq);
    }
  }
  parentPort!.postMessage({ done: true, revoked, committed: p.stats().messages } satisfies SkipReport);
}

if (parentPort && workerData) run(workerData as SkipJob);
