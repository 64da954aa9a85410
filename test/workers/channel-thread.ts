/**
 * Worker-thread side of the inproc:// tests. workerData: { role: 'serve' | 'connect', address, secret? }.
 * 'serve' echoes requests and messages and posts 'ready'; 'connect' makes 50 requests, posts the
 * count, and closes. A 'destroy' message destroys every channel abruptly (no End record).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { connect, listen, type Channel } from '../../lib/index.js';

const job = workerData as { role: 'serve' | 'connect'; address: string; secret?: string };
const channels: Channel[] = [];
parentPort!.on('message', (m) => {
  if (m === 'destroy') for (const ch of channels) ch.destroy();
});

if (job.role === 'serve') {
  const server = await listen(job.address, job.secret ? { secret: job.secret } : {}, (ch) => {
    channels.push(ch);
    ch.handle((r) => Buffer.concat([Buffer.from('worker:'), r]));
    ch.on('message', (m) => void ch.send(Buffer.from(m)).catch(() => {}));
  });
  parentPort!.postMessage({ ready: server.address });
  parentPort!.on('message', (m) => {
    if (m === 'close') void server.close().then(() => parentPort!.close());
  });
} else {
  const ch = await connect(job.address);
  let ok = 0;
  for (let i = 0; i < 50; i++) if ((await ch.request(Buffer.from(`${i}`))).toString() === `main:${i}`) ok++;
  parentPort!.postMessage({ done: ok, peer: ch.peer });
  await ch.close();
}
