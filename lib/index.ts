export * from './errors.js';
export * from './ring/layout.js';
export * from './ring/ring-memory.js';
export * from './ring/ring-types.js';
export * from './ring/doorbell.js';
export * from './ring/wait.js';
export { SpscProducer, SpscConsumer } from './ring/spsc.js';
export { MpscProducer, MpscConsumer, DEFAULT_ABANDON_TIMEOUT_MS, type MpscConsumerOptions } from './ring/mpsc.js';
export * from './ring/thread-ring.js';
export { Region, type SealSet, type MapOptions } from './native/region.js';
export { EventFd } from './native/eventfd.js';
export { EventFdDoorbell } from './native/doorbell-eventfd.js';
export { FdSocket, FdServer, type PeerCred, type SocketType } from './native/unix-socket.js';
export { addonAvailable } from './native/native.js';
export * from './process/shm-ring.js';
export {
  createSpscProducerHalf, createSpscConsumerHalf, createMpscConsumerHalf, createMpscProducerHalf,
  attachSpscProducer, attachSpscConsumer, attachMpscProducer, attachMpscConsumer, DoorbellGroup, FdInbox,
  type RingHalf, type SpscProducerHalf, type SpscConsumerHalf, type MpscConsumerHalf, type MpscProducerHalf,
  type ProcessRing, type PeerRing, type MpscProcessConsumer, type ProcessRingOptions, type FdMessage,
} from './process/process-ring.js';
export { watchPeer, type PeerLiveness } from './process/liveness.js';
export * from './channel/index.js';
