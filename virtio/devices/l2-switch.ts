/**
 * A learning Ethernet switch (IEEE 802.1D transparent bridging, minus spanning tree): it learns
 * which port each source MAC lives behind, forwards unicast frames to that port, and floods
 * broadcast, multicast and unknown-destination frames to every other port. Entries age out, and
 * a port that leaves takes its entries with it, so a VM that restarts on another port is found again.
 *
 * The table is bounded, in total and per port, so a guest cycling source addresses cannot grow it
 * without limit or crowd out the others' entries: aged entries are swept, and when a limit is
 * reached the switch stops learning (frames to unlearned addresses flood) and counts it.
 *
 * Frames are borrowed: deliver() must copy what it keeps before returning (a frame usually sits in
 * the sending guest's memory or a scratch buffer). A deliver() that throws costs that port the
 * frame and nothing else: the error is counted and logged, never passed to the sender.
 *
 * Concurrency contract: one event loop; forward() is synchronous and re-entrancy free.
 */
import { ringwireError } from '../../lib/errors.js';

export interface SwitchPort {
  readonly name: string;
  /** Takes a copy of `frame` towards the port's peer, or drops it (a switch never blocks). */
  deliver(frame: Uint8Array): void;
  /** Called after a burst of deliveries: signal the peer once instead of once per frame. */
  flush?(): void;
}

export interface L2SwitchStats {
  forwarded: number;
  flooded: number;
  /** Frames too short to carry an Ethernet header, or addressed back to the port they came from. */
  dropped: number;
  /** Deliveries a port's deliver() failed with an error (the frame is lost for that port only). */
  deliverErrors: number;
  macs: number;
  /** Source addresses not learned because the table or the port's share of it was full. */
  learnRefused: number;
}

export const ETHERNET_HEADER = 14;
/** How long a learned address stays valid without traffic from it (802.1D's default ageing time). */
export const DEFAULT_AGEING_MS = 300_000;
/** Learned addresses in all (a few per VM is normal; thousands is a guest making them up). */
export const DEFAULT_MAX_MACS = 4096;
/** Learned addresses per port: below the total, so one port cannot take every entry. */
export const DEFAULT_MAX_MACS_PER_PORT = 1024;
/** Aged entries are swept at most this often (each sweep walks the whole table). */
const SWEEP_INTERVAL_MS = 1000;

export interface L2SwitchOptions {
  ageingMs?: number;
  maxMacs?: number;
  maxMacsPerPort?: number;
  log?: (message: string) => void;
  /** The clock entries age by, in ms (default Date.now); tests pass their own to step time exactly. */
  now?: () => number;
}

const macKey = (f: Uint8Array, at: number): number =>
  ((f[at]! << 8) | f[at + 1]!) * 2 ** 32 + ((f[at + 2]! << 24) >>> 0) + ((f[at + 3]! << 16) | (f[at + 4]! << 8) | f[at + 5]!);

export class L2Switch {
  readonly #ports = new Set<SwitchPort>();
  readonly #table = new Map<number, { port: SwitchPort; seen: number }>();
  /** Entries in #table per port. */
  readonly #learned = new Map<SwitchPort, number>();
  readonly #touched = new Set<SwitchPort>();
  readonly #ageingMs: number;
  readonly #maxMacs: number;
  readonly #maxMacsPerPort: number;
  readonly #log: (message: string) => void;
  readonly #now: () => number;
  #lastSweep = 0;
  #learnRefused = 0;
  #forwarded = 0;
  #flooded = 0;
  #dropped = 0;
  #deliverErrors = 0;

  constructor(options: L2SwitchOptions = {}) {
    this.#ageingMs = options.ageingMs ?? DEFAULT_AGEING_MS;
    this.#now = options.now ?? Date.now;
    if (!(this.#ageingMs > 0)) throw ringwireError('ERR_OUT_OF_RANGE', `ageingMs must be positive, got ${this.#ageingMs}`);
    this.#maxMacs = options.maxMacs ?? DEFAULT_MAX_MACS;
    this.#maxMacsPerPort = options.maxMacsPerPort ?? Math.min(DEFAULT_MAX_MACS_PER_PORT, this.#maxMacs);
    for (const [name, v] of [['maxMacs', this.#maxMacs], ['maxMacsPerPort', this.#maxMacsPerPort]] as const) {
      if (!Number.isInteger(v) || v < 1) throw ringwireError('ERR_OUT_OF_RANGE', `${name} must be a positive integer, got ${v}`);
    }
    this.#log = options.log ?? (() => {});
  }

  get ports(): readonly SwitchPort[] {
    return [...this.#ports];
  }

  get stats(): L2SwitchStats {
    return {
      forwarded: this.#forwarded, flooded: this.#flooded, dropped: this.#dropped, deliverErrors: this.#deliverErrors,
      macs: this.#table.size, learnRefused: this.#learnRefused,
    };
  }

  attach(port: SwitchPort): void {
    if (this.#ports.has(port)) return;
    this.#ports.add(port);
    this.#log(`port ${port.name} attached (${this.#ports.size} ports)`);
  }

  /** Removes the port and forgets every address learned on it. */
  detach(port: SwitchPort): void {
    if (!this.#ports.delete(port)) return;
    for (const [mac, e] of this.#table) if (e.port === port) this.#table.delete(mac);
    this.#learned.delete(port);
    this.#touched.delete(port);
    this.#log(`port ${port.name} detached (${this.#ports.size} ports)`);
  }

  /** The port a MAC (as 6 bytes) was last seen on, if the entry has not aged out. */
  lookup(mac: Uint8Array): SwitchPort | undefined {
    const e = this.#table.get(macKey(mac, 0));
    return e && this.#now() - e.seen <= this.#ageingMs ? e.port : undefined;
  }

  /** Switches one frame that arrived on `from`. Call commit() after a burst. */
  forward(from: SwitchPort, frame: Uint8Array): void {
    if (frame.byteLength < ETHERNET_HEADER || !this.#ports.has(from)) {
      this.#dropped++;
      return;
    }
    const now = this.#now();
    // Learn from unicast sources only: a multicast source address is invalid and must not steer traffic.
    if ((frame[6]! & 1) === 0) this.#learn(macKey(frame, 6), from, now);
    if ((frame[0]! & 1) === 0) {
      const e = this.#table.get(macKey(frame, 0));
      if (e && now - e.seen <= this.#ageingMs) {
        if (e.port === from) {
          this.#dropped++;
          return;
        }
        this.#forwarded++;
        this.#deliver(e.port, frame);
        return;
      }
    }
    this.#flooded++;
    for (const p of this.#ports) {
      if (p === from) continue;
      this.#deliver(p, frame);
    }
  }

  #learn(src: number, from: SwitchPort, now: number): void {
    if (now - this.#lastSweep >= Math.min(SWEEP_INTERVAL_MS, this.#ageingMs)) this.#sweep(now);
    const e = this.#table.get(src);
    if (e?.port === from) {
      e.seen = now;
      return;
    }
    // A station that moved counts against its new port; while that port is full it is not learned
    // there, and frames to it flood rather than go to the port it left.
    if (e) this.#forget(src, e.port);
    if (this.#table.size >= this.#maxMacs || (this.#learned.get(from) ?? 0) >= this.#maxMacsPerPort) {
      this.#learnRefused++;
      return;
    }
    this.#table.set(src, { port: from, seen: now });
    this.#learned.set(from, (this.#learned.get(from) ?? 0) + 1);
  }

  #forget(mac: number, port: SwitchPort): void {
    this.#table.delete(mac);
    this.#learned.set(port, this.#learned.get(port)! - 1);
  }

  #sweep(now: number): void {
    this.#lastSweep = now;
    for (const [mac, e] of this.#table) if (now - e.seen > this.#ageingMs) this.#forget(mac, e.port);
  }

  #deliver(port: SwitchPort, frame: Uint8Array): void {
    try {
      port.deliver(frame);
    } catch (err) {
      this.#deliverErrors++;
      this.#log(`port ${port.name}: delivery failed: ${(err as Error).message}`);
    }
    this.#touched.add(port);
  }

  /** Lets every port that received frames since the last commit signal its peer once. */
  commit(): void {
    for (const p of this.#touched) {
      try {
        p.flush?.();
      } catch (err) {
        this.#deliverErrors++;
        this.#log(`port ${p.name}: flush failed: ${(err as Error).message}`);
      }
    }
    this.#touched.clear();
  }
}
