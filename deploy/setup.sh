#!/usr/bin/env bash
# PrivID set-up for Debian bookworm, idempotent. As root it installs the
# Debian packages PrivID needs; then it fetches the Debian source of the
# installed faiss (for the FAISS C API, built by CMake), fetches and verifies
# the model weights, and builds the project into $PRIVID_BUILD_DIR (build/).
#   PV_SANITIZE=1   build with ASan+UBSan      PV_FUZZ=1  also fuzz targets (clang)
#   PRIVID_SKIP_BUILD=1   stop after dependencies and models
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PRIVID_BUILD_DIR:-$repo/build}
deps=$repo/build/deps
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

packages=(
  build-essential cmake pkg-config ca-certificates curl jq xxd procps
  libh2o-evloop-dev liblmdb-dev lmdb-utils libfaiss-dev libopenblas-dev liblapack-dev libgomp1
  libssl-dev openssl libpq-dev postgresql-15 postgresql-client-15
  libjpeg62-turbo-dev libspng-dev libwebp-dev libjansson-dev libcmocka-dev
  wrk dpkg-dev clang libclang-rt-14-dev valgrind
  python3 python3-yaml
  chromium
)

step "checking the system"
if [ -r /etc/os-release ]; then
  . /etc/os-release
  [ "${VERSION_CODENAME:-}" = bookworm ] || echo "setup: warning: tested on Debian bookworm, this is ${PRETTY_NAME:-unknown}" >&2
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); run this script as root to install them"
  step "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q || die "apt-get update failed"
  apt-get install -y -q --no-install-recommends "${missing[@]}" || die "apt-get install failed"
else
  echo "all ${#packages[@]} Debian packages present"
fi

# FAISS C API: Debian ships its headers and libfaiss.a but not libfaiss_c.
# CMake compiles c_api/*.cpp from the Debian source of the installed version.
faiss_ver=$(dpkg-query -W -f='${source:Version}' libfaiss-dev) || die "libfaiss-dev is not installed"
faiss_src=$deps/faiss-src
if [ "$(cat "$faiss_src/.privid-version" 2>/dev/null)" != "$faiss_ver" ]; then
  step "fetching the Debian source of faiss $faiss_ver (for the C API)"
  if ! apt-cache showsrc faiss 2>/dev/null | grep "^Version: $faiss_ver\$" >/dev/null; then
    [ "$(id -u)" = 0 ] || die "deb-src entries are needed to fetch the faiss source; run as root"
    src_list=/etc/apt/sources.list.d/privid-deb-src.sources
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      # derive deb-src entries from the system's own deb entries
      sed -e 's/^Types:.*$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$src_list"
    elif [ -f /etc/apt/sources.list ]; then
      grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > /etc/apt/sources.list.d/privid-deb-src.list
    else
      die "no apt sources found to derive deb-src entries from"
    fi
    apt-get update -q || die "apt-get update (deb-src) failed"
  fi
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get source -q "faiss=$faiss_ver") > "$tmp/log" 2>&1 || { cat "$tmp/log" >&2; die "apt-get source faiss=$faiss_ver failed"; }
  dir=$(find "$tmp" -maxdepth 1 -mindepth 1 -type d -name 'faiss-*' | head -1)
  [ -n "$dir" ] && [ -f "$dir/c_api/Index_c.cpp" ] || die "the faiss source has no c_api/"
  rm -rf "$faiss_src"
  mkdir -p "$deps"
  mv "$dir" "$faiss_src"
  echo "$faiss_ver" > "$faiss_src/.privid-version"
  rm -rf "$tmp"
else
  echo "faiss source $faiss_ver present in $faiss_src"
fi

step "model weights"
"$repo/models/fetch_models.sh"

if [ "${PRIVID_SKIP_BUILD:-0}" = 1 ]; then
  exit 0
fi
step "building PrivID into $build"
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DPV_FAISS_SRC="$faiss_src")
[ "${PV_SANITIZE:-0}" = 1 ] && cmake_args+=(-DPV_SANITIZE=ON)
[ "${PV_FUZZ:-0}" = 1 ] && cmake_args+=(-DPV_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++)
mkdir -p "$build"
cmake -S "$repo" -B "$build" "${cmake_args[@]}" > "$build/configure.log" 2>&1 || { cat "$build/configure.log" >&2; die "cmake configure failed"; }
cmake --build "$build" -j "$(nproc)" || die "build failed"

# The web console (gateway/console): npm packages of the pinned lock and the
# bundle into $build/console (served by the gateway at /), when changed.
step "web console"
"$repo/gateway/console/build.sh" "$build" || die "console build failed"
echo "setup: done; binaries in $build/bin, web console in $build/console"
