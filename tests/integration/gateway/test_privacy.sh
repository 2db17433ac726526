#!/usr/bin/env bash
# Privacy check: after a real run (privid-gateway with the real networks
# recognizes the six sample photos, raw and multipart, identifies and detects,
# business events go in, a visitor is erased, reports are read, the outbox is
# delivered to a freshly migrated PostgreSQL database, the gateway stops),
# privacy_scan looks for image bytes (signatures and every 64-byte window of
# the uploaded files), the descriptors the pipeline computed for those photos
# (privid-admin faces: raw float32/float64 runs and printed decimal runs) and
# the API key secrets in: every log line the gateway and privid-admin wrote,
# every key and value of every named database of the tenants LMDB
# environment, a dump of every PostgreSQL row, and the gateway's temporary
# directory. The test fails on any finding. Before that, a self-check plants
# each kind of needle in scratch files (and in a scratch LMDB environment) and
# requires the scanner to find it, and the shard exemplar store (the one place
# descriptors belong) must show them: the scanner and its needles are real.
#   test_privacy.sh PRIVID_ADMIN PRIVID_GATEWAY PRIVACY_SCAN MIGRATIONS_DIR   (env PRIVID_TEST_PG, PRIVID_MODELS)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
SCAN=$3
MIG=$4
[ -n "${PRIVID_TEST_PG:-}" ] || { echo "PRIVID_TEST_PG is not set: run through tests/run.sh" >&2; exit 1; }
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
S=$MODELS/demo
[ -f "$S/sample1.jpg" ] || { echo "sample photos missing under $S (run deploy/setup.sh)" >&2; exit 1; }
for c in mdb_load pg_dump perl; do
  command -v $c >/dev/null || { echo "$c is needed (deploy/setup.sh installs lmdb-utils and PostgreSQL)" >&2; exit 1; }
done

pv_throwaway_db privid_priv
sql() { psql "$DSN" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

data="$PV_TMP/data"
logs="$PV_TMP/logs" # everything the gateway and privid-admin print (scanned)
secret="$PV_TMP/secret" # the API keys themselves, printed once by key create (not scanned)
gwtmp="$PV_TMP/gwtmp"   # TMPDIR of the gateway and privid-admin (scanned)
mkdir -p "$logs" "$secret" "$gwtmp"
export TMPDIR=$gwtmp
admin() { "$PV_ADMIN" --data-dir "$data" "$@" >>"$logs/admin.out" 2>>"$logs/admin.err"; }
admin tenant create acme || pv_fail "tenant create acme"
admin tenant create bravo --mode isolated || pv_fail "tenant create bravo"
"$PV_ADMIN" --data-dir "$data" key create acme >"$secret/ka" 2>>"$logs/admin.err"
"$PV_ADMIN" --data-dir "$data" key create bravo --scopes recognize,events >"$secret/kb" 2>>"$logs/admin.err"
"$PV_ADMIN" --data-dir "$data" key create acme --json >"$secret/kc.json" 2>>"$logs/admin.err"
KA=$(cat "$secret/ka")
KB=$(cat "$secret/kb")
KC=$(jq -r .key "$secret/kc.json")
"$PV_ADMIN" --data-dir "$data" key rotate "${KC:4:16}" --grace 0 >"$secret/kd" 2>>"$logs/admin.err"
KD=$(cat "$secret/kd")
admin migrate --pg "$DSN" --migrations "$MIG" || pv_fail "migrate"
admin key list acme
admin key list acme --json

start_gateway main --threads 2 --workers 2 --data-dir "$data" --models "$MODELS" --pg "$DSN" --log-level debug
URL=$GW_URL
IMAGES=()
for i in 1 2 3 4 5 6; do
  img=$S/sample$i.jpg
  IMAGES+=(--image "$img")
  http POST "$URL/v1/recognize?location=paris-1&camera=door" -H "Authorization: Bearer $KA" \
    -H "Content-Type: image/jpeg" --data-binary "@$img"
  check_eq "recognize sample$i" 200 "$HTTP_STATUS"
done
VA=$(http POST "$URL/v1/recognize" -H "Authorization: Bearer $KA" -F "image=@$S/sample1.jpg;type=image/jpeg"; jf '.faces[0].visitor')
check_match "multipart recognize" '^vis_' "$VA"
VA2=$(http POST "$URL/v1/recognize" -H "Authorization: Bearer $KA" -H "Content-Type: image/jpeg" --data-binary "@$S/sample3.jpg"; jf "[.faces[]|select(.visitor != null and .visitor != \"$VA\")][0].visitor")
check_match "a second visitor" '^vis_' "$VA2"
http POST "$URL/v1/recognize" -H "Authorization: Bearer $KB" -H "Content-Type: image/jpeg" --data-binary "@$S/sample3.jpg"
check_eq "recognize (bravo)" 200 "$HTTP_STATUS"
http POST "$URL/v1/identify" -H "Authorization: Bearer $KA" -H "Content-Type: image/jpeg" --data-binary "@$S/sample4.jpg"
check_eq "identify" 200 "$HTTP_STATUS"
http POST "$URL/v1/detect" -H "Authorization: Bearer $KA" -H "Content-Type: image/jpeg" --data-binary "@$S/sample5.jpg"
check_eq "detect" 200 "$HTTP_STATUS"
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
http POST "$URL/v1/events" -H "Authorization: Bearer $KA" -H "Content-Type: application/json" --data-binary \
  "{\"events\":[{\"event_id\":\"t-1\",\"visitor\":\"$VA\",\"type\":\"purchase\",\"ts\":\"$NOW\",\"amount_minor\":990,\"currency\":\"EUR\",\"attrs\":{\"sku\":\"X\"}},
               {\"event_id\":\"t-2\",\"visitor\":\"$VA2\",\"type\":\"signup\",\"ts\":\"$NOW\"}]}"
check_eq "events" "200 2" "$HTTP_STATUS $(jf .accepted)"
[ "$HTTP_STATUS" = 200 ] || echo "events answer: $HTTP_BODY" >&2
http GET "$URL/v1/visitors/$VA" -H "Authorization: Bearer $KA"
check_eq "visitor" 200 "$HTTP_STATUS"
http DELETE "$URL/v1/visitors/$VA2" -H "Authorization: Bearer $KA"
check_eq "erase" 200 "$HTTP_STATUS"
http GET "$URL/v1/analytics/summary?from=$(date -u -d '-1 day' +%Y-%m-%d)T00:00:00Z&to=$(date -u -d '+1 day' +%Y-%m-%d)T00:00:00Z" -H "Authorization: Bearer $KA"
check_eq "report" 200 "$HTTP_STATUS"
# failures that log: a wrong secret, a revoked key, the rotated (expired) key, a key in a query string
http GET "$URL/v1/whoami" -H "Authorization: Bearer ${KA:0:21}${KB:21}"
http GET "$URL/v1/whoami" -H "Authorization: Bearer $KC"
check_eq "rotated key expired" 401 "$HTTP_STATUS"
http GET "$URL/v1/whoami?key=$KD" -H "Authorization: Bearer $KD"
check_eq "whoami" 200 "$HTTP_STATUS"
http POST "$URL/v1/recognize" -H "Authorization: Bearer $KA" -H "Content-Type: image/png" --data-binary "@$S/sample6.jpg"
for i in $(seq 1 100); do
  [ "$(sql "SELECT count(*) FROM erasures")" = 1 ] && [ "$(sql "SELECT count(*) FROM events")" -ge 1 ] && break
  sleep 0.1
done
check_eq "the erasure reached PostgreSQL" 1 "$(sql "SELECT count(*) FROM erasures")"
check_match "visits reached PostgreSQL" '^[1-9]' "$(sql "SELECT count(*) FROM visits")"
stop_pid "$GW_PID"
check_eq "clean shutdown" 0 "$?"
cp "$PV_TMP/main.log" "$logs/gateway.log"
admin analytics status --pg "$DSN"
admin usage acme
admin tenant show acme

# the descriptors the pipeline computes for the uploaded photos
"$PV_ADMIN" faces --models "$MODELS/model" "$S"/sample[1-6].jpg 2>>"$logs/admin.err" |
  jq -r '.faces[]?.descriptor[]' > "$PV_TMP/desc.txt"
nvals=$(wc -l < "$PV_TMP/desc.txt")
check_eq "descriptors: whole faces" 0 "$((nvals % 128))"
[ "$nvals" -ge 1280 ] && pv_ok || pv_fail "fewer than 10 faces in the sample photos ($nvals values)"
pg_dump --data-only --inserts --no-owner "$DSN" > "$PV_TMP/pg.sql" || pv_fail "pg_dump"
check_match "the dump holds the visits" 'INSERT INTO public\.visits' "$(cat "$PV_TMP/pg.sql")"
NEEDLES=("${IMAGES[@]}" --desc "$PV_TMP/desc.txt" --secret "$KA" --secret "$KB" --secret "$KC" --secret "$KD")

# ---- self-check: every kind of needle planted is found
scratch="$PV_TMP/scratch"
mkdir -p "$scratch"
v() { sed -n "$1p" "$PV_TMP/desc.txt"; } # the Nth descriptor value
plant() { # NAME EXPECTED-FINDING: scans scratch/NAME alone
  local out rc
  out=$("$SCAN" "${NEEDLES[@]}" --file "$scratch/$1" 2>&1); rc=$?
  check_eq "self-check $1: exit status" 1 "$rc"
  check_match "self-check $1: finding" "FOUND $2" "$out"
}
{ head -c 1000 /dev/urandom; perl -e 'print pack("f<4", @ARGV)' -- "$(v 133)" "$(v 134)" "$(v 135)" "$(v 136)"; head -c 99 /dev/urandom; } > "$scratch/raw32.bin"
plant raw32.bin "descriptor values as float32"
{ head -c 77 /dev/urandom; perl -e 'print pack("d<4", map { unpack("f<", pack("f<", $_)) } @ARGV)' -- "$(v 300)" "$(v 301)" "$(v 302)" "$(v 303)"; } > "$scratch/raw64.bin"
plant raw64.bin "descriptor values as float64"
printf 'level=debug msg="x" v=%.6f,%.6f,%.6f,%.6f\n' "$(v 140)" "$(v 141)" "$(v 142)" "$(v 143)" > "$scratch/fixed.log"
plant fixed.log "descriptor values printed in decimal"
printf '[%g %g %g %g]\n' "$(v 520)" "$(v 521)" "$(v 522)" "$(v 523)" > "$scratch/g.log"
plant g.log "descriptor values printed in decimal"
jq -c '.[10:14]' <<<"[$(paste -sd, "$PV_TMP/desc.txt")]" > "$scratch/json.log"
plant json.log "descriptor values printed in decimal"
{ head -c 500 /dev/urandom; tail -c +20001 "$S/sample3.jpg" | head -c 64; head -c 500 /dev/urandom; } > "$scratch/window.bin"
plant window.bin "a 64-byte window of an uploaded image"
head -c 4 "$S/sample2.jpg" > "$scratch/jpeg.bin"; head -c 100 /dev/urandom >> "$scratch/jpeg.bin"
plant jpeg.bin "JPEG signature"
{ printf '\x89PNG\r\n\x1a\n'; head -c 100 /dev/zero; } > "$scratch/png.bin"
plant png.bin "PNG signature"
{ printf 'RIFF\x10\x00\x00\x00WEBPVP8 '; head -c 100 /dev/zero; } > "$scratch/webp.bin"
plant webp.bin "WebP signature"
printf 'msg="auth" key=%s\n' "${KB:21}" > "$scratch/key.log"
plant key.log "API key secret"
{ printf 'VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n 6b6579\n '
  perl -e 'print unpack("H*", pack("f<4", @ARGV))' -- "$(v 700)" "$(v 701)" "$(v 702)" "$(v 703)"
  printf '\nDATA=END\n'; } > "$PV_TMP/scratch.dump"
mkdir -p "$PV_TMP/scratch-lmdb"
mdb_load -s planted -f "$PV_TMP/scratch.dump" "$PV_TMP/scratch-lmdb" || pv_fail "mdb_load"
out=$("$SCAN" "${NEEDLES[@]}" --lmdb "$PV_TMP/scratch-lmdb" 2>&1)
check_eq "self-check LMDB: exit status" 1 "$?"
check_match "self-check LMDB: finding" "FOUND descriptor values as float32 in LMDB .* database 'planted'" "$out"
printf 'request_id=abc status=200 ms=12.5 faces=3 0.5 0.25 1 2 3 4\n' > "$scratch/clean.log"
out=$("$SCAN" "${NEEDLES[@]}" --file "$scratch/clean.log" 2>&1)
check_eq "self-check: a clean file is clean" 0 "$?"
# the shard exemplar store is where descriptors live: the scanner must see the gateway's own there
out=$("$SCAN" --desc "$PV_TMP/desc.txt" --lmdb "$data/gallery/shard-0" 2>&1)
check_match "the exemplar store holds the pipeline's descriptors" "FOUND descriptor values as float32 in LMDB .*'exemplars'" "$out"

# ---- the real scan
ls "$logs"/* > /dev/null && pv_ok || pv_fail "no logs"
check_match "the gateway's log was captured" 'msg="gateway stopped"' "$(cat "$logs/gateway.log")"
files=()
for f in "$logs"/* "$PV_TMP/pg.sql"; do files+=(--file "$f"); done
out=$("$SCAN" "${NEEDLES[@]}" "${files[@]}" --lmdb "$data" --dir "$gwtmp" 2>&1)
rc=$?
echo "$out" | grep -v '^FOUND' >&2
check_eq "no image bytes, descriptors or key secrets in logs, LMDB, PostgreSQL or temporary files" "0" "$rc"
echo "$out" | grep '^FOUND' >&2
check_match "every named database walked" 'named databases' "$out"
pv_finish
