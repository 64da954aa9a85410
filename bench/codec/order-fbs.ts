/**
 * The bench's order record as a FlatBuffers table, written as `flatc --ts` would emit it for
 *
 *   enum Side : byte { Buy, Sell }
 *   table Order { id: ulong; ts: ulong; account: uint; price: double; qty: double; side: Side;
 *                 flags: ubyte; venue: ushort; active: bool; symbol: string; fills: [uint]; }
 *
 * (flatc is not an npm package; the accessors below use the `flatbuffers` runtime exactly as its
 * generated code does: vtable lookups through __offset, strings through __string.)
 */
import { Builder, ByteBuffer } from 'flatbuffers';

export interface OrderValue {
  id: number; ts: number; account: number; price: number; qty: number; side: number; flags: number; venue: number; active: boolean; symbol: string; fills: readonly number[];
}

export class FbOrder {
  bb: ByteBuffer | null = null;
  bb_pos = 0;
  __init(i: number, bb: ByteBuffer): FbOrder {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsOrder(bb: ByteBuffer, obj: FbOrder): FbOrder {
    return obj.__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  id(): bigint { const o = this.bb!.__offset(this.bb_pos, 4); return o ? this.bb!.readUint64(this.bb_pos + o) : 0n; }
  ts(): bigint { const o = this.bb!.__offset(this.bb_pos, 6); return o ? this.bb!.readUint64(this.bb_pos + o) : 0n; }
  account(): number { const o = this.bb!.__offset(this.bb_pos, 8); return o ? this.bb!.readUint32(this.bb_pos + o) : 0; }
  price(): number { const o = this.bb!.__offset(this.bb_pos, 10); return o ? this.bb!.readFloat64(this.bb_pos + o) : 0; }
  qty(): number { const o = this.bb!.__offset(this.bb_pos, 12); return o ? this.bb!.readFloat64(this.bb_pos + o) : 0; }
  side(): number { const o = this.bb!.__offset(this.bb_pos, 14); return o ? this.bb!.readInt8(this.bb_pos + o) : 0; }
  flags(): number { const o = this.bb!.__offset(this.bb_pos, 16); return o ? this.bb!.readUint8(this.bb_pos + o) : 0; }
  venue(): number { const o = this.bb!.__offset(this.bb_pos, 18); return o ? this.bb!.readUint16(this.bb_pos + o) : 0; }
  active(): boolean { const o = this.bb!.__offset(this.bb_pos, 20); return o ? !!this.bb!.readInt8(this.bb_pos + o) : false; }
  symbol(): string | null { const o = this.bb!.__offset(this.bb_pos, 22); return o ? (this.bb!.__string(this.bb_pos + o) as string) : null; }
  fills(index: number): number | null { const o = this.bb!.__offset(this.bb_pos, 24); return o ? this.bb!.readUint32(this.bb!.__vector(this.bb_pos + o) + index * 4) : 0; }
  fillsLength(): number { const o = this.bb!.__offset(this.bb_pos, 24); return o ? this.bb!.__vector_len(this.bb_pos + o) : 0; }

  static build(b: Builder, v: OrderValue): number {
    const symbol = b.createString(v.symbol);
    b.startVector(4, v.fills.length, 4);
    for (let i = v.fills.length - 1; i >= 0; i--) b.addInt32(v.fills[i]!);
    const fills = b.endVector();
    b.startObject(11);
    b.addFieldInt64(0, BigInt(v.id), 0n);
    b.addFieldInt64(1, BigInt(v.ts), 0n);
    b.addFieldFloat64(3, v.price, 0);
    b.addFieldFloat64(4, v.qty, 0);
    b.addFieldInt32(2, v.account, 0);
    b.addFieldOffset(9, symbol, 0);
    b.addFieldOffset(10, fills, 0);
    b.addFieldInt16(7, v.venue, 0);
    b.addFieldInt8(5, v.side, 0);
    b.addFieldInt8(6, v.flags, 0);
    b.addFieldInt8(8, +v.active, 0);
    const end = b.endObject();
    b.finish(end);
    return end;
  }
}
