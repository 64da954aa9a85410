/**
 * The vhost-user-net switch (`ringwire vhost-user-switch`): one vhost-user socket per VM port, a
 * learning L2 switch between them, and optionally a seqpacket socket for host ports. A VM that
 * dies or is dropped for a protocol error leaves the switch; the others keep switching, and the
 * VM rejoins by reconnecting to its socket.
 */
import { basename } from 'node:path';
import { ringwireError } from '../../lib/errors.js';
import { VhostUserServer } from '../vhost-user/server.js';
import { ChannelHostPortServer, HostPortServer } from './host-port.js';
import { L2Switch } from './l2-switch.js';
import { NetPortDevice } from './net.js';

export interface VhostUserSwitchOptions {
  /** One vhost-user socket path per VM port; the port is named after the file (without .sock). */
  ports: readonly string[];
  /** Seqpacket socket for host ports (one Ethernet frame per message). */
  hostSocket?: string;
  /** ringwire channel address (a path or @name) for host ports; use listen() to have it served. */
  hostChannel?: string;
  log?: (message: string) => void;
  /** Serve VMs whose guest memory is not sealed against shrinking (VhostUserServerOptions.allowUnsealedMemory). Default false. */
  allowUnsealedMemory?: boolean;
}

export class VhostUserSwitch {
  readonly l2: L2Switch;
  readonly ports: readonly NetPortDevice[];
  readonly servers: readonly VhostUserServer[];
  readonly #host: HostPortServer | undefined;
  #channels: ChannelHostPortServer | undefined;

  private constructor(l2: L2Switch, ports: NetPortDevice[], servers: VhostUserServer[], host: HostPortServer | undefined) {
    this.l2 = l2;
    this.ports = ports;
    this.servers = servers;
    this.#host = host;
  }

  /** start(), plus the ringwire-channel host port when `hostChannel` is given (listening is asynchronous). */
  static async listen(options: VhostUserSwitchOptions): Promise<VhostUserSwitch> {
    const sw = VhostUserSwitch.start(options);
    if (options.hostChannel) {
      try {
        sw.#channels = await ChannelHostPortServer.listen(options.hostChannel, sw.l2, options.log ? { log: options.log } : {});
      } catch (err) {
        await sw.close();
        throw err;
      }
    }
    return sw;
  }

  /** Starts the VM ports and the seqpacket host port; `hostChannel` needs listen(). */
  static start(options: VhostUserSwitchOptions): VhostUserSwitch {
    if (!Array.isArray(options.ports) || options.ports.length === 0) throw ringwireError('ERR_INVALID_ARG', 'the switch needs at least one port socket');
    const log = options.log ?? ((m: string) => console.error(`ringwire switch: ${m}`));
    const names = options.ports.map((p) => basename(p).replace(/\.sock$/, ''));
    if (new Set(names).size !== names.length) throw ringwireError('ERR_INVALID_ARG', `port names must be unique: ${names.join(', ')}`);
    const l2 = new L2Switch({ log });
    const ports: NetPortDevice[] = [];
    const servers: VhostUserServer[] = [];
    let host: HostPortServer | undefined;
    try {
      options.ports.forEach((path, i) => {
        const port = new NetPortDevice(names[i]!, l2, { log });
        const server = VhostUserServer.listen(path, port, { log: (m) => log(`port ${port.name}: ${m}`), allowUnsealedMemory: options.allowUnsealedMemory === true });
        server.on('connection', () => log(`port ${port.name}: front-end connected`));
        server.on('disconnect', (why) => log(`port ${port.name}: front-end disconnected${why ? ` (${why.message})` : ''}`));
        ports.push(port);
        servers.push(server);
      });
      if (options.hostSocket) host = new HostPortServer(options.hostSocket, l2, { log });
    } catch (err) {
      for (const s of servers) s.close();
      throw err;
    }
    return new VhostUserSwitch(l2, ports, servers, host);
  }

  async close(): Promise<void> {
    for (const s of this.servers) s.close();
    this.#host?.close();
    await this.#channels?.close();
  }
}
