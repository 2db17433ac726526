/*
 * Where a durable outbox append's time goes (not a test): on raw LMDB, in a
 * fresh directory under DIR (default /tmp) on the disk being measured, times
 * N one-transaction commits of a 32-byte visitor record alone and with a
 * 280-byte outbox event beside it (the recognition's transaction), under the
 * default durable sync and, for comparison only, MDB_NOMETASYNC (one sync:
 * the last commit may be lost in an OS crash), MDB_WRITEMAP and MDB_NOSYNC
 * (not durable); plus one 4 KiB pwrite + fdatasync. A durable LMDB commit
 * syncs twice (data pages, then the meta page), so two fdatasyncs are its
 * floor. Prints one JSON line per figure (p50, p90, p99 in ms).
 *   bench_outbox_sync [N=2000] [DIR=/tmp]
 */
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void print(const char *figure, double *lat, int n)
{
    qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
    printf("{\"bench\":\"%s\",\"runs\":%d,\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f}\n", figure, n,
           lat[n / 2], lat[n * 9 / 10], lat[n * 99 / 100]);
    fflush(stdout);
}

/* n commits in a fresh environment under dir; 0 or -1. */
static int commits(const char *dir, unsigned flags, int outbox, double *lat, int n)
{
    char path[300];
    static char val[280];
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi visitors, events;
    int rc = -1;
    snprintf(path, sizeof(path), "%s/env", dir);
    if (mkdir(path, 0700) != 0 || mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 4) != 0 ||
        mdb_env_set_mapsize(env, (size_t)1 << 30) != 0 ||
        mdb_env_open(env, path, flags | MDB_NOTLS, 0600) != 0 || mdb_txn_begin(env, NULL, 0, &txn) != 0 ||
        mdb_dbi_open(txn, "visitors", MDB_CREATE, &visitors) != 0 ||
        mdb_dbi_open(txn, "outbox", MDB_CREATE, &events) != 0 || mdb_txn_commit(txn) != 0)
        goto out;
    memset(val, 'x', sizeof(val));
    for (int i = 0; i < n; i++) {
        uint8_t k[8], q[8];
        for (int b = 0; b < 8; b++) {
            k[b] = (uint8_t)(((uint64_t)i * 2654435761u % 100000) >> (56 - 8 * b));
            q[b] = (uint8_t)((uint64_t)(i + 1) >> (56 - 8 * b));
        }
        MDB_val kv = {sizeof(k), k}, vv = {32, val}, qv = {sizeof(q), q}, ev = {sizeof(val), val};
        double s = now_ms();
        if (mdb_txn_begin(env, NULL, 0, &txn) != 0)
            goto out;
        if (mdb_put(txn, visitors, &kv, &vv, 0) != 0 ||
            (outbox && mdb_put(txn, events, &qv, &ev, MDB_APPEND) != 0)) {
            mdb_txn_abort(txn);
            goto out;
        }
        if (mdb_txn_commit(txn) != 0)
            goto out;
        lat[i] = now_ms() - s;
    }
    rc = 0;
out:
    if (env != NULL)
        mdb_env_close(env);
    nftw(path, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return rc;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/pv_bench_sync_XXXXXX", argc > 2 ? argv[2] : "/tmp");
    if (n < 100 || n > 1000000 || mkdtemp(dir) == NULL) {
        fprintf(stderr, "usage: bench_outbox_sync [N=2000 (100..1000000)] [DIR=/tmp]\n");
        return 2;
    }
    double *lat = calloc((size_t)n, sizeof(*lat));
    int rc = lat == NULL;
    char probe[300];
    snprintf(probe, sizeof(probe), "%s/probe", dir);
    int fd = open(probe, O_CREAT | O_RDWR, 0600);
    static char page[4096];
    for (int i = 0; rc == 0 && fd >= 0 && i < n; i++) {
        double s = now_ms();
        if (pwrite(fd, page, sizeof(page), (off_t)(i % 64) * 4096) != (ssize_t)sizeof(page) ||
            fdatasync(fd) != 0)
            rc = 1;
        lat[i] = now_ms() - s;
    }
    if (fd >= 0)
        close(fd);
    unlink(probe);
    if (rc == 0 && fd >= 0)
        print("fdatasync_4k", lat, n);
    static const struct {
        const char *figure;
        unsigned flags;
        int outbox;
    } runs[] = {
        {"commit_visitor_only", 0, 0},
        {"commit_visitor_and_outbox", 0, 1},
        {"commit_visitor_only_again", 0, 0},
        {"commit_visitor_and_outbox_again", 0, 1},
        {"commit_visitor_and_outbox_nometasync_not_durable_for_last", MDB_NOMETASYNC, 1},
        {"commit_visitor_and_outbox_writemap", MDB_WRITEMAP, 1},
        {"commit_visitor_and_outbox_nosync_not_durable", MDB_NOSYNC, 1},
    };
    for (size_t r = 0; rc == 0 && r < sizeof(runs) / sizeof(runs[0]); r++) {
        if (commits(dir, runs[r].flags, runs[r].outbox, lat, n) != 0) {
            fprintf(stderr, "%s: LMDB failed\n", runs[r].figure);
            rc = 1;
            break;
        }
        print(runs[r].figure, lat, n);
    }
    free(lat);
    rmdir(dir);
    return rc;
}
