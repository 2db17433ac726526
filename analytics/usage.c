/*
 * usage_daily from the LMDB day counters (see usage.h). Days are sent in
 * chunks of CHUNK rows, each one INSERT ... SELECT FROM unnest(arrays) ON
 * CONFLICT DO UPDATE: one round trip per chunk, values as text parameters.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "analytics/usage.h"
#include "common/error.h"

#define CHUNK 2000
#define FIELD_MAX 24 /* a u64 and a comma */

static const char UPSERT_SQL[] =
    "INSERT INTO usage_daily (tenant_id, day, requests, images, faces) "
    "SELECT * FROM unnest($1::bigint[], $2::date[], $3::bigint[], $4::bigint[], $5::bigint[]) "
    "ON CONFLICT (tenant_id, day) DO UPDATE SET requests = EXCLUDED.requests, images = EXCLUDED.images, "
    "faces = EXCLUDED.faces";

typedef struct {
    PGconn *c;
    char *arr[5]; /* "{v,v,...}" per column */
    size_t len[5];
    size_t n, total;
    int rc;
    char *err;
    size_t errlen;
} sync_t;

static void append(sync_t *s, int col, const char *v)
{
    size_t l = strlen(v);
    char *p = s->arr[col] + s->len[col];
    *p++ = s->n == 0 ? '{' : ',';
    memcpy(p, v, l);
    s->len[col] += l + 1;
    s->arr[col][s->len[col]] = '\0';
}

static int flush(sync_t *s)
{
    if (s->n == 0)
        return 0;
    const char *params[5];
    for (int i = 0; i < 5; i++) {
        memcpy(s->arr[i] + s->len[i], "}", 2);
        params[i] = s->arr[i];
    }
    PGresult *r = PQexecParams(s->c, UPSERT_SQL, 5, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) {
        snprintf(s->err, s->errlen, "usage_daily upsert failed: %s", PQerrorMessage(s->c));
        s->err[strcspn(s->err, "\n")] = '\0';
    }
    PQclear(r);
    s->total += s->n;
    s->n = 0;
    for (int i = 0; i < 5; i++)
        s->len[i] = 0;
    return ok ? 0 : PV_EDB;
}

static int on_day(void *arg, const pv_usage_day_t *d)
{
    sync_t *s = arg;
    char v[FIELD_MAX];
    snprintf(v, sizeof(v), "%" PRIu64, d->tenant_id);
    append(s, 0, v);
    snprintf(v, sizeof(v), "%04u-%02u-%02u", d->ymd / 10000, d->ymd / 100 % 100, d->ymd % 100);
    append(s, 1, v);
    snprintf(v, sizeof(v), "%" PRIu64, d->requests);
    append(s, 2, v);
    snprintf(v, sizeof(v), "%" PRIu64, d->images);
    append(s, 3, v);
    snprintf(v, sizeof(v), "%" PRIu64, d->faces);
    append(s, 4, v);
    if (++s->n == CHUNK && (s->rc = flush(s)) != 0)
        return 1;
    return 0;
}

int pv_analytics_usage_sync(PGconn *c, pv_tenants_t *t, uint32_t from_ymd, size_t *rows, char *err,
                            size_t errlen)
{
    sync_t s = {.c = c, .err = err, .errlen = errlen};
    int rc = 0;
    if (errlen > 0)
        err[0] = '\0';
    for (int i = 0; i < 5; i++)
        if ((s.arr[i] = malloc((size_t)CHUNK * FIELD_MAX + 4)) == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = PV_ENOMEM;
            goto out;
        }
    if ((rc = pv_usage_days(t, 0, from_ymd, 0, on_day, &s)) != 0) {
        snprintf(err, errlen, "cannot read the usage counters: %s", pv_strerror(rc));
        goto out;
    }
    if ((rc = s.rc) == 0)
        rc = flush(&s);
    if (rows != NULL)
        *rows = s.total;
out:
    for (int i = 0; i < 5; i++)
        free(s.arr[i]);
    return rc;
}

uint32_t pv_analytics_ymd(int64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&s, &tm) == NULL)
        return 0;
    return (uint32_t)(tm.tm_year + 1900) * 10000 + (uint32_t)(tm.tm_mon + 1) * 100 + (uint32_t)tm.tm_mday;
}
