/** What a process holds, for leak checks: its fds by kind, and its mappings of memfds. */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface FdCounts {
  eventfd: number;
  memfd: number;
  socket: number;
  other: number;
}

/** The fds of `pid` (default this process) by what /proc/<pid>/fd links to. */
export function fdsByKind(pid: number | 'self' = 'self'): FdCounts {
  const out: FdCounts = { eventfd: 0, memfd: 0, socket: 0, other: 0 };
  for (const name of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${name}`);
    } catch {
      continue; // the directory's own fd, closed already
    }
    if (target === 'anon_inode:[eventfd]') out.eventfd++;
    else if (target.startsWith('/memfd:')) out.memfd++;
    else if (target.startsWith('socket:')) out.socket++;
    else out.other++;
  }
  return out;
}

/** What each fd of `pid` links to, sorted (to name what a leak is). */
export function fdTargets(pid: number | 'self' = 'self'): string[] {
  const out: string[] = [];
  for (const name of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.push(readlinkSync(`/proc/${pid}/fd/${name}`));
    } catch {
      // closed meanwhile
    }
  }
  return out.sort();
}

/** Mappings of memfds in /proc/<pid>/maps (ring blocks, guest memory). */
export function memfdMappings(pid: number | 'self' = 'self'): number {
  return readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((l) => l.includes('/memfd:')).length;
}
