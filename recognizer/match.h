/*
 * recognizer/match: the matching policy. A pure decision function (no I/O,
 * no allocation, no global state): given the faces of ONE image and, per
 * face, its nearest gallery identities, it decides each face's status
 * (returning, new, unenrolled, low_quality), the identity a returning face
 * joins, whether its descriptor becomes an exemplar, and a confidence.
 * Always true of a decision set: no two faces of one image get one gid, and
 * a low-quality face is never enrolled, matched or kept as an exemplar.
 * Policy, thresholds and their calibration: recognizer/MATCHING.md.
 */
#ifndef PV_RECOGNIZER_MATCH_H
#define PV_RECOGNIZER_MATCH_H

#include <stddef.h>
#include <stdint.h>
#include "recognizer/face.h"
#include "recognizer/gallery.h"

typedef enum {
    PV_MATCH_RETURNING = 0,   /* joins an existing identity (decision.gid) */
    PV_MATCH_NEW = 1,         /* far from every identity: enrol it as a new one */
    PV_MATCH_UNENROLLED = 2,  /* between the thresholds, or lost its identity to another face: no ID */
    PV_MATCH_LOW_QUALITY = 3, /* too small, blurred, turned or weakly detected: no ID, never stored */
} pv_match_status_t;

/* Why a face is low quality: bits of pv_match_decision_t.low_quality. */
#define PV_MATCH_LQ_SMALL 0x1u /* quality.face_px < min_face_px */
#define PV_MATCH_LQ_BLUR 0x2u  /* quality.sharpness < min_sharpness */
#define PV_MATCH_LQ_YAW 0x4u   /* |quality.yaw_deg| > max_yaw_deg */
#define PV_MATCH_LQ_SCORE 0x8u /* score < min_score */

/*
 * Every distance is Euclidean between 128-d descriptors, as
 * pv_gallery_search() reports it. Defaults (pv_match_config_init) are the
 * calibrated values of MATCHING.md.
 */
typedef struct pv_match_config {
    double match_dist;  /* a face joins its nearest free identity when distance < match_dist */
    double enroll_dist; /* a face is new when its nearest identity is farther than this (>= match_dist) */

    /* Low quality: any one of these makes a face low_quality. */
    double min_face_px;   /* smallest face side in pixels (quality.face_px) */
    double min_sharpness; /* variance of the Laplacian (quality.sharpness) */
    double max_yaw_deg;   /* largest |quality.yaw_deg| */
    double min_score;     /* lowest detector score */

    /* Exemplars: a returning face is added to its identity when its distance
     * is in [exemplar_min_dist, exemplar_max_dist) (diverse, yet surely the
     * same person), it passes the stricter exemplar quality below, and the
     * detection was not cut by the image border. */
    double exemplar_min_dist; /* below: a near-duplicate of a kept exemplar, adds nothing */
    double exemplar_max_dist; /* at or above: too uncertain to grow the identity with (<= match_dist) */
    double exemplar_min_face_px;
    double exemplar_min_sharpness;
    double exemplar_max_yaw_deg;

    /* Confidence = 1 / (1 + exp((distance - conf_mid) / conf_scale)). */
    double conf_mid;
    double conf_scale; /* > 0 */
} pv_match_config_t;

typedef struct pv_match_decision {
    pv_match_status_t status;
    uint64_t gid;         /* RETURNING: the identity joined; 0 otherwise */
    double distance;      /* RETURNING: to gid; otherwise to the nearest candidate given (INFINITY: none) */
    double confidence;    /* pv_match_confidence(cfg, distance): in [0, 1], 0 when distance is INFINITY */
    unsigned low_quality; /* PV_MATCH_LQ_* bits that held; 0 unless LOW_QUALITY */
    int add_exemplar;     /* 1: RETURNING and worth keeping as an exemplar of gid (pv_gallery_add) */
    int lost_to;          /* UNENROLLED because face lost_to of this image took its nearest identity;
                             -1 otherwise */
    float quality;        /* a figure in [0, 1] to store with an enrolled or added exemplar */
} pv_match_decision_t;

/* Fills *cfg with the calibrated defaults (MATCHING.md). */
void pv_match_config_init(pv_match_config_t *cfg);

/* Returns 0 when *cfg is consistent, PV_EINVAL otherwise: a value NaN or
 * infinite, negative, or out of order (match_dist <= 0, enroll_dist <
 * match_dist, distances above 4 (descriptors are about unit length),
 * exemplar_min_dist > exemplar_max_dist, exemplar_max_dist > match_dist,
 * min_score > 1, max_yaw_deg > 90, conf_scale <= 0). */
int pv_match_config_check(const pv_match_config_t *cfg);

/*
 * Decides the faces of one image. faces[0..nfaces) are that image's faces;
 * hits holds nfaces * k candidates, face i's at hits[i * k], nearest first
 * (as pv_gallery_search() or a merge of shard answers returns them), an
 * unused entry has gid 0 (and then every later one of that face too). k may
 * be 0 (empty gallery: hits may be NULL). cfg NULL means the defaults.
 * out[0..nfaces) receives one decision per face, in the order of faces.
 *
 * Rules, in order:
 *  1. low quality (any PV_MATCH_LQ_* test): LOW_QUALITY; it takes no part in
 *     what follows.
 *  2. assignment, greedy by distance over the whole image: repeatedly the
 *     closest (face, identity) pair with distance < match_dist whose face
 *     and identity are both still free is fixed as RETURNING. A face whose
 *     nearest identity was taken by a closer face thus takes its next
 *     candidate if that is still below match_dist.
 *  3. a face left over is NEW when its nearest candidate (taken or not) is
 *     farther than enroll_dist, or it has none; otherwise UNENROLLED, with
 *     lost_to naming the face that took its nearest identity, if one did.
 *     Faces of one image are different people by construction, so they are
 *     not compared with each other: two look-alikes in a frame both enrol.
 *  4. a RETURNING face gets add_exemplar per the exemplar fields of cfg.
 *
 * Returns 0, or PV_EINVAL (NULL where data is needed, nfaces >
 * PV_FACE_MAX_FACES, k > PV_GALLERY_SEARCH_K_MAX, a bad config, a
 * descriptor or quality value NaN/infinite, a candidate distance NaN or
 * negative, or the candidates of a face out of order); *out is then
 * undefined. A gid listed twice for one face is harmless.
 */
int pv_match_decide(pv_match_decision_t *out, const pv_match_config_t *cfg, const pv_face_t *faces,
                    size_t nfaces, const pv_gallery_hit_t *hits, size_t k);

/* Confidence that a face at `distance` from an identity is that person:
 * the logistic of MATCHING.md, strictly decreasing in distance, 1/2 at
 * conf_mid, in [0, 1]; 0 for INFINITY or NaN. cfg NULL means the defaults. */
double pv_match_confidence(const pv_match_config_t *cfg, double distance);

/* The quality figure of decision.quality: detector score times the shares
 * of face size, sharpness and frontality relative to the exemplar
 * thresholds (each capped at 1). Higher is better; only a ranking. */
float pv_match_quality(const pv_match_config_t *cfg, const pv_face_t *face);

/* "returning", "new", "unenrolled", "low_quality" (the API's words); static. */
const char *pv_match_status_name(pv_match_status_t status);

#endif
