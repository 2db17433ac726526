/*
 * Unit tests of the shard client (recognizer/shards.h): the jump consistent
 * hash's published properties (range, balance, minimal movement when the
 * shard count grows), in-process shards answering exactly like one gallery
 * holding the same data (real golden descriptors and face-like synthetic
 * ones), placement by hash, input bounds, and the remote client against
 * addresses where nothing listens (every shard down: PV_EUNAVAIL, counted).
 * Remote shards serving for real are covered by the integration test.
 */
#include <arpa/inet.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/error.h"
#include "recognizer/shards.h"
#include "tests/unit/recognizer/gallery_synth.h"

#define DIM 128
#define NFACES 22
#define SEED 20240611u

static float faces[NFACES][DIM], faces2[NFACES][DIM];

static void load_bin(float *dst, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", PV_TEST_DATA, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(dst, sizeof(float), NFACES * DIM, f), NFACES * DIM);
    fclose(f);
}

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* ---- jump hash ---- */

static void test_jump_range_and_one(void **state)
{
    (void)state;
    for (uint64_t i = 0; i < 10000; i++) {
        assert_int_equal(pv_jump_hash(mix(i), 1), 0);
        int32_t b = pv_jump_hash(mix(i), 7);
        assert_true(b >= 0 && b < 7);
    }
    /* extreme keys and a large bucket count stay in range */
    assert_true(pv_jump_hash(0, 1000000) < 1000000);
    assert_true(pv_jump_hash(UINT64_MAX, 1000000) < 1000000);
    assert_true(pv_jump_hash(UINT64_MAX, INT32_MAX) >= 0);
}

/* Each of S buckets gets 1/S of the keys, also for sequential keys. */
static void test_jump_balance(void **state)
{
    (void)state;
    enum { N = 200000 };
    const int32_t sizes[] = {2, 3, 5, 10, 64};
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        int32_t S = sizes[si];
        for (int seq = 0; seq < 2; seq++) {
            uint32_t count[64] = {0};
            for (uint64_t i = 0; i < N; i++)
                count[pv_jump_hash(seq ? i + 1 : mix(i), S)]++;
            double want = (double)N / S, chi2 = 0;
            for (int32_t b = 0; b < S; b++) {
                assert_true(fabs(count[b] - want) < 0.05 * want);
                chi2 += (count[b] - want) * (count[b] - want) / want;
            }
            /* chi-square with S-1 degrees of freedom: mean S-1, far below 3*S + 30 unless skewed */
            assert_true(chi2 < 3.0 * S + 30);
        }
    }
}

/* Growing from n to n+1 buckets moves a key only into the new bucket, and
 * moves about 1/(n+1) of the keys: the minimum possible. */
static void test_jump_minimal_movement(void **state)
{
    (void)state;
    enum { N = 100000 };
    for (int32_t n = 1; n < 40; n++) {
        uint32_t moved = 0;
        for (uint64_t i = 0; i < N; i++) {
            uint64_t key = mix(i * 31 + (uint64_t)n);
            int32_t a = pv_jump_hash(key, n), b = pv_jump_hash(key, n + 1);
            if (a != b) {
                assert_int_equal(b, n);
                moved++;
            }
        }
        double want = (double)N / (n + 1);
        assert_true(fabs(moved - want) < 0.06 * want + 100);
    }
}

/* ---- in-process shards ---- */

typedef struct {
    char dir[64];
} tmpdir_t;

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    tmpdir_t *t = calloc(1, sizeof(*t));
    strcpy(t->dir, "/tmp/pv_shards_XXXXXX");
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

static void gcfg(pv_gallery_config_t *cfg)
{
    pv_gallery_config_init(cfg);
    cfg->map_size = (size_t)256 << 20;
    cfg->durable = 0;
}

enum { NSYN = 150, S = 3, K = 5 };

static void test_local_equals_single(void **state)
{
    tmpdir_t *t = *state;
    char path[128];
    pv_gallery_config_t cfg;
    gcfg(&cfg);
    pv_shards_t *s = NULL;
    snprintf(path, sizeof(path), "%s/sharded", t->dir);
    assert_int_equal(pv_shards_open_local(&s, path, S, &cfg), 0);
    assert_int_equal(pv_shards_count(s), S);
    snprintf(path, sizeof(path), "%s/single", t->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    cfg.dir = path;
    pv_gallery_t *g = NULL;
    assert_int_equal(pv_gallery_open(&g, &cfg), 0);

    /* golden faces, then synthetic identities with 3 exemplars each */
    uint64_t per_shard[S] = {0}, got;
    for (int i = 0; i < NFACES; i++) {
        uint64_t gid = 1000 + (uint64_t)i;
        assert_int_equal(pv_shards_enroll(s, &got, gid, 0, faces[i], 0.9f, 0), 0);
        assert_true(got == gid);
        assert_int_equal(pv_gallery_enroll(g, &got, gid, 0, faces[i], 0.9f), 0);
        per_shard[pv_jump_hash(gid, S)]++;
    }
    float v[DIM];
    for (uint64_t i = 0; i < NSYN; i++) {
        uint64_t gid = mix(i) | 1;
        synth_exemplar(v, DIM, SEED, i, 0);
        assert_int_equal(pv_shards_enroll(s, NULL, gid, 0, v, 0.8f, 0), 0);
        assert_int_equal(pv_gallery_enroll(g, &got, gid, 0, v, 0.8f), 0);
        for (uint64_t e = 1; e < 3; e++) {
            synth_exemplar(v, DIM, SEED, i, e);
            uint32_t s1, s2;
            assert_int_equal(pv_shards_add(s, &s1, gid, v, 0.7f, 0), 0);
            assert_int_equal(pv_gallery_add(g, &s2, gid, v, 0.7f), 0);
            assert_int_equal(s1, s2);
        }
        per_shard[pv_shards_shard_of(s, gid)]++;
    }
    /* placement: each shard holds exactly the gids that hash to it */
    for (uint32_t i = 0; i < S; i++) {
        pv_shard_stats_t st;
        assert_int_equal(pv_shards_stat(s, &st, i), 0);
        assert_true(st.identities == per_shard[i]);
        assert_true(st.dim == DIM && st.k == PV_GALLERY_K_DEFAULT);
        assert_true(per_shard[i] > 0);
    }

    /* queries: the other photos of the golden faces and fresh exemplars */
    enum { NQ = NFACES + 40 };
    float *q = malloc(NQ * DIM * sizeof(float));
    memcpy(q, faces2, sizeof(faces2));
    for (int i = 0; i < 40; i++)
        synth_exemplar(q + (NFACES + i) * DIM, DIM, SEED, (uint64_t)i * 3, 9);
    pv_gallery_hit_t a[NQ * K], b[NQ * K];
    pv_shards_info_t info;
    assert_int_equal(pv_shards_search(s, a, &info, 0, NQ, q, K), 0);
    assert_int_equal(info.degraded, 0);
    assert_int_equal(pv_gallery_search(g, b, 0, NQ, q, K), 0);
    for (int i = 0; i < NQ * K; i++) {
        assert_true(a[i].gid == b[i].gid);
        assert_int_equal(a[i].slot, b[i].slot);
        assert_float_equal(a[i].distance, b[i].distance, 1e-5);
    }
    for (int i = 0; i < NFACES; i++)
        assert_true(a[i * K].gid == 1000 + (uint64_t)i);

    /* owner filtering goes through: an owner with no identities finds nothing */
    assert_int_equal(pv_shards_search(s, a, &info, 77, 1, q, K), 0);
    assert_true(a[0].gid == 0 && isinf(a[0].distance));

    /* erasure through the client */
    assert_int_equal(pv_shards_remove(s, 1000), 0);
    assert_int_equal(pv_shards_remove(s, 1000), PV_ENOTFOUND);
    assert_int_equal(pv_shards_search(s, a, &info, 0, 1, q, K), 0);
    for (int j = 0; j < K; j++)
        assert_true(a[j].gid != 1000);

    /* errors */
    assert_int_equal(pv_shards_enroll(s, NULL, 1001, 0, faces[0], 0.5f, 0), PV_EEXIST);
    assert_int_equal(pv_shards_add(s, NULL, 999999, faces[0], 0.5f, 0), PV_ENOTFOUND);
    v[5] = NAN;
    assert_int_equal(pv_shards_enroll(s, NULL, 5, 0, v, 0.5f, 0), PV_EINVAL);
    assert_int_equal(pv_shards_search(s, a, NULL, 0, 1, v, K), PV_EINVAL);
    assert_int_equal(pv_shards_enroll(s, NULL, 5, 0, faces[0], NAN, 0), PV_EINVAL);
    assert_int_equal(pv_shards_search(s, a, NULL, 0, 0, q, K), PV_EINVAL);
    assert_int_equal(pv_shards_search(s, a, NULL, 0, 1, q, 0), PV_EINVAL);
    assert_int_equal(pv_shards_search(s, a, NULL, 0, 1, q, PV_SHARD_K_MAX + 1), PV_ELIMIT);
    assert_int_equal(pv_shards_search(s, a, NULL, 0, PV_SHARD_BATCH_MAX + 1, q, 1), PV_ELIMIT);
    assert_int_equal(pv_shards_stat(s, NULL, 0), PV_EINVAL);
    pv_shard_stats_t st;
    assert_int_equal(pv_shards_stat(s, &st, S), PV_EINVAL);
    /* a random gid when none is given */
    assert_int_equal(pv_shards_enroll(s, &got, 0, 0, faces[0], 0.5f, 0), 0);
    assert_true(got != 0);

    pv_shards_counters_t c;
    pv_shards_counters(s, &c);
    assert_true(c.searches >= 3 && c.degraded == 0 && c.shard_failures == 0 && c.unavailable == 0);
    free(q);
    pv_gallery_close(g);
    pv_shards_close(s);

    /* reopening finds everything again */
    snprintf(path, sizeof(path), "%s/sharded", t->dir);
    gcfg(&cfg);
    assert_int_equal(pv_shards_open_local(&s, path, S, &cfg), 0);
    uint64_t total = 0;
    for (uint32_t i = 0; i < S; i++) {
        assert_int_equal(pv_shards_stat(s, &st, i), 0);
        total += st.identities;
    }
    assert_true(total == NFACES + NSYN); /* one removed, one random added */
    pv_shards_close(s);
    pv_shards_close(NULL);
}

/* A port where nothing listens: connect is refused at once. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd); /* bound, never listened: nothing answers there */
    return ntohs(sa.sin_port);
}

static void test_remote_all_down(void **state)
{
    (void)state;
    char u0[64], u1[64];
    snprintf(u0, sizeof(u0), "http://127.0.0.1:%d", dead_port());
    snprintf(u1, sizeof(u1), "127.0.0.1:%d", dead_port());
    const char *urls[] = {u0, u1};
    pv_shards_remote_config_t rc = {.urls = urls, .count = 2, .timeout_ms = 500, .down_ms = 0};
    pv_shards_t *s = NULL;
    assert_int_equal(pv_shards_open_remote(&s, &rc), 0);
    pv_gallery_hit_t hits[K];
    pv_shards_info_t info;
    assert_int_equal(pv_shards_search(s, hits, &info, 0, 1, faces[0], K), PV_EUNAVAIL);
    assert_int_equal(info.failed, 2);
    assert_true(info.failed_mask == 3);
    assert_int_equal(pv_shards_enroll(s, NULL, 42, 0, faces[0], 0.9f, 0), PV_EUNAVAIL);
    assert_int_equal(pv_shards_add(s, NULL, 42, faces[0], 0.9f, 0), PV_EUNAVAIL);
    assert_int_equal(pv_shards_remove(s, 42), PV_EUNAVAIL);
    pv_shard_stats_t st;
    assert_int_equal(pv_shards_stat(s, &st, 1), PV_EUNAVAIL);
    /* input is checked before any shard is asked */
    float bad[DIM] = {INFINITY};
    assert_int_equal(pv_shards_enroll(s, NULL, 42, 0, bad, 0.9f, 0), PV_EINVAL);
    pv_shards_counters_t c;
    pv_shards_counters(s, &c);
    assert_true(c.unavailable == 3 && c.shard_failures == 6 && c.searches == 0);
    pv_shards_close(s);

    /* a shard marked down is not even tried for down_ms */
    rc.down_ms = 60000;
    assert_int_equal(pv_shards_open_remote(&s, &rc), 0);
    assert_int_equal(pv_shards_enroll(s, NULL, 42, 0, faces[0], 0.9f, 0), PV_EUNAVAIL);
    assert_int_equal(pv_shards_enroll(s, NULL, 42, 0, faces[0], 0.9f, 0), PV_EUNAVAIL);
    pv_shards_close(s);

    /* bad configurations */
    const char *bad_urls[] = {"http://127.0.0.1", "127.0.0.1:", "http://127.0.0.1:80/path", ":80",
                              "127.0.0.1:8x", "no.such.host.invalid:80"};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        const char *one[] = {bad_urls[i]};
        pv_shards_remote_config_t b = {.urls = one, .count = 1};
        s = NULL;
        assert_int_equal(pv_shards_open_remote(&s, &b), PV_EINVAL);
        assert_null(s);
    }
    pv_shards_remote_config_t none = {.urls = urls, .count = 0};
    assert_int_equal(pv_shards_open_remote(&s, &none), PV_EINVAL);
    none.count = PV_SHARDS_MAX + 1;
    assert_int_equal(pv_shards_open_remote(&s, &none), PV_EINVAL);
}

int main(void)
{
    load_bin(&faces[0][0], "descriptors_jpegjs_22x128_f32.bin");
    load_bin(&faces2[0][0], "descriptors_libjpeg_22x128_f32.bin");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jump_range_and_one),
        cmocka_unit_test(test_jump_balance),
        cmocka_unit_test(test_jump_minimal_movement),
        cmocka_unit_test_setup_teardown(test_local_equals_single, setup, teardown),
        cmocka_unit_test(test_remote_all_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
