/**
 * IvshmemChannel: a duplex message channel between two peers of one ivshmem region, made of the
 * two SPSC rings src→dst and dst→src (lib/ivshmem/layout.ts). The same class serves the host, a
 * host process joined through IvshmemClient, and a guest over BAR2.
 *
 * Doorbells: ringing the peer is whatever the side can do (an eventfd signal, a guest's Doorbell
 * register write); vector DATA_VECTOR says "a message is waiting", SPACE_VECTOR "space was freed".
 * Waiting is on our own bells when we have them; a guest has none (no interrupts without a driver),
 * so it polls adaptively and never publishes a waiting flag, which means nobody rings it.
 *
 * Concurrency contract: one channel object per side, used from one thread. Errors: a broken ring
 * throws ERR_RING_CORRUPT from then on (onBroken is told once); close(reason) makes every call and
 * pending wait fail with that reason (ERR_PEER_GONE when the peer left).
 */
import type { Doorbell } from '../ring/doorbell.js';
import { ringwireError, isRingwireError, type RingwireError } from '../errors.js';
import { SpscConsumer, SpscProducer } from '../ring/spsc.js';
import type { WaitOptions } from '../ring/wait.js';
import { channelMemory, readSlot, type IvshmemGeometry } from './layout.js';

export const DATA_VECTOR = 0;
export const SPACE_VECTOR = 1;
/** How often a waiting side re-checks that its peer still holds the slot it opened. */
const LIVENESS_CHECK_MS = 200;

export interface ChannelEnds {
  buffer: SharedArrayBuffer;
  geometry: IvshmemGeometry;
  self: number;
  peer: number;
  /** Rings vector `vector` of the peer; must not throw (a gone peer is ignored). */
  ringPeer(vector: number): void;
  /** Our own bells, rung by the peer; absent: poll. */
  dataWait?: Doorbell;
  spaceWait?: Doorbell;
  /** Called once when a ring turns out corrupt. */
  onBroken?(err: RingwireError): void;
}

function ringOnly(ring: () => void): Doorbell {
  return {
    ring,
    wait: () => Promise.reject(ringwireError('ERR_INVALID_ARG', 'this doorbell only rings the peer')),
    close: () => {},
  };
}

export class IvshmemChannel {
  readonly self: number;
  readonly peer: number;
  readonly tx: SpscProducer;
  readonly rx: SpscConsumer;
  #buffer: SharedArrayBuffer;
  #geometry: IvshmemGeometry;
  #generation: number;
  #abort = new AbortController();
  #closed: RingwireError | undefined;
  #broken: RingwireError | undefined;
  #onBroken: ((err: RingwireError) => void) | undefined;

  /** Attaches to both rings (validating them) while the peer's slot is live. */
  constructor(ends: ChannelEnds) {
    const { buffer, geometry: g, self, peer } = ends;
    const slot = readSlot(buffer, g, peer);
    if (!slot.live) throw ringwireError('ERR_PEER_GONE', `ivshmem peer ${peer} is not live`);
    this.self = self;
    this.peer = peer;
    this.#buffer = buffer;
    this.#geometry = g;
    this.#generation = slot.generation;
    this.#onBroken = ends.onBroken;
    const space = Math.min(SPACE_VECTOR, g.vectors - 1);
    this.tx = new SpscProducer(channelMemory(buffer, g, self, peer), {
      dataBell: ringOnly(() => ends.ringPeer(DATA_VECTOR)),
      ...(ends.spaceWait ? { spaceBell: ends.spaceWait } : {}),
    });
    this.rx = new SpscConsumer(channelMemory(buffer, g, peer, self), {
      spaceBell: ringOnly(() => ends.ringPeer(space)),
      ...(ends.dataWait ? { dataBell: ends.dataWait } : {}),
    });
    // A ring header only checks that the ring fits the region; the layout fixes how much of it is
    // this channel's. A peer that rewrote a capacity would have us write into the next channel.
    for (const [what, ring] of [['tx', this.tx], ['rx', this.rx]] as const) {
      if (ring.capacity !== g.ringCapacity) {
        throw ringwireError('ERR_RING_CORRUPT', `ivshmem channel ${self}↔${peer}: ${what} ring capacity ${ring.capacity}, the layout's is ${g.ringCapacity}`);
      }
    }
  }

  /** Why the channel is unusable, if it is. */
  get error(): RingwireError | undefined {
    return this.#closed ?? this.#broken;
  }

  /** True while the peer holds the slot this channel was opened against (stale by one host update). */
  peerAlive(): boolean {
    const s = readSlot(this.#buffer, this.#geometry, this.peer);
    return s.live && s.generation === this.#generation;
  }

  /** Copies `bytes` into one message; false when the ring is full (back-pressure). */
  send(bytes: Uint8Array, type = 0): boolean {
    this.#check();
    return this.#guard(() => this.tx.send(bytes, type));
  }

  async sendAsync(bytes: Uint8Array, type = 0, opts: Omit<WaitOptions, 'signal'> = {}): Promise<void> {
    const deadline = opts.timeoutMs === undefined ? Infinity : performance.now() + opts.timeoutMs;
    while (!this.send(bytes, type)) {
      await this.#wait(() => this.tx.waitForSpace(bytes.length, this.#slice(deadline, opts.spin)), deadline, `no space for a ${bytes.length}-byte message`);
    }
  }

  /** The next message, copied, or null when none is waiting. */
  receive(): Uint8Array | null {
    this.#check();
    return this.#guard(() => this.rx.receive());
  }

  /** Waits for the next message. */
  async receiveAsync(opts: Omit<WaitOptions, 'signal'> = {}): Promise<Uint8Array> {
    const deadline = opts.timeoutMs === undefined ? Infinity : performance.now() + opts.timeoutMs;
    for (;;) {
      const msg = this.receive();
      if (msg) return msg;
      await this.#wait(() => this.rx.waitForData(this.#slice(deadline, opts.spin)), deadline, 'no message');
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) yield await this.receiveAsync();
  }

  /** Makes every call and pending wait fail with `reason` (default ERR_RING_CLOSED). Idempotent. */
  close(reason?: RingwireError): void {
    if (this.#closed) return;
    this.#closed = reason ?? ringwireError('ERR_RING_CLOSED', `channel ${this.self}→${this.peer} is closed`);
    this.#abort.abort(this.#closed);
  }

  #slice(deadline: number, spin: number | undefined): WaitOptions {
    const left = deadline - performance.now();
    return { timeoutMs: Math.max(0, Math.min(left, LIVENESS_CHECK_MS)), signal: this.#abort.signal, ...(spin === undefined ? {} : { spin }) };
  }

  async #wait(fn: () => Promise<boolean>, deadline: number, what: string): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (this.#closed) throw this.#closed;
      throw this.#noteBroken(err);
    }
    this.#check();
    if (!this.peerAlive()) {
      this.close(ringwireError('ERR_PEER_GONE', `ivshmem peer ${this.peer} left`));
      throw this.#closed!;
    }
    if (performance.now() >= deadline) throw ringwireError('ERR_TIMEOUT', `${what} within the timeout`);
  }

  #check(): void {
    if (this.#closed) throw this.#closed;
    if (this.#broken) throw this.#broken;
  }

  #guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw this.#noteBroken(err);
    }
  }

  #noteBroken(err: unknown): unknown {
    if (isRingwireError(err, 'ERR_RING_CORRUPT') && !this.#broken) {
      this.#broken = err;
      this.#onBroken?.(err);
    }
    return err;
  }
}
