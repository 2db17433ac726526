#!/usr/bin/env bash
# Visits end to end: a real privid-gateway with --pg on a freshly migrated
# database of the harness's PostgreSQL (PRIVID_TEST_PG), fed the sample
# photos; the writer thread must put every visit into PostgreSQL exactly once
# (also across a SIGKILL and restart), business events posted to /v1/events
# arrive once, an erasure through the API must remove
# that visitor's rows and leave an erasures row without the visitor ID, and
# /readyz and /metrics must show the outbox.
#   test_e2e.sh PRIVID_ADMIN PRIVID_GATEWAY MIGRATIONS_DIR   (env PRIVID_TEST_PG, PRIVID_MODELS)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
MIG=$3
[ -n "${PRIVID_TEST_PG:-}" ] || { echo "FAIL: PRIVID_TEST_PG is not set (a PostgreSQL DSN where the test may create databases)" >&2; exit 1; }
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
S=$MODELS/demo
[ -f "$S/sample1.jpg" ] || { echo "sample photos missing under $S (run deploy/setup.sh)" >&2; exit 1; }

DB=privid_e2e_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
admin_sql() { psql "$PRIVID_TEST_PG" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
admin_sql "CREATE DATABASE $DB" || { echo "FAIL: cannot create database $DB" >&2; exit 1; }
drop_db() { admin_sql "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1; }
trap 'pv_cleanup; drop_db' EXIT
DSN="$PRIVID_TEST_PG dbname=$DB"
sql() { psql "$DSN" -X -q -At -c "$1"; }

data="$PV_TMP/data"
admin() { "$PV_ADMIN" --data-dir "$data" "$@"; }
admin tenant create acme >/dev/null || pv_fail "tenant create acme"
KA=$(admin key create acme | head -1)
admin migrate --pg "$DSN" --migrations "$MIG" >/dev/null || pv_fail "migrate"
TA=$(sql "SELECT tenant_id FROM tenants WHERE name = 'acme'")
check_match "tenant mirrored" '^[0-9]+$' "$TA"

# wait_sql WHAT EXPECTED QUERY: polls PostgreSQL up to 20 s
wait_sql() {
  local i got=
  for i in $(seq 1 200); do
    got=$(sql "$3")
    [ "$got" = "$2" ] && break
    sleep 0.1
  done
  check_eq "$1" "$2" "$got"
}

start_gateway main --threads 2 --workers 2 --data-dir "$data" --models "$MODELS" --pg "$DSN"
post() {
  http POST "$GW_URL$1" -H "Authorization: Bearer $KA" -H "Content-Type: image/jpeg" --data-binary "@$2"
}

post "/v1/recognize?location=paris-1&camera=door" "$S/sample1.jpg"
check_eq "recognize sample1" 200 "$HTTP_STATUS"
check_eq "sample1 faces" 3 "$(jf '.faces|length')"
V0=$(jf '.faces[0].visitor')
wait_sql "three visits in PostgreSQL" 3 "SELECT count(*) FROM visits WHERE tenant_id = $TA"
check_eq "visit fields" "paris-1 door new" \
  "$(sql "SELECT location || ' ' || camera || ' ' || status FROM visits WHERE visitor = '$V0'")"

post "/v1/recognize?location=paris-2" "$S/sample1.jpg"
check_eq "recognize again" 200 "$HTTP_STATUS"
wait_sql "six visits" 6 "SELECT count(*) FROM visits WHERE tenant_id = $TA"
check_eq "second visits are returning" 3 \
  "$(sql "SELECT count(*) FROM visits WHERE location = 'paris-2' AND status = 'returning' AND distance IS NOT NULL")"

# business events through POST /v1/events, the same outbox and writer; a retry changes nothing
V1=$(sql "SELECT visitor FROM visits WHERE visitor <> '$V0' LIMIT 1")
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cat > "$PV_TMP/events.json" <<JSON
{"events":[
 {"event_id":"till-1","visitor":"$V0","type":"purchase","ts":"$NOW","location":"paris-1","amount_minor":1250,"currency":"EUR"},
 {"event_id":"till-2","visitor":"$V1","type":"purchase","ts":"$NOW","amount_minor":990,"currency":"EUR","attrs":{"sku":"42"}}]}
JSON
for try in 1 2; do
  http POST "$GW_URL/v1/events" -H "Authorization: Bearer $KA" -H "Content-Type: application/json" \
    --data-binary "@$PV_TMP/events.json"
  check_eq "events accepted (try $try)" 200 "$HTTP_STATUS"
done
wait_sql "two purchases in PostgreSQL" 2 "SELECT count(*) FROM events WHERE tenant_id = $TA AND type = 'purchase'"
check_eq "purchase fields" "till-2 990 EUR 42" \
  "$(sql "SELECT event_id || ' ' || amount_minor || ' ' || currency || ' ' || (attrs->>'sku') FROM events WHERE visitor = '$V1'")"
# the visitor's purchases in GET /v1/visitors/{id}, from PostgreSQL; none for another tenant's key
http GET "$GW_URL/v1/visitors/$V1" -H "Authorization: Bearer $KA"
check_eq "visitor shows its purchase" "200 1 EUR 990" \
  "$HTTP_STATUS $(jf '"\(.purchases.count) \(.purchases.totals[0].currency) \(.purchases.totals[0].amount_minor)"')"
check_match "visitor's last purchase time" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$' "$(jf .purchases.last_at)"
V2=$(sql "SELECT visitor FROM visits WHERE visitor NOT IN ('$V0', '$V1') LIMIT 1")
http GET "$GW_URL/v1/visitors/$V2" -H "Authorization: Bearer $KA"
check_eq "a visitor without purchases" '200 {"count":0,"last_at":null,"totals":[]}' "$HTTP_STATUS $(printf '%s' "$HTTP_BODY" | jq -c .purchases)"

http GET "$GW_URL/readyz"
check_eq "readyz" 200 "$HTTP_STATUS"
check_eq "readyz outbox check" ok "$(jf .checks.outbox)"
for i in $(seq 1 50); do # the gauges refresh on the writer's next cycle
  http GET "$GW_URL/metrics"
  [[ "$HTTP_BODY" =~ privid_outbox_depth\ 0 && "$HTTP_BODY" =~ privid_outbox_delivered\ 8 ]] && break
  sleep 0.1
done
check_match "outbox depth gauge" 'privid_outbox_depth 0' "$HTTP_BODY"
check_match "delivered gauge" 'privid_outbox_delivered 8' "$HTTP_BODY"

# SIGKILL while requests are accepted: after a restart every 2xx visit is there once
ok=0
for i in 1 2 3; do
  post "/v1/recognize?location=burst" "$S/sample1.jpg"
  [ "$HTTP_STATUS" = 200 ] && ok=$((ok + $(jf '.faces|length')))
done
kill -9 "$GW_PID"
wait "$GW_PID" 2>/dev/null
start_gateway restarted --threads 2 --workers 2 --data-dir "$data" --models "$MODELS" --pg "$DSN"
wait_sql "burst visits once after SIGKILL and restart" "$ok" "SELECT count(*) FROM visits WHERE location = 'burst'"
check_eq "no event twice" 0 "$(sql "SELECT count(*) - count(DISTINCT event_id) FROM visits")"

# erasure through the API
http DELETE "$GW_URL/v1/visitors/$V0" -H "Authorization: Bearer $KA"
check_match "erase" '^20[04]$' "$HTTP_STATUS"
wait_sql "erased visitor's visits gone" 0 "SELECT count(*) FROM visits WHERE visitor = '$V0'"
check_eq "erased visitor's purchase gone, the other stays" "till-2" "$(sql "SELECT string_agg(event_id, ',') FROM events")"
wait_sql "erasure recorded" 1 "SELECT count(*) FROM erasures WHERE tenant_id = $TA"
check_eq "erasure counts the visits" 5 "$(sql "SELECT visits FROM erasures WHERE tenant_id = $TA")"
check_eq "erasures hold no visitor ID" 0 "$(sql "SELECT count(*) FROM erasures e WHERE row_to_json(e)::text LIKE '%$V0%'")"
check_eq "other visitors stay" $((6 + ok - 5)) "$(sql "SELECT count(*) FROM visits WHERE tenant_id = $TA")"
stop_pid "$GW_PID"
pv_finish
