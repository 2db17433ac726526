/*
 * Unit tests of business events (tenants/events.c) on a real LMDB store in a
 * mkdtemp directory: every field's validation, the batch parser's errors,
 * idempotency on event_id (a retried batch writes nothing twice), tenant
 * isolation (B cannot attach events to A's visitor IDs, and event_ids are
 * per tenant), and atomicity (what is rejected or fails writes nothing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "common/error.h"
#include "tenants/events.h"
#include "tenants/tenants.h"
#include "tenants/visitors.h"

#define NOW_MS 1796378400000LL /* 2026-12-04T10:00:00Z */

typedef struct {
    char dir[64];
    pv_tenants_t *t;
    pv_tenant_t a, b;
    pv_visitor_t va, vb; /* one visitor of A, one of B */
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
    snprintf(f->dir, sizeof(f->dir), "/tmp/pv_events_XXXXXX");
    pv_visit_t v = {.gid = 77, .ts_ms = NOW_MS - 1000, .location = "paris-1", .camera = "door", .is_new = 1,
                    .distance = -1};
    if (mkdtemp(f->dir) == NULL || pv_tenants_open(&f->t, f->dir) != 0 ||
        pv_tenants_create(f->t, &f->a, "store-a", PV_TENANT_NETWORK, 90) != 0 ||
        pv_tenants_create(f->t, &f->b, "store-b", PV_TENANT_NETWORK, 1) != 0 ||
        pv_visits_record(f->t, &f->a, &v, 1, &f->va) != 0 || pv_visits_record(f->t, &f->b, &v, 1, &f->vb) != 0) {
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

/* A valid purchase of visitor vid. */
static json_t *purchase(const char *id, const char *vid)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:{s:s, s:i}}", "event_id", id, "visitor", vid, "type",
                     "purchase", "ts", "2026-12-04T09:59:00Z", "location", "paris-1", "amount_minor", 1299,
                     "currency", "EUR", "attrs", "sku", "A-1", "items", 2);
}

static uint64_t outbox_count(fixture_t *f)
{
    uint64_t n = 0, last = 0;
    assert_int_equal(pv_outbox_stat(f->t, &n, &last), 0);
    return n;
}

static void expect_reject(json_t *ev, const char *reason_part)
{
    char reason[PV_EVENT_REASON_MAX];
    int rc = pv_event_check(ev, NOW_MS, 90, reason, sizeof(reason));
    if (rc != PV_EINVAL || strstr(reason, reason_part) == NULL)
        fail_msg("expected a rejection containing \"%s\", got rc=%d reason \"%s\"", reason_part, rc, reason);
    json_decref(ev);
}

static void test_check_fields(void **state)
{
    fixture_t *f = *state;
    char reason[PV_EVENT_REASON_MAX];
    const char *vid = f->va.id;
    json_t *ev = purchase("e-1", vid);
    assert_int_equal(pv_event_check(ev, NOW_MS, 90, reason, sizeof(reason)), 0);
    assert_string_equal(reason, "");
    json_decref(ev);
    /* a minimal custom event, 64-char id, 32-char type, ts 4 minutes ahead, offset time zone */
    ev = json_pack("{s:s, s:s, s:s, s:s}", "event_id",
                   "abcdefghijABCDEFGHIJ0123456789_-abcdefghijABCDEFGHIJ0123456789_-", "visitor", vid, "type",
                   "loyalty_signup_0123456789_abcdef", "ts", "2026-12-04T11:04:00+01:00");
    assert_int_equal(pv_event_check(ev, NOW_MS, 90, reason, sizeof(reason)), 0);
    json_decref(ev);

    ev = purchase("e-1", vid), json_object_del(ev, "event_id"), expect_reject(ev, "event_id: missing");
    ev = purchase("", vid), expect_reject(ev, "event_id:");
    ev = purchase("has space", vid), expect_reject(ev, "event_id:");
    ev = purchase("e.1", vid), expect_reject(ev, "event_id:");
    ev = purchase("abcdefghijABCDEFGHIJ0123456789_-abcdefghijABCDEFGHIJ0123456789_-x", vid),
    expect_reject(ev, "event_id:");
    ev = purchase("e", vid), json_object_set_new(ev, "event_id", json_integer(5)), expect_reject(ev, "event_id:");
    ev = purchase("e", vid), json_object_del(ev, "visitor"), expect_reject(ev, "visitor: missing");
    ev = purchase("e", vid), json_object_set_new(ev, "visitor", json_integer(1)), expect_reject(ev, "visitor:");
    ev = purchase("e", vid), json_object_del(ev, "type"), expect_reject(ev, "type: missing");
    ev = purchase("e", vid), json_object_set_new(ev, "type", json_string("Purchase")), expect_reject(ev, "type:");
    ev = purchase("e", vid), json_object_set_new(ev, "type", json_string("")), expect_reject(ev, "type:");
    ev = purchase("e", vid), json_object_set_new(ev, "type", json_string("a-b")), expect_reject(ev, "type:");
    ev = purchase("e", vid), json_object_set_new(ev, "type", json_string("abcdefghijabcdefghijabcdefghijabc")),
    expect_reject(ev, "type:");
    ev = purchase("e", vid), json_object_del(ev, "ts"), expect_reject(ev, "ts: missing");
    ev = purchase("e", vid), json_object_set_new(ev, "ts", json_string("2026-12-04")), expect_reject(ev, "ts: expected");
    ev = purchase("e", vid), json_object_set_new(ev, "ts", json_string("2026-02-30T10:00:00Z")),
    expect_reject(ev, "ts: expected");
    ev = purchase("e", vid), json_object_set_new(ev, "ts", json_integer(1796378400)), expect_reject(ev, "ts: expected");
    ev = purchase("e", vid), json_object_set_new(ev, "ts", json_string("2026-12-04T10:05:01Z")),
    expect_reject(ev, "future");
    ev = purchase("e", vid), json_object_set_new(ev, "ts", json_string("2026-09-04T09:59:59Z")),
    expect_reject(ev, "retention");
    ev = purchase("e", vid), json_object_set_new(ev, "location", json_string("")), expect_reject(ev, "location:");
    ev = purchase("e", vid), json_object_set_new(ev, "location", json_string("a\tb")), expect_reject(ev, "location:");
    ev = purchase("e", vid), json_object_set_new(ev, "location", json_integer(3)), expect_reject(ev, "location:");
    ev = purchase("e", vid),
    json_object_set_new(ev, "location",
                        json_string("0123456789012345678901234567890123456789012345678901234567890123x")),
    expect_reject(ev, "location:");
    ev = purchase("e", vid), json_object_del(ev, "amount_minor"), json_object_del(ev, "currency"),
    expect_reject(ev, "required for a purchase");
    ev = purchase("e", vid), json_object_set_new(ev, "amount_minor", json_integer(-1)), expect_reject(ev, "negative");
    ev = purchase("e", vid), json_object_set_new(ev, "amount_minor", json_real(12.5)),
    expect_reject(ev, "amount_minor: expected");
    ev = purchase("e", vid), json_object_set_new(ev, "amount_minor", json_string("12")),
    expect_reject(ev, "amount_minor: expected");
    ev = purchase("e", vid), json_object_set_new(ev, "amount_minor", json_integer(1000000000000001LL)),
    expect_reject(ev, "10^15");
    ev = purchase("e", vid), json_object_del(ev, "currency"), expect_reject(ev, "currency: required");
    ev = purchase("e", vid), json_object_set_new(ev, "currency", json_string("eur")), expect_reject(ev, "currency:");
    ev = purchase("e", vid), json_object_set_new(ev, "currency", json_string("EURO")), expect_reject(ev, "currency:");
    ev = purchase("e", vid), json_object_set_new(ev, "currency", json_string("ABC")), expect_reject(ev, "currency:");
    ev = purchase("e", vid), json_object_set_new(ev, "currency", json_string("UR ")), expect_reject(ev, "currency:");
    ev = purchase("e", vid), json_object_set_new(ev, "type", json_string("refund_note")),
    json_object_del(ev, "amount_minor"), expect_reject(ev, "currency: given without");
    ev = purchase("e", vid), json_object_set_new(ev, "attrs", json_array()), expect_reject(ev, "attrs: expected");
    ev = purchase("e", vid), json_object_set_new(ev, "attrs", json_pack("{s:[i]}", "x", 1)),
    expect_reject(ev, "only strings");
    ev = purchase("e", vid), json_object_set_new(ev, "attrs", json_pack("{s:{}}", "x")), expect_reject(ev, "only strings");
    ev = purchase("e", vid);
    json_t *big = json_object();
    for (int i = 0; i < 17; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", i);
        json_object_set_new(big, k, json_true());
    }
    json_object_set_new(ev, "attrs", big), expect_reject(ev, "keys");
    char longval[1100];
    memset(longval, 'x', sizeof(longval) - 1);
    longval[sizeof(longval) - 1] = '\0';
    ev = purchase("e", vid), json_object_set_new(ev, "attrs", json_pack("{s:s}", "note", longval)),
    expect_reject(ev, "1024 bytes");
    ev = purchase("e", vid), json_object_set_new(ev, "amount", json_integer(5)), expect_reject(ev, "unknown field");
    expect_reject(json_string("x"), "expected an object");
    /* scalar attrs of every kind are fine, and USD/JPY are currencies */
    ev = purchase("e", vid);
    json_object_set_new(ev, "attrs", json_pack("{s:s, s:i, s:f, s:b, s:n}", "a", "x", "b", 1, "c", 1.5, "d", 1, "e"));
    json_object_set_new(ev, "currency", json_string("JPY"));
    assert_int_equal(pv_event_check(ev, NOW_MS, 90, reason, sizeof(reason)), 0);
    json_decref(ev);
}

static void expect_parse(const char *body, int status, const char *text_part)
{
    json_t *events = (json_t *)1;
    pv_events_error_t err;
    int rc = pv_events_parse(&events, body, strlen(body), &err);
    if (rc == 0 || err.status != status || strstr(err.text, text_part) == NULL || events != NULL)
        fail_msg("parse \"%.40s\": rc=%d status=%d text \"%s\"", body, rc, err.status, err.text);
}

static void test_parse(void **state)
{
    (void)state;
    json_t *events;
    pv_events_error_t err;
    const char *ok = "{\"events\":[{\"a\":1},{}]}";
    assert_int_equal(pv_events_parse(&events, ok, strlen(ok), &err), 0);
    assert_int_equal(json_array_size(events), 2);
    json_decref(events);
    expect_parse("{\"events\":[", 400, "line 1");
    expect_parse("", 400, "malformed");
    expect_parse("{\"events\":[{\"a\":1,\"a\":2}]}", 400, "duplicate");
    expect_parse("[]", 422, "expected an object");
    expect_parse("{\"events\":{}}", 422, "expected an array");
    expect_parse("{\"events\":[]}", 422, "empty");
    expect_parse("{\"events\":[{}],\"x\":1}", 422, "unknown field");
    expect_parse("{}", 422, "expected an array");
    /* 501 events; then a body over the byte limit */
    size_t cap = 8 * 501 + 32;
    char *b = malloc(PV_EVENTS_BODY_MAX + 2);
    assert_non_null(b);
    strcpy(b, "{\"events\":[");
    for (int i = 0; i < 501; i++)
        strcat(b, i ? ",{}" : "{}");
    strcat(b, "]}");
    assert_true(strlen(b) < cap);
    expect_parse(b, 413, "at most 500");
    memset(b, ' ', PV_EVENTS_BODY_MAX + 1);
    b[PV_EVENTS_BODY_MAX + 1] = '\0';
    expect_parse(b, 413, "larger than");
    free(b);
}

static void test_append_idempotent(void **state)
{
    fixture_t *f = *state;
    pv_event_result_t r[3];
    size_t acc;
    uint64_t before = outbox_count(f), last = 0, n;
    json_t *batch = json_pack("[o, o, {s:s, s:s, s:s, s:s}]", purchase("till-1", f->va.id),
                              purchase("till-2", f->va.id), "event_id", "sig-1", "visitor", f->va.id, "type",
                              "newsletter_signup", "ts", "2026-12-04T09:00:00Z");
    assert_int_equal(pv_events_append(f->t, &f->a, batch, NOW_MS, r, &acc), 0);
    assert_int_equal(acc, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].status, PV_EVENT_ACCEPTED);
    assert_int_equal(outbox_count(f), before + 3);
    /* the outbox keeps the client's event_id and the documented shape */
    assert_int_equal(pv_outbox_stat(f->t, &n, &last), 0);
    char buf[2048];
    assert_int_equal(pv_outbox_get(f->t, last - 2, buf, sizeof(buf)), 0);
    json_t *o = json_loads(buf, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "business");
    assert_string_equal(json_string_value(json_object_get(o, "event_id")), "till-1");
    assert_int_equal(json_integer_value(json_object_get(o, "tenant_id")), f->a.id);
    assert_string_equal(json_string_value(json_object_get(o, "visitor")), f->va.id);
    assert_string_equal(json_string_value(json_object_get(o, "event_type")), "purchase");
    assert_int_equal(json_integer_value(json_object_get(o, "ts_ms")), NOW_MS - 60000);
    assert_string_equal(json_string_value(json_object_get(o, "location")), "paris-1");
    assert_int_equal(json_integer_value(json_object_get(o, "amount_minor")), 1299);
    assert_string_equal(json_string_value(json_object_get(o, "currency")), "EUR");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "attrs"), "sku")), "A-1");
    json_decref(o);
    assert_int_equal(pv_outbox_get(f->t, last, buf, sizeof(buf)), 0);
    o = json_loads(buf, 0, NULL);
    assert_true(json_is_null(json_object_get(o, "amount_minor")));
    assert_true(json_is_null(json_object_get(o, "currency")));
    assert_string_equal(json_string_value(json_object_get(o, "location")), "");
    json_decref(o);

    /* the same batch again: all duplicates, nothing written */
    assert_int_equal(pv_events_append(f->t, &f->a, batch, NOW_MS, r, &acc), 0);
    assert_int_equal(acc, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].status, PV_EVENT_DUPLICATE);
    assert_int_equal(outbox_count(f), before + 3);
    /* a retry of part of it next to a new event: only the new one is written */
    json_t *retry = json_pack("[O, o]", json_array_get(batch, 1), purchase("till-3", f->va.id));
    assert_int_equal(pv_events_append(f->t, &f->a, retry, NOW_MS, r, &acc), 0);
    assert_int_equal(acc, 1);
    assert_int_equal(r[0].status, PV_EVENT_DUPLICATE);
    assert_int_equal(r[1].status, PV_EVENT_ACCEPTED);
    assert_int_equal(outbox_count(f), before + 4);
    json_decref(retry);
    json_decref(batch);

    /* the idempotency record survives a reopen */
    pv_tenants_close(f->t);
    assert_int_equal(pv_tenants_open(&f->t, f->dir), 0);
    batch = json_pack("[o]", purchase("till-1", f->va.id));
    assert_int_equal(pv_events_append(f->t, &f->a, batch, NOW_MS, r, &acc), 0);
    assert_int_equal(r[0].status, PV_EVENT_DUPLICATE);
    json_decref(batch);
}

static void test_tenant_isolation(void **state)
{
    fixture_t *f = *state;
    pv_event_result_t r[3];
    size_t acc;
    uint64_t before = outbox_count(f);
    /* B (retention 1 day) uses A's visitor ID: unknown to B; a forged ID too */
    char forged[PV_VISITOR_ID_LEN + 1];
    memcpy(forged, f->vb.id, sizeof(forged));
    forged[10] = forged[10] == 'A' ? 'B' : 'A';
    json_t *batch =
        json_pack("[o, o, o]", purchase("x-1", f->va.id), purchase("x-2", forged), purchase("x-3", "vis_short"));
    assert_int_equal(pv_events_append(f->t, &f->b, batch, NOW_MS, r, &acc), 0);
    assert_int_equal(acc, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].status, PV_EVENT_REJECTED);
        assert_string_equal(r[i].reason, "unknown visitor");
    }
    assert_int_equal(outbox_count(f), before);
    json_decref(batch);
    /* event_ids are per tenant: A and B may both use "shared-1" */
    batch = json_pack("[o]", purchase("shared-1", f->va.id));
    assert_int_equal(pv_events_append(f->t, &f->a, batch, NOW_MS, r, &acc), 0);
    assert_int_equal(r[0].status, PV_EVENT_ACCEPTED);
    json_decref(batch);
    batch = json_pack("[o]", purchase("shared-1", f->vb.id));
    assert_int_equal(pv_events_append(f->t, &f->b, batch, NOW_MS, r, &acc), 0);
    assert_int_equal(r[0].status, PV_EVENT_ACCEPTED);
    json_decref(batch);
    /* B's retention is one day: a purchase two days old is refused for B only */
    batch = json_pack("[o]", purchase("old-1", f->vb.id));
    json_object_set_new(json_array_get(batch, 0), "ts", json_string("2026-12-02T10:00:00Z"));
    assert_int_equal(pv_events_append(f->t, &f->b, batch, NOW_MS, r, &acc), 0);
    assert_int_equal(r[0].status, PV_EVENT_REJECTED);
    assert_non_null(strstr(r[0].reason, "retention"));
    json_decref(batch);
    /* an erased visitor is unknown from then on */
    uint64_t gid;
    size_t others;
    assert_int_equal(pv_visitor_erase(f->t, &f->b, f->vb.id, strlen(f->vb.id), &gid, &others), 0);
    batch = json_pack("[o]", purchase("after-erase", f->vb.id));
    assert_int_equal(pv_events_append(f->t, &f->b, batch, NOW_MS, r, &acc), 0);
    assert_string_equal(r[0].reason, "unknown visitor");
    json_decref(batch);
}

static void test_atomic_mixed(void **state)
{
    fixture_t *f = *state;
    pv_event_result_t r[5];
    size_t acc;
    uint64_t before = outbox_count(f), n, last;
    json_t *bad = purchase("m-3", f->va.id);
    json_object_set_new(bad, "currency", json_string("X" "XX") /* ISO 4217 "no currency" */);
    json_t *batch = json_pack("[o, o, o, o, o]", purchase("m-1", f->va.id), purchase("m-1", f->va.id), bad,
                              purchase("m-4", f->vb.id), purchase("m-5", f->va.id));
    assert_int_equal(pv_events_append(f->t, &f->a, batch, NOW_MS, r, &acc), 0);
    assert_int_equal(acc, 2);
    assert_int_equal(r[0].status, PV_EVENT_ACCEPTED);
    assert_int_equal(r[1].status, PV_EVENT_REJECTED);
    assert_string_equal(r[1].reason, "event_id: repeated in this batch");
    assert_int_equal(r[2].status, PV_EVENT_REJECTED);
    assert_non_null(strstr(r[2].reason, "currency"));
    assert_int_equal(r[3].status, PV_EVENT_REJECTED);
    assert_string_equal(r[3].reason, "unknown visitor");
    assert_int_equal(r[4].status, PV_EVENT_ACCEPTED);
    assert_int_equal(pv_outbox_stat(f->t, &n, &last), 0);
    assert_int_equal(n, before + 2);
    /* the rejected event_ids were not remembered: fixed, they are accepted */
    json_decref(batch);
    batch = json_pack("[o]", purchase("m-3", f->va.id));
    assert_int_equal(pv_events_append(f->t, &f->a, batch, NOW_MS, r, &acc), 0);
    assert_int_equal(r[0].status, PV_EVENT_ACCEPTED);
    json_decref(batch);
    /* refused batches write nothing at all */
    before = outbox_count(f);
    batch = json_array();
    for (int i = 0; i < PV_EVENTS_BATCH_MAX + 1; i++) {
        char id[16];
        snprintf(id, sizeof(id), "big-%d", i);
        json_array_append_new(batch, purchase(id, f->va.id));
    }
    pv_event_result_t *many = calloc(PV_EVENTS_BATCH_MAX + 1, sizeof(*many));
    assert_int_equal(pv_events_append(f->t, &f->a, batch, NOW_MS, many, &acc), PV_EINVAL);
    assert_int_equal(acc, 0);
    /* exactly the maximum is fine, in one transaction */
    json_array_remove(batch, PV_EVENTS_BATCH_MAX);
    assert_int_equal(pv_events_append(f->t, &f->a, batch, NOW_MS, many, &acc), 0);
    assert_int_equal(acc, PV_EVENTS_BATCH_MAX);
    assert_int_equal(outbox_count(f), before + PV_EVENTS_BATCH_MAX);
    free(many);
    json_decref(batch);
    json_t *notarray = json_object();
    assert_int_equal(pv_events_append(f->t, &f->a, notarray, NOW_MS, r, &acc), PV_EINVAL);
    json_decref(notarray);
    assert_int_equal(outbox_count(f), before + PV_EVENTS_BATCH_MAX);
}

/* Idempotency records go once their event could not be accepted anyway (older
 * than the tenant's retention) or their tenant is gone, in bounded batches;
 * a retry of a pruned event is still refused, never stored twice. */
static void test_prune(void **state)
{
    fixture_t *f = *state;
    pv_event_result_t r[2];
    size_t acc, pruned;
    json_t *old = purchase("till-old", f->va.id);
    json_object_set_new(old, "ts", json_string("2026-09-15T10:00:00Z")); /* 80 days before NOW_MS */
    json_t *ba = json_pack("[o, o]", purchase("till-new", f->va.id), old),
           *bb = json_pack("[o]", purchase("b-1", f->vb.id));
    assert_int_equal(pv_events_append(f->t, &f->a, ba, NOW_MS, r, &acc), 0);
    assert_int_equal(acc, 2);
    assert_int_equal(pv_events_append(f->t, &f->b, bb, NOW_MS, r, &acc), 0); /* B keeps 1 day */
    assert_int_equal(acc, 1);
    assert_int_equal(pv_events_prune(f->t, NOW_MS, 100, &pruned), 0);
    assert_int_equal(pruned, 0); /* all still acceptable: all kept */
    /* two days later B's event is past B's retention: its record goes, and a retry is refused as too old */
    const int64_t later = NOW_MS + 2 * 86400000LL;
    assert_int_equal(pv_events_prune(f->t, later, 100, &pruned), 0);
    assert_int_equal(pruned, 1);
    uint64_t before = outbox_count(f);
    assert_int_equal(pv_events_append(f->t, &f->b, bb, later, r, &acc), 0);
    assert_int_equal(acc, 0);
    assert_int_equal(r[0].status, PV_EVENT_REJECTED);
    assert_non_null(strstr(r[0].reason, "retention"));
    assert_int_equal(outbox_count(f), before);
    /* A's records are within A's 90 days: a retry is still a duplicate */
    assert_int_equal(pv_events_append(f->t, &f->a, ba, later, r, &acc), 0);
    assert_int_equal(r[0].status, PV_EVENT_DUPLICATE);
    assert_int_equal(r[1].status, PV_EVENT_DUPLICATE);
    /* eleven days later the 80-day-old event is past 90 days: bounded to 1 per call here */
    assert_int_equal(pv_events_prune(f->t, NOW_MS + 11 * 86400000LL, 1, &pruned), 0);
    assert_int_equal(pruned, 1);
    assert_int_equal(pv_events_prune(f->t, NOW_MS + 11 * 86400000LL, 1, &pruned), 0);
    assert_int_equal(pruned, 0);
    /* a deleted tenant's records all go */
    assert_int_equal(pv_tenants_delete(f->t, "store-a"), 0);
    assert_int_equal(pv_events_prune(f->t, NOW_MS, 100, &pruned), 0);
    assert_int_equal(pruned, 1);
    json_decref(ba);
    json_decref(bb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_check_fields, setup, teardown),
        cmocka_unit_test(test_parse),
        cmocka_unit_test_setup_teardown(test_append_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_mixed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
