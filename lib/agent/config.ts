/**
 * The agent's configuration: YAML (the `yaml` package) checked against one JSON schema (ajv), so a
 * bad file is refused as a whole with the offending path (`/policies/0/action: must be equal to one
 * of the allowed values`), and defaults are filled in one place. docs/agent.md is the reference.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ringwireError } from '../errors.js';

/** Which processes get which workload identity; every field given must match (first rule wins). */
export interface IdentityMatch {
  uid?: number;
  gid?: number;
  /** Glob over the cgroup path from /proc/<pid>/cgroup (`*` matches any run of characters). */
  cgroup?: string;
  /** The network namespace inode (`readlink /proc/<pid>/ns/net` = net:[INODE]). */
  netns?: number;
}

export interface IdentityRule {
  match: IdentityMatch;
  namespace: string;
  serviceAccount: string;
}

export interface RoutingWeight {
  version?: string;
  labels?: Record<string, string>;
  weight: number;
}

export interface ServiceConfig {
  /** Principals allowed to register this name (same matching as policy principals). */
  serve: string[];
  routing?: { weights: RoutingWeight[] };
}

export interface PolicySource {
  principals?: string[];
  notPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
}

export interface PolicyRule {
  from?: Array<{ source: PolicySource }>;
}

/** Istio's AuthorizationPolicy, cut to what a connect carries: who (source) and which service. */
export interface Policy {
  name: string;
  action: 'ALLOW' | 'DENY';
  /** Services the policy applies to (as Istio's selector picks workloads); absent: all. */
  selector?: { services: string[] };
  rules?: PolicyRule[];
}

export interface Limits {
  controlConnectionsPerIdentity: number;
  connectionsPerIdentity: number;
  registrationsPerIdentity: number;
  /** Connect requests per second per control connection (token bucket, burst of the same size). */
  connectsPerSecond: number;
}

export interface AgentConfig {
  version: 1;
  trustDomain: string;
  listen: string[];
  metrics?: { port?: number; host?: string; socket?: string };
  identities: IdentityRule[];
  services: Record<string, ServiceConfig>;
  policies: Policy[];
  limits: Limits;
  /** Seconds between the peers' counter reports. */
  reportIntervalSeconds: number;
}

const stringList = { type: 'array', items: { type: 'string', minLength: 1 } } as const;
const SERVICE_NAME = '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$';

export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['version'],
  properties: {
    version: { const: 1 },
    trustDomain: { type: 'string', pattern: '^[a-z0-9.-]+$', default: 'cluster.local' },
    listen: { type: 'array', items: { type: 'string', minLength: 2 }, minItems: 1, default: ['@ringwire'] },
    metrics: {
      type: 'object', additionalProperties: false,
      properties: { port: { type: 'integer', minimum: 0, maximum: 65535 }, host: { type: 'string' }, socket: { type: 'string', minLength: 1 } },
    },
    identities: {
      type: 'array', default: [],
      items: {
        type: 'object', additionalProperties: false, required: ['match', 'namespace', 'serviceAccount'],
        properties: {
          match: {
            type: 'object', additionalProperties: false, minProperties: 1,
            properties: {
              uid: { type: 'integer', minimum: 0 }, gid: { type: 'integer', minimum: 0 },
              cgroup: { type: 'string', minLength: 1 }, netns: { type: 'integer', minimum: 1 },
            },
          },
          namespace: { type: 'string', pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' },
          serviceAccount: { type: 'string', pattern: '^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$' },
        },
      },
    },
    services: {
      type: 'object', default: {},
      propertyNames: { pattern: SERVICE_NAME },
      additionalProperties: {
        type: 'object', additionalProperties: false, required: ['serve'],
        properties: {
          serve: stringList,
          routing: {
            type: 'object', additionalProperties: false, required: ['weights'],
            properties: {
              weights: {
                type: 'array', minItems: 1,
                items: {
                  type: 'object', additionalProperties: false, required: ['weight'],
                  properties: {
                    version: { type: 'string', minLength: 1 },
                    labels: { type: 'object', additionalProperties: { type: 'string' } },
                    weight: { type: 'integer', minimum: 0, maximum: 10000 },
                  },
                },
              },
            },
          },
        },
      },
    },
    policies: {
      type: 'array', default: [],
      items: {
        type: 'object', additionalProperties: false, required: ['name', 'action'],
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 253 },
          action: { enum: ['ALLOW', 'DENY'] },
          selector: {
            type: 'object', additionalProperties: false, required: ['services'],
            properties: { services: { type: 'array', items: { type: 'string', pattern: SERVICE_NAME } } },
          },
          rules: {
            type: 'array',
            items: {
              type: 'object', additionalProperties: false,
              properties: {
                from: {
                  type: 'array', minItems: 1,
                  items: {
                    type: 'object', additionalProperties: false, required: ['source'],
                    properties: {
                      source: {
                        type: 'object', additionalProperties: false, minProperties: 1,
                        properties: { principals: stringList, notPrincipals: stringList, namespaces: stringList, notNamespaces: stringList },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
    limits: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        controlConnectionsPerIdentity: { type: 'integer', minimum: 1, default: 64 },
        connectionsPerIdentity: { type: 'integer', minimum: 1, default: 1024 },
        registrationsPerIdentity: { type: 'integer', minimum: 1, default: 32 },
        connectsPerSecond: { type: 'integer', minimum: 1, default: 20000 },
      },
    },
    reportIntervalSeconds: { type: 'number', exclusiveMinimum: 0, maximum: 3600, default: 5 },
  },
} as const;

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
const validateConfig = ajv.compile(CONFIG_SCHEMA);

function describe(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => {
    const where = e.instancePath === '' ? '/' : e.instancePath;
    const extra = e.keyword === 'additionalProperties' ? ` (${(e.params as { additionalProperty: string }).additionalProperty})`
      : e.keyword === 'enum' ? ` (${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')})` : '';
    return `${where}: ${e.message}${extra}`;
  }).join('; ');
}

/** Validates a parsed object (defaults filled in on a copy); throws ERR_AGENT_CONFIG naming every offending path. */
export function checkConfig(value: unknown, source = 'config'): AgentConfig {
  const copy: unknown = structuredClone(value ?? {});
  if (!validateConfig(copy)) throw ringwireError('ERR_AGENT_CONFIG', `${source}: ${describe(validateConfig.errors)}`);
  const cfg = copy as AgentConfig;
  const names = new Set<string>();
  cfg.policies.forEach((p, i) => {
    if (names.has(p.name)) throw ringwireError('ERR_AGENT_CONFIG', `${source}: /policies/${i}/name: duplicate policy name ${JSON.stringify(p.name)}`);
    names.add(p.name);
  });
  for (const [name, svc] of Object.entries(cfg.services)) {
    const weights = svc.routing?.weights;
    if (weights && weights.every((w) => w.weight === 0)) throw ringwireError('ERR_AGENT_CONFIG', `${source}: /services/${name}/routing/weights: at least one weight must be above 0`);
  }
  return cfg;
}

/** Parses YAML text and validates it. */
export function parseConfig(text: string, source = 'config'): AgentConfig {
  let value: unknown;
  try {
    value = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` line ${err.linePos[0].line}, column ${err.linePos[0].col}` : '';
    throw ringwireError('ERR_AGENT_CONFIG', `${source}:${where} is not valid YAML: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
  return checkConfig(value, source);
}

export function loadConfigFile(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw ringwireError('ERR_AGENT_CONFIG', `${path}: cannot read: ${(err as Error).message}`, { cause: err });
  }
  return parseConfig(text, path);
}
