/*
 * k-anonymous reports over the analytics tables (PostgreSQL only, never
 * LMDB): summary, timeseries, retention, frequency, conversion. Parameters
 * are parsed and validated here (so the gateway and the tests share one set
 * of rules), queries are parameterized (PQexecParams), and every number in an
 * answer comes from a group of at least k distinct visitors or is replaced by
 * {"suppressed":true}. The suppression rule is written at the top of
 * reports.c. Calls block: run them on worker threads, never on an event loop.
 */
#ifndef PV_ANALYTICS_REPORTS_H
#define PV_ANALYTICS_REPORTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pv_reports pv_reports_t;

typedef enum {
    PV_REPORT_SUMMARY = 0,
    PV_REPORT_TIMESERIES,
    PV_REPORT_RETENTION,
    PV_REPORT_FREQUENCY,
    PV_REPORT_CONVERSION,
} pv_report_kind_t;

#define PV_REPORT_RANGE_MAX_DAYS 366
#define PV_REPORT_K_DEFAULT 5 /* a tenant without a row in tenant_report_settings */
#define PV_REPORT_K_MIN 2
#define PV_REPORT_K_MAX 1000
#define PV_REPORT_LOCATION_MAX 64
#define PV_REPORT_TZ_MAX 64

/* A validated report request (pv_report_query_parse fills it). */
typedef struct {
    pv_report_kind_t kind;
    int64_t from_ms, to_ms; /* [from, to), to - from <= 366 days */
    int has_location;
    char location[PV_REPORT_LOCATION_MAX + 1];
    char tz[PV_REPORT_TZ_MAX + 1]; /* IANA name, "UTC" by default */
    char bucket[8];                /* timeseries: hour | day | week (default day) */
    int k;                         /* requested k, 0 = the tenant's */
} pv_report_query_t;

/* Why a request was refused: HTTP status (400, 422, 503), the parameter at fault ("" when none), text. */
typedef struct {
    int status;
    char param[16];
    char text[160];
} pv_report_error_t;

/* The report named by a path's last segment ("summary", ...); -1 when none. */
int pv_report_kind(const char *name, size_t len);
/* The name of report kind (a static string), or NULL past the last kind: lists the reports. */
const char *pv_report_kind_name(int kind);

/*
 * Parses a URL query string (percent-encoded, without the '?') for `kind`:
 * from and to (RFC 3339, required), location, tz, bucket (timeseries only),
 * k. Unknown or repeated parameters are refused. Returns 0, or PV_EINVAL
 * with *err filled (400 malformed, 422 well-formed but not acceptable). The
 * time zone is checked against a strict pattern here and against
 * PostgreSQL's zone names when the report runs.
 */
int pv_report_query_parse(pv_report_query_t *out, pv_report_kind_t kind, const char *query, size_t len,
                          pv_report_error_t *err);

/*
 * A pool of PostgreSQL connections for reports: at most max_conns, one per
 * calling thread, opened on first use, reopened after a failure, closed
 * when the thread exits or by pv_reports_destroy. The caller owns *out.
 * Returns 0 or PV_ENOMEM.
 */
int pv_reports_create(pv_reports_t **out, const char *dsn, int max_conns);
/* Closes every connection; no thread may be inside pv_report_run. NULL is a no-op. */
void pv_reports_destroy(pv_reports_t *r);

/*
 * Whether reports may read the roll-up visit_rollup (migrations/0005; on by
 * default). Summary and frequency over whole UTC days, and day or week
 * timeseries in UTC over whole UTC days, read it, unless the tenant has
 * visits the roll-up has not taken in yet (visit_rollup_pending, 0007: the
 * writer defers the roll-up); every other report reads visits. Off, every
 * report reads visits: the bench and the tests compare
 * both paths. Call before the first report.
 */
void pv_reports_set_rollup(pv_reports_t *r, int on);

/*
 * Runs the report q for tenant_id on this thread's connection and returns
 * its JSON object in *out (caller owns). k is the larger of the tenant's
 * setting (tenant_report_settings, default 5, never below 2) and q->k; a q->k
 * below the tenant's is a 422 naming k, an unknown time zone a 422 naming tz.
 * Errors: PV_EINVAL (*err says which parameter), PV_EUNAVAIL (PostgreSQL
 * unreachable or the pool is full: 503), PV_EDB, PV_ENOMEM.
 */
int pv_report_run(pv_reports_t *r, json_t **out, const pv_report_query_t *q, uint64_t tenant_id,
                  pv_report_error_t *err);

/*
 * One visitor's purchases as delivered to PostgreSQL (the tenant's own till
 * events, so no k-anonymity): {"count":N,"last_at":"..."|null,"totals":
 * [{"currency":"EUR","amount_minor":M},...]}. Events still in the gateway's
 * outbox are not counted yet. PV_EUNAVAIL when PostgreSQL is unreachable or
 * the pool is full, PV_EDB, PV_ENOMEM.
 */
int pv_report_visitor_purchases(pv_reports_t *r, json_t **out, uint64_t tenant_id, const char *visitor);

#endif
