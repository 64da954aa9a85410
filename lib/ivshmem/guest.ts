/**
 * Inside a guest: find the ivshmem PCI device, map BAR2 (the shared region) and BAR0 (registers)
 * through sysfs, and open channels to the host and to other guests. Without a guest driver there
 * are no interrupts, so every wait polls adaptively; ringing the host is a Doorbell register write,
 * done only when the host's consumer has said it sleeps.
 *
 * Concurrency contract: one IvshmemGuest per process, used from one thread.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ringwireError } from '../errors.js';
import { Region } from '../native/region.js';
import { IvshmemChannel } from './channel.js';
import { readLayout, readSlot, type IvshmemGeometry } from './layout.js';
import { IVSHMEM_BAR0_SIZE, IVSHMEM_DEVICE_ID, IVSHMEM_VENDOR_ID, IvshmemRegister, doorbellValue } from './protocol.js';

export const PCI_DEVICES = '/sys/bus/pci/devices';

/** PCI addresses (like 0000:00:04.0) of every ivshmem device, by vendor and device id. */
export function findIvshmemDevices(root = PCI_DEVICES): string[] {
  const out: string[] = [];
  for (const bdf of readdirSync(root).sort()) {
    try {
      const vendor = Number.parseInt(readFileSync(join(root, bdf, 'vendor'), 'utf8'), 16);
      const device = Number.parseInt(readFileSync(join(root, bdf, 'device'), 'utf8'), 16);
      if (vendor === IVSHMEM_VENDOR_ID && device === IVSHMEM_DEVICE_ID) out.push(bdf);
    } catch {
      // A device without readable ids is not ours.
    }
  }
  return out;
}

export interface IvshmemGuestOptions {
  /** Which device; default the only one (more than one is an error). */
  bdf?: string;
  root?: string;
}

export class IvshmemGuest {
  readonly bdf: string;
  /** Our peer id (the IVPosition register). */
  readonly id: number;
  readonly geometry: IvshmemGeometry;
  readonly region: Region;
  #regs: Int32Array;

  private constructor(bdf: string, regs: Int32Array, region: Region, geometry: IvshmemGeometry) {
    this.bdf = bdf;
    this.#regs = regs;
    this.region = region;
    this.geometry = geometry;
    this.id = regs[IvshmemRegister.IVPosition >> 2]!;
  }

  static open(opts: IvshmemGuestOptions = {}): IvshmemGuest {
    const root = opts.root ?? PCI_DEVICES;
    let bdf = opts.bdf;
    if (bdf === undefined) {
      const found = findIvshmemDevices(root);
      if (found.length !== 1) throw ringwireError('ERR_INVALID_ARG', `expected one ivshmem device (${IVSHMEM_VENDOR_ID.toString(16)}:${IVSHMEM_DEVICE_ID.toString(16)}), found ${found.length}; pass bdf`);
      bdf = found[0]!;
    }
    if (!/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(bdf)) throw ringwireError('ERR_INVALID_ARG', `not a PCI address: ${bdf}`);
    const dir = join(root, bdf);
    // No driver has enabled the device, so its BARs do not decode until we ask the PCI core.
    if (readFileSync(join(dir, 'enable'), 'utf8').trim() === '0') writeFileSync(join(dir, 'enable'), '1');
    const bar0 = Region.mapPath(join(dir, 'resource0'), { writable: true, size: IVSHMEM_BAR0_SIZE });
    const bar2 = Region.mapPath(join(dir, 'resource2'), { writable: true });
    const regs = new Int32Array(bar0.buffer, 0, 4);
    const guest = new IvshmemGuest(bdf, regs, bar2, readLayout(bar2.buffer));
    if (guest.id < 0 || guest.id >= guest.geometry.slots) throw ringwireError('ERR_IVSHMEM_PROTOCOL', `IVPosition ${guest.id} is outside the layout's ${guest.geometry.slots} slots (is the device connected to the server?)`);
    return guest;
  }

  /** Rings `vector` of peer `id` through the Doorbell register. */
  ring(id: number, vector: number): void {
    this.#regs[IvshmemRegister.Doorbell >> 2] = doorbellValue(id, vector);
  }

  /** Opens the channel to `peer` once both slots are live; rejects with ERR_TIMEOUT after timeoutMs. */
  async channel(peer: number, opts: { timeoutMs?: number } = {}): Promise<IvshmemChannel> {
    const deadline = performance.now() + (opts.timeoutMs ?? 10_000);
    const buffer = this.region.buffer;
    while (!readSlot(buffer, this.geometry, this.id).live || !readSlot(buffer, this.geometry, peer).live) {
      if (performance.now() > deadline) throw ringwireError('ERR_TIMEOUT', `ivshmem peer ${peer} (or our own slot ${this.id}) never became live`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return new IvshmemChannel({ buffer, geometry: this.geometry, self: this.id, peer, ringPeer: (v) => this.ring(peer, v) });
  }
}
