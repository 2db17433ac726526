/*
 * Internal: what each network file provides to net.c (load, run, output
 * size), and the layer-building helpers they share. A net's parameters are
 * immutable after load; all per-call memory comes from the arena.
 */
#ifndef PV_MODELS_NETS_H
#define PV_MODELS_NETS_H

#include "models/models.h"
#include "models/nn.h"
#include "models/weights.h"

typedef struct {
    const char *model; /* manifest base name */
    int default_size;
    int (*load)(void **impl, wmap_t *m);
    void (*free)(void *impl);
    size_t (*output_len)(int size);
    int (*run)(float *out, const void *impl, nn_arena_t *a, const float *in, int size);
} net_ops_t;

extern const net_ops_t net_recog_ops, net_landmark_ops, net_tiny_ops, net_ssd_ops;

/* Builds a dense conv from `wname` [kh,kw,cin,cout] and `bname` [cout] (NULL: no bias). */
int net_conv(nn_conv_t *l, wmap_t *m, const char *wname, const char *bname, int kh, int kw, int cin, int cout,
             int stride, int pad, int act);
/* net_conv() keeping uint8-quantized weights quantized (dequantized per run). */
int net_conv_u8(nn_conv_t *l, wmap_t *m, const char *wname, const char *bname, int kh, int kw, int cin,
                int cout, int stride, int pad, int act);
/* Builds a separable conv from <prefix>/depthwise_filter [k,k,c,1],
 * <prefix>/pointwise_filter [1,1,c,cout] and <prefix>/bias [cout]. */
int net_sep(nn_sep_t *l, wmap_t *m, const char *prefix, int c, int cout, int stride, int pad, int act);
/* y = (float)((float)(x - mean[ch]) / div) for the 3 channels, at arena end `side`. */
int net_normalize(nn_tensor_t *y, nn_arena_t *a, int side, const float *in, int size, const float mean[3],
                  float div);

#endif
