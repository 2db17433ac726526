/*
 * bench_face: the whole face pipeline, single thread, as the gateway runs it
 * (encoded bytes in, faces with descriptors out). Cases:
 *  - frame640: a 640x480 JPEG (quality 90) with one face, cut from sample2
 *    around its largest face and encoded here with libjpeg, tiny detector
 *    (target <= 30 ms);
 *  - the same frame with SSD;
 *  - sample1.jpg as shipped (1920x1280, three faces), tiny and SSD.
 * Warm-up, then RUNS timed runs (default 30); one JSON line per case with
 * the median and p90 of the total and the median of each stage.
 *   bench_face [RUNS]      (models: $PRIVID_MODELS, default build/models/face-api-1.7.15)
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>
#include <string.h>
#include <time.h>
#include "models/models.h"
#include "recognizer/face.h"

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

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz);
    if (b != NULL && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)sz;
    return b;
}

/* Encodes w x h RGB (rows stride apart) as a baseline JPEG in memory. */
static uint8_t *encode_jpeg(const uint8_t *rgb, int w, int h, size_t stride, size_t *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    unsigned char *out = NULL;
    unsigned long outlen = 0;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &outlen);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * stride);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    *len = outlen;
    return out;
}

static void run_case(const char *name, pv_face_ctx_t *ctx, const uint8_t *data, size_t len, pv_detector_t det,
                     int runs)
{
    static pv_face_result_t res;
    pv_face_opts_t o;
    pv_face_opts_default(&o);
    o.detector = det;
    double *tot = calloc((size_t)runs, sizeof(double)), *st[4];
    for (int k = 0; k < 4; k++)
        st[k] = calloc((size_t)runs, sizeof(double));
    char msg[256];
    int nfaces = 0;
    for (int i = 0; i < 3; i++)
        if (pv_face_analyze(&res, ctx, data, len, NULL, &o, msg, sizeof(msg)) != 0) {
            fprintf(stderr, "bench_face: %s: %s\n", name, msg);
            exit(1);
        }
    for (int i = 0; i < runs; i++) {
        memset(&res.timing, 0, sizeof(res.timing));
        double t0 = now_ms();
        pv_face_analyze(&res, ctx, data, len, NULL, &o, msg, sizeof(msg));
        tot[i] = now_ms() - t0;
        st[0][i] = res.timing.decode_ms;
        st[1][i] = res.timing.detect_ms;
        st[2][i] = res.timing.landmarks_ms;
        st[3][i] = res.timing.embed_ms;
        nfaces = res.nfaces;
    }
    qsort(tot, (size_t)runs, sizeof(double), cmp);
    for (int k = 0; k < 4; k++)
        qsort(st[k], (size_t)runs, sizeof(double), cmp);
    printf("{\"case\":\"%s\",\"detector\":\"%s\",\"faces\":%d,\"runs\":%d,\"median_ms\":%.2f,\"p90_ms\":%.2f,"
           "\"decode_ms\":%.2f,\"detect_ms\":%.2f,\"landmarks_ms\":%.2f,\"embed_ms\":%.2f,\"retried\":%s,"
           "\"openblas_core\":\"%s\"}\n",
           name, det == PV_DETECTOR_SSD ? "ssd" : "tiny", nfaces, runs, tot[runs / 2], tot[runs * 9 / 10],
           st[0][runs / 2], st[1][runs / 2], st[2][runs / 2], st[3][runs / 2], res.retried ? "true" : "false",
           pv_models_blas_core());
    fflush(stdout);
    free(tot);
    for (int k = 0; k < 4; k++)
        free(st[k]);
}

int main(int argc, char **argv)
{
    pv_models_blas_init(argv);
    int runs = argc > 1 ? atoi(argv[1]) : 30;
    if (runs < 1 || runs > 100000) {
        fprintf(stderr, "usage: bench_face [RUNS]\n");
        return 2;
    }
    const char *root = getenv("PRIVID_MODELS");
    if (root == NULL || root[0] == '\0')
        root = PV_DEFAULT_MODELS;
    char path[4096], msg[256] = "";
    snprintf(path, sizeof(path), "%s/model", root);
    pv_face_engine_t *eng;
    pv_face_ctx_t *ctx;
    if (pv_face_engine_load(&eng, path, msg, sizeof(msg)) != 0 || pv_face_ctx_create(&ctx, eng) != 0) {
        fprintf(stderr, "bench_face: cannot load the networks from %s: %s\n", path, msg);
        return 1;
    }
    size_t len1, len2;
    snprintf(path, sizeof(path), "%s/demo/sample1.jpg", root);
    uint8_t *s1 = read_file(path, &len1);
    snprintf(path, sizeof(path), "%s/demo/sample2.jpg", root);
    uint8_t *s2 = read_file(path, &len2);
    if (s1 == NULL || s2 == NULL) {
        fprintf(stderr, "bench_face: sample photos missing under %s/demo\n", root);
        return 1;
    }

    /* the 640x480 frame: centred on sample2's largest face, clipped to the photo */
    static pv_face_result_t res;
    pv_image_t img;
    if (pv_image_decode(&img, s2, len2, NULL, msg, sizeof(msg)) != 0 ||
        pv_face_run(&res, ctx, &img, NULL) != 0 || res.nfaces < 1) {
        fprintf(stderr, "bench_face: cannot prepare the frame: %s\n", msg);
        return 1;
    }
    int best = 0;
    for (int i = 1; i < res.nfaces; i++)
        if (res.faces[i].box.w > res.faces[best].box.w)
            best = i;
    int x = (int)(res.faces[best].box.x + res.faces[best].box.w / 2) - 320;
    int y = (int)(res.faces[best].box.y + res.faces[best].box.h / 2) - 240;
    x = x < 0 ? 0 : x + 640 > img.w ? img.w - 640 : x;
    y = y < 0 ? 0 : y + 480 > img.h ? img.h - 480 : y;
    size_t flen;
    uint8_t *frame =
        encode_jpeg(img.rgb + (size_t)y * img.stride + (size_t)x * 3, 640, 480, img.stride, &flen);
    pv_image_dispose(&img);

    run_case("frame640", ctx, frame, flen, PV_DETECTOR_TINY, runs);
    run_case("frame640", ctx, frame, flen, PV_DETECTOR_SSD, runs);
    run_case("sample1_1920", ctx, s1, len1, PV_DETECTOR_TINY, runs);
    run_case("sample1_1920", ctx, s1, len1, PV_DETECTOR_SSD, runs);
    free(frame);
    free(s1);
    free(s2);
    pv_face_ctx_free(ctx);
    pv_face_engine_free(eng);
    return 0;
}
