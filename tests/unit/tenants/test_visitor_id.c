/*
 * Visitor IDs: round trip, stability, per-tenant unlinkability, and that
 * forged, mistyped, truncated or foreign IDs never decode to a visitor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "common/codec.h"
#include "common/error.h"
#include "tenants/visitor_id.h"

static uint8_t secret_a[32], secret_b[32];

static int setup(void **state)
{
    (void)state;
    assert_int_equal(pv_random_bytes(secret_a, 32), 0);
    assert_int_equal(pv_random_bytes(secret_b, 32), 0);
    return 0;
}

static void test_roundtrip_and_stable(void **state)
{
    (void)state;
    uint64_t gids[] = {0, 1, 42, 0x7fffffffffffffffULL, 0xffffffffffffffffULL, 0x0123456789abcdefULL};
    for (size_t i = 0; i < sizeof(gids) / sizeof(gids[0]); i++) {
        char id1[PV_VISITOR_ID_LEN + 1], id2[PV_VISITOR_ID_LEN + 1];
        assert_int_equal(pv_visitor_id_encode(id1, secret_a, 7, gids[i]), 0);
        assert_int_equal(pv_visitor_id_encode(id2, secret_a, 7, gids[i]), 0);
        assert_string_equal(id1, id2);
        assert_int_equal(strlen(id1), PV_VISITOR_ID_LEN);
        assert_memory_equal(id1, "vis_", 4);
        uint64_t back = 0;
        assert_int_equal(pv_visitor_id_decode(&back, secret_a, 7, id1, strlen(id1)), 0);
        assert_int_equal(back, gids[i]);
    }
}

static void test_tenants_unlinkable(void **state)
{
    (void)state;
    char a[PV_VISITOR_ID_LEN + 1], b[PV_VISITOR_ID_LEN + 1], c[PV_VISITOR_ID_LEN + 1];
    uint64_t g;
    assert_int_equal(pv_visitor_id_encode(a, secret_a, 1, 99), 0);
    assert_int_equal(pv_visitor_id_encode(b, secret_b, 2, 99), 0);
    assert_string_not_equal(a, b);
    /* another tenant's ID does not decode, even with its own secret and the other's id */
    assert_int_equal(pv_visitor_id_decode(&g, secret_b, 2, a, strlen(a)), PV_ENOTFOUND);
    assert_int_equal(pv_visitor_id_decode(&g, secret_a, 2, a, strlen(a)), PV_ENOTFOUND);
    /* same secret but a different tenant id still differs and is rejected */
    assert_int_equal(pv_visitor_id_encode(c, secret_a, 2, 99), 0);
    assert_string_not_equal(a, c);
    assert_int_equal(pv_visitor_id_decode(&g, secret_a, 1, c, strlen(c)), PV_ENOTFOUND);
}

static void test_forged_and_mistyped(void **state)
{
    (void)state;
    char id[PV_VISITOR_ID_LEN + 1];
    uint64_t g;
    assert_int_equal(pv_visitor_id_encode(id, secret_a, 3, 12345), 0);
    /* every single-character substitution is rejected */
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t pos = 4; pos < PV_VISITOR_ID_LEN; pos++) {
        char t[PV_VISITOR_ID_LEN + 1];
        memcpy(t, id, sizeof(t));
        t[pos] = alphabet[(strchr(alphabet, t[pos]) - alphabet + 1) % 64];
        assert_int_equal(pv_visitor_id_decode(&g, secret_a, 3, t, strlen(t)), PV_ENOTFOUND);
    }
    const char *bad[] = {"", "vis_", "vis_AAAAAAAAAAAAAAAAAAAAAA", "xis_AAAAAAAAAAAAAAAAAAAAAA",
                         "vis_AAAAAAAAAAAAAAAAAAAAA", "vis_AAAAAAAAAAAAAAAAAAAAAAA", "vis_AAAAAAAAAAAAAAAAAAAA+/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pv_visitor_id_decode(&g, secret_a, 3, bad[i], strlen(bad[i])), PV_ENOTFOUND);
    /* random 22-character strings essentially never decode */
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        uint8_t r[16];
        char t[PV_VISITOR_ID_LEN + 1] = "vis_";
        pv_random_bytes(r, sizeof(r));
        pv_b64url_encode(t + 4, r, 16);
        accepted += pv_visitor_id_decode(&g, secret_a, 3, t, strlen(t)) == 0;
    }
    assert_int_equal(accepted, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_stable),
        cmocka_unit_test(test_tenants_unlinkable),
        cmocka_unit_test(test_forged_and_mistyped),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
