#!/usr/bin/env bash
# POST /v1/events end to end: a real privid-gateway on loopback with the real
# networks makes visitor IDs from the sample photos (POST /v1/recognize),
# then business-event batches go through the API: all good (200), mixed (207
# with each rejected event's index and reason), the same batch again (all
# duplicates, nothing stored twice: checked in the LMDB store itself), tenant
# B using A's visitor (rejected, unknown visitor), and the batch-level errors
# (415, 400 with the position, 413, 422, 401/403 for keys and scopes).
#   test_events.sh PRIVID_ADMIN PRIVID_GATEWAY   (env PRIVID_MODELS)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
S=$MODELS/demo
[ -f "$S/sample1.jpg" ] || { echo "sample photos missing under $S (run deploy/setup.sh)" >&2; exit 1; }
command -v mdb_dump >/dev/null && command -v mdb_stat >/dev/null ||
  { echo "mdb_dump and mdb_stat (lmdb-utils) are needed to look into the store" >&2; exit 1; }

data="$PV_TMP/data"
admin() { "$PV_ADMIN" --data-dir "$data" "$@"; }
admin tenant create acme >/dev/null || pv_fail "tenant create acme"
admin tenant create beta >/dev/null || pv_fail "tenant create beta"
KA=$(admin key create acme | head -1)
KB=$(admin key create beta | head -1)
KA_EVENTS=$(admin key create acme --scopes events | head -1)
KA_RECOG=$(admin key create acme --scopes recognize | head -1)

start_gateway main --threads 2 --workers 2 --data-dir "$data" --models "$MODELS"
URL=$GW_URL

# events KEY BODY-FILE [content type]
events() {
  http POST "$URL/v1/events" -H "Authorization: Bearer $1" -H "Content-Type: ${3:-application/json}" \
    --data-binary "@$2"
}
# stored EVENT_ID: how many business events with this event_id the outbox holds
stored() {
  mdb_dump -p -s outbox "$data" 2>/dev/null | grep -c "\"type\":\"business\",\"event_id\":\"$1\""
}
# remembered: the idempotency records (tenant, event_id) in the store
remembered() { mdb_stat -s event_ids "$data" 2>/dev/null | sed -n 's/^ *Entries: //p'; }
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
FUTURE=$(date -u -d '+10 minutes' +%Y-%m-%dT%H:%M:%SZ)
OLD=$(date -u -d '-100 days' +%Y-%m-%dT%H:%M:%SZ)

# ---- visitor IDs: acme sees sample1's three people; so does beta, under its own IDs
http POST "$URL/v1/recognize?location=paris-1" -H "Authorization: Bearer $KA" -H "Content-Type: image/jpeg" \
  --data-binary "@$S/sample1.jpg"
check_eq "recognize (acme)" 200 "$HTTP_STATUS"
VA1=$(jf '.faces[0].visitor')
VA2=$(jf '.faces[1].visitor')
check_match "acme visitor" '^vis_' "$VA1"
http POST "$URL/v1/recognize" -H "Authorization: Bearer $KB" -H "Content-Type: image/jpeg" \
  --data-binary "@$S/sample1.jpg"
check_eq "recognize (beta)" 200 "$HTTP_STATUS"
VB1=$(jf '.faces[0].visitor')
check_match "beta visitor" '^vis_' "$VB1"
[ "$VB1" != "$VA1" ] && [ "$VB1" != "$VA2" ] && pv_ok || pv_fail "beta got one of acme's visitor IDs"

# ---- all good: 200, every event accepted and stored once
cat > "$PV_TMP/good.json" <<EOF
{"events":[
 {"event_id":"till-1","visitor":"$VA1","type":"purchase","ts":"$NOW","location":"paris-1",
  "amount_minor":1299,"currency":"EUR","attrs":{"sku":"A-1","items":2,"gift":false}},
 {"event_id":"till-2","visitor":"$VA2","type":"purchase","ts":"$NOW","amount_minor":0,"currency":"USD"},
 {"event_id":"app-1","visitor":"$VA1","type":"newsletter_signup","ts":"$NOW"}]}
EOF
events "$KA_EVENTS" "$PV_TMP/good.json"
check_eq "good batch" 200 "$HTTP_STATUS"
check_eq "good batch: counts" "3 0 0" "$(jf '"\(.accepted) \(.duplicate) \(.rejected)"')"
check_eq "good batch: statuses" "accepted,accepted,accepted" "$(jf '[.results[].status]|join(",")')"
check_eq "good batch: indexes and ids" "0:till-1 1:till-2 2:app-1" "$(jf '[.results[]|"\(.index):\(.event_id)"]|join(" ")')"
check_eq "good batch: JSON answer" "application/json" "$(header content-type | cut -d';' -f1)"
check_eq "till-1 stored once" 1 "$(stored till-1)"
check_eq "app-1 stored once" 1 "$(stored app-1)"
check_eq "three idempotency records" 3 "$(remembered)"
rec=$(mdb_dump -p -s outbox "$data" | grep '"event_id":"till-1"')
check_match "outbox event shape" '"type":"business","event_id":"till-1","tenant_id":[0-9]+,"visitor":"vis_[^"]+","event_type":"purchase","ts_ms":[0-9]+,"location":"paris-1","amount_minor":1299,"currency":"EUR","attrs":\{' "$rec"

# ---- the same batch again: all duplicates, 200, nothing written
events "$KA_EVENTS" "$PV_TMP/good.json"
check_eq "retried batch" 200 "$HTTP_STATUS"
check_eq "retried batch: duplicates" "0 3 0" "$(jf '"\(.accepted) \(.duplicate) \(.rejected)"')"
check_eq "retried: statuses" "duplicate,duplicate,duplicate" "$(jf '[.results[].status]|join(",")')"
check_eq "till-1 still stored once" 1 "$(stored till-1)"
check_eq "still three idempotency records" 3 "$(remembered)"

# ---- mixed: 207 with each rejection's index and reason; the good ones are stored
cat > "$PV_TMP/mixed.json" <<EOF
{"events":[
 {"event_id":"till-3","visitor":"$VA1","type":"purchase","ts":"$NOW","amount_minor":500,"currency":"EUR"},
 {"event_id":"till-4","visitor":"$VA1","type":"purchase","ts":"$NOW","amount_minor":500,"currency":"EURO"},
 {"event_id":"till-5","visitor":"$VA1","type":"purchase","ts":"$NOW","amount_minor":-1,"currency":"EUR"},
 {"event_id":"till-6","visitor":"$VA1","type":"purchase","ts":"$FUTURE","amount_minor":1,"currency":"EUR"},
 {"event_id":"till-3","visitor":"$VA1","type":"purchase","ts":"$NOW","amount_minor":500,"currency":"EUR"},
 {"event_id":"till-7","visitor":"vis_AAAAAAAAAAAAAAAAAAAAAA","type":"purchase","ts":"$NOW","amount_minor":1,"currency":"EUR"},
 {"event_id":"till-1","visitor":"$VA1","type":"purchase","ts":"$NOW","amount_minor":1299,"currency":"EUR"},
 {"event_id":"till-8","visitor":"$VA1","type":"purchase","ts":"$OLD","amount_minor":1,"currency":"EUR"},
 {"event_id":"till-9","visitor":"$VA1","type":"purchase","ts":"$NOW"},
 {"event_id":"bad id","visitor":"$VA1","type":"visit_note","ts":"$NOW"},
 {"event_id":"app-2","visitor":"$VA2","type":"Coupon","ts":"$NOW"},
 {"event_id":"app-3","visitor":"$VA2","type":"coupon","ts":"$NOW","attrs":{"nested":{"a":1}}},
 {"event_id":"app-4","visitor":"$VA2","type":"coupon","ts":"$NOW","colour":"red"},
 {"event_id":"app-5","visitor":"$VA2","type":"coupon","ts":"$NOW","location":"lyon-2"}]}
EOF
events "$KA_EVENTS" "$PV_TMP/mixed.json"
check_eq "mixed batch" 207 "$HTTP_STATUS"
check_eq "mixed: counts" "2 1 11" "$(jf '"\(.accepted) \(.duplicate) \(.rejected)"')"
check_eq "mixed: statuses" \
  "accepted rejected rejected rejected rejected rejected duplicate rejected rejected rejected rejected rejected rejected accepted" \
  "$(jf '[.results[].status]|join(" ")')"
check_eq "mixed: rejected indexes" "1,2,3,4,5,7,8,9,10,11,12" "$(jf '[.results[]|select(.status=="rejected")|.index]|join(",")')"
reason() { jf ".results[$1].reason"; }
check_match "1: currency" '^currency:' "$(reason 1)"
check_match "2: negative amount" '^amount_minor: negative' "$(reason 2)"
check_match "3: future" '^ts: more than 5 minutes in the future' "$(reason 3)"
check_eq "4: repeated id" "event_id: repeated in this batch" "$(reason 4)"
check_eq "5: unknown visitor" "unknown visitor" "$(reason 5)"
check_match "7: retention" 'retention' "$(reason 7)"
check_match "8: purchase without amount" 'amount_minor: required' "$(reason 8)"
check_match "9: event_id" '^event_id:' "$(reason 9)"
check_match "10: type" '^type:' "$(reason 10)"
check_match "11: attrs" '^attrs' "$(reason 11)"
check_match "12: unknown field" 'unknown field "colour"' "$(reason 12)"
check_eq "no reason on accepted" null "$(reason 0)"
check_eq "till-3 stored once" 1 "$(stored till-3)"
check_eq "rejected till-4 not stored" 0 "$(stored till-4)"
check_eq "five idempotency records" 5 "$(remembered)"

# ---- tenant isolation: beta cannot attach events to acme's visitors (and has its own event ids)
cat > "$PV_TMP/beta.json" <<EOF
{"events":[
 {"event_id":"till-1","visitor":"$VA1","type":"purchase","ts":"$NOW","amount_minor":1,"currency":"EUR"},
 {"event_id":"till-2","visitor":"$VB1","type":"purchase","ts":"$NOW","amount_minor":1,"currency":"EUR"}]}
EOF
events "$KB" "$PV_TMP/beta.json"
check_eq "beta batch" 207 "$HTTP_STATUS"
check_eq "beta: acme's visitor is unknown to beta" "rejected:unknown visitor" "$(jf '"\(.results[0].status):\(.results[0].reason)"')"
check_eq "beta: its own visitor, acme's event id reused" accepted "$(jf '.results[1].status')"
check_eq "till-2 stored for both tenants" 2 "$(stored till-2)"

# ---- batch-level errors
events "$KA_EVENTS" "$PV_TMP/good.json" text/plain
check_eq "wrong content type" 415 "$HTTP_STATUS"
check_eq "415 code" unsupported_media_type "$(jf .error.code)"
printf '{"events":[{"event_id":"x",' > "$PV_TMP/bad.json"
events "$KA_EVENTS" "$PV_TMP/bad.json"
check_eq "malformed JSON" 400 "$HTTP_STATUS"
check_match "400 names the position" 'line 1, column [0-9]+' "$(jf .error.message)"
printf '{"events":[]}' > "$PV_TMP/empty.json"
events "$KA_EVENTS" "$PV_TMP/empty.json"
check_eq "empty batch" 422 "$HTTP_STATUS"
printf '{"event":[]}' > "$PV_TMP/typo.json"
events "$KA_EVENTS" "$PV_TMP/typo.json"
check_eq "unknown top-level field" 422 "$HTTP_STATUS"
{ printf '{"events":['; for i in $(seq 1 501); do [ "$i" -gt 1 ] && printf ','; printf '{"event_id":"m%d"}' "$i"; done; printf ']}'; } > "$PV_TMP/many.json"
events "$KA_EVENTS" "$PV_TMP/many.json"
check_eq "501 events" 413 "$HTTP_STATUS"
check_match "413 says the limit" 'at most 500' "$(jf .error.message)"
head -c 1100000 /dev/zero | tr '\0' ' ' > "$PV_TMP/huge.json"
events "$KA_EVENTS" "$PV_TMP/huge.json"
check_eq "body over 1 MB" 413 "$HTTP_STATUS"
events "$KA_RECOG" "$PV_TMP/good.json"
check_eq "key without the events scope" 403 "$HTTP_STATUS"
http POST "$URL/v1/events" -H "Content-Type: application/json" --data-binary "@$PV_TMP/good.json"
check_eq "no key" 401 "$HTTP_STATUS"
http GET "$URL/v1/events" -H "Authorization: Bearer $KA_EVENTS"
check_eq "GET is not allowed" 405 "$HTTP_STATUS"
check_eq "nothing more was stored" 6 "$(remembered)"

# ---- the gateway is still healthy and counted the route
http GET "$URL/metrics"
check_match "events route in the metrics" 'route="events"' "$HTTP_BODY"
stop_pid "$GW_PID"
check_eq "clean shutdown" 0 "$?"
pv_finish
