import type { Transport } from '../transport.js';
import { openProcessRingPeer } from './ringwire-process.js';
import { maxMessageSize } from '../../lib/ring/layout.js';

export const ringwireProcessDoorbell: Transport = {
  name: 'ringwire-process-doorbell',
  distance: 'process',
  description: 'as ringwire-process, but the far side never spins: it parks on its eventfd whenever its ring is empty',
  maxSize: maxMessageSize(1 << 20),
  open: (ctx) => openProcessRingPeer('doorbell', ctx),
};
