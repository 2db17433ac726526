/*
 * recognizer/image: JPEG (libjpeg-turbo), PNG (libspng) and WebP (libwebp)
 * into RGB8, the decoder picked by the file's signature. Every path checks
 * the declared size against the pixel bound before the decoder allocates
 * anything large, turns truncation and corrupt entropy data into errors
 * (libjpeg would otherwise paint the missing part gray), and frees all it
 * took on failure. JPEG output is bit-identical to a plain libjpeg-turbo
 * decode (JCS_RGB, JDCT_ISLOW, fancy upsampling) before the EXIF rotation.
 */
#include "recognizer/image.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <spng.h>
#include <webp/decode.h>

#include "common/error.h"

/* A progressive JPEG has about ten scans; thousands only burn CPU. */
#define JPEG_MAX_SCANS 500
/* Largest PNG ancillary chunk and total ancillary cache libspng may keep. */
#define PNG_CHUNK_LIMIT (4u << 20)
#define PNG_CACHE_LIMIT (16u << 20)
/* (libspng also stops at 1000 chunks by default; 0.7.3 refuses to set it.) */

static void set_msg(char *msg, size_t msglen, const char *fmt, ...)
{
    if (msg == NULL || msglen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

pv_image_format_t pv_image_sniff(const uint8_t *data, size_t len)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    if (data == NULL)
        return PV_IMAGE_UNKNOWN;
    if (len >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return PV_IMAGE_JPEG;
    if (len >= 8 && memcmp(data, png_sig, 8) == 0)
        return PV_IMAGE_PNG;
    if (len >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0)
        return PV_IMAGE_WEBP;
    return PV_IMAGE_UNKNOWN;
}

const char *pv_image_format_name(pv_image_format_t f)
{
    switch (f) {
    case PV_IMAGE_JPEG:
        return "jpeg";
    case PV_IMAGE_PNG:
        return "png";
    case PV_IMAGE_WEBP:
        return "webp";
    default:
        return "unknown";
    }
}

void pv_image_dispose(pv_image_t *img)
{
    if (img == NULL)
        return;
    free(img->rgb);
    memset(img, 0, sizeof(*img));
}

/*
 * The declared size against the bounds, before any decoder allocates:
 * PV_ELIMIT when w*h exceeds max_pixels or a side is under 8 pixels.
 */
static int check_size(uint64_t w, uint64_t h, uint64_t max_pixels, const char *fmt, char *msg, size_t msglen)
{
    if (w * h > max_pixels) { /* w, h < 2^32, so no overflow */
        set_msg(msg, msglen, "%s: %llux%llu is %llu pixels, more than the limit of %llu", fmt,
                (unsigned long long)w, (unsigned long long)h, (unsigned long long)(w * h),
                (unsigned long long)max_pixels);
        return PV_ELIMIT;
    }
    if (w < PV_IMAGE_MIN_SIDE || h < PV_IMAGE_MIN_SIDE) {
        set_msg(msg, msglen, "%s: image is %llux%llu pixels; at least %dx%d is needed", fmt,
                (unsigned long long)w, (unsigned long long)h, PV_IMAGE_MIN_SIDE, PV_IMAGE_MIN_SIDE);
        return PV_ELIMIT;
    }
    return 0;
}

/* A w x h RGB8 buffer with tight rows; NULL on overflow or exhaustion. */
static uint8_t *alloc_rgb(size_t w, size_t h)
{
    if (w == 0 || h == 0 || h > SIZE_MAX / 3 / w)
        return NULL;
    return malloc(w * h * 3);
}

/* ---- EXIF orientation ---------------------------------------------------- */

static unsigned rd16(const uint8_t *p, int le)
{
    return le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | (unsigned)p[1];
}

static uint32_t rd32(const uint8_t *p, int le)
{
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/*
 * The Orientation tag (0x0112) of IFD0 in an APP1 "Exif\0\0" payload, or 1
 * when there is none or anything about it is malformed. Every offset is
 * checked against the payload before it is read.
 */
static int exif_orientation(const uint8_t *p, size_t len)
{
    if (len < 6 || memcmp(p, "Exif\0\0", 6) != 0)
        return 1;
    const uint8_t *t = p + 6;
    size_t tlen = len - 6;
    if (tlen < 8)
        return 1;
    int le;
    if (t[0] == 'I' && t[1] == 'I')
        le = 1;
    else if (t[0] == 'M' && t[1] == 'M')
        le = 0;
    else
        return 1;
    if (rd16(t + 2, le) != 42)
        return 1;
    uint32_t ifd = rd32(t + 4, le);
    if (ifd < 8 || (uint64_t)ifd + 2 > tlen)
        return 1;
    unsigned n = rd16(t + ifd, le);
    for (unsigned i = 0; i < n; i++) {
        uint64_t e = (uint64_t)ifd + 2 + (uint64_t)i * 12;
        if (e + 12 > tlen)
            return 1;
        const uint8_t *ent = t + e;
        if (rd16(ent, le) != 0x0112)
            continue;
        unsigned type = rd16(ent + 2, le);
        uint32_t count = rd32(ent + 4, le);
        unsigned v;
        if (type == 3 && count == 1) /* SHORT, stored left-justified in the value field */
            v = rd16(ent + 8, le);
        else if (type == 4 && count == 1) /* LONG, seen from a few writers */
            v = (unsigned)rd32(ent + 8, le);
        else
            return 1;
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

/*
 * Rewrites the tight w x h RGB buffer *rgb so it shows the picture upright
 * for EXIF orientation o (1..8). 2..4 work in place; 5..8 swap the sides
 * and need a second buffer, which replaces *rgb. Returns 0 or PV_ENOMEM
 * (then *rgb is unchanged and still owned by the caller).
 */
static int apply_orientation(uint8_t **rgb, int *w, int *h, int o)
{
    size_t W = (size_t)*w, H = (size_t)*h, rs = W * 3;
    uint8_t *p = *rgb;
    if (o == 2 || o == 3) { /* mirror each row */
        for (size_t y = 0; y < H; y++) {
            uint8_t *r = p + y * rs;
            for (size_t a = 0, b = W - 1; a < b; a++, b--) {
                uint8_t t[3];
                memcpy(t, r + a * 3, 3);
                memcpy(r + a * 3, r + b * 3, 3);
                memcpy(r + b * 3, t, 3);
            }
        }
    }
    if (o == 3 || o == 4) { /* swap rows top to bottom */
        for (size_t a = 0, b = H - 1; a < b; a++, b--) {
            uint8_t *ra = p + a * rs, *rb = p + b * rs;
            for (size_t i = 0; i < rs; i++) {
                uint8_t t = ra[i];
                ra[i] = rb[i];
                rb[i] = t;
            }
        }
    }
    if (o < 5 || o > 8)
        return 0;
    /* The output is H wide and W tall; source (sx, sy) lands on (x, y). */
    uint8_t *q = alloc_rgb(H, W);
    if (q == NULL)
        return PV_ENOMEM;
    size_t qs = H * 3;
    for (size_t sy = 0; sy < H; sy++) {
        const uint8_t *src = p + sy * rs;
        for (size_t sx = 0; sx < W; sx++) {
            size_t x, y;
            switch (o) {
            case 5: /* transpose */
                x = sy, y = sx;
                break;
            case 6: /* rotate 90 clockwise */
                x = H - 1 - sy, y = sx;
                break;
            case 7: /* transverse */
                x = H - 1 - sy, y = W - 1 - sx;
                break;
            default: /* 8: rotate 90 counter-clockwise */
                x = sy, y = W - 1 - sx;
                break;
            }
            memcpy(q + y * qs + x * 3, src + sx * 3, 3);
        }
    }
    free(p);
    *rgb = q;
    *w = (int)H;
    *h = (int)W;
    return 0;
}

/* ---- JPEG ---------------------------------------------------------------- */

struct jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int rc; /* PV_E* code to return after the longjmp */
    char text[JMSG_LENGTH_MAX];
};

/* Everything a JPEG decode owns, kept outside the function that calls
 * setjmp so that nothing it changes becomes indeterminate after a longjmp. */
struct jpeg_job {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_err err;
    struct jpeg_progress_mgr progress;
    int created;
    uint8_t *rgb;
    uint8_t *row; /* one CMYK scanline */
};

static void jpeg_fail(j_common_ptr c)
{
    struct jpeg_err *e = (struct jpeg_err *)c->err;
    c->err->format_message(c, e->text);
    switch (c->err->msg_code) {
    case JERR_OUT_OF_MEMORY:
        e->rc = PV_ENOMEM;
        break;
    case JERR_NO_BACKING_STORE: /* a virtual array beyond max_memory_to_use */
        e->rc = PV_ELIMIT;
        snprintf(e->text, sizeof(e->text), "needs more decoder memory than the pixel limit allows");
        break;
    default:
        e->rc = PV_EFORMAT;
    }
    longjmp(e->jb, 1);
}

/*
 * libjpeg reports damaged data as warnings and carries on: a truncated file
 * gets a fake EOI and gray fill, a bad Huffman code garbage. Those warnings
 * are errors here. Benign ones (extraneous bytes between markers, odd JFIF
 * versions, ...) are only counted. Trace messages (level >= 0) are dropped.
 */
static void jpeg_emit(j_common_ptr c, int level)
{
    if (level >= 0)
        return;
    c->err->num_warnings++;
    switch (c->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_BOGUS_PROGRESSION: {
        struct jpeg_err *e = (struct jpeg_err *)c->err;
        c->err->format_message(c, e->text);
        e->rc = PV_EFORMAT;
        longjmp(e->jb, 1);
    }
    default:
        break;
    }
}

static void jpeg_quiet(j_common_ptr c)
{
    (void)c; /* never print to stderr */
}

/* Refuses streams with absurd scan counts (each scan is a full pass). */
static void jpeg_progress(j_common_ptr c)
{
    j_decompress_ptr d = (j_decompress_ptr)c;
    if (d->input_scan_number > JPEG_MAX_SCANS) {
        struct jpeg_err *e = (struct jpeg_err *)c->err;
        snprintf(e->text, sizeof(e->text), "more than %d scans", JPEG_MAX_SCANS);
        e->rc = PV_EFORMAT;
        longjmp(e->jb, 1);
    }
}

/* Adobe CMYK (any APP14, as Photoshop writes it) stores 255 - ink. */
static void cmyk_to_rgb(uint8_t *dst, const uint8_t *src, size_t n, int inverted)
{
    for (size_t i = 0; i < n; i++, src += 4, dst += 3) {
        unsigned c = src[0], m = src[1], y = src[2], k = src[3];
        if (!inverted)
            c = 255 - c, m = 255 - m, y = 255 - y, k = 255 - k;
        dst[0] = (uint8_t)((c * k + 127) / 255);
        dst[1] = (uint8_t)((m * k + 127) / 255);
        dst[2] = (uint8_t)((y * k + 127) / 255);
    }
}

/* The 1/2, 1/4 or 1/8 scale denominator for min_long_side (1 = full size). */
static unsigned pick_scale(unsigned w, unsigned h, int min_long_side)
{
    if (min_long_side <= 0)
        return 1;
    unsigned lo = w > h ? w : h, sh = w > h ? h : w;
    for (unsigned d = 8; d >= 2; d /= 2) {
        unsigned sl = (lo + d - 1) / d, ss = (sh + d - 1) / d; /* libjpeg rounds up */
        if (sl >= (unsigned)min_long_side && ss >= PV_IMAGE_MIN_SIDE)
            return d;
    }
    return 1;
}

/* The body of decode_jpeg(): every longjmp lands in its setjmp. */
static int run_jpeg(struct jpeg_job *j, pv_image_t *img, const uint8_t *data, size_t len, uint64_t max_pixels,
                    int min_long_side, char *msg, size_t msglen)
{
    j_decompress_ptr ci = &j->cinfo;
    ci->err = jpeg_std_error(&j->err.pub);
    j->err.pub.error_exit = jpeg_fail;
    j->err.pub.emit_message = jpeg_emit;
    j->err.pub.output_message = jpeg_quiet;
    j->err.text[0] = '\0';
    j->err.rc = PV_EFORMAT;
    if (setjmp(j->err.jb)) {
        set_msg(msg, msglen, "jpeg: %s", j->err.text);
        return j->err.rc;
    }
    jpeg_create_decompress(ci);
    j->created = 1;
    /* Bounds the multi-scan coefficient buffers too: at most 4 components
     * of 2-byte coefficients per pixel, plus slack for MCU padding. */
    uint64_t mem = max_pixels * 8 + (64u << 20);
    ci->mem->max_memory_to_use = mem > (uint64_t)LONG_MAX ? LONG_MAX : (long)mem;
    j->progress.progress_monitor = jpeg_progress;
    ci->progress = &j->progress;
    jpeg_mem_src(ci, data, (unsigned long)len);
    jpeg_save_markers(ci, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(ci, TRUE);

    int rc = check_size(ci->image_width, ci->image_height, max_pixels, "jpeg", msg, msglen);
    if (rc != 0)
        return rc;

    int orientation = 1;
    for (jpeg_saved_marker_ptr m = ci->marker_list; m != NULL; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            orientation = exif_orientation(m->data, m->data_length);
            break;
        }
    }

    int cmyk = 0;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE:
    case JCS_YCbCr:
    case JCS_RGB:
        ci->out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK: /* libjpeg turns YCCK into (Adobe-inverted) CMYK */
        ci->out_color_space = JCS_CMYK;
        cmyk = 1;
        break;
    default:
        set_msg(msg, msglen, "jpeg: unsupported colour space with %d components", ci->num_components);
        return PV_EFORMAT;
    }
    unsigned denom = pick_scale(ci->image_width, ci->image_height, min_long_side);
    ci->scale_num = 1;
    ci->scale_denom = denom;
    jpeg_calc_output_dimensions(ci);
    if (ci->output_components != (cmyk ? 4 : 3)) {
        set_msg(msg, msglen, "jpeg: unexpected %d output components", ci->output_components);
        return PV_EFORMAT;
    }

    jpeg_start_decompress(ci);
    size_t ow = ci->output_width, oh = ci->output_height;
    j->rgb = alloc_rgb(ow, oh);
    if (j->rgb == NULL) {
        set_msg(msg, msglen, "jpeg: out of memory for %zux%zu pixels", ow, oh);
        return PV_ENOMEM;
    }
    if (cmyk && (j->row = malloc(ow * 4)) == NULL) {
        set_msg(msg, msglen, "jpeg: out of memory");
        return PV_ENOMEM;
    }
    while (ci->output_scanline < oh) {
        uint8_t *dst = j->rgb + (size_t)ci->output_scanline * ow * 3;
        JSAMPROW row = cmyk ? j->row : dst;
        if (jpeg_read_scanlines(ci, &row, 1) != 1) {
            set_msg(msg, msglen, "jpeg: decoder stalled");
            return PV_EFORMAT;
        }
        if (cmyk)
            cmyk_to_rgb(dst, j->row, ow, ci->saw_Adobe_marker);
    }
    /* Reads through EOI, so damage after the last row still counts. */
    jpeg_finish_decompress(ci);

    int w = (int)ow, h = (int)oh;
    rc = apply_orientation(&j->rgb, &w, &h, orientation);
    if (rc != 0) {
        set_msg(msg, msglen, "jpeg: out of memory rotating the image");
        return rc;
    }
    int swap = orientation >= 5;
    img->rgb = j->rgb;
    j->rgb = NULL;
    img->w = w;
    img->h = h;
    img->stride = (size_t)w * 3;
    img->orig_w = (int)(swap ? ci->image_height : ci->image_width);
    img->orig_h = (int)(swap ? ci->image_width : ci->image_height);
    img->format = PV_IMAGE_JPEG;
    img->orientation = orientation;
    return 0;
}

static int decode_jpeg(pv_image_t *img, const uint8_t *data, size_t len, uint64_t max_pixels,
                       int min_long_side, char *msg, size_t msglen)
{
    struct jpeg_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        set_msg(msg, msglen, "jpeg: out of memory");
        return PV_ENOMEM;
    }
    int rc = run_jpeg(j, img, data, len, max_pixels, min_long_side, msg, msglen);
    if (j->created)
        jpeg_destroy_decompress(&j->cinfo);
    free(j->row);
    free(j->rgb);
    free(j);
    return rc;
}

/* ---- PNG ----------------------------------------------------------------- */

static int png_rc(int err)
{
    switch (err) {
    case SPNG_EMEM:
        return PV_ENOMEM;
    case SPNG_EUSER_WIDTH:
    case SPNG_EUSER_HEIGHT:
    case SPNG_ECHUNK_LIMITS:
        return PV_ELIMIT;
    default:
        return PV_EFORMAT;
    }
}

static int decode_png(pv_image_t *img, const uint8_t *data, size_t len, uint64_t max_pixels, char *msg,
                      size_t msglen)
{
    uint8_t *rgb = NULL;
    int rc, err;
    spng_ctx *ctx = spng_ctx_new(0);
    if (ctx == NULL) {
        set_msg(msg, msglen, "png: out of memory");
        return PV_ENOMEM;
    }
    /* A side longer than max_pixels / 8 cannot fit the bound with the other
     * side at its minimum; libspng refuses it while reading IHDR. */
    uint64_t side = max_pixels / PV_IMAGE_MIN_SIDE;
    if (side > 0x7fffffff)
        side = 0x7fffffff;
    if (side < PV_IMAGE_MIN_SIDE)
        side = PV_IMAGE_MIN_SIDE;
    if ((err = spng_set_crc_action(ctx, SPNG_CRC_ERROR, SPNG_CRC_ERROR)) != 0 ||
        (err = spng_set_image_limits(ctx, (uint32_t)side, (uint32_t)side)) != 0 ||
        (err = spng_set_chunk_limits(ctx, PNG_CHUNK_LIMIT, PNG_CACHE_LIMIT)) != 0 ||
        (err = spng_set_png_buffer(ctx, data, len)) != 0) {
        set_msg(msg, msglen, "png: %s", spng_strerror(err));
        rc = png_rc(err);
        goto out;
    }
    struct spng_ihdr ihdr;
    if ((err = spng_get_ihdr(ctx, &ihdr)) != 0) {
        set_msg(msg, msglen, "png: %s", spng_strerror(err));
        rc = png_rc(err);
        goto out;
    }
    if ((rc = check_size(ihdr.width, ihdr.height, max_pixels, "png", msg, msglen)) != 0)
        goto out;
    size_t size = 0;
    if ((err = spng_decoded_image_size(ctx, SPNG_FMT_RGB8, &size)) != 0) {
        set_msg(msg, msglen, "png: %s", spng_strerror(err));
        rc = png_rc(err);
        goto out;
    }
    if (size / 3 / ihdr.width != ihdr.height || size != (size_t)ihdr.width * ihdr.height * 3) {
        set_msg(msg, msglen, "png: decoder wants %zu bytes for %ux%u RGB", size, ihdr.width, ihdr.height);
        rc = PV_EFORMAT;
        goto out;
    }
    if ((rgb = alloc_rgb(ihdr.width, ihdr.height)) == NULL) {
        set_msg(msg, msglen, "png: out of memory for %ux%u pixels", ihdr.width, ihdr.height);
        rc = PV_ENOMEM;
        goto out;
    }
    /* RGB8 output drops alpha, expands palette and gray, takes the high
     * byte of 16-bit samples; interlaced images come out de-interlaced. */
    if ((err = spng_decode_image(ctx, rgb, size, SPNG_FMT_RGB8, 0)) != 0) {
        set_msg(msg, msglen, "png: %s", spng_strerror(err));
        rc = png_rc(err);
        goto out;
    }
    /* The last rows can come out before the IDAT stream is used up, so its
     * CRC (and a truncation right after the pixels) would go unnoticed:
     * read on through IEND, checking every remaining CRC. */
    if ((err = spng_decode_chunks(ctx)) != 0) {
        set_msg(msg, msglen, "png: after the image data: %s", spng_strerror(err));
        rc = png_rc(err);
        goto out;
    }
    img->rgb = rgb;
    rgb = NULL;
    img->w = img->orig_w = (int)ihdr.width;
    img->h = img->orig_h = (int)ihdr.height;
    img->stride = (size_t)ihdr.width * 3;
    img->format = PV_IMAGE_PNG;
    img->orientation = 1;
    rc = 0;
out:
    free(rgb);
    spng_ctx_free(ctx);
    return rc;
}

/* ---- WebP ---------------------------------------------------------------- */

static const char *webp_status(VP8StatusCode st)
{
    switch (st) {
    case VP8_STATUS_OUT_OF_MEMORY:
        return "out of memory";
    case VP8_STATUS_INVALID_PARAM:
        return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR:
        return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE:
        return "unsupported feature";
    case VP8_STATUS_NOT_ENOUGH_DATA:
        return "truncated data";
    default:
        return "decoding failed";
    }
}

static int decode_webp(pv_image_t *img, const uint8_t *data, size_t len, uint64_t max_pixels, char *msg,
                       size_t msglen)
{
    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg)) {
        set_msg(msg, msglen, "webp: library version mismatch");
        return PV_EFORMAT;
    }
    VP8StatusCode st = WebPGetFeatures(data, len, &cfg.input);
    if (st != VP8_STATUS_OK) {
        set_msg(msg, msglen, "webp: %s", webp_status(st));
        return st == VP8_STATUS_OUT_OF_MEMORY ? PV_ENOMEM : PV_EFORMAT;
    }
    if (cfg.input.has_animation) {
        set_msg(msg, msglen, "animated WebP is not supported");
        return PV_EFORMAT;
    }
    if (cfg.input.width <= 0 || cfg.input.height <= 0) {
        set_msg(msg, msglen, "webp: invalid size %dx%d", cfg.input.width, cfg.input.height);
        return PV_EFORMAT;
    }
    int rc =
        check_size((uint64_t)cfg.input.width, (uint64_t)cfg.input.height, max_pixels, "webp", msg, msglen);
    if (rc != 0)
        return rc;
    size_t w = (size_t)cfg.input.width, h = (size_t)cfg.input.height;
    uint8_t *rgb = alloc_rgb(w, h);
    if (rgb == NULL) {
        set_msg(msg, msglen, "webp: out of memory for %zux%zu pixels", w, h);
        return PV_ENOMEM;
    }
    cfg.output.colorspace = MODE_RGB; /* alpha dropped */
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = rgb;
    cfg.output.u.RGBA.stride = (int)(w * 3);
    cfg.output.u.RGBA.size = w * h * 3;
    st = WebPDecode(data, len, &cfg);
    WebPFreeDecBuffer(&cfg.output);
    if (st != VP8_STATUS_OK) {
        free(rgb);
        set_msg(msg, msglen, "webp: %s", webp_status(st));
        return st == VP8_STATUS_OUT_OF_MEMORY ? PV_ENOMEM : PV_EFORMAT;
    }
    img->rgb = rgb;
    img->w = img->orig_w = (int)w;
    img->h = img->orig_h = (int)h;
    img->stride = w * 3;
    img->format = PV_IMAGE_WEBP;
    img->orientation = 1;
    return 0;
}

/* ---- entry point --------------------------------------------------------- */

int pv_image_decode(pv_image_t *out, const uint8_t *data, size_t len, const pv_image_opts_t *opts, char *msg,
                    size_t msglen)
{
    if (msg != NULL && msglen > 0)
        msg[0] = '\0';
    if (out == NULL) {
        set_msg(msg, msglen, "no output image");
        return PV_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (data == NULL || len == 0) {
        set_msg(msg, msglen, "empty input");
        return PV_EINVAL;
    }
    uint64_t max_pixels =
        opts != NULL && opts->max_pixels != 0 ? opts->max_pixels : PV_IMAGE_MAX_PIXELS_DEFAULT;
    int min_long_side = opts != NULL ? opts->min_long_side : 0;
    if (min_long_side < 0) {
        set_msg(msg, msglen, "negative min_long_side");
        return PV_EINVAL;
    }
    pv_image_t img = {0};
    int rc;
    switch (pv_image_sniff(data, len)) {
    case PV_IMAGE_JPEG:
        rc = decode_jpeg(&img, data, len, max_pixels, min_long_side, msg, msglen);
        break;
    case PV_IMAGE_PNG:
        rc = decode_png(&img, data, len, max_pixels, msg, msglen);
        break;
    case PV_IMAGE_WEBP:
        rc = decode_webp(&img, data, len, max_pixels, msg, msglen);
        break;
    default:
        set_msg(msg, msglen, "not a JPEG, PNG or WebP file (unknown signature)");
        return PV_EFORMAT;
    }
    if (rc == 0 && (img.w < PV_IMAGE_MIN_SIDE || img.h < PV_IMAGE_MIN_SIDE)) {
        set_msg(msg, msglen, "%s: decoded image is %dx%d pixels; at least %dx%d is needed",
                pv_image_format_name(img.format), img.w, img.h, PV_IMAGE_MIN_SIDE, PV_IMAGE_MIN_SIDE);
        pv_image_dispose(&img);
        rc = PV_ELIMIT;
    }
    if (rc != 0) {
        pv_image_dispose(&img);
        return rc;
    }
    *out = img;
    return 0;
}
