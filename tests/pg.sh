# Sourced by tests/run.sh and deploy/quickstart.sh: start and stop a private
# PostgreSQL 15 cluster on a free loopback port. PostgreSQL refuses to run as
# root, so as root the server runs as the `postgres` user.
#   pv_pg_start DATADIR [PORT]  -> exports PV_PG_PORT and PV_PG_DSN
#   pv_pg_stop DATADIR
PV_PG_BIN=${PV_PG_BIN:-/usr/lib/postgresql/15/bin}

pv_pg_as() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pv_pg_port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pv_pg_start() {
  local dir=$1 port=${2:-}
  [ -x "$PV_PG_BIN/initdb" ] || { echo "PostgreSQL 15 server not found in $PV_PG_BIN (deploy/setup.sh installs it)" >&2; return 1; }
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  chmod 700 "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    pv_pg_as "$PV_PG_BIN/initdb" -D "$dir" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 \
      || { cat "$dir.initdb.log" >&2; return 1; }
  fi
  if [ -f "$dir/postmaster.pid" ] && pv_pg_as "$PV_PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    port=$(sed -n 4p "$dir/postmaster.pid")
  else
    local tries=0
    while :; do
      [ -n "$port" ] || port=$(( 20000 + RANDOM % 30000 ))
      if pv_pg_port_free "$port" && pv_pg_as "$PV_PG_BIN/pg_ctl" -D "$dir" -w -t 30 -l "$dir/server.log" \
           -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=${PV_PG_FSYNC:-on}" start >/dev/null; then
        break
      fi
      tries=$((tries + 1))
      [ $tries -lt 5 ] || { echo "could not start PostgreSQL (see $dir/server.log)" >&2; tail -5 "$dir/server.log" >&2 2>/dev/null; return 1; }
      port=
    done
  fi
  export PV_PG_PORT=$port
  export PV_PG_DSN="host=127.0.0.1 port=$port user=postgres dbname=postgres connect_timeout=5"
}

pv_pg_stop() {
  local dir=$1
  [ -f "$dir/postmaster.pid" ] && pv_pg_as "$PV_PG_BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
}
