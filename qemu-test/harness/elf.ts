/**
 * Just enough ELF64 reading for provisioning: a kernel module's `.modinfo` strings (depends,
 * vermagic, name) without modinfo/kmod installed, and whether a binary is static (busybox must be,
 * since the initramfs carries no libc). Every offset read from the file is bounds-checked.
 */
import { readFileSync } from 'node:fs';

const ELF_MAGIC = 0x464c457f; // "\x7fELF" read little-endian
const ELFCLASS64 = 2;
const EHDR = { class: 4, phoff: 0x20, shoff: 0x28, phentsize: 0x36, phnum: 0x38, shentsize: 0x3a, shnum: 0x3c, shstrndx: 0x3e, size: 0x40 } as const;
const SHDR = { name: 0, offset: 24, size: 32 } as const;
const PT_INTERP = 3;
const PT_NOTE = 4;
const PHDR = { type: 0, offset: 8, filesz: 32 } as const;
/** Xen's ELF note carrying the 32-bit PVH entry point; QEMU boots such an ELF directly. */
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

function open(path: string, data?: Buffer): Buffer {
  const buf = data ?? readFileSync(path);
  if (buf.length < EHDR.size || buf.readUInt32LE(0) !== ELF_MAGIC || buf[EHDR.class] !== ELFCLASS64) {
    throw new Error(`${path}: not an ELF64 file`);
  }
  return buf;
}

function slice(buf: Buffer, path: string, offset: bigint | number, size: bigint | number): Buffer {
  const start = Number(offset), len = Number(size);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(len) || start < 0 || len < 0 || start + len > buf.length) {
    throw new Error(`${path}: ELF structure points outside the file`);
  }
  return buf.subarray(start, start + len);
}

function section(buf: Buffer, path: string, wanted: string): Buffer | undefined {
  const shoff = buf.readBigUInt64LE(EHDR.shoff);
  const entsize = buf.readUInt16LE(EHDR.shentsize);
  const count = buf.readUInt16LE(EHDR.shnum);
  const headers = slice(buf, path, shoff, entsize * count);
  const header = (i: number): Buffer => slice(headers, path, i * entsize, entsize);
  const strtab = header(buf.readUInt16LE(EHDR.shstrndx));
  const names = slice(buf, path, strtab.readBigUInt64LE(SHDR.offset), strtab.readBigUInt64LE(SHDR.size));
  for (let i = 0; i < count; i++) {
    const h = header(i);
    const nameAt = h.readUInt32LE(SHDR.name);
    const end = names.indexOf(0, nameAt);
    if (nameAt >= names.length || end < 0) continue;
    if (names.toString('latin1', nameAt, end) === wanted) {
      return slice(buf, path, h.readBigUInt64LE(SHDR.offset), h.readBigUInt64LE(SHDR.size));
    }
  }
  return undefined;
}

/** The key=value pairs of a kernel module's .modinfo section (later duplicates win). */
export function moduleInfo(path: string): Map<string, string> {
  const buf = open(path);
  const info = section(buf, path, '.modinfo');
  if (!info) throw new Error(`${path}: no .modinfo section; not a kernel module`);
  const out = new Map<string, string>();
  for (const entry of info.toString('latin1').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) out.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return out;
}

/** True when the executable has no PT_INTERP program header, i.e. needs no dynamic loader. */
export function isStaticExecutable(path: string): boolean {
  const buf = open(path);
  const phoff = buf.readBigUInt64LE(EHDR.phoff);
  const entsize = buf.readUInt16LE(EHDR.phentsize);
  const count = buf.readUInt16LE(EHDR.phnum);
  const headers = slice(buf, path, phoff, entsize * count);
  for (let i = 0; i < count; i++) {
    if (slice(headers, path, i * entsize, 4).readUInt32LE(0) === PT_INTERP) return false;
  }
  return true;
}

/** True when `data` is an ELF kernel with a PVH entry note, which QEMU's -kernel can boot as is. */
export function hasPvhEntry(data: Buffer, what: string): boolean {
  const buf = open(what, data);
  const phoff = buf.readBigUInt64LE(EHDR.phoff);
  const entsize = buf.readUInt16LE(EHDR.phentsize);
  const headers = slice(buf, what, phoff, entsize * buf.readUInt16LE(EHDR.phnum));
  for (let i = 0; i < headers.length / entsize; i++) {
    const h = slice(headers, what, i * entsize, entsize);
    if (h.readUInt32LE(PHDR.type) !== PT_NOTE) continue;
    const notes = slice(buf, what, h.readBigUInt64LE(PHDR.offset), h.readBigUInt64LE(PHDR.filesz));
    const align4 = (n: number): number => (n + 3) & ~3;
    for (let at = 0; at + 12 <= notes.length; ) {
      const namesz = notes.readUInt32LE(at), descsz = notes.readUInt32LE(at + 4), type = notes.readUInt32LE(at + 8);
      const name = notes.toString('latin1', at + 12, Math.min(notes.length, at + 12 + namesz)).replace(/\0+$/, '');
      if (name === 'Xen' && type === XEN_ELFNOTE_PHYS32_ENTRY) return true;
      at += 12 + align4(namesz) + align4(descsz);
    }
  }
  return false;
}
