/**
 * A learning Ethernet switch (IEEE 802.1D transparent bridging, minus spanning tree): it learns
 * which port each source MAC lives behind, forwards unicast frames to that port, and floods
 * broadcast, multicast and unknown-destination frames to every other port. Entries age out, and
 * a port that leaves takes its entries with it, so a VM that restarts on another port is found again.
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
}

export const ETHERNET_HEADER = 14;
/** How long a learned address stays valid without traffic from it (802.1D's default ageing time). */
export const DEFAULT_AGEING_MS = 300_000;

const macKey = (f: Uint8Array, at: number): number =>
  ((f[at]! << 8) | f[at + 1]!) * 2 ** 32 + ((f[at + 2]! << 24) >>> 0) + ((f[at + 3]! << 16) | (f[at + 4]! << 8) | f[at + 5]!);

export class L2Switch {
  readonly #ports = new Set<SwitchPort>();
  readonly #table = new Map<number, { port: SwitchPort; seen: number }>();
  readonly #touched = new Set<SwitchPort>();
  readonly #ageingMs: number;
  readonly #log: (message: string) => void;
  #forwarded = 0;
  #flooded = 0;
  #dropped = 0;
  #deliverErrors = 0;

  constructor(options: { ageingMs?: number; log?: (message: string) => void } = {}) {
    this.#ageingMs = options.ageingMs ?? DEFAULT_AGEING_MS;
    if (!(this.#ageingMs > 0)) throw ringwireError('ERR_OUT_OF_RANGE', `ageingMs must be positive, got ${this.#ageingMs}`);
    this.#log = options.log ?? (() => {});
  }

  get ports(): readonly SwitchPort[] {
    return [...this.#ports];
  }

  get stats(): L2SwitchStats {
    return { forwarded: this.#forwarded, flooded: this.#flooded, dropped: this.#dropped, deliverErrors: this.#deliverErrors, macs: this.#table.size };
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
    this.#touched.delete(port);
    this.#log(`port ${port.name} detached (${this.#ports.size} ports)`);
  }

  /** The port a MAC (as 6 bytes) was last seen on, if the entry has not aged out. */
  lookup(mac: Uint8Array): SwitchPort | undefined {
    const e = this.#table.get(macKey(mac, 0));
    return e && Date.now() - e.seen <= this.#ageingMs ? e.port : undefined;
  }

  /** Switches one frame that arrived on `from`. Call commit() after a burst. */
  forward(from: SwitchPort, frame: Uint8Array): void {
    if (frame.byteLength < ETHERNET_HEADER || !this.#ports.has(from)) {
      this.#dropped++;
      return;
    }
    const now = Date.now();
    // Learn from unicast sources only: a multicast source address is invalid and must not steer traffic.
    if ((frame[6]! & 1) === 0) {
      const src = macKey(frame, 6);
      const e = this.#table.get(src);
      if (e) {
        e.port = from;
        e.seen = now;
      } else {
        this.#table.set(src, { port: from, seen: now });
      }
    }
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
