/**
 * `ringwire/virtio`: guest memory translation, split virtqueues (device and driver sides), the
 * vhost-user wire layer, and the vhost-user back-end with its devices. See docs/virtio.md and
 * virtio/vhost-user/README.md.
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
export { VhostUserDevice, drainQueue, VHOST_PKT_WEIGHT, VHOST_BYTE_WEIGHT, TRANSPORT_FEATURES, VIRTIO_F_VERSION_1 } from './vhost-user/device.js';
export type { VringHandle } from './vhost-user/device.js';
export { VhostUserServer } from './vhost-user/server.js';
export type { VhostUserServerOptions } from './vhost-user/server.js';
export { VhostUserConnection } from './vhost-user/connection.js';
export { VhostUserBackendState } from './vhost-user/state.js';
export { VhostUserFrontend } from './vhost-user/frontend.js';
export { FrontendGuest } from './vhost-user/frontend-guest.js';
export type { FrontendGuestOptions, GuestQueue } from './vhost-user/frontend-guest.js';
export { RngDevice } from './devices/rng.js';
export { L2Switch } from './devices/l2-switch.js';
export type { L2SwitchStats, SwitchPort } from './devices/l2-switch.js';
export { NetPortDevice } from './devices/net.js';
export type { NetPortStats } from './devices/net.js';
export { VhostUserSwitch } from './devices/switch.js';
export type { VhostUserSwitchOptions } from './devices/switch.js';
