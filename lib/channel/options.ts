/**
 * Options shared by the channel and the modules it is built from (outbound sends, servers), kept
 * apart so that those modules need not import channel.ts, which imports them.
 */

export interface ChannelOptions {
  /**
   * 'adaptive' (default): polls while traffic is dense and sleeps on the eventfd when it thins,
   * learning from the gaps it sees how long polling pays (at most 50 µs at a time;
   * lib/ring/adaptive-spin.ts). 'doorbell' always sleeps on the eventfd; 'busy' polls the ring
   * between event-loop turns, holding a core. Links without an eventfd (threads, TCP) wait as
   * 'doorbell' does when 'adaptive' is asked.
   */
  poll?: 'adaptive' | 'doorbell' | 'busy';
  /**
   * 'doorbell': ring polls after a drain before re-arming the doorbell (default 0: spinning there
   * delays the callbacks the drain just resolved). 'busy': polls per event-loop turn (default 20000).
   * Not used by 'adaptive', which learns its own.
   */
  spin?: number;
  /** Keep the channel writable after the peer ended (default false: end in reply, like net). */
  allowHalfOpen?: boolean;
  /**
   * 'doorbell' mode: after sending a request, poll for its response this many microseconds before
   * sleeping (hybrid polling: the peer still sleeps; this side burns at most this much CPU per
   * request). Default 0. 'adaptive' mode: the ceiling of that poll, whose length it learns from
   * how long answers have taken (default 50).
   */
  responseSpinUs?: number;
  /**
   * Largest message sendLarge() may bring in from the peer (the whole message is held in memory
   * while its pieces arrive). Larger announcements close the channel with ERR_RING_TOO_LARGE.
   * Default 64 MiB.
   */
  maxLargeMessageBytes?: number;
  /** Default timeout of request(); Infinity waits for ever. Default 30 s. */
  requestTimeoutMs?: number;
  /** How long close() waits for the peer's end before destroying. Default 5 s. */
  closeTimeoutMs?: number;
}

export interface SendOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}
