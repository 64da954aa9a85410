/**
 * The vhost-user commands of the `ringwire` CLI: `vhost-user-switch` and `vhost-user-rng`. Each
 * runs in the foreground until SIGINT or SIGTERM, logs connections, drops and broken queues to
 * stderr, and prints one JSON line `{"ready":true,...}` on stdout once its sockets listen (start
 * QEMU after that line).
 */
import { parseArgs } from 'node:util';
import { VhostUserServer } from '../vhost-user/server.js';
import { RngDevice } from './rng.js';
import { VhostUserSwitch } from './switch.js';

export const SWITCH_USAGE = `usage: ringwire vhost-user-switch --port PATH [--port PATH ...] [--host-channel ADDR] [--host-socket PATH] [--stats-ms N] [--allow-unsealed-memory]
  --port PATH         a vhost-user socket for one VM (QEMU: -chardev socket,id=c,path=PATH
                      -netdev vhost-user,id=n,chardev=c -device virtio-net-pci,netdev=n); the port
                      is named after the file, without .sock
  --host-channel ADDR a ringwire channel address (path or @name); each connection is a host port,
                      one Ethernet frame per message (ringwire connect(ADDR) from the host process)
  --host-socket PATH  a SOCK_SEQPACKET socket; each connection is a host port, one frame per message
  --stats-ms N        print port and switch counters as JSON on stdout every N ms
  --allow-unsealed-memory
                      also serve front-ends whose guest memory is not sealed against shrinking
                      (DPDK --no-huge); such a front-end can crash the switch with SIGBUS`;

export const RNG_USAGE = `usage: ringwire vhost-user-rng --socket PATH [--allow-unsealed-memory]
  --socket PATH  the vhost-user socket (QEMU: -chardev socket,id=c,path=PATH -device vhost-user-rng-pci,chardev=c)
  --allow-unsealed-memory
                 also serve front-ends whose guest memory is not sealed against shrinking`;

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

export async function vhostUserSwitchCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { port: { type: 'string', multiple: true }, 'host-socket': { type: 'string' }, 'host-channel': { type: 'string' }, 'stats-ms': { type: 'string' }, 'allow-unsealed-memory': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || !values.port?.length) {
    console.log(SWITCH_USAGE);
    return values.help ? 0 : 2;
  }
  const statsMs = values['stats-ms'] === undefined ? 0 : Number(values['stats-ms']);
  if (!Number.isInteger(statsMs) || statsMs < 0) {
    console.error(`--stats-ms must be a non-negative integer\n${SWITCH_USAGE}`);
    return 2;
  }
  const sw = await VhostUserSwitch.listen({
    ports: values.port,
    ...(values['host-socket'] ? { hostSocket: values['host-socket'] } : {}),
    ...(values['host-channel'] ? { hostChannel: values['host-channel'] } : {}),
    allowUnsealedMemory: values['allow-unsealed-memory'] === true,
  });
  const stats = (): string => JSON.stringify({ switch: sw.l2.stats, ports: Object.fromEntries(sw.ports.map((p) => [p.name, p.stats])) });
  const timer = statsMs > 0 ? setInterval(() => console.log(stats()), statsMs) : undefined;
  console.log(JSON.stringify({ ready: true, ports: values.port, hostSocket: values['host-socket'] ?? null, hostChannel: values['host-channel'] ?? null }));
  await untilSignal();
  clearInterval(timer);
  console.log(stats());
  await sw.close();
  return 0;
}

export async function vhostUserRngCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { socket: { type: 'string' }, 'allow-unsealed-memory': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help || !values.socket) {
    console.log(RNG_USAGE);
    return values.help ? 0 : 2;
  }
  const device = new RngDevice();
  const server = VhostUserServer.listen(values.socket, device, { allowUnsealedMemory: values['allow-unsealed-memory'] === true });
  server.on('connection', () => console.error('ringwire vhost-user-rng: front-end connected'));
  server.on('disconnect', (why) => console.error(`ringwire vhost-user-rng: front-end disconnected${why ? ` (${why.message})` : ''}`));
  console.log(JSON.stringify({ ready: true, socket: values.socket }));
  await untilSignal();
  server.close();
  console.log(JSON.stringify({ bytesServed: device.bytesServed, requests: device.requests }));
  return 0;
}
