/*
 * FaceRecognitionNet (face-api's port of dlib's ResNet descriptor), 150x150
 * -> 128 floats, as ARCHITECTURES.md §3 states it. Each convLayer's "scale
 * layer" is folded into its filters and bias at load time (in float64).
 * The forward pass stacks everything at the arena's low end (< 2 MiB);
 * residual sums are computed in place.
 */
#include <stdio.h>
#include <stdlib.h>
#include "common/error.h"
#include "models/nets.h"

enum { N_RES = 10, N_DOWN = 4 };

typedef struct {
    nn_conv_t conv1, conv2;
} block_t;

typedef struct {
    nn_conv_t stem;         /* conv32_down 7x7/2 valid */
    block_t res[N_RES];     /* conv32_1..3, conv64_1..3, conv128_1..2, conv256_1..2 */
    block_t down[N_DOWN];   /* conv64_down, conv128_down, conv256_down, conv256_down_out */
    float *fc;              /* [256,128] */
} recog_t;

static const char *const res_names[N_RES] = {"conv32_1", "conv32_2", "conv32_3",  "conv64_1",  "conv64_2",
                                             "conv64_3", "conv128_1", "conv128_2", "conv256_1", "conv256_2"};
static const int res_ch[N_RES] = {32, 32, 32, 64, 64, 64, 128, 128, 256, 256};
static const char *const down_names[N_DOWN] = {"conv64_down", "conv128_down", "conv256_down", "conv256_down_out"};
static const int down_in[N_DOWN] = {32, 64, 128, 256}, down_out[N_DOWN] = {64, 128, 256, 256};

/* convLayer: conv + bias, then * scale/weights + scale/biases, folded. */
static int conv_layer(nn_conv_t *l, wmap_t *m, const char *pre, int k, int cin, int cout, int stride, int pad,
                      int act)
{
    int ret;
    char wn[128], bn[128], sw[128], sb[128];
    float *scale = NULL, *shift = NULL;
    snprintf(wn, sizeof(wn), "%s/conv/filters", pre);
    snprintf(bn, sizeof(bn), "%s/conv/bias", pre);
    snprintf(sw, sizeof(sw), "%s/scale/weights", pre);
    snprintf(sb, sizeof(sb), "%s/scale/biases", pre);
    if ((ret = net_conv(l, m, wn, bn, k, k, cin, cout, stride, pad, act)) != 0)
        goto out;
    if ((ret = wmap_take(&scale, m, sw, 1, cout)) != 0 || (ret = wmap_take(&shift, m, sb, 1, cout)) != 0)
        goto out;
    size_t rows = (size_t)k * k * cin;
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < cout; c++)
            l->w[r * cout + c] = (float)((double)l->w[r * cout + c] * scale[c]);
    for (int c = 0; c < cout; c++)
        l->b[c] = (float)((double)l->b[c] * scale[c] + shift[c]);
out:
    free(scale);
    free(shift);
    return ret;
}

static void recog_free(void *impl)
{
    recog_t *r = impl;
    if (r == NULL)
        return;
    nn_conv_dispose(&r->stem);
    for (int i = 0; i < N_RES; i++)
        nn_conv_dispose(&r->res[i].conv1), nn_conv_dispose(&r->res[i].conv2);
    for (int i = 0; i < N_DOWN; i++)
        nn_conv_dispose(&r->down[i].conv1), nn_conv_dispose(&r->down[i].conv2);
    free(r->fc);
    free(r);
}

static int recog_load(void **impl, wmap_t *m)
{
    int ret;
    char pre[64];
    recog_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return PV_ENOMEM;
    if ((ret = conv_layer(&r->stem, m, "conv32_down", 7, 3, 32, 2, NN_PAD_VALID, NN_ACT_RELU)) != 0)
        goto out;
    for (int i = 0; i < N_RES; i++) {
        int c = res_ch[i];
        snprintf(pre, sizeof(pre), "%s/conv1", res_names[i]);
        if ((ret = conv_layer(&r->res[i].conv1, m, pre, 3, c, c, 1, NN_PAD_SAME, NN_ACT_RELU)) != 0)
            goto out;
        snprintf(pre, sizeof(pre), "%s/conv2", res_names[i]);
        if ((ret = conv_layer(&r->res[i].conv2, m, pre, 3, c, c, 1, NN_PAD_SAME, NN_ACT_RELU)) != 0)
            goto out;
    }
    for (int i = 0; i < N_DOWN; i++) {
        snprintf(pre, sizeof(pre), "%s/conv1", down_names[i]);
        if ((ret = conv_layer(&r->down[i].conv1, m, pre, 3, down_in[i], down_out[i], 2, NN_PAD_VALID,
                              NN_ACT_RELU)) != 0)
            goto out;
        snprintf(pre, sizeof(pre), "%s/conv2", down_names[i]);
        if ((ret = conv_layer(&r->down[i].conv2, m, pre, 3, down_out[i], down_out[i], 1, NN_PAD_SAME,
                              NN_ACT_NONE)) != 0)
            goto out;
    }
    ret = wmap_take(&r->fc, m, "fc", 2, 256, 128);
out:
    if (ret != 0)
        recog_free(r);
    else
        *impl = r;
    return ret;
}

/* residual: x = relu(conv2(conv1(x)) + x), conv2's sum and ReLU in place. */
static int residual(nn_tensor_t *x, const block_t *b, nn_arena_t *a)
{
    int ret;
    nn_tensor_t t;
    size_t mark = nn_arena_mark(a, 0);
    if ((ret = nn_conv_run(&t, &b->conv1, x, a, 0)) == 0)
        ret = nn_conv_accum(x, &b->conv2, &t, a, 0);
    nn_arena_release(a, 0, mark);
    return ret;
}

/* residualDown: relu(avgpool2(x) zero-extended to 2C channels +
 * conv2(conv1_s2(x)) zero-padded at the bottom/right to the pooled size).
 * Temporaries stay on the arena until the run ends: they are small. */
static int residual_down(nn_tensor_t *y, const block_t *b, const nn_tensor_t *x, nn_arena_t *a)
{
    int ret;
    nn_tensor_t t, o, p;
    if ((ret = nn_pool_run(&p, x, 2, 2, NN_PAD_VALID, 0, a, 0)) != 0)
        return ret;
    if ((ret = nn_conv_run(&t, &b->conv1, x, a, 0)) != 0 || (ret = nn_conv_run(&o, &b->conv2, &t, a, 0)) != 0)
        return ret;
    if (o.h > p.h || o.w > p.w || o.c < p.c)
        return PV_EINVAL;
    if ((ret = nn_tensor_alloc(y, a, 0, p.h, p.w, o.c)) != 0)
        return ret;
    for (int r = 0; r < p.h; r++)
        for (int c = 0; c < p.w; c++) {
            float *dst = y->d + ((size_t)r * p.w + c) * o.c;
            const float *pv = p.d + ((size_t)r * p.w + c) * p.c;
            const float *ov = r < o.h && c < o.w ? o.d + ((size_t)r * o.w + c) * o.c : NULL;
            for (int ch = 0; ch < o.c; ch++) {
                float v = (ch < p.c ? pv[ch] : 0.0f) + (ov != NULL ? ov[ch] : 0.0f);
                dst[ch] = v < 0.0f ? 0.0f : v;
            }
        }
    return 0;
}

static size_t recog_output_len(int size)
{
    return size == 150 ? 128 : 0;
}

static int recog_run(float *out, const void *impl, nn_arena_t *a, const float *in, int size)
{
    static const float mean[3] = {122.782f, 117.001f, 104.298f};
    const recog_t *r = impl;
    int ret;
    nn_tensor_t x, y, z;

    if ((ret = net_normalize(&x, a, 0, in, size, mean, 255.0f)) != 0)
        return ret;
    if ((ret = nn_conv_run(&y, &r->stem, &x, a, 0)) != 0)
        return ret;
    if ((ret = nn_pool_run(&z, &y, 3, 2, NN_PAD_VALID, 1, a, 0)) != 0)
        return ret;
    x = z;
    int ri = 0;
    static const int per_stage[N_DOWN + 1] = {3, 3, 2, 2, 0};
    for (int stage = 0; stage <= N_DOWN; stage++) {
        for (int i = 0; i < per_stage[stage]; i++)
            if ((ret = residual(&x, &r->res[ri++], a)) != 0)
                return ret;
        if (stage == N_DOWN)
            break;
        if ((ret = residual_down(&y, &r->down[stage], &x, a)) != 0)
            return ret;
        x = y;
    }
    /* tf.mean over H,W: float64 sum of float32(x / n) */
    float gap[256];
    const int n = x.h * x.w;
    for (int c = 0; c < x.c; c++) {
        double s = 0.0;
        for (int i = 0; i < n; i++)
            s += (float)(x.d[(size_t)i * x.c + c] / (float)n);
        gap[c] = (float)s;
    }
    nn_fc(out, gap, r->fc, NULL, 256, 128);
    return 0;
}

const net_ops_t net_recog_ops = {
    .model = "face_recognition_model",
    .default_size = 150,
    .load = recog_load,
    .free = recog_free,
    .output_len = recog_output_len,
    .run = recog_run,
};
