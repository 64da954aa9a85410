import type { Transport } from '../transport.js';
import { openNetPeer } from './net-client.js';

export const uds: Transport = {
  name: 'uds',
  distance: 'process',
  description: 'node:net over a UNIX socket to another process (the baseline of every ratio)',
  open: (ctx) => openNetPeer('uds', ctx),
};
