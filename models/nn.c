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
    l->w = l->b = NULL;
}

void nn_sep_dispose(nn_sep_t *l)
{
    free(l->dw_w);
    free(l->dw_b);
    free(l->pw_w);
    free(l->pw_b);
    l->dw_w = l->dw_b = l->pw_w = l->pw_b = NULL;
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
        gemm(dst, src, l->w, n * ow, l->cout, k);
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
 * in (ky, kx) order per channel. */
static void depthwise(float *tmp, const nn_tensor_t *x, const nn_sep_t *l, int oy0, int oy1, int ow, int pt,
                      int pl)
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
                    const float *xi = x->d + ((size_t)iy * x->w + ix) * c;
                    const float *wi = l->dw_w + (size_t)(ky * k + kx) * c;
                    for (int ch = 0; ch < c; ch++)
                        o[ch] += xi[ch] * wi[ch];
                }
            }
        }
    }
}

int nn_sep_run(nn_tensor_t *y, const nn_sep_t *l, const nn_tensor_t *x, nn_arena_t *a, int side)
{
    int ret, pt, pl;
    int oh = nn_out_size(x->h, l->k, l->stride, l->pad, &pt);
    int ow = nn_out_size(x->w, l->k, l->stride, l->pad, &pl);
    if (x->c != l->c || oh <= 0 || ow <= 0)
        return PV_EINVAL;
    if ((ret = nn_tensor_alloc(y, a, side, oh, ow, l->cout)) != 0)
        return ret;
    size_t mark = nn_arena_mark(a, side);
    int rows = CHUNK_FLOATS / (ow * l->c);
    if (rows < 1)
        rows = 1;
    if (rows > oh)
        rows = oh;
    float *tmp = nn_arena_floats(a, side, (size_t)rows * ow * l->c);
    if (tmp == NULL)
        return PV_ENOMEM;
    a->flops += 2.0 * oh * ow * (double)l->c * (l->k * l->k + l->cout);
    for (int oy = 0; oy < oh; oy += rows) {
        int n = oh - oy < rows ? oh - oy : rows;
        size_t off = (size_t)oy * ow * l->cout;
        depthwise(tmp, x, l, oy, oy + n, ow, pt, pl);
        if (l->dw_b != NULL || l->dw_act != NN_ACT_NONE)
            epilogue(tmp, tmp, l->dw_b, NULL, (size_t)n * ow, l->c, l->dw_act);
        gemm(y->d + off, tmp, l->pw_w, n * ow, l->cout, l->c);
        epilogue(y->d + off, y->d + off, l->pw_b, NULL, (size_t)n * ow, l->cout, l->act);
    }
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
