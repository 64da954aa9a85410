/**
 * A Link is what a Channel runs over: one outbound and one inbound ring end, the peer's identity,
 * and a liveness signal. Three kinds exist: shared memory between processes (ShmLink, below),
 * SharedArrayBuffers between threads (inproc.ts), and framed TCP/TLS (tcp.ts), whose ends imitate
 * the ring API over a socket.
 */
import type { RingConsumer, RingProducer } from '../ring/ring-types.js';
import type { Doorbell } from '../ring/doorbell.js';
import type { FdSocket } from '../native/unix-socket.js';
import { DisconnectCode, DisconnectView, Frame, Msg } from './protocol.js';
import { sendDisconnect } from './handshake.js';
import { closeFd } from '../native/native.js';
import type { EventFdDoorbell } from '../native/doorbell-eventfd.js';
import { CONSUMER_BLOCK_SIZE, CW } from '../ring/layout.js';

export type LinkProducer = Pick<RingProducer, 'data' | 'maxMessageSize' | 'claim' | 'commit' | 'waitForSpace' | 'stats'>;
export type LinkConsumer = Pick<RingConsumer, 'data' | 'offset' | 'length' | 'type' | 'read' | 'release' | 'available' | 'waitForData' | 'stats'>;

/** Who is on the other end. pid/uid/gid come from the kernel (SO_PEERCRED), never from the peer. */
export interface PeerIdentity {
  readonly pid?: number;
  readonly uid?: number;
  readonly gid?: number;
  /** The name the peer announced in its Hello or Init (informational: the peer chose it). */
  readonly name: string;
}

/** Why a link ended from the far side: a Disconnect's code and reason, or plain end-of-file. */
export interface GoneReason {
  readonly code: number | undefined;
  readonly reason: string;
}

/**
 * Event-driven receive for links whose inbound ring has an eventfd doorbell: the channel sleeps in
 * the event loop itself instead of awaiting a promise per message. Protocol (design rule 4):
 * setWaiting(true), re-check the ring, return to the loop; the producer rings only while the flag
 * is set, and start()'s callback runs once per ring.
 */
export interface WakeSource {
  start(cb: () => void): void;
  /** Consumes pending rings so the level-triggered fd stops reporting readable. */
  clear(): void;
  setWaiting(on: boolean): void;
}

export interface Link {
  readonly producer: LinkProducer;
  readonly consumer: LinkConsumer;
  readonly peer: PeerIdentity;
  readonly wake?: WakeSource;
  /** 'unix', 'inproc' or 'tcp': how far away the peer is. */
  readonly transport: 'unix' | 'inproc' | 'tcp';
  readonly localAddress: string;
  readonly remoteAddress: string;
  readonly localPort?: number;
  readonly remotePort?: number;
  /** Called at most once, when the far side goes away without a local close(). */
  onGone(cb: (why: GoneReason) => void): void;
  /** Tells the peer (when the transport can) and releases fds and sockets. Idempotent. */
  close(code?: DisconnectCode, reason?: string): void;
}

/** A Link over two shared-memory rings; the handshake socket stays open only as a liveness signal. */
export class ShmLink implements Link {
  readonly transport = 'unix' as const;
  readonly remotePort = undefined;
  readonly localPort = undefined;
  #sock: FdSocket;
  #bells: Doorbell[];
  #gone: ((why: GoneReason) => void) | undefined;
  #closed = false;
  #why: GoneReason | undefined;

  readonly wake: WakeSource;

  constructor(
    sock: FdSocket,
    readonly producer: LinkProducer,
    readonly consumer: LinkConsumer,
    bells: Doorbell[],
    wake: { bell: EventFdDoorbell; consumerBlock: SharedArrayBuffer },
    readonly peer: PeerIdentity,
    readonly localAddress: string,
    readonly remoteAddress: string,
  ) {
    this.#sock = sock;
    this.#bells = bells;
    const ctl = new Int32Array(wake.consumerBlock, 0, CONSUMER_BLOCK_SIZE >> 2);
    const eventfd = wake.bell.eventfd;
    this.wake = {
      start: (cb) => eventfd.onReadable(cb),
      clear: () => { if (eventfd.fd >= 0) eventfd.drain(); },
      // A flag, not a count: this wake path is the only waiter on the channel's inbound ring.
      // Seq-cst; the producer loads it after its publishing store (SpscProducer.commit).
      setWaiting: (on) => Atomics.store(ctl, CW.consumerWaiting, on ? 1 : 0),
    };
    sock.on('message', (data, fds) => {
      for (const fd of fds) closeFd(fd);
      const frame = Frame.parse(data, []);
      const d = frame && frame.type === Msg.Disconnect && frame.isValid() ? new DisconnectView(frame.body) : undefined;
      if (d && d.isValid()) this.#why = { code: d.code, reason: d.reason ?? '' };
      else this.#why = { code: DisconnectCode.Protocol, reason: 'the peer sent a handshake message after the handshake' };
      sock.close();
    });
    sock.on('truncated', () => {
      this.#why = { code: DisconnectCode.Protocol, reason: 'the peer sent an oversized handshake message after the handshake' };
      sock.close();
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      if (this.#closed) return;
      this.#gone?.(this.#why ?? { code: undefined, reason: 'the peer closed its socket' });
    });
  }

  onGone(cb: (why: GoneReason) => void): void {
    this.#gone = cb;
  }

  close(code: DisconnectCode = DisconnectCode.Normal, reason = 'closed'): void {
    if (this.#closed) return;
    this.#closed = true;
    if (code !== DisconnectCode.Normal) sendDisconnect(this.#sock, code, reason);
    this.#sock.close();
    for (const b of this.#bells) b.close();
  }
}
