import { createThreadRing, openConsumer, openProducer } from '../../lib/ring/thread-ring.js';
import type { Transport } from '../transport.js';
import { ringPeer, PRODUCER_SPIN } from './ring-wire.js';
import { startWorker } from './start-worker.js';
import { maxMessageSize } from '../../lib/ring/layout.js';

const RING_BYTES = 1 << 20;
/**
 * Polls before the echo side parks. Long enough that it never parks inside a measurement (it
 * busy-polls, the point of this transport), short enough that it sleeps between measurements
 * instead of stealing a core from the other transports.
 */
const ECHO_SPIN = 2_000_000;

export const ringwireThread: Transport = {
  name: 'ringwire-thread',
  distance: 'thread',
  description: 'SPSC rings in SharedArrayBuffers between the main thread and a worker, busy-polling',
  maxSize: maxMessageSize(RING_BYTES),
  busyPoll: true,
  async open(ctx) {
    const ping = createThreadRing(RING_BYTES);
    const pong = createThreadRing(RING_BYTES);
    const worker = await startWorker(new URL('./ringwire-thread-peer.js', import.meta.url), { ping, pong, peerCore: ctx.peerCore, spin: ECHO_SPIN }, 'ring');
    return ringPeer(openProducer(ping, { spin: PRODUCER_SPIN }), openConsumer(pong), async () => {
      await worker.terminate();
    });
  },
};
