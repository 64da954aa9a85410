/**
 * The device layer of a vhost-user back-end: what a particular virtio device (rng, net, ...) adds
 * on top of the protocol and state layers. Every method has a default that means "unsupported" or
 * "nothing to do", so a device overrides only what it implements (rust-vmm's VhostUserBackend).
 *
 * Concurrency contract: all methods are called on the event loop of the thread that owns the
 * back-end, one at a time. A queue handler runs synchronously to completion; the state layer relies
 * on that to answer GET_VRING_BASE without waiting for in-flight buffers.
 */
import { ringwireError } from '../../lib/errors.js';
import type { DescriptorChain, SplitQueueDevice } from '../split-queue.js';
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC } from '../split-layout.js';

/** VIRTIO_F_VERSION_1 (virtio 1.2, 6 "Reserved Feature Bits"): a modern, little-endian device. */
export const VIRTIO_F_VERSION_1 = 32;

/** The transport features every ringwire device supports: the split queue implements them. */
export const TRANSPORT_FEATURES = (1n << BigInt(VIRTIO_F_VERSION_1)) | (1n << BigInt(VIRTIO_F_INDIRECT_DESC)) | (1n << BigInt(VIRTIO_F_EVENT_IDX));

/** A started, enabled queue as device code sees it. Valid until queueStopped() for its index. */
export interface VringHandle {
  readonly index: number;
  readonly queue: SplitQueueDevice;
  /** Signals the call eventfd if the driver asked to be told about the used buffers pushed since the last call. */
  notify(): void;
  /**
   * Asks for handleQueue() again on a later turn of the event loop (setImmediate), unless the queue
   * stops first. A handler that leaves chains for later calls this instead of looping, so other
   * ports, vhost-user messages and timers run in between.
   */
  runAgain(): void;
}

export abstract class VhostUserDevice {
  /** Number of virtqueues (GET_QUEUE_NUM answers this unless overridden by queueNumReply). */
  abstract readonly numQueues: number;

  /** Virtio features offered (GET_FEATURES), without VHOST_USER_F_PROTOCOL_FEATURES (the state layer adds it). */
  features(): bigint {
    return TRANSPORT_FEATURES;
  }

  /** The features the driver accepted (SET_FEATURES). QEMU can send bits that were never offered. */
  acknowledgeFeatures(_features: bigint): void {}

  /** The virtio config space, or undefined when the device has none (then GET_CONFIG is refused). */
  config(): Uint8Array | undefined {
    return undefined;
  }

  /** SET_CONFIG: writes to the config space. Unsupported unless overridden. */
  setConfig(offset: number, _data: Uint8Array): void {
    throw ringwireError('ERR_VHOST_PROTOCOL', `device has no writable config space (SET_CONFIG at ${offset})`);
  }

  /** A queue became started and enabled; kicks for it go to handleQueue(). */
  queueStarted(_vring: VringHandle): void {}

  /** A queue was stopped (GET_VRING_BASE, disable, reset or disconnect): forget its handle. */
  queueStopped(_index: number): void {}

  /**
   * The driver kicked queue `vring.index` (or it was just started with buffers pending). Process
   * what is available and call vring.notify(). An ERR_VIRTQUEUE_BROKEN thrown from here marks the
   * queue broken; any other error does too, with the error as the logged reason.
   */
  handleQueue(vring: VringHandle): void {
    throw ringwireError('ERR_VHOST_PROTOCOL', `device has no handler for queue ${vring.index}`);
  }

  /** The front-end went away or reset the device: drop all per-connection state. */
  reset(): void {}
}

/** Chains one drainQueue() call may complete: Linux's VHOST_NET_PKT_WEIGHT. */
export const VHOST_PKT_WEIGHT = 256;
/** Bytes one drainQueue() call may move: Linux's VHOST_NET_WEIGHT. */
export const VHOST_BYTE_WEIGHT = 0x80000;

/**
 * Runs `each` for the available chains (it returns the bytes it wrote), then re-enables kicks and
 * goes round again if buffers arrived meanwhile (2.7.10: the re-check closes the race with a driver
 * that looked at our avail_event before we published it). Signals the driver once per batch.
 *
 * Work per call is bounded as the Linux vhost driver bounds it (drivers/vhost/net.c, VHOST_NET_WEIGHT
 * and VHOST_NET_PKT_WEIGHT; vhost_exceeds_weight()): at most `budget` chains (default one ring's worth, at most 256) and about
 * `byteBudget` bytes (default 0x80000: the chain that crosses it still completes), counting what the
 * chain offered to read and what `each` wrote. A guest that re-posts each buffer as soon as it is used
 * would otherwise keep this loop, and with it the whole event loop, for as long as it likes. With the
 * budget spent it leaves kicks disabled (it is coming back anyway) and asks for another run with
 * vring.runAgain(), which comes after the loop has served timers and other I/O.
 */
export function drainQueue(vring: VringHandle, each: (chain: DescriptorChain) => number, budget: number = Math.min(vring.queue.size, VHOST_PKT_WEIGHT), byteBudget: number = VHOST_BYTE_WEIGHT): void {
  const q = vring.queue;
  let left = budget;
  let bytesLeft = byteBudget;
  for (;;) {
    q.disableKickNotifications();
    let n = 0;
    while (n < left && bytesLeft > 0) {
      const chain = q.pop();
      if (!chain) break;
      const written = each(chain);
      q.pushUsed(chain.head, written);
      bytesLeft -= chain.readableBytes + written;
      n++;
    }
    left -= n;
    if (n > 0) vring.notify();
    if (left <= 0 || bytesLeft <= 0) {
      vring.runAgain();
      return;
    }
    if (!q.enableKickNotifications()) return;
  }
}

