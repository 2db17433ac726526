#!/usr/bin/env bash
# The report routes through a real privid-gateway (--models off) with --pg on
# a freshly migrated database of the harness's PostgreSQL (PRIVID_TEST_PG):
# answers over a small history whose figures are known by construction,
# tenant isolation, the analytics scope, every bad parameter's status naming
# the parameter, 503 "analytics not configured" without --pg, and 503 with
# Retry-After while PostgreSQL is unreachable. (test_reports.c checks the
# figures and k-anonymity in depth.)
#   test_reports_http.sh PRIVID_ADMIN PRIVID_GATEWAY MIGRATIONS_DIR   (env PRIVID_TEST_PG)
. "$(dirname "$0")/../../lib.sh"
PV_ADMIN=$1
PV_GATEWAY=$2
MIG=$3
[ -n "${PRIVID_TEST_PG:-}" ] || { echo "FAIL: PRIVID_TEST_PG is not set (a PostgreSQL DSN where the test may create databases)" >&2; exit 1; }

DB=privid_rh_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
admin_sql() { psql "$PRIVID_TEST_PG" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
admin_sql "CREATE DATABASE $DB" || { echo "FAIL: cannot create database $DB" >&2; exit 1; }
drop_db() { admin_sql "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1; }
trap 'pv_cleanup; drop_db' EXIT
DSN="$PRIVID_TEST_PG dbname=$DB"
sql() { psql "$DSN" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

data="$PV_TMP/data"
admin() { "$PV_ADMIN" --data-dir "$data" "$@"; }
admin tenant create acme >/dev/null || pv_fail "tenant create acme"
admin tenant create bravo >/dev/null || pv_fail "tenant create bravo"
KA=$(admin key create acme --scopes analytics | head -1)
KB=$(admin key create bravo --scopes analytics | head -1)
KE=$(admin key create acme --scopes events | head -1)
admin migrate --pg "$DSN" --migrations "$MIG" >/dev/null || pv_fail "migrate"
TA=$(sql "SELECT tenant_id FROM tenants WHERE name = 'acme'")
TB=$(sql "SELECT tenant_id FROM tenants WHERE name = 'bravo'")

# acme: 40 visitors at north, each 3 visits on days 1, 2, 9 of the range (first new), 10 of them buy
# 500 EUR once; 3 visitors at south. bravo: 7 visitors at north, one visit each.
sql "SELECT analytics_ensure_partitions('2026-10-01', 2)" >/dev/null
sql "INSERT INTO visits (tenant_id, ts, event_id, visitor, location, status)
     SELECT $TA, timestamptz '2026-10-05 10:00Z' + d * interval '1 day', 'a' || v || '-' || d, 'va' || v, 'north',
            CASE WHEN d = 0 THEN 'new' ELSE 'returning' END
     FROM generate_series(1, 40) v, unnest(ARRAY[0, 1, 8]) d;
     INSERT INTO visits (tenant_id, ts, event_id, visitor, location, status)
     SELECT $TA, timestamptz '2026-10-06 10:00Z', 's' || v, 'vs' || v, 'south', 'new' FROM generate_series(1, 3) v;
     INSERT INTO events (tenant_id, ts, event_id, visitor, type, location, amount_minor, currency)
     SELECT $TA, timestamptz '2026-10-05 10:05Z', 'p' || v, 'va' || v, 'purchase', 'north', 500, 'EUR'
     FROM generate_series(1, 10) v;
     INSERT INTO visits (tenant_id, ts, event_id, visitor, location, status)
     SELECT $TB, timestamptz '2026-10-07 10:00Z', 'b' || v, 'vb' || v, 'north', 'new' FROM generate_series(1, 7) v" \
  || pv_fail "seed"

R="from=2026-10-05T00:00:00Z&to=2026-10-19T00:00:00Z"
get() { http GET "$GW_URL/v1/analytics/$1" -H "Authorization: Bearer ${2:-$KA}"; }

# without --pg
start_gateway nopg --threads 1 --workers 1 --data-dir "$data" --models off
get "summary?$R"
check_eq "no --pg: 503" 503 "$HTTP_STATUS"
check_match "no --pg: message" "analytics not configured" "$(jf .error.message)"
stop_pid "$GW_PID"

start_gateway main --threads 2 --workers 2 --data-dir "$data" --models off --pg "$DSN"
get "summary?$R"
check_eq "summary 200" 200 "$HTTP_STATUS"
check_eq "summary figures" "123 43 2.86" "$(jf '[.data.visits, .data.visitors, .data.visits_per_visitor]|map(tostring)|join(" ")')"
# returning visitors are 0 (< k): new (= the total) would reveal them, so both are suppressed; the
# repeat-visit rate too, as 3 visitors came once
check_eq "summary: complementary suppression" "true true true" \
  "$(jf '[.data.new_visitors.suppressed, .data.returning_visitors.suppressed, .data.repeat_visit_rate.suppressed]|map(tostring)|join(" ")')"
get "summary?$R&location=north"
check_eq "north figures" "120 40 3" "$(jf '[.data.visits, .data.visitors, .data.visits_per_visitor]|map(tostring)|join(" ")')"
get "summary?$R&location=south"
check_eq "south (3 visitors) suppressed" "true true" "$(jf '[.data.visits.suppressed, .data.visitors.suppressed]|map(tostring)|join(" ")')"
get "summary?$R" "$KB"
check_eq "bravo sees its own 7" "7 7" "$(jf '[.data.visits, .data.visitors]|map(tostring)|join(" ")')"
get "summary?$R&location=south" "$KB"
check_eq "bravo: no acme rows at south" "true" "$(jf '.data.visitors.suppressed')"
get "frequency?$R&location=north"
# all 40 came 3 times: the other classes (0 visitors) are suppressed, and so is the 40, which the total would give
check_eq "frequency" "40 true true true true true" "$(jf '[.data.visitors, (.data.distribution[]|.visitors|if type=="object" then .suppressed else . end)]|map(tostring)|join(" ")')"
get "timeseries?$R&location=north&bucket=day"
check_eq "timeseries days" 14 "$(jf '.data.buckets|length')"
check_eq "timeseries day 1, 2, 9" "40 40 40" "$(jf '[.data.buckets[0,1,8].visitors]|map(tostring)|join(" ")')"
check_eq "timeseries empty day" "true" "$(jf '.data.buckets[3].visitors.suppressed')"
get "retention?$R&location=north"
check_eq "retention cohort 2026-10-05" "2026-10-05 40" "$(jf '.data.cohorts[0].cohort + " " + (.data.cohorts[0].size|tostring)')"
check_eq "retention week 1 (all 40 back: not-back = 0 < k, suppressed)" "true" "$(jf '.data.cohorts[0].weeks[1].suppressed')"
get "conversion?$R&location=north"
check_eq "conversion" "40 10 0.25 EUR 5000 125" \
  "$(jf '[.data.all.visitors, .data.all.buyers, .data.all.conversion_rate, .data.all.revenue[0].currency, .data.all.revenue[0].amount_minor, .data.all.revenue[0].per_visitor_minor]|map(tostring)|join(" ")')"
get "conversion?$R&location=north&tz=Europe%2FParis&k=7"
check_eq "conversion k=7" "7 40" "$(jf '[.k, .data.all.visitors]|map(tostring)|join(" ")')"

# scope and bad parameters
get "summary?$R" "$KE"
check_eq "events-only key: 403" 403 "$HTTP_STATUS"
get "weekly?$R"
check_eq "unknown report: 404" 404 "$HTTP_STATUS"
bad() { # bad WHAT QUERY STATUS PARAM
  get "$2"
  check_eq "$1: status" "$3" "$HTTP_STATUS"
  check_match "$1: names $4" "$4" "$(jf .error.message)"
}
bad "missing from" "summary?to=2026-10-19T00:00:00Z" 400 from
bad "bad date" "summary?from=2026-10-32T00:00:00Z&to=2026-11-01T00:00:00Z" 400 from
bad "to <= from" "summary?from=2026-10-19T00:00:00Z&to=2026-10-05T00:00:00Z" 422 to
bad "range too long" "summary?from=2025-01-01T00:00:00Z&to=2026-10-19T00:00:00Z" 422 to
bad "bad tz" "summary?$R&tz=Not%20A%20Zone" 422 tz
bad "unknown tz" "summary?$R&tz=Mars%2FOlympus" 422 tz
bad "bad bucket" "timeseries?$R&bucket=month" 422 bucket
bad "k below tenant" "summary?$R&k=3" 422 "k"
bad "bad location" "summary?$R&location=" 422 location
bad "unknown parameter" "summary?$R&visitor=va1" 400 visitor
sql "INSERT INTO tenant_report_settings (tenant_id, k) VALUES ($TA, 9)" >/dev/null
bad "k below this tenant's 9" "summary?$R&k=8" 422 "k"
get "summary?$R"
check_eq "tenant k applies" 9 "$(jf .k)"

# PostgreSQL unreachable: 503 with Retry-After
stop_pid "$GW_PID"
start_gateway badpg --threads 1 --workers 1 --data-dir "$data" --models off --pg "host=127.0.0.1 port=1 dbname=x connect_timeout=2"
get "summary?$R"
check_eq "pg down: 503" 503 "$HTTP_STATUS"
check_match "pg down: Retry-After" '^[0-9]+$' "$(header Retry-After)"
pv_finish
