/**
 * Rings between processes: which side creates which memfd and eventfd, which fds travel to the
 * peer, and how the received fds become a ring. A thin layer over shm-ring.ts, not a protocol:
 * how the fds travel (one FdSocket message each way, a versioned handshake, ...) is the caller's.
 *
 * Who creates what (design rule 1, and "the side that sleeps creates its bell"):
 *
 *   SPSC producer: the producer block (sealed; the peer can only map it read-only) and the space
 *                  bell it parks on when the ring is full.       sends [producer block, space bell]
 *   SPSC consumer: the consumer block (sealed likewise) and the data bell it parks on when empty.
 *                                                                 sends [consumer block, data bell]
 *   MPSC consumer: both blocks (producers write records into the producer block, so it stays
 *                  mappable read-write) and the data bell.
 *                                         sends [producer block, consumer block, data bell] to each producer
 *   MPSC producer: only its own space bell; the consumer rings every producer's bell. sends [space bell]
 *
 * Each side first creates its half (`create*Half`), sends `half.fds` to the peer, then attaches
 * the fds it received (`attach*`). Attaching takes ownership of the half and of the received fds;
 * the returned ProcessRing's close() closes them all. If attaching fails, every received fd has
 * been closed and the half is still the caller's (to retry with another peer, or to close). Mappings outlive close() until the buffers
 * are garbage-collected, so a ring object in use never faults.
 *
 * Liveness: shared memory does not say when the peer dies. Give the attach functions `peer` (the
 * socket the fds travelled on, or the peer's pid: liveness.ts) and the ring's `signal` aborts with
 * ERR_PEER_GONE once it is gone; pass that signal to every wait. An MPSC consumer watches each
 * producer it adds the same way, and stops ringing a dead one's bell.
 *
 * Concurrency contract: every object here belongs to the thread that created it.
 */
import type { Doorbell } from '../ring/doorbell.js';
import { EventFdDoorbell } from '../native/doorbell-eventfd.js';
import { isRingwireError, ringwireError } from '../errors.js';
import { RingKind } from '../ring/layout.js';
import { MpscConsumer, MpscProducer, type MpscConsumerOptions } from '../ring/mpsc.js';
import { native } from '../native/native.js';
import type { Region } from '../native/region.js';
import type { RingOptions } from '../ring/ring-types.js';
import { createBlockRegion, mapPeerBlock } from './shm-ring.js';
import { SpscConsumer, SpscProducer } from '../ring/spsc.js';
import type { FdSocket } from '../native/unix-socket.js';
import type { RingwireError } from '../errors.js';
import { watchPeer, type PeerLiveness } from './liveness.js';

/** Options for the ring an attach function builds; the bells come from the halves. */
export interface ProcessRingOptions extends Omit<RingOptions, 'dataBell' | 'spaceBell'> {
  /** What tells this side the peer process is gone (liveness.ts); without it a dead peer goes unnoticed. */
  peer?: PeerLiveness;
}

/** What one side creates before it meets its peer. */
export interface RingHalf {
  readonly role: 'spsc-producer' | 'spsc-consumer' | 'mpsc-consumer' | 'mpsc-producer';
  /** Send these to the peer, in this order. They stay this half's: sending duplicates them. */
  readonly fds: readonly number[];
  /** Closes what the half created; attach functions call it from the ring's close(). Idempotent. */
  close(): void;
}

export interface SpscProducerHalf extends RingHalf {
  readonly role: 'spsc-producer';
  readonly block: Region;
  readonly spaceBell: EventFdDoorbell;
}

export interface SpscConsumerHalf extends RingHalf {
  readonly role: 'spsc-consumer';
  readonly block: Region;
  readonly dataBell: EventFdDoorbell;
}

export interface MpscConsumerHalf extends RingHalf {
  readonly role: 'mpsc-consumer';
  readonly producerBlock: Region;
  readonly consumerBlock: Region;
  readonly dataBell: EventFdDoorbell;
}

export interface MpscProducerHalf extends RingHalf {
  readonly role: 'mpsc-producer';
  readonly spaceBell: EventFdDoorbell;
}

/** A ring whose memory and bells span processes, with the fds it holds. */
export interface ProcessRing<T> {
  readonly ring: T;
  /** Closes every fd this side holds (its half, the peer's blocks and bells) and stops watching the peer. Idempotent. */
  close(): void;
}

/** A ring with one peer process (SPSC either side, an MPSC producer), and whether that peer lives. */
export interface PeerRing<T> extends ProcessRing<T> {
  /**
   * Aborted, with an ERR_PEER_GONE reason, once the `peer` option reports the peer gone: pass it to
   * waits (`ring.waitForData({ signal })`) so that none outlives the peer. Never aborts without `peer`.
   */
  readonly signal: AbortSignal;
  /** True once the peer is known gone. What it published before dying can still be read. */
  readonly peerGone: boolean;
}

/** Wraps an attached ring: closes `parts` on close(); watches `peer`, if given, until then. */
function peerRing<T>(ring: T, owned: Array<{ close(): void }>, half: RingHalf, peer: PeerLiveness | undefined): PeerRing<T> {
  const gone = new AbortController();
  let stopWatching = (): void => {};
  if (peer !== undefined) {
    try {
      stopWatching = watchPeer(peer, (err) => gone.abort(err));
    } catch (err) {
      // The half stays the caller's, as when attaching fails for any other reason.
      for (const o of owned) o.close();
      throw err;
    }
  }
  const closeParts = closer([...owned, half]);
  return {
    ring,
    signal: gone.signal,
    get peerGone() { return gone.signal.aborted; },
    close: () => {
      stopWatching();
      closeParts();
    },
  };
}

export interface MpscProcessConsumer extends ProcessRing<MpscConsumer> {
  /**
   * Takes ownership of a producer's space-bell fd (what its half sent) and rings it whenever space
   * frees up while producers wait. Returns a function that forgets and closes it, for when that
   * producer leaves. On error the caller still owns the fd.
   */
  addProducer(spaceBellFd: number, opts?: { peer?: PeerLiveness; onGone?: (err: RingwireError) => void }): () => void;
}

function closer(items: Array<{ close(): void }>): () => void {
  let closed = false;
  return () => {
    if (closed) return;
    closed = true;
    for (const item of items) item.close();
  };
}

/**
 * Creates the fd-owning parts in order; if one fails, closes those made so far. `make` gets `keep`
 * to register each part and `close`, which closes them all once.
 */
function build<T extends object>(make: (keep: <U extends { close(): void }>(item: U) => U, close: () => void) => T): T {
  const items: Array<{ close(): void }> = [];
  try {
    return make((item) => {
      items.push(item);
      return item;
    }, closer(items));
  } catch (err) {
    for (const item of items) item.close();
    throw err;
  }
}

export function createSpscProducerHalf(capacity: number, name = 'ringwire-spsc'): SpscProducerHalf {
  return build((keep, close) => {
    const block = keep(createBlockRegion(RingKind.Spsc, capacity, 'producer', `${name}-producer`));
    const spaceBell = keep(EventFdDoorbell.create());
    return { role: 'spsc-producer', block, spaceBell, fds: [block.fd, spaceBell.fd], close } as const;
  });
}

export function createSpscConsumerHalf(capacity: number, name = 'ringwire-spsc'): SpscConsumerHalf {
  return build((keep, close) => {
    const block = keep(createBlockRegion(RingKind.Spsc, capacity, 'consumer', `${name}-consumer`));
    const dataBell = keep(EventFdDoorbell.create());
    return { role: 'spsc-consumer', block, dataBell, fds: [block.fd, dataBell.fd], close } as const;
  });
}

export function createMpscConsumerHalf(capacity: number, name = 'ringwire-mpsc'): MpscConsumerHalf {
  return build((keep, close) => {
    const producerBlock = keep(createBlockRegion(RingKind.Mpsc, capacity, 'producer', `${name}-producer`, true));
    const consumerBlock = keep(createBlockRegion(RingKind.Mpsc, capacity, 'consumer', `${name}-consumer`));
    const dataBell = keep(EventFdDoorbell.create());
    return {
      role: 'mpsc-consumer', producerBlock, consumerBlock, dataBell,
      fds: [producerBlock.fd, consumerBlock.fd, dataBell.fd], close,
    } as const;
  });
}

export function createMpscProducerHalf(): MpscProducerHalf {
  const spaceBell = EventFdDoorbell.create();
  return { role: 'mpsc-producer', spaceBell, fds: [spaceBell.fd], close: () => spaceBell.close() };
}

function checkHalf(half: RingHalf, role: RingHalf['role']): void {
  if (typeof half !== 'object' || half === null || half.role !== role) {
    throw ringwireError('ERR_INVALID_ARG', `expected a ${role} half, got ${typeof half === 'object' && half ? half.role : typeof half}`);
  }
}

/**
 * Turns the peer's fds into owned objects, in order. Whatever fails, every received fd ends up
 * owned by a returned object or closed: a peer cannot make us leak fds by sending bad ones.
 */
function adopt<T>(peerFds: readonly number[], expected: readonly string[], what: string, fn: (take: (i: number, as: (fd: number) => { close(): void }) => void) => T): [T, Array<{ close(): void }>] {
  if (!Array.isArray(peerFds) || peerFds.some((fd) => !Number.isInteger(fd) || fd < 0)) {
    throw ringwireError('ERR_INVALID_ARG', `${what}: peer fds must be an array of fds`);
  }
  const pending = new Set(peerFds);
  const owned: Array<{ close(): void }> = [];
  const closePending = (): void => {
    for (const fd of pending) native().close(fd);
    pending.clear();
  };
  if (peerFds.length !== expected.length) {
    closePending();
    throw ringwireError('ERR_HANDSHAKE', `${what}: the peer sent ${peerFds.length} fd(s), expected ${expected.length} (${expected.join(', ')})`);
  }
  try {
    const result = fn((i, as) => {
      const fd = peerFds[i]!;
      try {
        owned.push(as(fd));
      } catch (err) {
        // mapPeerBlock closes the fd itself when it refuses it for its seals (ERR_HANDSHAKE).
        if (isRingwireError(err, 'ERR_HANDSHAKE')) pending.delete(fd);
        throw err;
      }
      pending.delete(fd);
    });
    return [result, owned];
  } catch (err) {
    closePending();
    for (const o of owned) o.close();
    throw err;
  }
}

/** The producer's end of an SPSC ring; `peerFds` is what the consumer's half sent: [consumer block, data bell]. */
export function attachSpscProducer(half: SpscProducerHalf, peerFds: readonly number[], { peer, ...opts }: ProcessRingOptions = {}): PeerRing<SpscProducer> {
  let block!: Region;
  let dataBell!: EventFdDoorbell;
  const [ring, owned] = adopt(peerFds, ['consumer block', 'data bell'], 'SPSC producer', (take) => {
    checkHalf(half, 'spsc-producer');
    take(0, (fd) => (block = mapPeerBlock(fd, false, 'SPSC consumer block')));
    take(1, (fd) => (dataBell = EventFdDoorbell.fromFd(fd)));
    return new SpscProducer({ producer: { buffer: half.block.buffer }, consumer: { buffer: block.buffer } }, { ...opts, dataBell, spaceBell: half.spaceBell });
  });
  return peerRing(ring, owned, half, peer);
}

/** The consumer's end of an SPSC ring; `peerFds` is what the producer's half sent: [producer block, space bell]. */
export function attachSpscConsumer(half: SpscConsumerHalf, peerFds: readonly number[], { peer, ...opts }: ProcessRingOptions = {}): PeerRing<SpscConsumer> {
  let block!: Region;
  let spaceBell!: EventFdDoorbell;
  const [ring, owned] = adopt(peerFds, ['producer block', 'space bell'], 'SPSC consumer', (take) => {
    checkHalf(half, 'spsc-consumer');
    take(0, (fd) => (block = mapPeerBlock(fd, false, 'SPSC producer block')));
    take(1, (fd) => (spaceBell = EventFdDoorbell.fromFd(fd)));
    return new SpscConsumer({ producer: { buffer: block.buffer }, consumer: { buffer: half.block.buffer } }, { ...opts, dataBell: half.dataBell, spaceBell });
  });
  return peerRing(ring, owned, half, peer);
}

/** An MPSC producer; `peerFds` is what the consumer's half sent: [producer block, consumer block, data bell]. */
export function attachMpscProducer(half: MpscProducerHalf, peerFds: readonly number[], { peer, ...opts }: ProcessRingOptions = {}): PeerRing<MpscProducer> {
  let records!: Region;
  let control!: Region;
  let dataBell!: EventFdDoorbell;
  const [ring, owned] = adopt(peerFds, ['producer block', 'consumer block', 'data bell'], 'MPSC producer', (take) => {
    checkHalf(half, 'mpsc-producer');
    take(0, (fd) => (records = mapPeerBlock(fd, true, 'MPSC producer block')));
    take(1, (fd) => (control = mapPeerBlock(fd, false, 'MPSC consumer block')));
    take(2, (fd) => (dataBell = EventFdDoorbell.fromFd(fd)));
    return new MpscProducer({ producer: { buffer: records.buffer }, consumer: { buffer: control.buffer } }, { ...opts, dataBell, spaceBell: half.spaceBell });
  });
  return peerRing(ring, owned, half, peer);
}

/**
 * A ring-only doorbell that rings every member: how one MPSC consumer wakes producers that each
 * sleep on their own eventfd (one shared eventfd would wake only whichever producer drains it first).
 */
export class DoorbellGroup implements Doorbell {
  #members = new Set<Doorbell>();

  /** Adds a member (owned: closed when removed or when the group closes); returns its remover. */
  add(bell: Doorbell): () => void {
    this.#members.add(bell);
    return () => {
      if (this.#members.delete(bell)) bell.close();
    };
  }

  get size(): number {
    return this.#members.size;
  }

  /**
   * Rings every member on its own: one that throws (it broke the Doorbell contract) or whose fd is
   * dead is dropped and closed, and never keeps the others from being rung.
   */
  ring(): void {
    for (const bell of this.#members) {
      let dead = false;
      try {
        bell.ring();
      } catch {
        dead = true;
      }
      if (dead || (bell instanceof EventFdDoorbell && !bell.live)) this.#drop(bell);
    }
  }

  wait(): Promise<boolean> {
    return Promise.reject(ringwireError('ERR_INVALID_ARG', 'a DoorbellGroup only rings; each member waits on its own bell'));
  }

  close(): void {
    for (const bell of this.#members) bell.close();
    this.#members.clear();
  }

  /** Removes a dead member; its close() may fail too, and that must not reach ring()'s caller. */
  #drop(bell: Doorbell): void {
    this.#members.delete(bell);
    try {
      bell.close();
    } catch {
      // Its fd is already unusable: nothing more to release.
    }
  }
}

/** The consumer's end of an MPSC ring; producers join with addProducer() as their space bells arrive. */
export function attachMpscConsumer(half: MpscConsumerHalf, opts: Omit<MpscConsumerOptions, 'dataBell' | 'spaceBell'> = {}): MpscProcessConsumer {
  checkHalf(half, 'mpsc-consumer');
  const spaceBells = new DoorbellGroup();
  const watched = new Set<() => void>();
  const ring = new MpscConsumer(
    { producer: { buffer: half.producerBlock.buffer }, consumer: { buffer: half.consumerBlock.buffer } },
    { ...opts, dataBell: half.dataBell, spaceBell: spaceBells },
  );
  return {
    ring,
    addProducer: (fd, o = {}) => {
      if (o.peer === undefined) return spaceBells.add(EventFdDoorbell.fromFd(fd));
      // Watch first (it reports asynchronously), so a bad `peer` leaves the fd the caller's.
      let remove: (() => void) | undefined;
      const stop = watchPeer(o.peer, (err) => {
        watched.delete(stop);
        remove?.();
        o.onGone?.(err);
      });
      try {
        remove = spaceBells.add(EventFdDoorbell.fromFd(fd));
      } catch (err) {
        stop();
        throw err;
      }
      watched.add(stop);
      return () => {
        watched.delete(stop);
        stop();
        remove!();
      };
    },
    close: closer([{ close: () => { for (const stop of watched) stop(); watched.clear(); } }, spaceBells, half]),
  };
}

/** A message taken off an FdSocket: its bytes and the fds that came with it (now the taker's). */
export interface FdMessage {
  readonly data: Buffer;
  readonly fds: number[];
}

/**
 * Collects an FdSocket's messages from now on, so none is lost between two awaits (a socket closes
 * the fds of a message nobody listens for). Messages never taken are closed with the inbox.
 */
export class FdInbox {
  readonly #sock: FdSocket;
  #queue: FdMessage[] = [];
  #waiters: Array<{ resolve(m: FdMessage): void; reject(err: Error): void }> = [];
  #ended: Error | undefined;
  #onMessage = (data: Buffer, fds: number[]): void => {
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve({ data, fds });
    else this.#queue.push({ data, fds });
  };
  #onError = (err: Error): void => {
    this.#ended ??= err;
  };
  #onClose = (): void => {
    this.#ended ??= ringwireError('ERR_PEER_GONE', 'the socket closed before the expected message arrived');
    for (const w of this.#waiters.splice(0)) w.reject(this.#ended);
  };

  constructor(sock: FdSocket) {
    this.#sock = sock;
    sock.on('message', this.#onMessage);
    sock.on('error', this.#onError);
    sock.on('close', this.#onClose);
  }

  /** The next message; rejects with ERR_PEER_GONE (or the socket's error) once it closed, ERR_TIMEOUT after `timeoutMs`. */
  next(timeoutMs = Infinity): Promise<FdMessage> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#ended) return Promise.reject(this.#ended);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter = {
        resolve: (m: FdMessage) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      if (timeoutMs !== Infinity) {
        timer = setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          reject(ringwireError('ERR_TIMEOUT', `no message within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.#waiters.push(waiter);
    });
  }

  /** Stops collecting and closes the fds of messages never taken. Does not close the socket. */
  close(): void {
    this.#sock.off('message', this.#onMessage);
    this.#sock.off('error', this.#onError);
    this.#sock.off('close', this.#onClose);
    for (const m of this.#queue.splice(0)) for (const fd of m.fds) native().close(fd);
    this.#ended ??= ringwireError('ERR_RING_CLOSED', 'inbox closed');
    for (const w of this.#waiters.splice(0)) w.reject(this.#ended);
  }
}
