/*
 * Migrations and the tenants mirror for privid-admin (see admin_pg.h).
 * Invariant: a migration file and its schema_migrations row commit together
 * or not at all, so a failed run can simply be repeated. Migration files must
 * not contain their own BEGIN/COMMIT.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "tenants/admin_pg.h"

#define MIGRATE_LOCK_KEY "7310309108451245" /* fixed pg_advisory_lock key for "privid migrate" */
#define MIG_MAX 10000                       /* NNNN gives at most this many versions */
#define MIG_NAME_MAX 255
#define MIG_FILE_MAX ((size_t)4 << 20) /* refuse migration files over 4 MiB */
#define PATH_MAX_LEN 4096

typedef struct {
    int version;
    char name[MIG_NAME_MAX + 1];
} migration_t;

/* Copies libpq's message without its trailing newline. */
static void pg_message(char *err, size_t errlen, const char *what, const char *msg)
{
    size_t n = msg == NULL ? 0 : strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    snprintf(err, errlen, "%s: %.*s", what, (int)(n > 512 ? 512 : n), msg == NULL ? "" : msg);
}

/* Runs a statement (plain or with text parameters); 0 when it succeeded. *res is kept when res != NULL. */
static int run(PGconn *c, const char *what, const char *sql, int nparams, const char *const *params,
               PGresult **res, char *err, size_t errlen)
{
    PGresult *r = nparams > 0 ? PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0) : PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        pg_message(err, errlen, what, r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(c));
        PQclear(r);
        return PV_EDB;
    }
    if (res != NULL)
        *res = r;
    else
        PQclear(r);
    return 0;
}

static void rollback(PGconn *c)
{
    PQclear(PQexec(c, "ROLLBACK"));
}

/* libpq prints NOTICEs ("relation already exists, skipping") to stderr by default; the CLI reports itself. */
static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int pv_admin_pg_connect(PGconn **out, const char *dsn, char *err, size_t errlen)
{
    /* later keywords win, so a connect_timeout inside the DSN overrides ours */
    const char *keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *vals[] = {"10", "privid-admin", dsn, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);

    *out = NULL;
    if (c == NULL) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: out of memory");
        return PV_ENOMEM;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        pg_message(err, errlen, "cannot connect to PostgreSQL", PQerrorMessage(c));
        PQfinish(c);
        return PV_EDB;
    }
    PQsetNoticeProcessor(c, quiet_notices, NULL);
    *out = c;
    return 0;
}

/* ---- migrations ---- */

/* NNNN_name.sql with a non-empty name; returns the version or -1. */
static int migration_version(const char *name)
{
    size_t n = strlen(name);
    if (n < 10 || n > MIG_NAME_MAX || name[4] != '_' || strcmp(name + n - 4, ".sql") != 0)
        return -1;
    for (int i = 0; i < 4; i++)
        if (name[i] < '0' || name[i] > '9')
            return -1;
    return (name[0] - '0') * 1000 + (name[1] - '0') * 100 + (name[2] - '0') * 10 + (name[3] - '0');
}

static int cmp_migration(const void *a, const void *b)
{
    return ((const migration_t *)a)->version - ((const migration_t *)b)->version;
}

static int list_migrations(migration_t **out, size_t *count, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    migration_t *arr = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;

    *out = NULL;
    *count = 0;
    if (d == NULL) {
        rc = -errno;
        snprintf(err, errlen, "cannot open migrations folder %s: %s", dir, strerror(errno));
        goto out;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 4 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        int v = migration_version(e->d_name);
        if (v < 0) {
            snprintf(err, errlen, "unexpected file %s/%s (migrations are named NNNN_name.sql)", dir,
                     e->d_name);
            rc = PV_EINVAL;
            goto out;
        }
        if (n == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            migration_t *na = ncap > MIG_MAX ? NULL : realloc(arr, ncap * sizeof(*arr));
            if (na == NULL) {
                snprintf(err, errlen, "too many migration files in %s", dir);
                rc = ncap > MIG_MAX ? PV_ELIMIT : PV_ENOMEM;
                goto out;
            }
            arr = na;
            cap = ncap;
        }
        arr[n].version = v;
        memcpy(arr[n].name, e->d_name, len + 1);
        n++;
    }
    if (n > 1)
        qsort(arr, n, sizeof(*arr), cmp_migration);
    for (size_t i = 1; i < n; i++) {
        if (arr[i].version == arr[i - 1].version) {
            snprintf(err, errlen, "two migrations with version %04d: %s and %s", arr[i].version,
                     arr[i - 1].name, arr[i].name);
            rc = PV_EINVAL;
            goto out;
        }
    }
    *out = arr;
    *count = n;
    arr = NULL;
out:
    if (d != NULL)
        closedir(d);
    free(arr);
    return rc;
}

/* Reads a whole migration file as a NUL-terminated string the caller frees. */
static int read_sql(char **out, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;
    int rc = 0;

    *out = NULL;
    if (f == NULL) {
        rc = -errno;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if ((buf = malloc(MIG_FILE_MAX + 1)) == NULL) {
        rc = PV_ENOMEM;
        snprintf(err, errlen, "cannot read %s: out of memory", path);
        goto out;
    }
    n = fread(buf, 1, MIG_FILE_MAX + 1, f);
    if (ferror(f)) {
        rc = PV_EIO;
        snprintf(err, errlen, "cannot read %s", path);
        goto out;
    }
    if (n > MIG_FILE_MAX) {
        rc = PV_ELIMIT;
        snprintf(err, errlen, "%s is larger than %zu bytes", path, MIG_FILE_MAX);
        goto out;
    }
    if (memchr(buf, '\0', n) != NULL) {
        rc = PV_EINVAL;
        snprintf(err, errlen, "%s contains a NUL byte", path);
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
out:
    if (f != NULL)
        fclose(f);
    free(buf);
    return rc;
}

static int apply_one(PGconn *c, const char *dir, const migration_t *m, char *err, size_t errlen)
{
    char path[PATH_MAX_LEN], version[16], what[MIG_NAME_MAX + 32];
    char *sql = NULL;
    int rc, in_tx = 0;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, m->name) >= sizeof(path)) {
        snprintf(err, errlen, "path too long: %s/%s", dir, m->name);
        rc = PV_EINVAL;
        goto out;
    }
    if ((rc = read_sql(&sql, path, err, errlen)) != 0)
        goto out;
    snprintf(version, sizeof(version), "%d", m->version);
    snprintf(what, sizeof(what), "migration %s", m->name);
    if ((rc = run(c, what, "BEGIN", 0, NULL, NULL, err, errlen)) != 0)
        goto out;
    in_tx = 1;
    if ((rc = run(c, what, sql, 0, NULL, NULL, err, errlen)) != 0)
        goto out;
    const char *params[] = {version, m->name};
    if ((rc = run(c, what,
                  "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1::int, $2, now())", 2,
                  params, NULL, err, errlen)) != 0)
        goto out;
    if ((rc = run(c, what, "COMMIT", 0, NULL, NULL, err, errlen)) != 0)
        goto out;
    in_tx = 0;
out:
    if (in_tx)
        rollback(c);
    free(sql);
    return rc;
}

int pv_admin_migrate(PGconn *c, const char *dir, pv_admin_applied_cb cb, void *ctx, size_t *applied,
                     char *err, size_t errlen)
{
    migration_t *migs = NULL;
    PGresult *res = NULL;
    char *done = NULL; /* done[v] != 0 when version v is recorded */
    size_t n = 0;
    int rc, locked = 0;

    *applied = 0;
    if ((rc = list_migrations(&migs, &n, dir, err, errlen)) != 0)
        goto out;
    if ((done = calloc(MIG_MAX, 1)) == NULL) {
        rc = PV_ENOMEM;
        goto out;
    }
    /* Session lock: a second concurrent run waits here, then finds everything applied. */
    if ((rc = run(c, "advisory lock", "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL, err,
                  errlen)) != 0)
        goto out;
    locked = 1;
    if ((rc =
             run(c, "schema_migrations",
                 "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
                 "applied_at timestamptz NOT NULL DEFAULT now())",
                 0, NULL, NULL, err, errlen)) != 0)
        goto out;
    if ((rc = run(c, "schema_migrations", "SELECT version FROM schema_migrations", 0, NULL, &res, err,
                  errlen)) != 0)
        goto out;
    for (int i = 0; i < PQntuples(res); i++) {
        long v = strtol(PQgetvalue(res, i, 0), NULL, 10);
        if (v >= 0 && v < MIG_MAX)
            done[v] = 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (done[migs[i].version])
            continue;
        if ((rc = apply_one(c, dir, &migs[i], err, errlen)) != 0)
            goto out;
        (*applied)++;
        if (cb != NULL)
            cb(ctx, migs[i].name);
    }
out:
    if (locked)
        PQclear(PQexec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
    PQclear(res);
    free(done);
    free(migs);
    return rc;
}

/* ---- tenants mirror ---- */

static const char sql_free_name[] =
    "UPDATE tenants SET name = name || '#' || tenant_id::text, deleted_at = coalesce(deleted_at, now()) "
    "WHERE name = $2 AND tenant_id <> $1::bigint";

static const char sql_upsert[] =
    "INSERT INTO tenants (tenant_id, name, mode, retention_days, created_at, deleted_at) "
    "VALUES ($1::bigint, $2, $3, $4::int, to_timestamp($5::double precision), NULL) "
    "ON CONFLICT (tenant_id) DO UPDATE SET name = excluded.name, mode = excluded.mode, "
    "retention_days = excluded.retention_days, created_at = excluded.created_at, deleted_at = NULL";

static const char sql_mark_deleted[] =
    "INSERT INTO tenants (tenant_id, name, mode, retention_days, created_at, deleted_at) "
    "VALUES ($1::bigint, $2, $3, $4::int, to_timestamp($5::double precision), now()) "
    "ON CONFLICT (tenant_id) DO UPDATE SET deleted_at = coalesce(tenants.deleted_at, excluded.deleted_at)";

static const char sql_delete_absent[] =
    "UPDATE tenants SET deleted_at = now() WHERE deleted_at IS NULL AND NOT (tenant_id = ANY ($1::bigint[]))";

typedef struct {
    char id[24], retention[16], created[24];
    const char *params[5];
} tenant_params_t;

static void tenant_params(tenant_params_t *p, const pv_tenant_t *tn)
{
    snprintf(p->id, sizeof(p->id), "%" PRIu64, tn->id);
    snprintf(p->retention, sizeof(p->retention), "%" PRIu32, tn->retention_days);
    snprintf(p->created, sizeof(p->created), "%" PRId64, tn->created_at);
    p->params[0] = p->id;
    p->params[1] = tn->name;
    p->params[2] = pv_tenant_mode_name(tn->mode);
    p->params[3] = p->retention;
    p->params[4] = p->created;
}

/* One tenant row, after freeing its name from any stale row. Must run inside a transaction. */
static int write_tenant(PGconn *c, const pv_tenant_t *tn, const char *sql, char *err, size_t errlen)
{
    tenant_params_t p;
    char what[PV_TENANT_NAME_MAX + 32];
    int rc;

    tenant_params(&p, tn);
    snprintf(what, sizeof(what), "mirroring tenant %s", tn->name);
    if ((rc = run(c, what, sql_free_name, 2, p.params, NULL, err, errlen)) != 0)
        return rc;
    return run(c, what, sql, 5, p.params, NULL, err, errlen);
}

int pv_admin_pg_mirror(PGconn *c, const pv_tenant_t *tenants, size_t n, int full, char *err, size_t errlen)
{
    char *ids = NULL;
    int rc, in_tx = 0;

    if ((rc = run(c, "mirroring tenants", "BEGIN", 0, NULL, NULL, err, errlen)) != 0)
        goto out;
    in_tx = 1;
    for (size_t i = 0; i < n; i++)
        if ((rc = write_tenant(c, &tenants[i], sql_upsert, err, errlen)) != 0)
            goto out;
    if (full) {
        /* an array literal "{1,2,3}" passed as one parameter: 21 bytes per id is enough */
        size_t cap = n * 21 + 3, used = 0;
        if ((ids = malloc(cap)) == NULL) {
            rc = PV_ENOMEM;
            snprintf(err, errlen, "mirroring tenants: out of memory");
            goto out;
        }
        ids[used++] = '{';
        for (size_t i = 0; i < n; i++)
            used += (size_t)snprintf(ids + used, cap - used, "%s%" PRIu64, i > 0 ? "," : "", tenants[i].id);
        ids[used++] = '}';
        ids[used] = '\0';
        const char *params[] = {ids};
        if ((rc = run(c, "mirroring tenants", sql_delete_absent, 1, params, NULL, err, errlen)) != 0)
            goto out;
    }
    if ((rc = run(c, "mirroring tenants", "COMMIT", 0, NULL, NULL, err, errlen)) != 0)
        goto out;
    in_tx = 0;
out:
    if (in_tx)
        rollback(c);
    free(ids);
    return rc;
}

int pv_admin_pg_mark_deleted(PGconn *c, const pv_tenant_t *tn, char *err, size_t errlen)
{
    int rc, in_tx = 0;

    if ((rc = run(c, "mirroring deletion", "BEGIN", 0, NULL, NULL, err, errlen)) != 0)
        goto out;
    in_tx = 1;
    if ((rc = write_tenant(c, tn, sql_mark_deleted, err, errlen)) != 0)
        goto out;
    if ((rc = run(c, "mirroring deletion", "COMMIT", 0, NULL, NULL, err, errlen)) != 0)
        goto out;
    in_tx = 0;
out:
    if (in_tx)
        rollback(c);
    return rc;
}

int pv_admin_pg_set_k(PGconn *c, uint64_t tenant_id, int k, char *err, size_t errlen)
{
    char id[24], kt[16];
    snprintf(id, sizeof(id), "%" PRIu64, tenant_id);
    snprintf(kt, sizeof(kt), "%d", k);
    const char *params[2] = {id, kt};
    return run(c, "setting k", "INSERT INTO tenant_report_settings (tenant_id, k) VALUES ($1::bigint, $2::int) "
               "ON CONFLICT (tenant_id) DO UPDATE SET k = excluded.k", 2, params, NULL, err, errlen);
}
