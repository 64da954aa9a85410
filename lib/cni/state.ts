/**
 * The pod manager's state file: the pods the agent serves, so that a restarted agent re-creates
 * every pod's socket (istio-cni reconciles the same way, from its own records of enrolled pods).
 * Written whole to a temporary file and renamed over the old one, so a crash leaves either the old
 * or the new state, never half of one. A file that does not parse is set aside, not trusted.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { PodRef } from './spec.js';

export const STATE_VERSION = 1;

export interface PodRecord {
  containerId: string;
  ifName: string;
  /** CNI_NETNS as the runtime gave it. */
  netns: string;
  /** Device and inode of that namespace when it was added: a path now naming another one is stale. */
  netnsDev: number;
  netnsIno: number;
  pod?: PodRef;
  serviceAccount?: string;
  addedAt: string;
}

interface StateFile {
  version: typeof STATE_VERSION;
  pods: PodRecord[];
}

function validRecord(r: unknown): r is PodRecord {
  const p = r as Partial<PodRecord> | null;
  return (
    p !== null &&
    typeof p === 'object' &&
    typeof p.containerId === 'string' &&
    typeof p.ifName === 'string' &&
    typeof p.netns === 'string' &&
    p.netns.startsWith('/') &&
    Number.isInteger(p.netnsDev) &&
    Number.isInteger(p.netnsIno) &&
    (p.pod === undefined || (typeof p.pod === 'object' && p.pod !== null && typeof p.pod.namespace === 'string' && typeof p.pod.name === 'string'))
  );
}

/**
 * The records in `path`. Missing file: none. A file that is not valid state is renamed to
 * `path.corrupt-<time>` and reported through `warn`, so the evidence survives and the agent starts.
 * Individual bad records are dropped with a warning.
 */
export function loadState(path: string, warn: (msg: string) => void): PodRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  let parsed: Partial<StateFile> | null;
  try {
    parsed = JSON.parse(text) as Partial<StateFile>;
  } catch {
    parsed = null;
  }
  if (parsed === null || parsed.version !== STATE_VERSION || !Array.isArray(parsed.pods)) {
    const aside = `${path}.corrupt-${Date.now()}`;
    renameSync(path, aside);
    warn(`state file ${path} is not version ${STATE_VERSION} state; moved to ${aside} and starting empty`);
    return [];
  }
  const good = parsed.pods.filter(validRecord);
  if (good.length !== parsed.pods.length) warn(`state file ${path}: dropped ${parsed.pods.length - good.length} malformed pod records`);
  return good;
}

export function saveState(path: string, pods: readonly PodRecord[]): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  const body: StateFile = { version: STATE_VERSION, pods: [...pods] };
  writeFileSync(tmp, `${JSON.stringify(body, null, 1)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}
