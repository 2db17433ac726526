#!/usr/bin/env bash
# Overload and hostile clients against a real privid-gateway on loopback.
#  1. loadgen offers /v1/detect (real networks, one worker) at several times
#     what the gateway can serve for 10 s: it must shed with 503 + Retry-After
#     (never another error), keep answering, stay under a generous memory
#     bound (VmHWM) and serve normally right after. Figures are printed; no
#     timing is asserted beyond generous bounds.
#  2. slowloris (headers trickled), slow bodies and idle connections are
#     closed by --request-timeout-ms while a normal request is served;
#     --max-connections closes the excess at once and counts it.
#  3. HTTP/2: a normal client making many requests on one connection is
#     unaffected; streams past the advertised limit of 100 open at once are
#     refused (REFUSED_STREAM), the connection kept; HEADERS+RST_STREAM
#     pairs (rapid reset) get GOAWAY ENHANCE_YOUR_CALM and the connection is
#     closed; the gateway stays up.
#   test_overload.sh PRIVID_ADMIN PRIVID_GATEWAY LOADGEN NETPROBE IMGTOOL   (env PRIVID_MODELS)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
LOADGEN=$3
NETPROBE=$4
IMGTOOL=$5
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
[ -f "$MODELS/demo/sample1.jpg" ] || { echo "sample photos missing under $MODELS/demo (run deploy/setup.sh)" >&2; exit 1; }
RATE=${PV_OVERLOAD_RATE:-100} SECONDS_LOAD=${PV_OVERLOAD_SECONDS:-10}
RSS_BOUND_KB=$((1536 * 1024))

data="$PV_TMP/data"
"$PV_ADMIN" --data-dir "$data" tenant create acme >/dev/null || pv_fail "tenant create"
KEY=$("$PV_ADMIN" --data-dir "$data" key create acme | head -1)
"$IMGTOOL" crop "$MODELS/demo/sample1.jpg" "$PV_TMP/face.jpg" 500 200 800 700 || pv_fail "imgtool crop"
jget() { printf '%s' "$1" | jq -r "$2"; }
metric() { curl -s "$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

# ---- 1. overload: one worker, a short queue
start_gateway load --threads 2 --workers 1 --queue-max 8 --queue-timeout-ms 2000 --data-dir "$data" --models "$MODELS"
URL=$GW_URL
t0=$(date +%s%N)
http POST "$URL/v1/detect" -H "Authorization: Bearer $KEY" -H "Content-Type: image/jpeg" --data-binary "@$PV_TMP/face.jpg"
check_eq "detect before the load" 200 "$HTTP_STATUS"
echo "one detection alone: $(( ($(date +%s%N) - t0) / 1000000 )) ms; offering $RATE/s for $SECONDS_LOAD s"
out=$("$LOADGEN" "${URL#http://}" /v1/detect "$PV_TMP/face.jpg" "$KEY" "$RATE" 64 "$SECONDS_LOAD" "$GW_PID")
echo "$out"
check_eq "gateway alive after the load" 0 "$(kill -0 "$GW_PID" 2>/dev/null; echo $?)"
check_match "some requests accepted" '^[1-9]' "$(jget "$out" .ok)"
check_match "overload shed with 503" '^[1-9]' "$(jget "$out" .s503)"
check_eq "every 503 says Retry-After" 0 "$(jget "$out" .no_retry_after)"
check_eq "no other status under load" 0 "$(jget "$out" .other)"
check_eq "no connection dropped" 0 "$(jget "$out" .conn_errors)"
check_eq "answers for everything sent" "$(jget "$out" .sent)" "$(jget "$out" .answered)"
check_eq "accepted p99 bounded (queue timeout 2 s + work, generous 15 s)" true "$(jget "$out" '.ok_p99_ms < 15000')"
check_eq "peak RSS under $RSS_BOUND_KB kB" true "$(jget "$out" ".peak_rss_kb > 0 and .peak_rss_kb < $RSS_BOUND_KB")"
check_match "shed counted in the metrics" '^[1-9]' "$(metric "$URL" privid_shed_total)"
# normal service as soon as the load stops
t0=$(date +%s%N)
http POST "$URL/v1/detect" -H "Authorization: Bearer $KEY" -H "Content-Type: image/jpeg" --data-binary "@$PV_TMP/face.jpg"
check_eq "detect right after the load" 200 "$HTTP_STATUS"
echo "first detection after the load: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
check_eq "queue drained" 0 "$(metric "$URL" privid_queue_depth)"
stop_pid "$GW_PID"
check_eq "clean shutdown after overload" 0 "$?"

# ---- 2. slow and idle clients, connection limit
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$PV_TMP/c.key" -out "$PV_TMP/c.crt" 2>/dev/null || pv_fail "openssl req"
start_gateway slow --threads 2 --data-dir "$data" --models off --request-timeout-ms 2000 --idle-timeout-ms 2000 \
  --max-connections 60 --h2-reset-limit 50 --listen http://127.0.0.1:0 --tls-cert "$PV_TMP/c.crt" --tls-key "$PV_TMP/c.key"
TURL=https://${GW_URL#http://}
URL=http://$(sed -n 's/.*msg="listening" addr=\([^ ]*\) url=http:.*/\1/p' "$PV_TMP/slow.log" | head -1)
HP=${URL#http://}
"$NETPROBE" slow "$HP" 20 headers 300 10 > "$PV_TMP/p.headers" &
p1=$!
"$NETPROBE" slow "$HP" 20 body 300 10 > "$PV_TMP/p.body" &
p2=$!
"$NETPROBE" slow "$HP" 15 idle 300 10 > "$PV_TMP/p.idle" &
p3=$!
sleep 0.5
v=$(curl -sS -o /dev/null -m 5 -w '%{http_code}' "$URL/healthz")
check_eq "normal request served while 55 slow clients hold connections" 200 "$v"
check_eq "open connections counted" true "$(metric "$URL" privid_connections_open | awk '{print ($1 >= 50) ? "true" : "false"}')"
wait "$p1" "$p2" "$p3"
for m in headers body idle; do
  r=$(cat "$PV_TMP/p.$m")
  echo "$m: $r"
  check_eq "$m: every connection closed by the server" "$(jget "$r" .opened)" "$(jget "$r" .closed)"
  check_eq "$m: closed after the 2 s timeout, not before" true "$(jget "$r" '.max_open_s >= 1.5 and .max_open_s < 6')"
done
# past --max-connections: the excess is closed at once
out=$("$NETPROBE" slow "$HP" 80 idle 300 10)
echo "80 idle connections, limit 60: $out"
check_eq "connections beyond the limit refused at once" true "$(jget "$out" '.refused >= 20')"
check_eq "all closed in the end" 80 "$(jget "$out" .closed)"
check_match "refusals counted" '^([2-9][0-9]|[1-9][0-9][0-9]+)$' "$(metric "$URL" privid_connections_refused_total)"
v=$(curl -sS -o /dev/null -m 5 -w '%{http_code}' "$URL/healthz")
check_eq "served again below the limit" 200 "$v"

# ---- 3. HTTP/2: normal clients unaffected (HTTPS, ALPN h2: curl reuses the connection), rapid reset closed
urls=()
for i in $(seq 1 200); do urls+=(-o /dev/null "$TURL/healthz"); done
codes=$(curl -sS --cacert "$PV_TMP/c.crt" -w '%{http_code} %{http_version} %{num_connects}\n' "${urls[@]}" |
  sort | uniq -c)
check_eq "200 h2 requests on one connection all answered" "1 199" \
  "$(echo "$codes" | awk '$2 == 200 && $3 == 2 {print $1}' | sort -n | tr '\n' ' ' | sed 's/ $//')"
check_eq "normal h2 client: no GOAWAY" 0 "$(metric "$URL" privid_http2_goaway_total)"
# concurrent streams: 150 opened at once (bodies never sent); libh2o advertises and enforces 100
out=$("$NETPROBE" streams "$HP" 150 /v1/events)
echo "150 streams at once: $out"
check_eq "the stream limit is advertised (SETTINGS_MAX_CONCURRENT_STREAMS)" 100 "$(jget "$out" .max_concurrent_streams)"
check_eq "streams past the limit refused (RST_STREAM REFUSED_STREAM)" 50 "$(jget "$out" .refused)"
check_eq "only those reset, no GOAWAY" "0 0" "$(jget "$out" '"\(.other_rst) \(.goaway)"')"
out=$("$NETPROBE" rapidreset "$HP" 2000 /healthz)
echo "rapid reset: $out"
check_eq "rapid reset gets GOAWAY" 1 "$(jget "$out" .goaway)"
check_eq "GOAWAY says ENHANCE_YOUR_CALM" 11 "$(jget "$out" .goaway_error)"
check_eq "rapid reset connection closed" 1 "$(jget "$out" .closed)"
check_eq "requests after the GOAWAY not served (cancelled count stays near the limit)" true \
  "$(metric "$URL" privid_http2_cancelled_total | awk '{print ($1 < 500) ? "true" : "false"}')"
check_eq "guard counted" 1 "$(metric "$URL" privid_http2_goaway_total)"
check_match "guard logged" 'too many cancelled streams' "$(cat "$PV_TMP/slow.log")"
v=$(curl -sS -o /dev/null --cacert "$PV_TMP/c.crt" -w '%{http_code} %{http_version}' "$TURL/healthz")
check_eq "h2 served after the attack" "200 2" "$v"
stop_pid "$GW_PID"
check_eq "clean shutdown" 0 "$?"
pv_finish
