#!/usr/bin/env bash
# The gateway's static files (gateway/static.c) over real HTTP: a console
# directory made here (index.html, a hashed asset, a dot file, a symbolic
# link to a file outside and a link to a directory outside) served by a real
# privid-gateway. Checks the headers (CSP, nosniff, no-referrer, caching,
# content types, ETag/304, HEAD) and that nothing outside the directory, no
# dot file and no link is ever served, whatever the path's spelling.
#   test_static.sh PRIVID_GATEWAY
. "$(dirname "$0")/../../lib.sh"
PV_GATEWAY=$1
con="$PV_TMP/console"
mkdir -p "$con/assets" "$PV_TMP/outside"
echo '<!doctype html><title>t</title>' > "$con/index.html"
echo 'console.log(1)' > "$con/assets/main-ABC123.js"
echo 'body{}' > "$con/assets/style-XYZ.css"
echo 'secret-dot' > "$con/.hidden"
echo 'secret-outside' > "$PV_TMP/outside/secret.txt"
ln -s "$PV_TMP/outside/secret.txt" "$con/link.txt"
ln -s "$PV_TMP/outside" "$con/linkdir"
printf 'x' > "$con/odd.bin"

start_gateway main --threads 1 --models off --data-dir "$PV_TMP/data" --console-dir "$con"
URL=$GW_URL
# csp: the last response's Content-Security-Policy (lib.sh's header splits at ": ", which the CSP contains)
csp() { printf '%s\n' "$HTTP_HEADERS" | sed -n 's/^content-security-policy: //Ip' | head -1; }

http GET "$URL/"
check_eq "GET /" 200 "$HTTP_STATUS"
check_eq "GET /: index.html" '<!doctype html><title>t</title>' "$HTTP_BODY"
check_eq "GET /: html" "text/html; charset=utf-8" "$(header content-type)"
check_eq "GET /: revalidated" "no-cache" "$(header cache-control)"
check_match "CSP: default-src 'self'" "^default-src 'self'; " "$(csp)"
for d in "script-src 'self'" "style-src 'self'" "img-src 'self' blob: data:" "connect-src 'self'" \
         "frame-ancestors 'none'" "object-src 'none'"; do
  check_match "CSP: $d" "(^|; )$d(;|$)" "$(csp)"
done
[[ "$(csp)" != *unsafe-* ]] && pv_ok || pv_fail "CSP allows unsafe-*"
check_eq "nosniff" nosniff "$(header x-content-type-options)"
check_eq "no referrer" no-referrer "$(header referrer-policy)"
ETAG=$(header etag)
check_match "ETag" '^"[0-9a-f]+-[0-9a-f]+"$' "$ETAG"
rm -f "$PV_TMP"/http.*.body # curl writes no body file for an empty body
http GET "$URL/" -H "If-None-Match: $ETAG"
check_eq "If-None-Match: 304" 304 "$HTTP_STATUS"
check_eq "304 has no body" "" "$HTTP_BODY"
http HEAD "$URL/index.html" -I
check_eq "HEAD" 200 "$HTTP_STATUS"
check_eq "HEAD: length" 32 "$(header content-length)"
[[ "$HTTP_BODY" != *doctype* ]] && pv_ok || pv_fail "HEAD sent a body" # (-I writes the headers there)

http GET "$URL/assets/main-ABC123.js"
check_eq "asset" 200 "$HTTP_STATUS"
check_eq "asset: javascript" "text/javascript; charset=utf-8" "$(header content-type)"
check_eq "asset: immutable" "public, max-age=31536000, immutable" "$(header cache-control)"
http GET "$URL/assets/style-XYZ.css?v=1"
check_eq "css with a query" "200 text/css; charset=utf-8" "$HTTP_STATUS $(header content-type)"
http GET "$URL/odd.bin"
check_eq "unknown type" "200 application/octet-stream" "$HTTP_STATUS $(header content-type)"

# never served: outside, dot files, links, directories, odd spellings
for p in "/../outside/secret.txt" "/assets/../../outside/secret.txt" "/%2e%2e/outside/secret.txt" \
         "/assets/%2e%2e/%2e%2e/outside/secret.txt" "/assets%2f..%2f..%2foutside%2fsecret.txt" \
         "/..%2foutside%2fsecret.txt" "/.hidden" "/assets/.%2e/.hidden" "/link.txt" "/linkdir/secret.txt" \
         "/assets" "/assets/" "//index.html" "/assets//main-ABC123.js" "/index.html%00" "/a\\b" \
         "/%69ndex.html" "/index.html/" "/nope.html" "/$(printf 'a%.0s' $(seq 1 300))"; do
  http GET "$URL$p" --path-as-is
  case "$HTTP_STATUS" in 400|404) pv_ok ;; *) pv_fail "$p: expected 400/404, got $HTTP_STATUS" ;; esac
  [[ "$HTTP_BODY" != *secret* ]] && pv_ok || pv_fail "$p: served a secret: $HTTP_BODY"
  if [ "$HTTP_STATUS" = 404 ]; then
    check_eq "$p: JSON error" not_found "$(jf .error.code)"
    check_eq "$p: JSON type" application/json "$(header content-type)"
  fi
done

# the API's own answers are untouched: /v1/ unknown is the API's 404, other methods are not served
http GET "$URL/v1/nope"
check_eq "/v1/ unknown" "404 no such route" "$HTTP_STATUS $(jf .error.message)"
check_eq "/v1/ has no console headers" "" "$(csp)"
http POST "$URL/index.html" -d x
check_eq "POST a console file" "404 not_found" "$HTTP_STATUS $(jf .error.code)"
http GET "$URL/healthz"
check_eq "routes still win" 200 "$HTTP_STATUS"
stop_pid "$GW_PID"

# no console directory: GET / is a clear JSON 404 and the gateway runs
start_gateway nodir --threads 1 --models off --data-dir "$PV_TMP/data2" --console-dir "$PV_TMP/none"
http GET "$GW_URL/"
check_eq "no console: 404" "404 not_found" "$HTTP_STATUS $(jf .error.code)"
check_match "no console: says so" "console is not installed" "$(jf .error.message)"
pv_finish
