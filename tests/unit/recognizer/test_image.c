/*
 * recognizer/image: decoding by signature into RGB8.
 * - The face-api demo photos (from $PRIVID_MODELS/demo, skipped when absent)
 *   must decode bit for bit as plain libjpeg-turbo does (golden SHA-256).
 * - Every other image is made here with the libjpeg, libspng and libwebp
 *   encoders or by hand (nothing downloaded): EXIF orientations 1..8, DCT
 *   downscale, grayscale, CMYK, YCCK, progressive, arithmetic, 16-bit,
 *   palette, RGBA, WebP lossy/lossless, animated WebP; then the bad cases:
 *   empty, wrong magic, every truncation, corrupt bytes, zero, 1x1 and
 *   60000x60000 headers.
 * `test_image --write-corpus DIR` writes the fuzz seeds (tests/fuzz/recognizer/corpus_image).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jpeglib.h>
#include <openssl/evp.h>
#include <spng.h>
#include <webp/decode.h>
#include <webp/encode.h>
#include "common/error.h"
#include "recognizer/image.h"

/* ---- helpers ------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n;
} blob_t;

static void blob_free(blob_t *b)
{
    free(b->p);
    b->p = NULL;
    b->n = 0;
}

static blob_t blob_copy(const uint8_t *p, size_t n)
{
    blob_t b = {malloc(n ? n : 1), n};
    assert_non_null(b.p);
    memcpy(b.p, p, n);
    return b;
}

static const char *models_root(void)
{
    const char *env = getenv("PRIVID_MODELS");
    return env != NULL && env[0] != '\0' ? env : PV_DEFAULT_MODELS;
}

static int read_file(blob_t *out, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    out->p = malloc(sz > 0 ? (size_t)sz : 1);
    assert_non_null(out->p);
    out->n = fread(out->p, 1, (size_t)sz, f);
    fclose(f);
    return out->n == (size_t)sz ? 0 : -1;
}

static void sha256_hex(char out[65], const void *data, size_t len)
{
    unsigned char md[32];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

static void put32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void put_le(uint8_t *p, uint32_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The four flat quadrant colours of the test pattern (TL, TR, BL, BR). */
static const uint8_t QUAD[4][3] = {{230, 20, 20}, {20, 200, 40}, {30, 40, 220}, {240, 240, 240}};

/* A w x h RGB pattern of four flat quadrants: asymmetric under any flip. */
static uint8_t *make_pattern(int w, int h)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    assert_non_null(p);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            memcpy(p + ((size_t)y * w + x) * 3, QUAD[(y >= h / 2) * 2 + (x >= w / 2)], 3);
    return p;
}

static int near(const uint8_t *a, const uint8_t *b, int tol)
{
    for (int i = 0; i < 3; i++)
        if (abs((int)a[i] - (int)b[i]) > tol)
            return 0;
    return 1;
}

/* Checks that the centre of each quadrant of a decoded pattern image has the
 * colour `expect` gives for it. */
static void check_quadrants(const pv_image_t *img, const uint8_t expect[4][3], int tol)
{
    for (int q = 0; q < 4; q++) {
        int x = (q & 1) ? img->w * 3 / 4 : img->w / 4, y = (q & 2) ? img->h * 3 / 4 : img->h / 4;
        const uint8_t *px = img->rgb + (size_t)y * img->stride + (size_t)x * 3;
        if (!near(px, expect[q], tol))
            fail_msg("quadrant %d at (%d,%d): got %d,%d,%d want %d,%d,%d", q, x, y, px[0], px[1], px[2],
                     expect[q][0], expect[q][1], expect[q][2]);
    }
}

/* ---- encoders ------------------------------------------------------------ */

typedef struct {
    J_COLOR_SPACE in;   /* JCS_RGB, JCS_GRAYSCALE or JCS_CMYK */
    J_COLOR_SPACE jpeg; /* stored colour space (0 = library default) */
    int quality;
    int progressive;
    int arith;
    int orientation; /* 0 = no EXIF; else the tag value */
    int big_endian;  /* EXIF byte order */
} jpeg_enc_t;

/* An APP1 Exif payload holding only IFD0 Orientation = o. */
static size_t make_exif(uint8_t *p, int o, int big_endian)
{
    int le = !big_endian;
    memcpy(p, "Exif\0\0", 6);
    uint8_t *t = p + 6;
    memset(t, 0, 26);
    memcpy(t, le ? "II" : "MM", 2);
#define W16(q, v)                                                                                            \
    ((le) ? ((q)[0] = (uint8_t)(v), (q)[1] = (uint8_t)((v) >> 8))                                            \
          : ((q)[0] = (uint8_t)((v) >> 8), (q)[1] = (uint8_t)(v)))
    W16(t + 2, 42);
    W16(t + 4 + (le ? 0 : 2), 8); /* IFD0 offset 8 as a 32-bit value */
    W16(t + 8, 1);                /* one entry */
    W16(t + 10, 0x0112);
    W16(t + 12, 3);                /* SHORT */
    W16(t + 14 + (le ? 0 : 2), 1); /* count 1 */
    W16(t + 18, o);                /* value, left-justified */
#undef W16
    return 6 + 26;
}

static blob_t encode_jpeg(const uint8_t *pix, int w, int h, const jpeg_enc_t *e)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    unsigned char *buf = NULL;
    unsigned long len = 0;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &buf, &len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.in_color_space = e->in;
    c.input_components = e->in == JCS_GRAYSCALE ? 1 : e->in == JCS_CMYK ? 4 : 3;
    jpeg_set_defaults(&c);
    if (e->jpeg != JCS_UNKNOWN)
        jpeg_set_colorspace(&c, e->jpeg);
    jpeg_set_quality(&c, e->quality ? e->quality : 100, TRUE);
    if (e->progressive)
        jpeg_simple_progression(&c);
    c.arith_code = e->arith ? TRUE : FALSE;
    jpeg_start_compress(&c, TRUE);
    if (e->orientation) {
        uint8_t exif[64];
        size_t n = make_exif(exif, e->orientation, e->big_endian);
        jpeg_write_marker(&c, JPEG_APP0 + 1, exif, (unsigned)n);
    }
    size_t rs = (size_t)w * c.input_components;
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(pix + c.next_scanline * rs);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    blob_t b = {buf, len};
    return b;
}

static blob_t jpeg_pattern(int w, int h, int orientation)
{
    uint8_t *p = make_pattern(w, h);
    jpeg_enc_t e = {.in = JCS_RGB, .quality = 100, .orientation = orientation, .big_endian = orientation % 2};
    blob_t b = encode_jpeg(p, w, h, &e);
    free(p);
    return b;
}

typedef struct {
    int color_type; /* SPNG_COLOR_TYPE_* */
    int bit_depth;
    int interlace;
} png_enc_t;

/* `pix` is in the PNG's own layout (16-bit samples host-endian). */
static blob_t encode_png(const void *pix, size_t pixlen, int w, int h, const png_enc_t *e,
                         const struct spng_plte *plte)
{
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    assert_non_null(ctx);
    assert_int_equal(spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1), 0);
    struct spng_ihdr ihdr = {.width = (uint32_t)w,
                             .height = (uint32_t)h,
                             .bit_depth = (uint8_t)e->bit_depth,
                             .color_type = (uint8_t)e->color_type,
                             .interlace_method = (uint8_t)e->interlace};
    assert_int_equal(spng_set_ihdr(ctx, &ihdr), 0);
    if (plte != NULL)
        assert_int_equal(spng_set_plte(ctx, (struct spng_plte *)plte), 0);
    int rc = spng_encode_image(ctx, pix, pixlen, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    if (rc != 0)
        fail_msg("spng_encode_image: %s", spng_strerror(rc));
    size_t len = 0;
    int err = 0;
    void *buf = spng_get_png_buffer(ctx, &len, &err);
    assert_int_equal(err, 0);
    assert_non_null(buf);
    spng_ctx_free(ctx);
    blob_t b = {buf, len};
    return b;
}

static blob_t png_pattern(int w, int h)
{
    uint8_t *p = make_pattern(w, h);
    png_enc_t e = {SPNG_COLOR_TYPE_TRUECOLOR, 8, 0};
    blob_t b = encode_png(p, (size_t)w * h * 3, w, h, &e, NULL);
    free(p);
    return b;
}

static blob_t webp_pattern(int w, int h, int lossless)
{
    uint8_t *p = make_pattern(w, h), *out = NULL;
    size_t n =
        lossless ? WebPEncodeLosslessRGB(p, w, h, w * 3, &out) : WebPEncodeRGB(p, w, h, w * 3, 90, &out);
    free(p);
    assert_true(n > 0);
    blob_t b = blob_copy(out, n);
    WebPFree(out);
    return b;
}

/* Decodes and asserts the result code; returns it. */
static int decode(pv_image_t *img, const blob_t *b, const pv_image_opts_t *opts, char *msg, size_t msglen)
{
    int rc = pv_image_decode(img, b->p, b->n, opts, msg, msglen);
    if (rc != 0) {
        assert_null(img->rgb);
        assert_int_equal(img->w, 0);
        assert_true(msg == NULL || msg[0] != '\0');
    } else {
        assert_non_null(img->rgb);
        assert_true(img->w >= 8 && img->h >= 8);
        assert_true(img->stride >= (size_t)img->w * 3);
    }
    return rc;
}

/* ---- demo photos --------------------------------------------------------- */

/* rgb_sha256 per image, copied from ../shared/golden/faces_libjpeg-turbo.json
 * ("image_decoder": libjpeg-turbo 2.1.5, JCS_RGB, default JDCT_ISLOW + fancy
 * upsampling, generated by gen_faces_alt_decoder.js). */
static const struct {
    const char *file;
    int w, h;
    const char *sha;
} GOLDEN[] = {
    {"sample1.jpg", 1920, 1280, "27b4376eabd44d3d37553b1c2854b68d00d49aaed57968280f082d78327f540e"},
    {"sample2.jpg", 1920, 1367, "bd2111ddf3989eeae2c0961bc357880054a71c7e4b884a7a7167aa4716daf2dc"},
    {"sample3.jpg", 1920, 1350, "ee7f68cb00d411f75472f8cec663e44426081c7a7d7a257387649431d397c493"},
    {"sample4.jpg", 1920, 1448, "0c1e1b357527b597685e0ee76b0ad76a296f0bd595a22fe188a67e358a76b51e"},
    {"sample5.jpg", 1920, 1398, "f3b0c618141ae1d678ffc0902812436e14eac24dec59d949d0a7415743c6d88e"},
    {"sample6.jpg", 1920, 1537, "903a80d651bfbcf2e7d516f4722a787441fce9e382d99a5903b15c31c76c1f63"},
};

static void test_samples(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof(path), "%s/demo/%s", models_root(), GOLDEN[0].file);
    if (access(path, R_OK) != 0) {
        printf("skipped: no demo photos at %s/demo (set PRIVID_MODELS)\n", models_root());
        skip();
    }
    for (size_t i = 0; i < sizeof(GOLDEN) / sizeof(GOLDEN[0]); i++) {
        blob_t b = {0};
        snprintf(path, sizeof(path), "%s/demo/%s", models_root(), GOLDEN[i].file);
        assert_int_equal(read_file(&b, path), 0);
        pv_image_t img;
        char msg[256];
        assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
        assert_int_equal(img.format, PV_IMAGE_JPEG);
        assert_int_equal(img.w, GOLDEN[i].w);
        assert_int_equal(img.h, GOLDEN[i].h);
        assert_int_equal(img.orig_w, GOLDEN[i].w);
        assert_int_equal(img.orig_h, GOLDEN[i].h);
        assert_int_equal(img.orientation, 1);
        assert_int_equal(img.stride, (size_t)img.w * 3);
        char hex[65];
        sha256_hex(hex, img.rgb, img.stride * (size_t)img.h);
        assert_string_equal(hex, GOLDEN[i].sha);

        /* DCT downscale on a real photo: 1920 wide, want >= 400 -> 1/4 */
        pv_image_opts_t o = {.min_long_side = 400};
        pv_image_t small;
        assert_int_equal(decode(&small, &b, &o, msg, sizeof(msg)), 0);
        assert_int_equal(small.w, 480);
        assert_int_equal(small.h, (GOLDEN[i].h + 3) / 4);
        assert_int_equal(small.orig_w, GOLDEN[i].w);
        assert_int_equal(small.orig_h, GOLDEN[i].h);
        pv_image_dispose(&small);
        pv_image_dispose(&img);
        blob_free(&b);
    }
}

/* ---- JPEG ---------------------------------------------------------------- */

/* EXIF 1..8 on a 48x32 pattern. Where a display pixel comes from, per the
 * EXIF spec's description of row 0 / column 0 (independent of the decoder's
 * own loop): display (x, y) shows stored (sx, sy). */
static void exif_source(int o, int w, int h, int x, int y, int *sx, int *sy)
{
    switch (o) {
    case 1:
        *sx = x, *sy = y;
        break;
    case 2:
        *sx = w - 1 - x, *sy = y;
        break;
    case 3:
        *sx = w - 1 - x, *sy = h - 1 - y;
        break;
    case 4:
        *sx = x, *sy = h - 1 - y;
        break;
    case 5:
        *sx = y, *sy = x;
        break; /* row 0 = left, col 0 = top */
    case 6:
        *sx = y, *sy = h - 1 - x;
        break; /* row 0 = right, col 0 = top */
    case 7:
        *sx = w - 1 - y, *sy = h - 1 - x;
        break; /* row 0 = right, col 0 = bottom */
    default:
        *sx = w - 1 - y, *sy = x;
        break; /* 8: row 0 = left, col 0 = bottom */
    }
}

static void test_orientation(void **state)
{
    (void)state;
    const int w = 48, h = 32;
    for (int o = 0; o <= 8; o++) {
        blob_t b = jpeg_pattern(w, h, o);
        pv_image_t img;
        char msg[256];
        assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
        int eo = o ? o : 1;
        assert_int_equal(img.orientation, eo);
        int dw = eo >= 5 ? h : w, dh = eo >= 5 ? w : h;
        assert_int_equal(img.w, dw);
        assert_int_equal(img.h, dh);
        assert_int_equal(img.orig_w, dw);
        assert_int_equal(img.orig_h, dh);
        uint8_t expect[4][3];
        for (int q = 0; q < 4; q++) {
            int x = (q & 1) ? dw * 3 / 4 : dw / 4, y = (q & 2) ? dh * 3 / 4 : dh / 4, sx, sy;
            exif_source(eo, w, h, x, y, &sx, &sy);
            memcpy(expect[q], QUAD[(sy >= h / 2) * 2 + (sx >= w / 2)], 3);
        }
        check_quadrants(&img, (const uint8_t(*)[3])expect, 12);
        /* plain-language anchors: 6 turns the stored top-left (red) to the
         * top-right, 8 to the bottom-left, 3 to the bottom-right */
        if (eo == 6)
            assert_true(near(img.rgb + (size_t)2 * img.stride + (size_t)(img.w - 3) * 3, QUAD[0], 12));
        if (eo == 8)
            assert_true(near(img.rgb + (size_t)(img.h - 3) * img.stride + 2 * 3, QUAD[0], 12));
        if (eo == 3)
            assert_true(
                near(img.rgb + (size_t)(img.h - 3) * img.stride + (size_t)(img.w - 3) * 3, QUAD[0], 12));
        pv_image_dispose(&img);
        blob_free(&b);
    }

    /* a malformed EXIF block is ignored, not an error */
    blob_t b = jpeg_pattern(w, h, 6);
    uint8_t *ex = memmem(b.p, b.n, "Exif\0\0", 6);
    assert_non_null(ex);
    ex[6 + 4] = 0xff; /* IFD0 offset far outside the block */
    pv_image_t img;
    char msg[256];
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
    assert_int_equal(img.orientation, 1);
    assert_int_equal(img.w, w);
    pv_image_dispose(&img);
    blob_free(&b);
}

static void test_downscale(void **state)
{
    (void)state;
    blob_t b = jpeg_pattern(200, 120, 0);
    static const struct {
        int min_long, w, h;
    } cases[] = {
        {0, 200, 120}, {300, 200, 120}, {200, 200, 120}, {199, 200, 120}, {101, 200, 120}, {100, 100, 60},
        {51, 100, 60}, {50, 50, 30},    {26, 50, 30},    {25, 25, 15},    {1, 25, 15},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pv_image_opts_t o = {.min_long_side = cases[i].min_long};
        pv_image_t img;
        char msg[256];
        assert_int_equal(decode(&img, &b, &o, msg, sizeof(msg)), 0);
        if (img.w != cases[i].w || img.h != cases[i].h)
            fail_msg("min_long_side %d: got %dx%d want %dx%d", cases[i].min_long, img.w, img.h, cases[i].w,
                     cases[i].h);
        assert_int_equal(img.orig_w, 200);
        assert_int_equal(img.orig_h, 120);
        check_quadrants(&img, QUAD, 16);
        pv_image_dispose(&img);
    }
    blob_free(&b);

    /* the short side stays >= 8: 200x40 at >= 10 would be 25x5 at 1/8 */
    b = jpeg_pattern(200, 40, 0);
    pv_image_opts_t o = {.min_long_side = 10};
    pv_image_t img;
    char msg[256];
    assert_int_equal(decode(&img, &b, &o, msg, sizeof(msg)), 0);
    assert_int_equal(img.w, 50);
    assert_int_equal(img.h, 10);
    pv_image_dispose(&img);
    blob_free(&b);

    /* rotated and scaled: sizes are reported after orientation */
    b = jpeg_pattern(200, 120, 6);
    o.min_long_side = 50;
    assert_int_equal(decode(&img, &b, &o, msg, sizeof(msg)), 0);
    assert_int_equal(img.w, 30);
    assert_int_equal(img.h, 50);
    assert_int_equal(img.orig_w, 120);
    assert_int_equal(img.orig_h, 200);
    assert_int_equal(img.orientation, 6);
    pv_image_dispose(&img);
    blob_free(&b);

    /* PNG ignores min_long_side */
    b = png_pattern(200, 120);
    assert_int_equal(decode(&img, &b, &o, msg, sizeof(msg)), 0);
    assert_int_equal(img.w, 200);
    pv_image_dispose(&img);
    blob_free(&b);
}

static void test_jpeg_kinds(void **state)
{
    (void)state;
    const int w = 40, h = 24;
    uint8_t *rgb = make_pattern(w, h);
    pv_image_t img;
    char msg[256];

    /* progressive and arithmetic-coded: same picture as baseline */
    jpeg_enc_t prog = {.in = JCS_RGB, .quality = 100, .progressive = 1};
    blob_t b = encode_jpeg(rgb, w, h, &prog);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
    assert_int_equal(img.format, PV_IMAGE_JPEG);
    check_quadrants(&img, QUAD, 12);
    pv_image_dispose(&img);
    blob_free(&b);
    jpeg_enc_t arith = {.in = JCS_RGB, .quality = 100, .arith = 1};
    b = encode_jpeg(rgb, w, h, &arith);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
    check_quadrants(&img, QUAD, 12);
    pv_image_dispose(&img);
    blob_free(&b);

    /* grayscale comes out with R = G = B */
    uint8_t *gray = malloc((size_t)w * h);
    assert_non_null(gray);
    for (int i = 0; i < w * h; i++)
        gray[i] = (uint8_t)(i % w < w / 2 ? 40 : 200);
    jpeg_enc_t g = {.in = JCS_GRAYSCALE, .quality = 100};
    b = encode_jpeg(gray, w, h, &g);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
    for (int i = 0; i < img.w * img.h; i++) {
        const uint8_t *p = img.rgb + (size_t)i * 3;
        assert_true(p[0] == p[1] && p[1] == p[2]);
    }
    assert_true(abs(img.rgb[(size_t)(h / 2) * img.stride + 3 * 5] - 40) <= 3);
    assert_true(abs(img.rgb[(size_t)(h / 2) * img.stride + 3 * (w - 5)] - 200) <= 3);
    pv_image_dispose(&img);
    blob_free(&b);
    free(gray);

    /* CMYK as Photoshop stores it (Adobe APP14, 255 - ink), stored as CMYK
     * and as YCCK: both must come back as the RGB pattern */
    uint8_t *cmyk = malloc((size_t)w * h * 4);
    assert_non_null(cmyk);
    for (int i = 0; i < w * h; i++) {
        /* K = 255 - max(R,G,B) ink; stored inverted: C' = 255 - C etc. */
        const uint8_t *p = rgb + (size_t)i * 3;
        int mx = p[0] > p[1] ? (p[0] > p[2] ? p[0] : p[2]) : (p[1] > p[2] ? p[1] : p[2]);
        for (int c = 0; c < 3; c++)
            cmyk[(size_t)i * 4 + c] = (uint8_t)(mx ? (p[c] * 255 + mx / 2) / mx : 0);
        cmyk[(size_t)i * 4 + 3] = (uint8_t)mx;
    }
    J_COLOR_SPACE stored[2] = {JCS_CMYK, JCS_YCCK};
    for (int s = 0; s < 2; s++) {
        jpeg_enc_t c = {.in = JCS_CMYK, .jpeg = stored[s], .quality = 100};
        b = encode_jpeg(cmyk, w, h, &c);
        assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
        check_quadrants(&img, QUAD, 12);
        pv_image_dispose(&img);
        blob_free(&b);
    }
    free(cmyk);
    free(rgb);
}

/* ---- PNG ----------------------------------------------------------------- */

static void test_png_kinds(void **state)
{
    (void)state;
    const int w = 20, h = 12;
    uint8_t *rgb = make_pattern(w, h);
    pv_image_t img;
    char msg[256];

    /* 8-bit RGB: exact */
    png_enc_t e8 = {SPNG_COLOR_TYPE_TRUECOLOR, 8, 0};
    blob_t b = encode_png(rgb, (size_t)w * h * 3, w, h, &e8, NULL);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
    assert_int_equal(img.format, PV_IMAGE_PNG);
    assert_int_equal(img.orientation, 1);
    assert_memory_equal(img.rgb, rgb, (size_t)w * h * 3);
    pv_image_dispose(&img);
    blob_free(&b);

    /* 16-bit RGB: the high byte of each sample */
    uint16_t *p16 = malloc((size_t)w * h * 3 * 2);
    assert_non_null(p16);
    for (int i = 0; i < w * h * 3; i++)
        p16[i] = (uint16_t)(rgb[i] << 8 | 0x5a);
    png_enc_t e16 = {SPNG_COLOR_TYPE_TRUECOLOR, 16, 0};
    b = encode_png(p16, (size_t)w * h * 6, w, h, &e16, NULL);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
    assert_memory_equal(img.rgb, rgb, (size_t)w * h * 3);
    pv_image_dispose(&img);
    blob_free(&b);
    free(p16);

    /* RGBA 8-bit: alpha dropped, colour kept */
    uint8_t *rgba = malloc((size_t)w * h * 4);
    assert_non_null(rgba);
    for (int i = 0; i < w * h; i++) {
        memcpy(rgba + (size_t)i * 4, rgb + (size_t)i * 3, 3);
        rgba[(size_t)i * 4 + 3] = (uint8_t)(i * 7);
    }
    png_enc_t ea = {SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 8, 0};
    b = encode_png(rgba, (size_t)w * h * 4, w, h, &ea, NULL);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
    assert_memory_equal(img.rgb, rgb, (size_t)w * h * 3);
    pv_image_dispose(&img);
    blob_free(&b);
    free(rgba);

    /* palette, 8-bit indices into the four quadrant colours */
    struct spng_plte plte = {.n_entries = 4};
    for (int i = 0; i < 4; i++) {
        plte.entries[i].red = QUAD[i][0];
        plte.entries[i].green = QUAD[i][1];
        plte.entries[i].blue = QUAD[i][2];
    }
    uint8_t *idx = malloc((size_t)w * h);
    assert_non_null(idx);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            idx[y * w + x] = (uint8_t)((y >= h / 2) * 2 + (x >= w / 2));
    png_enc_t ep = {SPNG_COLOR_TYPE_INDEXED, 8, 0};
    b = encode_png(idx, (size_t)w * h, w, h, &ep, &plte);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
    assert_memory_equal(img.rgb, rgb, (size_t)w * h * 3);
    pv_image_dispose(&img);
    blob_free(&b);
    free(idx);

    /* 8-bit gray */
    uint8_t *gray = malloc((size_t)w * h);
    assert_non_null(gray);
    for (int i = 0; i < w * h; i++)
        gray[i] = (uint8_t)(i * 3);
    png_enc_t eg = {SPNG_COLOR_TYPE_GRAYSCALE, 8, 0};
    b = encode_png(gray, (size_t)w * h, w, h, &eg, NULL);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
    for (int i = 0; i < w * h; i++)
        assert_true(img.rgb[i * 3] == gray[i] && img.rgb[i * 3 + 1] == gray[i] &&
                    img.rgb[i * 3 + 2] == gray[i]);
    pv_image_dispose(&img);
    blob_free(&b);
    free(gray);
    free(rgb);
}

/* ---- WebP ---------------------------------------------------------------- */

/* An animated WebP made by hand: VP8X with the animation flag, ANIM, and
 * one ANMF frame wrapping the VP8L chunk of a real lossless still. */
static blob_t animated_webp(void)
{
    blob_t still = webp_pattern(16, 16, 1);
    uint8_t *vp8l = memmem(still.p, still.n, "VP8L", 4);
    assert_non_null(vp8l);
    size_t vlen = still.n - (size_t)(vp8l - still.p); /* chunk header + payload (+pad) */
    size_t anmf_payload = 16 + vlen;
    size_t total = 12 + (8 + 10) + (8 + 6) + (8 + anmf_payload);
    blob_t b = {calloc(1, total), total};
    assert_non_null(b.p);
    uint8_t *p = b.p;
    memcpy(p, "RIFF", 4);
    put_le(p + 4, (uint32_t)(total - 8), 4);
    memcpy(p + 8, "WEBP", 4);
    p += 12;
    memcpy(p, "VP8X", 4);
    put_le(p + 4, 10, 4);
    p[8] = 0x02 | 0x10; /* animation | alpha */
    put_le(p + 12, 16 - 1, 3);
    put_le(p + 15, 16 - 1, 3);
    p += 18;
    memcpy(p, "ANIM", 4);
    put_le(p + 4, 6, 4);
    put_le(p + 8, 0xffffffffu, 4); /* background */
    put_le(p + 12, 0, 2);          /* loop forever */
    p += 14;
    memcpy(p, "ANMF", 4);
    put_le(p + 4, (uint32_t)anmf_payload, 4);
    put_le(p + 8, 0, 3);       /* x / 2 */
    put_le(p + 11, 0, 3);      /* y / 2 */
    put_le(p + 14, 16 - 1, 3); /* w - 1 */
    put_le(p + 17, 16 - 1, 3); /* h - 1 */
    put_le(p + 20, 100, 3);    /* duration */
    p[23] = 0;
    memcpy(p + 24, vp8l, vlen);
    blob_free(&still);
    return b;
}

static void test_webp(void **state)
{
    (void)state;
    const int w = 32, h = 20;
    pv_image_t img;
    char msg[256];

    blob_t b = webp_pattern(w, h, 0);
    assert_int_equal(pv_image_sniff(b.p, b.n), PV_IMAGE_WEBP);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
    assert_int_equal(img.format, PV_IMAGE_WEBP);
    assert_int_equal(img.w, w);
    assert_int_equal(img.h, h);
    check_quadrants(&img, QUAD, 20);
    pv_image_dispose(&img);
    blob_free(&b);

    b = webp_pattern(w, h, 1);
    uint8_t *rgb = make_pattern(w, h);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
    assert_memory_equal(img.rgb, rgb, (size_t)w * h * 3);
    pv_image_dispose(&img);

    /* a WebP saved as "photo.jpg": the name plays no part, the bytes do */
    char dir[] = "/tmp/pv_image_XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/photo.jpg", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b.p, 1, b.n, f), b.n);
    fclose(f);
    blob_t back = {0};
    assert_int_equal(read_file(&back, path), 0);
    unlink(path);
    rmdir(dir);
    assert_int_equal(decode(&img, &back, NULL, msg, sizeof(msg)), 0);
    assert_int_equal(img.format, PV_IMAGE_WEBP);
    assert_memory_equal(img.rgb, rgb, (size_t)w * h * 3);
    pv_image_dispose(&img);
    blob_free(&back);
    blob_free(&b);
    free(rgb);

    /* RGBA lossless: alpha dropped */
    uint8_t *rgba = calloc((size_t)w * h, 4), *out = NULL;
    assert_non_null(rgba);
    for (int i = 0; i < w * h; i++)
        rgba[i * 4] = 77, rgba[i * 4 + 3] = (uint8_t)(i | 1); /* alpha 0 may lose its colour */
    size_t n = WebPEncodeLosslessRGBA(rgba, w, h, w * 4, &out);
    assert_true(n > 0);
    b = blob_copy(out, n);
    WebPFree(out);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
    assert_int_equal(img.rgb[0], 77);
    assert_int_equal(img.rgb[1], 0);
    pv_image_dispose(&img);
    blob_free(&b);
    free(rgba);

    /* animated */
    b = animated_webp();
    assert_int_equal(pv_image_sniff(b.p, b.n), PV_IMAGE_WEBP);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), PV_EFORMAT);
    assert_string_equal(msg, "animated WebP is not supported");
    blob_free(&b);
}

/* ---- bad input ----------------------------------------------------------- */

static void test_bad_args(void **state)
{
    (void)state;
    pv_image_t img;
    char msg[256];
    uint8_t one = 0xff;
    memset(&img, 0x55, sizeof(img));
    assert_int_equal(pv_image_decode(&img, NULL, 10, NULL, msg, sizeof(msg)), PV_EINVAL);
    assert_null(img.rgb);
    assert_int_equal(pv_image_decode(&img, &one, 0, NULL, msg, sizeof(msg)), PV_EINVAL);
    assert_int_equal(pv_image_decode(NULL, &one, 1, NULL, msg, sizeof(msg)), PV_EINVAL);
    assert_int_equal(pv_image_decode(&img, &one, 1, NULL, NULL, 0), PV_EFORMAT);
    assert_int_equal(pv_image_decode(&img, &one, 1, NULL, msg, sizeof(msg)), PV_EFORMAT);
    assert_non_null(strstr(msg, "signature"));
    pv_image_opts_t neg = {.min_long_side = -1};
    blob_t b = jpeg_pattern(16, 16, 0);
    assert_int_equal(pv_image_decode(&img, b.p, b.n, &neg, msg, sizeof(msg)), PV_EINVAL);
    /* a one-byte message buffer is still NUL-terminated */
    char tiny[1] = {'x'};
    assert_int_equal(pv_image_decode(&img, &one, 1, NULL, tiny, sizeof(tiny)), PV_EFORMAT);
    assert_int_equal(tiny[0], '\0');
    blob_free(&b);

    /* wrong magic: text, a BMP header, a GIF, a RIFF that is not WEBP */
    const char *bad[] = {"hello world, not an image", "BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00",
                         "GIF89a\x10\x00\x10\x00", "RIFF\x10\x00\x00\x00WAVEfmt "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        blob_t x = {(uint8_t *)bad[i], strlen(bad[i])};
        assert_int_equal(pv_image_sniff(x.p, x.n), PV_IMAGE_UNKNOWN);
        assert_int_equal(decode(&img, &x, NULL, msg, sizeof(msg)), PV_EFORMAT);
    }
    /* signatures alone, and one byte short of them */
    assert_int_equal(pv_image_sniff((const uint8_t *)"\xff\xd8\xff", 3), PV_IMAGE_JPEG);
    assert_int_equal(pv_image_sniff((const uint8_t *)"\xff\xd8", 2), PV_IMAGE_UNKNOWN);
    assert_int_equal(pv_image_sniff((const uint8_t *)"\x89PNG\r\n\x1a\n", 8), PV_IMAGE_PNG);
    assert_int_equal(pv_image_sniff((const uint8_t *)"\x89PNG\r\n\x1a", 7), PV_IMAGE_UNKNOWN);
    assert_int_equal(pv_image_sniff((const uint8_t *)"RIFF\0\0\0\0WEBP", 12), PV_IMAGE_WEBP);
    assert_int_equal(pv_image_sniff((const uint8_t *)"RIFF\0\0\0\0WEB", 11), PV_IMAGE_UNKNOWN);
    assert_int_equal(pv_image_sniff(NULL, 12), PV_IMAGE_UNKNOWN);
    assert_string_equal(pv_image_format_name(PV_IMAGE_JPEG), "jpeg");
    assert_string_equal(pv_image_format_name(PV_IMAGE_PNG), "png");
    assert_string_equal(pv_image_format_name(PV_IMAGE_WEBP), "webp");
    assert_string_equal(pv_image_format_name(PV_IMAGE_UNKNOWN), "unknown");
    assert_string_equal(pv_image_format_name((pv_image_format_t)42), "unknown");
    pv_image_dispose(NULL);
    pv_image_t zero = {0};
    pv_image_dispose(&zero);
}

/* Every prefix of `b` shorter than ok_from bytes must fail, with PV_EFORMAT
 * once the signature is complete: no format may paint the missing part gray. */
static void all_truncations(const blob_t *b, size_t ok_from)
{
    for (size_t n = 1; n < b->n; n++) {
        blob_t t = blob_copy(b->p, n); /* exact-size copy so ASan sees overreads */
        pv_image_t img;
        char msg[256];
        int rc = decode(&img, &t, NULL, msg, sizeof(msg));
        if (rc == 0 && n < ok_from)
            fail_msg("prefix of %zu/%zu bytes decoded", n, b->n);
        if (rc != 0 && n >= 3 && rc != PV_EFORMAT)
            fail_msg("prefix of %zu bytes: rc %d (%s)", n, rc, msg);
        pv_image_dispose(&img);
        blob_free(&t);
    }
}

static void test_truncated(void **state)
{
    (void)state;
    blob_t b = jpeg_pattern(24, 16, 6);
    all_truncations(&b, b.n);
    blob_free(&b);
    uint8_t *rgb = make_pattern(24, 16);
    jpeg_enc_t prog = {.in = JCS_RGB, .quality = 90, .progressive = 1};
    b = encode_jpeg(rgb, 24, 16, &prog);
    all_truncations(&b, b.n);
    blob_free(&b);
    free(rgb);

    /* libspng does not insist on the IEND CRC, which guards no data */
    b = png_pattern(24, 16);
    assert_memory_equal(b.p + b.n - 8, "IEND\xae\x42\x60\x82", 8);
    all_truncations(&b, b.n - 4);
    blob_free(&b);

    b = webp_pattern(24, 16, 0);
    all_truncations(&b, b.n);
    blob_free(&b);
    b = webp_pattern(24, 16, 1);
    all_truncations(&b, b.n);
    blob_free(&b);
}

/* Flips bytes all over a file: each decode fails cleanly or succeeds. */
static void flip_all(const blob_t *b, int *fails)
{
    for (size_t i = 0; i < b->n; i++) {
        for (int k = 0; k < 2; k++) {
            blob_t t = blob_copy(b->p, b->n);
            t.p[i] ^= k ? 0xff : 0x10;
            pv_image_t img;
            char msg[256];
            if (decode(&img, &t, NULL, msg, sizeof(msg)) != 0)
                (*fails)++;
            pv_image_dispose(&img);
            blob_free(&t);
        }
    }
}

static void test_corrupt(void **state)
{
    (void)state;
    pv_image_t img;
    char msg[256];
    int fails = 0;
    blob_t b = jpeg_pattern(16, 16, 3);
    flip_all(&b, &fails);
    assert_true(fails > 0);
    /* the entropy-coded data replaced by a marker: premature end of segment */
    uint8_t *sos = memmem(b.p, b.n, "\xff\xda", 2);
    assert_non_null(sos);
    size_t data = (size_t)(sos - b.p) + 2 + ((size_t)sos[2] << 8 | sos[3]);
    blob_t t = blob_copy(b.p, b.n);
    t.p[data + 4] = 0xff;
    t.p[data + 5] = 0xd9; /* EOI in the middle of the scan */
    assert_int_equal(decode(&img, &t, NULL, msg, sizeof(msg)), PV_EFORMAT);
    assert_non_null(strstr(msg, "jpeg:"));
    blob_free(&t);
    blob_free(&b);

    /* PNG: any flipped byte in a chunk is a CRC error */
    b = png_pattern(16, 16);
    fails = 0;
    flip_all(&b, &fails);
    t = blob_copy(b.p, b.n);
    t.p[33 + 8 + 2] ^= 0x01; /* first IDAT payload byte region */
    assert_int_equal(decode(&img, &t, NULL, msg, sizeof(msg)), PV_EFORMAT);
    blob_free(&t);
    blob_free(&b);

    b = webp_pattern(16, 16, 0);
    flip_all(&b, &fails);
    blob_free(&b);
    b = webp_pattern(16, 16, 1);
    flip_all(&b, &fails);
    blob_free(&b);
}

/* Rewrites the PNG IHDR size and fixes its CRC. */
static void png_set_size(blob_t *b, uint32_t w, uint32_t h)
{
    put32be(b->p + 16, w);
    put32be(b->p + 20, h);
    put32be(b->p + 29, crc32_png(b->p + 12, 17));
}

/* Rewrites the JPEG SOFn size. */
static void jpeg_set_size(blob_t *b, unsigned w, unsigned h)
{
    for (size_t i = 2; i + 9 < b->n; i++) {
        if (b->p[i] == 0xff && (b->p[i + 1] == 0xc0 || b->p[i + 1] == 0xc2)) {
            b->p[i + 5] = (uint8_t)(h >> 8), b->p[i + 6] = (uint8_t)h;
            b->p[i + 7] = (uint8_t)(w >> 8), b->p[i + 8] = (uint8_t)w;
            return;
        }
    }
    fail_msg("no SOF marker");
}

/* A RIFF/WEBP holding only a VP8X header for a w x h canvas. */
static blob_t webp_vp8x_only(uint32_t w, uint32_t h)
{
    blob_t b = {calloc(1, 30), 30};
    assert_non_null(b.p);
    memcpy(b.p, "RIFF", 4);
    put_le(b.p + 4, 22, 4);
    memcpy(b.p + 8, "WEBPVP8X", 8);
    put_le(b.p + 16, 10, 4);
    put_le(b.p + 24, w - 1, 3);
    put_le(b.p + 27, h - 1, 3);
    return b;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_sizes(void **state)
{
    (void)state;
    pv_image_t img;
    char msg[256];

    /* 60000 x 60000 declared: PV_ELIMIT from the header alone, at once */
    double t0 = now();
    blob_t b = jpeg_pattern(16, 16, 0);
    jpeg_set_size(&b, 60000, 60000);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), PV_ELIMIT);
    assert_non_null(strstr(msg, "60000x60000"));
    blob_free(&b);
    uint8_t *rgb = make_pattern(16, 16);
    jpeg_enc_t prog = {.in = JCS_RGB, .quality = 90, .progressive = 1};
    b = encode_jpeg(rgb, 16, 16, &prog);
    free(rgb);
    jpeg_set_size(&b, 60000, 60000);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), PV_ELIMIT);
    blob_free(&b);
    b = png_pattern(16, 16);
    png_set_size(&b, 60000, 60000);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), PV_ELIMIT);
    assert_non_null(strstr(msg, "60000x60000"));
    png_set_size(&b, 0x7fffffff, 8); /* one absurd side */
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), PV_ELIMIT);
    blob_free(&b);
    b = webp_vp8x_only(60000, 60000);
    assert_int_equal(pv_image_sniff(b.p, b.n), PV_IMAGE_WEBP);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), PV_ELIMIT);
    assert_non_null(strstr(msg, "60000x60000"));
    blob_free(&b);
    assert_true(now() - t0 < 1.0); /* nothing was decoded or allocated */

    /* the bound is inclusive; max_pixels 0 means the default */
    b = png_pattern(16, 16);
    pv_image_opts_t o = {.max_pixels = 256};
    assert_int_equal(decode(&img, &b, &o, msg, sizeof(msg)), 0);
    pv_image_dispose(&img);
    o.max_pixels = 255;
    assert_int_equal(decode(&img, &b, &o, msg, sizeof(msg)), PV_ELIMIT);
    blob_free(&b);
    b = jpeg_pattern(16, 16, 0);
    assert_int_equal(decode(&img, &b, &o, msg, sizeof(msg)), PV_ELIMIT);
    blob_free(&b);
    b = webp_pattern(16, 16, 1);
    assert_int_equal(decode(&img, &b, &o, msg, sizeof(msg)), PV_ELIMIT);
    blob_free(&b);
    b = jpeg_pattern(16, 16, 0);
    jpeg_set_size(&b, 8000, 6000); /* 48 MP > 40 MP default */
    o.max_pixels = 0;
    assert_int_equal(decode(&img, &b, &o, msg, sizeof(msg)), PV_ELIMIT);
    blob_free(&b);

    /* 1x1 and 7-wide images are below the 8 px minimum */
    b = jpeg_pattern(1, 1, 0);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), PV_ELIMIT);
    assert_non_null(strstr(msg, "1x1"));
    blob_free(&b);
    b = png_pattern(1, 1);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), PV_ELIMIT);
    assert_non_null(strstr(msg, "1x1"));
    blob_free(&b);
    b = webp_pattern(1, 1, 0);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), PV_ELIMIT);
    assert_non_null(strstr(msg, "1x1"));
    blob_free(&b);
    b = png_pattern(7, 30);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), PV_ELIMIT);
    blob_free(&b);
    b = jpeg_pattern(8, 8, 0);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), 0);
    assert_int_equal(img.w, 8);
    pv_image_dispose(&img);
    blob_free(&b);

    /* zero-sized headers are corrupt */
    b = jpeg_pattern(16, 16, 0);
    jpeg_set_size(&b, 16, 0);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), PV_EFORMAT);
    jpeg_set_size(&b, 0, 16);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), PV_EFORMAT);
    blob_free(&b);
    b = png_pattern(16, 16);
    png_set_size(&b, 0, 16);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), PV_EFORMAT);
    blob_free(&b);
    /* a declared size larger than the data: truncated, not gray */
    b = jpeg_pattern(16, 16, 0);
    jpeg_set_size(&b, 64, 64);
    assert_int_equal(decode(&img, &b, NULL, msg, sizeof(msg)), PV_EFORMAT);
    blob_free(&b);
}

/* ---- corpus writer ------------------------------------------------------- */

static int write_blob(const char *dir, const char *name, const blob_t *b)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(b->p, 1, b->n, f) != b->n) {
        fprintf(stderr, "cannot write %s\n", path);
        if (f)
            fclose(f);
        return 1;
    }
    fclose(f);
    printf("%s: %zu bytes\n", path, b->n);
    return b->n >= 4096;
}

/* Writes the fuzz seeds: small valid files of each kind plus a few broken
 * ones. Sizes stay under 4 KB. */
static int write_corpus(const char *dir)
{
    int bad = 0;
    blob_t b;
    uint8_t *rgb = make_pattern(16, 16);
    b = jpeg_pattern(16, 16, 6);
    bad |= write_blob(dir, "exif6.jpg", &b);
    b.n = b.n * 2 / 3;
    bad |= write_blob(dir, "truncated.jpg", &b);
    blob_free(&b);
    jpeg_enc_t prog = {.in = JCS_RGB, .quality = 75, .progressive = 1};
    b = encode_jpeg(rgb, 16, 16, &prog);
    bad |= write_blob(dir, "progressive.jpg", &b);
    blob_free(&b);
    uint8_t cmyk[16 * 16 * 4];
    for (size_t i = 0; i < sizeof(cmyk); i++)
        cmyk[i] = (uint8_t)(i * 13);
    jpeg_enc_t c = {.in = JCS_CMYK, .jpeg = JCS_YCCK, .quality = 50};
    b = encode_jpeg(cmyk, 16, 16, &c);
    bad |= write_blob(dir, "ycck.jpg", &b);
    blob_free(&b);
    jpeg_enc_t g = {.in = JCS_GRAYSCALE, .quality = 50, .arith = 1};
    b = encode_jpeg(rgb, 16, 16, &g);
    bad |= write_blob(dir, "gray_arith.jpg", &b);
    blob_free(&b);
    b = png_pattern(16, 16);
    bad |= write_blob(dir, "rgb.png", &b);
    png_set_size(&b, 60000, 60000);
    bad |= write_blob(dir, "huge.png", &b);
    blob_free(&b);
    struct spng_plte plte = {.n_entries = 4};
    uint8_t idx[16 * 16];
    for (int i = 0; i < 256; i++)
        idx[i] = (uint8_t)((i / 16 >= 8) * 2 + (i % 16 >= 8));
    png_enc_t ep = {SPNG_COLOR_TYPE_INDEXED, 8, 0};
    b = encode_png(idx, sizeof(idx), 16, 16, &ep, &plte);
    bad |= write_blob(dir, "palette.png", &b);
    blob_free(&b);
    uint16_t p16[8 * 8 * 4];
    for (int i = 0; i < 8 * 8 * 4; i++)
        p16[i] = (uint16_t)(i * 977);
    png_enc_t e16 = {SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 16, 0};
    b = encode_png(p16, sizeof(p16), 8, 8, &e16, NULL);
    bad |= write_blob(dir, "rgba16.png", &b);
    blob_free(&b);
    b = webp_pattern(16, 16, 0);
    bad |= write_blob(dir, "lossy.webp", &b);
    blob_free(&b);
    b = webp_pattern(16, 16, 1);
    bad |= write_blob(dir, "lossless.webp", &b);
    blob_free(&b);
    b = animated_webp();
    bad |= write_blob(dir, "animated.webp", &b);
    blob_free(&b);
    b = webp_vp8x_only(60000, 60000);
    bad |= write_blob(dir, "huge.webp", &b);
    blob_free(&b);
    blob_t txt = {(uint8_t *)"not an image\n", 13};
    bad |= write_blob(dir, "text.bin", &txt);
    free(rgb);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
        return write_corpus(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples),   cmocka_unit_test(test_orientation),
        cmocka_unit_test(test_downscale), cmocka_unit_test(test_jpeg_kinds),
        cmocka_unit_test(test_png_kinds), cmocka_unit_test(test_webp),
        cmocka_unit_test(test_bad_args),  cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt),   cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
