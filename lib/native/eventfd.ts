/**
 * EventFd: a Linux eventfd, the cross-process doorbell. signal() adds to a 64-bit counter, drain()
 * reads and resets it, and the fd is readable while the counter is non-zero (level-triggered, so a
 * signal before anyone waits is never lost).
 *
 * Concurrency contract: signal() may be called from any process or thread holding the fd (it is one
 * poll(2) and one write(2)). onReadable/offReadable/close belong to the thread that created the
 * EventFd object; waitSync blocks its thread and is meant for workers. A peer holding the fd can
 * clear O_NONBLOCK on the description we share; signal() and drain() never block regardless.
 */
import { readlinkSync } from 'node:fs';
import { ringwireError } from '../errors.js';
import { assertFd, check, native, POLLIN, type NativePoller } from './native.js';

const EAGAIN = 11;
const EBADF = 9;
/** poll(2) reports an fd that is not open. */
const POLLNVAL = 0x20;

/** Converts a timeout in ms (Infinity waits forever) to the addon's int32 ms (-1 = forever). */
export function pollTimeout(timeoutMs: number): number {
  if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs)) throw ringwireError('ERR_INVALID_ARG', 'timeoutMs must be a number');
  if (timeoutMs === Infinity) return -1;
  if (timeoutMs < 0 || timeoutMs > 0x7fffffff) throw ringwireError('ERR_OUT_OF_RANGE', `timeoutMs must be 0..2^31-1 or Infinity, got ${timeoutMs}`);
  return Math.ceil(timeoutMs);
}

export class EventFd {
  #fd: number;
  #poller: NativePoller | undefined;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** A new non-blocking, close-on-exec eventfd; `semaphore` makes drain() take 1 at a time. */
  static create(opts: { semaphore?: boolean } = {}): EventFd {
    if (typeof opts !== 'object' || opts === null) throw ringwireError('ERR_INVALID_ARG', 'options must be an object');
    if (opts.semaphore !== undefined && typeof opts.semaphore !== 'boolean') throw ringwireError('ERR_INVALID_ARG', 'options.semaphore must be a boolean');
    return new EventFd(check('eventfd', native().eventfdCreate(opts.semaphore ?? false)));
  }

  /**
   * Takes ownership of an eventfd received from a peer and makes it non-blocking. The sender shares
   * that flag and may clear it again, so drain() and signal() do not depend on it (docs/native.md).
   * Throws ERR_INVALID_ARG when the fd is not an eventfd; on any error the caller still owns the fd.
   */
  static fromFd(fd: number): EventFd {
    assertFd(fd);
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch (err) {
      throw ringwireError('ERR_NATIVE', `fd ${fd} is not open`, { cause: err, errno: EBADF, syscall: 'readlink' });
    }
    if (target !== 'anon_inode:[eventfd]') throw ringwireError('ERR_INVALID_ARG', `fd ${fd} is not an eventfd (${target})`);
    check('fcntl(F_SETFL)', native().setNonblocking(fd), `fd ${fd}`);
    return new EventFd(fd);
  }

  /** The eventfd; -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  /**
   * Adds `n` (default 1) to the counter, waking any waiter. False when the counter has no room for
   * `n` (a peer holding the fd may have filled it): it is then far above zero, so the fd is readable
   * and no waiter can miss it. Never blocks, even if a peer cleared O_NONBLOCK (docs/native.md).
   */
  signal(n = 1): boolean {
    if (!Number.isSafeInteger(n) || n < 1) throw ringwireError('ERR_OUT_OF_RANGE', `signal count must be an integer 1..2^53-1, got ${n}`);
    const r = native().eventfdWrite(this.#liveFd(), n);
    if (r === -EAGAIN) return false;
    this.#checkFd('write(eventfd)', r);
    return true;
  }

  /**
   * Reads and resets the counter (or takes 1 in semaphore mode); 0 when nothing is pending. Never
   * blocks, even if a peer cleared O_NONBLOCK.
   */
  drain(): number {
    const r = native().eventfdRead(this.#liveFd());
    if (r === -EAGAIN) return 0;
    return this.#checkFd('read(eventfd)', r);
  }

  /**
   * Calls `cb` on the event loop each time the fd is readable, until offReadable() or close(). The
   * eventfd is level-triggered: `cb` should drain(), or it is called again at once. One callback at
   * a time; a second call replaces the first.
   */
  onReadable(cb: () => void): void {
    if (typeof cb !== 'function') throw ringwireError('ERR_INVALID_ARG', 'callback must be a function');
    const addon = native();
    const fd = this.#liveFd();
    if (!this.#poller) {
      const poller = new addon.Poller();
      check('uv_poll_init', poller.open(fd));
      this.#poller = poller;
    }
    check('uv_poll_start', this.#poller.start(addon.pollEvents.readable, () => cb()));
  }

  /** Stops calling the onReadable callback; it may be registered again later. */
  offReadable(): void {
    this.#poller?.stop();
  }

  /** Blocks this thread until the fd is readable or `timeoutMs` passes; true if readable. Does not drain. */
  waitSync(timeoutMs: number): boolean {
    const timeout = pollTimeout(timeoutMs);
    const revents = check('poll', native().pollWait(this.#liveFd(), POLLIN, timeout));
    if (revents & POLLNVAL) this.#checkFd('poll', -EBADF);
    return revents !== 0;
  }

  /** Stops the poll handle and closes the fd. Idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    this.#poller?.close();
    this.#poller = undefined;
    const fd = this.#fd;
    this.#fd = -1;
    check('close', native().close(fd));
  }

  /**
   * check() for a call on our fd. EBADF means the number was closed behind our back: forget it, so
   * that close() cannot later close whatever file reuses the number.
   */
  #checkFd(syscall: string, r: number): number {
    if (r === -EBADF) {
      this.#poller?.close();
      this.#poller = undefined;
      this.#fd = -1;
    }
    return check(syscall, r);
  }

  #liveFd(): number {
    if (this.#fd < 0) throw ringwireError('ERR_RING_CLOSED', 'eventfd is closed');
    return this.#fd;
  }
}
