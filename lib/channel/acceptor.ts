/**
 * The contract between a server and each transport's listener (UNIX, in-process, TCP), and the
 * server's options: in a module of their own so that the listeners need not import server.ts,
 * which imports them.
 */
import type tls from 'node:tls';
import type { RingwireError } from '../errors.js';
import type { PeerInfo, AllowPolicy } from './handshake-server.js';
import type { Link } from './link.js';
import type { ChannelOptions } from './options.js';

export type TlsServerOptions = tls.TlsOptions;

export interface ServerOptions extends ChannelOptions {
  /** Announced to clients in Hello. */
  name?: string;
  /** Clients must present this (1..64 bytes) in Init; compared in constant time. */
  secret?: string | Uint8Array;
  allow?: AllowPolicy;
  /** chmod of the socket file (UNIX paths), applied before the first accept. */
  mode?: number;
  /** Ring sizes a client may ask for (powers of two); default 4 KiB .. 4 MiB. */
  minRingBytes?: number;
  maxRingBytes?: number;
  /** Each handshake step must arrive within this; default 5 s. */
  handshakeTimeoutMs?: number;
  /** Connections (open and handshaking) beyond this are refused with a reason; default 1024. */
  maxConnections?: number;
  /** tcp:// only: serve TLS with these (key and cert required). */
  tls?: TlsServerOptions;
}

/** What 'refused' reports: who (when known) and why. */
export interface Refusal {
  peer: Partial<PeerInfo>;
  reason: string;
  error: RingwireError;
}

/** What each transport's listener provides to the server. */
export interface Acceptor {
  /** The bound address, resolved (a tcp port 0 becomes the real port). */
  readonly address: string;
  close(): void;
}

export interface AcceptorHooks {
  /** True when one more connection may start its handshake. */
  admit(): boolean;
  /** A handshake started (counts toward maxConnections until done() is called). */
  started(): () => void;
  link(link: Link): void;
  refused(r: Refusal): void;
}
