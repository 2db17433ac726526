/*
 * Unit tests for common/: the strict hex and base64url codecs, the error
 * table and the declarative configuration loader (defaults, file,
 * environment, flags; every malformed input rejected with a reason).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/codec.h"
#include "common/config.h"
#include "common/error.h"

static void test_hex_roundtrip(void **state)
{
    (void)state;
    uint8_t in[5] = {0x00, 0x9f, 0xab, 0xff, 0x10}, out[5];
    char text[11];
    pv_hex_encode(text, in, 5);
    assert_string_equal(text, "009fabff10");
    assert_int_equal(pv_hex_decode(out, "009FABff10", 5), 0);
    assert_memory_equal(in, out, 5);
    assert_int_equal(pv_hex_decode(out, "009fabff1g", 5), PV_EINVAL);
    assert_int_equal(pv_hex_decode(out, "00 fabff10", 5), PV_EINVAL);
}

static void test_url_decode(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(pv_url_decode(out, sizeof(out), "a%2Fb+c", 7), 5);
    assert_string_equal(out, "a/b c");
    assert_int_equal(pv_url_decode(out, sizeof(out), "%e2%82%AC", 9), 3); /* either case of hex */
    assert_string_equal(out, "\xe2\x82\xac");
    assert_int_equal(pv_url_decode(out, sizeof(out), "", 0), 0);
    assert_string_equal(out, "");
    assert_int_equal(pv_url_decode(out, sizeof(out), "1234567", 7), 7);   /* exactly fits */
    assert_int_equal(pv_url_decode(out, sizeof(out), "12345678", 8), -1); /* one too many */
    assert_int_equal(pv_url_decode(out, sizeof(out), "%4", 2), -1);       /* cut escape */
    assert_int_equal(pv_url_decode(out, sizeof(out), "ab%", 3), -1);
    assert_int_equal(pv_url_decode(out, sizeof(out), "%g1", 3), -1);
    assert_int_equal(pv_url_decode(out, sizeof(out), "never%00x", 9), -1); /* no NUL, escaped */
    assert_int_equal(pv_url_decode(out, sizeof(out), "a\0b", 3), -1);      /* or raw */
    assert_int_equal(pv_url_decode(out, 0, "", 0), -1);
}

static void test_b64url_roundtrip_all_lengths(void **state)
{
    (void)state;
    uint8_t in[40], out[40];
    char text[64];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(in); len++) {
        pv_b64url_encode(text, in, len);
        assert_int_equal(strlen(text), pv_b64url_len(len));
        assert_null(strchr(text, '='));
        assert_int_equal(pv_b64url_decode(out, len, text, strlen(text)), 0);
        assert_memory_equal(in, out, len);
    }
    /* known vector: "foobar" */
    pv_b64url_encode(text, (const uint8_t *)"\xfb\xff", 2);
    assert_string_equal(text, "-_8");
}

static void test_b64url_rejects_noncanonical(void **state)
{
    (void)state;
    uint8_t out[2];
    assert_int_equal(pv_b64url_decode(out, 2, "-_8", 3), 0);
    assert_int_equal(pv_b64url_decode(out, 2, "-_9", 3), PV_EINVAL); /* nonzero padding bits */
    assert_int_equal(pv_b64url_decode(out, 2, "-_+", 3), PV_EINVAL); /* standard alphabet */
    assert_int_equal(pv_b64url_decode(out, 2, "-_8=", 4), PV_EINVAL);
    assert_int_equal(pv_b64url_decode(out, 2, "-_", 2), PV_EINVAL);
    assert_int_equal(pv_b64url_decode(out, 2, "-\0008", 3), PV_EINVAL);
}

static void test_random_and_ct_compare(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    assert_int_equal(pv_random_bytes(a, sizeof(a)), 0);
    assert_int_equal(pv_random_bytes(b, sizeof(b)), 0);
    assert_int_not_equal(memcmp(a, b, sizeof(a)), 0);
    assert_int_equal(pv_memeq_ct(a, a, sizeof(a)), 0);
    assert_int_not_equal(pv_memeq_ct(a, b, sizeof(a)), 0);
}

static void test_error_names(void **state)
{
    (void)state;
    assert_string_equal(pv_errname(PV_ENOTFOUND), "not_found");
    assert_string_equal(pv_strerror(PV_EAUTH), "authentication failed");
    assert_string_equal(pv_errname(0), "ok");
    assert_non_null(pv_strerror(-2)); /* -ENOENT */
    assert_string_equal(pv_strerror(PV_EBASE - 999), "unknown error");
}

typedef struct {
    pv_strlist_t listen;
    long threads;
    char *dir;
    int verbose;
} conf_t;

static const pv_opt_t opts[] = {
    {"listen", "PVT_LISTEN", PV_OPT_LIST, offsetof(conf_t, listen), "127.0.0.1:1", 0, 0, "addr"},
    {"threads", "PVT_THREADS", PV_OPT_INT, offsetof(conf_t, threads), "2", 1, 64, "n"},
    {"dir", "PVT_DIR", PV_OPT_STRING, offsetof(conf_t, dir), "/d", 0, 0, "dir"},
    {"verbose", NULL, PV_OPT_BOOL, offsetof(conf_t, verbose), "false", 0, 0, "v"},
    {NULL, NULL, 0, 0, NULL, 0, 0, NULL},
};

static int load(conf_t *c, char *err, int argc, char **argv)
{
    memset(c, 0, sizeof(*c));
    return pv_config_load(c, opts, argc, argv, err, 256);
}

static void test_config_precedence(void **state)
{
    (void)state;
    conf_t c;
    char err[256] = "", path[] = "/tmp/pvt-conf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# comment\n\nthreads = 4\ndir = /from-file\nlisten = a:1\nlisten = b:2\n";
    assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);

    char *argv0[] = {"prog", NULL};
    assert_int_equal(load(&c, err, 1, argv0), 0);
    assert_int_equal(c.threads, 2);
    assert_string_equal(c.dir, "/d");
    assert_int_equal(c.listen.count, 1);
    pv_config_dispose(&c, opts);

    setenv("PVT_THREADS", "8", 1);
    char *argv1[] = {"prog", "--config", path, "--listen", "x:1", "--listen=y:2", "--verbose", NULL};
    assert_int_equal(load(&c, err, 7, argv1), 0);
    assert_int_equal(c.threads, 8);           /* env beats file */
    assert_string_equal(c.dir, "/from-file"); /* file beats default */
    assert_int_equal(c.listen.count, 2);      /* flags replace, then accumulate */
    assert_string_equal(c.listen.items[0], "x:1");
    assert_string_equal(c.listen.items[1], "y:2");
    assert_int_equal(c.verbose, 1);
    pv_config_dispose(&c, opts);
    unsetenv("PVT_THREADS");

    char *argv2[] = {"prog", "--config", path, NULL};
    assert_int_equal(load(&c, err, 3, argv2), 0);
    assert_int_equal(c.listen.count, 2); /* the file's repeated key accumulates */
    assert_int_equal(c.threads, 4);
    pv_config_dispose(&c, opts);
    unlink(path);
}

static void test_config_errors(void **state)
{
    (void)state;
    conf_t c;
    char err[256];
    struct {
        int argc;
        char *argv[4];
        const char *expect;
    } cases[] = {
        {2, {"p", "--threads=0"}, "threads must be an integer in [1, 64]"},
        {2, {"p", "--threads=4x"}, "threads must be an integer"},
        {2, {"p", "--threads"}, "needs a value"},
        {2, {"p", "--nope"}, "unknown option"},
        {2, {"p", "positional"}, "unexpected argument"},
        {2, {"p", "--verbose=maybe"}, "true or false"},
        {3, {"p", "--config", "/nonexistent/x"}, "cannot read config file"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        assert_int_not_equal(load(&c, err, cases[i].argc, cases[i].argv), 0);
        if (strstr(err, cases[i].expect) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].expect);
        pv_config_dispose(&c, opts);
    }
    char *help[] = {"p", "--help", NULL};
    assert_int_equal(load(&c, err, 2, help), 1);
    pv_config_dispose(&c, opts);

    char path[] = "/tmp/pvt-conf-XXXXXX";
    int fd = mkstemp(path);
    assert_int_equal(write(fd, "bogus = 1\n", 10), 10);
    close(fd);
    char *argv[] = {"p", "--config", path, NULL};
    assert_int_not_equal(load(&c, err, 3, argv), 0);
    assert_non_null(strstr(err, ":1: unknown setting"));
    pv_config_dispose(&c, opts);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_roundtrip),
        cmocka_unit_test(test_url_decode),
        cmocka_unit_test(test_b64url_roundtrip_all_lengths),
        cmocka_unit_test(test_b64url_rejects_noncanonical),
        cmocka_unit_test(test_random_and_ct_compare),
        cmocka_unit_test(test_error_names),
        cmocka_unit_test(test_config_precedence),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
