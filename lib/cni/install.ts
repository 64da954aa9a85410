/**
 * The CNI installer: puts ringwire-cni into the node's existing network configuration the way
 * istio-cni's install-cni does. The runtime uses the first configuration file in name order in
 * the CNI config directory (libcni's ConfFiles, sorted); the installer appends ringwire's entry to
 * that file's plugin chain (turning a single-plugin .conf into a .conflist first), writes it by
 * rename so the runtime never reads half a file, and removes the entry again on uninstall. It never
 * edits another plugin's entry. The plugin file itself is copied into the CNI bin directory.
 */
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ringwireError } from '../errors.js';

export const PLUGIN_TYPE = 'ringwire-cni';
const CONF_EXTENSIONS = ['.conf', '.conflist', '.json'];

type Json = Record<string, unknown>;

/** The conflist with ringwire's entry appended last (an old ringwire entry is replaced, not doubled). */
export function insertPlugin(conf: Json, plugin: Json): Json {
  if (plugin.type !== PLUGIN_TYPE) throw ringwireError('ERR_INVALID_ARG', `the inserted plugin must have type ${PLUGIN_TYPE}`);
  const entry = { ...plugin };
  delete entry.cniVersion; // a conflist's version is the list's
  if (Array.isArray(conf.plugins)) {
    return { ...conf, plugins: [...(conf.plugins as Json[]).filter((p) => p?.type !== PLUGIN_TYPE), entry] };
  }
  if (typeof conf.type === 'string') {
    // A single-plugin .conf becomes a list whose first plugin is the old configuration.
    const { cniVersion, name, ...first } = conf;
    return { cniVersion, name, plugins: [first, entry] };
  }
  throw ringwireError('ERR_INVALID_ARG', 'a CNI configuration needs either "plugins" (a conflist) or "type" (a single plugin)');
}

/** The conflist without ringwire's entry. */
export function removePlugin(conf: Json): Json {
  if (!Array.isArray(conf.plugins)) return conf;
  return { ...conf, plugins: (conf.plugins as Json[]).filter((p) => p?.type !== PLUGIN_TYPE) };
}

/** The file the runtime uses: the first configuration file by name, as libcni sorts them. */
export function primaryConfFile(confDir: string): string | undefined {
  const names = readdirSync(confDir).filter((n) => CONF_EXTENSIONS.some((e) => n.endsWith(e))).sort();
  return names[0] === undefined ? undefined : join(confDir, names[0]);
}

function writeAtomically(path: string, text: string): void {
  const tmp = `${path}.ringwire-tmp`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, path);
}

export interface InstallOptions {
  confDir: string;
  /** The plugin's own entry, e.g. {type: 'ringwire-cni', agentSocket: '/var/run/ringwire/cni.sock'}. */
  plugin: Json;
  /** Use this file instead of the first one (istio-cni's CNI_CONF_NAME). */
  confName?: string;
}

/**
 * Inserts the plugin into the primary configuration; returns the file written. A .conf is replaced
 * by a .conflist of the same base name (libcni reads a .conf as one plugin only). No configuration
 * yet (the network plugin has not written one) is an ERR_INVALID_ARG the caller waits on.
 */
export function installConf(opts: InstallOptions): string {
  const file = opts.confName ? join(opts.confDir, opts.confName) : primaryConfFile(opts.confDir);
  if (!file || !existsSync(file)) throw ringwireError('ERR_INVALID_ARG', `no CNI configuration in ${opts.confDir} yet`);
  let conf: Json;
  try {
    conf = JSON.parse(readFileSync(file, 'utf8')) as Json;
  } catch (err) {
    throw ringwireError('ERR_INVALID_ARG', `${file} is not JSON`, { cause: err });
  }
  const next = insertPlugin(conf, opts.plugin);
  const target = file.endsWith('.conf') ? `${file}list` : file;
  writeAtomically(target, `${JSON.stringify(next, null, 2)}\n`);
  if (target !== file) unlinkSync(file);
  return target;
}

/** Removes the plugin's entry from every configuration file in the directory that has one. */
export function uninstallConf(confDir: string): string[] {
  const changed: string[] = [];
  for (const name of readdirSync(confDir).filter((n) => CONF_EXTENSIONS.some((e) => n.endsWith(e)))) {
    const file = join(confDir, name);
    let conf: Json;
    try {
      conf = JSON.parse(readFileSync(file, 'utf8')) as Json;
    } catch {
      continue; // not ours to judge
    }
    const next = removePlugin(conf);
    if ((next.plugins as unknown[] | undefined)?.length === (conf.plugins as unknown[] | undefined)?.length) continue;
    writeAtomically(file, `${JSON.stringify(next, null, 2)}\n`);
    changed.push(file);
  }
  return changed;
}

/** True when the primary configuration already ends with ringwire's entry. */
export function isInstalled(confDir: string, confName?: string): boolean {
  const file = confName ? join(confDir, confName) : primaryConfFile(confDir);
  if (!file || !existsSync(file)) return false;
  try {
    const plugins = (JSON.parse(readFileSync(file, 'utf8')) as Json).plugins as Json[] | undefined;
    return Array.isArray(plugins) && plugins.at(-1)?.type === PLUGIN_TYPE;
  } catch {
    return false;
  }
}

/**
 * Copies the plugin into the CNI bin directory: the package (`appDir`: dist/, the addon, node_modules/)
 * and the node binary go to `<binDir>/ringwire-cni.d/`, and `<binDir>/ringwire-cni` is a script
 * that runs them, because the node's host has no Node.js of its own. `hostBinDir` is where the
 * host sees `binDir` (the installer container mounts it elsewhere). Replaced by renames.
 */
export function installBinary(binDir: string, appDir: string, hostBinDir = binDir, nodeBinary = process.execPath): string {
  const home = join(binDir, `${PLUGIN_TYPE}.d`);
  const staging = `${home}.new`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  for (const part of ['package.json', 'dist', 'build/Release/ringwire.node', 'prebuilds', 'node_modules']) {
    const from = join(appDir, part);
    if (existsSync(from)) cpSync(from, join(staging, 'app', part), { recursive: true, dereference: true });
  }
  copyFileSync(nodeBinary, join(staging, 'node'));
  chmodSync(join(staging, 'node'), 0o755);
  rmSync(home, { recursive: true, force: true });
  renameSync(staging, home);
  const script = join(binDir, PLUGIN_TYPE);
  const hostHome = join(hostBinDir, `${PLUGIN_TYPE}.d`);
  writeAtomically(script, `#!/bin/sh\nexec '${hostHome}/node' '${hostHome}/app/dist/bin/ringwire-cni.js' "$@"\n`);
  chmodSync(script, 0o755);
  return script;
}
