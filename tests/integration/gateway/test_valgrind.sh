#!/usr/bin/env bash
# The gateway's integration path under valgrind memcheck: privid-gateway
# (with the face networks, the analytics writer and reports on PostgreSQL)
# runs under memcheck with --leak-check=full and only the libh2o
# suppressions of tests/sanitizers/valgrind.supp; the test drives a
# recognition, an identify, an event batch, a report and a visitor delete,
# stops it with SIGTERM and fails on any memcheck error or leak (valgrind's
# exit status and its ERROR SUMMARY) as well as on a wrong answer.
# About 2 minutes of CPU (memcheck runs the networks ~50x slower); part of
# the default run, skipped (ctest: not run) with PV_VALGRIND=0.
#   test_valgrind.sh PRIVID_ADMIN PRIVID_GATEWAY MIGRATIONS_DIR SUPPRESSIONS
#   (env PRIVID_TEST_PG, PRIVID_MODELS)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
MIG=$3
SUPP=$4
[ "${PV_VALGRIND:-1}" = 0 ] && { echo "skipped: PV_VALGRIND=0"; exit 77; }
[ -n "${PRIVID_TEST_PG:-}" ] || { echo "FAIL: PRIVID_TEST_PG is not set" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "FAIL: valgrind is not installed (deploy/setup.sh installs it)" >&2; exit 1; }
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
S=$MODELS/demo
[ -f "$S/sample1.jpg" ] || { echo "sample photos missing under $S (run deploy/setup.sh)" >&2; exit 1; }

DB=privid_vg_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
psql "$PRIVID_TEST_PG" -X -q -c "CREATE DATABASE $DB" || { echo "FAIL: cannot create database $DB" >&2; exit 1; }
trap 'pv_cleanup; psql "$PRIVID_TEST_PG" -X -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1' EXIT
DSN="$PRIVID_TEST_PG dbname=$DB"

data="$PV_TMP/data"
admin() { "$PV_ADMIN" --data-dir "$data" "$@"; }
admin tenant create acme >/dev/null || pv_fail "tenant create acme"
KEY=$(admin key create acme 2>/dev/null | head -1)
admin migrate --pg "$DSN" --migrations "$MIG" >/dev/null || pv_fail "migrate"

# valgrind cannot run AVX-512 code: OpenBLAS is held to its AVX2 kernels.
vglog="$PV_TMP/valgrind.log"
log="$PV_TMP/gateway.log"
OPENBLAS_CORETYPE=Haswell OMP_NUM_THREADS=1 \
  valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,possible \
  --errors-for-leak-kinds=definite,possible --suppressions="$SUPP" --num-callers=30 --log-file="$vglog" \
  "$PV_GATEWAY" --listen 127.0.0.1:0 --threads 1 --workers 1 --data-dir "$data" --models "$MODELS" \
  --pg "$DSN" >"$log" 2>&1 &
GW_PID=$!
PV_PIDS+=("$GW_PID")
addr=
for i in $(seq 1 1200); do # up to 10 min: the networks load slowly under memcheck
  addr=$(sed -n 's/.*msg="listening" addr=\([^ ]*\).*/\1/p' "$log" | head -1)
  [ -n "$addr" ] && grep -q 'msg="gateway started"' "$log" && break
  addr=
  kill -0 "$GW_PID" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$addr" ]; then
  pv_fail "the gateway did not start under valgrind:"; cat "$log" "$vglog" >&2; pv_finish
fi
URL="http://$addr"
AUTH=(-H "Authorization: Bearer $KEY")
echo "gateway under memcheck on $URL"

http POST "$URL/v1/recognize?location=paris-1&camera=door" "${AUTH[@]}" -H "Content-Type: image/jpeg" \
  --data-binary "@$S/sample1.jpg" -m 900
check_eq "recognize" 200 "$HTTP_STATUS"
check_eq "recognize: three new faces" "new,new,new" "$(jf '[.faces[].status]|join(",")')"
V=$(jf '.faces[0].visitor')
check_match "visitor id" '^vis_[A-Za-z0-9_-]{22}$' "$V"

http POST "$URL/v1/identify" "${AUTH[@]}" -F "image=@$S/sample1.jpg;type=image/jpeg" -m 900
check_eq "identify" 200 "$HTTP_STATUS"
check_eq "identify: the same visitor" true "$(jf "[.faces[].visitor] | index(\"$V\") != null")"

NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
http POST "$URL/v1/events" "${AUTH[@]}" -H "Content-Type: application/json" -m 300 --data-binary \
  "{\"events\":[{\"event_id\":\"vg-1\",\"visitor\":\"$V\",\"type\":\"purchase\",\"ts\":\"$NOW\",\"amount_minor\":500,\"currency\":\"EUR\"},{\"event_id\":\"vg-2\",\"visitor\":\"vis_AAAAAAAAAAAAAAAAAAAAAA\",\"type\":\"purchase\",\"ts\":\"$NOW\"}]}"
check_eq "events (one good, one unknown visitor)" 207 "$HTTP_STATUS"
check_eq "events: statuses" "accepted,rejected" "$(jf '[.results[].status]|join(",")')"

FROM=$(date -u -d '-1 day' +%Y-%m-%dT00:00:00Z)
TO=$(date -u -d '+1 day' +%Y-%m-%dT00:00:00Z)
http GET "$URL/v1/analytics/summary?from=$FROM&to=$TO" "${AUTH[@]}" -m 300
check_eq "report" 200 "$HTTP_STATUS"
# three visitors are fewer than the default k of 5: the count is suppressed
check_eq "report: k-anonymous figures" true "$(jf '.data.visits.suppressed')"
http GET "$URL/v1/analytics/timeseries?from=$FROM&to=$TO&bucket=hour&tz=Europe/Paris" "${AUTH[@]}" -m 300
check_eq "report: timeseries" 200 "$HTTP_STATUS"

http DELETE "$URL/v1/visitors/$V" "${AUTH[@]}" -m 300
check_match "visitor delete" '^20[04]$' "$HTTP_STATUS"
http GET "$URL/v1/visitors/$V" "${AUTH[@]}" -m 300
check_eq "deleted visitor is gone" 404 "$HTTP_STATUS"
http GET "$URL/v1/visitors/not-an-id" "${AUTH[@]}" -m 300
check_eq "malformed visitor id" 404 "$HTTP_STATUS"

kill -TERM "$GW_PID"
rc=0
wait "$GW_PID" || rc=$?
check_eq "gateway exit status under memcheck (99 = memcheck errors)" 0 "$rc"
summary=$(grep 'ERROR SUMMARY' "$vglog" | tail -1 | sed 's/^==[0-9]*== //')
check_match "memcheck error summary" '^ERROR SUMMARY: 0 errors' "$summary"
grep -E 'definitely lost|indirectly lost|possibly lost|suppressed:' "$vglog" | sed 's/^==[0-9]*== /memcheck: /'
if [ "$PV_FAILS" != 0 ]; then
  echo "---- valgrind log" >&2; cat "$vglog" >&2
  echo "---- gateway log (last 40 lines)" >&2; tail -n 40 "$log" >&2
fi
pv_finish
