#!/usr/bin/env bash
# The web console in a real browser: a real privid-gateway on loopback (real
# networks, LMDB, PostgreSQL through the writer) serving the console built by
# deploy/setup.sh, driven by console.mjs (playwright-core, Debian's headless
# chromium). The test seeds its own data first: the sample photos recognized
# at different times (ts) and locations, purchases through POST /v1/events,
# and waits until the writer has delivered them to PostgreSQL.
#   test_console.sh PRIVID_ADMIN PRIVID_GATEWAY MIGRATIONS CONSOLE_DIR NPM_DIR ARTIFACTS
#   (env PRIVID_MODELS, PRIVID_TEST_PG)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
MIG=$3
CONSOLE=$4
NPM_DIR=$5
ARTIFACTS=$6
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
S=$MODELS/demo
[ -f "$S/sample1.jpg" ] || { echo "sample photos missing under $S (run deploy/setup.sh)" >&2; exit 1; }
[ -f "$CONSOLE/index.html" ] || { echo "FAIL: the console is not built in $CONSOLE (run deploy/setup.sh)" >&2; exit 1; }
[ -d "$NPM_DIR/node_modules/playwright-core" ] || { echo "FAIL: playwright-core missing in $NPM_DIR (run deploy/setup.sh)" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "FAIL: /usr/bin/chromium missing (deploy/setup.sh installs chromium)" >&2; exit 1; }
pv_pg_db privid_console
mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/*.png

data="$PV_TMP/data"
admin() { "$PV_ADMIN" --data-dir "$data" "$@"; }
admin tenant create acme >/dev/null || pv_fail "tenant create acme"
KEY=$(admin key create acme | head -1)
admin migrate --pg "$DSN" --migrations "$MIG" >/dev/null || pv_fail "migrate"
admin tenant update acme --k-anon 2 --pg "$DSN" >/dev/null || pv_fail "k-anon 2"
admin tenant create slow >/dev/null || pv_fail "tenant create slow"
admin tenant update slow --rate 1 --burst 3 >/dev/null || pv_fail "tenant update slow --rate 1"
SLOW_KEY=$(admin key create slow | head -1)

start_gateway main --threads 2 --workers 2 --data-dir "$data" --models "$MODELS" --pg "$DSN" --console-dir "$CONSOLE"
URL=$GW_URL
AUTH=(-H "Authorization: Bearer $KEY")

# ---- seed: recognitions at different days and locations, then purchases
faces=0
declare -a V=()
seed() { # seed PHOTO DAYS_AGO LOCATION
  http POST "$URL/v1/recognize?location=$3&ts=$(date -u -d "-$2 days" +%Y-%m-%dT12:00:00Z)" "${AUTH[@]}" \
    -H "Content-Type: image/jpeg" --data-binary "@$S/$1"
  check_eq "seed $1 -$2d" 200 "$HTTP_STATUS"
  faces=$((faces + $(jf '[.faces[] | select(.visitor != null)] | length')))
  V+=($(jf '.faces[].visitor'))
}
seed sample1.jpg 20 downtown
seed sample2.jpg 19 downtown
seed sample1.jpg 13 downtown
seed sample3.jpg 12 mall
seed sample1.jpg 6 mall
seed sample2.jpg 5 downtown
seed sample4.jpg 3 mall
seed sample1.jpg 1 downtown
TS=$(date -u -d '-1 days' +%Y-%m-%dT12:30:00Z)
http POST "$URL/v1/events" "${AUTH[@]}" -H "Content-Type: application/json" --data-binary \
  "{\"events\":[{\"event_id\":\"c-1\",\"visitor\":\"${V[0]}\",\"type\":\"purchase\",\"ts\":\"$TS\",\"amount_minor\":1250,\"currency\":\"EUR\"},
   {\"event_id\":\"c-2\",\"visitor\":\"${V[1]}\",\"type\":\"purchase\",\"ts\":\"$TS\",\"amount_minor\":799,\"currency\":\"EUR\"},
   {\"event_id\":\"c-3\",\"visitor\":\"${V[2]}\",\"type\":\"purchase\",\"ts\":\"$TS\",\"amount_minor\":2000,\"currency\":\"EUR\"}]}"
check_eq "seed purchases" 200 "$HTTP_STATUS"
# the writer delivers the outbox to PostgreSQL: wait until every visit and purchase is there
for i in $(seq 1 200); do
  [ "$(psql "$DSN" -X -At -c "SELECT (SELECT count(*) FROM visits) || ' ' || (SELECT count(*) FROM events)" 2>/dev/null)" = "$faces 3" ] && break
  sleep 0.1
done
check_eq "visits and purchases in PostgreSQL" "$faces 3" \
  "$(psql "$DSN" -X -At -c "SELECT (SELECT count(*) FROM visits) || ' ' || (SELECT count(*) FROM events)")"

# a second gateway with one worker and a queue of one, for the console's 503 (its own store)
busy="$PV_TMP/busy"
"$PV_ADMIN" --data-dir "$busy" tenant create busy >/dev/null || pv_fail "tenant create busy"
BUSY_KEY=$("$PV_ADMIN" --data-dir "$busy" key create busy | head -1)
start_gateway busy --threads 1 --workers 1 --queue-max 1 --data-dir "$busy" --models "$MODELS" --console-dir "$CONSOLE"
BUSY_URL=$GW_URL

# ---- the browser scenarios
GW_URL=$URL API_KEY=$KEY SLOW_KEY=$SLOW_KEY SAMPLE=$S/sample1.jpg ARTIFACTS=$ARTIFACTS NPM_DIR=$NPM_DIR \
  BUSY_URL=$BUSY_URL BUSY_KEY=$BUSY_KEY \
  node "$(dirname "$0")/console.mjs" && pv_ok || pv_fail "browser scenarios (screenshots in $ARTIFACTS)"
pv_finish
