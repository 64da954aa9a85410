/**
 * The receiving side of a channel: drains the inbound ring and dispatches each record. How it
 * waits for more: poll 'doorbell' or 'adaptive' over an eventfd runs #onWake on each ring;
 * otherwise #pump parks on the ring's own wait (doorbell) or polls between event-loop turns (busy).
 * After this side sends a request, #pollForResponse (busy) or #spinForResponse (doorbell with
 * responseSpinUs, adaptive) look for the answer before sleeping. 'adaptive' also polls for the
 * next record after a drain, in a later turn of the event loop, for as long as the gaps it has
 * seen say pays (lib/ring/adaptive-spin.ts), and then arms the doorbell. Reading halts while paused
 * by the user or throttled by the channel (answers or held requests piling up).
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { ringwireError, type RingwireError } from '../errors.js';
import { AdaptiveSpin } from '../ring/adaptive-spin.js';
import type { Link } from './link.js';
import { Kind, kindOf, idOf } from './records.js';
import type { Requests } from './requests.js';
import type { ChannelState } from './state.js';

/** Records handled per wake-up before the pump yields to other work. */
const DRAIN_BUDGET = 256;

export interface ReaderOptions {
  busy: boolean;
  /**
   * Learn from the gaps seen whether to poll before sleeping: after a drain (for the next record)
   * and after a request (for its answer, up to `responseSpinMs` or 50 µs). Needs an eventfd wake
   * source; without one the reader waits as in doorbell mode.
   */
  adaptive?: boolean;
  /** Polls of the ring: after a drain before re-arming the doorbell, or per event-loop turn when busy. */
  spin: number;
  /** Doorbell mode: how long to poll for a request's answer before sleeping (0: not at all). */
  responseSpinMs: number;
  /** Largest message the peer may send in pieces (sendLarge); default 64 MiB. */
  maxLargeMessageBytes?: number;
}

/** Where received records go; responses settle the channel's Requests directly. */
export interface ReaderHooks {
  /** A data message, viewed in place in the ring: valid only until the call returns. */
  message(view: Uint8Array): void;
  request(id: number, request: Buffer): void;
  peerEnd(): void;
  /** The ring is corrupt or the wait failed: the channel must be destroyed with this error. */
  destroy(err: RingwireError): void;
  /** A drain ended: if the peer left, the channel may now finish. */
  drained(): void;
}

export class Reader {
  #link: Link;
  #state: Readonly<ChannelState>;
  #requests: Requests;
  #abort: AbortSignal;
  #busy: boolean;
  #spin: number;
  #responseSpinMs: number;
  #hooks: ReaderHooks;
  #paused = false;
  /** Reading stopped by the channel itself (responses pile up), independent of pause(). */
  #throttled = false;
  #resume: (() => void) | undefined;
  /** Adaptive mode: gaps between going idle and the next record, and between a request and its answer. */
  #idle: AdaptiveSpin | undefined;
  #responses: AdaptiveSpin | undefined;
  /** performance.now() when the reader last went idle (armed or started polling); 0 while busy. */
  #idleSince = 0;
  #spinScheduled = false;
  #spinUntil = 0;
  /** The one request whose answer time is being learned (-1: none), and when it was written. */
  #watchId = -1;
  #watchSince = 0;
  /** Nesting depth of #drain: a record's view must not be released under a listener that is still reading it. */
  #draining = 0;
  /** A message arriving in pieces (sendLarge): its buffer, filled up to `#largeFilled`. */
  #large: Buffer | undefined;
  #largeFilled = 0;
  #maxLarge: number;
  /** A Buffer over the inbound ring's data, made once, to copy payloads out of. */
  #ringBuffer: Buffer | undefined;

  constructor(link: Link, state: Readonly<ChannelState>, requests: Requests, abort: AbortSignal, opts: ReaderOptions, hooks: ReaderHooks) {
    this.#link = link;
    this.#state = state;
    this.#requests = requests;
    this.#abort = abort;
    this.#busy = opts.busy;
    this.#spin = opts.spin;
    this.#responseSpinMs = opts.responseSpinMs;
    this.#hooks = hooks;
    this.#maxLarge = opts.maxLargeMessageBytes ?? 64 << 20;
    if (opts.adaptive && link.wake && !opts.busy) {
      this.#idle = new AdaptiveSpin();
      this.#responses = new AdaptiveSpin(opts.responseSpinMs > 0 ? { maxUs: opts.responseSpinMs * 1000 } : {});
    }
  }

  /** Adaptive mode: what the two learners currently believe (for stats and tests). */
  get adaptiveState(): { idle: AdaptiveSpin['state']; responses: AdaptiveSpin['state'] } | undefined {
    return this.#idle && this.#responses ? { idle: this.#idle.state, responses: this.#responses.state } : undefined;
  }

  get paused(): boolean {
    return this.#paused;
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.restart();
  }

  /** Sets the channel's own stop (independent of pause()); reading restarts when it clears. */
  throttle(over: boolean): void {
    if (over === this.#throttled) return;
    this.#throttled = over;
    if (!over) this.restart();
  }

  /** True while the inbound ring must not be drained: paused by the user or throttled by the channel. */
  #halted(): boolean {
    return this.#paused || this.#throttled;
  }

  /** Lets a parked pump go on; after close it lets it see the close and return. */
  restart(): void {
    if (this.#halted() && !this.#state.closed) return;
    const r = this.#resume;
    this.#resume = undefined;
    r?.();
    if (this.#link.wake && !this.#busy && !this.#state.closed) queueMicrotask(() => this.#halted() || this.#state.closed || this.#onWake());
  }

  start(): void {
    void this.#pump();
  }

  /** The peer left: read what it published before, unless reading is halted (resuming reads it then). */
  readRemaining(): void {
    if (this.#halted()) return;
    if (this.#link.wake && !this.#busy) this.#onWake();
    else this.#drain();
  }

  /** A request was just written: look for its answer before sleeping, where the mode asks for that. */
  lookForResponse(id: number): void {
    if (this.#busy) this.#pollForResponse(id);
    else if (this.#responses) this.#adaptiveResponse(id);
    else if (this.#responseSpinMs > 0 && this.#link.wake) this.#spinForResponse(id, this.#responseSpinMs);
  }

  /**
   * Adaptive mode: learn how long answers take, and poll for this one when that pays. Only a lone
   * request polls (a caller pipelining many must not be held inside each request() call), and
   * never from inside a drain (a listener's view of its record must stay unreleased).
   */
  #adaptiveResponse(id: number): void {
    if (this.#requests.size !== 1 || this.#draining > 0) return;
    this.#watchId = id;
    this.#watchSince = performance.now();
    const budgetUs = this.#responses!.budgetUs();
    if (budgetUs > 0) {
      this.#spinForResponse(id, budgetUs / 1000);
      this.#responses!.spun(!this.#requests.pending(id));
    }
  }

  /** Adaptive mode: the idle gap that just ended, for the learner. */
  #arrived(): void {
    if (this.#idle && this.#idleSince > 0) {
      this.#idle.observe((performance.now() - this.#idleSince) * 1000);
      this.#idleSince = 0;
    }
  }

  /**
   * Over an eventfd: runs on each ring (fromBell) or when a poll found records; drains, then
   * re-arms the waiting flag, or (adaptive, while gaps are short) leaves it down and polls a while
   * in the next turn of the event loop first, after the callbacks this drain resolved have run.
   */
  #onWake(fromBell = true): void {
    const wake = this.#link.wake!;
    const c = this.#link.consumer;
    try {
      if (fromBell) wake.clear();
      this.#arrived();
      for (;;) {
        wake.setWaiting(false);
        this.#drain();
        if (this.#state.closed || this.#halted()) return;
        if (this.#idle) {
          this.#idleSince = performance.now();
          const budgetUs = this.#idle.budgetUs();
          if (budgetUs > 0) {
            // The flag stays down: #spinPhase runs, and raises it before it gives up.
            this.#scheduleSpin(this.#idleSince + budgetUs / 1000);
            return;
          }
        } else {
          for (let i = 0; i < this.#spin; i++) if (c.available()) break;
        }
        // Publish the flag, then look once more: a commit that raced with us either shows up in
        // this re-check or sees the flag and rings (the same pairing as lib/ring/wait.ts).
        wake.setWaiting(true);
        if (!c.available()) return;
        this.#arrived();
      }
    } catch (err) {
      if (!this.#state.closed) this.#hooks.destroy(err as RingwireError);
    }
  }

  #scheduleSpin(until: number): void {
    this.#spinUntil = until;
    if (this.#spinScheduled) return;
    this.#spinScheduled = true;
    setImmediate(this.#spinPhase);
  }

  /**
   * Adaptive mode, one event-loop turn after a drain, with the waiting flag down (the peer does not
   * ring): polls until a record shows up or the learned budget is spent, then raises the flag and
   * looks once more. Every path out either drains or leaves the flag up, so nothing is missed.
   */
  #spinPhase = (): void => {
    this.#spinScheduled = false;
    if (this.#state.closed || this.#halted()) return; // restart() runs #onWake when reading resumes
    const wake = this.#link.wake!;
    const c = this.#link.consumer;
    try {
      let found = c.available();
      while (!found && performance.now() < this.#spinUntil) {
        for (let i = 0; i < 64 && !found; i++) found = c.available();
      }
      this.#idle!.spun(found);
      if (found) return this.#onWake(false);
      wake.setWaiting(true);
      if (c.available()) this.#onWake(false);
    } catch (err) {
      if (!this.#state.closed) this.#hooks.destroy(err as RingwireError);
    }
  };

  async #pump(): Promise<void> {
    const c = this.#link.consumer;
    if (this.#state.closed) return;
    if (!this.#busy && this.#link.wake) {
      this.#link.wake.start(() => this.#onWake());
      this.#onWake();
      return;
    }
    const signal = this.#abort;
    try {
      while (!this.#state.closed) {
        if (this.#halted()) {
          await new Promise<void>((r) => { this.#resume = r; });
          continue;
        }
        this.#drain();
        if (this.#state.closed || this.#halted()) continue;
        if (this.#busy) {
          let found = false;
          for (let i = 0; i < this.#spin && !found; i++) found = c.available();
          if (!found) await yieldToLoop();
          continue;
        }
        await c.waitForData({ spin: this.#spin, signal });
      }
    } catch (err) {
      if (!this.#state.closed) this.#hooks.destroy(err as RingwireError);
    }
  }

  /** Busy mode: a request's answer usually arrives within microseconds, so look for it before yielding. */
  #pollForResponse(id: number): void {
    const c = this.#link.consumer;
    for (let i = 0; i < this.#spin && this.#requests.pending(id); i++) {
      if (c.available()) this.#drain();
    }
  }

  /**
   * Doorbell mode with responseSpinUs, and adaptive mode: poll for this request's answer for a
   * bounded time with the waiting flag withdrawn (so the peer need not ring us), then re-arm the
   * doorbell as #onWake does.
   */
  #spinForResponse(id: number, ms: number): void {
    const wake = this.#link.wake!;
    const c = this.#link.consumer;
    const deadline = performance.now() + ms;
    wake.setWaiting(false);
    try {
      while (this.#requests.pending(id) && !this.#state.closed && !this.#halted()) {
        if (c.available()) this.#drain();
        else if (performance.now() > deadline) break;
      }
    } catch (err) {
      if (!this.#state.closed) this.#hooks.destroy(err as RingwireError);
    }
    if (this.#state.closed || this.#halted()) return;
    wake.setWaiting(true);
    if (c.available()) queueMicrotask(() => this.#onWake());
  }

  /** Dispatches up to DRAIN_BUDGET records in place, then releases their space in one go. */
  #drain(): void {
    const c = this.#link.consumer;
    let n = 0;
    this.#draining++;
    try {
      while (n < DRAIN_BUDGET && !this.#halted() && !this.#state.closed && c.read() >= 0) {
        n++;
        this.#dispatch(c.data, c.offset, c.length, c.type);
      }
    } catch (err) {
      this.#hooks.destroy(err as RingwireError);
      return;
    } finally {
      this.#draining--;
    }
    if (!this.#state.closed) c.release();
    this.#hooks.drained();
  }

  /**
   * A copy of a record's payload in a Buffer of its own, without a view of the ring allocated on
   * the way (one object per message instead of three: what a busy side allocates, it must collect,
   * and those pauses land in its round trips).
   */
  #copyOut(data: Uint8Array, offset: number, length: number): Buffer {
    let ring = this.#ringBuffer;
    if (ring === undefined || ring.buffer !== data.buffer || ring.byteOffset !== data.byteOffset || ring.length !== data.length) {
      ring = this.#ringBuffer = Buffer.from(data.buffer, data.byteOffset, data.length);
    }
    const out = Buffer.allocUnsafe(length);
    ring.copy(out, 0, offset, offset + length);
    return out;
  }

  /** The last piece arrived: the whole message is delivered like any other (it is ours, not the ring's). */
  #finishLarge(): void {
    const whole = this.#large!;
    this.#large = undefined;
    this.#hooks.message(whole);
  }

  #dispatch(data: Uint8Array, offset: number, length: number, type: number): void {
    const kind = kindOf(type);
    switch (kind) {
      case Kind.Data:
        this.#hooks.message(data.subarray(offset, offset + length));
        return;
      case Kind.Request:
        this.#hooks.request(idOf(type), this.#copyOut(data, offset, length));
        return;
      case Kind.Response:
        if (idOf(type) === this.#watchId) {
          this.#responses?.observe((performance.now() - this.#watchSince) * 1000);
          this.#watchId = -1;
        }
        this.#requests.answer(idOf(type), this.#copyOut(data, offset, length));
        return;
      case Kind.ErrorResponse:
        this.#requests.fail(idOf(type), ringwireError('ERR_REMOTE', `the peer's handler failed: ${Buffer.from(data.subarray(offset, offset + length)).toString()}`));
        return;
      case Kind.End:
        this.#large = undefined;
        this.#hooks.peerEnd();
        return;
      case Kind.LargeStart: {
        if (length !== 4) throw ringwireError('ERR_HANDSHAKE', `the peer announced a large message with a ${length}-byte header`);
        const total = new DataView(data.buffer, data.byteOffset + offset, 4).getUint32(0, true);
        if (total > this.#maxLarge) throw ringwireError('ERR_RING_TOO_LARGE', `the peer announced a ${total}-byte message; this channel takes at most ${this.#maxLarge} (maxLargeMessageBytes)`);
        // A start while another message is incomplete: that one was abandoned (its sender gave up).
        this.#large = Buffer.allocUnsafe(total);
        this.#largeFilled = 0;
        if (total === 0) this.#finishLarge();
        return;
      }
      case Kind.LargePart: {
        const into = this.#large;
        if (!into || this.#largeFilled + length > into.length) throw ringwireError('ERR_HANDSHAKE', 'the peer sent a piece of a large message it never announced, or past its end');
        into.set(data.subarray(offset, offset + length), this.#largeFilled);
        this.#largeFilled += length;
        if (this.#largeFilled === into.length) this.#finishLarge();
        return;
      }
      default:
        throw ringwireError('ERR_HANDSHAKE', `the peer sent a record of unknown kind ${kind}`);
    }
  }
}
