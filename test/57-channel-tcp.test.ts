// The same channel API over tcp:// (and TLS with a throwaway certificate): messages, requests,
// back-pressure, graceful close, a killed peer, and a raw socket breaking the framing. Loopback only.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRingwireError } from '../lib/errors.js';
import { connect, listen, type Channel, type ServerOptions } from '../lib/index.js';
import { DisconnectView, Frame, Msg, encodeInit } from '../lib/channel/protocol.js';
import { Children, makeTempDir, prng, requireOrSkip, testSeed, withTimeout } from './helpers/index.js';
import { startPeer } from './workers/channel-spawn.js';
import { channelPair } from './helpers/channel-pair.js';

const seed = testSeed();

async function exercise(a: Channel, b: Channel): Promise<void> {
  a.handle((r) => Buffer.concat([r, Buffer.from('!')]));
  const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => b.request(Buffer.from(`q${i}`))));
  replies.forEach((r, i) => assert.is(r.toString(), `q${i}!`));
  const rnd = prng(seed);
  const msgs = Array.from({ length: 2000 }, () => Buffer.from(rnd.bytes(rnd.int(0, 3000))));
  let n = 0;
  const got = new Promise<void>((resolve, reject) => {
    a.on('message', (m: Uint8Array) => {
      if (!Buffer.from(m).equals(msgs[n]!)) reject(new Error(`message ${n} differs`));
      if (++n === msgs.length) resolve();
    });
  });
  const ended = new Promise<void>((r) => a.once('end', () => r()));
  for (const m of msgs) await b.send(m);
  await b.close();
  await got;
  await ended;
  assert.is(await a.whenClosed(), undefined, 'clean close on the far side');
}

test('tcp: the real port is reported; requests, 2000 messages and a graceful close', () => withTimeout('tcp', 20000, async () => {
  const { a, b, address, done } = await channelPair({}, { transport: 'tcp' });
  assert.match(address, /^tcp:\/\/127\.0\.0\.1:\d+$/);
  assert.is.not(address, 'tcp://127.0.0.1:0');
  assert.is(b.transport, 'tcp');
  assert.is(a.remoteAddress, '127.0.0.1');
  await exercise(a, b);
  await done();
}));

test('tcp: a killed server process fails pending requests with ERR_PEER_GONE', () => withTimeout('tcp kill', 20000, async () => {
  const children = new Children();
  try {
    const { child, first } = await startPeer(children, { role: 'serve', address: 'tcp://127.0.0.1:0', slow: true });
    const ch = await connect(String(first.ready));
    const pending = ch.request(Buffer.from('x'), { timeoutMs: 60_000 }).then(() => null, (e) => e);
    await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    const err = await pending;
    assert.ok(isRingwireError(err, 'ERR_PEER_GONE'), String(err));
    assert.ok(isRingwireError(await ch.whenClosed(), 'ERR_PEER_GONE'));
  } finally {
    await children.killAll();
  }
}));

test('tcp: a raw client breaking the handshake gets a Disconnect; one sending an oversized frame is cut off', () => withTimeout('tcp raw', 10000, async () => {
  const refusals: string[] = [];
  const server = await listen('tcp://127.0.0.1:0', { maxRingBytes: 4096, handshakeTimeoutMs: 2000 }, (ch) => ch.handle((r) => r));
  server.on('refused', (r) => refusals.push(r.reason));
  const port = Number(server.address!.split(':').at(-1));
  try {
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    await new Promise((r) => sock.once('connect', r));
    sock.write(Buffer.from([8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]));
    await new Promise((r) => sock.once('close', r));
    // Hello, then a Disconnect: each is a u32 length and one handshake message.
    const all = Buffer.concat(chunks);
    const firstLen = all.readUInt32LE(0);
    const second = all.subarray(4 + firstLen);
    const f = Frame.parse(second.subarray(4, 4 + second.readUInt32LE(0)), [])!;
    assert.is(f.type, Msg.Disconnect);
    assert.match(new DisconnectView(f.body).reason!, /malformed/);
    assert.ok(refusals.length >= 1);
    // A peer that completes the handshake and then sends a frame larger than agreed is cut off.
    const served = new Promise<Channel>((r) => server.once('connection', r));
    const raw = net.connect(port, '127.0.0.1');
    raw.on('error', () => {});
    await new Promise((r) => raw.once('connect', r));
    const init = encodeInit({ version: 1, ringsPerDirection: 1, clientToServerBytes: 4096, serverToClientBytes: 4096, name: 'raw', secret: new Uint8Array(0) });
    const len = Buffer.alloc(4);
    len.writeUInt32LE(init.length);
    raw.write(Buffer.concat([len, init]));
    const ch = await served;
    const header = Buffer.alloc(8);
    header.writeUInt32LE(100_000, 0);
    header.writeUInt32LE(1, 4);
    raw.write(header);
    const why = await ch.whenClosed();
    assert.ok(isRingwireError(why, 'ERR_PEER_GONE'), String(why));
    assert.match(why!.message, /100000-byte frame/);
    raw.destroy();
  } finally {
    server.destroyConnections();
    await server.close();
  }
}));

function openssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

if (requireOrSkip('openssl (to make a throwaway TLS certificate)', openssl())) {
  test('tls: same API over TLS with a throwaway certificate; a client that does not trust it is refused', () => withTimeout('tls', 30000, async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const key = join(dir, 'key.pem');
      const cert = join(dir, 'cert.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
      const tls = { key: readFileSync(key), cert: readFileSync(cert) };
      const { a, b, done } = await channelPair({ tls }, { transport: 'tcp', client: { tls: { ca: tls.cert, servername: 'localhost' } } });
      await exercise(a, b);
      await done();
      const server = await listen('tcp://127.0.0.1:0', { tls });
      const err = await connect(server.address!, { tls: { servername: 'localhost' } }).then(() => null, (e) => e);
      assert.ok(isRingwireError(err), String(err));
      assert.match(err.message, /self.signed|certificate/i);
      await server.close();
    } finally {
      cleanup();
    }
  }));
}

test.run();
