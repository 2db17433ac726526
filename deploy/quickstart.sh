#!/usr/bin/env bash
# PrivID quick start: one command from a fresh clone to a running service.
# Runs the set-up (packages, FAISS C API, model weights, build), starts a
# local PostgreSQL whose data lives under DATA (default <repo>/var), applies
# the migrations, creates a demo tenant and API key the first time, and runs
# the gateway in the foreground; once it answers, prints the console URL and
# the demo API key. --demo also seeds four weeks of SYNTHETIC visits and
# purchases for the demo tenant (privid-admin demo seed; once) so the reports
# and the console's dashboard have something to show. Running it again
# reuses all of it.
#   deploy/quickstart.sh [--data DIR] [--listen HOST:PORT] [--threads N] [--demo]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data=$repo/var
listen=127.0.0.1:8080
threads=0
demo=0
while [ $# -gt 0 ]; do
  case $1 in
    --data) data=${2:?--data needs a directory}; shift 2 ;;
    --listen) listen=${2:?--listen needs HOST:PORT}; shift 2 ;;
    --threads) threads=${2:?--threads needs a number}; shift 2 ;;
    --demo) demo=1; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$data"
data=$(cd "$data" && pwd)

"$repo/deploy/setup.sh"
bin=${PRIVID_BUILD_DIR:-$repo/build}/bin

. "$repo/tests/pg.sh"
printf '\n==> PostgreSQL (data in %s/pg)\n' "$data"
chmod 711 "$data" # PostgreSQL (run as postgres when root) only traverses it; demo.key and lmdb/ stay owner-only
port=$(cat "$data/pg.port" 2>/dev/null || echo 54329)
pv_pg_start "$data/pg" "$port"
echo "$PV_PG_PORT" > "$data/pg.port"
echo "PostgreSQL 15 on 127.0.0.1:$PV_PG_PORT"
trap 'pv_pg_stop "$data/pg"' EXIT

export PRIVID_DATA_DIR=$data/lmdb
export PRIVID_PG="host=127.0.0.1 port=$PV_PG_PORT user=postgres dbname=postgres"
printf '\n==> migrations\n'
"$bin/privid-admin" migrate

if ! "$bin/privid-admin" tenant show demo >/dev/null 2>&1; then
  printf '\n==> creating the demo tenant and its API key\n'
  "$bin/privid-admin" tenant create demo
  (umask 077; "$bin/privid-admin" key create demo > "$data/demo.key")
fi
key=$(cat "$data/demo.key")

if [ "$demo" = 1 ]; then
  printf '\n==> synthetic demo data for the demo tenant\n'
  set +e
  "$bin/privid-admin" demo seed --tenant demo --weeks 4 2>"$data/demo-seed.err"
  rc=$?
  set -e
  if [ "$rc" = 3 ] && grep -q 'already has synthetic' "$data/demo-seed.err"; then
    echo "already seeded earlier: kept as it is (nothing doubled)"
  elif [ "$rc" != 0 ]; then
    cat "$data/demo-seed.err" >&2; exit 1
  fi
fi

printf '\n==> PrivID gateway on http://%s/\n' "$listen"
"$bin/privid-gateway" --listen "$listen" --threads "$threads" &
gw=$!
trap 'kill -TERM $gw 2>/dev/null; wait $gw 2>/dev/null; pv_pg_stop "$data/pg"' EXIT INT TERM
# the networks load first: wait until it answers, then say where to go
for _ in $(seq 1 600); do
  curl -fsS -o /dev/null "http://$listen/healthz" 2>/dev/null && break
  kill -0 "$gw" 2>/dev/null || { wait "$gw"; exit 1; }
  sleep 0.2
done
cat <<MSG

Try:
  curl -H "Authorization: Bearer $key" http://$listen/v1/whoami
  curl -H "Authorization: Bearer $key" -H 'Content-Type: image/jpeg' \\
       --data-binary @$repo/build/models/face-api-1.7.15/demo/sample1.jpg http://$listen/v1/recognize
API reference (OpenAPI 3.1): http://$listen/openapi.json
MSG
[ "$demo" = 1 ] && echo "Demo data: SYNTHETIC visits and purchases at synthetic-downtown and synthetic-mall (last 4 weeks)."
cat <<MSG

  PrivID console:  http://$listen/
  Demo API key:    $key   (kept in $data/demo.key)

Stop with Ctrl-C.
MSG
wait $gw
