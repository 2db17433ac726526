#!/bin/bash
# privid-healthcheck PORT [PATH]: exits 0 when http://127.0.0.1:PORT/PATH
# answers 200 within 4 s, else 1. Plain bash (/dev/tcp), so the images need
# no curl. Used by the Dockerfile's HEALTHCHECK for /healthz.
port=${1:?usage: privid-healthcheck PORT [PATH]}
path=${2:-/healthz}
status=$(timeout 4 bash -c '
  exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
  printf "GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n" "$1" >&3
  IFS= read -r line <&3 && printf "%s" "$line"' "$port" "$path" 2>/dev/null)
case $status in
  HTTP/1.?" 200 "*) exit 0 ;;
esac
echo "privid-healthcheck: 127.0.0.1:$port$path answered [${status%$'\r'}]" >&2
exit 1
