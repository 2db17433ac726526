#!/usr/bin/env bash
# privid-admin demo seed end to end: synthetic visits and purchases go into
# the tenant's LMDB outbox, a real privid-gateway --pg delivers them to a
# freshly migrated PostgreSQL database, and the report endpoints answer with
# exactly the seeded figures (visits, distinct visitors, buyers, revenue,
# the frequency classes). Everything in PostgreSQL is marked synthetic; a
# second run is refused and writes nothing; the same seed gives the same
# figures for another tenant.
#   test_demo.sh PRIVID_ADMIN PRIVID_GATEWAY MIGRATIONS_DIR   (env PRIVID_TEST_PG)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
MIG=$3
pv_pg_db privid_demo
data="$PV_TMP/data"
admin() { "$PV_ADMIN" --data-dir "$data" "$@"; }
admin tenant create demo >/dev/null || pv_fail "tenant create demo"
admin tenant create other >/dev/null || pv_fail "tenant create other"
K=$(admin key create demo --scopes analytics | head -1)
admin migrate --pg "$DSN" --migrations "$MIG" >/dev/null || pv_fail "migrate"

# usage errors and an unknown tenant
admin demo seed --tenant demo --weeks 0 2>/dev/null; check_eq "bad --weeks: exit 2" 2 "$?"
admin demo seed --tenant nobody 2>/dev/null; check_eq "unknown tenant: exit 3" 3 "$?"
depth() { admin analytics status | sed -n 's/^outbox depth: *\([0-9]*\).*/\1/p'; }
check_eq "nothing written by refusals" 0 "$(depth)"

admin demo seed --tenant demo --weeks 4 --visitors 150 --seed 42 --json > "$PV_TMP/seed.json"
check_eq "seed exit" 0 "$?"
J() { jq -r "$1" "$PV_TMP/seed.json"; }
VISITS=$(J .visits); VISITORS=$(J .visitors); PURCHASES=$(J .purchases); BUYERS=$(J .buyers); AMOUNT=$(J .amount_minor)
FROM=$(J .from); TO=$(J .to)
check_eq "visitors" 150 "$VISITORS"
check_match "visits" '^[0-9]+$' "$VISITS"
[ "$VISITS" -gt 150 ] && [ "$PURCHASES" -gt 0 ] && pv_ok || pv_fail "some visitors come back and some buy ($VISITS visits, $PURCHASES purchases)"
check_eq "marked synthetic" true "$(J .synthetic)"
check_eq "outbox holds visits + purchases" $((VISITS + PURCHASES)) "$(depth)"
admin demo seed --tenant demo --weeks 4 --visitors 150 --seed 42 >/dev/null 2>"$PV_TMP/again.err"
check_eq "second run refused: exit 3" 3 "$?"
check_match "second run says why" "already has synthetic demo visitors" "$(cat "$PV_TMP/again.err")"
check_eq "second run wrote nothing" $((VISITS + PURCHASES)) "$(depth)"
admin demo seed --tenant other --weeks 4 --visitors 150 --seed 42 --json > "$PV_TMP/other.json"
check_eq "same seed, same figures" "$(jq -c 'del(.tenant)' "$PV_TMP/seed.json")" "$(jq -c 'del(.tenant)' "$PV_TMP/other.json")"

# the gateway's writer delivers them; the reports show what was seeded
start_gateway main --threads 1 --workers 2 --data-dir "$data" --models off --pg "$DSN"
TA=$(sql "SELECT tenant_id FROM tenants WHERE name = 'demo'")
for i in $(seq 1 300); do
  [ "$(sql "SELECT count(*) FROM visits WHERE tenant_id = $TA")" = "$VISITS" ] &&
    [ "$(sql "SELECT count(*) FROM events WHERE tenant_id = $TA")" = "$PURCHASES" ] && break
  sleep 0.1
done
check_eq "visits delivered" "$VISITS" "$(sql "SELECT count(*) FROM visits WHERE tenant_id = $TA")"
check_eq "purchases delivered" "$PURCHASES" "$(sql "SELECT count(*) FROM events WHERE tenant_id = $TA AND type = 'purchase'")"
check_eq "every visit at a synthetic location and camera" 0 \
  "$(sql "SELECT count(*) FROM visits WHERE tenant_id = $TA AND (location NOT LIKE 'synthetic-%' OR camera NOT LIKE 'synthetic-%')")"
check_eq "every purchase marked synthetic" 0 \
  "$(sql "SELECT count(*) FROM events WHERE tenant_id = $TA AND (attrs->>'synthetic' IS DISTINCT FROM 'true' OR event_id NOT LIKE 'synthetic-%')")"
check_eq "one first visit per visitor" "$VISITORS" "$(sql "SELECT count(*) FROM visits WHERE tenant_id = $TA AND status = 'new'")"

R="from=$FROM&to=$TO"
get() { http GET "$GW_URL/v1/analytics/$1" -H "Authorization: Bearer $K"; }
get "summary?$R"
check_eq "summary 200" 200 "$HTTP_STATUS"
check_eq "summary = seeded" "$VISITS $VISITORS" "$(jf '"\(.data.visits) \(.data.visitors)"')"
get "conversion?$R"
check_eq "conversion = seeded" "$VISITORS $BUYERS EUR $AMOUNT" \
  "$(jf '"\(.data.all.visitors) \(.data.all.buyers) \(.data.all.revenue[0].currency) \(.data.all.revenue[0].amount_minor)"')"
get "frequency?$R"
# the classes depend on the calendar (the seed spans the four weeks before
# today), so a small class may be suppressed: every class shown must equal
# PostgreSQL's exact count, and shown + the exact counts of the suppressed
# ones add up to the visitors
check_eq "frequency: all visitors" "$VISITORS" "$(jf .data.visitors)"
exact=$(sql "SELECT string_agg(coalesce(n, 0)::text, ' ' ORDER BY c) FROM generate_series(1, 5) c
  LEFT JOIN (SELECT least(v, 5) AS cls, count(*) AS n FROM (SELECT count(*) AS v FROM visits
    WHERE tenant_id = $TA AND ts >= '$FROM' AND ts < '$TO' GROUP BY visitor) x GROUP BY 1) y ON y.cls = c")
shown=$(jf '[.data.distribution[].visitors | if type == "number" then tostring else "s" end] | join(" ")')
read -r -a ex <<<"$exact"; read -r -a sh <<<"$shown"
bad=0; total=0; nsup=0
for i in 0 1 2 3 4; do
  if [ "${sh[$i]}" = s ]; then nsup=$((nsup + 1)); elif [ "${sh[$i]}" != "${ex[$i]}" ]; then bad=1; fi
  total=$((total + ${ex[$i]:-0}))
done
check_eq "frequency classes shown = PostgreSQL's exact counts ($shown vs $exact)" "0 $VISITORS" "$bad $total"
[ "$nsup" -le 4 ] && pv_ok || pv_fail "frequency: at most four classes suppressed ($shown)"
get "timeseries?$R&bucket=day"
check_eq "28 daily buckets" 28 "$(jf '.data.buckets | length')"
shown=$(jf '[.data.buckets[] | select(.visits | type == "number")] | length')
[ "$shown" -ge 20 ] && pv_ok || pv_fail "most days shown (not suppressed): $shown of 28"
sum=$(jf '[.data.buckets[].visits | numbers] | add')
if [ "$shown" = 28 ]; then check_eq "daily visits add up" "$VISITS" "$sum"
else [ "$sum" -le "$VISITS" ] && pv_ok || pv_fail "shown daily visits $sum exceed $VISITS"; fi
get "retention?$R"
check_eq "four weekly cohorts at most five" "ok" "$(jf 'if (.data.cohorts | length) >= 4 and (.data.cohorts | length) <= 5 then "ok" else (.data.cohorts | length) end')"
check_eq "cohorts hold every visitor" "$VISITORS" "$(jf '[.data.cohorts[].size | numbers] | add')"
stop_pid "$GW_PID"
pv_finish
