import type { Transport } from '../transport.js';
import { openPortPeer } from './port-client.js';

export const messageChannel: Transport = {
  name: 'message-channel',
  distance: 'thread',
  description: 'a MessageChannel whose second port was moved to a worker thread; Uint8Array messages',
  open: (ctx) => openPortPeer(true, ctx),
};
