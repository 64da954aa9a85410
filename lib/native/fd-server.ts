/**
 * FdServer: a listening UNIX socket on the libuv loop that hands out each accepted connection as an
 * FdSocket. It owns the socket file it bound, and replaces a stale one but nothing else. The
 * contracts are in unix-socket.ts.
 */
import { EventEmitter } from 'node:events';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { ringwireError, type RingwireError } from '../errors.js';
import { assertFd, check, native, nativeError, type NativePoller } from './native.js';
import { FdSocket, wrapAccepted } from './fd-socket.js';
import { encodeAddress, listenOptions, socketOptions, type FdSocketOptions, type ListenOptions, type SocketType } from './unix-socket-options.js';
import { EADDRINUSE, EAGAIN, ECONNREFUSED, EMFILE, ENFILE, EPROTOTYPE, READ_BUDGET } from './unix-socket-sys.js';

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
    const { socket: sopts, backlog, mode } = listenOptions(opts);
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
        if (mode !== undefined) chmodSync(address, mode);
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

  /**
   * Accepts on a socket someone else bound and made listen (e.g. one opened inside another network
   * namespace and passed over); takes ownership of `fd`. `label` names it in errors.
   */
  static fromFd(fd: number, opts: FdSocketOptions = {}, label = `fd ${fd}`): FdServer {
    assertFd(fd);
    const sopts = socketOptions(opts);
    check('fcntl(F_SETFL)', native().setNonblocking(fd), label);
    return new FdServer(label, fd, sopts, undefined);
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
