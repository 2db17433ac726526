/*
 * Daily usage into PostgreSQL: copies the tenants store's LMDB day counters
 * (requests, images, faces per tenant and UTC day; pv_usage_days) into
 * usage_daily. LMDB is the truth and the copy is an upsert of absolute
 * values, so a sync can be repeated, interrupted or run by two processes
 * over the same store without ever double counting.
 */
#ifndef PV_ANALYTICS_USAGE_H
#define PV_ANALYTICS_USAGE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include "tenants/tenants.h"

/*
 * Upserts every metered day from from_ymd (yyyymmdd; 0: all days) into
 * usage_daily over connection c (borrowed, not in a transaction). *rows (may
 * be NULL) receives the number of days sent. Returns 0, PV_ESTORE (LMDB),
 * PV_ENOMEM or PV_EDB with libpq's message in err.
 */
int pv_analytics_usage_sync(PGconn *c, pv_tenants_t *t, uint32_t from_ymd, size_t *rows, char *err,
                            size_t errlen);

/* The UTC yyyymmdd of unix time ms. */
uint32_t pv_analytics_ymd(int64_t ms);

#endif
