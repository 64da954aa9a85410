/**
 * Rings between threads of one process: both blocks and both doorbells in SharedArrayBuffers,
 * described by a plain object that survives postMessage. Create on one thread, post the
 * descriptor, open the producer on one side and the consumer on the other.
 */
import { AtomicsDoorbell } from './doorbell.js';
import { RingKind } from './layout.js';
import { allocateRing } from './ring-memory.js';
import { MpscConsumer, MpscProducer, type MpscConsumerOptions } from './mpsc.js';
import { SpscConsumer, SpscProducer } from './spsc.js';
import type { RingOptions } from './ring-types.js';
import { ringwireError } from '../errors.js';

export type RingKindName = 'spsc' | 'mpsc';

export interface ThreadRingDescriptor {
  readonly kind: RingKindName;
  readonly producer: SharedArrayBuffer;
  readonly consumer: SharedArrayBuffer;
  /** Two doorbell words on separate cache lines: data (word 0) and space (word 16). */
  readonly bells: SharedArrayBuffer;
}

const DATA_BELL_WORD = 0;
const SPACE_BELL_WORD = 16;

export function createThreadRing(capacity: number, kind: RingKindName = 'spsc'): ThreadRingDescriptor {
  if (kind !== 'spsc' && kind !== 'mpsc') throw ringwireError('ERR_INVALID_ARG', `ring kind must be 'spsc' or 'mpsc', got ${String(kind)}`);
  const mem = allocateRing(kind === 'spsc' ? RingKind.Spsc : RingKind.Mpsc, capacity);
  return { kind, producer: mem.producer.buffer, consumer: mem.consumer.buffer, bells: new SharedArrayBuffer(128) };
}

function parts(desc: ThreadRingDescriptor, opts: RingOptions): [{ producer: { buffer: SharedArrayBuffer }; consumer: { buffer: SharedArrayBuffer } }, RingOptions] {
  return [
    { producer: { buffer: desc.producer }, consumer: { buffer: desc.consumer } },
    {
      dataBell: new AtomicsDoorbell(desc.bells, DATA_BELL_WORD),
      spaceBell: new AtomicsDoorbell(desc.bells, SPACE_BELL_WORD),
      ...opts,
    },
  ];
}

export function openProducer(desc: ThreadRingDescriptor, opts: RingOptions = {}): SpscProducer | MpscProducer {
  const [mem, o] = parts(desc, opts);
  return desc.kind === 'mpsc' ? new MpscProducer(mem, o) : new SpscProducer(mem, o);
}

export function openConsumer(desc: ThreadRingDescriptor, opts: MpscConsumerOptions = {}): SpscConsumer | MpscConsumer {
  const [mem, o] = parts(desc, opts);
  return desc.kind === 'mpsc' ? new MpscConsumer(mem, o) : new SpscConsumer(mem, o);
}
