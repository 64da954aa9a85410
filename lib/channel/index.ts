/** The channel API: listen/connect/createServer over UNIX sockets, abstract names, worker threads and TCP. */
export { parseAddress, type Address } from './address.js';
export { Channel, type ChannelOptions, type ChannelStats, type SendOptions, type RequestHandler } from './channel.js';
export type { RequestOptions } from './requests.js';
export type { PeerIdentity } from './link.js';
export type { PeerInfo, AllowPolicy } from './handshake-server.js';
export { ChannelServer, createServer, listen, type ServerOptions, type Refusal } from './server.js';
export { connect, type ConnectOptions } from './connect.js';
export { ChannelDuplex, createDuplex, agentConnection, type DuplexOptions } from './duplex.js';
export { PROTOCOL_VERSION, DisconnectCode } from './protocol.js';
