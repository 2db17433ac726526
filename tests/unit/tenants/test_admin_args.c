/*
 * Unit tests of privid-admin's argument parser (tenants/admin_args.c): the
 * command words, options in any position, help at every level, and one
 * message naming the culprit for every usage error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "common/error.h"
#include "tenants/admin_args.h"

#define MAXARGS 16

/* Parses a NULL-terminated list of words after "privid-admin". */
static int parse(pv_admin_args_t *a, char *err, size_t errlen, ...)
{
    char *argv[MAXARGS + 1];
    int argc = 0;
    va_list ap;
    argv[argc++] = "privid-admin";
    va_start(ap, errlen);
    for (char *w; argc < MAXARGS && (w = va_arg(ap, char *)) != NULL;)
        argv[argc++] = w;
    va_end(ap);
    argv[argc] = NULL;
    return pv_admin_parse(a, argc, argv, err, errlen);
}

static void expect_error(const char *needle, int rc, const char *err)
{
    assert_int_equal(rc, PV_EINVAL);
    if (strstr(err, needle) == NULL)
        fail_msg("error '%s' does not mention '%s'", err, needle);
}

static void test_commands(void **state)
{
    (void)state;
    pv_admin_args_t a;
    char err[256];

    assert_int_equal(parse(&a, err, sizeof(err), "tenant", "create", "acme", NULL), 0);
    assert_int_equal(a.cmd, PV_ADMIN_TENANT_CREATE);
    assert_string_equal(a.arg, "acme");
    assert_int_equal(a.mode, PV_TENANT_NETWORK);
    assert_int_equal(a.retention_days, PV_TENANT_RETENTION_DEFAULT);
    assert_false(a.json);
    assert_null(a.data_dir);
    assert_null(a.pg);

    assert_int_equal(parse(&a, err, sizeof(err), "--json", "--data-dir", "/d", "tenant", "create", "acme",
                           "--mode", "isolated", "--retention-days=30", "--pg=host=x", NULL),
                     0);
    assert_int_equal(a.mode, PV_TENANT_ISOLATED);
    assert_int_equal(a.retention_days, 30);
    assert_true(a.json);
    assert_string_equal(a.data_dir, "/d");
    assert_string_equal(a.pg, "host=x");

    assert_int_equal(parse(&a, err, sizeof(err), "tenant", "list", NULL), 0);
    assert_int_equal(a.cmd, PV_ADMIN_TENANT_LIST);
    assert_int_equal(parse(&a, err, sizeof(err), "tenant", "show", "x", NULL), 0);
    assert_int_equal(a.cmd, PV_ADMIN_TENANT_SHOW);
    assert_int_equal(parse(&a, err, sizeof(err), "tenant", "delete", "x", NULL), 0);
    assert_int_equal(a.cmd, PV_ADMIN_TENANT_DELETE);
    assert_int_equal(parse(&a, err, sizeof(err), "key", "create", "x", "--scopes", "recognize,erase", NULL),
                     0);
    assert_int_equal(a.cmd, PV_ADMIN_KEY_CREATE);
    assert_int_equal(a.scopes, PV_SCOPE_RECOGNIZE | PV_SCOPE_ERASE);
    assert_int_equal(parse(&a, err, sizeof(err), "key", "create", "x", NULL), 0);
    assert_int_equal(a.scopes, PV_SCOPE_ALL);
    assert_int_equal(parse(&a, err, sizeof(err), "key", "list", "x", NULL), 0);
    assert_int_equal(a.cmd, PV_ADMIN_KEY_LIST);
    assert_int_equal(parse(&a, err, sizeof(err), "key", "revoke", "0123456789abcdef", NULL), 0);
    assert_int_equal(a.cmd, PV_ADMIN_KEY_REVOKE);
    assert_int_equal(parse(&a, err, sizeof(err), "migrate", "--migrations", "/m", NULL), 0);
    assert_int_equal(a.cmd, PV_ADMIN_MIGRATE);
    assert_string_equal(a.migrations, "/m");
    /* "--" ends options */
    assert_int_equal(parse(&a, err, sizeof(err), "tenant", "show", "--", "x", NULL), 0);
    assert_string_equal(a.arg, "x");
}

static void test_help_levels(void **state)
{
    (void)state;
    pv_admin_args_t a;
    char err[256];

    assert_int_equal(parse(&a, err, sizeof(err), "--help", NULL), 0);
    assert_true(a.help);
    assert_int_equal(a.cmd, PV_ADMIN_NONE);
    assert_int_equal(a.group, PV_ADMIN_GROUP_NONE);
    assert_int_equal(parse(&a, err, sizeof(err), "tenant", "--help", NULL), 0);
    assert_int_equal(a.group, PV_ADMIN_GROUP_TENANT);
    assert_int_equal(a.cmd, PV_ADMIN_NONE);
    assert_int_equal(parse(&a, err, sizeof(err), "key", "-h", NULL), 0);
    assert_int_equal(a.group, PV_ADMIN_GROUP_KEY);
    /* help wins over a missing argument */
    assert_int_equal(parse(&a, err, sizeof(err), "tenant", "create", "--help", NULL), 0);
    assert_true(a.help);
    assert_int_equal(a.cmd, PV_ADMIN_TENANT_CREATE);
    /* but not over an unknown command or option */
    expect_error("unknown tenant command 'nope'",
                 parse(&a, err, sizeof(err), "tenant", "nope", "--help", NULL), err);
    expect_error("unknown option '--nope'", parse(&a, err, sizeof(err), "--help", "--nope", NULL), err);

    /* every help text prints */
    FILE *f = fopen("/dev/null", "w");
    assert_non_null(f);
    for (int c = 0; c < PV_ADMIN_CMD_COUNT; c++) {
        pv_admin_args_t h = {.cmd = (pv_admin_cmd_t)c, .help = 1};
        pv_admin_usage(f, &h);
    }
    fclose(f);
}

static void test_usage_errors(void **state)
{
    (void)state;
    pv_admin_args_t a;
    char err[256];

    expect_error("missing command", parse(&a, err, sizeof(err), NULL), err);
    expect_error("unknown command 'frob'", parse(&a, err, sizeof(err), "frob", NULL), err);
    expect_error("missing tenant command", parse(&a, err, sizeof(err), "tenant", NULL), err);
    expect_error("unknown key command 'show'", parse(&a, err, sizeof(err), "key", "show", "x", NULL), err);
    expect_error("unknown option '--frob'", parse(&a, err, sizeof(err), "tenant", "list", "--frob", NULL),
                 err);
    expect_error("unknown option '-x'", parse(&a, err, sizeof(err), "tenant", "list", "-x", NULL), err);
    expect_error("missing argument NAME", parse(&a, err, sizeof(err), "tenant", "create", NULL), err);
    expect_error("missing argument KEYID", parse(&a, err, sizeof(err), "key", "revoke", NULL), err);
    expect_error("unexpected argument 'b'", parse(&a, err, sizeof(err), "tenant", "show", "a", "b", NULL),
                 err);
    expect_error("unexpected argument 'x'", parse(&a, err, sizeof(err), "migrate", "x", NULL), err);
    expect_error("unexpected argument 'b'",
                 parse(&a, err, sizeof(err), "tenant", "show", "a", "b", "c", "d", "e", NULL), err);
    expect_error("--mode needs a value", parse(&a, err, sizeof(err), "tenant", "create", "a", "--mode", NULL),
                 err);
    expect_error("--json takes no value", parse(&a, err, sizeof(err), "tenant", "list", "--json=1", NULL),
                 err);
    expect_error("--json given twice",
                 parse(&a, err, sizeof(err), "tenant", "list", "--json", "--json", NULL), err);
    expect_error("--mode is not valid for 'tenant list'",
                 parse(&a, err, sizeof(err), "tenant", "list", "--mode", "network", NULL), err);
    expect_error("--scopes is not valid for 'tenant create'",
                 parse(&a, err, sizeof(err), "tenant", "create", "a", "--scopes", "all", NULL), err);
    expect_error("--migrations is not valid",
                 parse(&a, err, sizeof(err), "tenant", "list", "--migrations", "m", NULL), err);
    expect_error("--data-dir needs a non-empty value",
                 parse(&a, err, sizeof(err), "tenant", "list", "--data-dir=", NULL), err);
    expect_error("invalid --mode 'shared'",
                 parse(&a, err, sizeof(err), "tenant", "create", "a", "--mode", "shared", NULL), err);
    const char *bad_retention[] = {"0", "3651", "-1", "+5", "5d", "", "99999999999999999999", " 5"};
    for (size_t i = 0; i < sizeof(bad_retention) / sizeof(bad_retention[0]); i++) {
        char opt[64];
        snprintf(opt, sizeof(opt), "--retention-days=%s", bad_retention[i]);
        int rc = parse(&a, err, sizeof(err), "tenant", "create", "a", opt, NULL);
        assert_int_equal(rc, PV_EINVAL);
        assert_non_null(strstr(err, "--retention-days"));
    }
    assert_int_equal(parse(&a, err, sizeof(err), "tenant", "create", "a", "--retention-days", "3650", NULL),
                     0);
    assert_int_equal(a.retention_days, 3650);
    expect_error("invalid --scopes 'read'",
                 parse(&a, err, sizeof(err), "key", "create", "a", "--scopes", "read", NULL), err);
    expect_error("invalid tenant name '-a'", parse(&a, err, sizeof(err), "tenant", "show", "--", "-a", NULL),
                 err);
    expect_error("invalid tenant name 'a b'", parse(&a, err, sizeof(err), "key", "list", "a b", NULL), err);
    expect_error("invalid key id 'XYZ'", parse(&a, err, sizeof(err), "key", "revoke", "XYZ", NULL), err);
    expect_error("invalid key id '0123456789ABCDEF'",
                 parse(&a, err, sizeof(err), "key", "revoke", "0123456789ABCDEF", NULL), err);
}

static void test_faces(void **state)
{
    (void)state;
    static pv_admin_args_t a;
    char err[256];

    assert_int_equal(parse(&a, err, sizeof(err), "faces", "a.jpg", NULL), 0);
    assert_int_equal(a.cmd, PV_ADMIN_FACES);
    assert_int_equal(a.nfiles, 1);
    assert_string_equal(a.files[0], "a.jpg");
    assert_null(a.files[1]);
    assert_false(a.detector_ssd);
    assert_true(a.min_score == 0);
    /* options anywhere, images in order, "--" for a name starting with a dash */
    assert_int_equal(parse(&a, err, sizeof(err), "faces", "a.jpg", "--detector", "ssd", "b.png", "--min-score=0.35",
                           "--models", "/m", "--", "-c.webp", NULL),
                     0);
    assert_int_equal(a.nfiles, 3);
    assert_string_equal(a.files[0], "a.jpg");
    assert_string_equal(a.files[1], "b.png");
    assert_string_equal(a.files[2], "-c.webp");
    assert_true(a.detector_ssd);
    assert_true(a.min_score > 0.3499 && a.min_score < 0.3501);
    assert_string_equal(a.models, "/m");
    assert_null(a.arg);
    assert_int_equal(parse(&a, err, sizeof(err), "faces", "--detector=tiny", "x", NULL), 0);
    assert_false(a.detector_ssd);
    /* a tenant command keeps no files */
    assert_int_equal(parse(&a, err, sizeof(err), "tenant", "show", "x", NULL), 0);
    assert_int_equal(a.nfiles, 0);
    assert_null(a.files[0]);

    expect_error("missing argument IMAGE", parse(&a, err, sizeof(err), "faces", NULL), err);
    expect_error("invalid --detector 'mtcnn'", parse(&a, err, sizeof(err), "faces", "x", "--detector", "mtcnn", NULL),
                 err);
    const char *bad_scores[] = {"0", "1", "1.0", "-0.5", "0.5x", "", ".", "1e-1", " 0.5", "0..5", "nan"};
    for (size_t i = 0; i < sizeof(bad_scores) / sizeof(bad_scores[0]); i++) {
        char opt[64];
        snprintf(opt, sizeof(opt), "--min-score=%s", bad_scores[i]);
        int rc = parse(&a, err, sizeof(err), "faces", "x", opt, NULL);
        assert_int_equal(rc, PV_EINVAL);
        assert_non_null(strstr(err, "--min-score"));
    }
    expect_error("--detector is not valid for 'tenant list'",
                 parse(&a, err, sizeof(err), "tenant", "list", "--detector", "ssd", NULL), err);
    expect_error("--models is not valid for 'migrate'", parse(&a, err, sizeof(err), "migrate", "--models", "m", NULL),
                 err);

    /* at most PV_ADMIN_FILES_MAX images */
    static char *argv[PV_ADMIN_FILES_MAX + 5];
    int argc = 0;
    argv[argc++] = "privid-admin";
    argv[argc++] = "faces";
    for (int i = 0; i < PV_ADMIN_FILES_MAX; i++)
        argv[argc++] = "img.jpg";
    argv[argc] = NULL;
    assert_int_equal(pv_admin_parse(&a, argc, argv, err, sizeof(err)), 0);
    assert_int_equal(a.nfiles, PV_ADMIN_FILES_MAX);
    argv[argc++] = "one-too-many.jpg";
    argv[argc++] = "and-another.jpg";
    argv[argc] = NULL;
    expect_error("too many images", pv_admin_parse(&a, argc, argv, err, sizeof(err)), err);
}

static void test_tenant_update(void **state)
{
    (void)state;
    static pv_admin_args_t a;
    char err[256];
    assert_int_equal(parse(&a, err, sizeof(err), "tenant", "update", "acme", "--rate", "120", "--quota=5000", NULL), 0);
    assert_int_equal(a.cmd, PV_ADMIN_TENANT_UPDATE);
    assert_true(a.update.set_rate && a.update.set_quota && !a.update.set_burst && !a.update.set_retention);
    assert_int_equal(a.update.rate_per_min, 120);
    assert_int_equal(a.update.monthly_quota, 5000);
    assert_int_equal(parse(&a, err, sizeof(err), "tenant", "update", "acme", "--retention-days", "30", "--burst", "0",
                           NULL),
                     0);
    assert_true(a.update.set_retention && a.update.set_burst);
    assert_int_equal(a.update.retention_days, 30);
    expect_error("needs at least one", parse(&a, err, sizeof(err), "tenant", "update", "acme", NULL), err);
    expect_error("invalid --rate '-1'", parse(&a, err, sizeof(err), "tenant", "update", "acme", "--rate", "-1", NULL),
                 err);
    expect_error("invalid --quota", parse(&a, err, sizeof(err), "tenant", "update", "acme", "--quota", "5e3", NULL),
                 err);
    expect_error("invalid --burst", parse(&a, err, sizeof(err), "tenant", "update", "acme", "--burst=9999999", NULL),
                 err);
    expect_error("--rate is not valid for 'tenant create'",
                 parse(&a, err, sizeof(err), "tenant", "create", "acme", "--rate", "1", NULL), err);
    expect_error("invalid tenant name", parse(&a, err, sizeof(err), "tenant", "update", "a b", "--rate", "1", NULL),
                 err);
    /* --k-anon alone is an update; its range is PostgreSQL's CHECK */
    assert_int_equal(parse(&a, err, sizeof(err), "tenant", "update", "acme", "--k-anon", "7", NULL), 0);
    assert_int_equal(a.k_anon, 7);
    assert_true(!a.update.set_rate && !a.update.set_quota && !a.update.set_burst && !a.update.set_retention);
    assert_int_equal(parse(&a, err, sizeof(err), "tenant", "update", "acme", "--k-anon=2", "--rate", "5", NULL), 0);
    assert_int_equal(a.k_anon, 2);
    assert_int_equal(parse(&a, err, sizeof(err), "tenant", "update", "acme", "--rate", "5", NULL), 0);
    assert_int_equal(a.k_anon, 0);
    static const char *const bad_k[] = {"1", "0", "1001", "-5", "x", "5.0", "99999999999"};
    for (size_t i = 0; i < sizeof(bad_k) / sizeof(bad_k[0]); i++) {
        char opt[64];
        snprintf(opt, sizeof(opt), "--k-anon=%s", bad_k[i]);
        expect_error("invalid --k-anon", parse(&a, err, sizeof(err), "tenant", "update", "acme", opt, NULL), err);
        assert_non_null(strstr(err, "from 2 to 1000"));
    }
    expect_error("--k-anon is not valid for 'tenant create'",
                 parse(&a, err, sizeof(err), "tenant", "create", "acme", "--k-anon", "5", NULL), err);
}

static void test_analytics_usage(void **state)
{
    (void)state;
    pv_admin_args_t a;
    char err[256];

    assert_int_equal(parse(&a, err, sizeof(err), "analytics", "status", NULL), 0);
    assert_int_equal(a.cmd, PV_ADMIN_ANALYTICS_STATUS);
    assert_null(a.arg);
    assert_int_equal(parse(&a, err, sizeof(err), "--pg", "host=x", "analytics", "status", "--json", NULL), 0);
    assert_string_equal(a.pg, "host=x");
    assert_true(a.json);
    assert_int_equal(parse(&a, err, sizeof(err), "analytics", "backfill", "--timeout=60", NULL), 0);
    assert_int_equal(a.cmd, PV_ADMIN_ANALYTICS_BACKFILL);
    assert_int_equal(a.timeout_s, 60);
    assert_int_equal(parse(&a, err, sizeof(err), "analytics", "backfill", NULL), 0);
    assert_int_equal(a.timeout_s, 0);
    assert_string_equal(pv_admin_cmd_name(PV_ADMIN_ANALYTICS_BACKFILL), "analytics backfill");

    assert_int_equal(parse(&a, err, sizeof(err), "usage", "acme", NULL), 0);
    assert_int_equal(a.cmd, PV_ADMIN_USAGE);
    assert_string_equal(a.arg, "acme");
    assert_int_equal(a.month, 0);
    assert_int_equal(parse(&a, err, sizeof(err), "usage", "--month", "2026-03", "acme", "--json", NULL), 0);
    assert_int_equal(a.month, 202603);
    assert_int_equal(parse(&a, err, sizeof(err), "usage", "acme", "--month=2000-12", NULL), 0);
    assert_int_equal(a.month, 200012);

    /* bad arguments, each named */
    expect_error("missing analytics command (status, backfill)",
                 parse(&a, err, sizeof(err), "analytics", NULL), err);
    expect_error("unknown analytics command 'drain'", parse(&a, err, sizeof(err), "analytics", "drain", NULL),
                 err);
    expect_error("unexpected argument 'acme'",
                 parse(&a, err, sizeof(err), "analytics", "status", "acme", NULL), err);
    expect_error("missing argument TENANT for 'usage'", parse(&a, err, sizeof(err), "usage", NULL), err);
    expect_error("unexpected argument 'b'", parse(&a, err, sizeof(err), "usage", "a", "b", NULL), err);
    expect_error("invalid tenant name 'a b'", parse(&a, err, sizeof(err), "usage", "a b", NULL), err);
    const char *months[] = {"2026-13", "2026-00",    "2026-3",    "26-03",    "2026/03",
                            "1999-12", "2026-03-01", "２０26-03", "-2026-03", "2026-0a"};
    for (size_t i = 0; i < sizeof(months) / sizeof(months[0]); i++) {
        char opt[64];
        snprintf(opt, sizeof(opt), "--month=%s", months[i]);
        expect_error("invalid --month", parse(&a, err, sizeof(err), "usage", "acme", opt, NULL), err);
    }
    expect_error("option --month needs a non-empty value",
                 parse(&a, err, sizeof(err), "usage", "acme", "--month=", NULL), err);
    expect_error("option --month needs a value",
                 parse(&a, err, sizeof(err), "usage", "acme", "--month", NULL), err);
    expect_error("option --month given twice",
                 parse(&a, err, sizeof(err), "usage", "acme", "--month=2026-01", "--month=2026-02", NULL),
                 err);
    expect_error("option --month is not valid for 'analytics status'",
                 parse(&a, err, sizeof(err), "analytics", "status", "--month=2026-01", NULL), err);
    expect_error("option --timeout is not valid for 'usage'",
                 parse(&a, err, sizeof(err), "usage", "acme", "--timeout=5", NULL), err);
    expect_error("invalid --timeout '0'",
                 parse(&a, err, sizeof(err), "analytics", "backfill", "--timeout=0", NULL), err);
    expect_error("invalid --timeout '86401'",
                 parse(&a, err, sizeof(err), "analytics", "backfill", "--timeout", "86401", NULL), err);
    expect_error("invalid --timeout '5s'",
                 parse(&a, err, sizeof(err), "analytics", "backfill", "--timeout=5s", NULL), err);

    /* help at each level names the new commands */
    static char buf[16384];
    FILE *f = fmemopen(buf, sizeof(buf), "w");
    assert_int_equal(parse(&a, err, sizeof(err), "analytics", "--help", NULL), 0);
    assert_int_equal(a.group, PV_ADMIN_GROUP_ANALYTICS);
    pv_admin_usage(f, &a);
    assert_int_equal(parse(&a, err, sizeof(err), "usage", "--help", NULL), 0);
    pv_admin_usage(f, &a);
    assert_int_equal(parse(&a, err, sizeof(err), "--help", NULL), 0);
    pv_admin_usage(f, &a);
    fclose(f);
    assert_non_null(strstr(buf, "backfill --pg DSN"));
    assert_non_null(strstr(buf, "Usage: privid-admin usage TENANT [--month YYYY-MM]"));
    assert_non_null(strstr(buf, "analytics status|backfill"));
}

static void test_key_rotate(void **state)
{
    (void)state;
    pv_admin_args_t a;
    char err[256];

    assert_int_equal(parse(&a, err, sizeof(err), "key", "rotate", "0123456789abcdef", NULL), 0);
    assert_int_equal(a.cmd, PV_ADMIN_KEY_ROTATE);
    assert_string_equal(a.arg, "0123456789abcdef");
    assert_int_equal(a.grace_s, PV_ADMIN_GRACE_DEFAULT);
    assert_string_equal(pv_admin_cmd_name(PV_ADMIN_KEY_ROTATE), "key rotate");
    static const struct {
        const char *text;
        int64_t seconds;
    } ok[] = {{"0", 0},       {"90", 90},     {"90s", 90},       {"15m", 900},
              {"24h", 86400}, {"7d", 604800}, {"366d", 31622400}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(
            parse(&a, err, sizeof(err), "key", "rotate", "--grace", ok[i].text, "0123456789abcdef", NULL), 0);
        assert_int_equal(a.grace_s, ok[i].seconds);
    }
    const char *bad[] = {"367d", "1w", "-5", "5 s", "s", "h", "1.5h", "99999999999", "8785h", "1e3", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char opt[64];
        snprintf(opt, sizeof(opt), "--grace=%s", bad[i]);
        expect_error("invalid --grace",
                     parse(&a, err, sizeof(err), "key", "rotate", "0123456789abcdef", opt, NULL), err);
    }
    expect_error("missing argument KEYID for 'key rotate'",
                 parse(&a, err, sizeof(err), "key", "rotate", NULL), err);
    expect_error("invalid key id 'acme'", parse(&a, err, sizeof(err), "key", "rotate", "acme", NULL), err);
    expect_error("option --grace is not valid for 'key revoke'",
                 parse(&a, err, sizeof(err), "key", "revoke", "0123456789abcdef", "--grace=1h", NULL), err);
}

static void test_small_error_buffer(void **state)
{
    (void)state;
    pv_admin_args_t a;
    char err[8];
    /* messages are truncated, never overflow */
    assert_int_equal(parse(&a, err, sizeof(err), "unknown-command-with-a-long-name", NULL), PV_EINVAL);
    assert_true(strlen(err) < sizeof(err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),           cmocka_unit_test(test_help_levels),
        cmocka_unit_test(test_usage_errors),       cmocka_unit_test(test_faces),
        cmocka_unit_test(test_tenant_update),      cmocka_unit_test(test_analytics_usage),
        cmocka_unit_test(test_small_error_buffer), cmocka_unit_test(test_key_rotate),
    };
    return cmocka_run_group_tests_name("tenants_admin_args", tests, NULL, NULL);
}
