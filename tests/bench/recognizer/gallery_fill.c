/*
 * Gallery filler for benchmarks (not a test): `gallery_fill DIR N` enrolls N
 * synthetic face-like identities (tests/unit/recognizer/gallery_synth.h, one
 * exemplar each, shared owner 0 = what network tenants search) into the
 * gateway's in-process partition DIR/shard-0, in group commits of up to
 * 1000, then writes a snapshot so the next open loads instead of rebuilding.
 * DIR is a gateway's gallery directory (<data-dir>/gallery) for the default
 * --local-shards 1: with one partition every gid belongs to shard 0, which is
 * what lets random-gid batch enrolment bypass pv_shards' one-gid-at-a-time
 * routing. Identities already present are kept; new ones continue the
 * synthetic sequence after them. Prints one JSON line.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/error.h"
#include "recognizer/gallery.h"
#include "tests/unit/recognizer/gallery_synth.h"

#define DIM 128
#define SEED 4242u
#define BATCH 1000
#define FILL_MAX 10000000ul /* 10M identities: far above any benchmark, bounds the arithmetic */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: gallery_fill DIR N\n"
            "  enrolls N synthetic identities into DIR/shard-0 (DIR = a gateway's <data-dir>/gallery,\n"
            "  one local shard), then snapshots it\n");
    return 2;
}

int main(int argc, char **argv)
{
    char path[4096], *end;
    pv_gallery_t *g = NULL;
    pv_gallery_config_t cfg;
    pv_gallery_stat_t st;
    float *vecs = NULL, *qual = NULL;
    uint64_t *gids = NULL;
    unsigned long n;
    int ret = 1, rc;

    if (argc != 3)
        return usage();
    errno = 0;
    n = strtoul(argv[2], &end, 10);
    if (errno != 0 || *end != '\0' || n < 1 || n > FILL_MAX)
        return usage();
    if ((size_t)snprintf(path, sizeof(path), "%s/shard-0", argv[1]) >= sizeof(path))
        return usage();
    if ((mkdir(argv[1], 0700) != 0 && errno != EEXIST) || (mkdir(path, 0700) != 0 && errno != EEXIST)) {
        fprintf(stderr, "gallery_fill: mkdir %s: %s\n", path, strerror(errno));
        return 1;
    }
    /* the gateway's settings (pv_gallery_config_init + snapshot_on_close),
     * so that the snapshot written here is the one it loads */
    pv_gallery_config_init(&cfg);
    cfg.dir = path;
    if ((rc = pv_gallery_open(&g, &cfg)) != 0) {
        fprintf(stderr, "gallery_fill: open %s: %s\n", path, pv_strerror(rc));
        goto out;
    }
    if ((rc = pv_gallery_stat(g, &st)) != 0)
        goto fail_rc;
    uint64_t first = st.identities;
    if ((vecs = malloc(sizeof(*vecs) * DIM * BATCH)) == NULL ||
        (qual = malloc(sizeof(*qual) * BATCH)) == NULL || (gids = malloc(sizeof(*gids) * BATCH)) == NULL) {
        fprintf(stderr, "gallery_fill: out of memory\n");
        goto out;
    }
    double t0 = now_s();
    for (unsigned long done = 0; done < n;) {
        size_t b = n - done < BATCH ? n - done : BATCH;
        for (size_t i = 0; i < b; i++) {
            synth_exemplar(vecs + i * DIM, DIM, SEED, first + done + i, 0);
            qual[i] = 0.8f;
        }
        if ((rc = pv_gallery_enroll_batch(g, gids, b, 0, vecs, qual)) != 0)
            goto fail_rc;
        done += b;
    }
    double t1 = now_s();
    if ((rc = pv_gallery_snapshot(g)) != 0)
        goto fail_rc;
    double t2 = now_s();
    if ((rc = pv_gallery_stat(g, &st)) != 0)
        goto fail_rc;
    printf("{\"bench\":\"gallery_fill\",\"dir\":\"%s\",\"added\":%lu,\"identities\":%llu,\"exemplars\":%llu,"
           "\"index\":\"%s\",\"enroll_s\":%.2f,\"snapshot_s\":%.2f,\"seed\":%u,\"batch\":%d}\n",
           path, n, (unsigned long long)st.identities, (unsigned long long)st.exemplars,
           st.shared_approx ? "ivf" : "exact", t1 - t0, t2 - t1, SEED, BATCH);
    ret = 0;
    goto out;
fail_rc:
    fprintf(stderr, "gallery_fill: %s: %s\n", path, pv_strerror(rc));
out:
    pv_gallery_close(g);
    free(vecs);
    free(qual);
    free(gids);
    return ret;
}
