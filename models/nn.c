/*
 * Layer kernels and the scratch arena of the models/ runtime. Dense
 * convolutions are im2col (in row chunks that stay in cache) + OpenBLAS
 * sgemm; 1x1 stride-1 convolutions call sgemm on the tensor directly.
 * Every kernel writes its output at one end of the arena and releases its
 * temporaries before returning.
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "models/nn.h"

#define ALIGN 64
/* Target size of one im2col / depthwise chunk, in floats (256 KiB). */
#define CHUNK_FLOATS (64 * 1024)

struct nn_overflow {
    nn_overflow_t *next;
    void *mem;
};

void nn_arena_init(nn_arena_t *a, size_t limit)
{
    memset(a, 0, sizeof(*a));
    a->limit = limit;
}

static void free_overflow(nn_arena_t *a)
{
    while (a->overflow != NULL) {
        nn_overflow_t *o = a->overflow;
        a->overflow = o->next;
        free(o->mem);
        free(o);
    }
}

void nn_arena_dispose(nn_arena_t *a)
{
    if (a == NULL)
        return;
    free_overflow(a);
    free(a->base);
    a->base = NULL;
    a->cap = 0;
}

int nn_arena_reset(nn_arena_t *a)
{
    int ret = 0;
    free_overflow(a);
    if (a->peak > a->cap) {
        free(a->base);
        a->cap = 0;
        a->base = aligned_alloc(ALIGN, a->peak);
        if (a->base == NULL) {
            ret = PV_ENOMEM;
            goto out;
        }
        a->cap = a->peak;
    }
out:
    a->used[0] = a->used[1] = 0;
    a->failed = 0;
    return ret;
}

float *nn_arena_floats(nn_arena_t *a, int side, size_t n)
{
    if (n > (a->limit - ALIGN) / sizeof(float))
        goto limit;
    size_t bytes = (n * sizeof(float) + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    size_t total = a->used[0] + a->used[1] + bytes;
    if (total > a->limit)
        goto limit;
    if (total > a->peak)
        a->peak = total;
    if (total <= a->cap) {
        char *p;
        if (side == 0) {
            p = a->base + a->used[0];
            a->used[0] += bytes;
        } else {
            a->used[1] += bytes;
            p = a->base + a->cap - a->used[1];
        }
        return (float *)p;
    }
    /* First run (or a bigger input): serve from an overflow block; the
     * next reset grows the main buffer so this does not happen again. */
    nn_overflow_t *o = malloc(sizeof(*o));
    if (o == NULL)
        goto fail;
    o->mem = aligned_alloc(ALIGN, bytes ? bytes : ALIGN);
    if (o->mem == NULL) {
        free(o);
        goto fail;
    }
    o->next = a->overflow;
    a->overflow = o;
    a->used[side] += bytes;
    return o->mem;
fail:
    a->failed = PV_ENOMEM;
    return NULL;
limit:
    a->failed = PV_ELIMIT;
    return NULL;
}

int nn_tensor_alloc(nn_tensor_t *t, nn_arena_t *a, int side, int h, int w, int c)
{
    t->h = h;
    t->w = w;
    t->c = c;
    t->d = nn_arena_floats(a, side, (size_t)h * w * c);
    return t->d != NULL ? 0 : PV_ENOMEM;
}

void nn_conv_dispose(nn_conv_t *l)
{
    free(l->w);
    free(l->b);
    free(l->wq);
    l->w = l->b = NULL;
    l->wq = NULL;
}

void nn_sep_dispose(nn_sep_t *l)
{
    free(l->dw_w);
    free(l->dw_b);
    free(l->pw_w);
    free(l->pw_b);
    free(l->pw_q);
    l->dw_w = l->dw_b = l->pw_w = l->pw_b = NULL;
    l->pw_q = NULL;
}

int nn_out_size(int in, int k, int stride, int pad, int *pad_before)
{
    if (pad == NN_PAD_SAME) {
        int out = (in + stride - 1) / stride;
        int total = (out - 1) * stride + k - in;
        if (total < 0)
            total = 0;
        *pad_before = total / 2;
        return out;
    }
    *pad_before = 0;
    if (in < k)
        return 0;
    return (in - k) / stride + 1;
}

/* In place: o[i] = act(o[i]) for n floats. One loop per activation so the
 * compiler vectorizes each. The leaky ReLU is face-api's literal
 * min = x*0.1f; relu(x - min) + min, which rounds differently from
 * x > 0 ? x : 0.1f*x. */
static void activate(float *restrict o, size_t n, int act)
{
    switch (act) {
    case NN_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            o[i] = o[i] < 0.0f ? 0.0f : o[i];
        break;
    case NN_ACT_RELU6:
        for (size_t i = 0; i < n; i++) {
            float v = o[i] < 0.0f ? 0.0f : o[i];
            o[i] = v > 6.0f ? 6.0f : v;
        }
        break;
    case NN_ACT_LEAKY:
        for (size_t i = 0; i < n; i++) {
            float m = o[i] * 0.1f;
            float d = o[i] - m;
            o[i] = (d < 0.0f ? 0.0f : d) + m;
        }
        break;
    default:
        break;
    }
}

/* dst = act(src + b + res) over `rows` rows of `c` channels; b and res may be
 * NULL, dst may be src or res (the same element is read before it is
 * written). The additions are separate float32 roundings in the reference's
 * order: (x + b) + res. */
static void epilogue(float *dst, const float *src, const float *b, const float *res, size_t rows, int c,
                     int act)
{
    const size_t total = rows * (size_t)c;
    if (b == NULL && res == NULL) {
        if (dst != src)
            memmove(dst, src, total * sizeof(float));
    } else if (b == NULL) {
        for (size_t i = 0; i < total; i++)
            dst[i] = src[i] + res[i];
    } else {
        for (size_t r = 0; r < rows; r++) {
            float *o = dst + r * c;
            const float *in = src + r * c;
            if (res != NULL) {
                const float *rr = res + r * c;
                for (int ch = 0; ch < c; ch++)
                    o[ch] = (in[ch] + b[ch]) + rr[ch];
            } else {
                for (int ch = 0; ch < c; ch++)
                    o[ch] = in[ch] + b[ch];
            }
        }
    }
    activate(dst, total, act);
}

/* C[m x n] = A[m x k] * B[k x n], all row-major and dense. */
static void gemm(float *c, const float *a, const float *b, int m, int n, int k)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
}

/* A layer's float weights: w itself, or its uint8 weights q dequantized
 * through lut into the arena at `side` (bit for bit the values a float
 * load would hold; a table lookup per weight and run keeps the resident
 * weights at a quarter of the size). NULL when the arena is exhausted. */
static const float *layer_weights(const float *w, const unsigned char *q, const float *lut, size_t n,
                                  nn_arena_t *a, int side)
{
    if (w != NULL)
        return w;
    float *d = nn_arena_floats(a, side, n);
    if (d != NULL)
        for (size_t i = 0; i < n; i++)
            d[i] = lut[q[i]];
    return d;
}

/* Fills rows oy0..oy1-1 of the im2col matrix: one row per output pixel,
 * (ky, kx, cin) order, zeros for padded taps. */
static void im2col(float *col, const nn_tensor_t *x, const nn_conv_t *l, int oy0, int oy1, int ow, int pt,
                   int pl)
{
    const int cin = x->c, kw = l->kw, s = l->stride;
    const size_t krow = (size_t)kw * cin;
    for (int oy = oy0; oy < oy1; oy++) {
        for (int ox = 0; ox < ow; ox++) {
            float *dst = col + ((size_t)(oy - oy0) * ow + ox) * l->kh * krow;
            int ix0 = ox * s - pl;
            for (int ky = 0; ky < l->kh; ky++, dst += krow) {
                int iy = oy * s - pt + ky;
                if (iy < 0 || iy >= x->h) {
                    memset(dst, 0, krow * sizeof(float));
                    continue;
                }
                const float *src = x->d + ((size_t)iy * x->w) * cin;
                if (ix0 >= 0 && ix0 + kw <= x->w) {
                    memcpy(dst, src + (size_t)ix0 * cin, krow * sizeof(float));
                    continue;
                }
                for (int kx = 0; kx < kw; kx++) {
                    int ix = ix0 + kx;
                    if (ix < 0 || ix >= x->w)
                        memset(dst + (size_t)kx * cin, 0, cin * sizeof(float));
                    else
                        memcpy(dst + (size_t)kx * cin, src + (size_t)ix * cin, cin * sizeof(float));
                }
            }
        }
    }
}

/* The convolution proper: writes act(conv(x) + b) into y, or, when y is
 * NULL, act(conv(x) + b + acc) into acc. */
static int conv_exec(float *y, float *acc, const nn_conv_t *l, const nn_tensor_t *x, nn_arena_t *a, int side)
{
    int pt, pl;
    int oh = nn_out_size(x->h, l->kh, l->stride, l->pad, &pt);
    int ow = nn_out_size(x->w, l->kw, l->stride, l->pad, &pl);
    const int direct = l->kh == 1 && l->kw == 1 && l->stride == 1;
    const int k = l->kh * l->kw * l->cin;
    const int width = direct ? l->cout : k > l->cout ? k : l->cout;
    int ret = 0;
    size_t mark = nn_arena_mark(a, side);
    float *col = NULL, *tmp = NULL;
    const float *w = layer_weights(l->w, l->wq, l->wlut, (size_t)k * l->cout, a, side);
    if (w == NULL)
        goto nomem;

    int rows = CHUNK_FLOATS / (ow * width);
    rows = rows < 1 ? 1 : rows > oh ? oh : rows;
    if (direct && acc == NULL)
        rows = oh;
    if (!direct && (col = nn_arena_floats(a, side, (size_t)rows * ow * k)) == NULL)
        goto nomem;
    if (acc != NULL && (tmp = nn_arena_floats(a, side, (size_t)rows * ow * l->cout)) == NULL)
        goto nomem;
    a->flops += 2.0 * oh * ow * (double)k * l->cout;
    for (int oy = 0; oy < oh; oy += rows) {
        int n = oh - oy < rows ? oh - oy : rows;
        size_t off = (size_t)oy * ow * l->cout;
        const float *src = x->d + (size_t)oy * ow * l->cin;
        float *dst = acc != NULL ? tmp : y + off;
        if (!direct) {
            im2col(col, x, l, oy, oy + n, ow, pt, pl);
            src = col;
        }
        gemm(dst, src, w, n * ow, l->cout, k);
        if (acc != NULL)
            epilogue(acc + off, dst, l->b, acc + off, (size_t)n * ow, l->cout, l->act);
        else
            epilogue(dst, dst, l->b, NULL, (size_t)n * ow, l->cout, l->act);
    }
    goto out;
nomem:
    ret = PV_ENOMEM;
out:
    nn_arena_release(a, side, mark);
    return ret;
}

static int conv_check(const nn_conv_t *l, const nn_tensor_t *x, int *oh, int *ow)
{
    int pt, pl;
    *oh = nn_out_size(x->h, l->kh, l->stride, l->pad, &pt);
    *ow = nn_out_size(x->w, l->kw, l->stride, l->pad, &pl);
    return x->c == l->cin && *oh > 0 && *ow > 0 ? 0 : PV_EINVAL;
}

int nn_conv_run(nn_tensor_t *y, const nn_conv_t *l, const nn_tensor_t *x, nn_arena_t *a, int side)
{
    int ret, oh, ow;
    if ((ret = conv_check(l, x, &oh, &ow)) != 0)
        return ret;
    if ((ret = nn_tensor_alloc(y, a, side, oh, ow, l->cout)) != 0)
        return ret;
    return conv_exec(y->d, NULL, l, x, a, side);
}

int nn_conv_into(float *y, const nn_conv_t *l, const nn_tensor_t *x, nn_arena_t *a, int side)
{
    int ret, oh, ow;
    if ((ret = conv_check(l, x, &oh, &ow)) != 0)
        return ret;
    return conv_exec(y, NULL, l, x, a, side);
}

int nn_conv_accum(nn_tensor_t *acc, const nn_conv_t *l, const nn_tensor_t *x, nn_arena_t *a, int side)
{
    int ret, oh, ow;
    if ((ret = conv_check(l, x, &oh, &ow)) != 0)
        return ret;
    if (acc->h != oh || acc->w != ow || acc->c != l->cout)
        return PV_EINVAL;
    return conv_exec(NULL, acc->d, l, x, a, side);
}

/* Depthwise output rows oy0..oy1-1 into tmp; products accumulated in float32
 * in (ky, kx) order per channel. x holds the rows from x_row0 on of a
 * tensor x->h rows high (x_row0 > 0 for a band of a larger tensor). */
static void depthwise(float *tmp, const nn_tensor_t *x, int x_row0, const nn_sep_t *l, int oy0, int oy1,
                      int ow, int pt, int pl)
{
    const int c = l->c, k = l->k, s = l->stride;
    for (int oy = oy0; oy < oy1; oy++) {
        for (int ox = 0; ox < ow; ox++) {
            float *o = tmp + ((size_t)(oy - oy0) * ow + ox) * c;
            for (int ch = 0; ch < c; ch++)
                o[ch] = 0.0f;
            for (int ky = 0; ky < k; ky++) {
                int iy = oy * s - pt + ky;
                if (iy < 0 || iy >= x->h)
                    continue;
                for (int kx = 0; kx < k; kx++) {
                    int ix = ox * s - pl + kx;
                    if (ix < 0 || ix >= x->w)
                        continue;
                    const float *xi = x->d + ((size_t)(iy - x_row0) * x->w + ix) * c;
                    const float *wi = l->dw_w + (size_t)(ky * k + kx) * c;
                    for (int ch = 0; ch < c; ch++)
                        o[ch] += xi[ch] * wi[ch];
                }
            }
        }
    }
}

/* Output geometry of a separable block on x; PV_EINVAL if it does not fit. */
static int sep_geometry(const nn_sep_t *l, int h, int w, int c, int *oh, int *ow, int *pt, int *pl)
{
    *oh = nn_out_size(h, l->k, l->stride, l->pad, pt);
    *ow = nn_out_size(w, l->k, l->stride, l->pad, pl);
    return c == l->c && *oh > 0 && *ow > 0 ? 0 : PV_EINVAL;
}

/* Rows oy0..oy1-1 of the block's output into dst (row oy0 first), `rows`
 * at a time through tmp (rows x ow x c floats); pw are its float pointwise
 * weights. x as for depthwise(). */
static void sep_rows(float *dst, const nn_sep_t *l, const float *pw, const nn_tensor_t *x, int x_row0,
                     int oy0, int oy1, int ow, int pt, int pl, float *tmp, int rows)
{
    for (int oy = oy0; oy < oy1; oy += rows) {
        int n = oy1 - oy < rows ? oy1 - oy : rows;
        float *o = dst + (size_t)(oy - oy0) * ow * l->cout;
        depthwise(tmp, x, x_row0, l, oy, oy + n, ow, pt, pl);
        if (l->dw_b != NULL || l->dw_act != NN_ACT_NONE)
            epilogue(tmp, tmp, l->dw_b, NULL, (size_t)n * ow, l->c, l->dw_act);
        gemm(o, tmp, pw, n * ow, l->cout, l->c);
        epilogue(o, o, l->pw_b, NULL, (size_t)n * ow, l->cout, l->act);
    }
}

static int chunk_rows(int ow, int c, int oh)
{
    int rows = CHUNK_FLOATS / (ow * c);
    return rows < 1 ? 1 : rows > oh ? oh : rows;
}

int nn_sep_run(nn_tensor_t *y, const nn_sep_t *l, const nn_tensor_t *x, nn_arena_t *a, int side)
{
    int ret, oh, ow, pt, pl;
    if ((ret = sep_geometry(l, x->h, x->w, x->c, &oh, &ow, &pt, &pl)) != 0)
        return ret;
    if ((ret = nn_tensor_alloc(y, a, side, oh, ow, l->cout)) != 0)
        return ret;
    size_t mark = nn_arena_mark(a, side);
    int rows = chunk_rows(ow, l->c, oh);
    const float *pw = layer_weights(l->pw_w, l->pw_q, l->pw_lut, (size_t)l->c * l->cout, a, side);
    float *tmp = nn_arena_floats(a, side, (size_t)rows * ow * l->c);
    if (pw == NULL || tmp == NULL) {
        nn_arena_release(a, side, mark);
        return PV_ENOMEM;
    }
    a->flops += 2.0 * oh * ow * (double)l->c * (l->k * l->k + l->cout);
    sep_rows(y->d, l, pw, x, 0, 0, oh, ow, pt, pl, tmp, rows);
    nn_arena_release(a, side, mark);
    return 0;
}

/*
 * y = l2(l1(x)) without holding l1's whole output: l2's output is made
 * `rows2` rows at a time from a band of the l1 rows those need, computed
 * just before (a row shared by two bands is computed twice). For the SSD's
 * 256x256 layers this keeps 16 MB out of the arena; the arithmetic per
 * value is unchanged.
 */
int nn_sep2_run(nn_tensor_t *y, const nn_sep_t *l1, const nn_sep_t *l2, const nn_tensor_t *x, nn_arena_t *a,
                int side)
{
    int ret, oh1, ow1, pt1, pl1, oh2, ow2, pt2, pl2;
    if ((ret = sep_geometry(l1, x->h, x->w, x->c, &oh1, &ow1, &pt1, &pl1)) != 0 ||
        (ret = sep_geometry(l2, oh1, ow1, l1->cout, &oh2, &ow2, &pt2, &pl2)) != 0)
        return ret;
    if ((ret = nn_tensor_alloc(y, a, side, oh2, ow2, l2->cout)) != 0)
        return ret;
    size_t mark = nn_arena_mark(a, side);
    const int rows1 = chunk_rows(ow1, l1->c, oh1), rows2 = chunk_rows(ow2, l2->c, oh2);
    const int band_max = (rows2 - 1) * l2->stride + l2->k;
    const float *pw1 = layer_weights(l1->pw_w, l1->pw_q, l1->pw_lut, (size_t)l1->c * l1->cout, a, side);
    const float *pw2 = layer_weights(l2->pw_w, l2->pw_q, l2->pw_lut, (size_t)l2->c * l2->cout, a, side);
    float *tmp1 = nn_arena_floats(a, side, (size_t)rows1 * ow1 * l1->c);
    float *tmp2 = nn_arena_floats(a, side, (size_t)rows2 * ow2 * l2->c);
    float *band = nn_arena_floats(a, side, (size_t)band_max * ow1 * l1->cout);
    if (pw1 == NULL || pw2 == NULL || tmp1 == NULL || tmp2 == NULL || band == NULL) {
        nn_arena_release(a, side, mark);
        return PV_ENOMEM;
    }
    nn_tensor_t mid = {oh1, ow1, l1->cout, band};
    for (int oy = 0; oy < oh2; oy += rows2) {
        int n = oh2 - oy < rows2 ? oh2 - oy : rows2;
        int r0 = oy * l2->stride - pt2, r1 = (oy + n - 1) * l2->stride - pt2 + l2->k;
        r0 = r0 < 0 ? 0 : r0;
        r1 = r1 > oh1 ? oh1 : r1;
        sep_rows(band, l1, pw1, x, 0, r0, r1, ow1, pt1, pl1, tmp1, rows1);
        a->flops += 2.0 * (r1 - r0) * ow1 * (double)l1->c * (l1->k * l1->k + l1->cout);
        sep_rows(y->d + (size_t)oy * ow2 * l2->cout, l2, pw2, &mid, r0, oy, oy + n, ow2, pt2, pl2, tmp2, n);
    }
    a->flops += 2.0 * oh2 * ow2 * (double)l2->c * (l2->k * l2->k + l2->cout);
    nn_arena_release(a, side, mark);
    return 0;
}

int nn_pool_run(nn_tensor_t *y, const nn_tensor_t *x, int k, int stride, int pad, int is_max, nn_arena_t *a,
                int side)
{
    int ret, pt, pl;
    int oh = nn_out_size(x->h, k, stride, pad, &pt);
    int ow = nn_out_size(x->w, k, stride, pad, &pl);
    if (oh <= 0 || ow <= 0)
        return PV_EINVAL;
    if ((ret = nn_tensor_alloc(y, a, side, oh, ow, x->c)) != 0)
        return ret;
    const int c = x->c;
    for (int oy = 0; oy < oh; oy++) {
        int y0 = oy * stride - pt, y1 = y0 + k;
        y0 = y0 < 0 ? 0 : y0;
        y1 = y1 > x->h ? x->h : y1;
        for (int ox = 0; ox < ow; ox++) {
            int x0 = ox * stride - pl, x1 = x0 + k;
            x0 = x0 < 0 ? 0 : x0;
            x1 = x1 > x->w ? x->w : x1;
            float *o = y->d + ((size_t)oy * ow + ox) * c;
            if (is_max) {
                for (int ch = 0; ch < c; ch++)
                    o[ch] = -INFINITY;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        const float *xi = x->d + ((size_t)iy * x->w + ix) * c;
                        for (int ch = 0; ch < c; ch++)
                            o[ch] = xi[ch] > o[ch] ? xi[ch] : o[ch];
                    }
                continue;
            }
            double n = (double)(y1 - y0) * (x1 - x0);
            for (int ch = 0; ch < c; ch++) {
                double sum = 0.0;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++)
                        sum += x->d[((size_t)iy * x->w + ix) * c + ch];
                o[ch] = (float)(sum / n);
            }
        }
    }
    return 0;
}

void nn_fc(float *out, const float *x, const float *w, const float *b, int n_in, int n_out)
{
    for (int j = 0; j < n_out; j++) {
        double s = 0.0;
        for (int k = 0; k < n_in; k++)
            s += (double)x[k] * w[(size_t)k * n_out + j];
        float v = (float)s;
        out[j] = b != NULL ? v + b[j] : v; /* matMul rounds, then the bias add */
    }
}
