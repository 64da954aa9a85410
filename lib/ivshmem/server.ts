/**
 * IvshmemServer: an ivshmem-server for QEMU's ivshmem-doorbell device (and for IvshmemClient),
 * serving one memfd of power-of-two size and one eventfd per peer and vector.
 *
 * The host pseudo-peer: id 0 is reserved for the host process itself. Every client is told that
 * peer 0 exists, with eventfds that the server created for that client alone, so a guest writing
 * (0 << 16) | v to its Doorbell register signals an eventfd only the host reads (hostBell(id, v)),
 * and the host knows which VM rang. The host rings a client with ring(id, v).
 *
 * Hostile clients: the protocol is one-way, so any byte or fd a client sends is a protocol error
 * that disconnects that client (its fds are closed). A client that stops reading is disconnected
 * once MAX_QUEUED_MESSAGES pile up for it, so it cannot pin fds in the server. Neither affects
 * anyone else: every failure ends one connection and is reported as 'client-error'.
 *
 * Concurrency contract: single-threaded, on the event loop of the thread that called listen().
 */
import { EventEmitter } from 'node:events';
import { ringwireError, isRingwireError, type RingwireError } from '../errors.js';
import { EventFd } from '../native/eventfd.js';
import { isPowerOfTwo } from '../ring/layout.js';
import { native } from '../native/native.js';
import { Region } from '../native/region.js';
import { FdServer, type FdSocket } from '../native/unix-socket.js';
import { IVSHMEM_MAX_ID, IVSHMEM_PROTOCOL_VERSION, IVSHMEM_SHM_MESSAGE, encodeMessage } from './protocol.js';

export const HOST_PEER_ID = 0;
export const DEFAULT_VECTORS = 2;
export const DEFAULT_MAX_PEERS = 16;
export const MAX_VECTORS = 64;
/** The smallest shared memory a PCI BAR can usefully be (QEMU requires a power of two). */
export const MIN_SHM_SIZE = 4096;
export const MAX_SHM_SIZE = 1 << 30;
/** Messages queued for a client that does not read before it is disconnected (each may hold an fd). */
export const MAX_QUEUED_MESSAGES = 512;

export interface IvshmemServerOptions {
  /** Socket path or '@abstract' name; QEMU's `-chardev socket,path=...`. */
  path: string;
  /** Shared memory bytes: a power of two from 4 KiB to 1 GiB. */
  size: number;
  /** Eventfds per peer (QEMU's `vectors=`); default 2. */
  vectors?: number;
  /** Ids handed out are below this (the host takes id 0); default 16, at most 65536. */
  maxPeers?: number;
  /** memfd name, visible in /proc/<pid>/fd; default "ringwire-ivshmem". */
  name?: string;
  /** chmod of the socket file. */
  mode?: number;
}

export interface IvshmemPeerInfo {
  id: number;
  /** The connecting process (QEMU) as SO_PEERCRED saw it. */
  pid: number;
  uid: number;
}

interface Client {
  id: number;
  sock: FdSocket;
  info: IvshmemPeerInfo;
  /** The client's own vectors: rung by peers, read by the client. */
  eventfds: EventFd[];
  /** The host pseudo-peer's vectors as this client sees them: rung by the client, read by the host. */
  hostBells: EventFd[];
  queued: number;
}

export interface IvshmemServer {
  on(event: 'join', listener: (peer: IvshmemPeerInfo) => void): this;
  on(event: 'leave', listener: (id: number, reason: RingwireError | undefined) => void): this;
  on(event: 'client-error', listener: (err: RingwireError, id: number | undefined) => void): this;
  on(event: 'error', listener: (err: RingwireError) => void): this;
  on(event: 'close', listener: () => void): this;
}

function intOption(value: unknown, name: string, lo: number, hi: number, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw ringwireError('ERR_INVALID_ARG', `${name} must be an integer, got ${String(value)}`);
  if (value < lo || value > hi) throw ringwireError('ERR_OUT_OF_RANGE', `${name} must be ${lo}..${hi}, got ${value}`);
  return value;
}

export class IvshmemServer extends EventEmitter {
  readonly path: string;
  readonly size: number;
  readonly vectors: number;
  readonly maxPeers: number;
  /** The shared memory, mapped read-write in this process; the host's view of every guest's BAR2. */
  readonly region: Region;
  #listener: FdServer;
  #clients = new Map<number, Client>();
  #closed = false;

  private constructor(opts: Required<Omit<IvshmemServerOptions, 'mode'>> & { mode?: number }, region: Region) {
    super();
    this.path = opts.path;
    this.size = opts.size;
    this.vectors = opts.vectors;
    this.maxPeers = opts.maxPeers;
    this.region = region;
    this.#listener = FdServer.listen(opts.path, { type: 'stream', maxMessageSize: 4096, maxFds: 8, ...(opts.mode === undefined ? {} : { mode: opts.mode }) });
    this.#listener.on('connection', (sock) => this.#accept(sock));
    this.#listener.on('error', (err) => this.emit('error', err));
  }

  /** Creates the shared memory and listens; QEMU may connect as soon as this returns. */
  static listen(opts: IvshmemServerOptions): IvshmemServer {
    if (typeof opts !== 'object' || opts === null) throw ringwireError('ERR_INVALID_ARG', 'options must be an object');
    if (typeof opts.path !== 'string') throw ringwireError('ERR_INVALID_ARG', 'options.path must be a socket path or @name');
    const size = intOption(opts.size, 'options.size', MIN_SHM_SIZE, MAX_SHM_SIZE, 0);
    if (!isPowerOfTwo(size)) throw ringwireError('ERR_OUT_OF_RANGE', `options.size must be a power of two (a PCI BAR), got ${size}`);
    const vectors = intOption(opts.vectors, 'options.vectors', 1, MAX_VECTORS, DEFAULT_VECTORS);
    const maxPeers = intOption(opts.maxPeers, 'options.maxPeers', 2, IVSHMEM_MAX_ID + 1, DEFAULT_MAX_PEERS);
    const name = opts.name ?? 'ringwire-ivshmem';
    const region = Region.create(name, size);
    try {
      // No one may resize the memory under a mapping (SIGBUS in every peer), QEMU included.
      region.seal({ shrink: true, grow: true, seal: true });
      return new IvshmemServer({ path: opts.path, size, vectors, maxPeers, name, mode: opts.mode }, region);
    } catch (err) {
      region.close();
      throw err;
    }
  }

  /** Ids of connected clients, ascending (the host pseudo-peer is not among them). */
  peers(): number[] {
    return [...this.#clients.keys()].sort((a, b) => a - b);
  }

  peer(id: number): IvshmemPeerInfo | undefined {
    return this.#clients.get(id)?.info;
  }

  /** The eventfd that client `id` signals by ringing vector `vector` of the host (peer 0); owned by the server. */
  hostBell(id: number, vector: number): EventFd {
    const c = this.#client(id);
    this.#checkVector(vector);
    return c.hostBells[vector]!;
  }

  /** Signals vector `vector` of client `id` (QEMU turns it into an MSI-X interrupt when the guest has a driver). */
  ring(id: number, vector: number): void {
    const c = this.#client(id);
    this.#checkVector(vector);
    c.eventfds[vector]!.signal(1);
  }

  /** Disconnects one client, as if it had left. */
  disconnect(id: number): void {
    this.#drop(this.#client(id), undefined);
  }

  /** Stops listening, disconnects everyone and closes the memfd (mappings live until GC). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
    for (const c of [...this.#clients.values()]) {
      this.#clients.delete(c.id);
      c.sock.close();
      this.#closeFds(c);
    }
    this.region.close();
    process.nextTick(() => this.emit('close'));
  }

  #client(id: number): Client {
    const c = this.#clients.get(id);
    if (!c) throw ringwireError('ERR_PEER_GONE', `ivshmem peer ${id} is not connected`);
    return c;
  }

  #checkVector(vector: number): void {
    if (!Number.isInteger(vector) || vector < 0 || vector >= this.vectors) {
      throw ringwireError('ERR_OUT_OF_RANGE', `vector must be 0..${this.vectors - 1}, got ${vector}`);
    }
  }

  #freeId(): number {
    for (let id = HOST_PEER_ID + 1; id < this.maxPeers; id++) if (!this.#clients.has(id)) return id;
    return -1;
  }

  #accept(sock: FdSocket): void {
    const id = this.#freeId();
    if (id < 0 || this.#closed) {
      sock.close();
      this.emit('client-error', ringwireError('ERR_IVSHMEM_PROTOCOL', `refused a client: all ${this.maxPeers - 1} peer ids are taken`), undefined);
      return;
    }
    let cred = { pid: 0, uid: 0 };
    try {
      cred = sock.peerCred();
    } catch {
      // The client already hung up: its first setup message fails and drops it as a leave.
    }
    const c: Client = { id, sock, info: { id, pid: cred.pid, uid: cred.uid }, eventfds: [], hostBells: [], queued: 0 };
    sock.on('message', (data, fds) => {
      // Fds a client pushes at us are not ours to keep.
      for (const fd of fds) native().close(fd);
      this.#drop(c, ringwireError('ERR_IVSHMEM_PROTOCOL', `peer ${id} sent ${data.length} byte(s) and ${fds.length} fd(s); the protocol is server-to-client only`));
    });
    // A client that dies with messages unread resets the connection (EPOLLERR, which libuv reports
    // as EBADF): that is an ordinary leave, as is a hang-up. Anything else says why it left.
    sock.on('error', (err) => this.#drop(c, isDisconnect(err) ? undefined : err));
    sock.on('close', () => this.#drop(c, undefined));
    sock.on('drain', () => (c.queued = 0));
    try {
      for (let v = 0; v < this.vectors; v++) {
        c.eventfds.push(EventFd.create());
        c.hostBells.push(EventFd.create());
      }
    } catch (err) {
      this.#closeFds(c);
      sock.close();
      this.emit('client-error', isRingwireError(err) ? err : ringwireError('ERR_NATIVE', String(err)), undefined);
      return;
    }
    this.#clients.set(id, c);
    const ok = this.#send(c, IVSHMEM_PROTOCOL_VERSION) &&
      this.#send(c, id) &&
      this.#send(c, IVSHMEM_SHM_MESSAGE, this.region.fd) &&
      c.hostBells.every((b) => this.#send(c, HOST_PEER_ID, b.fd)) &&
      [...this.#clients.values()].every((p) => p === c || p.eventfds.every((e) => this.#send(c, p.id, e.fd))) &&
      c.eventfds.every((e) => this.#send(c, id, e.fd));
    if (!ok) return;
    for (const p of [...this.#clients.values()]) {
      if (p !== c) for (const e of c.eventfds) if (!this.#send(p, id, e.fd)) break;
    }
    this.emit('join', c.info);
  }

  /** One message by its own sendmsg; false (and the client dropped) when it cannot be sent. */
  #send(c: Client, value: number, fd = -1): boolean {
    if (this.#clients.get(c.id) !== c) return false;
    try {
      c.sock.send(encodeMessage(value), fd >= 0 ? [fd] : []);
    } catch (err) {
      const e = isRingwireError(err) ? err : ringwireError('ERR_NATIVE', String(err));
      this.#drop(c, isDisconnect(e) ? undefined : e);
      return false;
    }
    if (c.sock.writableLength > 0 && ++c.queued > MAX_QUEUED_MESSAGES) {
      this.#drop(c, ringwireError('ERR_IVSHMEM_PROTOCOL', `peer ${c.id} stopped reading (${c.queued} messages queued)`));
      return false;
    }
    return true;
  }

  #drop(c: Client, reason: RingwireError | undefined): void {
    if (this.#clients.get(c.id) !== c) return;
    this.#clients.delete(c.id);
    c.sock.close();
    this.#closeFds(c);
    if (reason) this.emit('client-error', reason, c.id);
    for (const p of [...this.#clients.values()]) this.#send(p, c.id);
    this.emit('leave', c.id, reason);
  }

  #closeFds(c: Client): void {
    for (const e of c.eventfds) e.close();
    for (const e of c.hostBells) e.close();
  }
}

function isDisconnect(err: RingwireError): boolean {
  return err.code === 'ERR_PEER_GONE' || (err.code === 'ERR_NATIVE' && err.syscall === 'uv_poll');
}
