/**
 * `ringwire/virtio`: guest memory translation, split virtqueues (device and driver sides) and the
 * vhost-user wire layer (no I/O). See docs/virtio.md.
 */
export { GuestMemory, toU64 } from './memory.js';
export type { AddressSpace, GuestAddress, GuestMemoryRegion, GuestMemoryRegionInit } from './memory.js';
export {
  DESC_SIZE, MAX_QUEUE_SIZE, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_USED_F_NO_NOTIFY, availRingBytes, descTableBytes, splitQueueLayout,
  usedRingBytes, vringNeedEvent,
} from './split-layout.js';
export type { SplitQueueAddresses } from './split-layout.js';
export { SplitQueueDevice } from './split-queue.js';
export type { DescriptorChain, SplitQueueDeviceOptions } from './split-queue.js';
export { SplitQueueDriver } from './split-driver.js';
export type { GuestBuffer, SplitQueueDriverOptions, UsedElement } from './split-driver.js';
export * from './vhost-user/protocol.js';
export * from './vhost-user/payloads.js';
