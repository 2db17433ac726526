/*
 * Throwaway PostgreSQL databases and query helpers for the analytics
 * integration tests (see pgtest.h).
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
#include <unistd.h>
#include "tenants/admin_pg.h"
#include "tests/integration/analytics/pgtest.h"

/* base DSN (key=value or URI) with its database replaced by db */
static void dsn_for(char *out, size_t size, const char *base, const char *db)
{
    if (strncmp(base, "postgres://", 11) == 0 || strncmp(base, "postgresql://", 13) == 0) {
        const char *p = strstr(base, "://") + 3;
        const char *slash = strchr(p, '/'), *q = strchr(p, '?');
        size_t host_end = slash != NULL ? (size_t)(slash - base)
                          : q != NULL   ? (size_t)(q - base)
                                        : strlen(base);
        snprintf(out, size, "%.*s/%s%s", (int)host_end, base, db, q != NULL ? q : "");
    } else {
        snprintf(out, size, "%s dbname=%s", base, db);
    }
}

int pgt_db_create(pgt_db_t *db, const char *prefix, const char *migrations)
{
    const char *base = getenv("PRIVID_TEST_PG");
    char err[512], sql[160];
    size_t applied = 0;
    PGconn *c = NULL;
    memset(db, 0, sizeof(*db));
    if (base == NULL || *base == '\0') {
        fprintf(stderr,
                "FAIL: PRIVID_TEST_PG is not set (a PostgreSQL DSN where the test may create databases)\n");
        return 1;
    }
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(db->name, sizeof(db->name), "%s_%d_%d", prefix, (int)getpid(), rand() % 100000);
    dsn_for(db->dsn, sizeof(db->dsn), base, db->name);
    db->admin = PQconnectdb(base);
    if (PQstatus(db->admin) != CONNECTION_OK) {
        fprintf(stderr, "FAIL: cannot connect to PRIVID_TEST_PG: %s", PQerrorMessage(db->admin));
        return 1;
    }
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db->name);
    PGresult *r = PQexec(db->admin, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        fprintf(stderr, "FAIL: %s: %s", sql, PQerrorMessage(db->admin));
        db->name[0] = '\0';
        return 1;
    }
    int rc = pv_admin_pg_connect(&c, db->dsn, err, sizeof(err)) != 0 ||
             pv_admin_migrate(c, migrations, NULL, NULL, &applied, err, sizeof(err)) != 0;
    if (rc)
        fprintf(stderr, "FAIL: migrate: %s\n", err);
    PQfinish(c);
    return rc;
}

void pgt_db_drop(pgt_db_t *db)
{
    char sql[160];
    if (db->admin != NULL && db->name[0] != '\0') {
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
        PQclear(PQexec(db->admin, sql));
    }
    PQfinish(db->admin);
    db->admin = NULL;
}

long long pgt_scalar(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fprintf(stderr, "query failed: %s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        fail();
    }
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

long long pgt_rollup_diff(PGconn *c)
{
    static const char nonzero[] = "(n0, n1, n2, n3, n4, n5, nnew) <> (0, 0, 0, 0, 0, 0, 0)";
    char sql[1024];
    PQclear(PQexec(c, "BEGIN"));
    snprintf(sql, sizeof(sql),
             "CREATE TEMP TABLE pgt_kept ON COMMIT DROP AS SELECT * FROM visit_rollup WHERE %s", nonzero);
    PQclear(PQexec(c, sql));
    pgt_scalar(c, "SELECT count(*) FROM (SELECT analytics_rollup_rebuild()) x");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM ((SELECT * FROM visit_rollup WHERE %s EXCEPT ALL SELECT * FROM pgt_kept) "
             "UNION ALL (SELECT * FROM pgt_kept EXCEPT ALL SELECT * FROM visit_rollup WHERE %s)) d",
             nonzero, nonzero);
    long long d = pgt_scalar(c, sql);
    PQclear(PQexec(c, "ROLLBACK"));
    return d;
}

long long pgt_wait_rollup(PGconn *c, int timeout_ms)
{
    long long left = 0;
    for (int waited = 0;; waited += 20) {
        left = pgt_scalar(c, "SELECT count(*) FROM visit_rollup_pending");
        if (left == 0 || waited >= timeout_ms)
            return left;
        pgt_sleep_ms(20);
    }
}

void pgt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int pgt_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}
