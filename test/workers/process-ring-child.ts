/**
 * Child process side of the cross-process ring tests (test/30-*.test.ts .. test/34-*.test.ts).
 * Usage: process-ring-child.js <socket path> <role> <params JSON>. The child connects, exchanges
 * fds with the parent through lib/process/process-ring.ts, plays its role and reports one JSON message.
 * Messages come from ring-worker.ts's generator, so the parent checks every byte.
 */
import {
  attachMpscProducer, attachSpscConsumer, attachSpscProducer, createMpscProducerHalf, createSpscConsumerHalf,
  createSpscProducerHalf, FdInbox,
} from '../../lib/process/process-ring.js';
import { isRingwireError } from '../../lib/errors.js';
import { Region, truncateFd } from '../../lib/native/region.js';
import { mapPeerBlock } from '../../lib/process/shm-ring.js';
import { FdSocket } from '../../lib/native/unix-socket.js';
import type { RingProducer } from '../../lib/ring/ring-types.js';
import { messageLength, SequenceChecker, writeMessage } from './ring-worker.js';

export type ChildRole = 'spsc-producer' | 'spsc-consumer' | 'mpsc-producer' | 'fault-writer' | 'sealed-tamper';

export interface ChildParams {
  count?: number;
  capacity?: number;
  producerId?: number;
  maxLen?: number;
  /** spsc-producer: after every `groupSize` messages, wait for a message from the parent. */
  groupSize?: number;
  /** mpsc-producer: after this many messages, claim one more, never commit it, and hang. */
  stallAfter?: number;
}

const WAIT_MS = 20_000;

const json = (sock: FdSocket, value: unknown): void => sock.send(Buffer.from(JSON.stringify(value)));

/** Sends `count` generated messages, waiting for space when full; returns their checksum. */
function produce(p: RingProducer & { waitForSpaceSync(length: number, timeoutMs?: number): boolean }, id: number, from: number, count: number, maxLen: number): number {
  let checksum = 0;
  for (let seq = from; seq < from + count; seq++) {
    const len = messageLength(id, seq, maxLen);
    let off = p.claim(len, id);
    while (off < 0) {
      if (!p.waitForSpaceSync(len, WAIT_MS)) throw new Error(`producer ${id}: no space for ${WAIT_MS} ms at seq ${seq}`);
      off = p.claim(len, id);
    }
    writeMessage(p.data, off, id, seq, len);
    p.commit();
    checksum = (checksum + seq + len) >>> 0;
  }
  return checksum;
}

/** Runs `fn` and reports the ringwire error it throws as {code, errno, syscall}, or 'no error'. */
/** Offers our consumer half, attaches to the parent's producer and reads `count` checked messages. */
function consumeSequence(sock: FdSocket, peerFds: readonly number[], capacity: number, count: number, maxLen: number) {
  const half = createSpscConsumerHalf(capacity, 'child-consumer');
  sock.send(Buffer.from('half'), [...half.fds]);
  const { ring, close } = attachSpscConsumer(half, [...peerFds]);
  const check = new SequenceChecker(1, maxLen);
  while (check.total < count) {
    if (ring.drain(check.onRecord, 256) === 0 && !ring.waitForDataSync(WAIT_MS)) throw new Error(`consumer starved at ${check.total}`);
  }
  return { ring, close, check };
}

function attempt(fn: () => unknown): { code?: string; errno?: number; syscall?: string } | 'no error' {
  try {
    fn();
    return 'no error';
  } catch (err) {
    if (!isRingwireError(err)) throw err;
    return { code: err.code, errno: err.errno, syscall: err.syscall };
  }
}

async function main(address: string, role: ChildRole, params: ChildParams): Promise<void> {
  const sock = await FdSocket.connect(address);
  const inbox = new FdInbox(sock);
  const maxLen = params.maxLen ?? 96;
  const id = params.producerId ?? 0;
  const count = params.count ?? 0;
  const peer = await inbox.next(WAIT_MS);

  if (role === 'spsc-producer') {
    const half = createSpscProducerHalf(params.capacity!, 'child-producer');
    sock.send(Buffer.from('half'), [...half.fds]);
    const { ring, close } = attachSpscProducer(half, peer.fds);
    const group = params.groupSize ?? count;
    let checksum = 0;
    for (let sent = 0; sent < count; sent += group) {
      checksum = (checksum + produce(ring, id, sent, Math.min(group, count - sent), maxLen)) >>> 0;
      if (sent + group < count) await inbox.next(WAIT_MS);
    }
    json(sock, { checksum, stats: ring.stats() });
    close();
  } else if (role === 'spsc-consumer') {
    const { ring, close, check } = consumeSequence(sock, peer.fds, params.capacity!, count, maxLen);
    json(sock, { checksum: check.checksum, next: check.next, stats: ring.stats() });
    close();
  } else if (role === 'mpsc-producer') {
    const half = createMpscProducerHalf();
    sock.send(Buffer.from('half'), [...half.fds]);
    const { ring } = attachMpscProducer(half, peer.fds);
    const stallAfter = params.stallAfter ?? count;
    const checksum = produce(ring, id, 0, Math.min(count, stallAfter), maxLen);
    if (stallAfter < count) {
      const len = messageLength(id, stallAfter, maxLen);
      let off = ring.claim(len, id);
      while (off < 0) {
        ring.waitForSpaceSync(len, WAIT_MS);
        off = ring.claim(len, id);
      }
      // Half a message, never committed: the parent kills us holding the reservation.
      writeMessage(ring.data, off, id, stallAfter, len >> 1);
      json(sock, { claimed: off });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    }
    json(sock, { checksum, stats: ring.stats() });
  } else if (role === 'fault-writer') {
    // An MPSC producer's view of the consumer block is read-only: this store must kill us.
    const control = mapPeerBlock(peer.fds[1]!, false, 'consumer block');
    json(sock, { mapped: control.size });
    await inbox.next(WAIT_MS);
    new Int32Array(control.buffer)[16] = 0;
    json(sock, { wrote: true });
  } else if (role === 'sealed-tamper') {
    // Given an SPSC producer half's fds: try to shrink, grow and write-map the sealed block, then
    // consume the ring normally to show the attempts changed nothing.
    const blockFd = peer.fds[0]!;
    const shrink = attempt(() => truncateFd(blockFd, 0));
    const grow = attempt(() => truncateFd(blockFd, 1 << 24));
    const writeMap = attempt(() => Region.fromFd(blockFd, { writable: true }).close());
    const { close, check } = consumeSequence(sock, peer.fds, params.capacity!, count, maxLen);
    json(sock, { shrink, grow, writeMap, checksum: check.checksum, next: check.next });
    close();
  }
  inbox.close();
  sock.close();
}

const [address, role, params] = process.argv.slice(2);
if (!address || !role) {
  console.error('usage: process-ring-child.js <socket path> <role> <params JSON>');
  process.exit(2);
}
main(address, role as ChildRole, JSON.parse(params ?? '{}') as ChildParams).catch((err: unknown) => {
  console.error(`process-ring-child ${role}:`, err);
  process.exit(1);
});
