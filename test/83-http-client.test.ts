// The ringwire undici Dispatcher with what is built on undici: Node's own global fetch,
// undici's fetch and request, compose() interceptors, setGlobalDispatcher, FormData, trailers,
// per-exchange flow control (a stalled reader does not stall its neighbours), AbortSignal mid-
// response, bodyTimeout, pooling and an origin -> address resolver.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import { FormData as UndiciFormData, fetch as undiciFetch, getGlobalDispatcher, interceptors, request, setGlobalDispatcher, errors as undiciErrors } from 'undici';
import { addonAvailable } from '../lib/native/native.js';
import { RingwireDispatcher, serveHttp, type HttpServer } from '../lib/http/index.js';
import { requireOrSkip, scratch, type Scratch } from './helpers/index.js';

const run = requireOrSkip('native addon', addonAvailable());
let counter = 0;
const address = (): string => `@ringwire-test-83-${process.pid}-${counter++}`;

async function serve(s: Scratch, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<{ server: HttpServer; addr: string }> {
  const addr = address();
  const server = await serveHttp(addr, handler);
  s.defer(() => { server.closeAllConnections(); return new Promise<void>((r) => server.close(() => r())); });
  return { server, addr };
}

function echo(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    res.setHeader('x-url', req.url ?? '');
    res.setHeader('x-type', String(req.headers['content-type'] ?? ''));
    res.addTrailers({ 'x-bytes': String(Buffer.concat(chunks).length) });
    res.end(Buffer.concat(chunks));
  });
}

if (run) {
  test("Node's global fetch, undici fetch and request, compose(), FormData, trailers, setGlobalDispatcher", () => scratch('client-api', 15000, async (s) => {
    const { addr } = await serve(s, echo);
    const d = new RingwireDispatcher({ address: addr });
    s.defer(() => d.destroy());

    const g = await fetch('http://svc/global', { dispatcher: d, method: 'POST', body: 'from node' } as unknown as RequestInit);
    assert.is(await g.text(), 'from node');
    assert.is(g.headers.get('x-url'), '/global');

    const u = await undiciFetch('http://svc/u?q=1', { dispatcher: d, method: 'PUT', body: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('streamed')); c.close(); } }), duplex: 'half' });
    assert.is(await u.text(), 'streamed');

    const form = new UndiciFormData();
    form.append('field', 'value');
    const f = await request('http://svc/form', { dispatcher: d, method: 'POST', body: form });
    assert.match(String(f.headers['x-type']), /^multipart\/form-data; boundary=/);
    assert.match(await f.body.text(), /name="field"\r\n\r\nvalue/);
    const t = await request('http://svc/t', { dispatcher: d, method: 'POST', body: 'four' });
    await t.body.text();
    assert.equal(t.trailers, { 'x-bytes': '4' });

    const head = await request('http://svc/head', { dispatcher: d, method: 'HEAD' });
    assert.is(head.statusCode, 200);
    assert.is(await head.body.text(), '');

    const composed = d.compose(interceptors.retry({ maxRetries: 1 }));
    const c = await request('http://svc/composed', { dispatcher: composed, method: 'POST', body: 'xyz' });
    assert.is(await c.body.text(), 'xyz');

    const previous = getGlobalDispatcher();
    setGlobalDispatcher(d);
    s.defer(() => setGlobalDispatcher(previous));
    const viaGlobal = await request('http://svc/implicit');
    assert.is(viaGlobal.headers['x-url'], '/implicit');
    await viaGlobal.body.dump();
  }));

  test('flow control per exchange: a reader that stops does not stall another exchange on the same channel', () => scratch('client-flow', 20000, async (s) => {
    const { addr } = await serve(s, (req, res) => {
      if (req.url === '/big') {
        const chunk = Buffer.alloc(256 * 1024, 7);
        let sent = 0;
        const pump = (): void => {
          while (sent < 16 * 1024 * 1024) {
            sent += chunk.length;
            if (!res.write(chunk)) { res.once('drain', pump); return; }
          }
          res.end();
        };
        pump();
      } else {
        res.end('small');
      }
    });
    const d = new RingwireDispatcher({ address: addr });
    s.defer(() => d.destroy());
    const big = await request('http://svc/big', { dispatcher: d, highWaterMark: 16 * 1024 });
    // Nobody reads `big` now: its exchange runs out of credit, the channel does not.
    for (let i = 0; i < 20; i++) {
      const small = await request('http://svc/small', { dispatcher: d });
      assert.is(await small.body.text(), 'small');
    }
    let n = 0;
    for await (const c of big.body) n += (c as Buffer).length;
    assert.is(n, 16 * 1024 * 1024);
    assert.is(d.connections, 1);
  }));

  test('AbortSignal mid-response and bodyTimeout fail the exchange and reset it on the server', () => scratch('client-abort', 20000, async (s) => {
    const closes: string[] = [];
    const { server, addr } = await serve(s, (req, res) => {
      res.on('close', () => closes.push(`${req.url} ${res.writableFinished ? 'finished' : 'aborted'}`));
      res.write('first part');
    });
    const d = new RingwireDispatcher({ address: addr, bodyTimeout: 300 });
    s.defer(() => d.destroy());
    const ac = new AbortController();
    const r = await request('http://svc/abort', { dispatcher: d, signal: ac.signal });
    const reading = r.body.text().then(() => null, (e: Error) => e);
    ac.abort();
    const e1 = await reading;
    assert.is(e1?.name, 'AbortError');
    const slow = await request('http://svc/slow', { dispatcher: d });
    const e2 = await slow.body.text().then(() => null, (e: Error) => e);
    assert.instance(e2, undiciErrors.BodyTimeoutError);
    for (let i = 0; i < 500 && server.pendingRequests > 0; i++) await new Promise((r2) => setTimeout(r2, 10));
    assert.is(server.pendingRequests, 0);
    assert.equal(closes.sort(), ['/abort aborted', '/slow aborted']);
  }));

  test('pooling per address: connections: 2 spreads exchanges; a resolver maps origins to addresses', () => scratch('client-pool', 15000, async (s) => {
    const a = await serve(s, (_req, res) => res.end('A'));
    const b = await serve(s, (_req, res) => setTimeout(() => res.end('B'), 5));
    const d = new RingwireDispatcher({ address: (origin) => (origin.hostname === 'a.svc' ? a.addr : b.addr), connections: 2 });
    s.defer(() => d.destroy());
    // The first wave waits for the first channel; the second finds it busy and opens the second.
    for (let wave = 0; wave < 2; wave++) {
      const texts = await Promise.all(Array.from({ length: 20 }, (_, i) => request(`http://${i % 2 ? 'a' : 'b'}.svc/`, { dispatcher: d }).then((r) => r.body.text())));
      assert.equal(texts, Array.from({ length: 20 }, (_, i) => (i % 2 ? 'A' : 'B')));
    }
    // The second channel's handshake may still be finishing on the server: wait for that condition.
    for (let i = 0; i < 500 && b.server.connections < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.is(b.server.connections, 2, 'b is served over two channels');
    assert.ok(d.connections >= 2 && d.connections <= 4, `${d.connections} channels`);
    // close(), as undici's: what is in flight completes, then the channels end.
    const late = request('http://b.svc/late', { dispatcher: d }).then((r) => r.body.text());
    await new Promise((r) => setImmediate(r));
    await d.close();
    assert.is(await late, 'B');
    assert.is(d.connections, 0);
    const refused = await request('http://b.svc/after', { dispatcher: d }).then(() => null, (e: Error) => e);
    assert.instance(refused, undiciErrors.ClientClosedError);
  }));
}

test.run();
