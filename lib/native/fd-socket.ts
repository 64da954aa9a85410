/**
 * FdSocket: one connected UNIX socket on the libuv loop. It owns the fd, the poll handle and the
 * open/closed lifecycle; the Outbox queues what the kernel could not take yet and the Inbox turns
 * recvmsg results into messages. The contracts are in unix-socket.ts.
 */
import { EventEmitter } from 'node:events';
import { ringwireError, type RingwireError } from '../errors.js';
import { assertFd, check, native, nativeError, type NativePoller } from './native.js';
import { Inbox } from './fd-socket-inbox.js';
import { Outbox } from './fd-socket-outbox.js';
import { connectOptions, encodeAddress, MAX_FDS, socketOptions, type ConnectOptions, type FdSocketOptions, type SocketType } from './unix-socket-options.js';
import { closeAll, EAGAIN, READ_BUDGET } from './unix-socket-sys.js';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** FdServer's way to wrap an accepted connection; not exported from unix-socket.ts. */
export const wrapAccepted = Symbol('wrapAccepted');

export interface FdSocket {
  on(event: 'message', listener: (data: Buffer, fds: number[]) => void): this;
  on(event: 'error', listener: (err: RingwireError) => void): this;
  on(event: 'close' | 'drain', listener: () => void): this;
  /** Only with `truncated: 'report'`: a message over the limits was dropped (its fds closed); the socket stays open. */
  on(event: 'truncated', listener: (err: RingwireError) => void): this;
  once(event: 'message', listener: (data: Buffer, fds: number[]) => void): this;
  once(event: 'error', listener: (err: RingwireError) => void): this;
  once(event: 'close' | 'drain', listener: () => void): this;
}

export class FdSocket extends EventEmitter {
  readonly type: SocketType;
  #fd: number;
  #poller: NativePoller;
  #pollMask = 0;
  #paused = false;
  #destroyed = false;
  /** Why it closed: locally (close()) or because the peer went away or failed. */
  #closedLocally = false;
  #outbox = new Outbox();
  #inbox: Inbox;
  #reportTruncated: boolean;

  private constructor(fd: number, opts: Required<FdSocketOptions>) {
    super();
    this.type = opts.type;
    this.#fd = fd;
    this.#inbox = new Inbox(opts.maxMessageSize, opts.maxFds, opts.type === 'seqpacket');
    this.#reportTruncated = opts.truncated === 'report';
    const addon = native();
    this.#poller = new addon.Poller();
    check('uv_poll_init', this.#poller.open(fd));
    this.#updatePoll();
  }

  /** Connects to a path or '@abstract' name. */
  static async connect(address: string, opts: ConnectOptions = {}): Promise<FdSocket> {
    const bytes = encodeAddress(address);
    const { socket: sopts, timeoutMs } = connectOptions(opts);
    const addon = native();
    const fd = check('socket', addon.socket(sopts.type === 'stream'));
    try {
      const deadline = Date.now() + timeoutMs;
      // A UNIX connect completes at once or fails; EAGAIN means the backlog is full: back off and retry.
      for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
        const r = addon.connect(fd, bytes);
        if (r === 0) break;
        if (r !== -EAGAIN) throw nativeError('connect', r, address);
        if (Date.now() >= deadline) throw ringwireError('ERR_TIMEOUT', `connect ${address}: listener backlog stayed full for ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
      return new FdSocket(fd, sopts);
    } catch (err) {
      addon.close(fd);
      throw err;
    }
  }

  /** Wraps a connected UNIX socket fd (an accepted one, or one inherited from a parent); takes ownership. */
  static fromFd(fd: number, opts: FdSocketOptions = {}): FdSocket {
    assertFd(fd);
    const sopts = socketOptions(opts);
    check('fcntl(F_SETFL)', native().setNonblocking(fd), `fd ${fd}`);
    return new FdSocket(fd, sopts);
  }

  /** The socket fd; -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  /** Bytes queued because the socket buffer was full; 'drain' is emitted when it reaches 0. */
  get writableLength(): number {
    return this.#outbox.queuedBytes;
  }

  /**
   * Sends `data` with `fds` (up to 253) in one sendmsg. When the socket buffer is full the message is
   * queued (fds duplicated) and flushed in order when writable: nothing is dropped. A seqpacket
   * message needs at least one byte (a zero-length one reads as end-of-file), as do fds on a stream.
   */
  send(data: Uint8Array, fds: readonly number[] = []): void {
    if (!(data instanceof Uint8Array)) throw ringwireError('ERR_INVALID_ARG', 'data must be a Uint8Array');
    if (!Array.isArray(fds)) throw ringwireError('ERR_INVALID_ARG', 'fds must be an array of fds');
    if (fds.length > MAX_FDS) throw ringwireError('ERR_OUT_OF_RANGE', `at most ${MAX_FDS} fds per message, got ${fds.length}`);
    for (const fd of fds) assertFd(fd, 'each fd');
    if (data.length === 0 && (this.type === 'seqpacket' || fds.length > 0)) {
      throw ringwireError('ERR_INVALID_ARG', this.type === 'seqpacket' ? 'a seqpacket message needs at least one byte' : 'fds need at least one byte of data to travel with');
    }
    if (this.#destroyed) {
      throw this.#closedLocally ? ringwireError('ERR_RING_CLOSED', 'socket is closed') : ringwireError('ERR_PEER_GONE', 'socket peer has gone');
    }
    if (data.length === 0) return;
    if (this.#outbox.send(this.#fd, data, fds)) this.#updatePoll();
  }

  /** The peer's pid, uid and gid as the kernel recorded them at connect time (SO_PEERCRED). */
  peerCred(): PeerCred {
    const out = new Int32Array(3);
    check('getsockopt(SO_PEERCRED)', native().peerCred(this.#liveFd(), out));
    return { pid: out[0]!, uid: out[1]! >>> 0, gid: out[2]! >>> 0 };
  }

  /** Stops reading; data and fds wait in the kernel until resume(). */
  pause(): void {
    this.#paused = true;
    this.#updatePoll();
  }

  resume(): void {
    this.#paused = false;
    this.#updatePoll();
  }

  /** Closes the socket; queued messages are discarded and their fd duplicates closed. Idempotent. */
  close(): void {
    this.#closedLocally = !this.#destroyed || this.#closedLocally;
    this.#destroy(undefined);
  }

  #liveFd(): number {
    if (this.#destroyed) throw ringwireError('ERR_RING_CLOSED', 'socket is closed');
    return this.#fd;
  }

  #updatePoll(): void {
    if (this.#destroyed) return;
    const events = native().pollEvents;
    const mask = (this.#paused ? 0 : events.readable) | (this.#outbox.isEmpty ? 0 : events.writable);
    if (mask === this.#pollMask) return;
    this.#pollMask = mask;
    if (mask === 0) {
      this.#poller.stop();
      return;
    }
    const r = this.#poller.start(mask, (status, ev) => this.#onPoll(status, ev));
    if (r < 0) this.#destroy(nativeError('uv_poll_start', r));
  }

  #onPoll(status: number, ev: number): void {
    if (this.#destroyed) return;
    if (status < 0) {
      // libuv turns POLLERR into an error status; the socket's own error (a reset by a peer that
      // died with unread data, or EOF) says more, and a read fetches it.
      this.#read();
      if (!this.#destroyed) this.#destroy(nativeError('uv_poll', status));
      return;
    }
    const events = native().pollEvents;
    if (ev & events.writable) this.#flush();
    if (ev & events.readable) this.#read();
  }

  #flush(): void {
    const result = this.#outbox.flush(this.#fd);
    if (result === 'full') return;
    if (result !== 'drained') {
      this.#destroy(result);
      return;
    }
    this.#updatePoll();
    if (!this.#destroyed) this.emit('drain');
  }

  #read(): void {
    for (let i = 0; i < READ_BUDGET && !this.#paused && !this.#destroyed; i++) {
      const got = this.#inbox.receive(this.#fd);
      if (got.kind === 'empty') return;
      if (got.kind === 'end' || (got.kind === 'truncated' && !this.#reportTruncated)) {
        this.#destroy(got.error);
        return;
      }
      if (got.kind === 'truncated') {
        this.emit('truncated', got.error);
        continue;
      }
      // Fds nobody listens for would leak: close them.
      if (!this.emit('message', got.data, got.fds)) closeAll(got.fds);
    }
  }

  #destroy(err: RingwireError | undefined): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#poller.close();
    native().close(this.#fd);
    this.#fd = -1;
    this.#outbox.discard();
    process.nextTick(() => {
      if (err) this.emit('error', err);
      this.emit('close');
    });
  }

  /** FdServer's way to wrap an accepted connection; private to ringwire (see wrapAccepted). */
  static [wrapAccepted](fd: number, opts: Required<FdSocketOptions>): FdSocket {
    return new FdSocket(fd, opts);
  }
}
