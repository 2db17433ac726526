#!/usr/bin/env bash
# Several event loops under a high rate of pool jobs. Each answer of a job
# wakes its loop through the pipe socket of the loop's message queue; libh2o
# recycles socket buffers through a thread-local allocator chosen when the
# socket is made, so a loop set up on another thread corrupts that thread's
# heap. Before the gateway set up each loop on its own thread this killed it
# within seconds (free(): invalid pointer) in every run. Here: two loops, two
# pool workers, GET /v1/visitors/<unknown> (a job answered 404) offered at a
# rate far above what it serves, for PV_LOOPS_SECONDS (default 15) seconds.
#   test_loops.sh PRIVID_ADMIN PRIVID_GATEWAY LOADGEN
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
LOADGEN=$3
SECS=${PV_LOOPS_SECONDS:-15}
jget() { printf '%s' "$1" | jq -r "$2"; }

data="$PV_TMP/data"
"$PV_ADMIN" --data-dir "$data" tenant create acme >/dev/null || pv_fail "tenant create"
KEY=$("$PV_ADMIN" --data-dir "$data" key create acme | head -1)
start_gateway loops --threads 2 --workers 2 --queue-max 4096 --data-dir "$data" --models off
VID=vis_AAAAAAAAAAAAAAAAAAAAAA
http GET "$GW_URL/v1/visitors/$VID" -H "Authorization: Bearer $KEY"
check_eq "an unknown visitor before the load: 404" 404 "$HTTP_STATUS"
out=$("$LOADGEN" "${GW_URL#http://}" "/v1/visitors/$VID" - "$KEY" 40000 128 "$SECS" "$GW_PID")
echo "$out"
check_eq "gateway alive after $SECS s of jobs on two loops" 0 "$(kill -0 "$GW_PID" 2>/dev/null; echo $?)"
check_match "thousands of jobs answered" '^[0-9]{4,}$' "$(jget "$out" .answered)"
check_eq "each answered 404" "$(jget "$out" .answered)" "$(jget "$out" .other)"
check_eq "no connection dropped" 0 "$(jget "$out" .conn_errors)"
check_eq "answers for everything sent" "$(jget "$out" .sent)" "$(jget "$out" .answered)"
http GET "$GW_URL/v1/visitors/$VID" -H "Authorization: Bearer $KEY"
check_eq "served after the load" 404 "$HTTP_STATUS"
stop_pid "$GW_PID"
check_eq "clean shutdown" 0 "$?"
pv_finish
