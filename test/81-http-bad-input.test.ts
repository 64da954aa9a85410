// Bad input on both sides of the HTTP record mapping, written frame by frame on a raw channel:
// the server answers 400/413/431 or resets the one exchange and keeps serving the others on the
// same channel; the client turns a broken response, a reset or a vanished server into a typed
// error with a ringwire code. Then 1,000 aborted requests leave no fds, mappings or exchanges behind.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { request, errors as undiciErrors } from 'undici';
import { addonAvailable } from '../lib/native/native.js';
import { isRingwireError } from '../lib/errors.js';
import { connect, listen, type Channel } from '../lib/index.js';
import { RingwireDispatcher, serveHttp, type HttpServer } from '../lib/http/index.js';
import {
  Flag, FrameType, ResetCode, decodeResponseHead, decodeU32, encodeEnd, encodeRequestHead, encodeResponseHead, readFrame, writeFrameHeader,
} from '../lib/http/wire.js';
import { requireOrSkip, scratch } from './helpers/index.js';

const run = requireOrSkip('native addon', addonAvailable());
let counter = 0;
const address = (): string => `@ringwire-test-81-${process.pid}-${counter++}`;

interface Reply { status?: number; reset?: number; body: number }

/** A raw client: sends frames, gathers what comes back per exchange id. */
function rawClient(ch: Channel): { replies: Map<number, Reply>; waitFor(id: number): Promise<Reply> } {
  const replies = new Map<number, Reply>();
  const waiters = new Map<number, (r: Reply) => void>();
  ch.on('message', (view) => {
    const f = readFrame(view);
    if (!f) return;
    const r = replies.get(f.id) ?? { body: 0 };
    replies.set(f.id, r);
    const buf = Buffer.from(view);
    if (f.type === FrameType.Headers) r.status = decodeResponseHead(buf, f.start, buf.length)?.status;
    else if (f.type === FrameType.Data) r.body += buf.length - f.start;
    else if (f.type === FrameType.Reset) r.reset = decodeU32(buf, f.start, buf.length) ?? -1;
    if ((f.flags & Flag.End) || f.type === FrameType.Reset) waiters.get(f.id)?.(r);
  });
  return {
    replies,
    waitFor: (id) => new Promise((resolve) => {
      const r = replies.get(id);
      if (r && (r.reset !== undefined || r.status !== undefined)) resolve(r);
      else waiters.set(id, resolve);
    }),
  };
}

function data(id: number, bytes: Buffer, end: boolean): Buffer {
  const f = Buffer.alloc(8 + bytes.length);
  writeFrameHeader(f, FrameType.Data, end ? Flag.End : 0, id);
  bytes.copy(f, 8);
  return f;
}

async function echoServer(s: { defer(fn: () => unknown): void }, opts = {}): Promise<{ server: HttpServer; addr: string; aborted: () => number }> {
  let aborted = 0;
  const addr = address();
  const server = await serveHttp(addr, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => { aborted++; });
    req.on('end', () => res.end(Buffer.concat(chunks)));
  }, opts);
  s.defer(() => { server.closeAllConnections(); return new Promise<void>((r) => server.close(() => r())); });
  return { server, addr, aborted: () => aborted };
}

if (run) {
  test('server: malformed head 400, oversized head 431, body length 400, body over limit 413, records out of order reset; the channel keeps serving', () => scratch('server-bad', 20000, async (s) => {
    const { server, addr, aborted } = await echoServer(s, { maxHeaderSize: 1024, maxBodySize: 1000 });
    const ch = await connect(addr);
    s.defer(() => ch.destroy());
    const c = rawClient(ch);
    const head = (id: number, flags: number, fields: string[]) => encodeRequestHead(id, flags, 'POST', '/x', fields)!;

    const truncated = head(1, Flag.End, ['a', 'b']).subarray(0, 14);
    await ch.send(truncated);
    assert.is((await c.waitFor(1)).status, 400, 'malformed head');

    await ch.send(head(2, Flag.End, ['x-big', 'v'.repeat(2000)]));
    assert.is((await c.waitFor(2)).status, 431, 'head over maxHeaderSize');

    await ch.send(head(3, 0, ['content-length', '3']));
    await ch.send(data(3, Buffer.from('12345'), true));
    assert.is((await c.waitFor(3)).status, 400, 'body longer than content-length');

    await ch.send(head(4, 0, ['content-length', '10']));
    await ch.send(data(4, Buffer.from('123'), true));
    assert.is((await c.waitFor(4)).status, 400, 'body shorter than content-length');

    await ch.send(head(5, 0, ['content-length', '5000']));
    assert.is((await c.waitFor(5)).status, 413, 'content-length over maxBodySize');

    await ch.send(data(7, Buffer.from('early'), false));
    assert.is((await c.waitFor(7)).reset, ResetCode.Protocol, 'Data before its head');

    c.replies.delete(3);
    await ch.send(head(3, Flag.End, []));
    assert.is((await c.waitFor(3)).reset, ResetCode.Protocol, 'an id that does not increase');

    await ch.send(head(9, 0, ['content-length', '2']));
    await ch.send(head(9, Flag.End, []));
    const twice = await c.waitFor(9);
    assert.ok(twice);
    assert.ok(twice.status === 400 || twice.reset === ResetCode.Protocol, 'a second head for a live exchange');

    await ch.send(Buffer.from([1, 2, 3]));
    await ch.send(head(10, 0, ['content-length', '4']));
    await ch.send(data(10, Buffer.from('ping'), false));
    await ch.send(encodeEnd(10));
    const ok = await c.waitFor(10);
    assert.is(ok.status, 200, 'the same channel still serves');
    assert.is(ok.body, 4);
    assert.ok(server.protocolErrors >= 4, `protocol errors counted: ${server.protocolErrors}`);
    assert.ok(aborted() >= 2, 'handlers saw the broken bodies as aborted requests');
    assert.is(server.pendingRequests, 0);
    assert.ok(!ch.closed);
  }));

  test('client: broken response head, reset, server gone mid-body, headers timeout -> typed errors with ringwire codes', () => scratch('client-bad', 20000, async (s) => {
    const addr = address();
    const mode = { value: 'malformed' as 'malformed' | 'reset' | 'gone' | 'silent' };
    const server = await listen(addr, {}, (ch) => {
      ch.on('message', (view) => {
        const f = readFrame(view)!;
        if (f.type !== FrameType.Headers) return;
        if (mode.value === 'malformed') void ch.send(Buffer.from(encodeResponseHead(f.id, Flag.End, 200, 'OK', [])!.subarray(0, 10)));
        else if (mode.value === 'reset') {
          const r = Buffer.alloc(12);
          writeFrameHeader(r, FrameType.Reset, 0, f.id);
          r.writeUInt32LE(ResetCode.Internal, 8);
          void ch.send(r);
        } else if (mode.value === 'gone') {
          void ch.send(encodeResponseHead(f.id, 0, 200, 'OK', [])!).then(() => ch.send(data(f.id, Buffer.alloc(1000), false))).then(() => ch.destroy());
        }
      });
    });
    s.defer(() => { server.destroyConnections(); return server.close(); });
    const d = new RingwireDispatcher({ address: addr, headersTimeout: 300 });
    s.defer(() => d.destroy());

    const e1 = await request('http://x/', { dispatcher: d }).then(() => null, (e: Error) => e);
    assert.ok(isRingwireError(e1, 'ERR_HTTP_PROTOCOL'), `malformed head: ${e1}`);
    mode.value = 'reset';
    const e2 = await request('http://x/', { dispatcher: d }).then(() => null, (e: Error) => e);
    assert.ok(isRingwireError(e2, 'ERR_HTTP_RESET'), `reset: ${e2}`);
    mode.value = 'silent';
    const e3 = await request('http://x/', { dispatcher: d }).then(() => null, (e: Error) => e);
    assert.instance(e3, undiciErrors.HeadersTimeoutError);
    mode.value = 'gone';
    const res = await request('http://x/', { dispatcher: d });
    const e4 = await res.body.arrayBuffer().then(() => null, (e: Error) => e);
    assert.ok(isRingwireError(e4, 'ERR_PEER_GONE'), `gone: ${e4}`);
    assert.is(d.pendingRequests, 0);
  }));

  test('server: the client channel vanishes mid-upload -> the handler sees an aborted request and a closed response; others keep working', () => scratch('server-gone', 15000, async (s) => {
    const seen: string[] = [];
    let gotData!: () => void;
    const dataSeen = new Promise<void>((r) => { gotData = r; });
    const addr = address();
    const server = await serveHttp(addr, (req, res) => {
      if (req.url === '/ok') { res.end('ok'); return; }
      req.once('data', () => gotData());
      req.on('error', (e: Error & { code?: string }) => seen.push(`req ${e.code}`));
      res.on('close', () => seen.push(`res close finished=${res.writableFinished}`));
    });
    s.defer(() => { server.closeAllConnections(); return new Promise<void>((r) => server.close(() => r())); });
    const ch = await connect(addr);
    await ch.send(encodeRequestHead(1, 0, 'PUT', '/up', ['content-length', '1000000'])!);
    await ch.send(data(1, Buffer.alloc(1000), false));
    await dataSeen;
    ch.destroy();
    for (let i = 0; i < 500 && (server.pendingRequests > 0 || seen.length < 2); i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(seen.sort(), ['req ECONNRESET', 'res close finished=false']);
    assert.is(server.pendingRequests, 0);
    const d = new RingwireDispatcher({ address: addr });
    s.defer(() => d.destroy());
    assert.is(await (await request('http://x/ok', { dispatcher: d })).body.text(), 'ok');
  }));

  test('1,000 aborted requests: no growth in fds, mappings or pending exchanges on either side', () => scratch('abort-leak', 60000, async (s) => {
    let started = 0;
    const addr = address();
    const server = await serveHttp(addr, (req) => { started++; req.resume(); });
    s.defer(() => { server.closeAllConnections(); return new Promise<void>((r) => server.close(() => r())); });
    const d = new RingwireDispatcher({ address: addr });
    s.defer(() => d.destroy());
    const fds = (): number => readdirSync('/proc/self/fd').length;
    // Ring regions are memfd mappings; the heap's own mappings come and go with the GC.
    const maps = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('memfd:')).length;
    const round = async (n: number): Promise<void> => {
      await Promise.all(Array.from({ length: n }, async (_, i) => {
        const ac = new AbortController();
        const p = request('http://x/hang', { dispatcher: d, method: 'POST', body: Buffer.alloc(i % 3 === 0 ? 200_000 : 10), signal: ac.signal });
        setImmediate(() => ac.abort());
        const err = await p.then(() => null, (e: Error) => e);
        assert.ok(err, 'aborted');
      }));
    };
    await round(50);
    const before = { fds: fds(), maps: maps() };
    for (let i = 0; i < 10; i++) await round(100);
    await new Promise((r) => setImmediate(r));
    // The server forgets an exchange when the client's Reset arrives: wait for that condition, not for a time.
    for (let i = 0; i < 1000 && server.pendingRequests > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.is(d.pendingRequests, 0, 'client exchanges');
    assert.is(server.pendingRequests, 0, 'server exchanges');
    assert.is(d.connections, 1, 'one pooled channel carried them all');
    assert.ok(fds() <= before.fds, `fds ${before.fds} -> ${fds()}`);
    assert.ok(maps() <= before.maps, `ring mappings ${before.maps} -> ${maps()}`);
    assert.ok(started > 0);
  }));
}

test.run();
