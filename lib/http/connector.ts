/**
 * The stream path for undici: HTTP/1 bytes over a ringwire channel Duplex, for code that needs an
 * undici Client/Pool/Agent of its own (`new Client(origin, { connect: duplexConnector(address) })`).
 * Typed as undici's connector, which asks for a net.Socket: the Duplex has the parts of
 * net.Socket that undici uses (lib/channel/duplex.ts). The record mapping (RingwireDispatcher)
 * is the faster path; this one carries any HTTP/1 feature byte for byte (upgrade included).
 */
import type { Socket } from 'node:net';
import type { buildConnector } from 'undici';
import { connect, type ConnectOptions } from '../channel/connect.js';
import { createDuplex } from '../channel/duplex.js';

export function duplexConnector(address: string, opts: ConnectOptions = {}): buildConnector.connector {
  return (_options, callback) => {
    connect(address, opts).then(
      (channel) => callback(null, createDuplex(channel) as unknown as Socket),
      (err: Error) => callback(err, null),
    );
  };
}
