/**
 * The receive side of one FdSocket: one recvmsg into buffers sized by the socket's options, turned
 * into a message with its fds, "nothing waiting", or the end of the connection.
 */
import { ringwireError, type RingwireError } from '../errors.js';
import { native, nativeError } from './native.js';
import { closeAll, EAGAIN, ECONNRESET } from './unix-socket-sys.js';

export type Received =
  /** The fds are now the caller's. */
  | { kind: 'message'; data: Buffer; fds: number[] }
  | { kind: 'empty' }
  /** End-of-file (no error) or a failure; fds that came with a truncated message are already closed. */
  | { kind: 'end'; error: RingwireError | undefined }
  /** A seqpacket message over the limits, dropped whole (its fds closed); the socket is still usable. */
  | { kind: 'truncated'; error: RingwireError };

export class Inbox {
  #buf: Buffer;
  #fdsOut: Int32Array;
  #meta = new Int32Array(2);

  readonly #datagrams: boolean;

  /** `datagrams`: a seqpacket socket, whose truncated messages leave the next one intact. */
  constructor(maxMessageSize: number, maxFds: number, datagrams = false) {
    this.#buf = Buffer.allocUnsafe(maxMessageSize);
    this.#fdsOut = new Int32Array(maxFds);
    this.#datagrams = datagrams;
  }

  receive(fd: number): Received {
    const addon = native();
    const { MSG_TRUNC, MSG_CTRUNC } = addon.msgFlags;
    const n = addon.recvmsg(fd, this.#buf, this.#fdsOut, this.#meta, this.#datagrams);
    if (n === -EAGAIN) return { kind: 'empty' };
    if (n < 0) {
      return { kind: 'end', error: n === -ECONNRESET ? ringwireError('ERR_PEER_GONE', 'recvmsg: connection reset by peer', { errno: -n, syscall: 'recvmsg' }) : nativeError('recvmsg', n) };
    }
    const fds = Array.from(this.#fdsOut.subarray(0, this.#meta[0]!));
    const flags = this.#meta[1]!;
    if (flags & (MSG_TRUNC | MSG_CTRUNC) || n > this.#buf.length) {
      closeAll(fds);
      const problems: string[] = [];
      if (flags & MSG_TRUNC || n > this.#buf.length) problems.push(`a ${this.#datagrams ? `${n}-byte message; at most ${this.#buf.length}` : `message larger than maxMessageSize (${this.#buf.length})`}`);
      if (flags & MSG_CTRUNC) problems.push(`more fds than maxFds (${this.#fdsOut.length}) or the fd limit allows`);
      const error = ringwireError('ERR_MSG_TRUNCATED', `recvmsg: the peer sent ${problems.join(' and ')}; ${fds.length} fd(s) that arrived were closed`);
      return this.#datagrams ? { kind: 'truncated', error } : { kind: 'end', error };
    }
    if (n === 0 && fds.length === 0) return { kind: 'end', error: undefined };
    return { kind: 'message', data: Buffer.from(this.#buf.subarray(0, n)), fds };
  }
}
