/*
 * Internal tensor runtime of models/: NHWC float32 tensors (batch 1), a
 * double-ended scratch arena, and the layer kernels the four face-api
 * networks need. Nothing here allocates on the heap during a forward pass
 * once the arena has reached its high-water size. Not a public header: only the
 * models/ sources include it.
 */
#ifndef PV_MODELS_NN_H
#define PV_MODELS_NN_H

#include <stddef.h>

typedef struct {
    int h, w, c;
    float *d;
} nn_tensor_t;

static inline size_t nn_numel(const nn_tensor_t *t)
{
    return (size_t)t->h * t->w * t->c;
}

/* ---- scratch arena ------------------------------------------------------
 * One buffer used from both ends: a layer reads its input from one end and
 * writes its output at the other, then the input end is released. When a
 * request does not fit, the arena serves it from an overflow block and
 * remembers the peak; nn_arena_reset() then grows the main buffer to that
 * peak, so from the second run on a forward pass allocates nothing. */
typedef struct nn_overflow nn_overflow_t;
typedef struct {
    char *base;
    size_t cap;
    size_t used[2]; /* bytes taken from the low (0) and high (1) end */
    size_t peak;
    size_t limit; /* refuse to grow past this */
    nn_overflow_t *overflow;
    int failed;   /* PV_ENOMEM or PV_ELIMIT once an allocation failed in this run */
    double flops; /* multiply-adds x 2 counted by the kernels, for benchmarks */
} nn_arena_t;

void nn_arena_init(nn_arena_t *a, size_t limit);
void nn_arena_dispose(nn_arena_t *a);
/* Ends a run: frees overflow blocks and grows to the peak. Returns 0 or PV_ENOMEM. */
int nn_arena_reset(nn_arena_t *a);
/* 64-byte aligned floats from end `side` (0 or 1); NULL (and a->failed) on failure. */
float *nn_arena_floats(nn_arena_t *a, int side, size_t n);
static inline size_t nn_arena_mark(const nn_arena_t *a, int side)
{
    return a->used[side];
}
static inline void nn_arena_release(nn_arena_t *a, int side, size_t mark)
{
    a->used[side] = mark;
}
/* Allocates an h x w x c tensor at end `side`; returns 0 or PV_ENOMEM. */
int nn_tensor_alloc(nn_tensor_t *t, nn_arena_t *a, int side, int h, int w, int c);

/* ---- layers ------------------------------------------------------------- */
enum { NN_ACT_NONE, NN_ACT_RELU, NN_ACT_RELU6, NN_ACT_LEAKY };
enum { NN_PAD_VALID, NN_PAD_SAME };

/* Dense convolution, weights HWIO = a (kh*kw*cin) x cout row-major matrix. */
typedef struct {
    int kh, kw, cin, cout, stride, pad, act;
    float *w;          /* kh*kw*cin*cout, owned; NULL when kept quantized in wq */
    float *b;          /* cout, owned */
    unsigned char *wq; /* uint8 weights, owned, dequantized per run through wlut */
    float wlut[256];
} nn_conv_t;

/* Depthwise 3x3 (any k) followed by a pointwise 1x1, the separable block.
 * dw_b may be NULL (no depthwise bias); dw_act applies to the depthwise
 * output, pw act to the final one. */
typedef struct {
    int k, c, cout, stride, pad, dw_act, act;
    float *dw_w;         /* k*k*c, owned */
    float *dw_b;         /* c or NULL, owned */
    float *pw_w;         /* c*cout, owned; NULL when kept quantized in pw_q */
    float *pw_b;         /* cout, owned */
    unsigned char *pw_q; /* uint8 pointwise weights, owned, dequantized per run through pw_lut */
    float pw_lut[256];
} nn_sep_t;

void nn_conv_dispose(nn_conv_t *l);
void nn_sep_dispose(nn_sep_t *l);

/* Output size of a k/stride window under TF padding; *pad_before gets the
 * leading pad ('same': floor(total/2), the rest at the bottom/right). */
int nn_out_size(int in, int k, int stride, int pad, int *pad_before);

/* y = act(conv(x) + b), y allocated at arena end `side` (temporaries too). */
int nn_conv_run(nn_tensor_t *y, const nn_conv_t *l, const nn_tensor_t *x, nn_arena_t *a, int side);
/* Same, into caller memory y (oh*ow*cout floats). */
int nn_conv_into(float *y, const nn_conv_t *l, const nn_tensor_t *x, nn_arena_t *a, int side);
/* Residual form, in place: acc = act(conv(x) + b + acc). */
int nn_conv_accum(nn_tensor_t *acc, const nn_conv_t *l, const nn_tensor_t *x, nn_arena_t *a, int side);
/* y = act(pw(dw_act(dw(x) + dw_b)) + pw_b) at arena end `side`. */
int nn_sep_run(nn_tensor_t *y, const nn_sep_t *l, const nn_tensor_t *x, nn_arena_t *a, int side);
/* nn_sep_run(l2, nn_sep_run(l1, x)) with only a band of l1's output in the
 * arena at any time; same values. */
int nn_sep2_run(nn_tensor_t *y, const nn_sep_t *l1, const nn_sep_t *l2, const nn_tensor_t *x, nn_arena_t *a,
                int side);
/* Max or average pooling; padded cells are ignored, the average divides by
 * the count of in-bounds cells (float64 sum, one rounding). */
int nn_pool_run(nn_tensor_t *y, const nn_tensor_t *x, int k, int stride, int pad, int is_max, nn_arena_t *a,
                int side);
/* out[j] = sum_k x[k] w[k][j] (+ b[j]); float64 accumulation. b may be NULL. */
void nn_fc(float *out, const float *x, const float *w, const float *b, int n_in, int n_out);

#endif
