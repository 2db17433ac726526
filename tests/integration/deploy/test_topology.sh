#!/usr/bin/env bash
# The multi-process topology against the single-process default, on
# loopback with real networks, LMDB, HTTP and PostgreSQL: gateway A keeps
# the gallery in-process (the default), gateway B uses three privid-shard
# processes (named by host name, as in Kubernetes). Both get the same tenant
# and key (B's store is a copy of A's, made before either gateway ran) and
# the same stream: the sample photos, variants of them (scaled, mirrored,
# brightened, re-encoded), passes with enroll=auto, enroll=never and
# identify, a purchase, an erasure. Every answer must match: statuses,
# boxes, visit counts, distances and confidences (float tolerance), and the
# grouping of faces into visitors. Visitor IDs themselves differ by
# construction: a new identity's gid is drawn at random, and the ID is an
# encryption of (gid, tenant), so the test compares the partition of faces
# into visitors (a consistent one-to-one map of A's IDs onto B's) instead.
# Then, once both writers delivered, every report is identical, and agrees
# with the counts of the stream; B's identities are spread over the shards.
#   test_topology.sh PRIVID_ADMIN PRIVID_GATEWAY PRIVID_SHARD IMGTOOL MIGRATIONS_DIR
#   (env PRIVID_TEST_PG, PRIVID_MODELS)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
PV_SHARD=$3
IMGTOOL=$4
MIG=$5
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
MODELS=${PRIVID_MODELS:-$REPO/build/models/face-api-1.7.15}
S=$MODELS/demo
[ -f "$S/sample6.jpg" ] || { echo "FAIL: sample photos missing under $S (run deploy/setup.sh)" >&2; exit 1; }
# two throwaway databases, one per topology
pv_pg_db privid_topo_a; DBA=$DB DSNA=$DSN
pv_pg_db privid_topo_b; DBB=$DB DSNB=$DSN
trap 'pv_cleanup; for d in $DBA $DBB; do pv_admin_sql "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1; done' EXIT

# one tenant and key; B's store is a byte copy of A's (same tenant id, pseudonym secret, key)
"$PV_ADMIN" --data-dir "$PV_TMP/a" tenant create acme >/dev/null || pv_fail "tenant create"
KEY=$("$PV_ADMIN" --data-dir "$PV_TMP/a" key create acme | head -1)
cp -a "$PV_TMP/a" "$PV_TMP/b"
for side in a b; do
  dsn=$DSNA; [ $side = b ] && dsn=$DSNB
  "$PV_ADMIN" --data-dir "$PV_TMP/$side" migrate --pg "$dsn" --migrations "$MIG" >/dev/null || pv_fail "migrate $side"
  # k = 2 (the floor) so the reports show the small groups of this stream instead of suppressing them
  psql "$dsn" -X -q -At -v ON_ERROR_STOP=1 -c "INSERT INTO tenant_report_settings (tenant_id, k)
    SELECT tenant_id, 2 FROM tenants WHERE name = 'acme'" >/dev/null || pv_fail "k=2 on $side"
done

# the cluster: three shards on "localhost", the gateway names them the same way
mkdir -p "$PV_TMP/s0" "$PV_TMP/s1" "$PV_TMP/s2"
SHARDS=()
SHARD_URLS=()
SHARD_PIDS=()
for i in 0 1 2; do
  start_shard "s$i" "$PV_TMP/s$i" localhost
  SHARD_PIDS+=("$SH_PID")
  SHARDS+=("http://localhost:${SH_ADDR##*:}")
  SHARD_URLS+=(--shard "http://localhost:${SH_ADDR##*:}")
done
start_gateway single --threads 1 --workers 2 --data-dir "$PV_TMP/a" --models "$MODELS" --pg "$DSNA"
A=$GW_URL A_PID=$GW_PID
start_gateway cluster --threads 1 --workers 2 --data-dir "$PV_TMP/b" --models "$MODELS" --pg "$DSNB" \
  "${SHARD_URLS[@]}" --shard-timeout-ms 5000
B=$GW_URL B_PID=$GW_PID
"$REPO/deploy/docker/healthcheck.sh" "${B##*:}" /readyz; check_eq "the containers' health check on the cluster gateway" 0 "$?"

# the stream: originals, then two variants of each photo (the whole frame, transformed)
for i in 1 2 3 4 5 6; do
  size=$(python3 -c "import struct,sys
d=open(sys.argv[1],'rb').read(); i=2
while i < len(d):
    m, n = d[i+1], struct.unpack('>H', d[i+2:i+4])[0]
    if m in (0xC0, 0xC1, 0xC2): h, w = struct.unpack('>HH', d[i+5:i+9]); print(w, h); break
    i += 2 + n" "$S/sample$i.jpg")
  "$IMGTOOL" variant "$S/sample$i.jpg" "$PV_TMP/v1_$i.jpg" 0 0 $size 0.75 0 25 85 || pv_fail "imgtool v1 $i"
  "$IMGTOOL" variant "$S/sample$i.jpg" "$PV_TMP/v2_$i.jpg" 0 0 $size 0.9 1 -20 80 || pv_fail "imgtool v2 $i"
done
base=$(( $(date +%s) / 60 * 60 - 7200 ))
n=0
# send NAME PATH-AND-QUERY FILE: the same request to both gateways, answers kept as out/{a,b}/NNN.json
mkdir -p "$PV_TMP/out/a" "$PV_TMP/out/b"
send() {
  local name=$1 q=$2 f=$3 ts side url
  n=$((n + 1))
  ts=$(date -u -d "@$((base + n * 60))" +%Y-%m-%dT%H:%M:%SZ)
  case $q in *\?*) q="$q&ts=$ts" ;; *) q="$q?ts=$ts" ;; esac
  for side in a b; do
    url=$A; [ $side = b ] && url=$B
    http POST "$url$q" -H "Authorization: Bearer $KEY" -H 'Content-Type: image/jpeg' --data-binary "@$f"
    printf '{"name":"%s","status":"%s","body":%s}\n' "$name" "$HTTP_STATUS" "${HTTP_BODY:-null}" \
      > "$PV_TMP/out/$side/$(printf %03d $n).json"
  done
}
for i in 1 2 3 4 5 6; do send "pass1 sample$i" "/v1/recognize?location=front" "$S/sample$i.jpg"; done
for i in 1 2 3 4 5 6; do send "pass2 v1_$i enroll=never" "/v1/recognize?location=back&enroll=never" "$PV_TMP/v1_$i.jpg"; done
for i in 1 2 3 4 5 6; do send "pass3 v2_$i" "/v1/recognize?location=front" "$PV_TMP/v2_$i.jpg"; done
for i in 6 5 4 3 2 1; do send "identify sample$i" "/v1/identify" "$S/sample$i.jpg"; done
for i in 1 2 3 4 5 6; do send "pass4 sample$i" "/v1/recognize?location=back" "$S/sample$i.jpg"; done

# a purchase by each of sample1's first two visitors (two buyers: k = 2) and the erasure of sample3's first visitor, on both sides
visitor() { # N SIDE [NTH]: the NTH (0-based) face of answer N with a visitor, same index on both sides
  local idx
  idx=$(jq "[.body.faces | to_entries[] | select(.value.visitor != null) | .key][${3:-0}]" "$PV_TMP/out/a/$1.json")
  jq -r ".body.faces[$idx].visitor" "$PV_TMP/out/$2/$1.json"
}
VA1=$(visitor 001 a); VB1=$(visitor 001 b); VA3=$(visitor 001 a 1); VB3=$(visitor 001 b 1); VA2=$(visitor 003 a); VB2=$(visitor 003 b)
check_match "sample1 has two visitors" '^vis_.* vis_' "$VA1 $VA3"
check_match "sample3 has a visitor" '^vis_' "$VA2"
ets=$(date -u -d "@$((base + 600))" +%Y-%m-%dT%H:%M:%SZ)
for pair in "$A $VA1 $VA3" "$B $VB1 $VB3"; do
  set -- $pair
  http POST "$1/v1/events" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data "{\"events\":[{\"event_id\":\"p1\",\"visitor\":\"$2\",\"type\":\"purchase\",\"ts\":\"$ets\",\"amount_minor\":1250,\"currency\":\"EUR\",\"location\":\"front\"},
                 {\"event_id\":\"p2\",\"visitor\":\"$3\",\"type\":\"purchase\",\"ts\":\"$ets\",\"amount_minor\":750,\"currency\":\"EUR\",\"location\":\"front\"}]}"
  check_eq "purchase on $1" 200 "$HTTP_STATUS"
done
for pair in "$A $VA2" "$B $VB2"; do
  set -- $pair
  http DELETE "$1/v1/visitors/$2" -H "Authorization: Bearer $KEY"
  check_eq "erasure on $1" 200 "$HTTP_STATUS"
done
send "identify sample3 after erasure" "/v1/identify" "$S/sample3.jpg"
send "pass5 sample3 after erasure" "/v1/recognize?location=front" "$S/sample3.jpg"

# both writers deliver everything
for url in "$A" "$B"; do
  for i in $(seq 1 300); do
    http GET "$url/metrics"
    depth=$(printf '%s\n' "$HTTP_BODY" | awk '$1 == "privid_outbox_depth" {print $2}')
    [ "$depth" = 0 ] && break
    sleep 0.1
  done
  check_eq "outbox of $url delivered" 0 "$depth"
done

# the reports, same queries on both sides
from=$(date -u -d "@$((base - 3600))" +%Y-%m-%dT%H:%M:%SZ); to=$(date -u -d "@$((base + 4 * 3600))" +%Y-%m-%dT%H:%M:%SZ)
mkdir -p "$PV_TMP/rep/a" "$PV_TMP/rep/b"
r=0
for q in summary "summary&location=front" "summary&location=back" "timeseries&bucket=hour" retention frequency \
         "frequency&location=front" conversion "conversion&location=front"; do
  r=$((r + 1))
  for side in a b; do
    url=$A; [ $side = b ] && url=$B
    http GET "$url/v1/analytics/${q%%&*}?from=$from&to=$to${q#${q%%&*}}" -H "Authorization: Bearer $KEY"
    check_eq "report $q on $side" 200 "$HTTP_STATUS"
    printf '{"name":"%s","body":%s}\n' "$q" "${HTTP_BODY:-null}" > "$PV_TMP/rep/$side/$(printf %02d $r).json"
  done
done

# the cluster's identities, per shard
for u in "${SHARDS[@]}"; do
  http GET "$u/v1/shard/stats" -H 'Accept: application/json'
  printf '%s\n' "$HTTP_BODY"
done > "$PV_TMP/shard-stats.jsonl"

python3 "$HERE/compare_topology.py" "$PV_TMP/out" "$PV_TMP/rep" "$PV_TMP/shard-stats.jsonl"
check_eq "answers, visitors and reports of the two topologies" 0 "$?"
# every process stops cleanly (under sanitizers: nothing leaked)
for pid in "$A_PID" "$B_PID" "${SHARD_PIDS[@]}"; do
  stop_pid "$pid"; check_eq "process $pid exits cleanly" 0 "$?"
done
for side in a b; do
  ls "$PV_TMP/out/$side" | wc -l | xargs -I{} echo "$side: {} answers compared"
done
pv_finish
