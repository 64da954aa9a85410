/**
 * EventFdDoorbell: the Doorbell between processes, over an eventfd. ring() adds to the counter;
 * waiting consumes it. The counter is level-triggered, so a ring() before wait() is never lost and
 * no prepare() step is needed.
 *
 * Concurrency contract: ring() from any process or thread holding the fd. wait()/waitSync()/close()
 * from the thread that owns this object; several wait() calls may be pending at once and one ring
 * wakes them all.
 */
import type { Doorbell } from '../ring/doorbell.js';
import { ringwireError } from '../errors.js';
import { EventFd, pollTimeout } from './eventfd.js';

interface Waiter {
  resolve(rung: boolean): void;
  timer: NodeJS.Timeout | undefined;
}

export class EventFdDoorbell implements Doorbell {
  readonly eventfd: EventFd;
  #waiters = new Set<Waiter>();
  #broken = false;

  /** Takes ownership of `eventfd`: close() closes it. */
  constructor(eventfd: EventFd) {
    if (!(eventfd instanceof EventFd)) throw ringwireError('ERR_INVALID_ARG', 'EventFdDoorbell needs an EventFd');
    this.eventfd = eventfd;
  }

  static create(): EventFdDoorbell {
    return new EventFdDoorbell(EventFd.create());
  }

  /** Takes ownership of an eventfd received from a peer. */
  static fromFd(fd: number): EventFdDoorbell {
    return new EventFdDoorbell(EventFd.fromFd(fd));
  }

  get fd(): number {
    return this.eventfd.fd;
  }

  /**
   * False once closed, or once a ring() found the fd unusable (closed behind our back): such a bell
   * never rings again, and a DoorbellGroup drops it.
   */
  get live(): boolean {
    return !this.#broken && this.eventfd.fd >= 0;
  }

  /**
   * Never throws: it runs after a ring has already published, where a throw would make callers
   * retry what was sent. A full counter (a peer saturated it) counts as rung, since the waiter sees
   * a non-zero count; a closed bell is a no-op; any other failure marks the bell dead (see live).
   */
  ring(): void {
    if (!this.live) return;
    try {
      this.eventfd.signal(1);
    } catch {
      this.#broken = true;
    }
  }

  wait(timeoutMs: number): Promise<boolean> {
    const timeout = pollTimeout(timeoutMs);
    if (this.eventfd.fd < 0) return Promise.reject(ringwireError('ERR_RING_CLOSED', 'doorbell is closed'));
    if (this.#drainForAll()) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = { resolve, timer: undefined };
      if (timeout >= 0) waiter.timer = setTimeout(() => this.#settle(waiter, false), timeout);
      this.#waiters.add(waiter);
      if (this.#waiters.size === 1) this.eventfd.onReadable(() => this.#onReadable());
    });
  }

  waitSync(timeoutMs: number): boolean {
    if (this.#drainForAll()) return true;
    if (!this.eventfd.waitSync(timeoutMs)) return false;
    this.#drainForAll();
    return true;
  }

  /** Resolves pending waits with false and closes the eventfd. Idempotent. */
  close(): void {
    for (const w of [...this.#waiters]) this.#settle(w, false);
    this.eventfd.close();
  }

  #onReadable(): void {
    this.#drainForAll();
  }

  /**
   * Drains the counter; a non-zero count was one ring for every waiter on this object, so all the
   * pending ones are settled as rung too (else whoever drained first would swallow their ring and
   * leave them parked until their timeout). True when the bell had been rung.
   */
  #drainForAll(): boolean {
    if (this.eventfd.drain() === 0) return false;
    for (const w of [...this.#waiters]) this.#settle(w, true);
    return true;
  }

  #settle(waiter: Waiter, rung: boolean): void {
    if (!this.#waiters.delete(waiter)) return;
    clearTimeout(waiter.timer);
    if (this.#waiters.size === 0 && this.eventfd.fd >= 0) this.eventfd.offReadable();
    waiter.resolve(rung);
  }
}
