#!/usr/bin/env bash
# Recognition API benchmark (loopback only, bounded; prints JSON lines, asserts
# nothing). One gateway with the real networks and an in-process gallery is
# fed a 640x480 JPEG with one face (cropped from the model package's
# sample1.jpg). Measures, for the tiny detector, SSD, and a gallery of 100k
# synthetic identities (tests/bench/recognizer/gallery_fill): idle latency of
# sequential requests (curl, new connection each) with p50/p90/p99 and the
# gateway overhead = client latency - (decode+detect+landmarks+embed+match)
# of the answer's timings_ms (medians; "after_client_setup" also leaves out
# curl's own time before it sends, i.e. from connect to the last byte);
# and closed-loop throughput from wrk (a Lua script POSTs the JPEG).
# The face is enrolled once by a recognize call first, so identify answers it
# "returning" (visitor lookup included) as a real returning visitor would.
#   bench_recognize.sh [BUILD_DIR]   (binaries in BUILD_DIR/bin; default $PRIVID_BUILD_DIR or <repo>/build)
#   env: PRIVID_MODELS, N (60 sequential requests), DURATION (20s), CONNS (4),
#        WORKERS (2), THREADS (1 event loop), GALLERY_N (100000; 0 skips that part)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
build=${1:-${PRIVID_BUILD_DIR:-$repo/build}}
bin=$build/bin
models=${PRIVID_MODELS:-$build/models/face-api-1.7.15}
n=${N:-60} duration=${DURATION:-20s} conns=${CONNS:-4} workers=${WORKERS:-2} gwthreads=${THREADS:-1}
gallery_n=${GALLERY_N:-100000}
for t in privid-gateway privid-admin imgtool gallery_fill; do
  [ -x "$bin/$t" ] || { echo "$bin/$t missing (build it: cmake --build $build --target $t)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is needed (apt-get install jq)" >&2; exit 1; }
[ -f "$models/demo/sample1.jpg" ] || { echo "sample photos missing under $models/demo (run deploy/setup.sh)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/privid-bench.XXXXXX)
gw=
trap '[ -n "$gw" ] && kill "$gw" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
data=$tmp/data
"$bin/privid-admin" --data-dir "$data" tenant create bench >/dev/null
key=$("$bin/privid-admin" --data-dir "$data" key create bench 2>/dev/null | head -1)

# 640x480 around sample1's face at (775,445) 313x256
img=$tmp/face640.jpg
"$bin/imgtool" crop "$models/demo/sample1.jpg" "$img" 611 333 640 480
img_bytes=$(stat -c %s "$img")

start_gw() { # starts the gateway on a free port; sets url
  "$bin/privid-gateway" --listen 127.0.0.1:0 --threads "$gwthreads" --workers "$workers" --data-dir "$data" \
    --models "$models" > "$tmp/gw.log" 2>&1 &
  gw=$!
  local i addr=
  for i in $(seq 1 1200); do # up to 60 s: networks load, a big gallery opens from its snapshot
    addr=$(sed -n 's/.*msg="listening" addr=\([^ ]*\).*/\1/p' "$tmp/gw.log" | head -1)
    [ -n "$addr" ] && grep -q 'msg="gateway started"' "$tmp/gw.log" && break
    kill -0 "$gw" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$addr" ] || { echo "gateway did not start:" >&2; cat "$tmp/gw.log" >&2; exit 1; }
  url=http://$addr
}
stop_gw() { kill -TERM "$gw"; wait "$gw" || true; gw=; }

post() { # path-and-query out-file: prints curl's pre-transfer and total times in seconds
  curl -sS -o "$2" -w '%{time_pretransfer} %{time_total}\n' -H "Authorization: Bearer $key" -H 'Content-Type: image/jpeg' -H 'Expect:' \
    --data-binary "@$img" "$url$1"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
pct() { sort -g | awk -v p="$1" '{a[NR]=$1} END {i=int(NR*p/100+0.999999); if (i<1) i=1; print a[i]}'; }

# latency LABEL PATH-AND-QUERY: N sequential requests after 5 warm-up ones
latency() {
  local label=$1 path=$2 i t c s o st f q tt x mt
  for i in 1 2 3 4 5; do post "$path" "$tmp/warm.json" >/dev/null; done
  : > "$tmp/lat"; : > "$tmp/srv"; : > "$tmp/ovh"; : > "$tmp/store"; : > "$tmp/codes"; : > "$tmp/queue"; : > "$tmp/total"; : > "$tmp/ovhx"; : > "$tmp/match"
  for i in $(seq 1 "$n"); do
    t=$(post "$path" "$tmp/r.json")
    jq -r --arg t "$t" '
      .timings_ms as $m | ($t|split(" ")|map(tonumber*1000)) as [$pre, $c] |
      ($m.decode+$m.detect+$m.landmarks+$m.embed+$m.match) as $inf |
      "\($c) \($inf) \($c-$inf) \($m.store) \(.faces|length):\([.faces[].status]|join(",")) \($m.queue) \($m.total) \($c-$pre-$inf) \($m.match)"' \
      "$tmp/r.json" > "$tmp/one" || { echo "bad answer: $(head -c 300 "$tmp/r.json")" >&2; exit 1; }
    read -r c s o st f q tt x mt < "$tmp/one"
    echo "$q" >> "$tmp/queue"; echo "$tt" >> "$tmp/total"; echo "$x" >> "$tmp/ovhx"; echo "$mt" >> "$tmp/match"
    echo "$c" >> "$tmp/lat"; echo "$s" >> "$tmp/srv"; echo "$o" >> "$tmp/ovh"; echo "$st" >> "$tmp/store"
    echo "$f" >> "$tmp/codes"
  done
  local faces; faces=$(sort "$tmp/codes" | uniq -c | awk '{printf "%s%s x%s", (NR>1?"; ":""), $2, $1}')
  printf '{"bench":"recognize","what":"idle_latency","label":"%s","request":"POST %s","image":"640x480 jpeg %s bytes","faces":"%s","requests":%s,"client":"curl, new connection per request","workers":%s,"gateway_threads":%s,"gallery_identities":%s,"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"inference_and_search_p50_ms":%.2f,"match_p50_ms":%.3f,"overhead_p50_ms":%.2f,"overhead_after_client_setup_p50_ms":%.2f,"store_p50_ms":%.2f,"queue_p50_ms":%.2f,"server_total_p50_ms":%.2f,"loadavg_after":"%s"}\n' \
    "$label" "$path" "$img_bytes" "$faces" "$n" "$workers" "$gwthreads" "$identities" \
    "$(median < "$tmp/lat")" "$(pct 90 < "$tmp/lat")" "$(pct 99 < "$tmp/lat")" \
    "$(median < "$tmp/srv")" "$(median < "$tmp/match")" "$(median < "$tmp/ovh")" "$(median < "$tmp/ovhx")" "$(median < "$tmp/store")" \
    "$(median < "$tmp/queue")" "$(median < "$tmp/total")" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# throughput LABEL PATH-AND-QUERY: wrk closed loop, CONNS connections for DURATION
throughput() {
  local label=$1 path=$2
  cat > "$tmp/post.lua" <<EOF
local f = assert(io.open("$img", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/jpeg"
wrk.headers["Authorization"] = "Bearer $key"
-- each thread keeps the answers' timings_ms.match and .total; done() takes their medians
local threads = {}
function setup(t) table.insert(threads, t) end
match_ms, total_ms = {}, {}
function response(status, headers, body)
  local m, t = body:match('"match":([-%d.eE]+)'), body:match('"total":([-%d.eE]+)')
  if m and t then match_ms[#match_ms + 1] = tonumber(m); total_ms[#total_ms + 1] = tonumber(t) end
end
local function median(key)
  local all = {}
  for _, t in ipairs(threads) do for _, v in ipairs(t:get(key)) do all[#all + 1] = v end end
  table.sort(all)
  return #all > 0 and all[math.floor((#all + 1) / 2)] or -1
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_s":%.3f,"rps":%.2f,"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f,"non_2xx":%d,"socket_errors":%d,"server_total_p50_ms":%.2f,"match_p50_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    e.status, e.connect + e.read + e.write + e.timeout, median("total_ms"), median("match_ms")))
end
EOF
  wrk -t1 -c"$conns" -d2s -s "$tmp/post.lua" "$url$path" > /dev/null # warm-up
  local out
  out=$(wrk -t1 -c"$conns" -d"$duration" --timeout 10s -s "$tmp/post.lua" "$url$path" | grep '^{"requests"')
  printf '{"bench":"recognize","what":"throughput","label":"%s","request":"POST %s","image":"640x480 jpeg %s bytes","client":"wrk -t1 -c%s -d%s closed loop","workers":%s,"gateway_threads":%s,"gallery_identities":%s,%s\n' \
    "$label" "$path" "$img_bytes" "$conns" "$duration" "$workers" "$gwthreads" "$identities" "${out#\{}"
}

identities=0
start_gw
# enrol the face once: identify then finds it (returning, with a visitor ID)
post "/v1/recognize?location=bench" "$tmp/first.json" >/dev/null
[ "$(jq -r '.faces|length' "$tmp/first.json")" -ge 1 ] || { echo "no face found: $(cat "$tmp/first.json")" >&2; exit 1; }
identities=$(jq -r '[.faces[]|select(.status=="new")]|length' "$tmp/first.json")
printf '{"bench":"recognize","what":"setup","cpus":%s,"loadavg":"%s","blas":"%s","image":"640x480 jpeg %s bytes","first_recognize":%s}\n' \
  "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(sed -n 's/.*blas=\([^ ]*\).*/\1/p' "$tmp/gw.log" | head -1)" "$img_bytes" \
  "$(jq -c '{faces:[.faces[]|{status,box,score}],timings_ms}' "$tmp/first.json")"

latency tiny "/v1/identify?detector=tiny"
latency tiny "/v1/recognize?detector=tiny&location=bench"
throughput tiny "/v1/identify?detector=tiny"
latency ssd "/v1/identify?detector=ssd"
throughput ssd "/v1/identify?detector=ssd"

if [ "$gallery_n" -gt 0 ]; then
  stop_gw
  fill=$("$bin/gallery_fill" "$data/gallery" "$gallery_n")
  echo "$fill"
  identities=$(echo "$fill" | jq -r .identities)
  t0=$(date +%s.%N)
  start_gw
  printf '{"bench":"recognize","what":"gateway_start","gallery_identities":%s,"start_s":%.2f}\n' \
    "$identities" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')"
  latency "tiny+gallery" "/v1/identify?detector=tiny"
  throughput "tiny+gallery" "/v1/identify?detector=tiny"
  latency "ssd+gallery" "/v1/identify?detector=ssd"
  throughput "ssd+gallery" "/v1/identify?detector=ssd"
fi
stop_gw
