/**
 * Knowing that the peer of a process ring is gone. Shared memory says nothing when the process
 * at the other end dies: a consumer would wait for data, or a producer for space, for ever. So a
 * process ring can watch one of two things the kernel ends when the peer dies:
 *
 *   { socket }  the FdSocket the halves' fds were passed on: the kernel closes the peer's end when
 *               it exits, and our end reports 'close'. Costs nothing more than keeping it open.
 *   { pid }     a pidfd (pidfd_open, Linux 5.3+): readable once that process has exited. It names
 *               the process, not the number, so a pid reused later cannot pass for the peer; open
 *               it while the peer is known alive (right after SO_PEERCRED, say).
 *
 * Concurrency contract: belongs to the thread that created it (it polls on that thread's loop).
 */
import { ringwireError, type RingwireError } from '../errors.js';
import { native, type NativePoller } from '../native/native.js';
import type { FdSocket } from '../native/unix-socket.js';

/** What tells us the peer is gone. */
export type PeerLiveness = { readonly socket: FdSocket } | { readonly pid: number };

const ESRCH = 3;

/**
 * Calls `onGone` once, asynchronously, when the peer is gone (at once if it already is). Returns
 * a function that stops watching and releases the pidfd; `onGone` is not called after it.
 * Throws ERR_INVALID_ARG for a bad `peer`, ERR_NATIVE when a pidfd cannot be opened.
 */
export function watchPeer(peer: PeerLiveness, onGone: (err: RingwireError) => void): () => void {
  let done = false;
  const fire = (why: string): void => {
    if (done) return;
    done = true;
    stop();
    onGone(ringwireError('ERR_PEER_GONE', why));
  };
  let stop: () => void;
  if (typeof peer === 'object' && peer !== null && 'socket' in peer) {
    const sock = peer.socket;
    if (typeof sock?.on !== 'function') throw ringwireError('ERR_INVALID_ARG', 'peer.socket must be an FdSocket');
    const onClose = (): void => fire('the socket the ring was set up over closed: the peer is gone');
    sock.on('close', onClose);
    stop = () => { sock.off('close', onClose); };
    if (sock.fd < 0) process.nextTick(onClose);
  } else if (typeof peer === 'object' && peer !== null && 'pid' in peer) {
    const pid = peer.pid;
    if (!Number.isInteger(pid) || pid <= 0) throw ringwireError('ERR_INVALID_ARG', `peer.pid must be a positive integer, got ${String(pid)}`);
    const addon = native();
    const fd = addon.pidfdOpen(pid);
    if (fd === -ESRCH) {
      stop = () => {};
      process.nextTick(() => fire(`process ${pid} does not exist: the peer is gone`));
    } else {
      if (fd < 0) throw ringwireError('ERR_NATIVE', `pidfd_open(${pid}): ${addon.strerror(-fd)}`, { errno: -fd, syscall: 'pidfd_open' });
      const poller: NativePoller = new addon.Poller();
      let open = true;
      stop = () => {
        if (!open) return;
        open = false;
        poller.close();
        addon.close(fd);
      };
      const r = poller.open(fd) === 0 ? poller.start(addon.pollEvents.readable, () => fire(`process ${pid} exited: the peer is gone`)) : -1;
      if (r < 0) {
        stop();
        throw ringwireError('ERR_NATIVE', `cannot poll the pidfd of process ${pid}`, { errno: -r, syscall: 'uv_poll_start' });
      }
    }
  } else {
    throw ringwireError('ERR_INVALID_ARG', 'peer must be { socket: FdSocket } or { pid: number }');
  }
  return () => {
    done = true;
    stop();
  };
}
