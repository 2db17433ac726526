/*
 * TinyFaceDetector (tiny-YOLOv2 with separable convs), SxS -> (S/32)^2 x 25
 * raw outputs (ARCHITECTURES.md §5). Layers alternate between the two ends
 * of the arena, so the peak is about two activations (conv0's 414x414x16
 * output dominates at S = 416). Decoding and NMS belong to the caller.
 */
#include <stdio.h>
#include <stdlib.h>
#include "common/error.h"
#include "models/nets.h"

#define TINY_MIN 32
#define TINY_MAX 1024

typedef struct {
    nn_conv_t conv0;
    nn_sep_t sep[5]; /* conv1..conv5 */
    nn_conv_t conv8;
} tiny_t;

static void tiny_free(void *impl)
{
    tiny_t *t = impl;
    if (t == NULL)
        return;
    nn_conv_dispose(&t->conv0);
    for (int i = 0; i < 5; i++)
        nn_sep_dispose(&t->sep[i]);
    nn_conv_dispose(&t->conv8);
    free(t);
}

static int tiny_load(void **impl, wmap_t *m)
{
    static const int ch[6] = {16, 32, 64, 128, 256, 512};
    int ret;
    char pre[32];
    tiny_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return PV_ENOMEM;
    ret = net_conv(&t->conv0, m, "conv0/filters", "conv0/bias", 3, 3, 3, 16, 1, NN_PAD_VALID, NN_ACT_LEAKY);
    for (int i = 0; i < 5 && ret == 0; i++) {
        /* face-api pads by 1 and runs a 'valid' 3x3: the same as TF 'same' at stride 1 */
        snprintf(pre, sizeof(pre), "conv%d", i + 1);
        ret = net_sep(&t->sep[i], m, pre, ch[i], ch[i + 1], 1, NN_PAD_SAME, NN_ACT_LEAKY);
    }
    if (ret == 0)
        ret = net_conv(&t->conv8, m, "conv8/filters", "conv8/bias", 1, 1, 512, 25, 1, NN_PAD_VALID, NN_ACT_NONE);
    if (ret != 0)
        tiny_free(t);
    else
        *impl = t;
    return ret;
}

/* Grid side for input side `size`: conv0 'valid' then five 2x2/2 'same' pools. */
static int grid(int size)
{
    int g = size - 2;
    for (int i = 0; i < 5; i++)
        g = (g + 1) / 2;
    return g;
}

static size_t tiny_output_len(int size)
{
    if (size < TINY_MIN || size > TINY_MAX || size % 32 != 0)
        return 0;
    int g = grid(size);
    return (size_t)g * g * 25;
}

static int tiny_run(float *out, const void *impl, nn_arena_t *a, const float *in, int size)
{
    static const float mean[3] = {117.001f, 114.697f, 97.404f};
    const tiny_t *t = impl;
    int ret, side = 0;
    nn_tensor_t x, y;

    if ((ret = net_normalize(&x, a, side, in, size, mean, 255.0f)) != 0)
        return ret;
    if ((ret = nn_conv_run(&y, &t->conv0, &x, a, !side)) != 0)
        return ret;
    for (int i = 0; i < 6; i++) {
        /* y (conv output) is at !side; pool it to `side`, then convolve back */
        nn_arena_release(a, side, 0);
        int stride = i < 5 ? 2 : 1;
        if ((ret = nn_pool_run(&x, &y, 2, stride, NN_PAD_SAME, 1, a, side)) != 0)
            return ret;
        nn_arena_release(a, !side, 0);
        if (i < 5)
            ret = nn_sep_run(&y, &t->sep[i], &x, a, !side);
        else
            ret = nn_conv_into(out, &t->conv8, &x, a, !side);
        if (ret != 0)
            return ret;
    }
    return 0;
}

const net_ops_t net_tiny_ops = {
    .model = "tiny_face_detector_model",
    .default_size = 416,
    .load = tiny_load,
    .free = tiny_free,
    .output_len = tiny_output_len,
    .run = tiny_run,
};
