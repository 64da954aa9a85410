/**
 * A service or client process for the agent tests (70-74). argv[2] is a JSON job:
 *   { address, serve: NAME, version? }  registers NAME and answers each request with `${version}:${request}`
 *   { address, connect: NAME, count? }  connects through the agent, sends `count` requests, reports
 *   { address, svc: NAME }              connect('svc:NAME') through the shared client, one request, close, exit by itself
 * It prints JSON lines: { ready, identity, pid[, answers] } once registered/connected, { done, answers }
 * or { error: code, message }. A connected client keeps its channel until stdin ends.
 */
import { connect, connectAgent } from '../../lib/agent/index.js';

const job = JSON.parse(process.argv[2]!) as { address: string; serve?: string; version?: string; connect?: string; svc?: string; count?: number };
const say = (o: object): void => { process.stdout.write(`${JSON.stringify(o)}\n`); };

try {
  if (job.svc) {
    // connect('svc:NAME') with the shared client ($RINGWIRE_AGENT): nothing to close but the channel,
    // and the process must then exit on its own.
    process.env.RINGWIRE_AGENT = job.address;
    const ch = await connect(`svc:${job.svc}`);
    say({ done: true, answers: [(await ch.request(Buffer.from('svc'))).toString()] });
    await ch.close();
  } else {
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
      // Keeps the channel open until the test closes stdin or kills us.
      process.stdin.resume();
      process.stdin.once('end', () => process.exit(0));
    }
  }
} catch (err) {
  say({ error: (err as { code?: string }).code, message: (err as Error).message });
  process.exit(1);
}
