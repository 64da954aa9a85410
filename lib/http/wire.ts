/**
 * The HTTP record mapping (docs/http.md): every frame is one channel data message,
 *
 *   0  u8   type      FrameType
 *   1  u8   flags     Flag.End: the sender sends nothing more for this exchange
 *   2  u16  reserved  0
 *   4  u32  id        exchange id, chosen by the client, increasing per channel
 *   8  ...  payload
 *
 * and heads are compact binary blocks, not HTTP/1 text. This file is syntax only: it encodes,
 * and decodes into plain values or `null` when a block is malformed; what a malformed frame means
 * (400, reset, ignore) is decided by the server and the client.
 */

export const FRAME_HEADER = 8;

export const FrameType = {
  /** Request head (client to server) or response head (server to client). */
  Headers: 1,
  /** Body bytes; an empty Data frame with Flag.End ends a body. */
  Data: 2,
  /** Trailer fields; always carries Flag.End. */
  Trailers: 3,
  /** Abort of one exchange; payload u32 ResetCode, then a UTF-8 reason. Either direction. */
  Reset: 4,
  /** Flow-control credit: payload u32 bytes the sender of this frame has consumed. */
  Window: 5,
} as const;

export const Flag = { End: 1 } as const;

export const ResetCode = {
  /** The exchange is not needed any more (the response is complete; the rest of the request body is not wanted). */
  NoError: 0,
  /** The peer broke the mapping: malformed block, records out of order. */
  Protocol: 1,
  /** The server failed mid-response (handler error, res.destroy()). */
  Internal: 2,
  /** The client aborted (AbortSignal, timeout, body stream error). */
  Cancel: 3,
  /** The server is closing and did not start this exchange. */
  Refused: 4,
} as const;

/**
 * Per-exchange flow control, as HTTP/2 does it: a sender may have at most INITIAL_WINDOW body
 * bytes of one exchange unacknowledged; the receiver returns credit with a Window frame once it has
 * consumed WINDOW_UPDATE_BYTES. One slow reader then never stalls the other exchanges of a channel.
 */
export const INITIAL_WINDOW = 1 << 20;
export const WINDOW_UPDATE_BYTES = 1 << 18;

/** Field limits of a head block (a longer name or value is a 431, like an oversized head). */
export const MAX_NAME_BYTES = 255;
export const MAX_VALUE_BYTES = 0xffff;
export const MAX_METHOD_BYTES = 255;
export const MAX_PATH_BYTES = 0xffff;

export interface Frame {
  type: number;
  flags: number;
  id: number;
  /** Offset of the payload in the message. */
  start: number;
}

/** Reads the frame header, or null when the message is too short to carry one. */
export function readFrame(msg: Uint8Array): Frame | null {
  if (msg.length < FRAME_HEADER) return null;
  return {
    type: msg[0]!,
    flags: msg[1]!,
    id: (msg[4]! | (msg[5]! << 8) | (msg[6]! << 16) | (msg[7]! << 24)) >>> 0,
    start: FRAME_HEADER,
  };
}

export function writeFrameHeader(buf: Buffer, type: number, flags: number, id: number): void {
  buf[0] = type;
  buf[1] = flags;
  buf[2] = 0;
  buf[3] = 0;
  buf.writeUInt32LE(id, 4);
}

/** A header list as [name, value, name, value, ...]: the shape of Node's rawHeaders. */
export type FieldList = string[];

/** Bytes the fields take in a block; -1 when one name or value is over its field limit. */
function fieldsBytes(fields: FieldList): number {
  let n = 2;
  for (let i = 0; i < fields.length; i += 2) {
    const nl = Buffer.byteLength(fields[i]!, 'latin1');
    const vl = Buffer.byteLength(fields[i + 1]!, 'latin1');
    if (nl > MAX_NAME_BYTES || vl > MAX_VALUE_BYTES) return -1;
    n += 3 + nl + vl;
  }
  return n;
}

function writeFields(buf: Buffer, off: number, fields: FieldList): number {
  buf.writeUInt16LE(fields.length >>> 1, off);
  off += 2;
  for (let i = 0; i < fields.length; i += 2) {
    const nl = buf.write(fields[i]!, off + 1, 'latin1');
    buf[off] = nl;
    off += 1 + nl;
    const vl = buf.write(fields[i + 1]!, off + 2, 'latin1');
    buf.writeUInt16LE(vl, off);
    off += 2 + vl;
  }
  return off;
}

/**
 * Request head: u8 method length, method, u16 path length, path, then the fields (u16 count; per
 * field u8 name length, name, u16 value length, value; all latin1, as HTTP/1 carries them).
 * Returns the frame (header included), or null when a field is over its limit.
 */
export function encodeRequestHead(id: number, flags: number, method: string, path: string, fields: FieldList): Buffer | null {
  const ml = Buffer.byteLength(method, 'latin1');
  const pl = Buffer.byteLength(path, 'latin1');
  const fl = fieldsBytes(fields);
  if (ml > MAX_METHOD_BYTES || pl > MAX_PATH_BYTES || fl < 0) return null;
  const buf = Buffer.allocUnsafe(FRAME_HEADER + 3 + ml + pl + fl);
  writeFrameHeader(buf, FrameType.Headers, flags, id);
  let off = FRAME_HEADER;
  buf[off] = ml;
  buf.write(method, off + 1, 'latin1');
  off += 1 + ml;
  buf.writeUInt16LE(pl, off);
  buf.write(path, off + 2, 'latin1');
  off += 2 + pl;
  writeFields(buf, off, fields);
  return buf;
}

/** Response head: u16 status, u8 reason length, reason, then the fields as in a request head. */
export function encodeResponseHead(id: number, flags: number, status: number, reason: string, fields: FieldList): Buffer | null {
  let rl = Buffer.byteLength(reason, 'latin1');
  if (rl > 255) { reason = ''; rl = 0; }
  const fl = fieldsBytes(fields);
  if (fl < 0) return null;
  const buf = Buffer.allocUnsafe(FRAME_HEADER + 3 + rl + fl);
  writeFrameHeader(buf, FrameType.Headers, flags, id);
  let off = FRAME_HEADER;
  buf.writeUInt16LE(status, off);
  buf[off + 2] = rl;
  buf.write(reason, off + 3, 'latin1');
  writeFields(buf, off + 3 + rl, fields);
  return buf;
}

/** Trailers: the field block alone. */
export function encodeTrailers(id: number, fields: FieldList): Buffer | null {
  const fl = fieldsBytes(fields);
  if (fl < 0) return null;
  const buf = Buffer.allocUnsafe(FRAME_HEADER + fl);
  writeFrameHeader(buf, FrameType.Trailers, Flag.End, id);
  writeFields(buf, FRAME_HEADER, fields);
  return buf;
}

export function encodeReset(id: number, code: number, reason = ''): Buffer {
  const rl = Buffer.byteLength(reason);
  const buf = Buffer.allocUnsafe(FRAME_HEADER + 4 + rl);
  writeFrameHeader(buf, FrameType.Reset, 0, id);
  buf.writeUInt32LE(code, FRAME_HEADER);
  buf.write(reason, FRAME_HEADER + 4);
  return buf;
}

export function encodeWindow(id: number, bytes: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER + 4);
  writeFrameHeader(buf, FrameType.Window, 0, id);
  buf.writeUInt32LE(bytes, FRAME_HEADER);
  return buf;
}

/** An empty Data frame with Flag.End: the end of a body. */
export function encodeEnd(id: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER);
  writeFrameHeader(buf, FrameType.Data, Flag.End, id);
  return buf;
}

/**
 * Reads a field block at `off` of `buf` (a copy owned by the caller). Names and values are
 * returned as latin1 strings, or as Buffer views of `buf` when `asBuffers` (what undici's
 * handlers take). Null when the block is truncated or has bytes left over.
 */
export function decodeFields(buf: Buffer, off: number, end: number, asBuffers: false): string[] | null;
export function decodeFields(buf: Buffer, off: number, end: number, asBuffers: true): Buffer[] | null;
export function decodeFields(buf: Buffer, off: number, end: number, asBuffers: boolean): Array<string | Buffer> | null {
  if (off + 2 > end) return null;
  const count = buf[off]! | (buf[off + 1]! << 8);
  off += 2;
  const out = new Array<string | Buffer>(count * 2);
  for (let i = 0; i < count; i++) {
    if (off + 1 > end) return null;
    const nl = buf[off]!;
    const ns = off + 1;
    off = ns + nl;
    if (nl === 0 || off + 2 > end) return null;
    const vl = buf[off]! | (buf[off + 1]! << 8);
    const vs = off + 2;
    off = vs + vl;
    if (off > end) return null;
    out[2 * i] = asBuffers ? buf.subarray(ns, ns + nl) : buf.toString('latin1', ns, ns + nl);
    out[2 * i + 1] = asBuffers ? buf.subarray(vs, vs + vl) : buf.toString('latin1', vs, vs + vl);
  }
  return off === end ? out : null;
}

export interface RequestHead {
  method: string;
  path: string;
  fields: string[];
}

/** Syntax of a request head (payload from `off`); null when malformed. */
export function decodeRequestHead(buf: Buffer, off: number, end: number): RequestHead | null {
  if (off + 1 > end) return null;
  const ml = buf[off]!;
  const ms = off + 1;
  off = ms + ml;
  if (ml === 0 || off + 2 > end) return null;
  const pl = buf[off]! | (buf[off + 1]! << 8);
  const ps = off + 2;
  off = ps + pl;
  if (pl === 0 || off > end) return null;
  const fields = decodeFields(buf, off, end, false);
  if (!fields) return null;
  return { method: buf.toString('latin1', ms, ms + ml), path: buf.toString('latin1', ps, ps + pl), fields };
}

export interface ResponseHead {
  status: number;
  reason: string;
  fields: Buffer[];
}

export function decodeResponseHead(buf: Buffer, off: number, end: number): ResponseHead | null {
  if (off + 3 > end) return null;
  const status = buf.readUInt16LE(off);
  const rl = buf[off + 2]!;
  const rs = off + 3;
  if (rs + rl > end || status < 100 || status > 999) return null;
  const fields = decodeFields(buf, rs + rl, end, true);
  if (!fields) return null;
  return { status, reason: buf.toString('latin1', rs, rs + rl), fields };
}

export function decodeU32(buf: Uint8Array, off: number, end: number): number | null {
  if (off + 4 > end) return null;
  return (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24)) >>> 0;
}
