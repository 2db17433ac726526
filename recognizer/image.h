/*
 * recognizer/image: decodes an uploaded photo (JPEG, PNG or WebP, chosen by
 * its signature, never by its name) into 8-bit RGB for the face pipeline.
 * Always holds: the declared size is checked against a pixel bound before
 * any large allocation; a decoded image is at least 8x8; truncated or
 * corrupt data is an error, never a partly gray picture; a JPEG's EXIF
 * orientation has been applied to the pixels.
 */
#ifndef PV_RECOGNIZER_IMAGE_H
#define PV_RECOGNIZER_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef enum { PV_IMAGE_UNKNOWN = 0, PV_IMAGE_JPEG, PV_IMAGE_PNG, PV_IMAGE_WEBP } pv_image_format_t;

/* Default pixel bound when pv_image_opts_t.max_pixels is 0. */
#define PV_IMAGE_MAX_PIXELS_DEFAULT 40000000ull
/* Smallest accepted side, in pixels, of a decoded image. */
#define PV_IMAGE_MIN_SIDE 8

typedef struct pv_image {
    uint8_t *rgb; /* w*h*3 bytes, RGB8, rows stride bytes apart; owned (pv_image_dispose) */
    int w, h;     /* decoded size after EXIF orientation and any DCT downscale */
    size_t stride;
    int orig_w, orig_h; /* full-resolution size after orientation: coordinates map back by orig_w/w */
    pv_image_format_t format;
    int orientation; /* EXIF orientation applied (1..8; 1 when none) */
} pv_image_t;

typedef struct pv_image_opts {
    uint64_t max_pixels; /* declared w*h above this -> PV_ELIMIT before any large allocation; 0 = 40000000 */
    int min_long_side;   /* JPEG only: pick the largest libjpeg scale 1/2,1/4,1/8 whose scaled longer side
                            stays >= this; 0 = always full resolution */
} pv_image_opts_t;

/* The format `data` (len bytes) announces by its signature alone: JPEG
 * FF D8 FF, the 8-byte PNG signature, or "RIFF" ???? "WEBP". */
pv_image_format_t pv_image_sniff(const uint8_t *data, size_t len);

/* "jpeg", "png", "webp" or "unknown"; static. */
const char *pv_image_format_name(pv_image_format_t f);

/*
 * Decodes data (len bytes) into *out, caller storage. On success the caller
 * owns out->rgb (pv_image_dispose); on failure *out is zeroed and owns
 * nothing. opts may be NULL (defaults). msg (msglen bytes, may be NULL) gets
 * a one-line reason on failure. Errors: PV_EINVAL (NULL or empty input),
 * PV_EFORMAT (unknown signature, corrupt, truncated, animated, unsupported),
 * PV_ELIMIT (more than max_pixels declared, or smaller than 8 px on a side),
 * PV_ENOMEM.
 */
int pv_image_decode(pv_image_t *out, const uint8_t *data, size_t len, const pv_image_opts_t *opts, char *msg,
                    size_t msglen);

/* Frees img->rgb and zeroes *img; NULL and zeroed images are fine. */
void pv_image_dispose(pv_image_t *img);

#endif
