/** Control messages between the harness and bench/peers/port-peer.ts (data are Uint8Arrays). */
export type PortControl = { mode: 'echo' } | { mode: 'sink'; burst: number };
export type PortReply = { kind: 'online'; pinned: boolean } | { kind: 'ready' } | { kind: 'ack' };
