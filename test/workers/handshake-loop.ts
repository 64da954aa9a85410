/**
 * Connects to the channel server at argv[2] over and over, as fast as it can, until killed: a
 * SIGKILL then lands at whatever step of the handshake (or of an open channel) it is in.
 */
import { connect } from '../../lib/index.js';

const address = process.argv[2]!;
for (;;) {
  try {
    const ch = await connect(address, { sendRingBytes: 4096, receiveRingBytes: 4096 });
    await ch.request(Buffer.from('x')).catch(() => {});
    ch.destroy();
  } catch {
    // Refused or timed out: try again.
  }
}
