#!/usr/bin/env bash
# The API reference (gateway/openapi.json) is true:
# - its structure (openapi_check lint), and the gateway's route table
#   (privid-gateway --routes) against it both ways, with scopes; broken
#   copies of the document are caught (so the checks can fail);
# - GET /openapi.json serves exactly the document, public and cacheable (304);
# - over real HTTP every documented method+path is routed (never the
#   route-not-found 404 or 405) and undocumented ones are not;
# - real answers of a gateway with the real networks and PostgreSQL
#   (recognition of a sample photo, whoami, visitors, events, every report
#   over a seeded history, and the error statuses 400/401/403/404/405/413/
#   415/422) have a documented status and media type and validate against
#   the documented schema.
#   test_openapi.sh PRIVID_ADMIN PRIVID_GATEWAY OPENAPI_CHECK DOC MIGRATIONS   (env PRIVID_TEST_PG, PRIVID_MODELS)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
CHECK=$3
DOC=$4
MIG=$5
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
S=$MODELS/demo
[ -f "$S/sample1.jpg" ] || { echo "sample photos missing under $S (run deploy/setup.sh)" >&2; exit 1; }

# ---- the document alone, and against the route table
"$CHECK" lint "$DOC" && pv_ok || pv_fail "lint of $DOC"
"$PV_GATEWAY" --routes > "$PV_TMP/routes.json" && pv_ok || pv_fail "privid-gateway --routes"
check_match "route table lists recognize" '"/v1/recognize"' "$(cat "$PV_TMP/routes.json")"
"$CHECK" routes "$DOC" "$PV_TMP/routes.json" && pv_ok || pv_fail "routes vs document"
# broken copies must be refused: a dangling $ref, a missing security, an undocumented route,
# a documented route the gateway lacks, a wrong scope, another OpenAPI version
broken() { # NAME JQ-FILTER COMMAND
  jq "$2" "$DOC" > "$PV_TMP/broken.json"
  if "$CHECK" "$3" "$PV_TMP/broken.json" ${4:+"$4"} 2>/dev/null; then pv_fail "broken document passed: $1"; else pv_ok; fi
}
broken "dangling \$ref" '.paths["/v1/whoami"].get.responses["200"].content["application/json"].schema["$ref"] = "#/components/schemas/Nope"' lint
broken "no security" 'del(.paths["/v1/events"].post.security)' lint
broken "no responses" '.paths["/healthz"].get.responses = {}' lint
broken "openapi 3.0" '.openapi = "3.0.3"' lint
broken "undeclared path parameter" 'del(.paths["/v1/visitors/{id}"].parameters)' lint
broken "route missing" 'del(.paths["/v1/analytics/retention"])' routes "$PV_TMP/routes.json"
broken "extra route" '.paths["/v1/nope"] = .paths["/v1/whoami"]' routes "$PV_TMP/routes.json"
broken "wrong scope" '.paths["/v1/visitors/{id}"].delete.security = [{"bearerAuth":["analytics"]}]' routes "$PV_TMP/routes.json"
broken "public made private" '.paths["/metrics"].get.security = [{"bearerAuth":[]}]' routes "$PV_TMP/routes.json"

# ---- a database, tenants, keys and a gateway with everything on
pv_pg_db privid_oa
data="$PV_TMP/data"
admin() { "$PV_ADMIN" --data-dir "$data" "$@"; }
admin tenant create acme >/dev/null || pv_fail "tenant create"
K=$(admin key create acme | head -1)
KR=$(admin key create acme --scopes recognize | head -1)
admin migrate --pg "$DSN" --migrations "$MIG" >/dev/null || pv_fail "migrate"
TA=$(sql "SELECT tenant_id FROM tenants WHERE name = 'acme'")
# a history whose reports show figures (not only suppressed cells): 40 visitors, 3 visits each, 10 buy
sql "SELECT analytics_ensure_partitions('2026-10-01', 2)" >/dev/null
sql "INSERT INTO visits (tenant_id, ts, event_id, visitor, location, status)
     SELECT $TA, timestamptz '2026-10-05 10:00Z' + d * interval '1 day', 'a' || v || '-' || d, 'va' || v, 'north',
            CASE WHEN d = 0 THEN 'new' ELSE 'returning' END
     FROM generate_series(1, 40) v, unnest(ARRAY[0, 1, 8]) d;
     INSERT INTO visits (tenant_id, ts, event_id, visitor, location, status)
     SELECT $TA, timestamptz '2026-10-13 10:00Z', 'r' || v, 'vr' || v, 'north', 'new' FROM generate_series(1, 9) v;
     INSERT INTO events (tenant_id, ts, event_id, visitor, type, location, amount_minor, currency)
     SELECT $TA, timestamptz '2026-10-05 10:05Z', 'p' || v, 'va' || v, 'purchase', 'north', 500, 'EUR'
     FROM generate_series(1, 10) v" >/dev/null || pv_fail "seed the history"

start_gateway main --threads 2 --workers 2 --data-dir "$data" --models "$MODELS" --pg "$DSN" --max-body 1048576
URL=$GW_URL

# vr METHOD PATH: the last answer is documented for METHOD PATH and fits its schema
vr() {
  local ct
  ct=$(header content-type)
  if "$CHECK" response "$DOC" "$1" "$2" "$HTTP_STATUS" "$ct" "$PV_TMP/http.$$.body"; then pv_ok
  else pv_fail "$1 $2 answered $HTTP_STATUS ($ct): not as documented: $(printf '%.300s' "$HTTP_BODY")"; fi
}
# call METHOD PATH EXPECTED-STATUS [curl args...]: request, check the status, validate the answer
call() {
  local m=$1 p=$2 want=$3; shift 3
  http "$m" "$URL$p" "$@"
  check_eq "$m $p" "$want" "$HTTP_STATUS"
  vr "$m" "$p"
}
auth() { printf 'Authorization: Bearer %s' "${1:-$K}"; }

# ---- /openapi.json is the document, public, cacheable
http GET "$URL/openapi.json"
check_eq "GET /openapi.json" 200 "$HTTP_STATUS"
check_eq "served document" "$(jq -cS . "$DOC")" "$(printf '%s' "$HTTP_BODY" | jq -cS .)"
check_eq "content type" "application/json" "$(header content-type)"
check_match "cacheable" 'max-age=[0-9]+' "$(header cache-control)"
ETAG=$(header etag)
check_match "etag" '^"[0-9a-f]+"$' "$ETAG"
call GET /openapi.json 304 -H "If-None-Match: $ETAG"
call GET /openapi.json 200 -H 'If-None-Match: "0000"'

# ---- every documented method+path is routed; undocumented ones are not
while read -r method path; do
  concrete=${path//\{id\}/vis_AAAAAAAAAAAAAAAAAAAAAA}
  http "$method" "$URL$concrete"
  code=$(jf '.error.code')
  if [ "$HTTP_STATUS" = 405 ] || { [ "$HTTP_STATUS" = 404 ] && [ "$code" = not_found ] && [ "$path" = "$concrete" ]; }; then
    pv_fail "documented $method $path is not routed: $HTTP_STATUS $HTTP_BODY"
  else pv_ok; fi
  vr "$method" "$concrete"
  if [ "$method" = GET ]; then
    st=$(curl -sS -o /dev/null -I --max-time 10 -w '%{http_code}' "$URL$concrete")
    [ "$st" != 405 ] && [ "$st" != 404 ] && pv_ok || pv_fail "HEAD $path: $st"
  fi
done < <(jq -r '.paths | to_entries[] | .key as $p | .value | keys[] | select(. == "get" or . == "post" or . == "delete" or . == "put" or . == "patch") | "\(ascii_upcase) \($p)"' "$DOC")
for p in /v1/nope /v1 /v1/visitors /openapi.yaml /v2/recognize; do
  http GET "$URL$p" -H "$(auth)"
  check_eq "undocumented GET $p" "404 not_found" "$HTTP_STATUS $(jf .error.code)"
  "$CHECK" schema "$DOC" '#/components/schemas/Error' "$PV_TMP/http.$$.body" && pv_ok || pv_fail "404 body of $p"
done
http GET "$URL/v1/analytics/nope?from=2026-10-01T00:00:00Z&to=2026-10-02T00:00:00Z" -H "$(auth)"
check_eq "undocumented report" "404 not_found" "$HTTP_STATUS $(jf .error.code)"
for mp in "PUT /v1/events" "GET /v1/recognize" "POST /v1/whoami" "PATCH /v1/visitors/x" "DELETE /healthz" "POST /openapi.json"; do
  http ${mp% *} "$URL${mp#* }" -H "$(auth)"
  check_eq "undocumented $mp" "405 method_not_allowed" "$HTTP_STATUS $(jf .error.code)"
  "$CHECK" schema "$DOC" '#/components/schemas/Error' "$PV_TMP/http.$$.body" && pv_ok || pv_fail "405 body of $mp"
done

# ---- real answers
call GET /healthz 200
call GET /readyz 200
call GET /metrics 200
call GET /v1/whoami 200 -H "$(auth)"
call GET /v1/whoami 401
call GET /v1/whoami 401 -H "Authorization: Bearer pk_0000000000000000_nope"
call POST "/v1/recognize?location=front-door&camera=cam-1" 200 -H "$(auth)" -H 'Content-Type: image/jpeg' --data-binary "@$S/sample1.jpg"
check_eq "faces found" 3 "$(jf '.faces | length')"
# the validator is no rubber stamp: the same answer, altered, is refused
jf 'del(.degraded)' > "$PV_TMP/altered.json"
"$CHECK" response "$DOC" POST /v1/recognize 200 application/json "$PV_TMP/altered.json" 2>/dev/null && pv_fail "missing member passed" || pv_ok
jf '.faces[0].status = "maybe"' > "$PV_TMP/altered.json"
"$CHECK" response "$DOC" POST /v1/recognize 200 application/json "$PV_TMP/altered.json" 2>/dev/null && pv_fail "bad enum passed" || pv_ok
"$CHECK" response "$DOC" POST /v1/recognize 418 application/json "$PV_TMP/http.$$.body" 2>/dev/null && pv_fail "undocumented status passed" || pv_ok
V=$(jf '.faces[0].visitor')
call POST /v1/recognize 200 -H "$(auth)" -F "image=@$S/sample1.jpg"
check_eq "returning" returning "$(jf '.faces[0].status')"
call POST "/v1/recognize?enroll=never&detector=ssd" 200 -H "$(auth)" -H 'Content-Type: image/jpeg' --data-binary "@$S/sample2.jpg"
call POST /v1/identify 200 -H "$(auth)" -H 'Content-Type: image/jpeg' --data-binary "@$S/sample1.jpg"
call POST /v1/detect 200 -H "$(auth)" -H 'Content-Type: image/jpeg' --data-binary "@$S/sample1.jpg"
check_eq "landmarks" 68 "$(jf '.faces[0].landmarks | length')"
call POST "/v1/recognize?nope=1" 400 -H "$(auth)" -H 'Content-Type: image/jpeg' --data-binary "@$S/sample1.jpg"
call POST /v1/recognize 415 -H "$(auth)" -H 'Content-Type: text/plain' --data-binary "@$S/sample1.jpg"
call POST /v1/recognize 422 -H "$(auth)" -H 'Content-Type: image/jpeg' --data-binary 'not an image'
check_eq "bad image code" bad_image "$(jf .error.code)"
call POST "/v1/recognize?enroll=maybe" 422 -H "$(auth)" -H 'Content-Type: image/jpeg' --data-binary "@$S/sample1.jpg"
head -c 1100000 /dev/zero > "$PV_TMP/big.bin"
call POST /v1/recognize 413 -H "$(auth)" -H 'Content-Type: image/jpeg' --data-binary "@$PV_TMP/big.bin"
call POST /v1/detect 403 -H "$(auth "$(admin key create acme --scopes analytics | head -1)")" -H 'Content-Type: image/jpeg' --data-binary "@$S/sample1.jpg"

call GET "/v1/visitors/$V" 200 -H "$(auth)"
call GET /v1/visitors/vis_AAAAAAAAAAAAAAAAAAAAAA 404 -H "$(auth)"
call GET "/v1/visitors/$V" 403 -H "$(auth "$KR")"

NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
printf '{"events":[{"event_id":"oa-1","visitor":"%s","type":"purchase","ts":"%s","location":"front-door","amount_minor":1250,"currency":"EUR","attrs":{"sku":"42"}}]}' "$V" "$NOW" > "$PV_TMP/ev.json"
call POST /v1/events 200 -H "$(auth)" -H 'Content-Type: application/json' --data-binary "@$PV_TMP/ev.json"
printf '{"events":[{"event_id":"oa-2","visitor":"%s","type":"visit_note","ts":"%s"},{"event_id":"oa-3","visitor":"%s","type":"purchase","ts":"%s"}]}' "$V" "$NOW" "$V" "$NOW" > "$PV_TMP/ev2.json"
call POST /v1/events 207 -H "$(auth)" -H 'Content-Type: application/json' --data-binary "@$PV_TMP/ev2.json"
check_eq "207 reason" "amount_minor: required for a purchase" "$(jf '.results[1].reason')"
call POST /v1/events 400 -H "$(auth)" -H 'Content-Type: application/json' --data-binary '{"events":['
call POST /v1/events 422 -H "$(auth)" -H 'Content-Type: application/json' --data-binary '{"events":[]}'
call POST /v1/events 415 -H "$(auth)" -H 'Content-Type: text/plain' --data-binary "@$PV_TMP/ev.json"
jq -nc --arg v "$V" --arg t "$NOW" '{events: [range(501) | {event_id: "e\(.)", visitor: $v, type: "x", ts: $t}]}' > "$PV_TMP/ev501.json"
call POST /v1/events 413 -H "$(auth)" -H 'Content-Type: application/json' --data-binary "@$PV_TMP/ev501.json"
check_eq "413 from the handler is JSON" too_large "$(jf .error.code)"
call POST /v1/events 413 -H "$(auth)" -H 'Content-Type: application/json' --data-binary "@$PV_TMP/big.bin"

R="from=2026-10-05T00:00:00Z&to=2026-10-26T00:00:00Z"
for rep in summary timeseries retention frequency conversion; do
  call GET "/v1/analytics/$rep?$R" 200 -H "$(auth)"
  call GET "/v1/analytics/$rep?$R&location=nowhere&tz=Europe/Paris&k=7" 200 -H "$(auth)"
done
call GET "/v1/analytics/timeseries?$R&bucket=week" 200 -H "$(auth)"
check_eq "summary shows figures" "129 49" "$(http GET "$URL/v1/analytics/summary?$R" -H "$(auth)"; jf '"\(.data.visits) \(.data.visitors)"')"
call GET "/v1/analytics/conversion?$R" 200 -H "$(auth)"
check_eq "conversion revenue" "EUR 5000" "$(jf '.data.all.revenue[0] | "\(.currency) \(.amount_minor)"')"
call GET /v1/analytics/summary 400 -H "$(auth)"
call GET "/v1/analytics/summary?$R&tz=Mars/Olympus" 422 -H "$(auth)"
call GET "/v1/analytics/summary?from=2026-10-05T00:00:00Z&to=2026-10-01T00:00:00Z" 422 -H "$(auth)"
call GET "/v1/analytics/frequency?$R" 403 -H "$(auth "$KR")"

call DELETE "/v1/visitors/$V" 200 -H "$(auth)"
call DELETE "/v1/visitors/$V" 404 -H "$(auth)"
call DELETE "/v1/visitors/$V" 403 -H "$(auth "$KR")"

# limits: a rate of 1 per minute (429 rate_limited), a quota of one image (429 quota_exceeded), a revoked key
admin tenant create slow >/dev/null && admin tenant update slow --quota 1 >/dev/null || pv_fail "tenant slow"
KS=$(admin key create slow | head -1)
call POST /v1/detect 200 -H "$(auth "$KS")" -H 'Content-Type: image/jpeg' --data-binary "@$S/sample1.jpg"
call POST /v1/detect 429 -H "$(auth "$KS")" -H 'Content-Type: image/jpeg' --data-binary "@$S/sample1.jpg"
check_eq "quota code" quota_exceeded "$(jf .error.code)"
admin tenant update slow --rate 1 --burst 1 >/dev/null || pv_fail "rate 1"
call GET /v1/whoami 200 -H "$(auth "$KS")"
call GET /v1/whoami 429 -H "$(auth "$KS")"
check_eq "rate code" rate_limited "$(jf .error.code)"
admin key revoke "$(printf '%s' "$KS" | cut -d_ -f2)" >/dev/null || pv_fail "revoke"
call GET /v1/whoami 401 -H "$(auth "$KS")"
check_eq "revoked code" revoked_key "$(jf .error.code)"

# without --pg the reports are 503 with Retry-After
stop_pid "$GW_PID"
start_gateway nopg --threads 1 --workers 1 --data-dir "$data" --models off
URL=$GW_URL
call GET "/v1/analytics/summary?$R" 503 -H "$(auth)"
check_match "Retry-After" '^[0-9]+$' "$(header retry-after)"
call POST /v1/recognize 503 -H "$(auth)" -H 'Content-Type: image/jpeg' --data-binary "@$S/sample1.jpg"
pv_finish
