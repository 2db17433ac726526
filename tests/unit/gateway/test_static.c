/*
 * The console's path check (gateway/static.c): plain names in at most four
 * segments are accepted; dot segments, dot files, escapes, empty segments,
 * odd characters and overlong paths are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "gateway/internal.h"

static int ok(const char *p)
{
    return pv_static_path_ok(p, strlen(p));
}

static void test_accepts_plain_names(void **state)
{
    (void)state;
    static const char *const good[] = {"index.html",  "assets/main-ABC123.js", "assets/style-X_Y.css",
                                       "a/b/c/d.txt", "favicon.ico",           "x"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(ok(good[i]));
}

static void test_refuses_everything_else(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "..",
        "../etc/passwd",
        "assets/../index.html",
        "assets/..",
        ".hidden",
        "assets/.x",
        "%2e%2e/x",
        "assets%2fx",
        "a//b",
        "/index.html",
        "index.html/",
        "a\\b",
        "a b",
        "a/b/c/d/e",
        "ind\x01x",
        "caf\xc3\xa9",
        "a?b",
        "a;b",
        "~root/x",
        "a:b",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ok(bad[i]))
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* an embedded NUL ends nothing: the length says what the path is */
    assert_false(pv_static_path_ok("index.html\0x", 12));
    char longp[202];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    assert_false(ok(longp));
    longp[200] = '\0';
    assert_true(ok(longp));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_plain_names),
        cmocka_unit_test(test_refuses_everything_else),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
