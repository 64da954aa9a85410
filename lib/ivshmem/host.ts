/**
 * IvshmemHost: the host end of an ivshmem region. It runs the IvshmemServer, lays the region out
 * (lib/ivshmem/layout.ts), and keeps one IvshmemChannel to every peer that joins, on the host
 * pseudo-peer's id. A peer's leave closes its channel with ERR_PEER_GONE and frees its slot; a ring
 * a peer corrupted breaks that channel only ('channel-error' with ERR_RING_CORRUPT), and the host
 * goes on serving every other channel.
 *
 * Concurrency contract: single-threaded, on the event loop of the thread that called listen().
 */
import { EventEmitter } from 'node:events';
import { EventFdDoorbell } from '../native/doorbell-eventfd.js';
import { ringwireError, type RingwireError } from '../errors.js';
import { DATA_VECTOR, IvshmemChannel, SPACE_VECTOR } from './channel.js';
import { initChannelsOf, planLayout, publishSlot, writeLayout, type IvshmemGeometry } from './layout.js';
import { DEFAULT_MAX_PEERS, DEFAULT_VECTORS, HOST_PEER_ID, IvshmemServer, type IvshmemPeerInfo, type IvshmemServerOptions } from './server.js';

export interface IvshmemHostOptions extends Omit<IvshmemServerOptions, 'maxPeers'> {
  /** Peer ids 0..slots-1, the host's 0 included (so slots-1 VMs or clients); default 16. */
  slots?: number;
  /** Bytes per ring; default the largest power of two that fits every ordered pair of slots. */
  ringCapacity?: number;
}

export interface IvshmemHost {
  on(event: 'join', listener: (channel: IvshmemChannel, peer: IvshmemPeerInfo) => void): this;
  on(event: 'leave', listener: (id: number, reason: RingwireError | undefined) => void): this;
  on(event: 'channel-error', listener: (id: number, err: RingwireError) => void): this;
  on(event: 'client-error', listener: (err: RingwireError, id: number | undefined) => void): this;
  on(event: 'error', listener: (err: RingwireError) => void): this;
}

export class IvshmemHost extends EventEmitter {
  readonly server: IvshmemServer;
  readonly geometry: IvshmemGeometry;
  readonly id = HOST_PEER_ID;
  #channels = new Map<number, IvshmemChannel>();
  #bells = new Map<number, EventFdDoorbell[]>();

  private constructor(server: IvshmemServer, geometry: IvshmemGeometry) {
    super();
    this.server = server;
    this.geometry = geometry;
    server.on('join', (peer) => this.#join(peer));
    server.on('leave', (id, reason) => this.#leave(id, reason));
    server.on('client-error', (err, id) => this.emit('client-error', err, id));
    server.on('error', (err) => this.emit('error', err));
  }

  /** Creates and lays out the region, then listens: start QEMU after this returns. */
  static listen(opts: IvshmemHostOptions): IvshmemHost {
    const slots = opts.slots ?? DEFAULT_MAX_PEERS;
    const vectors = opts.vectors ?? DEFAULT_VECTORS;
    if (typeof opts.size !== 'number') throw ringwireError('ERR_INVALID_ARG', 'options.size must be a number of bytes');
    const geometry = planLayout(opts.size, slots, vectors, opts.ringCapacity);
    const { slots: _slots, ringCapacity: _cap, ...serverOpts } = opts;
    const server = IvshmemServer.listen({ ...serverOpts, maxPeers: slots });
    try {
      writeLayout(server.region.buffer, geometry);
      publishSlot(server.region.buffer, geometry, HOST_PEER_ID, true);
    } catch (err) {
      server.close();
      throw err;
    }
    return new IvshmemHost(server, geometry);
  }

  /** The shared region as the host maps it. */
  get buffer(): SharedArrayBuffer {
    return this.server.region.buffer;
  }

  /** The channel to peer `id`, while it is connected and its rings are sound. */
  channel(id: number): IvshmemChannel | undefined {
    return this.#channels.get(id);
  }

  peers(): number[] {
    return [...this.#channels.keys()].sort((a, b) => a - b);
  }

  /** Closes every channel and the server. Idempotent. */
  close(): void {
    for (const id of [...this.#channels.keys()]) this.#dropChannel(id, ringwireError('ERR_RING_CLOSED', 'ivshmem host closed'));
    this.server.close();
  }

  #join(peer: IvshmemPeerInfo): void {
    const { id } = peer;
    const g = this.geometry;
    initChannelsOf(this.buffer, g, id);
    publishSlot(this.buffer, g, id, true);
    // Doorbells only this host reads: the server made them for this peer alone, so a ring names it.
    const data = new EventFdDoorbell(this.server.hostBell(id, DATA_VECTOR));
    const bells = [data];
    if (g.vectors > SPACE_VECTOR) bells.push(new EventFdDoorbell(this.server.hostBell(id, SPACE_VECTOR)));
    this.#bells.set(id, bells);
    let channel: IvshmemChannel;
    try {
      channel = new IvshmemChannel({
        buffer: this.buffer, geometry: g, self: HOST_PEER_ID, peer: id,
        ringPeer: (vector) => {
          try {
            this.server.ring(id, vector);
          } catch {
            // The peer is leaving; its leave notice closes this channel.
          }
        },
        dataWait: data,
        spaceWait: bells[bells.length - 1]!,
        onBroken: (err) => this.emit('channel-error', id, err),
      });
    } catch (err) {
      this.emit('channel-error', id, err as RingwireError);
      return;
    }
    this.#channels.set(id, channel);
    this.emit('join', channel, peer);
  }

  #leave(id: number, reason: RingwireError | undefined): void {
    publishSlot(this.buffer, this.geometry, id, false);
    this.#dropChannel(id, ringwireError('ERR_PEER_GONE', `ivshmem peer ${id} left`, reason ? { cause: reason } : {}));
    this.emit('leave', id, reason);
  }

  #dropChannel(id: number, reason: RingwireError): void {
    this.#channels.get(id)?.close(reason);
    this.#channels.delete(id);
    // The server owns (and closes) the eventfds; these only stop waiting on them.
    for (const b of this.#bells.get(id) ?? []) b.close();
    this.#bells.delete(id);
  }
}
