/**
 * The far side of bench/agent-connect.ts: a node agent on argv[2] with `echo` registered through
 * it, and a direct channel listener on argv[3]; both echo requests. Prints `ready`.
 */
import { listen } from '../../lib/channel/server.js';
import { connectAgent, startAgent } from '../../lib/agent/index.js';

const [agentAddress, direct] = process.argv.slice(2) as [string, string];
await startAgent({
  config: { version: 1, listen: [agentAddress], identities: [{ match: { uid: process.getuid!() }, namespace: 'bench', serviceAccount: 'peer' }], services: { echo: { serve: ['*'] } } },
  metrics: false, log: () => {},
});
const client = await connectAgent({ address: agentAddress });
await client.register('echo', {}, (ch) => { ch.handle((r) => r); });
await listen(direct, {}, (ch) => { ch.handle((r) => r); });
process.stdout.write('ready\n');
