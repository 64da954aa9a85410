/**
 * The CNI specification 1.0.0 as the plugin needs it: the runtime's environment, the network
 * configuration on stdin, and errors as the spec's JSON. Pure functions, no I/O: the plugin
 * (plugin.ts) feeds them what it read and writes what they return.
 *
 * Spec: https://github.com/containernetworking/cni/blob/spec-v1.0.0/SPEC.md
 * ("Section 2: Execution Protocol", "Section 4: Plugin Delegation", "Error").
 */

/** Spec versions whose configuration and verbs this plugin understands. CHECK exists since 0.4.0. */
export const SUPPORTED_VERSIONS = ['0.4.0', '1.0.0'] as const;
export const CNI_VERSION = '1.0.0';

/** Well-known error codes ("Error codes 1-99 must not be used other than as specified here"). */
export const CniCode = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE_FAILURE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  /** Plugin-specific (>= 100): the agent answered but refused the request. */
  AGENT_REFUSED: 100,
  /** Plugin-specific: CHECK found no live @ringwire socket in the pod. */
  SOCKET_MISSING: 101,
} as const;

/** An error the plugin reports on stdout as {cniVersion, code, msg, details} with a non-zero exit. */
export class CniError extends Error {
  readonly code: number;
  readonly details: string | undefined;
  constructor(code: number, msg: string, details?: string) {
    super(msg);
    this.code = code;
    this.details = details;
  }

  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return { cniVersion, code: this.code, msg: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION';

/** The runtime's parameters (spec: "Parameters", passed as CNI_* environment variables). */
export interface CniEnv {
  command: CniCommand;
  containerId: string;
  /** Absent on DEL when the runtime no longer has the namespace (allowed by the spec). */
  netns: string | undefined;
  ifName: string;
  /** CNI_ARGS split into its KEY=VALUE pairs. */
  args: Record<string, string>;
  path: string[];
}

/** What each command requires (spec table "Parameters"): VERSION needs only CNI_COMMAND. */
const REQUIRED: Record<CniCommand, readonly string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  VERSION: [],
};

/** Reads the CNI_* variables; a missing or malformed one is error 4 naming it (as the spec requires). */
export function parseEnv(env: Record<string, string | undefined>): CniEnv {
  const command = env.CNI_COMMAND;
  if (command !== 'ADD' && command !== 'DEL' && command !== 'CHECK' && command !== 'VERSION') {
    throw new CniError(CniCode.INVALID_ENV, `CNI_COMMAND must be ADD, DEL, CHECK or VERSION, got ${command === undefined ? 'nothing' : JSON.stringify(command)}`);
  }
  const missing = REQUIRED[command].filter((k) => !env[k]);
  if (missing.length > 0) throw new CniError(CniCode.INVALID_ENV, `${command} needs ${missing.join(', ')} in the environment`);
  const containerId = env.CNI_CONTAINERID ?? '';
  // The spec: "alphanumeric, plus underscore (_), dot (.) and hyphen (-)", starting alphanumeric.
  if (command !== 'VERSION' && !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(containerId)) {
    throw new CniError(CniCode.INVALID_ENV, `CNI_CONTAINERID ${JSON.stringify(containerId)} is not a valid container id`);
  }
  const netns = env.CNI_NETNS || undefined;
  if (netns !== undefined && !netns.startsWith('/')) {
    throw new CniError(CniCode.INVALID_ENV, `CNI_NETNS must be an absolute path, got ${JSON.stringify(netns)}`);
  }
  return {
    command,
    containerId,
    netns,
    ifName: env.CNI_IFNAME ?? '',
    args: parseCniArgs(env.CNI_ARGS ?? ''),
    path: (env.CNI_PATH ?? '').split(':').filter(Boolean),
  };
}

/** CNI_ARGS: "FOO=BAR;ABC=123" (spec: "alphanumeric key-value pairs separated by semicolons"). */
export function parseCniArgs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(CniCode.INVALID_ENV, `CNI_ARGS: ${JSON.stringify(pair)} is not KEY=VALUE`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** ringwire's plugin configuration: the spec's common keys plus its own. */
export interface RingwireNetConf {
  cniVersion: string;
  name: string;
  type: string;
  /** Where the agent's CNI event socket listens (path or '@abstract'). */
  agentSocket: string;
  /** How long ADD/DEL/CHECK wait for the agent. */
  timeoutMs: number;
  /** Kubernetes namespaces whose pods get no socket (istio-cni's exclude_namespaces). */
  excludeNamespaces: string[];
  /** The previous plugin's result in a chain; passed through unchanged. */
  prevResult: unknown;
}

export const DEFAULT_AGENT_SOCKET = '/var/run/ringwire/cni.sock';
const OWN_KEYS = new Set(['agentSocket', 'timeoutMs', 'excludeNamespaces']);

/** Parses stdin. Bad JSON is error 6; a wrong shape is 7; an unsupported version is 1. */
export function parseNetConf(stdin: string, command: CniCommand): RingwireNetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CniCode.DECODE_FAILURE, 'the network configuration on stdin is not JSON', (err as Error).message);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CniError(CniCode.DECODE_FAILURE, 'the network configuration on stdin must be a JSON object');
  }
  const conf = raw as Record<string, unknown>;
  const version = conf.cniVersion;
  if (typeof version !== 'string' || version === '') throw new CniError(CniCode.INVALID_CONFIG, 'cniVersion is required');
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
    throw new CniError(CniCode.INCOMPATIBLE_VERSION, `cniVersion ${version} is not supported`, `supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  if (command === 'VERSION') return { cniVersion: version, name: '', type: '', agentSocket: DEFAULT_AGENT_SOCKET, timeoutMs: 0, excludeNamespaces: [], prevResult: undefined };
  for (const key of ['name', 'type'] as const) {
    if (typeof conf[key] !== 'string' || conf[key] === '') throw new CniError(CniCode.INVALID_CONFIG, `${key} is required and must be a string`);
  }
  const agentSocket = conf.agentSocket ?? DEFAULT_AGENT_SOCKET;
  if (typeof agentSocket !== 'string' || agentSocket === '' || agentSocket === '@') {
    throw new CniError(CniCode.INVALID_CONFIG, 'agentSocket must be a socket path or an @abstract name');
  }
  const timeoutMs = conf.timeoutMs ?? 10_000;
  if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 120_000) {
    throw new CniError(CniCode.INVALID_CONFIG, 'timeoutMs must be an integer between 1 and 120000');
  }
  const exclude = conf.excludeNamespaces ?? [];
  if (!Array.isArray(exclude) || !exclude.every((n) => typeof n === 'string')) {
    throw new CniError(CniCode.INVALID_CONFIG, 'excludeNamespaces must be a list of namespace names');
  }
  // "Plugins should return error 2 for a key they do not understand": only keys that look like ours
  // but are not (a typo such as "agentsocket") are refused; the spec's own keys pass.
  for (const key of Object.keys(conf)) {
    if (!OWN_KEYS.has(key) && [...OWN_KEYS].some((own) => own.toLowerCase() === key.toLowerCase())) {
      throw new CniError(CniCode.UNSUPPORTED_FIELD, `unsupported field ${key}: ${JSON.stringify(conf[key])}`, `did you mean one of ${[...OWN_KEYS].join(', ')}?`);
    }
  }
  const prevResult = conf.prevResult;
  if (prevResult !== undefined && (prevResult === null || typeof prevResult !== 'object' || Array.isArray(prevResult))) {
    throw new CniError(CniCode.INVALID_CONFIG, 'prevResult must be an object');
  }
  return { cniVersion: version, name: conf.name as string, type: conf.type as string, agentSocket, timeoutMs, excludeNamespaces: exclude as string[], prevResult };
}

/** The pod a Kubernetes runtime names in CNI_ARGS; undefined when the caller is not Kubernetes. */
export interface PodRef {
  namespace: string;
  name: string;
  uid: string | undefined;
}

export function podFromArgs(args: Record<string, string>): PodRef | undefined {
  const namespace = args.K8S_POD_NAMESPACE;
  const name = args.K8S_POD_NAME;
  if (!namespace || !name) return undefined;
  return { namespace, name, uid: args.K8S_POD_UID || undefined };
}

/** The best cniVersion to put in an error: the config's when it parsed that far. */
export function versionOf(stdin: string): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v)) return v;
  } catch {
    // not JSON: fall through
  }
  return CNI_VERSION;
}
