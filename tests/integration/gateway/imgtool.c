/*
 * imgtool: makes the test images of the recognition integration test from
 * the sample photos (nothing is committed): a JPEG crop (another "visit" of
 * the same person, framed differently), a PNG copy, a truncated copy.
 *   imgtool crop IN OUT.jpg X Y W H      imgtool png IN OUT.png
 *   imgtool variant IN OUT.jpg X Y W H SCALE FLIP BRIGHT QUALITY
 *     (crop, resize by SCALE (bilinear), mirror when FLIP is 1, add BRIGHT
 *     to every channel, re-encode at QUALITY)
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <spng.h>
#include "recognizer/image.h"

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b != NULL && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int write_jpeg(const char *path, const uint8_t *rgb, int w, int h, size_t stride, int quality)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return 1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * stride);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return fclose(f) != 0;
}

static int write_png(const char *path, const pv_image_t *img)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return 1;
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    struct spng_ihdr ihdr = {.width = (uint32_t)img->w,
                             .height = (uint32_t)img->h,
                             .bit_depth = 8,
                             .color_type = SPNG_COLOR_TYPE_TRUECOLOR};
    int rc =
        spng_set_png_file(ctx, f) || spng_set_ihdr(ctx, &ihdr) ||
        spng_encode_image(ctx, img->rgb, (size_t)img->h * img->stride, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    spng_ctx_free(ctx);
    return (fclose(f) != 0) || rc;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: imgtool crop IN OUT X Y W H | png IN OUT\n");
        return 2;
    }
    size_t len;
    uint8_t *data = read_all(argv[2], &len);
    pv_image_t img;
    char msg[256];
    if (data == NULL || pv_image_decode(&img, data, len, NULL, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "imgtool: cannot read %s\n", argv[2]);
        return 1;
    }
    int rc = 2;
    if (strcmp(argv[1], "crop") == 0 && argc == 8) {
        int x = atoi(argv[4]), y = atoi(argv[5]), w = atoi(argv[6]), h = atoi(argv[7]);
        if (x < 0 || y < 0 || w < 8 || h < 8 || x + w > img.w || y + h > img.h) {
            fprintf(stderr, "imgtool: crop outside the image\n");
            rc = 1;
        } else {
            rc = write_jpeg(argv[3], img.rgb + (size_t)y * img.stride + (size_t)x * 3, w, h, img.stride, 92);
        }
    } else if (strcmp(argv[1], "variant") == 0 && argc == 12) {
        int x = atoi(argv[4]), y = atoi(argv[5]), w = atoi(argv[6]), h = atoi(argv[7]);
        double sc = atof(argv[8]);
        int flip = atoi(argv[9]), bright = atoi(argv[10]), q = atoi(argv[11]);
        int ow = (int)(w * sc), oh = (int)(h * sc);
        if (x < 0 || y < 0 || w < 8 || h < 8 || x + w > img.w || y + h > img.h || ow < 8 || oh < 8 ||
            ow > 8000 || oh > 8000 || q < 1 || q > 100) {
            fprintf(stderr, "imgtool: bad variant arguments\n");
            rc = 1;
        } else {
            uint8_t *out = malloc((size_t)ow * oh * 3);
            for (int r = 0; out != NULL && r < oh; r++)
                for (int c = 0; c < ow; c++) {
                    double sy = (r + 0.5) / sc - 0.5, sx = (c + 0.5) / sc - 0.5;
                    int y0 = sy < 0 ? 0 : (int)sy, x0 = sx < 0 ? 0 : (int)sx;
                    int y1 = y0 + 1 < h ? y0 + 1 : h - 1, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
                    double fy = sy - y0 < 0 ? 0 : sy - y0, fx = sx - x0 < 0 ? 0 : sx - x0;
                    int oc = flip ? ow - 1 - c : c;
                    for (int ch = 0; ch < 3; ch++) {
#define PX(yy, xx) img.rgb[(size_t)(y + (yy)) * img.stride + (size_t)(x + (xx)) * 3 + ch]
                        double v = (PX(y0, x0) * (1 - fx) + PX(y0, x1) * fx) * (1 - fy) +
                                   (PX(y1, x0) * (1 - fx) + PX(y1, x1) * fx) * fy + bright;
#undef PX
                        out[((size_t)r * ow + oc) * 3 + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5);
                    }
                }
            rc = out == NULL || write_jpeg(argv[3], out, ow, oh, (size_t)ow * 3, q);
            free(out);
        }
    } else if (strcmp(argv[1], "png") == 0) {
        rc = write_png(argv[3], &img);
    }
    pv_image_dispose(&img);
    free(data);
    return rc;
}
