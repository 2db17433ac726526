/*
 * bench_models: single-thread forward-pass timings of the four networks.
 * For each net: warm-up runs, then RUNS timed runs (default 30); prints one
 * JSON line per net with the median, p10/p90, GFLOP per run and GFLOP/s, then
 * one line with the peak RSS with all four nets loaded and their arenas warm.
 *   bench_models [MODEL_DIR] [RUNS]      (MODEL_DIR default: $PRIVID_MODELS/model)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "models/models.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    pv_models_blas_init(argv);
    char dirbuf[4096];
    const char *dir = PV_DEFAULT_MODELS;
    const char *env = getenv("PRIVID_MODELS");
    if (env != NULL && env[0] != '\0') {
        snprintf(dirbuf, sizeof(dirbuf), "%s/model", env);
        dir = dirbuf;
    }
    if (argc > 1)
        dir = argv[1];
    int runs = argc > 2 ? atoi(argv[2]) : 30;
    if (runs < 1 || runs > 100000) {
        fprintf(stderr, "usage: bench_models [MODEL_DIR] [RUNS]\n");
        return 2;
    }
    static const struct {
        pv_net_kind_t kind;
        const char *name;
        int size;
    } nets[] = {{PV_NET_RECOGNITION, "recognition", 150},
                {PV_NET_LANDMARK68, "landmark68", 112},
                {PV_NET_TINY_FACE, "tiny416", 416},
                {PV_NET_SSD, "ssd512", 512}};
    pv_net_t *loaded[4] = {0};
    pv_net_scratch_t *scratch;
    if (pv_net_scratch_create(&scratch, 0) != 0)
        return 1;
    for (int i = 0; i < 4; i++) {
        char msg[256];
        if (pv_net_load_msg(&loaded[i], nets[i].kind, dir, msg, sizeof(msg)) != 0) {
            fprintf(stderr, "bench_models: %s: %s\n", nets[i].name, msg);
            return 1;
        }
    }
    double *t = malloc(sizeof(double) * runs);
    for (int i = 0; i < 4; i++) {
        int size = nets[i].size;
        size_t in_n = (size_t)size * size * 3, out_n = pv_net_output_len(loaded[i], size);
        float *in = malloc(in_n * sizeof(float)), *out = malloc(out_n * sizeof(float));
        unsigned seed = 12345;
        for (size_t j = 0; j < in_n; j++) {
            seed = seed * 1103515245u + 12345u;
            in[j] = (float)((seed >> 16) % 256);
        }
        for (int w = 0; w < 3; w++)
            pv_net_run(out, out_n, loaded[i], scratch, in, size);
        for (int r = 0; r < runs; r++) {
            double t0 = now_ms();
            if (pv_net_run(out, out_n, loaded[i], scratch, in, size) != 0) {
                fprintf(stderr, "bench_models: %s failed\n", nets[i].name);
                return 1;
            }
            t[r] = now_ms() - t0;
        }
        qsort(t, runs, sizeof(double), cmp);
        double med = t[runs / 2], gflop = pv_net_scratch_flops(scratch) / 1e9;
        printf("{\"net\":\"%s\",\"input\":%d,\"runs\":%d,\"median_ms\":%.3f,\"p10_ms\":%.3f,\"p90_ms\":%.3f,"
               "\"gflop\":%.4f,\"gflops_per_s\":%.1f}\n",
               nets[i].name, size, runs, med, t[runs / 10], t[runs * 9 / 10], gflop, gflop / (med / 1e3));
        fflush(stdout);
        free(in);
        free(out);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"peak_rss_mb\":%.1f,\"scratch_mb\":%.1f,\"nets_loaded\":4,\"openblas_core\":\"%s\"}\n", ru.ru_maxrss / 1024.0,
           pv_net_scratch_bytes(scratch) / 1048576.0, pv_models_blas_core());
    free(t);
    for (int i = 0; i < 4; i++)
        pv_net_free(loaded[i]);
    pv_net_scratch_free(scratch);
    return 0;
}
