/** Running the agent CLI and agent-peer.js as child processes for the agent tests (70-74). */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { Children, Scratch } from './index.js';
import { connectAgent, type AgentClient } from '../../lib/agent/index.js';

const CLI = fileURLToPath(new URL('../../bin/ringwire.js', import.meta.url));
const PEER = fileURLToPath(new URL('../workers/agent-peer.js', import.meta.url));

let counter = 0;
/** A fresh abstract control socket name for one test. */
export function uniqueAgentAddress(tag: string): string {
  return `@rw-${tag}-${process.pid}-${++counter}`;
}

/** Line-by-line reader of a child's stream with "wait until a line matches". */
export class Lines {
  readonly all: string[] = [];
  #waiters: Array<{ pred: (l: string) => boolean; resolve: (l: string) => void }> = [];
  #ended = false;
  #endWaiters: Array<() => void> = [];

  constructor(stream: NodeJS.ReadableStream) {
    const rl = createInterface({ input: stream });
    rl.on('line', (l) => {
      this.all.push(l);
      this.#waiters = this.#waiters.filter((w) => (w.pred(l) ? (w.resolve(l), false) : true));
    });
    rl.on('close', () => { this.#ended = true; for (const w of this.#endWaiters) w(); });
  }

  /** Resolves with the first line (already seen or future) matching; rejects at end of stream. */
  waitFor(pred: (l: string) => boolean, from = 0): Promise<string> {
    const seen = this.all.slice(from).find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      if (this.#ended) return reject(new Error(`stream ended without a matching line; got:\n${this.all.join('\n')}`));
      this.#waiters.push({ pred, resolve });
      this.#endWaiters.push(() => reject(new Error(`stream ended without a matching line; got:\n${this.all.join('\n')}`)));
    });
  }

  json(): Array<Record<string, unknown>> {
    return this.all.flatMap((l) => { try { return [JSON.parse(l) as Record<string, unknown>]; } catch { return []; } });
  }
}

export interface AgentProcess {
  child: ChildProcess;
  stderr: Lines;
  configPath: string;
  writeConfig(config: object | string): void;
}

/** Starts `ringwire agent --config` with `config` written as YAML into dir; resolves once it listens. */
export async function startAgentProcess(children: Children, dir: string, config: object, name = 'agent.yaml'): Promise<AgentProcess> {
  const configPath = join(dir, name);
  const writeConfig = (c: object | string): void => writeFileSync(configPath, typeof c === 'string' ? c : stringify(c));
  writeConfig(config);
  const child = children.add(spawn(process.execPath, [CLI, 'agent', '--config', configPath], { stdio: ['ignore', 'ignore', 'pipe'] }));
  const stderr = new Lines(child.stderr!);
  await stderr.waitFor((l) => l.includes('listening on'));
  return { child, stderr, configPath, writeConfig };
}

export interface PeerProcess {
  child: ChildProcess;
  out: Lines;
  first: Record<string, unknown>;
}

/** Starts agent-peer.js (optionally behind a wrapper such as setpriv) and waits for its first line. */
export async function startAgentPeer(children: Children, job: object, wrapper: string[] = []): Promise<PeerProcess> {
  const argv = [...wrapper, process.execPath, PEER, JSON.stringify(job)];
  const child = children.add(spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] }));
  const out = new Lines(child.stdout!);
  const first = JSON.parse(await out.waitFor(() => true)) as Record<string, unknown>;
  return { child, out, first };
}

export function cliPath(): string {
  return CLI;
}

/** An agent config for tests: `address` to listen on, uid 0 as shop/orders, which may serve 'orders'; `extra` overrides. */
export function agentConfig(address: string, extra: object = {}): Record<string, unknown> {
  return {
    version: 1, listen: [address], reportIntervalSeconds: 0.1,
    identities: [{ match: { uid: 0 }, namespace: 'shop', serviceAccount: 'orders' }],
    services: { orders: { serve: ['cluster.local/ns/shop/sa/orders'] } },
    ...extra,
  };
}

/** An agent client of `address`, closed when the test's scratch is cleaned up. */
export async function agentClient(s: Scratch, address: string): Promise<AgentClient> {
  const c = await connectAgent({ address });
  c.on('error', () => {});
  s.defer(() => c.close());
  return c;
}
