#!/usr/bin/env bash
# The PrivID test command. On a fresh Debian bookworm machine (as root) it
# installs and builds everything (deploy/setup.sh), starts a throwaway
# PostgreSQL on a free loopback port, runs the ctest suite against it and
# stops PostgreSQL whatever happens.
#   tests/run.sh [ctest args...]      e.g. tests/run.sh -L unit
#   PV_SANITIZE=1 tests/run.sh        the same suite under ASan+UBSan (build-asan/)
#   PV_FUZZ=1 tests/run.sh -L fuzz    libFuzzer targets (clang, build-fuzz/), 30 s each
# The default run (no ctest arguments, no PV_FUZZ) then also builds only the
# libFuzzer targets with clang in build-fuzz/ (target pv_fuzz_all) and runs
# each for PV_FUZZ_SECONDS (default 20), two at a time: label fuzz.
#   PV_FUZZ_SECONDS=0 tests/run.sh    skips that stage
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "${PV_FUZZ:-0}" = 1 ]; then
  export PRIVID_BUILD_DIR=${PRIVID_BUILD_DIR:-$repo/build-fuzz}
elif [ "${PV_SANITIZE:-0}" = 1 ]; then
  export PRIVID_BUILD_DIR=${PRIVID_BUILD_DIR:-$repo/build-asan}
fi
build=${PRIVID_BUILD_DIR:-$repo/build}
export PRIVID_BUILD_DIR=$build

"$repo/deploy/setup.sh"

. "$repo/tests/pg.sh"
pgdir=$(mktemp -d /tmp/privid-test-pg.XXXXXX)
chmod 755 "$pgdir"
cleanup() { pv_pg_stop "$pgdir/data"; rm -rf "$pgdir"; }
trap cleanup EXIT
printf '\n==> starting a throwaway PostgreSQL\n'
pv_pg_start "$pgdir/data"
echo "PostgreSQL 15 on 127.0.0.1:$PV_PG_PORT"
export PRIVID_TEST_PG=$PV_PG_DSN
# sanitizer settings (used when the build has PV_SANITIZE): only libh2o's known leaks are suppressed
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$repo/tests/sanitizers/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export PRIVID_MODELS=${PRIVID_MODELS:-$repo/build/models/face-api-1.7.15}

printf '\n==> running the tests\n'
cd "$build"
rc=0
ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@" || rc=$?

fuzz_seconds=${PV_FUZZ_SECONDS:-20}
if [ $# -eq 0 ] && [ "${PV_FUZZ:-0}" != 1 ] && [ "$fuzz_seconds" != 0 ]; then
  fuzz_build=${PRIVID_FUZZ_BUILD_DIR:-$repo/build-fuzz}
  printf '\n==> fuzzing: each target %s s (clang, libFuzzer, ASan+UBSan, %s)\n' "$fuzz_seconds" "$fuzz_build"
  mkdir -p "$fuzz_build"
  if cmake -S "$repo" -B "$fuzz_build" -DCMAKE_BUILD_TYPE=Release -DPV_FAISS_SRC="$repo/build/deps/faiss-src" \
       -DPV_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DPV_FUZZ_SECONDS="$fuzz_seconds" \
       > "$fuzz_build/configure.log" 2>&1 &&
     cmake --build "$fuzz_build" -j "$(nproc)" --target pv_fuzz_all > "$fuzz_build/build.log" 2>&1; then
    (cd "$fuzz_build" && ctest --output-on-failure --timeout 900 -j 2 -L fuzz) || rc=$?
  else
    tail -n 30 "$fuzz_build/configure.log" "$fuzz_build/build.log" 2>/dev/null >&2
    echo "run.sh: the fuzz targets did not build" >&2
    rc=1
  fi
fi
exit $rc
