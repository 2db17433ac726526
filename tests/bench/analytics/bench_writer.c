/*
 * Benchmark of the analytics writer (not a test): fills an LMDB outbox with N
 * synthetic visit events, then times the writer draining it into a fresh
 * database on the PostgreSQL given by DSN, once per delivery method (multi-row
 * INSERT over a jsonb array, COPY + INSERT ... SELECT, pipeline mode), from
 * the same outbox snapshot each time, with the roll-up deferred to the
 * writer's roll-up thread (the default; also timed until it has caught up)
 * and, as the baselines, COPY on one connection (the default splits a batch
 * over two) and INSERT with the roll-up inline in each delivery (one connection). Also times the outbox
 * append that a recognition adds to the API (one visit, one LMDB transaction) and, for comparison, one
 * fdatasync on the same disk. Prints one JSON line per figure. bench_writer DSN [N=200000] [BATCH=1000]
 * [MIGRATIONS_DIR] The database privid_bench_<pid> is created on DSN's server and dropped.
 */
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "analytics/writer.h"
#include "common/log.h"
#include "tenants/admin_pg.h"
#include "tenants/tenants.h"
#include "tenants/visitors.h"

#ifndef PV_MIGRATIONS_DIR
#define PV_MIGRATIONS_DIR "migrations"
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int sh(const char *fmt, const char *a, const char *b)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), fmt, a, b);
    return system(cmd);
}

static uint64_t depth(pv_tenants_t *t)
{
    uint64_t n = 0, last;
    pv_outbox_stat(t, &n, &last);
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_writer DSN [N=200000] [BATCH=1000] [MIGRATIONS_DIR]\n");
        return 2;
    }
    const char *base = argv[1];
    long n = argc > 2 ? atol(argv[2]) : 200000;
    long batch = argc > 3 ? atol(argv[3]) : 1000;
    const char *migrations = argc > 4 ? argv[4] : PV_MIGRATIONS_DIR;
    char dir[64] = "/tmp/pv_bench_writer_XXXXXX", db[64], dsn[1024], sql[128], err[512], src[128], snap[128];
    pv_tenants_t *t = NULL;
    pv_tenant_t tn[4];
    PGconn *admin = NULL, *c = NULL;
    size_t applied;
    int rc = 1;

    pv_log_set_level("warn");
    if (mkdtemp(dir) == NULL || pv_tenants_open(&t, dir) != 0)
        return 1;
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "bench-%d", i);
        if (pv_tenants_create(t, &tn[i], name, PV_TENANT_NETWORK, 90) != 0)
            goto out;
    }
    snprintf(db, sizeof(db), "privid_bench_%d", (int)getpid());
    snprintf(dsn, sizeof(dsn), "%s dbname=%s", base, db);
    admin = PQconnectdb(base);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    PGresult *r = PQexec(admin, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(admin));
        goto out;
    }
    if (pv_admin_pg_connect(&c, dsn, err, sizeof(err)) != 0 ||
        pv_admin_migrate(c, migrations, NULL, NULL, &applied, err, sizeof(err)) != 0) {
        fprintf(stderr, "migrate: %s\n", err);
        goto drop;
    }

    /* the API's added cost: one visit recorded with its outbox event */
    enum { LAT = 2000 };
    static double lat[LAT];
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t t0 = (int64_t)wall.tv_sec * 1000 - n;
    for (int i = 0; i < LAT; i++) {
        pv_visit_t v = {
            .gid = (uint64_t)i + 1, .ts_ms = t0, .location = "door", .camera = "cam-1", .distance = 0.3};
        pv_visitor_t out;
        double s = now_s();
        if (pv_visits_record(t, &tn[i % 4], &v, 1, &out) != 0)
            goto drop;
        lat[i] = (now_s() - s) * 1e3;
    }
    qsort(lat, LAT, sizeof(lat[0]), cmp_double);
    printf("{\"bench\":\"outbox_append\",\"visits\":%d,\"p50_ms\":%.4f,\"p99_ms\":%.4f}\n", LAT, lat[LAT / 2],
           lat[LAT * 99 / 100]);
    pv_outbox_delete_upto(t, UINT64_MAX, NULL);
    /* the floor under any durable append: one fdatasync of 4 KiB beside the store
     * (an LMDB commit syncs twice: its data pages, then its meta page) */
    char probe[128];
    snprintf(probe, sizeof(probe), "%s/fsync.probe", dir);
    int fd = open(probe, O_CREAT | O_RDWR, 0600);
    if (fd >= 0) {
        static char page[4096];
        for (int i = 0; i < LAT; i++) {
            double s = now_s();
            if (pwrite(fd, page, sizeof(page), (off_t)(i % 64) * 4096) != (ssize_t)sizeof(page) ||
                fdatasync(fd) != 0)
                break;
            lat[i] = (now_s() - s) * 1e3;
        }
        close(fd);
        unlink(probe);
        qsort(lat, LAT, sizeof(lat[0]), cmp_double);
        printf("{\"bench\":\"fdatasync_4k\",\"runs\":%d,\"p50_ms\":%.4f,\"p99_ms\":%.4f}\n", LAT,
               lat[LAT / 2], lat[LAT * 99 / 100]);
    }

    /* the outbox: N visits, PV_VISITS_MAX per transaction (as many faces in one image) */
    for (long i = 0; i < n;) {
        pv_visit_t v[PV_VISITS_MAX];
        pv_visitor_t out[PV_VISITS_MAX];
        size_t k = 0;
        for (; k < PV_VISITS_MAX && i < n; k++, i++)
            v[k] = (pv_visit_t){.gid = (uint64_t)(i % 50000) + 1,
                                .ts_ms = t0 + i,
                                .location = i % 3 ? "door" : "till",
                                .camera = "cam-1",
                                .is_new = i < 50000,
                                .distance = i < 50000 ? -1 : 0.31};
        if (pv_visits_record(t, &tn[i % 4], v, k, out) != 0)
            goto drop;
    }
    pv_tenants_close(t);
    t = NULL;
    snprintf(src, sizeof(src), "%s/data.mdb", dir);
    snprintf(snap, sizeof(snap), "%s/snapshot.mdb", dir);
    if (sh("cp '%s' '%s'", src, snap) != 0)
        goto drop;

    static const struct {
        pv_writer_method_t m;
        const char *name;
        int inline_rollup, conns;
    } methods[] = {{PV_WRITER_INSERT, "insert", 0, 0},
                   {PV_WRITER_COPY, "copy", 0, 0},
                   {PV_WRITER_COPY, "copy_one_connection", 0, 1},
                   {PV_WRITER_PIPELINE, "pipeline", 0, 0},
                   {PV_WRITER_INSERT, "insert_rollup_inline", 1, 1}};
    for (size_t mi = 0; mi < sizeof(methods) / sizeof(methods[0]); mi++) {
        PQclear(PQexec(c, "TRUNCATE visits, events, erasures"));
        PQclear(PQexec(c, "CHECKPOINT"));
        if (sh("cp '%s' '%s'", snap, src) != 0 || pv_tenants_open(&t, dir) != 0)
            goto drop;
        pv_writer_t *w = NULL;
        pv_writer_conf_t conf = {.dsn = dsn,
                                 .batch_max = (size_t)batch,
                                 .idle_ms = 1,
                                 .method = methods[mi].m,
                                 .rollup_inline = methods[mi].inline_rollup,
                                 .connections = methods[mi].conns};
        double s = now_s();
        if (pv_writer_start(&w, t, &conf) != 0)
            goto drop;
        while (depth(t) > 0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        double secs = now_s() - s;
        /* the deferred roll-up catching up after the last delivery (its own thread) */
        for (;;) {
            r = PQexec(c, "SELECT count(*) FROM visit_rollup_pending");
            long left = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
            PQclear(r);
            if (left <= 0)
                break;
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
        double all_secs = now_s() - s;
        uint64_t delivered = pv_writer_delivered(w), failures = pv_writer_failures(w);
        pv_writer_stop(w);
        pv_tenants_close(t);
        t = NULL;
        r = PQexec(c, "SELECT count(*), (SELECT sum(n0) FROM visit_rollup WHERE per_location) FROM visits");
        long rows = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
        long rolled = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 1)) : -1;
        PQclear(r);
        printf("{\"bench\":\"writer\",\"method\":\"%s\",\"events\":%ld,\"batch\":%ld,\"seconds\":%.3f,"
               "\"events_per_s\":%.0f,\"rollup_done_s\":%.3f,\"with_rollup_per_s\":%.0f,\"rows\":%ld,"
               "\"rolled_up\":%ld,\"delivered\":%llu,\"failures\":%llu}\n",
               methods[mi].name, n, batch, secs, (double)n / secs, all_secs, (double)n / all_secs, rows,
               rolled, (unsigned long long)delivered, (unsigned long long)failures);
        fflush(stdout);
    }
    rc = 0;
drop:
    PQfinish(c);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    PQclear(PQexec(admin, sql));
out:
    PQfinish(admin);
    pv_tenants_close(t);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return rc;
}
