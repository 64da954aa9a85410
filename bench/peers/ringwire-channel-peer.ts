/**
 * The far side of the `ringwire-channel*` and `http2-*` transports, in its own process.
 * argv: <mode busy|doorbell|adaptive> <channel address> <http2-over-ringwire address> <http2 UNIX socket path>
 *   - channel address: requests are echoed; a channel named 'sink' counts messages and answers a
 *     request with the count (the end of a stream burst).
 *   - http2 addresses: one node:http2 server, fed by ringwire channels (via the Duplex) and by a
 *     plain UNIX socket; every request's body is echoed back.
 * Prints `listening` on stdout once all three are bound.
 */
import http2 from 'node:http2';
import { createDuplex, listen } from '../../lib/index.js';

const [mode, channelAddress, h2Address, h2Path] = process.argv.slice(2) as ['busy' | 'doorbell' | 'adaptive', string, string, string];

await listen(channelAddress, { ...(mode === 'adaptive' ? {} : { poll: mode }), maxRingBytes: 1 << 22 }, (ch) => {
  if (ch.peer.name === 'sink') {
    let count = 0;
    ch.on('message', () => { count++; });
    ch.handle(() => {
      const out = Buffer.alloc(4);
      out.writeUInt32LE(count);
      count = 0;
      return out;
    });
  } else {
    ch.handle((req) => req);
  }
});

const h2 = http2.createServer();
h2.on('stream', (stream) => {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('end', () => {
    stream.respond({ ':status': 200 });
    stream.end(Buffer.concat(chunks));
  });
});
await listen(h2Address, { maxRingBytes: 1 << 22 }, (ch) => h2.emit('connection', createDuplex(ch)));
await new Promise<void>((resolve) => h2.listen(h2Path, resolve));
process.stdout.write('listening\n');
