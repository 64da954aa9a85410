/**
 * Host ports of the switch: a host process joins the VMs' Ethernet segment either over a ringwire
 * channel (shared-memory rings with eventfd doorbells: `connect(address)` from ringwire) or over a
 * plain UNIX seqpacket socket. Each message is one Ethernet frame, both ways (no virtio header).
 * Every connection is its own switch port and leaves the switch when it closes.
 *
 * Sending to a slow host process never blocks the switch: when the channel's ring is full (or,
 * on a socket, past `maxQueuedBytes` of unsent frames) the port drops, like a switch port with a
 * full egress queue. A port whose peer is gone (EPIPE, a closed channel) drops the frame and
 * closes: the error belongs to that port, never to the sender whose frame was being switched.
 */
import { createServer, type Channel, type ChannelServer } from '../../lib/channel/index.js';
import { ringwireError, type RingwireError } from '../../lib/errors.js';
import { FdServer, FdSocket } from '../../lib/native/unix-socket.js';
import { closeQuietly } from '../vhost-user/memory-table.js';
import type { L2Switch, SwitchPort } from './l2-switch.js';
import { MAX_FRAME } from './net.js';

export const DEFAULT_HOST_PORT_QUEUE_BYTES = 4 << 20;

class HostPort implements SwitchPort {
  readonly name: string;
  dropped = 0;
  constructor(name: string, readonly socket: FdSocket, readonly maxQueuedBytes: number, readonly log: (message: string) => void) {
    this.name = name;
  }
  #failed = false;
  deliver(frame: Uint8Array): void {
    // Until the socket's 'close' detaches the port (next tick), frames to a failed port just drop.
    if (this.#failed || this.socket.writableLength > this.maxQueuedBytes) {
      this.dropped++;
      return;
    }
    try {
      this.socket.send(frame);
    } catch (err) {
      // ERR_PEER_GONE: EPIPE, the client shut its read side or died before we saw its EOF.
      this.#failed = true;
      this.dropped++;
      this.log(`port ${this.name}: closing: ${(err as Error).message}`);
      this.socket.close();
    }
  }
}

export class HostPortServer {
  readonly #server: FdServer;
  readonly #ports = new Set<HostPort>();
  #count = 0;

  constructor(path: string, sw: L2Switch, options: { maxQueuedBytes?: number; log?: (message: string) => void } = {}) {
    const log = options.log ?? (() => {});
    const maxQueued = options.maxQueuedBytes ?? DEFAULT_HOST_PORT_QUEUE_BYTES;
    if (!Number.isInteger(maxQueued) || maxQueued < 0) throw ringwireError('ERR_OUT_OF_RANGE', `maxQueuedBytes must be a non-negative integer, got ${maxQueued}`);
    this.#server = FdServer.listen(path, { type: 'seqpacket', maxMessageSize: MAX_FRAME, maxFds: 1 });
    this.#server.on('error', (err) => log(`host port listener: ${err.message}`));
    this.#server.on('connection', (sock) => {
      const port = new HostPort(`host${this.#count++}`, sock, maxQueued, log);
      this.#ports.add(port);
      sw.attach(port);
      sock.on('message', (frame, fds) => {
        for (const fd of fds) closeQuietly(fd);
        sw.forward(port, frame);
        sw.commit();
      });
      sock.on('error', (err) => log(`port ${port.name}: ${err.message}`));
      sock.on('close', () => {
        this.#ports.delete(port);
        sw.detach(port);
      });
    });
  }

  close(): void {
    this.#server.close();
    for (const p of this.#ports) p.socket.close();
  }
}

class ChannelPort implements SwitchPort {
  dropped = 0;
  constructor(readonly name: string, readonly channel: Channel) {}
  deliver(frame: Uint8Array): void {
    try {
      // trySend copies into the ring now or not at all: a full ring is a dropped frame, never a wait.
      if (frame.byteLength > this.channel.maxMessageSize || !this.channel.trySend(frame)) this.dropped++;
    } catch (err) {
      // A channel that ended or broke: its 'close' (logged there) detaches the port.
      this.dropped++;
      this.channel.destroy(err as RingwireError);
    }
  }
}

/** Host ports over ringwire channels: `ringwire.connect(address)` from the host process. */
export class ChannelHostPortServer {
  readonly #server: ChannelServer;
  readonly #ports = new Set<ChannelPort>();
  #count = 0;

  private constructor(server: ChannelServer) {
    this.#server = server;
  }

  static async listen(address: string, sw: L2Switch, options: { log?: (message: string) => void } = {}): Promise<ChannelHostPortServer> {
    const log = options.log ?? (() => {});
    const self = new ChannelHostPortServer(createServer());
    self.#server.on('error', (err) => log(`host channel listener: ${err.message}`));
    self.#server.on('connection', (channel) => {
      const port = new ChannelPort(`channel${self.#count++}`, channel);
      self.#ports.add(port);
      sw.attach(port);
      channel.on('message', (frame) => {
        sw.forward(port, frame);
        sw.commit();
      });
      channel.on('close', (err) => {
        if (err) log(`port ${port.name}: ${err.message}`);
        self.#ports.delete(port);
        sw.detach(port);
      });
    });
    await self.#server.listen(address);
    return self;
  }

  async close(): Promise<void> {
    for (const p of this.#ports) p.channel.destroy();
    await this.#server.close();
  }
}
