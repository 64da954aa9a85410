#!/usr/bin/env bash
# Builds the prebuilt addons that the npm package ships, into prebuilds/<platform>-<arch>/:
#   ringwire.glibc.node         Node-API, no V8 code (RINGWIRE_SAB=external-only): every Node that has
#                               node_api_create_external_sharedarraybuffer (22.23+, 24.16+, 26.1+)
#   ringwire.abi115.glibc.node  Node 20 only (ABI 115): the V8-API fallback, compiled against Node 20's headers
# for linux-x64 (native g++) and linux-arm64 (Debian's g++-aarch64-linux-gnu). node-gyp-build picks
# the abi115 file on Node 20 and the Node-API file elsewhere. No header is downloaded: each build
# names its headers (NODE20_DIR: a Node 20 prefix with include/node; default /usr).
# Usage: .ci/prebuilds.sh [x64] [arm64]   (default both)
set -euo pipefail
cd "$(dirname "$0")/.."
node20=${NODE20_DIR:-/usr}
[ -f "$node20/include/node/node_version.h" ] || { echo "no Node headers in $node20/include/node" >&2; exit 1; }
grep -q '^#define NODE_MAJOR_VERSION 20$' "$node20/include/node/node_version.h" \
  || { echo "$node20/include/node is not Node 20's" >&2; exit 1; }
archs=("$@"); [ ${#archs[@]} -gt 0 ] || archs=(x64 arm64)

one() { # arch sab-mode prebuildify-args...
  local arch=$1 mode=$2; shift 2
  local env=(RINGWIRE_SAB="$mode" npm_config_nodedir="$node20")
  if [ "$arch" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
    env+=(CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar
          PREBUILD_STRIP_BIN=aarch64-linux-gnu-strip)
  fi
  env "${env[@]}" npx prebuildify --arch "$arch" --tag-libc --strip "$@"
}

for arch in "${archs[@]}"; do
  rm -rf "prebuilds/linux-$arch"
  one "$arch" external-only --napi --target 20.20.2
  one "$arch" auto --napi=false --target 20.20.2
done
rm -rf build   # prebuildify leaves the last build in build/; a source build must not shadow the prebuilds
ls -l prebuilds/*/
