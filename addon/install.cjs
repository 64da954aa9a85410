#!/usr/bin/env node
// The package's install script. A prebuild that loads (prebuilds/<platform>-<arch>/, as node-gyp-build
// picks it) is kept; node-gyp builds from source only when none does (or with --build-from-source). Before that, this
// makes sure a source build compiles against the running Node's own headers: a `nodedir` in the npm
// config (npm passes it as npm_config_nodedir) that names another Node's headers is dropped, with a
// warning, in favour of the running Node's prefix when it ships include/node (official tarballs,
// the node-linux-* packages, Debian's nodejs), else of node-gyp's own download. Afterwards it loads
// the addon this Node will use, says which file and SharedArrayBuffer path it took, and fails the
// install if it cannot load.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync, readFileSync } = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const running = Number(process.versions.node.split('.')[0]);

function headersMajor(dir) {
  try {
    const m = readFileSync(path.join(dir, 'include', 'node', 'node_version.h'), 'utf8').match(/^#define NODE_MAJOR_VERSION (\d+)$/m);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

// Is there an addon that loads already (a prebuild, or an earlier source build)?
function loads() {
  const probe = `require(${JSON.stringify(require.resolve('node-gyp-build'))})(${JSON.stringify(root)})`;
  return spawnSync(process.execPath, ['-e', probe], { stdio: 'ignore' }).status === 0;
}

function nodeGyp() {
  try {
    return [process.execPath, require.resolve('node-gyp/bin/node-gyp.js')];
  } catch {
    const npmBundled = process.env.npm_config_node_gyp; // npm names its own node-gyp for scripts
    return npmBundled ? [process.execPath, npmBundled] : ['node-gyp'];
  }
}

if (process.env.npm_config_build_from_source === 'true' || !loads()) {
  const env = { ...process.env };
  const own = path.resolve(process.execPath, '..', '..');
  const configured = env.npm_config_nodedir;
  if (configured && headersMajor(configured) !== running) {
    console.warn(`ringwire: ignoring npm_config_nodedir=${configured}: its headers are Node ${headersMajor(configured) ?? '(none)'}'s, this is Node ${running}`);
    delete env.npm_config_nodedir;
  }
  if (!env.npm_config_nodedir && headersMajor(own) === running && existsSync(path.join(own, 'include', 'node', 'node_api.h'))) {
    env.npm_config_nodedir = own;
  }
  const [cmd, ...args] = nodeGyp();
  const built = spawnSync(cmd, [...args, 'rebuild'], { cwd: root, env, stdio: 'inherit' });
  if (built.status !== 0) {
    console.error(`ringwire: no prebuild fits ${process.platform}-${process.arch} on Node ${process.versions.node}, and the source build failed (it needs g++, make and python3)`);
    process.exit(built.status ?? 1);
  }
}

let file;
try {
  file = require('node-gyp-build').path(root);
  const sab = require(file).sharedBuffer;
  console.log(`ringwire: ${path.relative(root, file)} on Node ${process.versions.node}: SharedArrayBuffers via ${sab.path} (build ${sab.build}, headers of Node ${sab.headersNodeMajor})`);
} catch (err) {
  console.error(`ringwire: the native addon does not load${file ? ` from ${file}` : ''}: ${err && err.message}`);
  process.exit(1);
}
