#!/usr/bin/env bash
# Builds the web console (this folder) into BUILD/console, served by the
# gateway at /: npm ci of the pinned lock into BUILD/console-npm when the lock
# changed, the esbuild bundle when a source changed. Used by deploy/setup.sh
# and the container image (deploy/docker/Dockerfile). Needs node and npm.
#   gateway/console/build.sh BUILD_DIR
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
src=$(cd "$(dirname "$0")" && pwd)
build=$1
npm_dir=$build/console-npm
die() { echo "console: error: $*" >&2; exit 1; }

lock_sum=$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$npm_dir/.lock.sha256" 2>/dev/null)" != "$lock_sum" ] || [ ! -d "$npm_dir/node_modules" ]; then
  echo "console: installing the npm packages of package-lock.json into $npm_dir"
  mkdir -p "$npm_dir"
  cp "$src/package.json" "$src/package-lock.json" "$npm_dir/"
  (cd "$npm_dir" && npm ci --no-audit --no-fund) || die "npm ci failed"
  echo "$lock_sum" > "$npm_dir/.lock.sha256"
fi
src_sum=$(cd "$src" && cat build.mjs package-lock.json src/* | sha256sum | cut -d' ' -f1)
if [ "$(cat "$build/console/.src.sha256" 2>/dev/null)" != "$src_sum" ] || [ ! -f "$build/console/index.html" ]; then
  echo "console: building into $build/console"
  rm -rf "$npm_dir/src"
  cp -r "$src/build.mjs" "$src/src" "$npm_dir/"
  (cd "$npm_dir" && node build.mjs "$build/console") || die "the bundle failed to build"
  echo "$src_sum" > "$build/console/.src.sha256"
fi
