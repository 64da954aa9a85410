/**
 * A doorbell wakes a side that has gone to sleep. Rings decide *whether* to ring (notification
 * suppression through the waiting flags in layout.ts); a doorbell only knows *how*:
 * Atomics.notify between threads, an eventfd between processes, an ivshmem doorbell register or a
 * virtio call fd between VMs.
 *
 * Contract: ring() may be called from any thread or process that holds the bell. A ring() that
 * happens after prepare() makes the next wait() return promptly (no lost wake-up). Spurious
 * wake-ups are allowed: callers always re-check their ring after waking.
 */
export interface Doorbell {
  /** Wakes the waiter (if any). Cheap, non-blocking, never throws for a live bell. */
  ring(): void;
  /**
   * Called by the waiter after it publishes its waiting flag and before its last re-check of the
   * ring. Bells that are level-triggered by nature (an eventfd counter) need not implement it.
   */
  prepare?(): void;
  /** Parks without blocking the event loop until rung or `timeoutMs` passes; true if rung. */
  wait(timeoutMs: number): Promise<boolean>;
  /** Blocks the calling thread until rung or timeout; true if rung. Only where blocking is allowed (workers). */
  waitSync?(timeoutMs: number): boolean;
  /** Releases what the bell holds (fds, poll handles). Idempotent. */
  close(): void;
}

/**
 * A doorbell between threads of one process: a sequence word in a SharedArrayBuffer, bumped and
 * notified by ring(), waited on with Atomics.waitAsync / Atomics.wait. Both sides construct it over
 * the same buffer (post the buffer to the worker). Not for processes: V8's Atomics.notify only
 * wakes waiters in its own process.
 */
export class AtomicsDoorbell implements Doorbell {
  readonly buffer: SharedArrayBuffer;
  readonly index: number;
  #word: Int32Array;
  #seen = 0;

  static create(): AtomicsDoorbell {
    return new AtomicsDoorbell(new SharedArrayBuffer(4), 0);
  }

  constructor(buffer: SharedArrayBuffer, index = 0) {
    this.buffer = buffer;
    this.index = index;
    this.#word = new Int32Array(buffer);
    if (!Number.isInteger(index) || index < 0 || index >= this.#word.length) {
      throw new RangeError(`doorbell word index ${index} is outside its buffer`);
    }
  }

  ring(): void {
    Atomics.add(this.#word, this.index, 1);
    Atomics.notify(this.#word, this.index);
  }

  prepare(): void {
    this.#seen = Atomics.load(this.#word, this.index);
  }

  wait(timeoutMs: number): Promise<boolean> {
    const r = Atomics.waitAsync(this.#word, this.index, this.#seen, timeoutMs);
    if (!r.async) return Promise.resolve(r.value === 'not-equal');
    // A pending waitAsync neither keeps Node's event loop alive nor reliably settles its timeout
    // once the loop is idle; a parked receiver should behave like a pending socket read. So a
    // libuv timer owns the timeout, and V8's own timeout only reclaims its waiter record.
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), Math.min(timeoutMs, 2 ** 31 - 1));
      r.value.then((v) => {
        clearTimeout(timer);
        resolve(v === 'ok');
      });
    });
  }

  waitSync(timeoutMs: number): boolean {
    return Atomics.wait(this.#word, this.index, this.#seen, timeoutMs) !== 'timed-out';
  }

  close(): void {}
}
