/**
 * The far side of `ringwire-process` and `ringwire-process-doorbell`, run as its own process.
 * Usage: ringwire-process-peer.js <socket path> <busy|doorbell>. It connects to the harness, takes
 * the harness's halves of the two SPSC rings, answers with its own, and serves them with the loop
 * every ring transport shares. busy: poll the inbound ring for a long while before parking on its
 * eventfd; doorbell: spin 0, so it parks on the eventfd every time the ring is empty.
 */
import { readFileSync } from 'node:fs';
import { attachSpscConsumer, attachSpscProducer, createSpscConsumerHalf, createSpscProducerHalf, FdInbox } from '../../lib/process/process-ring.js';
import { FdSocket } from '../../lib/native/unix-socket.js';
import { serveRing, PRODUCER_SPIN } from './ring-wire.js';

/** Same polls as ringwire-thread's echo side, so the two transports differ only in their distance. */
const BUSY_SPIN = 2_000_000;
/** A parked peer looks for its parent this often, so it never outlives a harness that died. */
const ORPHAN_CHECK_MS = 1000;

/** The parent pid as the kernel sees it now (process.ppid is fixed at start-up). */
function currentParent(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

async function main(address: string, mode: 'busy' | 'doorbell'): Promise<void> {
  const parent = currentParent();
  const sock = await FdSocket.connect(address);
  const inbox = new FdInbox(sock);
  const setup = await inbox.next(10_000);
  const { capacity } = JSON.parse(setup.data.toString()) as { capacity: number };
  const pingHalf = createSpscConsumerHalf(capacity, 'bench-ping');
  const pongHalf = createSpscProducerHalf(capacity, 'bench-pong');
  sock.send(Buffer.from('ping'), [...pingHalf.fds]);
  sock.send(Buffer.from('pong'), [...pongHalf.fds]);
  const ping = attachSpscConsumer(pingHalf, setup.fds, { spin: mode === 'busy' ? BUSY_SPIN : 0 });
  const pong = attachSpscProducer(pongHalf, (await inbox.next(10_000)).fds, { spin: PRODUCER_SPIN });
  serveRing(ping.ring, pong.ring, () => {
    if (!ping.ring.waitForDataSync(ORPHAN_CHECK_MS) && currentParent() !== parent) process.exit(1);
  });
  ping.close();
  pong.close();
  inbox.close();
  sock.close();
}

const [address, mode] = process.argv.slice(2);
if (!address || (mode !== 'busy' && mode !== 'doorbell')) {
  console.error('usage: ringwire-process-peer.js <socket path> <busy|doorbell>');
  process.exit(2);
}
main(address, mode).catch((err: unknown) => {
  console.error('ringwire-process-peer:', err);
  process.exit(1);
});
