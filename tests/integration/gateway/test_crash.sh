#!/usr/bin/env bash
# Crash safety: a steady load of recognitions (enroll=auto) and business
# events against a gateway with two remote privid-shard processes and
# PostgreSQL; the gateway is SIGKILLed at random moments and restarted on the
# same address, then one shard is. Afterwards every answer that was a 2xx must
# be in PostgreSQL exactly once (visits by their unique camera label, events
# by event_id), every visitor's rows must equal its LMDB visit counter,
# every acknowledged face must still be identified as its visitor (the
# enrolment is in its shard) and every LMDB environment must open cleanly.
#   test_crash.sh PRIVID_ADMIN PRIVID_GATEWAY PRIVID_SHARD MIGRATIONS_DIR   (env PRIVID_TEST_PG, PRIVID_MODELS)
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/faultlib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
PV_SHARD=$3
MIG=$4
KILLS=${PV_CRASH_KILLS:-5}
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
S=$MODELS/demo
[ -f "$S/sample1.jpg" ] || { echo "sample photos missing under $S (run deploy/setup.sh)" >&2; exit 1; }

pv_pg_db privid_crash
data="$PV_TMP/data"
fault_setup
GW_ARGS=(--threads 2 --workers 2 --data-dir "$data" --models "$MODELS" --pg "$DSN"
         --shard "http://$S0" --shard "http://$S1" --shard-timeout-ms 1000)
start_gateway gw0 "${GW_ARGS[@]}"
URL=$GW_URL
GW_ADDR=${GW_URL#http://}

# ---- the gateway, SIGKILLed KILLS times under load
load_start
restart_ms=()
for k in $(seq 1 "$KILLS"); do
  sleep "$((15 + RANDOM % 25))e-1"
  kill -KILL "$GW_PID"; wait "$GW_PID" 2>/dev/null
  t0=$(date +%s%N)
  restart_gateway "gw$k" "$GW_ADDR" "${GW_ARGS[@]}"
  restart_ms+=("$((($(date +%s%N) - t0) / 1000000))")
done
sleep 2

# ---- a shard, SIGKILLed under load and restarted on its address
load_phase shard-killed
kill -KILL "$S1_PID"; wait "$S1_PID" 2>/dev/null
sleep 1.5
start_shard s1 "$PV_TMP/s1" "$S1"; S1_PID=$SH_PID
load_phase shard-back
sleep 3
load_stop

check_eq "recognitions answered after the shard kill" true \
  "$([ "$(load_lines R shard-back | wc -l)" -gt 0 ] && echo true || echo false)"
check_eq "no degraded answer enrolled anyone" 0 \
  "$(load_lines R | awk '{print $7}' | jq -s '[.[] | select(.[0]) | .[1][] | select(.[0] == "new")] | length')"
degraded=$(load_lines R | awk '{print $7}' | jq -s '[.[] | select(.[0])] | length')

# ---- LMDB after a last SIGKILL of everything: every environment opens cleanly
kill -KILL "$GW_PID" "$S0_PID" "$S1_PID"; wait "$GW_PID" "$S0_PID" "$S1_PID" 2>/dev/null
check_lmdb "after SIGKILL" "$data" "$PV_TMP/s0" "$PV_TMP/s1"
start_shard s0 "$PV_TMP/s0" "$S0"; S0_PID=$SH_PID
start_shard s1 "$PV_TMP/s1" "$S1"; S1_PID=$SH_PID
restart_gateway final "$GW_ADDR" "${GW_ARGS[@]}"

# ---- nothing acknowledged lost or doubled
drain_s=$(wait_drained)
check_delivered "crash"
check_enrolled "crash"
check_match "some load was acknowledged" '^[0-9]{2,}$' "$ACK_REQS"
[ "$ACK_EVENTS" -gt 0 ] || pv_fail "no event was acknowledged"
failed=$(load_lines X | wc -l)
echo "figures: gateway kills=$KILLS restart_ms=${restart_ms[*]} shard kills=1;" \
  "acknowledged: recognitions=$ACK_REQS visits=$ACK_VISITS events=$ACK_EVENTS faces_checked=$ACK_FACES;" \
  "degraded answers=$degraded; failed requests=$failed; PostgreSQL visits|events=$PG_TOTALS visitors=$PG_VISITORS;" \
  "drained in ${drain_s}s after restart"
echo "failed requests by route and status:"; load_lines X | awk '{print $3, $5}' | sort | uniq -c
pv_finish
