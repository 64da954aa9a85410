/**
 * The QEMU integration-test harness: provisions a Debian test guest (cached), boots it under TCG
 * (KVM only where a probe shows it works) and runs a script with the host's node inside a
 * read-only 9p view of the host. See qemu-test/README.md.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { qemuVersion } from './accel.js';

export { chooseAccel, qemuVersion, type Accel } from './accel.js';
export { describeImage, ensureGuestImage, MODULE_GROUPS, vmCacheDir, type GuestImage, type ModuleGroup } from './image.js';
export { withVms, VmSession } from './session.js';
export { REPO_ROOT, Vm, type GuestMark, type VmNet, type VmOptions, type VmResult, type VmStartOptions } from './vm.js';

/** What this host lacks to run VM tests, as Debian package names (empty when ready). */
export function missingVmPrerequisites(): string[] {
  const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
  const missing: string[] = [];
  if (!qemuVersion()) missing.push('qemu-system-x86');
  if (!existsSync('/bin/busybox')) missing.push('busybox-static');
  if (!has('cpio')) missing.push('cpio');
  if (!has('apt-get') || !has('dpkg-deb')) missing.push('apt and dpkg (a Debian-family host)');
  return missing;
}

/** True when QEMU and everything provisioning needs are installed. */
export function qemuAvailable(): boolean {
  return missingVmPrerequisites().length === 0;
}
