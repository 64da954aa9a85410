/**
 * Codec rows (issue 16): one ~10-field order record (two u64, u32, two f64, an enum, flags, u16,
 * bool, a string and a list of four u32) encoded, sent through an SPSC ring, received and every
 * field read, per message, in one thread: the cost of the codec plus the ring, without a
 * cross-core transfer. `codec-wit` builds in place in the claimed bytes and reads in place through
 * generated accessors (bench/codec-order.wit); `codec-json` stringifies into the claimed bytes and
 * parses; `codec-flatbuffers` builds with a reused Builder and copies the result in, reads in place;
 * `codec-protobufjs` encodes to a buffer, copies it in, and decodes. Only the 64-byte size slot
 * runs (the record's size is fixed: WIT 84 B, JSON 149 B, FlatBuffers 120 B, protobuf about 40 B).
 * Each codec reads the u64 fields the way its API offers: WIT through the allocation-free
 * xAsNumber() getters (exact to 2^53), FlatBuffers as bigint (readUint64), protobufjs as Long, JSON
 * as numbers; every other field is read once per message by every codec.
 */
import { Builder, ByteBuffer } from 'flatbuffers';
import protobuf from 'protobufjs';
import { createThreadRing, openConsumer, openProducer } from '../../lib/ring/thread-ring.js';
import type { RingConsumer, RingProducer } from '../../lib/ring/ring-types.js';
import type { Peer, StreamHandle, Transport } from '../transport.js';
import { OrderView, sendOrder, type Order } from '../codec-order.js';
import { FbOrder, type OrderValue } from '../codec/order-fbs.js';

const RING_BYTES = 1 << 20;
const SIZE_SLOT = 64;

/** The order every codec sends; id changes per message so nothing can be cached. */
function order(): OrderValue & Order {
  return { id: 1, ts: 1_733_300_000_000_000, account: 42, price: 101.25, qty: 3.5, side: 1, flags: 5, venue: 7, active: true, symbol: 'ACME', fills: [10, 20, 30, 40] };
}

interface Codec {
  /** Encodes `v` into the ring and commits; false when full. */
  send(p: RingProducer, v: OrderValue & Order): boolean;
  /** Reads every field of the record at (data, off, len); returns a checksum so nothing is dead code. */
  read(data: Uint8Array, off: number, len: number): number;
}

function witCodec(): Codec {
  const view = new OrderView();
  return {
    send: (p, v) => sendOrder(p, v),
    read(data, off, len) {
      const v = view.wrap(data, off, len);
      const fills = v.fills;
      let sum = 0;
      for (let i = 0; i < fills.length; i++) sum += fills.get(i);
      return sum + v.idAsNumber() + v.tsAsNumber() + v.account + v.price + v.qty + v.side + v.flags + v.venue + (v.active ? 1 : 0) + v.symbol.length;
    },
  };
}

function jsonCodec(): Codec {
  let buf: Buffer | undefined;
  let bufData: Uint8Array | undefined;
  const over = (data: Uint8Array): Buffer => {
    if (data !== bufData) {
      buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      bufData = data;
    }
    return buf!;
  };
  return {
    send(p, v) {
      const s = JSON.stringify(v);
      const n = Buffer.byteLength(s);
      const off = p.claim(n, 1);
      if (off < 0) return false;
      over(p.data).write(s, off, n, 'utf8');
      p.commit();
      return true;
    },
    read(data, off, len) {
      const v = JSON.parse(over(data).toString('utf8', off, off + len)) as OrderValue;
      let sum = 0;
      for (let i = 0; i < v.fills.length; i++) sum += v.fills[i]!;
      return sum + v.id + v.ts + v.account + v.price + v.qty + v.side + v.flags + v.venue + (v.active ? 1 : 0) + v.symbol.length;
    },
  };
}

function flatbuffersCodec(): Codec {
  const b = new Builder(256);
  const fb = new FbOrder();
  let bb: ByteBuffer | undefined;
  let bbData: Uint8Array | undefined;
  return {
    send(p, v) {
      b.clear();
      FbOrder.build(b, v);
      const bytes = b.asUint8Array();
      return p.send(bytes, 1);
    },
    read(data, off) {
      if (data !== bbData) {
        bb = new ByteBuffer(data);
        bbData = data;
      }
      bb!.setPosition(off);
      const o = FbOrder.getRootAsOrder(bb!, fb);
      let sum = 0;
      const n = o.fillsLength();
      for (let i = 0; i < n; i++) sum += o.fills(i)!;
      return sum + Number(o.id()) + Number(o.ts()) + o.account() + o.price() + o.qty() + o.side() + o.flags() + o.venue() + (o.active() ? 1 : 0) + o.symbol()!.length;
    },
  };
}

const PROTO = `syntax = "proto3";
message Order { uint64 id = 1; uint64 ts = 2; uint32 account = 3; double price = 4; double qty = 5;
  enum Side { BUY = 0; SELL = 1; } Side side = 6; uint32 flags = 7; uint32 venue = 8; bool active = 9;
  string symbol = 10; repeated uint32 fills = 11; }`;

function protobufCodec(): Codec {
  const Order = protobuf.parse(PROTO).root.lookupType('Order');
  interface Decoded { id: { toNumber(): number } | number; ts: { toNumber(): number } | number; account: number; price: number; qty: number; side: number; flags: number; venue: number; active: boolean; symbol: string; fills: number[] }
  const num = (x: { toNumber(): number } | number): number => (typeof x === 'number' ? x : x.toNumber());
  return {
    send(p, v) {
      return p.send(Order.encode(v as unknown as Record<string, unknown>).finish(), 1);
    },
    read(data, off, len) {
      const v = Order.decode(data.subarray(off, off + len)) as unknown as Decoded;
      let sum = 0;
      for (let i = 0; i < v.fills.length; i++) sum += v.fills[i]!;
      return sum + num(v.id) + num(v.ts) + v.account + v.price + v.qty + v.side + v.flags + v.venue + (v.active ? 1 : 0) + v.symbol.length;
    },
  };
}

/** One burst: `count` orders encoded and sent, each received and read as the ring fills. */
function codecPeer(codec: Codec): Peer {
  const d = createThreadRing(RING_BYTES);
  const p: RingProducer = openProducer(d);
  const c: RingConsumer = openConsumer(d);
  const v = order();
  let check = 0;
  const drain = (): void => {
    while (c.read() >= 0) check += codec.read(c.data, c.offset, c.length);
    c.release();
  };
  return {
    streams: {
      async stream(size: number, count: number): Promise<StreamHandle | null> {
        if (size !== SIZE_SLOT) return null;
        const burst = (n: number): void => {
          for (let i = 0; i < n; i++) {
            v.id = i;
            if (!codec.send(p, v)) {
              drain();
              i--;
            } else if ((i & 63) === 63) {
              drain();
            }
          }
          drain();
          if (check === 0.5) throw new Error('unreachable: keeps the checksum alive');
        };
        // Untimed warm-up: every codec's hot loop is optimised before the first timed burst.
        for (let i = 0; i < 100; i++) burst(count);
        return {
          messagesPerBurst: count,
          burst: async () => burst(count),
          close: async () => {},
        };
      },
    },
    close: async () => {},
  };
}

function codecTransport(name: string, description: string, make: () => Codec): Transport {
  return { name, distance: 'thread', description, async open() { return codecPeer(make()); } };
}

export const codecWit = codecTransport('codec-wit', 'typed order (WIT, canonical ABI): built in place in claimed ring bytes, every field read in place (one thread)', witCodec);
export const codecJson = codecTransport('codec-json', 'the same order as JSON.stringify into claimed ring bytes, JSON.parse on receipt (one thread)', jsonCodec);
export const codecFlatbuffers = codecTransport('codec-flatbuffers', 'the same order as a FlatBuffers table (npm flatbuffers), copied into the ring, read in place (one thread)', flatbuffersCodec);
export const codecProtobufjs = codecTransport('codec-protobufjs', 'the same order as protobuf (npm protobufjs), copied into the ring, decoded on receipt (one thread)', protobufCodec);
