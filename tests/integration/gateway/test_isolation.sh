#!/usr/bin/env bash
# Tenant isolation matrix through a real privid-gateway (real networks on the
# sample photos, real LMDB, a freshly migrated PostgreSQL database):
# tenants acme (network), bravo (network), iso (isolated) and empty (no
# data), keys with each single scope and with all scopes. For every route
# of the gateway (the ROUTES table below; a route the gateway serves without
# a row fails the test, read from /metrics and from `privid-gateway --routes`
# when it exists) and every key: no key / malformed key / unknown key -> 401,
# a key without the route's scope -> 403, and with the scope, the other
# tenants' keys on acme's resources (visitor GET/DELETE, events for acme's
# visitors, reports, recognitions) never see or touch them. The answer for
# "exists in another tenant" is byte-identical (status, content type, body)
# to "does not exist at all". Afterwards acme's data is intact, in the API,
# in LMDB and in PostgreSQL.
#   test_isolation.sh PRIVID_ADMIN PRIVID_GATEWAY MIGRATIONS_DIR   (env PRIVID_TEST_PG, PRIVID_MODELS)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
MIG=$3
[ -n "${PRIVID_TEST_PG:-}" ] || { echo "PRIVID_TEST_PG is not set: run through tests/run.sh" >&2; exit 1; }
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
S=$MODELS/demo
[ -f "$S/sample1.jpg" ] || { echo "sample photos missing under $S (run deploy/setup.sh)" >&2; exit 1; }
command -v mdb_dump >/dev/null || { echo "mdb_dump (lmdb-utils) is needed" >&2; exit 1; }

# ---- the route table: NAME METHOD PATH SCOPE (public: no key; any: any valid key), in the order
# the matrix runs them (reports before the other tenants' recognitions give them data of their own)
ROUTES="
healthz GET /healthz public
readyz GET /readyz public
metrics GET /metrics public
openapi GET /openapi.json public
whoami GET /v1/whoami any
analytics GET /v1/analytics/{report} analytics
visitor_get GET /v1/visitors/{id} analytics
visitor_delete DELETE /v1/visitors/{id} erase
events POST /v1/events events
recognize POST /v1/recognize recognize
identify POST /v1/identify recognize
detect POST /v1/detect recognize
"
REPORTS="summary timeseries retention frequency conversion"

pv_throwaway_db privid_iso
sql() { psql "$DSN" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

data="$PV_TMP/data"
admin() { "$PV_ADMIN" --data-dir "$data" "$@" 2>/dev/null; }
admin tenant create acme >/dev/null || pv_fail "tenant create acme"
admin tenant create bravo >/dev/null || pv_fail "tenant create bravo"
admin tenant create iso --mode isolated >/dev/null || pv_fail "tenant create iso"
admin tenant create empty >/dev/null || pv_fail "tenant create empty"
declare -A KEY KTENANT KSCOPES
for t in acme bravo iso; do
  for sc in all recognize events analytics erase; do
    KEY[$t.$sc]=$(admin key create $t --scopes $sc)
    KTENANT[$t.$sc]=$t
    KSCOPES[$t.$sc]=$([ $sc = all ] && echo "recognize events analytics erase" || echo $sc)
  done
done
KEMPTY=$(admin key create empty --scopes analytics)
admin migrate --pg "$DSN" --migrations "$MIG" >/dev/null || pv_fail "migrate"
TA=$(sql "SELECT tenant_id FROM tenants WHERE name = 'acme'")
# k = 2 so that acme's few real visitors show in its own reports (else the test could not fail)
sql "INSERT INTO tenant_report_settings (tenant_id, k) SELECT tenant_id, 2 FROM tenants" || pv_fail "report settings"

# --auth-fail-max 0: this test makes many failed authentications on purpose
start_gateway main --threads 2 --workers 2 --data-dir "$data" --models "$MODELS" --pg "$DSN" --auth-fail-max 0
URL=$GW_URL

# ---- every route the gateway serves has a row
declare -A ROW
while read -r name method path scope; do
  [ -n "$name" ] && ROW[$name]="$method $path $scope"
done <<<"$ROUTES"
http GET "$URL/metrics"
served=$(printf '%s\n' "$HTTP_BODY" | sed -n 's/^privid_request_seconds_count{route="\([^"]*\)".*/\1/p' | grep -vx none | sort -u)
[ -n "$served" ] && pv_ok || pv_fail "no route names in /metrics"
for r in $served; do
  [ -n "${ROW[$r]:-}" ] && pv_ok || pv_fail "route '$r' (from /metrics) has no row in the isolation matrix"
done
for r in "${!ROW[@]}"; do
  grep -qx "$r" <<<"$served" && pv_ok || pv_fail "row '$r' names a route the gateway does not serve"
done
if routes=$("$PV_GATEWAY" --routes 2>/dev/null) && [ -n "$routes" ]; then
  while read -r method path scope; do
    tpath=$(sed -E 's#^/v1/analytics/[a-z]+$#/v1/analytics/{report}#; s#\{[a-z_]+\}$#{id}#' <<<"$path")
    [ "$tpath" = "/v1/analytics/{id}" ] && tpath="/v1/analytics/{report}"
    row=$(grep -E "^[a-z_]+ $method $(sed 's/[{}.]/\\&/g' <<<"$tpath") " <<<"$ROUTES")
    [ -n "$row" ] && pv_ok || pv_fail "route $method $path (from --routes) has no row in the isolation matrix"
    [ -z "$row" ] || check_eq "$method $path: the row's scope is the gateway's" "$scope" "${row##* }"
  done < <(jq -r '.[] | "\(.method) \(.path) \(if .auth then .scope // "any" else "public" end)"' <<<"$routes")
  rep=$(jq -r '[.[] | select(.path | startswith("/v1/analytics/")) | .path | sub("^/v1/analytics/"; "")] | join(" ")' <<<"$routes")
  [ -n "$rep" ] && REPORTS=$rep
fi

# ---- acme's data: visitors from real recognitions, a business event, two visitors to erase later
recog() { # KEY IMAGE [route] -> HTTP_*
  http POST "$URL/v1/${3:-recognize}?location=paris-1" -H "Authorization: Bearer $1" -H "Content-Type: image/jpeg" \
    --data-binary "@$2"
}
recog "${KEY[acme.all]}" "$S/sample1.jpg"
check_eq "acme recognizes sample1" 200 "$HTTP_STATUS"
VA=$(jf '.faces[0].visitor')
ACME_IDS=$(jf '[.faces[].visitor]|join(" ")')
check_match "acme visitor" '^vis_' "$VA"
# two visitors acme will erase itself: new faces of other photos (never one of sample1's people)
SACRIFICE=()
for img in sample2 sample3 sample5 sample6; do
  recog "${KEY[acme.recognize]}" "$S/$img.jpg"
  check_eq "acme recognizes $img" 200 "$HTTP_STATUS"
  for v in $(jf '[.faces[]|select(.status=="new")|.visitor]|join(" ")'); do
    grep -qw -- "$v" <<<"$ACME_IDS" || SACRIFICE+=("$v")
  done
  ACME_IDS="$ACME_IDS $(jf '[.faces[].visitor // empty]|join(" ")')"
done
[ "${#SACRIFICE[@]}" -ge 2 ] && pv_ok || pv_fail "fewer than two new visitors in sample2,3,5,6"
SACRIFICE=("${SACRIFICE[@]:0:2}")
ERASED=("${SACRIFICE[@]}")
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
printf '{"events":[{"event_id":"acme-buy-1","visitor":"%s","type":"purchase","ts":"%s","amount_minor":500,"currency":"EUR"}]}' \
  "$VA" "$NOW" > "$PV_TMP/acme-event.json"
http POST "$URL/v1/events" -H "Authorization: Bearer ${KEY[acme.events]}" -H "Content-Type: application/json" \
  --data-binary "@$PV_TMP/acme-event.json"
check_eq "acme posts an event" 200 "$HTTP_STATUS"
http GET "$URL/v1/visitors/$VA" -H "Authorization: Bearer ${KEY[acme.analytics]}"
check_eq "acme reads its visitor" 200 "$HTTP_STATUS"
BEFORE=$(jf '"\(.first_seen) \(.visits)"')
pg_rows() { sql "SELECT (SELECT count(*) FROM visits WHERE tenant_id = $TA AND visitor = '$VA') || ' ' ||
                        (SELECT count(*) FROM events WHERE tenant_id = $TA AND visitor = '$VA')"; }
for i in $(seq 1 100); do [ "$(pg_rows)" = "1 1" ] && break; sleep 0.1; done
check_eq "acme's visit and event reached PostgreSQL" "1 1" "$(pg_rows)"
in_lmdb() { mdb_dump -p -s visitor_ids "$data" | grep -c -- "$1"; }
check_eq "acme's visitor in LMDB" 1 "$(in_lmdb "$VA")"

# ---- the matrix
FAKE="vis_$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | head -c 22)"
MALFORMED_KEY="pvk_not-a-key"
UNKNOWN_KEY="pvk_0000000000000000_${KEY[acme.all]:21}"
BODY_EV="$PV_TMP/ev.json"
# send ROUTE KEY(or "") TARGET: one request of the route; TARGET is a visitor ID (visitor routes, events)
# or a report name (analytics); an image route sends sample4
n_event=0
send() {
  local route=$1 key=$2 target=${3:-} auth=()
  [ -n "$key" ] && auth=(-H "Authorization: Bearer $key")
  case $route in
    recognize | identify | detect) recog "$key" "$S/sample4.jpg" "$route" ;;
    visitor_get) http GET "$URL/v1/visitors/$target" "${auth[@]}" ;;
    visitor_delete) http DELETE "$URL/v1/visitors/$target" "${auth[@]}" ;;
    events)
      n_event=$((n_event + 1))
      printf '{"events":[{"event_id":"m-%d","visitor":"%s","type":"purchase","ts":"%s","amount_minor":1,"currency":"EUR"}]}' \
        "$n_event" "$target" "$NOW" > "$BODY_EV"
      http POST "$URL/v1/events" "${auth[@]}" -H "Content-Type: application/json" --data-binary "@$BODY_EV" ;;
    analytics) http GET "$URL/v1/analytics/$target?from=$(date -u -d '-1 day' +%Y-%m-%d)T00:00:00Z&to=$(date -u -d '+1 day' +%Y-%m-%d)T00:00:00Z" "${auth[@]}" ;;
    *) local p=${ROW[$route]#* }; p=${p%% *}; http "${ROW[$route]%% *}" "$URL$p" "${auth[@]}" ;;
  esac
}
# the whole answer but the request id: status, content type, challenge, body
sig() { printf '%s|%s|%s|%s' "$HTTP_STATUS" "$(header content-type)" "$(header www-authenticate)" "$HTTP_BODY"; }
# same_as WHAT SIG1: the last answer must be byte-identical to SIG1
same_as() { local s; s=$(sig); [ "$s" == "$2" ] && pv_ok || pv_fail "$1: answers differ: [$2] vs [$s]"; }
targets_for() { case $1 in analytics) echo "$REPORTS" ;; visitor_get | visitor_delete | events) echo "$VA" ;; *) echo - ;; esac; }

VA_VISITS=0 # acme's own recognitions in the matrix that saw its visitor again
for r in $(awk 'NF {print $1}' <<<"$ROUTES"); do
  read -r method path scope <<<"${ROW[$r]}"
  for target in $(targets_for "$r"); do
    [ "$target" = - ] && target=
    what="$r${target:+ $target}"
    # no key, malformed key, unknown key
    send "$r" "" "$target"; s_none=$(sig); st_none=$HTTP_STATUS
    send "$r" "$MALFORMED_KEY" "$target"; st_bad=$HTTP_STATUS
    send "$r" "$UNKNOWN_KEY" "$target"; st_unknown=$HTTP_STATUS; code_unknown=$(jf .error.code)
    if [ "$scope" = public ]; then
      [[ "$st_none $st_bad $st_unknown" =~ 40[13] ]] && pv_fail "$what is public but answered $st_none/$st_bad/$st_unknown" || pv_ok
      continue
    fi
    check_eq "$what without a key" 401 "$st_none"
    check_eq "$what with a malformed key" 401 "$st_bad"
    check_eq "$what with an unknown key" "401 unauthorized" "$st_unknown $code_unknown"
    if [ -n "$target" ] && [ "$r" != analytics ]; then
      send "$r" "" "$FAKE"; same_as "$what: no key, another tenant's vs no visitor" "$s_none"
    fi
    for k in "${!KEY[@]}"; do
      t=${KTENANT[$k]}
      if [ "$scope" != any ] && ! grep -qw "$scope" <<<"${KSCOPES[$k]}"; then
        send "$r" "${KEY[$k]}" "$target"
        check_eq "$what with $k (no $scope scope)" "403 forbidden" "$HTTP_STATUS $(jf .error.code)"
        if [ -n "$target" ] && [ "$r" != analytics ]; then
          s1=$(sig); send "$r" "${KEY[$k]}" "$FAKE"; same_as "$what with $k: 403 reveals nothing" "$s1"
        fi
        continue
      fi
      case $r in
        whoami)
          send "$r" "${KEY[$k]}"
          check_eq "whoami $k" "200 $t" "$HTTP_STATUS $(jf .tenant.name)" ;;
        visitor_get | visitor_delete)
          if [ "$t" = acme ]; then
            if [ "$r" = visitor_get ]; then
              send "$r" "${KEY[$k]}" "$VA"; check_eq "$what by acme ($k)" 200 "$HTTP_STATUS"
            else
              victim=${SACRIFICE[0]}; SACRIFICE=("${SACRIFICE[@]:1}")
              send "$r" "${KEY[$k]}" "$victim"; check_eq "acme erases its own visitor ($k)" "200 true" "$HTTP_STATUS $(jf .erased)"
            fi
            continue
          fi
          send "$r" "${KEY[$k]}" "$VA"; s_other=$(sig)
          check_eq "$what with $k" "404 not_found" "$HTTP_STATUS $(jf .error.code)"
          send "$r" "${KEY[$k]}" "$FAKE"; same_as "$what with $k: acme's visitor vs no visitor" "$s_other"
          send "$r" "${KEY[$k]}" "vis_short"; same_as "$what with $k: acme's visitor vs a malformed ID" "$s_other" ;;
        events)
          send "$r" "${KEY[$k]}" "$VA"
          if [ "$t" = acme ]; then
            check_eq "events by acme ($k)" "200 accepted" "$HTTP_STATUS $(jf '.results[0].status')"
            continue
          fi
          s_other="$HTTP_STATUS $(jf '.results[0]|del(.event_id)|tostring')"
          check_eq "events with $k for acme's visitor" "207 rejected:unknown visitor" "$HTTP_STATUS $(jf '"\(.results[0].status):\(.results[0].reason)"')"
          send "$r" "${KEY[$k]}" "$FAKE"
          check_eq "events with $k: acme's visitor vs no visitor" "$s_other" "$HTTP_STATUS $(jf '.results[0]|del(.event_id)|tostring')" ;;
        analytics)
          send "$r" "${KEY[$k]}" "$target"
          check_eq "$what with $k" 200 "$HTTP_STATUS"
          if [ "$t" = acme ]; then
            [ "$target" = summary ] && check_match "acme's own summary shows its visits" '^[1-9]' "$(jf .data.visits)"
            continue
          fi
          s_other=$(sig)
          send "$r" "$KEMPTY" "$target"; same_as "$what with $k: the report of a tenant without data" "$s_other" ;;
        recognize | identify | detect)
          send "$r" "${KEY[$k]}"
          check_eq "$r with $k" 200 "$HTTP_STATUS"
          if [ "$t" = acme ]; then
            [ "$r" = recognize ] && VA_VISITS=$((VA_VISITS + $(jf "[.faces[]|select(.visitor==\"$VA\")]|length")))
          else
            for v in $(jf '[.faces[].visitor // empty]|join(" ")'); do
              grep -qw -- "$v" <<<"$ACME_IDS" && pv_fail "$r with $k answered acme's visitor $v" || pv_ok
            done
          fi ;;
        *) pv_fail "no expectation for route $r" ;;
      esac
    done
  done
done

# the other tenants recognize acme's photo: never acme's IDs; the isolated tenant never matches acme's people
for k in bravo.recognize iso.recognize; do
  recog "${KEY[$k]}" "$S/sample1.jpg" identify
  check_eq "identify sample1 with $k" 200 "$HTTP_STATUS"
  for v in $(jf '[.faces[].visitor // empty]|join(" ")'); do
    grep -qw -- "$v" <<<"$ACME_IDS" && pv_fail "$k got acme's visitor $v" || pv_ok
  done
done
check_eq "the isolated tenant does not know acme's people" "" "$(jf '[.faces[]|select(.status=="returning")]|length|select(.>0)')"

# the web console (static files for any path outside the route table, no key): public, holds no tenant data
for p in / /index.html; do
  http GET "$URL$p"
  check_match "console $p is public" '^(200|404)$' "$HTTP_STATUS"
  for v in $ACME_IDS; do grep -qF -- "$v" <<<"$HTTP_BODY" && pv_fail "console $p shows acme's visitor $v" || pv_ok; done
done

# ---- acme's data is intact
http GET "$URL/v1/visitors/$VA" -H "Authorization: Bearer ${KEY[acme.analytics]}"
check_eq "acme's visitor still there" 200 "$HTTP_STATUS"
check_eq "acme's visitor unchanged" "${BEFORE% *} $((${BEFORE#* } + VA_VISITS))" "$(jf '"\(.first_seen) \(.visits)"')"
sleep 1
for i in $(seq 1 100); do
  [ "$(sql "SELECT count(*) FROM erasures WHERE tenant_id = $TA")" = 2 ] && break
  sleep 0.1
done
for i in $(seq 1 100); do [ "$(pg_rows)" = "$((1 + VA_VISITS)) 3" ] && break; sleep 0.1; done
check_eq "acme's visits and events still in PostgreSQL (one event per acme events key)" "$((1 + VA_VISITS)) 3" "$(pg_rows)"
check_eq "only acme's own two erasures reached PostgreSQL" "2 0" \
  "$(sql "SELECT (SELECT count(*) FROM erasures WHERE tenant_id = $TA) || ' ' || (SELECT count(*) FROM erasures WHERE tenant_id <> $TA)")"
check_eq "acme's visitor still in LMDB" 1 "$(in_lmdb "$VA")"
for v in "${ERASED[@]}"; do check_eq "an erased visitor is gone from LMDB" 0 "$(in_lmdb "$v")"; done
stop_pid "$GW_PID"
check_eq "clean shutdown" 0 "$?"
pv_finish
