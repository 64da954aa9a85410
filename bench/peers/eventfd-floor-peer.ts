/** The far side of `eventfd-floor`: sleeps on one eventfd and answers each wake-up on the other. */
import { workerData } from 'node:worker_threads';
import { EventFd } from '../../lib/native/eventfd.js';
import { pinCurrentThread } from '../pin.js';

const { inbound, outbound, peerCore } = workerData as { inbound: number; outbound: number; peerCore?: number };
if (peerCore !== undefined) pinCurrentThread(peerCore);
// The fds belong to the main thread, which closes them after terminating us: wrap without owning.
const inBell = EventFd.fromFd(inbound);
const outBell = EventFd.fromFd(outbound);
for (;;) {
  if (!inBell.waitSync(1000)) continue;
  inBell.drain();
  outBell.signal();
}
