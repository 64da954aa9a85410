/**
 * Layout of the ivshmem shared region (every guest's BAR2, the host's memfd): a header, a slot
 * table, then one SPSC ring per ordered pair of peers. docs/ivshmem.md draws it.
 *
 *   0      header (HEADER_FIELDS), written once by the host; magic last
 *   64     slot table: one u32 per peer id, (generation << 1) | live, written only by the host
 *   align  channels: for each (src, dst) with src != dst, a producer block (PRODUCER_DATA +
 *          ringCapacity) then a consumer block (CONSUMER_BLOCK_SIZE); src produces, dst consumes
 *
 * Ownership holds only by convention: ivshmem maps the whole region writable into every peer, so
 * design rule 1 (each side writes only memory it owns) cannot be enforced. What is enforced is
 * rule 2: every reader validates what it reads, once at attach (geometry, ring headers) and on
 * every index, so garbage breaks only the channel it lands in. The host never reads the header or
 * the slot table back; it keeps its own copy of the geometry.
 */
import { ringwireError } from '../errors.js';
import {
  CACHE_LINE, CONSUMER_BLOCK_SIZE, MAX_CAPACITY, MIN_CAPACITY, RingKind, isPowerOfTwo, producerBlockSize, type Field,
} from '../ring/layout.js';
import { initConsumerBlock, initProducerBlock, type RingMemory } from '../ring/ring-memory.js';

/** 'RWIV' little-endian. */
export const IVSHMEM_LAYOUT_MAGIC = 0x56495752;
export const IVSHMEM_LAYOUT_VERSION = 1;
export const SLOT_TABLE_OFFSET = 64;
export const SLOT_BYTES = 4;
export const MAX_SLOTS = 256;

export const HEADER_FIELDS: readonly Field[] = [
  { name: 'magic', offset: 0, size: 4, owner: 'producer', ordering: 'host; stored last (seq-cst) after every other field and the slot table' },
  { name: 'version', offset: 4, size: 4, owner: 'producer', ordering: 'host; immutable' },
  { name: 'regionSize', offset: 8, size: 4, owner: 'producer', ordering: 'host; immutable; the BAR2 size' },
  { name: 'slots', offset: 12, size: 4, owner: 'producer', ordering: 'host; immutable; peer ids 0..slots-1' },
  { name: 'ringCapacity', offset: 16, size: 4, owner: 'producer', ordering: 'host; immutable; power of two' },
  { name: 'channelsOffset', offset: 20, size: 4, owner: 'producer', ordering: 'host; immutable; 64-byte aligned' },
  { name: 'channelStride', offset: 24, size: 4, owner: 'producer', ordering: 'host; immutable' },
  { name: 'hostId', offset: 28, size: 4, owner: 'producer', ordering: 'host; immutable' },
  { name: 'vectors', offset: 32, size: 4, owner: 'producer', ordering: 'host; immutable; doorbell vectors per peer' },
];
const H = Object.fromEntries(HEADER_FIELDS.map((f) => [f.name, f.offset >> 2])) as Record<string, number>;

export interface IvshmemGeometry {
  readonly regionSize: number;
  readonly slots: number;
  readonly ringCapacity: number;
  readonly channelsOffset: number;
  readonly channelStride: number;
  readonly hostId: number;
  readonly vectors: number;
}

const align = (n: number, a: number): number => Math.ceil(n / a) * a;
const strideFor = (capacity: number): number => producerBlockSize(capacity) + CONSUMER_BLOCK_SIZE;
const channelsOffsetFor = (slots: number): number => align(SLOT_TABLE_OFFSET + slots * SLOT_BYTES, CACHE_LINE);

/**
 * The geometry for a region of `regionSize` bytes and `slots` peer ids: the largest ring capacity
 * that fits every ordered pair, unless `ringCapacity` asks for less.
 */
export function planLayout(regionSize: number, slots: number, vectors: number, ringCapacity?: number): IvshmemGeometry {
  if (!Number.isInteger(slots) || slots < 2 || slots > MAX_SLOTS) throw ringwireError('ERR_OUT_OF_RANGE', `slots must be 2..${MAX_SLOTS}, got ${slots}`);
  const channelsOffset = channelsOffsetFor(slots);
  const channels = slots * (slots - 1);
  let capacity = ringCapacity ?? MAX_CAPACITY;
  if (ringCapacity === undefined) while (capacity >= MIN_CAPACITY && channelsOffset + channels * strideFor(capacity) > regionSize) capacity /= 2;
  if (!isPowerOfTwo(capacity) || capacity < MIN_CAPACITY || channelsOffset + channels * strideFor(capacity) > regionSize) {
    throw ringwireError('ERR_OUT_OF_RANGE', `a ${regionSize}-byte region cannot hold ${channels} rings of ${ringCapacity ?? MIN_CAPACITY} bytes (${slots} slots)`);
  }
  return { regionSize, slots, ringCapacity: capacity, channelsOffset, channelStride: strideFor(capacity), hostId: 0, vectors };
}

/** Writes the header and an all-free slot table (the host, once, before any peer is told to look). */
export function writeLayout(buffer: SharedArrayBuffer, g: IvshmemGeometry): void {
  if (buffer.byteLength < g.regionSize) throw ringwireError('ERR_OUT_OF_RANGE', `region is ${buffer.byteLength} bytes; the layout needs ${g.regionSize}`);
  new Uint8Array(buffer, 0, g.channelsOffset).fill(0);
  const w = new Int32Array(buffer, 0, g.channelsOffset >> 2);
  w[H.version!] = IVSHMEM_LAYOUT_VERSION;
  w[H.regionSize!] = g.regionSize;
  w[H.slots!] = g.slots;
  w[H.ringCapacity!] = g.ringCapacity;
  w[H.channelsOffset!] = g.channelsOffset;
  w[H.channelStride!] = g.channelStride;
  w[H.hostId!] = g.hostId;
  w[H.vectors!] = g.vectors;
  // Magic last: a guest that looks early sees no magic rather than half a header.
  Atomics.store(w, H.magic!, IVSHMEM_LAYOUT_MAGIC);
}

/** Reads and validates the header once (design rule 2); the result is never re-read. */
export function readLayout(buffer: SharedArrayBuffer): IvshmemGeometry {
  const bad = (what: string): never => {
    throw ringwireError('ERR_RING_CORRUPT', `ivshmem region: ${what}`);
  };
  if (buffer.byteLength < SLOT_TABLE_OFFSET) bad(`only ${buffer.byteLength} bytes`);
  const w = new Int32Array(buffer, 0, SLOT_TABLE_OFFSET >> 2);
  if (Atomics.load(w, H.magic!) !== IVSHMEM_LAYOUT_MAGIC) bad('no ringwire layout (bad magic); has the host started?');
  if (w[H.version!] !== IVSHMEM_LAYOUT_VERSION) bad(`layout version ${w[H.version!]}, expected ${IVSHMEM_LAYOUT_VERSION}`);
  const g: IvshmemGeometry = {
    regionSize: w[H.regionSize!]!, slots: w[H.slots!]!, ringCapacity: w[H.ringCapacity!]!, channelsOffset: w[H.channelsOffset!]!,
    channelStride: w[H.channelStride!]!, hostId: w[H.hostId!]!, vectors: w[H.vectors!]!,
  };
  if (g.regionSize !== buffer.byteLength) bad(`header says ${g.regionSize} bytes, the mapping has ${buffer.byteLength}`);
  if (g.slots < 2 || g.slots > MAX_SLOTS) bad(`slots ${g.slots}`);
  if (!isPowerOfTwo(g.ringCapacity) || g.ringCapacity < MIN_CAPACITY || g.ringCapacity > MAX_CAPACITY) bad(`ring capacity ${g.ringCapacity}`);
  if (g.channelsOffset !== channelsOffsetFor(g.slots) || g.channelStride !== strideFor(g.ringCapacity)) bad('channel table offset or stride does not match the geometry');
  if (g.channelsOffset + g.slots * (g.slots - 1) * g.channelStride > g.regionSize) bad('channels run past the end of the region');
  if (g.hostId < 0 || g.hostId >= g.slots) bad(`host id ${g.hostId}`);
  if (g.vectors < 1 || g.vectors > 64) bad(`vectors ${g.vectors}`);
  return g;
}

function checkPair(g: IvshmemGeometry, src: number, dst: number): void {
  for (const id of [src, dst]) {
    if (!Number.isInteger(id) || id < 0 || id >= g.slots) throw ringwireError('ERR_OUT_OF_RANGE', `peer id must be 0..${g.slots - 1}, got ${id}`);
  }
  if (src === dst) throw ringwireError('ERR_INVALID_ARG', `no channel from peer ${src} to itself`);
}

/** Byte offset of the ring that `src` produces into and `dst` consumes from. */
export function channelOffset(g: IvshmemGeometry, src: number, dst: number): number {
  checkPair(g, src, dst);
  const index = src * (g.slots - 1) + (dst < src ? dst : dst - 1);
  return g.channelsOffset + index * g.channelStride;
}

/** Where the two blocks of the src→dst ring sit in the region. */
export function channelMemory(buffer: SharedArrayBuffer, g: IvshmemGeometry, src: number, dst: number): RingMemory {
  const offset = channelOffset(g, src, dst);
  return { producer: { buffer, offset }, consumer: { buffer, offset: offset + producerBlockSize(g.ringCapacity) } };
}

/** Resets both rings between `id` and every other peer (the host, when `id` joins). */
export function initChannelsOf(buffer: SharedArrayBuffer, g: IvshmemGeometry, id: number): void {
  for (let other = 0; other < g.slots; other++) {
    if (other === id) continue;
    for (const [src, dst] of [[id, other], [other, id]] as const) {
      const m = channelMemory(buffer, g, src, dst);
      initProducerBlock(m.producer, RingKind.Spsc, g.ringCapacity);
      initConsumerBlock(m.consumer, RingKind.Spsc, g.ringCapacity);
    }
  }
}

export interface SlotState {
  live: boolean;
  /** Bumped on every join and leave, so a peer can tell a returning id from the one it knew. */
  generation: number;
}

function slotWords(buffer: SharedArrayBuffer, g: IvshmemGeometry): Int32Array {
  return new Int32Array(buffer, SLOT_TABLE_OFFSET, g.slots);
}

/** Host only: marks `id` live or free with the next generation (after its channels are ready). */
export function publishSlot(buffer: SharedArrayBuffer, g: IvshmemGeometry, id: number, live: boolean): SlotState {
  const words = slotWords(buffer, g);
  const generation = ((words[id]! >>> 1) + 1) & 0x7fffffff;
  // Seq-cst store: a peer that sees `live` also sees the ring headers initialised before it.
  Atomics.store(words, id, (generation << 1) | (live ? 1 : 0));
  return { live, generation };
}

/** Any peer: the slot as published now (stale by at most one host join or leave). */
export function readSlot(buffer: SharedArrayBuffer, g: IvshmemGeometry, id: number): SlotState {
  if (!Number.isInteger(id) || id < 0 || id >= g.slots) throw ringwireError('ERR_OUT_OF_RANGE', `peer id must be 0..${g.slots - 1}, got ${id}`);
  const word = Atomics.load(slotWords(buffer, g), id);
  return { live: (word & 1) === 1, generation: word >>> 1 };
}
