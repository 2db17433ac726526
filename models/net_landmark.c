/*
 * FaceLandmark68Net, 112x112 -> 136 raw outputs (ARCHITECTURES.md §4): four
 * dense blocks of separable convs, a 7x7 average pool and a fully connected
 * layer. The additions inside a dense block keep the reference's nesting
 * (out1 + (out2 + (out3 + out4))) because float32 rounding depends on it.
 */
#include <stdio.h>
#include <stdlib.h>
#include "common/error.h"
#include "models/nets.h"

typedef struct {
    nn_conv_t conv0; /* dense0 only: regular 3x3/2 conv */
    nn_sep_t sep0;   /* dense1..3: separable 3x3/2 */
    nn_sep_t sep[3]; /* conv1..conv3, stride 1 */
} dense_t;

typedef struct {
    dense_t dense[4];
    float *fc_w; /* [256,136] */
    float *fc_b; /* [136] */
} landmark_t;

static void landmark_free(void *impl)
{
    landmark_t *l = impl;
    if (l == NULL)
        return;
    for (int i = 0; i < 4; i++) {
        nn_conv_dispose(&l->dense[i].conv0);
        nn_sep_dispose(&l->dense[i].sep0);
        for (int j = 0; j < 3; j++)
            nn_sep_dispose(&l->dense[i].sep[j]);
    }
    free(l->fc_w);
    free(l->fc_b);
    free(l);
}

static int landmark_load(void **impl, wmap_t *m)
{
    static const int ch[4] = {32, 64, 128, 256};
    int ret = 0;
    char pre[64], pre2[64];
    landmark_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return PV_ENOMEM;
    for (int i = 0; i < 4 && ret == 0; i++) {
        dense_t *d = &l->dense[i];
        int cin = i == 0 ? 3 : ch[i - 1], c = ch[i];
        snprintf(pre, sizeof(pre), "dense%d/conv0", i);
        if (i == 0) {
            snprintf(pre, sizeof(pre), "dense0/conv0/filters");
            snprintf(pre2, sizeof(pre2), "dense0/conv0/bias");
            ret = net_conv(&d->conv0, m, pre, pre2, 3, 3, cin, c, 2, NN_PAD_SAME, NN_ACT_RELU);
        } else {
            ret = net_sep(&d->sep0, m, pre, cin, c, 2, NN_PAD_SAME, NN_ACT_RELU);
        }
        for (int j = 0; j < 3 && ret == 0; j++) {
            snprintf(pre, sizeof(pre), "dense%d/conv%d", i, j + 1);
            ret = net_sep(&d->sep[j], m, pre, c, c, 1, NN_PAD_SAME, NN_ACT_NONE);
        }
    }
    if (ret == 0 && (ret = wmap_take(&l->fc_w, m, "fc/weights", 2, 256, 136)) == 0)
        ret = wmap_take(&l->fc_b, m, "fc/bias", 1, 136);
    if (ret != 0)
        landmark_free(l);
    else
        *impl = l;
    return ret;
}

/* One dense block: *x (at arena end `side`) -> *y at the other end; the
 * input end is released. */
static int dense_block(nn_tensor_t *y, const dense_t *d, int first, int side, nn_arena_t *a)
{
    int ret, other = !side;
    nn_tensor_t out2, in3, out3, in4, out4, *out1 = y;
    const nn_tensor_t x = *y;

    ret = first ? nn_conv_run(out1, &d->conv0, &x, a, other) : nn_sep_run(out1, &d->sep0, &x, a, other);
    if (ret != 0)
        return ret;
    nn_arena_release(a, side, 0);
    size_t n = nn_numel(out1);
    if ((ret = nn_sep_run(&out2, &d->sep[0], out1, a, side)) != 0)
        return ret;
    if ((ret = nn_tensor_alloc(&in3, a, side, out1->h, out1->w, out1->c)) != 0)
        return ret;
    for (size_t i = 0; i < n; i++) {
        float v = out1->d[i] + out2.d[i];
        in3.d[i] = v < 0.0f ? 0.0f : v;
    }
    if ((ret = nn_sep_run(&out3, &d->sep[1], &in3, a, side)) != 0)
        return ret;
    /* in4 = relu(out1 + (out2 + out3)), written over in3 (no longer needed) */
    in4 = in3;
    for (size_t i = 0; i < n; i++) {
        float v = out1->d[i] + (out2.d[i] + out3.d[i]);
        in4.d[i] = v < 0.0f ? 0.0f : v;
    }
    if ((ret = nn_sep_run(&out4, &d->sep[2], &in4, a, side)) != 0)
        return ret;
    for (size_t i = 0; i < n; i++) {
        float v = out1->d[i] + (out2.d[i] + (out3.d[i] + out4.d[i]));
        out1->d[i] = v < 0.0f ? 0.0f : v;
    }
    nn_arena_release(a, side, 0);
    return 0;
}

static size_t landmark_output_len(int size)
{
    return size == 112 ? 136 : 0;
}

static int landmark_run(float *out, const void *impl, nn_arena_t *a, const float *in, int size)
{
    static const float mean[3] = {122.782f, 117.001f, 104.298f};
    const landmark_t *l = impl;
    int ret, side = 0;
    nn_tensor_t x, p;

    if ((ret = net_normalize(&x, a, 0, in, size, mean, 255.0f)) != 0)
        return ret;
    for (int i = 0; i < 4; i++, side = !side)
        if ((ret = dense_block(&x, &l->dense[i], i == 0, side, a)) != 0)
            return ret;
    if ((ret = nn_pool_run(&p, &x, 7, 2, NN_PAD_VALID, 0, a, side)) != 0)
        return ret;
    if (p.h != 1 || p.w != 1 || p.c != 256)
        return PV_EINVAL;
    nn_fc(out, p.d, l->fc_w, l->fc_b, 256, 136);
    return 0;
}

const net_ops_t net_landmark_ops = {
    .model = "face_landmark_68_model",
    .default_size = 112,
    .load = landmark_load,
    .free = landmark_free,
    .output_len = landmark_output_len,
    .run = landmark_run,
};
