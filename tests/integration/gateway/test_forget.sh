#!/usr/bin/env bash
# Erasure and retention outside the API: `privid-admin visitor erase` and
# `privid-admin retention run` on the tenants store while a real gateway runs
# (real networks, in-process gallery), and the gateway's own retention sweep.
# The identity of a forgotten visitor leaves the gallery through the forget
# queue (the running gateway's upkeep, or the next one to start), so the
# same face afterwards is a new visitor with another ID; a visitor another
# tenant still maps keeps its identity.
#   test_forget.sh PRIVID_ADMIN PRIVID_GATEWAY   (env PRIVID_MODELS)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
S=$MODELS/demo
[ -f "$S/sample2.jpg" ] || { echo "sample photos missing under $S (run deploy/setup.sh)" >&2; exit 1; }

data="$PV_TMP/data"
admin() { "$PV_ADMIN" --data-dir "$data" "$@"; }
admin tenant create acme --retention-days 7 >/dev/null || pv_fail "tenant create acme"
admin tenant create beta >/dev/null || pv_fail "tenant create beta"
KA=$(admin key create acme | head -1)
KB=$(admin key create beta | head -1)

# recog KEY PHOTO [DAYS_AGO]: one face's "status visitor"
recog() {
  local ts=""
  [ -n "${3:-}" ] && ts="?ts=$(date -u -d "-$3 days" +%Y-%m-%dT%H:%M:%SZ)"
  http POST "$URL/v1/recognize$ts" -H "Authorization: Bearer $1" -H 'Content-Type: image/jpeg' --data-binary "@$S/$2"
  [ "$HTTP_STATUS" = 200 ] || { echo "recognize $2: $HTTP_STATUS $HTTP_BODY"; return; }
  jf '.faces[0] | "\(.status) \(.visitor)"'
}
# removed_after N: waits until the gateway log counts N identities removed by the upkeep
removed_total() { sed -n 's/.*msg="forgotten identities removed from the gallery" identities=\([0-9]*\).*/\1/p' "$PV_TMP/$1.log" | awk '{s += $1} END {print s + 0}'; }
wait_removed() {
  local i
  for i in $(seq 1 100); do [ "$(removed_total "$1")" -ge "$2" ] && return 0; sleep 0.1; done
  return 1
}

start_gateway gw1 --threads 1 --workers 2 --data-dir "$data" --models "$MODELS" --forget-ms 200 --retention-sweep-ms 0
URL=$GW_URL

# ---- visitor erase from the CLI while the gateway runs
read -r st V1 <<<"$(recog "$KA" sample2.jpg)"
check_eq "first visit: new" new "$st"
check_eq "second visit: returning, same ID" "returning $V1" "$(recog "$KA" sample2.jpg)"
out=$(admin visitor erase acme "$V1"); rc=$?
check_eq "visitor erase: exit 0" 0 "$rc"
check_match "visitor erase: identity queued" "erased visitor $V1 of tenant acme; its identity is queued" "$out"
wait_removed gw1 1 && pv_ok || pv_fail "the gateway removed the erased identity from the gallery"
http GET "$URL/v1/visitors/$V1" -H "Authorization: Bearer $KA"
check_eq "erased visitor: 404" 404 "$HTTP_STATUS"
read -r st V1b <<<"$(recog "$KA" sample2.jpg)"
check_eq "same face after the erasure: a new visitor with another ID" "new true" "$st $([ "$V1b" != "$V1" ] && echo true || echo false)"
# usage errors and unknowns
admin visitor erase acme "$V1" >/dev/null 2>&1; check_eq "erase again: exit 3" 3 "$?"
admin visitor erase nobody "$V1b" >/dev/null 2>&1; check_eq "unknown tenant: exit 3" 3 "$?"
admin visitor erase beta "$V1b" >/dev/null 2>&1; check_eq "another tenant's visitor: exit 3" 3 "$?"
admin visitor erase acme >/dev/null 2>&1; check_eq "missing visitor ID: exit 2" 2 "$?"
admin visitor erase acme vis_AAAAAAAAAAAAAAAAAAAAAA --bogus >/dev/null 2>&1; check_eq "unknown option: exit 2" 2 "$?"
admin retention run extra >/dev/null 2>&1; check_eq "retention run extra argument: exit 2" 2 "$?"
out=$(admin visitor erase 'bad name!' "$V1b" 2>&1); check_eq "malformed tenant name: exit 2" 2 "$?"
check_match "malformed tenant name: says why" "is not a tenant name" "$out"
admin retention run --tenant '../x' >/dev/null 2>&1; check_eq "retention run, malformed --tenant: exit 2" 2 "$?"

# ---- a person two tenants know: erasing one mapping keeps the identity for the other
read -r _ W_A <<<"$(recog "$KA" sample3.jpg)"
read -r st W_B <<<"$(recog "$KB" sample3.jpg)"
check_eq "beta sees the same person (network), under its own ID" "returning true" "$st $([ "$W_B" != "$W_A" ] && echo true || echo false)"
before=$(removed_total gw1)
out=$(admin visitor erase acme "$W_A" --json)
check_eq "erase acme's mapping only: not queued" false "$(printf '%s' "$out" | jq -r .identity_queued)"
sleep 1
check_eq "nothing removed from the gallery" "$before" "$(removed_total gw1)"
check_eq "beta still recognises the person under its ID" "returning $W_B" "$(recog "$KB" sample3.jpg)"

# ---- retention from the CLI: a visitor last seen 10 days ago, acme keeps 7
http POST "$URL/v1/recognize?ts=$(date -u -d '-10 days' +%Y-%m-%dT%H:%M:%SZ)" -H "Authorization: Bearer $KA" \
  -H 'Content-Type: image/jpeg' --data-binary "@$S/sample4.jpg"
read -r st V2 <<<"$(jf '.faces[0] | "\(.status) \(.visitor)"')"
check_eq "old visit: new" new "$st"
old_faces=$(jf '[.faces[].visitor | select(. != null)] | length')
read -r _ V3 <<<"$(recog "$KA" sample5.jpg 3)"
before=$(removed_total gw1)
out=$(admin retention run --tenant acme --json); rc=$?
check_eq "retention run: exit 0, the old photo's visitors forgotten" "0 $old_faces" "$rc $(printf '%s' "$out" | jq -r .visitors_forgotten)"
wait_removed gw1 $((before + old_faces)) && pv_ok || pv_fail "the gateway removed the expired identity"
http GET "$URL/v1/visitors/$V2" -H "Authorization: Bearer $KA"
check_eq "expired visitor: 404" 404 "$HTTP_STATUS"
http GET "$URL/v1/visitors/$V3" -H "Authorization: Bearer $KA"
check_eq "visitor seen 3 days ago stays" 200 "$HTTP_STATUS"
read -r st V2b <<<"$(recog "$KA" sample4.jpg)"
check_eq "expired face again: a new visitor" "new true" "$st $([ "$V2b" != "$V2" ] && echo true || echo false)"

# ---- queued while no gateway runs: the next one to start removes it
stop_pid "$GW_PID"
admin visitor erase acme "$V2b" >/dev/null || pv_fail "erase while the gateway is stopped"
# ---- and the gateway's own retention sweep (every 300 ms here)
start_gateway gw2 --threads 1 --workers 2 --data-dir "$data" --models "$MODELS" --forget-ms 200 --retention-sweep-ms 300
URL=$GW_URL
wait_removed gw2 1 && pv_ok || pv_fail "the next gateway removed the identity queued while none ran"
check_eq "erased while stopped: the face is new again" new "$(recog "$KA" sample4.jpg | cut -d' ' -f1)"
read -r st V4 <<<"$(recog "$KA" sample6.jpg 9)"
for i in $(seq 1 50); do
  http GET "$URL/v1/visitors/$V4" -H "Authorization: Bearer $KA"
  [ "$HTTP_STATUS" = 404 ] && break
  sleep 0.1
done
check_eq "the gateway's sweep forgets a visitor past retention" 404 "$HTTP_STATUS"
check_match "the sweep is logged" 'msg="retention sweep" visitors_forgotten=[1-9]' "$(cat "$PV_TMP/gw2.log")"
stop_pid "$GW_PID"

# ---- queued but not yet out of the gallery (upkeep hourly here): the identity matches nobody
start_gateway gw3 --threads 1 --workers 2 --data-dir "$data" --models "$MODELS" --forget-ms 3600000 --retention-sweep-ms 0
URL=$GW_URL
read -r _ V5 <<<"$(recog "$KA" sample2.jpg)"
check_eq "before: returning" "returning $V5" "$(recog "$KA" sample2.jpg)"
admin visitor erase acme "$V5" >/dev/null || pv_fail "erase with the upkeep idle"
read -r st V5b <<<"$(recog "$KA" sample2.jpg)"
check_eq "queued identity not matched: new visitor, new ID, nothing removed yet" "new true 0" \
  "$st $([ "$V5b" != "$V5" ] && echo true || echo false) $(removed_total gw3)"
stop_pid "$GW_PID"
pv_finish
