/**
 * The far side of the `uds` and `tcp` transports, run as its own process (two services on one
 * host). Usage: net-peer.js uds <socket path> | tcp. Prints "listening <path or port>" once ready
 * and exits when its stdin closes, so it cannot outlive the harness.
 */
import { createServer, type Socket } from 'node:net';
import { ACK, MODE_ECHO, MODE_SINK, READY, SINK_HEADER_BYTES } from './net-wire.js';

const readyByte = Buffer.from([READY]);
const ackByte = Buffer.from([ACK]);

function serve(sock: Socket): void {
  sock.setNoDelay(true);
  sock.on('error', () => sock.destroy());
  let header = Buffer.alloc(0);
  const onHeader = (chunk: Buffer): void => {
    header = Buffer.concat([header, chunk]);
    const mode = header[0];
    if (mode === MODE_ECHO && header.length === 1) {
      sock.off('data', onHeader);
      sock.write(readyByte);
      sock.on('data', (d: Buffer) => sock.write(d));
    } else if (mode === MODE_SINK && header.length === SINK_HEADER_BYTES) {
      sock.off('data', onHeader);
      sink(sock, header.readDoubleLE(1));
    } else if ((mode !== MODE_SINK || header.length > SINK_HEADER_BYTES) && header.length > 0) {
      sock.destroy(); // the harness waits for READY before sending data, so anything else is a bug
    }
  };
  sock.on('data', onHeader);
}

function sink(sock: Socket, burstBytes: number): void {
  if (!Number.isSafeInteger(burstBytes) || burstBytes <= 0) {
    sock.destroy();
    return;
  }
  let pending = 0;
  sock.write(readyByte);
  sock.on('data', (d: Buffer) => {
    pending += d.length;
    while (pending >= burstBytes) {
      pending -= burstBytes;
      sock.write(ackByte);
    }
  });
}

const [kind, path] = process.argv.slice(2);
const server = createServer(serve);
server.on('error', (err) => {
  console.error(`net-peer: ${err.message}`);
  process.exit(1);
});
if (kind === 'uds' && path) {
  server.listen(path, () => process.stdout.write(`listening ${path}\n`));
} else if (kind === 'tcp') {
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    process.stdout.write(`listening ${typeof addr === 'object' && addr ? addr.port : ''}\n`);
  });
} else {
  console.error('usage: net-peer.js uds <path> | tcp');
  process.exit(2);
}
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
