/*
 * Synthetic demo data (privid-admin demo seed): a few weeks of visits and
 * purchases of made-up visitors for one tenant, so the reports and the
 * console's dashboard have something to show before any camera is wired.
 * Everything goes through the project's own write paths: visitors and visit
 * events through pv_visits_record, purchases through pv_events_append, into
 * the tenant's LMDB outbox, which the gateway's analytics writer delivers
 * to PostgreSQL. It is marked synthetic everywhere: locations and cameras
 * are named "synthetic-...", purchases carry attrs {"synthetic":true} and
 * event IDs "synthetic-...", and the identities (gids) have the top bit set,
 * which the gallery never assigns (its gids are 63-bit), so they can never be
 * a real person. A plan is a pure function of the options and the time.
 */
#ifndef PV_TENANTS_DEMO_H
#define PV_TENANTS_DEMO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "tenants/tenants.h"

#define PV_DEMO_WEEKS_DEFAULT 4
#define PV_DEMO_WEEKS_MAX 12
#define PV_DEMO_VISITORS_DEFAULT 200
#define PV_DEMO_VISITORS_MIN 10
#define PV_DEMO_VISITORS_MAX 20000
#define PV_DEMO_SEED_DEFAULT 1
#define PV_DEMO_GID_BIT (UINT64_C(1) << 63) /* never set in a gallery gid */
#define PV_DEMO_CURRENCY "EUR"

/* What `privid-admin demo ...` was asked to do (strings borrowed from argv). */
typedef struct {
    int help;
    int json;
    const char *tenant;   /* --tenant NAME (required for seed) */
    const char *data_dir; /* --data-dir, or NULL */
    uint32_t weeks, visitors, seed;
} pv_demo_opts_t;

/*
 * Parses the words after "demo" (argv[0] is "demo"): "seed" and --tenant,
 * --weeks (1..12), --visitors (10..20000), --seed (0..4294967295),
 * --data-dir, --json, --help; a global option may come anywhere. Returns 0,
 * or PV_EINVAL with a one-line message in err naming the culprit.
 */
int pv_demo_parse(pv_demo_opts_t *out, int argc, char **argv, char *err, size_t errlen);

/* Whether argv is a demo command: its first word that is neither an option
 * nor an option's value is "demo". */
int pv_demo_wanted(int argc, char **argv);

/* The help text of the demo command. */
void pv_demo_usage(FILE *f);

typedef struct {
    uint32_t visitor; /* index, 0..visitors-1 */
    int64_t ts_ms;
    uint8_t location; /* index into pv_demo_location() */
    uint8_t is_new;   /* the visitor's first visit */
    float distance;   /* a plausible match distance for a returning visit */
} pv_demo_visit_t;

typedef struct {
    uint32_t visitor;
    int64_t ts_ms;
    uint8_t location;
    int64_t amount_minor; /* PV_DEMO_CURRENCY */
} pv_demo_purchase_t;

/* A generated history, in time order. Counts are what seeding stores. */
typedef struct {
    pv_demo_visit_t *visits;
    size_t nvisits;
    pv_demo_purchase_t *purchases;
    size_t npurchases;
    uint32_t visitors; /* each has at least one visit */
    uint32_t buyers;   /* distinct visitors with a purchase */
    int64_t amount_minor;
    int64_t from_ms, to_ms; /* [from, to): whole UTC days, to = today's midnight */
    uint32_t seed, weeks;
} pv_demo_plan_t;

/* "synthetic-downtown", ...; NULL past the last. */
const char *pv_demo_location(unsigned i);

/*
 * Generates the history of o->visitors visitors over the o->weeks weeks of
 * whole UTC days before now_ms: first visits spread over the period, about
 * 45% of visitors regulars who come back one to three times a week (more on
 * Saturdays and Sundays), the others once; store hours with lunch and
 * evening peaks; a home location for each visitor; about a fifth of visits
 * with a purchase of a few to a hundred euros. The same options and day
 * give the same plan. The caller owns *out (pv_demo_plan_free).
 * Errors: PV_EINVAL (options out of range), PV_ENOMEM.
 */
int pv_demo_plan(pv_demo_plan_t **out, const pv_demo_opts_t *o, int64_t now_ms);
void pv_demo_plan_free(pv_demo_plan_t *p);

/* The synthetic identity of visitor i of tenant tenant_id (PV_DEMO_GID_BIT set). */
uint64_t pv_demo_gid(uint64_t tenant_id, uint32_t i);

/*
 * Stores plan p for tenant tn: the visits (pv_visits_record, 64 per
 * transaction) then the purchases (pv_events_append, 500 per transaction).
 * Refuses with PV_EEXIST, writing nothing, when any of the plan's synthetic
 * visitors already exists for the tenant (a second run would double the
 * data); PV_EINVAL when the period is longer than the tenant's retention.
 * Other errors are the store's; a failure part way leaves what was
 * committed (and a re-run then refuses: say so to the user).
 */
int pv_demo_seed(pv_tenants_t *t, const pv_tenant_t *tn, const pv_demo_plan_t *p, int64_t now_ms, char *err,
                 size_t errlen);

/* `privid-admin demo ...` (argv as main's): parses, seeds and prints; returns
 * the exit status (0 ok, 1 store failure, 2 usage, 3 unknown tenant or
 * already seeded). */
int pv_demo_main(int argc, char **argv);

#endif
