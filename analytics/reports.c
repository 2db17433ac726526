/*
 * The k-anonymous reports (reports.h). Each report is one parameterized
 * query whose small result (counts per group) is turned into cells; the
 * suppression below runs over the cells, then the JSON is built from them.
 *
 * k-anonymity rule. Every count of distinct visitors is a cell; figures
 * derived from a group (its visits, rates, revenue) are shown only when that
 * group's cell is. A cell is suppressed when it counts fewer than k visitors
 * (zero included). A report also states equations between cells (a total
 * and the parts that partition it: new + returning = visitors, buyers +
 * non-buyers = visitors, the frequency classes, a retention cohort = those
 * back in week n + those not; complements that are not printed still take
 * part as hidden cells, because they are recoverable). For each equation the
 * suppressed cells must not be recoverable by subtraction: when the total is
 * shown, the suppressed parts must be none, or at least two whose sum is at
 * least k; otherwise the smallest shown part is suppressed too (the total
 * when no part is left); when the total is suppressed, at least one part
 * must be too. This repeats over all equations until nothing changes, so a
 * suppression in one equation propagates to the others. Timeseries buckets
 * share no equation (distinct visitors do not add across buckets) and are
 * checked alone.
 */
#include "analytics/reports.h"
#include <ctype.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/codec.h"
#include "common/error.h"

/* ---- connections --------------------------------------------------------- */

typedef struct slot {
    struct slot *next, *prev;
    pv_reports_t *owner;
    PGconn *conn;
} slot_t;

struct pv_reports {
    char *dsn;
    int max_conns, nconns;
    pthread_mutex_t mu;
    pthread_key_t key;
    slot_t *slots; /* every thread's slot, so destroy can close them */
    char **zones;  /* PostgreSQL's time zone names, sorted; loaded once (the view takes ~30 ms) */
    size_t nzones;
    int no_rollup; /* pv_reports_set_rollup(r, 0) */
};

static void slot_close(slot_t *s)
{
    pv_reports_t *r = s->owner;
    pthread_mutex_lock(&r->mu);
    if (s->prev)
        s->prev->next = s->next;
    else
        r->slots = s->next;
    if (s->next)
        s->next->prev = s->prev;
    r->nconns--;
    pthread_mutex_unlock(&r->mu);
    PQfinish(s->conn);
    free(s);
}

/* At thread exit. */
static void slot_destructor(void *p)
{
    if (p != NULL)
        slot_close(p);
}

int pv_reports_create(pv_reports_t **out, const char *dsn, int max_conns)
{
    pv_reports_t *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->dsn = strdup(dsn)) == NULL) {
        free(r);
        return PV_ENOMEM;
    }
    r->max_conns = max_conns > 0 ? max_conns : 1;
    pthread_mutex_init(&r->mu, NULL);
    if (pthread_key_create(&r->key, slot_destructor) != 0) {
        free(r->dsn);
        free(r);
        return PV_ENOMEM;
    }
    *out = r;
    return 0;
}

void pv_reports_set_rollup(pv_reports_t *r, int on)
{
    r->no_rollup = !on;
}

void pv_reports_destroy(pv_reports_t *r)
{
    if (r == NULL)
        return;
    pthread_setspecific(r->key, NULL);
    pthread_key_delete(r->key);
    while (r->slots != NULL)
        slot_close(r->slots);
    for (size_t i = 0; i < r->nzones; i++)
        free(r->zones[i]);
    free(r->zones);
    pthread_mutex_destroy(&r->mu);
    free(r->dsn);
    free(r);
}

/* This thread's connection, opened (or reopened) as needed; NULL when PostgreSQL is unreachable. */
static PGconn *conn_get(pv_reports_t *r, int *full)
{
    slot_t *s = pthread_getspecific(r->key);
    *full = 0;
    if (s == NULL) {
        pthread_mutex_lock(&r->mu);
        if (r->nconns >= r->max_conns) {
            pthread_mutex_unlock(&r->mu);
            *full = 1;
            return NULL;
        }
        if ((s = calloc(1, sizeof(*s))) == NULL) {
            pthread_mutex_unlock(&r->mu);
            return NULL;
        }
        s->owner = r;
        s->next = r->slots;
        if (r->slots)
            r->slots->prev = s;
        r->slots = s;
        r->nconns++;
        pthread_mutex_unlock(&r->mu);
        pthread_setspecific(r->key, s);
    }
    if (s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK)
        return s->conn;
    PQfinish(s->conn);
    s->conn = PQconnectdb(r->dsn);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        PQfinish(s->conn);
        s->conn = NULL;
        return NULL;
    }
    /* buckets are computed in the requested zone explicitly; output instants in UTC */
    /* work_mem: the per-visitor aggregates of a month of a large tenant fit in memory (no disk sorts) */
    PGresult *res =
        PQexec(s->conn, "SET TimeZone = 'UTC'; SET statement_timeout = '30s'; SET work_mem = '64MB'");
    PQclear(res);
    return s->conn;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 1 when tz is one of PostgreSQL's zone names, 0 when not, -1 when they could not be read. */
static int zone_known(pv_reports_t *r, PGconn *c, const char *tz)
{
    int ret = -1;
    pthread_mutex_lock(&r->mu);
    if (r->zones == NULL) {
        PGresult *res = PQexec(c, "SELECT name FROM pg_timezone_names");
        int n = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : 0;
        char **z = n > 0 ? calloc((size_t)n, sizeof(*z)) : NULL;
        for (int i = 0; z != NULL && i < n; i++)
            if ((z[i] = strdup(PQgetvalue(res, i, 0))) == NULL) {
                while (i > 0)
                    free(z[--i]);
                free(z);
                z = NULL;
            }
        PQclear(res);
        if (z != NULL) {
            qsort(z, (size_t)n, sizeof(*z), cmp_str);
            r->zones = z;
            r->nzones = (size_t)n;
        }
    }
    if (r->zones != NULL)
        ret = bsearch(&tz, r->zones, r->nzones, sizeof(*r->zones), cmp_str) != NULL;
    pthread_mutex_unlock(&r->mu);
    return ret;
}

/* ---- parameters ---------------------------------------------------------- */

static const char *const kind_names[] = {"summary", "timeseries", "retention", "frequency", "conversion"};

const char *pv_report_kind_name(int kind)
{
    return kind >= 0 && kind < 5 ? kind_names[kind] : NULL;
}

int pv_report_kind(const char *name, size_t len)
{
    for (int i = 0; i < 5; i++)
        if (strlen(kind_names[i]) == len && memcmp(kind_names[i], name, len) == 0)
            return i;
    return -1;
}

static int fail(pv_report_error_t *err, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(pv_report_error_t *err, int status, const char *param, const char *fmt, ...)
{
    va_list ap;
    err->status = status;
    snprintf(err->param, sizeof(err->param), "%s", param);
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return PV_EINVAL;
}

/* IANA-like: letters, digits, _ + - in up to three '/'-separated parts, starting with a letter. */
static int tz_pattern_ok(const char *s, size_t len)
{
    if (len == 0 || len > PV_REPORT_TZ_MAX || !isalpha((unsigned char)s[0]))
        return 0;
    int parts = 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '/') {
            if (++parts > 3 || i + 1 == len || s[i + 1] == '/')
                return 0;
        } else if (!isalnum(c) && c != '_' && c != '+' && c != '-') {
            return 0;
        }
    }
    return 1;
}

enum { P_FROM = 1, P_TO = 2, P_LOCATION = 4, P_TZ = 8, P_BUCKET = 16, P_K = 32 };

int pv_report_query_parse(pv_report_query_t *out, pv_report_kind_t kind, const char *query, size_t len,
                          pv_report_error_t *err)
{
    unsigned seen = 0;
    memset(out, 0, sizeof(*out));
    out->kind = kind;
    strcpy(out->tz, "UTC");
    strcpy(out->bucket, "day");
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && query[end] != '&')
            end++;
        if (end == i) {
            i = end + 1;
            continue;
        }
        const char *eq = memchr(query + i, '=', end - i);
        size_t nlen = eq ? (size_t)(eq - (query + i)) : end - i;
        char name[16], value[256];
        int vlen;
        if (pv_url_decode(name, sizeof(name), query + i, nlen) < 0)
            return fail(err, 400, "", "unknown or malformed query parameter");
        if (eq == NULL)
            return fail(err, 400, name, "query parameter \"%s\" needs a value", name);
        if ((vlen = pv_url_decode(value, sizeof(value), eq + 1, (size_t)(query + end - eq - 1))) < 0)
            return fail(err, 400, name, "%s: malformed or too long value", name);
        unsigned bit;
        if (strcmp(name, "from") == 0 || strcmp(name, "to") == 0) {
            bit = name[0] == 'f' ? P_FROM : P_TO;
            int64_t *t = bit == P_FROM ? &out->from_ms : &out->to_ms;
            if (vlen == 0 || pv_rfc3339_parse(t, value, (size_t)vlen) != 0)
                return fail(err, 400, name, "%s: expected an RFC 3339 time such as 2026-11-01T00:00:00Z",
                            name);
        } else if (strcmp(name, "location") == 0) {
            bit = P_LOCATION;
            int ok = vlen >= 1 && vlen <= PV_REPORT_LOCATION_MAX;
            for (int j = 0; ok && j < vlen; j++)
                ok = (unsigned char)value[j] >= 0x20 && value[j] != 0x7f;
            if (!ok)
                return fail(err, 422, name, "location: 1 to %d bytes, no control characters",
                            PV_REPORT_LOCATION_MAX);
            memcpy(out->location, value, (size_t)vlen + 1);
            out->has_location = 1;
        } else if (strcmp(name, "tz") == 0) {
            bit = P_TZ;
            if (!tz_pattern_ok(value, (size_t)vlen))
                return fail(err, 422, name, "tz: expected an IANA time zone name such as Europe/Paris");
            memcpy(out->tz, value, (size_t)vlen + 1);
        } else if (strcmp(name, "bucket") == 0 && kind == PV_REPORT_TIMESERIES) {
            bit = P_BUCKET;
            if (strcmp(value, "hour") != 0 && strcmp(value, "day") != 0 && strcmp(value, "week") != 0)
                return fail(err, 422, name, "bucket: one of hour, day, week");
            memcpy(out->bucket, value, (size_t)vlen + 1);
        } else if (strcmp(name, "k") == 0) {
            bit = P_K;
            char *e;
            long k = strtol(value, &e, 10);
            if (vlen == 0 || *e != '\0' || !isdigit((unsigned char)value[0]))
                return fail(err, 400, name, "k: expected an integer");
            if (k < PV_REPORT_K_MIN || k > PV_REPORT_K_MAX)
                return fail(err, 422, name, "k: between %d and %d", PV_REPORT_K_MIN, PV_REPORT_K_MAX);
            out->k = (int)k;
        } else {
            return fail(err, 400, name, "unknown query parameter \"%s\"", name);
        }
        if (seen & bit)
            return fail(err, 400, name, "query parameter \"%s\" given twice", name);
        seen |= bit;
        i = end + 1;
    }
    if (!(seen & P_FROM))
        return fail(err, 400, "from", "from: required (RFC 3339)");
    if (!(seen & P_TO))
        return fail(err, 400, "to", "to: required (RFC 3339)");
    if (out->to_ms <= out->from_ms)
        return fail(err, 422, "to", "to must be later than from");
    if (out->to_ms - out->from_ms > (int64_t)PV_REPORT_RANGE_MAX_DAYS * 86400000)
        return fail(err, 422, "to", "the range from..to is at most %d days", PV_REPORT_RANGE_MAX_DAYS);
    return 0;
}

/* ---- cells and suppression ----------------------------------------------- */

typedef struct {
    long long v;
    int sup;
} cell_t;

#define EQ_PARTS_MAX 8
typedef struct {
    int total;
    int parts[EQ_PARTS_MAX];
    int n;
} equation_t;

/* Applies the rule of the file's header comment to cells c[0..nc) under equations e[0..ne). */
static void suppress(cell_t *c, size_t nc, const equation_t *e, size_t ne, long long k)
{
    for (size_t i = 0; i < nc; i++)
        c[i].sup = c[i].v < k;
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < ne; i++) {
            int ns = 0, smallest = -1;
            long long sum = 0;
            for (int j = 0; j < e[i].n; j++) {
                cell_t *p = &c[e[i].parts[j]];
                if (p->sup)
                    ns++, sum += p->v;
                else if (smallest < 0 || p->v < c[smallest].v)
                    smallest = e[i].parts[j];
            }
            int bad = c[e[i].total].sup ? ns == 0 : ns == 1 || (ns > 0 && sum < k);
            if (!bad)
                continue;
            if (smallest >= 0)
                c[smallest].sup = 1;
            else if (!c[e[i].total].sup)
                c[e[i].total].sup = 1;
            else
                continue;
            changed = 1;
        }
    }
}

static json_t *sup_obj(void)
{
    return json_pack("{s:b}", "suppressed", 1);
}

static json_t *num_or_sup(const cell_t *c, json_t *v)
{
    if (c->sup) {
        json_decref(v);
        return sup_obj();
    }
    return v;
}

static json_t *ratio(long long a, long long b, int decimals)
{
    double f = b > 0 ? (double)a / (double)b : 0.0;
    double m = decimals == 4 ? 1e4 : 1e2;
    return json_real((double)(long long)(f * m + 0.5) / m);
}

/* ---- queries ------------------------------------------------------------- */

/* The filtered visits: $1 tenant, $2 from, $3 to, $4 location or NULL, $5 time zone. */
#define V_CTE                                                                                                \
    "WITH v AS (SELECT visitor, ts, status FROM visits WHERE tenant_id = $1::bigint AND ts >= "              \
    "$2::timestamptz "                                                                                       \
    "AND ts < $3::timestamptz AND ($4::text IS NULL OR location = $4::text)) "

static const char SQL_SUMMARY[] = V_CTE
    "SELECT count(*), coalesce(sum(n), 0), count(*) FILTER (WHERE is_new), count(*) FILTER (WHERE n >= 2) "
    "FROM (SELECT visitor, count(*) AS n, bool_or(status = 'new') AS is_new FROM v GROUP BY visitor) p "
    "WHERE $5::text IS NOT NULL";

static const char SQL_FREQUENCY[] =
    V_CTE "SELECT least(n, 5), count(*) FROM (SELECT visitor, count(*) AS n FROM v GROUP BY visitor) p "
          "WHERE $5::text IS NOT NULL GROUP BY 1 ORDER BY 1";

/* Every bucket of the range in the zone (empty ones too), its visits and distinct visitors. */
static const char SQL_TIMESERIES[] =
    V_CTE ", b AS (SELECT generate_series(date_trunc($6::text, $2::timestamptz AT TIME ZONE $5::text), "
          "($3::timestamptz AT TIME ZONE $5::text) - interval '1 microsecond', ('1 ' || $6::text)::interval) "
          "AS b), "
          "c AS (SELECT date_trunc($6::text, ts AT TIME ZONE $5::text) AS b, count(*) AS visits, "
          "count(DISTINCT visitor) AS visitors FROM v GROUP BY 1) "
          "SELECT to_char(b.b, 'YYYY-MM-DD\"T\"HH24:MI:SS'), "
          "to_char(b.b AT TIME ZONE $5::text, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), coalesce(c.visits, 0), "
          "coalesce(c.visitors, 0) FROM b LEFT JOIN c USING (b) ORDER BY b.b";

/* Cohort = the week (Monday, in the zone) of the visitor's first visit (status new) inside the range. */
static const char SQL_RETENTION[] =
    V_CTE ", w AS (SELECT visitor, date_trunc('week', ts AT TIME ZONE $5::text)::date AS wk, "
          "bool_or(status = 'new') AS has_new FROM v GROUP BY 1, 2), "
          "f AS (SELECT visitor, min(wk) AS cohort FROM w WHERE has_new GROUP BY visitor) "
          "SELECT to_char(f.cohort, 'YYYY-MM-DD'), (w.wk - f.cohort) / 7, count(*), "
          "((date_trunc('week', ($3::timestamptz - interval '1 microsecond') AT TIME ZONE $5::text)::date "
          "- f.cohort) / 7) FROM w JOIN f USING (visitor) WHERE w.wk >= f.cohort GROUP BY f.cohort, 2 ORDER "
          "BY 1, 2";

/* Per segment (new/returning): visitors and buyers; then per segment and currency: buyers and revenue. */
static const char SQL_CONVERSION[] = V_CTE
    ", pv AS (SELECT visitor, bool_or(status = 'new') AS is_new FROM v GROUP BY visitor), "
    "p AS (SELECT visitor, currency, sum(amount_minor) AS amount FROM events WHERE tenant_id = $1::bigint "
    "AND type = 'purchase' AND ts >= $2::timestamptz AND ts < $3::timestamptz AND ($4::text IS NULL OR "
    "location = $4::text) AND currency IS NOT NULL AND amount_minor IS NOT NULL GROUP BY visitor, currency), "
    "b AS (SELECT DISTINCT visitor FROM p) "
    "SELECT pv.is_new, NULL::text, count(*), count(b.visitor), NULL::numeric FROM pv LEFT JOIN b USING "
    "(visitor) "
    "WHERE $5::text IS NOT NULL GROUP BY pv.is_new "
    "UNION ALL SELECT pv.is_new, p.currency::text, count(*), count(*), sum(p.amount) FROM pv JOIN p USING "
    "(visitor) GROUP BY pv.is_new, p.currency ORDER BY 2 NULLS FIRST, 1";

/*
 * The same answers from the roll-up (migrations/0005 explains nM and the
 * formulas): for whole UTC days [A, B), cM = sum of nM with lag_day < A, the
 * distinct visitors are c1 and those with at least M visits cM - c(M-1).
 * Same parameters and result columns as the queries above.
 */
#define R_CTE                                                                                                \
    "WITH r AS (SELECT day, lag_day, n0, n1, n2, n3, n4, n5, nnew FROM visit_rollup WHERE tenant_id = "      \
    "$1::bigint AND per_location = ($4::text IS NOT NULL) AND location = coalesce($4::text, '') AND day >= " \
    "($2::timestamptz AT TIME ZONE 'UTC')::date AND day < ($3::timestamptz AT TIME ZONE 'UTC')::date), "     \
    "c AS (SELECT coalesce(sum(n0), 0) AS c0, "                                                              \
    "coalesce(sum(n1) FILTER (WHERE lag_day < ($2::timestamptz AT TIME ZONE 'UTC')::date), 0) AS c1, "       \
    "coalesce(sum(n2) FILTER (WHERE lag_day < ($2::timestamptz AT TIME ZONE 'UTC')::date), 0) AS c2, "       \
    "coalesce(sum(n3) FILTER (WHERE lag_day < ($2::timestamptz AT TIME ZONE 'UTC')::date), 0) AS c3, "       \
    "coalesce(sum(n4) FILTER (WHERE lag_day < ($2::timestamptz AT TIME ZONE 'UTC')::date), 0) AS c4, "       \
    "coalesce(sum(n5) FILTER (WHERE lag_day < ($2::timestamptz AT TIME ZONE 'UTC')::date), 0) AS c5, "       \
    "coalesce(sum(nnew) FILTER (WHERE lag_day < ($2::timestamptz AT TIME ZONE 'UTC')::date), 0) AS cn "      \
    "FROM r) "

static const char SQL_SUMMARY_ROLLUP[] = R_CTE "SELECT c1, c0, cn, c2 - c1 FROM c WHERE $5::text IS NOT NULL";

static const char SQL_FREQUENCY_ROLLUP[] =
    R_CTE "SELECT x.cls, x.n FROM c, LATERAL (VALUES (1, 2 * c1 - c2), (2, 2 * c2 - c1 - c3), "
          "(3, 2 * c3 - c2 - c4), (4, 2 * c4 - c3 - c5), (5, c5 - c4)) x(cls, n) WHERE $5::text IS NOT NULL "
          "ORDER BY 1";

/* UTC buckets only: a bucket's distinct visitors are its visits whose predecessor is before the bucket. */
static const char SQL_TIMESERIES_ROLLUP[] =
    R_CTE ", b AS (SELECT generate_series(date_trunc($6::text, $2::timestamptz AT TIME ZONE $5::text), "
          "($3::timestamptz AT TIME ZONE $5::text) - interval '1 microsecond', ('1 ' || $6::text)::interval) "
          "AS b) "
          "SELECT to_char(b.b, 'YYYY-MM-DD\"T\"HH24:MI:SS'), "
          "to_char(b.b AT TIME ZONE $5::text, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), coalesce(sum(r.n0), 0), "
          "coalesce(sum(r.n1) FILTER (WHERE r.lag_day < greatest(b.b::date, ($2::timestamptz AT TIME ZONE "
          "'UTC')::date)), 0) FROM b LEFT JOIN r ON r.day >= b.b::date AND r.day < (b.b + ('1 ' || "
          "$6::text)::interval)::date GROUP BY b.b ORDER BY b.b";

/* Whether the roll-up can answer q: whole UTC days, and UTC day or week buckets for a timeseries. */
static int rollup_fits(const pv_reports_t *r, const pv_report_query_t *q)
{
    static const char *const utc[] = {"UTC", "Etc/UTC", "GMT", "Etc/GMT"};
    if (r->no_rollup || q->from_ms % 86400000 != 0 || q->to_ms % 86400000 != 0)
        return 0;
    if (q->kind == PV_REPORT_SUMMARY || q->kind == PV_REPORT_FREQUENCY)
        return 1;
    if (q->kind != PV_REPORT_TIMESERIES || strcmp(q->bucket, "hour") == 0)
        return 0;
    for (size_t i = 0; i < sizeof(utc) / sizeof(utc[0]); i++)
        if (strcmp(q->tz, utc[i]) == 0)
            return 1;
    return 0;
}

static long long ll(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static void iso_utc(char *buf, size_t size, int64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, size, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static json_t *build_summary(PGresult *res, long long k)
{
    /* cells: 0 visitors, 1 new, 2 returning, 3 repeat (2+ visits), 4 once */
    long long n = ll(res, 0, 0), visits = ll(res, 0, 1), nw = ll(res, 0, 2), rep = ll(res, 0, 3);
    cell_t c[5] = {{n, 0}, {nw, 0}, {n - nw, 0}, {rep, 0}, {n - rep, 0}};
    equation_t e[2] = {{0, {1, 2}, 2}, {0, {3, 4}, 2}};
    suppress(c, 5, e, 2, k);
    return json_pack(
        "{s:o,s:o,s:o,s:o,s:o,s:o}", "visits", num_or_sup(&c[0], json_integer(visits)), "visitors",
        num_or_sup(&c[0], json_integer(n)), "new_visitors", num_or_sup(&c[1], json_integer(nw)),
        "returning_visitors", num_or_sup(&c[2], json_integer(n - nw)), "visits_per_visitor",
        num_or_sup(&c[0], ratio(visits, n, 2)), "repeat_visit_rate", num_or_sup(&c[3], ratio(rep, n, 4)));
}

static json_t *build_frequency(PGresult *res, long long k)
{
    /* cells: 0 total, 1..5 visitors with 1, 2, 3, 4, 5+ visits */
    cell_t c[6] = {{0, 0}};
    for (int i = 0; i < PQntuples(res); i++) {
        long long cls = ll(res, i, 0);
        if (cls >= 1 && cls <= 5) {
            c[cls].v = ll(res, i, 1);
            c[0].v += c[cls].v;
        }
    }
    equation_t e = {0, {1, 2, 3, 4, 5}, 5};
    suppress(c, 6, &e, 1, k);
    static const char *const label[] = {"", "1", "2", "3", "4", "5+"};
    json_t *dist = json_array();
    for (int i = 1; i <= 5; i++)
        json_array_append_new(dist, json_pack("{s:s,s:o}", "visits", label[i], "visitors",
                                              num_or_sup(&c[i], json_integer(c[i].v))));
    return json_pack("{s:o,s:o}", "visitors", num_or_sup(&c[0], json_integer(c[0].v)), "distribution", dist);
}

static json_t *build_timeseries(PGresult *res, long long k, const char *bucket)
{
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        cell_t c = {ll(res, i, 3), 0};
        c.sup = c.v < k;
        json_array_append_new(arr, json_pack("{s:s,s:s,s:o,s:o}", "bucket", PQgetvalue(res, i, 0), "start",
                                             PQgetvalue(res, i, 1), "visits",
                                             num_or_sup(&c, json_integer(ll(res, i, 2))), "visitors",
                                             num_or_sup(&c, json_integer(c.v))));
    }
    return json_pack("{s:s,s:o}", "bucket", bucket, "buckets", arr);
}

static json_t *build_retention(PGresult *res, long long k)
{
    json_t *cohorts = json_array();
    int n = PQntuples(res);
    for (int i = 0; i < n;) {
        const char *cohort = PQgetvalue(res, i, 0);
        int weeks = (int)ll(res, i, 3) + 1;
        if (weeks < 1 || weeks > 60)
            weeks = weeks < 1 ? 1 : 60;
        /* cells: 0 cohort size (week 0), then per week w >= 1: back (2w-1) and not back (2w, hidden) */
        cell_t *c = calloc((size_t)(2 * weeks), sizeof(*c));
        equation_t *e = calloc((size_t)weeks, sizeof(*e));
        if (c == NULL || e == NULL) {
            free(c), free(e);
            json_decref(cohorts);
            return NULL;
        }
        int j = i;
        for (; j < n && strcmp(PQgetvalue(res, j, 0), cohort) == 0; j++) {
            long long w = ll(res, j, 1);
            if (w == 0)
                c[0].v = ll(res, j, 2);
            else if (w < weeks)
                c[2 * w - 1].v = ll(res, j, 2);
        }
        for (int w = 1; w < weeks; w++) {
            c[2 * w].v = c[0].v - c[2 * w - 1].v;
            e[w - 1] = (equation_t){0, {2 * w - 1, 2 * w}, 2};
        }
        suppress(c, (size_t)(2 * weeks - 1), e, (size_t)(weeks - 1), k);
        json_t *row = json_array();
        json_array_append_new(row, num_or_sup(&c[0], json_integer(c[0].v)));
        for (int w = 1; w < weeks; w++)
            json_array_append_new(row, num_or_sup(&c[2 * w - 1], json_integer(c[2 * w - 1].v)));
        json_array_append_new(cohorts, json_pack("{s:s,s:o,s:o}", "cohort", cohort, "size",
                                                 num_or_sup(&c[0], json_integer(c[0].v)), "weeks", row));
        free(c);
        free(e);
        i = j;
    }
    return json_pack("{s:s,s:o}", "cohort_by", "week of first visit", "cohorts", cohorts);
}

#define CUR_MAX 16
static json_t *build_conversion(PGresult *res, long long k)
{
    /* cells per segment s (0 all, 1 new, 2 returning): visitors 3s, buyers 3s+1, non-buyers 3s+2 (hidden);
     * per currency i: buyers 9+3i+s, with revenue shown only with its buyers cell */
    char cur[CUR_MAX][4];
    long long amount[CUR_MAX][3];
    int ncur = 0;
    cell_t c[9 + 3 * CUR_MAX];
    equation_t e[6 + CUR_MAX];
    memset(c, 0, sizeof(c));
    memset(amount, 0, sizeof(amount));
    for (int i = 0; i < PQntuples(res); i++) {
        int s = PQgetvalue(res, i, 0)[0] == 't' ? 1 : 2;
        if (PQgetisnull(res, i, 1)) {
            c[3 * s].v += ll(res, i, 2);
            c[3 * s + 1].v += ll(res, i, 3);
            continue;
        }
        int ci = 0;
        while (ci < ncur && strcmp(cur[ci], PQgetvalue(res, i, 1)) != 0)
            ci++;
        if (ci == ncur) {
            if (ncur == CUR_MAX)
                continue; /* bounded: more currencies than this are left out of the answer */
            snprintf(cur[ncur++], 4, "%s", PQgetvalue(res, i, 1));
        }
        c[9 + 3 * ci + s].v = ll(res, i, 2);
        c[9 + 3 * ci].v += ll(res, i, 2);
        amount[ci][s] = ll(res, i, 4);
        amount[ci][0] += amount[ci][s];
    }
    for (int s = 1; s <= 2; s++) {
        c[0].v += c[3 * s].v;
        c[1].v += c[3 * s + 1].v;
    }
    for (int s = 0; s <= 2; s++)
        c[3 * s + 2].v = c[3 * s].v - c[3 * s + 1].v;
    size_t ne = 0;
    e[ne++] = (equation_t){0, {3, 6}, 2}; /* visitors = new + returning */
    e[ne++] = (equation_t){1, {4, 7}, 2}; /* buyers */
    e[ne++] = (equation_t){2, {5, 8}, 2}; /* non-buyers */
    for (int s = 0; s <= 2; s++)
        e[ne++] = (equation_t){3 * s, {3 * s + 1, 3 * s + 2}, 2};
    for (int i = 0; i < ncur; i++)
        e[ne++] = (equation_t){9 + 3 * i, {9 + 3 * i + 1, 9 + 3 * i + 2}, 2};
    suppress(c, (size_t)(9 + 3 * ncur), e, ne, k);
    static const char *const seg[] = {"all", "new", "returning"};
    json_t *out = json_object();
    for (int s = 0; s <= 2; s++) {
        cell_t *v = &c[3 * s], *b = &c[3 * s + 1];
        json_t *rev = json_array();
        for (int i = 0; i < ncur; i++) {
            cell_t *cb = &c[9 + 3 * i + s];
            cell_t shown = {0, cb->sup || v->sup};
            json_array_append_new(rev,
                                  json_pack("{s:s,s:o,s:o,s:o}", "currency", cur[i], "buyers",
                                            num_or_sup(cb, json_integer(cb->v)), "amount_minor",
                                            num_or_sup(cb, json_integer(amount[i][s])), "per_visitor_minor",
                                            num_or_sup(&shown, ratio(amount[i][s], v->v, 2))));
        }
        cell_t rate = {0, b->sup || v->sup};
        json_object_set_new(out, seg[s],
                            json_pack("{s:o,s:o,s:o,s:o}", "visitors", num_or_sup(v, json_integer(v->v)),
                                      "buyers", num_or_sup(b, json_integer(b->v)), "conversion_rate",
                                      num_or_sup(&rate, ratio(b->v, v->v, 4)), "revenue", rev));
    }
    return out;
}

/* Whether a failed query lost its connection (then the caller retries once on a new one). */
static int conn_lost(PGconn *c)
{
    return PQstatus(c) != CONNECTION_OK;
}

int pv_report_run(pv_reports_t *r, json_t **out, const pv_report_query_t *q, uint64_t tenant_id,
                  pv_report_error_t *err)
{
    char tenant[24], from[64], to[64];
    PGresult *res = NULL;
    json_t *body = NULL;
    int ret = 0, full = 0;
    *out = NULL;
    snprintf(tenant, sizeof(tenant), "%llu", (unsigned long long)tenant_id);
    iso_utc(from, sizeof(from), q->from_ms);
    iso_utc(to, sizeof(to), q->to_ms);
    const char *params[6] = {tenant, from, to, q->has_location ? q->location : NULL, q->tz, q->bucket};
    PGconn *c = NULL;
    long long k = PV_REPORT_K_DEFAULT;
    for (int attempt = 0; attempt < 2; attempt++) {
        if ((c = conn_get(r, &full)) == NULL) {
            ret = PV_EUNAVAIL;
            fail(err, 503, "", "%s",
                 full ? "too many report queries at once; try again"
                      : "analytics database unreachable; try again");
            goto out;
        }
        /* the tenant's k */
        const char *p2[1] = {tenant};
        res = PQexecParams(
            c,
            "SELECT coalesce((SELECT k FROM tenant_report_settings WHERE tenant_id = $1::bigint), 5), "
            "EXISTS (SELECT 1 FROM visit_rollup_pending WHERE tenant_id = $1::bigint)",
            1, NULL, p2, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            break;
        PQclear(res);
        res = NULL;
        if (!conn_lost(c)) {
            ret = PV_EDB;
            fail(err, 500, "", "report query failed");
            goto out;
        }
    }
    if (res == NULL) {
        ret = PV_EUNAVAIL;
        fail(err, 503, "", "analytics database unreachable; try again");
        goto out;
    }
    k = ll(res, 0, 0);
    /* visits the writer delivered that the roll-up has not taken in yet (0007): read visits */
    int pending = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);
    res = NULL;
    int tz_ok = zone_known(r, c, q->tz);
    if (tz_ok < 0) {
        ret = conn_lost(c) ? PV_EUNAVAIL : PV_EDB;
        fail(err, ret == PV_EUNAVAIL ? 503 : 500, "", "could not read the time zone names; try again");
        goto out;
    }
    if (k < PV_REPORT_K_MIN)
        k = PV_REPORT_K_MIN;
    if (!tz_ok) {
        ret = fail(err, 422, "tz", "tz: unknown time zone \"%s\"", q->tz);
        goto out;
    }
    if (q->k != 0 && q->k < k) {
        ret = fail(err, 422, "k", "k: this tenant's reports use k >= %lld", k);
        goto out;
    }
    if (q->k > k)
        k = q->k;
    static const char *const sql[] = {SQL_SUMMARY, SQL_TIMESERIES, SQL_RETENTION, SQL_FREQUENCY,
                                      SQL_CONVERSION};
    static const char *const rollup_sql[] = {SQL_SUMMARY_ROLLUP, SQL_TIMESERIES_ROLLUP, NULL,
                                             SQL_FREQUENCY_ROLLUP, NULL};
    int nparams = q->kind == PV_REPORT_TIMESERIES ? 6 : 5;
    res = PQexecParams(c, !pending && rollup_fits(r, q) ? rollup_sql[q->kind] : sql[q->kind], nparams, NULL,
                       params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ret = conn_lost(c) ? PV_EUNAVAIL : PV_EDB;
        fail(err, ret == PV_EUNAVAIL ? 503 : 500, "", "report query failed%s",
             ret == PV_EUNAVAIL ? ": analytics database unreachable; try again" : "");
        goto out;
    }
    switch (q->kind) {
    case PV_REPORT_SUMMARY:
        body = build_summary(res, k);
        break;
    case PV_REPORT_TIMESERIES:
        body = build_timeseries(res, k, q->bucket);
        break;
    case PV_REPORT_RETENTION:
        body = build_retention(res, k);
        break;
    case PV_REPORT_FREQUENCY:
        body = build_frequency(res, k);
        break;
    case PV_REPORT_CONVERSION:
        body = build_conversion(res, k);
        break;
    }
    if (body == NULL) {
        ret = PV_ENOMEM;
        fail(err, 503, "", "out of memory");
        goto out;
    }
    char f[40], t[40];
    time_t fs = (time_t)(q->from_ms / 1000), ts = (time_t)(q->to_ms / 1000);
    struct tm tm;
    gmtime_r(&fs, &tm);
    strftime(f, sizeof(f), "%Y-%m-%dT%H:%M:%SZ", &tm);
    gmtime_r(&ts, &tm);
    strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:o,s:I,s:o}", "report", kind_names[q->kind], "from", f, "to", t,
                          "tz", q->tz, "location", q->has_location ? json_string(q->location) : json_null(),
                          "k", (json_int_t)k, "data", body);
    body = NULL;
    if (o == NULL) {
        ret = PV_ENOMEM;
        fail(err, 503, "", "out of memory");
        goto out;
    }
    *out = o;
out:
    PQclear(res);
    json_decref(body);
    return ret;
}

/* ---- one visitor's purchases --------------------------------------------- */

int pv_report_visitor_purchases(pv_reports_t *r, json_t **out, uint64_t tenant_id, const char *visitor)
{
    char tenant[24];
    int full = 0;
    *out = NULL;
    snprintf(tenant, sizeof(tenant), "%llu", (unsigned long long)tenant_id);
    const char *params[2] = {tenant, visitor};
    PGresult *res = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *c = conn_get(r, &full);
        if (c == NULL)
            return PV_EUNAVAIL;
        /* per currency (NULL for purchases without an amount); the index (tenant_id, visitor, ts) */
        res = PQexecParams(c,
                           "SELECT currency, count(*), coalesce(sum(amount_minor), 0), "
                           "to_char(max(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
                           "FROM events WHERE tenant_id = $1::bigint AND visitor = $2 AND type = 'purchase' "
                           "GROUP BY currency ORDER BY currency NULLS LAST",
                           2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            break;
        int lost = conn_lost(c);
        PQclear(res);
        res = NULL;
        if (!lost)
            return PV_EDB;
    }
    if (res == NULL)
        return PV_EUNAVAIL;
    long long count = 0;
    const char *last = NULL;
    json_t *totals = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        count += ll(res, i, 1);
        if (last == NULL || strcmp(PQgetvalue(res, i, 3), last) > 0)
            last = PQgetvalue(res, i, 3);
        if (!PQgetisnull(res, i, 0))
            json_array_append_new(totals, json_pack("{s:s,s:I}", "currency", PQgetvalue(res, i, 0),
                                                    "amount_minor", (json_int_t)ll(res, i, 2)));
    }
    *out = json_pack("{s:I,s:o,s:o}", "count", (json_int_t)count, "last_at",
                     last != NULL ? json_string(last) : json_null(), "totals", totals);
    PQclear(res);
    return *out != NULL ? 0 : PV_ENOMEM;
}
