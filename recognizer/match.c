/*
 * The matching policy (see match.h and MATCHING.md). Pure functions: the
 * caller brings one image's faces and their gallery candidates, and gets one
 * decision per face. Working memory is a few arrays of PV_FACE_MAX_FACES on
 * the stack; the cost is O(nfaces^2 * k) in the worst case (64 faces, k
 * candidates each), microseconds for the k of a real search.
 */
#include "recognizer/match.h"

#include <math.h>
#include <string.h>

#include "common/error.h"

/* Descriptors are about unit length, so no distance exceeds 2; 4 leaves room
 * for unnormalised inputs while still rejecting nonsense thresholds. */
#define DIST_MAX 4.0

void pv_match_config_init(pv_match_config_t *cfg)
{
    /* Calibrated on ../shared/faces-dev, tiny and SSD detectors: MATCHING.md. */
    *cfg = (pv_match_config_t){
        .match_dist = 0.50,
        .enroll_dist = 0.58,
        .min_face_px = 48,
        .min_sharpness = 40,
        .max_yaw_deg = 45,
        .min_score = 0.5,
        .exemplar_min_dist = 0.15,
        .exemplar_max_dist = 0.50,
        .exemplar_min_face_px = 64,
        .exemplar_min_sharpness = 80,
        .exemplar_max_yaw_deg = 30,
        .conf_mid = 0.644,
        .conf_scale = 0.020,
    };
}

int pv_match_config_check(const pv_match_config_t *c)
{
    if (c == NULL)
        return PV_EINVAL;
    const double all[] = {c->match_dist,
                          c->enroll_dist,
                          c->min_face_px,
                          c->min_sharpness,
                          c->max_yaw_deg,
                          c->min_score,
                          c->exemplar_min_dist,
                          c->exemplar_max_dist,
                          c->exemplar_min_face_px,
                          c->exemplar_min_sharpness,
                          c->exemplar_max_yaw_deg,
                          c->conf_mid,
                          c->conf_scale};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (!isfinite(all[i]) || all[i] < 0)
            return PV_EINVAL;
    if (c->match_dist <= 0 || c->enroll_dist < c->match_dist || c->enroll_dist > DIST_MAX)
        return PV_EINVAL;
    if (c->exemplar_min_dist > c->exemplar_max_dist || c->exemplar_max_dist > c->match_dist)
        return PV_EINVAL;
    if (c->min_score > 1 || c->max_yaw_deg > 90 || c->exemplar_max_yaw_deg > 90)
        return PV_EINVAL;
    if (c->conf_scale <= 0 || c->conf_mid > DIST_MAX)
        return PV_EINVAL;
    return 0;
}

double pv_match_confidence(const pv_match_config_t *cfg, double distance)
{
    pv_match_config_t defaults;
    if (cfg == NULL) {
        pv_match_config_init(&defaults);
        cfg = &defaults;
    }
    if (isnan(distance) || distance == INFINITY)
        return 0;
    if (distance < 0)
        distance = 0;
    /* exp() overflows to +inf for far distances, which gives exactly 0. */
    double c = 1.0 / (1.0 + exp((distance - cfg->conf_mid) / cfg->conf_scale));
    return c < 0 ? 0 : c > 1 ? 1 : c;
}

static double share(double v, double ref)
{
    if (!(v > 0))
        return 0;
    if (ref <= 0 || v >= ref)
        return 1;
    return v / ref;
}

float pv_match_quality(const pv_match_config_t *cfg, const pv_face_t *face)
{
    pv_match_config_t defaults;
    if (cfg == NULL) {
        pv_match_config_init(&defaults);
        cfg = &defaults;
    }
    double frontal = 1.0 - fabs(face->quality.yaw_deg) / 90.0;
    double q = share(face->score, 1.0) * share(face->quality.face_px, cfg->exemplar_min_face_px) *
               share(face->quality.sharpness, cfg->exemplar_min_sharpness) * (frontal > 0 ? frontal : 0);
    return isfinite(q) ? (float)q : 0.0f;
}

const char *pv_match_status_name(pv_match_status_t status)
{
    switch (status) {
    case PV_MATCH_RETURNING:
        return "returning";
    case PV_MATCH_NEW:
        return "new";
    case PV_MATCH_UNENROLLED:
        return "unenrolled";
    case PV_MATCH_LOW_QUALITY:
        return "low_quality";
    }
    return "unknown";
}

static unsigned low_quality_bits(const pv_match_config_t *cfg, const pv_face_t *f)
{
    unsigned bits = 0;
    if (f->quality.face_px < cfg->min_face_px)
        bits |= PV_MATCH_LQ_SMALL;
    if (f->quality.sharpness < cfg->min_sharpness)
        bits |= PV_MATCH_LQ_BLUR;
    if (fabs(f->quality.yaw_deg) > cfg->max_yaw_deg)
        bits |= PV_MATCH_LQ_YAW;
    if (f->score < cfg->min_score)
        bits |= PV_MATCH_LQ_SCORE;
    return bits;
}

static int exemplar_worthy(const pv_match_config_t *cfg, const pv_face_t *f, double distance)
{
    float dist = (float)distance; /* a hit's float distance, compared like the bands */
    return dist >= (float)cfg->exemplar_min_dist && dist < (float)cfg->exemplar_max_dist && !f->border &&
           f->quality.face_px >= cfg->exemplar_min_face_px &&
           f->quality.sharpness >= cfg->exemplar_min_sharpness &&
           fabs(f->quality.yaw_deg) <= cfg->exemplar_max_yaw_deg;
}

/* Validates one face and its candidate list; *ncand gets how many candidates
 * are in use (the prefix before the first gid 0). */
static int check_face(const pv_face_t *f, const pv_gallery_hit_t *h, size_t k, size_t *ncand)
{
    if (!isfinite(f->score) || !isfinite(f->quality.face_px) || !isfinite(f->quality.sharpness) ||
        !isfinite(f->quality.yaw_deg))
        return PV_EINVAL;
    for (int i = 0; i < PV_FACE_DESC_DIM; i++)
        if (!isfinite(f->descriptor[i]))
            return PV_EINVAL;
    size_t n = 0;
    while (n < k && h[n].gid != 0)
        n++;
    for (size_t j = n; j < k; j++)
        if (h[j].gid != 0)
            return PV_EINVAL; /* a used entry after an empty one */
    for (size_t j = 0; j < n; j++) {
        if (isnan(h[j].distance) || h[j].distance < 0)
            return PV_EINVAL;
        if (j > 0 && h[j].distance < h[j - 1].distance)
            return PV_EINVAL;
    }
    *ncand = n;
    return 0;
}

/* Index of the face holding `gid`, or -1. */
static int holder_of(const uint64_t *held, size_t nfaces, uint64_t gid)
{
    for (size_t i = 0; i < nfaces; i++)
        if (held[i] == gid)
            return (int)i;
    return -1;
}

int pv_match_decide(pv_match_decision_t *out, const pv_match_config_t *cfg, const pv_face_t *faces,
                    size_t nfaces, const pv_gallery_hit_t *hits, size_t k)
{
    pv_match_config_t defaults;
    size_t ncand[PV_FACE_MAX_FACES], cursor[PV_FACE_MAX_FACES];
    uint64_t held[PV_FACE_MAX_FACES]; /* gid held by face i (0: none) */
    int rc;

    if (cfg == NULL) {
        pv_match_config_init(&defaults);
        cfg = &defaults;
    }
    if ((rc = pv_match_config_check(cfg)) != 0)
        return rc;
    if (nfaces == 0)
        return 0;
    if (out == NULL || faces == NULL || nfaces > PV_FACE_MAX_FACES || k > PV_GALLERY_SEARCH_K_MAX ||
        (k > 0 && hits == NULL))
        return PV_EINVAL;
    for (size_t i = 0; i < nfaces; i++) {
        ncand[i] = 0;
        if ((rc = check_face(&faces[i], k > 0 ? hits + i * k : NULL, k, &ncand[i])) != 0)
            return rc;
    }

    /* 1. Quality gate; everyone else starts unassigned. */
    for (size_t i = 0; i < nfaces; i++) {
        pv_match_decision_t *d = &out[i];
        memset(d, 0, sizeof(*d));
        d->distance = ncand[i] > 0 ? hits[i * k].distance : INFINITY;
        d->lost_to = -1;
        d->quality = pv_match_quality(cfg, &faces[i]);
        d->low_quality = low_quality_bits(cfg, &faces[i]);
        d->status = d->low_quality != 0 ? PV_MATCH_LOW_QUALITY : PV_MATCH_UNENROLLED;
        cursor[i] = 0;
        held[i] = 0;
    }

    /* 2. Greedy assignment by distance: the closest free (face, identity)
     * pair below match_dist wins, again and again. Greedy rather than an
     * optimal assignment (Hungarian) on purpose: the closest pair is the
     * most certain match of the image, and an optimum of summed distances
     * could give it up to place a weaker pair; with the few faces of one
     * image both agree almost always. Candidates are sorted, and taken gids
     * only accumulate, so each face's cursor only moves forward. Ties go to
     * the lower face index. */
    /* Hits carry float distances: compare them with the thresholds rounded
     * to float too, so a threshold of 0.6 means the hit value 0.6f. */
    const float match_f = (float)cfg->match_dist, enroll_f = (float)cfg->enroll_dist;
    for (;;) {
        int best = -1;
        float bestd = match_f;
        for (size_t i = 0; i < nfaces; i++) {
            if (out[i].status != PV_MATCH_UNENROLLED)
                continue;
            const pv_gallery_hit_t *h = hits + i * k;
            while (cursor[i] < ncand[i] && holder_of(held, nfaces, h[cursor[i]].gid) >= 0)
                cursor[i]++;
            if (cursor[i] < ncand[i] && h[cursor[i]].distance < bestd) {
                bestd = h[cursor[i]].distance;
                best = (int)i;
            }
        }
        if (best < 0)
            break;
        pv_match_decision_t *d = &out[best];
        d->status = PV_MATCH_RETURNING;
        d->gid = hits[(size_t)best * k + cursor[best]].gid;
        d->distance = bestd;
        held[best] = d->gid;
    }

    /* 3. Leftovers: new when far from every identity (the nearest candidate
     * counts even when another face took it: a face that lost a match below
     * match_dist is close to a known identity, not a stranger). Faces of one
     * image are not compared with each other here: they are different people
     * by construction, so two look-alikes in one frame are both enrolled. */
    for (size_t i = 0; i < nfaces; i++) {
        pv_match_decision_t *d = &out[i];
        if (d->status != PV_MATCH_UNENROLLED)
            continue;
        if (ncand[i] == 0) {
            d->status = PV_MATCH_NEW;
            continue;
        }
        const pv_gallery_hit_t *h0 = &hits[i * k];
        if (h0->distance < match_f)
            d->lost_to = holder_of(held, nfaces, h0->gid);
        else if (h0->distance > enroll_f)
            d->status = PV_MATCH_NEW;
    }

    /* 4. Exemplars and confidences. */
    for (size_t i = 0; i < nfaces; i++) {
        pv_match_decision_t *d = &out[i];
        d->add_exemplar = d->status == PV_MATCH_RETURNING && exemplar_worthy(cfg, &faces[i], d->distance);
        d->confidence = pv_match_confidence(cfg, d->distance);
    }
    return 0;
}
