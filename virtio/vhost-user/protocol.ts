/**
 * vhost-user wire layer (QEMU docs/interop/vhost-user.rst, "Message Specification" and
 * "Communication"; https://www.qemu.org/docs/master/interop/vhost-user.html): request numbers,
 * the 12-byte header, an incremental parser for the byte stream of a SOCK_STREAM UNIX socket with
 * the fds that arrive beside it, and encoders. No I/O here: the socket layer pushes what recvmsg
 * returned and writes what the encoders return. Payload views are in payloads.ts; what a message
 * means (state, dispatch, REPLY_ACK policy) belongs to the layers above.
 */
import { ringwireError, type RingwireError } from '../../lib/errors.js';
import { U64Payload } from './payloads.js';

/** Front-end request ids ("Front-end message types"). Numbers are the wire values; never reuse one. */
export enum VhostUserRequest {
  GET_FEATURES = 1,
  SET_FEATURES = 2,
  SET_OWNER = 3,
  RESET_OWNER = 4,
  SET_MEM_TABLE = 5,
  SET_LOG_BASE = 6,
  SET_LOG_FD = 7,
  SET_VRING_NUM = 8,
  SET_VRING_ADDR = 9,
  SET_VRING_BASE = 10,
  GET_VRING_BASE = 11,
  SET_VRING_KICK = 12,
  SET_VRING_CALL = 13,
  SET_VRING_ERR = 14,
  GET_PROTOCOL_FEATURES = 15,
  SET_PROTOCOL_FEATURES = 16,
  GET_QUEUE_NUM = 17,
  SET_VRING_ENABLE = 18,
  SEND_RARP = 19,
  NET_SET_MTU = 20,
  SET_SLAVE_REQ_FD = 21,
  IOTLB_MSG = 22,
  SET_VRING_ENDIAN = 23,
  GET_CONFIG = 24,
  SET_CONFIG = 25,
  CREATE_CRYPTO_SESSION = 26,
  CLOSE_CRYPTO_SESSION = 27,
  POSTCOPY_ADVISE = 28,
  POSTCOPY_LISTEN = 29,
  POSTCOPY_END = 30,
  GET_INFLIGHT_FD = 31,
  SET_INFLIGHT_FD = 32,
  GPU_SET_SOCKET = 33,
  RESET_DEVICE = 34,
  VRING_KICK = 35,
  GET_MAX_MEM_SLOTS = 36,
  ADD_MEM_REG = 37,
  REM_MEM_REG = 38,
  SET_STATUS = 39,
  GET_STATUS = 40,
}

/** Protocol feature bits ("Protocol features"). */
export enum VhostUserProtocolFeature {
  MQ = 0,
  LOG_SHMFD = 1,
  RARP = 2,
  REPLY_ACK = 3,
  MTU = 4,
  SLAVE_REQ = 5,
  CROSS_ENDIAN = 6,
  CRYPTO_SESSION = 7,
  PAGEFAULT = 8,
  CONFIG = 9,
  SLAVE_SEND_FD = 10,
  HOST_NOTIFIER = 11,
  INFLIGHT_SHMFD = 12,
  RESET_DEVICE = 13,
  INBAND_NOTIFICATIONS = 14,
  CONFIGURE_MEM_SLOTS = 15,
  STATUS = 16,
}

/** Virtio feature bit 30, reused by vhost-user to announce GET/SET_PROTOCOL_FEATURES. */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;

export const VHOST_USER_HEADER_SIZE = 12;
/** "Lower 2 bits are the version (currently 0x01)". */
export const VHOST_USER_VERSION = 0x1;
export const VHOST_USER_VERSION_MASK = 0x3;
/** "Bit 2 is the reply flag - needs to be sent on each reply from the back-end". */
export const VHOST_USER_REPLY_MASK = 0x4;
/** "Bit 3 is the need_reply flag" (REPLY_ACK). */
export const VHOST_USER_NEED_REPLY_MASK = 0x8;
const KNOWN_FLAGS = VHOST_USER_VERSION_MASK | VHOST_USER_REPLY_MASK | VHOST_USER_NEED_REPLY_MASK;
/** Ancillary data carries at most 8 fds per message (one per memory region of SET_MEM_TABLE). */
export const VHOST_USER_MAX_FDS = 8;
/**
 * Default cap on a payload. The largest the rst defines are a few hundred bytes (an 8-region
 * memory table is 264, a full config 268); anything near this is hostile or a framing error.
 */
export const VHOST_USER_DEFAULT_MAX_PAYLOAD = 4096;

export interface VhostUserHeader {
  request: number;
  flags: number;
  size: number;
}

/** A whole message: header fields, the payload (a private copy) and the fds that came with it. */
export interface VhostUserMessage extends VhostUserHeader {
  payload: Uint8Array;
  /** Received fds, now owned by the caller (close them if the message is refused). */
  fds: number[];
}

/** Reads the 12-byte header at `offset` (the caller guarantees 12 bytes are there). */
export function decodeHeader(bytes: Uint8Array, offset = 0): VhostUserHeader {
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, VHOST_USER_HEADER_SIZE);
  return { request: dv.getUint32(0, true), flags: dv.getUint32(4, true), size: dv.getUint32(8, true) };
}

/** True when the front-end asked for a REPLY_ACK u64 (the need_reply flag). */
export function needsReply(flags: number): boolean {
  return (flags & VHOST_USER_NEED_REPLY_MASK) !== 0;
}

/** Header plus payload in one buffer, ready for one sendmsg. `flags` must carry the version. */
export function encodeMessage(request: number, payload: Uint8Array = new Uint8Array(0), flags: number = VHOST_USER_VERSION): Uint8Array {
  const out = new Uint8Array(VHOST_USER_HEADER_SIZE + payload.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, request >>> 0, true);
  dv.setUint32(4, flags >>> 0, true);
  dv.setUint32(8, payload.byteLength, true);
  out.set(payload, VHOST_USER_HEADER_SIZE);
  return out;
}

/** A back-end reply: flags version | reply = 0x5. */
export function encodeReply(request: number, payload?: Uint8Array): Uint8Array {
  return encodeMessage(request, payload, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK);
}

/**
 * The REPLY_ACK answer to a request that set need_reply ("REPLY_ACK" in the rst): a u64, zero for
 * success and non-zero for failure.
 */
export function encodeReplyAck(request: number, ok: boolean): Uint8Array {
  return encodeReply(request, U64Payload.encode(ok ? 0n : 1n));
}

export interface VhostUserParserOptions {
  /** Largest payload accepted; default VHOST_USER_DEFAULT_MAX_PAYLOAD. */
  maxPayload?: number;
  /** What the peer sends: requests (a back-end parsing the front-end) or replies. Default 'request'. */
  expect?: 'request' | 'reply';
}

/**
 * Incremental parser for one connection's byte stream.
 *
 * Fds: Linux attaches SCM_RIGHTS fds to the first part of the sender's data, and a stream
 * recvmsg that returns fds stops at the end of that part, so a chunk carrying fds ends inside the
 * message they were sent with. The parser therefore gives a chunk's fds to the message holding the
 * chunk's last byte. (It may start with the tail of the previous message; it never holds the
 * start of the next one.)
 *
 * Contract: single-threaded; push() what each recvmsg returned, then call next() until it returns
 * null. A malformed stream makes next() throw ERR_VHOST_PROTOCOL (retryable: reconnect) and keeps
 * throwing it; the caller then drops the connection and closes the fds from takeFds(). Too many
 * fds for one message fail the stream in push() already (`failed` is set; next() throws).
 */
export class VhostUserParser {
  readonly #maxPayload: number;
  readonly #expectReply: boolean;
  #buf = new Uint8Array(256);
  #start = 0;
  #end = 0;
  /** Absolute stream offset of #buf[#start]. */
  #consumed = 0;
  /** Fds not yet given to a message, each with the stream offset of its chunk's last byte. */
  #marks: Array<{ lastByte: number; fds: number[] }> = [];
  #failed: RingwireError | undefined;

  constructor(options: VhostUserParserOptions = {}) {
    this.#maxPayload = options.maxPayload ?? VHOST_USER_DEFAULT_MAX_PAYLOAD;
    if (!Number.isInteger(this.#maxPayload) || this.#maxPayload < 0) {
      throw ringwireError('ERR_OUT_OF_RANGE', `maxPayload must be a non-negative integer, got ${this.#maxPayload}`);
    }
    this.#expectReply = options.expect === 'reply';
  }

  /** The error that ended the stream, if any. */
  get failed(): RingwireError | undefined {
    return this.#failed;
  }

  /** Bytes received and not yet returned as a message. */
  get bufferedBytes(): number {
    return this.#end - this.#start;
  }

  /** Appends what one recvmsg returned (copied: the caller may reuse `chunk`). */
  push(chunk: Uint8Array, fds: readonly number[] = []): void {
    if (fds.length > 0) {
      if (chunk.byteLength === 0) throw ringwireError('ERR_INVALID_ARG', 'fds must arrive with at least one byte of stream data');
      // Record the fds before anything can throw, so takeFds() still finds them.
      this.#marks.push({ lastByte: this.#consumed + this.bufferedBytes + chunk.byteLength - 1, fds: [...fds] });
    }
    if (this.#failed) throw this.#failed;
    this.#reserve(chunk.byteLength);
    this.#buf.set(chunk, this.#end);
    this.#end += chunk.byteLength;
    if (fds.length > 0) this.#checkPendingFds();
  }

  /** The next whole message, or null until more bytes arrive. Throws ERR_VHOST_PROTOCOL on malformed input. */
  next(): VhostUserMessage | null {
    if (this.#failed) throw this.#failed;
    if (this.bufferedBytes < VHOST_USER_HEADER_SIZE) return null;
    const header = decodeHeader(this.#buf, this.#start);
    const bad = this.#checkHeader(header);
    if (bad) this.#fail(bad);
    const total = VHOST_USER_HEADER_SIZE + header.size;
    if (this.bufferedBytes < total) return null;
    const endPos = this.#consumed + total;
    const fds: number[] = [];
    while (this.#marks.length > 0 && this.#marks[0]!.lastByte < endPos) fds.push(...this.#marks.shift()!.fds);
    if (fds.length > VHOST_USER_MAX_FDS) {
      // Keep them reachable through takeFds() so the caller can close every one.
      this.#marks.unshift({ lastByte: endPos - 1, fds });
      this.#fail(`request ${header.request} came with ${fds.length} fds, at most ${VHOST_USER_MAX_FDS} allowed`);
    }
    const payload = this.#buf.slice(this.#start + VHOST_USER_HEADER_SIZE, this.#start + total);
    this.#start += total;
    this.#consumed += total;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return { ...header, payload, fds };
  }

  /** Every fd received but not handed out in a message: close these when dropping the connection. */
  takeFds(): number[] {
    const fds = this.#marks.flatMap((m) => m.fds);
    this.#marks = [];
    return fds;
  }

  /**
   * Fails the stream once the message being assembled (the first one buffered) holds more fds than
   * one message may carry. Checking only when it completes would let a front-end trickle a long
   * payload a byte per sendmsg, each byte with 8 fds, and make us hold fds until the process runs
   * out. The caller learns of it from next(), which it calls right after push().
   */
  #checkPendingFds(): void {
    const header = this.bufferedBytes >= VHOST_USER_HEADER_SIZE ? decodeHeader(this.#buf, this.#start) : undefined;
    const endPos = header ? this.#consumed + VHOST_USER_HEADER_SIZE + header.size : Infinity;
    let pending = 0;
    for (const m of this.#marks) {
      if (m.lastByte >= endPos) break;
      pending += m.fds.length;
    }
    if (pending > VHOST_USER_MAX_FDS) {
      this.#failed = ringwireError('ERR_VHOST_PROTOCOL', `${header ? `request ${header.request}` : 'a message'} came with ${pending} fds before it was complete, at most ${VHOST_USER_MAX_FDS} allowed`);
    }
  }

  #checkHeader(h: VhostUserHeader): string | null {
    if ((h.flags & VHOST_USER_VERSION_MASK) !== VHOST_USER_VERSION) return `unsupported vhost-user version ${h.flags & VHOST_USER_VERSION_MASK} (flags 0x${h.flags.toString(16)})`;
    if (h.flags & ~KNOWN_FLAGS) return `undefined flag bits 0x${(h.flags & ~KNOWN_FLAGS).toString(16)} in request ${h.request}`;
    const isReply = (h.flags & VHOST_USER_REPLY_MASK) !== 0;
    if (isReply !== this.#expectReply) return `request ${h.request} ${isReply ? 'has' : 'lacks'} the reply flag`;
    if (h.size > this.#maxPayload) return `request ${h.request} announces a ${h.size}-byte payload, limit ${this.#maxPayload}`;
    return null;
  }

  #reserve(extra: number): void {
    if (this.#end + extra <= this.#buf.byteLength) return;
    const live = this.#end - this.#start;
    if (live + extra <= this.#buf.byteLength) {
      this.#buf.copyWithin(0, this.#start, this.#end);
    } else {
      const grown = new Uint8Array(Math.max(live + extra, 2 * this.#buf.byteLength));
      grown.set(this.#buf.subarray(this.#start, this.#end), 0);
      this.#buf = grown;
    }
    this.#start = 0;
    this.#end = live;
  }

  #fail(reason: string): never {
    this.#failed = ringwireError('ERR_VHOST_PROTOCOL', reason);
    throw this.#failed;
  }
}
