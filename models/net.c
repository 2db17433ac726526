/*
 * Public face of models/: loading a net by kind, per-thread scratch arenas,
 * running a forward pass, SSD decoding and face-api's input preprocessing.
 * Also the layer-building helpers the network files share. A loaded net is
 * immutable; everything a run needs lives in the caller's scratch.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "models/models.h"
#include "models/nets.h"

#define SCRATCH_DEFAULT_LIMIT ((size_t)512 << 20)
#define PREPROCESS_MAX_SIDE 32768
#define PREPROCESS_MAX_SIZE 4096

/* Declared by OpenBLAS' cblas.h; restated so the intent is visible. */
void openblas_set_num_threads(int num_threads);

struct pv_net {
    pv_net_kind_t kind;
    const net_ops_t *ops;
    void *impl;
};

struct pv_net_scratch {
    nn_arena_t arena;
    double flops;
};

static const net_ops_t *ops_for(pv_net_kind_t kind)
{
    switch (kind) {
    case PV_NET_RECOGNITION:
        return &net_recog_ops;
    case PV_NET_LANDMARK68:
        return &net_landmark_ops;
    case PV_NET_TINY_FACE:
        return &net_tiny_ops;
    case PV_NET_SSD:
        return &net_ssd_ops;
    }
    return NULL;
}

int pv_net_load_msg(pv_net_t **out, pv_net_kind_t kind, const char *model_dir, char *msg, size_t msglen)
{
    int ret;
    wmap_t m;
    pv_net_t *net = NULL;
    const net_ops_t *ops = ops_for(kind);

    *out = NULL;
    if (msg != NULL && msglen > 0)
        msg[0] = '\0';
    if (ops == NULL || model_dir == NULL) {
        if (msg != NULL && msglen > 0)
            strncpy(msg, "unknown network kind or no model directory", msglen - 1), msg[msglen - 1] = '\0';
        return PV_EINVAL;
    }
    openblas_set_num_threads(1);
    if ((ret = wmap_load(&m, model_dir, ops->model, msg, msglen)) != 0)
        return ret;
    if ((net = calloc(1, sizeof(*net))) == NULL) {
        ret = wmap_fail(&m, PV_ENOMEM, "out of memory");
        goto out;
    }
    net->kind = kind;
    net->ops = ops;
    if ((ret = ops->load(&net->impl, &m)) != 0)
        goto out;
    *out = net;
    net = NULL;
out:
    wmap_dispose(&m);
    free(net);
    return ret;
}

int pv_net_load(pv_net_t **out, pv_net_kind_t kind, const char *model_dir)
{
    return pv_net_load_msg(out, kind, model_dir, NULL, 0);
}

void pv_net_free(pv_net_t *net)
{
    if (net == NULL)
        return;
    net->ops->free(net->impl);
    free(net);
}

pv_net_kind_t pv_net_kind(const pv_net_t *net)
{
    return net->kind;
}

int pv_net_input_size(const pv_net_t *net)
{
    return net->ops->default_size;
}

size_t pv_net_output_len(const pv_net_t *net, int size)
{
    return net->ops->output_len(size);
}

int pv_net_scratch_create(pv_net_scratch_t **out, size_t limit_bytes)
{
    pv_net_scratch_t *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (s == NULL)
        return PV_ENOMEM;
    nn_arena_init(&s->arena, limit_bytes ? limit_bytes : SCRATCH_DEFAULT_LIMIT);
    *out = s;
    return 0;
}

void pv_net_scratch_free(pv_net_scratch_t *s)
{
    if (s == NULL)
        return;
    nn_arena_dispose(&s->arena);
    free(s);
}

double pv_net_scratch_flops(const pv_net_scratch_t *s)
{
    return s->flops;
}

size_t pv_net_scratch_bytes(const pv_net_scratch_t *s)
{
    return s->arena.cap;
}

int pv_net_run(float *out, size_t out_len, const pv_net_t *net, pv_net_scratch_t *scratch, const float *input,
               int size)
{
    size_t need = net->ops->output_len(size);
    if (need == 0 || out_len < need || input == NULL || out == NULL)
        return PV_EINVAL;
    nn_arena_t *a = &scratch->arena;
    a->flops = 0.0;
    int ret = net->ops->run(out, net->impl, a, input, size);
    if (ret != 0 && a->failed != 0)
        ret = a->failed;
    scratch->flops = a->flops;
    int r2 = nn_arena_reset(a);
    return ret != 0 ? ret : r2;
}

/* ---- helpers shared by the network files ------------------------------- */

int net_conv(nn_conv_t *l, wmap_t *m, const char *wname, const char *bname, int kh, int kw, int cin, int cout,
             int stride, int pad, int act)
{
    int ret;
    memset(l, 0, sizeof(*l));
    l->kh = kh, l->kw = kw, l->cin = cin, l->cout = cout, l->stride = stride, l->pad = pad, l->act = act;
    if ((ret = wmap_take(&l->w, m, wname, 4, kh, kw, cin, cout)) != 0)
        return ret;
    if (bname != NULL && (ret = wmap_take(&l->b, m, bname, 1, cout)) != 0)
        return ret;
    return 0;
}

int net_conv_u8(nn_conv_t *l, wmap_t *m, const char *wname, const char *bname, int kh, int kw, int cin,
                int cout, int stride, int pad, int act)
{
    int ret;
    memset(l, 0, sizeof(*l));
    l->kh = kh, l->kw = kw, l->cin = cin, l->cout = cout, l->stride = stride, l->pad = pad, l->act = act;
    if ((ret = wmap_take_u8(&l->wq, l->wlut, m, wname, 4, kh, kw, cin, cout)) != 0)
        return ret;
    if (bname != NULL && (ret = wmap_take(&l->b, m, bname, 1, cout)) != 0)
        return ret;
    return 0;
}

int net_sep(nn_sep_t *l, wmap_t *m, const char *prefix, int c, int cout, int stride, int pad, int act)
{
    int ret;
    char name[256];
    memset(l, 0, sizeof(*l));
    l->k = 3, l->c = c, l->cout = cout, l->stride = stride, l->pad = pad, l->dw_act = NN_ACT_NONE,
    l->act = act;
    snprintf(name, sizeof(name), "%s/depthwise_filter", prefix);
    if ((ret = wmap_take(&l->dw_w, m, name, 4, 3, 3, c, 1)) != 0)
        return ret;
    snprintf(name, sizeof(name), "%s/pointwise_filter", prefix);
    if ((ret = wmap_take(&l->pw_w, m, name, 4, 1, 1, c, cout)) != 0)
        return ret;
    snprintf(name, sizeof(name), "%s/bias", prefix);
    return wmap_take(&l->pw_b, m, name, 1, cout);
}

int net_normalize(nn_tensor_t *y, nn_arena_t *a, int side, const float *in, int size, const float mean[3],
                  float div)
{
    int ret = nn_tensor_alloc(y, a, side, size, size, 3);
    if (ret != 0)
        return ret;
    size_t n = (size_t)size * size;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            float v = in[i * 3 + c] - mean[c];
            y->d[i * 3 + c] = v / div;
        }
    return 0;
}

/* ---- preprocessing ----------------------------------------------------- */

int pv_models_preprocess(float *out, int size, const uint8_t *rgb, int w, int h, size_t stride, int center)
{
    if (out == NULL || rgb == NULL || w < 1 || h < 1 || w > PREPROCESS_MAX_SIDE || h > PREPROCESS_MAX_SIDE ||
        size < 1 || size > PREPROCESS_MAX_SIZE || stride < (size_t)w * 3)
        return PV_EINVAL;
    /* padToSquare: JS Math.round(diff * 0.5) rounds .5 up, so an odd extra
     * row/column goes at the bottom/right. */
    const int n = w > h ? w : h;
    const int diff = n - (w < h ? w : h);
    const int prepend = center ? diff / 2 : 0;
    const int off_r = h < w ? prepend : 0, off_c = w < h ? prepend : 0;
    const double ratio = (double)n / size;

    /* Column taps depend only on the column: computed once per call (the
     * same double arithmetic as per pixel, so the result is unchanged). */
    int xs0[PREPROCESS_MAX_SIZE], xs1[PREPROCESS_MAX_SIZE];
    double cfs[PREPROCESS_MAX_SIZE];
    for (int cc = 0; cc < size; cc++) {
        double sc = ratio * cc;
        int c0 = (int)floor(sc);
        c0 = c0 < 0 ? 0 : c0;
        int c1 = (int)ceil(sc);
        c1 = c1 > n - 1 ? n - 1 : c1;
        cfs[cc] = sc - c0;
        xs0[cc] = c0 - off_c >= 0 && c0 - off_c < w ? (c0 - off_c) * 3 : -1;
        xs1[cc] = c1 - off_c >= 0 && c1 - off_c < w ? (c1 - off_c) * 3 : -1;
    }
    for (int r = 0; r < size; r++) {
        double sr = ratio * r;
        int r0 = (int)floor(sr);
        r0 = r0 < 0 ? 0 : r0;
        int r1 = (int)ceil(sr);
        r1 = r1 > n - 1 ? n - 1 : r1;
        double rf = sr - r0;
        int y0 = r0 - off_r, y1 = r1 - off_r;
        const uint8_t *row0 = y0 >= 0 && y0 < h ? rgb + (size_t)y0 * stride : NULL;
        const uint8_t *row1 = y1 >= 0 && y1 < h ? rgb + (size_t)y1 * stride : NULL;
        float *o = out + (size_t)r * size * 3;
        for (int cc = 0; cc < size; cc++) {
            const int x0 = xs0[cc], x1 = xs1[cc];
            const double cf = cfs[cc];
            for (int ch = 0; ch < 3; ch++) {
                double tl = row0 && x0 >= 0 ? row0[x0 + ch] : 0.0;
                double tr = row0 && x1 >= 0 ? row0[x1 + ch] : 0.0;
                double bl = row1 && x0 >= 0 ? row1[x0 + ch] : 0.0;
                double br = row1 && x1 >= 0 ? row1[x1 + ch] : 0.0;
                double top = tl + (tr - tl) * cf;
                double bot = bl + (br - bl) * cf;
                o[cc * 3 + ch] = (float)(top + (bot - top) * rf);
            }
        }
    }
    return 0;
}

/* ---- SSD decoding ------------------------------------------------------ */

/* Anchors live in the SSD impl; net_ssd.c exposes them through this. */
const float *net_ssd_anchors(const void *impl);

int pv_net_ssd_decode(float *boxes, float *scores, const pv_net_t *net, const float *raw)
{
    if (net == NULL || net->kind != PV_NET_SSD || boxes == NULL || scores == NULL || raw == NULL)
        return PV_EINVAL;
    const float *anc = net_ssd_anchors(net->impl);
    const float *enc = raw, *logits = raw + PV_SSD_ANCHORS * 4;
    /* float32 tensor ops in outputLayer.ts's order */
    for (int i = 0; i < PV_SSD_ANCHORS; i++) {
        const float *a = anc + i * 4, *e = enc + i * 4;
        float ha = a[2] - a[0], wa = a[3] - a[1];
        float yca = a[0] + ha / 2.0f, xca = a[1] + wa / 2.0f;
        float hh = (float)expf(e[2] / 5.0f) * ha / 2.0f;
        float hw = (float)expf(e[3] / 5.0f) * wa / 2.0f;
        float yc = e[0] / 10.0f * ha + yca;
        float xc = e[1] / 10.0f * wa + xca;
        boxes[i * 4 + 0] = yc - hh;
        boxes[i * 4 + 1] = xc - hw;
        boxes[i * 4 + 2] = yc + hh;
        boxes[i * 4 + 3] = xc + hw;
        scores[i] = (float)(1.0 / (1.0 + exp(-(double)logits[i * 3 + 1])));
    }
    return 0;
}
