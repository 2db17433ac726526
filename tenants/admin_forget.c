/* privid-admin visitor erase / retention run (see admin_forget.h). */
#include "tenants/admin_forget.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/error.h"
#include "tenants/tenants.h"
#include "tenants/visitors.h"

#define SHOWN 64 /* at most this much of a bad argument is echoed */

static int takes_value(const char *a)
{
    return strcmp(a, "--data-dir") == 0 || strcmp(a, "--tenant") == 0 || strcmp(a, "--pg") == 0;
}

int pv_forget_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc && argv[i] != NULL; i++) {
        if (takes_value(argv[i])) {
            i++;
            continue;
        }
        if (argv[i][0] == '-')
            continue;
        return strcmp(argv[i], "visitor") == 0 || strcmp(argv[i], "retention") == 0;
    }
    return 0;
}

/* A tenant name that no tenant can have is a usage error, not a lookup. */
static int tenant_ok(const pv_forget_opts_t *o, char *err, size_t errlen)
{
    if (o->tenant == NULL || pv_tenants_name_valid(o->tenant) == 0)
        return 0;
    snprintf(err, errlen, "'%.*s' is not a tenant name (letters, digits, '.', '_', '-')", SHOWN, o->tenant);
    return PV_EINVAL;
}

int pv_forget_parse(pv_forget_opts_t *out, int argc, char **argv, char *err, size_t errlen)
{
    const char *pos[4];
    int npos = 0;
    memset(out, 0, sizeof(*out));
    if (errlen > 0)
        err[0] = '\0';
    for (int i = 0; i < argc && argv[i] != NULL; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            if (npos == 4) {
                snprintf(err, errlen, "unexpected argument '%.*s'", SHOWN, a);
                return PV_EINVAL;
            }
            pos[npos++] = a;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            out->help = 1;
        } else if (strcmp(a, "--json") == 0) {
            out->json = 1;
        } else if (takes_value(a) || strncmp(a, "--data-dir=", 11) == 0 || strncmp(a, "--tenant=", 9) == 0 ||
                   strncmp(a, "--pg=", 5) == 0) {
            const char *eq = strchr(a, '='), *v;
            if (eq != NULL)
                v = eq + 1;
            else if (i + 1 < argc && argv[i + 1] != NULL)
                v = argv[++i];
            else {
                snprintf(err, errlen, "option %.*s needs a value", SHOWN, a);
                return PV_EINVAL;
            }
            if (v[0] == '\0') {
                snprintf(err, errlen, "option %.*s needs a non-empty value", SHOWN, a);
                return PV_EINVAL;
            }
            if (strncmp(a, "--data-dir", 10) == 0)
                out->data_dir = v;
            else if (strncmp(a, "--tenant", 8) == 0)
                out->tenant = v;
            /* --pg is accepted (a global option) and unused: nothing here touches PostgreSQL */
        } else {
            snprintf(err, errlen, "unknown option '%.*s'", SHOWN, a);
            return PV_EINVAL;
        }
    }
    if (npos == 0 || (strcmp(pos[0], "visitor") != 0 && strcmp(pos[0], "retention") != 0)) {
        snprintf(err, errlen, "expected 'visitor erase TENANT VISITOR_ID' or 'retention run'");
        return PV_EINVAL;
    }
    if (strcmp(pos[0], "visitor") == 0) {
        if (npos < 2 || strcmp(pos[1], "erase") != 0) {
            if (out->help && npos < 2)
                return 0;
            snprintf(err, errlen, "unknown visitor command '%.*s' (expected erase)", SHOWN, npos < 2 ? "" : pos[1]);
            return PV_EINVAL;
        }
        out->cmd = PV_FORGET_ERASE;
        if (out->help)
            return 0;
        if (npos != 4 || out->tenant != NULL) {
            snprintf(err, errlen, "usage: visitor erase TENANT VISITOR_ID");
            return PV_EINVAL;
        }
        out->tenant = pos[2];
        out->visitor = pos[3];
        return tenant_ok(out, err, errlen);
    }
    if (npos < 2 || strcmp(pos[1], "run") != 0) {
        if (out->help && npos < 2)
            return 0;
        snprintf(err, errlen, "unknown retention command '%.*s' (expected run)", SHOWN, npos < 2 ? "" : pos[1]);
        return PV_EINVAL;
    }
    out->cmd = PV_FORGET_RETENTION;
    if (npos != 2 && !out->help) {
        snprintf(err, errlen, "unexpected argument '%.*s'", SHOWN, pos[2]);
        return PV_EINVAL;
    }
    return tenant_ok(out, err, errlen);
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: privid-admin visitor erase TENANT VISITOR_ID [--json]\n"
               "       privid-admin retention run [--tenant NAME] [--json]\n\n"
               "visitor erase: the same erasure as DELETE /v1/visitors/{id}: the tenant's mapping goes,\n"
               "an erasure event goes to the analytics outbox (PostgreSQL loses the visitor's rows),\n"
               "and an identity no other tenant maps is queued to leave the gallery.\n"
               "retention run: forgets every visitor (of one tenant, or all) unseen for longer than\n"
               "its tenant's retention period (--retention-days); the gateway also does it hourly.\n\n"
               "The running gateway removes queued identities from the gallery within --forget-ms\n"
               "(1 s by default), or the next one that starts does.\n"
               "Exit status: 0 ok, 1 store failure, 2 usage error, 3 unknown tenant or visitor.\n");
}

int pv_forget_main(int argc, char **argv)
{
    pv_forget_opts_t o;
    pv_tenants_t *t = NULL;
    pv_tenant_t tn;
    char err[512];
    int code = 1, rc;
    memset(&tn, 0, sizeof(tn));
    if (pv_forget_parse(&o, argc - 1, argv + 1, err, sizeof(err)) != 0) {
        fprintf(stderr, "privid-admin: %s\nTry 'privid-admin visitor --help' or 'privid-admin retention --help'.\n",
                err);
        return 2;
    }
    if (o.help) {
        usage(stdout);
        return 0;
    }
    const char *env = getenv("PRIVID_DATA_DIR");
    const char *dir = o.data_dir ? o.data_dir : env && *env ? env : "./var/data";
    if ((rc = pv_tenants_open(&t, dir)) != 0) {
        fprintf(stderr, "privid-admin: cannot open tenants store at %s: %s\n", dir, pv_strerror(rc));
        return 1;
    }
    if (o.tenant != NULL && (rc = pv_tenants_find(t, &tn, o.tenant)) != 0) {
        fprintf(stderr, "privid-admin: %s tenant '%.64s'\n", rc == PV_ENOTFOUND ? "unknown" : "cannot read",
                o.tenant);
        code = rc == PV_ENOTFOUND ? 3 : 1;
        goto out;
    }
    if (o.cmd == PV_FORGET_ERASE) {
        uint64_t gid = 0;
        size_t others = 0;
        rc = pv_visitor_erase(t, &tn, o.visitor, strlen(o.visitor), &gid, &others);
        if (rc == PV_ENOTFOUND) {
            fprintf(stderr, "privid-admin: no such visitor for tenant '%.64s'\n", o.tenant);
            code = 3;
            goto out;
        }
        if (rc != 0) {
            fprintf(stderr, "privid-admin: visitor erase failed: %s\n", pv_strerror(rc));
            goto out;
        }
        if (o.json)
            printf("{\"tenant\":\"%s\",\"visitor\":\"%s\",\"erased\":true,\"identity_queued\":%s}\n", tn.name,
                   o.visitor, others == 0 ? "true" : "false");
        else
            printf("erased visitor %s of tenant %s%s\n", o.visitor, tn.name,
                   others == 0 ? "; its identity is queued to leave the gallery" : "");
    } else {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        size_t expired = 0;
        rc = pv_retention_sweep(t, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, o.tenant ? tn.id : 0,
                                &expired);
        if (rc != 0) {
            fprintf(stderr, "privid-admin: retention run failed after %zu visitors: %s\n", expired,
                    pv_strerror(rc));
            goto out;
        }
        if (o.json)
            printf("{\"visitors_forgotten\":%zu}\n", expired);
        else
            printf("forgot %zu visitors unseen for longer than their tenant's retention period\n", expired);
    }
    code = 0;
out:
    explicit_bzero(&tn, sizeof(tn));
    pv_tenants_close(t);
    return code;
}
