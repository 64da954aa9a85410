/**
 * A test's VMs together: one temp directory, every QEMU registered for killing, and logs kept for
 * every VM when the test throws. `withVms` is the shape a VM test should take:
 *
 *   await withVms(async (vms) => {
 *     const vm = await vms.start({ name: 'a', script: 'node -e 1', timeoutMs: 60_000 });
 *     await vm.waitSuccess();
 *   });
 */
import { Children, makeTempDir } from '../../test/helpers/index.js';
import { Vm, type VmOptions } from './vm.js';

export class VmSession {
  readonly dir: string;
  readonly children = new Children();
  readonly vms: Vm[] = [];
  #cleanup: () => void;

  constructor(prefix = 'ringwire-vm-') {
    const { dir, cleanup } = makeTempDir(prefix);
    this.dir = dir;
    this.#cleanup = cleanup;
  }

  async start(opts: VmOptions): Promise<Vm> {
    const vm = await Vm.start({ ...opts, workDir: this.dir, children: this.children });
    this.vms.push(vm);
    return vm;
  }

  /** Keeps every VM's logs; returns the directories. */
  preserveLogs(reason: string): string[] {
    return this.vms.map((vm) => vm.preserveLogs(reason));
  }

  /** Kills every VM and other registered child, then removes the temp directory. */
  async close(): Promise<void> {
    await this.children.killAll();
    await Promise.all(this.vms.map((vm) => vm.kill()));
    this.#cleanup();
  }
}

/** Runs `fn` with a fresh session; on a throw keeps all VM logs and names them in the error. */
export async function withVms<T>(fn: (vms: VmSession) => Promise<T>): Promise<T> {
  const session = new VmSession();
  try {
    return await fn(session);
  } catch (err) {
    const dirs = session.preserveLogs(`test failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    if (err instanceof Error && dirs.length) err.message += `\n  VM logs kept in:\n    ${dirs.join('\n    ')}`;
    throw err;
  } finally {
    await session.close();
  }
}
