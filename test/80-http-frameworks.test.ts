// Real frameworks from npm, unmodified, served by serveHttp()/createHttpServer() and called through
// the ringwire undici Dispatcher: Express 5 as a (req, res) handler, Fastify 5 through its
// serverFactory. JSON APIs, 100 MiB streamed each way, and the error paths (handler throws,
// client aborts mid-body, server destroys mid-response).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import express from 'express';
import Fastify from 'fastify';
import { request } from 'undici';
import { addonAvailable } from '../lib/native/native.js';
import { isRingwireError } from '../lib/errors.js';
import { RingwireDispatcher, httpServerFactory, serveHttp } from '../lib/http/index.js';
import { prng, requireOrSkip, scratch, testSeed } from './helpers/index.js';

const run = requireOrSkip('native addon', addonAvailable());
const seed = run ? testSeed() : 0;
let counter = 0;
const address = (): string => `@ringwire-test-80-${process.pid}-${counter++}`;

const MiB = 1 << 20;
const BIG = 100 * MiB;
const block = Buffer.from(prng(seed).bytes(MiB));

/** `total` bytes of a seeded pattern in 1 MiB chunks, each chunk tagged with its index. */
function* pattern(total: number): Generator<Buffer> {
  for (let i = 0; i * MiB < total; i++) {
    const c = Buffer.from(block.subarray(0, Math.min(MiB, total - i * MiB)));
    c.writeUInt32LE(i, 0);
    yield c;
  }
}

function patternSha(total: number): string {
  const h = createHash('sha256');
  for (const c of pattern(total)) h.update(c);
  return h.digest('hex');
}

const bigSha = run ? patternSha(BIG) : '';

async function shaOf(body: AsyncIterable<Buffer>): Promise<{ sha: string; len: number }> {
  const h = createHash('sha256');
  let len = 0;
  for await (const c of body) {
    h.update(c);
    len += c.length;
  }
  return { sha: h.digest('hex'), len };
}

if (run) {
  test('express 5: JSON API, params, 404, a throwing handler answers 500 and the server keeps serving', () => scratch('express-json', 20000, async (s) => {
    const app = express();
    app.set('env', 'test'); // finalhandler prints the 500's stack otherwise
    app.use(express.json());
    app.get('/items/:id', (req, res) => { res.json({ id: req.params.id, q: req.query.q, ip: req.ip, host: req.hostname }); });
    app.post('/echo', (req, res) => { res.status(201).set('x-seen', String(req.get('x-test'))).json({ got: req.body }); });
    app.get('/boom', () => { throw new Error('handler exploded'); });
    const addr = address();
    const server = await serveHttp(addr, app);
    s.defer(() => new Promise<void>((r) => server.close(() => r())));
    const d = new RingwireDispatcher({ address: addr });
    s.defer(() => d.destroy());

    const a = await request('http://api.local/items/42?q=x', { dispatcher: d });
    assert.is(a.statusCode, 200);
    assert.match(String(a.headers['content-type']), /application\/json/);
    const aj = (await a.body.json()) as { id: string; q: string; ip: unknown; host: string };
    assert.equal({ id: aj.id, q: aj.q, host: aj.host }, { id: '42', q: 'x', host: 'api.local' });
    assert.type(aj.ip, 'string', 'req.ip comes from req.socket.remoteAddress');

    const b = await request('http://api.local/echo', { dispatcher: d, method: 'POST', headers: { 'content-type': 'application/json', 'x-test': 'yes' }, body: JSON.stringify({ n: [1, 2, 3], s: 'é' }) });
    assert.is(b.statusCode, 201);
    assert.is(b.headers['x-seen'], 'yes');
    assert.equal(await b.body.json(), { got: { n: [1, 2, 3], s: 'é' } });

    const viaFetch = await fetch('http://api.local/echo', { dispatcher: d, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"f":true}' } as unknown as RequestInit);
    assert.is(viaFetch.status, 201);
    assert.equal(await viaFetch.json(), { got: { f: true } });

    const missing = await request('http://api.local/nope', { dispatcher: d });
    assert.is(missing.statusCode, 404);
    await missing.body.dump();

    const boom = await request('http://api.local/boom', { dispatcher: d });
    assert.is(boom.statusCode, 500);
    await boom.body.dump();
    const again = await request('http://api.local/items/7', { dispatcher: d });
    assert.is(again.statusCode, 200);
    await again.body.dump();
    assert.is(d.pendingRequests, 0);
    assert.is(server.pendingRequests, 0);
  }));

  test('express 5: 100 MiB streamed up and 100 MiB streamed down, hashes match', () => scratch('express-big', 120000, async (s) => {
    const app = express();
    app.put('/upload', async (req, res) => {
      const got = await shaOf(req);
      res.json(got);
    });
    app.get('/download', (_req, res) => {
      res.setHeader('content-type', 'application/octet-stream');
      void pipeline(Readable.from(pattern(BIG)), res).catch(() => {});
    });
    const addr = address();
    const server = await serveHttp(addr, app);
    s.defer(() => new Promise<void>((r) => server.close(() => r())));
    const d = new RingwireDispatcher({ address: addr });
    s.defer(() => d.destroy());

    const up = await request('http://big.local/upload', { dispatcher: d, method: 'PUT', body: Readable.from(pattern(BIG)) });
    assert.is(up.statusCode, 200);
    assert.equal(await up.body.json(), { sha: bigSha, len: BIG });

    const down = await request('http://big.local/download', { dispatcher: d });
    assert.is(down.statusCode, 200);
    assert.equal(await shaOf(down.body), { sha: bigSha, len: BIG });
  }));

  test('express 5: client aborts mid-upload (req aborts, res closes), server destroys mid-download (client gets ERR_HTTP_RESET)', () => scratch('express-abort', 30000, async (s) => {
    let sawAbort!: () => void;
    const aborted = new Promise<void>((r) => { sawAbort = r; });
    const app = express();
    app.put('/slow-upload', (req, res) => {
      req.on('data', () => {});
      req.on('error', (err: Error & { code?: string }) => { if (err.code === 'ECONNRESET') sawAbort(); });
      res.on('close', () => {});
    });
    app.get('/half', (_req, res) => {
      res.write(Buffer.alloc(64 * 1024, 1));
      setImmediate(() => res.destroy());
    });
    app.get('/ok', (_req, res) => { res.send('still here'); });
    const addr = address();
    const server = await serveHttp(addr, app);
    s.defer(() => new Promise<void>((r) => server.close(() => r())));
    const d = new RingwireDispatcher({ address: addr });
    s.defer(() => d.destroy());

    const ac = new AbortController();
    async function* slowBody(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(100_000, 2);
      yield Buffer.alloc(100_000, 3);
      ac.abort();
      await new Promise((r) => setTimeout(r, 10_000));
    }
    const err = await request('http://x.local/slow-upload', { dispatcher: d, method: 'PUT', body: slowBody() as unknown as Readable, signal: ac.signal }).then(() => null, (e: Error) => e);
    assert.ok(err, 'the aborted request rejects');
    assert.is(err!.name, 'AbortError');
    await aborted;

    const half = await request('http://x.local/half', { dispatcher: d });
    assert.is(half.statusCode, 200);
    const bodyErr = await half.body.arrayBuffer().then(() => null, (e: Error) => e);
    assert.ok(bodyErr && isRingwireError(bodyErr, 'ERR_HTTP_RESET'), `got ${bodyErr}`);

    const ok = await request('http://x.local/ok', { dispatcher: d });
    assert.is(await ok.body.text(), 'still here');
    assert.is(d.pendingRequests, 0);
    assert.is(server.pendingRequests, 0);
  }));

  test('fastify 5 via serverFactory: JSON API, validation 400, throwing route 500, 100 MiB each way', () => scratch('fastify', 120000, async (s) => {
    const fastify = Fastify({ serverFactory: httpServerFactory() });
    fastify.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
    fastify.get('/hello', async () => ({ hello: 'world' }));
    fastify.post('/sum', { schema: { body: { type: 'object', required: ['a', 'b'], properties: { a: { type: 'number' }, b: { type: 'number' } } } } },
      async (req) => { const { a, b } = req.body as { a: number; b: number }; return { sum: a + b }; });
    fastify.get('/boom', async () => { throw new Error('route exploded'); });
    fastify.put('/upload', async (req) => shaOf(req.body as AsyncIterable<Buffer>));
    fastify.get('/download', async (_req, reply) => reply.type('application/octet-stream').send(Readable.from(pattern(BIG))));
    const addr = address();
    await fastify.listen({ path: addr });
    s.defer(() => fastify.close());
    const d = new RingwireDispatcher({ address: addr });
    s.defer(() => d.destroy());

    const h = await request('http://f.local/hello', { dispatcher: d });
    assert.is(h.statusCode, 200);
    assert.equal(await h.body.json(), { hello: 'world' });
    const sum = await request('http://f.local/sum', { dispatcher: d, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":2,"b":40}' });
    assert.equal(await sum.body.json(), { sum: 42 });
    const bad = await request('http://f.local/sum', { dispatcher: d, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":2}' });
    assert.is(bad.statusCode, 400);
    await bad.body.dump();
    const boom = await request('http://f.local/boom', { dispatcher: d });
    assert.is(boom.statusCode, 500);
    assert.is(((await boom.body.json()) as { message: string }).message, 'route exploded');

    const up = await request('http://f.local/upload', { dispatcher: d, method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: Readable.from(pattern(BIG)) });
    assert.is(up.statusCode, 200);
    assert.equal(await up.body.json(), { sha: bigSha, len: BIG });
    const down = await request('http://f.local/download', { dispatcher: d });
    assert.equal(await shaOf(down.body), { sha: bigSha, len: BIG });
    assert.is(d.pendingRequests, 0);
  }));
}

test.run();
