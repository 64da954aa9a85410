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
  | { kind: 'end'; error: RingwireError | undefined };

export class Inbox {
  #buf: Buffer;
  #fdsOut: Int32Array;
  #meta = new Int32Array(2);

  constructor(maxMessageSize: number, maxFds: number) {
    this.#buf = Buffer.allocUnsafe(maxMessageSize);
    this.#fdsOut = new Int32Array(maxFds);
  }

  receive(fd: number): Received {
    const addon = native();
    const { MSG_TRUNC, MSG_CTRUNC } = addon.msgFlags;
    const n = addon.recvmsg(fd, this.#buf, this.#fdsOut, this.#meta);
    if (n === -EAGAIN) return { kind: 'empty' };
    if (n < 0) {
      return { kind: 'end', error: n === -ECONNRESET ? ringwireError('ERR_PEER_GONE', 'recvmsg: connection reset by peer', { errno: -n, syscall: 'recvmsg' }) : nativeError('recvmsg', n) };
    }
    const fds = Array.from(this.#fdsOut.subarray(0, this.#meta[0]!));
    const flags = this.#meta[1]!;
    if (flags & (MSG_TRUNC | MSG_CTRUNC)) {
      closeAll(fds);
      const what = flags & MSG_CTRUNC ? `more fds than maxFds (${this.#fdsOut.length}) or the fd limit allows` : `a message larger than maxMessageSize (${this.#buf.length})`;
      return { kind: 'end', error: ringwireError('ERR_MSG_TRUNCATED', `recvmsg: the peer sent ${what}; ${fds.length} fd(s) that arrived were closed`) };
    }
    if (n === 0 && fds.length === 0) return { kind: 'end', error: undefined };
    return { kind: 'message', data: Buffer.from(this.#buf.subarray(0, n)), fds };
  }
}
