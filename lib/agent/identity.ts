/**
 * Who is on a control connection, from the kernel only: SO_PEERCRED (pid, uid, gid) and a pidfd for
 * that very process (SO_PEERPIDFD, taken by the kernel at connect time; pidfd_open(pid) at accept on
 * kernels before 6.5), then /proc/<pid>/ns/net and /proc/<pid>/cgroup, then the pidfd is checked
 * again: if it still names a live process with that pid, the /proc reads were about it and not
 * about a successor that recycled the pid. Config rules then map this to a workload identity.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { ringwireError } from '../errors.js';
import { native } from '../native/native.js';
import type { FdSocket, PeerCred } from '../native/unix-socket.js';
import type { IdentityMatch, IdentityRule } from './config.js';

const ENOPROTOOPT = 92;

export interface KernelIdentity {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /** Inode of the caller's network namespace. */
  readonly netns: number;
  /** The caller's cgroup paths (the unified v2 path first, then v1 hierarchies that are not '/'). */
  readonly cgroups: readonly string[];
}

/** A workload identity: spiffe://<trust domain>/ns/<namespace>/sa/<service account>. */
export interface WorkloadIdentity {
  readonly spiffe: string;
  /** The spiffe id without its scheme, as Istio writes principals: cluster.local/ns/shop/sa/orders. */
  readonly principal: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Where it came from: a config rule (its index) or the listener the peer connected on (pods). */
  readonly from: string;
  readonly pod?: string;
}

/** The identity a listener imposes on whoever connects to it (a pod's own socket; issue 14). */
export interface ListenerIdentity {
  spiffe: string;
  namespace?: string;
  serviceAccount?: string;
  pod?: string;
}

export function workloadIdentity(trustDomain: string, namespace: string, serviceAccount: string, from: string): WorkloadIdentity {
  const principal = `${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
  return { spiffe: `spiffe://${principal}`, principal, namespace, serviceAccount, from };
}

export function listenerWorkload(l: ListenerIdentity): WorkloadIdentity {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(l.spiffe);
  if (!m) throw ringwireError('ERR_INVALID_ARG', `identity.spiffe must look like spiffe://<trust domain>/ns/<namespace>/sa/<account>, got ${JSON.stringify(l.spiffe)}`);
  return {
    spiffe: l.spiffe, principal: l.spiffe.slice('spiffe://'.length),
    namespace: l.namespace ?? m[2]!, serviceAccount: l.serviceAccount ?? m[3]!, from: 'listener',
    ...(l.pod ? { pod: l.pod } : {}),
  };
}

function parseCgroups(text: string): string[] {
  const unified: string[] = [];
  const legacy: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') unified.push(m[3]!);
    else if (m[3] !== '/') legacy.push(m[3]!);
  }
  return [...unified, ...legacy];
}

/** The pid a pidfd refers to now: from /proc/self/fdinfo; -1 once that process has been reaped. */
function pidfdPid(pidfd: number): number {
  const m = /^Pid:\s*(-?\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${pidfd}`, 'utf8'));
  return m ? Number(m[1]) : -1;
}

/**
 * Reads the peer of an accepted control socket. Throws ERR_AGENT_PROTOCOL when the kernel cannot
 * vouch for it (the process already exited, its pid was recycled, or /proc is unreadable).
 */
export function readKernelIdentity(sock: FdSocket): KernelIdentity {
  const cred: PeerCred = sock.peerCred();
  const addon = native();
  let pidfd = addon.peerPidfd(sock.fd);
  if (pidfd === -ENOPROTOOPT) pidfd = addon.pidfdOpen(cred.pid);
  if (pidfd < 0) throw ringwireError('ERR_AGENT_PROTOCOL', `cannot take a pidfd for pid ${cred.pid} (errno ${-pidfd}); the caller is gone`);
  try {
    if (pidfdPid(pidfd) !== cred.pid) throw ringwireError('ERR_AGENT_PROTOCOL', `pid ${cred.pid} exited before its identity could be read`);
    let netns: number;
    let cgroups: string[];
    try {
      const link = readlinkSync(`/proc/${cred.pid}/ns/net`);
      const m = /^net:\[(\d+)\]$/.exec(link);
      if (!m) throw new Error(`unexpected ${link}`);
      netns = Number(m[1]);
      cgroups = parseCgroups(readFileSync(`/proc/${cred.pid}/cgroup`, 'utf8'));
    } catch (err) {
      throw ringwireError('ERR_AGENT_PROTOCOL', `cannot read /proc/${cred.pid}: ${(err as Error).message}`, { cause: err });
    }
    // Still the same live process: what /proc said was about it, not about a pid successor.
    if (pidfdPid(pidfd) !== cred.pid) throw ringwireError('ERR_AGENT_PROTOCOL', `pid ${cred.pid} exited while its identity was read; refused`);
    return { ...cred, netns, cgroups };
  } finally {
    addon.close(pidfd);
  }
}

/** `*` matches any run of characters; everything else literally. */
export function globMatch(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  const parts = pattern.split('*');
  if (!value.startsWith(parts[0]!) || !value.endsWith(parts[parts.length - 1]!)) return false;
  let at = parts[0]!.length;
  const end = value.length - parts[parts.length - 1]!.length;
  if (at > end) return false;
  for (const part of parts.slice(1, -1)) {
    const i = value.indexOf(part, at);
    if (i < 0 || i + part.length > end) return false;
    at = i + part.length;
  }
  return true;
}

function matches(m: IdentityMatch, k: KernelIdentity): boolean {
  if (m.uid !== undefined && m.uid !== k.uid) return false;
  if (m.gid !== undefined && m.gid !== k.gid) return false;
  if (m.netns !== undefined && m.netns !== k.netns) return false;
  if (m.cgroup !== undefined && !k.cgroups.some((c) => globMatch(m.cgroup!, c))) return false;
  return true;
}

/** First matching rule's identity, or null: the caller is anonymous (no principal). Pure. */
export function resolveIdentity(k: KernelIdentity, rules: readonly IdentityRule[], trustDomain: string): WorkloadIdentity | null {
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (matches(r.match, k)) return workloadIdentity(trustDomain, r.namespace, r.serviceAccount, `identities[${i}]`);
  }
  return null;
}
