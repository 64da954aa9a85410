/**
 * A vhost-user rng back-end in its own process, so a test can measure what a hostile front-end
 * costs it: listens on argv[2], prints {"ready":true}, then one JSON line per line read on stdin
 * with the ticks of a 10 ms interval timer so far (a monopolised event loop stops them), how many
 * times the device's queue handler ran, and the lines it logged.
 */
import { createInterface } from 'node:readline';
import { RngDevice } from '../../virtio/devices/rng.js';
import { VhostUserServer } from '../../virtio/vhost-user/server.js';
import type { VringHandle } from '../../virtio/vhost-user/device.js';

let runs = 0;
class CountingRng extends RngDevice {
  override handleQueue(vring: VringHandle): void {
    runs++;
    super.handleQueue(vring);
  }
}

const logs: string[] = [];
VhostUserServer.listen(process.argv[2]!, new CountingRng(), { log: (m) => logs.push(m) });
let ticks = 0;
setInterval(() => { ticks++; }, 10);
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
createInterface({ input: process.stdin }).on('line', () => {
  process.stdout.write(`${JSON.stringify({ ticks, runs, logs })}\n`);
});
