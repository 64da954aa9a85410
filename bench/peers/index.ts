/**
 * Every transport the harness knows, in table order. To add one: write bench/peers/<name>.ts
 * exporting a Transport (see bench/transport.ts) and register it here.
 */
import { registerTransport } from '../transport.js';
import { atomicsFloor } from './atomics-floor.js';
import { eventfdFloor } from './eventfd-floor.js';
import { messageChannel } from './message-channel.js';
import { ringwireAgent } from './ringwire-agent.js';
import { ringwireChannel, ringwireChannelDoorbell, ringwireChannelHybrid, http2Ringwire, http2Uds } from './ringwire-channel.js';
import { ringwireProcess } from './ringwire-process.js';
import { ringwireProcessDoorbell } from './ringwire-process-doorbell.js';
import { ringwireThread } from './ringwire-thread.js';
import { tcp } from './tcp.js';
import { uds } from './uds.js';
import { workerPostMessage } from './worker-postmessage.js';

registerTransport(uds);
registerTransport(tcp);
registerTransport(workerPostMessage);
registerTransport(messageChannel);
registerTransport(atomicsFloor);
registerTransport(ringwireThread);
registerTransport(ringwireProcess);
registerTransport(eventfdFloor);
registerTransport(ringwireProcessDoorbell);
registerTransport(ringwireChannel);
registerTransport(ringwireAgent);
registerTransport(ringwireChannelDoorbell);
registerTransport(ringwireChannelHybrid);
registerTransport(http2Uds);
registerTransport(http2Ringwire);
