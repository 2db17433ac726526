/*
 * privid-admin analytics status|backfill and usage (see admin_analytics.h).
 * Status reads only the store (plus one query with --pg); backfill runs the
 * gateway's own writer (analytics/writer.c) until the events that were in
 * the outbox when it started are delivered, so it inherits the writer's
 * exactly-once guarantee; usage reads the LMDB day counters.
 */
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "analytics/usage.h"
#include "analytics/writer.h"
#include "common/error.h"
#include "tenants/admin_analytics.h"
#include "tenants/admin_pg.h"
#include "tenants/visitors.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_NOTFOUND = 3 };

#define BACKFILL_TIMEOUT_S 300
#define POLL_MS 50

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void format_ms(char *buf, size_t size, int64_t ms)
{
    time_t tt = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0)
        snprintf(buf, size, "never");
    else if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "%" PRId64, ms);
}

static int print_json(json_t *j)
{
    int rc = j == NULL ? -1 : json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (rc != 0) {
        fprintf(stderr, "privid-admin: cannot write JSON output\n");
        return EXIT_FAIL;
    }
    fputc('\n', stdout);
    return EXIT_OK;
}

/* The first outbox event's sequence number and queue time. */
typedef struct {
    uint64_t seq;
    int64_t queued_ms;
} head_t;

static int head_cb(void *arg, uint64_t seq, const char *json, size_t len)
{
    head_t *h = arg;
    json_t *j = json_loadb(json, len, 0, NULL);
    h->seq = seq;
    h->queued_ms = j != NULL ? (int64_t)json_integer_value(json_object_get(j, "queued_ms")) : 0;
    json_decref(j);
    return 1;
}

static int outbox_head(pv_tenants_t *t, head_t *h)
{
    size_t n = 0;
    memset(h, 0, sizeof(*h));
    return pv_outbox_read(t, 0, 1, head_cb, h, &n);
}

/* One text cell of a one-row query, copied into buf ("" for NULL). */
static int pg_text(PGconn *c, const char *sql, char *buf, size_t size)
{
    PGresult *r = PQexec(c, sql);
    int rc = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? 0 : PV_EDB;
    if (rc == 0)
        snprintf(buf, size, "%s", PQgetvalue(r, 0, 0));
    else
        fprintf(stderr, "privid-admin: query failed: %s", PQerrorMessage(c));
    PQclear(r);
    return rc;
}

int pv_admin_analytics_status(const pv_admin_args_t *a, pv_tenants_t *t, const char *pg)
{
    uint64_t depth = 0, last_seq = 0, delivered = 0;
    int64_t last_ms = 0;
    head_t h;
    char visit[64] = "", event[64] = "", when[32], err[1024];
    int rc;

    if ((rc = pv_outbox_stat(t, &depth, &last_seq)) != 0 || (rc = outbox_head(t, &h)) != 0 ||
        (rc = pv_outbox_delivery(t, &last_ms, &delivered)) != 0) {
        fprintf(stderr, "privid-admin: cannot read the outbox: %s\n", pv_strerror(rc));
        return EXIT_FAIL;
    }
    int64_t age_ms = depth > 0 && h.queued_ms > 0 ? now_ms() - h.queued_ms : 0;
    if (age_ms < 0)
        age_ms = 0;
    if (pg != NULL) {
        PGconn *c = NULL;
        /* newest rows: max(ts) over the recent partitions first keeps it cheap on a big table */
        static const char *q[2] = {"SELECT coalesce(to_char(max(ts) AT TIME ZONE 'UTC', "
                                   "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '') FROM visits",
                                   "SELECT coalesce(to_char(max(ts) AT TIME ZONE 'UTC', "
                                   "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '') FROM events"};
        rc = pv_admin_pg_connect(&c, pg, err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "privid-admin: %s\n", err);
        if (rc == 0)
            rc = pg_text(c, q[0], visit, sizeof(visit));
        if (rc == 0)
            rc = pg_text(c, q[1], event, sizeof(event));
        PQfinish(c);
        if (rc != 0)
            return EXIT_FAIL;
    }
    format_ms(when, sizeof(when), last_ms);
    if (a->json) {
        json_t *j = json_pack("{s:I, s:I, s:I, s:s?, s:I}", "outbox_depth", (json_int_t)depth,
                              "oldest_age_ms", (json_int_t)age_ms, "last_delivery_ms", (json_int_t)last_ms,
                              "last_delivery", last_ms > 0 ? when : NULL, "delivered", (json_int_t)delivered);
        if (j != NULL && pg != NULL)
            json_object_set_new(j, "postgresql",
                                json_pack("{s:s?, s:s?}", "newest_visit", visit[0] ? visit : NULL,
                                          "newest_event", event[0] ? event : NULL));
        return print_json(j);
    }
    printf("outbox depth:     %" PRIu64 " event%s\n", depth, depth == 1 ? "" : "s");
    printf("oldest event age: %.1f s\n", (double)age_ms / 1000.0);
    printf("last delivery:    %s (%" PRIu64 " events delivered in all)\n", when, delivered);
    if (pg != NULL) {
        printf("newest visit in PostgreSQL: %s\n", visit[0] ? visit : "none");
        printf("newest event in PostgreSQL: %s\n", event[0] ? event : "none");
    }
    return EXIT_OK;
}

int pv_admin_analytics_backfill(const pv_admin_args_t *a, pv_tenants_t *t, const char *pg)
{
    uint64_t depth = 0, target = 0, before = 0;
    int64_t last_ms = 0;
    pv_writer_t *w = NULL;
    head_t h;
    int rc, code = EXIT_FAIL;

    if (pg == NULL) {
        fprintf(stderr, "privid-admin: analytics backfill needs a PostgreSQL DSN (--pg or PRIVID_PG)\n");
        return EXIT_USAGE;
    }
    if ((rc = pv_outbox_stat(t, &depth, &target)) != 0 ||
        (rc = pv_outbox_delivery(t, &last_ms, &before)) != 0) {
        fprintf(stderr, "privid-admin: cannot read the outbox: %s\n", pv_strerror(rc));
        return EXIT_FAIL;
    }
    pv_writer_conf_t conf = {.dsn = pg, .idle_ms = POLL_MS, .backoff_max_ms = 2000};
    if ((rc = pv_writer_start(&w, t, &conf)) == PV_EEXIST) {
        fprintf(stderr, "privid-admin: another writer (a gateway started with --pg, or another backfill) is "
                        "draining this store; it delivers the outbox itself ('analytics status' shows its "
                        "progress)\n");
        return EXIT_FAIL;
    }
    if (rc != 0) {
        fprintf(stderr, "privid-admin: cannot start the writer: %s\n", pv_strerror(rc));
        return EXIT_FAIL;
    }
    /* done when no event from before the start is left: the head is past `target`
     * (or the outbox is empty), and the writer has made at least one pass over
     * PostgreSQL (connected), which also synced usage_daily */
    int64_t deadline = now_ms() + (int64_t)(a->timeout_s > 0 ? a->timeout_s : BACKFILL_TIMEOUT_S) * 1000;
    for (;;) {
        uint64_t n = 0, last = 0;
        if ((rc = pv_outbox_stat(t, &n, &last)) != 0 || (rc = outbox_head(t, &h)) != 0) {
            fprintf(stderr, "privid-admin: cannot read the outbox: %s\n", pv_strerror(rc));
            goto out;
        }
        /* and the roll-up has taken in what was delivered (the reports' fast path) */
        if ((n == 0 || h.seq > target) && pv_writer_connected(w) && pv_writer_rollup_idle(w))
            break;
        if (now_ms() > deadline) {
            fprintf(stderr,
                    "privid-admin: timed out with %" PRIu64 " events still waiting%s (%" PRIu64
                    " failed attempts; is PostgreSQL reachable and migrated?)\n",
                    n, n == 0 ? " but PostgreSQL not reached" : "", pv_writer_failures(w));
            goto out;
        }
        sleep_ms(POLL_MS);
    }
    code = EXIT_OK;
out:;
    uint64_t mine = pv_writer_delivered(w), rejected = pv_writer_rejected(w);
    pv_writer_stop(w); /* syncs the recent usage days once more */
    if (code != EXIT_OK)
        return code;
    if (a->json)
        return print_json(json_pack("{s:I, s:I, s:I}", "waiting_at_start", (json_int_t)depth, "delivered",
                                    (json_int_t)mine, "rejected", (json_int_t)rejected));
    printf("delivered %" PRIu64 " of the %" PRIu64 " events waiting (%" PRIu64
           " refused by PostgreSQL and dropped); usage_daily synced\n",
           mine, depth, rejected);
    return EXIT_OK;
}

typedef struct {
    json_t *days; /* NULL for text */
    uint64_t requests, images, faces;
    size_t n;
} usage_ctx_t;

static int usage_cb(void *arg, const pv_usage_day_t *d)
{
    usage_ctx_t *u = arg;
    char day[16];
    snprintf(day, sizeof(day), "%04u-%02u-%02u", d->ymd / 10000, d->ymd / 100 % 100, d->ymd % 100);
    u->requests += d->requests;
    u->images += d->images;
    u->faces += d->faces;
    u->n++;
    if (u->days != NULL)
        json_array_append_new(u->days, json_pack("{s:s, s:I, s:I, s:I}", "day", day, "requests",
                                                 (json_int_t)d->requests, "images", (json_int_t)d->images,
                                                 "faces", (json_int_t)d->faces));
    else
        printf("%-10s %12" PRIu64 " %12" PRIu64 " %12" PRIu64 "\n", day, d->requests, d->images, d->faces);
    return 0;
}

int pv_admin_tenant_usage(const pv_admin_args_t *a, pv_tenants_t *t)
{
    pv_tenant_t tn;
    usage_ctx_t u = {0};
    uint32_t month = a->month;
    char label[16];
    int rc;

    rc = pv_tenants_find(t, &tn, a->arg);
    memset(tn.secret, 0, sizeof(tn.secret));
    if (rc == PV_ENOTFOUND) {
        fprintf(stderr, "privid-admin: unknown tenant '%s'\n", a->arg);
        return EXIT_NOTFOUND;
    }
    if (rc != 0) {
        fprintf(stderr, "privid-admin: cannot read tenant '%s': %s\n", a->arg, pv_strerror(rc));
        return EXIT_FAIL;
    }
    if (month == 0)
        month = pv_analytics_ymd(now_ms()) / 100;
    snprintf(label, sizeof(label), "%04u-%02u", month / 100, month % 100);
    if (a->json && (u.days = json_array()) == NULL)
        return EXIT_FAIL;
    if (!a->json)
        printf("%-10s %12s %12s %12s\n", "DAY", "REQUESTS", "IMAGES", "FACES");
    if ((rc = pv_usage_days(t, tn.id, month * 100 + 1, month * 100 + 31, usage_cb, &u)) != 0) {
        json_decref(u.days);
        fprintf(stderr, "privid-admin: cannot read usage: %s\n", pv_strerror(rc));
        return EXIT_FAIL;
    }
    if (a->json)
        return print_json(json_pack("{s:s, s:I, s:s, s:o, s:{s:I, s:I, s:I}, s:I}", "tenant", tn.name,
                                    "tenant_id", (json_int_t)tn.id, "month", label, "days", u.days, "total",
                                    "requests", (json_int_t)u.requests, "images", (json_int_t)u.images,
                                    "faces", (json_int_t)u.faces, "monthly_quota",
                                    (json_int_t)tn.monthly_quota));
    printf("%-10s %12" PRIu64 " %12" PRIu64 " %12" PRIu64 "\n", label, u.requests, u.images, u.faces);
    printf("tenant %s, %s: %zu day%s metered; images count against the quota of %" PRIu64 "%s\n", tn.name,
           label, u.n, u.n == 1 ? "" : "s", tn.monthly_quota, tn.monthly_quota ? "" : " (unlimited)");
    return EXIT_OK;
}
