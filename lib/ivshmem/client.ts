/**
 * IvshmemClient: the client side of the ivshmem-server protocol in TypeScript, doing what QEMU's
 * ivshmem-doorbell device does: receive the shared memory, learn peers and their eventfds, follow
 * joins and leaves. Host processes use it to join the same region as the VMs; tests use it to check
 * the server (and, with `raw`, to misbehave).
 *
 * Concurrency contract: single-threaded, on the event loop of the thread that called connect().
 * Every value read from the server is validated; anything off closes the connection with
 * ERR_IVSHMEM_PROTOCOL and closes every fd received so far.
 */
import { EventEmitter } from 'node:events';
import { ringwireError, isRingwireError, type RingwireError } from '../errors.js';
import { EventFd } from '../native/eventfd.js';
import { native } from '../native/native.js';
import { Region } from '../native/region.js';
import { FdSocket } from '../native/unix-socket.js';
import { IVSHMEM_MAX_ID, IVSHMEM_PROTOCOL_VERSION, IVSHMEM_SHM_MESSAGE, MessageReader, type IvshmemMessage } from './protocol.js';

export interface IvshmemClientOptions {
  /** Vectors this client is configured for; fds past it are closed, as QEMU does. Default 2. */
  vectors?: number;
  /** How long to wait for the whole setup. Default 5000 ms. */
  timeoutMs?: number;
}

export interface IvshmemClient {
  on(event: 'join' | 'leave', listener: (id: number) => void): this;
  on(event: 'error', listener: (err: RingwireError) => void): this;
  on(event: 'close', listener: () => void): this;
  once(event: 'join' | 'leave', listener: (id: number) => void): this;
  once(event: 'error', listener: (err: RingwireError) => void): this;
  once(event: 'close', listener: () => void): this;
}

type Stage = 'version' | 'id' | 'shm' | 'peers' | 'ready';

export class IvshmemClient extends EventEmitter {
  readonly vectors: number;
  #sock: FdSocket;
  #reader = new MessageReader();
  #stage: Stage = 'version';
  #id = -1;
  #region: Region | undefined;
  #own: EventFd[] = [];
  #peers = new Map<number, EventFd[]>();
  #closed = false;
  #ready: { resolve(): void; reject(err: Error): void } | undefined;

  private constructor(sock: FdSocket, vectors: number) {
    super();
    this.#sock = sock;
    this.vectors = vectors;
    sock.on('message', (data, fds) => this.#onChunk(data, fds));
    sock.on('error', (err) => this.#fail(err));
    sock.on('close', () => this.#fail(ringwireError('ERR_PEER_GONE', 'the ivshmem server closed the connection')));
  }

  /** Connects and resolves once the shared memory and this client's own eventfds have arrived. */
  static async connect(path: string, opts: IvshmemClientOptions = {}): Promise<IvshmemClient> {
    const vectors = opts.vectors ?? 2;
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > 64) throw ringwireError('ERR_OUT_OF_RANGE', `vectors must be 1..64, got ${vectors}`);
    const timeoutMs = opts.timeoutMs ?? 5000;
    const sock = await FdSocket.connect(path, { type: 'stream', maxMessageSize: 4096, maxFds: 8, timeoutMs });
    const client = new IvshmemClient(sock, vectors);
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        client.#ready = { resolve, reject };
        timer = setTimeout(() => reject(ringwireError('ERR_TIMEOUT', `ivshmem setup from ${path} did not complete within ${timeoutMs} ms`)), timeoutMs);
      });
    } catch (err) {
      client.close();
      throw err;
    } finally {
      clearTimeout(timer);
      client.#ready = undefined;
    }
    return client;
  }

  /** The id the server gave us. */
  get id(): number {
    return this.#id;
  }

  /** The shared memory, mapped read-write. */
  get region(): Region {
    if (!this.#region) throw ringwireError('ERR_RING_CLOSED', 'ivshmem client is closed');
    return this.#region;
  }

  /** Peers currently known, ascending. */
  peers(): number[] {
    return [...this.#peers.keys()].sort((a, b) => a - b);
  }

  /** Eventfds that peers signal to ring our vector `vector`. */
  ownBell(vector: number): EventFd {
    const e = this.#own[vector];
    if (!e) throw ringwireError('ERR_OUT_OF_RANGE', `vector must be 0..${this.#own.length - 1}, got ${vector}`);
    return e;
  }

  /** Rings vector `vector` of peer `id`, as a guest's Doorbell register write does. */
  ring(id: number, vector: number): void {
    const fds = this.#peers.get(id);
    if (!fds) throw ringwireError('ERR_PEER_GONE', `ivshmem peer ${id} is not connected`);
    const e = fds[vector];
    if (!e) throw ringwireError('ERR_OUT_OF_RANGE', `peer ${id} has ${fds.length} vector(s); no vector ${vector}`);
    e.signal(1);
  }

  /** Disconnects (the server tells the others we left) and closes every fd. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sock.close();
    this.#release();
    process.nextTick(() => this.emit('close'));
  }

  #release(): void {
    this.#region?.close();
    this.#region = undefined;
    for (const e of this.#own) e.close();
    this.#own = [];
    for (const fds of this.#peers.values()) for (const e of fds) e.close();
    this.#peers.clear();
  }

  #fail(err: RingwireError): void {
    if (this.#closed) return;
    if (this.#ready) {
      this.#ready.reject(err);
      return;
    }
    this.close();
    this.emit('error', err);
  }

  #onChunk(data: Uint8Array, fds: number[]): void {
    let msgs: IvshmemMessage[];
    try {
      msgs = this.#reader.push(data, fds);
    } catch (err) {
      for (const fd of fds) native().close(fd);
      this.#fail(err as RingwireError);
      return;
    }
    for (let i = 0; i < msgs.length; i++) {
      try {
        this.#onMessage(msgs[i]!);
      } catch (err) {
        for (const m of msgs.slice(i)) if (m.fd >= 0) native().close(m.fd);
        this.#fail(isRingwireError(err) ? err : ringwireError('ERR_IVSHMEM_PROTOCOL', String(err), { cause: err }));
        return;
      }
      if (this.#closed) {
        for (const m of msgs.slice(i + 1)) if (m.fd >= 0) native().close(m.fd);
        return;
      }
    }
  }

  /** Takes ownership of m.fd on success; on a throw the caller closes it. */
  #onMessage(m: IvshmemMessage): void {
    const bad = (what: string): never => {
      throw ringwireError('ERR_IVSHMEM_PROTOCOL', `ivshmem server: ${what}`);
    };
    const v = m.value;
    switch (this.#stage) {
      case 'version':
        if (v !== IVSHMEM_PROTOCOL_VERSION || m.fd >= 0) bad(`protocol version ${v}${m.fd >= 0 ? ' with an fd' : ''}, expected ${IVSHMEM_PROTOCOL_VERSION}`);
        this.#stage = 'id';
        return;
      case 'id':
        if (!(v >= 0 && v <= IVSHMEM_MAX_ID) || m.fd >= 0) bad(`client id ${v} is not 0..${IVSHMEM_MAX_ID} without an fd`);
        this.#id = v;
        this.#stage = 'shm';
        return;
      case 'shm':
        if (v !== IVSHMEM_SHM_MESSAGE || m.fd < 0) bad(`expected -1 with the shared memory fd, got ${v}${m.fd < 0 ? ' without an fd' : ''}`);
        try {
          // Our server seals the memory; unsealed, the server (or anyone holding the fd) could shrink it under our mapping: SIGBUS.
          this.#region = Region.fromFd(m.fd, { writable: true, requireSeals: { shrink: true } });
        } catch (err) {
          throw ringwireError('ERR_IVSHMEM_PROTOCOL', 'ivshmem server: the shared memory fd cannot be mapped', { cause: err });
        }
        this.#stage = 'peers';
        return;
      default:
        if (!(v >= 0 && v <= IVSHMEM_MAX_ID)) bad(`peer id ${v} is not 0..${IVSHMEM_MAX_ID}`);
        if (m.fd < 0) return this.#onLeave(v);
        if (v === this.#id) return this.#onOwnVector(m.fd);
        return this.#onPeerVector(v, m.fd);
    }
  }

  #onOwnVector(fd: number): void {
    if (this.#own.length >= this.vectors) {
      native().close(fd);
      return;
    }
    this.#own.push(asEventFd(fd));
    if (this.#own.length === this.vectors) {
      this.#stage = 'ready';
      this.#ready?.resolve();
    }
  }

  #onPeerVector(id: number, fd: number): void {
    let fds = this.#peers.get(id);
    if (!fds) {
      fds = [];
      this.#peers.set(id, fds);
    }
    if (fds.length >= this.vectors) {
      native().close(fd);
      return;
    }
    fds.push(asEventFd(fd));
    if (fds.length === this.vectors && this.#stage === 'ready') this.emit('join', id);
  }

  #onLeave(id: number): void {
    if (id === this.#id) throw ringwireError('ERR_IVSHMEM_PROTOCOL', 'ivshmem server: a leave notice for our own id');
    const fds = this.#peers.get(id);
    if (!fds) return;
    for (const e of fds) e.close();
    this.#peers.delete(id);
    this.emit('leave', id);
  }
}

function asEventFd(fd: number): EventFd {
  try {
    return EventFd.fromFd(fd);
  } catch (err) {
    throw ringwireError('ERR_IVSHMEM_PROTOCOL', `ivshmem server: a vector fd is not an eventfd`, { cause: err });
  }
}
