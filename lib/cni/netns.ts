/**
 * Network namespaces of pods, as the agent sees them (ztunnel's inpod/netns.rs): a namespace is
 * named by a path (CNI_NETNS: a bind mount under /var/run/netns, or /proc/PID/ns/net) and identified
 * by the inode of the nsfs file behind it, which is what tells a recycled path from the pod we knew.
 *
 * Sockets are opened inside a namespace by the addon on a native thread made for the call; the
 * calling (Node) thread never changes namespace. A socket keeps its namespace for life, and the
 * namespace lives as long as any socket in it: closing the pod's listener is what lets it go.
 */
import { statSync } from 'node:fs';
import { check, native, type NativeAddon } from '../native/native.js';
import { encodeAddress } from '../native/unix-socket.js';
import { ringwireError } from '../errors.js';

/** The addon's namespace calls (addon/netns.cc). Results are fds or -errno. */
interface NetnsAddon {
  netnsListen(nsPath: string, address: Uint8Array, backlog: number): number;
  netnsConnect(nsPath: string, address: Uint8Array): number;
}

function addon(): NativeAddon & NetnsAddon {
  return native() as NativeAddon & NetnsAddon;
}

/** Device and inode of the nsfs file: two paths with equal ids name the same namespace. */
export interface NetnsId {
  dev: number;
  ino: number;
}

/** The identity of the namespace at `path`, or undefined when nothing is there. */
export function netnsId(path: string): NetnsId | undefined {
  try {
    const st = statSync(path);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

/** The namespace the calling process runs in (for tests and for refusing the node's own namespace). */
export function ownNetnsId(): NetnsId {
  const id = netnsId('/proc/self/ns/net');
  if (!id) throw ringwireError('ERR_NATIVE', 'cannot stat /proc/self/ns/net');
  return id;
}

export function sameNetns(a: NetnsId | undefined, b: NetnsId | undefined): boolean {
  return a !== undefined && b !== undefined && a.dev === b.dev && a.ino === b.ino;
}

function checkPath(nsPath: string): void {
  if (typeof nsPath !== 'string' || !nsPath.startsWith('/') || nsPath.includes('\0')) {
    throw ringwireError('ERR_INVALID_ARG', `a network namespace path must be absolute, got ${JSON.stringify(nsPath)}`);
  }
}

/**
 * A listening SOCK_SEQPACKET fd bound to `address` ('@name' or a path as seen from inside the
 * namespace) inside the network namespace at `nsPath`. The caller owns the fd. ERR_NATIVE with
 * errno EINVAL when the path is not a network namespace, ENOENT when it does not exist, EADDRINUSE
 * when the name is taken there.
 */
export function listenInNetns(nsPath: string, address: string, backlog = 128): number {
  checkPath(nsPath);
  return check('netnsListen', addon().netnsListen(nsPath, encodeAddress(address), backlog), `${address} in ${nsPath}`);
}

/** A SOCK_SEQPACKET fd connected to `address` from inside the namespace at `nsPath`. */
export function connectInNetns(nsPath: string, address: string): number {
  checkPath(nsPath);
  return check('netnsConnect', addon().netnsConnect(nsPath, encodeAddress(address)), `${address} in ${nsPath}`);
}
