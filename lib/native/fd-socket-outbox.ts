/**
 * The send side of one FdSocket: a message goes out in one sendmsg while nothing is queued, and
 * otherwise waits in order, with duplicates of its fds, until the socket is writable again.
 */
import { ringwireError, type RingwireError } from '../errors.js';
import { check, native, nativeError } from './native.js';
import { closeAll, EAGAIN, ECONNRESET, EPIPE } from './unix-socket-sys.js';

interface Pending {
  data: Uint8Array;
  /** Duplicates owned by the queue, closed once sent. */
  fds: number[];
}

/** What flush() left behind: an empty queue, a full socket buffer, or the error that ends the socket. */
export type FlushResult = 'drained' | 'full' | RingwireError;

export class Outbox {
  #queue: Pending[] = [];
  #queuedBytes = 0;

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  get isEmpty(): boolean {
    return this.#queue.length === 0;
  }

  /**
   * Sends `data` with `fds` on `fd`, queueing what the kernel did not take; true when something was
   * queued. Fds are duplicated only if none went out: a partial send already carried them. Throws
   * (queueing nothing) when sendmsg fails for any reason but a full buffer.
   */
  send(fd: number, data: Uint8Array, fds: readonly number[]): boolean {
    const addon = native();
    let sent = 0;
    if (this.#queue.length === 0) {
      const r = addon.sendmsg(fd, data, Int32Array.from(fds));
      if (r < 0 && r !== -EAGAIN) throw sendError(r);
      if (r === data.length) return false;
      sent = Math.max(r, 0);
    }
    const pending: Pending = { data: Buffer.from(data.subarray(sent)), fds: [] };
    if (sent === 0) {
      try {
        for (const f of fds) pending.fds.push(check('dup', addon.dup(f), `fd ${f}`));
      } catch (err) {
        closeAll(pending.fds);
        throw err;
      }
    }
    this.#queue.push(pending);
    this.#queuedBytes += pending.data.length;
    return true;
  }

  /** Sends queued messages in order until the queue is empty, the buffer fills, or sendmsg fails. */
  flush(fd: number): FlushResult {
    const addon = native();
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const r = addon.sendmsg(fd, head.data, Int32Array.from(head.fds));
      if (r === -EAGAIN) return 'full';
      if (r < 0) return sendError(r);
      // The kernel holds its own references to fds it accepted; ours are no longer needed.
      closeAll(head.fds);
      head.fds = [];
      this.#queuedBytes -= r;
      if (r < head.data.length) {
        head.data = head.data.subarray(r);
        return 'full';
      }
      this.#queue.shift();
    }
    return 'drained';
  }

  /** Drops every queued message and closes its fd duplicates. */
  discard(): void {
    for (const p of this.#queue) closeAll(p.fds);
    this.#queue = [];
    this.#queuedBytes = 0;
  }
}

function sendError(r: number): RingwireError {
  if (r === -EPIPE || r === -ECONNRESET) {
    return ringwireError('ERR_PEER_GONE', 'sendmsg: the peer closed the socket', { errno: -r, syscall: 'sendmsg', cause: nativeError('sendmsg', r) });
  }
  return nativeError('sendmsg', r);
}
