#!/usr/bin/env bash
# Overload benchmark (loopback only, bounded): offers POST /v1/detect on a
# face crop at several rates (open loop, loadgen) to one gateway and prints
# one JSON line per rate: p50/p99 of accepted answers, accepted throughput,
# shed rate (503/429) and the gateway's peak RSS so far (VmHWM).
#   bench_overload.sh [BUILD_DIR]   env: RATES ("10 50 100 200"), DURATION (10), CONNS (64),
#                                        WORKERS (1), QUEUE_MAX (8), QUEUE_TIMEOUT_MS (2000)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
bin=${1:-$repo/build}/bin
models=${PRIVID_MODELS:-$repo/build/models/face-api-1.7.15}
rates=${RATES:-10 50 100 200} duration=${DURATION:-10} conns=${CONNS:-64}
tmp=$(mktemp -d)
trap 'kill $gw 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
"$bin/privid-admin" --data-dir "$tmp/data" tenant create bench >/dev/null
key=$("$bin/privid-admin" --data-dir "$tmp/data" key create bench 2>/dev/null | head -1)
"$bin/imgtool" crop "$models/demo/sample1.jpg" "$tmp/face.jpg" 500 200 800 700
"$bin/privid-gateway" --listen 127.0.0.1:0 --threads 2 --workers "${WORKERS:-1}" --queue-max "${QUEUE_MAX:-8}" \
  --queue-timeout-ms "${QUEUE_TIMEOUT_MS:-2000}" --data-dir "$tmp/data" --models "$models" > "$tmp/gw.log" 2>&1 &
gw=$!
for i in $(seq 1 600); do
  addr=$(sed -n 's/.*msg="listening" addr=\([^ ]*\).*/\1/p' "$tmp/gw.log" | head -1)
  [ -n "$addr" ] && grep -q 'msg="gateway started"' "$tmp/gw.log" && break
  sleep 0.1
done
for r in $rates; do
  "$bin/loadgen" "$addr" /v1/detect "$tmp/face.jpg" "$key" "$r" "$conns" "$duration" "$gw"
  sleep 1
done
