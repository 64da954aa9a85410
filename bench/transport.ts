/**
 * The plug-in shape every benchmarked transport implements, and the registry the harness reads.
 *
 * Division of labour: a transport knows how to reach its peer and move bytes; the harness owns the
 * clock, warm-up, sample counts, histograms, Benchmark.js and the report. A transport therefore
 * never computes a statistic: it calls `run.record(t0, t1)` once per round trip and resolves a
 * stream burst once the receiver has confirmed every message.
 */

/** Where the echo/sink side runs, relative to the measuring thread. */
export type Distance = 'thread' | 'process';

/** What the harness hands to `Transport.open`. */
export interface OpenContext {
  /** Core the peer should pin itself to, or undefined when pinning is off (see bench/pin.ts). */
  readonly peerCore: number | undefined;
  /** A fresh private directory for socket paths and the like; the harness removes it. */
  readonly tempDir: string;
}

/**
 * One ping-pong measurement. Send one message, wait for its echo, call `record` with the
 * `process.hrtime.bigint()` taken just before sending and just after the whole echo arrived, and
 * send the next message only while `record` returns true. Warm-up round trips go through `record`
 * too (the harness discards them), so a transport has one loop and no counters of its own.
 */
export interface PingPongRun {
  record(startNs: bigint, endNs: bigint): boolean;
  /**
   * Paced runs (pattern `paced`): call before taking t0 of every round trip and, when it returns a
   * promise, await it (or send from its then) before sending: the harness idles in the event loop
   * until the next tick. Null when the round trip may start now (always, outside paced runs).
   */
  wait(): Promise<void> | null;
}

/**
 * Sends one burst of messages one way and resolves once the receiver has confirmed it received all
 * of them (so queued-but-undelivered messages never count).
 */
export type StreamBurst = () => Promise<void>;

/** A prepared one-way pattern at one size; the harness calls `burst` repeatedly, then `close`. */
export interface StreamHandle {
  /** Messages one burst delivers (a transport may round the requested count up to its batch). */
  readonly messagesPerBurst: number;
  readonly burst: StreamBurst;
  close(): Promise<void>;
}

/** A connected peer; one per transport per run, reused for every size and pattern. */
export interface Peer {
  /** Runs round trips of `size`-byte messages until `run.record` returns false. */
  pingpong?(size: number, run: PingPongRun): Promise<void>;
  /**
   * One-way patterns by name: 'stream' is one send per message; others such as 'stream-batch64'
   * may exist. Each prepares bursts of about `count` messages of `size` bytes, or returns null when
   * the pattern does not apply at that size. The harness times repeated bursts with Benchmark.js.
   */
  readonly streams?: Readonly<Record<string, (size: number, count: number) => Promise<StreamHandle | null>>>;
  /** True when pingpong() calls `run.wait()` before each round trip, so the harness can pace it. */
  readonly paced?: boolean;
  /** Releases everything: children killed, workers terminated, sockets closed. Idempotent. */
  close(): Promise<void>;
}

export interface Transport {
  /** Contract name: 'uds', 'tcp', 'worker-postmessage', 'message-channel', 'ringwire-thread', ... */
  readonly name: string;
  readonly distance: Distance;
  /** One line for the README and `--list`: what a user of this transport would write. */
  readonly description: string;
  /** Largest message this transport can carry, when smaller than the harness's sizes. */
  readonly maxSize?: number;
  /**
   * Both sides poll without sleeping: the figures hold only while no thread of the measurement
   * waits for a core, so the harness checks run-queue delay and retries or marks the row invalid.
   */
  readonly busyPoll?: boolean;
  open(ctx: OpenContext): Promise<Peer>;
}

const registry = new Map<string, Transport>();

/** Adds a transport; the table lists transports in registration order. */
export function registerTransport(t: Transport): void {
  if (registry.has(t.name)) throw new Error(`bench: transport ${t.name} registered twice`);
  registry.set(t.name, t);
}

export function registeredTransports(): readonly Transport[] {
  return [...registry.values()];
}

/** The baseline every ratio is computed against. */
export const BASELINE = 'uds';
