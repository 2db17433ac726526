#!/usr/bin/env bash
# Integration test of privid-admin against a real PostgreSQL: migrations
# (idempotent, concurrent-safe), the tenant and key life cycle through the
# CLI (text and --json), the tenants mirror, and usage errors with their exit
# codes. Usage: test_admin.sh PRIVID_ADMIN MIGRATIONS_DIR, with a DSN in
# PRIVID_TEST_PG (key=value or URI form). Each run uses its own databases.
set -u

ADMIN=${1:?usage: test_admin.sh PRIVID_ADMIN MIGRATIONS_DIR}
MIG=${2:?usage: test_admin.sh PRIVID_ADMIN MIGRATIONS_DIR}
STEP=start

fail() {
    echo "FAIL [$STEP]: $*" >&2
    exit 1
}

if [ -z "${PRIVID_TEST_PG:-}" ]; then
    echo "FAIL: PRIVID_TEST_PG is not set. This test needs a PostgreSQL it may create databases in," >&2
    echo "      e.g. PRIVID_TEST_PG='host=127.0.0.1 port=5432 user=postgres dbname=postgres'." >&2
    exit 1
fi
for tool in psql jq; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done
[ -x "$ADMIN" ] || fail "privid-admin not found at $ADMIN"
[ -d "$MIG" ] || fail "migrations folder not found at $MIG"

suffix=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
DB=privid_t_$suffix
DB2=privid_t_${suffix}_c
WORK=$(mktemp -d)

admin_sql() { psql "$PRIVID_TEST_PG" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
cleanup() {
    admin_sql "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    admin_sql "DROP DATABASE IF EXISTS $DB2 WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

# The same server, another database.
dsn_for() {
    case "$PRIVID_TEST_PG" in
    postgres://* | postgresql://*)
        printf '%s' "$PRIVID_TEST_PG" | sed -E "s#^(postgres(ql)?://[^/?]*)(/[^?]*)?#\\1/$1#"
        ;;
    *) printf '%s dbname=%s' "$PRIVID_TEST_PG" "$1" ;;
    esac
}

admin_sql "CREATE DATABASE $DB" || fail "cannot create database $DB"
admin_sql "CREATE DATABASE $DB2" || fail "cannot create database $DB2"
DSN=$(dsn_for "$DB")
DSN2=$(dsn_for "$DB2")
BAD_DSN="host=127.0.0.1 port=1 dbname=none connect_timeout=3"

unset PRIVID_PG PRIVID_MIGRATIONS
export PRIVID_DATA_DIR=$WORK/data

sql() { psql "$DSN" -X -q -At -v ON_ERROR_STOP=1 -c "$1" || fail "query failed: $1"; }

# run CMD...: captures stdout, stderr and the exit status
run() {
    "$@" >"$WORK/out" 2>"$WORK/err"
    rc=$?
    out=$(cat "$WORK/out")
    err=$(cat "$WORK/err")
}
expect() {
    local want=$1
    shift
    run "$@"
    [ "$rc" = "$want" ] || fail "'$*' exited $rc, expected $want; stdout: $out; stderr: $err"
}
expect_out() { grep -qF -- "$1" "$WORK/out" || fail "stdout lacks '$1': $out"; }
expect_err() { grep -qF -- "$1" "$WORK/err" || fail "stderr lacks '$1': $err"; }
expect_eq() { [ "$1" = "$2" ] || fail "expected '$2', got '$1' ($3)"; }
# a usage or lookup error: exit code, message prefix, and what it names
expect_error() {
    local want=$1 msg=$2
    shift 2
    expect "$want" "$@"
    grep -q '^privid-admin: ' "$WORK/err" || fail "error not prefixed with 'privid-admin: ': $err"
    expect_err "$msg"
}

nfiles=$(find "$MIG" -maxdepth 1 -name '[0-9][0-9][0-9][0-9]_*.sql' | wc -l)
[ "$nfiles" -ge 1 ] || fail "no migration files in $MIG"

STEP=migrate
expect_error 2 "needs a PostgreSQL DSN" "$ADMIN" migrate --migrations "$MIG"
expect 0 "$ADMIN" migrate --pg "$DSN" --migrations "$MIG"
expect_out "applied 0001_tenants.sql"
expect_out "no tenants store"
expect_eq "$(sql 'SELECT count(*) FROM schema_migrations')" "$nfiles" "one schema_migrations row per file"
expect_eq "$(sql "SELECT name FROM schema_migrations WHERE version = 1")" "0001_tenants.sql" "row of 0001"
snapshot() {
    sql "SELECT version || ' ' || name || ' ' || applied_at FROM schema_migrations ORDER BY version"
    sql "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable FROM information_schema.columns
         WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
}
before=$(snapshot)
# second run, migrations folder from the environment: nothing changes
PRIVID_MIGRATIONS=$MIG expect 0 "$ADMIN" migrate --pg "$DSN"
expect_out "schema up to date"
expect_eq "$(snapshot)" "$before" "second migrate changed the schema"
PRIVID_PG=$DSN PRIVID_MIGRATIONS=$MIG expect 0 "$ADMIN" migrate --json
expect_eq "$(jq -c '.applied' <<<"$out")" "[]" "JSON migrate applies nothing"
# the tenants table enforces its constraints
psql "$DSN" -X -q -c "INSERT INTO tenants VALUES (999, 'x', 'shared', 1, now(), NULL)" >/dev/null 2>&1 &&
    fail "tenants accepted a bad mode"

STEP=migrate-concurrent
(PRIVID_MIGRATIONS=$MIG "$ADMIN" migrate --pg "$DSN2" >"$WORK/c1" 2>&1; echo $? >"$WORK/c1.rc") &
(PRIVID_MIGRATIONS=$MIG "$ADMIN" migrate --pg "$DSN2" >"$WORK/c2" 2>&1; echo $? >"$WORK/c2.rc") &
wait
expect_eq "$(cat "$WORK/c1.rc") $(cat "$WORK/c2.rc")" "0 0" "concurrent migrates: $(cat "$WORK/c1" "$WORK/c2")"
expect_eq "$(psql "$DSN2" -X -At -c 'SELECT count(*) FROM schema_migrations')" "$nfiles" "concurrent rows"
expect_eq "$(cat "$WORK/c1" "$WORK/c2" | grep -c '^applied 0001_tenants.sql')" "1" "0001 applied exactly once"

STEP=help
expect 0 "$ADMIN" --help
expect_out "Usage: privid-admin"
expect 0 "$ADMIN" tenant --help
expect_out "Usage: privid-admin tenant COMMAND"
expect 0 "$ADMIN" tenant create --help
expect_out "--retention-days"
expect 0 "$ADMIN" key create -h
expect_out "--scopes"
expect 0 "$ADMIN" migrate --help
expect_out "--migrations"

STEP=tenant-create
expect 0 "$ADMIN" tenant create acme --pg "$DSN"
expect_out "created tenant acme (id 1, mode network, retention 90 days)"
expect_eq "$(sql "SELECT name, mode, retention_days, deleted_at IS NULL FROM tenants WHERE tenant_id = 1")" \
    "acme|network|90|t" "acme mirrored"
expect 0 "$ADMIN" --json --pg "$DSN" tenant create beta --mode isolated --retention-days 30
expect_eq "$(jq -c '[.id, .name, .mode, .retention_days]' <<<"$out")" '[2,"beta","isolated",30]' "beta JSON"
expect_eq "$(jq -r 'has("secret")' <<<"$out")" "false" "no secret in JSON"
expect_eq "$(sql "SELECT mode, retention_days FROM tenants WHERE name = 'beta'")" "isolated|30" "beta mirrored"
created=$(jq -r .created_at <<<"$out")
expect_eq "$(sql "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM tenants WHERE tenant_id = 2")" \
    "$created" "created_at mirrored"
# without a DSN nothing is mirrored
expect 0 "$ADMIN" tenant create gamma
expect_eq "$(sql "SELECT count(*) FROM tenants WHERE name = 'gamma'")" "0" "no DSN, no mirror"
# the DSN from the environment
PRIVID_PG=$DSN expect 0 "$ADMIN" tenant create delta --retention-days 3650
expect_eq "$(sql "SELECT retention_days FROM tenants WHERE name = 'delta'")" "3650" "PRIVID_PG mirror"

STEP=tenant-read
expect 0 "$ADMIN" tenant list --json
expect_eq "$(jq -c '[.[].name]' <<<"$out")" '["acme","beta","delta","gamma"]' "list sorted by name"
expect_eq "$(jq '[.[] | has("secret")] | any' <<<"$out")" "false" "no secret in list"
expect 0 "$ADMIN" tenant list
expect_out "acme"
expect_out "isolated"
expect 0 "$ADMIN" tenant show beta --json
expect_eq "$(jq -c '[.id, .name, .mode]' <<<"$out")" '[2,"beta","isolated"]' "show JSON"
expect 0 "$ADMIN" tenant show beta
expect_out "retention_days: 30"

STEP=keys
expect 0 "$ADMIN" key create acme --scopes recognize,events
KEY1=$out
[[ "$KEY1" =~ ^pvk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$ ]] || fail "key text malformed: $KEY1"
expect_eq "$(wc -l <"$WORK/out")" "1" "key alone on its line"
KID1=${KEY1:4:16}
expect_err "created key $KID1"
grep -qF "$KEY1" "$WORK/err" && fail "key text leaked to stderr"
expect 0 "$ADMIN" key create acme --json
KEY2=$(jq -r .key <<<"$out")
KID2=$(jq -r .id <<<"$out")
[[ "$KEY2" =~ ^pvk_${KID2}_[A-Za-z0-9_-]{43}$ ]] || fail "JSON key malformed: $out"
expect_eq "$(jq -c '[.tenant, .tenant_id, .scopes]' <<<"$out")" \
    '["acme",1,["recognize","events","analytics","erase"]]' "key JSON"
expect 0 "$ADMIN" key list acme --json
expect_eq "$(jq length <<<"$out")" "2" "two keys"
expect_eq "$(jq -c --arg id "$KID1" '.[] | select(.id == $id) | [.scopes, .revoked]' <<<"$out")" \
    '[["recognize","events"],false]' "key 1 listed"
grep -qF "${KEY1:21}" "$WORK/out" && fail "secret shown by key list"
grep -qF "${KEY2:21}" "$WORK/out" && fail "secret shown by key list"
expect 0 "$ADMIN" key list beta --json
expect_eq "$(jq length <<<"$out")" "0" "beta has no keys"
expect 0 "$ADMIN" key revoke "$KID1"
expect_out "revoked key $KID1"
expect 0 "$ADMIN" key revoke "$KID1" --json
expect_eq "$(jq -r .revoked <<<"$out")" "$KID1" "revoke is idempotent"
expect 0 "$ADMIN" key list acme
expect_out "$KID1"
expect_out "revoked"
expect 0 "$ADMIN" key list acme --json
expect_eq "$(jq -c --arg id "$KID1" '[.[] | select(.id == $id) | .revoked]' <<<"$out")" "[true]" "revoked flag"
expect_eq "$(jq -c --arg id "$KID2" '[.[] | select(.id == $id) | .revoked]' <<<"$out")" "[false]" "other key active"

STEP=tenant-delete
expect 0 "$ADMIN" key create beta
KID3=${out:4:16}
expect 0 "$ADMIN" tenant delete beta --pg "$DSN"
expect_out "deleted tenant beta"
expect_error 3 "unknown tenant 'beta'" "$ADMIN" tenant show beta
expect_error 3 "unknown key '$KID3'" "$ADMIN" key revoke "$KID3"
expect_eq "$(sql "SELECT deleted_at IS NOT NULL FROM tenants WHERE tenant_id = 2")" "t" "deletion mirrored"
# the name is free again: a new id, and the old row steps aside
expect 0 "$ADMIN" tenant create beta --pg "$DSN" --json
expect_eq "$(jq .id <<<"$out")" "5" "ids are never reused"
expect_eq "$(sql "SELECT tenant_id, deleted_at IS NULL FROM tenants WHERE name = 'beta'")" "5|t" "new beta mirrored"
expect_eq "$(sql "SELECT name, deleted_at IS NOT NULL FROM tenants WHERE tenant_id = 2")" "beta#2|t" "old beta renamed"

STEP=k-anon
# the reports' k lives in PostgreSQL: set, changed, refused out of range or without --pg, nothing half-done
expect 0 "$ADMIN" tenant update acme --k-anon 7 --pg "$DSN"
expect_out "k-anonymity k 7"
expect_eq "$(sql "SELECT k FROM tenant_report_settings WHERE tenant_id = 1")" "7" "k set"
expect 0 "$ADMIN" --json tenant update acme --k-anon 3 --rate 60 --pg "$DSN"
expect_eq "$(jq -c "[.k_anon, .limits.rate_per_min]" <<<"$out")" "[3,60]" "k and rate in the JSON answer"
expect_eq "$(sql "SELECT k FROM tenant_report_settings WHERE tenant_id = 1")" "3" "k changed"
expect_error 2 "invalid --k-anon '1'" "$ADMIN" tenant update acme --k-anon 1 --pg "$DSN"
expect_error 2 "give --pg" "$ADMIN" tenant update acme --k-anon 9 --rate 1
expect_error 3 "no such tenant" "$ADMIN" tenant update nobody --k-anon 9 --pg "$DSN"
# PostgreSQL unreachable: the store's part (--rate) is not applied either
expect_error 1 "cannot set --k-anon" "$ADMIN" tenant update acme --k-anon 9 --rate 1 --pg "$BAD_DSN"
expect 0 "$ADMIN" --json tenant show acme
expect_eq "$(jq .limits.rate_per_min <<<"$out")" "60" "rate untouched after the failed k"
expect_eq "$(sql "SELECT k FROM tenant_report_settings WHERE tenant_id = 1")" "3" "k untouched"

STEP=mirror-failure
expect_error 4 "not mirrored to PostgreSQL" "$ADMIN" tenant create epsilon --pg "$BAD_DSN"
expect_err "warning"
expect_out "created tenant epsilon"
expect 0 "$ADMIN" tenant show epsilon
expect_error 4 "not mirrored to PostgreSQL" "$ADMIN" tenant delete gamma --pg "$BAD_DSN"
expect_error 3 "unknown tenant 'gamma'" "$ADMIN" tenant show gamma
expect_eq "$(sql "SELECT count(*) FROM tenants WHERE name IN ('epsilon', 'gamma')")" "0" "nothing mirrored yet"
# migrate re-syncs the mirror with the store, deletions included
expect 0 "$ADMIN" migrate --pg "$DSN" --migrations "$MIG"
expect_out "mirrored 4 tenants"
expect_eq "$(sql "SELECT count(*) FROM tenants WHERE name = 'epsilon' AND deleted_at IS NULL")" "1" "epsilon re-synced"
expect 0 "$ADMIN" tenant delete delta
expect 0 "$ADMIN" migrate --pg "$DSN" --migrations "$MIG" --json
expect_eq "$(jq -c '[.applied, .mirrored]' <<<"$out")" "[[],3]" "migrate JSON"
expect_eq "$(sql "SELECT deleted_at IS NOT NULL FROM tenants WHERE name = 'delta'")" "t" "delta deletion re-synced"
expect_eq "$(sql "SELECT string_agg(name, ',' ORDER BY name) FROM tenants WHERE deleted_at IS NULL")" \
    "acme,beta,epsilon" "mirror equals the store"

STEP=migrate-unreachable
expect_error 1 "cannot connect to PostgreSQL" "$ADMIN" migrate --pg "$BAD_DSN" --migrations "$MIG"
expect_error 1 "cannot open migrations folder" "$ADMIN" migrate --pg "$DSN" --migrations "$WORK/nonexistent"

STEP=usage-errors
expect_error 2 "missing command" "$ADMIN"
expect_error 2 "unknown command 'frobnicate'" "$ADMIN" frobnicate
expect_error 2 "unknown tenant command 'rename'" "$ADMIN" tenant rename acme
expect_error 2 "unknown option '--frob'" "$ADMIN" tenant list --frob
expect_error 2 "unknown option '--colour'" "$ADMIN" --colour tenant list
expect_error 2 "missing argument NAME for 'tenant create'" "$ADMIN" tenant create
expect_error 2 "missing argument TENANT for 'key create'" "$ADMIN" key create
expect_error 2 "missing argument KEYID for 'key revoke'" "$ADMIN" key revoke
expect_error 2 "unexpected argument 'extra'" "$ADMIN" tenant show acme extra
expect_error 2 "option --mode needs a value" "$ADMIN" tenant create zed --mode
expect_error 2 "invalid --mode 'shared'" "$ADMIN" tenant create zed --mode shared
expect_error 2 "invalid --retention-days '0'" "$ADMIN" tenant create zed --retention-days 0
expect_error 2 "invalid --retention-days '3651'" "$ADMIN" tenant create zed --retention-days 3651
expect_error 2 "invalid --retention-days 'ten'" "$ADMIN" tenant create zed --retention-days ten
expect_error 2 "invalid --scopes 'read'" "$ADMIN" key create acme --scopes read
expect_error 2 "option --scopes is not valid for 'tenant create'" "$ADMIN" tenant create zed --scopes all
expect_error 2 "invalid tenant name 'bad name'" "$ADMIN" tenant create "bad name"
expect_error 2 "invalid key id 'nothex'" "$ADMIN" key revoke nothex
expect_error 3 "tenant 'acme' already exists" "$ADMIN" tenant create acme
expect_error 3 "unknown tenant 'nosuch'" "$ADMIN" tenant show nosuch
expect_error 3 "unknown tenant 'nosuch'" "$ADMIN" tenant delete nosuch
expect_error 3 "unknown tenant 'nosuch'" "$ADMIN" key create nosuch
expect_error 3 "unknown tenant 'nosuch'" "$ADMIN" key list nosuch
expect_error 3 "unknown key '0123456789abcdef'" "$ADMIN" key revoke 0123456789abcdef
expect_error 1 "cannot open tenants store" "$ADMIN" tenant list --data-dir /proc/privid-nonexistent/data
expect 0 "$ADMIN" tenant list --json
expect_eq "$(jq -c '[.[].name]' <<<"$out")" '["acme","beta","epsilon"]' "failed commands changed nothing"

echo "PASS: privid-admin integration ($DB)"
