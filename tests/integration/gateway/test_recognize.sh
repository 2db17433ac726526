#!/usr/bin/env bash
# The recognition API end to end: a real privid-gateway on loopback with the
# real networks, a real gallery (FAISS + LMDB) and the tenants LMDB, fed the
# sample photos of the verified model download (and crops of them made by
# imgtool: the same people seen again, framed differently). Checks visitor
# IDs (stable for a person, different per tenant), new/returning/unenrolled,
# identify and detect, the visitor record, erasure, tenant isolation (B can
# neither read nor delete A's visitors), scopes, bad input and overload.
# With PRIVID_SHARD, also the gateway on two remote shards, one killed.
#   test_recognize.sh PRIVID_ADMIN PRIVID_GATEWAY IMGTOOL [PRIVID_SHARD]   (env PRIVID_MODELS)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
IMGTOOL=$3
PV_SHARD=${4:-}
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
S=$MODELS/demo
[ -f "$S/sample1.jpg" ] || { echo "sample photos missing under $S (run deploy/setup.sh)" >&2; exit 1; }

data="$PV_TMP/data"
admin() { "$PV_ADMIN" --data-dir "$data" "$@"; }
admin tenant create acme >/dev/null || pv_fail "tenant create acme"
admin tenant create beta >/dev/null || pv_fail "tenant create beta"
admin tenant create gamma --mode isolated >/dev/null || pv_fail "tenant create gamma"
KA=$(admin key create acme | head -1)
KB=$(admin key create beta | head -1)
KG=$(admin key create gamma | head -1)
K_EVENTS=$(admin key create acme --scopes events | head -1)
K_RECOG=$(admin key create acme --scopes recognize | head -1)

# test images: sample1's first tiny-detector face (775,445 313x256) framed two other ways
"$IMGTOOL" crop "$S/sample1.jpg" "$PV_TMP/face0_a.jpg" 500 200 800 700 || pv_fail "imgtool crop a"
"$IMGTOOL" crop "$S/sample1.jpg" "$PV_TMP/face0_b.jpg" 700 380 460 380 || pv_fail "imgtool crop b"
"$IMGTOOL" png "$S/sample2.jpg" "$PV_TMP/sample2.png" || pv_fail "imgtool png"
head -c 20000 "$S/sample3.jpg" > "$PV_TMP/truncated.jpg"

start_gateway main --threads 2 --workers 2 --data-dir "$data" --models "$MODELS" --max-body 4000000
URL=$GW_URL

# post KEY PATH-AND-QUERY FILE [content type]
post() {
  http POST "$URL$2" -H "Authorization: Bearer $1" -H "Content-Type: ${4:-image/jpeg}" --data-binary "@$3"
}

# ---- recognize: three new visitors, then one of them again
post "$KA" "/v1/recognize?location=paris-1&camera=door" "$S/sample1.jpg"
check_eq "recognize sample1" 200 "$HTTP_STATUS"
check_eq "sample1 faces" 3 "$(jf '.faces|length')"
check_eq "sample1 all new" "new,new,new" "$(jf '[.faces[].status]|join(",")')"
check_eq "new visitors seen once" "1,1,1" "$(jf '[.faces[].visits]|join(",")')"
check_match "visitor id format" '^vis_[A-Za-z0-9_-]{22}$' "$(jf '.faces[0].visitor')"
check_eq "image size" "1920x1280" "$(jf '"\(.image.width)x\(.image.height)"')"
check_eq "timings present" true "$(jf '.timings_ms.total > 0 and .timings_ms.embed > 0')"
check_eq "not degraded" false "$(jf .degraded)"
V0=$(jf '.faces[] | select(.box.x > 700 and .box.x < 850) | .visitor')
check_match "the face at x~775 has an id" '^vis_' "$V0"
check_eq "three distinct visitors" 3 "$(jf '[.faces[].visitor]|unique|length')"

post "$KA" "/v1/recognize?location=paris-1" "$PV_TMP/face0_a.jpg"
check_eq "recognize crop a" 200 "$HTTP_STATUS"
check_eq "crop a: one face" 1 "$(jf '.faces|length')"
check_eq "crop a: returning" returning "$(jf '.faces[0].status')"
check_eq "crop a: same visitor" "$V0" "$(jf '.faces[0].visitor')"
check_eq "crop a: second visit" 2 "$(jf '.faces[0].visits')"
check_eq "crop a: close and confident" true "$(jf '.faces[0].distance < 0.4 and .faces[0].confidence > 0.5')"

# the same face scaled, mirrored, brightened, darkened and re-encoded: one visitor
for v in "500 200 800 700 0.7 0 0 90" "600 300 700 600 1.5 0 0 85" "500 200 800 700 1 1 0 90" \
         "500 200 800 700 1 0 40 90" "500 200 800 700 1 0 -40 90" "550 250 700 600 0.8 1 20 35"; do
  "$IMGTOOL" variant "$S/sample1.jpg" "$PV_TMP/variant.jpg" $v || pv_fail "imgtool variant $v"
  post "$KA" "/v1/identify" "$PV_TMP/variant.jpg"
  check_eq "variant [$v]: the same visitor" "returning $V0" \
    "$(jf '[.faces[] | select(.status == "returning")][0] | "\(.status) \(.visitor)"')"
done
# and different people stay different: sample3's faces are nobody we know
post "$KA" "/v1/identify" "$S/sample3.jpg"
check_eq "strangers are not returning" 0 "$(jf '[.faces[] | select(.status == "returning")] | length')"

# multipart upload, another framing: still the same visitor
http POST "$URL/v1/recognize?camera=till-2" -H "Authorization: Bearer $KA" -F "image=@$PV_TMP/face0_b.jpg;type=image/jpeg"
check_eq "multipart recognize" 200 "$HTTP_STATUS"
check_eq "crop b: returning, same visitor" "returning $V0" "$(jf '"\(.faces[0].status) \(.faces[0].visitor)"')"

# ---- tenants: the same person has another, unlinkable ID at beta; gamma (isolated) does not match the shared gallery
post "$KB" "/v1/recognize" "$PV_TMP/face0_a.jpg"
check_eq "beta recognize" 200 "$HTTP_STATUS"
VB=$(jf '.faces[0].visitor')
check_eq "beta: the network recognises the person" returning "$(jf '.faces[0].status')"
check_match "beta: an id" '^vis_' "$VB"
[ "$VB" != "$V0" ] && pv_ok || pv_fail "beta got acme's visitor id"
check_eq "beta: its first visit" 1 "$(jf '.faces[0].visits')"
post "$KG" "/v1/recognize" "$PV_TMP/face0_a.jpg"
check_eq "isolated tenant: new (its own gallery only)" new "$(jf '.faces[0].status')"
VG=$(jf '.faces[0].visitor')
post "$KG" "/v1/recognize" "$PV_TMP/face0_b.jpg"
check_eq "isolated tenant: then returning" "returning $VG" "$(jf '"\(.faces[0].status) \(.faces[0].visitor)"')"

# ---- identify is read-only; detect gives faces and landmarks only
post "$KA" "/v1/identify" "$S/sample2.jpg"
check_eq "identify unseen" 200 "$HTTP_STATUS"
check_eq "identify: nobody known, nothing enrolled" true "$(jf '[.faces[] | (.status == "unenrolled" or .status == "low_quality") and .visitor == null] | all')"
N2=$(jf '.faces|length')
check_eq "identify: faces found" true "$([ "$N2" -ge 1 ] && echo true)"
post "$KA" "/v1/identify" "$S/sample2.jpg"
check_eq "identify again: still nobody (identify enrolled nothing)" true "$(jf '[.faces[] | .visitor == null] | all')"
post "$KA" "/v1/identify" "$PV_TMP/face0_b.jpg"
check_eq "identify a known face" "returning $V0" "$(jf '"\(.faces[0].status) \(.faces[0].visitor)"')"
check_eq "identify records no visit" null "$(jf '.faces[0].visits')"
post "$KA" "/v1/recognize" "$PV_TMP/sample2.png" image/png
check_eq "recognize png" 200 "$HTTP_STATUS"
check_eq "png: faces" "$N2" "$(jf '.faces|length')"
check_eq "png: format" png "$(jf .image.format)"
post "$KA" "/v1/detect?detector=ssd" "$S/sample3.jpg"
check_eq "detect" 200 "$HTTP_STATUS"
check_eq "detect: ssd faces" 3 "$(jf '.faces|length')"
check_eq "detect: 68 landmarks, no visitor" "68 null" "$(jf '"\(.faces[0].landmarks|length) \(.faces[0].visitor)"')"
post "$KA" "/v1/recognize?enroll=never" "$S/sample4.jpg"
check_eq "enroll=never: nobody enrolled" true "$(jf '[.faces[] | .status == "unenrolled" or .status == "low_quality"] | all')"

# ---- the visitor record, isolation and erasure
http GET "$URL/v1/visitors/$V0" -H "Authorization: Bearer $KA"
check_eq "visitor get" 200 "$HTTP_STATUS"
check_eq "visitor visits (identify did not count)" 3 "$(jf .visits)"
check_match "first seen" '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$' "$(jf .first_seen)"
check_eq "purchases null without PostgreSQL" "true null" "$(jf 'has("purchases")') $(jf .purchases)"
http GET "$URL/v1/visitors/$V0" -H "Authorization: Bearer $KB"
check_eq "beta cannot read acme's visitor" 404 "$HTTP_STATUS"
http DELETE "$URL/v1/visitors/$V0" -H "Authorization: Bearer $KB"
check_eq "beta cannot delete acme's visitor" 404 "$HTTP_STATUS"
http GET "$URL/v1/visitors/$V0" -H "Authorization: Bearer $KA"
check_eq "still there for acme" 200 "$HTTP_STATUS"
FORGED="${V0:0:10}$( [ "${V0:10:1}" = A ] && echo B || echo A )${V0:11}"
http GET "$URL/v1/visitors/$FORGED" -H "Authorization: Bearer $KA"
check_eq "forged id" 404 "$HTTP_STATUS"
http GET "$URL/v1/visitors/$V0" -H "Authorization: Bearer $K_RECOG"
check_eq "visitor get needs the analytics scope" 403 "$HTTP_STATUS"
http DELETE "$URL/v1/visitors/$V0" -H "Authorization: Bearer $K_RECOG"
check_eq "delete needs the erase scope" 403 "$HTTP_STATUS"
http DELETE "$URL/v1/visitors/$V0" -H "Authorization: Bearer $KA"
check_eq "acme erases its visitor" 200 "$HTTP_STATUS"
http GET "$URL/v1/visitors/$V0" -H "Authorization: Bearer $KA"
check_eq "erased visitor is gone" 404 "$HTTP_STATUS"
http DELETE "$URL/v1/visitors/$V0" -H "Authorization: Bearer $KA"
check_eq "erasing twice" 404 "$HTTP_STATUS"
http GET "$URL/v1/visitors/$VB" -H "Authorization: Bearer $KB"
check_eq "beta's visitor survives acme's erasure" 200 "$HTTP_STATUS"
# gamma (isolated) erases: no other tenant maps its identity, so it leaves the gallery
http DELETE "$URL/v1/visitors/$VG" -H "Authorization: Bearer $KG"
check_eq "gamma erases" 200 "$HTTP_STATUS"
post "$KG" "/v1/recognize" "$PV_TMP/face0_a.jpg"
check_eq "after erasure the isolated identity is gone: new again" new "$(jf '.faces[0].status')"
http GET "$URL/v1/visitors/" -H "Authorization: Bearer $KA"
check_eq "empty visitor id" 404 "$HTTP_STATUS"
http GET "$URL/v1/visitors/a/b" -H "Authorization: Bearer $KA"
check_eq "nested path" 404 "$HTTP_STATUS"

# ---- bad input: each a clear JSON error, and the service keeps answering
post "$KA" "/v1/recognize" /dev/null
check_eq "empty body" 422 "$HTTP_STATUS"
check_match "empty body message" '.' "$(jf .error.message)"
printf 'GIF89a definitely not a photo' > "$PV_TMP/fake.jpg"
post "$KA" "/v1/recognize" "$PV_TMP/fake.jpg"
check_eq "wrong magic" 422 "$HTTP_STATUS"
check_eq "wrong magic code" bad_image "$(jf .error.code)"
post "$KA" "/v1/recognize" "$PV_TMP/truncated.jpg"
check_eq "truncated jpeg" 422 "$HTTP_STATUS"
post "$KA" "/v1/recognize" "$S/sample1.jpg" text/plain
check_eq "text/plain" 415 "$HTTP_STATUS"
post "$KA" "/v1/recognize?colour=red" "$S/sample1.jpg"
check_eq "unknown parameter" 400 "$HTTP_STATUS"
post "$KA" "/v1/recognize?detector=yolo" "$S/sample1.jpg"
check_eq "bad detector" 422 "$HTTP_STATUS"
post "$KA" "/v1/recognize?ts=yesterday" "$S/sample1.jpg"
check_eq "bad ts" 422 "$HTTP_STATUS"
post "$KA" "/v1/recognize?enroll=maybe" "$S/sample1.jpg"
check_eq "bad enroll" 422 "$HTTP_STATUS"
http POST "$URL/v1/recognize" -H "Authorization: Bearer $KA" -F "photo=@$S/sample1.jpg;type=image/jpeg"
check_eq "multipart without an image field" 422 "$HTTP_STATUS"
head -c 5000000 /dev/zero > "$PV_TMP/big.bin"
post "$KA" "/v1/recognize" "$PV_TMP/big.bin"
check_eq "body over --max-body" 413 "$HTTP_STATUS"
post "$K_EVENTS" "/v1/recognize" "$S/sample1.jpg"
check_eq "recognize needs the recognize scope" 403 "$HTTP_STATUS"
http POST "$URL/v1/recognize" --data-binary "@$S/sample1.jpg"
check_eq "no key" 401 "$HTTP_STATUS"
http GET "$URL/v1/recognize" -H "Authorization: Bearer $KA"
check_eq "GET on recognize" 405 "$HTTP_STATUS"
post "$KA" "/v1/recognize?ts=2026-01-02T03:04:05Z" "$PV_TMP/face0_b.jpg"
check_eq "still serving after bad input" 200 "$HTTP_STATUS"
check_eq "erased visitor comes back as a fresh record" 1 "$(jf '.faces[0].visits')"
http GET "$URL/v1/visitors/$(jf '.faces[0].visitor')" -H "Authorization: Bearer $KA"
check_eq "ts sets the visit time" "2026-01-02T03:04:05.000Z" "$(jf .first_seen)"

# ---- per-key rate limit and per-tenant monthly quota (privid-admin tenant update, applied at once)
admin tenant update acme --rate 60 --burst 2 >/dev/null || pv_fail "tenant update --rate"
codes=""
for i in 1 2 3 4; do http GET "$URL/v1/whoami" -H "Authorization: Bearer $KA"; codes="$codes$HTTP_STATUS "; done
check_eq "burst of 2, then 429" "200 200 429 429 " "$codes"
check_eq "429 code" rate_limited "$(jf .error.code)"
check_match "429 says when" '^[1-9][0-9]*$' "$(header retry-after)"
http GET "$URL/v1/whoami" -H "Authorization: Bearer $KB"
check_eq "another tenant's key is not limited" 200 "$HTTP_STATUS"
admin tenant update acme --rate 0 >/dev/null || pv_fail "tenant update --rate 0"
http GET "$URL/v1/whoami" -H "Authorization: Bearer $KA"
check_eq "limit lifted" 200 "$HTTP_STATUS"
# gamma has sent 3 images this month: a quota of 4 allows one more
admin tenant update gamma --quota 4 >/dev/null || pv_fail "tenant update --quota"
post "$KG" "/v1/detect" "$PV_TMP/face0_b.jpg"
check_eq "within quota" 200 "$HTTP_STATUS"
post "$KG" "/v1/identify" "$PV_TMP/face0_b.jpg"
check_eq "quota used up" 429 "$HTTP_STATUS"
check_eq "quota code" quota_exceeded "$(jf .error.code)"
check_match "quota retry until next month" '^[1-9][0-9]*$' "$(header retry-after)"
admin tenant update gamma --quota 0 >/dev/null
post "$KG" "/v1/detect" "$PV_TMP/face0_b.jpg"
check_eq "quota lifted" 200 "$HTTP_STATUS"

# ---- restart: visitors and identities persist
stop_pid "$GW_PID"; check_eq "clean shutdown" 0 "$?"
start_gateway again --threads 1 --workers 1 --data-dir "$data" --models "$MODELS"
URL=$GW_URL
post "$KB" "/v1/recognize" "$PV_TMP/face0_b.jpg"
check_eq "after restart: beta's visitor is returning" "returning $VB 2" "$(jf '"\(.faces[0].status) \(.faces[0].visitor) \(.faces[0].visits)"')"

# ---- remote shards: two privid-shard processes behind the gateway; one down -> degraded, nothing enrolled
if [ -n "$PV_SHARD" ]; then
  mkdir -p "$PV_TMP/s0" "$PV_TMP/s1"
  start_shard s0 "$PV_TMP/s0"; S0_PID=$SH_PID; S0=$SH_ADDR
  start_shard s1 "$PV_TMP/s1"; S1_PID=$SH_PID; S1=$SH_ADDR
  stop_pid "$GW_PID"
  rdata="$PV_TMP/rdata"; cp -r "$data" "$rdata"; rm -rf "$rdata/gallery"
  start_gateway remote --threads 1 --workers 2 --data-dir "$rdata" --models "$MODELS" --shard "http://$S0" \
    --shard "http://$S1" --shard-timeout-ms 500
  URL=$GW_URL
  post "$KA" "/v1/recognize" "$S/sample1.jpg"
  check_eq "remote shards: three new" "new,new,new" "$(jf '[.faces[].status]|join(",")')"
  post "$KA" "/v1/recognize" "$PV_TMP/face0_a.jpg"
  check_eq "remote shards: returning across shards" returning "$(jf '.faces[0].status')"
  RV=$(jf '.faces[0].visitor')
  kill -KILL "$S1_PID"; wait "$S1_PID" 2>/dev/null
  post "$KA" "/v1/recognize" "$S/sample6.jpg"
  check_eq "one shard down: answered" 200 "$HTTP_STATUS"
  check_eq "one shard down: degraded" true "$(jf .degraded)"
  check_eq "one shard down: nothing enrolled" true "$(jf '[.faces[] | .status != "new"] | all')"
  start_shard s1b "$PV_TMP/s1"; S1_PID=$SH_PID
  stop_pid "$GW_PID"
  start_gateway remote2 --threads 1 --workers 2 --data-dir "$rdata" --models "$MODELS" --shard "http://$S0" \
    --shard "http://$SH_ADDR"
  URL=$GW_URL
  post "$KA" "/v1/recognize" "$PV_TMP/face0_b.jpg"
  check_eq "shard back: full answers, same visitor" "false returning $RV" \
    "$(jf '"\(.degraded) \(.faces[0].status) \(.faces[0].visitor)"')"
  stop_pid "$GW_PID"
  stop_pid "$S0_PID"; check_eq "shard 0 clean exit" 0 "$?"
  stop_pid "$S1_PID"; check_eq "shard 1 clean exit" 0 "$?"
else
  stop_pid "$GW_PID"
fi

# ---- overload: one worker, one queue slot: some of 8 concurrent requests get 503 + Retry-After
start_gateway busy --threads 1 --workers 1 --queue-max 1 --data-dir "$data" --models "$MODELS"
URL=$GW_URL
busy=()
for i in $(seq 1 8); do
  curl -s -o /dev/null -D "$PV_TMP/busy.$i.h" -w '%{http_code}\n' -H "Authorization: Bearer $KA" \
    -H 'Content-Type: image/jpeg' --data-binary "@$S/sample5.jpg" "$URL/v1/identify" > "$PV_TMP/busy.$i" &
  busy+=($!)
done
wait "${busy[@]}"
codes=$(cat "$PV_TMP"/busy.[0-9] | sort | uniq -c | tr -s ' ' | tr '\n' ';')
check_match "overload sheds with 503" '503' "$codes"
check_match "and serves the rest" '200' "$codes"
check_match "503 says when to retry" '[Rr]etry-[Aa]fter: 1' "$(cat "$PV_TMP"/busy.*.h)"
http GET "$URL/metrics"
check_match "shed requests are counted" 'privid_shed_total [1-9]' "$HTTP_BODY"
check_match "queue depth is exported" 'privid_queue_depth [0-9]' "$HTTP_BODY"
stop_pid "$GW_PID"; check_eq "clean shutdown after overload" 0 "$?"

# ---- configuration errors: a clear message and a non-zero exit, never a half-started gateway
out=$("$PV_GATEWAY" --listen 127.0.0.1:0 --data-dir "$PV_TMP/cfg" --models "$PV_TMP/nowhere" 2>&1); rc=$?
check_eq "missing models exit" 1 "$rc"
check_match "missing models message" 'cannot load the face networks.*hint=' "$out"
out=$("$PV_GATEWAY" --workers -1 2>&1); rc=$?
check_eq "bad --workers exit" 2 "$rc"
check_match "bad --workers message" 'workers must be an integer' "$out"
out=$("$PV_GATEWAY" --queue-max 0 2>&1); rc=$?
check_eq "bad --queue-max exit" 2 "$rc"
out=$("$PV_GATEWAY" --local-shards 65 2>&1); rc=$?
check_eq "bad --local-shards exit" 2 "$rc"
out=$("$PV_GATEWAY" --listen 127.0.0.1:0 --data-dir "$PV_TMP/cfg" --shard 'not a url' 2>&1); rc=$?
check_eq "bad --shard exit" 1 "$rc"
check_match "bad --shard message" 'bad remote shard list' "$out"
"$PV_ADMIN" --data-dir "$PV_TMP/cfg" tenant create off >/dev/null || pv_fail "tenant create off"
K_OFF=$("$PV_ADMIN" --data-dir "$PV_TMP/cfg" key create off 2>/dev/null)
start_gateway off --threads 1 --data-dir "$PV_TMP/cfg" --models off
URL=$GW_URL
post "$K_OFF" "/v1/detect" "$S/sample1.jpg"
check_eq "recognition off: 503, not a crash" "503 unavailable" "$HTTP_STATUS $(jf .error.code)"
stop_pid "$GW_PID"

# ---- no image ever reaches the disk: no JPEG/PNG/Exif signature in any data directory
hits=$(grep -rlaE 'JFIF|Exif|IHDR' "$data" "$PV_TMP/rdata" "$PV_TMP/s0" "$PV_TMP/s1" 2>/dev/null | tr '\n' ' ')
check_eq "no image bytes in the data directories" "" "$hits"

pv_finish
