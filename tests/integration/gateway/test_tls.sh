#!/usr/bin/env bash
# HTTPS end to end: a real privid-gateway with a certificate made here by the
# openssl CLI, a plain listener beside it, curl and openssl s_client as
# clients. Checks TLS 1.2 and 1.3 with AEAD/ECDHE suites, TLS 1.1 and weak
# suites refused (the client is first shown to speak TLS 1.1 to openssl
# s_server), ALPN h2 and http/1.1, a recognition over HTTPS (real networks),
# then SIGHUP: new connections see the new certificate while a connection
# opened before keeps working; a broken certificate is refused on reload
# and the current one stays in use.
#   test_tls.sh PRIVID_ADMIN PRIVID_GATEWAY   (env PRIVID_MODELS)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
[ -f "$MODELS/demo/sample1.jpg" ] || { echo "sample photos missing under $MODELS/demo (run deploy/setup.sh)" >&2; exit 1; }

data="$PV_TMP/data"
"$PV_ADMIN" --data-dir "$data" tenant create acme >/dev/null || pv_fail "tenant create"
KEY=$("$PV_ADMIN" --data-dir "$data" key create acme | head -1)

# mkcert NAME: a self-signed P-256 certificate for 127.0.0.1 in $PV_TMP/NAME.{crt,key}
mkcert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=$1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$PV_TMP/$1.key" -out "$PV_TMP/$1.crt" 2>/dev/null ||
    pv_fail "openssl req $1"
}
fingerprint() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2; }
mkcert first
mkcert second
cp "$PV_TMP/first.crt" "$PV_TMP/server.crt"
cp "$PV_TMP/first.key" "$PV_TMP/server.key"

# configuration errors are clear and fatal
out=$("$PV_GATEWAY" --listen 127.0.0.1:0 --data-dir "$data" --models off --tls-cert "$PV_TMP/server.crt" 2>&1); rc=$?
check_eq "cert without key exits" 1 "$rc"
check_match "cert without key says so" 'tls-cert and --tls-key go together' "$out"
out=$("$PV_GATEWAY" --listen 127.0.0.1:0 --data-dir "$data" --models off --tls-cert "$PV_TMP/server.crt" \
  --tls-key "$PV_TMP/second.key" 2>&1); rc=$?
check_eq "mismatched key exits" 1 "$rc"
check_match "mismatched key says so" 'key values mismatch|does not match' "$out"
out=$("$PV_GATEWAY" --listen https://127.0.0.1:0 --data-dir "$data" --models off 2>&1); rc=$?
check_eq "https listener without a certificate exits" 1 "$rc"

start_gateway tls --threads 2 --workers 1 --data-dir "$data" --models "$MODELS" --listen http://127.0.0.1:0 \
  --tls-cert "$PV_TMP/server.crt" --tls-key "$PV_TMP/server.key"
HOSTPORT=${GW_URL#http://}
URL=https://$HOSTPORT
PLAIN=$(sed -n 's/.*msg="listening" addr=\([^ ]*\) url=http:.*/\1/p' "$PV_TMP/tls.log" | head -1)
check_match "log names the https listener" "url=https://$HOSTPORT/" "$(cat "$PV_TMP/tls.log")"
CA=(--cacert "$PV_TMP/first.crt")

# ---- HTTPS with curl: h2 by ALPN, or HTTP/1.1; plain HTTP beside it
http GET "$URL/healthz" "${CA[@]}"
check_eq "https healthz" 200 "$HTTP_STATUS"
v=$(curl -sS -o /dev/null -w '%{http_version}' "${CA[@]}" --http2 "$URL/healthz")
check_eq "curl --http2 negotiates h2" 2 "$v"
v=$(curl -sS -o /dev/null -w '%{http_version}' "${CA[@]}" --http1.1 "$URL/healthz")
check_eq "curl --http1.1 gets HTTP/1.1" 1.1 "$v"
v=$(curl -sS -o /dev/null -w '%{http_code} %{scheme}' "http://$PLAIN/healthz")
check_eq "plain listener beside TLS" "200 HTTP" "$v"
v=$(curl -sS -o /dev/null -w '%{http_code}' "http://$HOSTPORT/healthz" 2>/dev/null)
check_eq "plain HTTP to the TLS port gets no answer" 000 "$v"

# ---- protocol versions, suites and ALPN with openssl s_client
sc() { echo | timeout 10 openssl s_client -connect "$HOSTPORT" -servername localhost "$@" 2>&1; }
out=$(sc -tls1_2)
check_match "TLS 1.2 accepted" 'Protocol *: TLSv1.2' "$out"
check_match "TLS 1.2 suite is ECDHE with AEAD" 'Cipher is ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)' "$out"
out=$(sc -tls1_3)
# the SSL-Session block (Protocol :) comes only with a session ticket, which
# may arrive after s_client has hung up; the handshake line is always there
check_match "TLS 1.3 accepted" 'Protocol *: TLSv1.3|New, TLSv1.3, Cipher is TLS_' "$out"
check_match "TLS 1.3 suite" 'Cipher is TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)' "$out"
out=$(sc -tls1_2 -cipher 'AES128-SHA:AES256-SHA:ECDHE-ECDSA-AES128-SHA:DHE-RSA-AES128-SHA')
check_match "CBC / non-ECDHE suites refused" 'Cipher is \(NONE\)|handshake failure|no cipher' "$out"
out=$(sc -alpn h2)
check_match "ALPN h2" 'ALPN protocol: h2' "$out"
out=$(sc -alpn http/1.1)
check_match "ALPN http/1.1" 'ALPN protocol: http/1.1' "$out"
# TLS 1.1: the same client speaks it to openssl s_server (so the refusal is the gateway's) ...
old=(-tls1_1 -cipher 'DEFAULT@SECLEVEL=0')
port=$(( 20000 + RANDOM % 20000 ))
openssl s_server -accept "127.0.0.1:$port" -cert "$PV_TMP/first.crt" -key "$PV_TMP/first.key" "${old[@]}" -www \
  >/dev/null 2>&1 &
SPID=$!
PV_PIDS+=("$SPID")
for i in $(seq 1 50); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" "${old[@]}" 2>&1)
check_match "control: the client negotiates TLS 1.1 with s_server" 'Protocol *: TLSv1.1' "$out"
kill "$SPID" 2>/dev/null
# ... and the gateway refuses it
out=$(sc "${old[@]}")
check_match "TLS 1.1 refused" 'Cipher is \(NONE\)' "$out"

# ---- a recognition over HTTPS (h2), with a key
http POST "$URL/v1/recognize?location=tls" "${CA[@]}" --http2 -H "Authorization: Bearer $KEY" \
  -H "Content-Type: image/jpeg" --data-binary "@$MODELS/demo/sample1.jpg"
check_eq "recognize over https" 200 "$HTTP_STATUS"
check_eq "recognize over https: faces" 3 "$(jf '.faces|length')"
check_match "recognize over https: visitor ids" '^vis_' "$(jf '.faces[0].visitor')"

# ---- SIGHUP: a connection opened before stays usable; new ones see the new certificate
seen_fp() { echo | timeout 10 openssl s_client -connect "$HOSTPORT" 2>/dev/null | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2; }
check_eq "first certificate served" "$(fingerprint "$PV_TMP/first.crt")" "$(seen_fp)"
coproc OLD { exec openssl s_client -quiet -connect "$HOSTPORT" -CAfile "$PV_TMP/first.crt" 2>/dev/null; }
PV_PIDS+=("$OLD_PID")
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' >&"${OLD[1]}"
read -t 10 -r line <&"${OLD[0]}"
check_eq "old connection before reload" "HTTP/1.1 200 OK" "${line%$'\r'}"
while read -t 0.5 -r line <&"${OLD[0]}"; do :; done
cp "$PV_TMP/second.crt" "$PV_TMP/server.crt"
cp "$PV_TMP/second.key" "$PV_TMP/server.key"
kill -HUP "$GW_PID"
for i in $(seq 1 50); do grep -q 'msg="TLS certificate reloaded"' "$PV_TMP/tls.log" && break; sleep 0.1; done
sleep 0.5 # every loop adopts the new context within 200 ms
for i in 1 2 3 4; do # several new connections: both loops serve the new certificate
  check_eq "new connection $i after SIGHUP sees the new certificate" "$(fingerprint "$PV_TMP/second.crt")" "$(seen_fp)"
done
check_match "reload logged with the fingerprint" "sha256=$(fingerprint "$PV_TMP/second.crt" | tr -d : | tr 'A-F' 'a-f')" \
  "$(cat "$PV_TMP/tls.log")"
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' >&"${OLD[1]}"
read -t 10 -r line <&"${OLD[0]}"
check_eq "connection opened before the reload still answers" "HTTP/1.1 200 OK" "${line%$'\r'}"
v=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$PV_TMP/second.crt" "$URL/healthz")
check_eq "curl trusts the new certificate" 200 "$v"

# a broken certificate on reload: error logged, the current certificate stays
echo "not a certificate" > "$PV_TMP/server.crt"
kill -HUP "$GW_PID"
for i in $(seq 1 50); do grep -q 'msg="TLS reload failed' "$PV_TMP/tls.log" && break; sleep 0.1; done
check_match "bad reload logged" 'level=error msg="TLS reload failed; the current certificate stays in use"' \
  "$(cat "$PV_TMP/tls.log")"
check_eq "after a bad reload the second certificate is still served" "$(fingerprint "$PV_TMP/second.crt")" "$(seen_fp)"
check_eq "no key material in the log" 0 "$(grep -c 'PRIVATE KEY' "$PV_TMP/tls.log")"

stop_pid "$GW_PID"
check_eq "clean shutdown" 0 "$?"
pv_finish
