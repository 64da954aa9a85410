/**
 * The system-level pieces the unix-socket files share: the Linux errno values the addon returns
 * negated, the per-wake-up work budget, and closing a batch of fds we own.
 */
import { native } from './native.js';

export const EAGAIN = 11;
export const ENFILE = 23;
export const EMFILE = 24;
export const EPIPE = 32;
export const EPROTOTYPE = 91;
export const EADDRINUSE = 98;
export const ECONNRESET = 104;
export const ECONNREFUSED = 111;

/** Messages (or connections) handled per loop wake-up before yielding to other work. */
export const READ_BUDGET = 64;

export function closeAll(fds: Iterable<number>): void {
  const addon = native();
  for (const fd of fds) addon.close(fd);
}
