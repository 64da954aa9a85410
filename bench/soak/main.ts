/**
 * `npm run soak -- --minutes N [--seed S] [--peers P]`: a channel server in this process under
 * everything issue 19 found, all at once, for N minutes (seeded, so a failing run reproduces):
 *
 *   - honest clients in child processes streaming numbered messages and requests; the server
 *     checks every message's sequence and bytes, and at a graceful end that it got all that was sent;
 *   - clients that scribble over their own ring blocks (the server must see ERR_RING_CORRUPT);
 *   - SIGKILL of clients at random points of their lives;
 *   - in-process clients that die abruptly at every handshake step (bench/soak/dying-peer.ts).
 *
 * Ends with one line: operations, errors by code, fds by kind and memfd mappings before and after,
 * lost messages, crashes; exits non-zero on any loss, crash, hang, fd or mapping growth. Not part
 * of `npm test` (CI runs it for 10 minutes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listen, type Channel } from '../../lib/index.js';
import { HANDSHAKE_STEPS, dyingPeer } from './dying-peer.js';
import { fdTargets, fdsByKind, memfdMappings, type FdCounts } from './fds.js';

interface Options {
  minutes: number;
  seed: number;
  peers: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { minutes: 1, seed: (Date.now() ^ (process.pid << 8)) >>> 0, peers: 3 };
  for (let i = 0; i < argv.length; i++) {
    const [key, inline] = argv[i]!.split('=');
    const value = inline ?? argv[++i];
    const n = Number(value);
    if (key === '--minutes' && n > 0) o.minutes = n;
    else if (key === '--seed' && Number.isInteger(n)) o.seed = n >>> 0;
    else if (key === '--peers' && Number.isInteger(n) && n > 0) o.peers = n;
    else {
      console.error(`usage: npm run soak -- --minutes N [--seed S] [--peers P]   (bad argument ${argv[i]})`);
      process.exit(64);
    }
  }
  return o;
}

function rng(seed: number): { next(): number; int(lo: number, hi: number): number } {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)) };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Message `seq` as peer.ts builds it: u32 seq, then (seq * 31 + i) & 0xff. */
function isSoakMessage(m: Uint8Array, seq: number): boolean {
  if (m.length < 4 || (m[0]! | (m[1]! << 8) | (m[2]! << 16) | (m[3]! << 24)) >>> 0 !== seq >>> 0) return false;
  for (let i = 4; i < m.length; i++) if (m[i] !== ((seq * 31 + i) & 0xff)) return false;
  return true;
}

async function gcSettled(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 5; i++) {
    gc?.();
    await sleep(20);
  }
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const rand = rng(o.seed);
  const dir = mkdtempSync(join(tmpdir(), 'ringwire-soak-'));
  const peerScript = fileURLToPath(new URL('./peer.js', import.meta.url));
  const counts = { messages: 0, requests: 0, channels: 0, kills: 0, handshakeDeaths: 0, corruptPeers: 0 };
  const errors = new Map<string, number>();
  const problems: string[] = [];
  let lost = 0;
  let crashes = 0;
  const countError = (code: string | undefined): void => {
    if (code) errors.set(code, (errors.get(code) ?? 0) + 1);
  };
  process.on('uncaughtException', (err) => {
    crashes++;
    problems.push(`uncaught in the server: ${err.stack ?? err}`);
  });
  process.on('unhandledRejection', (err) => {
    crashes++;
    problems.push(`unhandled rejection in the server: ${String(err)}`);
  });

  /** Per honest peer id: messages the server received in order, and whether its channel closed. */
  const received = new Map<number, { got: number; closed: boolean }>();
  const server = await listen(join(dir, 'soak.sock'), { handshakeTimeoutMs: 2000, minRingBytes: 4096, maxRingBytes: 1 << 16 }, (ch: Channel) => {
    counts.channels++;
    ch.handle((req) => req);
    const m = /^soak-(honest|corrupt)-(\d+)$/.exec(ch.peer.name);
    const honest = m?.[1] === 'honest';
    const id = Number(m?.[2] ?? -1);
    const rec = { got: 0, closed: false };
    if (honest) received.set(id, rec);
    ch.on('message', (msg) => {
      counts.messages++;
      if (!honest) return;
      if (!isSoakMessage(msg, rec.got)) {
        lost++;
        problems.push(`peer ${id}: message ${rec.got} is missing, repeated or altered`);
        ch.destroy();
        return;
      }
      rec.got++;
    });
    void ch.whenClosed().then((err) => {
      rec.closed = true;
      countError(err?.code);
    });
  });
  server.on('refused', (r) => countError(r.error.code));
  server.on('error', (err) => {
    crashes++;
    problems.push(`server error: ${err.message}`);
  });

  // Warm up, so lazily made handles (libuv's /dev/null for ignored stdio, ...) are in both snapshots.
  await dyingPeer(server.address!, 'channel-open', 0);
  await new Promise((r) => spawn(process.execPath, ['-e', ''], { stdio: ['ignore', 'pipe', 'pipe'] }).once('close', r));
  while (server.connections > 0) await sleep(5);
  await gcSettled();
  const fdsBefore = fdsByKind();
  const targetsBefore = fdTargets();
  const mapsBefore = memfdMappings();

  const endAt = Date.now() + o.minutes * 60_000;
  const live = new Set<ChildProcess>();
  const exits: Array<Promise<void>> = [];
  let nextId = 0;

  const spawnPeer = (): void => {
    const id = nextId++;
    const mode = rand.next() < 0.8 ? 'honest' : 'corrupt';
    if (mode === 'corrupt') counts.corruptPeers++;
    const lifetimeMs = rand.int(200, 4000);
    const child = spawn(process.execPath, [peerScript, server.address!, JSON.stringify({ id, mode, seed: rand.int(0, 2 ** 31), lifetimeMs })], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let out = '';
    let errOut = '';
    child.stdout!.on('data', (d) => { out += d; });
    child.stderr!.on('data', (d) => { errOut += d; });
    let killedByUs = false;
    const killAt = rand.next() < 0.4 ? rand.int(20, lifetimeMs) : undefined;
    const killer = killAt === undefined ? undefined : setTimeout(() => {
      killedByUs = true;
      counts.kills++;
      child.kill('SIGKILL');
    }, killAt);
    const hang = setTimeout(() => {
      problems.push(`peer ${id} (${mode}) still running ${lifetimeMs + 30_000} ms after it started: hung`);
      crashes++;
      child.kill('SIGKILL');
    }, lifetimeMs + 30_000);
    exits.push(new Promise<void>((resolve) => child.once('close', async (code, signal) => {
      clearTimeout(killer);
      clearTimeout(hang);
      live.delete(child);
      const report = (() => {
        try {
          return JSON.parse(out.trim().split('\n').pop() ?? '') as { sent: number; requests: number; error?: string };
        } catch {
          return undefined;
        }
      })();
      if (signal === 'SIGKILL' && killedByUs) {
        resolve();
        return;
      }
      if (code !== 0 || !report) {
        crashes++;
        problems.push(`peer ${id} (${mode}) exited with ${signal ?? code}: ${(errOut || out).trim().slice(0, 500)}`);
      } else {
        counts.requests += report.requests;
        countError(report.error);
        if (report.error?.startsWith('untyped')) {
          crashes++;
          problems.push(`peer ${id}: ${report.error}`);
        }
        if (mode === 'honest' && report.error === undefined) {
          // A graceful close: every message sent must have arrived, once the server's channel closed.
          const rec = received.get(id);
          for (let i = 0; i < 4000 && !rec?.closed; i++) await sleep(5);
          const got = rec?.got ?? 0;
          if (got !== report.sent) {
            lost += Math.abs(report.sent - got);
            problems.push(`peer ${id}: sent ${report.sent}, the server received ${got}`);
          }
        }
      }
      resolve();
    })));
  };

  const deaths = (async () => {
    while (Date.now() < endAt) {
      const step = HANDSHAKE_STEPS[rand.int(0, HANDSHAKE_STEPS.length - 1)]!;
      try {
        await dyingPeer(server.address!, step, rand.int(0, 3));
        counts.handshakeDeaths++;
      } catch (err) {
        crashes++;
        problems.push(`dying handshake at ${step}: ${String(err)}`);
      }
      await sleep(rand.int(0, 20));
    }
  })();

  while (Date.now() < endAt) {
    while (live.size < o.peers) spawnPeer();
    await sleep(20);
  }
  await deaths;
  await Promise.all(exits);
  for (let i = 0; i < 1000 && server.connections > 0; i++) await sleep(10);
  if (server.connections > 0) {
    problems.push(`${server.connections} connection(s) still open 10 s after the last peer exited`);
    crashes++;
  }
  await gcSettled();
  const fdsAfter = fdsByKind();
  const mapsAfter = memfdMappings();
  await server.close();
  rmSync(dir, { recursive: true, force: true });

  const grew = (Object.keys(fdsBefore) as Array<keyof FdCounts>).filter((k) => fdsAfter[k] > fdsBefore[k]);
  if (grew.length > 0) {
    const left = [...targetsBefore];
    const added = fdTargets().filter((t) => { const i = left.indexOf(t); if (i < 0) return true; left.splice(i, 1); return false; });
    problems.push(`fds grew: ${grew.join(', ')} (new: ${added.join(' ')})`);
  }
  if (mapsAfter > mapsBefore) problems.push(`memfd mappings grew from ${mapsBefore} to ${mapsAfter}`);
  const operations = counts.messages + counts.requests + counts.channels + counts.kills + counts.handshakeDeaths;
  const ok = lost === 0 && crashes === 0 && grew.length === 0 && mapsAfter <= mapsBefore;
  for (const p of problems.slice(0, 20)) console.error(`soak: ${p}`);
  const errs = Object.fromEntries([...errors.entries()].sort());
  console.log(
    `soak: ${o.minutes} min, seed ${o.seed}: ${operations} operations (${counts.messages} messages, ${counts.requests} requests, ${counts.channels} channels, ` +
    `${nextId} peers of which ${counts.corruptPeers} corrupting, ${counts.kills} SIGKILLs, ${counts.handshakeDeaths} handshake deaths); ` +
    `errors by code ${JSON.stringify(errs)}; fds before ${JSON.stringify(fdsBefore)} after ${JSON.stringify(fdsAfter)}; ` +
    `memfd mappings before ${mapsBefore} after ${mapsAfter}; lost messages ${lost}; crashes ${crashes} => ${ok ? 'OK' : 'FAILED'}`,
  );
  return ok ? 0 : 1;
}

main().then((code) => process.exit(code), (err) => {
  console.error(`soak: ${err?.stack ?? err}`);
  process.exit(1);
});
