// A WebAssembly peer (AssemblyScript) whose linear memory holds ringwire rings: it consumes typed
// order requests from one SPSC ring and produces typed replies in place in another, reading and
// writing the canonical ABI layout through the generated accessors in ./order.ts. The ring logic
// follows docs/layout.md and docs/memory-ordering.md (every atomic is seq-cst, as wasm atomics are).
//
// Reply: id + 1, price doubled, fills reversed, everything else copied. Type 1 is an order, type 2
// ends the service (it replies type 2 with [handled u32, parks u32]), a corrupt order gets an
// empty type 3 reply. Build: asc wasm/order-echo.ts --runtime stub --importMemory --sharedMemory
// --initialMemory 64 --maximumMemory 64 --enable threads -O3 (test/89 does it).
import {
  ORDER_SIZE, order_fills, order_fills_len, order_get_account, order_get_active, order_get_flags, order_get_id,
  order_get_price, order_get_qty, order_get_side, order_get_ts, order_get_venue, order_set_account, order_set_active,
  order_set_fills, order_set_flags, order_set_id, order_set_price, order_set_qty, order_set_side, order_set_symbol,
  order_set_ts, order_set_venue, order_symbol, order_symbol_len,
} from './order';

// Doorbells are the host's: between threads Atomics.wait/notify on the word at `bell`, between
// processes eventfds (the host ignores `bell` then). park() returns after a ring or at most 1 s.
// @ts-ignore: decorator
@external("env", "park") declare function park(bell: usize, seen: i32): void;
// @ts-ignore: decorator
@external("env", "ring") declare function hostRing(bell: usize): void;

const OFF_CAPACITY: usize = 8;
const OFF_TAIL: usize = 64;
const OFF_HEAD: usize = 64;
const OFF_CONSUMER_WAITING: usize = 128;
const DATA: usize = 192;
const PRESENT: u32 = 0x80000000;
const PADDING: u32 = 0x80000000;
const SLACK: u32 = 8;
const CORRUPT: u32 = 0xffffffff;

function recordBytes(len: u32): u32 {
  return (8 + len + 7) & ~7;
}


// Reply ring producer state (one service, one producer).
let outP: usize = 0;
let outC: usize = 0;
let outBell: usize = 0;
let outCap: u32 = 0;
let outTail: u32 = 0;
let outHead: u32 = 0;

function fits(bytes: u32): bool {
  if (<i32>(outTail - outHead) <= <i32>(outCap - SLACK - bytes)) return true;
  outHead = atomic.load<u32>(outC + OFF_HEAD);
  return <i32>(outTail - outHead) <= <i32>(outCap - SLACK - bytes);
}

/** Claims a reply record; returns the payload address (the caller spins while it is 0: full). */
function claim(len: u32, type: u32): usize {
  const rec = recordBytes(len);
  let off = outTail & (outCap - 1);
  if (off + rec > outCap) {
    const pad = outCap - off;
    if (!fits(pad + rec)) return 0;
    // A padding record, published on its own (word 0 last, seq-cst).
    store<u32>(outP + DATA + off, PADDING, 4);
    store<u32>(outP + DATA, 0);
    atomic.store<u32>(outP + DATA + off, (pad - 8) | PRESENT);
    outTail += pad;
    off = 0;
  }
  if (!fits(rec)) return 0;
  store<u32>(outP + DATA + off, type, 4);
  return outP + DATA + off + 8;
}

/** Publishes the record claimed at `payload`: zero the next slot, then store word 0 (seq-cst). */
function commit(payload: usize, len: u32): void {
  const rec = recordBytes(len);
  outTail += rec;
  store<u32>(outP + DATA + (outTail & (outCap - 1)), 0);
  atomic.store<u32>(payload - 8, len | PRESENT);
  atomic.store<u32>(outP + OFF_TAIL, outTail);
  if (atomic.load<u32>(outC + OFF_CONSUMER_WAITING) != 0) hostRing(outBell);
}

function reply(len: u32, type: u32): usize {
  let dst: usize = 0;
  while ((dst = claim(len, type)) == 0) {} // Node drains replies as they come: the spin is short
  memory.fill(dst, 0, len);
  return dst;
}

/** The reply to a valid order at `m` (len bytes): built in place in the reply ring. */
function answer(m: usize, len: u32): void {
  const symbol = order_symbol(m, len, m);
  const fills = order_fills(m, len, m);
  if (len < ORDER_SIZE || symbol == 0 || fills == 0 || order_get_side(m) < 0) {
    commit(reply(0, 3), 0);
    return;
  }
  const sn = order_symbol_len(m);
  const fn = order_fills_len(m);
  const size = ((ORDER_SIZE + sn + 3) & ~3) + fn * 4;
  const r = reply(size, 1);
  order_set_id(r, order_get_id(m) + 1);
  order_set_ts(r, order_get_ts(m));
  order_set_account(r, order_get_account(m));
  order_set_price(r, order_get_price(m) * 2);
  order_set_qty(r, order_get_qty(m));
  order_set_side(r, order_get_side(m));
  order_set_flags(r, order_get_flags(m));
  order_set_venue(r, order_get_venue(m));
  order_set_active(r, order_get_active(m));
  memory.copy(r + ORDER_SIZE, symbol, sn);
  order_set_symbol(r, r, r + ORDER_SIZE, sn);
  const f = r + ((ORDER_SIZE + sn + 3) & ~3);
  for (let i: u32 = 0; i < fn; i++) store<u32>(f + i * 4, load<u32>(fills + (fn - 1 - i) * 4));
  order_set_fills(r, r, f, fn);
  commit(r, size);
}

/**
 * Serves until a type 2 request. inP/inC: the request ring's producer and consumer blocks; outP/outC
 * the reply ring's; inBell/replyBell: doorbell words (Node's AtomicsDoorbell); spin: polls of an
 * empty ring before parking. Returns the orders
 * handled, or 0xffffffff when a request ring broke an invariant.
 */
export function serve(inP: usize, inC: usize, inBell: usize, replyP: usize, replyC: usize, replyBell: usize, spin: u32): u32 {
  outP = replyP;
  outC = replyC;
  outBell = replyBell;
  outCap = load<u32>(replyP + OFF_CAPACITY);
  outTail = atomic.load<u32>(replyP + OFF_TAIL);
  outHead = atomic.load<u32>(replyC + OFF_HEAD);
  const cap = load<u32>(inP + OFF_CAPACITY);
  if (cap != load<u32>(inC + OFF_CAPACITY) || (cap & (cap - 1)) != 0 || cap < 64) return CORRUPT;
  let pos = atomic.load<u32>(inC + OFF_HEAD);
  let handled: u32 = 0;
  let parks: u32 = 0;
  let idle: u32 = 0;
  for (;;) {
    const off = pos & (cap - 1);
    const word = atomic.load<u32>(inP + DATA + off);
    if (word == 0) {
      if (++idle <= spin) continue;
      idle = 0;
      // Sleep: snapshot the bell, count ourselves waiting (seq-cst), re-check, then park (1 s cap).
      const seen = atomic.load<i32>(inBell);
      atomic.add<u32>(inC + OFF_CONSUMER_WAITING, 1);
      if (atomic.load<u32>(inP + DATA + off) == 0) {
        park(inBell, seen);
        parks++;
      }
      atomic.sub<u32>(inC + OFF_CONSUMER_WAITING, 1);
      continue;
    }
    idle = 0;
    if ((word & PRESENT) == 0) return CORRUPT;
    const len = word & ~PRESENT;
    const type = load<u32>(inP + DATA + off, 4);
    const rec = type == PADDING ? len + 8 : recordBytes(len);
    if (len > cap || off + rec > cap || (type == PADDING && off + rec != cap) || (type > 0x7fffffff && type != PADDING)) return CORRUPT;
    if (type == 2) {
      const r = reply(8, 2);
      store<u32>(r, handled);
      store<u32>(r, parks, 4);
      commit(r, 8);
      pos += rec;
      atomic.store<u32>(inC + OFF_HEAD, pos);
      return handled;
    }
    if (type == 1) {
      answer(inP + DATA + off + 8, len);
      handled++;
    }
    pos += rec;
    // Release (seq-cst): done with the request. Node's producer in test/89 and the bench never
    // parks for space (the rings are far larger than what is in flight), so no space bell is rung.
    atomic.store<u32>(inC + OFF_HEAD, pos);
  }
  return CORRUPT; // unreachable: the loop returns
}
