/**
 * Sending one side of one exchange: frames go into the channel in order, body bytes only while the
 * receiver's per-exchange credit (wire.ts INITIAL_WINDOW) lasts. Frames that wait for credit stay
 * here; frames the ring cannot take yet wait in the channel's own send queue (its back-pressure).
 *
 * Concurrency contract: one Outflow per exchange direction, used from the channel's thread only.
 */
import type { Channel } from '../channel/channel.js';
import { FRAME_HEADER, Flag, FrameType, INITIAL_WINDOW, WINDOW_UPDATE_BYTES, encodeWindow, writeFrameHeader } from './wire.js';

type Done = (err?: Error | null) => void;

interface Waiting {
  /** A body chunk still to be cut into Data frames (data), or a ready frame (frame). */
  data: Buffer | undefined;
  frame: Buffer | undefined;
  end: boolean;
  done: Done | undefined;
}

/** Bytes accepted but not yet in the ring beyond which write() asks the writer to wait for drain. */
export const OUTFLOW_HIGH_WATER = 1 << 16;

/** Data frames at least this large are written in place in the ring (claim/commit) instead of copied twice. */
const CLAIM_MIN_BYTES = 4096;

export class Outflow {
  readonly #channel: Channel;
  readonly #id: number;
  readonly #maxPayload: number;
  readonly #onDrain: () => void;
  readonly #onError: (err: Error) => void;
  #credit = INITIAL_WINDOW;
  #waiting: Waiting[] = [];
  /** Bytes handed to channel.send() whose promise has not settled (the ring was full). */
  #inChannelQueue = 0;
  #needDrain = false;
  #failed: Error | undefined;
  /** Flag.End was sent (or is queued): nothing more may be written. */
  ended = false;

  constructor(channel: Channel, id: number, onDrain: () => void, onError: (err: Error) => void) {
    this.#channel = channel;
    this.#id = id;
    this.#maxPayload = channel.maxMessageSize - FRAME_HEADER;
    this.#onDrain = onDrain;
    this.#onError = onError;
  }

  /** Bytes accepted and not yet in the ring: what writableLength reports. */
  get length(): number {
    let n = this.#inChannelQueue;
    for (const w of this.#waiting) n += w.data?.length ?? w.frame?.length ?? 0;
    return n;
  }

  /** Nothing waits for credit or for ring space. */
  get idle(): boolean {
    return this.#waiting.length === 0 && this.#inChannelQueue === 0;
  }

  /** True when the writer should wait for onDrain before writing more. */
  get backedUp(): boolean {
    return this.#waiting.length > 0 || this.#inChannelQueue > OUTFLOW_HIGH_WATER;
  }

  /** For a writer that queued bytes elsewhere: true when it may go on, else onDrain will follow. */
  writable(): boolean {
    const backedUp = this.backedUp;
    if (backedUp) this.#needDrain = true;
    return !backedUp;
  }

  /** Sends a frame that carries no body bytes (head, trailers, reset): never waits for credit. */
  frame(frame: Buffer, done?: Done): void {
    if (frame[1]! & Flag.End) this.ended = true;
    if (this.#waiting.length > 0) this.#waiting.push({ data: undefined, frame, end: false, done });
    else this.#put(frame, done);
  }

  /** Body bytes (and the end of the body when `end`); false when the writer should wait for drain. */
  write(data: Buffer, end: boolean, done?: Done): boolean {
    if (end) this.ended = true;
    if (data.length === 0 && !end) {
      if (done) process.nextTick(done);
      return this.writable();
    }
    if (this.#waiting.length > 0) this.#waiting.push({ data, frame: undefined, end, done });
    else this.#writeData(data, end, done);
    const backedUp = this.backedUp;
    if (backedUp) this.#needDrain = true;
    return !backedUp;
  }

  /** Credit returned by the receiver (a Window frame). */
  grant(bytes: number): void {
    this.#credit += bytes;
    this.#flush();
  }

  /** Drops whatever waits for credit (the exchange was reset or the channel closed). */
  abandon(err: Error): void {
    this.#failed ??= err;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) w.done?.(err);
  }

  #flush(): void {
    while (this.#waiting.length > 0 && !this.#failed) {
      const w = this.#waiting[0]!;
      if (w.frame) {
        this.#waiting.shift();
        this.#put(w.frame, w.done);
        continue;
      }
      const rest = this.#writeData(w.data!, w.end, w.done, true);
      if (rest) {
        w.data = rest;
        break;
      }
      this.#waiting.shift();
    }
    this.#checkDrain();
  }

  /**
   * Cuts `data` into Data frames while credit lasts. What does not fit now is queued (or, when
   * called from #flush, returned so the queue entry keeps it). `done` runs once the last byte is
   * in the ring (or in the channel's send queue, which keeps order and cannot drop it).
   */
  #writeData(data: Buffer, end: boolean, done: Done | undefined, fromFlush = false): Buffer | undefined {
    let off = 0;
    for (;;) {
      const n = Math.min(data.length - off, this.#credit, this.#maxPayload);
      const last = off + n === data.length;
      if (n === 0 && !(last && (end || data.length === 0))) break;
      const flags = last && end ? Flag.End : 0;
      if (n >= CLAIM_MIN_BYTES && !this.#failed && this.#claimInPlace(data, off, n, flags)) {
        this.#credit -= n;
        off += n;
        if (last) {
          if (done) process.nextTick(done);
          return undefined;
        }
        continue;
      }
      const frame = Buffer.allocUnsafe(FRAME_HEADER + n);
      writeFrameHeader(frame, FrameType.Data, flags, this.#id);
      data.copy(frame, FRAME_HEADER, off, off + n);
      this.#credit -= n;
      off += n;
      if (last) {
        this.#put(frame, done);
        return undefined;
      }
      this.#put(frame, undefined);
    }
    const rest = data.subarray(off);
    if (!fromFlush) this.#waiting.push({ data: rest, frame: undefined, end, done });
    return rest;
  }

  /** Writes a Data frame straight into the ring (one copy, no allocation); false when the ring cannot take it now. */
  #claimInPlace(data: Buffer, off: number, n: number, flags: number): boolean {
    let view: Uint8Array | null;
    try {
      view = this.#channel.claim(FRAME_HEADER + n);
    } catch {
      return false; // the channel is closing: the ordinary path reports it
    }
    if (!view) return false;
    view[0] = FrameType.Data;
    view[1] = flags;
    view[2] = 0;
    view[3] = 0;
    const id = this.#id;
    view[4] = id & 0xff;
    view[5] = (id >>> 8) & 0xff;
    view[6] = (id >>> 16) & 0xff;
    view[7] = id >>> 24;
    view.set(data.subarray(off, off + n), FRAME_HEADER);
    this.#channel.commit();
    return true;
  }

  #put(frame: Buffer, done: Done | undefined): void {
    if (this.#failed) {
      done?.(this.#failed);
      return;
    }
    let sent: boolean;
    try {
      sent = this.#channel.trySend(frame);
    } catch (err) {
      this.#fail(err as Error, done);
      return;
    }
    if (sent) {
      if (done) process.nextTick(done);
      return;
    }
    this.#inChannelQueue += frame.length;
    this.#channel.send(frame).then(() => {
      this.#inChannelQueue -= frame.length;
      done?.();
      this.#checkDrain();
    }, (err: Error) => {
      this.#inChannelQueue -= frame.length;
      this.#fail(err, done);
    });
  }

  #fail(err: Error, done: Done | undefined): void {
    done?.(err);
    if (this.#failed) return;
    this.#failed = err;
    this.abandon(err);
    this.#onError(err);
  }

  #checkDrain(): void {
    if (this.#needDrain && !this.backedUp) {
      this.#needDrain = false;
      this.#onDrain();
    }
  }
}

/**
 * Receiving side of one exchange's body: counts bytes the consumer has taken and returns credit
 * to the sender in Window frames of at least WINDOW_UPDATE_BYTES, and checks the sender stays
 * within the credit it was given.
 */
export class Inflow {
  readonly #channel: Channel;
  readonly #id: number;
  /** Bytes received and handed on but not yet credited back. */
  #consumed = 0;
  /** Credit the sender still has: receiving more than this is a protocol error. */
  #window = INITIAL_WINDOW;

  constructor(channel: Channel, id: number) {
    this.#channel = channel;
    this.#id = id;
  }

  /** Counts `n` received bytes; false when the sender overran its credit. */
  received(n: number): boolean {
    this.#window -= n;
    return this.#window >= 0;
  }

  /** The consumer took `n` bytes: credit them back once enough has accumulated. */
  consumed(n: number): void {
    this.#consumed += n;
    if (this.#consumed < WINDOW_UPDATE_BYTES) return;
    const bytes = this.#consumed;
    this.#consumed = 0;
    this.#window += bytes;
    try {
      if (!this.#channel.trySend(encodeWindow(this.#id, bytes))) this.#channel.send(encodeWindow(this.#id, bytes)).catch(() => {});
    } catch {
      // The channel closed: the exchange is failing through the channel's 'close'.
    }
  }
}
