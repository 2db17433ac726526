/*
 * privid-admin's PostgreSQL side: schema migrations and the tenants mirror.
 * LMDB stays the truth; PostgreSQL's `tenants` table is a copy for analytics
 * joins. Every value goes through PQexecParams; only migration files and
 * fixed statements are sent as plain SQL. Failures are PV_EDB with libpq's
 * message in err.
 */
#ifndef PV_TENANTS_ADMIN_PG_H
#define PV_TENANTS_ADMIN_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include "tenants/tenants.h"

/* Connects with a 10 s connect timeout (the DSN may override it); the caller PQfinish()es *out. */
int pv_admin_pg_connect(PGconn **out, const char *dsn, char *err, size_t errlen);

/* Called once per migration file applied, with its file name. */
typedef void (*pv_admin_applied_cb)(void *ctx, const char *file);

/*
 * Applies the NNNN_name.sql files of dir not yet in schema_migrations, in
 * version order, each with its schema_migrations row in one transaction,
 * holding a session advisory lock so concurrent runs serialize. Sets *applied
 * to the number applied. PV_EINVAL (bad folder content), -errno (unreadable),
 * or PV_EDB; err names the file.
 */
int pv_admin_migrate(PGconn *c, const char *dir, pv_admin_applied_cb cb, void *ctx, size_t *applied,
                     char *err, size_t errlen);

/*
 * Upserts tenants[0..n) into PostgreSQL in one transaction (deleted_at
 * cleared). A soft-deleted row holding a name now owned by another id is
 * renamed "<name>#<id>" to free the unique name. With `full`, rows of tenants
 * absent from the list are marked deleted, so the table mirrors the store.
 */
int pv_admin_pg_mirror(PGconn *c, const pv_tenant_t *tenants, size_t n, int full, char *err, size_t errlen);

/* Marks one tenant deleted (inserting its row when it was never mirrored). */
int pv_admin_pg_mark_deleted(PGconn *c, const pv_tenant_t *tn, char *err, size_t errlen);

/* Sets the tenant's k-anonymity k for reports (tenant_report_settings,
 * migrations/0003; 2..1000, PostgreSQL's CHECK refuses others). PV_EDB with
 * err filled on failure. */
int pv_admin_pg_set_k(PGconn *c, uint64_t tenant_id, int k, char *err, size_t errlen);

#endif
