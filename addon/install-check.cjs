#!/usr/bin/env node
// Runs after `node-gyp-build` at install: loads the addon this Node will use (the source build in
// build/Release if there is one, else the matching prebuild), says which file and which
// SharedArrayBuffer path it took, and fails the install if it cannot load. A source build against
// another Node's headers (a `nodedir` in the npm config, passed as npm_config_nodedir) is named here:
// on Nodes with node_api_create_external_sharedarraybuffer it still works, elsewhere it cannot load.
'use strict';
const path = require('node:path');

const root = path.join(__dirname, '..');
let file;
try {
  file = require('node-gyp-build').path(root);
  const addon = require(file);
  const sab = addon.sharedBuffer;
  const running = Number(process.versions.node.split('.')[0]);
  console.log(`ringwire: ${path.relative(root, file)} on Node ${process.versions.node}: SharedArrayBuffers via ${sab.path} (build ${sab.build}, headers of Node ${sab.headersNodeMajor})`);
  if (sab.build !== 'external-only' && sab.headersNodeMajor !== running) {
    console.warn(`ringwire: warning: the addon was compiled against Node ${sab.headersNodeMajor}'s headers under Node ${running}` +
      (process.env.npm_config_nodedir ? ` (npm_config_nodedir=${process.env.npm_config_nodedir})` : '') +
      '; it works here through Node-API, but its V8 fallback is for the other major');
  }
} catch (err) {
  console.error(`ringwire: the native addon does not load${file ? ` from ${file}` : ''}: ${err && err.message}`);
  process.exit(1);
}
