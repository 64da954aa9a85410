// Node's own http and http2 stacks, unmodified, over a ringwire Duplex: the server side is fed with
// server.emit('connection', duplex), the client side with createConnection. Bodies in both
// directions, many concurrent requests and streams, and half-close behaving like net.Socket.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import http2 from 'node:http2';
import { createHash } from 'node:crypto';
import { addonAvailable } from '../lib/native/native.js';
import { connect, createDuplex, listen, type Channel, type ChannelServer } from '../lib/index.js';
import { prng, requireOrSkip, testSeed, withTimeout } from './helpers/index.js';

const run = requireOrSkip('native addon', addonAvailable());
const seed = run ? testSeed() : 0;
let counter = 0;

async function ringwireListener(onChannel: (ch: Channel) => void): Promise<{ server: ChannelServer; address: string }> {
  const address = `@ringwire-test-53-${process.pid}-${counter++}`;
  const server = await listen(address, { allowHalfOpen: true }, onChannel);
  return { server, address };
}

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

if (run) {
  test('duplex: bytes both ways, larger than a message, then half-close like net.Socket', () => withTimeout('duplex', 10000, async () => {
    const { server, address } = await ringwireListener((ch) => {
      const d = createDuplex(ch, { allowHalfOpen: true });
      const chunks: Buffer[] = [];
      d.on('data', (c: Buffer) => chunks.push(c));
      d.on('end', () => {
        const all = Buffer.concat(chunks);
        d.end(Buffer.from(sha(all)));
      });
    });
    const ch = await connect(address, { sendRingBytes: 8192, allowHalfOpen: true });
    const d = createDuplex(ch, { allowHalfOpen: true });
    const body = Buffer.from(prng(seed).bytes(300_000));
    const reply: Buffer[] = [];
    d.on('data', (c: Buffer) => reply.push(c));
    const ended = new Promise((r) => d.on('end', r));
    const closed = new Promise((r) => d.on('close', r));
    d.end(body);
    await ended;
    assert.is(Buffer.concat(reply).toString(), sha(body));
    await closed;
    assert.ok(d.destroyed);
    assert.is(d.bytesWritten, body.length);
    assert.is(typeof d.setNoDelay(true), 'object');
    await server.close();
  }));

  test('http: 200 concurrent requests with bodies, keep-alive, unmodified node:http on both sides', () => withTimeout('http', 30000, async () => {
    const httpServer = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        res.setHeader('x-path', req.url ?? '');
        res.end(JSON.stringify({ sha: sha(body), len: body.length }));
      });
    });
    let accepted = 0;
    const { server, address } = await ringwireListener((ch) => { accepted++; httpServer.emit('connection', createDuplex(ch)); });
    const agent = new http.Agent({ keepAlive: true });
    // The agent asks for a connection per socket it needs; each is a ringwire channel.
    (agent as unknown as { createConnection: unknown }).createConnection = (_opts: unknown, cb: (err: Error | null, s?: unknown) => void) => {
      connect(address).then((ch) => cb(null, createDuplex(ch)), (err) => cb(err));
    };
    try {
    const rnd = prng(seed + 1);
    const post = (body: Buffer, i: number) => new Promise<{ sha: string; len: number; path: string }>((resolve, reject) => {
      const req = http.request({ agent, method: 'POST', path: `/r/${i}`, headers: { 'content-length': body.length } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ ...JSON.parse(Buffer.concat(chunks).toString()), path: String(res.headers['x-path']) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
    const check = (bodies: Buffer[], results: Array<{ sha: string; len: number; path: string }>, base: number) => results.forEach((r, i) => {
      assert.is(r.len, bodies[i]!.length);
      assert.is(r.sha, sha(bodies[i]!));
      assert.is(r.path, `/r/${base + i}`);
    });
    // All at once: the agent opens a channel per request it cannot yet place (its createConnection is async).
    const burst = Array.from({ length: 200 }, () => Buffer.from(rnd.bytes(rnd.int(0, 40_000))));
    check(burst, await Promise.all(burst.map((b, i) => post(b, i))), 0);
    const afterBurst = accepted;
    // Then in waves: idle keep-alive channels are reused, none are opened.
    for (let wave = 0; wave < 10; wave++) {
      const bodies = Array.from({ length: 8 }, () => Buffer.from(rnd.bytes(rnd.int(0, 10_000))));
      check(bodies, await Promise.all(bodies.map((b, i) => post(b, 1000 + wave * 8 + i))), 1000 + wave * 8);
    }
    assert.is(accepted, afterBurst, 'keep-alive reused the open channels');
    } finally {
      agent.destroy();
      httpServer.close();
      server.destroyConnections();
      await server.close();
    }
  }));

  test('http2: 300 concurrent streams with bodies over one ringwire channel', () => withTimeout('http2', 30000, async () => {
    const h2 = http2.createServer();
    h2.on('stream', (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'x-path': String(headers[':path']) });
        stream.end(sha(Buffer.concat(chunks)));
      });
    });
    const { server, address } = await ringwireListener((ch) => h2.emit('connection', createDuplex(ch)));
    const ch = await connect(address);
    const session = http2.connect('http://ringwire.invalid', { createConnection: () => createDuplex(ch) });
    try {
    const rnd = prng(seed + 2);
    const bodies = Array.from({ length: 300 }, () => Buffer.from(rnd.bytes(rnd.int(0, 20_000))));
    const results = await Promise.all(bodies.map((body, i) => new Promise<[string, string]>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': `/s/${i}` });
      let path = '';
      req.on('response', (h) => { path = String(h['x-path']); });
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve([Buffer.concat(chunks).toString(), path]));
      req.on('error', reject);
      req.end(body);
    })));
    results.forEach(([digest, path], i) => {
      assert.is(digest, sha(bodies[i]!));
      assert.is(path, `/s/${i}`);
    });
    assert.is(server.connections, 1, 'one channel carried every stream');
    } finally {
      await new Promise<void>((r) => session.close(() => r()));
      h2.close();
      server.destroyConnections();
      await server.close();
    }
  }));
}

test.run();
