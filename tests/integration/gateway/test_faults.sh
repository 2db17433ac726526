#!/usr/bin/env bash
# Dependency faults under a steady load of recognitions and business events
# against a gateway with two remote privid-shard processes and a PostgreSQL
# of its own (this test stops it):
#   (a) PostgreSQL stopped and restarted: recognitions and events keep
#       answering 2xx, /readyz says postgres unreachable (503 + Retry-After)
#       and ready again after the restart;
#   (b) a shard stopped: every answer `degraded`, nothing enrolled and no
#       exemplar added anywhere while it is away (mirrored photos, which do
#       add exemplars once every shard is back), nothing misplaced after;
#   (c) a slow shard (SIGSTOP): calls to it time out per --shard-timeout-ms
#       and later ones skip it while it is marked down, so answers stay
#       degraded and quick instead of queueing; back after SIGCONT;
#   (d) the data directory's disk full (a small tmpfs; needs root): writes
#       answer 503 storage_full with Retry-After, reads still answer, writes
#       work again once space returns, without a restart.
# Then everything acknowledged is in PostgreSQL exactly once, every
# acknowledged face is still identified as its visitor, LMDB opens cleanly.
#   test_faults.sh PRIVID_ADMIN PRIVID_GATEWAY PRIVID_SHARD MIGRATIONS_DIR IMGTOOL   (env PRIVID_MODELS)
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/faultlib.sh"
. "$(dirname "$0")/../../pg.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
PV_SHARD=$3
MIG=$4
IMGTOOL=$5
TIMEOUT_MS=500
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
S=$MODELS/demo
[ -f "$S/sample1.jpg" ] || { echo "sample photos missing under $S (run deploy/setup.sh)" >&2; exit 1; }

data="$PV_TMP/data"
mkdir -p "$data"
pgdir=$(mktemp -d /tmp/privid-faults-pg.XXXXXX)
chmod 755 "$pgdir"
tmpfs=0
cleanup() {
  local p
  for p in "${PV_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${PV_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  [ "$tmpfs" = 1 ] && umount "$data"
  pv_pg_stop "$pgdir/data"; rm -rf "$pgdir"
  pv_cleanup
}
trap cleanup EXIT
# the gateway's LMDB on a 32 MiB tmpfs, so (d) can fill it for real
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=32m,mode=700 privid-faults "$data"; then
  tmpfs=1
else
  echo "NOTE: not root or tmpfs not mountable: the disk-full part (d) is skipped" >&2
fi

pv_pg_start "$pgdir/data" || { echo "FAIL: cannot start PostgreSQL" >&2; exit 1; }
PG_PORT=$PV_PG_PORT
DSN="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres connect_timeout=2"

fault_setup
start_gateway gw --threads 2 --workers 2 --data-dir "$data" --models "$MODELS" --pg "$DSN" --pg-check-ms 200 \
  --shard "http://$S0" --shard "http://$S1" --shard-timeout-ms "$TIMEOUT_MS"
URL=$GW_URL

# ready ATTEMPTS WANT: polls /readyz every 0.1 s until its status is WANT;
# READY_S: the seconds it took ("never"); the last answer stays in HTTP_*
ready() {
  local i
  for i in $(seq 1 "$1"); do
    http GET "$URL/readyz"
    [ "$HTTP_STATUS" = "$2" ] && { READY_S="$((i / 10)).$((i % 10))"; return 0; }
    sleep 0.1
  done
  READY_S=never
}
# phase_summary PHASE: "<2xx recognitions> <other recognitions> <degraded> <new while degraded>"
# recognitions: answered 2xx, failed (a 503 "overloaded" with its error object is shedding on a
# busy machine, e.g. under ASan, not a failure), degraded 2xx, new identities in degraded answers
phase_summary() {
  local ok bad
  ok=$(load_lines R "$1" | wc -l)
  bad=$(load_lines X "$1" | awk '$3 == "recognize"' | grep -v ' 503 [0-9.]* {"error":{"code":"overloaded"' | wc -l)
  echo "$ok $bad $(load_lines R "$1" | awk '{print $7}' | jq -s '[([.[] | select(.[0])] | length),
    ([.[] | select(.[0]) | .[1][] | select(.[0] == "new")] | length)] | join(" ")' -r)"
}
stats() { curl -s --max-time 5 -H 'Accept: application/json' "http://$1/v1/shard/stats" | jq -r '"\(.identities) \(.exemplars)"'; }

# mirrored copies of the photos: the same people, diverse enough to become exemplars
for p in 1 2 3 4 5 6; do
  http POST "$URL/v1/detect" -H "Authorization: Bearer $KEY" -H 'Content-Type: image/jpeg' --data-binary "@$S/sample$p.jpg"
  "$IMGTOOL" variant "$S/sample$p.jpg" "$PV_TMP/mirror$p.jpg" 0 0 $(jf '"\(.image.width) \(.image.height)"') 1 1 0 90 ||
    pv_fail "imgtool variant sample$p"
done
# post_mirrors: recognizes every mirrored photo; prints "<2xx answers> <degraded answers>"
post_mirrors() {
  local p ok=0 deg=0
  for p in 1 2 3 4 5 6; do
    http POST "$URL/v1/recognize?camera=mirror" -H "Authorization: Bearer $KEY" -H 'Content-Type: image/jpeg' \
      --data-binary "@$PV_TMP/mirror$p.jpg"
    [ "${HTTP_STATUS:0:1}" = 2 ] && ok=$((ok + 1))
    [ "$(jf .degraded)" = true ] && deg=$((deg + 1))
  done
  echo "$ok $deg"
}
exemplars() { echo $(($(stats "$S0" | cut -d' ' -f2) + $(stats "$S1" | cut -d' ' -f2))); }

load_start
sleep 2
http GET "$URL/readyz"
check_eq "readyz before the faults" "200 ok" "$HTTP_STATUS $(jf .checks.postgres)"

# ---- (a) PostgreSQL stopped under load, then restarted
load_phase pg-down
pv_pg_stop "$pgdir/data"
ready 100 503; pg_detect=$READY_S
check_match "readyz turns 503 when PostgreSQL stops" '^[0-9.]+$' "$pg_detect"
check_eq "readyz names postgres unreachable" "unreachable" "$(jf .checks.postgres)"
check_match "readyz 503 has Retry-After" '^[0-9]+$' "$(header Retry-After)"
sleep 3
depth_down=$(metric privid_outbox_depth)
check_eq "events wait in the outbox while PostgreSQL is down" true "$([ "${depth_down:-0}" -gt 0 ] && echo true || echo false)"
pv_pg_start "$pgdir/data" "$PG_PORT" >/dev/null || pv_fail "PostgreSQL restart"
load_phase pg-back
ready 200 200; pg_recover=$READY_S
check_match "readyz ready again after PostgreSQL restarts" '^[0-9.]+$' "$pg_recover"
read -r ok bad deg _ <<<"$(phase_summary pg-down)"
check_eq "PostgreSQL down: recognitions answered 2xx, none failed" "true 0" "$([ "$ok" -gt 0 ] && echo true || echo false) $bad"
check_eq "PostgreSQL down: events accepted, none failed" "true 0" \
  "$([ "$(load_lines E pg-down | wc -l)" -gt 0 ] && echo true || echo false) $(load_lines X pg-down | awk '$3 == "events"' | wc -l)"
pg_ok=$ok
sleep 2

# ---- (b) a shard stopped: degraded answers, nothing written to the gallery
before0=$(stats "$S0")
kill -TERM "$S1_PID"; wait "$S1_PID" 2>/dev/null
load_phase shard-down
check_eq "shard down: mirrored photos answered, degraded" "6 6" "$(post_mirrors)"
sleep 2
load_phase shard-back
check_eq "shard down: the other shard's identities and exemplars unchanged" "$before0" "$(stats "$S0")"
start_shard s1 "$PV_TMP/s1" "$S1"; S1_PID=$SH_PID
read -r ok bad deg new <<<"$(phase_summary shard-down)"
check_eq "shard down: every answer 2xx and degraded, nothing new" "true 0 $ok 0" "$([ "$ok" -gt 0 ] && echo true || echo false) $bad $deg $new"
down_ok=$ok
# the restarted shard opens its gallery and the gateway retries it after
# down_ms: on a busy machine that takes a few seconds, so wait for it
incomplete=unknown
for i in $(seq 1 60); do
  sleep 0.5
  incomplete=$(load_lines R shard-back | tail -n 3 | awk '{print $7}' | jq -s '[.[] | select(.[0])] | length')
  [ "$(load_lines R shard-back | wc -l)" -ge 3 ] && [ "$incomplete" = 0 ] && break
done
check_eq "shard back: answers complete again" 0 "$incomplete"
ex_before=$(exemplars)
check_eq "shard back: mirrored photos answered, complete" "6 0" "$(post_mirrors)"
ex_after=$(exemplars)
check_eq "shard back: the mirrored photos do add exemplars (so none added while degraded means something)" true \
  "$([ "$ex_after" -gt "$ex_before" ] && echo true || echo false)"

# ---- (c) a slow shard: SIGSTOP for 4 s, answers bounded by the timeout
kill -STOP "$S1_PID"
load_phase slow
sleep 1
# a burst of BURST identifications at once on top of the load
BURST=16
bpids=()
for i in $(seq 1 $BURST); do
  curl -sS -o "$PV_TMP/burst.$i" -w '%{http_code} %{time_total}\n' --max-time 30 -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: image/jpeg' --data-binary "@$S/sample1.jpg" "$URL/v1/identify" >"$PV_TMP/burst.$i.code" 2>/dev/null &
  bpids+=("$!")
done
wait "${bpids[@]}"
sleep 1
load_phase slow-over
kill -CONT "$S1_PID"
t0=$(date +%s%N); recovered=never
for i in $(seq 1 100); do
  http POST "$URL/v1/identify" -H "Authorization: Bearer $KEY" -H 'Content-Type: image/jpeg' --data-binary "@$S/sample1.jpg"
  [ "$HTTP_STATUS" = 200 ] && [ "$(jf .degraded)" = false ] && { recovered=$((($(date +%s%N) - t0) / 1000000)); break; }
  sleep 0.1
done
check_match "slow shard: complete answers again after SIGCONT" '^[0-9]+$' "$recovered"
read -r ok bad deg new <<<"$(phase_summary slow)"
load_lines R slow | awk '$7 !~ /^\[true/' >&2
check_eq "slow shard: every answer 2xx and degraded, nothing new" "true 0 $ok 0" "$([ "$ok" -gt 0 ] && echo true || echo false) $bad $deg $new"
slow_ok=$ok
# a call to the stopped shard waits at most the timeout; while it is marked
# down the next calls skip it, so only a few answers waited at all
waited=$(load_lines R slow | awk '{print $7}' | jq -s --argjson t "$TIMEOUT_MS" '[.[] | select(.[2] >= $t * 0.9)] | length')
max_match=$(load_lines R slow | awk '{print $7}' | jq -s 'map(.[2]) | max | floor')
max_total=$(load_lines R slow | awk '{print $6}' | sort -g | tail -1)
check_eq "slow shard: the search waited at most the timeout (+1 s)" true \
  "$([ "$max_match" -le $((TIMEOUT_MS + 1000)) ] && echo true || echo false)"
burst_codes=$(cat "$PV_TMP"/burst.*.code | awk '{print $1}' | sort | uniq -c | awk '{printf "%s%sx%s", (NR > 1 ? " " : ""), $1, $2}')
burst_max=$(cat "$PV_TMP"/burst.*.code | awk '{print $2}' | sort -g | tail -1)
# every burst answer is degraded, or shed with 503 and an error object (a busy machine)
check_eq "slow shard: the burst answered 200 degraded or 503 with an error" "$BURST" \
  "$(for i in $(seq 1 $BURST); do jq -r 'select(.degraded == true or (.error.code | type) == "string") | 1' "$PV_TMP/burst.$i" 2>/dev/null; done | wc -l)"
burst_waited=$(for i in $(seq 1 $BURST); do jq -r --argjson t "$TIMEOUT_MS" 'select(.timings_ms.match >= $t * 0.9) | 1' "$PV_TMP/burst.$i" 2>/dev/null; done | wc -l)
burst_skipped=$(for i in $(seq 1 $BURST); do jq -r --argjson t "$TIMEOUT_MS" 'select(.degraded == true and .timings_ms.match < $t * 0.9) | 1' "$PV_TMP/burst.$i" 2>/dev/null; done | wc -l)
# while the shard is marked down after a timeout, searches skip it instead of each waiting
check_eq "slow shard: some answers skipped the shard marked down instead of waiting" true \
  "$([ $((burst_skipped + ok - waited)) -gt 0 ] && echo true || echo false)"

# ---- (d) disk full under the outbox
if [ "$tmpfs" = 1 ]; then
  load_phase disk-full
  V=$(load_lines E | tail -1 | awk '{print $4}')
  dd if=/dev/zero of="$data/filler" bs=64k >/dev/null 2>&1
  # a batch of 500 events of ~1 KB attrs: the outbox must grow past any free pages
  for i in $(seq 1 20); do
    jq -nc --arg v "$V" --arg ts "$(date -u +%FT%TZ)" --arg p "full$i" \
      '{events: [range(500) | {event_id: "\($p)-\(.)", visitor: $v, type: "note", ts: $ts,
                               attrs: {pad: ("x" * 900)}}]}' >"$PV_TMP/big.json"
    http POST "$URL/v1/events" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data-binary "@$PV_TMP/big.json"
    [ "$HTTP_STATUS" = 503 ] && break
  done
  full_batches=$((i - 1))
  check_eq "disk full: events answer 503 storage_full" "503 storage_full" "$HTTP_STATUS $(jf .error.code)"
  check_match "disk full: Retry-After" '^[0-9]+$' "$(header Retry-After)"
  # small writes may still fit in LMDB's free pages: a recognition either fits or says why
  http POST "$URL/v1/recognize?camera=full" -H "Authorization: Bearer $KEY" -H 'Content-Type: image/jpeg' --data-binary "@$S/sample1.jpg"
  check_match "disk full: recognize answers 200 or 503 storage_full" '^(200 null|503 storage_full)$' "$HTTP_STATUS $(jf .error.code)"
  http GET "$URL/v1/visitors/$V" -H "Authorization: Bearer $KEY"
  check_eq "disk full: a visitor can be read" 200 "$HTTP_STATUS"
  http GET "$URL/v1/whoami" -H "Authorization: Bearer $KEY"
  check_eq "disk full: whoami answers" 200 "$HTTP_STATUS"
  http GET "$URL/healthz"
  check_eq "disk full: healthz answers" 200 "$HTTP_STATUS"
  rm -f "$data/filler"
  load_phase disk-back
  t0=$(date +%s%N); disk_recovered=never
  for i in $(seq 1 100); do
    http POST "$URL/v1/events" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
      --data-binary "{\"events\":[{\"event_id\":\"after-full-$i\",\"visitor\":\"$V\",\"type\":\"note\",\"ts\":\"$(date -u +%FT%TZ)\"}]}"
    [ "$HTTP_STATUS" = 200 ] && { disk_recovered=$((($(date +%s%N) - t0) / 1000000)); break; }
    sleep 0.1
  done
  check_match "disk back: events accepted again without a restart" '^[0-9]+$' "$disk_recovered"
  check_eq "the gateway survived the full disk" 0 "$(kill -0 "$GW_PID" 2>/dev/null; echo $?)"
  sleep 2
  full_503=$(load_lines X disk-full | awk '$5 == 503' | wc -l)
  check_eq "disk full: the load's failures were all 503 storage_full" "" \
    "$(load_lines X disk-full | grep -v ' 503 [0-9.]* {"error":{"code":"storage_full"')"
  check_eq "disk back: recognitions answered again" true "$([ "$(load_lines R disk-back | wc -l)" -gt 0 ] && echo true || echo false)"
fi
load_stop

# ---- nothing acknowledged lost or doubled, nothing misplaced
drain_s=$(wait_drained)
check_delivered "faults"
check_enrolled "faults" all
check_lmdb "faults" "$data" "$PV_TMP/s0" "$PV_TMP/s1"
echo "figures: acknowledged recognitions=$ACK_REQS visits=$ACK_VISITS events=$ACK_EVENTS faces checked=$ACK_FACES;" \
  "PostgreSQL down: readyz 503 after ${pg_detect}s, ready ${pg_recover}s after restart, outbox depth $depth_down, $pg_ok recognitions answered;" \
  "shard down: $down_ok degraded answers, exemplars $ex_before -> $ex_after once back; slow shard: $slow_ok answers, $waited waited for the timeout, max search ${max_match} ms," \
  "max latency ${max_total}s, burst of $BURST: $burst_codes, $burst_waited waited, $burst_skipped skipped, slowest ${burst_max}s; complete ${recovered} ms after SIGCONT; disk full: ${full_503:-skipped} load 503s, writes back after ${disk_recovered:-skipped} ms ($full_batches big batches fitted);" \
  "outbox drained ${drain_s}s after the load"
echo "failed requests by phase, route and status:"; load_lines X | awk '{print $2, $3, $5}' | sort | uniq -c
pv_finish
