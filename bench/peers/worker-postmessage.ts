import type { Transport } from '../transport.js';
import { openPortPeer } from './port-client.js';

export const workerPostMessage: Transport = {
  name: 'worker-postmessage',
  distance: 'thread',
  description: 'worker.postMessage / parentPort.postMessage of a Uint8Array (structured clone) to a worker thread',
  open: (ctx) => openPortPeer(false, ctx),
};
