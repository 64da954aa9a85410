/**
 * Where a channel is in its life: open -> ending (end() queued, then sent; the peer may still send)
 * -> closed, and whether the peer already left. Every part of a channel reads it; only the Channel
 * changes it, so the parts cannot disagree about whether it is closed.
 */
import { ringwireError, type RingwireError } from '../errors.js';
import { DisconnectCode } from './protocol.js';

export class ChannelState {
  closed = false;
  endQueued = false;
  endSent = false;
  peerEnded = false;
  /** Why the peer's side of the link went away; the channel still delivers what it left in the ring. */
  gone: { code: number | undefined; reason: string } | undefined;

  goneError(): RingwireError {
    const g = this.gone!;
    // After the handshake, Disconnect(Policy) means a broker (the node agent) revoked the channel.
    if (g.code === DisconnectCode.Policy) return ringwireError('ERR_POLICY_REVOKED', `the peer closed the channel: revoked by policy: ${g.reason}`);
    return ringwireError('ERR_PEER_GONE', `the peer went away: ${g.reason}${g.code !== undefined ? ` (disconnect code ${g.code})` : ''}`);
  }
}
