/*
 * The matching policy (recognizer/match.h). Real descriptors: the 22 faces
 * of the six sample photos in tests/data/face/expected.json (all different
 * people), with their `jpegjs_ssd` twins (the same faces through another
 * JPEG decoder, 0.01-0.14 away) as "the same person again"; the gallery
 * search is done here by brute force. Synthetic cases pin each rule: the
 * returning / unenrolled / new bands and their edges, each low-quality
 * test, two faces of one image competing for one identity (greedy), the
 * exemplar decision, the confidence curve and configuration checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "common/error.h"
#include "recognizer/match.h"

#define NREAL 22
#define NIMG 6

static pv_face_t real[NREAL]; /* ssd faces, photo by photo */
static pv_face_t twin[NREAL]; /* jpegjs_ssd faces, same order */
static int real_img[NREAL];   /* photo index of each face */
static int img_first[NIMG + 1];

static void good_quality(pv_face_t *f)
{
    f->quality.face_px = 200;
    f->quality.sharpness = 500;
    f->quality.yaw_deg = 5;
    f->score = 0.95;
    f->border = 0;
}

static void load_descriptor(pv_face_t *f, json_t *face)
{
    json_t *d = json_object_get(face, "descriptor");
    assert_int_equal(json_array_size(d), PV_FACE_DESC_DIM);
    memset(f, 0, sizeof(*f));
    for (int i = 0; i < PV_FACE_DESC_DIM; i++)
        f->descriptor[i] = (float)json_number_value(json_array_get(d, i));
    good_quality(f);
    /* The real detector score (expected.json has no quality record; sizes
     * and sharpness stay the good synthetic ones above). */
    json_t *sc = json_object_get(face, "score");
    if (sc != NULL)
        f->score = json_number_value(sc);
}

static int setup(void **state)
{
    (void)state;
    json_error_t err;
    json_t *root = json_load_file(PV_TEST_DATA "/expected.json", 0, &err);
    if (root == NULL) {
        fprintf(stderr, "expected.json: %s\n", err.text);
        return -1;
    }
    json_t *images = json_object_get(root, "images");
    int n = 0;
    for (size_t i = 0; i < json_array_size(images) && i < NIMG; i++) {
        json_t *im = json_array_get(images, i);
        json_t *ssd = json_object_get(im, "ssd"), *js = json_object_get(im, "jpegjs_ssd");
        img_first[i] = n;
        for (size_t j = 0; j < json_array_size(ssd) && n < NREAL; j++, n++) {
            load_descriptor(&real[n], json_array_get(ssd, j));
            load_descriptor(&twin[n], json_array_get(js, j));
            twin[n].score = real[n].score;
            real_img[n] = (int)i;
        }
    }
    img_first[NIMG] = n;
    json_decref(root);
    return n == NREAL ? 0 : -1;
}

static double dist(const pv_face_t *a, const pv_face_t *b)
{
    double s = 0;
    for (int i = 0; i < PV_FACE_DESC_DIM; i++) {
        double d = (double)a->descriptor[i] - b->descriptor[i];
        s += d * d;
    }
    return sqrt(s);
}

/* Brute-force search: gallery identity g (gid g+1) is gallery[g]; k nearest
 * per query, sorted, empty entries gid 0 / INFINITY. `skip` (or -1) is a
 * gallery index left out (an identity not enrolled). */
static void search(pv_gallery_hit_t *hits, const pv_face_t *q, size_t nq, const pv_face_t *gallery, size_t ng,
                   size_t k, int skip)
{
    for (size_t i = 0; i < nq; i++) {
        pv_gallery_hit_t *h = hits + i * k;
        for (size_t j = 0; j < k; j++)
            h[j] = (pv_gallery_hit_t){0, 0, INFINITY};
        for (size_t g = 0; g < ng; g++) {
            if ((int)g == skip)
                continue;
            pv_gallery_hit_t c = {g + 1, 0, (float)dist(&q[i], &gallery[g])};
            for (size_t j = 0; j < k; j++) {
                if (h[j].gid == 0 || c.distance < h[j].distance) {
                    pv_gallery_hit_t t = h[j];
                    h[j] = c;
                    c = t;
                    if (c.gid == 0)
                        break;
                }
            }
        }
    }
}

/* A face with good quality and a zero descriptor (the decision uses only
 * the candidates' distances for it). */
static pv_face_t synth(void)
{
    pv_face_t f;
    memset(&f, 0, sizeof(f));
    good_quality(&f);
    return f;
}

static pv_gallery_hit_t hit(uint64_t gid, float d)
{
    return (pv_gallery_hit_t){gid, 0, d};
}

/* ---- real descriptors ---- */

/* Every face seen again (through the other decoder) joins its own identity,
 * with all faces of a photo in one request; near-duplicates (< 0.15) are
 * not added as exemplars. */
static void test_real_returning(void **state)
{
    (void)state;
    enum { K = 4 };
    pv_match_config_t c;
    pv_match_config_init(&c);
    for (int im = 0; im < NIMG; im++) {
        int first = img_first[im], n = img_first[im + 1] - first;
        pv_gallery_hit_t hits[8 * K];
        pv_match_decision_t dec[8];
        search(hits, &twin[first], (size_t)n, real, NREAL, K, -1);
        assert_int_equal(pv_match_decide(dec, &c, &twin[first], (size_t)n, hits, K), 0);
        for (int i = 0; i < n; i++) {
            if (twin[first + i].score < c.min_score) {
                /* below the default min_score: answered, never matched */
                assert_int_equal(dec[i].status, PV_MATCH_LOW_QUALITY);
                assert_int_equal(dec[i].low_quality, PV_MATCH_LQ_SCORE);
                assert_int_equal(dec[i].gid, 0);
                continue;
            }
            assert_int_equal(dec[i].status, PV_MATCH_RETURNING);
            assert_int_equal(dec[i].gid, (uint64_t)(first + i + 1));
            assert_true(dec[i].distance < 0.15);
            assert_int_equal(dec[i].add_exemplar, 0);
            assert_true(dec[i].confidence > 0.99);
            assert_int_equal(dec[i].lost_to, -1);
        }
    }
}

/* Each face of photo 6 against a gallery of the other five photos' faces:
 * nobody of photo 6 is enrolled, so none may be answered as returning; the
 * status follows the nearest distance's band. */
static void test_real_strangers(void **state)
{
    (void)state;
    enum { K = 3 };
    pv_match_config_t cfg;
    pv_match_config_init(&cfg);
    int first = img_first[5], n = img_first[6] - first;
    pv_gallery_hit_t hits[8 * K];
    pv_match_decision_t dec[8];
    search(hits, &twin[first], (size_t)n, real, (size_t)first, K, -1);
    assert_int_equal(pv_match_decide(dec, &cfg, &twin[first], (size_t)n, hits, K), 0);
    int newc = 0;
    for (int i = 0; i < n; i++) {
        double d0 = hits[i * K].distance;
        assert_true(d0 > 0.55); /* the data: every stranger is farther than 0.55 */
        assert_int_not_equal(dec[i].status, PV_MATCH_RETURNING);
        assert_int_equal(dec[i].gid, 0);
        assert_true(fabs(dec[i].distance - d0) < 1e-6);
        if (twin[first + i].score < cfg.min_score)
            assert_int_equal(dec[i].status, PV_MATCH_LOW_QUALITY);
        else if (d0 > cfg.enroll_dist)
            assert_int_equal(dec[i].status, PV_MATCH_NEW), newc++;
        else if (d0 >= cfg.match_dist)
            assert_int_equal(dec[i].status, PV_MATCH_UNENROLLED);
    }
    (void)newc;
}

/* The same face twice in one request (both decoders' descriptors): one
 * identity, one face; the other is unenrolled, naming the winner. */
static void test_real_same_image_conflict(void **state)
{
    (void)state;
    enum { K = 2 };
    pv_face_t q[2] = {real[0], twin[0]};
    pv_gallery_hit_t hits[2 * K];
    pv_match_decision_t dec[2];
    search(hits, q, 2, real, NREAL, K, -1);
    assert_int_equal(pv_match_decide(dec, NULL, q, 2, hits, K), 0);
    /* real[0] is at distance 0 from identity 1: it wins */
    assert_int_equal(dec[0].status, PV_MATCH_RETURNING);
    assert_int_equal(dec[0].gid, 1);
    assert_true(dec[0].distance < 1e-6);
    assert_int_equal(dec[1].gid, 0);
    assert_int_equal(dec[1].status, PV_MATCH_UNENROLLED); /* its second candidate is > match_dist */
    assert_int_equal(dec[1].lost_to, 0);
}

/* An empty gallery enrols every good face of a group photo, look-alikes
 * included (photo 4 has two different people 0.49 apart). */
static void test_real_empty_gallery(void **state)
{
    (void)state;
    pv_match_config_t c;
    pv_match_config_init(&c);
    int first = img_first[3], n = img_first[4] - first;
    assert_true(dist(&real[first], &real[first + 3]) < 0.5);
    pv_match_decision_t dec[8];
    assert_int_equal(pv_match_decide(dec, &c, &real[first], (size_t)n, NULL, 0), 0);
    for (int i = 0; i < n; i++) {
        pv_match_status_t want = real[first + i].score < c.min_score ? PV_MATCH_LOW_QUALITY : PV_MATCH_NEW;
        assert_int_equal(dec[i].status, want);
        assert_int_equal(dec[i].gid, 0);
        assert_true(isinf(dec[i].distance));
        assert_true(dec[i].confidence == 0.0);
        assert_int_equal(dec[i].add_exemplar, 0);
    }
}

/* ---- synthetic: bands ---- */

static pv_match_decision_t decide1(const pv_match_config_t *cfg, pv_face_t f, float d)
{
    pv_gallery_hit_t h[2] = {hit(7, d), hit(0, INFINITY)};
    pv_match_decision_t dec;
    assert_int_equal(pv_match_decide(&dec, cfg, &f, 1, h, 2), 0);
    return dec;
}

static void test_bands(void **state)
{
    (void)state;
    pv_match_config_t c;
    pv_match_config_init(&c);
    c.match_dist = 0.5;
    c.enroll_dist = 0.6;
    c.exemplar_max_dist = 0.45;
    assert_int_equal(pv_match_config_check(&c), 0);
    pv_match_decision_t d = decide1(&c, synth(), 0.3f);
    assert_int_equal(d.status, PV_MATCH_RETURNING);
    assert_int_equal(d.gid, 7);
    d = decide1(&c, synth(), 0.4999f);
    assert_int_equal(d.status, PV_MATCH_RETURNING);
    d = decide1(&c, synth(), 0.5f); /* returning needs strictly below */
    assert_int_equal(d.status, PV_MATCH_UNENROLLED);
    assert_int_equal(d.gid, 0);
    assert_int_equal(d.lost_to, -1);
    d = decide1(&c, synth(), 0.55f);
    assert_int_equal(d.status, PV_MATCH_UNENROLLED);
    d = decide1(&c, synth(), 0.6f); /* new needs strictly above */
    assert_int_equal(d.status, PV_MATCH_UNENROLLED);
    d = decide1(&c, synth(), 0.61f);
    assert_int_equal(d.status, PV_MATCH_NEW);
    assert_int_equal(d.gid, 0);
    assert_true(fabs(d.distance - 0.61) < 1e-6);
    d = decide1(&c, synth(), INFINITY);
    assert_int_equal(d.status, PV_MATCH_NEW);

    /* equal thresholds: no band */
    c.enroll_dist = c.match_dist;
    assert_int_equal(pv_match_config_check(&c), 0);
    assert_int_equal(decide1(&c, synth(), 0.5f).status, PV_MATCH_UNENROLLED);
    assert_int_equal(decide1(&c, synth(), 0.5001f).status, PV_MATCH_NEW);

    /* no candidates (k = 0 and k > 0 with only empty entries) */
    pv_face_t f = synth();
    pv_gallery_hit_t none[3] = {hit(0, INFINITY), hit(0, INFINITY), hit(0, INFINITY)};
    pv_match_decision_t dec;
    assert_int_equal(pv_match_decide(&dec, NULL, &f, 1, none, 3), 0);
    assert_int_equal(dec.status, PV_MATCH_NEW);
    assert_int_equal(pv_match_decide(&dec, NULL, &f, 1, NULL, 0), 0);
    assert_int_equal(dec.status, PV_MATCH_NEW);
    assert_int_equal(pv_match_decide(NULL, NULL, NULL, 0, NULL, 0), 0);
}

/* ---- synthetic: low quality ---- */

static void test_low_quality(void **state)
{
    (void)state;
    pv_match_config_t c;
    pv_match_config_init(&c);
    pv_face_t f;

    f = synth();
    f.quality.face_px = c.min_face_px - 1;
    pv_match_decision_t d = decide1(&c, f, 0.1f);
    assert_int_equal(d.status, PV_MATCH_LOW_QUALITY);
    assert_int_equal(d.low_quality, PV_MATCH_LQ_SMALL);

    f = synth();
    f.quality.sharpness = c.min_sharpness - 1;
    d = decide1(&c, f, 0.1f);
    assert_int_equal(d.status, PV_MATCH_LOW_QUALITY);
    assert_int_equal(d.low_quality, PV_MATCH_LQ_BLUR);

    f = synth();
    f.quality.yaw_deg = c.max_yaw_deg + 1;
    d = decide1(&c, f, 0.1f);
    assert_int_equal(d.low_quality, PV_MATCH_LQ_YAW);
    f.quality.yaw_deg = -(c.max_yaw_deg + 1); /* either side */
    d = decide1(&c, f, 0.1f);
    assert_int_equal(d.low_quality, PV_MATCH_LQ_YAW);
    f.quality.yaw_deg = -c.max_yaw_deg; /* the limit itself is fine */
    assert_int_equal(decide1(&c, f, 0.1f).status, PV_MATCH_RETURNING);

    f = synth();
    f.score = c.min_score - 0.01;
    d = decide1(&c, f, 0.1f);
    assert_int_equal(d.low_quality, PV_MATCH_LQ_SCORE);

    f = synth();
    f.quality.face_px = c.min_face_px; /* limits themselves pass */
    f.quality.sharpness = c.min_sharpness;
    f.score = c.min_score;
    assert_int_equal(decide1(&c, f, 0.1f).status, PV_MATCH_RETURNING);

    /* several reasons at once; never matched, enrolled or an exemplar even
     * at distance 0.3 (would be a diverse exemplar) or in an empty gallery */
    f = synth();
    f.quality.face_px = 1;
    f.quality.sharpness = 0;
    f.score = 0.01;
    d = decide1(&c, f, 0.3f);
    assert_int_equal(d.status, PV_MATCH_LOW_QUALITY);
    assert_int_equal(d.low_quality, PV_MATCH_LQ_SMALL | PV_MATCH_LQ_BLUR | PV_MATCH_LQ_SCORE);
    assert_int_equal(d.gid, 0);
    assert_int_equal(d.add_exemplar, 0);
    assert_true(fabs(d.distance - 0.3) < 1e-6); /* still reported */
    assert_int_equal(pv_match_decide(&d, &c, &f, 1, NULL, 0), 0);
    assert_int_equal(d.status, PV_MATCH_LOW_QUALITY);

    /* a low-quality face does not take an identity from a good one */
    pv_face_t two[2] = {synth(), synth()};
    two[0].quality.yaw_deg = 80;
    pv_gallery_hit_t h[4] = {hit(5, 0.1f), hit(0, INFINITY), hit(5, 0.4f), hit(0, INFINITY)};
    pv_match_decision_t dec[2];
    assert_int_equal(pv_match_decide(dec, &c, two, 2, h, 2), 0);
    assert_int_equal(dec[0].status, PV_MATCH_LOW_QUALITY);
    assert_int_equal(dec[1].status, PV_MATCH_RETURNING);
    assert_int_equal(dec[1].gid, 5);
}

/* ---- synthetic: two faces, one identity ---- */

static void test_conflict(void **state)
{
    (void)state;
    pv_match_config_t c;
    pv_match_config_init(&c);
    c.match_dist = 0.5;
    c.enroll_dist = 0.6;
    c.exemplar_max_dist = 0.5;
    pv_face_t f[3] = {synth(), synth(), synth()};
    pv_match_decision_t d[3];

    /* the closer face wins A; the other takes its next candidate B (< match) */
    pv_gallery_hit_t h1[4] = {hit(1, 0.40f), hit(2, 0.45f), hit(1, 0.30f), hit(3, 0.8f)};
    assert_int_equal(pv_match_decide(d, &c, f, 2, h1, 2), 0);
    assert_int_equal(d[1].status, PV_MATCH_RETURNING);
    assert_int_equal(d[1].gid, 1);
    assert_int_equal(d[0].status, PV_MATCH_RETURNING);
    assert_int_equal(d[0].gid, 2);
    assert_true(fabs(d[0].distance - 0.45) < 1e-6);
    assert_true(fabs(d[0].confidence - pv_match_confidence(&c, 0.45f)) < 1e-12);

    /* the loser's next candidate is beyond match_dist, even beyond
     * enroll_dist: unenrolled (it is close to a known identity), lost_to */
    pv_gallery_hit_t h2[4] = {hit(1, 0.40f), hit(2, 0.75f), hit(1, 0.30f), hit(3, 0.8f)};
    assert_int_equal(pv_match_decide(d, &c, f, 2, h2, 2), 0);
    assert_int_equal(d[1].gid, 1);
    assert_int_equal(d[0].status, PV_MATCH_UNENROLLED);
    assert_int_equal(d[0].gid, 0);
    assert_int_equal(d[0].lost_to, 1);
    assert_true(fabs(d[0].distance - 0.40) < 1e-6); /* the nearest, the one it lost */

    /* greedy, not optimal (documented): face 0 takes A (0.30), face 1 then
     * has only B at 0.70; an assignment maximising matches would have
     * given 0->B (0.45), 1->A (0.35). */
    pv_gallery_hit_t h3[4] = {hit(1, 0.30f), hit(2, 0.45f), hit(1, 0.35f), hit(2, 0.70f)};
    assert_int_equal(pv_match_decide(d, &c, f, 2, h3, 2), 0);
    assert_int_equal(d[0].gid, 1);
    assert_int_equal(d[1].status, PV_MATCH_UNENROLLED);
    assert_int_equal(d[1].lost_to, 0);

    /* a chain: three faces over two identities; ties go to the lower index */
    pv_gallery_hit_t h4[6] = {hit(1, 0.2f),  hit(2, 0.3f), hit(1, 0.2f),
                              hit(2, 0.25f), hit(2, 0.1f), hit(1, 0.45f)};
    assert_int_equal(pv_match_decide(d, &c, f, 3, h4, 2), 0);
    assert_int_equal(d[2].gid, 2); /* 0.1 first */
    assert_int_equal(d[0].gid, 1); /* 0.2 tie: face 0 before face 1 */
    assert_int_equal(d[1].status, PV_MATCH_UNENROLLED);
    assert_int_equal(d[1].lost_to, 0);
    uint64_t seen = 0;
    for (int i = 0; i < 3; i++) {
        if (d[i].status == PV_MATCH_RETURNING) {
            assert_int_equal(seen & (1u << d[i].gid), 0);
            seen |= 1u << d[i].gid;
        }
    }

    /* a gid listed twice for one face is harmless */
    pv_gallery_hit_t h5[4] = {hit(1, 0.2f), hit(1, 0.3f), hit(1, 0.1f), hit(0, INFINITY)};
    assert_int_equal(pv_match_decide(d, &c, f, 2, h5, 2), 0);
    assert_int_equal(d[1].gid, 1);
    assert_int_equal(d[0].status, PV_MATCH_UNENROLLED);
}

/* ---- synthetic: exemplars ---- */

static void test_exemplar(void **state)
{
    (void)state;
    pv_match_config_t c;
    pv_match_config_init(&c);
    float mid = (float)((c.exemplar_min_dist + c.exemplar_max_dist) / 2);
    pv_face_t f = synth();
    pv_match_decision_t d = decide1(&c, f, mid);
    assert_int_equal(d.status, PV_MATCH_RETURNING);
    assert_int_equal(d.add_exemplar, 1);
    assert_true(d.quality > 0.5f && d.quality <= 1.0f);

    /* near-duplicate, too far (but still returning), at the edges */
    assert_int_equal(decide1(&c, f, (float)c.exemplar_min_dist * 0.5f).add_exemplar, 0);
    assert_int_equal(decide1(&c, f, (float)c.exemplar_min_dist).add_exemplar, 1);
    if (c.exemplar_max_dist < c.match_dist) {
        d = decide1(&c, f, (float)c.exemplar_max_dist);
        assert_int_equal(d.status, PV_MATCH_RETURNING);
        assert_int_equal(d.add_exemplar, 0);
    }

    /* quality: good enough to match, not to be an exemplar */
    pv_face_t g = f;
    g.quality.face_px = (c.min_face_px + c.exemplar_min_face_px) / 2;
    d = decide1(&c, g, mid);
    assert_int_equal(d.status, PV_MATCH_RETURNING);
    assert_int_equal(d.add_exemplar, 0);
    g = f;
    g.quality.sharpness = (c.min_sharpness + c.exemplar_min_sharpness) / 2;
    assert_int_equal(decide1(&c, g, mid).add_exemplar, 0);
    g = f;
    g.quality.yaw_deg = -(c.max_yaw_deg + c.exemplar_max_yaw_deg) / 2;
    assert_int_equal(decide1(&c, g, mid).status, PV_MATCH_RETURNING);
    assert_int_equal(decide1(&c, g, mid).add_exemplar, 0);
    g = f;
    g.border = 1;
    assert_int_equal(decide1(&c, g, mid).add_exemplar, 0);

    /* never for new or unenrolled faces */
    assert_int_equal(decide1(&c, f, (float)(c.match_dist + c.enroll_dist) / 2).add_exemplar, 0);
    assert_int_equal(decide1(&c, f, (float)c.enroll_dist + 0.1f).add_exemplar, 0);

    /* quality figure: a ranking in [0, 1] */
    g = f;
    g.quality.yaw_deg = 40;
    assert_true(pv_match_quality(&c, &g) < pv_match_quality(&c, &f));
    g = f;
    g.quality.face_px = 10;
    assert_true(pv_match_quality(&c, &g) < pv_match_quality(&c, &f));
    g.quality.sharpness = NAN;
    assert_true(pv_match_quality(&c, &g) == 0.0f);
}

/* ---- confidence ---- */

static void test_confidence(void **state)
{
    (void)state;
    pv_match_config_t c;
    pv_match_config_init(&c);
    double prev = 2;
    for (int i = 0; i <= 2000; i++) {
        double d = i / 1000.0;
        double v = pv_match_confidence(&c, d);
        assert_true(v >= 0 && v <= 1);
        assert_true(v <= prev);
        if (v > 1e-12 && v < 1 - 1e-12 && prev < 2)
            assert_true(v < prev); /* strictly where not saturated */
        prev = v;
    }
    assert_true(fabs(pv_match_confidence(&c, c.conf_mid) - 0.5) < 1e-12);
    assert_true(pv_match_confidence(&c, c.conf_mid - 3 * c.conf_scale) > 0.9);
    assert_true(pv_match_confidence(&c, c.conf_mid + 3 * c.conf_scale) < 0.1);
    assert_true(pv_match_confidence(&c, c.match_dist) > 0.5); /* a returning face is more likely than not */
    assert_true(pv_match_confidence(&c, INFINITY) == 0.0);
    assert_true(pv_match_confidence(&c, NAN) == 0.0);
    assert_true(pv_match_confidence(&c, 1e300) == 0.0);
    assert_true(pv_match_confidence(&c, -1) == pv_match_confidence(&c, 0));
    assert_true(pv_match_confidence(NULL, 0.3) == pv_match_confidence(&c, 0.3));
}

/* ---- bad input ---- */

static void test_bad_config(void **state)
{
    (void)state;
    pv_match_config_t ok, c;
    pv_match_config_init(&ok);
    assert_int_equal(pv_match_config_check(&ok), 0);
    assert_true(ok.match_dist < ok.enroll_dist);
    assert_int_equal(pv_match_config_check(NULL), PV_EINVAL);

#define BAD(stmt)                                                                                            \
    do {                                                                                                     \
        c = ok;                                                                                              \
        stmt;                                                                                                \
        assert_int_equal(pv_match_config_check(&c), PV_EINVAL);                                              \
        pv_face_t f_ = synth();                                                                              \
        pv_match_decision_t d_;                                                                              \
        assert_int_equal(pv_match_decide(&d_, &c, &f_, 1, NULL, 0), PV_EINVAL);                              \
    } while (0)
    BAD(c.match_dist = 0);
    BAD(c.match_dist = -0.1);
    BAD(c.match_dist = NAN);
    BAD(c.enroll_dist = c.match_dist - 0.01);
    BAD(c.enroll_dist = INFINITY);
    BAD(c.enroll_dist = 5);
    BAD(c.min_face_px = -1);
    BAD(c.min_sharpness = NAN);
    BAD(c.max_yaw_deg = 91);
    BAD(c.min_score = 1.5);
    BAD(c.exemplar_min_dist = c.exemplar_max_dist + 0.01);
    BAD(c.exemplar_max_dist = c.match_dist + 0.01);
    BAD(c.exemplar_max_yaw_deg = 100);
    BAD(c.exemplar_min_face_px = -INFINITY);
    BAD(c.conf_scale = 0);
    BAD(c.conf_mid = -1);
#undef BAD
}

static void test_bad_input(void **state)
{
    (void)state;
    pv_face_t f[2] = {synth(), synth()};
    pv_match_decision_t d[2];
    pv_gallery_hit_t h[4] = {hit(1, 0.3f), hit(2, 0.4f), hit(3, 0.3f), hit(0, INFINITY)};
    assert_int_equal(pv_match_decide(d, NULL, f, 2, h, 2), 0);

    assert_int_equal(pv_match_decide(NULL, NULL, f, 2, h, 2), PV_EINVAL);
    assert_int_equal(pv_match_decide(d, NULL, NULL, 2, h, 2), PV_EINVAL);
    assert_int_equal(pv_match_decide(d, NULL, f, 2, NULL, 2), PV_EINVAL);
    assert_int_equal(pv_match_decide(d, NULL, f, PV_FACE_MAX_FACES + 1, h, 2), PV_EINVAL);
    assert_int_equal(pv_match_decide(d, NULL, f, 2, h, PV_GALLERY_SEARCH_K_MAX + 1), PV_EINVAL);

    pv_gallery_hit_t b[4];
    memcpy(b, h, sizeof(h));
    b[0].distance = NAN;
    assert_int_equal(pv_match_decide(d, NULL, f, 2, b, 2), PV_EINVAL);
    memcpy(b, h, sizeof(h));
    b[1].distance = -0.1f;
    assert_int_equal(pv_match_decide(d, NULL, f, 2, b, 2), PV_EINVAL);
    memcpy(b, h, sizeof(h));
    b[0].distance = 0.5f; /* out of order */
    assert_int_equal(pv_match_decide(d, NULL, f, 2, b, 2), PV_EINVAL);
    memcpy(b, h, sizeof(h));
    b[2] = hit(0, INFINITY);
    b[3] = hit(4, 0.2f); /* a used entry after an empty one */
    assert_int_equal(pv_match_decide(d, NULL, f, 2, b, 2), PV_EINVAL);

    pv_face_t g[2] = {synth(), synth()};
    g[1].descriptor[17] = NAN;
    assert_int_equal(pv_match_decide(d, NULL, g, 2, h, 2), PV_EINVAL);
    g[1] = synth();
    g[1].quality.yaw_deg = INFINITY;
    assert_int_equal(pv_match_decide(d, NULL, g, 2, h, 2), PV_EINVAL);
    g[1] = synth();
    g[1].score = NAN;
    assert_int_equal(pv_match_decide(d, NULL, g, 2, h, 2), PV_EINVAL);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(pv_match_status_name(PV_MATCH_RETURNING), "returning");
    assert_string_equal(pv_match_status_name(PV_MATCH_NEW), "new");
    assert_string_equal(pv_match_status_name(PV_MATCH_UNENROLLED), "unenrolled");
    assert_string_equal(pv_match_status_name(PV_MATCH_LOW_QUALITY), "low_quality");
    assert_string_equal(pv_match_status_name((pv_match_status_t)42), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_returning),
        cmocka_unit_test(test_real_strangers),
        cmocka_unit_test(test_real_same_image_conflict),
        cmocka_unit_test(test_real_empty_gallery),
        cmocka_unit_test(test_bands),
        cmocka_unit_test(test_low_quality),
        cmocka_unit_test(test_conflict),
        cmocka_unit_test(test_exemplar),
        cmocka_unit_test(test_confidence),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
