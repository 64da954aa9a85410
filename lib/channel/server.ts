/**
 * ChannelServer: net.Server's shape for channels. listen(address) accepts on a UNIX path, an
 * '@abstract' name, 'inproc://name' or 'tcp://host:port'; every peer that completes the handshake
 * and passes policy becomes a Channel on 'connection'. A peer that fails (bad message, version,
 * limits, secret, policy, timeout) is told why and reported on 'refused'; the server keeps serving.
 */
import { EventEmitter } from 'node:events';
import { ringwireError, type RingwireError } from '../errors.js';
import { FdServer, type FdSocket } from '../native/unix-socket.js';
import { parseAddress, socketAddress } from './address.js';
import { Channel } from './channel.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, sendDisconnect, type HandshakeError } from './handshake.js';
import { DEFAULT_MAX_RING_BYTES, checkAllowPolicy, checkLimits, secretBytes, serverHandshake, type AllowPolicy, type PeerInfo } from './handshake-server.js';
import { DisconnectCode, MAX_HANDSHAKE_MESSAGE } from './protocol.js';
import type { Link } from './link.js';
import { listenInproc } from './inproc.js';
import { listenTcp } from './tcp.js';
import type { Acceptor, AcceptorHooks, Refusal, ServerOptions } from './acceptor.js';

export type { Acceptor, AcceptorHooks, Refusal, ServerOptions } from './acceptor.js';

export interface ChannelServer {
  on(event: 'connection', listener: (channel: Channel) => void): this;
  on(event: 'refused', listener: (r: Refusal) => void): this;
  on(event: 'error', listener: (err: RingwireError) => void): this;
  on(event: 'close', listener: () => void): this;
}

export class ChannelServer extends EventEmitter {
  #opts: ServerOptions;
  #acceptor: Acceptor | undefined;
  #channels = new Set<Channel>();
  #handshaking = 0;
  #maxConnections: number;

  constructor(opts: ServerOptions = {}, onConnection?: (channel: Channel) => void) {
    super();
    if (typeof opts !== 'object' || opts === null) throw ringwireError('ERR_INVALID_ARG', 'server options must be an object');
    checkLimits(opts.minRingBytes ?? 4096, opts.maxRingBytes ?? DEFAULT_MAX_RING_BYTES);
    checkAllowPolicy(opts.allow);
    secretBytes(opts.secret);
    this.#maxConnections = opts.maxConnections ?? 1024;
    if (!Number.isInteger(this.#maxConnections) || this.#maxConnections < 1) throw ringwireError('ERR_OUT_OF_RANGE', `maxConnections must be a positive integer, got ${opts.maxConnections}`);
    this.#opts = opts;
    if (onConnection) this.on('connection', onConnection);
  }

  /** The address being served (tcp:// with the real port); null before listen() and after close(). */
  get address(): string | null {
    return this.#acceptor?.address ?? null;
  }

  /** Open channels plus handshakes in progress. */
  get connections(): number {
    return this.#channels.size + this.#handshaking;
  }

  /** Starts accepting; resolves once bound. */
  async listen(address: string): Promise<this> {
    if (this.#acceptor) throw ringwireError('ERR_INVALID_ARG', `already listening on ${this.#acceptor.address}`);
    const a = parseAddress(address);
    const hooks: AcceptorHooks = {
      admit: () => this.connections < this.#maxConnections,
      started: () => {
        this.#handshaking++;
        let done = false;
        return () => { if (!done) { done = true; this.#handshaking--; } };
      },
      link: (link) => this.#open(link),
      refused: (r) => this.emit('refused', r),
    };
    if (a.kind === 'inproc') this.#acceptor = listenInproc(a.name, this.#opts, hooks);
    else if (a.kind === 'tcp') this.#acceptor = await listenTcp(a.host, a.port, this.#opts, hooks);
    else this.#acceptor = this.#listenUnix(socketAddress(a), hooks);
    return this;
  }

  #listenUnix(address: string, hooks: AcceptorHooks): Acceptor {
    const o = this.#opts;
    const fdServer = FdServer.listen(address, { maxMessageSize: MAX_HANDSHAKE_MESSAGE, maxFds: 2, truncated: 'report', ...(o.mode !== undefined ? { mode: o.mode } : {}) });
    const handshake = {
      name: o.name ?? 'ringwire',
      secret: secretBytes(o.secret),
      allow: o.allow,
      timeoutMs: o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      spin: o.spin,
      minRingBytes: o.minRingBytes ?? 4096,
      maxRingBytes: o.maxRingBytes ?? DEFAULT_MAX_RING_BYTES,
      address,
    };
    fdServer.on('error', (err) => this.emit('error', err));
    fdServer.on('connection', (sock: FdSocket) => {
      sock.on('error', () => {});
      let cred;
      try {
        cred = sock.peerCred();
      } catch (err) {
        sock.close();
        this.emit('refused', { peer: {}, reason: 'SO_PEERCRED failed', error: err as RingwireError });
        return;
      }
      if (hooks.admit()) {
        const done = hooks.started();
        serverHandshake(sock, cred, handshake).then(
          (link) => { done(); hooks.link(link); },
          (err: HandshakeError) => {
            done();
            sendDisconnect(sock, err.disconnectCode ?? DisconnectCode.Internal, err.message);
            sock.close();
            hooks.refused({ peer: cred, reason: err.message, error: err });
          },
        );
        return;
      }
      const reason = `server is at its limit of ${this.#maxConnections} connections`;
      sendDisconnect(sock, DisconnectCode.Limit, reason);
      sock.close();
      this.emit('refused', { peer: cred, reason, error: ringwireError('ERR_HANDSHAKE', reason) });
    });
    return { address, close: () => fdServer.close() };
  }

  #open(link: Link): void {
    let ch: Channel;
    try {
      ch = new Channel(link, this.#opts);
    } catch (err) {
      link.close(DisconnectCode.Internal, (err as Error).message);
      this.emit('error', err);
      return;
    }
    this.#channels.add(ch);
    ch.once('close', () => this.#channels.delete(ch));
    this.emit('connection', ch);
  }

  /** Stops accepting (and unlinks the socket file it created); open channels stay open. */
  close(): Promise<void> {
    const a = this.#acceptor;
    this.#acceptor = undefined;
    a?.close();
    return new Promise((resolve) => process.nextTick(() => { this.emit('close'); resolve(); }));
  }

  /** Destroys every open channel (their pending requests reject). */
  destroyConnections(): void {
    for (const ch of this.#channels) ch.destroy();
  }
}

/** A server that is not listening yet, like net.createServer. */
export function createServer(onConnection?: (channel: Channel) => void): ChannelServer;
export function createServer(opts: ServerOptions, onConnection?: (channel: Channel) => void): ChannelServer;
export function createServer(a?: ServerOptions | ((channel: Channel) => void), b?: (channel: Channel) => void): ChannelServer {
  return typeof a === 'function' ? new ChannelServer({}, a) : new ChannelServer(a ?? {}, b);
}

/** createServer(opts, onConnection).listen(address). */
export async function listen(address: string, opts: ServerOptions = {}, onConnection?: (channel: Channel) => void): Promise<ChannelServer> {
  return new ChannelServer(opts, onConnection).listen(address);
}
