/**
 * A connected channel pair for the channel tests: a server on a fresh address of the chosen
 * transport, one client, and a `done()` that destroys both ends and closes the server.
 */
import { connect, listen, type Channel, type ChannelServer, type ConnectOptions, type ServerOptions } from '../../lib/index.js';

export type Transport = 'unix' | 'tcp' | 'inproc';

let counter = 0;

/** A fresh address: an abstract name unique to this process, a loopback port 0, or an inproc name. */
export function addressFor(transport: Transport): string {
  const name = `ringwire-test-${process.pid}-${counter++}`;
  return transport === 'unix' ? `@${name}` : transport === 'tcp' ? 'tcp://127.0.0.1:0' : `inproc://${name}`;
}

export interface PairOptions {
  transport?: Transport;
  /** Sees the server's side first (to set handlers before any message arrives). */
  onServer?: (ch: Channel) => void;
  /** The client's options; by default the same object as the server's. */
  client?: ConnectOptions;
}

export interface ChannelPair {
  /** The server's side. */
  a: Channel;
  /** The client's side. */
  b: Channel;
  server: ChannelServer;
  /** The address the client connected to (a tcp port 0 resolved). */
  address: string;
  done(): Promise<void>;
}

export async function channelPair(opts: ServerOptions & ConnectOptions = {}, pairOpts: PairOptions = {}): Promise<ChannelPair> {
  let resolveA!: (c: Channel) => void;
  const aP = new Promise<Channel>((r) => { resolveA = r; });
  const server = await listen(addressFor(pairOpts.transport ?? 'unix'), opts, (ch) => { pairOpts.onServer?.(ch); resolveA(ch); });
  const address = server.address!;
  const b = await connect(address, pairOpts.client ?? opts);
  const a = await aP;
  return {
    a, b, server, address,
    done: async () => {
      a.destroy();
      b.destroy();
      await server.close();
    },
  };
}
