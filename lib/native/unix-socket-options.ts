/**
 * What FdSocket and FdServer accept before any system call: the address (a path or '@abstract'
 * name) and the options, validated with a typed error that names the bad value.
 */
import { ringwireError } from '../errors.js';

export type SocketType = 'seqpacket' | 'stream';

export interface FdSocketOptions {
  type?: SocketType;
  /** Receive buffer: the largest seqpacket message accepted, or the largest stream chunk. Default 64 KiB. */
  maxMessageSize?: number;
  /** Most fds accepted with one message (1..253, default 253); more is ERR_MSG_TRUNCATED. */
  maxFds?: number;
  /**
   * What a message over maxMessageSize or maxFds does. 'close' (default): the socket fails with
   * ERR_MSG_TRUNCATED. 'report' (seqpacket only, where datagram boundaries survive the cut): the
   * message is dropped, its fds closed, a 'truncated' event carries the ERR_MSG_TRUNCATED error,
   * and the socket stays open, so a protocol can still tell the peer why it refuses it.
   */
  truncated?: 'close' | 'report';
}

export interface ConnectOptions extends FdSocketOptions {
  /** How long to retry while the listener's backlog is full. Default 5000 ms. */
  timeoutMs?: number;
}

export interface ListenOptions extends FdSocketOptions {
  /** chmod of the socket file (paths only), applied before the socket accepts. */
  mode?: number;
  backlog?: number;
}

/** The kernel's per-message fd limit (SCM_MAX_FD). */
export const MAX_FDS = 253;
/** sizeof(sockaddr_un.sun_path). */
const SUN_PATH = 108;

/** Encodes a path or '@abstract' name as sun_path bytes; a path keeps room for its NUL. */
export function encodeAddress(address: string): Uint8Array {
  if (typeof address !== 'string' || address.length === 0) throw ringwireError('ERR_INVALID_ARG', 'address must be a non-empty string (a path or @name)');
  if (address.startsWith('@')) {
    const name = Buffer.from(address.slice(1));
    if (name.length === 0) throw ringwireError('ERR_INVALID_ARG', 'abstract address needs a name after @');
    if (name.length + 1 > SUN_PATH) throw ringwireError('ERR_OUT_OF_RANGE', `abstract name is ${name.length} bytes; at most ${SUN_PATH - 1}`);
    return Buffer.concat([Buffer.from([0]), name]);
  }
  if (address.includes('\0')) throw ringwireError('ERR_INVALID_ARG', 'socket path must not contain NUL');
  const path = Buffer.from(address);
  if (path.length + 1 > SUN_PATH) throw ringwireError('ERR_OUT_OF_RANGE', `socket path is ${path.length} bytes; at most ${SUN_PATH - 1}`);
  return path;
}

export function socketOptions(opts: FdSocketOptions): Required<FdSocketOptions> {
  if (typeof opts !== 'object' || opts === null) throw ringwireError('ERR_INVALID_ARG', 'options must be an object');
  const type = opts.type ?? 'seqpacket';
  if (type !== 'seqpacket' && type !== 'stream') throw ringwireError('ERR_INVALID_ARG', `type must be 'seqpacket' or 'stream', got ${String(type)}`);
  const maxMessageSize = opts.maxMessageSize ?? 65536;
  if (!Number.isInteger(maxMessageSize) || maxMessageSize < 1 || maxMessageSize > 1 << 24) {
    throw ringwireError('ERR_OUT_OF_RANGE', `maxMessageSize must be an integer 1..16 MiB, got ${maxMessageSize}`);
  }
  const maxFds = opts.maxFds ?? MAX_FDS;
  if (!Number.isInteger(maxFds) || maxFds < 0 || maxFds > MAX_FDS) throw ringwireError('ERR_OUT_OF_RANGE', `maxFds must be an integer 0..${MAX_FDS}, got ${maxFds}`);
  const truncated = opts.truncated ?? 'close';
  if (truncated !== 'close' && truncated !== 'report') throw ringwireError('ERR_INVALID_ARG', `truncated must be 'close' or 'report', got ${String(truncated)}`);
  if (truncated === 'report' && type !== 'seqpacket') throw ringwireError('ERR_INVALID_ARG', "truncated: 'report' needs a seqpacket socket (a cut stream loses its framing)");
  return { type, maxMessageSize, maxFds, truncated };
}

export function connectOptions(opts: ConnectOptions): { socket: Required<FdSocketOptions>; timeoutMs: number } {
  const socket = socketOptions(opts);
  const timeoutMs = opts.timeoutMs ?? 5000;
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw ringwireError('ERR_OUT_OF_RANGE', `timeoutMs must be a finite number >= 0, got ${timeoutMs}`);
  return { socket, timeoutMs };
}

export function listenOptions(opts: ListenOptions): { socket: Required<FdSocketOptions>; backlog: number; mode: number | undefined } {
  const socket = socketOptions(opts);
  const backlog = opts.backlog ?? 128;
  if (!Number.isInteger(backlog) || backlog < 1 || backlog > 65535) throw ringwireError('ERR_OUT_OF_RANGE', `backlog must be 1..65535, got ${backlog}`);
  if (opts.mode !== undefined && (!Number.isInteger(opts.mode) || opts.mode < 0 || opts.mode > 0o7777)) {
    throw ringwireError('ERR_OUT_OF_RANGE', `mode must be a permission mask 0..0o7777, got ${opts.mode}`);
  }
  return { socket, backlog, mode: opts.mode };
}
