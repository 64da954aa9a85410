/**
 * The far side of the `worker-postmessage` and `message-channel` transports, run as a worker
 * thread. Data messages are Uint8Arrays (structured-cloned, as a Node user posting bytes gets);
 * control messages are small objects, so one `instanceof` tells them apart.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { pinCurrentThread } from '../pin.js';
import type { PortControl, PortReply } from './port-wire.js';

const { port: channelPort, peerCore } = workerData as { port?: MessagePort; peerCore?: number };
const port = channelPort ?? parentPort!;
const reply = (r: PortReply): void => port.postMessage(r);

let echo = false;
let burst = 0;
let received = 0;

port.on('message', (msg: Uint8Array | PortControl) => {
  if (msg instanceof Uint8Array) {
    if (echo) port.postMessage(msg);
    else if (++received === burst) {
      received = 0;
      reply({ kind: 'ack' });
    }
    return;
  }
  echo = msg.mode === 'echo';
  burst = msg.mode === 'sink' ? msg.burst : 0;
  received = 0;
  reply({ kind: 'ready' });
});

reply({ kind: 'online', pinned: peerCore === undefined ? false : pinCurrentThread(peerCore) });
