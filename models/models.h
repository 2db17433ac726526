/*
 * models/: the four face-api 1.7.15 networks in C (float32, NHWC, OpenBLAS).
 * A pv_net_t is loaded once from the tfjs manifests and is then read-only,
 * so any number of threads may run it at once, each with its own
 * pv_net_scratch_t (the per-thread arena; after the first run a forward
 * pass allocates nothing). Inputs are what face-api feeds each net before
 * its own normalization: RGB floats 0..255 after padToSquare + bilinear
 * resize (pv_models_preprocess() computes them from 8-bit pixels).
 */
#ifndef PV_MODELS_MODELS_H
#define PV_MODELS_MODELS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PV_NET_RECOGNITION = 1, /* face_recognition_model: 150x150 -> 128-d descriptor */
    PV_NET_LANDMARK68 = 2,  /* face_landmark_68_model: 112x112 -> 136 raw (x,y) */
    PV_NET_TINY_FACE = 3,   /* tiny_face_detector_model: SxS (S % 32 == 0) -> (S/32)^2 x 25 */
    PV_NET_SSD = 4,         /* ssd_mobilenetv1_model: 512x512 -> 5118x4 encodings, 5118x3 logits */
} pv_net_kind_t;

/* SSD output geometry. */
#define PV_SSD_ANCHORS 5118
#define PV_SSD_OUTPUT_LEN (PV_SSD_ANCHORS * 7)

typedef struct pv_net pv_net_t;
typedef struct pv_net_scratch pv_net_scratch_t;

/*
 * Loads network `kind` from `model_dir`, the folder holding
 * `<model>-weights_manifest.json` and its .bin (face-api's `model/`). Every
 * tensor's name, dtype and shape is checked. Also sets OpenBLAS to one
 * thread: one call runs on one thread. On success the caller owns *out
 * (pv_net_free). Errors: PV_ENOTFOUND (missing file), PV_EIO, PV_EFORMAT
 * (corrupt, short, trailing or mismatched data), PV_ELIMIT, PV_ENOMEM,
 * PV_EINVAL (bad kind).
 */
int pv_net_load(pv_net_t **out, pv_net_kind_t kind, const char *model_dir);

/* pv_net_load() that also writes a one-line reason for a failure into msg
 * (msglen bytes, NUL-terminated; msg may be NULL). */
int pv_net_load_msg(pv_net_t **out, pv_net_kind_t kind, const char *model_dir, char *msg, size_t msglen);

/* Frees a net; NULL is a no-op. */
void pv_net_free(pv_net_t *net);

/* The net's kind and its usual input side (150, 112, 416, 512). */
pv_net_kind_t pv_net_kind(const pv_net_t *net);
int pv_net_input_size(const pv_net_t *net);

/* Number of floats pv_net_run() writes for an input of side `size`, or 0 if
 * the net does not accept that size. */
size_t pv_net_output_len(const pv_net_t *net, int size);

/*
 * Creates a scratch arena for one thread. It grows to the largest need seen
 * (up to limit_bytes; 0 means 512 MiB) and then stays that size. Caller
 * owns *out (pv_net_scratch_free). Returns 0 or PV_ENOMEM.
 */
int pv_net_scratch_create(pv_net_scratch_t **out, size_t limit_bytes);
void pv_net_scratch_free(pv_net_scratch_t *s);
/* Floating-point operations counted in the last run on `s` (for benchmarks). */
double pv_net_scratch_flops(const pv_net_scratch_t *s);
/* Bytes the arena holds (its high-water size). */
size_t pv_net_scratch_bytes(const pv_net_scratch_t *s);

/*
 * Runs the net on `input`, size x size x 3 floats (HWC RGB, 0..255), and
 * writes pv_net_output_len(net, size) floats to out (out_len must be at
 * least that):
 *  - recognition: the 128-d descriptor (not L2-normalized);
 *  - landmark68: 136 values x0,y0,x1,y1,... relative to the padded square;
 *  - tiny: the raw G x G x 25 grid (G = size/32), channel = anchor*5 + k;
 *  - ssd: 5118x4 box encodings (ty,tx,th,tw), then 5118x3 class logits.
 * Returns 0, PV_EINVAL (size/out_len), PV_ELIMIT or PV_ENOMEM (scratch).
 */
int pv_net_run(float *out, size_t out_len, const pv_net_t *net, pv_net_scratch_t *scratch, const float *input,
               int size);

/*
 * SSD decoding as face-api does it: boxes (5118x4, ymin,xmin,ymax,xmax on the
 * padded 512 square) from the encodings and the model's anchors, and
 * scores (5118) = sigmoid(logit of class 1). `raw` is pv_net_run()'s output.
 * Returns 0 or PV_EINVAL if `net` is not the SSD.
 */
int pv_net_ssd_decode(float *boxes, float *scores, const pv_net_t *net, const float *raw);

/*
 * face-api's NetInput.toBatchTensor for one image: pads the w x h RGB image
 * (rows `stride` bytes apart) with zeros to a square (centred when `center`
 * is non-zero, as for recognition and landmarks; bottom/right for the
 * detectors) and resizes it bilinearly (tfjs, no half-pixel centres) to
 * size x size x 3 floats in out. Bit-exact with the reference. Returns 0 or
 * PV_EINVAL.
 */
int pv_models_preprocess(float *out, int size, const uint8_t *rgb, int w, int h, size_t stride, int center);

/*
 * Call first thing in main() of a program that runs the networks, before
 * any thread starts: if OpenBLAS did not recognise this CPU and fell back to
 * its SSE3 kernels while the CPU has AVX2/AVX-512, the program re-executes
 * itself (same argv) with OPENBLAS_CORETYPE set, which is the only way to
 * change the choice. Returns when nothing needs doing. argv may be NULL.
 */
void pv_models_blas_init(char **argv);

/* The OpenBLAS kernel set in use ("SkylakeX", "Haswell", "Prescott", ...); static. */
const char *pv_models_blas_core(void);

#endif
