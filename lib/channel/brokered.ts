/**
 * A channel over an already-connected SOCK_SEQPACKET socket, such as one end of a socketpair a
 * broker (the node agent, lib/agent/) handed over: the ordinary handshake (docs/protocol.md) runs on
 * it, one side in the server role, so each peer creates and seals its own ring memory as with
 * listen()/connect(). The socket's SO_PEERCRED names whoever made the pair, not the peer, so the
 * caller says who the peer is (the broker read that from the kernel).
 */
import { ringwireError } from '../errors.js';
import { FdSocket, type PeerCred } from '../native/unix-socket.js';
import { closeFd } from '../native/native.js';
import { channelOnLink, type Channel } from './channel.js';
import type { ChannelOptions } from './options.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, abandonHandshake } from './handshake.js';
import { clientHandshake } from './handshake-client.js';
import { DEFAULT_MAX_RING_BYTES, checkLimits, serverHandshake } from './handshake-server.js';
import { MAX_HANDSHAKE_MESSAGE } from './protocol.js';
import type { Link } from './link.js';

export interface SocketChannelOptions extends ChannelOptions {
  role: 'client' | 'server';
  /** Who the peer is, as the broker saw it; becomes channel.peer (with `name`). */
  peer: PeerCred;
  /** Announced name (client: in Init; server: in Hello). */
  name: string;
  /** A description of where the channel goes, for channel.remoteAddress (e.g. 'svc:orders'). */
  address: string;
  /** Client: ring sizes wanted; server: the limits. Defaults as connect() and listen(). */
  sendRingBytes?: number;
  receiveRingBytes?: number;
  minRingBytes?: number;
  maxRingBytes?: number;
  handshakeTimeoutMs?: number;
}

const DEFAULT_RING_BYTES = 256 * 1024;

/** Takes ownership of `fd` (closed on failure) and resolves with the open channel. */
export async function channelOverSocket(fd: number, o: SocketChannelOptions): Promise<Channel> {
  let sock: FdSocket;
  try {
    sock = FdSocket.fromFd(fd, { maxMessageSize: MAX_HANDSHAKE_MESSAGE, maxFds: 2 });
  } catch (err) {
    closeFd(fd);
    throw err;
  }
  sock.on('error', () => {});
  const timeoutMs = o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  let link: Link;
  try {
    if (o.role === 'client') {
      const send = o.sendRingBytes ?? DEFAULT_RING_BYTES;
      const receive = o.receiveRingBytes ?? DEFAULT_RING_BYTES;
      link = await clientHandshake(sock, o.peer, {
        name: o.name, secret: undefined, sendRingBytes: send, receiveRingBytes: receive,
        maxRingBytes: o.maxRingBytes ?? Math.max(DEFAULT_MAX_RING_BYTES, send, receive), timeoutMs, spin: o.spin, address: o.address,
      });
    } else if (o.role === 'server') {
      const minRingBytes = o.minRingBytes ?? 4096;
      const maxRingBytes = o.maxRingBytes ?? DEFAULT_MAX_RING_BYTES;
      checkLimits(minRingBytes, maxRingBytes);
      link = await serverHandshake(sock, o.peer, {
        name: o.name, secret: undefined, allow: undefined, timeoutMs, spin: o.spin, minRingBytes, maxRingBytes, address: o.address,
      });
    } else {
      throw ringwireError('ERR_INVALID_ARG', `role must be 'client' or 'server', got ${String(o.role)}`);
    }
  } catch (err) {
    abandonHandshake(sock, err);
    throw err;
  }
  return channelOnLink(link, o);
}
