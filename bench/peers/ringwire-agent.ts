/**
 * `ringwire-agent`: the same channel as `ringwire-channel` (busy-polling, same ring sizes), but
 * brokered by a node agent: the child runs the agent and registers `echo` and `sink`; this process
 * asks the agent for them (connect through the agent, then ring to ring). The round trip should
 * match `ringwire-channel`: the agent is not on the data path.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connectAgent } from '../../lib/agent/index.js';
import { maxMessageSize } from '../../lib/ring/layout.js';
import { pinnedNode } from '../pin.js';
import type { Transport } from '../transport.js';
import { channelPeer, RING_BYTES } from './ringwire-channel.js';

const peerScript = fileURLToPath(new URL('./ringwire-agent-peer.js', import.meta.url));
const SETUP_MS = 10_000;

export const ringwireAgent: Transport = {
  name: 'ringwire-agent',
  distance: 'process',
  description: 'the ringwire-channel channel brokered by the node agent (svc:echo), both sides busy-polling',
  maxSize: maxMessageSize(RING_BYTES),
  open: async (ctx) => {
    const address = `@ringwire-bench-${process.pid}-${Date.now()}`;
    const [cmd, argv] = pinnedNode(ctx.peerCore, peerScript, ['busy', address]);
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    const kill = async (): Promise<void> => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    };
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('bench: ringwire-agent peer did not start')), SETUP_MS);
        child.stdout!.once('data', () => { clearTimeout(timer); resolve(); });
        child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`bench: ringwire-agent peer exited with ${code}`)); });
      });
      const client = await connectAgent({ address, reconnect: false, poll: 'busy', sendRingBytes: RING_BYTES, receiveRingBytes: RING_BYTES });
      const pp = await client.connect('echo');
      const sk = await client.connect('sink');
      return channelPeer(pp, sk, async () => { client.close(); await kill(); });
    } catch (err) {
      await kill();
      throw err;
    }
  },
};
