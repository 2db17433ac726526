#!/bin/bash
# deploy/docker/secrets.sh [DIR]: creates the secrets docker-compose.yml
# reads, once (existing files are kept): DIR/secrets/{pg_password,
# privid_pg_dsn,grafana_admin_password} and DIR/.env (the Grafana report
# role's password). DIR defaults to this folder; the files are git-ignored.
# They are world-readable files inside a 0700 folder because compose
# bind-mounts them with the host's modes and the containers run as other
# users (postgres, 10001, grafana).
set -euo pipefail
dir=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
mkdir -p "$dir/secrets"
chmod 700 "$dir/secrets"
rand() { head -c 24 /dev/urandom | base64 | tr '+/' '-_'; }
put() { # NAME VALUE
  [ -s "$dir/secrets/$1" ] && return 0
  printf '%s' "$2" > "$dir/secrets/$1"
  chmod 644 "$dir/secrets/$1"
  echo "created $dir/secrets/$1"
}
put pg_password "$(rand)"
put privid_pg_dsn "host=postgres port=5432 dbname=privid user=privid password=$(cat "$dir/secrets/pg_password") connect_timeout=5"
put grafana_admin_password "$(rand)"
if [ ! -s "$dir/.env" ]; then
  (umask 077; printf 'PRIVID_REPORT_USER=grafana_demo\nPRIVID_REPORT_PASSWORD=%s\n' "$(rand)" > "$dir/.env")
  echo "created $dir/.env"
fi
