#!/usr/bin/env bash
# Runs a command with a supported Node (>= 22.12) first on PATH, and the project's
# dependencies installed. wrangler and vitest need Node >= 22.12; when the machine's
# Node is older, Node 24 is installed from the npm registry (package `node@24`) into
# a cache folder inside the checkout — nothing global is touched.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="$root/.cache/node"

supported() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=12)?0:1)'
}

if ! supported; then
  if [ ! -x "$cache/node_modules/node/bin/node" ]; then
    echo "edgefleet: Node $(node --version 2>/dev/null || echo none) is too old; installing Node 24 into .cache/node ..." >&2
    mkdir -p "$cache"
    npm install --prefix "$cache" --no-save --no-audit --no-fund --loglevel=error node@24 >&2
  fi
  export PATH="$cache/node_modules/node/bin:$PATH"
fi

# Install (or refresh) dependencies when node_modules is missing or older than the lockfile.
stamp="$root/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$root/package-lock.json" -nt "$stamp" ]; then
  echo "edgefleet: installing dependencies ..." >&2
  # `npm install`, not `npm ci`: it installs exactly the lockfile's versions too, but tolerates a
  # lockfile without entries for other platforms' optional binaries (workerd, msgpackr-extract),
  # which registries that don't carry them leave out — `npm ci` refuses such a lockfile.
  (cd "$root" && npm install --no-audit --no-fund --loglevel=error >&2)
fi

export PATH="$root/node_modules/.bin:$PATH"
export WRANGLER_SEND_METRICS=false
exec "$@"
