/**
 * Authorization, as ztunnel's rbac.rs: one pure function, "may this source reach this service?",
 * over policies shaped like Istio's AuthorizationPolicy (https://istio.io/latest/docs/reference/config/security/authorization-policy/):
 *
 * - Policies apply to the services their selector names (no selector: every service).
 * - A DENY policy that matches denies, whatever else applies (DENY is evaluated first).
 * - If any ALLOW policy applies to the service, the connect is allowed only when one matches
 *   (a service with ALLOW policies denies everything else); with none, it is allowed.
 * - A policy matches when any of its rules matches; a rule without `from` matches every source; a
 *   rule's `from` entries are alternatives, and within one `source` every field given must match.
 *   A policy without rules matches nothing (so `ALLOW` with no rules denies all, as in Istio).
 * - Principals and namespaces match exactly, by prefix (`abc*`), suffix (`*abc`) or `*` (any
 *   authenticated source). An anonymous source (no workload identity) has no principal: it matches
 *   no `principals`/`namespaces` and every `notPrincipals`/`notNamespaces`.
 *
 * compilePolicies() indexes policies by service once per config, so a lookup looks only at the
 * policies of that service plus those without a selector, however many policies exist.
 */
import type { Policy, PolicySource } from './config.js';
import type { WorkloadIdentity } from './identity.js';

export interface ConnectAttempt {
  source: WorkloadIdentity | null;
  service: string;
}

export type Decision =
  | { allowed: true; policy: string | null }
  | { allowed: false; policy: string | null; reason: string };

/** A string matcher compiled from Istio-style values: exact, `prefix*`, `*suffix`, `*`. */
class ValueSet {
  #exact = new Set<string>();
  #prefixes: string[] = [];
  #suffixes: string[] = [];
  #any = false;

  constructor(values: readonly string[]) {
    for (const v of values) {
      if (v === '*') this.#any = true;
      else if (v.endsWith('*')) this.#prefixes.push(v.slice(0, -1));
      else if (v.startsWith('*')) this.#suffixes.push(v.slice(1));
      else this.#exact.add(v);
    }
  }

  /** Whether `value` matches; an absent value (anonymous) matches nothing, not even `*`. */
  has(value: string | undefined): boolean {
    if (value === undefined || value === '') return false;
    return this.#any || this.#exact.has(value) || this.#prefixes.some((p) => value.startsWith(p)) || this.#suffixes.some((s) => value.endsWith(s));
  }
}

type SourceMatcher = (id: WorkloadIdentity | null) => boolean;

function compileSource(s: PolicySource): SourceMatcher {
  const checks: SourceMatcher[] = [];
  const principal = (id: WorkloadIdentity | null): string | undefined => id?.principal;
  const namespace = (id: WorkloadIdentity | null): string | undefined => id?.namespace;
  if (s.principals) { const set = new ValueSet(s.principals); checks.push((id) => set.has(principal(id))); }
  if (s.notPrincipals) { const set = new ValueSet(s.notPrincipals); checks.push((id) => !set.has(principal(id))); }
  if (s.namespaces) { const set = new ValueSet(s.namespaces); checks.push((id) => set.has(namespace(id))); }
  if (s.notNamespaces) { const set = new ValueSet(s.notNamespaces); checks.push((id) => !set.has(namespace(id))); }
  return (id) => checks.every((c) => c(id));
}

interface CompiledPolicy {
  name: string;
  action: 'ALLOW' | 'DENY';
  matches: SourceMatcher;
}

function compilePolicy(p: Policy): CompiledPolicy {
  const rules = (p.rules ?? []).map((r) => {
    if (!r.from) return () => true;
    const sources = r.from.map((f) => compileSource(f.source));
    return (id: WorkloadIdentity | null) => sources.some((m) => m(id));
  });
  return { name: p.name, action: p.action, matches: (id) => rules.some((r) => r(id)) };
}

export interface CompiledPolicies {
  /** Policies of one service: its own (by selector) then those without a selector, config order kept. */
  forService(service: string): readonly CompiledPolicy[];
  readonly count: number;
}

export function compilePolicies(policies: readonly Policy[]): CompiledPolicies {
  const global: CompiledPolicy[] = [];
  const byService = new Map<string, CompiledPolicy[]>();
  for (const p of policies) {
    const c = compilePolicy(p);
    if (!p.selector) {
      global.push(c);
      continue;
    }
    for (const s of new Set(p.selector.services)) {
      let list = byService.get(s);
      if (!list) byService.set(s, (list = []));
      list.push(c);
    }
  }
  const merged = new Map<string, CompiledPolicy[]>();
  return {
    count: policies.length,
    forService(service) {
      let list = merged.get(service);
      if (!list) {
        list = [...(byService.get(service) ?? []), ...global];
        if (merged.size < 65536) merged.set(service, list);
      }
      return list;
    },
  };
}

/** The decision for one connect attempt. Pure: same policies and attempt, same answer. */
export function authorize(policies: CompiledPolicies, attempt: ConnectAttempt): Decision {
  const applicable = policies.forService(attempt.service);
  for (const p of applicable) {
    if (p.action === 'DENY' && p.matches(attempt.source)) {
      return { allowed: false, policy: p.name, reason: `DENY policy ${JSON.stringify(p.name)} matches ${attempt.source?.spiffe ?? 'an anonymous caller'} -> ${attempt.service}` };
    }
  }
  let firstAllow: CompiledPolicy | undefined;
  for (const p of applicable) {
    if (p.action !== 'ALLOW') continue;
    firstAllow ??= p;
    if (p.matches(attempt.source)) return { allowed: true, policy: p.name };
  }
  if (!firstAllow) return { allowed: true, policy: null };
  const names = applicable.filter((p) => p.action === 'ALLOW').map((p) => JSON.stringify(p.name)).join(', ');
  return { allowed: false, policy: firstAllow.name, reason: `no ALLOW policy of ${attempt.service} (${names}) matches ${attempt.source?.spiffe ?? 'an anonymous caller'}` };
}

/** Whether `id` may register `service` given its `serve` principals (same matching as policies). */
export function mayServe(serve: readonly string[] | undefined, id: WorkloadIdentity | null): boolean {
  if (!serve) return false;
  return new ValueSet(serve).has(id?.principal);
}
