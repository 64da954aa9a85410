// grpc-js's server over ringwire through its public createConnectionInjector(): unary, server-
// streaming, client-streaming and bidi calls arrive over channel Duplexes, side by side with a
// unix: binding of the same server. grpc-js's client takes no foreign connection (docs/http.md), so
// the caller here is gRPC over node:http2 by hand (length-prefixed messages, grpc-status trailer).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { addonAvailable } from '../lib/native/native.js';
import { connect, createDuplex, listen } from '../lib/index.js';
import { requireOrSkip, scratch } from './helpers/index.js';

const run = requireOrSkip('native addon', addonAvailable());

const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
function method(path: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> {
  return { path, requestStream, responseStream, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize };
}

function frame(messages: Buffer[]): Buffer {
  return Buffer.concat(messages.map((m) => {
    const p = Buffer.alloc(5);
    p.writeUInt32BE(m.length, 1);
    return Buffer.concat([p, m]);
  }));
}

function unframe(all: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off + 5 <= all.length;) {
    const n = all.readUInt32BE(off + 1);
    out.push(all.subarray(off + 5, off + 5 + n));
    off += 5 + n;
  }
  return out;
}

/** One gRPC call by hand: the messages out, the messages and grpc-status back. */
function call(session: http2.ClientHttp2Session, path: string, messages: Buffer[]): Promise<{ status: string; messages: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    let status = '';
    req.on('data', (c: Buffer) => chunks.push(c));
    // A call that fails before any message is "trailers-only": grpc-status comes in the head.
    req.on('response', (h) => { if (h['grpc-status'] !== undefined) status = String(h['grpc-status']); });
    req.on('trailers', (t) => { status = String(t['grpc-status']); });
    req.on('end', () => resolve({ status, messages: unframe(Buffer.concat(chunks)) }));
    req.on('error', reject);
    req.end(frame(messages));
  });
}

if (run) {
  test('grpc-js server via createConnectionInjector over ringwire: unary, server/client streaming, bidi, errors', () => scratch('grpc', 20000, async (s) => {
    const server = new grpc.Server();
    server.addService({
      Echo: method('/t.Svc/Echo', false, false),
      Count: method('/t.Svc/Count', false, true),
      Sum: method('/t.Svc/Sum', true, false),
      Upper: method('/t.Svc/Upper', true, true),
      Fail: method('/t.Svc/Fail', false, false),
    }, {
      Echo: (c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, c.request),
      Count: (c: grpc.ServerWritableStream<Buffer, Buffer>) => {
        for (let i = 0; i < c.request.readUInt8(0); i++) c.write(Buffer.from([i]));
        c.end();
      },
      Sum: (c: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        let sum = 0;
        c.on('data', (b: Buffer) => { sum += b.readUInt8(0); });
        c.on('end', () => cb(null, Buffer.from([sum])));
      },
      Upper: (c: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        c.on('data', (b: Buffer) => c.write(Buffer.from(b.toString().toUpperCase())));
        c.on('end', () => c.end());
      },
      Fail: (_c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb({ code: grpc.status.PERMISSION_DENIED, details: 'no' }),
    });
    const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const addr = `@ringwire-test-84-${process.pid}`;
    const listener = await listen(addr, {}, (ch) => injector.injectConnection(createDuplex(ch)));
    s.defer(() => { listener.destroyConnections(); return listener.close(); });
    s.defer(() => server.forceShutdown());

    const ch = await connect(addr);
    const session = http2.connect('http://grpc.invalid', { createConnection: () => createDuplex(ch) });
    s.defer(() => session.destroy());

    const unary = await call(session, '/t.Svc/Echo', [Buffer.from('ping')]);
    assert.equal([unary.status, unary.messages.map(String)], ['0', ['ping']]);
    const count = await call(session, '/t.Svc/Count', [Buffer.from([5])]);
    assert.equal(count.messages.map((b) => b[0]), [0, 1, 2, 3, 4]);
    const sum = await call(session, '/t.Svc/Sum', [1, 2, 3, 4].map((n) => Buffer.from([n])));
    assert.is(sum.messages[0]![0], 10);
    const upper = await call(session, '/t.Svc/Upper', ['a', 'bc'].map((x) => Buffer.from(x)));
    assert.equal(upper.messages.map(String), ['A', 'BC']);
    const fail = await call(session, '/t.Svc/Fail', [Buffer.alloc(0)]);
    assert.is(fail.status, String(grpc.status.PERMISSION_DENIED));
    const many = await Promise.all(Array.from({ length: 100 }, (_, i) => call(session, '/t.Svc/Echo', [Buffer.from(`m${i}`)])));
    assert.equal(many.map((r) => String(r.messages[0])), Array.from({ length: 100 }, (_, i) => `m${i}`));
  }));
}

test.run();
