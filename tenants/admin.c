/*
 * privid-admin: manages tenants and API keys in the local LMDB store and the
 * PostgreSQL schema. The store is the truth: a tenant change is committed
 * there first, then mirrored to PostgreSQL when a DSN is configured; a failed
 * mirror leaves the change in place and exits 4. Secrets are never printed,
 * except a newly created API key, once.
 */
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/error.h"
#include "tenants/admin_analytics.h"
#include "tenants/admin_args.h"
#include "models/models.h"
#include "tenants/admin_faces.h"
#include "tenants/admin_pg.h"
#include "tenants/admin_forget.h"
#include "tenants/demo.h"
#include "tenants/tenants.h"

#ifndef PV_MIGRATIONS_DIR
#define PV_MIGRATIONS_DIR "migrations"
#endif

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_NOTFOUND = 3, EXIT_MIRROR = 4 };

#define ERR_MAX 1024
#define DEFAULT_DATA_DIR "./var/data"

typedef struct {
    pv_admin_args_t args;
    const char *data_dir;
    const char *pg; /* NULL: no mirroring */
    pv_tenants_t *store;
} admin_t;

static void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void errorf(const char *fmt, ...)
{
    va_list ap;
    fputs("privid-admin: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The exit status for a store error: 3 for not found / exists, 2 for a rejected value, else 1. */
static int exit_for(int rc)
{
    if (rc == PV_ENOTFOUND || rc == PV_EEXIST)
        return EXIT_NOTFOUND;
    if (rc == PV_EINVAL)
        return EXIT_USAGE;
    return EXIT_FAIL;
}

static const char *env_or(const char *flag, const char *env, const char *def)
{
    const char *v = getenv(env);
    if (flag != NULL)
        return flag;
    return v != NULL && *v != '\0' ? v : def;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* --migrations, $PRIVID_MIGRATIONS, <exe>/../../migrations (build/bin), then the source tree's. */
static const char *migrations_dir(const admin_t *ad, char *buf, size_t size)
{
    const char *v = env_or(ad->args.migrations, "PRIVID_MIGRATIONS", NULL);
    char exe[PATH_MAX];
    ssize_t n;

    if (v != NULL)
        return v;
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        if ((size_t)snprintf(buf, size, "%s/../../migrations", dirname(exe)) < size && is_dir(buf))
            return buf;
    }
    return PV_MIGRATIONS_DIR;
}

static int open_store(admin_t *ad)
{
    int rc = pv_tenants_open(&ad->store, ad->data_dir);
    if (rc != 0)
        errorf("cannot open tenants store at %s: %s", ad->data_dir, pv_strerror(rc));
    return rc;
}

static void format_time(char *buf, size_t size, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "%" PRId64, t);
}

static int print_json(json_t *j)
{
    int rc = j == NULL ? -1 : json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (rc != 0) {
        errorf("cannot write JSON output");
        return EXIT_FAIL;
    }
    fputc('\n', stdout);
    return EXIT_OK;
}

/* Never includes the pseudonym secret. */
static json_t *tenant_json(const pv_tenant_t *tn)
{
    char when[32];
    format_time(when, sizeof(when), tn->created_at);
    return json_pack("{s:I, s:s, s:s, s:i, s:s, s:{s:I, s:I, s:I}}", "id", (json_int_t)tn->id, "name", tn->name,
                     "mode", pv_tenant_mode_name(tn->mode), "retention_days", (int)tn->retention_days, "created_at",
                     when, "limits", "rate_per_min", (json_int_t)tn->rate_per_min, "burst", (json_int_t)tn->burst,
                     "monthly_quota", (json_int_t)tn->monthly_quota);
}

static json_t *scopes_json(uint32_t scopes)
{
    json_t *arr = json_array();
    for (unsigned i = 0; arr != NULL && (1u << i) <= PV_SCOPE_ALL; i++) {
        char one[PV_SCOPES_TEXT_MAX];
        if (!(scopes & (1u << i)))
            continue;
        pv_scopes_format(one, sizeof(one), 1u << i);
        json_array_append_new(arr, json_string(one));
    }
    return arr;
}

/* "active", "revoked", "expired" or "expiring" (an expiry in the future). */
static const char *key_status(const pv_key_info_t *k)
{
    if (k->revoked)
        return "revoked";
    if (k->expires_at == 0)
        return "active";
    return k->expires_at <= (int64_t)time(NULL) ? "expired" : "expiring";
}

static json_t *key_json(const pv_key_info_t *k)
{
    char when[32], until[32];
    format_time(when, sizeof(when), k->created_at);
    format_time(until, sizeof(until), k->expires_at);
    return json_pack("{s:s, s:I, s:o, s:b, s:s, s:s, s:s?}", "id", k->id, "tenant_id",
                     (json_int_t)k->tenant_id, "scopes", scopes_json(k->scopes), "revoked", k->revoked,
                     "status", key_status(k), "created_at", when, "expires_at",
                     k->expires_at != 0 ? until : NULL);
}

/* Mirrors one tenant (created or deleted); prints the warning and returns EXIT_MIRROR on failure. */
static int mirror_one(const admin_t *ad, const pv_tenant_t *tn, int deleted)
{
    char err[ERR_MAX];
    PGconn *c = NULL;
    int rc;

    if (ad->pg == NULL)
        return EXIT_OK;
    rc = pv_admin_pg_connect(&c, ad->pg, err, sizeof(err));
    if (rc == 0)
        rc = deleted ? pv_admin_pg_mark_deleted(c, tn, err, sizeof(err))
                     : pv_admin_pg_mirror(c, tn, 1, 0, err, sizeof(err));
    PQfinish(c);
    if (rc == 0)
        return EXIT_OK;
    errorf("warning: tenant '%s' was %s in the local store but not mirrored to PostgreSQL (%s); "
           "run 'privid-admin migrate' to re-sync",
           tn->name, deleted ? "deleted" : "created", err);
    return EXIT_MIRROR;
}

/* ---- commands ---- */

typedef struct {
    json_t *list; /* NULL for text output */
} applied_ctx_t;

static void on_applied(void *ctx, const char *file)
{
    applied_ctx_t *a = ctx;
    if (a->list != NULL)
        json_array_append_new(a->list, json_string(file));
    else
        printf("applied %s\n", file);
}

static int cmd_migrate(admin_t *ad)
{
    char err[ERR_MAX], dirbuf[PATH_MAX + 32], mdb[PATH_MAX];
    applied_ctx_t actx = {NULL};
    pv_tenant_t *tenants = NULL;
    size_t applied = 0, n = 0;
    PGconn *c = NULL;
    int rc, code = EXIT_FAIL, have_store;
    struct stat st;

    if (ad->pg == NULL) {
        errorf("migrate needs a PostgreSQL DSN (--pg or PRIVID_PG)");
        return EXIT_USAGE;
    }
    const char *dir = migrations_dir(ad, dirbuf, sizeof(dirbuf));
    if (ad->args.json && (actx.list = json_array()) == NULL)
        goto out;
    if ((rc = pv_admin_pg_connect(&c, ad->pg, err, sizeof(err))) != 0) {
        errorf("%s", err);
        goto out;
    }
    if ((rc = pv_admin_migrate(c, dir, on_applied, &actx, &applied, err, sizeof(err))) != 0) {
        errorf("%s", err);
        goto out;
    }
    if (applied == 0 && !ad->args.json)
        printf("schema up to date\n");

    /* Mirror only an existing store: a migrate run where the data directory is absent
       (another host, a fresh container) must not mark every mirrored tenant deleted. */
    snprintf(mdb, sizeof(mdb), "%s/data.mdb", ad->data_dir);
    have_store = stat(mdb, &st) == 0;
    if (have_store) {
        if ((rc = open_store(ad)) != 0)
            goto out;
        if ((rc = pv_tenants_list(ad->store, &tenants, &n)) != 0) {
            errorf("cannot list tenants: %s", pv_strerror(rc));
            goto out;
        }
        if ((rc = pv_admin_pg_mirror(c, tenants, n, 1, err, sizeof(err))) != 0) {
            errorf("schema migrated, but %s", err);
            code = EXIT_MIRROR;
            goto out;
        }
    }
    if (ad->args.json) {
        code = print_json(json_pack("{s:O, s:I, s:b}", "applied", actx.list, "mirrored", (json_int_t)n,
                                    "store", have_store));
        goto out;
    }
    if (have_store)
        printf("mirrored %zu tenant%s to PostgreSQL\n", n, n == 1 ? "" : "s");
    else
        printf("no tenants store at %s: nothing mirrored\n", ad->data_dir);
    code = EXIT_OK;
out:
    if (tenants != NULL) {
        OPENSSL_cleanse(tenants, n * sizeof(*tenants));
        free(tenants);
    }
    json_decref(actx.list);
    PQfinish(c);
    return code;
}

static int cmd_tenant_create(admin_t *ad)
{
    pv_tenant_t tn;
    int rc, code;

    if (open_store(ad) != 0)
        return EXIT_FAIL;
    rc = pv_tenants_create(ad->store, &tn, ad->args.arg, ad->args.mode, ad->args.retention_days);
    if (rc == PV_EEXIST) {
        errorf("tenant '%s' already exists", ad->args.arg);
        return EXIT_NOTFOUND;
    }
    if (rc != 0) {
        errorf("cannot create tenant '%s': %s", ad->args.arg, pv_strerror(rc));
        return exit_for(rc);
    }
    if (ad->args.json)
        code = print_json(tenant_json(&tn));
    else {
        printf("created tenant %s (id %" PRIu64 ", mode %s, retention %" PRIu32 " days)\n", tn.name, tn.id,
               pv_tenant_mode_name(tn.mode), tn.retention_days);
        code = EXIT_OK;
    }
    fflush(stdout);
    rc = mirror_one(ad, &tn, 0);
    OPENSSL_cleanse(&tn, sizeof(tn));
    return rc != EXIT_OK ? rc : code;
}

static int cmd_tenant_list(admin_t *ad)
{
    pv_tenant_t *arr = NULL;
    size_t n = 0;
    int rc, code = EXIT_FAIL;

    if (open_store(ad) != 0)
        return EXIT_FAIL;
    if ((rc = pv_tenants_list(ad->store, &arr, &n)) != 0) {
        errorf("cannot list tenants: %s", pv_strerror(rc));
        return EXIT_FAIL;
    }
    if (ad->args.json) {
        json_t *j = json_array();
        for (size_t i = 0; j != NULL && i < n; i++)
            json_array_append_new(j, tenant_json(&arr[i]));
        code = print_json(j);
    } else {
        printf("%-6s %-24s %-9s %-9s %s\n", "ID", "NAME", "MODE", "RETENTION", "CREATED");
        for (size_t i = 0; i < n; i++) {
            char when[32];
            format_time(when, sizeof(when), arr[i].created_at);
            printf("%-6" PRIu64 " %-24s %-9s %-9" PRIu32 " %s\n", arr[i].id, arr[i].name,
                   pv_tenant_mode_name(arr[i].mode), arr[i].retention_days, when);
        }
        code = EXIT_OK;
    }
    if (arr != NULL) {
        OPENSSL_cleanse(arr, n * sizeof(*arr));
        free(arr);
    }
    return code;
}

/* Finds args.arg as a tenant, printing the error. */
static int find_tenant(admin_t *ad, pv_tenant_t *tn)
{
    int rc = pv_tenants_find(ad->store, tn, ad->args.arg);
    if (rc == PV_ENOTFOUND)
        errorf("unknown tenant '%s'", ad->args.arg);
    else if (rc != 0)
        errorf("cannot read tenant '%s': %s", ad->args.arg, pv_strerror(rc));
    return rc;
}

static int cmd_tenant_show(admin_t *ad)
{
    pv_tenant_t tn;
    char when[32];
    int rc;

    if (open_store(ad) != 0)
        return EXIT_FAIL;
    if ((rc = find_tenant(ad, &tn)) != 0)
        return exit_for(rc);
    OPENSSL_cleanse(tn.secret, sizeof(tn.secret));
    if (ad->args.json)
        return print_json(tenant_json(&tn));
    format_time(when, sizeof(when), tn.created_at);
    printf("id:             %" PRIu64 "\nname:           %s\nmode:           %s\nretention_days: %" PRIu32
           "\ncreated_at:     %s\nrate_per_min:   %" PRIu32 "%s\nburst:          %" PRIu32
           "%s\nmonthly_quota:  %" PRIu64 "%s\n",
           tn.id, tn.name, pv_tenant_mode_name(tn.mode), tn.retention_days, when, tn.rate_per_min,
           tn.rate_per_min ? "" : " (unlimited)", tn.burst, tn.burst ? "" : " (automatic)", tn.monthly_quota,
           tn.monthly_quota ? "" : " (unlimited)");
    return EXIT_OK;
}

/* The reports' k lives in PostgreSQL (tenant_report_settings): set it first,
 * so a failure there changes nothing in the store either. */
static int set_k_anon(const admin_t *ad, const pv_tenant_t *tn)
{
    char err[ERR_MAX];
    PGconn *c = NULL;
    int rc = pv_admin_pg_connect(&c, ad->pg, err, sizeof(err));
    if (rc == 0)
        rc = pv_admin_pg_set_k(c, tn->id, ad->args.k_anon, err, sizeof(err));
    PQfinish(c);
    if (rc != 0)
        errorf("cannot set --k-anon of tenant '%s': %s", tn->name, err);
    return rc;
}

static int cmd_tenant_update(admin_t *ad)
{
    const pv_tenant_update_t *u = &ad->args.update;
    pv_tenant_t tn;
    int rc;

    if (ad->args.k_anon != 0 && ad->pg == NULL) {
        errorf("--k-anon is kept in PostgreSQL: give --pg DSN (or PRIVID_PG)");
        return EXIT_USAGE;
    }
    if (open_store(ad) != 0)
        return EXIT_FAIL;
    if ((rc = pv_tenants_find(ad->store, &tn, ad->args.arg)) != 0) {
        errorf("cannot update tenant '%s': %s", ad->args.arg, rc == PV_ENOTFOUND ? "no such tenant" : pv_strerror(rc));
        return exit_for(rc);
    }
    if (ad->args.k_anon != 0 && set_k_anon(ad, &tn) != 0) {
        OPENSSL_cleanse(tn.secret, sizeof(tn.secret));
        return EXIT_FAIL;
    }
    if ((u->set_retention || u->set_rate || u->set_burst || u->set_quota) &&
        (rc = pv_tenants_update(ad->store, &tn, ad->args.arg, u)) != 0) {
        errorf("cannot update tenant '%s': %s", ad->args.arg, rc == PV_ENOTFOUND ? "no such tenant" : pv_strerror(rc));
        return exit_for(rc);
    }
    OPENSSL_cleanse(tn.secret, sizeof(tn.secret));
    if (ad->args.json) {
        json_t *o = tenant_json(&tn);
        if (o != NULL && ad->args.k_anon != 0)
            json_object_set_new(o, "k_anon", json_integer(ad->args.k_anon));
        return print_json(o);
    }
    printf("updated tenant %s: retention %" PRIu32 " days, rate %" PRIu32 "/min per key, burst %" PRIu32
           ", quota %" PRIu64 " images/month (0 = unlimited/automatic)",
           tn.name, tn.retention_days, tn.rate_per_min, tn.burst, tn.monthly_quota);
    if (ad->args.k_anon != 0)
        printf(", reports k-anonymity k %d", ad->args.k_anon);
    printf("\n");
    return EXIT_OK;
}

static int cmd_tenant_delete(admin_t *ad)
{
    pv_tenant_t tn;
    int rc, code;

    if (open_store(ad) != 0)
        return EXIT_FAIL;
    if ((rc = find_tenant(ad, &tn)) != 0)
        return exit_for(rc);
    OPENSSL_cleanse(tn.secret, sizeof(tn.secret));
    rc = pv_tenants_delete(ad->store, ad->args.arg);
    if (rc == PV_ENOTFOUND) {
        errorf("unknown tenant '%s'", ad->args.arg);
        return EXIT_NOTFOUND;
    }
    if (rc != 0) {
        errorf("cannot delete tenant '%s': %s", ad->args.arg, pv_strerror(rc));
        return exit_for(rc);
    }
    if (ad->args.json)
        code = print_json(json_pack("{s:o}", "deleted", tenant_json(&tn)));
    else {
        printf("deleted tenant %s (id %" PRIu64 ") and its keys\n", tn.name, tn.id);
        code = EXIT_OK;
    }
    fflush(stdout);
    rc = mirror_one(ad, &tn, 1);
    return rc != EXIT_OK ? rc : code;
}

static int cmd_key_create(admin_t *ad)
{
    char text[PV_KEY_TEXT_LEN + 1], scopes[PV_SCOPES_TEXT_MAX];
    pv_key_info_t ki;
    pv_tenant_t tn;
    int rc, code;

    if (open_store(ad) != 0)
        return EXIT_FAIL;
    if ((rc = find_tenant(ad, &tn)) != 0)
        return exit_for(rc);
    OPENSSL_cleanse(tn.secret, sizeof(tn.secret));
    if ((rc = pv_keys_create(ad->store, &ki, text, tn.id, ad->args.scopes)) != 0) {
        errorf("cannot create a key for tenant '%s': %s", tn.name, pv_strerror(rc));
        return exit_for(rc);
    }
    pv_scopes_format(scopes, sizeof(scopes), ki.scopes);
    if (ad->args.json) {
        char when[32];
        format_time(when, sizeof(when), ki.created_at);
        code = print_json(json_pack("{s:s, s:s, s:s, s:I, s:o, s:s}", "key", text, "id", ki.id, "tenant",
                                    tn.name, "tenant_id", (json_int_t)tn.id, "scopes", scopes_json(ki.scopes),
                                    "created_at", when));
    } else {
        printf("%s\n", text);
        fflush(stdout);
        fprintf(stderr, "created key %s for tenant %s (scopes %s); it is shown only this once\n", ki.id,
                tn.name, scopes);
        code = EXIT_OK;
    }
    OPENSSL_cleanse(text, sizeof(text));
    return code;
}

static int cmd_key_list(admin_t *ad)
{
    pv_key_info_t *arr = NULL;
    pv_tenant_t tn;
    size_t n = 0;
    int rc, code;

    if (open_store(ad) != 0)
        return EXIT_FAIL;
    if ((rc = find_tenant(ad, &tn)) != 0)
        return exit_for(rc);
    OPENSSL_cleanse(tn.secret, sizeof(tn.secret));
    if ((rc = pv_keys_list(ad->store, &arr, &n, tn.id)) != 0) {
        errorf("cannot list keys of tenant '%s': %s", tn.name, pv_strerror(rc));
        return exit_for(rc);
    }
    if (ad->args.json) {
        json_t *j = json_array();
        for (size_t i = 0; j != NULL && i < n; i++)
            json_array_append_new(j, key_json(&arr[i]));
        code = print_json(j);
    } else {
        printf("%-16s %-32s %-8s %-20s %s\n", "KEY ID", "SCOPES", "STATUS", "CREATED", "EXPIRES");
        for (size_t i = 0; i < n; i++) {
            char when[32], until[32] = "-", scopes[PV_SCOPES_TEXT_MAX];
            format_time(when, sizeof(when), arr[i].created_at);
            if (arr[i].expires_at != 0)
                format_time(until, sizeof(until), arr[i].expires_at);
            pv_scopes_format(scopes, sizeof(scopes), arr[i].scopes);
            printf("%-16s %-32s %-8s %-20s %s\n", arr[i].id, scopes, key_status(&arr[i]), when, until);
        }
        code = EXIT_OK;
    }
    free(arr);
    return code;
}

static int cmd_key_revoke(admin_t *ad)
{
    int rc;

    if (open_store(ad) != 0)
        return EXIT_FAIL;
    rc = pv_keys_revoke(ad->store, ad->args.arg);
    if (rc == PV_ENOTFOUND) {
        errorf("unknown key '%s'", ad->args.arg);
        return EXIT_NOTFOUND;
    }
    if (rc != 0) {
        errorf("cannot revoke key '%s': %s", ad->args.arg, pv_strerror(rc));
        return exit_for(rc);
    }
    if (ad->args.json)
        return print_json(json_pack("{s:s}", "revoked", ad->args.arg));
    printf("revoked key %s\n", ad->args.arg);
    return EXIT_OK;
}

static int cmd_key_rotate(admin_t *ad)
{
    char text[PV_KEY_TEXT_LEN + 1], scopes[PV_SCOPES_TEXT_MAX], until[32];
    pv_key_info_t nk, old;
    int rc, code;

    if (open_store(ad) != 0)
        return EXIT_FAIL;
    rc = pv_keys_rotate(ad->store, &nk, text, &old, ad->args.arg, ad->args.grace_s);
    if (rc == PV_ENOTFOUND) {
        errorf("unknown key '%s'", ad->args.arg);
        return EXIT_NOTFOUND;
    }
    if (rc == PV_EREVOKED || rc == PV_EEXPIRED) {
        errorf("key '%s' is %s and cannot be rotated; create a new key instead", ad->args.arg,
               rc == PV_EREVOKED ? "revoked" : "expired");
        return EXIT_FAIL;
    }
    if (rc != 0) {
        errorf("cannot rotate key '%s': %s", ad->args.arg, pv_strerror(rc));
        return exit_for(rc);
    }
    format_time(until, sizeof(until), old.expires_at);
    if (ad->args.json) {
        code = print_json(
            json_pack("{s:s, s:o, s:o}", "key", text, "new", key_json(&nk), "old", key_json(&old)));
    } else {
        pv_scopes_format(scopes, sizeof(scopes), nk.scopes);
        printf("%s\n", text);
        fflush(stdout);
        fprintf(stderr,
                "created key %s (scopes %s) to replace %s, which expires at %s; the new key is shown only "
                "this once\n",
                nk.id, scopes, old.id, until);
        code = EXIT_OK;
    }
    OPENSSL_cleanse(text, sizeof(text));
    return code;
}

int main(int argc, char **argv)
{
    admin_t ad;
    char err[ERR_MAX];
    int code;

    memset(&ad, 0, sizeof(ad));
    if (pv_demo_wanted(argc, argv)) /* demo seed: its own parser (tenants/demo.c) */
        return pv_demo_main(argc, argv);
    if (pv_forget_wanted(argc, argv)) /* visitor erase, retention run (tenants/admin_forget.c) */
        return pv_forget_main(argc, argv);
    if (pv_admin_parse(&ad.args, argc, argv, err, sizeof(err)) != 0) {
        errorf("%s", err);
        fprintf(stderr, "Try 'privid-admin --help'.\n");
        return EXIT_USAGE;
    }
    if (ad.args.cmd == PV_ADMIN_FACES)
        pv_models_blas_init(argv); /* may re-execute with the right OpenBLAS kernels */
    if (ad.args.help) {
        pv_admin_usage(stdout, &ad.args);
        return EXIT_OK;
    }
    ad.data_dir = env_or(ad.args.data_dir, "PRIVID_DATA_DIR", DEFAULT_DATA_DIR);
    ad.pg = env_or(ad.args.pg, "PRIVID_PG", NULL);

    switch (ad.args.cmd) {
    case PV_ADMIN_MIGRATE:
        code = cmd_migrate(&ad);
        break;
    case PV_ADMIN_TENANT_CREATE:
        code = cmd_tenant_create(&ad);
        break;
    case PV_ADMIN_TENANT_LIST:
        code = cmd_tenant_list(&ad);
        break;
    case PV_ADMIN_TENANT_SHOW:
        code = cmd_tenant_show(&ad);
        break;
    case PV_ADMIN_TENANT_DELETE:
        code = cmd_tenant_delete(&ad);
        break;
    case PV_ADMIN_TENANT_UPDATE:
        code = cmd_tenant_update(&ad);
        break;
    case PV_ADMIN_KEY_CREATE:
        code = cmd_key_create(&ad);
        break;
    case PV_ADMIN_KEY_LIST:
        code = cmd_key_list(&ad);
        break;
    case PV_ADMIN_KEY_REVOKE:
        code = cmd_key_revoke(&ad);
        break;
    case PV_ADMIN_KEY_ROTATE:
        code = cmd_key_rotate(&ad);
        break;
    case PV_ADMIN_FACES:
        code = pv_admin_faces(&ad.args);
        break;
    case PV_ADMIN_ANALYTICS_STATUS:
    case PV_ADMIN_ANALYTICS_BACKFILL:
    case PV_ADMIN_USAGE:
        if (open_store(&ad) != 0) {
            code = EXIT_FAIL;
            break;
        }
        code = ad.args.cmd == PV_ADMIN_USAGE ? pv_admin_tenant_usage(&ad.args, ad.store)
               : ad.args.cmd == PV_ADMIN_ANALYTICS_STATUS
                   ? pv_admin_analytics_status(&ad.args, ad.store, ad.pg)
                   : pv_admin_analytics_backfill(&ad.args, ad.store, ad.pg);
        break;
    default:
        errorf("missing command");
        code = EXIT_USAGE;
        break;
    }
    pv_tenants_close(ad.store);
    if (fflush(stdout) != 0 && code == EXIT_OK) {
        errorf("cannot write output");
        code = EXIT_FAIL;
    }
    return code;
}
