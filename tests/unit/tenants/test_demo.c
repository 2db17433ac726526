/*
 * privid-admin demo seed: argument parsing (every option, default, bound and
 * error), the generator (deterministic for a seed and a day, inside the
 * period, time-ordered, one first visit per visitor, busier weekends,
 * synthetic gids) and seeding into a real LMDB store in a temporary
 * directory (visitors and outbox events as planned, a second run refused
 * without writing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/error.h"
#include "tenants/demo.h"
#include "tenants/visitors.h"

#define DAY_MS INT64_C(86400000)
#define NOW INT64_C(1796385600000) /* 2026-12-04T12:00:00Z */

static int parse(pv_demo_opts_t *o, char *err, const char *line)
{
    static char buf[512]; /* the parsed strings point into it */
    char *argv[32];
    int argc = 0;
    snprintf(buf, sizeof(buf), "%s", line);
    for (char *tok = strtok(buf, " "); tok != NULL && argc < 31; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    argv[argc] = NULL;
    return pv_demo_parse(o, argc, argv, err, 256);
}

static void test_parse(void **state)
{
    (void)state;
    pv_demo_opts_t o;
    char err[256];
    assert_int_equal(parse(&o, err, "demo seed --tenant demo"), 0);
    assert_int_equal(o.weeks, PV_DEMO_WEEKS_DEFAULT);
    assert_int_equal(o.visitors, PV_DEMO_VISITORS_DEFAULT);
    assert_int_equal(o.seed, PV_DEMO_SEED_DEFAULT);
    assert_int_equal(o.json, 0);
    assert_int_equal(
        parse(&o, err,
              "--data-dir /x demo --json seed --weeks 12 --visitors=10 --tenant a.b --seed 4294967295"),
        0);
    assert_int_equal(o.weeks, 12);
    assert_int_equal(o.visitors, 10);
    assert_int_equal(o.seed, 4294967295u);
    assert_int_equal(o.json, 1);
    assert_int_equal(parse(&o, err, "demo --help"), 0);
    assert_int_equal(o.help, 1);

    static const struct {
        const char *line, *msg;
    } bad[] = {
        {"demo", "missing demo command"},
        {"demo plant --tenant a", "unknown demo command 'plant'"},
        {"demo seed", "needs --tenant"},
        {"demo seed --tenant", "--tenant needs a value"},
        {"demo seed --tenant -bad", "invalid tenant name"},
        {"demo seed --tenant a --weeks 0", "invalid --weeks '0'"},
        {"demo seed --tenant a --weeks 13", "invalid --weeks '13'"},
        {"demo seed --tenant a --weeks 2x", "invalid --weeks"},
        {"demo seed --tenant a --visitors 9", "invalid --visitors '9'"},
        {"demo seed --tenant a --visitors 20001", "invalid --visitors"},
        {"demo seed --tenant a --seed -1", "invalid --seed '-1'"},
        {"demo seed --tenant a --seed 4294967296", "invalid --seed"},
        {"demo seed --tenant a --tenant b", "--tenant given twice"},
        {"demo seed --tenant a --colour red", "unknown option '--colour'"},
        {"demo seed --tenant a extra", "unexpected argument 'extra'"},
        {"demo seed --tenant=", "--tenant needs a non-empty value"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (parse(&o, err, bad[i].line) != PV_EINVAL || strstr(err, bad[i].msg) == NULL)
            fail_msg("\"%s\": expected an error with \"%s\", got \"%s\"", bad[i].line, bad[i].msg, err);
    }
}

static void test_wanted(void **state)
{
    (void)state;
    char *a[] = {"privid-admin", "demo", "seed", NULL};
    char *b[] = {"privid-admin", "--data-dir", "demo", "tenant", "list", NULL};
    char *c[] = {"privid-admin", "--json", "--pg", "x", "demo", NULL};
    char *d[] = {"privid-admin", "tenant", "show", "demo", NULL};
    assert_true(pv_demo_wanted(3, a));
    assert_false(pv_demo_wanted(5, b)); /* "demo" is the data directory there */
    assert_true(pv_demo_wanted(5, c));
    assert_false(pv_demo_wanted(4, d));
}

static void test_plan(void **state)
{
    (void)state;
    pv_demo_opts_t o = {.weeks = 4, .visitors = 500, .seed = 7};
    pv_demo_plan_t *p = NULL, *q = NULL, *r = NULL;
    assert_int_equal(pv_demo_plan(&p, &o, NOW), 0);
    assert_int_equal(pv_demo_plan(&q, &o, NOW + 3600000), 0); /* same day: same plan */
    o.seed = 8;
    assert_int_equal(pv_demo_plan(&r, &o, NOW), 0);
    assert_int_equal(p->nvisits, q->nvisits);
    assert_memory_equal(p->visits, q->visits, p->nvisits * sizeof(*p->visits));
    assert_memory_equal(p->purchases, q->purchases, p->npurchases * sizeof(*p->purchases));
    assert_true(r->nvisits != p->nvisits ||
                memcmp(r->visits, p->visits, p->nvisits * sizeof(*p->visits)) != 0);

    assert_int_equal(p->to_ms, NOW / DAY_MS * DAY_MS);
    assert_int_equal(p->to_ms - p->from_ms, 28 * DAY_MS);
    uint8_t seen[500] = {0};
    size_t news = 0, weekend = 0, weekday = 0;
    for (size_t i = 0; i < p->nvisits; i++) {
        const pv_demo_visit_t *v = &p->visits[i];
        assert_true(v->ts_ms >= p->from_ms && v->ts_ms < p->to_ms);
        assert_true(i == 0 || v->ts_ms >= p->visits[i - 1].ts_ms);
        assert_true(v->visitor < 500);
        assert_non_null(pv_demo_location(v->location));
        assert_int_equal(v->is_new, !seen[v->visitor]); /* the first visit, and only it, is new */
        seen[v->visitor] = 1;
        news += v->is_new;
        int wday = (int)((v->ts_ms / DAY_MS + 4) % 7);
        if (wday == 0 || wday == 6)
            weekend++;
        else
            weekday++;
    }
    assert_int_equal(news, 500); /* every visitor came at least once */
    assert_true(p->nvisits > 700 && p->nvisits < 2000);
    /* per day, weekends are busier (first visits are uniform, returns are not) */
    assert_true(weekend * 5 > weekday * 2);
    int64_t sum = 0;
    for (size_t i = 0; i < p->npurchases; i++) {
        assert_true(p->purchases[i].amount_minor >= 490 && p->purchases[i].amount_minor <= 9490);
        assert_true(p->purchases[i].ts_ms < p->to_ms + 3600000);
        sum += p->purchases[i].amount_minor;
    }
    assert_int_equal(sum, p->amount_minor);
    assert_true(p->npurchases > p->nvisits / 10 && p->npurchases < p->nvisits / 3);
    assert_true(p->buyers > 0 && p->buyers <= 500);
    assert_int_equal(pv_demo_location(2), NULL);
    assert_true(pv_demo_gid(3, 5) & PV_DEMO_GID_BIT);
    assert_true(pv_demo_gid(3, 5) != pv_demo_gid(4, 5));
    pv_demo_plan_free(p);
    pv_demo_plan_free(q);
    pv_demo_plan_free(r);
    o.weeks = 13;
    assert_int_equal(pv_demo_plan(&p, &o, NOW), PV_EINVAL);
    pv_demo_plan_free(NULL);
}

static void test_seed(void **state)
{
    (void)state;
    char dir[] = "/tmp/pv-demo-XXXXXX", err[512], cmd[600];
    assert_non_null(mkdtemp(dir));
    pv_tenants_t *t = NULL;
    pv_tenant_t tn;
    pv_demo_plan_t *p = NULL;
    pv_visitor_t v;
    uint64_t count = 0, last = 0;
    pv_demo_opts_t o = {.weeks = 3, .visitors = 50, .seed = 3};
    assert_int_equal(pv_tenants_open(&t, dir), 0);
    assert_int_equal(pv_tenants_create(t, &tn, "shop", PV_TENANT_NETWORK, 14), 0);
    /* the tenant keeps 14 days: 3 weeks is refused */
    int64_t now = NOW;
    assert_int_equal(pv_demo_plan(&p, &o, now), 0);
    assert_int_equal(pv_demo_seed(t, &tn, p, now, err, sizeof(err)), PV_EINVAL);
    assert_non_null(strstr(err, "retention"));
    pv_demo_plan_free(p);
    o.weeks = 1;
    now = (int64_t)time(NULL) * 1000; /* purchases are checked against the real clock's retention */
    assert_int_equal(pv_demo_plan(&p, &o, now), 0);
    assert_int_equal(pv_demo_seed(t, &tn, p, now, err, sizeof(err)), 0);
    assert_int_equal(pv_outbox_stat(t, &count, &last), 0);
    assert_int_equal(count, p->nvisits + p->npurchases);
    assert_int_equal(pv_visitor_of_gid(t, &tn, pv_demo_gid(tn.id, 0), &v), 0);
    assert_true(v.visits >= 1);
    /* again: refused, nothing written */
    assert_int_equal(pv_demo_seed(t, &tn, p, now, err, sizeof(err)), PV_EEXIST);
    assert_non_null(strstr(err, "already"));
    assert_int_equal(pv_outbox_stat(t, &count, &last), 0);
    assert_int_equal(count, p->nvisits + p->npurchases);
    pv_demo_plan_free(p);
    pv_tenants_close(t);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_wanted),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
