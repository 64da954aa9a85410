import type { Transport } from '../transport.js';
import { openNetPeer } from './net-client.js';

export const tcp: Transport = {
  name: 'tcp',
  distance: 'process',
  description: 'node:net over TCP on 127.0.0.1 to another process, Nagle off (setNoDelay)',
  open: (ctx) => openNetPeer('tcp', ctx),
};
