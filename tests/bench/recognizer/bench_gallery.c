/*
 * Gallery benchmark (not a test): for 10k and 100k identities (1M with
 * --1m) of face-like synthetic embeddings (tests/unit/recognizer/
 * gallery_synth.h), one exemplar each, prints JSON lines: enrolment rate,
 * single-query latency p50/p99 on one thread, batch throughput, recall@1
 * against exact search, restart time (rebuild and snapshot), RAM and disk
 * bytes per exemplar. Usage: bench_gallery [--1m] [--n N] [--dir DIR]
 * [--nprobe P] [--queries Q]. Run it alone on the machine for stable figures.
 */
#include <ftw.h>
#include <math.h>
#include <malloc.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "recognizer/gallery.h"
#include "tests/unit/recognizer/gallery_synth.h"

#define DIM 128
#define SEED 777u

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long rss_anon_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float l2sq(const float *a, const float *b)
{
    float s = 0;
    for (int i = 0; i < DIM; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

/* Pairwise statistics of the synthetic data, to compare with real faces
 * (different people 0.44-0.91 apart, median 0.71; norms 1.39-1.50). */
static void print_realism(void)
{
    enum { M = 100 };
    static float c[M][DIM];
    double d[M * (M - 1) / 2], nmin = 1e9, nmax = 0, emin = 1e9, emax = 0, esum = 0;
    int nd = 0, ne = 0;
    for (int i = 0; i < M; i++) {
        synth_exemplar(c[i], DIM, SEED, (uint64_t)i, 0);
        double n = sqrt(l2sq(c[i], (float[DIM]){0}));
        nmin = fmin(nmin, n);
        nmax = fmax(nmax, n);
    }
    for (int i = 0; i < M; i++)
        for (int j = i + 1; j < M; j++)
            d[nd++] = sqrt(l2sq(c[i], c[j]));
    qsort(d, (size_t)nd, sizeof(double), cmp_double);
    for (int i = 0; i < M; i++)
        for (int a = 0; a < 4; a++)
            for (int b = a + 1; b < 4; b++) {
                float x[DIM], y[DIM];
                synth_exemplar(x, DIM, SEED, (uint64_t)i, (uint64_t)a);
                synth_exemplar(y, DIM, SEED, (uint64_t)i, (uint64_t)b);
                double e = sqrt(l2sq(x, y));
                emin = fmin(emin, e);
                emax = fmax(emax, e);
                esum += e;
                ne++;
            }
    printf("{\"bench\":\"gallery\",\"what\":\"synthetic_data\",\"between_identities\":{\"min\":%.3f,\"p1\":%.3f,"
           "\"median\":%.3f,\"p99\":%.3f,\"max\":%.3f},\"norm\":{\"min\":%.3f,\"max\":%.3f},"
           "\"within_identity\":{\"min\":%.3f,\"mean\":%.3f,\"max\":%.3f}}\n",
           d[0], d[nd / 100], d[nd / 2], d[nd * 99 / 100], d[nd - 1], nmin, nmax, emin, esum / ne, emax);
}

static pv_gallery_t *open_or_die(const char *dir, uint32_t nprobe, int durable)
{
    pv_gallery_config_t cfg;
    pv_gallery_config_init(&cfg);
    cfg.dir = dir;
    cfg.map_size = (size_t)8 << 30;
    cfg.durable = durable;
    if (nprobe)
        cfg.ivf_nprobe = nprobe;
    pv_gallery_t *g = NULL;
    int rc = pv_gallery_open(&g, &cfg);
    if (rc != 0) {
        fprintf(stderr, "open %s: %s\n", dir, pv_strerror(rc));
        exit(1);
    }
    return g;
}

static void run(size_t n, const char *base, uint32_t nprobe, size_t nq)
{
    char dir[512], snap[600];
    snprintf(dir, sizeof(dir), "%s/g%zu", base, n);
    snprintf(snap, sizeof(snap), "%s/index.snap", dir);
    mkdir(dir, 0700);
    float *vecs = malloc(n * DIM * sizeof(float));
    uint64_t *gids = malloc(n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++)
        synth_exemplar(vecs + i * DIM, DIM, SEED, i, 0);

    /* enrolment: durable single enrolments for a sample, then group commits of 1000 */
    pv_gallery_t *g = open_or_die(dir, nprobe, 1);
    size_t nsingle = n < 200 ? n : 200;
    double t0 = now_s();
    for (size_t i = 0; i < nsingle; i++)
        if (pv_gallery_enroll(g, &gids[i], 0, 0, vecs + i * DIM, 0.5f) != 0)
            exit(1);
    double t_single = now_s() - t0;
    float q1000[1000];
    for (int i = 0; i < 1000; i++)
        q1000[i] = 0.5f;
    t0 = now_s();
    for (size_t i = nsingle; i < n; i += 1000) {
        size_t b = n - i < 1000 ? n - i : 1000;
        int rc = pv_gallery_enroll_batch(g, gids + i, b, 0, vecs + i * DIM, q1000);
        if (rc != 0) {
            fprintf(stderr, "enroll: %s\n", pv_strerror(rc));
            exit(1);
        }
    }
    double t_batch = now_s() - t0;
    pv_gallery_stat_t st;
    pv_gallery_stat(g, &st);
    printf("{\"bench\":\"gallery\",\"n\":%zu,\"what\":\"enroll\",\"single_durable_per_s\":%.0f,"
           "\"batch1000_durable_per_s\":%.0f,\"includes_index_rebuilds\":true,\"index\":\"%s\"}\n",
           n, nsingle / t_single, (n - nsingle) / t_batch, st.shared_approx ? "ivf" : "exact");
    fflush(stdout);

    /* queries: "another photo" of random identities */
    float *q = malloc(nq * DIM * sizeof(float));
    size_t *truth_id = malloc(nq * sizeof(size_t));
    srand(12345);
    for (size_t i = 0; i < nq; i++) {
        truth_id[i] = (size_t)rand() % n;
        synth_exemplar(q + i * DIM, DIM, SEED, truth_id[i], 1);
    }
    /* exact reference: brute force over every stored vector */
    size_t *exact = malloc(nq * sizeof(size_t));
    t0 = now_s();
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t i = 0; i < nq; i++) {
        float best = INFINITY;
        size_t bi = 0;
        for (size_t j = 0; j < n; j++) {
            float d = l2sq(q + i * DIM, vecs + j * DIM);
            if (d < best) {
                best = d;
                bi = j;
            }
        }
        exact[i] = bi;
    }
    double t_brute = now_s() - t0;

    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: the gallery as built; pass 1: reopened from the snapshot */
        omp_set_num_threads(1);
        double *lat = malloc(nq * sizeof(double));
        pv_gallery_hit_t h[10];
        size_t hit_exact = 0, hit_true = 0;
        for (size_t i = 0; i < nq; i++) {
            double s = now_s();
            if (pv_gallery_search(g, h, 0, 1, q + i * DIM, 10) != 0)
                exit(1);
            lat[i] = (now_s() - s) * 1e3;
            hit_exact += h[0].gid == gids[exact[i]];
            hit_true += h[0].gid == gids[truth_id[i]];
        }
        qsort(lat, nq, sizeof(double), cmp_double);
        /* batch throughput: batches of 64, one thread and all threads */
        pv_gallery_hit_t *hb = malloc(64 * 10 * sizeof(*hb));
        double qps[2];
        for (int th = 0; th < 2; th++) {
            omp_set_num_threads(th == 0 ? 1 : omp_get_num_procs());
            size_t done = 0;
            t0 = now_s();
            while (now_s() - t0 < 2.0)
                for (size_t i = 0; i + 64 <= nq; i += 64, done += 64)
                    if (pv_gallery_search(g, hb, 0, 64, q + i * DIM, 10) != 0)
                        exit(1);
            qps[th] = done / (now_s() - t0);
        }
        printf("{\"bench\":\"gallery\",\"n\":%zu,\"what\":\"search\",\"source\":\"%s\",\"index\":\"%s\","
               "\"nprobe\":%u,\"k\":10,\"queries\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
               "\"recall_at_1_vs_exact\":%.4f,\"top1_is_true_identity\":%.4f,\"batch64_qps_1thread\":%.0f,"
               "\"batch64_qps_%dthreads\":%.0f,\"brute_force_ms_per_query\":%.2f}\n",
               n, pass ? "snapshot" : "built", st.shared_approx ? "ivf" : "exact", nprobe ? nprobe : 48, nq,
               lat[nq / 2], lat[nq * 99 / 100], lat[nq - 1], (double)hit_exact / nq, (double)hit_true / nq, qps[0],
               omp_get_num_procs(), qps[1], t_brute * 1e3 * omp_get_num_procs() / nq);
        fflush(stdout);
        free(lat);
        free(hb);
        if (pass == 1)
            break;

        /* restart: snapshot, then reopen from it; then reopen by rebuilding */
        t0 = now_s();
        if (pv_gallery_snapshot(g) != 0)
            exit(1);
        double t_snapw = now_s() - t0;
        pv_gallery_close(g);
        struct stat sst;
        stat(snap, &sst);
        malloc_trim(0);
        long rss0 = rss_anon_kb();
        t0 = now_s();
        g = open_or_die(dir, nprobe, 1);
        double t_snap = now_s() - t0;
        long rss1 = rss_anon_kb();
        pv_gallery_stat(g, &st);
        pv_gallery_close(g);
        unlink(snap);
        malloc_trim(0);
        t0 = now_s();
        g = open_or_die(dir, nprobe, 1);
        double t_rebuild = now_s() - t0;
        pv_gallery_snapshot(g);
        pv_gallery_close(g);
        malloc_trim(0);
        g = open_or_die(dir, nprobe, 1);
        pv_gallery_stat(g, &st);
        printf("{\"bench\":\"gallery\",\"n\":%zu,\"what\":\"restart\",\"snapshot_write_s\":%.3f,"
               "\"open_from_snapshot_s\":%.3f,\"open_rebuild_s\":%.3f,\"ram_bytes_per_exemplar\":%.0f,"
               "\"lmdb_bytes_per_exemplar\":%.0f,\"snapshot_bytes_per_exemplar\":%.0f,\"exemplars\":%llu}\n",
               n, t_snapw, t_snap, t_rebuild, (rss1 - rss0) * 1024.0 / (double)st.exemplars,
               (double)st.lmdb_bytes / (double)st.exemplars, (double)sst.st_size / (double)st.exemplars,
               (unsigned long long)st.exemplars);
        fflush(stdout);
    }
    /* erasure: each removal scrubs data.mdb and the snapshot */
    t0 = now_s();
    for (size_t i = 0; i < 3; i++)
        if (pv_gallery_remove(g, gids[i * 7]) != 0)
            exit(1);
    pv_gallery_stat(g, &st);
    printf("{\"bench\":\"gallery\",\"n\":%zu,\"what\":\"remove\",\"ms_per_removal\":%.1f,\"lmdb_bytes\":%zu}\n", n,
           (now_s() - t0) * 1e3 / 3, st.lmdb_bytes);
    pv_gallery_close(g);
    free(vecs);
    free(gids);
    free(q);
    free(truth_id);
    free(exact);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv)
{
    size_t sizes[4] = {10000, 100000, 0, 0}, nsizes = 2, nq = 1000;
    uint32_t nprobe = 0;
    char base[256] = "";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--1m") == 0)
            sizes[nsizes++] = 1000000;
        else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            sizes[0] = strtoull(argv[++i], NULL, 10), nsizes = 1;
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            snprintf(base, sizeof(base), "%s", argv[++i]);
        else if (strcmp(argv[i], "--nprobe") == 0 && i + 1 < argc)
            nprobe = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--queries") == 0 && i + 1 < argc)
            nq = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--1m] [--n N] [--dir DIR] [--nprobe P] [--queries Q]\n", argv[0]);
            return 2;
        }
    }
    int own = base[0] == 0;
    if (own) {
        strcpy(base, "/tmp/pv_bench_gallery_XXXXXX");
        if (!mkdtemp(base))
            return 1;
    }
    if (nq < 64)
        nq = 64;
    print_realism();
    for (size_t i = 0; i < nsizes; i++)
        run(sizes[i], base, nprobe, nq);
    if (own)
        rmdir(base);
    return 0;
}
