/**
 * UNIX domain sockets that carry file descriptors (SCM_RIGHTS), on the libuv loop.
 *
 * Two types: 'seqpacket' (ringwire's handshake: each send is one message, each 'message' event one
 * message) and 'stream' (the ivshmem-server and vhost-user protocols: each 'message' is one
 * recvmsg's chunk of bytes with whatever fds arrived with it; the caller frames).
 *
 * Concurrency contract: an FdSocket or FdServer belongs to the thread that created it. Events are
 * emitted on that thread's event loop; 'error' (at most once) is always followed by 'close' (exactly
 * once), both asynchronously.
 *
 * Fd ownership: fds passed to send() stay the caller's (they are duplicated if the message must be
 * queued). Fds delivered by 'message' belong to the listener, are close-on-exec, and are closed by
 * nobody else; fds that arrive with a truncated message are closed and the socket fails with
 * ERR_MSG_TRUNCATED.
 */
import { EventEmitter } from 'node:events';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { ringwireError, type RingwireError } from './errors.js';
import { assertFd, check, native, nativeError, type NativePoller } from './native.js';

export type SocketType = 'seqpacket' | 'stream';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export interface FdSocketOptions {
  type?: SocketType;
  /** Receive buffer: the largest seqpacket message accepted, or the largest stream chunk. Default 64 KiB. */
  maxMessageSize?: number;
  /** Most fds accepted with one message (1..253, default 253); more is ERR_MSG_TRUNCATED. */
  maxFds?: number;
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
const EAGAIN = 11;
const EPIPE = 32;
const ECONNRESET = 104;
const ECONNREFUSED = 111;
const EMFILE = 24;
const ENFILE = 23;
const EPROTOTYPE = 91;
const EADDRINUSE = 98;
/** sizeof(sockaddr_un.sun_path). */
const SUN_PATH = 108;
const wrapAccepted = Symbol('wrapAccepted');
/** Messages handled per loop wake-up before yielding to other work. */
const READ_BUDGET = 64;

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

function socketOptions(opts: FdSocketOptions): Required<FdSocketOptions> {
  if (typeof opts !== 'object' || opts === null) throw ringwireError('ERR_INVALID_ARG', 'options must be an object');
  const type = opts.type ?? 'seqpacket';
  if (type !== 'seqpacket' && type !== 'stream') throw ringwireError('ERR_INVALID_ARG', `type must be 'seqpacket' or 'stream', got ${String(type)}`);
  const maxMessageSize = opts.maxMessageSize ?? 65536;
  if (!Number.isInteger(maxMessageSize) || maxMessageSize < 1 || maxMessageSize > 1 << 24) {
    throw ringwireError('ERR_OUT_OF_RANGE', `maxMessageSize must be an integer 1..16 MiB, got ${maxMessageSize}`);
  }
  const maxFds = opts.maxFds ?? MAX_FDS;
  if (!Number.isInteger(maxFds) || maxFds < 0 || maxFds > MAX_FDS) throw ringwireError('ERR_OUT_OF_RANGE', `maxFds must be an integer 0..${MAX_FDS}, got ${maxFds}`);
  return { type, maxMessageSize, maxFds };
}

function closeAll(fds: Iterable<number>): void {
  const addon = native();
  for (const fd of fds) addon.close(fd);
}

interface Pending {
  data: Uint8Array;
  /** Duplicates owned by the queue, closed once sent. */
  fds: number[];
}

export interface FdSocket {
  on(event: 'message', listener: (data: Buffer, fds: number[]) => void): this;
  on(event: 'error', listener: (err: RingwireError) => void): this;
  on(event: 'close' | 'drain', listener: () => void): this;
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
  #queue: Pending[] = [];
  #queuedBytes = 0;
  #recvBuf: Buffer;
  #fdsOut: Int32Array;
  #meta = new Int32Array(2);

  private constructor(fd: number, opts: Required<FdSocketOptions>) {
    super();
    this.type = opts.type;
    this.#fd = fd;
    this.#recvBuf = Buffer.allocUnsafe(opts.maxMessageSize);
    this.#fdsOut = new Int32Array(opts.maxFds);
    const addon = native();
    this.#poller = new addon.Poller();
    check('uv_poll_init', this.#poller.open(fd));
    this.#updatePoll();
  }

  /** Connects to a path or '@abstract' name. */
  static async connect(address: string, opts: ConnectOptions = {}): Promise<FdSocket> {
    const bytes = encodeAddress(address);
    const sopts = socketOptions(opts);
    const timeoutMs = opts.timeoutMs ?? 5000;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw ringwireError('ERR_OUT_OF_RANGE', `timeoutMs must be a finite number >= 0, got ${timeoutMs}`);
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
    return this.#queuedBytes;
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
    const addon = native();
    let sent = 0;
    if (this.#queue.length === 0) {
      const r = addon.sendmsg(this.#fd, data, Int32Array.from(fds));
      if (r < 0 && r !== -EAGAIN) throw this.#sendError(r);
      if (r === data.length) return;
      sent = Math.max(r, 0);
    }
    const pending: Pending = { data: Buffer.from(data.subarray(sent)), fds: [] };
    if (sent === 0) {
      try {
        for (const fd of fds) pending.fds.push(check('dup', addon.dup(fd), `fd ${fd}`));
      } catch (err) {
        closeAll(pending.fds);
        throw err;
      }
    }
    this.#queue.push(pending);
    this.#queuedBytes += pending.data.length;
    this.#updatePoll();
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

  #sendError(r: number): RingwireError {
    if (r === -EPIPE || r === -ECONNRESET) {
      return ringwireError('ERR_PEER_GONE', 'sendmsg: the peer closed the socket', { errno: -r, syscall: 'sendmsg', cause: nativeError('sendmsg', r) });
    }
    return nativeError('sendmsg', r);
  }

  #updatePoll(): void {
    if (this.#destroyed) return;
    const events = native().pollEvents;
    const mask = (this.#paused ? 0 : events.readable) | (this.#queue.length > 0 ? events.writable : 0);
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
    const addon = native();
    while (this.#queue.length > 0 && !this.#destroyed) {
      const head = this.#queue[0]!;
      const r = addon.sendmsg(this.#fd, head.data, Int32Array.from(head.fds));
      if (r === -EAGAIN) return;
      if (r < 0) {
        this.#destroy(this.#sendError(r));
        return;
      }
      // The kernel holds its own references to fds it accepted; ours are no longer needed.
      closeAll(head.fds);
      head.fds = [];
      this.#queuedBytes -= r;
      if (r < head.data.length) {
        head.data = head.data.subarray(r);
        return;
      }
      this.#queue.shift();
    }
    this.#updatePoll();
    if (!this.#destroyed) this.emit('drain');
  }

  #read(): void {
    const addon = native();
    const { MSG_TRUNC, MSG_CTRUNC } = addon.msgFlags;
    for (let i = 0; i < READ_BUDGET && !this.#paused && !this.#destroyed; i++) {
      const n = addon.recvmsg(this.#fd, this.#recvBuf, this.#fdsOut, this.#meta);
      if (n === -EAGAIN) return;
      if (n < 0) {
        this.#destroy(n === -ECONNRESET ? ringwireError('ERR_PEER_GONE', 'recvmsg: connection reset by peer', { errno: -n, syscall: 'recvmsg' }) : nativeError('recvmsg', n));
        return;
      }
      const fds = Array.from(this.#fdsOut.subarray(0, this.#meta[0]!));
      const flags = this.#meta[1]!;
      if (flags & (MSG_TRUNC | MSG_CTRUNC)) {
        closeAll(fds);
        const what = flags & MSG_CTRUNC ? `more fds than maxFds (${this.#fdsOut.length}) or the fd limit allows` : `a message larger than maxMessageSize (${this.#recvBuf.length})`;
        this.#destroy(ringwireError('ERR_MSG_TRUNCATED', `recvmsg: the peer sent ${what}; ${fds.length} fd(s) that arrived were closed`));
        return;
      }
      if (n === 0 && fds.length === 0) {
        this.#destroy(undefined);
        return;
      }
      // Fds nobody listens for would leak: close them.
      if (!this.emit('message', Buffer.from(this.#recvBuf.subarray(0, n)), fds)) closeAll(fds);
    }
  }

  #destroy(err: RingwireError | undefined): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#poller.close();
    native().close(this.#fd);
    this.#fd = -1;
    for (const p of this.#queue) closeAll(p.fds);
    this.#queue = [];
    this.#queuedBytes = 0;
    process.nextTick(() => {
      if (err) this.emit('error', err);
      this.emit('close');
    });
  }

  /** FdServer's way to wrap an accepted connection; module-private. */
  static [wrapAccepted](fd: number, opts: Required<FdSocketOptions>): FdSocket {
    return new FdSocket(fd, opts);
  }
}

export interface FdServer {
  on(event: 'connection', listener: (sock: FdSocket) => void): this;
  on(event: 'error', listener: (err: RingwireError) => void): this;
  on(event: 'close', listener: () => void): this;
}

export class FdServer extends EventEmitter {
  readonly address: string;
  #fd: number;
  #poller: NativePoller;
  #socketOpts: Required<FdSocketOptions>;
  /** Inode of the socket file we bound, so close() never unlinks someone else's file. */
  #boundIno: number | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(address: string, fd: number, socketOpts: Required<FdSocketOptions>, boundIno: number | undefined) {
    super();
    this.address = address;
    this.#fd = fd;
    this.#socketOpts = socketOpts;
    this.#boundIno = boundIno;
    const addon = native();
    this.#poller = new addon.Poller();
    try {
      check('uv_poll_init', this.#poller.open(fd));
      this.#startAccepting();
    } catch (err) {
      // listen() closes the fd; the poll handle is ours to release, or it outlives the fd.
      this.#poller.close();
      throw err;
    }
  }

  /**
   * Listens on a path or '@abstract' name. An existing socket file at the path is replaced only when
   * nothing answers on it (a stale socket); any other file there is an error.
   */
  static listen(address: string, opts: ListenOptions = {}): FdServer {
    const bytes = encodeAddress(address);
    const sopts = socketOptions(opts);
    const backlog = opts.backlog ?? 128;
    if (!Number.isInteger(backlog) || backlog < 1 || backlog > 65535) throw ringwireError('ERR_OUT_OF_RANGE', `backlog must be 1..65535, got ${backlog}`);
    if (opts.mode !== undefined && (!Number.isInteger(opts.mode) || opts.mode < 0 || opts.mode > 0o7777)) {
      throw ringwireError('ERR_OUT_OF_RANGE', `mode must be a permission mask 0..0o7777, got ${opts.mode}`);
    }
    const isPath = !address.startsWith('@');
    if (isPath) removeStaleSocket(address, bytes, sopts.type);
    const addon = native();
    const fd = check('socket', addon.socket(sopts.type === 'stream'));
    let created = false;
    try {
      check('bind', addon.bind(fd, bytes), address);
      created = isPath;
      let ino: number | undefined;
      if (isPath) {
        if (opts.mode !== undefined) chmodSync(address, opts.mode);
        ino = lstatSync(address).ino;
      }
      check('listen', addon.listen(fd, backlog), address);
      return new FdServer(address, fd, sopts, ino);
    } catch (err) {
      addon.close(fd);
      if (created) unlinkSync(address);
      throw err;
    }
  }

  /** Stops accepting, closes the listening socket and unlinks the path it created. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#poller.close();
    native().close(this.#fd);
    this.#fd = -1;
    if (this.#boundIno !== undefined) {
      try {
        if (lstatSync(this.address).ino === this.#boundIno) unlinkSync(this.address);
      } catch {
        // Already removed by someone else: nothing of ours to clean up.
      }
    }
    process.nextTick(() => this.emit('close'));
  }

  #startAccepting(): void {
    const r = this.#poller.start(native().pollEvents.readable, (status) => this.#accept(status));
    if (r < 0) throw nativeError('uv_poll_start', r, this.address);
  }

  #accept(status: number): void {
    if (this.#closed) return;
    if (status < 0) {
      this.emit('error', nativeError('uv_poll', status, this.address));
      return;
    }
    const addon = native();
    for (let i = 0; i < READ_BUDGET && !this.#closed; i++) {
      const fd = addon.accept(this.#fd);
      if (fd === -EAGAIN) return;
      if (fd === -EMFILE || fd === -ENFILE) {
        // The pending connection stays readable; pause instead of spinning until fds free up.
        this.#poller.stop();
        this.#retryTimer = setTimeout(() => this.#closed || this.#startAccepting(), 100);
        this.emit('error', nativeError('accept', fd, this.address));
        return;
      }
      if (fd < 0) continue; // the connecting peer gave up (ECONNABORTED and the like): serve the next
      let sock: FdSocket;
      try {
        sock = FdSocket[wrapAccepted](fd, this.#socketOpts);
      } catch (err) {
        addon.close(fd);
        this.emit('error', err);
        continue;
      }
      this.emit('connection', sock);
    }
  }
}

/** Unlinks a socket file at `path` if nothing is listening on it; refuses to touch anything else. */
function removeStaleSocket(path: string, bytes: Uint8Array, type: SocketType): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw ringwireError('ERR_INVALID_ARG', `${path} exists and is not a socket; refusing to replace it`);
  const addon = native();
  const probe = check('socket', addon.socket(type === 'stream'));
  const r = addon.connect(probe, bytes);
  addon.close(probe);
  // EPROTOTYPE: a listener of the other socket type is alive there.
  if (r === 0 || r === -EAGAIN || r === -EPROTOTYPE) throw nativeError('bind', -EADDRINUSE, `${path} has a live listener`);
  if (r === -ECONNREFUSED) unlinkSync(path);
}
