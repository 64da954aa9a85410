/**
 * vhost-user-rng: the entropy device (virtio 1.2, 5.4 "Entropy Device"; device id 4). One request
 * queue; the driver posts device-writable buffers and the device fills them with random bytes. The
 * smallest device there is, and so the conformance check for the back-end under QEMU
 * (`-device vhost-user-rng-pci`; the guest reads /dev/hwrng).
 */
import { randomFillSync } from 'node:crypto';
import { ringwireError } from '../../lib/errors.js';
import { drainQueue, VhostUserDevice, type VringHandle } from '../vhost-user/device.js';

/** Bytes filled per request at most: a guest posting a huge buffer gets a short answer, which 5.4.6.1 allows. */
export const RNG_MAX_REQUEST_BYTES = 64 * 1024;

export interface RngDeviceOptions {
  /** Fills a buffer with the bytes to serve; default crypto.randomFillSync. Tests pass a known stream. */
  fill?: (buffer: Uint8Array) => void;
}

export class RngDevice extends VhostUserDevice {
  readonly numQueues = 1;
  readonly #fill: (buffer: Uint8Array) => void;
  #bytesServed = 0;
  #requests = 0;

  constructor(options: RngDeviceOptions = {}) {
    super();
    if (options.fill !== undefined && typeof options.fill !== 'function') throw ringwireError('ERR_INVALID_ARG', 'fill must be a function');
    this.#fill = options.fill ?? ((b) => randomFillSync(b));
  }

  /** Bytes handed to drivers since the device was created (across connections). */
  get bytesServed(): number {
    return this.#bytesServed;
  }

  get requests(): number {
    return this.#requests;
  }

  override handleQueue(vring: VringHandle): void {
    drainQueue(vring, (chain) => {
      let left = RNG_MAX_REQUEST_BYTES;
      let written = 0;
      for (const buf of chain.writable) {
        if (left === 0) break;
        const part = buf.byteLength <= left ? buf : buf.subarray(0, left);
        this.#fill(part);
        written += part.byteLength;
        left -= part.byteLength;
      }
      this.#bytesServed += written;
      this.#requests++;
      return written;
    });
  }
}
