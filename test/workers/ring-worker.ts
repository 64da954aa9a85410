/**
 * Worker side of the ring stress tests. Messages are generated from (producer, seq) so the
 * consumer can verify every byte without shared state: see expectedMessage().
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openConsumer, openProducer, type ThreadRingDescriptor } from '../../lib/ring/thread-ring.js';
import type { MpscProducer } from '../../lib/ring/mpsc.js';

export interface WorkerJob {
  role: 'producer' | 'consumer' | 'stuck-producer';
  desc: ThreadRingDescriptor;
  producerId: number;
  count: number;
  producers?: number;
  abandonTimeoutMs?: number;
  maxLen?: number;
}

export function messageLength(producer: number, seq: number, maxLen = 96): number {
  return 8 + ((seq * 7 + producer * 13) % (maxLen - 8));
}

/** Writes message (producer, seq) into `dst` at `off`: id, seq, then a pattern. */
export function writeMessage(dst: Uint8Array, off: number, producer: number, seq: number, len: number): void {
  const dv = new DataView(dst.buffer, dst.byteOffset + off, len);
  dv.setUint32(0, producer, true);
  dv.setUint32(4, seq, true);
  for (let i = 8; i < len; i++) dst[off + i] = (seq * 31 + i * 7 + producer) & 0xff;
}

/** Verifies a received message; returns [producer, seq] or throws describing the damage. */
export function checkMessage(src: Uint8Array, off: number, len: number, maxLen = 96): [number, number] {
  if (len < 8) throw new Error(`message of ${len} bytes is too short`);
  const dv = new DataView(src.buffer, src.byteOffset + off, len);
  const producer = dv.getUint32(0, true);
  const seq = dv.getUint32(4, true);
  if (len !== messageLength(producer, seq, maxLen)) throw new Error(`producer ${producer} seq ${seq}: length ${len}`);
  for (let i = 8; i < len; i++) {
    if (src[off + i] !== ((seq * 31 + i * 7 + producer) & 0xff)) throw new Error(`producer ${producer} seq ${seq}: byte ${i} damaged`);
  }
  return [producer, seq];
}

function produce(job: WorkerJob): void {
  const p = openProducer(job.desc);
  const maxLen = job.maxLen ?? 96;
  for (let seq = 0; seq < job.count; seq++) {
    const len = messageLength(job.producerId, seq, maxLen);
    let off = p.claim(len, job.producerId);
    while (off < 0) {
      p.waitForSpaceSync(len, 10_000);
      off = p.claim(len, job.producerId);
    }
    writeMessage(p.data, off, job.producerId, seq, len);
    p.commit();
  }
  parentPort!.postMessage({ done: true, stats: p.stats() });
}

/** Claims a record, reports it, and never commits: the parent terminates it mid-write. */
function stuck(job: WorkerJob): void {
  const p = openProducer(job.desc) as MpscProducer;
  const off = p.claim(64, job.producerId);
  parentPort!.postMessage({ claimed: off });
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
}

/**
 * Verifies records from `producers` producers as they arrive: every byte, the producer id in the
 * record type, and each producer's sequence; keeps a checksum of (seq + length) over them.
 */
export class SequenceChecker {
  readonly next: number[];
  total = 0;
  checksum = 0;
  readonly #maxLen: number;

  constructor(producers: number, maxLen = 96) {
    this.next = new Array<number>(producers).fill(0);
    this.#maxLen = maxLen;
  }

  readonly onRecord = (data: Uint8Array, off: number, len: number, type: number): void => {
    const [producer, seq] = checkMessage(data, off, len, this.#maxLen);
    if (producer !== type || producer >= this.next.length) throw new Error(`record type ${type} from producer ${producer}`);
    if (seq !== this.next[producer]) throw new Error(`producer ${producer}: expected seq ${this.next[producer]}, got ${seq}`);
    this.next[producer] = seq + 1;
    this.checksum = (this.checksum + seq + len) >>> 0;
    this.total++;
  };
}

function consume(job: WorkerJob): void {
  const c = openConsumer(job.desc, { abandonTimeoutMs: job.abandonTimeoutMs ?? 1000 });
  const check = new SequenceChecker(job.producers ?? 1, job.maxLen ?? 96);
  while (check.total < job.count) {
    if (c.drain(check.onRecord, 256) === 0 && !c.waitForDataSync(10_000)) {
      throw new Error(`consumer starved at ${check.total}/${job.count}: ${JSON.stringify(check.next)}`);
    }
  }
  parentPort!.postMessage({ done: true, total: check.total, next: check.next, checksum: check.checksum, stats: c.stats() });
}

if (parentPort && workerData) {
  const job = workerData as WorkerJob;
  if (job.role === 'producer') produce(job);
  else if (job.role === 'stuck-producer') stuck(job);
  else consume(job);
}
