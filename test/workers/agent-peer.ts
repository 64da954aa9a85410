/**
 * A service or client process for the agent tests (70-74). argv[2] is a JSON job:
 *   { address, serve: NAME, version? }  registers NAME and answers each request with `${version}:${request}`
 *   { address, connect: NAME, count? }  connects through the agent, sends `count` requests, reports
 * It prints JSON lines: { ready, identity, pid } once registered/connected, then { done, answers }
 * or { error: code, message }. Stdin lines drive a connected client: 'ping' sends one more request
 * and prints { answer } or { error }; end of stdin exits.
 */
import { createInterface } from 'node:readline';
import { connectAgent } from '../../lib/agent/index.js';

const job = JSON.parse(process.argv[2]!) as { address: string; serve?: string; version?: string; connect?: string; count?: number };
const say = (o: object): void => { process.stdout.write(`${JSON.stringify(o)}\n`); };

try {
  const client = await connectAgent({ address: job.address });
  client.on('error', () => {});
  if (job.serve) {
    await client.register(job.serve, job.version ? { version: job.version } : {}, (ch) => {
      ch.handle((req) => Buffer.from(`${job.version ?? 'v'}:${req.toString()}`));
      ch.on('close', (err) => say({ closed: err?.code ?? null }));
    });
    say({ ready: true, identity: client.identity, pid: process.pid });
  } else if (job.connect) {
    const ch = await client.connect(job.connect);
    ch.on('close', (err) => say({ closed: err?.code ?? null }));
    const answers: string[] = [];
    for (let i = 0; i < (job.count ?? 1); i++) answers.push((await ch.request(Buffer.from(`q${i}`))).toString());
    say({ ready: true, identity: client.identity, pid: process.pid, answers });
    for await (const line of createInterface({ input: process.stdin })) {
      if (line !== 'ping') continue;
      try {
        say({ answer: (await ch.request(Buffer.from('ping'))).toString() });
      } catch (err) {
        say({ error: (err as { code?: string }).code, message: (err as Error).message });
      }
    }
    process.exit(0);
  }
} catch (err) {
  say({ error: (err as { code?: string }).code, message: (err as Error).message });
  process.exit(1);
}
