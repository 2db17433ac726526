/*
 * Unit tests of the visitor mappings and the outbox (tenants/visitors.c) on
 * a real LMDB store in a mkdtemp directory: counters and times, one
 * transaction per image, tenant isolation (B can neither read nor erase A's
 * visitors, and the same person has unlinkable IDs), forged IDs, erasure and
 * the events it leaves in the outbox, the forget queue and retention expiry,
 * reading and deleting outbox batches, persistence across a reopen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/error.h"
#include "tenants/tenants.h"
#include "tenants/visitors.h"

typedef struct {
    char dir[64];
    pv_tenants_t *t;
    pv_tenant_t a, b;
} fixture_t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/pv_visitors_XXXXXX");
    if (mkdtemp(f->dir) == NULL || pv_tenants_open(&f->t, f->dir) != 0 ||
        pv_tenants_create(f->t, &f->a, "store-a", PV_TENANT_NETWORK, 90) != 0 ||
        pv_tenants_create(f->t, &f->b, "store-b", PV_TENANT_NETWORK, 90) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    pv_tenants_close(f->t);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void test_record_and_get(void **state)
{
    fixture_t *f = *state;
    pv_visit_t v[2] = {
        {.gid = 101, .ts_ms = 5000, .location = "paris-1", .camera = "door", .is_new = 1, .distance = -1},
        {.gid = 202, .ts_ms = 5000, .location = "paris-1", .camera = "door", .is_new = 0, .distance = 0.31}};
    pv_visitor_t out[2], got;
    assert_int_equal(pv_visits_record(f->t, &f->a, v, 2, out), 0);
    assert_int_equal(out[0].visits, 1);
    assert_int_equal(out[0].first_seen_ms, 5000);
    assert_string_not_equal(out[0].id, out[1].id);
    /* a second visit, earlier in time (a delayed upload), then a later one */
    v[0].ts_ms = 3000;
    assert_int_equal(pv_visits_record(f->t, &f->a, v, 1, out), 0);
    v[0].ts_ms = 9000;
    assert_int_equal(pv_visits_record(f->t, &f->a, v, 1, out), 0);
    assert_int_equal(out[0].visits, 3);
    assert_int_equal(out[0].first_seen_ms, 3000);
    assert_int_equal(out[0].last_seen_ms, 9000);
    assert_int_equal(pv_visitor_get(f->t, &f->a, out[0].id, strlen(out[0].id), &got), 0);
    assert_int_equal(got.gid, 101);
    assert_int_equal(got.visits, 3);
    assert_string_equal(got.id, out[0].id);
    /* outbox: 4 visit events, in order, with what a report needs and no gid */
    uint64_t n, last;
    char ev[1024];
    assert_int_equal(pv_outbox_stat(f->t, &n, &last), 0);
    assert_int_equal(n, 4);
    assert_int_equal(last, 4);
    assert_int_equal(pv_outbox_get(f->t, 2, ev, sizeof(ev)), 0);
    assert_non_null(strstr(ev, "\"type\":\"visit\""));
    assert_non_null(strstr(ev, "\"status\":\"returning\""));
    assert_non_null(strstr(ev, "\"location\":\"paris-1\""));
    assert_non_null(strstr(ev, "\"event_id\":\""));
    assert_null(strstr(ev, "gid"));
    assert_int_equal(pv_outbox_get(f->t, 99, ev, sizeof(ev)), PV_ENOTFOUND);
    assert_int_equal(pv_outbox_get(f->t, 1, ev, 8), PV_ELIMIT);
}

static void test_isolation_and_forgery(void **state)
{
    fixture_t *f = *state;
    pv_visit_t v = {.gid = 77, .ts_ms = 1, .location = "", .camera = "", .distance = -1};
    pv_visitor_t a, b, got;
    assert_int_equal(pv_visits_record(f->t, &f->a, &v, 1, &a), 0);
    /* B has not seen the person: A's ID means nothing to B */
    assert_int_equal(pv_visitor_get(f->t, &f->b, a.id, strlen(a.id), &got), PV_ENOTFOUND);
    uint64_t gid;
    size_t others;
    assert_int_equal(pv_visitor_erase(f->t, &f->b, a.id, strlen(a.id), &gid, &others), PV_ENOTFOUND);
    assert_int_equal(pv_visitor_get(f->t, &f->a, a.id, strlen(a.id), &got), 0);
    /* the same person at B: another, unlinkable ID */
    assert_int_equal(pv_visits_record(f->t, &f->b, &v, 1, &b), 0);
    assert_string_not_equal(a.id, b.id);
    assert_int_equal(pv_visitor_get(f->t, &f->b, a.id, strlen(a.id), &got), PV_ENOTFOUND);
    /* forged, truncated and mistyped IDs */
    char forged[PV_VISITOR_ID_LEN + 1];
    memcpy(forged, a.id, sizeof(forged));
    forged[10] = forged[10] == 'A' ? 'B' : 'A';
    assert_int_equal(pv_visitor_get(f->t, &f->a, forged, strlen(forged), &got), PV_ENOTFOUND);
    assert_int_equal(pv_visitor_get(f->t, &f->a, a.id, strlen(a.id) - 1, &got), PV_ENOTFOUND);
    assert_int_equal(pv_visitor_get(f->t, &f->a, "", 0, &got), PV_ENOTFOUND);
    assert_int_equal(pv_visitor_get(f->t, &f->a, "vis_../../etc/passwd", 20, &got), PV_ENOTFOUND);
}

static void test_erase(void **state)
{
    fixture_t *f = *state;
    pv_visit_t v = {.gid = 555, .ts_ms = 10, .location = "l", .camera = "c", .distance = -1};
    pv_visitor_t a, b, got;
    uint64_t gid, n0, n1, last;
    size_t others;
    char ev[1024];
    assert_int_equal(pv_visits_record(f->t, &f->a, &v, 1, &a), 0);
    assert_int_equal(pv_visits_record(f->t, &f->b, &v, 1, &b), 0);
    assert_int_equal(pv_outbox_stat(f->t, &n0, &last), 0);
    assert_int_equal(pv_visitor_erase(f->t, &f->a, a.id, strlen(a.id), &gid, &others), 0);
    assert_int_equal(gid, 555);
    assert_int_equal(others, 1); /* B still maps the identity: its exemplars stay */
    assert_int_equal(pv_visitor_get(f->t, &f->a, a.id, strlen(a.id), &got), PV_ENOTFOUND);
    assert_int_equal(pv_visitor_erase(f->t, &f->a, a.id, strlen(a.id), &gid, &others), PV_ENOTFOUND);
    assert_int_equal(pv_outbox_stat(f->t, &n1, &last), 0);
    assert_int_equal(n1, n0 + 1);
    assert_int_equal(pv_outbox_get(f->t, last, ev, sizeof(ev)), 0);
    assert_non_null(strstr(ev, "\"type\":\"erasure\""));
    /* The erasure event names the visitor so the analytics writer can delete its rows in
     * PostgreSQL (the writer's erasures table keeps no visitor ID); it never carries the gid. */
    assert_non_null(strstr(ev, a.id));
    assert_null(strstr(ev, "gid"));
    assert_int_equal(pv_visitor_get(f->t, &f->b, b.id, strlen(b.id), &got), 0);
    assert_int_equal(pv_visitor_erase(f->t, &f->b, b.id, strlen(b.id), &gid, &others), 0);
    assert_int_equal(others, 0);
    /* seen again after erasure: a fresh visitor (same ID, since it is computed), count restarts */
    assert_int_equal(pv_visits_record(f->t, &f->a, &v, 1, &got), 0);
    assert_string_equal(got.id, a.id);
    assert_int_equal(got.visits, 1);
}

/* The forget queue: filled by the erasure of an identity's last mapping, emptied by pv_forget_done. */
static void test_forget_queue(void **state)
{
    fixture_t *f = *state;
    pv_visit_t v1 = {.gid = 701, .ts_ms = 10, .location = "", .camera = "", .distance = -1};
    pv_visit_t v2 = {.gid = 702, .ts_ms = 10, .location = "", .camera = "", .distance = -1};
    pv_visitor_t a1, b1, a2;
    uint64_t gid, gids[8];
    size_t others, n;
    assert_int_equal(pv_forget_any(f->t), 0);
    assert_int_equal(pv_visits_record(f->t, &f->a, &v1, 1, &a1), 0);
    assert_int_equal(pv_visits_record(f->t, &f->b, &v1, 1, &b1), 0);
    assert_int_equal(pv_visits_record(f->t, &f->a, &v2, 1, &a2), 0);
    /* B still maps 701: not queued */
    assert_int_equal(pv_visitor_erase(f->t, &f->a, a1.id, strlen(a1.id), &gid, &others), 0);
    assert_int_equal(pv_forget_any(f->t), 0);
    assert_int_equal(pv_forget_pending(f->t, 701), 0);
    /* the last mapping of 701 and of 702 go: both queued, in gid order */
    assert_int_equal(pv_visitor_erase(f->t, &f->b, b1.id, strlen(b1.id), &gid, &others), 0);
    assert_int_equal(pv_visitor_erase(f->t, &f->a, a2.id, strlen(a2.id), &gid, &others), 0);
    assert_int_equal(pv_forget_any(f->t), 1);
    assert_int_equal(pv_forget_list(f->t, gids, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(gids[0], 701);
    assert_int_equal(gids[1], 702);
    assert_int_equal(pv_forget_list(f->t, gids, 1, &n), 0); /* bounded by max */
    assert_int_equal(n, 1);
    assert_int_equal(pv_forget_pending(f->t, 702), 1);
    assert_int_equal(pv_forget_done(f->t, 701), 0);
    assert_int_equal(pv_forget_done(f->t, 701), 0); /* idempotent */
    assert_int_equal(pv_forget_pending(f->t, 701), 0);
    assert_int_equal(pv_forget_done(f->t, 702), 0);
    assert_int_equal(pv_forget_any(f->t), 0);
}

/* Retention: visitors last seen before the cut-off go, in batches of max; newer ones and
 * other tenants' stay; identities still mapped elsewhere are not queued. */
static void test_expire(void **state)
{
    fixture_t *f = *state;
    pv_visitor_t out, got;
    size_t expired, n;
    uint64_t gids[16];
    /* A: gids 1..5 seen at t=100, gids 6..7 seen at t=1000; B: gid 1 seen at t=100 */
    for (uint64_t g = 1; g <= 7; g++) {
        pv_visit_t v = {.gid = g, .ts_ms = g <= 5 ? 100 : 1000, .location = "", .camera = "", .distance = -1};
        assert_int_equal(pv_visits_record(f->t, &f->a, &v, 1, &out), 0);
    }
    pv_visit_t vb = {.gid = 1, .ts_ms = 100, .location = "", .camera = "", .distance = -1};
    pv_visitor_t b1;
    assert_int_equal(pv_visits_record(f->t, &f->b, &vb, 1, &b1), 0);
    assert_int_equal(pv_visitors_expire(f->t, &f->a, 500, 3, &expired), 0);
    assert_int_equal(expired, 3); /* the first batch */
    assert_int_equal(pv_visitors_expire(f->t, &f->a, 500, 3, &expired), 0);
    assert_int_equal(expired, 2);
    assert_int_equal(pv_visitors_expire(f->t, &f->a, 500, 3, &expired), 0);
    assert_int_equal(expired, 0);
    for (uint64_t g = 1; g <= 7; g++) {
        assert_int_equal(pv_visitor_of_gid(f->t, &f->a, g, &got), g <= 5 ? PV_ENOTFOUND : 0);
        assert_int_equal(pv_visitor_get(f->t, &f->a, got.id, strlen(got.id), &out), g <= 5 ? PV_ENOTFOUND : 0);
    }
    assert_int_equal(pv_visitor_get(f->t, &f->b, b1.id, strlen(b1.id), &got), 0); /* B keeps its visitor */
    assert_int_equal(pv_forget_list(f->t, gids, 16, &n), 0);
    assert_int_equal(n, 4); /* 2..5; 1 is still B's */
    assert_int_equal(gids[0], 2);
    assert_int_equal(gids[3], 5);
    /* the sweep over all tenants: B's visitor (retention 90 days, seen at t=100) goes with now far ahead */
    assert_int_equal(pv_retention_sweep(f->t, 100 + 91LL * 86400000, 0, &expired), 0);
    assert_int_equal(expired, 3); /* A's 6, 7 and B's 1 */
    assert_int_equal(pv_forget_pending(f->t, 1), 1);
    assert_int_equal(pv_visitors_expire(f->t, &f->a, 500, 0, &expired), 0);
    assert_int_equal(expired, 0);
}

typedef struct {
    uint64_t seq[16];
    size_t n, stop_after;
} seen_t;

static int collect(void *arg, uint64_t seq, const char *json, size_t len)
{
    seen_t *s = arg;
    assert_true(len > 2 && json[0] == '{' && json[len - 1] == '}');
    assert_true(s->n < 16);
    s->seq[s->n++] = seq;
    return s->stop_after != 0 && s->n >= s->stop_after;
}

static void test_outbox_read_delete(void **state)
{
    fixture_t *f = *state;
    pv_visit_t v[5];
    pv_visitor_t out[5];
    uint64_t n, last, deleted;
    size_t got;
    seen_t s = {0};
    for (int i = 0; i < 5; i++)
        v[i] =
            (pv_visit_t){.gid = (uint64_t)i + 1, .ts_ms = 1, .location = "l", .camera = "c", .distance = -1};
    assert_int_equal(pv_outbox_read(f->t, 0, 10, collect, &s, &got), 0);
    assert_int_equal(got, 0);
    assert_int_equal(pv_visits_record(f->t, &f->a, v, 5, out), 0);
    assert_int_equal(pv_outbox_read(f->t, 0, 10, collect, &s, &got), 0);
    assert_int_equal(got, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(s.seq[i], i + 1);
    /* after a sequence number, bounded by max */
    s = (seen_t){0};
    assert_int_equal(pv_outbox_read(f->t, 2, 2, collect, &s, &got), 0);
    assert_int_equal(got, 2);
    assert_int_equal(s.seq[0], 3);
    assert_int_equal(s.seq[1], 4);
    /* the callback stops the read; the event it stopped on counts */
    s = (seen_t){.stop_after = 1};
    assert_int_equal(pv_outbox_read(f->t, 0, 10, collect, &s, &got), 0);
    assert_int_equal(got, 1);
    assert_int_equal(s.seq[0], 1);
    /* delete what was delivered; later events keep their numbers */
    assert_int_equal(pv_outbox_delete_upto(f->t, 3, &deleted), 0);
    assert_int_equal(deleted, 3);
    assert_int_equal(pv_outbox_stat(f->t, &n, &last), 0);
    assert_int_equal(n, 2);
    assert_int_equal(last, 5);
    s = (seen_t){0};
    assert_int_equal(pv_outbox_read(f->t, 0, 10, collect, &s, &got), 0);
    assert_int_equal(got, 2);
    assert_int_equal(s.seq[0], 4);
    /* an event appended now sorts after what was read */
    assert_int_equal(pv_visits_record(f->t, &f->b, v, 1, out), 0);
    assert_int_equal(pv_outbox_stat(f->t, &n, &last), 0);
    assert_int_equal(last, 6);
    assert_int_equal(pv_outbox_delete_upto(f->t, 0, &deleted), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(pv_outbox_delete_upto(f->t, UINT64_MAX, NULL), 0);
    assert_int_equal(pv_outbox_stat(f->t, &n, &last), 0);
    assert_int_equal(n, 0);
    assert_int_equal(last, 6); /* emptied, but the numbers used are remembered */
    /* every event says when it was queued */
    char ev[1024];
    assert_int_equal(pv_visits_record(f->t, &f->b, v, 1, out), 0);
    assert_int_equal(pv_outbox_stat(f->t, &n, &last), 0);
    assert_int_equal(last, 7); /* an emptied outbox does not renumber from 1 */
    assert_int_equal(pv_outbox_get(f->t, last, ev, sizeof(ev)), 0);
    assert_non_null(strstr(ev, "\"queued_ms\":"));
    assert_int_equal(pv_outbox_get(f->t, 1, ev, sizeof(ev)), PV_ENOTFOUND);
    /* nor after reopening the store */
    assert_int_equal(pv_outbox_delete_upto(f->t, UINT64_MAX, NULL), 0);
    pv_tenants_close(f->t);
    assert_int_equal(pv_tenants_open(&f->t, f->dir), 0);
    assert_int_equal(pv_visits_record(f->t, &f->a, v, 2, out), 0);
    s = (seen_t){0};
    assert_int_equal(pv_outbox_read(f->t, 0, 10, collect, &s, &got), 0);
    assert_int_equal(got, 2);
    assert_int_equal(s.seq[0], 8);
    assert_int_equal(s.seq[1], 9);
}

static void test_bad_input_and_reopen(void **state)
{
    fixture_t *f = *state;
    pv_visit_t v[PV_VISITS_MAX + 1];
    pv_visitor_t out[PV_VISITS_MAX + 1];
    uint64_t n, last;
    for (int i = 0; i <= PV_VISITS_MAX; i++)
        v[i] = (pv_visit_t){.gid = (uint64_t)i + 1, .ts_ms = 1, .location = "", .camera = "", .distance = -1};
    assert_int_equal(pv_visits_record(f->t, &f->a, v, PV_VISITS_MAX + 1, out), PV_EINVAL);
    v[3].gid = 0;
    assert_int_equal(pv_visits_record(f->t, &f->a, v, 5, out), PV_EINVAL);
    assert_int_equal(pv_outbox_stat(f->t, &n, &last), 0);
    assert_int_equal(n, 0); /* nothing half-written */
    v[3].gid = 4;
    assert_int_equal(pv_visits_record(f->t, &f->a, v, PV_VISITS_MAX, out), 0);
    pv_tenants_close(f->t);
    assert_int_equal(pv_tenants_open(&f->t, f->dir), 0);
    pv_visitor_t got;
    assert_int_equal(pv_visitor_get(f->t, &f->a, out[7].id, strlen(out[7].id), &got), 0);
    assert_int_equal(got.gid, 8);
    assert_int_equal(pv_outbox_stat(f->t, &n, &last), 0);
    assert_int_equal(n, PV_VISITS_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_record_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_isolation_and_forgery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_read_delete, setup, teardown),
    };
    return cmocka_run_group_tests_name("tenants_visitors", tests, NULL, NULL);
}
