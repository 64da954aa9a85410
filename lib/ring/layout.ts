/**
 * Byte layout of a ring, as tables. A ring has two blocks, each in memory its writer owns
 * (design rule 1): the producer block (header, tail, records) and the consumer block (head, wake
 * flag). The peer maps the other side's block read-only. Both may sit in one SharedArrayBuffer
 * (threads) or in two sealed memfds (processes); nothing here assumes they are adjacent.
 *
 * docs/layout.md draws these tables; test/01-layout.test.ts checks that fields do not overlap, are
 * naturally aligned, and that hot fields written by different sides sit on different cache lines.
 */

export const CACHE_LINE = 64;
export const LAYOUT_VERSION = 2;
/** 'RWRP' little-endian: a ringwire producer block. */
export const PRODUCER_MAGIC = 0x50525752;
/** 'RWRC' little-endian: a ringwire consumer block. */
export const CONSUMER_MAGIC = 0x43525752;

export const RingKind = { Spsc: 1, Mpsc: 2 } as const;
export type RingKind = (typeof RingKind)[keyof typeof RingKind];

export type Owner = 'producer' | 'consumer';

export interface Field {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  /** The side that writes the field; the other side only reads it. */
  readonly owner: Owner;
  /** How the field is written and read, and what it publishes. */
  readonly ordering: string;
}

/** Producer block: immutable header, the tail on its own line, the producer's wake flag, then records. */
export const PRODUCER_FIELDS: readonly Field[] = [
  { name: 'magic', offset: 0, size: 4, owner: 'producer', ordering: 'immutable after create; checked at attach' },
  { name: 'version', offset: 4, size: 2, owner: 'producer', ordering: 'immutable; must equal LAYOUT_VERSION' },
  { name: 'kind', offset: 6, size: 2, owner: 'producer', ordering: 'immutable; RingKind' },
  { name: 'capacity', offset: 8, size: 4, owner: 'producer', ordering: 'immutable; power of two, read once at attach' },
  { name: 'dataOffset', offset: 12, size: 4, owner: 'producer', ordering: 'immutable; must equal PRODUCER_DATA' },
  { name: 'tail', offset: 64, size: 4, owner: 'producer', ordering: 'SPSC: the published position, for attach and inspection (readers follow record headers, not this); MPSC: reservation, advanced by CAS' },
  { name: 'producerWaiting', offset: 128, size: 4, owner: 'producer', ordering: 'SPSC: 1 while the producer waits for space; MPSC: count of waiting producers; seq-cst, paired with the consumer releasing space' },
  { name: 'data', offset: 192, size: 0, owner: 'producer', ordering: 'records; published by a store-release of word 0 of the first record of a batch (SPSC) or of each record state word (MPSC)' },
];

/** Consumer block: immutable header, the head on its own line, the consumer's wake flag. */
export const CONSUMER_FIELDS: readonly Field[] = [
  { name: 'magic', offset: 0, size: 4, owner: 'consumer', ordering: 'immutable after create; checked at attach' },
  { name: 'version', offset: 4, size: 2, owner: 'consumer', ordering: 'immutable; must equal LAYOUT_VERSION' },
  { name: 'kind', offset: 6, size: 2, owner: 'consumer', ordering: 'immutable; RingKind' },
  { name: 'capacity', offset: 8, size: 4, owner: 'consumer', ordering: 'immutable; must equal the producer block capacity' },
  { name: 'head', offset: 64, size: 4, owner: 'consumer', ordering: 'store-release after the consumer is done with the records (MPSC: after zeroing them)' },
  { name: 'consumerWaiting', offset: 128, size: 4, owner: 'consumer', ordering: 'seq-cst; 1 while the consumer is parked (NEED_WAKEUP), paired with the producer publishing the tail' },
];

function offsets<T extends readonly Field[]>(fields: T): Record<string, number> {
  return Object.fromEntries(fields.map((f) => [f.name, f.offset]));
}

const P = offsets(PRODUCER_FIELDS);
const C = offsets(CONSUMER_FIELDS);

/** Int32 word indices of producer-block fields (byte offset / 4). */
export const PW = {
  magic: P.magic! >> 2,
  versionKind: P.version! >> 2,
  capacity: P.capacity! >> 2,
  dataOffset: P.dataOffset! >> 2,
  tail: P.tail! >> 2,
  producerWaiting: P.producerWaiting! >> 2,
} as const;

/** Int32 word indices of consumer-block fields. */
export const CW = {
  magic: C.magic! >> 2,
  versionKind: C.version! >> 2,
  capacity: C.capacity! >> 2,
  head: C.head! >> 2,
  consumerWaiting: C.consumerWaiting! >> 2,
} as const;

/** Byte offset of the record area inside the producer block. */
export const PRODUCER_DATA = P.data!;
/** Size of the consumer block. */
export const CONSUMER_BLOCK_SIZE = 3 * CACHE_LINE;

/**
 * Record header, 8 bytes, 8-byte aligned; a record occupies align8(8 + length) bytes and never
 * straddles the end of the data area (a padding record fills the gap instead).
 *   word 0: SPSC: payload length | SPSC_PRESENT, or 0 where no record is published yet.
 *           MPSC: the state word (MPSC_STATE_* below).
 *   word 1: type — user type in bits 0..30; bit 31 marks a padding record.
 *
 * SPSC publication: the consumer polls word 0 at its read position, so a message crosses cores in
 * the cache lines that carry it, without a separate tail line. A commit first zeroes word 0 of the
 * slot after its last record, then stores word 0 of its first record with release order: every
 * record of the batch (and the zero that ends it) is visible before the first one is. The producer
 * keeps SPSC_SLACK bytes free so the slot after the last record is always free space to zero.
 */
export const SPSC_PRESENT = 0x80000000;
export const SPSC_SLACK = 8;
export const RECORD_HEADER = 8;
export const RECORD_ALIGN = 8;
export const TYPE_PADDING = 0x80000000;
export const MAX_USER_TYPE = 0x7fffffff;
export const MIN_CAPACITY = 64;
export const MAX_CAPACITY = 1 << 30;
/** MPSC state words keep 25 bits for a size, so MPSC rings are at most 16 MiB. */
export const MAX_MPSC_CAPACITY = 1 << 24;

/**
 * MPSC record state word, as u32: 0 while unwritten (the consumer zeroes released space, except
 * SKIPPED words, below); else
 *   bits 0..24  value: the record's bytes while reserved, payload length + 1 once committed
 *   bit 25      committed
 *   bits 26..31 lap tag: (position >>> log2(capacity)) & 63 of the record's position
 * The tag tells this lap's records from words a stalled writer of an earlier lap stores late: those
 * never count as records. Marks and commits are compare-and-swaps, and so is the consumer's skip of
 * an abandoned reservation, which leaves SKIPPED (committed with value 0, this lap's tag): exactly
 * one of a late writer and the skip wins. A producer that finds its own lap's SKIPPED gives the
 * reservation up and reserves again; one whose commit finds it gets ERR_TIMEOUT (revoked). Slots
 * skipped without a mark keep SKIPPED after release, so a late mark cannot land on a zero.
 */
export const MPSC_STATE_VALUE_MASK = (1 << 25) - 1;
export const MPSC_STATE_COMMITTED = 1 << 25;
export const MPSC_STATE_TAG_SHIFT = 26;

export function maxCapacity(kind: RingKind): number {
  return kind === RingKind.Mpsc ? MAX_MPSC_CAPACITY : MAX_CAPACITY;
}

export function recordBytes(length: number): number {
  return (RECORD_HEADER + length + (RECORD_ALIGN - 1)) & ~(RECORD_ALIGN - 1);
}

/** Bytes of the producer block for a ring of `capacity` data bytes. */
export function producerBlockSize(capacity: number): number {
  return PRODUCER_DATA + capacity;
}

/**
 * The largest payload a ring of `capacity` bytes accepts: all of it but one record header (SPSC:
 * and the free slot that ends every published batch).
 */
export function maxMessageSize(capacity: number, kind: RingKind = RingKind.Spsc): number {
  return capacity - RECORD_HEADER - (kind === RingKind.Spsc ? SPSC_SLACK : 0);
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
