// The stream path's close semantics (issue 15): a peer that destroys its channel without end()
// looks like a socket's FIN on this side ('end' then 'close', no 'error'), so keep-alive closes
// are not http clientErrors and an http2 session without an error listener survives. undici's own
// Client runs over the Duplex through duplexConnector(), which compiles against undici's types.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import http2 from 'node:http2';
import { Client } from 'undici';
import { addonAvailable } from '../lib/native/native.js';
import { connect, createDuplex, listen, type Channel } from '../lib/index.js';
import { duplexConnector } from '../lib/http/index.js';
import { requireOrSkip, scratch } from './helpers/index.js';

const run = requireOrSkip('native addon', addonAvailable());
let counter = 0;
const address = (): string => `@ringwire-test-82-${process.pid}-${counter++}`;

if (run) {
  test('duplex: the peer destroys without end -> end and close, no error', () => scratch('duplex-fin', 10000, async (s) => {
    const addr = address();
    const server = await listen(addr, {}, (ch) => {
      ch.on('message', () => ch.destroy());
    });
    s.defer(() => server.close());
    const d = createDuplex(await connect(addr));
    const events: string[] = [];
    d.on('error', (e) => events.push(`error ${(e as { code?: string }).code}`));
    d.on('end', () => events.push('end'));
    d.resume();
    const closed = new Promise((r) => d.on('close', r));
    d.write('bye');
    await closed;
    assert.equal(events, ['end']);
  }));

  test('http: a keep-alive client that goes away is no clientError; http2 session without error listener survives the server leaving', () => scratch('http-close', 15000, async (s) => {
    const clientErrors: Error[] = [];
    const h1 = http.createServer((_req, res) => res.end('ok'));
    h1.on('clientError', (e) => clientErrors.push(e));
    const addr1 = address();
    const server1 = await listen(addr1, {}, (ch) => h1.emit('connection', createDuplex(ch)));
    s.defer(() => { server1.destroyConnections(); return server1.close(); });
    const agent = new http.Agent({ keepAlive: true });
    let channel: Channel | undefined;
    (agent as unknown as { createConnection: unknown }).createConnection = (_o: unknown, cb: (e: Error | null, sock?: unknown) => void) => {
      connect(addr1).then((ch) => { channel = ch; cb(null, createDuplex(ch)); }, cb);
    };
    const body = await new Promise<string>((resolve, reject) => {
      http.get({ agent, path: '/' }, (res) => { let b = ''; res.on('data', (c) => { b += c; }); res.on('end', () => resolve(b)); }).on('error', reject);
    });
    assert.is(body, 'ok');
    channel!.destroy();
    agent.destroy();
    const serverSide = await new Promise<void>((r) => { const t = setInterval(() => { if (server1.connections === 0) { clearInterval(t); r(); } }, 5); });
    void serverSide;
    assert.equal(clientErrors, [], 'no clientError for a client that closed');

    const h2 = http2.createServer();
    h2.on('stream', (stream) => stream.respond({ ':status': 200 }, { endStream: true }));
    const addr2 = address();
    let serverChannel: Channel | undefined;
    const server2 = await listen(addr2, {}, (ch) => { serverChannel = ch; h2.emit('connection', createDuplex(ch)); });
    s.defer(() => { server2.destroyConnections(); return server2.close(); });
    const ch2 = await connect(addr2);
    const session = http2.connect('http://ringwire.invalid', { createConnection: () => createDuplex(ch2) });
    const uncaught: Error[] = [];
    const onUncaught = (e: Error): void => { uncaught.push(e); };
    process.on('uncaughtException', onUncaught);
    s.defer(() => process.off('uncaughtException', onUncaught));
    await new Promise<void>((resolve, reject) => {
      const req = session.request({ ':path': '/' });
      req.on('response', () => {});
      req.on('end', resolve);
      req.on('error', reject);
      req.resume();
    });
    const closed = new Promise((r) => session.once('close', r));
    serverChannel!.destroy();
    await closed;
    assert.equal(uncaught, [], 'no uncaught error from a session without an error listener');
  }));

  test('undici Client over the Duplex via duplexConnector()', () => scratch('undici-connector', 10000, async (s) => {
    const h1 = http.createServer((req, res) => res.end(`hi ${req.url}`));
    const addr = address();
    const server = await listen(addr, {}, (ch) => h1.emit('connection', createDuplex(ch)));
    s.defer(() => { server.destroyConnections(); return server.close(); });
    const client = new Client('http://ringwire.local', { connect: duplexConnector(addr) });
    s.defer(() => client.destroy());
    const r = await client.request({ path: '/x', method: 'GET' });
    assert.is(await r.body.text(), 'hi /x');
  }));
}

test.run();
