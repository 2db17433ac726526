/*
 * The face pipeline end to end on real photos against the reference
 * JavaScript: the six sample photos of the verified model download, decoded
 * by our libjpeg-turbo path, must give the faces of tests/data/face/
 * expected.json (extracted from ../shared/golden, see PROVENANCE.md): same
 * count, boxes IoU >= 0.95, descriptors within 1e-3 of the libjpeg-turbo
 * reference when our pixels hash the same, and within 0.15 of the jpeg-js
 * reference regardless. Also: tight face crops found through the padded
 * retry, the quality record, determinism, and bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "common/error.h"
#include "models/models.h"
#include "recognizer/face.h"

static pv_face_engine_t *eng;
static pv_face_ctx_t *ctx;
static json_t *expected;

static const char *models_root(void)
{
    const char *env = getenv("PRIVID_MODELS");
    return env != NULL && env[0] != '\0' ? env : PV_DEFAULT_MODELS;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(sz > 0 ? (size_t)sz : 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *len = (size_t)sz;
    return buf;
}

static void decode_sample(pv_image_t *img, const char *file)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/demo/%s", models_root(), file);
    size_t len;
    uint8_t *data = read_file(path, &len);
    if (data == NULL)
        fail_msg("%s is missing: run deploy/setup.sh (it fetches the verified model package)", path);
    char msg[256] = "";
    int rc = pv_image_decode(img, data, len, NULL, msg, sizeof(msg));
    free(data);
    if (rc != 0)
        fail_msg("%s: %s", file, msg);
}

static void sha256_hex(char out[65], const void *data, size_t len)
{
    unsigned char md[32];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static pv_box_t json_box(json_t *a)
{
    return (pv_box_t){json_number_value(json_array_get(a, 0)), json_number_value(json_array_get(a, 1)),
                      json_number_value(json_array_get(a, 2)), json_number_value(json_array_get(a, 3))};
}

static double box_iou(pv_box_t a, pv_box_t b)
{
    double iw = fmin(a.x + a.w, b.x + b.w) - fmax(a.x, b.x);
    double ih = fmin(a.y + a.h, b.y + b.h) - fmax(a.y, b.y);
    if (iw <= 0 || ih <= 0)
        return 0;
    double inter = iw * ih;
    return inter / (a.w * a.h + b.w * b.h - inter);
}

/* Index of the face in res best overlapping `b`, and that IoU. */
static int best_match(const pv_face_result_t *res, pv_box_t b, double *iou_out)
{
    int best = -1;
    double bi = 0;
    for (int i = 0; i < res->nfaces; i++) {
        double v = box_iou(res->faces[i].box, b);
        if (v > bi) {
            bi = v;
            best = i;
        }
    }
    *iou_out = bi;
    return best;
}

static double desc_dist_json(const float *d, json_t *arr)
{
    double s = 0;
    for (int k = 0; k < PV_FACE_DESC_DIM; k++) {
        double v = d[k] - json_number_value(json_array_get(arr, k));
        s += v * v;
    }
    return sqrt(s);
}

static double desc_maxabs_json(const float *d, json_t *arr)
{
    double m = 0;
    for (int k = 0; k < PV_FACE_DESC_DIM; k++)
        m = fmax(m, fabs(d[k] - json_number_value(json_array_get(arr, k))));
    return m;
}

static int setup(void **state)
{
    (void)state;
    char dir[4096], msg[256] = "";
    snprintf(dir, sizeof(dir), "%s/model", models_root());
    if (pv_face_engine_load(&eng, dir, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "cannot load the networks from %s: %s\n", dir, msg);
        return -1;
    }
    if (pv_face_ctx_create(&ctx, eng) != 0)
        return -1;
    json_error_t err;
    expected = json_load_file(PV_TEST_DATA "/expected.json", 0, &err);
    if (expected == NULL) {
        fprintf(stderr, "expected.json: %s\n", err.text);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pv_face_ctx_free(ctx);
    pv_face_engine_free(eng);
    json_decref(expected);
    return 0;
}

/* SSD end to end on the six sample photos. */
static void test_ssd_parity(void **state)
{
    (void)state;
    static pv_face_result_t res;
    size_t i;
    json_t *im;
    double worst_iou = 1, worst_lj = 0, worst_js = 0, worst_lm = 0;
    json_array_foreach(json_object_get(expected, "images"), i, im)
    {
        const char *file = json_string_value(json_object_get(im, "file"));
        pv_image_t img;
        decode_sample(&img, file);
        assert_int_equal(img.w, json_integer_value(json_object_get(im, "width")));
        assert_int_equal(img.h, json_integer_value(json_object_get(im, "height")));
        char hex[65];
        sha256_hex(hex, img.rgb, (size_t)img.w * img.h * 3);
        int same_pixels = strcmp(hex, json_string_value(json_object_get(im, "rgb_sha256"))) == 0;
        assert_true(same_pixels); /* our decoder is libjpeg-turbo 2.1.5 with the reference's settings */

        pv_face_opts_t o;
        pv_face_opts_default(&o);
        o.detector = PV_DETECTOR_SSD;
        o.no_retry = 1;
        assert_int_equal(pv_face_run(&res, ctx, &img, &o), 0);
        json_t *ssd = json_object_get(im, "ssd"), *jsf = json_object_get(im, "jpegjs_ssd");
        assert_int_equal(res.nfaces, (int)json_array_size(ssd));
        size_t k;
        json_t *ef;
        json_array_foreach(ssd, k, ef)
        {
            double v;
            int m = best_match(&res, json_box(json_object_get(ef, "box")), &v);
            assert_true(m >= 0);
            worst_iou = fmin(worst_iou, v);
            if (v < 0.95)
                fail_msg("%s ssd face %zu: IoU %.4f", file, k, v);
            const pv_face_t *f = &res.faces[m];
            assert_true(fabs(f->score - json_number_value(json_object_get(ef, "score"))) < 1e-3);
            json_t *lms = json_object_get(ef, "landmarks");
            for (int p = 0; p < PV_FACE_LANDMARKS; p++)
                for (int c = 0; c < 2; c++)
                    worst_lm =
                        fmax(worst_lm, fabs(f->landmarks[p][c] -
                                            json_number_value(json_array_get(json_array_get(lms, p), c))));
            double lj = desc_maxabs_json(f->descriptor, json_object_get(ef, "descriptor"));
            worst_lj = fmax(worst_lj, lj);
            if (lj > 1e-3)
                fail_msg("%s ssd face %zu: descriptor max |diff| %.2e vs libjpeg-turbo reference", file, k,
                         lj);
            /* the jpeg-js reference face at the same place */
            double vj;
            json_t *jf = NULL;
            size_t q;
            json_t *cand;
            double bestj = 0;
            json_array_foreach(jsf, q, cand)
            {
                vj = box_iou(f->box, json_box(json_object_get(cand, "box")));
                if (vj > bestj) {
                    bestj = vj;
                    jf = cand;
                }
            }
            assert_non_null(jf);
            double dj = desc_dist_json(f->descriptor, json_object_get(jf, "descriptor"));
            worst_js = fmax(worst_js, dj);
            assert_true(dj < 0.15);
        }
        pv_image_dispose(&img);
    }
    print_message(
        "ssd: worst IoU %.5f, landmarks max |diff| %.2e px, descriptor max |diff| %.2e (libjpeg-turbo ref), "
        "worst distance %.4f (jpeg-js ref)\n",
        worst_iou, worst_lm, worst_lj, worst_js);
    assert_true(worst_lm < 0.05);
}

/* Tiny detector at 416 on the six sample photos: same faces as the reference. */
static void test_tiny_parity(void **state)
{
    (void)state;
    static pv_face_result_t res;
    size_t i;
    json_t *im;
    double worst = 1;
    json_array_foreach(json_object_get(expected, "images"), i, im)
    {
        const char *file = json_string_value(json_object_get(im, "file"));
        pv_image_t img;
        decode_sample(&img, file);
        pv_face_opts_t o;
        pv_face_opts_default(&o);
        o.no_retry = 1;
        o.no_descriptor = 1;
        assert_int_equal(pv_face_run(&res, ctx, &img, &o), 0);
        json_t *tiny = json_object_get(im, "tiny");
        assert_int_equal(res.nfaces, (int)json_array_size(tiny));
        size_t k;
        json_t *ef;
        json_array_foreach(tiny, k, ef)
        {
            double v;
            int m = best_match(&res, json_box(json_object_get(ef, "box")), &v);
            assert_true(m >= 0);
            worst = fmin(worst, v);
            if (v < 0.95)
                fail_msg("%s tiny face %zu: IoU %.4f", file, k, v);
            assert_true(fabs(res.faces[m].score - json_number_value(json_object_get(ef, "score"))) < 1e-3);
        }
        pv_image_dispose(&img);
    }
    print_message("tiny: worst IoU %.5f\n", worst);
}

/* Copies a region of img (clipped) into a new image. */
static void crop_image(pv_image_t *out, const pv_image_t *img, int x, int y, int w, int h)
{
    if (x < 0)
        x = 0;
    if (y < 0)
        y = 0;
    if (x + w > img->w)
        w = img->w - x;
    if (y + h > img->h)
        h = img->h - y;
    memset(out, 0, sizeof(*out));
    out->rgb = malloc((size_t)w * h * 3);
    assert_non_null(out->rgb);
    for (int r = 0; r < h; r++)
        memcpy(out->rgb + (size_t)r * w * 3, img->rgb + (size_t)(y + r) * img->stride + (size_t)x * 3,
               (size_t)w * 3);
    out->w = out->orig_w = w;
    out->h = out->orig_h = h;
    out->stride = (size_t)w * 3;
    out->format = img->format;
    out->orientation = 1;
}

/* A tight crop of a face (as API users send) is still found, through the
 * padded retry, and its descriptor stays close to the same face in the photo. */
static void test_tight_crop_retry(void **state)
{
    (void)state;
    static pv_face_result_t full, crop;
    pv_image_t img, c;
    decode_sample(&img, "sample1.jpg");
    pv_face_opts_t o;
    pv_face_opts_default(&o);
    o.detector = PV_DETECTOR_SSD;
    assert_int_equal(pv_face_run(&full, ctx, &img, &o), 0);
    assert_true(full.nfaces >= 1);
    assert_int_equal(full.retried, 0);
    int found = 0, retried = 0;
    for (int det = 0; det < 2; det++) {
        o.detector = det ? PV_DETECTOR_SSD : PV_DETECTOR_TINY;
        for (int i = 0; i < full.nfaces; i++) {
            const pv_face_t *f = &full.faces[i];
            /* the descriptor crop: the face fills the frame */
            crop_image(&c, &img, (int)f->descriptor_crop.x, (int)f->descriptor_crop.y,
                       (int)f->descriptor_crop.w, (int)f->descriptor_crop.h);
            assert_int_equal(pv_face_run(&crop, ctx, &c, &o), 0);
            retried += crop.retried;
            if (crop.nfaces >= 1) {
                found++;
                double d = pv_face_distance(crop.faces[0].descriptor, f->descriptor);
                print_message("%s crop of face %d (%dx%d): %d face(s)%s, box %.0f,%.0f %.0fx%.0f score %.2f, "
                              "distance to the in-photo face %.3f\n",
                              det ? "ssd" : "tiny", i, c.w, c.h, crop.nfaces,
                              crop.retried ? " after the padded retry" : "", crop.faces[0].box.x,
                              crop.faces[0].box.y, crop.faces[0].box.w, crop.faces[0].box.h,
                              crop.faces[0].score, d);
                assert_true(d < 0.3);
                /* coordinates are in the crop's frame */
                assert_true(crop.faces[0].box.x > -0.5 * c.w && crop.faces[0].box.x < c.w);
            }
            pv_image_dispose(&c);
        }
    }
    assert_int_equal(found, 2 * full.nfaces);
    assert_true(retried > 0); /* the retry is what finds (some of) them */
    pv_image_dispose(&img);
}

/* Quality: blur lowers sharpness; a mirrored face has the opposite yaw;
 * face size is the box's smaller side. Determinism: same input, same bytes. */
static void test_quality_and_determinism(void **state)
{
    (void)state;
    static pv_face_result_t a, b, m;
    pv_image_t img;
    decode_sample(&img, "sample1.jpg");
    pv_face_opts_t o;
    pv_face_opts_default(&o);
    o.detector = PV_DETECTOR_SSD;
    assert_int_equal(pv_face_run(&a, ctx, &img, &o), 0);
    assert_int_equal(pv_face_run(&b, ctx, &img, &o), 0);
    assert_int_equal(a.nfaces, b.nfaces);
    for (int i = 0; i < a.nfaces; i++)
        assert_memory_equal(a.faces[i].descriptor, b.faces[i].descriptor, sizeof(a.faces[i].descriptor));

    /* mirror horizontally */
    pv_image_t mir = img;
    mir.rgb = malloc((size_t)img.h * img.stride);
    assert_non_null(mir.rgb);
    for (int r = 0; r < img.h; r++)
        for (int x = 0; x < img.w; x++)
            memcpy(mir.rgb + r * img.stride + (size_t)x * 3,
                   img.rgb + r * img.stride + (size_t)(img.w - 1 - x) * 3, 3);
    assert_int_equal(pv_face_run(&m, ctx, &mir, &o), 0);
    assert_int_equal(m.nfaces, a.nfaces);
    int strong = 0;
    for (int i = 0; i < a.nfaces; i++) {
        const pv_face_t *f = &a.faces[i];
        assert_true(f->quality.face_px == fmin(f->box.w, f->box.h));
        assert_true(f->quality.sharpness > 0);
        pv_box_t mb = {img.w - f->box.x - f->box.w, f->box.y, f->box.w, f->box.h};
        double v;
        int j = best_match(&m, mb, &v);
        assert_true(j >= 0 && v > 0.8);
        print_message("face %d: yaw %.1f, mirrored %.1f, sharpness %.1f, size %.0f px\n", i,
                      f->quality.yaw_deg, m.faces[j].quality.yaw_deg, f->quality.sharpness,
                      f->quality.face_px);
        assert_true(fabs(f->quality.yaw_deg + m.faces[j].quality.yaw_deg) < 12);
        if (fabs(f->quality.yaw_deg) > 10)
            strong++;
    }
    free(mir.rgb);

    /* box blur (radius 3) everything: sharpness of every face drops */
    pv_image_t bl = img;
    bl.rgb = malloc((size_t)img.h * img.stride);
    assert_non_null(bl.rgb);
    for (int r = 0; r < img.h; r++)
        for (int x = 0; x < img.w; x++)
            for (int ch = 0; ch < 3; ch++) {
                int s = 0, n = 0;
                for (int dy = -3; dy <= 3; dy++)
                    for (int dx = -3; dx <= 3; dx++) {
                        int yy = r + dy, xx = x + dx;
                        if (yy >= 0 && yy < img.h && xx >= 0 && xx < img.w) {
                            s += img.rgb[yy * img.stride + (size_t)xx * 3 + ch];
                            n++;
                        }
                    }
                bl.rgb[r * img.stride + (size_t)x * 3 + ch] = (uint8_t)(s / n);
            }
    assert_int_equal(pv_face_run(&m, ctx, &bl, &o), 0);
    for (int i = 0; i < m.nfaces; i++) {
        double v;
        int j = best_match(&a, m.faces[i].box, &v);
        if (j < 0 || v < 0.8)
            continue;
        print_message("face %d sharpness %.1f, blurred %.1f\n", j, a.faces[j].quality.sharpness,
                      m.faces[i].quality.sharpness);
        assert_true(m.faces[i].quality.sharpness < 0.5 * a.faces[j].quality.sharpness);
    }
    free(bl.rgb);
    pv_image_dispose(&img);
    (void)strong;
}

/* Bad input: options out of range, undecodable bytes, an image with no face. */
static void test_bad_input(void **state)
{
    (void)state;
    static pv_face_result_t res;
    pv_face_opts_t o;
    char msg[256];
    pv_image_t img;
    decode_sample(&img, "sample2.jpg");
    pv_face_opts_default(&o);
    o.min_score = 1.5;
    assert_int_equal(pv_face_run(&res, ctx, &img, &o), PV_EINVAL);
    pv_face_opts_default(&o);
    o.tiny_size = 100;
    assert_int_equal(pv_face_run(&res, ctx, &img, &o), PV_EINVAL);
    o.tiny_size = 4096;
    assert_int_equal(pv_face_run(&res, ctx, &img, &o), PV_EINVAL);
    pv_face_opts_default(&o);
    o.detector = (pv_detector_t)7;
    assert_int_equal(pv_face_run(&res, ctx, &img, &o), PV_EINVAL);
    assert_int_equal(pv_face_run(&res, ctx, NULL, NULL), PV_EINVAL);
    pv_image_dispose(&img);

    static const uint8_t junk[] = "GIF89a not an image we take";
    msg[0] = '\0';
    assert_int_equal(pv_face_analyze(&res, ctx, junk, sizeof(junk), NULL, NULL, msg, sizeof(msg)),
                     PV_EFORMAT);
    assert_true(msg[0] != '\0');

    /* a flat gray picture has no face, with or without the retry */
    pv_image_t gray = {0};
    gray.w = gray.orig_w = 320;
    gray.h = gray.orig_h = 240;
    gray.stride = 320 * 3;
    gray.rgb = malloc(320 * 240 * 3);
    assert_non_null(gray.rgb);
    memset(gray.rgb, 128, 320 * 240 * 3);
    for (int det = 0; det < 2; det++) {
        pv_face_opts_default(&o);
        o.detector = det ? PV_DETECTOR_SSD : PV_DETECTOR_TINY;
        assert_int_equal(pv_face_run(&res, ctx, &gray, &o), 0);
        assert_int_equal(res.nfaces, 0);
        assert_int_equal(res.retried, 1);
    }
    free(gray.rgb);
}

/* The DCT-downscaled path maps coordinates back to the full-resolution frame. */
static void test_downscaled_coordinates(void **state)
{
    (void)state;
    static pv_face_result_t full, half;
    char path[4096], msg[256];
    snprintf(path, sizeof(path), "%s/demo/sample1.jpg", models_root());
    size_t len;
    uint8_t *data = read_file(path, &len);
    assert_non_null(data);
    pv_image_opts_t io = {0};
    pv_face_opts_t o;
    pv_face_opts_default(&o);
    o.detector = PV_DETECTOR_SSD;
    assert_int_equal(pv_face_analyze(&full, ctx, data, len, &io, &o, msg, sizeof(msg)), 0);
    io.min_long_side = 900; /* 1920 -> 960 */
    assert_int_equal(pv_face_analyze(&half, ctx, data, len, &io, &o, msg, sizeof(msg)), 0);
    free(data);
    assert_int_equal(half.width, 1920);
    assert_int_equal(half.decoded_w, 960);
    assert_int_equal(half.nfaces, full.nfaces);
    for (int i = 0; i < full.nfaces; i++) {
        double v;
        int j = best_match(&half, full.faces[i].box, &v);
        assert_true(j >= 0 && v > 0.85);
        assert_true(pv_face_distance(half.faces[j].descriptor, full.faces[i].descriptor) < 0.3);
    }
    assert_true(full.timing.decode_ms > 0 && full.timing.total_ms >= full.timing.detect_ms);
}

int main(int argc, char **argv)
{
    (void)argc;
    pv_models_blas_init(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ssd_parity),       cmocka_unit_test(test_tiny_parity),
        cmocka_unit_test(test_tight_crop_retry), cmocka_unit_test(test_quality_and_determinism),
        cmocka_unit_test(test_bad_input),        cmocka_unit_test(test_downscaled_coordinates),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
