/*
 * The face pipeline (see face.h). Detection decoding, NMS, the landmark and
 * descriptor crops follow face-api 1.7.15's tensor path step for step,
 * including its float32/float64 split and its floors, so that on the same
 * pixels the faces and descriptors match the reference (tests/unit/recognizer
 * test_face.c checks it on the six sample photos). Where this file departs
 * from the reference it says so: the padded retry, the quality record and
 * the bounds.
 */
#include "recognizer/face.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "models/models.h"

#define TINY_DEFAULT 416
#define SSD_SIZE 512
#define LM_SIZE 112
#define RECOG_SIZE 150
#define MAX_CANDIDATES 4096 /* tiny: 26x26x5 at 832; SSD keeps its own 5118 */
/* Padded retry: a black border of each RETRY_PADS share of the longer side,
 * on every side, makes a face that fills the frame look like the faces the
 * detectors learnt. Measured on ../shared/faces-dev (209 photos, most of
 * them tight crops): photos with a face found, tiny / SSD, without retry
 * 38% / 38%, pad 0.5 79% / 87%, pad 1.0 94% / 94%, pads 1.0 then 2.0
 * 97% / 95% (tests/bench/recognizer/faces_dev.py). */
#define RETRY_PADS                                                                                           \
    {                                                                                                        \
        1.0, 2.0                                                                                             \
    }
#define RETRY_MAX_PIXELS (16u * 1000u * 1000u)

struct pv_face_engine {
    pv_net_t *tiny, *ssd, *landmark, *recog;
};

typedef struct cand {
    double score;
    double x0, y0, x1, y1; /* relative box corners */
    int index;
} cand_t;

struct pv_face_ctx {
    const pv_face_engine_t *eng;
    pv_net_scratch_t *scratch;
    float *input;             /* largest net input: 832x832x3 (tiny at its largest size) */
    float *raw;               /* largest net output: SSD 5118x7 */
    float *boxes;             /* SSD decoded boxes 5118x4 */
    float *scores;            /* SSD scores 5118 */
    cand_t *cands;            /* MAX_CANDIDATES or 5118 */
    uint8_t *pad;             /* the padded retry image, grown on demand */
    pv_face_result_t *padded; /* faces of the padded pass */
    size_t pad_cap;
};

#define TINY_MAX 832
#define INPUT_FLOATS ((size_t)TINY_MAX * TINY_MAX * 3)
#define CAND_MAX (PV_SSD_ANCHORS > MAX_CANDIDATES ? PV_SSD_ANCHORS : MAX_CANDIDATES)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* JavaScript's Math.round for the non-negative values used here. */
static double js_round(double v)
{
    return floor(v + 0.5);
}

int pv_face_engine_load(pv_face_engine_t **out, const char *model_dir, char *msg, size_t msglen)
{
    *out = NULL;
    pv_face_engine_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return PV_ENOMEM;
    int rc;
    if ((rc = pv_net_load_msg(&e->tiny, PV_NET_TINY_FACE, model_dir, msg, msglen)) != 0 ||
        (rc = pv_net_load_msg(&e->ssd, PV_NET_SSD, model_dir, msg, msglen)) != 0 ||
        (rc = pv_net_load_msg(&e->landmark, PV_NET_LANDMARK68, model_dir, msg, msglen)) != 0 ||
        (rc = pv_net_load_msg(&e->recog, PV_NET_RECOGNITION, model_dir, msg, msglen)) != 0) {
        pv_face_engine_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void pv_face_engine_free(pv_face_engine_t *eng)
{
    if (eng == NULL)
        return;
    pv_net_free(eng->tiny);
    pv_net_free(eng->ssd);
    pv_net_free(eng->landmark);
    pv_net_free(eng->recog);
    free(eng);
}

int pv_face_ctx_create(pv_face_ctx_t **out, const pv_face_engine_t *eng)
{
    *out = NULL;
    pv_face_ctx_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return PV_ENOMEM;
    c->eng = eng;
    c->input = malloc(INPUT_FLOATS * sizeof(float));
    c->raw = malloc((size_t)PV_SSD_OUTPUT_LEN * sizeof(float));
    c->boxes = malloc((size_t)PV_SSD_ANCHORS * 4 * sizeof(float));
    c->scores = malloc((size_t)PV_SSD_ANCHORS * sizeof(float));
    c->cands = malloc((size_t)CAND_MAX * sizeof(cand_t));
    c->padded = malloc(sizeof(pv_face_result_t));
    if (c->padded == NULL || c->input == NULL || c->raw == NULL || c->boxes == NULL || c->scores == NULL ||
        c->cands == NULL || pv_net_scratch_create(&c->scratch, 0) != 0) {
        pv_face_ctx_free(c);
        return PV_ENOMEM;
    }
    *out = c;
    return 0;
}

void pv_face_ctx_free(pv_face_ctx_t *ctx)
{
    if (ctx == NULL)
        return;
    pv_net_scratch_free(ctx->scratch);
    free(ctx->input);
    free(ctx->raw);
    free(ctx->boxes);
    free(ctx->scores);
    free(ctx->cands);
    free(ctx->pad);
    free(ctx->padded);
    free(ctx);
}

void pv_face_opts_default(pv_face_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->detector = PV_DETECTOR_TINY;
    o->min_score = 0.5;
    o->tiny_size = TINY_DEFAULT;
    o->max_faces = PV_FACE_MAX_FACES;
}

double pv_face_distance(const float *a, const float *b)
{
    double s = 0;
    for (int i = 0; i < PV_FACE_DESC_DIM; i++) {
        double d = (double)a[i] - b[i];
        s += d * d;
    }
    return sqrt(s);
}

/* ---- detection ---------------------------------------------------------- */

/* A view of RGB8 pixels: the image itself or the padded retry copy. */
typedef struct view {
    const uint8_t *rgb;
    int w, h;
    size_t stride;
} view_t;

typedef struct det {
    double score;
    pv_box_t box; /* pixels of the view */
} det_t;

static double iou(const cand_t *a, const cand_t *b)
{
    double ax0 = fmin(a->x0, a->x1), ax1 = fmax(a->x0, a->x1), ay0 = fmin(a->y0, a->y1),
           ay1 = fmax(a->y0, a->y1);
    double bx0 = fmin(b->x0, b->x1), bx1 = fmax(b->x0, b->x1), by0 = fmin(b->y0, b->y1),
           by1 = fmax(b->y0, b->y1);
    double area_a = (ax1 - ax0) * (ay1 - ay0), area_b = (bx1 - bx0) * (by1 - by0);
    if (area_a <= 0 || area_b <= 0)
        return 0;
    double iw = fmin(ax1, bx1) - fmax(ax0, bx0), ih = fmin(ay1, by1) - fmax(ay0, by0);
    double inter = fmax(iw, 0) * fmax(ih, 0);
    return inter / (area_a + area_b - inter);
}

/* Descending score; ties: tiny pops the later index first (it sorts
 * ascending and pops), SSD keeps index order (stable descending sort). */
static int cmp_tiny(const void *pa, const void *pb)
{
    const cand_t *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return b->index - a->index;
}

static int cmp_ssd(const void *pa, const void *pb)
{
    const cand_t *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return a->index - b->index;
}

/* Greedy NMS over c[0..n) sorted by score: a candidate survives unless its
 * IoU with an already kept one exceeds thr. Keeps at most max; returns the
 * count, kept candidates moved to the front in pick order. */
static int nms(cand_t *c, int n, double thr, int max)
{
    int kept = 0;
    for (int i = 0; i < n && kept < max; i++) {
        int ok = 1;
        for (int j = kept - 1; j >= 0; j--)
            if (iou(&c[i], &c[j]) > thr) {
                ok = 0;
                break;
            }
        if (ok)
            c[kept++] = c[i];
    }
    return kept;
}

static double sigmoid(double v)
{
    return 1.0 / (1.0 + exp(-v));
}

/* TinyFaceDetector (ARCHITECTURES.md section 5). */
static int detect_tiny(det_t *out, int cap, int *nout, pv_face_ctx_t *ctx, const view_t *v, int size,
                       double thr)
{
    static const double anchors[5][2] = {{1.603231, 2.094468},
                                         {6.041143, 7.080126},
                                         {2.882459, 3.518061},
                                         {4.266906, 5.178857},
                                         {9.041765, 10.66308}};
    const pv_net_t *net = ctx->eng->tiny;
    size_t olen = pv_net_output_len(net, size);
    int rc = pv_models_preprocess(ctx->input, size, v->rgb, v->w, v->h, v->stride, 0);
    if (rc == 0)
        rc = pv_net_run(ctx->raw, olen, net, ctx->scratch, ctx->input, size);
    if (rc != 0)
        return rc;
    const int g = size / 32;
    const double s = (double)size / (v->w > v->h ? v->w : v->h);
    const double rw = js_round(v->w * s), rh = js_round(v->h * s);
    const double sq = rw > rh ? rw : rh, cfx = sq / rw, cfy = sq / rh;
    int n = 0;
    for (int row = 0; row < g; row++)
        for (int col = 0; col < g; col++)
            for (int a = 0; a < 5; a++) {
                const float *t = ctx->raw + ((size_t)row * g + col) * 25 + a * 5;
                double score = sigmoid(t[4]);
                if (!(score > thr) || n >= MAX_CANDIDATES)
                    continue;
                double cx = (col + sigmoid(t[0])) / g * cfx, cy = (row + sigmoid(t[1])) / g * cfy;
                double w = exp(t[2]) * anchors[a][0] / g * cfx, h = exp(t[3]) * anchors[a][1] / g * cfy;
                cand_t *c = &ctx->cands[n];
                c->score = score;
                c->x0 = cx - w / 2;
                c->y0 = cy - h / 2;
                c->x1 = c->x0 + w;
                c->y1 = c->y0 + h;
                c->index = n++;
            }
    qsort(ctx->cands, n, sizeof(cand_t), cmp_tiny);
    n = nms(ctx->cands, n, 0.4, cap);
    for (int i = 0; i < n; i++) {
        const cand_t *c = &ctx->cands[i];
        out[i].score = c->score;
        out[i].box = (pv_box_t){c->x0 * v->w, c->y0 * v->h, (c->x1 - c->x0) * v->w, (c->y1 - c->y0) * v->h};
    }
    *nout = n;
    return 0;
}

/* SsdMobilenetv1 (ARCHITECTURES.md section 6). */
static int detect_ssd(det_t *out, int cap, int *nout, pv_face_ctx_t *ctx, const view_t *v, double thr)
{
    const pv_net_t *net = ctx->eng->ssd;
    int rc = pv_models_preprocess(ctx->input, SSD_SIZE, v->rgb, v->w, v->h, v->stride, 0);
    if (rc == 0)
        rc = pv_net_run(ctx->raw, PV_SSD_OUTPUT_LEN, net, ctx->scratch, ctx->input, SSD_SIZE);
    if (rc == 0)
        rc = pv_net_ssd_decode(ctx->boxes, ctx->scores, net, ctx->raw);
    if (rc != 0)
        return rc;
    int n = 0;
    for (int i = 0; i < PV_SSD_ANCHORS; i++) {
        if (!(ctx->scores[i] > thr))
            continue;
        cand_t *c = &ctx->cands[n++];
        const float *b = ctx->boxes + (size_t)i * 4;
        c->score = ctx->scores[i];
        c->y0 = b[0];
        c->x0 = b[1];
        c->y1 = b[2];
        c->x1 = b[3];
        c->index = i;
    }
    qsort(ctx->cands, n, sizeof(cand_t), cmp_ssd);
    n = nms(ctx->cands, n, 0.5, cap < 100 ? cap : 100);
    const double s = (double)SSD_SIZE / (v->w > v->h ? v->w : v->h);
    const double padx = SSD_SIZE / js_round(v->w * s), pady = SSD_SIZE / js_round(v->h * s);
    for (int i = 0; i < n; i++) {
        const cand_t *c = &ctx->cands[i];
        double top = fmax(0, c->y0) * pady, bottom = fmin(1, c->y1) * pady;
        double left = fmax(0, c->x0) * padx, right = fmin(1, c->x1) * padx;
        out[i].score = c->score;
        out[i].box = (pv_box_t){left * v->w, top * v->h, (right - left) * v->w, (bottom - top) * v->h};
    }
    *nout = n;
    return 0;
}

/* ---- landmarks, descriptor crop, quality -------------------------------- */

/* Box.clipAtImageBorders followed by floor (face-api Box.ts). */
static pv_box_t clip_floor(pv_box_t b, int w, int h)
{
    double cx = fmax(b.x, 0), cy = fmax(b.y, 0);
    double cw = fmin(b.x + b.w - cx, w - cx), ch = fmin(b.y + b.h - cy, h - cy);
    return (pv_box_t){floor(cx), floor(cy), floor(cw), floor(ch)};
}

static void mean_pts(double out[2], double (*pts)[2], int from, int to)
{
    double sx = pts[from][0], sy = pts[from][1];
    for (int i = from + 1; i < to; i++) {
        sx += pts[i][0];
        sy += pts[i][1];
    }
    out[0] = sx / (to - from);
    out[1] = sy / (to - from);
}

/* Landmarks of one detection (section 7 steps 2-3). Fills f->landmarks (view
 * pixels) and f->landmark_crop. Returns 0, 1 if the crop is empty, or an error. */
static int landmarks(pv_face_t *f, pv_face_ctx_t *ctx, const view_t *v)
{
    pv_box_t cb = clip_floor(f->box, v->w, v->h);
    if (cb.w < 1 || cb.h < 1)
        return 1;
    f->border = f->box.x < 0 || f->box.y < 0 || f->box.x + f->box.w > v->w || f->box.y + f->box.h > v->h;
    f->landmark_crop = cb;
    const int cw = (int)cb.w, ch = (int)cb.h;
    const uint8_t *crop = v->rgb + (size_t)cb.y * v->stride + (size_t)cb.x * 3;
    float raw[136];
    int rc = pv_models_preprocess(ctx->input, LM_SIZE, crop, cw, ch, v->stride, 1);
    if (rc == 0)
        rc = pv_net_run(raw, 136, ctx->eng->landmark, ctx->scratch, ctx->input, LM_SIZE);
    if (rc != 0)
        return rc;
    /* postProcess: float32 tensor ops */
    const double s = (double)LM_SIZE / (cw > ch ? cw : ch);
    const double ww = cw * s, hh = ch * s;
    const float padx = (float)(ww < hh ? fabs(ww - hh) / 2 : 0),
                pady = (float)(hh < ww ? fabs(ww - hh) / 2 : 0);
    for (int i = 0; i < PV_FACE_LANDMARKS; i++) {
        float xr = (raw[2 * i] * (float)LM_SIZE - padx) / (float)ww;
        float yr = (raw[2 * i + 1] * (float)LM_SIZE - pady) / (float)hh;
        f->landmarks[i][0] = (double)xr * cw + f->box.x;
        f->landmarks[i][1] = (double)yr * ch + f->box.y;
    }
    return 0;
}

/* face-api's alignDlib rect (section 7 step 4), clipped and floored; sets
 * *cut when the clip (or the landmark crop's clip) shrank it. */
static pv_box_t descriptor_box(const pv_face_t *f, const view_t *v, int *cut)
{
    double(*pts)[2] = (double(*)[2])f->landmarks;
    double le[2], re[2], mo[2];
    mean_pts(le, pts, 36, 42);
    mean_pts(re, pts, 42, 48);
    mean_pts(mo, pts, 48, 68);
    double dl = hypot(mo[0] - le[0], mo[1] - le[1]), dr = hypot(mo[0] - re[0], mo[1] - re[1]);
    double size = floor((dl + dr) / 2 / 0.45);
    double cx = (0 + le[0] + re[0] + mo[0]) / 3, cy = (0 + le[1] + re[1] + mo[1]) / 3;
    double x = floor(fmax(0, cx - 0.5 * size)), y = floor(fmax(0, cy - 0.43 * size));
    pv_box_t r = {x, y, fmin(size, f->landmark_crop.w + x), fmin(size, f->landmark_crop.h + y)};
    pv_box_t c = clip_floor(r, v->w, v->h);
    *cut = c.w < size || c.h < size || cx - 0.5 * size < 0 || cy - 0.43 * size < 0;
    return c;
}

/* Variance of the 4-neighbour Laplacian of the luma of the 150x150 input,
 * over the part that shows the crop (not the zero padding). */
static double sharpness(const float *in, int cw, int ch)
{
    const int n = cw > ch ? cw : ch;
    const double k = (double)RECOG_SIZE / n;
    int x0 = 0, x1 = RECOG_SIZE, y0 = 0, y1 = RECOG_SIZE;
    if (cw < ch) {
        x0 = (int)ceil((n - cw) / 2 * k);
        x1 = (int)floor(((n - cw) / 2 + cw) * k);
    } else if (ch < cw) {
        y0 = (int)ceil((n - ch) / 2 * k);
        y1 = (int)floor(((n - ch) / 2 + ch) * k);
    }
    x0 += 2, y0 += 2, x1 -= 2, y1 -= 2;
    double sum = 0, sum2 = 0;
    long cnt = 0;
#define LUMA(r, c)                                                                                           \
    (0.299 * in[((r)*RECOG_SIZE + (c)) * 3] + 0.587 * in[((r)*RECOG_SIZE + (c)) * 3 + 1] +                   \
     0.114 * in[((r)*RECOG_SIZE + (c)) * 3 + 2])
    for (int r = y0; r < y1; r++)
        for (int c = x0; c < x1; c++) {
            double l = LUMA(r - 1, c) + LUMA(r + 1, c) + LUMA(r, c - 1) + LUMA(r, c + 1) - 4 * LUMA(r, c);
            sum += l;
            sum2 += l * l;
            cnt++;
        }
#undef LUMA
    if (cnt == 0)
        return 0;
    double m = sum / cnt;
    return sum2 / cnt - m * m;
}

/* Rough yaw: where the nose tip (30) sits between the jaw ends (0, 16). */
static double yaw_deg(const pv_face_t *f)
{
    double l = fabs(f->landmarks[30][0] - f->landmarks[0][0]);
    double r = fabs(f->landmarks[16][0] - f->landmarks[30][0]);
    if (l + r <= 0)
        return 0;
    double t = (l - r) / (l + r);
    t = t > 1 ? 1 : t < -1 ? -1 : t;
    return asin(t) * 180.0 / M_PI;
}

static int embed(pv_face_t *f, pv_face_ctx_t *ctx, const view_t *v)
{
    int cut = 0;
    pv_box_t d = descriptor_box(f, v, &cut);
    f->border |= cut;
    if (d.w < 1 || d.h < 1)
        return 1;
    f->descriptor_crop = d;
    const uint8_t *crop = v->rgb + (size_t)d.y * v->stride + (size_t)d.x * 3;
    int rc = pv_models_preprocess(ctx->input, RECOG_SIZE, crop, (int)d.w, (int)d.h, v->stride, 1);
    if (rc == 0)
        rc = pv_net_run(f->descriptor, PV_FACE_DESC_DIM, ctx->eng->recog, ctx->scratch, ctx->input,
                        RECOG_SIZE);
    if (rc != 0)
        return rc;
    f->quality.sharpness = sharpness(ctx->input, (int)d.w, (int)d.h);
    return 0;
}

/* ---- the pipeline ------------------------------------------------------- */

/* Builds the padded retry view: the image centred on a black border of
 * `pad` x its longer side. Returns 0, 1 if too large, or PV_ENOMEM. */
static int pad_view(view_t *pv, int *off, pv_face_ctx_t *ctx, const view_t *v, double pad)
{
    const int p = (int)(pad * (v->w > v->h ? v->w : v->h));
    const int w = v->w + 2 * p, h = v->h + 2 * p;
    if ((uint64_t)w * h > RETRY_MAX_PIXELS)
        return 1;
    size_t need = (size_t)w * h * 3;
    if (need > ctx->pad_cap) {
        uint8_t *b = realloc(ctx->pad, need);
        if (b == NULL)
            return PV_ENOMEM;
        ctx->pad = b;
        ctx->pad_cap = need;
    }
    memset(ctx->pad, 0, need);
    for (int r = 0; r < v->h; r++)
        memcpy(ctx->pad + ((size_t)(r + p) * w + p) * 3, v->rgb + (size_t)r * v->stride, (size_t)v->w * 3);
    *pv = (view_t){ctx->pad, w, h, (size_t)w * 3};
    *off = p;
    return 0;
}

static int cmp_face_score(const void *pa, const void *pb)
{
    const det_t *a = pa, *b = pb;
    return a->score > b->score ? -1 : a->score < b->score;
}

static int analyse_view(pv_face_result_t *res, pv_face_ctx_t *ctx, const view_t *v, const pv_face_opts_t *o)
{
    det_t dets[PV_FACE_MAX_FACES];
    int n = 0, rc;
    double t0 = now_ms();
    if (o->detector == PV_DETECTOR_SSD)
        rc = detect_ssd(dets, o->max_faces, &n, ctx, v, o->min_score);
    else
        rc = detect_tiny(dets, o->max_faces, &n, ctx, v, o->tiny_size, o->min_score);
    if (rc != 0)
        return rc;
    qsort(dets, n, sizeof(det_t), cmp_face_score);
    double t1 = now_ms();
    res->timing.detect_ms += t1 - t0;
    res->nfaces = 0;
    for (int i = 0; i < n; i++) {
        pv_face_t *f = &res->faces[res->nfaces];
        memset(f, 0, sizeof(*f));
        f->box = dets[i].box;
        f->score = dets[i].score;
        double ta = now_ms();
        rc = landmarks(f, ctx, v);
        double tb = now_ms();
        res->timing.landmarks_ms += tb - ta;
        if (rc < 0)
            return rc;
        if (rc > 0)
            continue; /* empty crop: the reference drops it too */
        if (!o->no_descriptor) {
            rc = embed(f, ctx, v);
            res->timing.embed_ms += now_ms() - tb;
            if (rc < 0)
                return rc;
            if (rc > 0)
                continue;
        }
        f->quality.face_px = fmin(f->box.w, f->box.h);
        f->quality.yaw_deg = yaw_deg(f);
        res->nfaces++;
    }
    return 0;
}

/* Moves faces found in the padded view into the image's frame (subtracting
 * the border `off`) and marks those whose crops reach past the image. */
static void unpad(pv_face_result_t *res, double off, int w, int h)
{
    for (int i = 0; i < res->nfaces; i++) {
        pv_face_t *f = &res->faces[i];
        f->box.x -= off;
        f->box.y -= off;
        for (int k = 0; k < PV_FACE_LANDMARKS; k++) {
            f->landmarks[k][0] -= off;
            f->landmarks[k][1] -= off;
        }
        f->landmark_crop.x -= off;
        f->landmark_crop.y -= off;
        f->descriptor_crop.x -= off;
        f->descriptor_crop.y -= off;
        const pv_box_t *d = &f->descriptor_crop;
        f->border = d->x < 0 || d->y < 0 || d->x + d->w > w || d->y + d->h > h;
    }
}

/* Undoes the DCT downscale: decoded pixels -> full-resolution pixels. */
static void rescale(pv_face_result_t *res, double sx, double sy)
{
    for (int i = 0; i < res->nfaces; i++) {
        pv_face_t *f = &res->faces[i];
        f->box = (pv_box_t){f->box.x * sx, f->box.y * sy, f->box.w * sx, f->box.h * sy};
        for (int k = 0; k < PV_FACE_LANDMARKS; k++) {
            f->landmarks[k][0] *= sx;
            f->landmarks[k][1] *= sy;
        }
        f->quality.face_px = fmin(f->box.w, f->box.h);
    }
}

static double face_iou(const pv_box_t *a, const pv_box_t *b)
{
    double iw = fmin(a->x + a->w, b->x + b->w) - fmax(a->x, b->x);
    double ih = fmin(a->y + a->h, b->y + b->h) - fmax(a->y, b->y);
    if (iw <= 0 || ih <= 0)
        return 0;
    return iw * ih / (a->w * a->h + b->w * b->h - iw * ih);
}

static int cmp_result_score(const void *pa, const void *pb)
{
    const pv_face_t *a = pa, *b = pb;
    return a->score > b->score ? -1 : a->score < b->score;
}

/* res := the padded pass's faces, plus the first pass's faces that none of
 * them overlaps (small faces the shrunken padded view can miss); best
 * score first, at most max. */
static void merge(pv_face_result_t *res, const pv_face_result_t *padded, int max)
{
    int n = res->nfaces;
    for (int i = 0; i < n; i++) {
        int dup = 0;
        for (int j = 0; j < padded->nfaces && !dup; j++)
            dup = face_iou(&res->faces[i].box, &padded->faces[j].box) > 0.3;
        if (dup)
            res->faces[i].score = -1; /* dropped below */
    }
    qsort(res->faces, n, sizeof(pv_face_t), cmp_result_score);
    while (n > 0 && res->faces[n - 1].score < 0)
        n--;
    for (int j = 0; j < padded->nfaces && n < PV_FACE_MAX_FACES; j++)
        res->faces[n++] = padded->faces[j];
    qsort(res->faces, n, sizeof(pv_face_t), cmp_result_score);
    res->nfaces = n < max ? n : max;
}

/*
 * The reference pipeline runs first, unchanged. When it finds nothing, or a
 * face whose crops the image border cut (a tight crop: the detector box is
 * poor and the crops lose their square, which costs the descriptor up to
 * 0.5 in distance), the image is padded with black on every side and run
 * again: the face then looks like the faces the detectors learnt and its
 * crops keep their shape. Faces of the padded pass replace the ones they
 * overlap.
 */
int pv_face_run(pv_face_result_t *res, pv_face_ctx_t *ctx, const pv_image_t *img, const pv_face_opts_t *opts)
{
    pv_face_opts_t o;
    if (opts != NULL)
        o = *opts;
    else
        pv_face_opts_default(&o);
    if (o.min_score == 0)
        o.min_score = 0.5;
    if (o.tiny_size == 0)
        o.tiny_size = TINY_DEFAULT;
    if (o.max_faces <= 0 || o.max_faces > PV_FACE_MAX_FACES)
        o.max_faces = PV_FACE_MAX_FACES;
    if (res == NULL || ctx == NULL || img == NULL || img->rgb == NULL || img->w < 1 || img->h < 1 ||
        (o.detector != PV_DETECTOR_TINY && o.detector != PV_DETECTOR_SSD) ||
        !(o.min_score > 0 && o.min_score < 1) || o.tiny_size % 32 != 0 || o.tiny_size < 32 ||
        o.tiny_size > TINY_MAX)
        return PV_EINVAL;
    double t0 = now_ms();
    double decode_ms = res->timing.decode_ms;
    memset(res, 0, offsetof(pv_face_result_t, faces));
    memset(&res->timing, 0, sizeof(res->timing));
    res->timing.decode_ms = decode_ms;
    res->width = img->orig_w > 0 ? img->orig_w : img->w;
    res->height = img->orig_h > 0 ? img->orig_h : img->h;
    res->decoded_w = img->w;
    res->decoded_h = img->h;
    res->format = img->format;

    view_t v = {img->rgb, img->w, img->h, img->stride};
    int rc = analyse_view(res, ctx, &v, &o);
    int retry = res->nfaces == 0;
    for (int i = 0; i < res->nfaces; i++)
        retry |= res->faces[i].border;
    /* the pads, as a share of the longer side on every side (see RETRY_PADS) */
    static const double pads[] = RETRY_PADS;
    for (size_t k = 0; rc == 0 && retry && !o.no_retry && k < sizeof(pads) / sizeof(pads[0]); k++) {
        view_t pv;
        int off = 0;
        rc = pad_view(&pv, &off, ctx, &v, pads[k]);
        if (rc == 1) {
            rc = 0; /* too large to pad: keep what we have */
            break;
        }
        if (rc != 0)
            break;
        pv_face_result_t *t = ctx->padded;
        memset(&t->timing, 0, sizeof(t->timing));
        rc = analyse_view(t, ctx, &pv, &o);
        res->retried = 1;
        res->timing.detect_ms += t->timing.detect_ms;
        res->timing.landmarks_ms += t->timing.landmarks_ms;
        res->timing.embed_ms += t->timing.embed_ms;
        if (rc == 0 && t->nfaces > 0) {
            unpad(t, off, v.w, v.h);
            merge(res, t, o.max_faces);
            break;
        }
    }
    if (rc != 0) {
        res->nfaces = 0;
        return rc;
    }
    rescale(res, (double)res->width / img->w, (double)res->height / img->h);
    res->timing.total_ms = res->timing.decode_ms + (now_ms() - t0);
    return 0;
}

int pv_face_analyze(pv_face_result_t *res, pv_face_ctx_t *ctx, const uint8_t *data, size_t len,
                    const pv_image_opts_t *iopts, const pv_face_opts_t *opts, char *msg, size_t msglen)
{
    pv_image_t img;
    double t0 = now_ms();
    int rc = pv_image_decode(&img, data, len, iopts, msg, msglen);
    if (rc != 0)
        return rc;
    res->timing.decode_ms = now_ms() - t0;
    rc = pv_face_run(res, ctx, &img, opts);
    pv_image_dispose(&img);
    return rc;
}
