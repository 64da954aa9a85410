/**
 * Adaptive waiting shared by consumers (waiting for data) and producers (waiting for space):
 * spin briefly, then publish a waiting flag, re-check, and park on the doorbell (design rule 4).
 */
import type { Doorbell } from './doorbell.js';
import { ringwireError } from '../errors.js';

export interface WaitOptions {
  /** Polls before parking. Spinning burns a core but answers in well under a microsecond. */
  spin?: number;
  /** Give up after this long; the wait then resolves false. Default: wait forever. */
  timeoutMs?: number;
  /** Cancels the wait with ERR_ABORTED. */
  signal?: AbortSignal;
}

/** The side that waits: how to re-check, and how to publish that it sleeps. */
export interface WaitingSide {
  /** True when the awaited condition holds (data to read, space to write). */
  ready(): boolean;
  /** Publishes (true) or withdraws (false) the waiting flag the other side checks before ringing. */
  setWaiting(on: boolean): void;
}

export const DEFAULT_SPIN = 256;
/** Longest single park: bounds the cost of a wake-up lost to a dead or misbehaving peer. */
const MAX_PARK_MS = 1000;
/** Without a doorbell (a guest without interrupts), poll with this back-off ceiling. */
const MAX_POLL_BACKOFF_MS = 1;

function aborted(signal: AbortSignal): Error {
  return ringwireError('ERR_ABORTED', 'wait aborted', { cause: signal.reason });
}

function onAbort(signal: AbortSignal | undefined): { promise: Promise<never>; dispose(): void } | undefined {
  if (!signal) return undefined;
  let listener!: () => void;
  const promise = new Promise<never>((_, reject) => {
    listener = () => reject(aborted(signal));
    signal.addEventListener('abort', listener, { once: true });
  });
  promise.catch(() => {});
  return { promise, dispose: () => signal.removeEventListener('abort', listener) };
}

/**
 * Waits until `side.ready()`. Resolves true when ready, false on timeout. The ordering that makes
 * this free of lost wake-ups: setWaiting(true) is a seq-cst store, and so is the other side's
 * publishing store (an SPSC record's word 0, an MPSC state word, or the head); each then loads the other's word. At least one of the two sees the
 * other's store: either we see the new data in the re-check, or the other side sees our flag and rings.
 */
export async function waitUntil(side: WaitingSide, bell: Doorbell | undefined, opts: WaitOptions = {}): Promise<boolean> {
  const spin = opts.spin ?? DEFAULT_SPIN;
  for (let i = 0; i < spin; i++) if (side.ready()) return true;
  const deadline = opts.timeoutMs === undefined ? Infinity : performance.now() + opts.timeoutMs;
  const abort = onAbort(opts.signal);
  let backoff = 0;
  try {
    for (;;) {
      if (opts.signal?.aborted) throw aborted(opts.signal);
      const remaining = deadline - performance.now();
      if (remaining <= 0) return side.ready();
      if (!bell) {
        if (side.ready()) return true;
        const delay = backoff;
        backoff = Math.min(MAX_POLL_BACKOFF_MS, backoff + 0.05);
        const tick = delay < 0.05 ? new Promise((r) => setImmediate(r)) : new Promise((r) => setTimeout(r, delay));
        await (abort ? Promise.race([tick, abort.promise]) : tick);
        continue;
      }
      bell.prepare?.();
      side.setWaiting(true);
      try {
        if (side.ready()) return true;
        const park = bell.wait(Math.min(remaining, MAX_PARK_MS));
        await (abort ? Promise.race([park, abort.promise]) : park);
      } finally {
        side.setWaiting(false);
      }
      if (side.ready()) return true;
    }
  } finally {
    abort?.dispose();
  }
}

/** As waitUntil, blocking the thread (worker threads only; needs a bell with waitSync). */
export function waitUntilSync(side: WaitingSide, bell: Doorbell | undefined, timeoutMs = Infinity, spin = DEFAULT_SPIN): boolean {
  for (let i = 0; i < spin; i++) if (side.ready()) return true;
  if (!bell?.waitSync) {
    throw ringwireError('ERR_INVALID_ARG', 'a blocking wait needs a doorbell with waitSync()');
  }
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const remaining = deadline - performance.now();
    if (remaining <= 0) return side.ready();
    bell.prepare?.();
    side.setWaiting(true);
    try {
      if (side.ready()) return true;
      bell.waitSync(Math.min(remaining, MAX_PARK_MS));
    } finally {
      side.setWaiting(false);
    }
    if (side.ready()) return true;
  }
}
