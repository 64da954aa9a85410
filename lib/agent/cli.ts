/**
 * `ringwire agent --config agent.yaml`: the node agent in the foreground (access log as JSON lines
 * on stderr; SIGHUP reloads the file, keeping the old config if the new one is bad; SIGTERM/SIGINT
 * drain and exit). `ringwire agent status`: registered services, connections and recent denials.
 */
import { parseArgs } from 'node:util';
import { ringwireError } from '../errors.js';
import { startAgent, type Agent, type AgentStatus } from './agent.js';
import { AgentClient } from './client.js';

export const AGENT_USAGE = `usage: ringwire agent --config FILE [--listen ADDRESS]...
       ringwire agent status [--address ADDRESS] [--json]
  --config   YAML configuration (docs/agent.md); a bad file exits 1 naming the offending path
  --listen   control socket, '@name' (abstract) or a path; repeatable; default: the config's listen
  --address  the agent to ask (status); default $RINGWIRE_AGENT or @ringwire
SIGHUP reloads the config file; SIGTERM drains and exits.`;

function note(text: string): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), agent: text })}\n`);
}

export function formatStatus(s: AgentStatus): string {
  const lines = [`agent pid ${s.pid}; ${s.sessions} control connections; listening on ${s.listeners.map((l) => l.address).join(', ')}`];
  lines.push('services:');
  const names = Object.keys(s.services).sort();
  if (names.length === 0) lines.push('  (none)');
  for (const name of names) {
    for (const i of s.services[name]!) {
      lines.push(`  ${name}  ${i.instance}  pid ${i.pid}  ${i.identity ?? 'anonymous'}  version ${i.version ?? '-'}  in-flight ${i.inFlight}${i.maxConnections === null ? '' : `/${i.maxConnections}`}`);
    }
  }
  lines.push(`connections: ${s.connections.length}`);
  for (const c of s.connections) lines.push(`  #${c.channel}  ${c.source ?? 'anonymous'} (pid ${c.sourcePid}) -> ${c.service} [${c.instance}]  since ${c.openedAt}  ${c.bytesSent}/${c.bytesReceived} bytes`);
  lines.push(`recent denials: ${s.recentDenials.length}`);
  for (const d of s.recentDenials) lines.push(`  ${d.time}  ${d.src.identity ?? `anonymous uid ${d.src.uid}`} -> ${d.dst.service}: ${d.reason}`);
  return lines.join('\n');
}

async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { address: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } }, strict: true });
  if (values.help) {
    console.log(AGENT_USAGE);
    return 0;
  }
  const client = await AgentClient.connect({ ...(values.address ? { address: values.address } : {}), reconnect: false });
  try {
    const s = await client.status();
    console.log(values.json ? JSON.stringify(s, null, 2) : formatStatus(s));
    return 0;
  } finally {
    client.close();
  }
}

export async function agentCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'status') return statusCommand(argv.slice(1));
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, listen: { type: 'string', multiple: true }, help: { type: 'boolean' } }, strict: true });
  if (values.help) {
    console.log(AGENT_USAGE);
    return 0;
  }
  if (!values.config) throw ringwireError('ERR_INVALID_ARG', `--config is required\n${AGENT_USAGE}`);
  const agent = await startAgent({ configPath: values.config, ...(values.listen ? { listen: values.listen } : {}) });
  agent.on('error', (err) => note(`error: ${err.message}`));
  agent.on('refused', (reason) => note(`refused a control connection: ${reason}`));
  note(`listening on ${agent.addresses.join(', ')}${agent.metricsAddresses.length ? `; metrics on ${agent.metricsAddresses.join(', ')}` : ''}`);
  await reloadUntilStopped(agent, values.config, note);
  await agent.close();
  return 0;
}

/**
 * The daemon's foreground life: SIGHUP reloads `configPath` (a bad one keeps the old config, and
 * says why), SIGTERM or SIGINT returns so the caller drains and closes.
 */
export async function reloadUntilStopped(agent: Agent, configPath: string, note: (line: string) => void): Promise<void> {
  const onHup = (): void => {
    try {
      const { revoked } = agent.reload();
      note(`reloaded ${configPath}; ${revoked} channels revoked`);
    } catch (err) {
      note(`reload failed, keeping the old config: ${(err as Error).message}`);
    }
  };
  process.on('SIGHUP', onHup);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  process.off('SIGHUP', onHup);
  note('draining');
}
