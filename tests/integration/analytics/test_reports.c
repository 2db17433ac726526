/*
 * Integration test of the k-anonymous reports (analytics/reports.c) against
 * the harness PostgreSQL (PRIVID_TEST_PG): it creates its own database,
 * applies migrations/, inserts a seeded history (two tenants, two
 * locations, eight weeks of visits and purchases), computes every figure
 * again here in C from the generated rows and compares each report. It also
 * checks k-anonymity independently of the implementation (every number shown
 * or derivable by subtraction within one answer counts at least k
 * visitors), tenant isolation, k settings, bad parameters and PostgreSQL
 * unreachable (503). The roll-up (migrations/0005) must give the same
 * answers as the raw visits, also after out-of-order batches and erasures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "analytics/reports.h"
#include "common/error.h"
#include "tenants/admin_pg.h"
#include "tests/integration/analytics/pgtest.h"

#define TA 1001
#define TB 1002
#define BASE 1788739200LL /* 2026-09-07T00:00:00Z, a Monday */
#define DAY 86400LL
#define WEEK (7 * DAY)
#define NV_MAX 20000
#define NP_MAX 20000

typedef struct {
    int tenant;
    long long ts; /* seconds */
    int visitor;  /* index, unique across tenants */
    int loc;      /* 0 north, 1 south */
    int is_new;
} visit_t;

typedef struct {
    int tenant;
    long long ts;
    int visitor;
    int loc;
    int cur; /* 0 EUR, 1 USD */
    long long amount;
} purchase_t;

static visit_t g_v[NV_MAX];
static purchase_t g_p[NP_MAX];
static int g_nv, g_np, g_nvisitors;
static char g_db[64], g_dsn[1024];
static const char *g_migrations;
static pv_reports_t *g_reports;
static const char *const LOC[] = {"north", "south"};
static const char *const CUR[] = {"EUR", "USD"};

static uint64_t g_seed = 0x9e3779b97f4a7c15ULL;
static unsigned rnd(unsigned n)
{
    g_seed ^= g_seed << 13, g_seed ^= g_seed >> 7, g_seed ^= g_seed << 17;
    return (unsigned)(g_seed % n);
}

/* One visitor's history: the first visit (new), then returning visits, with purchases. */
static void gen_visitor(int tenant, int loc_main, int other_loc_pct, int max_extra)
{
    int vis = g_nvisitors++;
    long long first = BASE + (long long)rnd(56) * DAY + rnd(DAY);
    int extra = (int)rnd((unsigned)max_extra + 1);
    if (rnd(3) == 0)
        extra = 0;
    long long ts = first;
    for (int i = 0; i <= extra && g_nv < NV_MAX && ts < BASE + 56 * DAY; i++) {
        int loc = (int)rnd(100) < other_loc_pct ? 1 - loc_main : loc_main;
        g_v[g_nv++] = (visit_t){tenant, ts, vis, loc, i == 0};
        if (rnd(5) == 0 && g_np < NP_MAX)
            g_p[g_np++] = (purchase_t){tenant, ts + 60, vis, loc, rnd(5) == 0, 100 + rnd(9900)};
        ts += 3600 + (long long)rnd(9 * DAY);
    }
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        fail();
    }
    PQclear(r);
}

static void copy_rows(PGconn *c, const char *sql, int events)
{
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COPY_IN);
    PQclear(r);
    char line[256];
    int n = events ? g_np : g_nv;
    for (int i = 0; i < n; i++) {
        int len;
        if (events) {
            const purchase_t *p = &g_p[i];
            len = snprintf(line, sizeof(line), "%d\t%lld\tp%d\tv%d\tpurchase\t%s\t%lld\t%s\n", p->tenant,
                           p->ts, i, p->visitor, LOC[p->loc], p->amount, CUR[p->cur]);
        } else {
            const visit_t *v = &g_v[i];
            len = snprintf(line, sizeof(line), "%d\t%lld\te%d\tv%d\t%s\t%s\n", v->tenant, v->ts, i,
                           v->visitor, LOC[v->loc], v->is_new ? "new" : "returning");
        }
        assert_int_equal(PQputCopyData(c, line, len), 1);
    }
    assert_int_equal(PQputCopyEnd(c, NULL), 1);
    r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fprintf(stderr, "copy: %s", PQerrorMessage(c));
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
}

/* Seeded history: tenant A 400 visitors mostly at north, 3 only at south; tenant B 60 visitors at north. */
static void load(void)
{
    for (int i = 0; i < 400; i++)
        gen_visitor(TA, 0, 0, 8);
    for (int i = 0; i < 3; i++)
        gen_visitor(TA, 1, 0, 3);
    for (int i = 0; i < 60; i++)
        gen_visitor(TB, 0, 0, 4);
    PGconn *c = PQconnectdb(g_dsn);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    exec_ok(c, "SELECT analytics_ensure_partitions('2026-09-15', 2)");
    exec_ok(c,
            "CREATE TEMP TABLE tv (tenant_id bigint, s bigint, event_id text, visitor text, location text, "
            "status text)");
    exec_ok(c, "CREATE TEMP TABLE tp (tenant_id bigint, s bigint, event_id text, visitor text, type text, "
               "location text, amount_minor bigint, currency text)");
    copy_rows(c, "COPY tv FROM STDIN", 0);
    copy_rows(c, "COPY tp FROM STDIN", 1);
    exec_ok(c, "INSERT INTO visits (tenant_id, ts, event_id, visitor, location, status) SELECT tenant_id, "
               "to_timestamp(s), event_id, visitor, location, status FROM tv");
    exec_ok(c,
            "INSERT INTO events (tenant_id, ts, event_id, visitor, type, location, amount_minor, currency) "
            "SELECT tenant_id, to_timestamp(s), event_id, visitor, type, location, amount_minor, currency "
            "FROM tp");
    exec_ok(c, "ANALYZE visits; ANALYZE events");
    PQfinish(c);
}

/* ---- the same figures, computed here ------------------------------------- */

typedef struct {
    int n, is_new, buyer, cur_buyer[2];
    long long amount[2];
    int first_week;           /* cohort (week index from BASE), -1 none */
    unsigned long long weeks; /* bit w: a visit in week w */
} pv_stat_t;

static pv_stat_t *stats(int tenant, long long from, long long to, int loc)
{
    pv_stat_t *s = calloc((size_t)g_nvisitors, sizeof(*s));
    for (int i = 0; i < g_nvisitors; i++)
        s[i].first_week = -1;
    for (int i = 0; i < g_nv; i++) {
        const visit_t *v = &g_v[i];
        if (v->tenant != tenant || v->ts < from || v->ts >= to || (loc >= 0 && v->loc != loc))
            continue;
        pv_stat_t *x = &s[v->visitor];
        int w = (int)((v->ts - BASE) / WEEK);
        x->n++;
        x->weeks |= 1ULL << w;
        if (v->is_new) {
            x->is_new = 1;
            if (x->first_week < 0 || w < x->first_week)
                x->first_week = w;
        }
    }
    for (int i = 0; i < g_np; i++) {
        const purchase_t *p = &g_p[i];
        if (p->tenant != tenant || p->ts < from || p->ts >= to || (loc >= 0 && p->loc != loc) ||
            s[p->visitor].n == 0)
            continue;
        pv_stat_t *x = &s[p->visitor];
        x->buyer = 1;
        x->cur_buyer[p->cur] = 1;
        x->amount[p->cur] += p->amount;
    }
    return s;
}

/* ---- k-anonymity, checked independently --------------------------------- */

/* A cell of an answer: its true value (computed here) and whether the answer shows or implies it. */
typedef struct {
    long long v;
    int known;
} kc_t;
typedef struct {
    int total, a, b;
} keq_t;

/*
 * Closes the known cells under the equations total = a + b (one unknown is
 * derivable from the other two), then asserts every known cell counts at
 * least k visitors and no equation leaves a pair of unknown parts whose sum
 * (derivable from the total) is below k.
 */
static void assert_k_anonymous(kc_t *c, int nc, const keq_t *e, int ne, long long k)
{
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < ne; i++) {
            kc_t *t = &c[e[i].total], *a = &c[e[i].a], *b = &c[e[i].b];
            int unknown = !t->known + !a->known + !b->known;
            if (unknown == 1) {
                t->known = a->known = b->known = 1;
                changed = 1;
            }
        }
    }
    for (int i = 0; i < nc; i++)
        if (c[i].known && c[i].v < k) {
            fprintf(stderr, "cell %d with %lld < k=%lld visitors is shown or derivable\n", i, c[i].v, k);
            fail();
        }
    for (int i = 0; i < ne; i++)
        if (c[e[i].total].known && !c[e[i].a].known && c[e[i].a].v + c[e[i].b].v < k)
            fail();
}

static int suppressed(const json_t *v)
{
    return json_is_object(v) && json_is_true(json_object_get(v, "suppressed"));
}

/* A shown number equals the expected one and is in a group of >= k; returns whether shown. */
static int check_count(const json_t *v, long long expect, long long group, long long k)
{
    if (suppressed(v))
        return 0;
    assert_true(json_is_integer(v));
    if (json_integer_value(v) != expect)
        fprintf(stderr, "got %lld, expected %lld\n", (long long)json_integer_value(v), expect);
    assert_int_equal(json_integer_value(v), expect);
    assert_true(group >= k);
    return 1;
}

static json_t *report(pv_report_kind_t kind, uint64_t tenant, const char *query)
{
    pv_report_query_t q;
    pv_report_error_t err;
    json_t *out = NULL;
    if (pv_report_query_parse(&q, kind, query, strlen(query), &err) != 0) {
        fprintf(stderr, "parse %s: %s\n", query, err.text);
        fail();
    }
    int rc = pv_report_run(g_reports, &out, &q, tenant, &err);
    if (rc != 0)
        fprintf(stderr, "run %s: %d %s\n", query, err.status, err.text);
    assert_int_equal(rc, 0);
    assert_non_null(out);
    return out;
}

static void run_error(pv_report_kind_t kind, uint64_t tenant, const char *query, int status,
                      const char *param)
{
    pv_report_query_t q;
    pv_report_error_t err;
    json_t *out = NULL;
    int rc = pv_report_query_parse(&q, kind, query, strlen(query), &err);
    if (rc == 0)
        rc = pv_report_run(g_reports, &out, &q, tenant, &err);
    if (rc == 0)
        fprintf(stderr, "expected an error for %s\n", query);
    assert_int_not_equal(rc, 0);
    assert_null(out);
    if (err.status != status || strcmp(err.param, param) != 0)
        fprintf(stderr, "%s: got %d %s (%s), expected %d %s\n", query, err.status, err.param, err.text,
                status, param);
    assert_int_equal(err.status, status);
    assert_string_equal(err.param, param);
}

#define RANGE "from=2026-09-14T00:00:00Z&to=2026-11-02T00:00:00Z"
#define R_FROM (BASE + WEEK)
#define R_TO (BASE + 8 * WEEK)

static void check_summary(uint64_t tenant, int loc, const char *query, long long k)
{
    json_t *o = report(PV_REPORT_SUMMARY, tenant, query);
    assert_int_equal(json_integer_value(json_object_get(o, "k")), k);
    json_t *d = json_object_get(o, "data");
    pv_stat_t *s = stats((int)tenant, R_FROM, R_TO, loc);
    long long n = 0, visits = 0, nw = 0, rep = 0;
    for (int i = 0; i < g_nvisitors; i++)
        if (s[i].n > 0)
            n++, visits += s[i].n, nw += s[i].is_new, rep += s[i].n >= 2;
    kc_t c[5] = {{n, 0}, {nw, 0}, {n - nw, 0}, {rep, 0}, {n - rep, 0}};
    c[0].known = check_count(json_object_get(d, "visitors"), n, n, k);
    if (c[0].known) {
        check_count(json_object_get(d, "visits"), visits, n, k);
        assert_true(json_real_value(json_object_get(d, "visits_per_visitor")) > 0.99 * visits / n &&
                    json_real_value(json_object_get(d, "visits_per_visitor")) < 1.01 * visits / n);
    } else {
        assert_true(suppressed(json_object_get(d, "visits")));
    }
    c[1].known = check_count(json_object_get(d, "new_visitors"), nw, nw, k);
    c[2].known = check_count(json_object_get(d, "returning_visitors"), n - nw, n - nw, k);
    json_t *rate = json_object_get(d, "repeat_visit_rate");
    c[3].known = !suppressed(rate);
    if (c[3].known) {
        assert_true(n > 0 && fabs(json_real_value(rate) - (double)rep / n) < 1e-3);
        c[4].known = 1; /* the rate and the total give both parts */
    }
    keq_t e[2] = {{0, 1, 2}, {0, 3, 4}};
    assert_k_anonymous(c, 5, e, 2, k);
    free(s);
    json_decref(o);
}

static void test_summary(void **state)
{
    (void)state;
    check_summary(TA, -1, RANGE, 5);
    check_summary(TA, 0, RANGE "&location=north", 5);
    check_summary(TA, -1, RANGE "&k=20", 20);
    check_summary(TB, -1, RANGE, 5);
    /* south has 3 visitors (< k): everything suppressed */
    json_t *o = report(PV_REPORT_SUMMARY, TA, RANGE "&location=south");
    json_t *d = json_object_get(o, "data");
    const char *keys[] = {
        "visits",           "visitors", "new_visitors", "returning_visitors", "visits_per_visitor",
        "repeat_visit_rate"};
    for (size_t i = 0; i < 6; i++)
        assert_true(suppressed(json_object_get(d, keys[i])));
    check_summary(TA, 1, RANGE "&location=south", 5);
    json_decref(o);
}

static void test_frequency(void **state)
{
    (void)state;
    const struct {
        uint64_t t;
        int loc;
        const char *q;
    } cases[] = {
        {TA, -1, RANGE}, {TA, 0, RANGE "&location=north"}, {TB, -1, RANGE}, {TA, 1, RANGE "&location=south"}};
    for (size_t ci = 0; ci < 4; ci++) {
        json_t *o = report(PV_REPORT_FREQUENCY, cases[ci].t, cases[ci].q);
        json_t *d = json_object_get(o, "data");
        pv_stat_t *s = stats((int)cases[ci].t, R_FROM, R_TO, cases[ci].loc);
        long long cls[6] = {0};
        for (int i = 0; i < g_nvisitors; i++)
            if (s[i].n > 0)
                cls[0]++, cls[s[i].n >= 5 ? 5 : s[i].n]++;
        kc_t c[6];
        c[0] = (kc_t){cls[0], check_count(json_object_get(d, "visitors"), cls[0], cls[0], 5)};
        json_t *dist = json_object_get(d, "distribution");
        assert_int_equal(json_array_size(dist), 5);
        for (int i = 1; i <= 5; i++)
            c[i] =
                (kc_t){cls[i], check_count(json_object_get(json_array_get(dist, (size_t)i - 1), "visitors"),
                                           cls[i], cls[i], 5)};
        /* total = c1 + rest; chain the five parts into two-part equations through partial sums */
        kc_t all[10];
        memcpy(all, c, sizeof(c));
        /* partial sums: 6 = c4 + c5, 7 = c3 + 6, 8 = c2 + 7, and 0 = c1 + 8 */
        all[6] = (kc_t){cls[4] + cls[5], 0};
        all[7] = (kc_t){cls[3] + all[6].v, 0};
        all[8] = (kc_t){cls[2] + all[7].v, 0};
        keq_t e[4] = {{6, 4, 5}, {7, 3, 6}, {8, 2, 7}, {0, 1, 8}};
        assert_k_anonymous(all, 9, e, 4, 5);
        /* and whatever the order of subtraction: the suppressed classes together count 0 or >= k */
        if (c[0].known) {
            long long sum = 0;
            int ns = 0;
            for (int i = 1; i <= 5; i++)
                if (!c[i].known)
                    sum += c[i].v, ns++;
            assert_true(ns != 1);
            assert_true(ns == 0 || sum >= 5);
        }
        free(s);
        json_decref(o);
    }
}

static void check_conversion(uint64_t tenant, int loc, const char *query)
{
    json_t *o = report(PV_REPORT_CONVERSION, tenant, query);
    json_t *d = json_object_get(o, "data");
    pv_stat_t *s = stats((int)tenant, R_FROM, R_TO, loc);
    /* cells per segment g (0 all, 1 new, 2 returning): visitors 3g, buyers 3g+1, non-buyers 3g+2;
     * currency u buyers 9+3u+g */
    long long v[15] = {0}, amount[2][3] = {{0}};
    for (int i = 0; i < g_nvisitors; i++) {
        if (s[i].n == 0)
            continue;
        int segs[2] = {0, s[i].is_new ? 1 : 2};
        for (int j = 0; j < 2; j++) {
            int g = segs[j];
            v[3 * g]++;
            v[3 * g + 1] += s[i].buyer;
            for (int u = 0; u < 2; u++)
                if (s[i].cur_buyer[u])
                    v[9 + 3 * u + g]++, amount[u][g] += s[i].amount[u];
        }
    }
    for (int g = 0; g < 3; g++)
        v[3 * g + 2] = v[3 * g] - v[3 * g + 1];
    kc_t c[15];
    for (int i = 0; i < 15; i++)
        c[i] = (kc_t){v[i], 0};
    static const char *const seg[] = {"all", "new", "returning"};
    for (int g = 0; g < 3; g++) {
        json_t *sg = json_object_get(d, seg[g]);
        assert_non_null(sg);
        c[3 * g].known = check_count(json_object_get(sg, "visitors"), v[3 * g], v[3 * g], 5);
        c[3 * g + 1].known = check_count(json_object_get(sg, "buyers"), v[3 * g + 1], v[3 * g + 1], 5);
        json_t *rate = json_object_get(sg, "conversion_rate");
        if (!suppressed(rate))
            assert_true(fabs(json_real_value(rate) - (double)v[3 * g + 1] / v[3 * g]) < 1e-3);
        json_t *rev = json_object_get(sg, "revenue");
        for (size_t r = 0; r < json_array_size(rev); r++) {
            json_t *x = json_array_get(rev, r);
            int u = strcmp(json_string_value(json_object_get(x, "currency")), "USD") == 0;
            int cb = 9 + 3 * u + g;
            c[cb].known = check_count(json_object_get(x, "buyers"), v[cb], v[cb], 5);
            if (c[cb].known)
                check_count(json_object_get(x, "amount_minor"), amount[u][g], v[cb], 5);
            else
                assert_true(suppressed(json_object_get(x, "amount_minor")));
        }
    }
    keq_t e[8] = {{0, 3, 6}, {1, 4, 7}, {2, 5, 8},   {0, 1, 2},
                  {3, 4, 5}, {6, 7, 8}, {9, 10, 11}, {12, 13, 14}};
    assert_k_anonymous(c, 15, e, 8, 5);
    assert_true(c[0].known || loc == 1);
    free(s);
    json_decref(o);
}

static void test_conversion(void **state)
{
    (void)state;
    check_conversion(TA, -1, RANGE);
    check_conversion(TA, 0, RANGE "&location=north");
    check_conversion(TA, 1, RANGE "&location=south");
    check_conversion(TB, -1, RANGE);
}

static void check_retention(uint64_t tenant, int loc, const char *query)
{
    json_t *o = report(PV_REPORT_RETENTION, tenant, query);
    json_t *cohorts = json_object_get(json_object_get(o, "data"), "cohorts");
    pv_stat_t *s = stats((int)tenant, R_FROM, R_TO, loc);
    int shown = 0;
    for (int cw = 1; cw < 8; cw++) {
        long long cell[8] = {0};
        for (int i = 0; i < g_nvisitors; i++)
            if (s[i].first_week == cw)
                for (int w = cw; w < 8; w++)
                    cell[w - cw] += (s[i].weeks >> w) & 1;
        if (cell[0] == 0)
            continue;
        char name[16];
        time_t t = (time_t)(BASE + cw * WEEK);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(name, sizeof(name), "%Y-%m-%d", &tm);
        json_t *row = NULL;
        for (size_t i = 0; i < json_array_size(cohorts); i++)
            if (strcmp(json_string_value(json_object_get(json_array_get(cohorts, i), "cohort")), name) == 0)
                row = json_array_get(cohorts, i);
        assert_non_null(row);
        json_t *weeks = json_object_get(row, "weeks");
        assert_int_equal(json_array_size(weeks), 8 - cw);
        kc_t c[16];
        keq_t e[8];
        c[0] = (kc_t){cell[0], check_count(json_object_get(row, "size"), cell[0], cell[0], 5)};
        for (int w = 1; w < 8 - cw; w++) {
            c[2 * w - 1] =
                (kc_t){cell[w], check_count(json_array_get(weeks, (size_t)w), cell[w], cell[w], 5)};
            c[2 * w] = (kc_t){cell[0] - cell[w], 0}; /* not back: printed nowhere, derivable */
            e[w - 1] = (keq_t){0, 2 * w - 1, 2 * w};
            shown += c[2 * w - 1].known;
        }
        assert_k_anonymous(c, 2 * (8 - cw) - 1, e, 8 - cw - 1, 5);
    }
    if (tenant == TA && loc != 1)
        assert_true(shown > 0); /* tenant A is big enough for some week-n cells */
    free(s);
    json_decref(o);
}

static void test_retention(void **state)
{
    (void)state;
    check_retention(TA, -1, RANGE);
    check_retention(TA, 0, RANGE "&location=north");
    check_retention(TA, 1, RANGE "&location=south");
    check_retention(TB, -1, RANGE);
}

static void test_timeseries(void **state)
{
    (void)state;
    json_t *o = report(PV_REPORT_TIMESERIES, TA, RANGE "&bucket=day");
    json_t *b = json_object_get(json_object_get(o, "data"), "buckets");
    assert_int_equal(json_array_size(b), 49);
    int shown = 0;
    for (int day = 0; day < 49; day++) {
        long long from = R_FROM + day * DAY, visits = 0, n = 0;
        pv_stat_t *s = stats(TA, from, from + DAY, -1);
        for (int i = 0; i < g_nvisitors; i++)
            if (s[i].n > 0)
                n++, visits += s[i].n;
        json_t *x = json_array_get(b, (size_t)day);
        if (check_count(json_object_get(x, "visitors"), n, n, 5)) {
            check_count(json_object_get(x, "visits"), visits, n, 5);
            shown++;
        } else {
            assert_true(n < 5);
        }
        free(s);
    }
    assert_true(shown > 20);
    json_decref(o);
    /* weeks, hours; and a zone: Paris days start at 22:00Z in summer */
    o = report(PV_REPORT_TIMESERIES, TA, RANGE "&bucket=week");
    assert_int_equal(json_array_size(json_object_get(json_object_get(o, "data"), "buckets")), 7);
    json_decref(o);
    o = report(PV_REPORT_TIMESERIES, TA, "from=2026-09-14T00:00:00Z&to=2026-09-15T00:00:00Z&bucket=hour");
    assert_int_equal(json_array_size(json_object_get(json_object_get(o, "data"), "buckets")), 24);
    json_decref(o);
    o = report(PV_REPORT_TIMESERIES, TA, RANGE "&bucket=day&tz=Europe%2FParis");
    b = json_object_get(json_object_get(o, "data"), "buckets");
    assert_string_equal(json_string_value(json_object_get(json_array_get(b, 1), "start")),
                        "2026-09-14T22:00:00Z");
    json_decref(o);
}

/* Tenant B's reports are computed from B's rows only: any A row would change these figures. */
static void test_isolation(void **state)
{
    (void)state;
    check_summary(TB, -1, RANGE, 5);
    check_summary(TB, 1, RANGE "&location=south", 5); /* B has nobody at south; A has 3 */
    json_t *o = report(PV_REPORT_SUMMARY, 999999, RANGE);
    assert_true(suppressed(json_object_get(json_object_get(o, "data"), "visitors")));
    json_decref(o);
}

static void test_k_setting(void **state)
{
    (void)state;
    PGconn *c = PQconnectdb(g_dsn);
    exec_ok(c, "INSERT INTO tenant_report_settings (tenant_id, k) VALUES (1002, 8)");
    check_summary(TB, -1, RANGE, 8);
    check_summary(TB, -1, RANGE "&k=9", 9);
    run_error(PV_REPORT_SUMMARY, TB, RANGE "&k=6", 422, "k");
    run_error(PV_REPORT_SUMMARY, TA, RANGE "&k=1", 422, "k");
    exec_ok(c, "DELETE FROM tenant_report_settings");
    PQfinish(c);
}

static void test_bad_params(void **state)
{
    (void)state;
    run_error(PV_REPORT_SUMMARY, TA, "to=2026-11-02T00:00:00Z", 400, "from");
    run_error(PV_REPORT_SUMMARY, TA, "from=2026-11-02T00:00:00Z", 400, "to");
    run_error(PV_REPORT_SUMMARY, TA, "from=yesterday&to=2026-11-02T00:00:00Z", 400, "from");
    run_error(PV_REPORT_SUMMARY, TA, "from=2026-09-14T00:00:00Z&to=2026-13-02T00:00:00Z", 400, "to");
    run_error(PV_REPORT_SUMMARY, TA, "from=2026-11-02T00:00:00Z&to=2026-11-02T00:00:00Z", 422, "to");
    run_error(PV_REPORT_SUMMARY, TA, "from=2026-11-02T00:00:00Z&to=2026-10-02T00:00:00Z", 422, "to");
    run_error(PV_REPORT_SUMMARY, TA, "from=2025-01-01T00:00:00Z&to=2026-11-02T00:00:00Z", 422, "to");
    run_error(PV_REPORT_SUMMARY, TA, RANGE "&tz=Europe%2F..%2Fetc", 422, "tz");
    run_error(PV_REPORT_SUMMARY, TA, RANGE "&tz=Mars%2FOlympus_Mons", 422, "tz");
    run_error(PV_REPORT_SUMMARY, TA, RANGE "&tz='; DROP TABLE visits; --", 422, "tz");
    run_error(PV_REPORT_TIMESERIES, TA, RANGE "&bucket=month", 422, "bucket");
    run_error(PV_REPORT_SUMMARY, TA, RANGE "&bucket=day", 400, "bucket"); /* only timeseries has buckets */
    run_error(PV_REPORT_SUMMARY, TA, RANGE "&k=abc", 400, "k");
    run_error(PV_REPORT_SUMMARY, TA, RANGE "&k=4", 422, "k");
    run_error(PV_REPORT_SUMMARY, TA, RANGE "&visitor=v1", 400, "visitor");
    run_error(PV_REPORT_SUMMARY, TA, RANGE "&from=2026-09-14T00:00:00Z", 400, "from");
    run_error(PV_REPORT_SUMMARY, TA, RANGE "&location=", 422, "location");
    run_error(PV_REPORT_SUMMARY, TA, RANGE "&location=a%01b", 422, "location");
    run_error(PV_REPORT_SUMMARY, TA, RANGE "&location=%zz", 400, "location");
    /* exactly 366 days is allowed */
    json_t *o = report(PV_REPORT_SUMMARY, TA, "from=2026-01-01T00:00:00Z&to=2027-01-02T00:00:00Z");
    json_decref(o);
}

static void test_pg_down(void **state)
{
    (void)state;
    pv_reports_t *r = NULL;
    pv_report_query_t q;
    pv_report_error_t err;
    json_t *out = NULL;
    assert_int_equal(pv_reports_create(&r, "host=127.0.0.1 port=1 dbname=none connect_timeout=2", 2), 0);
    assert_int_equal(pv_report_query_parse(&q, PV_REPORT_SUMMARY, RANGE, strlen(RANGE), &err), 0);
    assert_int_equal(pv_report_run(r, &out, &q, TA, &err), PV_EUNAVAIL);
    assert_int_equal(err.status, 503);
    assert_null(out);
    pv_reports_destroy(r);
    /* a connection dropped by the server is reopened on the next report */
    PGconn *c = PQconnectdb(g_dsn);
    json_decref(report(PV_REPORT_SUMMARY, TA, RANGE));
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' AND pid <> "
             "pg_backend_pid()",
             g_db);
    exec_ok(c, sql);
    PQfinish(c);
    pgt_sleep_ms(100);
    json_decref(report(PV_REPORT_SUMMARY, TA, RANGE));
}

/* ---- the roll-up (migrations/0005) against the raw visits ----------------- */

#define TC 1003

static json_t *report_on(pv_reports_t *r, pv_report_kind_t kind, uint64_t tenant, const char *query)
{
    pv_report_query_t q;
    pv_report_error_t err;
    json_t *out = NULL;
    assert_int_equal(pv_report_query_parse(&q, kind, query, strlen(query), &err), 0);
    int rc = pv_report_run(r, &out, &q, tenant, &err);
    if (rc != 0)
        fprintf(stderr, "run %s: %d %s\n", query, err.status, err.text);
    assert_int_equal(rc, 0);
    return out;
}

/* Tenant C's visits arrive in shuffled batches (out of order, replays), then
 * some visitors are erased and single visits deleted: the roll-up the
 * triggers kept equals a rebuild, and every report the roll-up answers
 * equals the same report over the raw visits, over random whole-day ranges. */
static void test_rollup_equals_raw(void **state)
{
    (void)state;
    enum { NVIS = 220, NMAX = 2400 };
    typedef struct {
        long long ts;
        int visitor, loc, is_new;
    } cv_t;
    static cv_t v[NMAX];
    int n = 0;
    for (int i = 0; i < NVIS; i++) {
        int visits = 1 + (int)rnd(12), home = (int)rnd(2);
        for (int j = 0; j < visits && n < NMAX; j++) {
            /* a few visitors get a second 'new' visit; some come twice a day */
            long long day =
                rnd(4) == 0 && n > 0 && v[n - 1].visitor == i ? (v[n - 1].ts - BASE) / DAY : rnd(56);
            v[n++] =
                (cv_t){BASE + day * DAY + rnd(DAY), i, rnd(5) == 0 ? 1 - home : home, j == 0 || rnd(40) == 0};
        }
    }
    for (int i = n - 1; i > 0; i--) { /* shuffle: batches arrive out of order */
        int j = (int)rnd((unsigned)i + 1);
        cv_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    PGconn *c = PQconnectdb(g_dsn);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    size_t size = (size_t)NMAX * 96 + 256;
    char *sql = malloc(size);
    assert_non_null(sql);
    /* four batches, then the second again (a replay) */
    for (int b = 0; b < 5; b++) {
        int lo = (b == 4 ? 1 : b) * n / 4, hi = (b == 4 ? 2 : b + 1) * n / 4;
        size_t o = (size_t)snprintf(sql, size,
                                    "INSERT INTO visits (tenant_id, ts, event_id, visitor, "
                                    "location, status) VALUES ");
        for (int i = lo; i < hi; i++)
            o += (size_t)snprintf(sql + o, size - o, "%s(%d, to_timestamp(%lld), 'c%d', 'w%d', '%s', '%s')",
                                  i > lo ? "," : "", TC, v[i].ts, i, v[i].visitor, LOC[v[i].loc],
                                  v[i].is_new ? "new" : "returning");
        snprintf(sql + o, size - o, " ON CONFLICT DO NOTHING");
        exec_ok(c, sql);
    }
    assert_int_equal(pgt_rollup_diff(c), 0);
    /* erasures (the writer's statement shape) and single deletions */
    for (int i = 0; i < 12; i++) {
        snprintf(sql, size,
                 "DELETE FROM visits v USING (SELECT %d AS t, 'w%u' AS w) b WHERE v.tenant_id = b.t "
                 "AND v.visitor = b.w",
                 TC, rnd(NVIS));
        exec_ok(c, sql);
    }
    snprintf(sql, size,
             "DELETE FROM visits WHERE tenant_id = %d AND event_id IN ('c1', 'c7', 'c100', 'c333')", TC);
    exec_ok(c, sql);
    assert_int_equal(pgt_rollup_diff(c), 0);
    char sum[128];
    snprintf(sum, sizeof(sum), "SELECT sum(n0) FROM visit_rollup WHERE tenant_id = %d AND per_location", TC);
    snprintf(sql, size, "SELECT count(*) FROM visits WHERE tenant_id = %d", TC);
    assert_int_equal(pgt_scalar(c, sum), pgt_scalar(c, sql));

    pv_reports_t *raw = NULL;
    assert_int_equal(pv_reports_create(&raw, g_dsn, 1), 0);
    pv_reports_set_rollup(raw, 0);
    static const pv_report_kind_t kinds[] = {PV_REPORT_SUMMARY, PV_REPORT_FREQUENCY, PV_REPORT_TIMESERIES,
                                             PV_REPORT_TIMESERIES};
    int shown = 0;
    for (int i = 0; i < 40; i++) {
        long long from = BASE + (long long)rnd(50) * DAY, to = from + (1 + (long long)rnd(20)) * DAY;
        char q[256], f[32], t[32];
        time_t fs = (time_t)from, ts = (time_t)to;
        strftime(f, sizeof(f), "%Y-%m-%dT%H:%M:%SZ", gmtime(&fs));
        strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", gmtime(&ts));
        int k = i % 4, loc = (int)rnd(3);
        snprintf(q, sizeof(q), "from=%s&to=%s%s%s%s", f, t, loc < 2 ? "&location=" : "",
                 loc < 2 ? LOC[loc] : "",
                 k == 2   ? "&bucket=day"
                 : k == 3 ? "&bucket=week"
                          : "");
        json_t *a = report_on(g_reports, kinds[k], TC, q), *b = report_on(raw, kinds[k], TC, q);
        if (!json_equal(a, b)) {
            char *x = json_dumps(a, JSON_COMPACT), *y = json_dumps(b, JSON_COMPACT);
            fprintf(stderr, "%s\nroll-up: %s\nraw:     %s\n", q, x, y);
            free(x), free(y);
        }
        assert_true(json_equal(a, b));
        shown += kinds[k] == PV_REPORT_SUMMARY &&
                 json_is_integer(json_object_get(json_object_get(a, "data"), "visits"));
        json_decref(a);
        json_decref(b);
    }
    assert_true(shown >= 3); /* the comparisons were not all of suppressed cells */
    /* and the reports above really read the roll-up: skewing it shows */
    static const char Q[] = "from=2026-09-14T00:00:00Z&to=2026-10-05T00:00:00Z";
    json_t *before = report_on(g_reports, PV_REPORT_SUMMARY, TC, Q);
    snprintf(sql, size, "UPDATE visit_rollup SET n0 = n0 + 1000 WHERE tenant_id = %d AND lag_day = day", TC);
    exec_ok(c, sql);
    json_t *skewed = report_on(g_reports, PV_REPORT_SUMMARY, TC, Q),
           *rawo = report_on(raw, PV_REPORT_SUMMARY, TC, Q);
    snprintf(sql, size, "UPDATE visit_rollup SET n0 = n0 - 1000 WHERE tenant_id = %d AND lag_day = day", TC);
    exec_ok(c, sql);
    assert_true(json_equal(before, rawo));
    assert_false(json_equal(before, skewed));
    json_decref(before);
    json_decref(skewed);
    json_decref(rawo);
    pv_reports_destroy(raw);
    free(sql);
    PQfinish(c);
}

#define TD 1004

static void summary_equal(pv_reports_t *raw, const char *q, int want_equal_skewed, PGconn *c)
{
    char sql[160];
    json_t *a = report_on(g_reports, PV_REPORT_SUMMARY, TD, q), *b = report_on(raw, PV_REPORT_SUMMARY, TD, q);
    snprintf(sql, sizeof(sql),
             "UPDATE visit_rollup SET n0 = n0 + 1000 WHERE tenant_id = %d AND lag_day = day", TD);
    exec_ok(c, sql);
    json_t *skewed = report_on(g_reports, PV_REPORT_SUMMARY, TD, q);
    snprintf(sql, sizeof(sql),
             "UPDATE visit_rollup SET n0 = n0 - 1000 WHERE tenant_id = %d AND lag_day = day", TD);
    exec_ok(c, sql);
    assert_true(json_equal(a, b));
    assert_true(json_is_integer(json_object_get(json_object_get(a, "data"), "visits")));
    assert_int_equal(json_equal(skewed, b), want_equal_skewed);
    json_decref(a);
    json_decref(b);
    json_decref(skewed);
}

/* The writer's deferred roll-up (migrations/0007). Visits inserted with
 * privid.rollup_deferred = on wait in visit_rollup_pending; synchronous
 * inserts and erasures of visitors that have pending visits, and catch-ups
 * in small chunks, come in between. While anything of the tenant is
 * pending its reports read visits (a skewed roll-up does not show); once
 * caught up the roll-up equals a rebuild and the reports read it again. */
static void test_rollup_deferred(void **state)
{
    (void)state;
    enum { NVIS = 150, NMAX = 1600, NB = 6 };
    typedef struct {
        long long ts;
        int visitor, loc, is_new;
    } dv_t;
    static dv_t v[NMAX];
    int n = 0;
    for (int i = 0; i < NVIS; i++)
        for (int j = 0, visits = 1 + (int)rnd(12); j < visits && n < NMAX; j++)
            v[n++] = (dv_t){BASE + (long long)rnd(28) * DAY + rnd(DAY), i, (int)rnd(2), j == 0};
    for (int i = n - 1; i > 0; i--) { /* out of order, as replays and late events come */
        int j = (int)rnd((unsigned)i + 1);
        dv_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    PGconn *c = PQconnectdb(g_dsn), *d = PQconnectdb(g_dsn);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    assert_int_equal(PQstatus(d), CONNECTION_OK);
    exec_ok(d, "SET privid.rollup_deferred = on");
    size_t size = (size_t)NMAX * 96 + 256;
    char *sql = malloc(size);
    assert_non_null(sql);
    for (int b = 0; b < NB; b++) {
        int lo = b * n / NB, hi = (b + 1) * n / NB;
        size_t o = (size_t)snprintf(
            sql, size, "INSERT INTO visits (tenant_id, ts, event_id, visitor, location, status) VALUES ");
        for (int i = lo; i < hi; i++)
            o += (size_t)snprintf(sql + o, size - o, "%s(%d, to_timestamp(%lld), 'd%d', 'u%d', '%s', '%s')",
                                  i > lo ? "," : "", TD, v[i].ts, i, v[i].visitor, LOC[v[i].loc],
                                  v[i].is_new ? "new" : "returning");
        snprintf(sql + o, size - o, " ON CONFLICT DO NOTHING");
        exec_ok(b == 2 ? c : d, sql); /* batch 2 synchronous: it also applies its visitors' pending visits */
        if (b == 1 || b == 3)
            for (int k = 0; k < 3; k++)
                exec_ok(c, "SELECT analytics_rollup_catch_up(40)");
        if (b == 4)
            for (int k = 0; k < 6;
                 k++) { /* erasures (the writer's statement shape) while visits are pending */
                snprintf(sql, size,
                         "DELETE FROM visits v USING (SELECT %d AS t, 'u%u' AS w) e WHERE v.tenant_id = e.t "
                         "AND v.visitor = e.w",
                         TD, rnd(NVIS));
                exec_ok(c, sql);
            }
    }
    snprintf(sql, size, "DELETE FROM visits WHERE tenant_id = %d AND event_id IN ('d3', 'd77', 'd901')", TD);
    exec_ok(d, sql);
    snprintf(sql, size, "SELECT count(*) FROM visit_rollup_pending WHERE tenant_id = %d", TD);
    assert_true(pgt_scalar(c, sql) > 0);

    pv_reports_t *raw = NULL;
    assert_int_equal(pv_reports_create(&raw, g_dsn, 1), 0);
    pv_reports_set_rollup(raw, 0);
    static const char Q[] = "from=2026-09-07T00:00:00Z&to=2026-10-05T00:00:00Z";
    summary_equal(raw, Q, 1, c); /* pending: visits are read, the skew does not show */

    long long applied, total = 0;
    while ((applied = pgt_scalar(c, "SELECT analytics_rollup_catch_up(100)")) > 0)
        total += applied;
    assert_true(total > 0);
    assert_int_equal(pgt_scalar(c, sql), 0);
    assert_int_equal(pgt_rollup_diff(c), 0);
    snprintf(sql, size, "SELECT sum(n0) FROM visit_rollup WHERE tenant_id = %d AND per_location", TD);
    long long rolled = pgt_scalar(c, sql);
    snprintf(sql, size, "SELECT count(*) FROM visits WHERE tenant_id = %d", TD);
    assert_int_equal(rolled, pgt_scalar(c, sql));
    summary_equal(raw, Q, 0, c); /* caught up: the roll-up is read again */
    pv_reports_destroy(raw);
    free(sql);
    PQfinish(c);
    PQfinish(d);
}

static int setup_group(void **state)
{
    (void)state;
    load();
    return pv_reports_create(&g_reports, g_dsn, 4);
}

static int teardown_group(void **state)
{
    (void)state;
    pv_reports_destroy(g_reports);
    return 0;
}

int main(int argc, char **argv)
{
    pgt_db_t db;
    int rc = 1;
    if (argc != 2) {
        fprintf(stderr, "usage: test_reports MIGRATIONS_DIR\n");
        return 2;
    }
    g_migrations = argv[1];
    if (pgt_db_create(&db, "privid_r", g_migrations) != 0)
        goto drop;
    snprintf(g_db, sizeof(g_db), "%s", db.name);
    snprintf(g_dsn, sizeof(g_dsn), "%s", db.dsn);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary),         cmocka_unit_test(test_frequency),
        cmocka_unit_test(test_conversion),      cmocka_unit_test(test_retention),
        cmocka_unit_test(test_timeseries),      cmocka_unit_test(test_isolation),
        cmocka_unit_test(test_k_setting),       cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_pg_down),         cmocka_unit_test(test_rollup_equals_raw),
        cmocka_unit_test(test_rollup_deferred),
    };
    rc = cmocka_run_group_tests_name("analytics_reports", tests, setup_group, teardown_group);
drop:
    pgt_db_drop(&db);
    return rc;
}
