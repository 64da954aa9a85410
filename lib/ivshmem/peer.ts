/**
 * IvshmemPeer: a host process that joins an ivshmem region as a peer, through the server's
 * protocol (IvshmemClient), with the same channels a guest has. Unlike a guest it has interrupts:
 * its own vectors are eventfds, so its waits park instead of polling.
 *
 * Concurrency contract: single-threaded, on the event loop of the thread that called connect().
 */
import { EventFdDoorbell } from '../native/doorbell-eventfd.js';
import { IvshmemChannel, DATA_VECTOR, SPACE_VECTOR } from './channel.js';
import { IvshmemClient, type IvshmemClientOptions } from './client.js';
import { readLayout, type IvshmemGeometry } from './layout.js';

export class IvshmemPeer {
  readonly client: IvshmemClient;
  readonly geometry: IvshmemGeometry;
  #data: EventFdDoorbell;
  #space: EventFdDoorbell;

  private constructor(client: IvshmemClient) {
    this.client = client;
    this.geometry = readLayout(client.region.buffer);
    this.#data = new EventFdDoorbell(client.ownBell(DATA_VECTOR));
    this.#space = client.vectors > SPACE_VECTOR ? new EventFdDoorbell(client.ownBell(SPACE_VECTOR)) : this.#data;
  }

  static async connect(path: string, opts: IvshmemClientOptions = {}): Promise<IvshmemPeer> {
    const client = await IvshmemClient.connect(path, opts);
    try {
      return new IvshmemPeer(client);
    } catch (err) {
      client.close();
      throw err;
    }
  }

  get id(): number {
    return this.client.id;
  }

  channel(peer: number): IvshmemChannel {
    return new IvshmemChannel({
      buffer: this.client.region.buffer, geometry: this.geometry, self: this.id, peer,
      ringPeer: (vector) => {
        try {
          this.client.ring(peer, vector);
        } catch {
          // The peer has left (or has fewer vectors): nobody to wake.
        }
      },
      dataWait: this.#data,
      spaceWait: this.#space,
    });
  }

  /** Leaves the region; the server tells everyone. */
  close(): void {
    this.#data.close();
    this.#space.close();
    this.client.close();
  }
}
