/**
 * ringwire/agent: the node agent (startAgent, `ringwire agent`) and its client (connectAgent,
 * connect('svc:NAME')). docs/agent.md describes the model, the config and the control protocol.
 */
import type { Channel } from '../channel/channel.js';
import { connect as connectChannel, type ConnectOptions } from '../channel/connect.js';
import { AgentClient, type AgentClientOptions } from './client.js';

export { Agent, startAgent, type AgentOptions, type AddListenerOptions, type AgentStatus } from './agent.js';
export { AgentClient, connectAgent, type AgentClientOptions, type RegisterOptions, type Registration } from './client.js';
export { checkConfig, parseConfig, loadConfigFile, CONFIG_SCHEMA, type AgentConfig, type Policy } from './config.js';
export { authorize, compilePolicies, mayServe, type Decision, type ConnectAttempt } from './policy.js';
export { pickInstance, type Instance } from './routing.js';
export { resolveIdentity, readKernelIdentity, type KernelIdentity, type WorkloadIdentity, type ListenerIdentity } from './identity.js';
export { CONTROL_VERSION, DEFAULT_AGENT_ADDRESS } from './protocol.js';
export { agentCommand } from './cli.js';

const SVC = 'svc:';
let shared: Promise<AgentClient> | undefined;
/** Channels opened through connect('svc:...') and not yet closed. */
let sharedUsers = 0;

/** The process-wide client `connect('svc:...')` uses ($RINGWIRE_AGENT or '@ringwire'), made on first use. */
export function defaultAgentClient(o: AgentClientOptions = {}): Promise<AgentClient> {
  if (!shared) {
    const made = AgentClient.connect(o);
    shared = made;
    made.catch(() => { if (shared === made) shared = undefined; });
  }
  return shared;
}

/**
 * Once the last svc: channel closed and nobody registered a name on the shared client, its control
 * connection is closed too, so a script that connected by name can exit; the next connect('svc:...')
 * opens a new one.
 */
function releaseShared(): void {
  if (--sharedUsers > 0 || !shared) return;
  const current = shared;
  current.then((c) => {
    if (sharedUsers === 0 && shared === current && c.registrations === 0) {
      shared = undefined;
      c.close();
    }
  }, () => {});
}

/**
 * connect() that also takes 'svc:NAME': a channel to an instance of NAME brokered by the node
 * agent. Any other address goes to the channel layer's connect().
 */
export async function connect(address: string, opts: ConnectOptions & { labels?: Record<string, string> } = {}): Promise<Channel> {
  if (typeof address !== 'string' || !address.startsWith(SVC)) return connectChannel(address, opts);
  sharedUsers++;
  let ch: Channel;
  try {
    const client = await defaultAgentClient(opts);
    ch = await client.connect(address.slice(SVC.length), opts.labels ? { labels: opts.labels } : {});
  } catch (err) {
    releaseShared();
    throw err;
  }
  ch.once('close', releaseShared);
  return ch;
}
