/*
 * Gallery unit tests: real LMDB environments in a fresh mkdtemp directory,
 * real FAISS indexes, real face descriptors (tests/data/gallery) and
 * face-like synthetic ones (gallery_synth.h). Covers search by identity,
 * exact vs IVF, owner isolation, K-exemplar diversity, erasure down to the
 * file bytes, restart (rebuild and snapshot + catch-up), SIGKILL during
 * enrolment, and bad input.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/error.h"
#include "recognizer/gallery.h"
#include "tests/unit/recognizer/gallery_synth.h"

#define DIM 128
#define NFACES 22
#define SEED 20240601u

static float faces[NFACES][DIM];  /* jpeg-js pixels */
static float faces2[NFACES][DIM]; /* same faces, libjpeg-turbo pixels: "another photo" */

static void load_bin(float *dst, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", PV_TEST_DATA, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(dst, sizeof(float), NFACES * DIM, f), NFACES * DIM);
    fclose(f);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

typedef struct {
    char dir[64];
} tmpdir_t;

static int setup(void **state)
{
    tmpdir_t *t = calloc(1, sizeof(*t));
    strcpy(t->dir, "/tmp/pv_gallery_XXXXXX");
    if (!mkdtemp(t->dir))
        return -1;
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tmpdir_t *t = *state;
    nftw(t->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(t);
    return 0;
}

static pv_gallery_t *open_g(const char *dir, size_t exact_max, uint32_t k, uint32_t nprobe)
{
    pv_gallery_config_t cfg;
    pv_gallery_config_init(&cfg);
    cfg.dir = dir;
    cfg.map_size = (size_t)256 << 20;
    cfg.durable = 0; /* a killed process keeps every commit either way; the tests need no fsync */
    if (exact_max)
        cfg.exact_max = exact_max;
    if (k)
        cfg.k = k;
    if (nprobe)
        cfg.ivf_nprobe = nprobe;
    pv_gallery_t *g = NULL;
    assert_int_equal(pv_gallery_open(&g, &cfg), 0);
    return g;
}

static float l2(const float *a, const float *b)
{
    double s = 0;
    for (int i = 0; i < DIM; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return (float)sqrt(s);
}

/* The other photo of each real face finds that face's identity first, at its
 * Euclidean distance; everybody else is further than 0.4. */
static void test_golden_search(void **state)
{
    tmpdir_t *t = *state;
    pv_gallery_t *g = open_g(t->dir, 0, 0, 0);
    uint64_t gids[NFACES];
    for (int i = 0; i < NFACES; i++)
        assert_int_equal(pv_gallery_enroll(g, &gids[i], 0, 0, faces[i], 0.9f), 0);
    for (int i = 0; i < NFACES; i++)
        for (int j = 0; j < i; j++)
            assert_int_not_equal(gids[i], gids[j]);
    pv_gallery_hit_t hits[NFACES * 3];
    assert_int_equal(pv_gallery_search(g, hits, 0, NFACES, &faces2[0][0], 3), 0);
    for (int i = 0; i < NFACES; i++) {
        assert_int_equal(hits[i * 3].gid, gids[i]);
        assert_int_equal(hits[i * 3].slot, 0);
        assert_float_equal(hits[i * 3].distance, l2(faces[i], faces2[i]), 1e-4);
        assert_true(hits[i * 3].distance < 0.2f);
        assert_true(hits[i * 3 + 1].distance > 0.4f);
        assert_true(hits[i * 3 + 2].distance >= hits[i * 3 + 1].distance);
        assert_int_not_equal(hits[i * 3 + 1].gid, hits[i * 3 + 2].gid);
    }
    /* more neighbours asked than identities: the rest is empty */
    pv_gallery_hit_t many[30];
    assert_int_equal(pv_gallery_search(g, many, 0, 1, faces2[0], 30), 0);
    assert_int_not_equal(many[NFACES - 1].gid, 0);
    assert_int_equal(many[NFACES].gid, 0);
    assert_true(isinf(many[NFACES].distance));
    pv_gallery_close(g);
}

/* Results merge per identity: several exemplars of one identity count once,
 * with the best one's slot and distance. */
static void test_merge_per_identity(void **state)
{
    tmpdir_t *t = *state;
    pv_gallery_t *g = open_g(t->dir, 0, 0, 0);
    uint64_t a, b;
    uint32_t slot;
    assert_int_equal(pv_gallery_enroll(g, &a, 0, 0, faces[0], 0.9f), 0);
    assert_int_equal(pv_gallery_add(g, &slot, a, faces[1], 0.8f), 0);
    assert_int_equal(slot, 1);
    assert_int_equal(pv_gallery_add(g, &slot, a, faces[2], 0.8f), 0);
    assert_int_equal(pv_gallery_enroll(g, &b, 0, 0, faces[3], 0.9f), 0);
    pv_gallery_hit_t h[4];
    assert_int_equal(pv_gallery_search(g, h, 0, 1, faces2[2], 4), 0);
    assert_int_equal(h[0].gid, a);
    assert_int_equal(h[0].slot, 2);
    assert_int_equal(h[1].gid, b);
    assert_int_equal(h[2].gid, 0);
    pv_gallery_identity_t id;
    assert_int_equal(pv_gallery_get(g, &id, a), 0);
    assert_int_equal(id.n_exemplars, 3);
    assert_int_equal(id.slot_mask, 7);
    assert_float_equal(id.quality[1], 0.8f, 1e-6);
    pv_gallery_close(g);
}

static void enroll_synth(pv_gallery_t *g, uint64_t *gids, size_t n, uint64_t first_id, uint64_t owner)
{
    float *v = malloc(n * DIM * sizeof(float)), *q = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        synth_exemplar(v + i * DIM, DIM, SEED, first_id + i, 0);
        q[i] = 0.5f;
    }
    assert_int_equal(pv_gallery_enroll_batch(g, gids, n, owner, v, q), 0);
    free(v);
    free(q);
}

/* The same data in an exact gallery and in one that switched to IVF (with
 * every list probed) gives identical answers; with few probes nearly so. */
static void test_exact_vs_approx(void **state)
{
    tmpdir_t *t = *state;
    enum { N = 3000, Q = 200 };
    char d1[128], d2[128];
    snprintf(d1, sizeof(d1), "%s/exact", t->dir);
    snprintf(d2, sizeof(d2), "%s/ivf", t->dir);
    mkdir(d1, 0700);
    mkdir(d2, 0700);
    pv_gallery_t *ge = open_g(d1, 100000, 0, 0);
    pv_gallery_t *ga = open_g(d2, 1000, 0, 4096);
    uint64_t *ge_ids = malloc(N * sizeof(uint64_t)), *ga_ids = malloc(N * sizeof(uint64_t));
    /* batches of 500: the IVF gallery switches on the way (after 1000) */
    for (size_t i = 0; i < N; i += 500) {
        enroll_synth(ge, ge_ids + i, 500, i, 0);
        enroll_synth(ga, ga_ids + i, 500, i, 0);
    }
    pv_gallery_stat_t st;
    assert_int_equal(pv_gallery_stat(ga, &st), 0);
    assert_int_equal(st.shared_approx, 1);
    assert_int_equal(st.exemplars, N);
    assert_int_equal(pv_gallery_stat(ge, &st), 0);
    assert_int_equal(st.shared_approx, 0);

    float *qv = malloc(Q * DIM * sizeof(float));
    for (int i = 0; i < Q; i++)
        synth_exemplar(qv + i * DIM, DIM, SEED, (uint64_t)i * 13 % N, 1); /* another photo */
    pv_gallery_hit_t *he = malloc(Q * 5 * sizeof(*he)), *ha = malloc(Q * 5 * sizeof(*ha));
    assert_int_equal(pv_gallery_search(ge, he, 0, Q, qv, 5), 0);
    assert_int_equal(pv_gallery_search(ga, ha, 0, Q, qv, 5), 0);
    for (int i = 0; i < Q * 5; i++) {
        size_t ie = 0, ia = 0;
        while (ge_ids[ie] != he[i].gid)
            ie++;
        while (ga_ids[ia] != ha[i].gid)
            ia++;
        assert_int_equal(ie, ia); /* the same synthetic identity */
        assert_float_equal(he[i].distance, ha[i].distance, 1e-4);
    }
    for (int i = 0; i < Q; i++) /* and it is the right one */
        assert_int_equal(he[i * 5].gid, ge_ids[(uint64_t)i * 13 % N]);
    pv_gallery_close(ga);

    /* few probes: recall@1 against exact stays high on face-like data */
    ga = open_g(d2, 1000, 0, 4);
    assert_int_equal(pv_gallery_search(ga, ha, 0, Q, qv, 5), 0);
    int same = 0;
    for (int i = 0; i < Q; i++)
        same += ha[i * 5].gid == ga_ids[(uint64_t)i * 13 % N];
    assert_true(same >= Q * 95 / 100);
    /* nothing lost in the switch: every enrolled vector finds itself */
    float v[DIM];
    for (int i = 0; i < N; i += 97) {
        synth_exemplar(v, DIM, SEED, (uint64_t)i, 0);
        pv_gallery_hit_t h;
        assert_int_equal(pv_gallery_search(ga, &h, 0, 1, v, 1), 0);
        assert_int_equal(h.gid, ga_ids[i]);
        assert_true(h.distance < 1e-3f);
    }
    pv_gallery_close(ga);
    pv_gallery_close(ge);
    free(ge_ids);
    free(ga_ids);
    free(qv);
    free(he);
    free(ha);
}

/* Identities of isolated tenant A are never seen by tenant B, nor by the
 * shared gallery, and the reverse. */
static void test_owner_filter(void **state)
{
    tmpdir_t *t = *state;
    pv_gallery_t *g = open_g(t->dir, 0, 0, 0);
    uint64_t ga[11], gb[11], gs;
    for (int i = 0; i < 11; i++) {
        assert_int_equal(pv_gallery_enroll(g, &ga[i], 0, 7, faces[i], 0.9f), 0);
        assert_int_equal(pv_gallery_enroll(g, &gb[i], 0, 8, faces[11 + i], 0.9f), 0);
    }
    assert_int_equal(pv_gallery_enroll(g, &gs, 0, 0, faces[0], 0.9f), 0); /* same face, shared */
    pv_gallery_hit_t h[NFACES * 20];
    /* B searches for A's faces: only B's identities come back */
    assert_int_equal(pv_gallery_search(g, h, 8, 11, &faces2[0][0], 20), 0);
    for (int i = 0; i < 11 * 20; i++) {
        if (h[i].gid == 0)
            continue;
        int isb = 0;
        for (int j = 0; j < 11; j++)
            isb |= h[i].gid == gb[j];
        assert_true(isb);
    }
    /* A finds its own */
    assert_int_equal(pv_gallery_search(g, h, 7, 11, &faces2[0][0], 1), 0);
    for (int i = 0; i < 11; i++)
        assert_int_equal(h[i].gid, ga[i]);
    /* the shared gallery holds one identity only */
    assert_int_equal(pv_gallery_search(g, h, 0, 1, faces2[0], 5), 0);
    assert_int_equal(h[0].gid, gs);
    assert_int_equal(h[1].gid, 0);
    /* an owner with nothing gets nothing */
    assert_int_equal(pv_gallery_search(g, h, 99, 1, faces2[0], 5), 0);
    assert_int_equal(h[0].gid, 0);
    pv_gallery_identity_t id;
    assert_int_equal(pv_gallery_get(g, &id, ga[3]), 0);
    assert_int_equal(id.owner, 7);
    pv_gallery_stat_t st;
    assert_int_equal(pv_gallery_stat(g, &st), 0);
    assert_int_equal(st.owners, 3);
    pv_gallery_close(g);
    /* and after a restart */
    g = open_g(t->dir, 0, 0, 0);
    assert_int_equal(pv_gallery_search(g, h, 8, 1, faces2[0], 20), 0);
    for (int i = 0; i < 20 && h[i].gid; i++)
        assert_int_not_equal(h[i].gid, ga[0]);
    pv_gallery_close(g);
}

static float min_pairwise(pv_gallery_t *g, uint64_t gid)
{
    pv_gallery_identity_t id;
    float v[PV_GALLERY_K_MAX][DIM], m = INFINITY;
    int n = 0;
    assert_int_equal(pv_gallery_get(g, &id, gid), 0);
    for (uint32_t s = 0; s < PV_GALLERY_K_MAX; s++)
        if (id.slot_mask & (1u << s))
            assert_int_equal(pv_gallery_get_exemplar(g, v[n++], gid, s), 0);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (l2(v[i], v[j]) < m)
                m = l2(v[i], v[j]);
    return m;
}

/* With K = 4 full, a near-duplicate never joins its twin and a distinct
 * exemplar replaces the most redundant one; the set stays diverse. */
static void test_k_replacement(void **state)
{
    tmpdir_t *t = *state;
    pv_gallery_t *g = open_g(t->dir, 0, 4, 0);
    uint64_t gid;
    uint32_t slot;
    /* synthetic exemplars of one identity (0.2-0.45 apart) */
    float e[12][DIM];
    for (int i = 0; i < 12; i++)
        synth_exemplar(e[i], DIM, SEED, 42, (uint64_t)i);
    assert_int_equal(pv_gallery_enroll(g, &gid, 0, 0, e[0], 0.9f), 0);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(pv_gallery_add(g, &slot, gid, e[i], 0.9f), 0);
        assert_int_equal(slot, (uint32_t)i);
    }
    float before = min_pairwise(g, gid);
    /* a near-duplicate of slot 2 (0.01 away): one of the twins goes */
    float dup[DIM];
    memcpy(dup, e[2], sizeof(dup));
    dup[0] += 0.01f;
    assert_int_equal(pv_gallery_add(g, &slot, gid, dup, 0.9f), 0);
    assert_true(slot == 2 || slot == PV_GALLERY_NOSLOT);
    assert_true(min_pairwise(g, gid) >= before - 1e-6f);
    /* more exemplars: each add drops a member of the closest pair among the
     * K stored and the new one, so the nearest pair left is never closer */
    for (int i = 4; i < 12; i++) {
        float cand[PV_GALLERY_K_MAX + 1][DIM], dmin = INFINITY;
        pv_gallery_identity_t id;
        int n = 0;
        assert_int_equal(pv_gallery_get(g, &id, gid), 0);
        for (uint32_t s = 0; s < PV_GALLERY_K_MAX; s++)
            if (id.slot_mask & (1u << s))
                assert_int_equal(pv_gallery_get_exemplar(g, cand[n++], gid, s), 0);
        memcpy(cand[n++], e[i], sizeof(e[i]));
        for (int a = 0; a < n; a++)
            for (int b = a + 1; b < n; b++)
                dmin = fminf(dmin, l2(cand[a], cand[b]));
        assert_int_equal(pv_gallery_add(g, &slot, gid, e[i], 0.9f), 0);
        assert_true(min_pairwise(g, gid) > dmin + 1e-6f);
        assert_int_equal(pv_gallery_get(g, &id, gid), 0);
        assert_int_equal(id.n_exemplars, 4);
    }
    /* a replaced exemplar is gone from the index too: searching for it finds
     * the identity through another slot, never the replaced vector itself */
    pv_gallery_hit_t h;
    assert_int_equal(pv_gallery_search(g, &h, 0, 1, dup, 1), 0);
    assert_int_equal(h.gid, gid);
    float got[DIM];
    assert_int_equal(pv_gallery_get_exemplar(g, got, gid, h.slot), 0);
    assert_float_equal(h.distance, l2(got, dup), 1e-4);
    pv_gallery_close(g);
}

static int file_contains(const char *path, const void *needle, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)size + 1);
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    int found = memmem(buf, got, needle, n) != NULL;
    free(buf);
    return found;
}

/* Counts the 32-byte pieces (8 floats) of v found anywhere in the file. */
static int file_contains_piece(const char *path, const float *v)
{
    int n = 0;
    for (int off = 0; off + 8 <= DIM; off += 8)
        n += file_contains(path, v + off, 8 * sizeof(float));
    return n;
}

/* Erasure: after removal the identity is never returned, and neither
 * data.mdb nor the snapshot holds its vectors' bytes, whole or in part. */
static void test_remove_erasure(void **state)
{
    tmpdir_t *t = *state;
    char dpath[128], spath[128];
    snprintf(dpath, sizeof(dpath), "%s/data.mdb", t->dir);
    snprintf(spath, sizeof(spath), "%s/index.snap", t->dir);
    pv_gallery_t *g = open_g(t->dir, 0, 0, 0);
    uint64_t gids[NFACES], extra[200];
    uint32_t slot;
    for (int i = 0; i < NFACES; i++)
        assert_int_equal(pv_gallery_enroll(g, &gids[i], 0, 0, faces[i], 0.9f), 0);
    /* the victim (face 5) gets two more exemplars, with writes in between so
     * LMDB copies its pages several times */
    assert_int_equal(pv_gallery_add(g, &slot, gids[5], faces2[5], 0.8f), 0);
    enroll_synth(g, extra, 100, 1000, 0);
    float third[DIM];
    synth_exemplar(third, DIM, SEED, 77, 3);
    assert_int_equal(pv_gallery_add(g, &slot, gids[5], third, 0.7f), 0);
    assert_int_equal(pv_gallery_snapshot(g), 0);
    enroll_synth(g, extra + 100, 100, 2000, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(pv_gallery_add(g, &slot, extra[i], faces2[(i + 7) % NFACES], 0.5f), 0);
    pv_gallery_close(g);
    g = open_g(t->dir, 0, 0, 0);
    assert_true(file_contains(dpath, faces[5], sizeof(faces[5])));
    assert_true(file_contains(spath, faces[5], sizeof(faces[5])));

    assert_int_equal(pv_gallery_remove(g, gids[5]), 0);
    const float *victims[3] = {faces[5], faces2[5], third};
    for (int v = 0; v < 3; v++) {
        assert_false(file_contains(dpath, victims[v], DIM * sizeof(float)));
        assert_false(file_contains(spath, victims[v], DIM * sizeof(float)));
        assert_int_equal(file_contains_piece(dpath, victims[v]), 0);
        assert_int_equal(file_contains_piece(spath, victims[v]), 0);
    }
    /* the others are intact */
    assert_true(file_contains(dpath, faces[6], sizeof(faces[6])));
    pv_gallery_identity_t id;
    assert_int_equal(pv_gallery_get(g, &id, gids[5]), PV_ENOTFOUND);
    assert_int_equal(pv_gallery_remove(g, gids[5]), PV_ENOTFOUND);
    assert_int_equal(pv_gallery_add(g, &slot, gids[5], faces[5], 0.5f), PV_ENOTFOUND);
    pv_gallery_hit_t h[30];
    for (int v = 0; v < 3; v++) {
        assert_int_equal(pv_gallery_search(g, h, 0, 1, victims[v], 30), 0);
        for (int i = 0; i < 30; i++)
            assert_int_not_equal(h[i].gid, gids[5]);
    }
    /* after a restart from the (scrubbed) snapshot, and after a rebuild */
    pv_gallery_close(g);
    for (int round = 0; round < 2; round++) {
        g = open_g(t->dir, 0, 0, 0);
        pv_gallery_stat_t st;
        assert_int_equal(pv_gallery_stat(g, &st), 0);
        assert_int_equal(st.opened_from_snapshot, round == 0);
        for (int v = 0; v < 3; v++) {
            assert_int_equal(pv_gallery_search(g, h, 0, 1, victims[v], 30), 0);
            for (int i = 0; i < 30; i++)
                assert_int_not_equal(h[i].gid, gids[5]);
        }
        assert_int_equal(pv_gallery_search(g, h, 0, 1, faces2[6], 1), 0);
        assert_int_equal(h[0].gid, gids[6]);
        pv_gallery_close(g);
        unlink(spath);
    }
}

/* A removed duplicate does not damage the live identity holding the same
 * bytes, and the snapshot that may have lost them is dropped. */
static void test_remove_duplicate(void **state)
{
    tmpdir_t *t = *state;
    pv_gallery_t *g = open_g(t->dir, 0, 0, 0);
    uint64_t a, b;
    assert_int_equal(pv_gallery_enroll(g, &a, 0, 0, faces[1], 0.9f), 0);
    assert_int_equal(pv_gallery_enroll(g, &b, 0, 0, faces[1], 0.9f), 0);
    assert_int_equal(pv_gallery_snapshot(g), 0);
    assert_int_equal(pv_gallery_remove(g, a), 0);
    float v[DIM];
    assert_int_equal(pv_gallery_get_exemplar(g, v, b, 0), 0);
    assert_memory_equal(v, faces[1], sizeof(v));
    pv_gallery_close(g);
    g = open_g(t->dir, 0, 0, 0);
    pv_gallery_hit_t h[2];
    assert_int_equal(pv_gallery_search(g, h, 0, 1, faces[1], 2), 0);
    assert_int_equal(h[0].gid, b);
    assert_true(h[0].distance < 1e-4f);
    assert_int_equal(h[1].gid, 0);
    pv_gallery_close(g);
}

typedef struct {
    pv_gallery_hit_t h[50 * 5];
    pv_gallery_stat_t st;
    uint64_t list[2000];
    size_t nlist;
} answers_t;

static void answers(pv_gallery_t *g, answers_t *a, uint64_t owner)
{
    float q[50 * DIM];
    for (int i = 0; i < 50; i++)
        synth_exemplar(q + i * DIM, DIM, SEED, (uint64_t)i * 7, 5);
    assert_int_equal(pv_gallery_search(g, a->h, owner, 50, q, 5), 0);
    assert_int_equal(pv_gallery_stat(g, &a->st), 0);
    assert_int_equal(pv_gallery_list(g, a->list, 2000, &a->nlist, 0), 0);
}

static void answers_equal(const answers_t *x, const answers_t *y)
{
    for (int i = 0; i < 50 * 5; i++) {
        assert_int_equal(x->h[i].gid, y->h[i].gid);
        assert_int_equal(x->h[i].slot, y->h[i].slot);
        assert_float_equal(x->h[i].distance, y->h[i].distance, 1e-5);
    }
    assert_int_equal(x->st.identities, y->st.identities);
    assert_int_equal(x->st.exemplars, y->st.exemplars);
    assert_int_equal(x->st.seq, y->st.seq);
    assert_int_equal(x->nlist, y->nlist);
    assert_memory_equal(x->list, y->list, x->nlist * sizeof(uint64_t));
}

/* A history of enrolments, additions and removals, some owned. */
static void churn(pv_gallery_t *g, uint64_t *gids, size_t n, uint64_t first)
{
    uint32_t slot;
    enroll_synth(g, gids, n, first, 0);
    for (size_t i = 0; i < n; i += 3) {
        float v[DIM];
        synth_exemplar(v, DIM, SEED, first + i, 1);
        assert_int_equal(pv_gallery_add(g, &slot, gids[i], v, 0.6f), 0);
    }
    for (size_t i = 1; i < n; i += 10)
        assert_int_equal(pv_gallery_remove(g, gids[i]), 0);
    uint64_t own[5];
    enroll_synth(g, own, 5, first + 100000, 3);
}

/* Reopening rebuilds exactly the same state from LMDB. */
static void test_reopen_rebuild(void **state)
{
    tmpdir_t *t = *state;
    static answers_t a1, a2, a3;
    static uint64_t gids[600];
    pv_gallery_t *g = open_g(t->dir, 400, 0, 4096);
    churn(g, gids, 600, 0);
    answers(g, &a1, 0);
    assert_int_equal(a1.st.shared_approx, 1);
    pv_gallery_close(g);
    g = open_g(t->dir, 400, 0, 4096);
    answers(g, &a2, 0);
    assert_int_equal(a2.st.opened_from_snapshot, 0);
    answers_equal(&a1, &a2);
    answers(g, &a3, 3);
    assert_int_equal(a3.h[0].gid != 0, 1);
    pv_gallery_close(g);
}

/* A snapshot followed by more writes, loaded and caught up from the change
 * log, answers exactly like a full rebuild (exact and IVF indexes). */
static void test_snapshot_catchup(void **state)
{
    tmpdir_t *t = *state;
    static answers_t snap, rebuilt, snap3, rebuilt3;
    static uint64_t gids[900];
    char spath[128];
    snprintf(spath, sizeof(spath), "%s/index.snap", t->dir);
    pv_gallery_t *g = open_g(t->dir, 500, 0, 4096);
    churn(g, gids, 450, 0);
    assert_int_equal(pv_gallery_snapshot(g), 0);
    churn(g, gids + 450, 450, 5000); /* crosses exact_max after the snapshot */
    pv_gallery_stat_t st;
    assert_int_equal(pv_gallery_stat(g, &st), 0);
    assert_true(st.seq > st.snapshot_seq && st.snapshot_seq > 0);
    pv_gallery_close(g);

    g = open_g(t->dir, 500, 0, 4096);
    answers(g, &snap, 0);
    answers(g, &snap3, 3);
    assert_int_equal(snap.st.opened_from_snapshot, 1);
    assert_int_equal(snap.st.shared_approx, 1);
    pv_gallery_close(g);
    unlink(spath);
    g = open_g(t->dir, 500, 0, 4096);
    answers(g, &rebuilt, 0);
    answers(g, &rebuilt3, 3);
    assert_int_equal(rebuilt.st.opened_from_snapshot, 0);
    answers_equal(&snap, &rebuilt);
    answers_equal(&snap3, &rebuilt3);
    /* now an IVF snapshot, caught up, against a rebuild */
    assert_int_equal(pv_gallery_snapshot(g), 0);
    uint64_t more[100];
    churn(g, more, 100, 9000);
    pv_gallery_close(g);
    g = open_g(t->dir, 500, 0, 4096);
    answers(g, &snap, 0);
    assert_int_equal(snap.st.opened_from_snapshot, 1);
    pv_gallery_close(g);
    unlink(spath);
    g = open_g(t->dir, 500, 0, 4096);
    answers(g, &rebuilt, 0);
    answers_equal(&snap, &rebuilt);
    pv_gallery_close(g);
}

typedef struct {
    uint64_t gid, n;
} ack_t;

/* The child: enrolls synthetic identity n = base, base+1, ... forever,
 * snapshotting now and then, and reports each acknowledged gid. */
static void crash_child(const char *dir, int fd, uint64_t base)
{
    pv_gallery_config_t cfg;
    pv_gallery_config_init(&cfg);
    cfg.dir = dir;
    cfg.map_size = (size_t)256 << 20;
    cfg.exact_max = 300; /* switches to IVF during the test */
    pv_gallery_t *g = NULL;
    if (pv_gallery_open(&g, &cfg) != 0)
        _exit(2);
    for (uint64_t n = base;; n++) {
        float v[DIM];
        uint64_t gid;
        synth_exemplar(v, DIM, SEED, n, 0);
        if (pv_gallery_enroll(g, &gid, 0, n % 3 == 0 ? 5 : 0, v, 0.5f) != 0)
            _exit(3);
        ack_t a = {gid, n};
        if (write(fd, &a, sizeof(a)) != sizeof(a))
            _exit(4);
        if (n % 40 == 0 && pv_gallery_snapshot(g) != 0)
            _exit(5);
    }
}

/* SIGKILL at random moments: every acknowledged enrolment survives with its
 * exact vector and owner, and every identity present is whole. */
static void test_crash_enroll(void **state)
{
    tmpdir_t *t = *state;
    static ack_t acks[20000];
    size_t nack = 0;
    srand((unsigned)time(NULL));
    for (int round = 0; round < 5; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            /* a fresh process image: OpenMP (FAISS) does not survive fork() */
            char fd[16], base[32];
            close(p[0]);
            snprintf(fd, sizeof(fd), "%d", p[1]);
            snprintf(base, sizeof(base), "%llu", (unsigned long long)round * 100000);
            execl("/proc/self/exe", "test_gallery", "--crash-child", t->dir, fd, base, (char *)NULL);
            _exit(6);
        }
        close(p[1]);
        struct timespec ts = {0, (long)(30 + rand() % 300) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status));
        ack_t a;
        while (read(p[0], &a, sizeof(a)) == sizeof(a) && nack < 20000)
            acks[nack++] = a;
        close(p[0]);

        pv_gallery_config_t cfg;
        pv_gallery_config_init(&cfg);
        cfg.dir = t->dir;
        cfg.map_size = (size_t)256 << 20;
        cfg.exact_max = 300;
        pv_gallery_t *g = NULL;
        assert_int_equal(pv_gallery_open(&g, &cfg), 0);
        for (size_t i = 0; i < nack; i++) {
            float v[DIM], got[DIM];
            pv_gallery_identity_t id;
            synth_exemplar(v, DIM, SEED, acks[i].n, 0);
            assert_int_equal(pv_gallery_get(g, &id, acks[i].gid), 0);
            assert_int_equal(id.owner, acks[i].n % 3 == 0 ? 5 : 0);
            assert_int_equal(pv_gallery_get_exemplar(g, got, acks[i].gid, 0), 0);
            assert_memory_equal(got, v, sizeof(v));
            pv_gallery_hit_t h;
            assert_int_equal(pv_gallery_search(g, &h, id.owner, 1, v, 1), 0);
            assert_int_equal(h.gid, acks[i].gid);
        }
        /* nothing half-written: every identity listed is complete and found */
        uint64_t *all = malloc(20000 * sizeof(uint64_t));
        size_t n;
        assert_int_equal(pv_gallery_list(g, all, 20000, &n, 0), 0);
        assert_true(n >= nack && n <= nack + (size_t)round + 1); /* at most one in flight per kill */
        for (size_t i = 0; i < n; i++) {
            pv_gallery_identity_t id;
            float got[DIM];
            assert_int_equal(pv_gallery_get(g, &id, all[i]), 0);
            assert_int_equal(id.n_exemplars, 1);
            assert_int_equal(pv_gallery_get_exemplar(g, got, all[i], 0), 0);
            pv_gallery_hit_t h;
            assert_int_equal(pv_gallery_search(g, &h, id.owner, 1, got, 1), 0);
            assert_int_equal(h.gid, all[i]);
        }
        pv_gallery_stat_t st;
        assert_int_equal(pv_gallery_stat(g, &st), 0);
        assert_int_equal(st.identities, n);
        free(all);
        pv_gallery_close(g);
    }
    assert_true(nack > 20);
    print_message("crash test: %zu acknowledged enrolments over 5 kills\n", nack);
}

static void test_bad_inputs(void **state)
{
    tmpdir_t *t = *state;
    pv_gallery_t *g = open_g(t->dir, 0, 0, 0);
    float v[DIM], nan_v[DIM], inf_v[DIM];
    memcpy(v, faces[0], sizeof(v));
    memcpy(nan_v, faces[0], sizeof(v));
    memcpy(inf_v, faces[0], sizeof(v));
    nan_v[17] = NAN;
    inf_v[100] = -INFINITY;
    uint64_t gid, gids[2];
    uint32_t slot;
    pv_gallery_hit_t h[4];
    assert_int_equal(pv_gallery_enroll(g, &gid, 0, 0, nan_v, 0.5f), PV_EINVAL);
    assert_int_equal(pv_gallery_enroll(g, &gid, 0, 0, inf_v, 0.5f), PV_EINVAL);
    assert_int_equal(pv_gallery_enroll(g, &gid, 0, 0, v, NAN), PV_EINVAL);
    assert_int_equal(pv_gallery_enroll(g, NULL, 0, 0, v, 0.5f), PV_EINVAL);
    float two[2 * DIM];
    memcpy(two, v, sizeof(v));
    memcpy(two + DIM, inf_v, sizeof(v));
    float q2[2] = {0.5f, 0.5f};
    assert_int_equal(pv_gallery_enroll_batch(g, gids, 2, 0, two, q2), PV_EINVAL);
    assert_int_equal(pv_gallery_enroll_batch(g, gids, 0, 0, two, q2), PV_EINVAL);
    assert_int_equal(pv_gallery_enroll_batch(g, gids, PV_GALLERY_BATCH_MAX + 1, 0, two, q2), PV_EINVAL);
    pv_gallery_stat_t st;
    assert_int_equal(pv_gallery_stat(g, &st), 0);
    assert_int_equal(st.identities, 0); /* nothing half-enrolled */
    assert_int_equal(st.seq, 0);

    assert_int_equal(pv_gallery_enroll(g, &gid, 0, 0, v, 0.5f), 0);
    assert_int_equal(pv_gallery_enroll(g, &gids[0], 12345, 0, v, 0.5f), 0);
    assert_int_equal(gids[0], 12345);
    assert_int_equal(pv_gallery_enroll(g, &gids[1], 12345, 0, faces[1], 0.5f), PV_EEXIST);
    assert_int_equal(pv_gallery_search(g, h, 0, 1, nan_v, 1), PV_EINVAL);
    assert_int_equal(pv_gallery_search(g, h, 0, 1, inf_v, 1), PV_EINVAL);
    assert_int_equal(pv_gallery_search(g, h, 0, 0, v, 1), PV_EINVAL);
    assert_int_equal(pv_gallery_search(g, h, 0, 1, v, 0), PV_EINVAL);
    assert_int_equal(pv_gallery_search(g, h, 0, 1, v, PV_GALLERY_SEARCH_K_MAX + 1), PV_EINVAL);
    assert_int_equal(pv_gallery_search(g, h, 0, PV_GALLERY_BATCH_MAX + 1, v, 1), PV_EINVAL);
    assert_int_equal(pv_gallery_search(g, NULL, 0, 1, v, 1), PV_EINVAL);
    assert_int_equal(pv_gallery_add(g, &slot, gid, nan_v, 0.5f), PV_EINVAL);
    assert_int_equal(pv_gallery_add(g, &slot, 999999, v, 0.5f), PV_ENOTFOUND);
    assert_int_equal(pv_gallery_add(g, &slot, 0, v, 0.5f), PV_EINVAL);
    assert_int_equal(pv_gallery_remove(g, 999999), PV_ENOTFOUND);
    assert_int_equal(pv_gallery_remove(g, 0), PV_EINVAL);
    pv_gallery_identity_t id;
    assert_int_equal(pv_gallery_get(g, &id, 999999), PV_ENOTFOUND);
    assert_int_equal(pv_gallery_get_exemplar(g, v, gid, 3), PV_ENOTFOUND);
    assert_int_equal(pv_gallery_get_exemplar(g, v, gid, PV_GALLERY_K_MAX), PV_EINVAL);
    pv_gallery_close(g);
    pv_gallery_close(NULL);

    /* configuration: wrong dimension or K for an existing gallery, bad values, missing dir */
    pv_gallery_config_t cfg;
    pv_gallery_config_init(&cfg);
    cfg.dir = t->dir;
    cfg.map_size = (size_t)256 << 20;
    cfg.dim = 64;
    assert_int_equal(pv_gallery_open(&g, &cfg), PV_EINVAL);
    assert_null(g);
    cfg.dim = DIM;
    cfg.k = 5;
    assert_int_equal(pv_gallery_open(&g, &cfg), PV_EINVAL);
    cfg.k = PV_GALLERY_K_MAX + 1;
    assert_int_equal(pv_gallery_open(&g, &cfg), PV_EINVAL);
    cfg.k = 0;
    assert_int_equal(pv_gallery_open(&g, &cfg), PV_EINVAL);
    cfg.k = PV_GALLERY_K_DEFAULT;
    cfg.dir = "/nonexistent/pv_gallery";
    assert_int_equal(pv_gallery_open(&g, &cfg), PV_EINVAL);
    cfg.dir = NULL;
    assert_int_equal(pv_gallery_open(&g, &cfg), PV_EINVAL);

    /* a corrupt snapshot is ignored: the gallery rebuilds from LMDB */
    char spath[128];
    snprintf(spath, sizeof(spath), "%s/index.snap", t->dir);
    FILE *f = fopen(spath, "wb");
    fputs("PVGSNAP1 garbage", f);
    fclose(f);
    g = open_g(t->dir, 0, 0, 0);
    assert_int_equal(pv_gallery_stat(g, &st), 0);
    assert_int_equal(st.opened_from_snapshot, 0);
    assert_int_equal(st.identities, 2);
    pv_gallery_close(g);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--crash-child") == 0)
        crash_child(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10));
    load_bin(&faces[0][0], "descriptors_jpegjs_22x128_f32.bin");
    load_bin(&faces2[0][0], "descriptors_libjpeg_22x128_f32.bin");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_golden_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_per_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exact_vs_approx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k_replacement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_erasure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_catchup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_enroll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_inputs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
