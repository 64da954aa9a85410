/**
 * A "pod" process for the CNI tests: connects to the address in argv[2] (default '@ringwire') from
 * the namespace it was started in, prints the first message it gets as one JSON line (or
 * {error, errno} when nothing answers) and exits.
 */
import { FdSocket } from '../../lib/native/unix-socket.js';
import { isRingwireError } from '../../lib/errors.js';

const address = process.argv[2] ?? '@ringwire';
try {
  const sock = await FdSocket.connect(address, { timeoutMs: 5000 });
  const text = await new Promise<string>((resolve, reject) => {
    sock.once('message', (data) => resolve(data.toString('utf8')));
    sock.once('close', () => reject(new Error('closed without a message')));
  });
  sock.close();
  console.log(JSON.stringify({ ok: true, got: JSON.parse(text) as unknown }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: (err as Error).message, errno: isRingwireError(err) ? err.errno : undefined }));
}
