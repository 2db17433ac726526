/*
 * The analytics writer (see writer.h). One thread. A cycle reads up to
 * batch_max events from the head of the outbox, inserts them in one
 * transaction, commits, then deletes them from LMDB; a crash between the
 * commit and the delete replays a suffix of the outbox, and the inserts'
 * ON CONFLICT DO NOTHING makes that replay a no-op. A large batch without
 * erasures is cut into conf.connections contiguous parts delivered at once,
 * each in its own transaction on its own connection (helper threads for the
 * parts past the first): inserts of distinct events do not depend on one
 * another, and the batch leaves LMDB only once every part committed (a
 * failed part replays the whole batch, a no-op for the parts that landed).
 * A PostgreSQL backend runs on one core: two delivered 25 % more
 * (bench_writer). An erasure deletes the visitor's rows; a replay re-inserts a visit only together with the
 * erasure that follows it (deletion is up-to a sequence number), so it ends erased. Events are applied in
 * sequence order: a batch is cut at each erasure. The roll-up (migrations/0005-0007) is off this path: the
 * connection sets privid.rollup_deferred, so an INSERT only records its visits as pending, and a second
 * thread on its own connection applies them to the roll-up (analytics_rollup_catch_up, ROLLUP_CHUNK visits at
 * a time), so a delivery never waits for it and reports read `visits` for a tenant with pending visits.
 * conf.rollup_inline keeps the roll-up in each delivery (bench). The same thread copies the LMDB usage
 * counters into usage_daily (usage.h): every day after each (re)connection, then yesterday and today every
 * USAGE_EVERY_MS and once more when it stops. It also prunes the business
 * events' idempotency records past their tenant's retention every
 * PRUNE_EVERY_MS (pv_events_prune).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include "analytics/usage.h"
#include "analytics/writer.h"
#include "common/error.h"
#include "common/log.h"
#include "tenants/events.h"
#include "tenants/visitors.h"

#define BATCH_DEFAULT 5000                 /* bench_writer: 57k events/s at 5000, 47-56k at 1000 */
#define BATCH_BYTES_MAX ((size_t)16 << 20) /* a batch stops growing past 16 MiB of JSON */
#define PARTITIONS_EVERY_MS (6 * 3600 * 1000)
#define USAGE_EVERY_MS (60 * 1000)
#define PRUNE_EVERY_MS (3600 * 1000) /* idempotency records past their tenant's retention (events.h) */
#define PRUNE_BATCH 10000            /* records per LMDB write transaction */
#define DAY_MS (24 * 3600 * 1000)
#define CONNS_DEFAULT 2
#define CONNS_MAX 4
#define SPLIT_MIN 512        /* a batch is split only when each part gets at least this many events */
#define ROLLUP_CHUNK "5000"  /* pending visits per catch-up transaction (whole visitors) */
#define ROLLUP_YIELD_MS 1000 /* with a backlog in the outbox, the roll-up takes one chunk per second */

/* The SELECT lists shared by every method: `j` is one event as jsonb. */
#define TS_EXPR "('epoch'::timestamptz + (j->>'ts_ms')::bigint * interval '1 millisecond')"
#define VISIT_INSERT                                                                                         \
    "INSERT INTO visits (tenant_id, ts, event_id, visitor, location, camera, status, distance) "             \
    "SELECT (j->>'tenant_id')::bigint, " TS_EXPR ", j->>'event_id', j->>'visitor', "                         \
    "coalesce(j->>'location', ''), coalesce(j->>'camera', ''), j->>'status', (j->>'distance')::real "
#define EVENT_INSERT                                                                                         \
    "INSERT INTO events (tenant_id, ts, event_id, visitor, type, location, amount_minor, currency, "         \
    "attrs) SELECT (j->>'tenant_id')::bigint, " TS_EXPR ", j->>'event_id', j->>'visitor', "                  \
    "coalesce(j->>'event_type', j->>'type'), coalesce(j->>'location', ''), (j->>'amount_minor')::bigint, "   \
    "j->>'currency', "                                                                                       \
    "j->'attrs' "
#define IS_VISIT "j->>'type' = 'visit'"
#define IS_EVENT "j->>'type' NOT IN ('visit', 'erasure')"
#define CONFLICT " ON CONFLICT DO NOTHING"

/* one erasure, $1 = the event: the visitor's rows go, the record keeps no visitor ID */
static const char ERASE_SQL[] =
    "WITH b AS (SELECT $1::jsonb AS j), "
    "dv AS (DELETE FROM visits v USING b WHERE v.tenant_id = (j->>'tenant_id')::bigint "
    "AND v.visitor = j->>'visitor'), "
    "de AS (DELETE FROM events e USING b WHERE e.tenant_id = (j->>'tenant_id')::bigint "
    "AND e.visitor = j->>'visitor') "
    "INSERT INTO erasures (tenant_id, event_id, ts, visits) "
    "SELECT (j->>'tenant_id')::bigint, j->>'event_id', " TS_EXPR ", coalesce((j->>'visits')::bigint, 0) "
    "FROM b" CONFLICT;

/* a segment of non-erasure events as one jsonb array in $1 */
static const char ARRAY_SQL[] = "WITH b AS (SELECT jsonb_array_elements($1::jsonb) AS j), "
                                "v AS (" VISIT_INSERT "FROM b WHERE " IS_VISIT CONFLICT "), "
                                "e AS (" EVENT_INSERT "FROM b WHERE " IS_EVENT CONFLICT ") SELECT 1";

/* the same from the COPY staging table */
static const char STAGE_SQL[] =
    "WITH v AS (" VISIT_INSERT "FROM pv_outbox_stage WHERE " IS_VISIT CONFLICT "), "
    "e AS (" EVENT_INSERT "FROM pv_outbox_stage WHERE " IS_EVENT CONFLICT ") SELECT 1";

/* one event, $1, for pipeline mode */
static const char VISIT_ONE_SQL[] = VISIT_INSERT "FROM (SELECT $1::jsonb AS j) b" CONFLICT;
static const char EVENT_ONE_SQL[] = EVENT_INSERT "FROM (SELECT $1::jsonb AS j) b" CONFLICT;

enum { T_VISIT, T_ERASURE, T_OTHER };

typedef struct {
    uint64_t seq;
    size_t off, len; /* into batch_t.text; text[off + len] is NUL */
    int type;
} item_t;

typedef struct {
    item_t *items;
    size_t n, cap, max;
    char *text;
    size_t used, size;
    int oom;
} batch_t;

struct pv_writer {
    pv_tenants_t *t;
    char *dsn;
    size_t batch_max;
    int idle_ms, backoff_min_ms, backoff_max_ms;
    pv_writer_method_t method;
    int lock_fd; /* writer.lock in the store's directory, flock()ed while the writer runs */
    int rollup_inline;
    int conns; /* delivery connections, 1..CONNS_MAX */
    pthread_t thread, rollup_thread;
    int rollup_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping, pending, rollup_wake;
    _Atomic uint64_t depth, delivered, failures, rejected, rolled_up;
    _Atomic int64_t oldest_queued_ms, last_delivery_ms;
    _Atomic int connected, rollup_idle;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int stop_asked(pv_writer_t *w)
{
    pthread_mutex_lock(&w->mu);
    int stop = w->stopping;
    pthread_mutex_unlock(&w->mu);
    return stop;
}

/* Sleeps up to ms; returns nonzero when asked to stop. *wake set (then cleared) ends it early;
 * wake NULL: only a stop does. */
static int nap(pv_writer_t *w, int ms, int *wake)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->stopping && !(wake != NULL && *wake) &&
           pthread_cond_timedwait(&w->cv, &w->mu, &until) != ETIMEDOUT)
        ;
    if (wake != NULL)
        *wake = 0;
    int stop = w->stopping;
    pthread_mutex_unlock(&w->mu);
    return stop;
}

/* The event's top-level "type". Our events are written with "type" first, so the
 * common case needs no parse; anything else (or an odd shape) is a business
 * event unless it really is an erasure, which only our own code writes first. */
static int event_type(const char *s, size_t len)
{
    static const char pre[] = "{\"type\":\"";
    size_t p = sizeof(pre) - 1;
    if (len > p && memcmp(s, pre, p) == 0) {
        if (len >= p + 6 && memcmp(s + p, "visit\"", 6) == 0)
            return T_VISIT;
        if (len >= p + 8 && memcmp(s + p, "erasure\"", 8) == 0)
            return T_ERASURE;
    }
    return T_OTHER;
}

static int collect(void *arg, uint64_t seq, const char *json, size_t len)
{
    batch_t *b = arg;
    if (b->n == b->cap) {
        size_t ncap = b->cap == 0 ? 256 : b->cap * 2;
        item_t *ni = realloc(b->items, ncap * sizeof(*ni));
        if (ni == NULL)
            goto oom;
        b->items = ni;
        b->cap = ncap;
    }
    if (b->used + len + 1 > b->size) {
        size_t nsize = b->size == 0 ? 65536 : b->size;
        while (nsize < b->used + len + 1)
            nsize *= 2;
        char *nt = realloc(b->text, nsize);
        if (nt == NULL)
            goto oom;
        b->text = nt;
        b->size = nsize;
    }
    item_t *it = &b->items[b->n++];
    it->seq = seq;
    it->off = b->used;
    it->len = len;
    it->type = event_type(json, len);
    memcpy(b->text + b->used, json, len);
    b->text[b->used + len] = '\0';
    b->used += len + 1;
    return b->used >= BATCH_BYTES_MAX;
oom:
    b->oom = 1;
    return 1;
}

/* ---- PostgreSQL ---- */

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Logs a failed result; returns 1 when it is the data's fault (class 22 data
 * exception or 23 integrity violation): retrying the same event cannot help. */
static int log_failure(PGconn *c, PGresult *r, const char *what)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(c);
    char line[300];
    snprintf(line, sizeof(line), "%s", msg != NULL ? msg : "");
    line[strcspn(line, "\n")] = '\0';
    for (char *q = line; *q != '\0'; q++)
        if (*q == '"')
            *q = '\'';
    PV_LOG(PV_LOG_WARN, "analytics writer: batch failed", "step=%s sqlstate=%s error=\"%s\"", what,
           state != NULL ? state : "-", line);
    return state != NULL && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0);
}

/* Runs sql (with $1 = param when param != NULL); 0, or -1 / -2 (data error). */
static int exec1(PGconn *c, const char *what, const char *sql, const char *param)
{
    PGresult *r = param != NULL ? PQexecParams(c, sql, 1, NULL, &param, NULL, NULL, 0) : PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = log_failure(c, r, what) ? -2 : -1;
    PQclear(r);
    return rc;
}

/* The jsonb array "[e1,e2,...]" of items [from, to) into buf (grown). */
static int array_text(const batch_t *b, size_t from, size_t to, char **buf, size_t *size)
{
    size_t need = 3;
    for (size_t i = from; i < to; i++)
        need += b->items[i].len + 1;
    if (need > *size) {
        char *nb = realloc(*buf, need);
        if (nb == NULL)
            return -1;
        *buf = nb;
        *size = need;
    }
    char *p = *buf;
    *p++ = '[';
    for (size_t i = from; i < to; i++) {
        if (i > from)
            *p++ = ',';
        memcpy(p, b->text + b->items[i].off, b->items[i].len);
        p += b->items[i].len;
    }
    *p++ = ']';
    *p = '\0';
    return 0;
}

/* COPY items [from, to) into the staging table (text format, one jsonb per line). */
static int copy_stage(PGconn *c, const batch_t *b, size_t from, size_t to, char **buf, size_t *size)
{
    int rc = exec1(c, "stage",
                   "CREATE TEMP TABLE IF NOT EXISTS pv_outbox_stage (j jsonb) ON COMMIT DELETE ROWS", NULL);
    if (rc == 0)
        rc = exec1(c, "stage", "TRUNCATE pv_outbox_stage", NULL);
    if (rc != 0)
        return rc;
    PGresult *r = PQexec(c, "COPY pv_outbox_stage (j) FROM STDIN");
    int ok = PQresultStatus(r) == PGRES_COPY_IN;
    if (!ok)
        log_failure(c, r, "copy");
    PQclear(r);
    if (!ok)
        return -1;
    for (size_t i = from; i < to && ok; i++) {
        const item_t *it = &b->items[i];
        if (*size < 2 * it->len + 2) {
            char *nb = realloc(*buf, 2 * it->len + 2);
            if (nb == NULL) {
                PQputCopyEnd(c, "out of memory");
                ok = 0;
                break;
            }
            *buf = nb;
            *size = 2 * it->len + 2;
        }
        /* text COPY: backslash and the control characters it treats specially are escaped */
        char *p = *buf;
        for (size_t k = 0; k < it->len; k++) {
            char ch = b->text[it->off + k];
            if (ch == '\\' || ch == '\n' || ch == '\r' || ch == '\t') {
                *p++ = '\\';
                ch = ch == '\n' ? 'n' : ch == '\r' ? 'r' : ch == '\t' ? 't' : '\\';
            }
            *p++ = ch;
        }
        *p++ = '\n';
        ok = PQputCopyData(c, *buf, (int)(p - *buf)) == 1;
    }
    if (ok)
        ok = PQputCopyEnd(c, NULL) == 1;
    int data_err = 0;
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            data_err = log_failure(c, r, "copy");
            ok = 0;
        }
        PQclear(r);
    }
    return ok ? 0 : data_err ? -2 : -1;
}

static int prepare_pipeline(PGconn *c)
{
    const char *names[] = {"pv_visit", "pv_event", "pv_erase"};
    const char *sqls[] = {VISIT_ONE_SQL, EVENT_ONE_SQL, ERASE_SQL};
    for (int i = 0; i < 3; i++) {
        PGresult *r = PQprepare(c, names[i], sqls[i], 1, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            log_failure(c, r, "prepare");
        PQclear(r);
        if (!ok)
            return -1;
    }
    return 0;
}

/* The batch in pipeline mode: BEGIN, one prepared statement per event, COMMIT, one sync. */
static int deliver_pipeline(PGconn *c, const batch_t *b)
{
    static const char *names[] = {"pv_visit", "pv_erase", "pv_event"}; /* by T_* */
    int rc = 0, data_err = 0;
    if (PQenterPipelineMode(c) != 1)
        return -1;
    int sent = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    for (size_t i = 0; i < b->n && sent; i++) {
        const char *param = b->text + b->items[i].off;
        sent = PQsendQueryPrepared(c, names[b->items[i].type], 1, &param, NULL, NULL, 0);
    }
    if (sent)
        sent = PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
    if (!sent || PQpipelineSync(c) != 1) {
        rc = -1;
        goto out;
    }
    /* one result (then NULL) per statement, then the sync */
    for (int nulls = 0;;) {
        PGresult *r = PQgetResult(c);
        if (r == NULL) {
            if (PQstatus(c) != CONNECTION_OK || ++nulls > 1) {
                rc = -1;
                break;
            }
            continue;
        }
        nulls = 0;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        if (st == PGRES_FATAL_ERROR) {
            data_err |= log_failure(c, r, "pipeline");
            rc = -1;
        } else if (st == PGRES_PIPELINE_ABORTED) {
            rc = -1;
        }
        PQclear(r);
    }
out:
    PQexitPipelineMode(c);
    return rc == 0 ? 0 : data_err ? -2 : -1;
}

/*
 * Inserts the batch in one transaction and commits. Returns 0, -1 (retry
 * later: connection or server trouble) or -2 (PostgreSQL refused the data).
 */
static int deliver(pv_writer_t *w, PGconn *c, const batch_t *b, char **buf, size_t *size)
{
    int rc;
    if (w->method == PV_WRITER_PIPELINE) {
        rc = deliver_pipeline(c, b);
        goto out;
    }
    if ((rc = exec1(c, "begin", "BEGIN", NULL)) != 0)
        goto out;
    for (size_t i = 0; i < b->n && rc == 0;) {
        if (b->items[i].type == T_ERASURE) {
            rc = exec1(c, "erase", ERASE_SQL, b->text + b->items[i].off);
            i++;
            continue;
        }
        size_t j = i;
        while (j < b->n && b->items[j].type != T_ERASURE)
            j++;
        if (w->method == PV_WRITER_COPY) {
            if ((rc = copy_stage(c, b, i, j, buf, size)) == 0)
                rc = exec1(c, "insert", STAGE_SQL, NULL);
        } else if (array_text(b, i, j, buf, size) != 0) {
            rc = -1;
        } else {
            rc = exec1(c, "insert", ARRAY_SQL, *buf);
        }
        i = j;
    }
    if (rc == 0)
        rc = exec1(c, "commit", "COMMIT", NULL);
out:
    if (rc != 0 && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
        PQclear(PQexec(c, "ROLLBACK"));
    return rc;
}

/* One part of a split batch: a view of the batch's items and text. */
typedef struct {
    pv_writer_t *w;
    PGconn *c;
    pthread_t thread;
    batch_t view;
    char *buf;
    size_t size;
    int rc;
} part_t;

static void *deliver_part(void *arg)
{
    part_t *p = arg;
    p->rc = deliver(p->w, p->c, &p->view, &p->buf, &p->size);
    return NULL;
}

static PGconn *connect_pg(pv_writer_t *w, int rollup);

/*
 * Delivers batch b on c, cut into up to w->conns parts when it is large and
 * holds no erasure (an erasure must follow its visitor's earlier events in
 * one transaction); extra[] are the further connections, opened here when
 * missing (a part whose connection cannot be opened is not split off).
 * Returns deliver()'s codes: the first failure of any part.
 */
static int deliver_split(pv_writer_t *w, PGconn *c, PGconn **extra, part_t *parts, const batch_t *b,
                         char **buf, size_t *size)
{
    size_t k = (size_t)w->conns;
    while (k > 1 && b->n / k < SPLIT_MIN)
        k--;
    for (size_t i = 0; i < b->n && k > 1; i++)
        if (b->items[i].type == T_ERASURE)
            k = 1;
    size_t ready = 1;
    while (ready < k) {
        PGconn **e = &extra[ready - 1];
        if (*e != NULL && PQstatus(*e) != CONNECTION_OK) {
            PQfinish(*e);
            *e = NULL;
        }
        if (*e == NULL && (*e = connect_pg(w, 0)) == NULL)
            break;
        ready++;
    }
    k = ready;
    if (k == 1)
        return deliver(w, c, b, buf, size);
    size_t per = b->n / k;
    for (size_t i = 1; i < k; i++) {
        part_t *p = &parts[i - 1];
        size_t from = i * per, to = i + 1 == k ? b->n : from + per;
        p->w = w;
        p->c = extra[i - 1];
        p->view = (batch_t){.items = b->items + from, .n = to - from, .text = b->text};
        p->rc = PV_ENOMEM;
        if (pthread_create(&p->thread, NULL, deliver_part, p) != 0)
            p->view.n = 0;
    }
    batch_t first = {.items = b->items, .n = per, .text = b->text};
    int rc = deliver(w, c, &first, buf, size);
    for (size_t i = 1; i < k; i++) {
        part_t *p = &parts[i - 1];
        if (p->view.n > 0)
            pthread_join(p->thread, NULL);
        if (rc == 0 || (rc == -1 && p->rc == -2))
            rc = p->rc; /* a refused event (-2) is found one event at a time on c */
    }
    return rc;
}

/* A connection for the writer (rollup 0) or the roll-up thread (1), or NULL (logged). */
static PGconn *connect_pg(pv_writer_t *w, int rollup)
{
    const char *keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *vals[] = {"5", rollup ? "privid-rollup" : "privid-writer", w->dsn, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        char line[300];
        snprintf(line, sizeof(line), "%s", c != NULL ? PQerrorMessage(c) : "out of memory");
        line[strcspn(line, "\n")] = '\0';
        for (char *q = line; *q != '\0'; q++)
            if (*q == '"')
                *q = '\'';
        PV_LOG(PV_LOG_WARN, "analytics writer: cannot connect", "error=\"%s\"", line);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, quiet_notices, NULL);
    if (!rollup && !w->rollup_inline &&
        exec1(c, "deferred roll-up", "SET privid.rollup_deferred = on", NULL) != 0) {
        PQfinish(c);
        return NULL;
    }
    if (!rollup && w->method == PV_WRITER_PIPELINE && prepare_pipeline(c) != 0) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Depth and the oldest event's queue time, for the metrics. */
static int oldest_cb(void *arg, uint64_t seq, const char *json, size_t len)
{
    (void)seq;
    static const char key[] = "\"queued_ms\":";
    const char *p = memmem(json, len, key, sizeof(key) - 1), *end = json + len;
    int64_t v = 0;
    /* the value is not NUL-terminated (LMDB memory): parse digits within len */
    if (p != NULL)
        for (p += sizeof(key) - 1; p < end && *p >= '0' && *p <= '9' && v < INT64_MAX / 10 - 10; p++)
            v = v * 10 + (*p - '0');
    *(int64_t *)arg = v > 0 ? v : now_ms();
    return 1;
}

static void refresh_stats(pv_writer_t *w)
{
    uint64_t count = 0, last = 0;
    int64_t oldest = 0;
    size_t n = 0;
    if (pv_outbox_stat(w->t, &count, &last) != 0)
        return;
    if (count > 0 && pv_outbox_read(w->t, 0, 1, oldest_cb, &oldest, &n) != 0)
        return;
    atomic_store(&w->depth, count);
    atomic_store(&w->oldest_queued_ms, count > 0 ? oldest : 0);
}

/* usage_daily from the LMDB counters; all days when `all`, else yesterday and today.
 * A failure is logged and left to the next round: the counters stay in LMDB. */
static void sync_usage(pv_writer_t *w, PGconn *c, int all)
{
    char err[300];
    size_t rows = 0;
    uint32_t from = all ? 0 : pv_analytics_ymd(now_ms() - DAY_MS);
    if (pv_analytics_usage_sync(c, w->t, from, &rows, err, sizeof(err)) != 0) {
        for (char *q = err; *q != '\0'; q++)
            if (*q == '"')
                *q = '\'';
        PV_LOG(PV_LOG_WARN, "analytics writer: usage sync failed", "error=\"%s\"", err);
    }
}

static void *run(void *arg)
{
    pv_writer_t *w = arg;
    PGconn *c = NULL, *extra[CONNS_MAX - 1] = {NULL};
    part_t parts[CONNS_MAX - 1] = {{0}};
    batch_t b = {.max = w->batch_max};
    char *buf = NULL;
    size_t bufsize = 0, single_left = 0;
    int backoff = w->backoff_min_ms;
    int64_t partitions_at = 0, usage_at = 0, prune_at = 0;

    for (;;) {
        if (stop_asked(w))
            break;
        refresh_stats(w);
        if (now_ms() - prune_at > PRUNE_EVERY_MS) {
            /* LMDB only: done whether or not PostgreSQL is up; bounded transactions */
            size_t pruned = PRUNE_BATCH, total = 0;
            while (pruned == PRUNE_BATCH && pv_events_prune(w->t, now_ms(), PRUNE_BATCH, &pruned) == 0)
                total += pruned;
            if (total > 0)
                PV_LOG(PV_LOG_INFO, "analytics writer: idempotency records pruned", "records=%zu", total);
            prune_at = now_ms();
        }
        if (c == NULL || PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            if ((c = connect_pg(w, 0)) == NULL)
                goto failed;
            partitions_at = usage_at = 0;
            PV_LOG(PV_LOG_INFO, "analytics writer: connected", "method=%d", (int)w->method);
        }
        if (now_ms() - partitions_at > PARTITIONS_EVERY_MS) {
            /* months ahead for the partitioned tables; a failure is not fatal (default partition) */
            exec1(c, "partitions", "SELECT analytics_ensure_partitions()", NULL);
            partitions_at = now_ms();
        }
        if (now_ms() - usage_at > USAGE_EVERY_MS) {
            sync_usage(w, c, usage_at == 0);
            usage_at = now_ms();
        }
        b.n = b.used = 0;
        b.oom = 0;
        size_t n = 0, want = single_left > 0 ? 1 : w->batch_max;
        if (pv_outbox_read(w->t, 0, want, collect, &b, &n) != 0 || b.oom) {
            PV_LOG(PV_LOG_ERROR, "analytics writer: cannot read the outbox", "events=%zu", n);
            goto failed_lmdb;
        }
        if (b.n == 0) {
            atomic_store(&w->connected, 1);
            if (nap(w, w->idle_ms, &w->pending))
                break;
            continue;
        }
        int rc = single_left > 0 ? deliver(w, c, &b, &buf, &bufsize)
                                 : deliver_split(w, c, extra, parts, &b, &buf, &bufsize);
        if (rc == -2 && b.n > 1) {
            /* a bad event spoils its batch: find it by delivering one at a time */
            single_left = b.n;
            goto failed;
        }
        if (rc == -2) {
            PV_LOG(PV_LOG_ERROR, "analytics writer: event refused by PostgreSQL, dropped", "seq=%" PRIu64,
                   b.items[0].seq);
            atomic_fetch_add(&w->rejected, 1);
        } else if (rc != 0) {
            goto failed;
        } else {
            atomic_fetch_add(&w->delivered, b.n);
            atomic_store(&w->last_delivery_ms, now_ms());
            atomic_store(&w->rollup_idle, 0);
            pthread_mutex_lock(&w->mu);
            w->rollup_wake = 1;
            pthread_cond_broadcast(&w->cv);
            pthread_mutex_unlock(&w->mu);
        }
        if (single_left > 0)
            single_left--;
        /* committed: now it may go from LMDB (a failure here only means a harmless replay) */
        if (pv_outbox_delete_upto(w->t, b.items[b.n - 1].seq, NULL) != 0)
            goto failed_lmdb;
        atomic_store(&w->connected, 1);
        backoff = w->backoff_min_ms;
        continue;
    failed:
        if (c != NULL && PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            c = NULL;
        }
        atomic_store(&w->connected, 0);
    failed_lmdb:
        atomic_fetch_add(&w->failures, 1);
        if (nap(w, backoff, NULL))
            break;
        backoff = backoff * 2 > w->backoff_max_ms ? w->backoff_max_ms : backoff * 2;
    }
    if (c != NULL && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE)
        sync_usage(w, c, 0); /* the counters of the last minute */
    PQfinish(c);
    for (size_t i = 0; i < CONNS_MAX - 1; i++) {
        PQfinish(extra[i]);
        free(parts[i].buf);
    }
    free(b.items);
    free(b.text);
    free(buf);
    return NULL;
}

/* The roll-up thread: applies delivered visits to the roll-up, a chunk per
 * transaction, until none is pending; then waits for the next delivery (or
 * idle_ms: pending visits from an earlier run or another writer). While the
 * outbox holds a backlog it yields to the deliveries (both compete for the
 * same cores) but still takes a chunk every ROLLUP_YIELD_MS. */
static void *run_rollup(void *arg)
{
    pv_writer_t *w = arg;
    PGconn *c = NULL;
    int backoff = w->backoff_min_ms;
    int64_t last_ms = 0;
    for (;;) {
        if (stop_asked(w))
            break;
        /* deliveries first: while the outbox holds more than a batch, one chunk a second */
        int64_t since = now_ms() - last_ms;
        if (atomic_load(&w->depth) > w->batch_max && since >= 0 && since < ROLLUP_YIELD_MS) {
            if (nap(w, (int)(ROLLUP_YIELD_MS - since), NULL))
                break;
            continue;
        }
        if (c == NULL || PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            if ((c = connect_pg(w, 1)) == NULL)
                goto failed;
        }
        last_ms = now_ms();
        PGresult *r = PQexec(c, "SELECT analytics_rollup_catch_up(" ROLLUP_CHUNK ")");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            log_failure(c, r, "roll-up");
            PQclear(r);
            goto failed;
        }
        long long n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        backoff = w->backoff_min_ms;
        if (n > 0) {
            atomic_fetch_add(&w->rolled_up, (uint64_t)n);
            continue;
        }
        /* nothing pending: unless a delivery came meanwhile (it clears this first) */
        pthread_mutex_lock(&w->mu);
        if (!w->rollup_wake)
            atomic_store(&w->rollup_idle, 1);
        pthread_mutex_unlock(&w->mu);
        if (nap(w, w->idle_ms, &w->rollup_wake))
            break;
        continue;
    failed:
        if (c != NULL && PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            c = NULL;
        }
        if (nap(w, backoff, NULL))
            break;
        backoff = backoff * 2 > w->backoff_max_ms ? w->backoff_max_ms : backoff * 2;
    }
    PQfinish(c);
    return NULL;
}

/* The store's writer lock: an fd holding flock(LOCK_EX) on <dir>/writer.lock, or
 * PV_EEXIST when another writer holds it, or -errno. */
static int lock_store(pv_tenants_t *t)
{
    const char *dir = pv_tenants_dir(t);
    char path[4096];
    if (dir == NULL || (size_t)snprintf(path, sizeof(path), "%s/writer.lock", dir) >= sizeof(path))
        return PV_EINVAL;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno == EWOULDBLOCK ? PV_EEXIST : -errno;
        close(fd);
        return err;
    }
    return fd;
}

int pv_writer_start(pv_writer_t **out, pv_tenants_t *t, const pv_writer_conf_t *conf)
{
    if (t == NULL || conf == NULL || conf->dsn == NULL || conf->method < PV_WRITER_DEFAULT ||
        conf->method > PV_WRITER_PIPELINE)
        return PV_EINVAL;
    int fd = lock_store(t);
    if (fd < 0)
        return fd;
    pv_writer_t *w = calloc(1, sizeof(*w));
    if (w == NULL || (w->dsn = strdup(conf->dsn)) == NULL) {
        free(w);
        close(fd);
        return PV_ENOMEM;
    }
    w->lock_fd = fd;
    w->t = t;
    w->batch_max = conf->batch_max > 0 ? conf->batch_max : BATCH_DEFAULT;
    w->idle_ms = conf->idle_ms > 0 ? conf->idle_ms : 200;
    w->backoff_min_ms = conf->backoff_min_ms > 0 ? conf->backoff_min_ms : 100;
    w->backoff_max_ms = conf->backoff_max_ms > 0 ? conf->backoff_max_ms : 5000;
    if (w->backoff_max_ms < w->backoff_min_ms)
        w->backoff_max_ms = w->backoff_min_ms;
    w->method = conf->method == PV_WRITER_DEFAULT ? PV_WRITER_COPY : conf->method;
    w->rollup_inline = conf->rollup_inline;
    w->conns = conf->connections > 0 ? conf->connections : CONNS_DEFAULT;
    if (w->conns > CONNS_MAX)
        w->conns = CONNS_MAX;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    refresh_stats(w);
    int err = pthread_create(&w->thread, NULL, run, w);
    if (err == 0 && !w->rollup_inline) {
        if ((err = pthread_create(&w->rollup_thread, NULL, run_rollup, w)) != 0) {
            pthread_mutex_lock(&w->mu);
            w->stopping = 1;
            pthread_cond_broadcast(&w->cv);
            pthread_mutex_unlock(&w->mu);
            pthread_join(w->thread, NULL);
        }
        w->rollup_started = err == 0;
    }
    if (err != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        close(w->lock_fd);
        free(w->dsn);
        free(w);
        return -err;
    }
    *out = w;
    return 0;
}

void pv_writer_notify(pv_writer_t *w)
{
    pthread_mutex_lock(&w->mu);
    w->pending = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void pv_writer_stop(pv_writer_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    if (w->rollup_started)
        pthread_join(w->rollup_thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    close(w->lock_fd); /* releases the store's writer lock */
    free(w->dsn);
    free(w);
}

/* the getters read atomics; the casts drop a const the atomics API does not take */
uint64_t pv_writer_depth(const pv_writer_t *w)
{
    return atomic_load(&((pv_writer_t *)w)->depth);
}

int64_t pv_writer_oldest_age_ms(const pv_writer_t *w)
{
    int64_t q = atomic_load(&((pv_writer_t *)w)->oldest_queued_ms);
    int64_t age = q > 0 ? now_ms() - q : 0;
    return age > 0 ? age : 0;
}

uint64_t pv_writer_delivered(const pv_writer_t *w)
{
    return atomic_load(&((pv_writer_t *)w)->delivered);
}

int64_t pv_writer_last_delivery_ms(const pv_writer_t *w)
{
    return atomic_load(&((pv_writer_t *)w)->last_delivery_ms);
}

uint64_t pv_writer_failures(const pv_writer_t *w)
{
    return atomic_load(&((pv_writer_t *)w)->failures);
}

uint64_t pv_writer_rejected(const pv_writer_t *w)
{
    return atomic_load(&((pv_writer_t *)w)->rejected);
}

uint64_t pv_writer_rolled_up(const pv_writer_t *w)
{
    return atomic_load(&((pv_writer_t *)w)->rolled_up);
}

int pv_writer_rollup_idle(const pv_writer_t *w)
{
    return w->rollup_inline || atomic_load(&((pv_writer_t *)w)->rollup_idle);
}

int pv_writer_connected(const pv_writer_t *w)
{
    return atomic_load(&((pv_writer_t *)w)->connected);
}
