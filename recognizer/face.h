/*
 * recognizer/face: the face pipeline. Image -> detection (tiny at 416 by
 * default, SSD at 512 on request) -> 68 landmarks -> the reference's
 * descriptor crop -> 150x150 -> 128-d embedding, each step as face-api
 * 1.7.15 computes it on the tensor path (../shared/golden/ARCHITECTURES.md
 * section 7), plus what the reference lacks: a padded retry for tight face
 * crops and a quality record per face. An engine (the four nets) is shared
 * read-only by all threads; each thread runs it through its own context.
 */
#ifndef PV_RECOGNIZER_FACE_H
#define PV_RECOGNIZER_FACE_H

#include <stddef.h>
#include <stdint.h>
#include "recognizer/image.h"

#define PV_FACE_DESC_DIM 128
#define PV_FACE_LANDMARKS 68
#define PV_FACE_MAX_FACES 64 /* hard bound on faces answered per image */

typedef enum { PV_DETECTOR_TINY = 0, PV_DETECTOR_SSD = 1 } pv_detector_t;

typedef struct pv_face_engine pv_face_engine_t;
typedef struct pv_face_ctx pv_face_ctx_t;

/* A box in image pixels (float, may extend past the image as the reference's do). */
typedef struct pv_box {
    double x, y, w, h;
} pv_box_t;

typedef struct pv_face_quality {
    double face_px;   /* min(width, height) of the detection box, full-resolution pixels */
    double sharpness; /* variance of the Laplacian of the 150x150 luma, inside the crop */
    double yaw_deg;   /* rough yaw from the jaw line and nose tip: 0 frontal, +-90 profile */
} pv_face_quality_t;

typedef struct pv_face {
    pv_box_t box;                           /* detection box, full-resolution pixels */
    double score;                           /* detector score, 0..1 */
    double landmarks[PV_FACE_LANDMARKS][2]; /* (x, y), full-resolution pixels */
    pv_box_t landmark_crop;                 /* integer slice fed to the landmark net (decoded pixels) */
    pv_box_t descriptor_crop;               /* integer slice fed to the recognition net (decoded pixels) */
    pv_face_quality_t quality;
    int border;                         /* 1: the reference's crops were cut by the image border */
    float descriptor[PV_FACE_DESC_DIM]; /* as the network outputs it (not normalized) */
} pv_face_t;

typedef struct pv_face_opts {
    pv_detector_t detector;
    double min_score;  /* detection threshold; 0 means the reference's 0.5 */
    int tiny_size;     /* tiny detector input side, multiple of 32; 0 means 416 */
    int no_retry;      /* 1: do not pad and retry when nothing is found */
    int no_descriptor; /* 1: stop after landmarks (detect-only callers) */
    int max_faces;     /* 0 means PV_FACE_MAX_FACES; more faces are dropped, lowest score first */
} pv_face_opts_t;

typedef struct pv_face_timing {
    double decode_ms, detect_ms, landmarks_ms, embed_ms, total_ms;
} pv_face_timing_t;

typedef struct pv_face_result {
    int width, height;        /* full-resolution image size after EXIF orientation */
    int decoded_w, decoded_h; /* what was analysed (smaller after DCT downscaling) */
    pv_image_format_t format;
    int retried; /* 1 when the padded retry ran (no face, or a face cut by the border) */
    int nfaces;
    pv_face_t faces[PV_FACE_MAX_FACES];
    pv_face_timing_t timing;
} pv_face_result_t;

/*
 * Loads the four networks from model_dir (face-api's `model/` folder). The
 * caller owns *out (pv_face_engine_free); it is read-only afterwards, so any
 * number of contexts may use it at once. msg (may be NULL) gets a one-line
 * reason on failure. Errors as pv_net_load().
 */
int pv_face_engine_load(pv_face_engine_t **out, const char *model_dir, char *msg, size_t msglen);
void pv_face_engine_free(pv_face_engine_t *eng);

/* A per-thread context (scratch arena and buffers) for `eng`, which must
 * outlive it. Caller owns *out (pv_face_ctx_free). Returns 0 or PV_ENOMEM. */
int pv_face_ctx_create(pv_face_ctx_t **out, const pv_face_engine_t *eng);
void pv_face_ctx_free(pv_face_ctx_t *ctx);

/* Fills *o with the defaults (tiny at 416, score 0.5, retry on, descriptors on). */
void pv_face_opts_default(pv_face_opts_t *o);

/*
 * Runs the pipeline on a decoded image. Coordinates in *res are in the
 * full-resolution frame (img->orig_w x img->orig_h). opts may be NULL
 * (defaults). Returns 0 (zero faces is a success), PV_EINVAL (bad options or
 * image), PV_ELIMIT / PV_ENOMEM (scratch bounds).
 */
int pv_face_run(pv_face_result_t *res, pv_face_ctx_t *ctx, const pv_image_t *img, const pv_face_opts_t *opts);

/*
 * Decodes an encoded image (JPEG, PNG or WebP, chosen by signature; see
 * pv_image_decode(), whose limits `iopts` sets, may be NULL) and runs
 * pv_face_run() on it. msg gets a one-line reason for a decode failure.
 * Errors: those of pv_image_decode() and pv_face_run().
 */
int pv_face_analyze(pv_face_result_t *res, pv_face_ctx_t *ctx, const uint8_t *data, size_t len,
                    const pv_image_opts_t *iopts, const pv_face_opts_t *opts, char *msg, size_t msglen);

/* Euclidean distance between two descriptors. */
double pv_face_distance(const float *a, const float *b);

#endif
