/**
 * The far side of the `ringwire-agent` transport: a node agent (in this process, on the abstract
 * address argv[3]) and, registered through it, `echo` (requests echoed) and `sink` (counts messages,
 * answers a request with the count). Prints `listening` once both are registered.
 */
import { connectAgent, startAgent } from '../../lib/agent/index.js';

const [mode, address] = process.argv.slice(2) as ['busy' | 'doorbell', string];
await startAgent({
  config: { version: 1, listen: [address], identities: [{ match: { uid: process.getuid!() }, namespace: 'bench', serviceAccount: 'peer' }], services: { echo: { serve: ['*'] }, sink: { serve: ['*'] } } },
  metrics: false,
  log: () => {},
});
const client = await connectAgent({ address, poll: mode, maxRingBytes: 1 << 22 });
await client.register('echo', {}, (ch) => { ch.handle((req) => req); });
await client.register('sink', {}, (ch) => {
  let count = 0;
  ch.on('message', () => { count++; });
  ch.handle(() => {
    const out = Buffer.alloc(4);
    out.writeUInt32LE(count);
    count = 0;
    return out;
  });
});
process.stdout.write('listening\n');
