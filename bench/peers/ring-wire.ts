/**
 * The message types ringwire's bench transports put in a record's type field, and the two loops
 * every ring transport shares: the far side's echo/sink loop and the near side's Peer. A transport
 * only decides where the rings live (threads, processes) and how each side is woken.
 */
import type { RingConsumer, RingProducer } from '../../lib/ring/ring-types.js';
import type { Peer, PingPongRun, StreamHandle } from '../transport.js';

export const MSG_ECHO = 1;
export const MSG_SINK = 2;
/** Ends a stream burst: the sink answers with MSG_ACK once everything before it was consumed. */
export const MSG_MARK = 3;
export const MSG_ACK = 4;
export const MSG_EXIT = 5;
/** A sink record whose every cache line the consumer reads (large messages: the bytes must arrive). */
export const MSG_SINK_TOUCH = 6;

/**
 * Polls a producer makes on a full ring before it parks. The ring transports measure busy-polling
 * senders: parking after a few polls turned every refill of a streamed ring into a futex round
 * trip and capped one-way rates near 2 M msgs/s.
 */
export const PRODUCER_SPIN = 1_000_000;

/** A stalled peer fails the measurement instead of spinning the harness forever. */
const STALL_NS = 10_000_000_000n;

/**
 * The far side: echo MSG_ECHO records back, count MSG_SINK ones, answer MSG_MARK with MSG_ACK,
 * stop at MSG_EXIT. `park` waits (spin, then sleep) until the inbound ring has data.
 */
export function serveRing(inbound: RingConsumer, outbound: RingProducer, park: () => void): void {
  const out = outbound.data;
  const send = (data: Uint8Array, off: number, len: number, type: number): void => {
    let dst = outbound.claim(len, type);
    while (dst < 0) {
      outbound.waitForSpaceSync(len);
      dst = outbound.claim(len, type);
    }
    // Small echoes are copied by hand: a subarray() per message is garbage the echo side would
    // have to collect, and its scavenges land in the round trips being measured.
    if (len <= 256) for (let i = 0; i < len; i++) out[dst + i] = data[off + i]!;
    else out.set(data.subarray(off, off + len), dst);
  };
  let running = true;
  let sink = 0;
  const onRecord = (data: Uint8Array, off: number, len: number, type: number): void => {
    if (type === MSG_SINK_TOUCH) {
      for (let i = off; i < off + len; i += 64) sink ^= data[i]!;
      return;
    }
    if (type === MSG_ECHO) send(data, off, len, MSG_ECHO);
    else if (type === MSG_MARK) send(data, off, 0, MSG_ACK);
    else if (type === MSG_EXIT) running = false;
  };
  while (running) {
    if (inbound.drain(onRecord, 1024) > 0) outbound.commit();
    else park();
  }
  if (sink === 0x1234_5678) console.log('');
}

function spinFor(c: RingConsumer, type: number, t0: bigint): number {
  for (let i = 1; ; i++) {
    const len = c.read();
    if (len >= 0) {
      if (c.type !== type) throw new Error(`bench: expected record type ${type}, got ${c.type}`);
      c.release();
      return len;
    }
    if ((i & 0xffff) === 0 && process.hrtime.bigint() - t0 > STALL_NS) throw new Error('bench: ring peer stalled');
  }
}

function sendSpin(p: RingProducer, msg: Uint8Array, type: number): void {
  while (!p.send(msg, type)) p.waitForSpaceSync(msg.length);
}

/** The near side: ping-pong and stream over an outbound/inbound ring pair. */
export function ringPeer(out: RingProducer, inbound: RingConsumer, close: () => Promise<void>): Peer {
  let closed: Promise<void> | undefined;
  return {
    paced: true,
    async pingpong(size: number, run: PingPongRun) {
      const msg = new Uint8Array(size).fill(0xa5);
      for (;;) {
        const w = run.wait();
        if (w) await w;
        const t0 = process.hrtime.bigint();
        sendSpin(out, msg, MSG_ECHO);
        const len = spinFor(inbound, MSG_ECHO, t0);
        const t1 = process.hrtime.bigint();
        if (len !== size) throw new Error(`bench: echo of ${len} bytes for ${size}`);
        if (!run.record(t0, t1)) return;
      }
    },
    streams: {
      stream: async (size: number, count: number): Promise<StreamHandle | null> => {
        if (size > out.maxMessageSize) return null;
        const msg = new Uint8Array(size).fill(0x5a);
        return {
          messagesPerBurst: count,
          burst: async () => {
            for (let i = 0; i < count; i++) sendSpin(out, msg, MSG_SINK);
            sendSpin(out, msg.subarray(0, 0), MSG_MARK);
            spinFor(inbound, MSG_ACK, process.hrtime.bigint());
          },
          close: async () => undefined,
        };
      },
      'stream-batch64': async (size: number, count: number): Promise<StreamHandle | null> => {
        if ((size + 8) * 64 > out.capacity) return null;
        const rounds = Math.max(1, Math.ceil(count / 64));
        const msg = new Uint8Array(size).fill(0x5a);
        return {
          messagesPerBurst: rounds * 64,
          burst: async () => {
            for (let r = 0; r < rounds; r++) {
              // Claim 64 records in place, write each whole payload there (the copy send() would
              // make), and publish them with one store: only the publication is batched.
              for (let i = 0; i < 64; i++) {
                let off = out.claim(size, MSG_SINK);
                while (off < 0) {
                  out.waitForSpaceSync(size);
                  off = out.claim(size, MSG_SINK);
                }
                out.data.set(msg, off);
              }
              out.commit();
            }
            sendSpin(out, new Uint8Array(0), MSG_MARK);
            spinFor(inbound, MSG_ACK, process.hrtime.bigint());
          },
          close: async () => undefined,
        };
      },
    },
    close() {
      closed ??= (async () => {
        try {
          sendSpin(out, new Uint8Array(0), MSG_EXIT);
        } catch {
          // The peer may already be gone; closing must still release it.
        }
        await close();
      })();
      return closed;
    },
  };
}
