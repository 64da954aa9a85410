/**
 * The other process of test/89's cross-process case: a plain ringwire peer that creates its ring
 * halves (sealed memfds, eventfds), trades fds with the wasm host over a SEQPACKET socket, sends
 * typed orders and checks the typed replies the wasm module built. argv: SOCKET COUNT CAPACITY.
 * Prints "ok <replies>" on success.
 */
import { FdSocket } from '../../lib/native/unix-socket.js';
import { FdInbox, attachSpscConsumer, attachSpscProducer, createSpscConsumerHalf, createSpscProducerHalf } from '../../lib/process/process-ring.js';
import { OrderView, sendOrder, type Order } from '../../bench/codec-order.js';

const [path, countArg, capArg] = process.argv.slice(2) as [string, string, string];
const count = Number(countArg);
const capacity = Number(capArg);
const sock = await FdSocket.connect(path);
const inbox = new FdInbox(sock);
const req = createSpscProducerHalf(capacity, 'wasm-req');
const rep = createSpscConsumerHalf(capacity, 'wasm-rep');
sock.send(Buffer.from('hello'), [...req.fds, ...rep.fds]);
const answer = await inbox.next(10_000);
const [reqConsumerBlock, reqDataBell, repProducerBlock, repSpaceBell] = answer.fds as [number, number, number, number];
const requests = attachSpscProducer(req, [reqConsumerBlock, reqDataBell]).ring;
const replies = attachSpscConsumer(rep, [repProducerBlock, repSpaceBell]).ring;
const view = new OrderView();
for (let i = 0; i < count; i++) {
  const o: Order = { id: i, ts: 7, account: i, price: 1.25, qty: 2, side: i & 1, flags: 3, venue: 4, active: true, symbol: i % 2 ? 'Zürich' : 'ACME', fills: [i, i + 1] };
  if (!sendOrder(requests, o, 1)) throw new Error('request ring full');
  if (!(await replies.waitForData({ timeoutMs: 10_000 }))) throw new Error(`no reply to order ${i}`);
  replies.read();
  const v = view.wrap(replies.data, replies.offset, replies.length);
  if (replies.type !== 1 || v.idAsNumber() !== i + 1 || v.price !== 2.5 || v.symbol !== o.symbol || v.fills.get(0) !== i + 1) {
    throw new Error(`bad reply to order ${i}: ${JSON.stringify(v.toValue(), (_, x) => (typeof x === 'bigint' ? String(x) : x))}`);
  }
  replies.release();
}
requests.send(new Uint8Array(0), 2);
if (!(await replies.waitForData({ timeoutMs: 10_000 }))) throw new Error('no final reply');
replies.read();
console.log(`ok ${count} ${replies.stats().parks}`);
process.exit(0);
