/**
 * Provisions (or finds in the cache) the VM test guest and says what it holds. CI runs this
 * before `npm run test:vm` so a provisioning failure is reported on its own, not as a test failure:
 *   node dist/qemu-test/provision.js
 */
import { chooseAccel, describeImage, ensureGuestImage, missingVmPrerequisites, qemuVersion } from './harness/index.js';

const missing = missingVmPrerequisites();
if (missing.length) {
  console.error(`cannot provision the VM test guest; install: ${missing.join(', ')}`);
  process.exit(1);
}
const t0 = Date.now();
try {
  const image = await ensureGuestImage();
  console.log(describeImage(image));
  console.log(`  ${qemuVersion()}; accelerator ${await chooseAccel(image)}; ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
