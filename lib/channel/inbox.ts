/**
 * Where a channel's data messages go: straight to 'message' listeners as views into the ring when
 * there are listeners and nothing is held, else as copies held for a late listener or the async
 * iterator. Draining pauses while copies pile up, so the sender waits instead of memory growing.
 */
import type { EventEmitter } from 'node:events';
import { ringwireError } from '../errors.js';
import type { Reader } from './reader.js';
import type { ChannelState } from './state.js';

/** Unread copies held (for the iterator, or before a 'message' listener exists) before draining stops. */
const ITERATOR_HIGH_WATER = 64;

export class Inbox {
  #emitter: EventEmitter;
  #reader: Pick<Reader, 'paused' | 'pause' | 'resume'>;
  #state: Readonly<ChannelState>;
  /** After copies were taken: if the peer left, the channel may now finish. */
  #taken: () => void;
  /** Data that arrived while nobody listened: kept (copied) rather than dropped; reading then pauses. */
  #unclaimed: Buffer[] = [];
  #iterators = 0;
  #wakeIterator: (() => void) | undefined;

  constructor(emitter: EventEmitter, reader: Pick<Reader, 'paused' | 'pause' | 'resume'>, state: Readonly<ChannelState>, taken: () => void) {
    this.#emitter = emitter;
    this.#reader = reader;
    this.#state = state;
    this.#taken = taken;
  }

  /** Copies received but not yet handed over. */
  get held(): number {
    return this.#unclaimed.length;
  }

  /** Lets a waiting iterator look again (a message arrived, the peer ended or left, the channel closed). */
  wake(): void {
    this.#wakeIterator?.();
  }

  /** One received message, viewed in place in the ring (valid only during this call). */
  deliver(view: Uint8Array): void {
    if (this.#iterators === 0 && this.#unclaimed.length === 0 && this.#emitter.listenerCount('message') > 0) {
      this.#emitter.emit('message', view);
      return;
    }
    // Nobody reads yet, or the iterator is behind: keep a copy, and stop draining once the
    // copies pile up so the peer feels back-pressure. The slack lets responses queued behind
    // a few unread messages still arrive.
    this.#unclaimed.push(Buffer.from(view));
    this.#wakeIterator?.();
    if (this.#unclaimed.length >= ITERATOR_HIGH_WATER) this.#reader.pause();
  }

  /** Hands held copies to a late 'message' listener; they were received, so this runs even after close. */
  deliverUnclaimed(): void {
    if (this.#iterators > 0) return;
    while (this.#unclaimed.length > 0 && this.#emitter.listenerCount('message') > 0) {
      this.#emitter.emit('message', this.#unclaimed.shift()!);
    }
    if (this.#unclaimed.length === 0 && this.#reader.paused && this.#emitter.listenerCount('message') > 0) this.#reader.resume();
    this.#taken();
  }

  async *iterate(): AsyncGenerator<Buffer> {
    if (this.#iterators > 0) throw ringwireError('ERR_INVALID_ARG', 'a channel has one async iterator at a time');
    this.#iterators++;
    try {
      for (;;) {
        const next = this.#unclaimed.shift();
        if (next) {
          if (this.#reader.paused && this.#unclaimed.length < ITERATOR_HIGH_WATER / 2) this.#reader.resume();
          this.#taken();
          yield next;
          continue;
        }
        if (this.#state.peerEnded || this.#state.closed) return;
        if (this.#reader.paused) this.#reader.resume();
        await new Promise<void>((r) => { this.#wakeIterator = r; });
        this.#wakeIterator = undefined;
      }
    } finally {
      this.#iterators--;
      this.#wakeIterator = undefined;
    }
  }
}
