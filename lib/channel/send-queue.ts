/**
 * The ordered queue of records waiting for space in the outbound ring. While anything is queued,
 * new records join the back (a sync fast path must check `length` first), so order never changes;
 * one writer loop drains the queue as the consumer frees space. Each entry may carry its own
 * timeout and AbortSignal; cancelling one removes it without writing it.
 */
import { ringwireError, type RingwireError } from '../errors.js';
import type { LinkProducer } from './link.js';
import { recordType } from './records.js';

export interface QueueOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface SendQueueHooks {
  /** A record of `kind` reached the ring. */
  written(kind: number): void;
  /** The writer loop ran dry (the queue is empty or stopped). */
  idle(): void;
  /** Waiting for space failed (a corrupt ring, say); the channel should be destroyed. */
  failed(err: RingwireError): void;
}

interface Entry {
  kind: number;
  id: number;
  /** Null for a barrier: resolves once everything queued before it was written. */
  data: Uint8Array | null;
  resolve(): void;
  reject(err: Error): void;
}

export class SendQueue {
  #entries: Entry[] = [];
  #writing = false;
  #stopped = false;
  #producer: LinkProducer;
  #abort: AbortSignal;
  #hooks: SendQueueHooks;

  constructor(producer: LinkProducer, abort: AbortSignal, hooks: SendQueueHooks) {
    this.#producer = producer;
    this.#abort = abort;
    this.#hooks = hooks;
  }

  get length(): number {
    return this.#entries.length;
  }

  /** Queues one record; resolves once it is in the ring. */
  push(kind: number, id: number, data: Uint8Array, opts: QueueOptions = {}): Promise<void> {
    return this.#add(kind, id, data, opts);
  }

  /** Resolves once everything queued so far has been written. */
  barrier(opts: QueueOptions = {}): Promise<void> {
    return this.#add(0, 0, null, opts);
  }

  /** Stops writing and rejects everything still queued. */
  failAll(err: Error): void {
    this.#stopped = true;
    for (const e of this.#entries.splice(0)) e.reject(err);
  }

  #add(kind: number, id: number, data: Uint8Array | null, opts: QueueOptions): Promise<void> {
    if (this.#stopped) return Promise.reject(ringwireError('ERR_RING_CLOSED', 'channel is closed'));
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const entry: Entry = { kind, id, data, resolve: () => settle(), reject: (err) => settle(err) };
      const drop = (err: Error): void => {
        const i = this.#entries.indexOf(entry);
        if (i >= 0) this.#entries.splice(i, 1);
        settle(err);
      };
      const onAbort = (): void => drop(ringwireError('ERR_ABORTED', 'send aborted', { cause: opts.signal?.reason }));
      const timer = opts.timeoutMs === undefined || opts.timeoutMs === Infinity ? undefined
        : setTimeout(() => drop(ringwireError('ERR_TIMEOUT', `send did not find space within ${opts.timeoutMs} ms`)), opts.timeoutMs);
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.#entries.push(entry);
      void this.#write();
    });
  }

  async #write(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    const p = this.#producer;
    try {
      while (this.#entries.length > 0 && !this.#stopped) {
        const e = this.#entries[0]!;
        if (e.data === null) {
          this.#entries.shift();
          e.resolve();
          continue;
        }
        const off = p.claim(e.data.length, recordType(e.kind, e.id));
        if (off >= 0) {
          p.data.set(e.data, off);
          p.commit();
          this.#entries.shift();
          this.#hooks.written(e.kind);
          e.resolve();
          continue;
        }
        await p.waitForSpace(e.data.length, { signal: this.#abort });
      }
    } catch (err) {
      if (!this.#stopped) this.#hooks.failed(err as RingwireError);
    } finally {
      this.#writing = false;
    }
    this.#hooks.idle();
  }
}
