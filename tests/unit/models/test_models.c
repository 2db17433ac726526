/*
 * The four face-api networks against the reference JavaScript.
 * - Recognition and landmarks: u8 crops from ../shared/golden (copied into
 *   tests/data/models, see PROVENANCE.md) -> pv_models_preprocess must give
 *   the golden network input bit for bit (SHA-256 of the float32 tensor), and
 *   the net's output must be within the golden README's tolerances (1e-5).
 * - Tiny detector and SSD: the golden 416/512 input tensors are 2-3 MB each,
 *   too big for the repository; these cases read $PRIVID_GOLDEN (default
 *   ../shared/golden beside the checkout) and are skipped, saying so, when it
 *   is absent. The end-to-end tests on the sample photos cover the detectors
 *   without it.
 * - Weight files: missing, truncated, trailing, corrupt, mismatched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include "common/error.h"
#include "models/models.h"
#include "models/weights.h"

static const char *models_dir(void)
{
    static char buf[4096];
    const char *env = getenv("PRIVID_MODELS");
    if (env == NULL || env[0] == '\0')
        return PV_DEFAULT_MODELS;
    snprintf(buf, sizeof(buf), "%s/model", env);
    return buf;
}

static const char *golden_dir(void)
{
    const char *env = getenv("PRIVID_GOLDEN");
    return env != NULL && env[0] != '\0' ? env : PV_DEFAULT_GOLDEN;
}

/* Reads exactly `want` bytes (or any size when want == 0) into a new buffer. */
static void *read_all(const char *path, size_t want, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (sz < 0 || (want != 0 && (size_t)sz != want)) {
        fclose(f);
        return NULL;
    }
    void *buf = malloc(sz ? (size_t)sz : 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    if (len_out != NULL)
        *len_out = (size_t)sz;
    return buf;
}

static void sha256_hex(char out[65], const void *data, size_t len)
{
    unsigned char md[32];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static float max_abs_diff(const float *a, const float *b, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) /* NaN counts as a difference */
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

typedef struct {
    pv_net_t *recog, *landmark, *tiny, *ssd;
    pv_net_scratch_t *scratch;
} nets_t;

static int setup(void **state)
{
    static nets_t n;
    char msg[256];
    const char *dir = models_dir();
    int ret = pv_net_load_msg(&n.recog, PV_NET_RECOGNITION, dir, msg, sizeof(msg));
    if (ret != 0)
        fprintf(stderr, "loading the recognition net from %s: %s\n", dir, msg);
    assert_int_equal(ret, 0);
    assert_int_equal(pv_net_load_msg(&n.landmark, PV_NET_LANDMARK68, dir, msg, sizeof(msg)), 0);
    assert_int_equal(pv_net_load_msg(&n.tiny, PV_NET_TINY_FACE, dir, msg, sizeof(msg)), 0);
    assert_int_equal(pv_net_load_msg(&n.ssd, PV_NET_SSD, dir, msg, sizeof(msg)), 0);
    assert_int_equal(pv_net_scratch_create(&n.scratch, 0), 0);
    *state = &n;
    return 0;
}

static int teardown(void **state)
{
    nets_t *n = *state;
    pv_net_free(n->recog);
    pv_net_free(n->landmark);
    pv_net_free(n->tiny);
    pv_net_free(n->ssd);
    pv_net_scratch_free(n->scratch);
    return 0;
}

/* Each line of cases.txt: kind name crop_file w h input_sha256 expected_file. */
static void run_crop_cases(nets_t *n, const char *want_kind)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/cases.txt", PV_TEST_DATA);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char kind[32], name[64], crop_file[128], sha[80], exp_file[128];
    int w, h, count = 0;
    while (fscanf(f, "%31s %63s %127s %d %d %79s %127s", kind, name, crop_file, &w, &h, sha, exp_file) == 7) {
        if (strcmp(kind, want_kind) != 0)
            continue;
        const int is_recog = strcmp(kind, "recog") == 0;
        const pv_net_t *net = is_recog ? n->recog : n->landmark;
        const int size = is_recog ? 150 : 112;
        const size_t out_n = is_recog ? 128 : 136;
        snprintf(path, sizeof(path), "%s/%s", PV_TEST_DATA, crop_file);
        uint8_t *crop = read_all(path, (size_t)w * h * 3, NULL);
        assert_non_null(crop);
        snprintf(path, sizeof(path), "%s/%s", PV_TEST_DATA, exp_file);
        float *expect = read_all(path, out_n * sizeof(float), NULL);
        assert_non_null(expect);

        float *input = malloc((size_t)size * size * 3 * sizeof(float));
        assert_non_null(input);
        assert_int_equal(pv_models_preprocess(input, size, crop, w, h, (size_t)w * 3, 1), 0);
        char got[65];
        sha256_hex(got, input, (size_t)size * size * 3 * sizeof(float));
        if (strcmp(got, sha) != 0)
            fail_msg("%s %s: preprocessed input differs from the golden tensor", kind, name);

        float out[136];
        assert_int_equal(pv_net_output_len(net, size), out_n);
        assert_int_equal(pv_net_run(out, out_n, net, n->scratch, input, size), 0);
        float d = max_abs_diff(out, expect, out_n);
        printf("%s %s: max |diff| %.3g\n", kind, name, d);
        if (!(d <= 1e-5f))
            fail_msg("%s %s: output differs by %g (tolerance 1e-5)", kind, name, d);
        /* A second run on the warm arena gives the same bits. */
        float again[136];
        assert_int_equal(pv_net_run(again, out_n, net, n->scratch, input, size), 0);
        assert_memory_equal(out, again, out_n * sizeof(float));
        free(input);
        free(crop);
        free(expect);
        count++;
    }
    fclose(f);
    assert_true(count >= 2);
}

static void test_recognition(void **state)
{
    run_crop_cases(*state, "recog");
}

static void test_landmarks(void **state)
{
    run_crop_cases(*state, "landmark");
}

static int golden_present(void)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/tiny_cases/index.json", golden_dir());
    return stat(path, &st) == 0;
}

static float *golden_f32(const char *sub, const char *file, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s/%s", golden_dir(), sub, file);
    float *p = read_all(path, n * sizeof(float), NULL);
    if (p == NULL)
        fail_msg("cannot read %s (%zu floats)", path, n);
    return p;
}

static const char *const detector_cases[] = {"sample1", "sample2", "sample6", "sample5_portrait_crop"};

static void test_tiny(void **state)
{
    nets_t *n = *state;
    if (!golden_present()) {
        printf("skipped: no golden tensors at %s (set PRIVID_GOLDEN)\n", golden_dir());
        skip();
    }
    for (size_t i = 0; i < 4; i++) {
        char file[128];
        snprintf(file, sizeof(file), "%s_input_416x416x3_f32.bin", detector_cases[i]);
        float *in = golden_f32("tiny_cases", file, 416 * 416 * 3);
        snprintf(file, sizeof(file), "%s_raw_13x13x25_f32.bin", detector_cases[i]);
        float *expect = golden_f32("tiny_cases", file, 13 * 13 * 25);
        float out[13 * 13 * 25];
        assert_int_equal(pv_net_output_len(n->tiny, 416), 13 * 13 * 25);
        assert_int_equal(pv_net_run(out, 13 * 13 * 25, n->tiny, n->scratch, in, 416), 0);
        float d = max_abs_diff(out, expect, 13 * 13 * 25);
        printf("tiny %s: max |diff| %.3g\n", detector_cases[i], d);
        if (!(d <= 5e-4f))
            fail_msg("tiny %s: raw output differs by %g (tolerance 5e-4)", detector_cases[i], d);
        free(in);
        free(expect);
    }
}

static void test_ssd(void **state)
{
    nets_t *n = *state;
    if (!golden_present()) {
        printf("skipped: no golden tensors at %s (set PRIVID_GOLDEN)\n", golden_dir());
        skip();
    }
    const size_t na = PV_SSD_ANCHORS;
    float *out = malloc(PV_SSD_OUTPUT_LEN * sizeof(float));
    float *boxes = malloc(na * 4 * sizeof(float)), *scores = malloc(na * sizeof(float));
    assert_true(out && boxes && scores);
    for (size_t i = 0; i < 4; i++) {
        char file[128];
        snprintf(file, sizeof(file), "%s_input_512x512x3_f32.bin", detector_cases[i]);
        float *in = golden_f32("ssd_cases", file, 512 * 512 * 3);
        snprintf(file, sizeof(file), "%s_box_encodings_5118x4_f32.bin", detector_cases[i]);
        float *enc = golden_f32("ssd_cases", file, na * 4);
        snprintf(file, sizeof(file), "%s_decoded_boxes_5118x4_f32.bin", detector_cases[i]);
        float *dec = golden_f32("ssd_cases", file, na * 4);
        snprintf(file, sizeof(file), "%s_scores_5118_f32.bin", detector_cases[i]);
        float *sc = golden_f32("ssd_cases", file, na);
        assert_int_equal(pv_net_output_len(n->ssd, 512), PV_SSD_OUTPUT_LEN);
        assert_int_equal(pv_net_run(out, PV_SSD_OUTPUT_LEN, n->ssd, n->scratch, in, 512), 0);
        assert_int_equal(pv_net_ssd_decode(boxes, scores, n->ssd, out), 0);
        float de = max_abs_diff(out, enc, na * 4), db = max_abs_diff(boxes, dec, na * 4),
              ds = max_abs_diff(scores, sc, na);
        printf("ssd %s: encodings %.3g boxes %.3g scores %.3g\n", detector_cases[i], de, db, ds);
        if (!(de <= 1e-4f && db <= 1e-4f && ds <= 1e-5f))
            fail_msg("ssd %s: differs (encodings %g, boxes %g, scores %g)", detector_cases[i], de, db, ds);
        free(in);
        free(enc);
        free(dec);
        free(sc);
    }
    free(out);
    free(boxes);
    free(scores);
}

/* The arena reaches its high-water size on the first run and stays there. */
static void test_steady_state(void **state)
{
    nets_t *n = *state;
    pv_net_scratch_t *s;
    assert_int_equal(pv_net_scratch_create(&s, 0), 0);
    float *in = calloc(150 * 150 * 3, sizeof(float)), out[128];
    assert_non_null(in);
    for (int i = 0; i < 150 * 150 * 3; i++)
        in[i] = (float)(i % 251);
    assert_int_equal(pv_net_run(out, 128, n->recog, s, in, 150), 0);
    size_t bytes = pv_net_scratch_bytes(s);
    assert_true(bytes > 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pv_net_run(out, 128, n->recog, s, in, 150), 0);
        assert_int_equal(pv_net_scratch_bytes(s), bytes);
    }
    assert_true(pv_net_scratch_flops(s) > 1e8);
    /* a too-small limit is refused with PV_ELIMIT, not a crash */
    pv_net_scratch_t *tiny;
    assert_int_equal(pv_net_scratch_create(&tiny, 4096), 0);
    assert_int_equal(pv_net_run(out, 128, n->recog, tiny, in, 150), PV_ELIMIT);
    pv_net_scratch_free(tiny);
    /* wrong sizes and short output buffers */
    assert_int_equal(pv_net_run(out, 127, n->recog, s, in, 150), PV_EINVAL);
    assert_int_equal(pv_net_output_len(n->tiny, 100), 0);
    assert_int_equal(pv_net_run(out, 128, n->tiny, s, in, 100), PV_EINVAL);
    free(in);
    pv_net_scratch_free(s);
}

/* ---- weight files ---------------------------------------------------- */

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* A temp model dir holding a (possibly altered) copy of the tiny detector. */
static void make_dir(char *dir, size_t cap, const char *manifest, size_t mlen, const void *bin, size_t blen)
{
    snprintf(dir, cap, "/tmp/pv-models-test.XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[4096];
    if (manifest != NULL) {
        snprintf(path, sizeof(path), "%s/tiny_face_detector_model-weights_manifest.json", dir);
        write_file(path, manifest, mlen);
    }
    if (bin != NULL) {
        snprintf(path, sizeof(path), "%s/tiny_face_detector_model.bin", dir);
        write_file(path, bin, blen);
    }
}

static void remove_dir(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/tiny_face_detector_model-weights_manifest.json", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/tiny_face_detector_model.bin", dir);
    unlink(path);
    rmdir(dir);
}

static int load_tiny(const char *dir, char *msg, size_t msglen)
{
    pv_net_t *net = NULL;
    int ret = pv_net_load_msg(&net, PV_NET_TINY_FACE, dir, msg, msglen);
    if (ret == 0)
        assert_non_null(net);
    else
        assert_null(net);
    pv_net_free(net);
    return ret;
}

static char *replace_once(const char *s, const char *from, const char *to)
{
    const char *p = strstr(s, from);
    assert_non_null(p);
    size_t n = strlen(s) - strlen(from) + strlen(to);
    char *r = malloc(n + 1);
    assert_non_null(r);
    memcpy(r, s, (size_t)(p - s));
    strcpy(r + (p - s), to);
    strcat(r, p + strlen(from));
    return r;
}

static void test_bad_weights(void **state)
{
    (void)state;
    char path[8192], dir[64], msg[256];
    size_t mlen, blen;
    snprintf(path, sizeof(path), "%s/tiny_face_detector_model-weights_manifest.json", models_dir());
    char *manifest = read_all(path, 0, &mlen);
    snprintf(path, sizeof(path), "%s/tiny_face_detector_model.bin", models_dir());
    unsigned char *bin = read_all(path, 0, &blen);
    assert_true(manifest && bin);
    manifest = realloc(manifest, mlen + 1);
    manifest[mlen] = '\0';

    /* intact copy loads */
    make_dir(dir, sizeof(dir), manifest, mlen, bin, blen);
    assert_int_equal(load_tiny(dir, msg, sizeof(msg)), 0);
    remove_dir(dir);

    /* missing manifest, missing .bin */
    make_dir(dir, sizeof(dir), NULL, 0, bin, blen);
    assert_int_equal(load_tiny(dir, msg, sizeof(msg)), PV_ENOTFOUND);
    assert_non_null(strstr(msg, "manifest"));
    remove_dir(dir);
    make_dir(dir, sizeof(dir), manifest, mlen, NULL, 0);
    assert_int_equal(load_tiny(dir, msg, sizeof(msg)), PV_ENOTFOUND);
    remove_dir(dir);

    /* truncated .bin, trailing bytes, empty .bin */
    make_dir(dir, sizeof(dir), manifest, mlen, bin, blen - 1);
    assert_int_equal(load_tiny(dir, msg, sizeof(msg)), PV_EFORMAT);
    assert_non_null(strstr(msg, "short"));
    remove_dir(dir);
    unsigned char *longer = malloc(blen + 7);
    memcpy(longer, bin, blen);
    memset(longer + blen, 0xab, 7);
    make_dir(dir, sizeof(dir), manifest, mlen, longer, blen + 7);
    assert_int_equal(load_tiny(dir, msg, sizeof(msg)), PV_EFORMAT);
    remove_dir(dir);
    free(longer);
    make_dir(dir, sizeof(dir), manifest, mlen, bin, 0);
    assert_int_equal(load_tiny(dir, msg, sizeof(msg)), PV_EFORMAT);
    remove_dir(dir);

    /* corrupt JSON, wrong top level, truncated manifest */
    make_dir(dir, sizeof(dir), "[{\"paths\":", 10, bin, blen);
    assert_int_equal(load_tiny(dir, msg, sizeof(msg)), PV_EFORMAT);
    remove_dir(dir);
    make_dir(dir, sizeof(dir), "{}", 2, bin, blen);
    assert_int_equal(load_tiny(dir, msg, sizeof(msg)), PV_EFORMAT);
    remove_dir(dir);
    make_dir(dir, sizeof(dir), manifest, mlen / 2, bin, blen);
    assert_int_equal(load_tiny(dir, msg, sizeof(msg)), PV_EFORMAT);
    remove_dir(dir);

    /* a path escaping the folder */
    char *esc = replace_once(manifest, "tiny_face_detector_model.bin", "../tiny_face_detector_model.bin");
    make_dir(dir, sizeof(dir), esc, strlen(esc), bin, blen);
    assert_int_equal(load_tiny(dir, msg, sizeof(msg)), PV_EFORMAT);
    remove_dir(dir);
    free(esc);

    /* a renamed tensor: the net misses one it needs */
    char *ren = replace_once(manifest, "conv0/bias", "conv0/biaz");
    make_dir(dir, sizeof(dir), ren, strlen(ren), bin, blen);
    assert_int_equal(load_tiny(dir, msg, sizeof(msg)), PV_EFORMAT);
    assert_non_null(strstr(msg, "conv0/bias"));
    remove_dir(dir);
    free(ren);

    /* an unknown dtype */
    char *dt = replace_once(manifest, "\"float32\"", "\"complex64\"");
    make_dir(dir, sizeof(dir), dt, strlen(dt), bin, blen);
    assert_int_equal(load_tiny(dir, msg, sizeof(msg)), PV_EFORMAT);
    remove_dir(dir);
    free(dt);

    /* wmap directly: a mismatched shape is named in the message */
    wmap_t m;
    assert_int_equal(wmap_load_mem(&m, manifest, mlen, bin, blen, msg, sizeof(msg)), 0);
    float *w = NULL;
    assert_int_equal(wmap_take(&w, &m, "conv0/bias", 1, 17), PV_EFORMAT);
    assert_null(w);
    assert_non_null(strstr(msg, "shape"));
    assert_int_equal(wmap_take(&w, &m, "nope", 1, 1), PV_EFORMAT);
    wmap_dispose(&m);
    /* a gigantic declared shape is refused before allocating */
    const char *huge = "[{\"paths\":[\"x.bin\"],\"weights\":[{\"name\":\"a\",\"shape\":[16777216,16777216],"
                       "\"dtype\":\"float32\"}]}]";
    assert_int_equal(wmap_load_mem(&m, huge, strlen(huge), bin, blen, msg, sizeof(msg)), PV_ELIMIT);

    free(manifest);
    free(bin);
}

int main(int argc, char **argv)
{
    (void)argc;
    pv_models_blas_init(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recognition), cmocka_unit_test(test_landmarks),  cmocka_unit_test(test_tiny),
        cmocka_unit_test(test_ssd),         cmocka_unit_test(test_steady_state), cmocka_unit_test(test_bad_weights),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
