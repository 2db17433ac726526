#!/usr/bin/env bash
# Secrets and keys through a real privid-gateway on loopback:
# - failed authentications are limited per client address: after
#   --auth-fail-max failures the address gets 429 with Retry-After (even
#   with a valid key), other addresses (127.0.0.2, 127.0.0.3 on loopback)
#   are not slowed, requests without a key do not count, and the address
#   recovers at --auth-fail-rate;
# - privid-admin key rotate: the new key has the same tenant and scopes, the
#   old one works during --grace and then gets 401 expired_key;
# - every file and directory the gateway and privid-admin create under the
#   data directory (tenants LMDB, outbox, writer.lock, gallery LMDB and
#   snapshot) is owner-only (0600 / 0700), with a permissive umask.
#   test_keys.sh PRIVID_ADMIN PRIVID_GATEWAY   (env PRIVID_TEST_PG, PRIVID_MODELS)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
[ -n "${PRIVID_TEST_PG:-}" ] || { echo "PRIVID_TEST_PG is not set: run through tests/run.sh" >&2; exit 1; }
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
S=$MODELS/demo
[ -f "$S/sample1.jpg" ] || { echo "sample photos missing under $S (run deploy/setup.sh)" >&2; exit 1; }
umask 022 # the modes below must come from the code, not from a strict umask

data="$PV_TMP/data"
admin() { "$PV_ADMIN" --data-dir "$data" "$@"; }
admin tenant create acme >/dev/null || pv_fail "tenant create acme"
KEY=$(admin key create acme)
KEY_EV=$(admin key create acme --scopes events,analytics)
BAD="pvk_0000000000000000_${KEY:21}"

start_gateway main --threads 2 --workers 1 --data-dir "$data" --models "$MODELS" --pg "$PRIVID_TEST_PG" \
  --auth-fail-max 5 --auth-fail-rate 20
URL=$GW_URL
PORT=${URL##*:}
# whoami FROM KEY: GET /v1/whoami from source address FROM (127.0.0.x)
whoami() {
  if [ -n "${2:-}" ]; then
    http GET "http://127.0.0.1:$PORT/v1/whoami" --interface "$1" -H "Authorization: Bearer $2"
  else
    http GET "http://127.0.0.1:$PORT/v1/whoami" --interface "$1"
  fi
}

# ---- failed authentications per client address
for i in 1 2 3 4 5; do
  whoami 127.0.0.1 "$BAD"
  check_eq "failure $i answers 401" 401 "$HTTP_STATUS"
done
whoami 127.0.0.1 "$BAD"
check_eq "failure 6 answers 429" 429 "$HTTP_STATUS"
check_eq "429 code" rate_limited "$(jf .error.code)"
check_match "429 Retry-After" '^[1-9][0-9]*$' "$(header retry-after)"
whoami 127.0.0.1 "$KEY"
check_eq "a blocked address gets 429 even with a valid key" 429 "$HTTP_STATUS"
http POST "http://127.0.0.1:$PORT/v1/events" -H "Authorization: Bearer $KEY_EV" -H 'Content-Type: application/json' \
  --data '{"events":[]}'
check_eq "on every authenticated route" 429 "$HTTP_STATUS"
http GET "$URL/healthz"
check_eq "public routes are not limited" 200 "$HTTP_STATUS"
whoami 127.0.0.2 "$KEY"
check_eq "another address is not slowed" 200 "$HTTP_STATUS"
whoami 127.0.0.2 "$BAD"
check_eq "another address has its own allowance" 401 "$HTTP_STATUS"
for i in $(seq 1 8); do whoami 127.0.0.3; done
check_eq "requests without a key answer 401" 401 "$HTTP_STATUS"
whoami 127.0.0.3 "$KEY"
check_eq "requests without a key are not failures" 200 "$HTTP_STATUS"
http GET "$URL/metrics"
check_match "refusals counted" 'privid_rate_limited_total [1-9]' "$HTTP_BODY"
check_match "429 counted on the route" 'privid_requests_total\{route="whoami",status="429"\} [1-9]' "$HTTP_BODY"
sleep 3.2 # one failure back at 20 per minute (slow enough that a loaded machine does not refill it early)
whoami 127.0.0.1 "$KEY"
check_eq "the address recovers at the refill rate" 200 "$HTTP_STATUS"

# ---- rotation: same tenant and scopes, the old key expires after the grace
OLD_ID=${KEY_EV:4:16}
out=$(admin key rotate "$OLD_ID" --grace 3s --json)
check_eq "key rotate exit" 0 "$?"
NEW=$(jq -r .key <<<"$out")
check_match "new key format" '^pvk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$' "$NEW"
check_eq "old key expiry shown" expiring "$(jq -r .old.status <<<"$out")"
whoami 127.0.0.2 "$NEW"
check_eq "new key works" 200 "$HTTP_STATUS"
check_eq "new key: same tenant" acme "$(jf .tenant.name)"
check_eq "new key: same scopes" "events,analytics" "$(jf '.key.scopes|join(",")')"
whoami 127.0.0.2 "$KEY_EV"
check_eq "old key works during the grace" 200 "$HTTP_STATUS"
sleep 3.2
whoami 127.0.0.2 "$KEY_EV"
check_eq "old key after the grace" 401 "$HTTP_STATUS"
check_eq "old key after the grace: code" expired_key "$(jf .error.code)"
whoami 127.0.0.2 "$NEW"
check_eq "new key still works" 200 "$HTTP_STATUS"
check_eq "an expired key cannot be rotated" 1 "$(admin key rotate "$OLD_ID" 2>/dev/null; echo $?)"
check_match "key list shows the expiry" "$OLD_ID .* expired " "$(admin key list acme)"
NEW2=$(admin key rotate "${NEW:4:16}" --grace 0)
whoami 127.0.0.2 "$NEW"
check_eq "--grace 0 expires at once" expired_key "$(jf .error.code)"
whoami 127.0.0.2 "$NEW2"
check_eq "the key of a second rotation works" 200 "$HTTP_STATUS"

# ---- the modes of everything under the data directory (after a recognition and a clean stop)
http POST "$URL/v1/recognize" -H "Authorization: Bearer $KEY" -H "Content-Type: image/jpeg" \
  --interface 127.0.0.4 --data-binary "@$S/sample1.jpg"
check_eq "recognize" 200 "$HTTP_STATUS"
stop_pid "$GW_PID"
check_eq "clean shutdown" 0 "$?"
for f in data.mdb lock.mdb writer.lock gallery gallery/shard-0 gallery/shard-0/data.mdb gallery/shard-0/index.snap; do
  [ -e "$data/$f" ] && pv_ok || pv_fail "$f was not created"
done
check_eq "directories that are not 0700" "" "$(find "$data" -type d ! -perm 0700 -printf '%p %m\n')"
check_eq "files that are not 0600" "" "$(find "$data" -type f ! -perm 0600 -printf '%p %m\n')"
pv_finish
