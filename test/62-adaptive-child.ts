/**
 * The far side of test/62-adaptive-wait: a channel server with default options (poll 'adaptive')
 * that echoes requests, counts data messages, and answers a request of one byte 0xff with the count
 * so far (four bytes). Prints its address once listening; exits when its parent's stdin closes.
 */
import { listen } from '../lib/index.js';

const address = process.argv[2]!;
await listen(address, {}, (ch) => {
  let count = 0;
  ch.on('message', () => { count++; });
  ch.handle((req) => {
    if (req.length === 1 && req[0] === 0xff) {
      const out = Buffer.alloc(4);
      out.writeUInt32LE(count);
      return out;
    }
    return req;
  });
});
process.stdout.write(`listening ${address}\n`);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
