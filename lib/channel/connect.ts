/**
 * connect(address): a Channel to the server at a UNIX path, '@abstract' name, 'inproc://name' or
 * 'tcp://host:port'. Resolves once the handshake completed; a refusal rejects with the server's
 * reason (ERR_POLICY for policy and secret, ERR_HANDSHAKE otherwise), never hangs.
 */
import { ringwireError } from '../errors.js';
import { FdSocket } from '../native/unix-socket.js';
import { parseAddress, socketAddress } from './address.js';
import { channelOnLink, type Channel, type ChannelOptions } from './channel.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, abandonHandshake } from './handshake.js';
import { clientHandshake } from './handshake-client.js';
import { DEFAULT_MAX_RING_BYTES, secretBytes } from './handshake-server.js';
import { MAX_HANDSHAKE_MESSAGE, NAME_BYTES } from './protocol.js';
import { isPowerOfTwo } from '../ring/layout.js';
import type { Link } from './link.js';
import { connectInproc } from './inproc.js';
import { connectTcp, type TlsClientOptions } from './tcp.js';

export interface ConnectOptions extends ChannelOptions {
  /** Announced to the server in Init (at most 64 bytes); the server sees it next to SO_PEERCRED. */
  name?: string;
  secret?: string | Uint8Array;
  /** Ring sizes wanted (powers of two), clamped into the server's limits. Default 256 KiB each. */
  sendRingBytes?: number;
  receiveRingBytes?: number;
  /**
   * The largest ring (tcp: frame limit) this client agrees to, however large a minimum the server
   * demands; beyond it the handshake fails with ERR_HANDSHAKE. Default 4 MiB, or the larger ring asked for.
   */
  maxRingBytes?: number;
  /** Each handshake step must complete within this; default 5 s. */
  handshakeTimeoutMs?: number;
  /** How long to retry while the listener's backlog is full (UNIX) or to connect (tcp, inproc). Default 5 s. */
  connectTimeoutMs?: number;
  /** tcp:// only: use TLS with these options (ca, servername, ...). */
  tls?: TlsClientOptions;
}

const DEFAULT_RING_BYTES = 256 * 1024;

function ringBytes(v: number | undefined, what: string): number {
  const n = v ?? DEFAULT_RING_BYTES;
  if (!isPowerOfTwo(n)) throw ringwireError('ERR_OUT_OF_RANGE', `${what} must be a power of two, got ${n}`);
  return n;
}

export async function connect(address: string, opts: ConnectOptions = {}): Promise<Channel> {
  if (typeof opts !== 'object' || opts === null) throw ringwireError('ERR_INVALID_ARG', 'connect options must be an object');
  const a = parseAddress(address);
  const name = opts.name ?? `pid ${process.pid}`;
  if (Buffer.byteLength(name) > NAME_BYTES) throw ringwireError('ERR_OUT_OF_RANGE', `name must be at most ${NAME_BYTES} bytes`);
  const secret = secretBytes(opts.secret);
  const sendRingBytes = ringBytes(opts.sendRingBytes, 'sendRingBytes');
  const receiveRingBytes = ringBytes(opts.receiveRingBytes, 'receiveRingBytes');
  const maxRingBytes = opts.maxRingBytes === undefined ? Math.max(DEFAULT_MAX_RING_BYTES, sendRingBytes, receiveRingBytes) : ringBytes(opts.maxRingBytes, 'maxRingBytes');
  const timeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  let link: Link;
  if (a.kind === 'inproc') {
    link = await connectInproc(a.name, { name, sendRingBytes, receiveRingBytes, timeoutMs: connectTimeoutMs, secret });
  } else if (a.kind === 'tcp') {
    link = await connectTcp(a.host, a.port, { name, secret, timeoutMs, connectTimeoutMs, maxMessageSize: sendRingBytes, maxRingBytes, tls: opts.tls });
  } else {
    const sock = await FdSocket.connect(socketAddress(a), { maxMessageSize: MAX_HANDSHAKE_MESSAGE, maxFds: 2, truncated: 'report', timeoutMs: connectTimeoutMs });
    sock.on('error', () => {});
    try {
      link = await clientHandshake(sock, sock.peerCred(), { name, secret, sendRingBytes, receiveRingBytes, maxRingBytes, timeoutMs, spin: opts.spin, address: a.text });
    } catch (err) {
      abandonHandshake(sock, err);
      throw err;
    }
  }
  return channelOnLink(link, opts);
}
