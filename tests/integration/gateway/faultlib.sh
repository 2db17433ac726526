# Helpers for the crash-safety and dependency-fault tests (sourced after
# tests/lib.sh): privid-shard processes and gateways restarted on the same
# address, a background load of recognitions and business events that logs
# every answer, and the checks that every acknowledged visit, event and
# enrolment survived exactly once.
#   needs: PV_ADMIN PV_SHARD PV_GATEWAY MIG data S (sample photo dir) DSN; URL once a gateway runs

# start_shard NAME DIR [ADDR] [args...]: sets SH_PID and SH_ADDR. With ADDR (a
# restart) it retries while the port is still held by the killed process.
start_shard() {
  local name=$1 dir=$2 addr=${3:-127.0.0.1:0} i try
  shift 3 2>/dev/null || shift $#
  mkdir -p "$dir"
  for try in 1 2 3 4 5 6 7 8 9 10; do
    "$PV_SHARD" --listen "$addr" --data-dir "$dir" "$@" >>"$PV_TMP/$name.log" 2>&1 &
    SH_PID=$!; SH_ADDR=
    for i in $(seq 1 600); do
      grep -q 'shard started' "$PV_TMP/$name.log" && kill -0 "$SH_PID" 2>/dev/null && break
      kill -0 "$SH_PID" 2>/dev/null || break
      sleep 0.05
    done
    if kill -0 "$SH_PID" 2>/dev/null; then
      PV_PIDS+=("$SH_PID")
      SH_ADDR=$(sed -n 's/.*msg="listening" addr=\([^ ]*\).*/\1/p' "$PV_TMP/$name.log" | tail -1)
      return 0
    fi
    sleep 0.2
  done
  pv_fail "shard $name did not start"; cat "$PV_TMP/$name.log" >&2; pv_finish
}

# fault_setup: tenant acme with a key (KEY) in the store $data, migrated into
# DSN (TENANT: its id there), and two shards: S0, S1 (addresses), S0_PID, S1_PID.
admin() { "$PV_ADMIN" --data-dir "$data" "$@"; }
fault_setup() {
  admin tenant create acme >/dev/null || pv_fail "tenant create acme"
  KEY=$(admin key create acme 2>/dev/null | head -1)
  admin migrate --pg "$DSN" --migrations "$MIG" >/dev/null || pv_fail "migrate"
  TENANT=$(sql "SELECT tenant_id FROM tenants WHERE name = 'acme'")
  start_shard s0 "$PV_TMP/s0"; S0_PID=$SH_PID; S0=$SH_ADDR
  start_shard s1 "$PV_TMP/s1"; S1_PID=$SH_PID; S1=$SH_ADDR
}

# restart_gateway NAME ADDR [gateway args...]: starts a gateway on the fixed
# address ADDR (the one clients keep using); sets GW_PID.
restart_gateway() {
  local name=$1 addr=$2 i try log="$PV_TMP/$1.log"
  shift 2
  for try in 1 2 3 4 5 6 7 8 9 10; do
    : >"$log"
    "$PV_GATEWAY" --listen "$addr" "$@" >"$log" 2>&1 &
    GW_PID=$!
    for i in $(seq 1 1200); do
      grep -q 'msg="gateway started"' "$log" && break
      kill -0 "$GW_PID" 2>/dev/null || break
      sleep 0.02
    done
    if kill -0 "$GW_PID" 2>/dev/null && grep -q 'msg="gateway started"' "$log"; then
      PV_PIDS+=("$GW_PID")
      return 0
    fi
    sleep 0.2
  done
  pv_fail "gateway $name did not restart on $addr"; cat "$log" >&2; pv_finish
}

# metric NAME: its value on the gateway's /metrics (empty when unreachable)
metric() { curl -s --max-time 5 "$URL/metrics" | awk -v n="$1" '$1 == n {print $2; exit}'; }

# wait_drained: until the outbox is empty (up to 60 s); prints the seconds it took
wait_drained() {
  local i d
  for i in $(seq 1 600); do
    d=$(metric privid_outbox_depth)
    [ "$d" = 0 ] && { echo "$((i / 10)).$((i % 10))"; return 0; }
    sleep 0.1
  done
  pv_fail "outbox not drained after 60 s (depth [$d])"
  echo -1
}

# ---- the load: LOAD_W workers, each with its own photos (sample k with
# k % LOAD_W == worker), so no two requests enrol the same face at once. Each
# answer is a line in $LOAD_DIR/w<worker>.log, tagged with the phase (set by
# load_phase) of the recognition ("A>B" when sent in A and answered in B):
#   R <phase> <camera> <photo> <code> <seconds> <json [degraded, [[status, visitor, x, y]...], match ms]>  (2xx recognitions)
#   E <phase> <event id> <visitor> <code> <seconds>                                     (accepted events)
#   X <phase> <route> <id> <code> <seconds> <body>                                       (anything else)
# A camera label unique per request is the exact key of its visit rows.
LOAD_DIR="$PV_TMP/load"
LOAD_W=${LOAD_W:-3}
LOAD_PIDS=()

load_worker() {
  local w=$1 n=0 out="$LOAD_DIR/w$1.log" tmp="$LOAD_DIR/w$1.body" vis= photos=() k
  for k in 1 2 3 4 5 6; do [ $((k % LOAD_W)) = "$w" ] && photos+=("$k"); done
  while [ ! -e "$LOAD_DIR/stop" ]; do
    n=$((n + 1))
    local p=${photos[$((n % ${#photos[@]}))]} cam="w${w}n${n}" res code t ph= ph2=
    read -r ph <"$LOAD_DIR/phase"
    res=$(curl -sS -o "$tmp" -w '%{http_code} %{time_total}' --max-time 15 -H "Authorization: Bearer $KEY" \
      -H 'Content-Type: image/jpeg' --data-binary "@$S/sample$p.jpg" \
      "$URL/v1/recognize?location=load&camera=$cam" 2>/dev/null)
    read -r code t <<<"${res:-000 0}"
    read -r ph2 <"$LOAD_DIR/phase"
    [ "$ph2" = "$ph" ] || ph="$ph>$ph2" # sent in one phase, answered in the next
    if [ "${code:0:1}" = 2 ]; then
      echo "R $ph $cam $p $code $t $(jq -c '[.degraded, [.faces[] | [.status, .visitor, (.box.x|round), (.box.y|round)]], .timings_ms.match]' "$tmp")" >>"$out"
      k=$(jq -r '[.faces[].visitor | select(. != null)][0] // empty' "$tmp")
      [ -n "$k" ] && vis=$k
    else
      echo "X $ph recognize $cam $code $t $(head -c 300 "$tmp" 2>/dev/null | tr -d '\n')" >>"$out"
    fi
    [ -n "$vis" ] || continue
    local eid="ev-w${w}-n${n}-$RANDOM"
    res=$(curl -sS -o "$tmp" -w '%{http_code} %{time_total}' --max-time 15 -H "Authorization: Bearer $KEY" \
      -H 'Content-Type: application/json' \
      --data-binary "{\"events\":[{\"event_id\":\"$eid\",\"visitor\":\"$vis\",\"type\":\"purchase\",\"ts\":\"$(date -u +%FT%T.%3NZ)\",\"amount_minor\":$n,\"currency\":\"EUR\"}]}" \
      "$URL/v1/events" 2>/dev/null)
    read -r code t <<<"${res:-000 0}"
    if [ "$code" = 200 ] && [ "$(jq -r '.results[0].status' "$tmp")" = accepted ]; then
      echo "E $ph $eid $vis $code $t" >>"$out"
    else
      echo "X $ph events $eid $code $t $(head -c 300 "$tmp" 2>/dev/null | tr -d '\n')" >>"$out"
    fi
  done
}

load_start() {
  local w
  mkdir -p "$LOAD_DIR"; rm -f "$LOAD_DIR/stop"
  [ -e "$LOAD_DIR/phase" ] || load_phase start
  LOAD_PIDS=()
  for w in $(seq 0 $((LOAD_W - 1))); do
    load_worker "$w" &
    LOAD_PIDS+=("$!"); PV_PIDS+=("$!")
  done
}

load_stop() {
  local p
  touch "$LOAD_DIR/stop"
  for p in "${LOAD_PIDS[@]}"; do wait "$p" 2>/dev/null; done
}

# load_phase NAME: tags the requests sent from now on
load_phase() { echo "$1" >"$LOAD_DIR/phase.new" && mv "$LOAD_DIR/phase.new" "$LOAD_DIR/phase"; }

# load_lines KIND [PHASE]: every logged answer of that kind (in that phase) so far
load_lines() { cat "$LOAD_DIR"/w*.log 2>/dev/null | awk -v k="$1" -v p="${2:-}" '$1 == k && (p == "" || $2 == p)'; }

# ---- checks -----------------------------------------------------------------

sql() { psql "$DSN" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

# check_delivered WHAT: every acknowledged visit (camera, visitor) and event is
# in PostgreSQL exactly once, acknowledged cameras have no other rows, and each
# visitor's rows equal its LMDB visit counter (so nothing unacknowledged was
# doubled either). Call once the outbox is drained.
check_delivered() {
  local what=$1 ev="$PV_TMP/exp_visits.tsv" cams="$PV_TMP/exp_cams.tsv" evs="$PV_TMP/exp_events.tsv" out
  load_lines R | while read -r _ _ cam _ _ _ js; do
    printf '%s\n' "$cam" >>"$cams"
    jq -r --arg c "$cam" '.[1][] | select(.[1] != null) | "\($c)\t\(.[1])"' <<<"$js" >>"$ev"
  done
  touch "$ev" "$cams"
  load_lines E | awk '{print $3}' >"$evs"
  out=$(psql "$DSN" -X -q -At -v ON_ERROR_STOP=1 <<EOF
CREATE TEMP TABLE exp_v (camera text, visitor text);
CREATE TEMP TABLE exp_c (camera text);
CREATE TEMP TABLE exp_e (event_id text);
\copy exp_v FROM '$ev'
\copy exp_c FROM '$cams'
\copy exp_e FROM '$evs'
WITH e AS (SELECT camera, visitor, count(*) AS c FROM exp_v GROUP BY 1, 2),
     a AS (SELECT camera, visitor, count(*) AS c FROM visits
           WHERE tenant_id = $TENANT AND camera IN (SELECT camera FROM exp_c) GROUP BY 1, 2)
SELECT count(*) FILTER (WHERE coalesce(a.c, 0) < e.c), count(*) FILTER (WHERE coalesce(a.c, 0) > coalesce(e.c, 0))
FROM e FULL JOIN a USING (camera, visitor);
SELECT count(*) FILTER (WHERE n = 0), count(*) FILTER (WHERE n > 1)
FROM (SELECT (SELECT count(*) FROM events WHERE tenant_id = $TENANT AND event_id = x.event_id) AS n FROM exp_e x) s;
SELECT count(*), (SELECT count(*) FROM events WHERE tenant_id = $TENANT) FROM visits WHERE tenant_id = $TENANT;
EOF
  ) || { pv_fail "$what: PostgreSQL check failed: $out"; return; }
  local vis_line ev_line tot_line
  vis_line=$(sed -n 1p <<<"$out"); ev_line=$(sed -n 2p <<<"$out"); tot_line=$(sed -n 3p <<<"$out")
  check_eq "$what: acknowledged visits lost|duplicated in PostgreSQL" "0|0" "$vis_line"
  check_eq "$what: acknowledged events lost|duplicated in PostgreSQL" "0|0" "$ev_line"
  ACK_VISITS=$(wc -l <"$ev"); ACK_REQS=$(wc -l <"$cams"); ACK_EVENTS=$(wc -l <"$evs")
  PG_TOTALS=$tot_line
  # every visitor: rows in PostgreSQL == LMDB's visit counter (acknowledged or not)
  local v n bad=0 nv=0
  while IFS='|' read -r v n; do
    nv=$((nv + 1))
    http GET "$URL/v1/visitors/$v" -H "Authorization: Bearer $KEY"
    [ "$HTTP_STATUS" = 200 ] && [ "$(jf .visits)" = "$n" ] && continue
    bad=$((bad + 1)); echo "visitor $v: PostgreSQL $n rows, gateway: $HTTP_STATUS $HTTP_BODY" >&2
  done < <(sql "SELECT visitor, count(*) FROM visits WHERE tenant_id = $TENANT GROUP BY 1")
  check_eq "$what: visitors whose PostgreSQL rows differ from the LMDB visit count" 0 "$bad"
  PG_VISITORS=$nv
  rm -f "$ev" "$cams" "$evs"
}

# check_enrolled WHAT [all]: every face an acknowledged, non-degraded answer
# gave a visitor is still that visitor: identify (read-only) on the same photo
# finds it returning at the same place, so the enrolment is in its shard.
# With `all`, degraded answers too: a shard's absence never named a face
# another visitor.
check_enrolled() {
  local what=$1 all=${2:-} p bad=0 n=0 seen="$PV_TMP/enrolled.tsv"
  : >"$seen"
  for p in 1 2 3 4 5 6; do
    http POST "$URL/v1/identify" -H "Authorization: Bearer $KEY" -H 'Content-Type: image/jpeg' --data-binary "@$S/sample$p.jpg"
    [ "$HTTP_STATUS" = 200 ] || { pv_fail "$what: identify sample$p: $HTTP_STATUS $HTTP_BODY"; continue; }
    check_eq "$what: identify sample$p not degraded" false "$(jf .degraded)"
    printf '%s' "$HTTP_BODY" | jq -r --arg p "$p" '.faces[] | select(.status == "returning") | "\($p) \(.box.x|round) \(.box.y|round) \(.visitor)"' >>"$seen"
  done
  local cam ph code t js st v x y
  while read -r _ _ cam ph code t js; do
    [ "$all" = all ] || [ "$(jq -r '.[0]' <<<"$js")" = false ] || continue
    while read -r st v x y; do
      [ "$v" = null ] && continue
      n=$((n + 1))
      grep -qx "$ph $x $y $v" "$seen" && continue
      bad=$((bad + 1)); echo "sample$ph face at $x,$y ($st $v, request $cam) not found by identify" >&2
    done < <(jq -r '.[1][] | "\(.[0]) \(.[1]) \(.[2]) \(.[3])"' <<<"$js")
  done < <(load_lines R)
  check_eq "$what: acknowledged faces not identified as their visitor" 0 "$bad"
  ACK_FACES=$n
}

# check_lmdb WHAT DIR...: each environment opens cleanly (mdb_stat reads every database)
check_lmdb() {
  local what=$1 d out; shift
  for d in "$@"; do
    out=$(mdb_stat -a "$d" 2>&1) || { pv_fail "$what: mdb_stat $d: $out"; continue; }
    pv_ok
  done
}
