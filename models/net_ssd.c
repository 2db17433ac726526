/*
 * SsdMobilenetv1 (TF Object Detection API MobileNetV1-SSD), 512x512 -> 5118
 * box encodings and class logits (ARCHITECTURES.md §6). Each depthwise
 * layer's batch norm is folded into its filters and a bias at load time (in
 * float64); the depthwise and pointwise halves run fused per row chunk. The
 * pointwise, extra and head weights (6.8 M, uint8 in the file) stay uint8
 * and are dequantized per layer and run through a table (bit-exact, about
 * 3 ms a run), which saves 20 MB of resident memory. The
 * anchors (Output/extra_dim) are loaded with the weights for decoding.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "common/error.h"
#include "models/nets.h"

#define N_MB 13
#define N_EXTRA 8
#define N_HEADS 6

typedef struct {
    nn_conv_t conv0;
    nn_sep_t mb[N_MB]; /* Conv2d_1..13 */
    nn_conv_t extra[N_EXTRA];
    nn_conv_t box[N_HEADS], cls[N_HEADS];
    float *anchors; /* [5118,4] ymin,xmin,ymax,xmax */
} ssd_t;

static const int mb_cout[N_MB + 1] = {32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024};
static const int head_c[N_HEADS] = {512, 1024, 512, 256, 256, 128};

static void ssd_free(void *impl)
{
    ssd_t *s = impl;
    if (s == NULL)
        return;
    nn_conv_dispose(&s->conv0);
    for (int i = 0; i < N_MB; i++)
        nn_sep_dispose(&s->mb[i]);
    for (int i = 0; i < N_EXTRA; i++)
        nn_conv_dispose(&s->extra[i]);
    for (int i = 0; i < N_HEADS; i++)
        nn_conv_dispose(&s->box[i]), nn_conv_dispose(&s->cls[i]);
    free(s->anchors);
    free(s);
}

/* Depthwise + folded batch norm + ReLU6, then pointwise + offset + ReLU6. */
static int load_mb(nn_sep_t *l, wmap_t *m, int i, int c, int cout, int stride)
{
    const double eps = 0.0010000000474974513; /* float32(1e-3), as face-api passes it */
    int ret;
    char n[128];
    float *g = NULL, *beta = NULL, *mean = NULL, *var = NULL;
    l->k = 3, l->c = c, l->cout = cout, l->stride = stride, l->pad = NN_PAD_SAME;
    l->dw_act = NN_ACT_RELU6, l->act = NN_ACT_RELU6;
    snprintf(n, sizeof(n), "MobilenetV1/Conv2d_%d_depthwise/depthwise_weights", i);
    if ((ret = wmap_take(&l->dw_w, m, n, 4, 3, 3, c, 1)) != 0)
        goto out;
    snprintf(n, sizeof(n), "MobilenetV1/Conv2d_%d_depthwise/BatchNorm/gamma", i);
    if ((ret = wmap_take(&g, m, n, 1, c)) != 0)
        goto out;
    snprintf(n, sizeof(n), "MobilenetV1/Conv2d_%d_depthwise/BatchNorm/beta", i);
    if ((ret = wmap_take(&beta, m, n, 1, c)) != 0)
        goto out;
    snprintf(n, sizeof(n), "MobilenetV1/Conv2d_%d_depthwise/BatchNorm/moving_mean", i);
    if ((ret = wmap_take(&mean, m, n, 1, c)) != 0)
        goto out;
    snprintf(n, sizeof(n), "MobilenetV1/Conv2d_%d_depthwise/BatchNorm/moving_variance", i);
    if ((ret = wmap_take(&var, m, n, 1, c)) != 0)
        goto out;
    snprintf(n, sizeof(n), "MobilenetV1/Conv2d_%d_pointwise/weights", i);
    if ((ret = wmap_take_u8(&l->pw_q, l->pw_lut, m, n, 4, 1, 1, c, cout)) != 0)
        goto out;
    snprintf(n, sizeof(n), "MobilenetV1/Conv2d_%d_pointwise/convolution_bn_offset", i);
    if ((ret = wmap_take(&l->pw_b, m, n, 1, cout)) != 0)
        goto out;
    /* bn(x) = beta + (x - mean) * gamma / sqrt(var + eps) = x*k + (beta - mean*k) */
    if ((l->dw_b = malloc((size_t)c * sizeof(float))) == NULL) {
        ret = PV_ENOMEM;
        goto out;
    }
    for (int ch = 0; ch < c; ch++) {
        double k = (double)g[ch] / sqrt((double)var[ch] + eps);
        for (int t = 0; t < 9; t++)
            l->dw_w[t * c + ch] = (float)(l->dw_w[t * c + ch] * k);
        l->dw_b[ch] = (float)(beta[ch] - mean[ch] * k);
    }
out:
    free(g);
    free(beta);
    free(mean);
    free(var);
    return ret;
}

static int ssd_load(void **impl, wmap_t *m)
{
    static const int ex_k[N_EXTRA] = {1, 3, 1, 3, 1, 3, 1, 3};
    static const int ex_c[N_EXTRA + 1] = {1024, 256, 512, 128, 256, 128, 256, 64, 128};
    int ret;
    char w[128], b[128];
    ssd_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return PV_ENOMEM;
    ret = net_conv(&s->conv0, m, "MobilenetV1/Conv2d_0_pointwise/weights",
                   "MobilenetV1/Conv2d_0_pointwise/convolution_bn_offset", 3, 3, 3, 32, 2, NN_PAD_SAME,
                   NN_ACT_RELU6);
    for (int i = 1; i <= N_MB && ret == 0; i++) {
        int stride = (i == 2 || i == 4 || i == 6 || i == 12) ? 2 : 1;
        ret = load_mb(&s->mb[i - 1], m, i, mb_cout[i - 1], mb_cout[i], stride);
    }
    for (int k = 0; k < N_EXTRA && ret == 0; k++) {
        snprintf(w, sizeof(w), "Prediction/Conv2d_%d_pointwise/weights", k);
        snprintf(b, sizeof(b), "Prediction/Conv2d_%d_pointwise/convolution_bn_offset", k);
        ret = net_conv_u8(&s->extra[k], m, w, b, ex_k[k], ex_k[k], ex_c[k], ex_c[k + 1], ex_k[k] == 3 ? 2 : 1,
                          NN_PAD_SAME, NN_ACT_RELU6);
    }
    for (int j = 0; j < N_HEADS && ret == 0; j++) {
        int na = j == 0 ? 3 : 6;
        snprintf(w, sizeof(w), "Prediction/BoxPredictor_%d/BoxEncodingPredictor/weights", j);
        snprintf(b, sizeof(b), "Prediction/BoxPredictor_%d/BoxEncodingPredictor/biases", j);
        ret = net_conv_u8(&s->box[j], m, w, b, 1, 1, head_c[j], 4 * na, 1, NN_PAD_SAME, NN_ACT_NONE);
        if (ret != 0)
            break;
        snprintf(w, sizeof(w), "Prediction/BoxPredictor_%d/ClassPredictor/weights", j);
        snprintf(b, sizeof(b), "Prediction/BoxPredictor_%d/ClassPredictor/biases", j);
        ret = net_conv_u8(&s->cls[j], m, w, b, 1, 1, head_c[j], 3 * na, 1, NN_PAD_SAME, NN_ACT_NONE);
    }
    if (ret == 0)
        ret = wmap_take(&s->anchors, m, "Output/extra_dim", 3, 1, PV_SSD_ANCHORS, 4);
    if (ret != 0)
        ssd_free(s);
    else
        *impl = s;
    return ret;
}

const float *net_ssd_anchors(const void *impl);
const float *net_ssd_anchors(const void *impl)
{
    return ((const ssd_t *)impl)->anchors;
}

static size_t ssd_output_len(int size)
{
    return size == 512 ? PV_SSD_OUTPUT_LEN : 0;
}

static int ssd_run(float *out, const void *impl, nn_arena_t *a, const float *in, int size)
{
    const ssd_t *s = impl;
    int ret, side = 0;
    nn_tensor_t x, y, fm[N_HEADS];
    float *enc = out, *logits = out + PV_SSD_ANCHORS * 4;

    if ((ret = nn_tensor_alloc(&x, a, side, size, size, 3)) != 0)
        return ret;
    for (size_t i = 0; i < nn_numel(&x); i++) {
        float v = in[i] / 127.5f;
        x.d[i] = v - 1.0f;
    }
    if ((ret = nn_conv_run(&y, &s->conv0, &x, a, !side)) != 0)
        return ret;
    nn_arena_release(a, side, 0);
    side = !side; /* y is at `side` */
    /* Conv2d_1 (256x256x64, 16 MB) only exists in bands inside the fused
     * Conv2d_1+2: that is the arena's high-water mark otherwise */
    for (int i = 0; i < 11; i++) {
        if ((ret = i == 0 ? nn_sep2_run(&x, &s->mb[0], &s->mb[1], &y, a, !side)
                          : nn_sep_run(&x, &s->mb[i], &y, a, !side)) != 0)
            return ret;
        if (i == 0)
            i++;
        nn_arena_release(a, side, 0);
        side = !side;
        y = x;
    }
    /* conv11 output stays at `side`; everything after is small and stacks at the other end */
    fm[0] = y;
    int o = !side;
    if ((ret = nn_sep_run(&x, &s->mb[11], &fm[0], a, o)) != 0 ||
        (ret = nn_sep_run(&fm[1], &s->mb[12], &x, a, o)))
        return ret;
    x = fm[1];
    for (int k = 0; k < N_EXTRA; k++) {
        if ((ret = nn_conv_run(&y, &s->extra[k], &x, a, o)) != 0)
            return ret;
        if (k % 2 == 1)
            fm[2 + k / 2] = y;
        x = y;
    }
    size_t row = 0;
    for (int j = 0; j < N_HEADS; j++) {
        int na = j == 0 ? 3 : 6;
        size_t rows = (size_t)fm[j].h * fm[j].w * na;
        if (row + rows > PV_SSD_ANCHORS)
            return PV_EINVAL;
        if ((ret = nn_conv_into(enc + row * 4, &s->box[j], &fm[j], a, o)) != 0 ||
            (ret = nn_conv_into(logits + row * 3, &s->cls[j], &fm[j], a, o)) != 0)
            return ret;
        row += rows;
    }
    return row == PV_SSD_ANCHORS ? 0 : PV_EINVAL;
}

const net_ops_t net_ssd_ops = {
    .model = "ssd_mobilenetv1_model",
    .default_size = 512,
    .load = ssd_load,
    .free = ssd_free,
    .output_len = ssd_output_len,
    .run = ssd_run,
};
