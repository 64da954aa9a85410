/**
 * What generated TypeScript views and writers share: typed arrays over one message area, checked
 * reads of strings, lists, discriminants and chars, and UTF-8 helpers. Generated code imports this
 * module (`ringwire/types`); nothing here knows a schema.
 *
 * Byte order: the canonical ABI is little-endian, and these are host-order typed arrays; the module
 * refuses to load on a big-endian host rather than read every field wrong.
 *
 * Offsets: views and writers work with `at`, an index into the area's bytes (the ring's `data`),
 * and `base`, the index where the message starts; a string or list pointer `p` in the message
 * means byte `base + p`. Every pointer is checked against the message length before use.
 */
import { ringwireError } from '../errors.js';

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw ringwireError('ERR_NATIVE', 'ringwire typed messages need a little-endian host (the canonical ABI is little-endian)');
}

/** Typed arrays over one area (a ring's `data`), all starting at its first byte. */
export class WitMemory {
  readonly u8: Uint8Array;
  readonly i8: Int8Array;
  readonly u16: Uint16Array;
  readonly i16: Int16Array;
  readonly u32: Uint32Array;
  readonly i32: Int32Array;
  readonly f32: Float32Array;
  readonly f64: Float64Array;
  readonly u64: BigUint64Array;
  readonly i64: BigInt64Array;
  /** Node's Buffer over the area, for its slice and write methods that take no options object. */
  readonly buf: RawBuffer;

  constructor(data: Uint8Array) {
    if (!(data instanceof Uint8Array) || data.byteOffset % 8 !== 0) {
      throw ringwireError('ERR_INVALID_ARG', 'typed messages need a Uint8Array that starts 8-byte aligned in its buffer (every ring data area does)');
    }
    const b = data.buffer;
    const o = data.byteOffset;
    const n = data.byteLength;
    this.u8 = data;
    this.i8 = new Int8Array(b, o, n);
    this.u16 = new Uint16Array(b, o, n >>> 1);
    this.i16 = new Int16Array(b, o, n >>> 1);
    this.u32 = new Uint32Array(b, o, n >>> 2);
    this.i32 = new Int32Array(b, o, n >>> 2);
    this.f32 = new Float32Array(b, o, n >>> 2);
    this.f64 = new Float64Array(b, o, n >>> 3);
    this.u64 = new BigUint64Array(b, o, n >>> 3);
    this.i64 = new BigInt64Array(b, o, n >>> 3);
    this.buf = Buffer.from(b, o, n) as unknown as RawBuffer;
  }
}

/** Buffer's encoding-specific methods (on Buffer.prototype since Node 0.x; toString() and write() call them). */
interface RawBuffer {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
  utf8Write(s: string, offset: number, length: number): number;
}

const memories = new WeakMap<Uint8Array, WitMemory>();

/** The WitMemory of an area, made once per Uint8Array. */
export function witMemory(data: Uint8Array): WitMemory {
  let m = memories.get(data);
  if (!m) {
    m = new WitMemory(data);
    memories.set(data, m);
  }
  return m;
}

export function corrupt(what: string): never {
  throw ringwireError('ERR_MESSAGE_CORRUPT', what);
}

export function wrongCase(want: string, tag: number): never {
  throw ringwireError('ERR_INVALID_ARG', `the value holds case ${tag}, not '${want}'`);
}

export function outOfRange(i: number, n: number): never {
  throw ringwireError('ERR_OUT_OF_RANGE', `index ${i} outside a list of ${n}`);
}

/** Checks a root binding: the message lies in the area, is aligned, and holds the fixed part. */
export function checkRoot(m: WitMemory, off: number, len: number, size: number, name: string): void {
  if ((off >>> 0) !== off || (len >>> 0) !== len || off + len > m.u8.length || (off & 7) !== 0) {
    throw ringwireError('ERR_INVALID_ARG', `${name}: message [${off}, +${len}) is not an 8-aligned range of the area`);
  }
  if (len < size) corrupt(`${name}: message of ${len} bytes is shorter than its ${size}-byte fixed part`);
}

/** A discriminant that must be below `n`. */
export function tag8(m: WitMemory, at: number, n: number): number {
  const t = m.u8[at]!;
  if (t >= n) corrupt(`discriminant ${t} at ${at} (only ${n} cases)`);
  return t;
}
export function tag16(m: WitMemory, at: number, n: number): number {
  const t = m.u16[at >>> 1]!;
  if (t >= n) corrupt(`discriminant ${t} at ${at} (only ${n} cases)`);
  return t;
}
export function tag32(m: WitMemory, at: number, n: number): number {
  const t = m.u32[at >>> 2]!;
  if (t >= n) corrupt(`discriminant ${t} at ${at} (only ${n} cases)`);
  return t;
}

/** A char: a Unicode scalar value (not a surrogate, below 0x110000), returned as its code point. */
export function readChar(m: WitMemory, at: number): number {
  const c = m.u32[at >>> 2]!;
  if (c >= 0x110000 || (c >= 0xd800 && c < 0xe000)) corrupt(`char 0x${c.toString(16)} at ${at} is not a Unicode scalar value`);
  return c;
}

export function u64AsNumber(m: WitMemory, at: number): number {
  return m.u32[at >>> 2]! + m.u32[(at >>> 2) + 1]! * 4294967296;
}
export function s64AsNumber(m: WitMemory, at: number): number {
  return m.u32[at >>> 2]! + m.i32[(at >>> 2) + 1]! * 4294967296;
}

/**
 * The start (an index into the area) of the bytes a {ptr, len} slot at `slot` points to, after
 * checking that `len * elemSize` bytes from `ptr` lie inside the message and `ptr` is aligned.
 * The element count is the slot's second word.
 */
export function span(m: WitMemory, base: number, msgLen: number, slot: number, elemSize: number, align: number): number {
  const ptr = m.u32[slot >>> 2]!;
  const n = m.u32[(slot >>> 2) + 1]!;
  if (ptr + n * elemSize > msgLen || (ptr & (align - 1)) !== 0) {
    corrupt(`pointer ${ptr} + ${n} x ${elemSize} bytes at ${slot - base} leaves the ${msgLen}-byte message or is misaligned`);
  }
  return base + ptr;
}

/**
 * Validates UTF-8 in bytes [start, end): true when it is all ASCII, false when it is other valid
 * UTF-8, ERR_MESSAGE_CORRUPT otherwise (overlong forms, surrogates, > U+10FFFF, truncation).
 */
export function checkUtf8(u8: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end && u8[i]! < 0x80) i++;
  if (i === end) return true;
  while (i < end) {
    const b = u8[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    let cp: number;
    if (b >= 0xc2 && b <= 0xdf) { need = 1; min = 0x80; cp = b & 0x1f; }
    else if (b >= 0xe0 && b <= 0xef) { need = 2; min = 0x800; cp = b & 0x0f; }
    else if (b >= 0xf0 && b <= 0xf4) { need = 3; min = 0x10000; cp = b & 0x07; }
    else return corrupt(`bad UTF-8 lead byte 0x${b.toString(16)} at ${i}`);
    if (i + need >= end) return corrupt(`truncated UTF-8 sequence at ${i}`);
    for (let k = 1; k <= need; k++) {
      const c = u8[i + k]!;
      if ((c & 0xc0) !== 0x80) return corrupt(`bad UTF-8 continuation byte 0x${c.toString(16)} at ${i + k}`);
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) return corrupt(`invalid UTF-8 sequence (U+${cp.toString(16)}) at ${i}`);
    i += need + 1;
  }
  return false;
}

/** Reads a string slot: bounds, UTF-8, then one decode. */
export function readString(m: WitMemory, base: number, msgLen: number, slot: number): string {
  const start = span(m, base, msgLen, slot, 1, 1);
  const end = start + m.u32[(slot >>> 2) + 1]!;
  if (!checkUtf8(m.u8, start, end)) return m.buf.utf8Slice(start, end);
  // Short ASCII: V8 builds a flat string from cached one-character strings several times faster
  // than a call into Buffer's C++ (below ConsString's minimum length, 13, concatenation copies).
  if (end - start > 12) return m.buf.latin1Slice(start, end);
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(m.u8[i]!);
  return s;
}

/** Bytes of `s` in UTF-8 (a lone surrogate counts as U+FFFD, 3 bytes, as Buffer writes it). */
export function utf8Length(s: string): number {
  const n = s.length;
  let bytes = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < n && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a pair: 4 bytes for 2 units
      i++;
    } else bytes += 2;
  }
  return bytes;
}

/** Writes `s` at message offset `c` and its {ptr, len} into `slot`; returns the next free offset. */
export function writeString(m: WitMemory, base: number, slot: number, s: string, c: number): number {
  const at = base + c;
  const n = s.length;
  let len: number;
  if (n < 64) {
    let i = 0;
    for (; i < n; i++) {
      const ch = s.charCodeAt(i);
      if (ch >= 0x80) break;
      m.u8[at + i] = ch;
    }
    len = i === n ? n : m.buf.utf8Write(s, at, m.u8.length - at);
  } else {
    len = m.buf.utf8Write(s, at, m.u8.length - at);
  }
  m.u32[slot >>> 2] = c;
  m.u32[(slot >>> 2) + 1] = len;
  return c + len;
}

export function alignUp(n: number, align: number): number {
  return (n + align - 1) & -align;
}

/** What a builder needs from a ring producer: claim exactly, write in place, commit. */
export interface ClaimingProducer {
  readonly data: Uint8Array;
  claim(length: number, type?: number): number;
  commit(): void;
}


/** Writes a u64/s64 from a bigint, or from a number without allocating (exact up to 2^53). */
export function write64(m: WitMemory, at: number, v: number | bigint): void {
  if (typeof v === 'number') {
    m.u32[at >>> 2] = v >>> 0;
    m.u32[(at >>> 2) + 1] = Math.floor(v / 4294967296) >>> 0;
  } else {
    m.u64[at >>> 3] = BigInt.asUintN(64, v);
  }
}

/** A char to write must be a Unicode scalar value. */
export function checkChar(c: number): number {
  if ((c >>> 0) !== c || c >= 0x110000 || (c >= 0xd800 && c < 0xe000)) {
    throw ringwireError('ERR_INVALID_ARG', `char ${c} is not a Unicode scalar value`);
  }
  return c;
}

/** An enum value to write must be one of its cases. */
export function checkTag(v: number, n: number): number {
  if ((v >>> 0) !== v || v >= n) throw ringwireError('ERR_INVALID_ARG', `enum value ${v} is not one of its ${n} cases`);
  return v;
}

export { ringwireError };
