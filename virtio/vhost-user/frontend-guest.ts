/**
 * A pretend guest for a VhostUserFrontend: guest RAM in a memfd shared with the back-end, split
 * queues driven by SplitQueueDriver, and the message sequence QEMU 7.2 sends to start a device
 * (features, protocol features, owner, memory table, then per queue num, base, addr, kick, call,
 * enable). What a test or a host process needs to talk to a back-end exactly as a VM would,
 * with real sockets and real fds, and nothing else.
 *
 * Addresses: guest-physical addresses start at 0; the front-end's user addresses are offset by
 * `uvaBase` so that a back-end confusing the two address spaces fails loudly.
 *
 * Concurrency contract: one thread; the back-end runs in this or another process.
 */
import { ringwireError } from '../../lib/errors.js';
import { EventFd } from '../../lib/native/eventfd.js';
import { Region } from '../../lib/native/region.js';
import { GuestMemory } from '../memory.js';
import { splitQueueLayout, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC } from '../split-layout.js';
import { SplitQueueDriver } from '../split-driver.js';
import { VIRTIO_F_VERSION_1 } from './device.js';
import type { VhostUserFrontend } from './frontend.js';
import { MemoryTablePayload, U64Payload, VringAddressPayload, VringFdPayload, VringStatePayload } from './payloads.js';
import { VHOST_USER_F_PROTOCOL_FEATURES, VhostUserProtocolFeature as PF, VhostUserRequest as R } from './protocol.js';

const bit = (n: number): bigint => 1n << BigInt(n);

export interface GuestQueue {
  readonly index: number;
  readonly driver: SplitQueueDriver;
  /** The driver's kick: signal() it after publish() returns true. */
  readonly kick: EventFd;
  /** The device's used-buffer notification. */
  readonly call: EventFd;
}

export interface FrontendGuestOptions {
  /** Guest RAM size in bytes; default 4 MiB. Sparse: pages are used only as they are touched. */
  memorySize?: number;
  /** Guest-physical address of the first byte of RAM; default 0 (VMs put RAM above 4 GiB here too). */
  guestPhysBase?: number;
  /** Offset into guest RAM where queues and buffers start being allocated; default 4 KiB. */
  allocFrom?: number;
  queueSize?: number;
  /** Features to accept out of those offered (masked with the offer unless forceFeatures). */
  wantFeatures?: bigint;
  /** Ack these bits even if not offered: QEMU 7.2 does it with EVENT_IDX. */
  forceFeatures?: bigint;
  uvaBase?: bigint;
  /** Leave out SET_PROTOCOL_FEATURES and SET_OWNER: the session already had them (restart after RESET_DEVICE). */
  skipOwner?: boolean;
  /** Leave guest RAM unsealed, as DPDK --no-huge does; back-ends refuse it unless allowUnsealedMemory (constructor option). */
  unsealedMemory?: boolean;
}

export class FrontendGuest {
  readonly region: Region;
  readonly memory: GuestMemory;
  readonly uvaBase: bigint;
  readonly guestPhysBase: number;
  readonly queues: GuestQueue[] = [];
  features = 0n;
  #next: number;

  constructor(options: FrontendGuestOptions = {}) {
    const size = options.memorySize ?? 4 << 20;
    this.uvaBase = options.uvaBase ?? 0x7f00_0000_0000n;
    this.guestPhysBase = options.guestPhysBase ?? 0;
    this.region = Region.create('ringwire-test-guest', size);
    // As QEMU's memory-backend-memfd does: back-ends refuse memory that could shrink under them.
    if (!options.unsealedMemory) this.region.seal({ shrink: true, grow: true });
    this.memory = new GuestMemory([{ guestPhysAddr: this.guestPhysBase, size, userspaceAddr: this.uvaBase, buffer: this.region.buffer }]);
    this.#next = this.guestPhysBase + (options.allocFrom ?? 0x1000);
  }

  /** Bump-allocates `len` guest bytes aligned to `align`; returns the guest-physical address. */
  alloc(len: number, align = 16): number {
    const addr = Math.ceil(this.#next / align) * align;
    if (addr - this.guestPhysBase + len > this.region.size) throw ringwireError('ERR_OUT_OF_RANGE', `test guest memory exhausted (${len} bytes wanted)`);
    this.#next = addr + len;
    return addr;
  }

  /** Host view of guest bytes. */
  bytes(gpa: number, len: number): Uint8Array {
    return this.memory.translateGpa(gpa, len);
  }

  /**
   * Runs QEMU's start sequence against the back-end for `numQueues` queues. Every request that has
   * no reply of its own asks for a REPLY_ACK, so a refusal surfaces here as a rejection.
   */
  async start(fe: VhostUserFrontend, numQueues: number, options: FrontendGuestOptions = {}): Promise<void> {
    const queueSize = options.queueSize ?? 256;
    const offered = await fe.getU64(R.GET_FEATURES);
    if (!(offered & bit(VHOST_USER_F_PROTOCOL_FEATURES))) throw ringwireError('ERR_VHOST_PROTOCOL', 'back-end does not offer protocol features');
    const pf = await fe.getU64(R.GET_PROTOCOL_FEATURES);
    if (!(pf & bit(PF.REPLY_ACK))) throw ringwireError('ERR_VHOST_PROTOCOL', 'back-end does not offer REPLY_ACK');
    if (!options.skipOwner) {
      await fe.request(R.SET_PROTOCOL_FEATURES, U64Payload.encode(bit(PF.REPLY_ACK)));
      await fe.requestAck(R.SET_OWNER);
    }
    const want = options.wantFeatures ?? (bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_EVENT_IDX) | bit(VIRTIO_F_INDIRECT_DESC));
    this.features = (want & offered) | (options.forceFeatures ?? 0n);
    await fe.requestAck(R.SET_FEATURES, U64Payload.encode(this.features | bit(VHOST_USER_F_PROTOCOL_FEATURES)));
    await fe.requestAck(R.SET_MEM_TABLE, MemoryTablePayload.encode([
      { guestPhysAddr: BigInt(this.guestPhysBase), memorySize: BigInt(this.region.size), userspaceAddr: this.uvaBase, mmapOffset: 0n },
    ]), [this.region.fd]);
    const eventIdx = (this.features & bit(VIRTIO_F_EVENT_IDX)) !== 0n;
    for (let index = 0; index < numQueues; index++) {
      const at = this.alloc(Number(splitQueueLayout(queueSize).end), 4096);
      const layout = splitQueueLayout(queueSize, at);
      const driver = new SplitQueueDriver({ memory: this.memory, size: queueSize, addresses: layout, eventIdx });
      const kick = EventFd.create();
      const call = EventFd.create();
      const uva = (gpa: bigint): bigint => gpa - BigInt(this.guestPhysBase) + this.uvaBase;
      await fe.requestAck(R.SET_VRING_NUM, VringStatePayload.encode(index, queueSize));
      await fe.requestAck(R.SET_VRING_BASE, VringStatePayload.encode(index, 0));
      await fe.requestAck(R.SET_VRING_ADDR, VringAddressPayload.encode({ index, desc: uva(layout.desc), avail: uva(layout.avail), used: uva(layout.used) }));
      await fe.requestAck(R.SET_VRING_CALL, VringFdPayload.encode(index), [call.fd]);
      await fe.requestAck(R.SET_VRING_KICK, VringFdPayload.encode(index), [kick.fd]);
      await fe.requestAck(R.SET_VRING_ENABLE, VringStatePayload.encode(index, 1));
      this.queues.push({ index, driver, kick, call });
    }
  }

  /** Closes the eventfds and the memfd (the mapping stays until garbage-collected). */
  close(): void {
    for (const q of this.queues) {
      q.kick.close();
      q.call.close();
    }
    this.region.close();
  }
}
