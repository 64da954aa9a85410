/**
 * Which instance of a service takes the next connection. Pure over the instances' state:
 *
 * - Only instances with room (inFlight < maxConnections) and matching the caller's label selector
 *   are candidates.
 * - Without weights: least in-flight connections; ties go to the instance picked least recently.
 * - With weights (config `routing.weights`, e.g. v1 90 / v2 10): a subset is drawn by weight among
 *   the subsets that have a candidate (weights of empty subsets are redistributed), then least
 *   in-flight within it. Instances in no weighted subset get no traffic, as with Istio subsets.
 */
import type { RoutingWeight } from './config.js';

export interface Instance {
  readonly version: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
  readonly maxConnections: number;
  inFlight: number;
  /** Sequence number of its last pick (0 = never), for fair ties. */
  lastPicked: number;
}

function labelsMatch(want: Readonly<Record<string, string>> | undefined, have: Readonly<Record<string, string>>): boolean {
  if (!want) return true;
  for (const [k, v] of Object.entries(want)) if (have[k] !== v) return false;
  return true;
}

function inSubset(w: RoutingWeight, i: Instance): boolean {
  return (w.version === undefined || w.version === i.version) && labelsMatch(w.labels, i.labels);
}

function leastInFlight<T extends Instance>(list: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const i of list) {
    if (!best || i.inFlight < best.inFlight || (i.inFlight === best.inFlight && i.lastPicked < best.lastPicked)) best = i;
  }
  return best;
}

/**
 * Picks an instance, or undefined when none can take a connection. `random` returns [0, 1)
 * (injected so tests are deterministic).
 */
export function pickInstance<T extends Instance>(
  instances: Iterable<T>,
  opts: { weights?: readonly RoutingWeight[] | undefined; labels?: Readonly<Record<string, string>> | undefined; random: () => number },
): T | undefined {
  const candidates = [...instances].filter((i) => i.inFlight < i.maxConnections && labelsMatch(opts.labels, i.labels));
  if (!opts.weights || opts.weights.length === 0) return leastInFlight(candidates);
  const groups = opts.weights
    .map((w) => ({ weight: w.weight, members: candidates.filter((i) => inSubset(w, i)) }))
    .filter((g) => g.weight > 0 && g.members.length > 0);
  const total = groups.reduce((s, g) => s + g.weight, 0);
  if (total === 0) return undefined;
  let r = opts.random() * total;
  for (const g of groups) {
    if (r < g.weight) return leastInFlight(g.members);
    r -= g.weight;
  }
  return leastInFlight(groups[groups.length - 1]!.members);
}
