/**
 * A channel peer in its own process, for the multi-process tests. argv[2] is a JSON job:
 *   { role: 'serve', address, mode?, slow?, uid? }  listen; echo messages and requests ('slow': requests never answered)
 *   { role: 'connect', address, count, uid?, hold? }  connect, make `count` echo requests, report, close (or hold on)
 * It prints one JSON line per event on stdout ({ ready }, { done }, { error }), so it works through
 * `ip netns exec` and `nsenter`, which do not pass an IPC channel.
 */
import { connect, listen, type Channel } from '../../lib/index.js';

interface Job {
  role: 'serve' | 'connect';
  address: string;
  count?: number;
  slow?: boolean;
  mode?: number;
  uid?: number;
  gid?: number;
  name?: string;
  /** connect: stay connected after the requests (until killed). */
  hold?: boolean;
}

const job = JSON.parse(process.argv[2] ?? '{}') as Job;

function report(o: object): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

function echo(ch: Channel, slow: boolean): void {
  ch.handle((req) => (slow ? new Promise<Uint8Array>(() => {}) : req));
  ch.on('message', (m) => void ch.send(Buffer.from(m)).catch(() => {}));
}

if (job.gid !== undefined) process.setgid!(job.gid);
if (job.uid !== undefined) process.setuid!(job.uid);

if (job.role === 'serve') {
  const server = await listen(job.address, { ...(job.mode !== undefined ? { mode: job.mode } : {}), name: job.name ?? 'peer' }, (ch) => echo(ch, job.slow ?? false));
  report({ ready: server.address, pid: process.pid });
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
} else {
  try {
    const ch = await connect(job.address, { name: job.name ?? 'peer-client' });
    let ok = 0;
    for (let i = 0; i < (job.count ?? 1); i++) {
      const msg = Buffer.from(`request ${i} from ${process.pid}`);
      const res = await ch.request(msg, { timeoutMs: 5000 });
      if (res.equals(msg)) ok++;
    }
    report({ done: ok, peer: ch.peer, pid: process.pid });
    if (job.hold) ch.handle((r) => r);
    else await ch.close();
  } catch (err) {
    report({ error: (err as Error).message, code: (err as { code?: string }).code });
  }
}
