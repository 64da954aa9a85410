/**
 * Creating ring blocks is separate from attaching to them: the owner of a block creates and
 * initialises it; the peer attaches and validates everything it reads (design rule 2), once.
 */
import { ringwireError } from '../errors.js';
import {
  CACHE_LINE, CONSUMER_BLOCK_SIZE, CONSUMER_MAGIC, CW, LAYOUT_VERSION, MIN_CAPACITY, maxCapacity,
  PRODUCER_DATA, PRODUCER_MAGIC, PW, RingKind, isPowerOfTwo, producerBlockSize,
} from './layout.js';

/** Where a block lives: a SharedArrayBuffer (plain, or a mapped memfd) and a byte offset in it. */
export interface Block {
  readonly buffer: SharedArrayBuffer;
  readonly offset?: number;
}

/** The two blocks of one ring. */
export interface RingMemory {
  readonly producer: Block;
  readonly consumer: Block;
}

export interface AttachedProducerBlock {
  readonly ctl: Int32Array;
  readonly data: Uint8Array;
  readonly words: Int32Array;
  readonly capacity: number;
  readonly kind: RingKind;
}

export interface AttachedConsumerBlock {
  readonly ctl: Int32Array;
}

function validCapacity(kind: RingKind, capacity: number): boolean {
  return isPowerOfTwo(capacity) && capacity >= MIN_CAPACITY && capacity <= maxCapacity(kind);
}

function checkCapacity(kind: RingKind, capacity: number): void {
  if (!validCapacity(kind, capacity)) {
    throw ringwireError('ERR_OUT_OF_RANGE', `ring capacity must be a power of two from ${MIN_CAPACITY} to ${maxCapacity(kind)} bytes, got ${capacity}`);
  }
}

function checkPlacement(block: Block, size: number, what: string): number {
  const offset = block.offset ?? 0;
  if (!(block.buffer instanceof SharedArrayBuffer)) {
    throw ringwireError('ERR_INVALID_ARG', `${what}: buffer must be a SharedArrayBuffer`);
  }
  if (!Number.isInteger(offset) || offset < 0 || offset % CACHE_LINE !== 0) {
    throw ringwireError('ERR_OUT_OF_RANGE', `${what}: offset must be a non-negative multiple of ${CACHE_LINE}, got ${offset}`);
  }
  if (offset + size > block.buffer.byteLength) {
    throw ringwireError('ERR_OUT_OF_RANGE', `${what}: needs ${size} bytes at offset ${offset}, buffer has ${block.buffer.byteLength}`);
  }
  return offset;
}

/** Writes a fresh producer block header into memory the caller owns. */
export function initProducerBlock(block: Block, kind: RingKind, capacity: number): void {
  checkCapacity(kind, capacity);
  const offset = checkPlacement(block, producerBlockSize(capacity), 'producer block');
  new Uint8Array(block.buffer, offset, producerBlockSize(capacity)).fill(0);
  const ctl = new Int32Array(block.buffer, offset, PRODUCER_DATA >> 2);
  ctl[PW.versionKind] = LAYOUT_VERSION | (kind << 16);
  ctl[PW.capacity] = capacity;
  ctl[PW.dataOffset] = PRODUCER_DATA;
  // Magic last: a peer that attaches early sees no magic rather than a half-written header.
  Atomics.store(ctl, PW.magic, PRODUCER_MAGIC);
}

/** Writes a fresh consumer block header into memory the caller owns. */
export function initConsumerBlock(block: Block, kind: RingKind, capacity: number): void {
  checkCapacity(kind, capacity);
  const offset = checkPlacement(block, CONSUMER_BLOCK_SIZE, 'consumer block');
  new Uint8Array(block.buffer, offset, CONSUMER_BLOCK_SIZE).fill(0);
  const ctl = new Int32Array(block.buffer, offset, CONSUMER_BLOCK_SIZE >> 2);
  ctl[CW.versionKind] = LAYOUT_VERSION | (kind << 16);
  ctl[CW.capacity] = capacity;
  Atomics.store(ctl, CW.magic, CONSUMER_MAGIC);
}

function corrupt(what: string): never {
  throw ringwireError('ERR_RING_CORRUPT', what);
}

/** The magic, layout version and ring kind that open both blocks' headers. */
function checkHeader(ctl: Int32Array, magicWord: number, versionKindWord: number, magic: number, kind: RingKind, what: string): void {
  if (Atomics.load(ctl, magicWord) !== magic) corrupt(`${what}: bad magic`);
  const vk = ctl[versionKindWord]!;
  if ((vk & 0xffff) !== LAYOUT_VERSION) corrupt(`${what}: layout version ${vk & 0xffff}, expected ${LAYOUT_VERSION}`);
  if (vk >>> 16 !== kind) corrupt(`${what}: ring kind ${vk >>> 16}, expected ${kind}`);
}

/** Validates a producer block (possibly a peer's) and returns views; capacity is read once here. */
export function attachProducerBlock(block: Block, kind: RingKind): AttachedProducerBlock {
  const offset = checkPlacement(block, PRODUCER_DATA, 'producer block');
  const ctl = new Int32Array(block.buffer, offset, PRODUCER_DATA >> 2);
  checkHeader(ctl, PW.magic, PW.versionKind, PRODUCER_MAGIC, kind, 'producer block');
  const capacity = ctl[PW.capacity]!;
  if (!validCapacity(kind, capacity)) corrupt(`producer block: bad capacity ${capacity}`);
  if (ctl[PW.dataOffset] !== PRODUCER_DATA) corrupt(`producer block: bad data offset ${ctl[PW.dataOffset]}`);
  if (offset + producerBlockSize(capacity) > block.buffer.byteLength) {
    corrupt(`producer block: capacity ${capacity} runs past the end of its ${block.buffer.byteLength}-byte buffer`);
  }
  return {
    ctl,
    capacity,
    kind,
    data: new Uint8Array(block.buffer, offset + PRODUCER_DATA, capacity),
    words: new Int32Array(block.buffer, offset + PRODUCER_DATA, capacity >> 2),
  };
}

/** Validates a consumer block against the producer's capacity and returns its control view. */
export function attachConsumerBlock(block: Block, kind: RingKind, capacity: number): AttachedConsumerBlock {
  const offset = checkPlacement(block, CONSUMER_BLOCK_SIZE, 'consumer block');
  const ctl = new Int32Array(block.buffer, offset, CONSUMER_BLOCK_SIZE >> 2);
  checkHeader(ctl, CW.magic, CW.versionKind, CONSUMER_MAGIC, kind, 'consumer block');
  if (ctl[CW.capacity] !== capacity) corrupt(`consumer block: capacity ${ctl[CW.capacity]} does not match the producer's ${capacity}`);
  return { ctl };
}

/** Allocates both blocks of a ring in fresh SharedArrayBuffers (the thread case). */
export function allocateRing(kind: RingKind, capacity: number): RingMemory {
  checkCapacity(kind, capacity);
  const producer = { buffer: new SharedArrayBuffer(producerBlockSize(capacity)), offset: 0 };
  const consumer = { buffer: new SharedArrayBuffer(CONSUMER_BLOCK_SIZE), offset: 0 };
  initProducerBlock(producer, kind, capacity);
  initConsumerBlock(consumer, kind, capacity);
  return { producer, consumer };
}

/** Attaches both blocks of a ring of `kind`: the producer block first, since its capacity is what the consumer block must match. */
export function attachRing(memory: RingMemory, kind: RingKind): { p: AttachedProducerBlock; c: AttachedConsumerBlock } {
  const p = attachProducerBlock(memory.producer, kind);
  return { p, c: attachConsumerBlock(memory.consumer, kind, p.capacity) };
}
