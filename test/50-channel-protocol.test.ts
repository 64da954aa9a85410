// Channel addresses and the handshake codec: every message round-trips, and every malformed shape
// (short, reserved bits, wrong length, bad UTF-8, wrong fd count) is rejected by isValid().
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseAddress } from '../lib/channel/address.js';
import {
  AckView, AddRingView, DisconnectCode, DisconnectView, Frame, HelloView, InitView, Msg,
  encodeAck, encodeAddRing, encodeConnect, encodeDisconnect, encodeHello, encodeInit, MAX_REASON_BYTES,
} from '../lib/channel/protocol.js';
import { isRingwireError } from '../lib/errors.js';
import { prng, testSeed } from './helpers/index.js';

test('addresses: path, abstract, inproc, tcp', () => {
  assert.equal(parseAddress('/run/x.sock'), { kind: 'unix', path: '/run/x.sock', text: '/run/x.sock' });
  assert.equal(parseAddress('rel.sock').kind, 'unix');
  assert.equal(parseAddress('@svc'), { kind: 'abstract', name: 'svc', text: '@svc' });
  assert.equal(parseAddress('inproc://a/b'), { kind: 'inproc', name: 'a/b', text: 'inproc://a/b' });
  assert.equal(parseAddress('tcp://127.0.0.1:7000'), { kind: 'tcp', host: '127.0.0.1', port: 7000, text: 'tcp://127.0.0.1:7000' });
  assert.equal(parseAddress('tcp://[::1]:0'), { kind: 'tcp', host: '::1', port: 0, text: 'tcp://[::1]:0' });
});

test('addresses: bad input is a typed error', () => {
  for (const bad of ['', '@', 'inproc://', 'tcp://host', 'tcp://h:99999', 'tcp://:80', 'udp://x:1', 'a\0b', 42 as unknown as string]) {
    try {
      parseAddress(bad);
      assert.unreachable(`accepted ${JSON.stringify(bad)}`);
    } catch (err) {
      assert.ok(isRingwireError(err, 'ERR_INVALID_ARG') || isRingwireError(err, 'ERR_OUT_OF_RANGE'), String(err));
    }
  }
});

function parse(buf: Buffer, fds: number[] = []): Frame {
  const f = Frame.parse(buf, fds);
  assert.ok(f, 'header parses');
  assert.ok(f!.isValid(), 'frame is valid');
  return f!;
}

test('codec: every message round-trips', () => {
  const hello = { minVersion: 1, maxVersion: 3, minRingBytes: 4096, maxRingBytes: 1 << 20, maxRingsPerDirection: 1, flags: 1, name: 'srv ✓' };
  const h = new HelloView(parse(encodeHello(hello)).body);
  assert.ok(h.isValid());
  assert.equal(h.toObject(), hello);
  const init = { version: 1, ringsPerDirection: 1, clientToServerBytes: 65536, serverToClientBytes: 4096, name: 'client', secret: new Uint8Array([1, 2, 3]) };
  const i = new InitView(parse(encodeInit(init)).body);
  assert.ok(i.isValid());
  assert.equal(i.toObject(), init);
  const add = { direction: 1 as const, side: 0 as const, ringIndex: 0, ringBytes: 8192 };
  const a = new AddRingView(parse(encodeAddRing(add), [5, 6]).body);
  assert.ok(a.isValid());
  assert.equal(a.toObject(), add);
  const ack = { ackedType: Msg.AddRing, direction: 1, side: 0, ringIndex: 0 };
  assert.equal(new AckView(parse(encodeAck(ack)).body).toObject(), ack);
  assert.is(parse(encodeConnect()).type, Msg.Connect);
  const d = new DisconnectView(parse(encodeDisconnect(DisconnectCode.Policy, 'uid 7 is not allowed')).body);
  assert.ok(d.isValid());
  assert.equal(d.toObject(), { code: DisconnectCode.Policy, reason: 'uid 7 is not allowed' });
});

test('codec: a long reason is cut at a character boundary and stays valid', () => {
  const d = new DisconnectView(parse(encodeDisconnect(DisconnectCode.Protocol, 'é'.repeat(300))).body);
  assert.ok(d.isValid());
  assert.ok(Buffer.byteLength(d.reason!) <= MAX_REASON_BYTES);
  assert.ok(/^é+$/.test(d.reason!));
});

test('codec: malformed headers and bodies are rejected', () => {
  assert.is(Frame.parse(Buffer.alloc(4), []), null, 'short header');
  const reserved = encodeConnect();
  reserved[2] = 1;
  assert.is(Frame.parse(reserved, []), null, 'reserved header bits');
  const long = Buffer.concat([encodeConnect(), Buffer.alloc(1)]);
  assert.is(Frame.parse(long, []), null, 'length field disagrees with the datagram');
  const unknown = encodeConnect();
  unknown[0] = 99;
  assert.not.ok(Frame.parse(unknown, [])!.isValid(), 'unknown type');
  assert.not.ok(Frame.parse(encodeAddRing({ direction: 0, side: 0, ringIndex: 0, ringBytes: 4096 }), [3])!.isValid(), 'AddRing needs 2 fds');
  assert.not.ok(Frame.parse(encodeConnect(), [3])!.isValid(), 'fds on a message that carries none');
  const add = encodeAddRing({ direction: 0, side: 0, ringIndex: 0, ringBytes: 4096 });
  add[8 + 0] = 2;
  assert.not.ok(new AddRingView(Frame.parse(add, [3, 4])!.body).isValid(), 'direction 2');
  const init = encodeInit({ version: 1, ringsPerDirection: 1, clientToServerBytes: 4096, serverToClientBytes: 4096, name: 'ab', secret: new Uint8Array(0) });
  init[8 + 16] = 0xff;
  assert.not.ok(new InitView(Frame.parse(init, [])!.body).isValid(), 'name is not UTF-8');
  const init2 = encodeInit({ version: 1, ringsPerDirection: 1, clientToServerBytes: 4096, serverToClientBytes: 4096, name: 'ab', secret: new Uint8Array(0) });
  init2[8 + 16 + 64] = 1;
  assert.not.ok(new InitView(Frame.parse(init2, [])!.body).isValid(), 'secret bytes beyond secretLength');
  const hello = encodeHello({ minVersion: 2, maxVersion: 1, minRingBytes: 4096, maxRingBytes: 4096, maxRingsPerDirection: 1, flags: 0, name: '' });
  assert.not.ok(new HelloView(Frame.parse(hello, [])!.body).isValid(), 'min version above max');
  const disc = encodeDisconnect(DisconnectCode.Normal, 'bye');
  disc[8 + 4] = 200;
  assert.not.ok(new DisconnectView(Frame.parse(disc, [])!.body).isValid(), 'reason length past the datagram');
});

test('codec: random datagrams never throw from parse or isValid', () => {
  const rnd = prng(testSeed());
  for (let n = 0; n < 5000; n++) {
    const len = rnd.int(0, 200);
    const buf = Buffer.from(rnd.bytes(len));
    if (len >= 8 && rnd.next() < 0.7) {
      buf.writeUInt16LE(rnd.int(1, 8), 0);
      buf.writeUInt16LE(0, 2);
      buf.writeUInt32LE(len - 8, 4);
    }
    const f = Frame.parse(buf, []);
    if (!f || !f.isValid()) continue;
    const views = { [Msg.Hello]: HelloView, [Msg.Init]: InitView, [Msg.AddRing]: AddRingView, [Msg.Ack]: AckView, [Msg.Disconnect]: DisconnectView } as Record<number, new (b: DataView) => { isValid(): boolean }>;
    const View = views[f.type];
    if (View) new View(f.body).isValid();
  }
});

test.run();
