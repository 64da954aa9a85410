// inproc://: channels between worker threads of one process, rings in SharedArrayBuffers. Both
// directions of rendezvous (worker listens, main listens), messages and requests, a refused secret,
// an abrupt destroy noticed through the gone word, and a name nobody serves timing out.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { isRingwireError } from '../lib/errors.js';
import { connect, listen } from '../lib/index.js';
import { withTimeout } from './helpers/index.js';

const WORKER = new URL('./workers/channel-thread.js', import.meta.url);
let n = 0;

async function serveInWorker(secret?: string): Promise<{ worker: Worker; address: string }> {
  const address = `inproc://test-58-${n++}`;
  const worker = new Worker(WORKER, { workerData: { role: 'serve', address, secret } });
  const first = await new Promise<{ ready: string }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  assert.is(first.ready, address);
  return { worker, address };
}

test('a worker serves inproc://: requests and messages from the main thread', () => withTimeout('worker serves', 10000, async () => {
  const { worker, address } = await serveInWorker();
  try {
    const ch = await connect(address);
    assert.is(ch.transport, 'inproc');
    const replies = await Promise.all(Array.from({ length: 300 }, (_, i) => ch.request(Buffer.from(`${i}`))));
    replies.forEach((r, i) => assert.is(r.toString(), `worker:${i}`));
    const echoes: string[] = [];
    const got = new Promise<void>((r) => ch.on('message', (m) => { echoes.push(Buffer.from(m).toString()); if (echoes.length === 100) r(); }));
    for (let i = 0; i < 100; i++) await ch.send(Buffer.from(`m${i}`));
    await got;
    assert.equal(echoes, Array.from({ length: 100 }, (_, i) => `m${i}`));
    await ch.close();
  } finally {
    await worker.terminate();
  }
}));

test('the main thread serves inproc:// and a worker connects', () => withTimeout('main serves', 10000, async () => {
  const address = `inproc://test-58-${n++}`;
  const server = await listen(address, {}, (ch) => ch.handle((r) => Buffer.concat([Buffer.from('main:'), r])));
  const worker = new Worker(WORKER, { workerData: { role: 'connect', address } });
  try {
    const result = await new Promise<{ done: number }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    assert.is(result.done, 50);
  } finally {
    await worker.terminate();
    // A terminated worker leaves no trace in shared memory (see inproc.ts), so close its channels here.
    server.destroyConnections();
    await server.close();
  }
}));

test('an abrupt destroy on the worker side is noticed; a wrong secret is refused; nobody listening times out', () => withTimeout('inproc errors', 10000, async () => {
  const { worker, address } = await serveInWorker('s3cret');
  try {
    const refused = await connect(address, { secret: 'wrong' }).then(() => null, (e) => e);
    assert.ok(isRingwireError(refused, 'ERR_POLICY'), String(refused));
    const ch = await connect(address, { secret: 's3cret' });
    assert.is((await ch.request(Buffer.from('x'))).toString(), 'worker:x');
    const pending = ch.request(Buffer.from('never'), { timeoutMs: 60_000 });
    worker.postMessage('destroy');
    const err = await pending.then(() => null, (e) => e);
    // The worker may answer before it destroys; either way the channel must then close as gone.
    if (err) assert.ok(isRingwireError(err, 'ERR_PEER_GONE'), String(err));
    assert.ok(isRingwireError(await ch.whenClosed(), 'ERR_PEER_GONE'));
    const none = await connect(`inproc://nobody-${process.pid}`, { connectTimeoutMs: 100 }).then(() => null, (e) => e);
    assert.ok(isRingwireError(none, 'ERR_TIMEOUT'), String(none));
  } finally {
    await worker.terminate();
  }
}));

test.run();
