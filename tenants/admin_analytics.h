/*
 * privid-admin analytics status|backfill and usage (admin_analytics.c): the
 * analytics outbox, its delivery to PostgreSQL through the gateway's writer,
 * and a tenant's usage counters. Kept out of admin.c so the tenants commands
 * do not depend on the analytics component.
 */
#ifndef PV_TENANTS_ADMIN_ANALYTICS_H
#define PV_TENANTS_ADMIN_ANALYTICS_H

#include "tenants/admin_args.h"
#include "tenants/tenants.h"

/* Each runs its command over the open store t (borrowed) with PostgreSQL DSN
 * pg (NULL: none) and returns the process exit status (0 ok, 1 store or
 * database failure, 2 usage error, 3 unknown tenant). */
int pv_admin_analytics_status(const pv_admin_args_t *a, pv_tenants_t *t, const char *pg);
int pv_admin_analytics_backfill(const pv_admin_args_t *a, pv_tenants_t *t, const char *pg);
int pv_admin_tenant_usage(const pv_admin_args_t *a, pv_tenants_t *t);

#endif
