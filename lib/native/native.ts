/**
 * Loads the native addon and turns its -errno results into typed errors. node-gyp-build picks the
 * file: build/Release/ringwire.node when it was built from source, else the prebuild in
 * prebuilds/<platform>-<arch>/ that matches this Node (PREBUILDS_ONLY=1 skips the source build). The addon only makes system calls; every policy (validation, retries, ownership) lives in
 * the TypeScript that uses it. Internal to ringwire: Region, EventFd and FdSocket are the public face.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';
import { ringwireError, type RingwireError } from '../errors.js';

/** The poller the addon exposes: one uv_poll_t on one fd. Results are 0 or -errno. */
export interface NativePoller {
  open(fd: number): number;
  start(events: number, cb: (status: number, events: number) => void): number;
  stop(): number;
  close(): number;
}

/** The addon's exports. Numbers returned are results: >= 0 on success, -errno on failure. */
export interface NativeAddon {
  memfdCreate(name: string): number;
  open(path: string, writable: boolean): number;
  ftruncate(fd: number, size: number): number;
  /** out = [st_size, st_mode] */
  fstat(fd: number, out: Float64Array): number;
  addSeals(fd: number, seals: number): number;
  getSeals(fd: number): number;
  mmap(fd: number, offset: number, length: number, writable: boolean): SharedArrayBuffer | number;
  /** Replaces the mapping behind a buffer mmap() returned (`first` views its first byte) with private zero pages. */
  releaseMapping(first: Uint8Array): number;
  close(fd: number): number;
  dup(fd: number): number;
  /** pidfd_open(pid, 0): a close-on-exec fd that becomes readable when the process exits. */
  pidfdOpen(pid: number): number;
  setNonblocking(fd: number): number;
  strerror(errno: number): string;
  eventfdCreate(semaphore: boolean): number;
  eventfdWrite(fd: number, n: number): number;
  eventfdRead(fd: number): number;
  pollWait(fd: number, events: number, timeoutMs: number): number;
  Poller: new () => NativePoller;
  pollEvents: { readable: number; writable: number; disconnect: number };
  socket(stream: boolean): number;
  bind(fd: number, address: Uint8Array): number;
  listen(fd: number, backlog: number): number;
  accept(fd: number): number;
  connect(fd: number, address: Uint8Array): number;
  sendmsg(fd: number, data: Uint8Array, fds: Int32Array): number;
  /** meta = [fds received, msg_flags] */
  /** realLength (seqpacket only): a datagram longer than `data` returns its full length. */
  recvmsg(fd: number, data: Uint8Array, fdsOut: Int32Array, meta: Int32Array, realLength?: boolean): number;
  /** out = [pid, uid, gid] */
  peerCred(fd: number, out: Int32Array): number;
  msgFlags: { MSG_TRUNC: number; MSG_CTRUNC: number };
  /** How mmap'ed regions become SharedArrayBuffers here (docs/native.md), chosen when the addon loaded. */
  sharedBuffer: SharedBufferInfo;
  /** out = [fd0, fd1]: a connected SOCK_SEQPACKET pair, non-blocking and close-on-exec. */
  socketpair(out: Int32Array): number;
  /** A pidfd for the socket's peer as of connect time (SO_PEERPIDFD); -ENOPROTOOPT before Linux 6.5. */
  peerPidfd(fd: number): number;
  pidfdOpen(pid: number): number;
}

/**
 * `path`: 'external' is node_api_create_external_sharedarraybuffer, 'v8' the V8-API fallback.
 * `build`: what the binary contains ('auto' both, 'external-only' no V8 code, 'v8' forced fallback).
 * `headersNodeMajor`: the Node major whose headers it was compiled against.
 */
export interface SharedBufferInfo {
  path: 'external' | 'v8';
  build: 'auto' | 'external-only' | 'v8';
  headersNodeMajor: number;
}

/** poll(2) event bits used with pollWait. */
export const POLLIN = 0x1;
export const POLLOUT = 0x4;

const requireCjs = createRequire(import.meta.url);

/** The package root: three levels above dist/lib/native/native.js. */
export const packageRoot = fileURLToPath(new URL('../../..', import.meta.url));

const resolved = ((): { path?: string; error?: unknown } => {
  try {
    return { path: (requireCjs('node-gyp-build') as { path(dir: string): string }).path(packageRoot) };
  } catch (error) {
    return { error };
  }
})();

/** The addon file this process loads (or would: build/Release/ringwire.node when none is found). */
export const addonPath = resolved.path ?? join(packageRoot, 'build', 'Release', 'ringwire.node');

let loaded: NativeAddon | undefined;
let loadError: unknown = resolved.error;

function load(): NativeAddon | undefined {
  if (loaded || loadError) return loaded;
  try {
    loaded = requireCjs(addonPath) as NativeAddon;
  } catch (err) {
    loadError = err;
  }
  return loaded;
}

/** True when the addon is built and loads in this process (or worker). */
export function addonAvailable(): boolean {
  return load() !== undefined;
}

/** The addon, or ERR_ADDON_MISSING explaining why it could not load. */
export function native(): NativeAddon {
  const addon = load();
  if (addon) return addon;
  throw ringwireError(
    'ERR_ADDON_MISSING',
    `ringwire native addon could not be loaded from ${addonPath} (no prebuild fits this platform and no source build: run \`npm rebuild ringwire --build-from-source\`, which needs g++, make and python3): ${String((loadError as Error)?.message ?? loadError)}`,
    { cause: loadError },
  );
}

/** The typed error for a failed system call; `negErrno` is the addon's negative result. */
export function nativeError(syscall: string, negErrno: number, detail?: string): RingwireError {
  const errno = -negErrno;
  let name: string;
  try {
    name = getSystemErrorName(negErrno);
  } catch {
    name = `errno ${errno}`;
  }
  const text = load()?.strerror(errno) ?? name;
  return ringwireError('ERR_NATIVE', `${syscall}${detail ? ` (${detail})` : ''}: ${name}: ${text}`, { errno, syscall });
}

/** Returns a non-negative result, or throws the typed error for a negative one. */
export function check(syscall: string, result: number, detail?: string): number {
  if (result < 0) throw nativeError(syscall, result, detail);
  return result;
}

/** Validates that `fd` is a plausible descriptor number (a non-negative int32). */
export function assertFd(fd: unknown, what = 'fd'): asserts fd is number {
  if (typeof fd !== 'number' || !Number.isInteger(fd)) {
    throw ringwireError('ERR_INVALID_ARG', `${what} must be an integer file descriptor, got ${typeof fd === 'number' ? fd : typeof fd}`);
  }
  if (fd < 0 || fd > 0x7fffffff) throw ringwireError('ERR_OUT_OF_RANGE', `${what} must be between 0 and 2^31-1, got ${fd}`);
}

/** Closes an fd the caller owns; throws ERR_NATIVE (e.g. EBADF) if it was not open. */
export function closeFd(fd: number): void {
  assertFd(fd);
  check('close', native().close(fd));
}
