/**
 * `ringwire node-agent`: the DaemonSet's agent container. The node agent (lib/agent) with the pod
 * manager embedded: the agent's control sockets in the node's namespace, the CNI event socket the
 * plugin calls, and one `@ringwire` inside each pod. SIGHUP reloads the agent's configuration;
 * SIGTERM closes the pod sockets (their state stays for the next start) and drains the agent.
 */
import { parseArgs } from 'node:util';
import { ringwireError } from '../errors.js';
import { startAgent } from '../agent/index.js';
import { reloadUntilStopped } from '../agent/cli.js';
import { inClusterApi, serviceAccountFromApi } from './kube.js';
import { startPodManager } from './pod-manager.js';
import { DEFAULT_AGENT_SOCKET } from './spec.js';

export const NODE_AGENT_USAGE = `usage: ringwire node-agent --config FILE [options]
  --config      the agent's YAML configuration (docs/agent.md)
  --listen      the node's control socket(s), overriding the config's listen (repeatable)
  --cni-socket  where the CNI plugin reaches the agent; default ${DEFAULT_AGENT_SOCKET}
  --state       the pods state file; default /var/lib/ringwire/pods.json
  --pod-socket  the name each pod gets inside its namespace; default @ringwire`;

export async function nodeAgentCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      listen: { type: 'string', multiple: true },
      'cni-socket': { type: 'string' },
      state: { type: 'string' },
      'pod-socket': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(NODE_AGENT_USAGE);
    return 0;
  }
  if (!values.config) throw ringwireError('ERR_INVALID_ARG', `--config is required\n${NODE_AGENT_USAGE}`);
  const note = (msg: string): void => void process.stderr.write(`ringwire node-agent: ${msg}\n`);
  const agent = await startAgent({ configPath: values.config, ...(values.listen ? { listen: values.listen } : {}) });
  agent.on('error', (err) => note(`error: ${err.message}`));
  // In a cluster a pod's service account comes from the API server; elsewhere every pod is 'default'.
  const api = inClusterApi();
  let pods;
  try {
    pods = await startPodManager({
      host: agent,
      eventSocket: values['cni-socket'] ?? DEFAULT_AGENT_SOCKET,
      stateFile: values.state ?? '/var/lib/ringwire/pods.json',
      trustDomain: agent.config.trustDomain,
      ...(api ? { serviceAccountOf: serviceAccountFromApi(api) } : {}),
      ...(values['pod-socket'] ? { podSocket: values['pod-socket'] } : {}),
    });
  } catch (err) {
    await agent.close();
    throw err;
  }
  note(`listening on ${agent.addresses.join(', ')}; CNI events on ${pods.eventSocket}; ${pods.pods().length} pods restored; service accounts ${api ? `from the API server at ${api.host}` : "are all 'default' (not in a cluster)"}`);
  await reloadUntilStopped(agent, values.config, note);
  await pods.close();
  await agent.close();
  return 0;
}
