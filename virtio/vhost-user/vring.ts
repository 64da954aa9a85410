/**
 * One vring's vhost-user state (vhost-user.rst, "Ring states"): size, addresses, base, the kick,
 * call and err eventfds, and whether it is started and enabled. A ring runs — its kicks reach the
 * device — only while started (it has a kick fd and GET_VRING_BASE has not stopped it), enabled,
 * and the guest memory and ring geometry are known.
 *
 * Concurrency contract: owned by one VhostUserBackendState on one event loop.
 */
import { readFileSync } from 'node:fs';
import { ringwireError } from '../../lib/errors.js';
import { EventFd } from '../../lib/native/eventfd.js';
import type { GuestMemory } from '../memory.js';
import { checkQueueSize } from '../split-layout.js';
import { SplitQueueDevice } from '../split-queue.js';
import type { VhostUserDevice, VringHandle } from './device.js';

export interface RingAddresses {
  desc: bigint;
  avail: bigint;
  used: bigint;
}

/**
 * How long a ring's kick fd goes unwatched once it storms: still signalled right after a drain (a
 * semaphore-mode eventfd, each read taking 1 of a count the guest may have set to 2^64-2), or
 * SPURIOUS_KICKS_BEFORE_PAUSE kicks in a row that made nothing new available (a guest writing kicks
 * in a loop). The queue itself was run; later kicks wait this long, so such a guest gets about a
 * thousand runs a second instead of the whole host loop. A kick that brings new buffers ends the storm.
 */
export const KICK_STORM_PAUSE_MS = 1;
export const SPURIOUS_KICKS_BEFORE_PAUSE = 16;

/**
 * True when the kernel says `fd` is an eventfd in semaphore mode (recent kernels show it in fdinfo as
 * `eventfd-semaphore`; older ones say nothing and the storm pause above is the only guard).
 */
function isSemaphoreEventFd(fd: number): boolean {
  try {
    return /^eventfd-semaphore:\s*1\s*$/m.test(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  } catch {
    return false;
  }
}

/** The driver's avail idx as it is now, or undefined once the queue is broken. */
function availIndex(queue: SplitQueueDevice): number | undefined {
  try {
    return (queue.lastAvailIndex + queue.pending()) & 0xffff;
  } catch {
    return undefined;
  }
}

export interface RingFeatures {
  eventIdx: boolean;
  indirect: boolean;
}

export class Vring {
  readonly index: number;
  num: number | undefined;
  addresses: RingAddresses | undefined;
  /** Next avail entry to read: set by SET_VRING_BASE, advanced while running, answered by GET_VRING_BASE. */
  base = 0;
  enabled = false;
  /** Why the queue broke, if it did; a broken ring stays stopped until the front-end reprograms it. */
  broken: string | undefined;
  #kick: EventFd | undefined;
  #call: EventFd | undefined;
  #err: EventFd | undefined;
  #queue: SplitQueueDevice | undefined;
  /** A handleQueue() run the device asked for (runAgain), pending on the event loop. */
  #again: NodeJS.Immediate | undefined;
  /** The kick fd stormed: it is unwatched until this fires (KICK_STORM_PAUSE_MS). */
  #kickPause: NodeJS.Timeout | undefined;
  /** Kick fd pauses so far (a semaphore fd, or kicks written in a loop). */
  kickStorms = 0;
  /** The driver's avail idx at the last kick, and how many kicks in a row found it unchanged. */
  #kickAvail: number | undefined;
  #spuriousKicks = 0;
  readonly #device: VhostUserDevice;
  readonly #log: (message: string) => void;

  constructor(index: number, device: VhostUserDevice, log: (message: string) => void) {
    this.index = index;
    this.#device = device;
    this.#log = log;
  }

  /** Started in the rst's sense: a kick fd arrived and no GET_VRING_BASE has stopped the ring since. */
  get started(): boolean {
    return this.#kick !== undefined;
  }

  get running(): boolean {
    return this.#queue !== undefined;
  }

  setNum(num: number): void {
    this.#refuseWhileRunning('SET_VRING_NUM');
    try {
      checkQueueSize(num);
    } catch (err) {
      throw ringwireError('ERR_VHOST_PROTOCOL', `vring ${this.index}: ${(err as Error).message}`);
    }
    this.num = num;
  }

  setBase(base: number): void {
    this.#refuseWhileRunning('SET_VRING_BASE');
    // Split rings: the base is the u16 last_avail_idx (packed rings would use bit 15 as a wrap counter).
    if (base > 0xffff) throw ringwireError('ERR_VHOST_PROTOCOL', `vring ${this.index}: base ${base} is not a u16`);
    this.base = base;
    this.broken = undefined;
  }

  setAddresses(addresses: RingAddresses): void {
    this.#refuseWhileRunning('SET_VRING_ADDR');
    this.addresses = addresses;
    this.broken = undefined;
  }

  /** Takes ownership of `fd` (an eventfd) when it returns; on a throw the caller still owns it. Restarts polling with the new fd. */
  setKick(fd: number): void {
    // Each read of a semaphore eventfd takes 1 from a count the guest may have set to 2^64-2: the
    // fd would stay readable for ever. A kick must reset the count (QEMU's kick fds do).
    if (isSemaphoreEventFd(fd)) throw ringwireError('ERR_VHOST_PROTOCOL', `vring ${this.index}: the kick eventfd is in semaphore mode, so a kick cannot be consumed`);
    this.stop();
    const kick = EventFd.fromFd(fd);
    this.#kick?.close();
    this.#kick = kick;
  }

  setCall(fd: number | undefined): void {
    const call = fd === undefined ? undefined : EventFd.fromFd(fd);
    this.#call?.close();
    this.#call = call;
  }

  setErr(fd: number | undefined): void {
    const err = fd === undefined ? undefined : EventFd.fromFd(fd);
    this.#err?.close();
    this.#err = err;
  }

  /** Starts the queue if everything it needs is there; returns whether it is running. */
  tryStart(memory: GuestMemory | undefined, features: RingFeatures): boolean {
    if (this.#queue) return true;
    if (!this.#kick || !this.enabled || this.broken || !memory || this.num === undefined || !this.addresses) return false;
    try {
      this.#queue = new SplitQueueDevice({
        memory, size: this.num, addresses: this.addresses, ringAddressSpace: 'user-virtual',
        eventIdx: features.eventIdx, indirect: features.indirect, base: this.base,
      });
    } catch (err) {
      this.#markBroken(`cannot start: ${(err as Error).message}`);
      return false;
    }
    const queue = this.#queue;
    this.#kickAvail = undefined;
    this.#spuriousKicks = 0;
    const handle: VringHandle = { index: this.index, queue, notify: () => this.#notify(queue), runAgain: () => this.#runLater(handle) };
    this.#watchKick(handle);
    this.#device.queueStarted(handle);
    // Buffers made available before the kick fd arrived raise no kick: look now.
    this.#run(handle);
    return this.#queue !== undefined;
  }

  /** Stops the queue (kicks no longer reach the device) and keeps the avail index it reached. */
  stop(): void {
    const q = this.#queue;
    if (!q) return;
    this.#queue = undefined;
    clearImmediate(this.#again);
    this.#again = undefined;
    clearTimeout(this.#kickPause);
    this.#kickPause = undefined;
    this.#kick?.offReadable();
    if (!q.broken) this.base = q.lastAvailIndex;
    this.#device.queueStopped(this.index);
  }

  /** GET_VRING_BASE: stops the ring, drops its kick fd, and returns the base to resume from. */
  getBase(): number {
    this.stop();
    this.#kick?.close();
    this.#kick = undefined;
    return this.base;
  }

  /** Releases every fd (disconnect or reset). */
  close(): void {
    this.stop();
    this.#kick?.close();
    this.#kick = undefined;
    this.setCall(undefined);
    this.setErr(undefined);
    this.enabled = false;
  }

  #watchKick(handle: VringHandle): void {
    this.#kick?.onReadable(() => this.#onKick(handle));
  }

  /**
   * One kick: consume it and run the queue, at most once per ring per turn of the loop (a run the
   * device asked for with runAgain is already pending). A kick fd still signalled right after the
   * drain is storming: it goes unwatched for KICK_STORM_PAUSE_MS, so the loop's other work and
   * other rings go on; the queue was just run, and the fd is looked at again after the pause.
   */
  #onKick(handle: VringHandle): void {
    const kick = this.#kick;
    if (!kick || this.#queue !== handle.queue) return;
    kick.drain();
    const stillSignalled = kick.drain() > 0;
    const avail = availIndex(handle.queue);
    this.#spuriousKicks = avail === this.#kickAvail ? this.#spuriousKicks + 1 : 0;
    this.#kickAvail = avail;
    if (!this.#again) this.#run(handle);
    if (!(stillSignalled || this.#spuriousKicks >= SPURIOUS_KICKS_BEFORE_PAUSE) || this.#queue !== handle.queue) return;
    this.kickStorms++;
    kick.offReadable();
    this.#kickPause = setTimeout(() => {
      this.#kickPause = undefined;
      if (this.#queue === handle.queue) this.#watchKick(handle);
    }, KICK_STORM_PAUSE_MS);
  }

  #run(handle: VringHandle): void {
    if (this.#queue !== handle.queue) return;
    try {
      this.#device.handleQueue(handle);
    } catch (err) {
      this.#markBroken((err as Error).message);
    }
  }

  #runLater(handle: VringHandle): void {
    if (this.#again || this.#queue !== handle.queue) return;
    this.#again = setImmediate(() => {
      this.#again = undefined;
      this.#run(handle);
    });
  }

  #notify(queue: SplitQueueDevice): void {
    // Only the queue currently running may signal: a stale handle kept by device code must not.
    if (this.#queue === queue && queue.shouldNotify()) this.#call?.signal();
  }

  #markBroken(reason: string): void {
    this.broken = reason;
    this.#log(`vring ${this.index} broken: ${reason}`);
    this.stop();
    // vhost-user.rst, SET_VRING_ERR: the eventfd "to trigger when an error occurs" on this ring.
    this.#err?.signal();
  }

  #refuseWhileRunning(what: string): void {
    if (this.#queue) throw ringwireError('ERR_VHOST_PROTOCOL', `${what} for vring ${this.index} while it is running`);
  }
}
