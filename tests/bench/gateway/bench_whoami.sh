#!/usr/bin/env bash
# Load benchmark (loopback only, bounded): authenticated GET /v1/whoami
# against unauthenticated GET /healthz on the same gateway in the same run.
# Alternates the two routes ROUNDS times and prints the median rates and
# their ratio as JSON lines. Target: whoami keeps >= 70% of healthz.
#   bench_whoami.sh [BUILD_DIR]   env: ROUNDS (5), DURATION (5s), CONNS (64), THREADS (1)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
bin=${1:-$repo/build}/bin
rounds=${ROUNDS:-5} duration=${DURATION:-5s} conns=${CONNS:-64} gwthreads=${THREADS:-1}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'kill $gw 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
"$bin/privid-admin" --data-dir "$tmp/data" tenant create bench >/dev/null
key=$("$bin/privid-admin" --data-dir "$tmp/data" key create bench)
"$bin/privid-gateway" --listen 127.0.0.1:0 --threads "$gwthreads" --data-dir "$tmp/data" --log-level warn \
  > "$tmp/gw.log" 2>&1 &
gw=$!
for i in $(seq 1 100); do
  addr=$(sed -n 's/.*msg="listening" addr=\([^ ]*\).*/\1/p' "$tmp/gw.log" | head -1)
  [ -n "$addr" ] && break; sleep 0.05
done
# the gateway logs "listening" at info; with --log-level warn, find the port from /proc
if [ -z "${addr:-}" ]; then
  port=$(ss -ltnp 2>/dev/null | awk -v p="pid=$gw," '$0 ~ p {split($4,a,":"); print a[length(a)]; exit}')
  addr=127.0.0.1:$port
fi
url=http://$addr

rate() { # route [header]
  local out
  if [ -n "${2:-}" ]; then out=$(wrk -t1 -c"$conns" -d"$duration" -H "$2" "$url$1")
  else out=$(wrk -t1 -c"$conns" -d"$duration" "$url$1"); fi
  echo "$out" | awk '/Requests\/sec/ {print $2}'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

wrk -t1 -c"$conns" -d1s "$url/healthz" >/dev/null   # warm-up
: > "$tmp/h"; : > "$tmp/w"
for r in $(seq 1 "$rounds"); do
  rate /healthz >> "$tmp/h"
  rate /v1/whoami "Authorization: Bearer $key" >> "$tmp/w"
done
h=$(median < "$tmp/h"); w=$(median < "$tmp/w")
echo "{\"bench\":\"gateway\",\"route\":\"/healthz\",\"gateway_threads\":$gwthreads,\"conns\":$conns,\"rounds\":$rounds,\"median_rps\":$h}"
echo "{\"bench\":\"gateway\",\"route\":\"/v1/whoami\",\"gateway_threads\":$gwthreads,\"conns\":$conns,\"rounds\":$rounds,\"median_rps\":$w}"
awk -v h="$h" -v w="$w" 'BEGIN {printf "{\"bench\":\"gateway\",\"whoami_over_healthz\":%.3f,\"target\":0.70}\n", w/h}'
