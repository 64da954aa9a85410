/**
 * Outstanding requests of one channel: correlation ids, timeouts and AbortSignal cancellation.
 * A response for an id nobody waits for (timed out, aborted) is dropped: the caller has moved on.
 */
import { ringwireError, type RingwireError } from '../errors.js';
import { MAX_REQUEST_ID } from './records.js';

export interface RequestOptions {
  /** Rejects with ERR_TIMEOUT after this long; default: the channel's requestTimeoutMs. */
  timeoutMs?: number;
  /** Rejects with ERR_ABORTED when aborted; a late response is then ignored. */
  signal?: AbortSignal;
}

interface Pending {
  resolve(value: Buffer): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | undefined;
  /** performance.now() after which the sweep fails it (requests on the default timeout). */
  deadline: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * Requests on the channel's default timeout share one sweeping timer instead of a timer each (a
 * timer per round trip is measurable at microsecond latencies); they fail within SWEEP_MS of
 * their deadline. A request with its own timeoutMs gets its own precise timer.
 */
const SWEEP_MS = 250;

export class Requests {
  #pending = new Map<number, Pending>();
  #sweeper: NodeJS.Timeout | undefined;
  #nextId = 1;
  #defaultTimeoutMs: number;
  #stats = { sent: 0, answered: 0, timedOut: 0, aborted: 0 };

  #onIdle: () => void;

  /** `onIdle` runs whenever the last outstanding request settles (the channel may then finish closing). */
  constructor(defaultTimeoutMs: number, onIdle: () => void = () => {}) {
    this.#onIdle = onIdle;
    if (typeof defaultTimeoutMs !== 'number' || !(defaultTimeoutMs > 0)) throw ringwireError('ERR_OUT_OF_RANGE', `requestTimeoutMs must be > 0 or Infinity, got ${defaultTimeoutMs}`);
    this.#defaultTimeoutMs = defaultTimeoutMs;
  }

  get size(): number {
    return this.#pending.size;
  }

  pending(id: number): boolean {
    return this.#pending.has(id);
  }

  #allocateId(): number {
    if (this.#pending.size >= MAX_REQUEST_ID) throw ringwireError('ERR_OUT_OF_RANGE', `more than ${MAX_REQUEST_ID} requests outstanding`);
    for (;;) {
      const id = this.#nextId;
      this.#nextId = id >= MAX_REQUEST_ID ? 1 : id + 1;
      if (!this.#pending.has(id)) return id;
    }
  }

  start(opts: RequestOptions): { id: number; promise: Promise<Buffer> } {
    if (typeof opts !== 'object' || opts === null) throw ringwireError('ERR_INVALID_ARG', 'request options must be an object');
    const own = opts.timeoutMs !== undefined;
    const timeoutMs = opts.timeoutMs ?? this.#defaultTimeoutMs;
    if (typeof timeoutMs !== 'number' || !(timeoutMs > 0)) throw ringwireError('ERR_OUT_OF_RANGE', `timeoutMs must be > 0 or Infinity, got ${timeoutMs}`);
    if (opts.signal?.aborted) throw ringwireError('ERR_ABORTED', 'request aborted before it was sent', { cause: opts.signal.reason });
    const id = this.#allocateId();
    this.#stats.sent++;
    const promise = new Promise<Buffer>((resolve, reject) => {
      const p: Pending = { resolve, reject, timer: undefined, deadline: Infinity, signal: opts.signal, onAbort: undefined };
      if (timeoutMs !== Infinity && own) {
        p.timer = setTimeout(() => this.#timeout(id, timeoutMs), Math.min(timeoutMs, 2 ** 31 - 1));
      } else if (timeoutMs !== Infinity) {
        p.deadline = performance.now() + timeoutMs;
        this.#sweeper ??= setInterval(() => this.#sweep(), SWEEP_MS);
      }
      if (opts.signal) {
        const signal = opts.signal;
        p.onAbort = () => {
          this.#stats.aborted++;
          this.fail(id, ringwireError('ERR_ABORTED', 'request aborted', { cause: signal.reason }));
        };
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.#pending.set(id, p);
    });
    return { id, promise };
  }

  #timeout(id: number, timeoutMs: number): void {
    this.#stats.timedOut++;
    this.fail(id, ringwireError('ERR_TIMEOUT', `no response within ${timeoutMs} ms`));
  }

  #sweep(): void {
    const now = performance.now();
    for (const [id, p] of this.#pending) if (p.deadline <= now) this.#timeout(id, this.#defaultTimeoutMs);
    if (this.#pending.size === 0) this.#stopSweeper();
  }

  #stopSweeper(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  #take(id: number): Pending | undefined {
    const p = this.#pending.get(id);
    if (!p) return undefined;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    if (this.#pending.size === 0) queueMicrotask(this.#onIdle);
    return p;
  }

  answer(id: number, value: Buffer): void {
    const p = this.#take(id);
    if (!p) return;
    this.#stats.answered++;
    p.resolve(value);
  }

  fail(id: number, err: Error): void {
    this.#take(id)?.reject(err);
  }

  failAll(err: RingwireError): void {
    for (const id of [...this.#pending.keys()]) this.fail(id, err);
    this.#stopSweeper();
  }

  stats(): { sent: number; answered: number; timedOut: number; aborted: number } {
    return { ...this.#stats };
  }
}
