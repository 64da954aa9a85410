/**
 * The server half of the handshake (docs/protocol.md, "Sequence"): Hello, then the client's Init is
 * checked (version, limits, secret, policy) before any memory is created for it; then the ring
 * announcements cross, each acknowledged, and Connect/Connected opens the channel.
 */
import { timingSafeEqual } from 'node:crypto';
import { isPowerOfTwo, MAX_CAPACITY, MIN_CAPACITY } from '../ring/layout.js';
import type { FdSocket, PeerCred } from '../native/unix-socket.js';
import { ringwireError } from '../errors.js';
import {
  DisconnectCode, HELLO_FLAG_SECRET_REQUIRED, InitView, Msg, PROTOCOL_VERSION, SECRET_BYTES,
  encodeAck, encodeConnected, encodeHello, type Init,
} from './protocol.js';
import { FrameQueue, RingSet, handshakeError, unexpected } from './handshake.js';
import { ShmLink, type PeerIdentity } from './link.js';

/** The peer as the policy sees it: kernel credentials plus what the peer said in Init. */
export interface PeerInfo extends PeerIdentity {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/** Allow rules. A peer passes when it matches uids or gids (if given) and the callback agrees. */
export interface AllowPolicy {
  /** Kernel-checked peer uids/gids (UNIX and inproc); listen() on tcp:// rejects them (no credentials there). */
  uids?: readonly number[];
  gids?: readonly number[];
  /** true allows; false or a string refuses (the string is the reason the peer is told). */
  check?: (peer: PeerInfo) => boolean | string | Promise<boolean | string>;
}

/**
 * The largest ring a client may ask for unless the server says otherwise. The server creates the
 * server-to-client ring at the client's chosen size, so this times maxConnections bounds what
 * clients can make a server map (pages are only used as the server writes them).
 */
export const DEFAULT_MAX_RING_BYTES = 4 << 20;

export interface HandshakeLimits {
  minRingBytes: number;
  maxRingBytes: number;
}

export interface ServerHandshakeOptions extends HandshakeLimits {
  name: string;
  secret: Uint8Array | undefined;
  allow: AllowPolicy | undefined;
  timeoutMs: number;
  spin: number | undefined;
  address: string;
}

export function checkLimits(min: number, max: number): void {
  for (const [what, v] of [['minRingBytes', min], ['maxRingBytes', max]] as const) {
    if (!isPowerOfTwo(v) || v < MIN_CAPACITY || v > MAX_CAPACITY) throw ringwireError('ERR_OUT_OF_RANGE', `${what} must be a power of two from ${MIN_CAPACITY} to ${MAX_CAPACITY}, got ${v}`);
  }
  if (min > max) throw ringwireError('ERR_OUT_OF_RANGE', `minRingBytes (${min}) exceeds maxRingBytes (${max})`);
}

export function secretBytes(secret: string | Uint8Array | undefined): Uint8Array | undefined {
  if (secret === undefined) return undefined;
  const bytes = typeof secret === 'string' ? Buffer.from(secret) : secret;
  if (!(bytes instanceof Uint8Array)) throw ringwireError('ERR_INVALID_ARG', 'secret must be a string or Uint8Array');
  if (bytes.length === 0 || bytes.length > SECRET_BYTES) throw ringwireError('ERR_OUT_OF_RANGE', `secret must be 1..${SECRET_BYTES} bytes, got ${bytes.length}`);
  return bytes;
}

export function checkAllowPolicy(allow: AllowPolicy | undefined): void {
  if (allow === undefined) return;
  if (typeof allow !== 'object' || allow === null) throw ringwireError('ERR_INVALID_ARG', 'allow must be an object { uids?, gids?, check? }');
  for (const key of ['uids', 'gids'] as const) {
    const list = allow[key];
    if (list !== undefined && (!Array.isArray(list) || !list.every((n) => Number.isInteger(n) && n >= 0))) {
      throw ringwireError('ERR_INVALID_ARG', `allow.${key} must be an array of non-negative integers`);
    }
  }
  if (allow.check !== undefined && typeof allow.check !== 'function') throw ringwireError('ERR_INVALID_ARG', 'allow.check must be a function');
}

/** Null when allowed, else the reason told to the peer. */
async function refusal(allow: AllowPolicy | undefined, peer: PeerInfo): Promise<string | null> {
  if (!allow) return null;
  const byUid = allow.uids?.includes(peer.uid);
  const byGid = allow.gids?.includes(peer.gid);
  if ((allow.uids || allow.gids) && !byUid && !byGid) return `uid ${peer.uid} / gid ${peer.gid} is not allowed`;
  if (!allow.check) return null;
  let verdict: boolean | string;
  try {
    verdict = await allow.check(peer);
  } catch (err) {
    return `policy check failed: ${(err as Error)?.message ?? String(err)}`;
  }
  if (verdict === true) return null;
  return typeof verdict === 'string' && verdict.length > 0 ? verdict : 'refused by policy';
}

function initProblem(init: Init, o: ServerHandshakeOptions): [DisconnectCode, string] | null {
  if (init.version < 1 || init.version > PROTOCOL_VERSION) return [DisconnectCode.Version, `protocol version ${init.version} is not supported (1..${PROTOCOL_VERSION})`];
  if (init.ringsPerDirection !== 1) return [DisconnectCode.Limit, `${init.ringsPerDirection} rings per direction asked; this server allows 1`];
  for (const [what, v] of [['client-to-server', init.clientToServerBytes], ['server-to-client', init.serverToClientBytes]] as const) {
    if (!isPowerOfTwo(v) || v < o.minRingBytes || v > o.maxRingBytes) return [DisconnectCode.Limit, `${what} ring of ${v} bytes is outside ${o.minRingBytes}..${o.maxRingBytes} or not a power of two`];
  }
  if (o.secret) {
    const given = Buffer.from(init.secret);
    if (given.length !== o.secret.length || !timingSafeEqual(given, o.secret)) return [DisconnectCode.Secret, 'wrong or missing secret'];
  }
  return null;
}

/** Runs the server side on an accepted socket; resolves with the open link or rejects with a HandshakeError (after telling the peer). */
export async function serverHandshake(sock: FdSocket, cred: PeerCred, o: ServerHandshakeOptions): Promise<ShmLink> {
  const frames = new FrameQueue(sock, o.timeoutMs);
  let rings: RingSet | undefined;
  try {
    sock.send(encodeHello({
      minVersion: 1, maxVersion: PROTOCOL_VERSION, minRingBytes: o.minRingBytes, maxRingBytes: o.maxRingBytes,
      maxRingsPerDirection: 1, flags: o.secret ? HELLO_FLAG_SECRET_REQUIRED : 0, name: o.name,
    }));
    const f = await frames.next('Init');
    if (f.type !== Msg.Init) unexpected(f, 'Init');
    const view = new InitView(f.body);
    if (!view.isValid()) throw handshakeError('ERR_HANDSHAKE', DisconnectCode.Protocol, 'Init has reserved bytes set, an over-long field or a name that is not UTF-8');
    const init = view.toObject();
    const problem = initProblem(init, o);
    if (problem) throw handshakeError(problem[0] === DisconnectCode.Secret ? 'ERR_POLICY' : 'ERR_HANDSHAKE', problem[0], problem[1]);
    const peer: PeerInfo = { ...cred, name: init.name };
    const refused = await refusal(o.allow, peer);
    if (refused !== null) throw handshakeError('ERR_POLICY', DisconnectCode.Policy, refused);
    // A peer that flooded us during the policy check gets no rings created for it.
    if (frames.failure) throw frames.failure;
    rings = new RingSet('server', init.clientToServerBytes, init.serverToClientBytes);
    sock.send(encodeAck({ ackedType: Msg.Init, direction: 0, side: 0, ringIndex: 0 }));
    await rings.exchange(sock, frames);
    const c = await frames.next('Connect');
    if (c.type !== Msg.Connect) unexpected(c, 'Connect');
    const { producer, consumer, bells, wake } = rings.open(o.spin);
    rings = undefined;
    frames.dispose();
    try {
      // A peer that died after Connect fails this send; the bells are ours alone until the link takes them.
      sock.send(encodeConnected());
    } catch (err) {
      for (const b of bells) b.close();
      throw handshakeError('ERR_PEER_GONE', undefined, `the peer went away before Connected could be sent: ${(err as Error).message}`, err);
    }
    return new ShmLink(sock, producer, consumer, bells, wake, peer, o.address, `pid ${cred.pid}`);
  } catch (err) {
    frames.dispose();
    rings?.dispose();
    throw err;
  }
}
