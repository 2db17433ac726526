/*
 * Integration test of daily usage against the harness PostgreSQL
 * (PRIVID_TEST_PG): the LMDB day counters (requests, images, faces;
 * pv_usage_days, including days with only refused requests or only faces),
 * their idempotent copy into usage_daily (pv_analytics_usage_sync, and by the
 * writer thread on connecting), and the privid-admin commands over them:
 * `usage TENANT --month`, `analytics status` and `analytics backfill`
 * (exactly once when repeated). Usage: test_usage MIGRATIONS_DIR PRIVID_ADMIN.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "analytics/usage.h"
#include "analytics/writer.h"
#include "common/error.h"
#include "tenants/admin_pg.h"
#include "tenants/tenants.h"
#include "tenants/visitors.h"
#include "tests/integration/analytics/pgtest.h"

static char g_db[64], g_dsn[1024];
static const char *g_admin;

/* 2026-03-01 10:00 UTC and the following days */
#define D1 1772359200000LL
#define DAY 86400000LL

typedef struct {
    char dir[64];
    pv_tenants_t *t;
    pv_tenant_t a, b;
    PGconn *pg;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/pv_usage_XXXXXX");
    if (mkdtemp(f->dir) == NULL || pv_tenants_open(&f->t, f->dir) != 0 ||
        pv_tenants_create(f->t, &f->a, "store-a", PV_TENANT_NETWORK, 90) != 0 ||
        pv_tenants_create(f->t, &f->b, "store-b", PV_TENANT_NETWORK, 90) != 0)
        return -1;
    f->pg = PQconnectdb(g_dsn);
    if (PQstatus(f->pg) != CONNECTION_OK)
        return -1;
    PQclear(PQexec(f->pg, "TRUNCATE visits, events, erasures, usage_daily"));
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

/*
 * a: D1 3 images + 5 faces, D2 2 images. b (quota 2 per month): D1 1 image,
 * D2 1 image and 1 refused request, D3 1 refused request only, D4 faces only.
 */
static void meter(fixture_t *f)
{
    uint64_t used;
    for (int i = 0; i < 3; i++)
        assert_int_equal(pv_usage_take(f->t, f->a.id, D1 + i, 0, 1, &used), 0);
    assert_int_equal(pv_usage_faces(f->t, f->a.id, D1, 5), 0);
    assert_int_equal(pv_usage_faces(f->t, f->a.id, D1, 0), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pv_usage_take(f->t, f->a.id, D1 + DAY + i, 0, 1, &used), 0);
    assert_int_equal(pv_usage_take(f->t, f->b.id, D1, 2, 1, &used), 0);
    assert_int_equal(pv_usage_take(f->t, f->b.id, D1 + DAY, 2, 1, &used), 0);
    assert_int_equal(pv_usage_take(f->t, f->b.id, D1 + DAY, 2, 1, &used), PV_ELIMIT);
    assert_int_equal(used, 2);
    assert_int_equal(pv_usage_take(f->t, f->b.id, D1 + 2 * DAY, 2, 1, &used), PV_ELIMIT);
    assert_int_equal(pv_usage_faces(f->t, f->b.id, D1 + 3 * DAY, 2), 0);
}

typedef struct {
    char text[1024];
    size_t n;
} days_t;

static int day_cb(void *arg, const pv_usage_day_t *d)
{
    days_t *s = arg;
    size_t len = strlen(s->text);
    snprintf(s->text + len, sizeof(s->text) - len, "%s%llu:%u:%llu/%llu/%llu", s->n++ ? " " : "",
             (unsigned long long)d->tenant_id, d->ymd, (unsigned long long)d->requests,
             (unsigned long long)d->images, (unsigned long long)d->faces);
    return 0;
}

static void test_days(void **state)
{
    fixture_t *f = *state;
    days_t s = {{0}, 0};
    char want[512];
    meter(f);
    assert_int_equal(pv_usage_days(f->t, 0, 0, 0, day_cb, &s), 0);
    snprintf(want, sizeof(want),
             "%llu:20260301:3/3/5 %llu:20260302:2/2/0 %llu:20260301:1/1/0 %llu:20260302:2/1/0 "
             "%llu:20260304:0/0/2 %llu:20260303:1/0/0",
             (unsigned long long)f->a.id, (unsigned long long)f->a.id, (unsigned long long)f->b.id,
             (unsigned long long)f->b.id, (unsigned long long)f->b.id, (unsigned long long)f->b.id);
    assert_string_equal(s.text, want);
    memset(&s, 0, sizeof(s));
    assert_int_equal(pv_usage_days(f->t, f->b.id, 20260302, 20260303, day_cb, &s), 0);
    snprintf(want, sizeof(want), "%llu:20260302:2/1/0 %llu:20260303:1/0/0", (unsigned long long)f->b.id,
             (unsigned long long)f->b.id);
    assert_string_equal(s.text, want);
    memset(&s, 0, sizeof(s));
    assert_int_equal(pv_usage_days(f->t, 999, 0, 0, day_cb, &s), 0);
    assert_int_equal(s.n, 0);
}

static void test_sync(void **state)
{
    fixture_t *f = *state;
    char err[512], sql[256];
    size_t rows = 0;
    meter(f);
    assert_int_equal(pv_analytics_usage_sync(f->pg, f->t, 0, &rows, err, sizeof(err)), 0);
    assert_int_equal(rows, 6);
    assert_int_equal(pv_analytics_usage_sync(f->pg, f->t, 0, &rows, err, sizeof(err)), 0); /* idempotent */
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM usage_daily"), 6);
    snprintf(
        sql, sizeof(sql),
        "SELECT requests * 10000 + images * 100 + faces FROM usage_daily WHERE tenant_id = %llu AND day = "
        "'2026-03-01'",
        (unsigned long long)f->a.id);
    assert_int_equal(pgt_scalar(f->pg, sql), 30305);
    /* more traffic; a sync from D2 on updates D2 and leaves D1 alone */
    uint64_t used;
    assert_int_equal(pv_usage_take(f->t, f->a.id, D1 + DAY + 5, 0, 1, &used), 0);
    assert_int_equal(pv_usage_faces(f->t, f->a.id, D1 + DAY + 5, 4), 0);
    assert_int_equal(pv_analytics_usage_sync(f->pg, f->t, 20260302, &rows, err, sizeof(err)), 0);
    assert_int_equal(rows, 4);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM usage_daily"), 6);
    snprintf(
        sql, sizeof(sql),
        "SELECT requests * 10000 + images * 100 + faces FROM usage_daily WHERE tenant_id = %llu AND day = "
        "'2026-03-02'",
        (unsigned long long)f->a.id);
    assert_int_equal(pgt_scalar(f->pg, sql), 30304);
    assert_int_equal(pgt_scalar(f->pg, "SELECT sum(images) FROM usage_daily"), 3 + 3 + 1 + 1);
    /* PostgreSQL refusing (no such table here): PV_EDB with a message, nothing else breaks */
    PGconn *c = PQconnectdb(g_dsn);
    PQclear(PQexec(c, "CREATE TEMP TABLE usage_daily (x int)"));
    assert_int_equal(pv_analytics_usage_sync(c, f->t, 0, &rows, err, sizeof(err)), PV_EDB);
    assert_non_null(strstr(err, "usage_daily"));
    PQfinish(c);
}

/* The writer copies every day when it connects. */
static void test_writer_syncs(void **state)
{
    fixture_t *f = *state;
    pv_writer_t *w = NULL;
    pv_writer_conf_t conf = {.dsn = g_dsn, .idle_ms = 20};
    meter(f);
    assert_int_equal(pv_writer_start(&w, f->t, &conf), 0);
    for (int i = 0; i < 500 && pgt_scalar(f->pg, "SELECT count(*) FROM usage_daily") < 6; i++)
        pgt_sleep_ms(10);
    pv_writer_stop(w);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM usage_daily"), 6);
    assert_int_equal(pgt_scalar(f->pg, "SELECT sum(requests) FROM usage_daily"), 3 + 2 + 1 + 2 + 1);
    assert_int_equal(pgt_scalar(f->pg, "SELECT sum(faces) FROM usage_daily"), 5 + 2);
}

/* Runs privid-admin with args (NULL-terminated) over the fixture's store; returns
 * the exit status, stdout in out (parsed as JSON into *json when json != NULL). */
static int admin(fixture_t *f, char *out, size_t size, json_t **json, ...)
{
    char cmd[4096] = "", path[128], epath[128];
    va_list ap;
    snprintf(path, sizeof(path), "%s/out.txt", f->dir);
    snprintf(epath, sizeof(epath), "%s/err.txt", f->dir);
    snprintf(cmd, sizeof(cmd), "env -u PRIVID_PG PRIVID_DATA_DIR='%s' '%s'", f->dir, g_admin);
    va_start(ap, json);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
        size_t len = strlen(cmd);
        snprintf(cmd + len, sizeof(cmd) - len, " '%s'", a);
    }
    va_end(ap);
    size_t len = strlen(cmd);
    snprintf(cmd + len, sizeof(cmd) - len, " >'%s' 2>'%s'", path, epath);
    int st = system(cmd);
    /* out: stdout, then stderr; only stdout is JSON */
    FILE *fp = fopen(path, "r");
    size_t n = fp != NULL ? fread(out, 1, size - 1, fp) : 0;
    out[n] = '\0';
    if (fp != NULL)
        fclose(fp);
    if (json != NULL) {
        *json = json_loads(out, 0, NULL);
        if (*json == NULL)
            fprintf(stderr, "not JSON: %s\n", out);
    }
    if ((fp = fopen(epath, "r")) != NULL) {
        n += fread(out + n, 1, size - 1 - n, fp);
        out[n] = '\0';
        fclose(fp);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli_usage(void **state)
{
    fixture_t *f = *state;
    char out[8192];
    json_t *j = NULL;
    meter(f);
    assert_int_equal(admin(f, out, sizeof(out), &j, "usage", "store-b", "--month", "2026-03", "--json", NULL),
                     0);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "month")), "2026-03");
    assert_int_equal(json_array_size(json_object_get(j, "days")), 4);
    json_t *tot = json_object_get(j, "total");
    assert_int_equal(json_integer_value(json_object_get(tot, "requests")), 4);
    assert_int_equal(json_integer_value(json_object_get(tot, "images")), 2);
    assert_int_equal(json_integer_value(json_object_get(tot, "faces")), 2);
    json_t *d0 = json_array_get(json_object_get(j, "days"), 0);
    assert_string_equal(json_string_value(json_object_get(d0, "day")), "2026-03-01");
    json_decref(j);
    assert_int_equal(admin(f, out, sizeof(out), NULL, "usage", "store-a", "--month=2026-03", NULL), 0);
    assert_non_null(strstr(out, "2026-03-01"));
    assert_non_null(strstr(out, "2026-03               5            5            5\n")); /* the totals */
    /* another month: no days, zero totals */
    assert_int_equal(admin(f, out, sizeof(out), &j, "usage", "store-a", "--month", "2026-04", "--json", NULL),
                     0);
    assert_int_equal(json_array_size(json_object_get(j, "days")), 0);
    json_decref(j);
    /* the current month by default */
    assert_int_equal(admin(f, out, sizeof(out), &j, "--json", "usage", "store-a", NULL), 0);
    assert_non_null(json_object_get(j, "month"));
    json_decref(j);
    assert_int_equal(admin(f, out, sizeof(out), NULL, "usage", "nobody", NULL), 3);
    assert_non_null(strstr(out, "unknown tenant 'nobody'"));
    assert_int_equal(admin(f, out, sizeof(out), NULL, "usage", "store-a", "--month", "2026-13", NULL), 2);
    assert_non_null(strstr(out, "invalid --month '2026-13'"));
}

static void record(fixture_t *f, int n)
{
    for (int i = 0; i < n; i++) {
        pv_visit_t v = {.gid = 100 + (uint64_t)i,
                        .ts_ms = D1 + i,
                        .location = "door",
                        .camera = "",
                        .is_new = 1,
                        .distance = -1};
        pv_visitor_t out;
        assert_int_equal(pv_visits_record(f->t, &f->a, &v, 1, &out), 0);
    }
}

static void test_cli_analytics(void **state)
{
    fixture_t *f = *state;
    char out[8192];
    json_t *j = NULL;
    meter(f);
    record(f, 40);
    assert_int_equal(admin(f, out, sizeof(out), &j, "analytics", "status", "--json", NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "outbox_depth")), 40);
    assert_true(json_integer_value(json_object_get(j, "oldest_age_ms")) >= 0);
    assert_int_equal(json_integer_value(json_object_get(j, "last_delivery_ms")), 0);
    assert_null(json_object_get(j, "postgresql"));
    json_decref(j);
    assert_int_equal(admin(f, out, sizeof(out), NULL, "analytics", "backfill", NULL), 2); /* no DSN */
    assert_non_null(strstr(out, "needs a PostgreSQL DSN"));
    assert_int_equal(admin(f, out, sizeof(out), NULL, "analytics", "backfill", "--pg",
                           "host=127.0.0.1 port=1 dbname=none connect_timeout=1", "--timeout", "2", NULL),
                     1);
    assert_non_null(strstr(out, "timed out with 40 events"));

    assert_int_equal(admin(f, out, sizeof(out), &j, "analytics", "backfill", "--pg", g_dsn, "--json", NULL),
                     0);
    assert_int_equal(json_integer_value(json_object_get(j, "delivered")), 40);
    json_decref(j);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM visits"), 40);
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM usage_daily"), 6);
    /* again: nothing left, nothing doubled */
    assert_int_equal(admin(f, out, sizeof(out), NULL, "analytics", "backfill", "--pg", g_dsn, NULL), 0);
    assert_non_null(strstr(out, "delivered 0 of the 0 events"));
    assert_int_equal(pgt_scalar(f->pg, "SELECT count(*) FROM visits"), 40);

    assert_int_equal(admin(f, out, sizeof(out), &j, "analytics", "status", "--json", "--pg", g_dsn, NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "outbox_depth")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "delivered")), 40);
    assert_true(json_integer_value(json_object_get(j, "last_delivery_ms")) > D1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "postgresql"), "newest_visit")),
                        "2026-03-01T10:00:00.039Z");
    assert_true(json_is_null(json_object_get(json_object_get(j, "postgresql"), "newest_event")));
    json_decref(j);
    assert_int_equal(admin(f, out, sizeof(out), NULL, "analytics", "status", NULL), 0);
    assert_non_null(strstr(out, "outbox depth:     0 events"));
    assert_int_equal(admin(f, out, sizeof(out), NULL, "analytics", "status", "--pg",
                           "host=127.0.0.1 port=1 dbname=none connect_timeout=1", NULL),
                     1);
}

int main(int argc, char **argv)
{
    pgt_db_t db;
    int rc = 1;
    if (argc != 3) {
        fprintf(stderr, "usage: test_usage MIGRATIONS_DIR PRIVID_ADMIN\n");
        return 2;
    }
    g_admin = argv[2];
    if (pgt_db_create(&db, "privid_u", argv[1]) != 0)
        goto drop;
    snprintf(g_db, sizeof(g_db), "%s", db.name);
    snprintf(g_dsn, sizeof(g_dsn), "%s", db.dsn);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_days, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_syncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_analytics, setup, teardown),
    };
    rc = cmocka_run_group_tests_name("analytics_usage", tests, NULL, NULL);
drop:
    pgt_db_drop(&db);
    return rc;
}
