/** The far side of `ringwire-thread`: a worker serving two SPSC rings. */
import { workerData } from 'node:worker_threads';
import { openConsumer, openProducer, type ThreadRingDescriptor } from '../../lib/ring/thread-ring.js';
import { pinCurrentThread } from '../pin.js';
import { serveRing } from './ring-wire.js';

const { ping, pong, peerCore, spin } = workerData as { ping: ThreadRingDescriptor; pong: ThreadRingDescriptor; peerCore?: number; spin: number };
if (peerCore !== undefined) pinCurrentThread(peerCore);
const inbound = openConsumer(ping, { spin });
serveRing(inbound, openProducer(pong), () => inbound.waitForDataSync());
