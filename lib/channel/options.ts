/**
 * Options shared by the channel and the modules it is built from (outbound sends, servers), kept
 * apart so that those modules need not import channel.ts, which imports them.
 */

export interface ChannelOptions {
  /** 'doorbell' (default) sleeps on the eventfd; 'busy' polls the ring between event-loop turns. */
  poll?: 'doorbell' | 'busy';
  /**
   * 'doorbell': ring polls after a drain before re-arming the doorbell (default 0: spinning there
   * delays the callbacks the drain just resolved). 'busy': polls per event-loop turn (default 20000).
   */
  spin?: number;
  /** Keep the channel writable after the peer ended (default false: end in reply, like net). */
  allowHalfOpen?: boolean;
  /**
   * 'doorbell' mode: after sending a request, poll for its response this many microseconds before
   * sleeping (hybrid polling: the peer still sleeps; this side burns at most this much CPU per
   * request). Default 0.
   */
  responseSpinUs?: number;
  /** Default timeout of request(); Infinity waits for ever. Default 30 s. */
  requestTimeoutMs?: number;
  /** How long close() waits for the peer's end before destroying. Default 5 s. */
  closeTimeoutMs?: number;
}

export interface SendOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}
