#!/usr/bin/env bash
# The tenant-pinned reporting role (migrations/0004_reporting_role.sql) and
# the Grafana dashboard (deploy/grafana/) against a real PostgreSQL: the
# migration applies with privid-admin migrate; a login role set up as README
# "Dashboards" says sees only its tenant's rows in every report view, cannot
# widen that with SET privid.tenant_id or lower k with SET privid.k, cannot
# read the tables; a member without a mapping sees nothing; the operator keeps
# SET privid.tenant_id; every dashboard query runs under the tenant role.
# Usage: test_reporting_role.sh PRIVID_ADMIN MIGRATIONS_DIR DASHBOARD_JSON,
# with PRIVID_TEST_PG (a server where the test may create databases and roles).
set -u
ADMIN=${1:?usage: test_reporting_role.sh PRIVID_ADMIN MIGRATIONS_DIR DASHBOARD_JSON}
MIG=${2:?}
DASH=${3:?}
STEP=start
fail() {
    echo "FAIL [$STEP]: $*" >&2
    exit 1
}
if [ -z "${PRIVID_TEST_PG:-}" ]; then
    echo "FAIL: PRIVID_TEST_PG is not set (a PostgreSQL DSN where the test may create databases and roles)." >&2
    exit 1
fi
for tool in psql jq; do command -v "$tool" >/dev/null || fail "$tool is not installed"; done

suffix=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
DB=privid_r_$suffix
RA=privid_ga_$suffix # pinned to tenant 1
RB=privid_gb_$suffix # member of privid_report, no mapping
WORK=$(mktemp -d)
admin_sql() { psql "$PRIVID_TEST_PG" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
cleanup() {
    admin_sql "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    admin_sql "DROP ROLE IF EXISTS $RA" >/dev/null 2>&1
    admin_sql "DROP ROLE IF EXISTS $RB" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
dsn_for() { # dsn_for DB [USER]
    case "$PRIVID_TEST_PG" in
    postgres://* | postgresql://*) fail "this test needs a key=value DSN in PRIVID_TEST_PG" ;;
    *) printf '%s dbname=%s%s' "$PRIVID_TEST_PG" "$1" "${2:+ user=$2}" ;;
    esac
}
admin_sql "CREATE DATABASE $DB" || fail "cannot create database $DB"
DSN=$(dsn_for "$DB")
sql() { psql "$DSN" -X -q -At -v ON_ERROR_STOP=1 -c "$1" || fail "query failed: $1"; }
# as ROLE: psql_as ROLE SQL (several statements allowed; prints the last result)
psql_as() { psql "$(dsn_for "$DB" "$1")" -X -q -At -v ON_ERROR_STOP=1 -c "$2" 2>"$WORK/err"; }
expect_eq() { [ "$1" = "$2" ] || fail "expected '$2', got '$1' ($3)"; }

STEP=migrate
PRIVID_DATA_DIR=$WORK/none "$ADMIN" migrate --pg "$DSN" --migrations "$MIG" >"$WORK/out" 2>&1 || fail "migrate: $(cat "$WORK/out")"
grep -q "applied 0004_reporting_role.sql" "$WORK/out" || fail "0004 not applied: $(cat "$WORK/out")"
PRIVID_DATA_DIR=$WORK/none "$ADMIN" migrate --pg "$DSN" --migrations "$MIG" >"$WORK/out" 2>&1 || fail "second migrate"
expect_eq "$(sql "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'privid_report'")" f "privid_report is NOLOGIN"

STEP=seed
# day 1: tenant 1 has 6 visitors at 'door' and 3 at 'till' (below k), tenant 2 has 7 at 'door';
# 5 buyers each; usage rows for both
sql "INSERT INTO visits (tenant_id, ts, event_id, visitor, location, status)
     SELECT 1, '2026-03-02 10:00Z'::timestamptz + g * interval '1 min', 'a' || g, 'va' || g, 'door',
            CASE WHEN g < 3 THEN 'new' ELSE 'returning' END FROM generate_series(1, 6) g;
     INSERT INTO visits (tenant_id, ts, event_id, visitor, location, status)
     SELECT 1, '2026-03-02 11:00Z'::timestamptz + g * interval '1 min', 't' || g, 'vt' || g, 'till', 'new'
     FROM generate_series(1, 3) g;
     INSERT INTO visits (tenant_id, ts, event_id, visitor, location, status)
     SELECT 2, '2026-03-02 10:00Z'::timestamptz + g * interval '1 min', 'b' || g, 'vb' || g, 'door', 'new'
     FROM generate_series(1, 7) g;
     INSERT INTO events (tenant_id, ts, event_id, visitor, type, location, amount_minor, currency)
     SELECT tn, '2026-03-02 12:00Z'::timestamptz + g * interval '1 min', 'p' || tn || g, 'v' || g, 'purchase',
            'door', 1000 * tn, 'EUR' FROM generate_series(1, 5) g, generate_series(1, 2) tn;
     INSERT INTO usage_daily VALUES (1, '2026-03-02', 20, 19, 25), (2, '2026-03-02', 40, 40, 50)"
# the documented set-up (README \"Dashboards\")
sql "CREATE ROLE $RA LOGIN IN ROLE privid_report; INSERT INTO report_role_tenants VALUES ('$RA', 1);
     ALTER ROLE $RA IN DATABASE $DB SET privid.tenant_id = '1';
     CREATE ROLE $RB LOGIN IN ROLE privid_report"

STEP=pinned
out=$(psql_as "$RA" "SELECT tenant_id, location, visitors FROM report_daily ORDER BY 1, 2") || fail "report_daily: $(cat "$WORK/err")"
expect_eq "$out" "1|door|6" "tenant 1 sees its door (till has 3 < k visitors)"
out=$(psql_as "$RA" "SET privid.tenant_id = '2'; SELECT string_agg(DISTINCT tenant_id::text, ',') FROM report_daily") || fail "$(cat "$WORK/err")"
expect_eq "$out" "1" "SET privid.tenant_id cannot switch tenants"
out=$(psql_as "$RA" "SET privid.k = '2'; SELECT count(*) FROM report_daily") || fail "$(cat "$WORK/err")"
expect_eq "$out" "1" "SET privid.k cannot lower k below the tenant's"
out=$(psql_as "$RA" "SET privid.k = '7'; SELECT count(*) FROM report_daily") || fail "$(cat "$WORK/err")"
expect_eq "$out" "0" "SET privid.k may raise k"
out=$(psql_as "$RA" "SELECT tenant_id, purchases, buyers, amount_minor FROM report_purchases_daily") || fail "$(cat "$WORK/err")"
expect_eq "$out" "1|5|5|5000" "purchases of tenant 1 only"
out=$(psql_as "$RA" "SELECT tenant_id, requests, images, faces FROM report_usage_daily") || fail "$(cat "$WORK/err")"
expect_eq "$out" "1|20|19|25" "usage of tenant 1 only"
out=$(psql_as "$RA" "SELECT string_agg(DISTINCT tenant_id::text, ',') FROM report_frequency") || fail "$(cat "$WORK/err")"
expect_eq "$out" "1" "frequency of tenant 1 only"
# tenant 1's own k raised to 7: its door (6 visitors) disappears for the pinned role
sql "INSERT INTO tenant_report_settings VALUES (1, 7)"
out=$(psql_as "$RA" "SELECT count(*) FROM report_daily") || fail "$(cat "$WORK/err")"
expect_eq "$out" "0" "the tenant's k applies to its role"
sql "DELETE FROM tenant_report_settings"

STEP=denied
for q in "SELECT count(*) FROM visits" "SELECT count(*) FROM events" "SELECT count(*) FROM usage_daily" \
    "SELECT count(*) FROM visits_daily" "SELECT count(*) FROM report_role_tenants" \
    "INSERT INTO report_role_tenants VALUES ('$RA', 2)" "UPDATE report_role_tenants SET tenant_id = 2" \
    "CREATE FUNCTION leak(text) RETURNS bool LANGUAGE sql AS 'SELECT true'"; do
    psql_as "$RA" "$q" >/dev/null && fail "the tenant role could run: $q"
    grep -q "permission denied" "$WORK/err" || fail "'$q' failed otherwise: $(cat "$WORK/err")"
done

STEP=unmapped
out=$(psql_as "$RB" "SET privid.tenant_id = '2'; SELECT (SELECT count(*) FROM report_daily) + (SELECT count(*) FROM report_usage_daily)") || fail "$(cat "$WORK/err")"
expect_eq "$out" "0" "a member without a mapping sees nothing, whatever it sets"

STEP=operator
expect_eq "$(sql "SET privid.tenant_id = '2'; SELECT tenant_id || '|' || visitors FROM report_daily")" "2|7" "the operator's SET still works"
expect_eq "$(sql "SELECT count(*) FROM report_daily")" "0" "no setting, no rows"

STEP=dashboard
jq -e '.panels | length > 0' "$DASH" >/dev/null || fail "dashboard JSON has no panels"
n=$(jq '[.panels[].targets[]] | length' "$DASH")
for i in $(seq 0 $((n - 1))); do
    q=$(jq -r "[.panels[].targets[]][$i].rawSql" "$DASH")
    # Grafana's macros, as its PostgreSQL data source expands them
    q=$(printf '%s' "$q" | sed -E "s/\\\$__timeFilter\(([^)]*)\)/\1 BETWEEN '2026-03-01T00:00:00Z' AND '2026-03-31T00:00:00Z'/g; s/\\\$__timeTo\(\)/'2026-03-31T00:00:00Z'/g")
    case "$q" in *'$'*) fail "query $i has an unexpanded macro: $q" ;; esac
    rows=$(psql_as "$RA" "$q") || fail "dashboard query $i failed as the tenant role: $(cat "$WORK/err"): $q"
    [ -n "$rows" ] || fail "dashboard query $i returned no rows for the seeded tenant: $q"
done
echo "ok: reporting role and dashboard ($n queries)"
