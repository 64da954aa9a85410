export * from './errors.js';
export * from './layout.js';
export * from './ring-memory.js';
export * from './ring-types.js';
export * from './doorbell.js';
export * from './wait.js';
export { SpscProducer, SpscConsumer } from './spsc.js';
export { MpscProducer, MpscConsumer, DEFAULT_ABANDON_TIMEOUT_MS, type MpscConsumerOptions } from './mpsc.js';
export * from './thread-ring.js';
