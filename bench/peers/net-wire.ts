/**
 * The tiny control protocol between the bench harness and its net peer (bench/peers/net-peer.ts).
 * Every connection starts with one header; the peer answers READY and then either echoes every
 * byte back (ping-pong) or swallows bytes and sends one ACK byte per completed burst (stream).
 * Messages carry no framing: a stream socket's receiver counts bytes, which flatters net a little
 * (a real protocol would add a length prefix and a parser).
 */
export const MODE_ECHO = 0x45; // 'E'
export const MODE_SINK = 0x53; // 'S', followed by the burst length in bytes as f64 LE
export const READY = 0x52; // 'R'
export const ACK = 0x41; // 'A'
export const SINK_HEADER_BYTES = 9;
