/**
 * One vring's vhost-user state (vhost-user.rst, "Ring states"): size, addresses, base, the kick,
 * call and err eventfds, and whether it is started and enabled. A ring runs — its kicks reach the
 * device — only while started (it has a kick fd and GET_VRING_BASE has not stopped it), enabled,
 * and the guest memory and ring geometry are known.
 *
 * Concurrency contract: owned by one VhostUserBackendState on one event loop.
 */
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
    const handle: VringHandle = { index: this.index, queue, notify: () => this.#notify(queue), runAgain: () => this.#runLater(handle) };
    this.#kick.onReadable(() => {
      this.#kick?.drain();
      this.#run(handle);
    });
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
