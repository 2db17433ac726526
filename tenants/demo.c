/*
 * Synthetic demo data (see demo.h): argument parsing, a deterministic
 * generator (splitmix64 seeded by --seed) and the seeding through the
 * store's own write paths. Every visit, visitor and purchase written here is
 * recognisably synthetic (names, attrs, event IDs, gids with the top bit).
 */
#include "tenants/demo.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/error.h"
#include "tenants/events.h"
#include "tenants/visitors.h"

#define DAY_MS INT64_C(86400000)
#define SHOWN 64

static const char *const locations[] = {"synthetic-downtown", "synthetic-mall"};
#define NLOC (sizeof(locations) / sizeof(locations[0]))

const char *pv_demo_location(unsigned i)
{
    return i < NLOC ? locations[i] : NULL;
}

uint64_t pv_demo_gid(uint64_t tenant_id, uint32_t i)
{
    return PV_DEMO_GID_BIT | (tenant_id & UINT64_C(0x7fffffffff)) << 24 | (i & 0xffffffu);
}

/* ---- arguments ----------------------------------------------------------- */

/* Strict decimal in [lo, hi]. */
static int parse_u32(uint32_t *out, const char *s, uint32_t lo, uint32_t hi)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0')
        return PV_EINVAL;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return PV_EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > hi)
            return PV_EINVAL;
    }
    if (v < lo)
        return PV_EINVAL;
    *out = (uint32_t)v;
    return 0;
}

/* Global options of privid-admin that take a value (to skip it when looking for the command). */
static int takes_value(const char *a)
{
    return strcmp(a, "--data-dir") == 0 || strcmp(a, "--pg") == 0;
}

int pv_demo_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc && argv[i] != NULL; i++) {
        if (takes_value(argv[i])) {
            i++;
            continue;
        }
        if (argv[i][0] == '-')
            continue;
        return strcmp(argv[i], "demo") == 0;
    }
    return 0;
}

int pv_demo_parse(pv_demo_opts_t *out, int argc, char **argv, char *err, size_t errlen)
{
    static const char *const names[] = {"tenant", "weeks", "visitors", "seed", "data-dir", "pg"};
    const char *vals[6] = {0};
    int npos = 0, seen_cmd = 0;
    memset(out, 0, sizeof(*out));
    out->weeks = PV_DEMO_WEEKS_DEFAULT;
    out->visitors = PV_DEMO_VISITORS_DEFAULT;
    out->seed = PV_DEMO_SEED_DEFAULT;
    if (errlen > 0)
        err[0] = '\0';
    for (int i = 0; i < argc && argv[i] != NULL; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            if (npos == 0 && strcmp(a, "demo") == 0) {
                npos++;
                continue;
            }
            if (npos == 1 && strcmp(a, "seed") == 0) {
                npos++, seen_cmd = 1;
                continue;
            }
            snprintf(err, errlen,
                     npos == 1 ? "unknown demo command '%.*s' (expected seed)" : "unexpected argument '%.*s'",
                     SHOWN, a);
            return PV_EINVAL;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            out->help = 1;
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            out->json = 1;
            continue;
        }
        const char *name = a[1] == '-' ? a + 2 : NULL, *eq = name ? strchr(name, '=') : NULL;
        size_t nlen = name == NULL ? 0 : eq != NULL ? (size_t)(eq - name) : strlen(name);
        size_t o = 0;
        while (name != NULL && o < 6 && !(strlen(names[o]) == nlen && strncmp(names[o], name, nlen) == 0))
            o++;
        if (name == NULL || o == 6) {
            snprintf(err, errlen, "unknown option '%.*s' for 'demo seed'", SHOWN, a);
            return PV_EINVAL;
        }
        if (vals[o] != NULL) {
            snprintf(err, errlen, "option --%s given twice", names[o]);
            return PV_EINVAL;
        }
        if (eq != NULL)
            vals[o] = eq + 1;
        else if (i + 1 < argc && argv[i + 1] != NULL)
            vals[o] = argv[++i];
        else {
            snprintf(err, errlen, "option --%s needs a value", names[o]);
            return PV_EINVAL;
        }
        if (vals[o][0] == '\0') {
            snprintf(err, errlen, "option --%s needs a non-empty value", names[o]);
            return PV_EINVAL;
        }
    }
    out->tenant = vals[0];
    out->data_dir = vals[4];
    if (out->help)
        return 0;
    if (!seen_cmd) {
        snprintf(err, errlen, "missing demo command (seed)");
        return PV_EINVAL;
    }
    if (out->tenant == NULL) {
        snprintf(err, errlen, "demo seed needs --tenant NAME");
        return PV_EINVAL;
    }
    if (pv_tenants_name_valid(out->tenant) != 0) {
        snprintf(err, errlen, "invalid tenant name '%.*s'", SHOWN, out->tenant);
        return PV_EINVAL;
    }
    if (vals[1] != NULL && parse_u32(&out->weeks, vals[1], 1, PV_DEMO_WEEKS_MAX) != 0) {
        snprintf(err, errlen, "invalid --weeks '%.*s': expected an integer from 1 to %d", SHOWN, vals[1],
                 PV_DEMO_WEEKS_MAX);
        return PV_EINVAL;
    }
    if (vals[2] != NULL &&
        parse_u32(&out->visitors, vals[2], PV_DEMO_VISITORS_MIN, PV_DEMO_VISITORS_MAX) != 0) {
        snprintf(err, errlen, "invalid --visitors '%.*s': expected an integer from %d to %d", SHOWN, vals[2],
                 PV_DEMO_VISITORS_MIN, PV_DEMO_VISITORS_MAX);
        return PV_EINVAL;
    }
    if (vals[3] != NULL && parse_u32(&out->seed, vals[3], 0, UINT32_MAX) != 0) {
        snprintf(err, errlen, "invalid --seed '%.*s': expected an integer from 0 to 4294967295", SHOWN,
                 vals[3]);
        return PV_EINVAL;
    }
    return 0;
}

void pv_demo_usage(FILE *f)
{
    fprintf(f,
            "Usage: privid-admin demo seed --tenant NAME [--weeks N] [--visitors N] [--seed S]\n\n"
            "Seeds SYNTHETIC visits and purchases for a tenant so reports and dashboards have\n"
            "something to show: --visitors made-up visitors over the --weeks weeks before today,\n"
            "regulars and one-time visitors, busier weekends, purchases in EUR. They go through\n"
            "the store's own paths into the analytics outbox; a gateway started with --pg\n"
            "delivers them to PostgreSQL (or 'privid-admin analytics backfill'). Locations\n"
            "and cameras are named synthetic-..., purchases carry attrs {\"synthetic\":true};\n"
            "the visitors are made-up identities no face can match. Deterministic for a seed\n"
            "and a day. Refused (exit 3) when the tenant was seeded already.\n\n"
            "  --tenant NAME   the tenant to seed\n"
            "  --weeks N       weeks of history, 1..%d (default %d; within the tenant's retention)\n"
            "  --visitors N    visitors, %d..%d (default %d)\n"
            "  --seed S        random seed, 0..4294967295 (default %d)\n"
            "  --data-dir DIR  tenants store (env PRIVID_DATA_DIR, default ./var/data)\n"
            "  --json          print the figures as JSON\n\n"
            "Exit status: 0 ok, 1 store failure, 2 usage error, 3 unknown tenant or already seeded.\n",
            PV_DEMO_WEEKS_MAX, PV_DEMO_WEEKS_DEFAULT, PV_DEMO_VISITORS_MIN, PV_DEMO_VISITORS_MAX,
            PV_DEMO_VISITORS_DEFAULT, PV_DEMO_SEED_DEFAULT);
}

/* ---- the generator ------------------------------------------------------- */

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double uni(uint64_t *s)
{
    return (double)(next(s) >> 11) / 9007199254740992.0;
}

/* Milliseconds into a day: store hours 8:00-21:00 UTC, peaks at lunch and after work. */
static int64_t time_of_day(uint64_t *s)
{
    static const int weight[13] = {1, 2, 3, 4, 6, 5, 3, 3, 4, 6, 7, 5, 2}; /* 8h .. 20h */
    int total = 0, h = 0;
    for (int i = 0; i < 13; i++)
        total += weight[i];
    int r = (int)(uni(s) * total);
    while (h < 12 && r >= weight[h])
        r -= weight[h++];
    return (int64_t)(8 + h) * 3600000 + (int64_t)(uni(s) * 3600000);
}

static int cmp_visit(const void *a, const void *b)
{
    const pv_demo_visit_t *x = a, *y = b;
    if (x->ts_ms != y->ts_ms)
        return x->ts_ms < y->ts_ms ? -1 : 1;
    return x->visitor < y->visitor ? -1 : x->visitor > y->visitor;
}

void pv_demo_plan_free(pv_demo_plan_t *p)
{
    if (p == NULL)
        return;
    free(p->visits);
    free(p->purchases);
    free(p);
}

/* Appends to a growable array (cap doubles). */
static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 256;
    void *a = realloc(*arr, nc * size);
    if (a == NULL)
        return PV_ENOMEM;
    *arr = a;
    *cap = nc;
    return 0;
}

int pv_demo_plan(pv_demo_plan_t **out, const pv_demo_opts_t *o, int64_t now_ms)
{
    pv_demo_plan_t *p = NULL;
    size_t vcap = 0, pcap = 0;
    uint8_t *bought = NULL, *seen = NULL;
    int rc = PV_ENOMEM;
    *out = NULL;
    if (o->weeks < 1 || o->weeks > PV_DEMO_WEEKS_MAX || o->visitors < PV_DEMO_VISITORS_MIN ||
        o->visitors > PV_DEMO_VISITORS_MAX || now_ms <= 0)
        return PV_EINVAL;
    if ((p = calloc(1, sizeof(*p))) == NULL || (bought = calloc(o->visitors, 1)) == NULL ||
        (seen = calloc(o->visitors, 1)) == NULL)
        goto out;
    const int days = (int)o->weeks * 7;
    p->to_ms = now_ms / DAY_MS * DAY_MS;
    p->from_ms = p->to_ms - days * DAY_MS;
    p->seed = o->seed;
    p->weeks = o->weeks;
    p->visitors = o->visitors;
    uint64_t s = UINT64_C(0x5eed00d15ea5e) ^ ((uint64_t)o->seed << 17);
    for (uint32_t v = 0; v < o->visitors; v++) {
        const int regular = uni(&s) < 0.45;
        const int d0 = (int)(uni(&s) * days);
        const uint8_t home = uni(&s) < 0.65 ? 0 : 1;
        const double per_week = 0.7 + uni(&s) * 2.3;
        for (int d = d0; d < days; d++) {
            int64_t day_ms = p->from_ms + d * DAY_MS;
            int wday = (int)((day_ms / DAY_MS + 4) % 7); /* 0 = Sunday (1970-01-01 was a Thursday) */
            double factor = wday == 0 || wday == 6 ? 1.5 : 0.8;
            if (d > d0 && !(regular && uni(&s) < per_week / 7.0 * factor))
                continue;
            if ((rc = grow((void **)&p->visits, &vcap, p->nvisits, sizeof(*p->visits))) != 0)
                goto out;
            pv_demo_visit_t *vi = &p->visits[p->nvisits++];
            memset(vi, 0, sizeof(*vi)); /* padding too: plans compare byte for byte */
            vi->visitor = v;
            vi->ts_ms = day_ms + time_of_day(&s);
            vi->location = uni(&s) < 0.85 ? home : (uint8_t)(1 - home);
            vi->distance = (float)(0.25 + uni(&s) * 0.15);
            vi->is_new = 0;
            if (uni(&s) < (regular ? 0.25 : 0.2)) {
                if ((rc = grow((void **)&p->purchases, &pcap, p->npurchases, sizeof(*p->purchases))) != 0)
                    goto out;
                pv_demo_purchase_t *pu = &p->purchases[p->npurchases++];
                memset(pu, 0, sizeof(*pu));
                pu->visitor = v;
                pu->ts_ms = vi->ts_ms + 300000 + (int64_t)(uni(&s) * 1800000);
                pu->location = vi->location;
                pu->amount_minor = 490 + (int64_t)(uni(&s) * uni(&s) * 900) * 10;
                p->amount_minor += pu->amount_minor;
                if (!bought[v])
                    bought[v] = 1, p->buyers++;
            }
            if (!regular)
                break;
        }
    }
    qsort(p->visits, p->nvisits, sizeof(*p->visits), cmp_visit);
    for (size_t i = 0; i < p->nvisits; i++)
        if (!seen[p->visits[i].visitor])
            seen[p->visits[i].visitor] = 1, p->visits[i].is_new = 1;
    *out = p;
    p = NULL;
    rc = 0;
out:
    pv_demo_plan_free(p);
    free(bought);
    free(seen);
    return rc;
}

/* ---- seeding ------------------------------------------------------------- */

static void rfc3339(char *buf, size_t size, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03dZ", (int)(ms % 1000));
}

static int seed_purchases(pv_tenants_t *t, const pv_tenant_t *tn, const pv_demo_plan_t *p, int64_t now_ms,
                          char *err, size_t errlen)
{
    pv_event_result_t *res = calloc(PV_EVENTS_BATCH_MAX, sizeof(*res));
    json_t *batch = NULL;
    int rc = res == NULL ? PV_ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < p->npurchases; i += PV_EVENTS_BATCH_MAX) {
        size_t n = p->npurchases - i < PV_EVENTS_BATCH_MAX ? p->npurchases - i : PV_EVENTS_BATCH_MAX,
               accepted = 0;
        if ((batch = json_array()) == NULL) {
            rc = PV_ENOMEM;
            break;
        }
        for (size_t j = 0; j < n; j++) {
            const pv_demo_purchase_t *pu = &p->purchases[i + j];
            char id[48], ts[40], vid[PV_VISITOR_ID_LEN + 1];
            snprintf(id, sizeof(id), "synthetic-%u-%zu", p->seed, i + j);
            rfc3339(ts, sizeof(ts), pu->ts_ms);
            if ((rc = pv_visitor_id_encode(vid, tn->secret, tn->id, pv_demo_gid(tn->id, pu->visitor))) != 0)
                break;
            json_array_append_new(batch, json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:{s:b}}", "event_id", id,
                                                   "visitor", vid, "type", "purchase", "ts", ts, "location",
                                                   locations[pu->location], "amount_minor",
                                                   (json_int_t)pu->amount_minor, "currency", PV_DEMO_CURRENCY,
                                                   "attrs", "synthetic", 1));
        }
        if (rc == 0 && json_array_size(batch) != n)
            rc = PV_ENOMEM;
        if (rc == 0 && (rc = pv_events_append(t, tn, batch, now_ms, res, &accepted)) == 0 && accepted != n) {
            for (size_t j = 0; j < n; j++)
                if (res[j].status != PV_EVENT_ACCEPTED) {
                    snprintf(err, errlen, "purchase %zu not accepted (%s): %s", i + j,
                             pv_event_status_name(res[j].status), res[j].reason);
                    break;
                }
            rc = PV_EINVAL;
        }
        json_decref(batch);
        batch = NULL;
    }
    free(res);
    return rc;
}

int pv_demo_seed(pv_tenants_t *t, const pv_tenant_t *tn, const pv_demo_plan_t *p, int64_t now_ms, char *err,
                 size_t errlen)
{
    pv_visit_t visits[PV_VISITS_MAX];
    pv_visitor_t out[PV_VISITS_MAX], v;
    char cameras[NLOC][32];
    int rc;
    if (errlen > 0)
        err[0] = '\0';
    if (p->from_ms < now_ms - (int64_t)tn->retention_days * DAY_MS + DAY_MS) {
        snprintf(err, errlen, "%u weeks reach past the tenant's retention of %u days", p->weeks,
                 tn->retention_days);
        return PV_EINVAL;
    }
    /* a second run would double the data: refuse if any synthetic visitor of the plan exists */
    for (uint32_t i = 0; i < p->visitors; i++) {
        rc = pv_visitor_of_gid(t, tn, pv_demo_gid(tn->id, i), &v);
        if (rc == 0) {
            snprintf(err, errlen,
                     "tenant '%s' already has synthetic demo visitors: seeding again would double the data",
                     tn->name);
            return PV_EEXIST;
        }
        if (rc != PV_ENOTFOUND)
            return rc;
    }
    for (size_t c = 0; c < NLOC; c++)
        snprintf(cameras[c], sizeof(cameras[c]), "synthetic-cam-%zu", c + 1);
    for (size_t i = 0; i < p->nvisits; i += PV_VISITS_MAX) {
        size_t n = p->nvisits - i < PV_VISITS_MAX ? p->nvisits - i : PV_VISITS_MAX;
        for (size_t j = 0; j < n; j++) {
            const pv_demo_visit_t *d = &p->visits[i + j];
            visits[j] = (pv_visit_t){.gid = pv_demo_gid(tn->id, d->visitor),
                                     .ts_ms = d->ts_ms,
                                     .location = locations[d->location],
                                     .camera = cameras[d->location],
                                     .is_new = d->is_new,
                                     .distance = d->is_new ? -1.0 : d->distance};
        }
        if ((rc = pv_visits_record(t, tn, visits, n, out)) != 0) {
            snprintf(err, errlen, "cannot record visits: %s", pv_strerror(rc));
            return rc;
        }
    }
    return seed_purchases(t, tn, p, now_ms, err, errlen);
}

/* ---- the command --------------------------------------------------------- */

int pv_demo_main(int argc, char **argv)
{
    pv_demo_opts_t o;
    pv_demo_plan_t *p = NULL;
    pv_tenants_t *t = NULL;
    pv_tenant_t tn;
    char err[512];
    int code = 1, rc;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    const int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;

    memset(&tn, 0, sizeof(tn));
    if (pv_demo_parse(&o, argc - 1, argv + 1, err, sizeof(err)) != 0) {
        fprintf(stderr, "privid-admin: %s\nTry 'privid-admin demo --help'.\n", err);
        return 2;
    }
    if (o.help) {
        pv_demo_usage(stdout);
        return 0;
    }
    const char *env = getenv("PRIVID_DATA_DIR");
    const char *dir = o.data_dir ? o.data_dir : env && *env ? env : "./var/data";
    if ((rc = pv_tenants_open(&t, dir)) != 0) {
        fprintf(stderr, "privid-admin: cannot open tenants store at %s: %s\n", dir, pv_strerror(rc));
        goto out;
    }
    if ((rc = pv_tenants_find(t, &tn, o.tenant)) != 0) {
        fprintf(stderr, "privid-admin: %s tenant '%s'%s%s\n", rc == PV_ENOTFOUND ? "unknown" : "cannot read",
                o.tenant, rc == PV_ENOTFOUND ? "" : ": ", rc == PV_ENOTFOUND ? "" : pv_strerror(rc));
        code = rc == PV_ENOTFOUND ? 3 : 1;
        goto out;
    }
    if ((rc = pv_demo_plan(&p, &o, now_ms)) != 0) {
        fprintf(stderr, "privid-admin: cannot plan the demo data: %s\n", pv_strerror(rc));
        goto out;
    }
    if ((rc = pv_demo_seed(t, &tn, p, now_ms, err, sizeof(err))) != 0) {
        fprintf(stderr, "privid-admin: demo seed: %s\n", err[0] ? err : pv_strerror(rc));
        code = rc == PV_EEXIST ? 3 : rc == PV_EINVAL ? 2 : 1;
        goto out;
    }
    size_t news = 0;
    for (size_t i = 0; i < p->nvisits; i++)
        news += p->visits[i].is_new;
    char from[40], to[40];
    rfc3339(from, sizeof(from), p->from_ms);
    rfc3339(to, sizeof(to), p->to_ms);
    if (o.json) {
        json_t *j = json_pack("{s:s,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:s,s:s,s:[s,s]}", "tenant", tn.name,
                              "synthetic", 1, "seed", (json_int_t)p->seed, "weeks", (json_int_t)p->weeks,
                              "visitors", (json_int_t)p->visitors, "new_visitors", (json_int_t)news, "visits",
                              (json_int_t)p->nvisits, "purchases", (json_int_t)p->npurchases, "buyers",
                              (json_int_t)p->buyers, "from", from, "to", to, "currency", PV_DEMO_CURRENCY,
                              "locations", locations[0], locations[1]);
        json_object_set_new(j, "amount_minor", json_integer((json_int_t)p->amount_minor));
        rc = j != NULL ? json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : -1;
        json_decref(j);
        fputc('\n', stdout);
        code = rc == 0 ? 0 : 1;
    } else {
        printf("seeded tenant %s with SYNTHETIC demo data (seed %u): %u visitors, %zu visits, %zu purchases "
               "(%u buyers, %lld.%02lld %s) from %.10s to %.10s at %s and %s\n"
               "the gateway started with --pg delivers them to PostgreSQL (or: privid-admin analytics "
               "backfill)\n",
               tn.name, p->seed, p->visitors, p->nvisits, p->npurchases, p->buyers,
               (long long)(p->amount_minor / 100), (long long)(p->amount_minor % 100), PV_DEMO_CURRENCY, from,
               to, locations[0], locations[1]);
        code = 0;
    }
out:
    explicit_bzero(&tn, sizeof(tn));
    pv_demo_plan_free(p);
    pv_tenants_close(t);
    return code;
}
