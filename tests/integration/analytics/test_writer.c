/*
 * Integration test of the analytics writer (analytics/writer.c) against the
 * real PostgreSQL of the harness (PRIVID_TEST_PG): it creates its own
 * database, applies migrations/ with privid-admin's migrate code, and drops
 * the database at the end. Exactly once (overlapping runs, and a crash
 * between the commit and the LMDB delete simulated by restoring a copy of
 * the store), every delivery method, PostgreSQL unreachable (events wait,
 * retries back off), erasure (rows gone, record without the visitor ID,
 * ordering with a later visit), and an event PostgreSQL refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "analytics/writer.h"
#include "common/error.h"
#include "tenants/admin_pg.h"
#include "tenants/store.h"
#include "tenants/tenants.h"
#include "tenants/visitors.h"
#include "tests/integration/analytics/pgtest.h"

#define BAD_DSN "host=127.0.0.1 port=1 dbname=none connect_timeout=2"

static char g_db[64], g_dsn[1024];
static const char *g_migrations;

typedef struct {
    char dir[64];
    pv_tenants_t *t;
    pv_tenant_t a, b;
    PGconn *pg;
} fixture_t;

static uint64_t depth(fixture_t *f)
{
    uint64_t n, last;
    assert_int_equal(pv_outbox_stat(f->t, &n, &last), 0);
    return n;
}

/* Waits until the outbox is empty (the writer delivered and deleted everything). */
static void wait_empty(fixture_t *f, pv_writer_t *w)
{
    for (int i = 0; i < 2000 && depth(f) > 0; i++)
        pgt_sleep_ms(10);
    assert_int_equal(depth(f), 0);
    (void)w;
}

static void record(fixture_t *f, const pv_tenant_t *tn, uint64_t gid0, int n, int64_t ts, pv_visitor_t *last)
{
    for (int i = 0; i < n; i++) {
        pv_visit_t v = {.gid = gid0 + (uint64_t)(i % 97),
                        .ts_ms = ts + i,
                        .location = i % 2 ? "door" : "till",
                        .camera = "cam\t\"1\"\\",
                        .is_new = i < 97,
                        .distance = i < 97 ? -1 : 0.25};
        pv_visitor_t out;
        assert_int_equal(pv_visits_record(f->t, tn, &v, 1, &out), 0);
        if (last != NULL)
            *last = out;
    }
}

static void append_raw(fixture_t *f, json_t *ev)
{
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(f->t->env, NULL, 0, &txn), 0);
    assert_int_equal(pv_store_outbox_append(f->t, txn, ev), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

static pv_writer_t *start(fixture_t *f, const char *dsn, pv_writer_method_t method, size_t batch)
{
    pv_writer_t *w = NULL;
    pv_writer_conf_t conf = {.dsn = dsn,
                             .batch_max = batch,
                             .idle_ms = 20,
                             .backoff_min_ms = 50,
                             .backoff_max_ms = 400,
                             .method = method};
    assert_int_equal(pv_writer_start(&w, f->t, &conf), 0);
    return w;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/pv_writer_XXXXXX");
    if (mkdtemp(f->dir) == NULL || pv_tenants_open(&f->t, f->dir) != 0 ||
        pv_tenants_create(f->t, &f->a, "store-a", PV_TENANT_NETWORK, 90) != 0 ||
        pv_tenants_create(f->t, &f->b, "store-b", PV_TENANT_NETWORK, 90) != 0)
        return -1;
    f->pg = PQconnectdb(g_dsn);
    if (PQstatus(f->pg) != CONNECTION_OK)
        return -1;
    PQclear(PQexec(f->pg, "TRUNCATE visits, events, erasures"));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    PQfinish(f->pg);
    pv_tenants_close(f->t);
    nftw(f->dir, pgt_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void copy_file(const char *from, const char *to)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
}

/* Saves the store's file (save 1) or puts the saved one back (0): restoring
 * is a crash after PostgreSQL committed and before LMDB deleted. */
static void store_copy(fixture_t *f, int save)
{
    char src[128], snap[128];
    pv_tenants_close(f->t);
    snprintf(src, sizeof(src), "%s/data.mdb", f->dir);
    snprintf(snap, sizeof(snap), "%s/snapshot.mdb", f->dir);
    copy_file(save ? src : snap, save ? snap : src);
    assert_int_equal(pv_tenants_open(&f->t, f->dir), 0);
}

/* Overlapping runs and a replay of everything already committed: still once. */
static void exactly_once(void **state, pv_writer_method_t method)
{
    fixture_t *f = *state;
    record(f, &f->a, 1000, 300, 1700000000000, NULL);
    record(f, &f->b, 1000, 20, 1700000000000, NULL);
    /* a snapshot of the store with all 320 events: restoring it later is a crash
     * after PostgreSQL committed them and before LMDB deleted them */
    store_copy(f, 1);

    pv_writer_t *w = start(f, g_dsn, method, 64);
    wait_empty(f, w);
    pv_writer_stop(w);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM visits"), 320);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(DISTINCT event_id) FROM visits"), 320);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM visits WHERE camera <> E'cam\\t\"1\"\\\\'"), 0);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM visits WHERE status = 'new'"), 97 + 20);

    store_copy(f, 0);
    assert_int_equal(depth(f), 320);
    record(f, &f->a, 5000, 30, 1700000500000, NULL); /* new events after the replayed ones */
    w = start(f, g_dsn, method, 100);
    wait_empty(f, w);
    assert_int_equal(pv_writer_delivered(w), 350);
    assert_true(pv_writer_last_delivery_ms(w) > 0);
    /* the deliveries left the roll-up to the writer's roll-up thread, which catches up */
    assert_int_equal(pgt_wait_rollup(f->pg, 30000), 0);
    assert_true(pv_writer_rolled_up(w) > 0);
    pv_writer_stop(w);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM visits"), 350);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(DISTINCT event_id) FROM visits"), 350);
    /* the replay changed nothing in the roll-up either */
    assert_int_equal(pgt_scalar(f->pg, "SELECT sum(n0) FROM visit_rollup WHERE NOT per_location"), 350);
    assert_int_equal(pgt_rollup_diff(f->pg), 0);
}

static void test_exactly_once_insert(void **state)
{
    exactly_once(state, PV_WRITER_INSERT);
}

static void test_exactly_once_copy(void **state)
{
    exactly_once(state, PV_WRITER_COPY);
}

static void test_exactly_once_pipeline(void **state)
{
    exactly_once(state, PV_WRITER_PIPELINE);
}

/* PostgreSQL unreachable: events wait, retries back off; a good DSN then delivers. */
static void test_pg_down(void **state)
{
    fixture_t *f = *state;
    record(f, &f->a, 1, 25, 1700000000000, NULL);
    pv_writer_t *w = start(f, BAD_DSN, PV_WRITER_DEFAULT, 0);
    pgt_sleep_ms(1500);
    uint64_t failures = pv_writer_failures(w);
    /* 50, 100, 200, 400, 400... ms apart: a handful in 1.5 s, never a spin */
    assert_true(failures >= 2);
    assert_true(failures <= 12);
    assert_int_equal(pv_writer_connected(w), 0);
    assert_int_equal(pv_writer_delivered(w), 0);
    assert_int_equal(pv_writer_depth(w), 25);
    assert_true(pv_writer_oldest_age_ms(w) >= 1000);
    pv_writer_stop(w);
    assert_int_equal(depth(f), 25);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM visits"), 0);

    w = start(f, g_dsn, PV_WRITER_DEFAULT, 0);
    wait_empty(f, w);
    for (int i = 0; i < 500 && (pv_writer_depth(w) != 0 || !pv_writer_connected(w)); i++)
        pgt_sleep_ms(10); /* the gauges refresh on the writer's next cycle */
    assert_int_equal(pv_writer_connected(w), 1);
    assert_int_equal(pv_writer_depth(w), 0);
    assert_int_equal(pv_writer_oldest_age_ms(w), 0);
    pv_writer_stop(w);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM visits"), 25);
}

/* Erasure: the visitor's visits and events go, other visitors and tenants stay,
 * the erasures row has no visitor ID, a visit after the erasure survives. */
static void test_erasure(void **state)
{
    fixture_t *f = *state;
    pv_visitor_t x, y, xb;
    char sql[512];
    uint64_t gid;
    size_t others;
    pv_visit_t vx = {.gid = 77, .ts_ms = 1700000000000, .location = "l", .camera = "c", .distance = -1};
    pv_visit_t vy = {.gid = 78, .ts_ms = 1700000000000, .location = "l", .camera = "c", .distance = -1};
    assert_int_equal(pv_visits_record(f->t, &f->a, &vx, 1, &x), 0);
    vx.ts_ms += 1000;
    assert_int_equal(pv_visits_record(f->t, &f->a, &vx, 1, &x), 0);
    assert_int_equal(pv_visits_record(f->t, &f->a, &vy, 1, &y), 0);
    assert_int_equal(pv_visits_record(f->t, &f->b, &vx, 1, &xb), 0);
    append_raw(f, json_pack("{s:s, s:s, s:I, s:s, s:I, s:s, s:I, s:s}", "type", "business", "event_type",
                            "purchase", "tenant_id", (json_int_t)f->a.id, "visitor", x.id, "ts_ms",
                            (json_int_t)1700000003000, "location", "till", "amount_minor", (json_int_t)1250,
                            "currency", "EUR"));
    append_raw(f, json_pack("{s:s, s:s, s:I, s:s, s:I, s:s, s:I, s:s, s:{s:s}}", "type", "business",
                            "event_type", "purchase", "tenant_id", (json_int_t)f->a.id, "visitor", y.id,
                            "ts_ms", (json_int_t)1700000003000, "location", "till", "amount_minor",
                            (json_int_t)500, "currency", "EUR", "attrs", "sku", "42"));
    /* half delivered before the erasure, the rest after: both orders must end erased */
    pv_writer_t *w = start(f, g_dsn, PV_WRITER_DEFAULT, 0);
    wait_empty(f, w);
    pv_writer_stop(w);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM visits WHERE tenant_id = %llu AND visitor = '%s'",
             (unsigned long long)f->a.id, x.id);
    assert_int_equal(pgt_scalar(f->pg, sql), 2);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM events WHERE type = 'purchase'"), 2);

    assert_int_equal(pv_visits_record(f->t, &f->a, &vx, 1, &x), 0); /* a third visit, still in the outbox */
    assert_int_equal(pv_visitor_erase(f->t, &f->a, x.id, strlen(x.id), &gid, &others), 0);
    vx.ts_ms += 5000;
    assert_int_equal(pv_visits_record(f->t, &f->a, &vx, 1, &x), 0); /* seen again after the erasure */
    w = start(f, g_dsn, PV_WRITER_DEFAULT, 0);
    wait_empty(f, w);
    assert_int_equal(pgt_wait_rollup(f->pg, 30000), 0);
    pv_writer_stop(w);
    assert_int_equal(pgt_scalar(f->pg, sql), 1); /* only the visit after the erasure */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM visits WHERE tenant_id = %llu AND visitor = '%s' AND ts = "
             "'epoch'::timestamptz + %lld * interval '1 millisecond'",
             (unsigned long long)f->a.id, x.id, (long long)vx.ts_ms);
    assert_int_equal(pgt_scalar(f->pg, sql), 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE visitor = '%s'", x.id);
    assert_int_equal(pgt_scalar(f->pg, sql), 0);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM events"), 1); /* y's purchase stays */
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM events WHERE attrs->>'sku' = '42' AND "
                                       "amount_minor = 500 AND currency = 'EUR'"),
                     1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM visits WHERE visitor = '%s'", y.id);
    assert_int_equal(pgt_scalar(f->pg, sql), 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM visits WHERE tenant_id = %llu",
             (unsigned long long)f->b.id);
    assert_int_equal(pgt_scalar(f->pg, sql), 1); /* the same person at tenant B is B's, untouched */
    snprintf(sql, sizeof(sql), "SELECT visits FROM erasures WHERE tenant_id = %llu",
             (unsigned long long)f->a.id);
    assert_int_equal(pgt_scalar(f->pg, sql), 3);
    /* the erasure record names no visitor, in any column */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM erasures e WHERE row_to_json(e)::text LIKE '%%%s%%'",
             x.id);
    assert_int_equal(pgt_scalar(f->pg, sql), 0);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM information_schema.columns WHERE table_name = "
                                       "'erasures' AND column_name LIKE '%visitor%'"),
                     0);
    /* the erasure reached the roll-up: its visits are gone from it, and it equals a rebuild */
    snprintf(sql, sizeof(sql), "SELECT sum(n0) FROM visit_rollup WHERE tenant_id = %llu AND NOT per_location",
             (unsigned long long)f->a.id);
    assert_int_equal(pgt_scalar(f->pg, sql), 2); /* x's visit after the erasure and y's */
    assert_int_equal(pgt_rollup_diff(f->pg), 0);
}

/* A visit without a status: PostgreSQL refuses it. */
static void append_refused(fixture_t *f)
{
    append_raw(f, json_pack("{s:s, s:I, s:s, s:I}", "type", "visit", "tenant_id", (json_int_t)f->a.id,
                            "visitor", "nobody", "ts_ms", (json_int_t)1700000000000));
}

/* An event PostgreSQL refuses (no status) is dropped and counted; the rest arrive. */
static void test_rejected_event(void **state)
{
    fixture_t *f = *state;
    record(f, &f->a, 1, 10, 1700000000000, NULL);
    append_refused(f);
    record(f, &f->a, 100, 10, 1700000000000, NULL);
    pv_writer_t *w = start(f, g_dsn, PV_WRITER_DEFAULT, 0);
    wait_empty(f, w);
    assert_int_equal(pv_writer_rejected(w), 1);
    assert_int_equal(pv_writer_delivered(w), 20);
    pv_writer_stop(w);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM visits"), 20);
}

/* A large batch is split over two connections (each part its own transaction);
 * a replay of all of it after a crash, and a refused event in the second part
 * (the first part committed, the batch then goes one event at a time), still
 * land every good event once. */
static void test_split(void **state)
{
    fixture_t *f = *state;
    record(f, &f->a, 1000, 700, 1700000000000, NULL);
    append_refused(f);
    record(f, &f->b, 1000, 700, 1700000100000, NULL);
    store_copy(f, 1);

    pv_writer_t *w = start(f, g_dsn, PV_WRITER_DEFAULT, 2000);
    wait_empty(f, w);
    assert_int_equal(pv_writer_rejected(w), 1);
    /* both delivery connections are open (the roll-up thread has its own) */
    assert_int_equal(pgt_scalar(f->pg,
                                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                "AND application_name = 'privid-writer'"),
                     2);
    pv_writer_stop(w);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM visits"), 1400);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(DISTINCT event_id) FROM visits"), 1400);

    /* the crash replay: all 1401 again, then the next events split cleanly */
    store_copy(f, 0);
    record(f, &f->a, 5000, 1200, 1700000500000, NULL);
    w = start(f, g_dsn, PV_WRITER_COPY, 1500);
    wait_empty(f, w);
    assert_int_equal(pgt_wait_rollup(f->pg, 30000), 0);
    pv_writer_stop(w);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM visits"), 2600);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(DISTINCT event_id) FROM visits"), 2600);
    assert_int_equal(pgt_scalar(f->pg, "SELECT sum(n0) FROM visit_rollup WHERE NOT per_location"), 2600);
    assert_int_equal(pgt_rollup_diff(f->pg), 0);
}

/* The same server, another database (key=value or URI DSN). */
int main(int argc, char **argv)
{
    pgt_db_t db;
    int rc = 1;
    if (argc != 2) {
        fprintf(stderr, "usage: test_writer MIGRATIONS_DIR\n");
        return 2;
    }
    g_migrations = argv[1];
    if (pgt_db_create(&db, "privid_w", g_migrations) != 0)
        goto drop;
    snprintf(g_db, sizeof(g_db), "%s", db.name);
    snprintf(g_dsn, sizeof(g_dsn), "%s", db.dsn);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exactly_once_insert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exactly_once_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exactly_once_pipeline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erasure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split, setup, teardown),
    };
    rc = cmocka_run_group_tests_name("analytics_writer", tests, NULL, NULL);
drop:
    pgt_db_drop(&db);
    return rc;
}
