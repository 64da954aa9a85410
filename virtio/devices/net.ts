/**
 * vhost-user-net, one switch port per VM (virtio 1.2, 5.1 "Network Device"; QEMU
 * `-netdev vhost-user,chardev=...` with `-device virtio-net-pci`). Queue 0 receives (the device
 * writes frames into guest buffers), queue 1 transmits (the device reads frames the guest sent).
 * Offers no offloads: the guest checksums and segments itself, so every frame is at most an
 * MTU-sized Ethernet frame and each fits one receive buffer of the "small buffers" kind Linux posts
 * without VIRTIO_NET_F_MRG_RXBUF.
 *
 * Frames a receive queue has no buffers for wait in a short per-port backlog (the guest refills and
 * kicks); past that they are dropped, as any switch port drops, and counted.
 *
 * Concurrency contract: one event loop, shared with the switch and the other ports.
 */
import { ringwireError } from '../../lib/errors.js';
import { TRANSPORT_FEATURES, VhostUserDevice, VIRTIO_F_VERSION_1, drainQueue, type VringHandle } from '../vhost-user/device.js';
import { ETHERNET_HEADER, type L2Switch, type SwitchPort } from './l2-switch.js';

export const VIRTIO_NET_F_MRG_RXBUF = 15;
/** struct virtio_net_hdr: 10 bytes, plus num_buffers (u16) with VERSION_1 or MRG_RXBUF (5.1.6). */
const NET_HDR_LEGACY = 10;
const NET_HDR = 12;
const NUM_BUFFERS_AT = 10;
const RX = 0;
const TX = 1;
/** Largest frame accepted from a guest: 64 KiB covers any non-GSO frame with room to spare. */
export const MAX_FRAME = 65_535;
export const DEFAULT_RX_BACKLOG = 256;

export interface NetPortStats {
  txFrames: number;
  rxFrames: number;
  /** Frames dropped towards this guest: no receive buffers and the backlog full, or a buffer too small. */
  rxDropped: number;
  /** Frames from this guest that were not Ethernet frames (shorter than a header, or longer than MAX_FRAME). */
  txDropped: number;
}

export class NetPortDevice extends VhostUserDevice implements SwitchPort {
  readonly numQueues = 2;
  readonly name: string;
  readonly #switch: L2Switch;
  readonly #log: (message: string) => void;
  readonly #backlogLimit: number;
  readonly #scratch = new Uint8Array(NET_HDR + MAX_FRAME);
  #hdrLen = NET_HDR;
  #rx: VringHandle | undefined;
  #backlog: Uint8Array[] = [];
  #rxSinceNotify = 0;
  readonly stats: NetPortStats = { txFrames: 0, rxFrames: 0, rxDropped: 0, txDropped: 0 };

  constructor(name: string, sw: L2Switch, options: { rxBacklog?: number; log?: (message: string) => void } = {}) {
    super();
    if (typeof name !== 'string' || name.length === 0) throw ringwireError('ERR_INVALID_ARG', 'port name must be a non-empty string');
    this.name = name;
    this.#switch = sw;
    this.#log = options.log ?? (() => {});
    this.#backlogLimit = options.rxBacklog ?? DEFAULT_RX_BACKLOG;
  }

  override features(): bigint {
    return TRANSPORT_FEATURES;
  }

  override acknowledgeFeatures(features: bigint): void {
    const modern = (features & ((1n << BigInt(VIRTIO_F_VERSION_1)) | (1n << BigInt(VIRTIO_NET_F_MRG_RXBUF)))) !== 0n;
    this.#hdrLen = modern ? NET_HDR : NET_HDR_LEGACY;
  }

  override queueStarted(vring: VringHandle): void {
    if (vring.index === RX) this.#rx = vring;
    this.#switch.attach(this);
  }

  override queueStopped(index: number): void {
    if (index === RX) this.#rx = undefined;
  }

  override handleQueue(vring: VringHandle): void {
    if (vring.index === RX) {
      this.#drainBacklog();
      this.flush();
      return;
    }
    if (vring.index !== TX) throw ringwireError('ERR_VHOST_PROTOCOL', `net port has no queue ${vring.index}`);
    drainQueue(vring, (chain) => {
      const hdr = this.#hdrLen;
      if (chain.readableBytes < hdr + ETHERNET_HEADER || chain.readableBytes > hdr + MAX_FRAME) {
        this.stats.txDropped++;
        return 0;
      }
      this.stats.txFrames++;
      // A frame in one buffer is switched straight out of guest memory (deliver() copies before
      // returning); only a scattered one is gathered first.
      if (chain.readable.length === 1) {
        this.#switch.forward(this, chain.readable[0]!.subarray(hdr));
        return 0;
      }
      let off = 0;
      for (const b of chain.readable) {
        this.#scratch.set(b, off);
        off += b.byteLength;
      }
      this.#switch.forward(this, this.#scratch.subarray(hdr, off));
      return 0;
    });
    this.#switch.commit();
  }

  /** SwitchPort: a frame for this guest. */
  deliver(frame: Uint8Array): void {
    if (!this.#rx) {
      this.stats.rxDropped++;
      return;
    }
    if (this.#backlog.length === 0 && this.#write(frame)) return;
    if (this.#backlog.length >= this.#backlogLimit) {
      this.stats.rxDropped++;
      return;
    }
    this.#backlog.push(frame.slice());
  }

  /** SwitchPort: signal the guest once for the frames written since the last flush. */
  flush(): void {
    if (this.#rxSinceNotify === 0 || !this.#rx) return;
    this.#rxSinceNotify = 0;
    this.#rx.notify();
  }

  override reset(): void {
    this.#rx = undefined;
    this.#backlog = [];
    this.#rxSinceNotify = 0;
    this.#switch.detach(this);
  }

  #drainBacklog(): void {
    while (this.#backlog.length > 0 && this.#write(this.#backlog[0]!)) this.#backlog.shift();
  }

  /** Writes one frame into the next receive chain; false when the guest has posted none. */
  #write(frame: Uint8Array): boolean {
    const rx = this.#rx!;
    let chain;
    try {
      chain = rx.queue.pop();
    } catch (err) {
      // The receive queue broke (hostile ring): stop delivering to it; the sender is not at fault.
      this.#log(`port ${this.name}: receive queue broken: ${(err as Error).message}`);
      this.#rx = undefined;
      this.stats.rxDropped++;
      return true;
    }
    if (!chain) return false;
    const hdr = this.#hdrLen;
    const need = hdr + frame.byteLength;
    if (chain.writableBytes < need) {
      rx.queue.pushUsed(chain.head, 0);
      this.stats.rxDropped++;
      this.#rxSinceNotify++;
      return true;
    }
    // The header: no offloads (flags, gso_type 0), one buffer (5.1.6.4: num_buffers is 1 without MRG_RXBUF).
    let src = 0;
    let headerLeft = hdr;
    for (const b of chain.writable) {
      let at = 0;
      if (headerLeft > 0) {
        const n = Math.min(headerLeft, b.byteLength);
        for (let i = 0; i < n; i++) b[i] = hdr - headerLeft + i === NUM_BUFFERS_AT ? 1 : 0;
        headerLeft -= n;
        at = n;
      }
      if (headerLeft > 0) continue;
      const n = Math.min(b.byteLength - at, frame.byteLength - src);
      b.set(frame.subarray(src, src + n), at);
      src += n;
      if (src === frame.byteLength) break;
    }
    rx.queue.pushUsed(chain.head, need);
    this.stats.rxFrames++;
    this.#rxSinceNotify++;
    return true;
  }
}
