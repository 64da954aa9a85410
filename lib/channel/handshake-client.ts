/**
 * The client half of the handshake (docs/protocol.md, "Sequence"): read the server's Hello, pick
 * the highest common version and ring sizes within its limits, send Init, exchange and acknowledge
 * ring announcements, then Connect and wait for Connected.
 */
import { MAX_CAPACITY, MIN_CAPACITY, isPowerOfTwo } from '../ring/layout.js';
import type { FdSocket, PeerCred } from '../native/unix-socket.js';
import {
  AckView, DisconnectCode, HELLO_FLAG_SECRET_REQUIRED, HelloView, Msg, PROTOCOL_VERSION,
  encodeConnect, encodeInit,
} from './protocol.js';
import { FrameQueue, RingSet, handshakeError, unexpected } from './handshake.js';
import { ShmLink } from './link.js';

export interface ClientHandshakeOptions {
  name: string;
  secret: Uint8Array | undefined;
  /** Wanted ring sizes; clamped into the server's limits. */
  sendRingBytes: number;
  receiveRingBytes: number;
  /** The largest ring this client agrees to create, whatever the server's Hello demands. */
  maxRingBytes: number;
  timeoutMs: number;
  spin: number | undefined;
  address: string;
}

/**
 * The ring size to ask for: `wanted` clamped into the server's Hello limits, which must be sane
 * (powers of two within MIN_CAPACITY..MAX_CAPACITY, min <= max) and must not force a ring beyond
 * `clientMax`; a hostile server cannot make us create huge rings or accept huge frames.
 */
export function chooseRingBytes(limits: { minRingBytes: number; maxRingBytes: number }, wanted: number, clientMax: number): number {
  const { minRingBytes: min, maxRingBytes: max } = limits;
  for (const v of [min, max]) {
    if (!isPowerOfTwo(v) || v < MIN_CAPACITY || v > MAX_CAPACITY) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `Hello ring limit ${v} is outside ${MIN_CAPACITY}..${MAX_CAPACITY} or not a power of two`);
  }
  if (min > max) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, `Hello ring limits ${min}..${max} are reversed`);
  const size = Math.min(Math.max(wanted, min), max);
  if (size > clientMax) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Limit, `server demands rings of at least ${min} bytes; this client allows at most ${clientMax} (maxRingBytes)`);
  return size;
}

export async function clientHandshake(sock: FdSocket, cred: PeerCred, o: ClientHandshakeOptions): Promise<ShmLink> {
  const frames = new FrameQueue(sock, o.timeoutMs);
  let rings: RingSet | undefined;
  try {
    const f = await frames.next('Hello');
    if (f.type !== Msg.Hello) unexpected(f, 'Hello');
    const hv = new HelloView(f.body);
    if (!hv.isValid()) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, 'Hello is malformed (reserved bits, version range, limits or name)');
    const hello = hv.toObject();
    if (hello.minVersion > PROTOCOL_VERSION) {
      throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Version, `server speaks protocol versions ${hello.minVersion}..${hello.maxVersion}; this client speaks 1..${PROTOCOL_VERSION}`);
    }
    if ((hello.flags & HELLO_FLAG_SECRET_REQUIRED) && !o.secret) throw handshakeError('ERR_POLICY', DisconnectCode.Secret, `server ${JSON.stringify(hello.name)} requires a secret and none was given`);
    const c2s = chooseRingBytes(hello, o.sendRingBytes, o.maxRingBytes);
    const s2c = chooseRingBytes(hello, o.receiveRingBytes, o.maxRingBytes);
    sock.send(encodeInit({
      version: Math.min(hello.maxVersion, PROTOCOL_VERSION), ringsPerDirection: 1,
      clientToServerBytes: c2s, serverToClientBytes: s2c, name: o.name, secret: o.secret ?? new Uint8Array(0),
    }));
    const ack = await frames.next('Ack of Init');
    if (ack.type !== Msg.Ack || new AckView(ack.body).ackedType !== Msg.Init) unexpected(ack, 'Ack of Init');
    rings = new RingSet('client', c2s, s2c);
    await rings.exchange(sock, frames);
    sock.send(encodeConnect());
    const c = await frames.next('Connected');
    if (c.type !== Msg.Connected) unexpected(c, 'Connected');
    const { producer, consumer, bells, wake } = rings.open(o.spin);
    rings = undefined;
    frames.dispose();
    return new ShmLink(sock, producer, consumer, bells, wake, { ...cred, name: hello.name }, `pid ${process.pid}`, o.address);
  } catch (err) {
    frames.dispose();
    rings?.dispose();
    throw err;
  }
}
