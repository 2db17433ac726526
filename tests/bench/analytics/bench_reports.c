/*
 * Benchmark of the k-anonymous reports (not a test): generates N visits
 * (default 10 million) over the year 2026 in PostgreSQL with generate_series
 * — 90% for tenant 1 (N/20 visitors, first visit spread over the year, about
 * 20 visits each, two locations), 10% for tenant 2 — plus a purchase for one
 * visit in ten, then times each report through pv_report_run (query and JSON,
 * one warm-up, median of R runs), once reading visits only ("path":"raw")
 * and once with the roll-up visit_rollup where it applies ("path":"rollup";
 * the same as raw for reports it cannot answer). Prints one JSON line per
 * figure. The generation bypasses the roll-up's triggers and rebuilds it at
 * the end (analytics_rollup_rebuild, timed).
 *   bench_reports DSN [N=10000000] [R=5]
 * The database privid_bench_r_<N> is created on DSN's server and kept, so a
 * second run skips the generation; drop it by hand when done.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "analytics/reports.h"
#include "common/error.h"
#include "tenants/admin_pg.h"

#ifndef PV_MIGRATIONS_DIR
#define PV_MIGRATIONS_DIR "migrations"
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_sql(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "%.80s...: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok ? 0 : -1;
}

/* Visits of one tenant: V visitors, visitor v comes 1 + (v*7919 % 39) times from a first day spread over the
 * year. */
static int generate(PGconn *c, int tenant, long long visitors)
{
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "INSERT INTO visits (tenant_id, ts, event_id, visitor, location, camera, status, distance) "
             "SELECT %d, t, 'e' || v || '-' || j, 'v' || v, 'store-' || (v %% 2), 'cam', "
             "CASE WHEN j = 0 THEN 'new' ELSE 'returning' END, 0.3 "
             "FROM generate_series(1::bigint, %lld) v, LATERAL (SELECT j, timestamptz '2026-01-01 00:00Z' + "
             "((v * 2654435761) %% 365) * interval '1 day' + j * interval '53 hours' + "
             "((v * 40503 + j * 977) %% 43200) * interval '1 second' AS t "
             "FROM generate_series(0, (v * 7919) %% 39) j) x WHERE t < timestamptz '2027-01-01 00:00Z'",
             tenant, visitors);
    if (run_sql(c, sql) != 0)
        return -1;
    snprintf(
        sql, sizeof(sql),
        "INSERT INTO events (tenant_id, ts, event_id, visitor, type, location, amount_minor, currency) "
        "SELECT tenant_id, ts + interval '1 minute', 'p' || event_id, visitor, 'purchase', location, "
        "100 + abs(hashtext(event_id)) %% 10000, CASE WHEN abs(hashtext(event_id)) %% 5 = 0 THEN 'USD' ELSE "
        "'EUR' END FROM visits WHERE tenant_id = %d AND abs(hashtext(event_id)) %% 10 = 0",
        tenant);
    return run_sql(c, sql);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_reports DSN [N=10000000] [R=5]\n");
        return 2;
    }
    const char *base = argv[1];
    long long n = argc > 2 ? atoll(argv[2]) : 10000000LL;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    char db[64], dsn[1024], sql[256], err[512];
    size_t applied = 0;
    snprintf(db, sizeof(db), "privid_bench_r_%lld", n);
    snprintf(dsn, sizeof(dsn), "%s dbname=%s", base, db);
    PGconn *admin = PQconnectdb(base), *c = NULL;
    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "connect: %s", PQerrorMessage(admin));
        return 1;
    }
    snprintf(sql, sizeof(sql), "SELECT 1 FROM pg_database WHERE datname = '%s'", db);
    PGresult *ex = PQexec(admin, sql);
    int fresh = PQresultStatus(ex) == PGRES_TUPLES_OK && PQntuples(ex) == 0, fresh_rollup = 0;
    PQclear(ex);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    if (fresh && run_sql(admin, sql) != 0)
        return 1;
    if (pv_admin_pg_connect(&c, dsn, err, sizeof(err)) != 0 ||
        pv_admin_migrate(c, PV_MIGRATIONS_DIR, NULL, NULL, &applied, err, sizeof(err)) != 0) {
        fprintf(stderr, "migrate: %s\n", err);
        return 1;
    }
    if (fresh) {
        double t0 = now_s();
        /* 20 visits per visitor on average; 90% of N for tenant 1, 10% for tenant 2 */
        if (run_sql(c, "SET synchronous_commit = off; SET maintenance_work_mem = '512MB'") != 0 ||
            run_sql(c, "SELECT analytics_ensure_partitions('2026-02-01', 11)") != 0 ||
            run_sql(c, "SET session_replication_role = replica") != 0 || /* no roll-up triggers */
            generate(c, 1, n * 9 / 200) != 0 || generate(c, 2, n / 200) != 0 ||
            run_sql(c, "SET session_replication_role = DEFAULT") != 0 ||
            run_sql(c, "VACUUM ANALYZE visits") != 0 || run_sql(c, "VACUUM ANALYZE events") != 0)
            return 1;
        printf("{\"figure\":\"generate\",\"seconds\":%.1f}\n", now_s() - t0);
        fresh_rollup = 1;
    }
    /* a database generated before migrations/0005 got its roll-up when 0005 was applied above */
    if (fresh_rollup || applied > 0) {
        double t0 = now_s();
        if (fresh_rollup && (run_sql(c, "SET work_mem = '256MB'") != 0 ||
                             run_sql(c, "SELECT analytics_rollup_rebuild()") != 0))
            return 1;
        if (fresh_rollup)
            printf("{\"figure\":\"rollup_rebuild\",\"seconds\":%.1f}\n", now_s() - t0);
        if (run_sql(c, "VACUUM ANALYZE visit_rollup") != 0)
            return 1;
    }
    PGresult *r =
        PQexec(c, "SELECT (SELECT count(*) FROM visits), (SELECT count(*) FROM visits WHERE tenant_id = 1), "
                  "(SELECT count(*) FROM events), (SELECT count(*) FROM visits WHERE tenant_id = 1 AND ts >= "
                  "'2026-06-01Z' AND ts < '2026-07-01Z'), (SELECT count(*) FROM visit_rollup)");
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        printf("{\"figure\":\"data\",\"visits\":%s,\"tenant1_visits\":%s,\"events\":%s,\"tenant1_visits_in_"
               "june\":%s,\"rollup_rows\":%s}\n",
               PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3),
               PQgetvalue(r, 0, 4));
    PQclear(r);
    fflush(stdout);

    pv_reports_t *rep = NULL, *raw = NULL;
    if (pv_reports_create(&rep, dsn, 1) != 0 || pv_reports_create(&raw, dsn, 1) != 0)
        return 1;
    pv_reports_set_rollup(raw, 0);
    static const struct {
        pv_report_kind_t kind;
        const char *name, *q;
    } cases[] = {
        {PV_REPORT_SUMMARY, "summary_30d", "from=2026-06-01T00:00:00Z&to=2026-07-01T00:00:00Z"},
        {PV_REPORT_SUMMARY, "summary_30d_location",
         "from=2026-06-01T00:00:00Z&to=2026-07-01T00:00:00Z&location=store-1"},
        {PV_REPORT_RETENTION, "retention_30d", "from=2026-06-01T00:00:00Z&to=2026-07-01T00:00:00Z"},
        {PV_REPORT_RETENTION, "retention_90d", "from=2026-04-01T00:00:00Z&to=2026-06-30T00:00:00Z"},
        {PV_REPORT_CONVERSION, "conversion_30d", "from=2026-06-01T00:00:00Z&to=2026-07-01T00:00:00Z"},
        {PV_REPORT_FREQUENCY, "frequency_30d", "from=2026-06-01T00:00:00Z&to=2026-07-01T00:00:00Z"},
        {PV_REPORT_TIMESERIES, "timeseries_30d_day",
         "from=2026-06-01T00:00:00Z&to=2026-07-01T00:00:00Z&bucket=day"},
        {PV_REPORT_TIMESERIES, "timeseries_90d_week",
         "from=2026-04-01T00:00:00Z&to=2026-06-30T00:00:00Z&bucket=week"},
        {PV_REPORT_FREQUENCY, "frequency_30d_location",
         "from=2026-06-01T00:00:00Z&to=2026-07-01T00:00:00Z&location=store-0"},
        {PV_REPORT_SUMMARY, "summary_365d", "from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z"},
    };
    for (size_t i = 0; i < 2 * sizeof(cases) / sizeof(cases[0]); i++) {
        size_t ci = i / 2;
        static json_t *raw_out; /* the raw path's answer, which the roll-up's must equal */
        pv_reports_t *path = i % 2 == 0 ? raw : rep;
        pv_report_query_t q;
        pv_report_error_t e;
        double ms[32];
        int nr = reps < 1 ? 1 : reps > 31 ? 31 : reps;
        if (pv_report_query_parse(&q, cases[ci].kind, cases[ci].q, strlen(cases[ci].q), &e) != 0)
            return 1;
        for (int k = 0; k <= nr; k++) {
            json_t *out = NULL;
            double t0 = now_s();
            if (pv_report_run(path, &out, &q, 1, &e) != 0) {
                fprintf(stderr, "%s: %s\n", cases[ci].name, e.text);
                return 1;
            }
            if (k > 0)
                ms[k - 1] = (now_s() - t0) * 1e3;
            if (k == nr && i % 2 == 0) {
                json_decref(raw_out);
                raw_out = out;
                out = NULL;
            } else if (k == nr && !json_equal(raw_out, out)) {
                fprintf(stderr, "%s: the roll-up's answer differs from the raw one\n", cases[ci].name);
                return 1;
            }
            json_decref(out);
        }
        qsort(ms, (size_t)nr, sizeof(double), cmp_double);
        printf("{\"figure\":\"%s\",\"path\":\"%s\",\"median_ms\":%.1f,\"min_ms\":%.1f,\"max_ms\":%.1f,"
               "\"runs\":%d}\n",
               cases[ci].name, i % 2 == 0 ? "raw" : "rollup", ms[nr / 2], ms[0], ms[nr - 1], nr);
        fflush(stdout);
    }
    pv_reports_destroy(rep);
    pv_reports_destroy(raw);
    PQfinish(c);
    PQfinish(admin);
    return 0;
}
