/**
 * 'tcp://host:port': the channel API between hosts, over TCP or TLS. There is no shared memory, so
 * the ring ends are imitated over the socket: a record is a frame
 *
 *   u32 length (LE) | u32 type (LE, the ring record type word) | length bytes of payload
 *
 * The handshake reuses the UNIX-socket messages (protocol.ts), each prefixed by its u32 length:
 * server Hello, client Init, then server Connected or Disconnect. The ring sizes in Init bound the
 * largest frame each direction may carry (maxMessageSize of an SPSC ring that size, as over shared
 * memory). docs/protocol.md, "TCP".
 */
import net from 'node:net';
import tls from 'node:tls';
import { timingSafeEqual } from 'node:crypto';
import { ringwireError } from '../errors.js';
import type { ConsumerStats, ProducerStats } from '../ring/ring-types.js';
import type { WaitOptions } from '../ring/wait.js';
import { isPowerOfTwo, maxMessageSize } from '../ring/layout.js';
import {
  DisconnectCode, DisconnectView, Frame, HelloView, InitView, Msg, PROTOCOL_VERSION,
  encodeConnected, encodeDisconnect, encodeHello, encodeInit, msgName,
} from './protocol.js';
import type { GoneReason, Link, LinkConsumer, LinkProducer, PeerIdentity } from './link.js';
import type { Acceptor, AcceptorHooks, ServerOptions } from './acceptor.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, handshakeError, peerRefusal, type HandshakeError } from './handshake.js';
import { DEFAULT_MAX_RING_BYTES, checkLimits, secretBytes } from './handshake-server.js';
import { chooseRingBytes } from './handshake-client.js';

export type { TlsServerOptions } from './acceptor.js';
export type TlsClientOptions = tls.ConnectionOptions;

const FRAME_HEADER = 8;
/** Bytes queued in the socket before claim() reports "full" and senders wait for 'drain'. */
const WRITE_HIGH_WATER = 1 << 20;
/**
 * How long a refused socket may take to flush its Disconnect and FIN before it is destroyed: a peer
 * that never closes its side must not keep the server's socket for ever.
 */
const REFUSED_LINGER_MS = 1000;

type Sock = net.Socket | tls.TLSSocket;

class TcpProducer implements LinkProducer {
  data: Uint8Array = new Uint8Array(0);
  #sock: Sock;
  #pending: Buffer[] = [];
  #stats: ProducerStats = { messages: 0, bytes: 0, doorbellsRung: 0, doorbellsSuppressed: 0, fullWaits: 0 };

  constructor(sock: Sock, readonly maxMessageSize: number) {
    this.#sock = sock;
  }

  claim(length: number, type = 0): number {
    if (length > this.maxMessageSize) throw ringwireError('ERR_RING_TOO_LARGE', `message of ${length} bytes exceeds this channel's maximum of ${this.maxMessageSize}`);
    if (this.#sock.writableLength > WRITE_HIGH_WATER) {
      this.commit();
      return -1;
    }
    const frame = Buffer.allocUnsafe(FRAME_HEADER + length);
    frame.writeUInt32LE(length, 0);
    frame.writeUInt32LE(type, 4);
    this.#pending.push(frame);
    this.#stats.messages++;
    this.#stats.bytes += length;
    this.data = frame;
    return FRAME_HEADER;
  }

  commit(): void {
    if (this.#pending.length === 0) return;
    const frames = this.#pending;
    this.#pending = [];
    if (this.#sock.destroyed) return;
    this.#sock.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  }

  waitForSpace(_length: number, opts: WaitOptions = {}): Promise<boolean> {
    if (this.#sock.writableLength <= WRITE_HIGH_WATER) return Promise.resolve(true);
    this.#stats.fullWaits++;
    return new Promise<boolean>((resolve, reject) => {
      const done = (v: boolean | Error): void => {
        clearTimeout(timer);
        this.#sock.off('drain', onDrain);
        this.#sock.off('close', onDrain);
        opts.signal?.removeEventListener('abort', onAbort);
        if (v instanceof Error) reject(v);
        else resolve(v);
      };
      const onDrain = (): void => done(true);
      const onAbort = (): void => done(ringwireError('ERR_ABORTED', 'wait aborted', { cause: opts.signal?.reason }));
      const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => done(false), opts.timeoutMs);
      this.#sock.on('drain', onDrain);
      this.#sock.on('close', onDrain);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  stats(): ProducerStats {
    return { ...this.#stats };
  }
}

class TcpConsumer implements LinkConsumer {
  data: Uint8Array = new Uint8Array(0);
  offset = 0;
  length = 0;
  type = 0;
  #frames: Buffer[] = [];
  /** Bytes (headers included) in #frames; the socket pauses above one ring's worth, as a ring would fill. */
  #buffered = 0;
  #highWater: number;
  /** The header of the next frame while it arrives in pieces. */
  #header = Buffer.alloc(FRAME_HEADER);
  #headerFill = 0;
  /** The frame being assembled, allocated whole once its header is known, so pieces are copied once. */
  #frame: Buffer | undefined;
  #frameFill = 0;
  #sock: Sock;
  #wake: (() => void) | undefined;
  #stats: ConsumerStats = { messages: 0, bytes: 0, doorbellsRung: 0, doorbellsSuppressed: 0, parks: 0, abandoned: 0 };

  constructor(sock: Sock, readonly maxMessageSize: number, leftover: Buffer, onProtocolError: (reason: string) => void) {
    this.#sock = sock;
    this.#highWater = FRAME_HEADER + maxMessageSize;
    const onData = (chunk: Buffer): void => {
      const problem = this.#push(chunk);
      if (problem) onProtocolError(problem);
    };
    sock.on('data', onData);
    sock.on('close', () => this.#wake?.());
    if (leftover.length > 0) onData(leftover);
  }

  #push(chunk: Buffer): string | null {
    let pos = 0;
    while (pos < chunk.length) {
      if (!this.#frame) {
        // A whole frame inside this chunk is used in place; anything split is assembled.
        if (this.#headerFill === 0 && chunk.length - pos >= FRAME_HEADER) {
          const len = chunk.readUInt32LE(pos);
          if (len > this.maxMessageSize) return this.#tooLong(len);
          if (chunk.length - pos >= FRAME_HEADER + len) {
            this.#accept(chunk.subarray(pos, pos + FRAME_HEADER + len));
            pos += FRAME_HEADER + len;
            continue;
          }
        }
        const n = Math.min(FRAME_HEADER - this.#headerFill, chunk.length - pos);
        chunk.copy(this.#header, this.#headerFill, pos, pos + n);
        this.#headerFill += n;
        pos += n;
        if (this.#headerFill < FRAME_HEADER) break;
        const len = this.#header.readUInt32LE(0);
        if (len > this.maxMessageSize) return this.#tooLong(len);
        this.#frame = Buffer.allocUnsafe(FRAME_HEADER + len);
        this.#header.copy(this.#frame);
        this.#frameFill = FRAME_HEADER;
        this.#headerFill = 0;
      }
      const n = Math.min(this.#frame.length - this.#frameFill, chunk.length - pos);
      chunk.copy(this.#frame, this.#frameFill, pos, pos + n);
      this.#frameFill += n;
      pos += n;
      if (this.#frameFill === this.#frame.length) {
        this.#accept(this.#frame);
        this.#frame = undefined;
      }
    }
    if (this.#buffered >= this.#highWater) this.#sock.pause();
    this.#wake?.();
    return null;
  }

  #accept(frame: Buffer): void {
    this.#frames.push(frame);
    this.#buffered += frame.length;
  }

  #tooLong(len: number): string {
    return `the peer sent a ${len}-byte frame; at most ${this.maxMessageSize} were agreed`;
  }

  read(): number {
    const f = this.#frames.shift();
    if (!f) {
      if (this.#sock.isPaused() && !this.#sock.destroyed) this.#sock.resume();
      return -1;
    }
    this.#buffered -= f.length;
    this.data = f;
    this.offset = FRAME_HEADER;
    this.length = f.readUInt32LE(0);
    this.type = f.readUInt32LE(4);
    this.#stats.messages++;
    this.#stats.bytes += this.length;
    return this.length;
  }

  release(): void {}

  available(): boolean {
    return this.#frames.length > 0;
  }

  waitForData(opts: WaitOptions = {}): Promise<boolean> {
    if (this.#frames.length > 0) return Promise.resolve(true);
    if (this.#sock.isPaused() && !this.#sock.destroyed) this.#sock.resume();
    this.#stats.parks++;
    return new Promise<boolean>((resolve, reject) => {
      const done = (v: boolean | Error): void => {
        this.#wake = undefined;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        if (v instanceof Error) reject(v);
        else resolve(v);
      };
      const onAbort = (): void => done(ringwireError('ERR_ABORTED', 'wait aborted', { cause: opts.signal?.reason }));
      const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => done(false), opts.timeoutMs);
      this.#wake = () => done(this.#frames.length > 0);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  stats(): ConsumerStats {
    return { ...this.#stats };
  }
}

class TcpLink implements Link {
  readonly transport = 'tcp' as const;
  readonly producer: TcpProducer;
  readonly consumer: TcpConsumer;
  readonly localAddress: string;
  readonly remoteAddress: string;
  readonly localPort: number | undefined;
  readonly remotePort: number | undefined;
  #sock: Sock;
  #closed = false;
  #cb: ((why: GoneReason) => void) | undefined;
  #why: GoneReason | undefined;

  constructor(sock: Sock, sendMax: number, receiveMax: number, leftover: Buffer, readonly peer: PeerIdentity) {
    this.#sock = sock;
    this.localAddress = sock.localAddress ?? '';
    this.remoteAddress = sock.remoteAddress ?? '';
    this.localPort = sock.localPort;
    this.remotePort = sock.remotePort;
    this.producer = new TcpProducer(sock, sendMax);
    this.consumer = new TcpConsumer(sock, receiveMax, leftover, (reason) => {
      this.#why = { code: DisconnectCode.Protocol, reason };
      sock.destroy();
    });
    sock.on('error', (err) => { this.#why ??= { code: undefined, reason: err.message }; });
    sock.on('close', () => {
      if (!this.#closed) this.#cb?.(this.#why ?? { code: undefined, reason: 'the peer closed the connection' });
    });
  }

  onGone(cb: (why: GoneReason) => void): void {
    this.#cb = cb;
  }

  close(code: DisconnectCode = DisconnectCode.Normal): void {
    if (this.#closed) return;
    this.#closed = true;
    // A clean close flushes what was written (the End record) before the FIN.
    if (code === DisconnectCode.Normal) this.#sock.end();
    else this.#sock.destroy();
  }
}

/** Reads length-prefixed handshake messages from a socket until `take` has what it needs. */
class HandshakeReader {
  #buf = Buffer.alloc(0);
  #finished = false;
  #waiter: ((f: Frame | Error) => void) | undefined;
  #queue: Array<Frame | Error> = [];
  #onData = (chunk: Buffer): void => this.#push(chunk);
  #onEnd = (): void => this.#deliver(handshakeError('ERR_PEER_GONE', undefined, 'the peer closed the connection during the handshake'));

  constructor(private readonly sock: Sock, private readonly timeoutMs: number) {
    sock.on('data', this.#onData);
    sock.on('close', this.#onEnd);
  }

  #push(chunk: Buffer): void {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    while (!this.#finished && this.#buf.length >= 4) {
      const len = this.#buf.readUInt32LE(0);
      if (len > 512) {
        this.#deliver(handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `handshake message of ${len} bytes is too long`));
        return;
      }
      if (this.#buf.length < 4 + len) return;
      const msg = this.#buf.subarray(4, 4 + len);
      this.#buf = this.#buf.subarray(4 + len);
      const f = Frame.parse(msg, []);
      this.#deliver(f && f.isValid() ? f : handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, 'malformed handshake message'));
      // Everything after the last handshake message belongs to the data phase.
      if (f && (f.type === Msg.Connected || f.type === Msg.Init)) this.#finished = true;
    }
  }

  #deliver(x: Frame | Error): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    if (w) w(x);
    else this.#queue.push(x);
  }

  next(step: string): Promise<Frame> {
    const q = this.#queue.shift();
    if (q) return q instanceof Error ? Promise.reject(q) : Promise.resolve(q);
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        reject(handshakeError('ERR_TIMEOUT', DisconnectCode.Timeout, `handshake: no ${step} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.#waiter = (x) => {
        clearTimeout(timer);
        if (x instanceof Error) reject(x);
        else resolve(x);
      };
    });
  }

  /** Stops reading handshake messages; returns bytes that already belong to the data phase. */
  detach(): Buffer {
    this.sock.off('data', this.#onData);
    this.sock.off('close', this.#onEnd);
    return this.#buf;
  }
}

function writeMessage(sock: Sock, msg: Buffer): void {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(msg.length);
  sock.write(Buffer.concat([len, msg]));
}

export async function listenTcp(host: string, port: number, opts: ServerOptions, hooks: AcceptorHooks): Promise<Acceptor> {
  const min = opts.minRingBytes ?? 4096;
  const max = opts.maxRingBytes ?? DEFAULT_MAX_RING_BYTES;
  checkLimits(min, max);
  // TCP carries no kernel credentials: a uid/gid rule could only be ignored, which would admit everyone.
  if (opts.allow?.uids !== undefined || opts.allow?.gids !== undefined) {
    throw ringwireError('ERR_INVALID_ARG', 'allow.uids and allow.gids cannot be enforced over tcp:// (there are no peer credentials); use a secret, TLS client certificates or allow.check');
  }
  const secret = secretBytes(opts.secret);
  const timeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const onSocket = (sock: Sock): void => {
    sock.setNoDelay(true);
    sock.on('error', () => {});
    const refuse = (code: DisconnectCode, reason: string, err?: HandshakeError): void => {
      if (!sock.destroyed) {
        writeMessage(sock, encodeDisconnect(code, reason));
        sock.end();
        const linger = setTimeout(() => sock.destroy(), REFUSED_LINGER_MS).unref();
        sock.once('close', () => clearTimeout(linger));
      }
      hooks.refused({ peer: { name: '' }, reason, error: err ?? handshakeError('ERR_HANDSHAKE', code, reason) });
    };
    if (!hooks.admit()) return refuse(DisconnectCode.Limit, 'server is at its connection limit');
    const done = hooks.started();
    const reader = new HandshakeReader(sock, timeoutMs);
    let handedOver = false;
    void (async () => {
      try {
        writeMessage(sock, encodeHello({ minVersion: 1, maxVersion: PROTOCOL_VERSION, minRingBytes: min, maxRingBytes: max, maxRingsPerDirection: 1, flags: secret ? 1 : 0, name: opts.name ?? 'ringwire' }));
        const f = await reader.next('Init');
        if (f.type !== Msg.Init) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `expected Init, got ${msgName(f.type)}`);
        const v = new InitView(f.body);
        if (!v.isValid()) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, 'Init is malformed');
        const init = v.toObject();
        if (init.version < 1 || init.version > PROTOCOL_VERSION) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Version, `protocol version ${init.version} is not supported`);
        for (const b of [init.clientToServerBytes, init.serverToClientBytes]) {
          if (!isPowerOfTwo(b) || b < min || b > max) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Limit, `frame limit ${b} is outside ${min}..${max}`);
        }
        if (secret && !(init.secret.length === secret.length && timingSafeEqual(init.secret, secret))) throw handshakeError('ERR_POLICY', DisconnectCode.Secret, 'wrong or missing secret');
        const peer = { name: init.name };
        if (opts.allow?.check) {
          const verdict = await opts.allow.check({ pid: -1, uid: -1, gid: -1, ...peer });
          if (verdict !== true) throw handshakeError('ERR_POLICY', DisconnectCode.Policy, typeof verdict === 'string' && verdict ? verdict : 'refused by policy');
        }
        const leftover = reader.detach();
        writeMessage(sock, encodeConnected());
        handedOver = true;
        done();
        hooks.link(new TcpLink(sock, maxMessageSize(init.serverToClientBytes), maxMessageSize(init.clientToServerBytes), leftover, peer));
      } catch (err) {
        reader.detach();
        const e = err as HandshakeError;
        refuse(e.disconnectCode ?? DisconnectCode.Internal, e.message, e);
      } finally {
        // A refused socket counts toward maxConnections until it is really closed.
        if (!handedOver) {
          if (sock.destroyed) done();
          else sock.once('close', done);
        }
      }
    })();
  };
  const server = opts.tls ? tls.createServer(opts.tls, onSocket) : net.createServer(onSocket);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as net.AddressInfo;
  const shownHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return { address: `tcp://${shownHost}:${bound.port}`, close: () => server.close() };
}

export interface TcpConnectOptions {
  name: string;
  secret: Uint8Array | undefined;
  timeoutMs: number;
  connectTimeoutMs: number;
  /** Largest frame we ask to send and receive, as ring bytes (a power of two). */
  maxMessageSize: number;
  /** The largest frame limit, as ring bytes, this client accepts whatever the server demands. */
  maxRingBytes: number;
  tls: TlsClientOptions | undefined;
}

export async function connectTcp(host: string, port: number, o: TcpConnectOptions): Promise<Link> {
  const sock: Sock = await new Promise<Sock>((resolve, reject) => {
    const s = o.tls ? tls.connect({ host, port, ...o.tls }) : net.connect({ host, port });
    const timer = setTimeout(() => { s.destroy(); reject(ringwireError('ERR_TIMEOUT', `connect tcp://${host}:${port}: no answer within ${o.connectTimeoutMs} ms`)); }, o.connectTimeoutMs);
    s.once(o.tls ? 'secureConnect' : 'connect', () => { clearTimeout(timer); s.off('error', onError); resolve(s); });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(ringwireError(/ECONNREFUSED|ECONNRESET/.test(String((err as NodeJS.ErrnoException).code)) ? 'ERR_PEER_GONE' : 'ERR_HANDSHAKE', `connect tcp://${host}:${port}: ${err.message}`, { cause: err }));
    };
    s.once('error', onError);
  });
  sock.setNoDelay(true);
  sock.on('error', () => {});
  const reader = new HandshakeReader(sock, o.timeoutMs);
  try {
    const h = await reader.next('Hello');
    if (h.type !== Msg.Hello) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `expected Hello, got ${msgName(h.type)}`);
    const hv = new HelloView(h.body);
    if (!hv.isValid() || hv.minVersion > PROTOCOL_VERSION) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Version, 'Hello is malformed or its versions do not overlap ours');
    const hello = hv.toObject();
    const size = chooseRingBytes(hello, o.maxMessageSize, o.maxRingBytes);
    writeMessage(sock, encodeInit({ version: Math.min(hello.maxVersion, PROTOCOL_VERSION), ringsPerDirection: 1, clientToServerBytes: size, serverToClientBytes: size, name: o.name, secret: o.secret ?? new Uint8Array(0) }));
    const c = await reader.next('Connected');
    if (c.type === Msg.Disconnect) throw peerRefusal(new DisconnectView(c.body));
    if (c.type !== Msg.Connected) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `expected Connected, got ${msgName(c.type)}`);
    return new TcpLink(sock, maxMessageSize(size), maxMessageSize(size), reader.detach(), { name: hello.name });
  } catch (err) {
    reader.detach();
    const code = (err as HandshakeError).disconnectCode;
    if (code !== undefined && !sock.destroyed) {
      writeMessage(sock, encodeDisconnect(code, (err as Error).message));
      sock.end();
      setTimeout(() => sock.destroy(), REFUSED_LINGER_MS).unref();
    } else {
      sock.destroy();
    }
    throw err;
  }
}
