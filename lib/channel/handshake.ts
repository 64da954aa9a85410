/**
 * What the server and client handshakes share: a frame queue with a timeout on every wait, the
 * failure type that carries the Disconnect code to send, and the ring blocks each side owns and
 * receives. docs/protocol.md describes the sequence; handshake-server.ts and handshake-client.ts
 * run it.
 */
import { fstatSync } from 'node:fs';
import { isRingwireError, ringwireError, type ErrorCode, type RingwireError } from '../errors.js';
import { EventFdDoorbell } from '../native/doorbell-eventfd.js';
import { CONSUMER_BLOCK_SIZE, RingKind, producerBlockSize } from '../ring/layout.js';
import { Region } from '../native/region.js';
import { createBlockRegion } from '../process/shm-ring.js';
import { SpscConsumer, SpscProducer } from '../ring/spsc.js';
import { attachConsumerBlock, attachProducerBlock } from '../ring/ring-memory.js';
import { closeFd } from '../native/native.js';
import type { FdSocket } from '../native/unix-socket.js';
import {
  AckView, AddRingView, BlockSide, Direction, DisconnectCode, DisconnectView, Frame, Msg,
  encodeAck, encodeAddRing, encodeDisconnect, msgName, type AddRing,
} from './protocol.js';

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;

/** A failed handshake: the error to surface locally and the code to tell the peer (none if the peer ended it). */
export interface HandshakeError extends RingwireError {
  disconnectCode?: DisconnectCode;
}

export function handshakeError(code: ErrorCode, disconnectCode: DisconnectCode | undefined, message: string, cause?: unknown): HandshakeError {
  const err = ringwireError(code, message, cause === undefined ? undefined : { cause }) as HandshakeError;
  if (disconnectCode !== undefined) err.disconnectCode = disconnectCode;
  return err;
}

/** The local error for a Disconnect the peer sent during the handshake. */
export function peerRefusal(d: DisconnectView): HandshakeError {
  const code: ErrorCode = d.code === DisconnectCode.Policy || d.code === DisconnectCode.Secret ? 'ERR_POLICY' : 'ERR_HANDSHAKE';
  return handshakeError(code, undefined, `peer disconnected (code ${d.code}): ${d.reason ?? '(unreadable reason)'}`);
}

/**
 * Frames a peer may have queued ahead of the step that reads them: at most a few legitimately
 * cross (two AddRings and two Acks), so more is a flood, e.g. fds pipelined during a slow policy check.
 */
const MAX_QUEUED_FRAMES = 8;

/**
 * Received frames in order, awaited one at a time with a timeout per wait. Fds of frames nobody
 * takes are closed by dispose(). A malformed frame, the socket closing, the timeout, or more than
 * MAX_QUEUED_FRAMES frames waiting reject the pending wait with the reason; after an overflow
 * every queued and later frame's fds are closed at once.
 */
export class FrameQueue {
  #frames: Frame[] = [];
  #failure: HandshakeError | undefined;
  #overflowed = false;
  #waiter: { resolve(f: Frame): void; reject(e: Error): void } | undefined;
  #sock: FdSocket;
  #onMessage = (data: Buffer, fds: number[]): void => this.#push(data, fds);
  /** Why the socket failed, if it did: the close that follows is then not the peer's doing. */
  #socketError: RingwireError | undefined;
  #onError = (err: RingwireError): void => {
    this.#socketError ??= err;
  };
  #onClose = (): void => {
    const e = this.#socketError;
    this.#fail(e ? handshakeError(e.code, undefined, `the handshake socket failed: ${e.message}`, e) : handshakeError('ERR_PEER_GONE', undefined, 'the peer closed the socket during the handshake'));
  };
  /** A datagram over MAX_HANDSHAKE_MESSAGE or with more fds than any message carries (the socket dropped it whole). */
  #onTruncated = (err: RingwireError): void => {
    if (this.#overflowed) return;
    this.#fail(handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `malformed handshake message: ${err.message.replace(/^recvmsg: /, '')}`, err));
  };

  constructor(sock: FdSocket, readonly timeoutMs: number) {
    this.#sock = sock;
    sock.on('message', this.#onMessage);
    sock.on('error', this.#onError);
    sock.on('truncated', this.#onTruncated);
    sock.on('close', this.#onClose);
  }

  #push(data: Buffer, fds: number[]): void {
    if (this.#overflowed) {
      for (const fd of fds) closeFd(fd);
      return;
    }
    const frame = Frame.parse(data, fds);
    if (!frame || !frame.isValid()) {
      for (const fd of fds) closeFd(fd);
      const what = frame ? `${msgName(frame.type)} message with a ${frame.body.byteLength}-byte body and ${fds.length} fd(s)` : `${data.length}-byte message with a bad header`;
      this.#fail(handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `malformed handshake message: ${what}`));
      return;
    }
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w.resolve(frame);
    } else if (this.#frames.length < MAX_QUEUED_FRAMES) {
      this.#frames.push(frame);
    } else {
      this.#overflowed = true;
      for (const f of [...this.#frames.splice(0), frame]) for (const fd of f.fds) closeFd(fd);
      this.#fail(handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `more than ${MAX_QUEUED_FRAMES} handshake messages sent ahead of the handshake`));
    }
  }

  #fail(err: HandshakeError): void {
    this.#failure ??= err;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(this.#failure);
  }

  /** Why the queue failed, if it did (a flood, say), before any frame is awaited. */
  get failure(): HandshakeError | undefined {
    return this.#failure;
  }

  /** The next frame; `step` names what we wait for, in the timeout's message. */
  next(step: string): Promise<Frame> {
    const queued = this.#frames.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#fail(handshakeError('ERR_TIMEOUT', DisconnectCode.Timeout, `handshake: no ${step} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.#waiter = {
        resolve: (f) => { clearTimeout(timer); resolve(f); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
  }

  /** Stops listening and closes the fds of frames never taken. */
  dispose(): void {
    this.#sock.off('message', this.#onMessage);
    this.#sock.off('error', this.#onError);
    this.#sock.off('truncated', this.#onTruncated);
    this.#sock.off('close', this.#onClose);
    for (const f of this.#frames) for (const fd of f.fds) closeFd(fd);
    this.#frames = [];
  }
}

/** Throws for a frame that is not what this step accepts; a Disconnect becomes the peer's refusal. */
export function unexpected(frame: Frame, step: string): never {
  for (const fd of frame.fds) closeFd(fd);
  if (frame.type === Msg.Disconnect) {
    const d = new DisconnectView(frame.body);
    if (d.isValid()) throw peerRefusal(d);
  }
  throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `unexpected ${msgName(frame.type)} while waiting for ${step}`);
}

/** Tells the peer why, then closes; never throws (the socket may already be gone). */
export function sendDisconnect(sock: FdSocket, code: DisconnectCode, reason: string): void {
  try {
    sock.send(encodeDisconnect(code, reason));
  } catch {
    // The peer is gone already; closing is all that is left.
  }
}

/** A handshake of ours failed: tell the peer why when the failure carries a Disconnect code, then close. */
export function abandonHandshake(sock: FdSocket, err: unknown): void {
  const e = err as HandshakeError;
  if (e.disconnectCode !== undefined) sendDisconnect(sock, e.disconnectCode, e.message);
  sock.close();
}

export type Role = 'server' | 'client';

/** The direction this side produces into. */
function ownProducerDirection(role: Role): Direction {
  return role === 'client' ? Direction.ClientToServer : Direction.ServerToClient;
}

/** One block this side created and announces, with the eventfd it parks on. */
interface OwnBlock {
  readonly announce: AddRing;
  readonly region: Region;
  readonly bell: EventFdDoorbell;
}

/** One block received from the peer, mapped read-only, with the eventfd we ring. */
interface PeerBlock {
  readonly region: Region;
  readonly bell: EventFdDoorbell;
}

/**
 * The four blocks and four doorbells of one channel (design rule 1): this side creates the
 * producer block of the direction it writes and the consumer block of the direction it reads,
 * each with the eventfd it sleeps on; the peer sends the other two blocks and the eventfds we ring.
 */
export class RingSet {
  readonly #role: Role;
  readonly #own: OwnBlock[] = [];
  readonly #peer = new Map<string, PeerBlock>();
  readonly #sizes: Record<Direction, number>;
  #acked = new Set<string>();

  constructor(role: Role, clientToServerBytes: number, serverToClientBytes: number) {
    this.#role = role;
    this.#sizes = { [Direction.ClientToServer]: clientToServerBytes, [Direction.ServerToClient]: serverToClientBytes };
    try {
      const out = ownProducerDirection(role);
      const inbound = (1 - out) as Direction;
      this.#own.push(this.#create(out, BlockSide.Producer));
      this.#own.push(this.#create(inbound, BlockSide.Consumer));
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  #create(direction: Direction, side: BlockSide): OwnBlock {
    const ringBytes = this.#sizes[direction];
    const bell = EventFdDoorbell.create();
    try {
      const name = `ringwire-${this.#role}-${direction === Direction.ClientToServer ? 'c2s' : 's2c'}-${side === BlockSide.Producer ? 'producer' : 'consumer'}`;
      const region = createBlockRegion(RingKind.Spsc, ringBytes, side === BlockSide.Producer ? 'producer' : 'consumer', name);
      return { announce: { direction, side, ringIndex: 0, ringBytes }, region, bell };
    } catch (err) {
      bell.close();
      throw err;
    }
  }

  /**
   * Both sides' middle step: announce our blocks, then map each peer block announced (acking it)
   * and take the peer's acks of ours, in any order, until every block is known both ways.
   */
  async exchange(sock: FdSocket, frames: FrameQueue): Promise<void> {
    for (const a of this.announcements()) sock.send(a.data, a.fds);
    while (!this.complete) {
      const g = await frames.next('AddRing or Ack');
      if (g.type === Msg.AddRing) sock.send(this.acceptPeerBlock(g));
      else if (g.type === Msg.Ack) this.acceptAck(g);
      else unexpected(g, 'AddRing or Ack');
    }
  }

  /** Our announcements, each with [memfd, eventfd] to pass. */
  announcements(): Array<{ data: Buffer; fds: number[] }> {
    return this.#own.map((o) => ({ data: encodeAddRing(o.announce), fds: [o.region.fd, o.bell.fd] }));
  }

  /** Validates and maps one peer announcement; takes the frame's fds (closed on failure). Returns the Ack to send. */
  acceptPeerBlock(frame: Frame): Buffer {
    const [memfd, eventfd] = frame.fds as [number, number];
    let region: Region | undefined;
    let bell: EventFdDoorbell | undefined;
    try {
      const a = new AddRingView(frame.body);
      if (!a.isValid()) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, 'AddRing has reserved bits set or an unknown direction/side');
      const peerProduces = (1 - ownProducerDirection(this.#role)) as Direction;
      const expectedSide = a.direction === peerProduces ? BlockSide.Producer : BlockSide.Consumer;
      const key = `${a.direction}:${a.side}`;
      if (a.side !== expectedSide) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `AddRing for a block the peer does not own (direction ${a.direction}, side ${a.side})`);
      if (a.ringIndex !== 0) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Limit, `AddRing for ring ${a.ringIndex}; this version has one ring per direction`);
      if (this.#peer.has(key)) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `AddRing for direction ${a.direction} side ${a.side} announced twice`);
      if (a.ringBytes !== this.#sizes[a.direction]) {
        throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Limit, `AddRing says ${a.ringBytes} bytes; ${this.#sizes[a.direction]} were agreed`);
      }
      // Checked before mapping, so a peer cannot make us map more than the agreed size.
      const expectedSize = a.side === BlockSide.Producer ? producerBlockSize(a.ringBytes) : CONSUMER_BLOCK_SIZE;
      let size: number;
      try {
        size = fstatSync(memfd).size;
      } catch (err) {
        throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, 'AddRing block fd cannot be inspected', err);
      }
      if (size !== expectedSize) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Limit, `AddRing block is ${size} bytes; expected ${expectedSize}`);
      try {
        // Without these seals the peer could shrink the file under our mapping (SIGBUS on access);
        // they are checked before fstat and mmap, so sealing after we map cannot slip through.
        region = Region.fromFd(memfd, { writable: false, size: expectedSize, requireSeals: { shrink: true, seal: true } });
      } catch (err) {
        throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `AddRing block cannot be mapped: ${(err as Error).message}`, err);
      }
      try {
        bell = EventFdDoorbell.fromFd(eventfd);
      } catch (err) {
        throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `AddRing doorbell: ${(err as Error).message}`, err);
      }
      try {
        // The header the ring will trust from now on; a peer that scribbles on it later meets ERR_RING_CORRUPT in the ring.
        if (a.side === BlockSide.Producer) attachProducerBlock({ buffer: region.buffer }, RingKind.Spsc);
        else attachConsumerBlock({ buffer: region.buffer }, RingKind.Spsc, a.ringBytes);
      } catch (err) {
        throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `AddRing block is corrupt: ${(err as Error).message}`, err);
      }
      // The mapping outlives the fd; keeping it open would only cost an fd per block.
      region.closeFd();
      this.#peer.set(key, { region, bell });
      return encodeAck({ ackedType: Msg.AddRing, direction: a.direction, side: a.side, ringIndex: a.ringIndex });
    } catch (err) {
      if (region) region.close();
      else closeFd(memfd);
      if (bell) bell.close();
      else closeFd(eventfd);
      throw err;
    }
  }

  /** Records the peer's Ack of one of our announcements. */
  acceptAck(frame: Frame): void {
    const a = new AckView(frame.body);
    if (!a.isValid() || a.ackedType !== Msg.AddRing) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, 'Ack is malformed or acknowledges the wrong message');
    const key = `${a.direction}:${a.side}`;
    if (!this.#own.some((o) => `${o.announce.direction}:${o.announce.side}` === key) || this.#acked.has(key)) {
      throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `Ack for a block we did not announce, or acknowledged twice (${key})`);
    }
    this.#acked.add(key);
  }

  /** True once both peer blocks arrived and both of ours were acknowledged. */
  get complete(): boolean {
    return this.#peer.size === 2 && this.#acked.size === 2;
  }

  /** Builds the two ring ends; closes our memfds (the mappings stay). The bells move to the Link. */
  open(spin: number | undefined): { producer: SpscProducer; consumer: SpscConsumer; bells: EventFdDoorbell[]; wake: { bell: EventFdDoorbell; consumerBlock: SharedArrayBuffer } } {
    const out = ownProducerDirection(this.#role);
    const inbound = (1 - out) as Direction;
    const ownProd = this.#own[0]!;
    const ownCons = this.#own[1]!;
    const peerCons = this.#peer.get(`${out}:${BlockSide.Consumer}`)!;
    const peerProd = this.#peer.get(`${inbound}:${BlockSide.Producer}`)!;
    const opts = spin === undefined ? {} : { spin };
    let producer: SpscProducer;
    let consumer: SpscConsumer;
    try {
      producer = new SpscProducer(
        { producer: { buffer: ownProd.region.buffer }, consumer: { buffer: peerCons.region.buffer } },
        { dataBell: peerCons.bell, spaceBell: ownProd.bell, ...opts },
      );
      consumer = new SpscConsumer(
        { producer: { buffer: peerProd.region.buffer }, consumer: { buffer: ownCons.region.buffer } },
        { dataBell: ownCons.bell, spaceBell: peerProd.bell, ...opts },
      );
    } catch (err) {
      // The peer rewrote a block after we checked and acked it: its fault, not ours.
      if (isRingwireError(err, 'ERR_RING_CORRUPT')) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `peer ring block is corrupt: ${err.message}`, err);
      throw err;
    }
    for (const o of this.#own) o.region.close();
    return { producer, consumer, bells: [ownProd.bell, ownCons.bell, peerCons.bell, peerProd.bell], wake: { bell: ownCons.bell, consumerBlock: ownCons.region.buffer } };
  }

  /** Releases every fd this set still holds (after a failed handshake). Idempotent. */
  dispose(): void {
    for (const o of this.#own) {
      o.region.close();
      o.bell.close();
    }
    for (const p of this.#peer.values()) {
      p.region.close();
      p.bell.close();
    }
    this.#peer.clear();
  }
}
