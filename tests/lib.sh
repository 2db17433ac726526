# Helpers for PrivID's shell integration tests (sourced). Every check that
# fails prints what it expected and what it got, and the test exits 1.
set -uo pipefail

PV_FAILS=0
PV_CHECKS=0
PV_TMP=$(mktemp -d /tmp/privid-it.XXXXXX)
PV_PIDS=()

pv_cleanup() {
  local pid
  for pid in "${PV_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PV_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  # a failed test shows the end of its servers' logs (CI keeps nothing else)
  if [ "$PV_FAILS" -gt 0 ]; then
    local f
    for f in $(find "$PV_TMP" -maxdepth 3 -name '*.log' -size +0 2>/dev/null | sort); do
      printf '==> %s (last 40 lines)\n' "${f#"$PV_TMP"/}" >&2
      tail -n 40 "$f" >&2
    done
  fi
  [ "${PV_KEEP_TMP:-0}" = 1 ] && { echo "kept $PV_TMP" >&2; return; }
  rm -rf "$PV_TMP"
}
trap pv_cleanup EXIT

pv_fail() { PV_FAILS=$((PV_FAILS + 1)); printf 'FAIL: %s\n' "$*" >&2; }
pv_ok() { PV_CHECKS=$((PV_CHECKS + 1)); }

# check_eq WHAT EXPECTED ACTUAL
check_eq() {
  if [ "$2" == "$3" ]; then pv_ok; else pv_fail "$1: expected [$2], got [$3]"; fi
}
# check_match WHAT REGEX ACTUAL
check_match() {
  if [[ "$3" =~ $2 ]]; then pv_ok; else pv_fail "$1: expected to match /$2/, got [$3]"; fi
}

# pv_finish: prints the summary and exits with the verdict.
pv_finish() {
  echo "$PV_CHECKS checks passed, $PV_FAILS failed"
  [ "$PV_FAILS" = 0 ] && exit 0
  exit 1
}

# http METHOD URL [curl args...]: sets HTTP_STATUS, HTTP_BODY, HTTP_HEADERS.
http() {
  local method=$1 url=$2; shift 2
  local out="$PV_TMP/http.$$"
  HTTP_STATUS=$(curl -sS -o "$out.body" -D "$out.head" -w '%{http_code}' -X "$method" "$@" "$url" 2>"$out.err") || HTTP_STATUS="curl-error: $(cat "$out.err")"
  HTTP_BODY=$(cat "$out.body" 2>/dev/null)
  HTTP_HEADERS=$(tr -d '\r' < "$out.head" 2>/dev/null)
}
# header NAME: the value of NAME in the last response (case-insensitive).
header() { printf '%s\n' "$HTTP_HEADERS" | awk -v n="$(echo "$1" | tr 'A-Z' 'a-z')" -F': ' 'tolower($1)==n {print $2; exit}'; }
# jf FILTER: jq over the last body.
jf() { printf '%s' "$HTTP_BODY" | jq -r "$1" 2>/dev/null; }

# start_gateway NAME [gateway args...]: starts it on a free port; sets GW_URL and GW_PID.
start_gateway() {
  local name=$1; shift
  local log="$PV_TMP/$name.log"
  "$PV_GATEWAY" --listen 127.0.0.1:0 "$@" >"$log" 2>&1 &
  GW_PID=$!
  PV_PIDS+=("$GW_PID")
  local i addr=
  # up to 60 s: the gateway loads the face networks first (slow under sanitizers)
  for i in $(seq 1 1200); do
    addr=$(sed -n 's/.*msg="listening" addr=\([^ ]*\).*/\1/p' "$log" | head -1)
    [ -n "$addr" ] && grep -q 'msg="gateway started"' "$log" && break
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$addr" ]; then
    pv_fail "gateway $name did not start:"; cat "$log" >&2; pv_finish
  fi
  GW_URL="http://$addr"
}

# start_shard NAME DIR [HOST] [shard args...]: starts privid-shard ($PV_SHARD) on HOST:0
# (default 127.0.0.1); sets SH_PID and SH_ADDR (the address it bound).
start_shard() {
  local name=$1 dir=$2 host=${3:-127.0.0.1}; shift 2; [ $# -gt 0 ] && shift
  "$PV_SHARD" --listen "$host:0" --data-dir "$dir" --durable=false "$@" >"$PV_TMP/$name.log" 2>&1 &
  SH_PID=$!; PV_PIDS+=("$SH_PID"); SH_ADDR=
  local i
  for i in $(seq 1 600); do
    SH_ADDR=$(sed -n 's/.*msg="listening" addr=\([^ ]*\).*/\1/p' "$PV_TMP/$name.log" 2>/dev/null | head -1)
    [ -n "$SH_ADDR" ] && grep -q 'shard started' "$PV_TMP/$name.log" && break
    kill -0 "$SH_PID" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$SH_ADDR" ] || { pv_fail "shard $name did not start"; cat "$PV_TMP/$name.log" >&2; pv_finish; }
}

# stop_pid PID: SIGTERM, wait, and return its exit status.
stop_pid() {
  kill -TERM "$1" 2>/dev/null
  wait "$1"
}

# pv_pg_db PREFIX: a throwaway database PREFIX_<random> on the harness's
# PostgreSQL (PRIVID_TEST_PG), dropped at exit; sets DB and DSN. Then
# `sql TEXT` runs SQL there and `pv_admin_sql TEXT` on the harness's database.
pv_admin_sql() { psql "$PRIVID_TEST_PG" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
pv_pg_db() {
  [ -n "${PRIVID_TEST_PG:-}" ] || { echo "FAIL: PRIVID_TEST_PG is not set (a PostgreSQL DSN where the test may create databases)" >&2; exit 1; }
  DB=$1_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
  pv_admin_sql "CREATE DATABASE $DB" || { echo "FAIL: cannot create database $DB" >&2; exit 1; }
  trap 'pv_cleanup; pv_admin_sql "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1' EXIT
  DSN="$PRIVID_TEST_PG dbname=$DB"
  sql() { psql "$DSN" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
}

# pv_throwaway_db PREFIX: creates an empty database PREFIX_<random> on
# $PRIVID_TEST_PG, dropped when the test exits; sets PV_DB and DSN.
pv_throwaway_db() {
  PV_DB=$1_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
  psql "$PRIVID_TEST_PG" -X -q -At -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PV_DB" ||
    { echo "FAIL: cannot create database $PV_DB" >&2; exit 1; }
  trap 'pv_cleanup; psql "$PRIVID_TEST_PG" -X -q -c "DROP DATABASE IF EXISTS $PV_DB WITH (FORCE)" >/dev/null 2>&1' EXIT
  DSN="$PRIVID_TEST_PG dbname=$PV_DB"
}
