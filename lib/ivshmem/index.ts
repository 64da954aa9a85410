export * from './protocol.js';
export { IvshmemServer, HOST_PEER_ID, type IvshmemServerOptions, type IvshmemPeerInfo } from './server.js';
export { IvshmemClient, type IvshmemClientOptions } from './client.js';
export * from './layout.js';
export { IvshmemChannel, DATA_VECTOR, SPACE_VECTOR, type ChannelEnds } from './channel.js';
export { IvshmemHost, type IvshmemHostOptions } from './host.js';
export { IvshmemPeer } from './peer.js';
export { IvshmemGuest, findIvshmemDevices, PCI_DEVICES, type IvshmemGuestOptions } from './guest.js';
