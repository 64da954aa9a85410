/**
 * Every transport the harness knows, in table order. To add one: write bench/peers/<name>.ts
 * exporting a Transport (see bench/transport.ts) and register it here.
 */
import { registerTransport } from '../transport.js';
import { atomicsFloor } from './atomics-floor.js';
import { ringwireC } from './ringwire-c.js';
import { ringwireWasm } from './ringwire-wasm.js';
import { codecFlatbuffers, codecJson, codecProtobufjs, codecWit } from './codec.js';
import { eventfdFloor } from './eventfd-floor.js';
import { memcpy } from './memcpy.js';
import { messageChannel } from './message-channel.js';
import { ringwireAgent } from './ringwire-agent.js';
import { ringwireChannel, ringwireChannelAdaptive, ringwireChannelDoorbell, ringwireChannelHybrid, http2Ringwire, http2Uds } from './ringwire-channel.js';
import { undiciUds, undiciRingwire, fastifyUds, fastifyRingwire, grpcUds, grpcRingwire } from './http-rows.js';
import { ringwireProcess } from './ringwire-process.js';
import { ringwireProcessDoorbell } from './ringwire-process-doorbell.js';
import { ringwireThread } from './ringwire-thread.js';
import { ringwireThreadLarge } from './ringwire-thread-large.js';
import { tcp } from './tcp.js';
import { uds } from './uds.js';
import { workerPostMessage } from './worker-postmessage.js';

registerTransport(uds);
registerTransport(tcp);
registerTransport(workerPostMessage);
registerTransport(messageChannel);
registerTransport(atomicsFloor);
registerTransport(ringwireThread);
registerTransport(ringwireThreadLarge);
registerTransport(ringwireProcess);
registerTransport(eventfdFloor);
registerTransport(memcpy);
registerTransport(ringwireProcessDoorbell);
registerTransport(ringwireChannel);
registerTransport(ringwireAgent);
registerTransport(ringwireChannelDoorbell);
registerTransport(ringwireChannelAdaptive);
registerTransport(ringwireChannelHybrid);
registerTransport(http2Uds);
registerTransport(http2Ringwire);
registerTransport(undiciUds);
registerTransport(undiciRingwire);
registerTransport(fastifyUds);
registerTransport(fastifyRingwire);
registerTransport(grpcUds);
registerTransport(grpcRingwire);
registerTransport(codecWit);
registerTransport(codecJson);
registerTransport(codecFlatbuffers);
registerTransport(codecProtobufjs);
registerTransport(ringwireC);
registerTransport(ringwireWasm);
