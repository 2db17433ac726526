/*
 * Token buckets: burst then refusal with a Retry-After, refill over time,
 * independent keys, unlimited rate, and eviction under pressure never
 * refusing a key that should pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "gateway/ratelimit.h"

static void test_burst_then_refuse_then_refill(void **state)
{
    (void)state;
    pv_ratelimit_t *rl;
    assert_int_equal(pv_ratelimit_create(&rl, 1000), 0);
    int64_t t = 1000000;
    for (int i = 0; i < 10; i++)
        assert_int_equal(pv_ratelimit_take(rl, 7, 2.0, 10.0, 1.0, t), 0);
    int wait = pv_ratelimit_take(rl, 7, 2.0, 10.0, 1.0, t);
    assert_int_equal(wait, 1); /* 1 token at 2/s: 0.5 s, rounded up */
    /* another key is unaffected */
    assert_int_equal(pv_ratelimit_take(rl, 8, 2.0, 10.0, 1.0, t), 0);
    /* after 1 s, two more tokens */
    t += 1000000;
    assert_int_equal(pv_ratelimit_take(rl, 7, 2.0, 10.0, 1.0, t), 0);
    assert_int_equal(pv_ratelimit_take(rl, 7, 2.0, 10.0, 1.0, t), 0);
    assert_true(pv_ratelimit_take(rl, 7, 2.0, 10.0, 1.0, t) >= 1);
    /* a slow rate gives a longer Retry-After */
    for (int i = 0; i < 3; i++)
        pv_ratelimit_take(rl, 9, 0.1, 3.0, 1.0, t);
    assert_int_equal(pv_ratelimit_take(rl, 9, 0.1, 3.0, 1.0, t), 10);
    /* unlimited */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(pv_ratelimit_take(rl, 10, 0, 0, 1.0, t), 0);
    pv_ratelimit_destroy(rl);
}

static void test_many_keys_small_table(void **state)
{
    (void)state;
    pv_ratelimit_t *rl;
    assert_int_equal(pv_ratelimit_create(&rl, 16), 0); /* far fewer slots than keys */
    int64_t t = 5000000;
    /* 10k distinct keys each taking one token: none may be refused (each has a full bucket) */
    for (uint64_t k = 0; k < 10000; k++)
        assert_int_equal(pv_ratelimit_take(rl, k, 1.0, 5.0, 1.0, t), 0);
    pv_ratelimit_destroy(rl);
}

/* peek answers what take would, without taking or creating a bucket */
static void test_peek(void **state)
{
    (void)state;
    pv_ratelimit_t *rl;
    assert_int_equal(pv_ratelimit_create(&rl, 1000), 0);
    int64_t t = 1000000;
    assert_int_equal(pv_ratelimit_peek(rl, 3, 1.0, 3.0, 1.0, t), 0); /* unknown: full */
    for (int i = 0; i < 100; i++)
        assert_int_equal(pv_ratelimit_peek(rl, 3, 1.0, 3.0, 1.0, t), 0); /* peeking takes nothing */
    for (int i = 0; i < 3; i++)
        assert_int_equal(pv_ratelimit_take(rl, 3, 1.0, 3.0, 1.0, t), 0);
    assert_int_equal(pv_ratelimit_peek(rl, 3, 1.0, 3.0, 1.0, t), 1);
    assert_int_equal(pv_ratelimit_peek(rl, 3, 0.25, 3.0, 1.0, t), 4);
    assert_int_equal(pv_ratelimit_peek(rl, 4, 1.0, 3.0, 1.0, t), 0);           /* other keys unaffected */
    assert_int_equal(pv_ratelimit_peek(rl, 3, 1.0, 3.0, 1.0, t + 1000000), 0); /* refilled one */
    assert_int_equal(pv_ratelimit_peek(rl, 3, 0, 0, 1.0, t), 0);               /* unlimited */
    pv_ratelimit_destroy(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refuse_then_refill),
        cmocka_unit_test(test_many_keys_small_table),
        cmocka_unit_test(test_peek),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
