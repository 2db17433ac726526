#!/usr/bin/env bash
# Walking skeleton, end to end: keys issued by privid-admin authenticate
# requests to a real privid-gateway over HTTP on loopback, with a real LMDB
# store and a real PostgreSQL for readiness.
#   test_gateway.sh PRIVID_ADMIN PRIVID_GATEWAY   (env PRIVID_TEST_PG: DSN)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
[ -n "${PRIVID_TEST_PG:-}" ] || { echo "PRIVID_TEST_PG is not set: run through tests/run.sh" >&2; exit 1; }

data="$PV_TMP/data"
admin() { "$PV_ADMIN" --data-dir "$data" "$@"; }

# two tenants, keys with different scopes
admin tenant create acme >/dev/null || pv_fail "tenant create acme"
admin tenant create beta --mode isolated >/dev/null || pv_fail "tenant create beta"
KEY_A=$(admin key create acme)
KEY_B=$(admin key create beta --scopes recognize,events)
check_match "key format" '^pvk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$' "$KEY_A"

start_gateway main --threads 2 --data-dir "$data" --pg "$PRIVID_TEST_PG" --max-body 4096
URL=$GW_URL

# health and readiness
http GET "$URL/healthz"
check_eq "healthz status" 200 "$HTTP_STATUS"
check_eq "healthz body" ok "$(jf .status)"
check_match "request id on every response" '^[0-9a-f]{8}-[0-9a-f]{2}-[0-9a-f]+$' "$(header x-request-id)"
for i in $(seq 1 50); do
  http GET "$URL/readyz"
  [ "$HTTP_STATUS" = 200 ] && break
  sleep 0.1
done
check_eq "readyz with LMDB and PostgreSQL up" 200 "$HTTP_STATUS"
check_eq "readyz postgres check" ok "$(jf .checks.postgres)"
check_eq "readyz lmdb check" ok "$(jf .checks.lmdb)"

# whoami with good keys: each tenant sees only itself
http GET "$URL/v1/whoami" -H "Authorization: Bearer $KEY_A"
check_eq "whoami A status" 200 "$HTTP_STATUS"
check_eq "whoami A tenant" acme "$(jf .tenant.name)"
check_eq "whoami A mode" network "$(jf .tenant.mode)"
check_eq "whoami A scopes" "recognize,events,analytics,erase" "$(jf '.key.scopes|join(",")')"
check_eq "whoami A key id" "${KEY_A:4:16}" "$(jf .key.id)"
http GET "$URL/v1/whoami" -H "Authorization: bearer $KEY_B"
check_eq "whoami B status (scheme is case-insensitive)" 200 "$HTTP_STATUS"
check_eq "whoami B tenant" beta "$(jf .tenant.name)"
check_eq "whoami B mode" isolated "$(jf .tenant.mode)"
check_eq "whoami B scopes" "recognize,events" "$(jf '.key.scopes|join(",")')"
check_eq "B never sees A" 0 "$(printf '%s' "$HTTP_BODY" | grep -c acme)"
http HEAD "$URL/v1/whoami" -H "Authorization: Bearer $KEY_A"
check_eq "HEAD whoami" 200 "$HTTP_STATUS"

# authentication failures: all 401 with the JSON error object
http GET "$URL/v1/whoami"
check_eq "no header" 401 "$HTTP_STATUS"
check_eq "no header code" unauthorized "$(jf .error.code)"
check_eq "no header challenge" Bearer "$(header www-authenticate)"
http GET "$URL/v1/whoami" -H "Authorization: Basic dXNlcjpwYXNz"
check_eq "basic auth" 401 "$HTTP_STATUS"
check_match "basic auth message" 'malformed Authorization' "$(jf .error.message)"
http GET "$URL/v1/whoami" -H "Authorization: Bearer"
check_eq "empty bearer" 401 "$HTTP_STATUS"
http GET "$URL/v1/whoami" -H "Authorization: Bearer not-a-key"
check_eq "malformed key" 401 "$HTTP_STATUS"
check_eq "malformed key message" "malformed API key" "$(jf .error.message)"
http GET "$URL/v1/whoami" -H "Authorization: Bearer ${KEY_A}x"
check_eq "key with trailing junk" 401 "$HTTP_STATUS"
WRONG="${KEY_A:0:21}${KEY_B:21}"   # A's key id with B's secret
http GET "$URL/v1/whoami" -H "Authorization: Bearer $WRONG"
check_eq "wrong secret" 401 "$HTTP_STATUS"
check_eq "wrong secret message" "unknown API key or wrong secret" "$(jf .error.message)"
UNKNOWN="pvk_0000000000000000_${KEY_A:21}"
http GET "$URL/v1/whoami" -H "Authorization: Bearer $UNKNOWN"
check_eq "unknown key id" 401 "$HTTP_STATUS"
check_eq "unknown id and wrong secret look the same" "unknown API key or wrong secret" "$(jf .error.message)"
http GET "$URL/v1/whoami" -H "Authorization: Bearer $KEY_A" -H "Authorization: Bearer $KEY_B"
check_eq "two Authorization headers" 401 "$HTTP_STATUS"
LONG=$(head -c 600 /dev/zero | tr '\0' a)
http GET "$URL/v1/whoami" -H "Authorization: Bearer $LONG"
check_eq "oversized header" 401 "$HTTP_STATUS"

# revocation takes effect at once, without a restart
KEYID_A=${KEY_A:4:16}
admin key revoke "$KEYID_A" >/dev/null || pv_fail "key revoke"
http GET "$URL/v1/whoami" -H "Authorization: Bearer $KEY_A"
check_eq "revoked key" 401 "$HTTP_STATUS"
check_eq "revoked key code" revoked_key "$(jf .error.code)"
http GET "$URL/v1/whoami" -H "Authorization: Bearer $KEY_B"
check_eq "other keys still work" 200 "$HTTP_STATUS"
# a deleted tenant's keys stop working too
KEY_C=$(admin tenant create gamma >/dev/null && admin key create gamma)
http GET "$URL/v1/whoami" -H "Authorization: Bearer $KEY_C"
check_eq "new tenant's key works at once" 200 "$HTTP_STATUS"
admin tenant delete gamma >/dev/null
http GET "$URL/v1/whoami" -H "Authorization: Bearer $KEY_C"
check_eq "deleted tenant's key" 401 "$HTTP_STATUS"

# routing errors
http GET "$URL/v1/nope"
check_eq "unknown path" 404 "$HTTP_STATUS"
check_eq "unknown path code" not_found "$(jf .error.code)"
http POST "$URL/v1/whoami" -H "Authorization: Bearer $KEY_B" --data '{}'
check_eq "wrong method" 405 "$HTTP_STATUS"
check_eq "wrong method code" method_not_allowed "$(jf .error.code)"
check_eq "Allow header" "GET, HEAD" "$(header allow)"
head -c 10000 /dev/zero > "$PV_TMP/big"
http POST "$URL/v1/whoami" -H "Authorization: Bearer $KEY_B" --data-binary "@$PV_TMP/big"
check_eq "body over --max-body" 413 "$HTTP_STATUS"
http GET "$URL/healthz" -H "X-Request-Id: trace-abc.123"
check_eq "client request id echoed" "trace-abc.123" "$(header x-request-id)"
http GET "$URL/healthz" -H "X-Request-Id: bad id with spaces"
check_match "bad client request id replaced" '^[0-9a-f]{8}-' "$(header x-request-id)"

# metrics: Prometheus text with the requests seen above
http GET "$URL/metrics"
check_eq "metrics status" 200 "$HTTP_STATUS"
check_match "metrics content type" '^text/plain; version=0.0.4' "$(header content-type)"
check_match "whoami 200s counted" 'privid_requests_total\{route="whoami",status="200"\} [1-9]' "$HTTP_BODY"
check_match "whoami 401s counted" 'privid_requests_total\{route="whoami",status="401"\} [1-9]' "$HTTP_BODY"
check_match "404s counted" 'privid_requests_total\{route="none",status="404"\} [1-9]' "$HTTP_BODY"
check_match "latency histogram" 'privid_request_seconds_bucket\{route="whoami",le="\+Inf"\} [1-9]' "$HTTP_BODY"
check_eq "no key material in metrics" 0 "$(printf '%s' "$HTTP_BODY" | grep -c pvk_)"

# the gateway stops cleanly on SIGTERM
stop_pid "$GW_PID"
check_eq "gateway exit status after SIGTERM" 0 "$?"

# readiness reflects an unreachable PostgreSQL (a closed port), liveness does not
start_gateway nopg --threads 1 --data-dir "$data" --pg "host=127.0.0.1 port=1 connect_timeout=1" --pg-check-ms 100
sleep 0.5
http GET "$GW_URL/readyz"
check_eq "readyz without PostgreSQL" 503 "$HTTP_STATUS"
check_eq "readyz names the failed check" unreachable "$(jf .checks.postgres)"
check_eq "readyz Retry-After" 1 "$(header retry-after)"
http GET "$GW_URL/healthz"
check_eq "healthz without PostgreSQL" 200 "$HTTP_STATUS"
stop_pid "$GW_PID"

# configuration: environment variables and a config file
PRIVID_DATA_DIR="$data" PRIVID_THREADS=1 start_gateway env
http GET "$GW_URL/v1/whoami" -H "Authorization: Bearer $KEY_B"
check_eq "configured by environment" 200 "$HTTP_STATUS"
stop_pid "$GW_PID"
printf '# test config\ndata-dir = %s\nthreads = 1\nlog-level = warn\n' "$data" > "$PV_TMP/gw.conf"
"$PV_GATEWAY" --config "$PV_TMP/gw.conf" --listen 127.0.0.1:0 --log-level info > "$PV_TMP/cfg.log" 2>&1 &
pid=$!; PV_PIDS+=("$pid")
for i in $(seq 1 100); do grep -q 'gateway started' "$PV_TMP/cfg.log" && break; sleep 0.05; done
check_match "config file read, flags win" 'threads=1 data_dir' "$(cat "$PV_TMP/cfg.log")"
stop_pid "$pid"

# bad configuration: exit 2 with a clear message
out=$("$PV_GATEWAY" --threads many 2>&1); rc=$?
check_eq "bad --threads exit" 2 "$rc"
check_match "bad --threads message" 'threads must be an integer' "$out"
out=$("$PV_GATEWAY" --bogus 2>&1); rc=$?
check_eq "unknown option exit" 2 "$rc"
check_match "unknown option message" 'unknown option' "$out"
out=$("$PV_GATEWAY" --listen nocolon --data-dir "$data" 2>&1); rc=$?
check_eq "bad --listen exit" 1 "$rc"
check_match "bad --listen message" 'expected HOST:PORT' "$out"
out=$("$PV_GATEWAY" --config /nonexistent/file 2>&1); rc=$?
check_eq "missing config file exit" 2 "$rc"
out=$(printf 'nosuch = 1\n' > "$PV_TMP/bad.conf"; "$PV_GATEWAY" --config "$PV_TMP/bad.conf" 2>&1); rc=$?
check_match "unknown config key" 'unknown setting' "$out"
out=$("$PV_GATEWAY" --help); rc=$?
check_eq "--help exit" 0 "$rc"
check_match "--help lists variables" 'PRIVID_LISTEN' "$out"

# a fatal signal is reported in the log (signal, thread, stack) before the
# default action; under ASan the sanitizer reports instead
# (ldd's output is read whole: `ldd | grep -q` under pipefail failed when grep quit first and ldd got SIGPIPE)
libs=$(ldd "$PV_GATEWAY")
if [[ $libs != *libasan* ]]; then
  "$PV_GATEWAY" --listen 127.0.0.1:0 --data-dir "$data" --models off > "$PV_TMP/crash.log" 2>&1 &
  pid=$!
  for i in $(seq 1 100); do grep -q 'gateway started' "$PV_TMP/crash.log" && break; sleep 0.05; done
  kill -SEGV "$pid"; wait "$pid"; rc=$?
  check_eq "SIGSEGV: the default action follows the report (exit 128+11)" 139 "$rc"
  check_match "SIGSEGV: reported with the program and signal" 'msg="fatal signal" program=privid-gateway signal=SIGSEGV tid=[0-9]+' "$(cat "$PV_TMP/crash.log")"
  check_match "SIGSEGV: the stack follows" 'h2o_evloop_run|privid-gateway\(' "$(cat "$PV_TMP/crash.log")"
fi

pv_finish
