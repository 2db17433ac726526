/*
 * Unit tests of the tenants store (tenants/tenants.c): tenants, keys, the
 * authentication hot path, scopes and the on-disk properties. Every test gets
 * a fresh store in its own mkdtemp directory, removed afterwards.
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
#include <lmdb.h>
#include <sys/stat.h>
#include <time.h>
#include "common/codec.h"
#include "common/error.h"
#include "tenants/tenants.h"

typedef struct {
    char dir[64];
    pv_tenants_t *t;
} fixture_t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/pv_tenants_XXXXXX");
    if (mkdtemp(f->dir) == NULL || pv_tenants_open(&f->t, f->dir) != 0) {
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

static pv_tenant_t make_tenant(fixture_t *f, const char *name, pv_tenant_mode_t mode)
{
    pv_tenant_t tn;
    assert_int_equal(pv_tenants_create(f->t, &tn, name, mode, 90), 0);
    return tn;
}

static void test_create_find_get(void **state)
{
    fixture_t *f = *state;
    pv_tenant_t a = make_tenant(f, "acme", PV_TENANT_NETWORK), b, c;
    static const uint8_t zero[PV_TENANT_SECRET_LEN];

    assert_int_equal(a.id, 1);
    assert_string_equal(a.name, "acme");
    assert_int_equal(a.retention_days, 90);
    assert_true(a.created_at > 0);
    assert_memory_not_equal(a.secret, zero, sizeof(zero));

    assert_int_equal(pv_tenants_find(f->t, &b, "acme"), 0);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_int_equal(pv_tenants_get(f->t, &c, a.id), 0);
    assert_memory_equal(&a, &c, sizeof(a));

    pv_tenant_t d;
    assert_int_equal(pv_tenants_create(f->t, &d, "shop-2", PV_TENANT_ISOLATED, 3650), 0);
    assert_int_equal(d.id, 2);
    assert_int_equal(d.mode, PV_TENANT_ISOLATED);
    assert_memory_not_equal(a.secret, d.secret, sizeof(a.secret));

    assert_int_equal(pv_tenants_find(f->t, &b, "nobody"), PV_ENOTFOUND);
    assert_int_equal(pv_tenants_get(f->t, &b, 99), PV_ENOTFOUND);
}

static void test_create_rejects(void **state)
{
    fixture_t *f = *state;
    pv_tenant_t tn;
    make_tenant(f, "acme", PV_TENANT_NETWORK);
    assert_int_equal(pv_tenants_create(f->t, &tn, "acme", PV_TENANT_ISOLATED, 90), PV_EEXIST);
    assert_int_equal(pv_tenants_create(f->t, &tn, "ok", PV_TENANT_NETWORK, 0), PV_EINVAL);
    assert_int_equal(pv_tenants_create(f->t, &tn, "ok", PV_TENANT_NETWORK, PV_TENANT_RETENTION_MAX + 1),
                     PV_EINVAL);
    assert_int_equal(pv_tenants_create(f->t, &tn, "ok", (pv_tenant_mode_t)7, 90), PV_EINVAL);
    assert_int_equal(pv_tenants_create(f->t, &tn, "-bad", PV_TENANT_NETWORK, 90), PV_EINVAL);
    /* a failed create does not consume an id */
    assert_int_equal(pv_tenants_create(f->t, &tn, "ok", PV_TENANT_NETWORK, 1), 0);
    assert_int_equal(tn.id, 2);
}

static void test_name_validation(void **state)
{
    (void)state;
    char longest[PV_TENANT_NAME_MAX + 2];
    memset(longest, 'a', sizeof(longest));
    longest[PV_TENANT_NAME_MAX] = '\0';
    assert_int_equal(pv_tenants_name_valid(longest), 0);
    longest[PV_TENANT_NAME_MAX] = 'a';
    longest[PV_TENANT_NAME_MAX + 1] = '\0';
    assert_int_equal(pv_tenants_name_valid(longest), PV_EINVAL);

    const char *good[] = {"a", "A", "0", "acme", "Acme.Store_2-x", "9lives"};
    const char *bad[] = {"", "-a", ".a", "_a", "a b", "a/b", "a:b", "é", "a\n", "a#1"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(pv_tenants_name_valid(good[i]), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pv_tenants_name_valid(bad[i]), PV_EINVAL);
    assert_int_equal(pv_tenants_name_valid(NULL), PV_EINVAL);
}

static void test_list_sorted_and_delete(void **state)
{
    fixture_t *f = *state;
    pv_tenant_t *arr = NULL, tn;
    size_t n = 99;

    assert_int_equal(pv_tenants_list(f->t, &arr, &n), 0);
    assert_null(arr);
    assert_int_equal(n, 0);

    make_tenant(f, "zeta", PV_TENANT_NETWORK);
    make_tenant(f, "alpha", PV_TENANT_NETWORK);
    make_tenant(f, "mid", PV_TENANT_ISOLATED);
    assert_int_equal(pv_tenants_list(f->t, &arr, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(arr[0].name, "alpha");
    assert_string_equal(arr[1].name, "mid");
    assert_string_equal(arr[2].name, "zeta");
    free(arr);

    assert_int_equal(pv_tenants_delete(f->t, "mid"), 0);
    assert_int_equal(pv_tenants_delete(f->t, "mid"), PV_ENOTFOUND);
    assert_int_equal(pv_tenants_find(f->t, &tn, "mid"), PV_ENOTFOUND);
    assert_int_equal(pv_tenants_get(f->t, &tn, 3), PV_ENOTFOUND);
    assert_int_equal(pv_tenants_list(f->t, &arr, &n), 0);
    assert_int_equal(n, 2);
    free(arr);

    /* ids are never reused, even for a recreated name */
    assert_int_equal(pv_tenants_create(f->t, &tn, "mid", PV_TENANT_NETWORK, 90), 0);
    assert_int_equal(tn.id, 4);
}

static void authenticate_ok(fixture_t *f, const char *text, pv_auth_t *auth)
{
    pv_tenants_reader_t *r = NULL;
    assert_int_equal(pv_tenants_reader_create(&r, f->t), 0);
    assert_int_equal(pv_tenants_authenticate(r, auth, text, strlen(text)), 0);
    pv_tenants_reader_destroy(r);
}

static void test_key_create_authenticate(void **state)
{
    fixture_t *f = *state;
    pv_tenant_t tn = make_tenant(f, "acme", PV_TENANT_ISOLATED);
    char text[PV_KEY_TEXT_LEN + 1];
    pv_key_info_t ki;
    pv_auth_t auth;

    assert_int_equal(pv_keys_create(f->t, &ki, text, tn.id, PV_SCOPE_RECOGNIZE | PV_SCOPE_ERASE), 0);
    assert_int_equal(strlen(text), PV_KEY_TEXT_LEN);
    assert_memory_equal(text, "pvk_", 4);
    assert_memory_equal(text + 4, ki.id, PV_KEY_ID_LEN);
    assert_int_equal(text[20], '_');
    assert_int_equal(pv_keys_id_valid(ki.id), 0);
    assert_int_equal(ki.tenant_id, tn.id);
    assert_false(ki.revoked);

    authenticate_ok(f, text, &auth);
    assert_int_equal(auth.tenant_id, tn.id);
    assert_string_equal(auth.tenant_name, "acme");
    assert_int_equal(auth.mode, PV_TENANT_ISOLATED);
    assert_string_equal(auth.key_id, ki.id);
    assert_int_equal(auth.scopes, PV_SCOPE_RECOGNIZE | PV_SCOPE_ERASE);

    assert_int_equal(pv_keys_create(f->t, &ki, text, tn.id, 0), PV_EINVAL);
    assert_int_equal(pv_keys_create(f->t, &ki, text, tn.id, 1u << 9), PV_EINVAL);
    assert_int_equal(pv_keys_create(f->t, &ki, text, 42, PV_SCOPE_ALL), PV_ENOTFOUND);
}

/* Limits: updated, persisted, seen by authentication at once; usage metering against the quota. */
static void test_update_limits_and_usage(void **state)
{
    fixture_t *f = *state;
    pv_tenant_t tn = make_tenant(f, "acme", PV_TENANT_NETWORK), got;
    char text[PV_KEY_TEXT_LEN + 1];
    pv_key_info_t ki;
    pv_auth_t auth;
    assert_int_equal(tn.rate_per_min, 0);
    assert_int_equal(tn.monthly_quota, 0);
    assert_int_equal(pv_keys_create(f->t, &ki, text, tn.id, PV_SCOPE_ALL), 0);
    pv_tenant_update_t u = {.set_rate = 1, .rate_per_min = 90, .set_quota = 1, .monthly_quota = 3};
    assert_int_equal(pv_tenants_update(f->t, &got, "acme", &u), 0);
    assert_int_equal(got.rate_per_min, 90);
    assert_int_equal(got.retention_days, 90); /* untouched */
    assert_memory_equal(got.secret, tn.secret, sizeof(tn.secret));
    authenticate_ok(f, text, &auth);
    assert_int_equal(auth.rate_per_min, 90);
    assert_int_equal(auth.monthly_quota, 3);
    pv_tenants_close(f->t);
    assert_int_equal(pv_tenants_open(&f->t, f->dir), 0);
    assert_int_equal(pv_tenants_get(f->t, &got, tn.id), 0);
    assert_int_equal(got.monthly_quota, 3);
    u = (pv_tenant_update_t){.set_retention = 1, .retention_days = 0};
    assert_int_equal(pv_tenants_update(f->t, &got, "acme", &u), PV_EINVAL);
    assert_int_equal(pv_tenants_update(f->t, &got, "nope", &u), PV_EINVAL);
    u.retention_days = 7;
    assert_int_equal(pv_tenants_update(f->t, &got, "nope", &u), PV_ENOTFOUND);

    /* quota 3 this month: three images pass, the fourth is refused and not counted */
    const int64_t dec = 1796342400000LL; /* 2026-12-04T00:00:00Z */
    uint64_t used = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(pv_usage_take(f->t, tn.id, dec + i, 3, 1, &used), 0);
    assert_int_equal(used, 3);
    assert_int_equal(pv_usage_take(f->t, tn.id, dec, 3, 1, &used), PV_ELIMIT);
    assert_int_equal(used, 3);
    assert_int_equal(pv_usage_take(f->t, tn.id, dec, 0, 2, &used), 0); /* no quota: counted */
    assert_int_equal(used, 5);
    /* a new month starts from zero; another tenant has its own meter */
    assert_int_equal(pv_usage_take(f->t, tn.id, dec + 31LL * 86400000, 3, 1, &used), 0);
    assert_int_equal(used, 1);
    assert_int_equal(pv_usage_take(f->t, tn.id + 1, dec, 3, 1, &used), 0);
    assert_int_equal(used, 1);
}

static void test_key_wrong_secret_and_unknown(void **state)
{
    fixture_t *f = *state;
    pv_tenant_t tn = make_tenant(f, "acme", PV_TENANT_NETWORK);
    char text[PV_KEY_TEXT_LEN + 1];
    pv_key_info_t ki;
    pv_auth_t auth;
    pv_tenants_reader_t *r = NULL;

    assert_int_equal(pv_keys_create(f->t, &ki, text, tn.id, PV_SCOPE_ALL), 0);
    assert_int_equal(pv_tenants_reader_create(&r, f->t), 0);

    /* same id, another canonical secret: 'A' -> 'B' in the first secret char keeps it canonical */
    char wrong[PV_KEY_TEXT_LEN + 1];
    memcpy(wrong, text, sizeof(wrong));
    wrong[21] = wrong[21] == 'A' ? 'B' : 'A';
    assert_int_equal(pv_tenants_authenticate(r, &auth, wrong, strlen(wrong)), PV_EAUTH);

    /* unknown id, valid form */
    memcpy(wrong, text, sizeof(wrong));
    wrong[4] = wrong[4] == '0' ? '1' : '0';
    assert_int_equal(pv_tenants_authenticate(r, &auth, wrong, strlen(wrong)), PV_EAUTH);

    /* the reader keeps working after failures */
    assert_int_equal(pv_tenants_authenticate(r, &auth, text, strlen(text)), 0);
    assert_int_equal(pv_tenants_ping(r), 0);
    pv_tenants_reader_destroy(r);
}

static void test_key_malformed(void **state)
{
    fixture_t *f = *state;
    pv_tenant_t tn = make_tenant(f, "acme", PV_TENANT_NETWORK);
    char text[PV_KEY_TEXT_LEN + 1], bad[PV_KEY_TEXT_LEN + 2];
    pv_key_info_t ki;
    pv_auth_t auth;
    pv_tenants_reader_t *r = NULL;

    assert_int_equal(pv_keys_create(f->t, &ki, text, tn.id, PV_SCOPE_ALL), 0);
    assert_int_equal(pv_tenants_reader_create(&r, f->t), 0);

    /* wrong lengths: one short, one long, empty, NULL */
    assert_int_equal(pv_tenants_authenticate(r, &auth, text, PV_KEY_TEXT_LEN - 1), PV_EINVAL);
    memcpy(bad, text, PV_KEY_TEXT_LEN);
    bad[PV_KEY_TEXT_LEN] = 'A';
    bad[PV_KEY_TEXT_LEN + 1] = '\0';
    assert_int_equal(pv_tenants_authenticate(r, &auth, bad, PV_KEY_TEXT_LEN + 1), PV_EINVAL);
    assert_int_equal(pv_tenants_authenticate(r, &auth, "", 0), PV_EINVAL);
    assert_int_equal(pv_tenants_authenticate(r, &auth, NULL, 0), PV_EINVAL);

    /* bad prefix */
    memcpy(bad, text, sizeof(text));
    bad[0] = 'x';
    assert_int_equal(pv_tenants_authenticate(r, &auth, bad, PV_KEY_TEXT_LEN), PV_EINVAL);
    memcpy(bad, text, sizeof(text));
    bad[3] = '-';
    assert_int_equal(pv_tenants_authenticate(r, &auth, bad, PV_KEY_TEXT_LEN), PV_EINVAL);
    /* missing separator */
    memcpy(bad, text, sizeof(text));
    bad[20] = 'a';
    assert_int_equal(pv_tenants_authenticate(r, &auth, bad, PV_KEY_TEXT_LEN), PV_EINVAL);
    /* non-hex and uppercase-hex ids */
    memcpy(bad, text, sizeof(text));
    bad[5] = 'g';
    assert_int_equal(pv_tenants_authenticate(r, &auth, bad, PV_KEY_TEXT_LEN), PV_EINVAL);
    memcpy(bad, text, sizeof(text));
    bad[5] = 'A';
    assert_int_equal(pv_tenants_authenticate(r, &auth, bad, PV_KEY_TEXT_LEN), PV_EINVAL);
    /* non-base64url character in the secret */
    memcpy(bad, text, sizeof(text));
    bad[30] = '+';
    assert_int_equal(pv_tenants_authenticate(r, &auth, bad, PV_KEY_TEXT_LEN), PV_EINVAL);
    memcpy(bad, text, sizeof(text));
    bad[30] = '=';
    assert_int_equal(pv_tenants_authenticate(r, &auth, bad, PV_KEY_TEXT_LEN), PV_EINVAL);
    /* non-canonical: the last char carries 4 bits, its 2 low bits must be zero.
       Flipping its lowest bit decodes to the same bytes but is not the canonical text. */
    memcpy(bad, text, sizeof(text));
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t idx = (size_t)(strchr(alphabet, bad[PV_KEY_TEXT_LEN - 1]) - alphabet);
    bad[PV_KEY_TEXT_LEN - 1] = alphabet[idx | 1];
    assert_int_equal(pv_tenants_authenticate(r, &auth, bad, PV_KEY_TEXT_LEN), PV_EINVAL);
    /* an embedded NUL within the stated length */
    memcpy(bad, text, sizeof(text));
    bad[40] = '\0';
    assert_int_equal(pv_tenants_authenticate(r, &auth, bad, PV_KEY_TEXT_LEN), PV_EINVAL);

    /* the genuine text still works */
    assert_int_equal(pv_tenants_authenticate(r, &auth, text, PV_KEY_TEXT_LEN), 0);
    pv_tenants_reader_destroy(r);
}

static void test_key_revoke_list(void **state)
{
    fixture_t *f = *state;
    pv_tenant_t tn = make_tenant(f, "acme", PV_TENANT_NETWORK);
    char t1[PV_KEY_TEXT_LEN + 1], t2[PV_KEY_TEXT_LEN + 1];
    pv_key_info_t k1, k2, *arr = NULL;
    pv_auth_t auth;
    pv_tenants_reader_t *r = NULL;
    size_t n = 0;

    assert_int_equal(pv_keys_create(f->t, &k1, t1, tn.id, PV_SCOPE_ALL), 0);
    assert_int_equal(pv_keys_create(f->t, &k2, t2, tn.id, PV_SCOPE_ANALYTICS), 0);
    assert_int_equal(pv_tenants_reader_create(&r, f->t), 0);
    assert_int_equal(pv_tenants_authenticate(r, &auth, t1, strlen(t1)), 0);

    assert_int_equal(pv_keys_revoke(f->t, k1.id), 0);
    /* the same reader sees the revocation at once */
    assert_int_equal(pv_tenants_authenticate(r, &auth, t1, strlen(t1)), PV_EREVOKED);
    assert_int_equal(pv_tenants_authenticate(r, &auth, t2, strlen(t2)), 0);
    assert_int_equal(pv_keys_revoke(f->t, k1.id), 0); /* idempotent */
    assert_int_equal(pv_keys_revoke(f->t, "0000000000000000"), PV_ENOTFOUND);
    assert_int_equal(pv_keys_revoke(f->t, "xyz"), PV_EINVAL);
    assert_int_equal(pv_keys_revoke(f->t, "000000000000000G"), PV_EINVAL);

    assert_int_equal(pv_keys_list(f->t, &arr, &n, tn.id), 0);
    assert_int_equal(n, 2);
    assert_true(strcmp(arr[0].id, arr[1].id) < 0);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(arr[i].id, k1.id) == 0) {
            assert_true(arr[i].revoked);
            assert_int_equal(arr[i].scopes, PV_SCOPE_ALL);
        } else {
            assert_string_equal(arr[i].id, k2.id);
            assert_false(arr[i].revoked);
            assert_int_equal(arr[i].scopes, PV_SCOPE_ANALYTICS);
        }
    }
    free(arr);
    assert_int_equal(pv_keys_list(f->t, &arr, &n, 77), PV_ENOTFOUND);
    pv_tenants_reader_destroy(r);
}

static void test_two_tenants_and_delete_removes_keys(void **state)
{
    fixture_t *f = *state;
    pv_tenant_t a = make_tenant(f, "acme", PV_TENANT_NETWORK), b = make_tenant(f, "bolt", PV_TENANT_ISOLATED);
    char ta[PV_KEY_TEXT_LEN + 1], tb[PV_KEY_TEXT_LEN + 1];
    pv_key_info_t ka, kb, *arr = NULL;
    pv_auth_t auth;
    size_t n = 0;

    assert_int_equal(pv_keys_create(f->t, &ka, ta, a.id, PV_SCOPE_ALL), 0);
    assert_int_equal(pv_keys_create(f->t, &kb, tb, b.id, PV_SCOPE_EVENTS), 0);
    authenticate_ok(f, ta, &auth);
    assert_int_equal(auth.tenant_id, a.id);
    assert_string_equal(auth.tenant_name, "acme");
    authenticate_ok(f, tb, &auth);
    assert_int_equal(auth.tenant_id, b.id);
    assert_string_equal(auth.tenant_name, "bolt");
    assert_int_equal(auth.scopes, PV_SCOPE_EVENTS);

    assert_int_equal(pv_keys_list(f->t, &arr, &n, a.id), 0);
    assert_int_equal(n, 1);
    assert_string_equal(arr[0].id, ka.id);
    free(arr);

    assert_int_equal(pv_tenants_delete(f->t, "acme"), 0);
    pv_tenants_reader_t *r = NULL;
    assert_int_equal(pv_tenants_reader_create(&r, f->t), 0);
    assert_int_equal(pv_tenants_authenticate(r, &auth, ta, strlen(ta)), PV_EAUTH);
    assert_int_equal(pv_tenants_authenticate(r, &auth, tb, strlen(tb)), 0);
    pv_tenants_reader_destroy(r);
    assert_int_equal(pv_keys_revoke(f->t, ka.id), PV_ENOTFOUND); /* the key went with its tenant */
}

/* Deleting keys through a cursor must not skip neighbours: interleave many keys of two tenants. */
static void test_delete_many_keys(void **state)
{
    fixture_t *f = *state;
    pv_tenant_t a = make_tenant(f, "acme", PV_TENANT_NETWORK), b = make_tenant(f, "bolt", PV_TENANT_NETWORK);
    char text[PV_KEY_TEXT_LEN + 1];
    pv_key_info_t ki, *arr = NULL;
    size_t n = 0;

    for (int i = 0; i < 40; i++)
        assert_int_equal(pv_keys_create(f->t, &ki, text, i % 3 == 0 ? b.id : a.id, PV_SCOPE_ALL), 0);
    assert_int_equal(pv_tenants_delete(f->t, "acme"), 0);
    assert_int_equal(pv_keys_list(f->t, &arr, &n, b.id), 0);
    assert_int_equal(n, 14);
    free(arr);
    /* recreating the name gives a new id that owns no leftover key */
    assert_int_equal(pv_tenants_create(f->t, &a, "acme", PV_TENANT_NETWORK, 90), 0);
    assert_int_equal(pv_keys_list(f->t, &arr, &n, a.id), 0);
    assert_int_equal(n, 0);
    assert_null(arr);
}

static void test_scopes_parse_format(void **state)
{
    (void)state;
    uint32_t s = 0;
    char buf[PV_SCOPES_TEXT_MAX];

    assert_int_equal(pv_scopes_parse(&s, "recognize"), 0);
    assert_int_equal(s, PV_SCOPE_RECOGNIZE);
    assert_int_equal(pv_scopes_parse(&s, "erase,recognize,events"), 0);
    assert_int_equal(s, PV_SCOPE_ERASE | PV_SCOPE_RECOGNIZE | PV_SCOPE_EVENTS);
    assert_int_equal(pv_scopes_parse(&s, "all"), 0);
    assert_int_equal(s, PV_SCOPE_ALL);
    assert_int_equal(pv_scopes_parse(&s, "recognize,events,analytics,erase"), 0);
    assert_int_equal(s, PV_SCOPE_ALL);

    const char *bad[] = {"",          ",",     "recognize,", ",recognize",       "recognize,,events",
                         "Recognize", "recog", "recognizes", "recognize events", "erase;events"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = 12345;
        assert_int_equal(pv_scopes_parse(&s, bad[i]), PV_EINVAL);
        assert_int_equal(s, 12345); /* untouched on failure */
    }
    assert_int_equal(pv_scopes_parse(&s, NULL), PV_EINVAL);

    pv_scopes_format(buf, sizeof(buf), PV_SCOPE_ALL);
    assert_string_equal(buf, "recognize,events,analytics,erase");
    pv_scopes_format(buf, sizeof(buf), PV_SCOPE_ERASE | PV_SCOPE_EVENTS);
    assert_string_equal(buf, "events,erase");
    pv_scopes_format(buf, sizeof(buf), 0);
    assert_string_equal(buf, "");
    pv_scopes_format(buf, 12, PV_SCOPE_ALL); /* truncates at an item boundary */
    assert_string_equal(buf, "recognize");

    /* round trip for every combination */
    for (uint32_t m = 1; m <= PV_SCOPE_ALL; m++) {
        pv_scopes_format(buf, sizeof(buf), m);
        assert_int_equal(pv_scopes_parse(&s, buf), 0);
        assert_int_equal(s, m);
    }
}

static void test_mode_names(void **state)
{
    (void)state;
    pv_tenant_mode_t m;
    assert_int_equal(pv_tenant_mode_parse(&m, "isolated"), 0);
    assert_int_equal(m, PV_TENANT_ISOLATED);
    assert_int_equal(pv_tenant_mode_parse(&m, "network"), 0);
    assert_int_equal(m, PV_TENANT_NETWORK);
    assert_int_equal(pv_tenant_mode_parse(&m, "Network"), PV_EINVAL);
    assert_string_equal(pv_tenant_mode_name(PV_TENANT_ISOLATED), "isolated");
}

static void test_survives_reopen(void **state)
{
    fixture_t *f = *state;
    pv_tenant_t a = make_tenant(f, "acme", PV_TENANT_ISOLATED), b;
    char text[PV_KEY_TEXT_LEN + 1];
    pv_key_info_t ki;
    pv_auth_t auth;

    assert_int_equal(pv_keys_create(f->t, &ki, text, a.id, PV_SCOPE_RECOGNIZE), 0);
    pv_tenants_close(f->t);
    f->t = NULL;
    assert_int_equal(pv_tenants_open(&f->t, f->dir), 0);

    assert_int_equal(pv_tenants_find(f->t, &b, "acme"), 0);
    assert_memory_equal(&a, &b, sizeof(a)); /* including the pseudonym secret */
    authenticate_ok(f, text, &auth);
    assert_int_equal(auth.tenant_id, a.id);
    assert_int_equal(auth.scopes, PV_SCOPE_RECOGNIZE);
    /* the id counter survived too */
    assert_int_equal(pv_tenants_create(f->t, &b, "next", PV_TENANT_NETWORK, 90), 0);
    assert_int_equal(b.id, 2);
}

static int authenticate_rc(fixture_t *f, const char *text)
{
    pv_tenants_reader_t *r = NULL;
    pv_auth_t auth;
    assert_int_equal(pv_tenants_reader_create(&r, f->t), 0);
    int rc = pv_tenants_authenticate(r, &auth, text, strlen(text));
    pv_tenants_reader_destroy(r);
    return rc;
}

/* Key secrets: 43 base64url characters that decode to 32 bytes (256 bits from
 * the system's random source): every bit position varies across keys, no two
 * keys share a secret, and the id part is 16 hex digits. */
static void test_key_secret_entropy(void **state)
{
    fixture_t *f = *state;
    pv_tenant_t tn = make_tenant(f, "acme", PV_TENANT_NETWORK);
    enum { N = 64 };
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t secrets[N][32], or_all[32] = {0}, and_all[32];
    memset(and_all, 0xff, sizeof(and_all));
    for (int i = 0; i < N; i++) {
        char text[PV_KEY_TEXT_LEN + 1];
        pv_key_info_t ki;
        assert_int_equal(pv_keys_create(f->t, &ki, text, tn.id, PV_SCOPE_ALL), 0);
        const char *sec = text + 5 + PV_KEY_ID_LEN;
        assert_int_equal(strlen(sec), 43);
        assert_int_equal(strspn(sec, alphabet), 43);
        assert_int_equal(strspn(text + 4, "0123456789abcdef"), PV_KEY_ID_LEN);
        assert_int_equal(pv_b64url_decode(secrets[i], 32, sec, 43), 0);
        for (int b = 0; b < 32; b++) {
            or_all[b] |= secrets[i][b];
            and_all[b] &= secrets[i][b];
        }
        for (int j = 0; j < i; j++)
            assert_memory_not_equal(secrets[i], secrets[j], 32);
    }
    /* a fixed bit would be a missing bit of entropy; P(a random bit is constant over 64 keys) = 2^-63 */
    for (int b = 0; b < 32; b++) {
        assert_int_equal(or_all[b], 0xff);
        assert_int_equal(and_all[b], 0x00);
    }
}

/* Rotation: a new key with the same tenant and scopes; the old one works
 * during the grace and is refused (PV_EEXPIRED, for its right secret only)
 * after it; a second rotation never extends an expiry; dead keys cannot be rotated. */
static void test_key_rotate(void **state)
{
    fixture_t *f = *state;
    pv_tenant_t tn = make_tenant(f, "acme", PV_TENANT_NETWORK);
    char t1[PV_KEY_TEXT_LEN + 1], t2[PV_KEY_TEXT_LEN + 1], t3[PV_KEY_TEXT_LEN + 1];
    pv_key_info_t k1, k2, k3, old, *arr = NULL;
    pv_auth_t auth;
    size_t n = 0;
    int64_t now = (int64_t)time(NULL);

    assert_int_equal(pv_keys_create(f->t, &k1, t1, tn.id, PV_SCOPE_EVENTS | PV_SCOPE_ERASE), 0);
    assert_int_equal(k1.expires_at, 0);
    assert_int_equal(pv_keys_rotate(f->t, &k2, t2, &old, k1.id, 3600), 0);
    assert_string_not_equal(k2.id, k1.id);
    assert_string_equal(old.id, k1.id);
    assert_int_equal(k2.tenant_id, tn.id);
    assert_int_equal(k2.scopes, PV_SCOPE_EVENTS | PV_SCOPE_ERASE);
    assert_int_equal(k2.expires_at, 0);
    assert_in_range(old.expires_at, now + 3600, now + 3600 + 5);
    authenticate_ok(f, t1, &auth); /* in its grace period */
    authenticate_ok(f, t2, &auth);
    assert_string_equal(auth.key_id, k2.id);
    assert_int_equal(auth.scopes, PV_SCOPE_EVENTS | PV_SCOPE_ERASE);

    /* a longer grace later does not extend it; a shorter one shortens it */
    assert_int_equal(pv_keys_rotate(f->t, &k3, t3, &old, k1.id, 7200), 0);
    assert_in_range(old.expires_at, now + 3600, now + 3600 + 5);
    assert_int_equal(pv_keys_rotate(f->t, &k3, t3, &old, k1.id, 0), 0);
    assert_in_range(old.expires_at, now, now + 5);
    assert_int_equal(authenticate_rc(f, t1), PV_EEXPIRED);
    char wrong[PV_KEY_TEXT_LEN + 1];
    memcpy(wrong, t1, sizeof(wrong));
    memcpy(wrong + 5 + PV_KEY_ID_LEN, t2 + 5 + PV_KEY_ID_LEN, 43);
    assert_int_equal(authenticate_rc(f, wrong), PV_EAUTH); /* expiry is not revealed without the secret */
    authenticate_ok(f, t3, &auth);

    /* the listing shows the expiry; dead keys cannot be rotated */
    assert_int_equal(pv_keys_list(f->t, &arr, &n, tn.id), 0);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        if (strcmp(arr[i].id, k1.id) == 0)
            assert_true(arr[i].expires_at != 0 && arr[i].expires_at <= now + 5);
        else
            assert_int_equal(arr[i].expires_at, 0);
    free(arr);
    assert_int_equal(pv_keys_rotate(f->t, &k3, t3, &old, k1.id, 60), PV_EEXPIRED);
    assert_int_equal(pv_keys_revoke(f->t, k2.id), 0);
    assert_int_equal(pv_keys_rotate(f->t, &k3, t3, &old, k2.id, 60), PV_EREVOKED);
    assert_int_equal(pv_keys_rotate(f->t, &k3, t3, &old, "0000000000000000", 60), PV_ENOTFOUND);
    assert_int_equal(pv_keys_rotate(f->t, &k3, t3, &old, "xyz", 60), PV_EINVAL);
    assert_int_equal(pv_keys_rotate(f->t, &k3, t3, &old, k3.id, -1), PV_EINVAL);
    assert_int_equal(pv_keys_rotate(f->t, &k3, t3, &old, k3.id, 367LL * 86400), PV_EINVAL);
}

/* A key record of version 1 (56 bytes, before expiries existed) still
 * authenticates, never expires, and a rotation rewrites it as version 2. */
static void test_key_v1_record(void **state)
{
    fixture_t *f = *state;
    pv_tenant_t tn = make_tenant(f, "acme", PV_TENANT_NETWORK);
    char t1[PV_KEY_TEXT_LEN + 1], t2[PV_KEY_TEXT_LEN + 1];
    pv_key_info_t k1, k2, old;
    pv_auth_t auth;
    uint8_t idb[8], rec[64];
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_val k, v;

    assert_int_equal(pv_keys_create(f->t, &k1, t1, tn.id, PV_SCOPE_ANALYTICS), 0);
    pv_tenants_close(f->t);
    f->t = NULL;
    /* rewrite the record as version 1: the first 56 bytes, version byte 1 */
    assert_int_equal(pv_hex_decode(idb, k1.id, sizeof(idb)), 0);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "keys", 0, &dbi), 0);
    k = (MDB_val){sizeof(idb), idb};
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    assert_int_equal(v.mv_size, 64);
    memcpy(rec, v.mv_data, 64);
    rec[0] = 1;
    v = (MDB_val){56, rec};
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    assert_int_equal(pv_tenants_open(&f->t, f->dir), 0);
    authenticate_ok(f, t1, &auth);
    assert_int_equal(auth.scopes, PV_SCOPE_ANALYTICS);
    assert_int_equal(pv_keys_rotate(f->t, &k2, t2, &old, k1.id, 0), 0);
    assert_int_equal(old.scopes, PV_SCOPE_ANALYTICS);
    assert_int_equal(authenticate_rc(f, t1), PV_EEXPIRED);
    authenticate_ok(f, t2, &auth);
    assert_int_equal(auth.scopes, PV_SCOPE_ANALYTICS);
}

static void test_file_modes(void **state)
{
    fixture_t *f = *state;
    char path[128];
    struct stat st;

    make_tenant(f, "acme", PV_TENANT_NETWORK);
    snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/lock.mdb", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* a missing directory chain is created 0700 */
    pv_tenants_t *t2 = NULL;
    snprintf(path, sizeof(path), "%s/a/b", f->dir);
    assert_int_equal(pv_tenants_open(&t2, path), 0);
    pv_tenants_close(t2);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/a", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* a path through a regular file fails with an errno code */
    snprintf(path, sizeof(path), "%s/data.mdb/x", f->dir);
    assert_true(pv_tenants_open(&t2, path) < 0);
    assert_null(t2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_find_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_rejects, setup, teardown),
        cmocka_unit_test(test_name_validation),
        cmocka_unit_test_setup_teardown(test_list_sorted_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_create_authenticate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_wrong_secret_and_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_limits_and_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_revoke_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_tenants_and_delete_removes_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_many_keys, setup, teardown),
        cmocka_unit_test(test_scopes_parse_format),
        cmocka_unit_test(test_mode_names),
        cmocka_unit_test_setup_teardown(test_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_secret_entropy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_rotate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_v1_record, setup, teardown),
    };
    return cmocka_run_group_tests_name("tenants", tests, NULL, NULL);
}
