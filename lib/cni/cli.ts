/**
 * `ringwire cni-install`: the DaemonSet's installer container (istio-cni's install-cni). Copies the
 * plugin into the host's CNI bin directory, waits for the node's network plugin to write its
 * configuration, appends ringwire-cni to it, keeps it there when something rewrites the file, and
 * takes it out again on SIGTERM so that pods do not fail ADD on a node whose agent was removed.
 */
import { watch } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ringwireError } from '../errors.js';
import { installBinary, installConf, isInstalled, uninstallConf } from './install.js';
import { DEFAULT_AGENT_SOCKET } from './spec.js';

export const CNI_INSTALL_USAGE = `usage: ringwire cni-install --conf-dir DIR --bin-dir DIR [options]
  --conf-dir       the host's CNI configuration directory as mounted here (/host/etc/cni/net.d)
  --bin-dir        the host's CNI plugin directory as mounted here (/host/opt/cni/bin)
  --host-bin-dir   the same directory as the host sees it; default /opt/cni/bin
  --app-dir        the ringwire package to copy; default this one
  --agent-socket   the agent's CNI event socket on the host; default ${DEFAULT_AGENT_SOCKET}
  --conf-name      insert into this file instead of the first one by name
  --exclude        a namespace whose pods get no socket (repeatable), e.g. kube-system
  --once           install and exit (no watching, no removal)`;

export async function cniInstallCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'conf-dir': { type: 'string' },
      'bin-dir': { type: 'string' },
      'host-bin-dir': { type: 'string' },
      'app-dir': { type: 'string' },
      'agent-socket': { type: 'string' },
      'conf-name': { type: 'string' },
      exclude: { type: 'string', multiple: true },
      once: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(CNI_INSTALL_USAGE);
    return 0;
  }
  const confDir = values['conf-dir'];
  const binDir = values['bin-dir'];
  if (!confDir || !binDir) throw ringwireError('ERR_INVALID_ARG', `--conf-dir and --bin-dir are required\n${CNI_INSTALL_USAGE}`);
  const appDir = values['app-dir'] ?? fileURLToPath(new URL('../../../', import.meta.url));
  const plugin = { type: 'ringwire-cni', agentSocket: values['agent-socket'] ?? DEFAULT_AGENT_SOCKET, excludeNamespaces: values.exclude ?? [] };
  const confName = values['conf-name'];
  const script = installBinary(binDir, appDir, values['host-bin-dir'] ?? '/opt/cni/bin');
  console.log(`cni-install: plugin installed as ${script}`);

  const ensure = (): boolean => {
    if (isInstalled(confDir, confName)) return true;
    try {
      console.log(`cni-install: ringwire-cni appended to ${installConf({ confDir, plugin, ...(confName ? { confName } : {}) })}`);
      return true;
    } catch (err) {
      console.log(`cni-install: waiting: ${(err as Error).message}`);
      return false;
    }
  };
  if (values.once) return ensure() ? 0 : 1;

  // Watch the directory: the network plugin may write its file after us, or rewrite it and drop our entry.
  const watcher = watch(confDir, () => ensure());
  const poll = setInterval(ensure, 5000); // inotify misses some writers (a replaced mount, a recreated dir)
  ensure();
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  watcher.close();
  clearInterval(poll);
  for (const file of uninstallConf(confDir)) console.log(`cni-install: ringwire-cni removed from ${file}`);
  return 0;
}
