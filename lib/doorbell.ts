/**
 * A doorbell wakes a consumer that has gone to sleep. Rings decide *whether* to ring (notification
 * suppression, see ring waiting flags); a doorbell only knows *how*: Atomics.notify between threads,
 * an eventfd between processes, an ivshmem doorbell register or a virtio call fd between VMs.
 *
 * Contract: ring() may be called from any thread or process that holds the bell; a ring() that
 * happens before wait() begins must make that wait() return promptly (the bell is level- or
 * count-triggered, never a lost edge). Spurious wake-ups are allowed: callers re-check their ring.
 */
export interface Doorbell {
  /** Wakes the waiter (if any). Cheap, non-blocking, never throws for a live bell. */
  ring(): void;
  /** Parks without blocking the event loop until rung or `timeoutMs` passes; true if rung. */
  wait(timeoutMs: number): Promise<boolean>;
  /** Blocks the calling thread until rung or timeout; true if rung. Only where blocking is allowed (workers). */
  waitSync?(timeoutMs: number): boolean;
  /** Releases what the bell holds (fds, poll handles). Idempotent. */
  close(): void;
}
