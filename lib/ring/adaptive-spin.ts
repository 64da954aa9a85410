/**
 * How long to poll before sleeping, learned from the idle gaps a waiter actually saw.
 *
 * Polling answers within a microsecond but burns the core; sleeping costs a wake-up (on the
 * development VM 8-15 µs of latency, plus the system calls). The classic rule spins about as long
 * as a wake-up costs and then parks; this one also learns whether spinning pays at all: it keeps a
 * decaying share of recent gaps that ended within the spin ceiling ("hits") and their typical
 * length. While most gaps are short (dense traffic: back-to-back requests, a stream), it spins a
 * few times the typical gap, at least `minUs` and at most `maxUs`; when they thin out (a paced
 * 10 k/s client leaves 100 µs gaps), it stops spinning and every wait parks at once. A gap measured
 * while parked includes the wake-up, so it reads long, never short: traffic that becomes dense
 * again still shows up as hits once gaps plus the wake-up fit under the ceiling.
 *
 * A spin that ends empty-handed is a loss. On an oversubscribed machine spinning is worse than
 * useless: the spinner holds the core the peer needs to answer, so the answer arrives only after
 * the spin gives up (measured here with two cores and a load of 14: request/response p50 74 µs
 * spinning, 30 µs sleeping). When most recent spins lost, spinning stops for a while (1, 2, 4 ...
 * up to 64 waits, doubling while losses go on) and is tried again after.
 *
 * The same spirit as io_uring's SQPOLL idle time and DPDK's adaptive interrupt mode (poll while
 * packets come, arm the interrupt after a run of empty polls), decided per gap instead of by a
 * fixed idle time. Pure arithmetic: the caller measures times and does the waiting.
 */

export interface AdaptiveSpinOptions {
  /** Ceiling of a spin, and the longest gap that counts as dense traffic. Default 50 µs. */
  maxUs?: number;
  /** Shortest spin once spinning pays (covers jitter of a tight loop). Default 8 µs. */
  minUs?: number;
}

/** Weight of the newest gap in the decaying averages (1/8: about the last dozen gaps matter). */
const WEIGHT = 0.125;
/** Spin only while at least this share of recent gaps ended within the ceiling. */
const HIT_SHARE = 0.5;
/** A spin lasts this many typical gaps, so a gap somewhat longer than usual is still caught. */
const GAPS_PER_SPIN = 4;
/** Longest pause from spinning, in waits, after spins kept losing. */
const MAX_BACKOFF = 64;

export class AdaptiveSpin {
  readonly maxUs: number;
  readonly minUs: number;
  /** Decaying share of gaps that ended within maxUs; starts at 1 (assume dense, learn otherwise). */
  #hits = 1;
  /** Decaying mean of the gaps that were hits, in µs. */
  #gapUs: number;
  /** Decaying share of recent spins that found what they waited for. */
  #wins = 1;
  #backoff = 0;
  /** Waits left that park without spinning. */
  #skip = 0;

  constructor(opts: AdaptiveSpinOptions = {}) {
    this.maxUs = opts.maxUs ?? 50;
    this.minUs = Math.min(opts.minUs ?? 8, this.maxUs);
    this.#gapUs = this.maxUs / GAPS_PER_SPIN;
  }

  /** One idle gap (from going idle to the next work arriving), in µs. */
  observe(gapUs: number): void {
    const hit = gapUs <= this.maxUs;
    this.#hits += ((hit ? 1 : 0) - this.#hits) * WEIGHT;
    if (hit) this.#gapUs += (Math.max(0, gapUs) - this.#gapUs) * WEIGHT;
  }

  /** The outcome of a spin that budgetUs() granted: true when what it waited for arrived during it. */
  spun(won: boolean): void {
    this.#wins += ((won ? 1 : 0) - this.#wins) * WEIGHT;
    if (won) {
      this.#backoff = 0;
    } else if (this.#wins < HIT_SHARE) {
      this.#backoff = Math.min(MAX_BACKOFF, Math.max(1, this.#backoff * 2));
      this.#skip = this.#backoff;
      this.#wins = HIT_SHARE; // one win on the next try keeps spinning; one more loss backs off further
    }
  }

  /** µs to poll before parking now; 0 means park at once. Each call is one wait. */
  budgetUs(): number {
    if (this.#skip > 0) {
      this.#skip--;
      return 0;
    }
    return this.#wouldSpinUs();
  }

  #wouldSpinUs(): number {
    if (this.#hits < HIT_SHARE) return 0;
    return Math.min(this.maxUs, Math.max(this.minUs, this.#gapUs * GAPS_PER_SPIN));
  }

  /** The learned state, for stats and tests (does not count as a wait). */
  get state(): { hitShare: number; typicalGapUs: number; spinWinShare: number; budgetUs: number; backoff: number } {
    return { hitShare: this.#hits, typicalGapUs: this.#gapUs, spinWinShare: this.#wins, budgetUs: this.#skip > 0 ? 0 : this.#wouldSpinUs(), backoff: this.#backoff };
  }
}
