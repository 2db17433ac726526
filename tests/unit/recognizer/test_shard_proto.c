/*
 * Unit tests of the shard wire protocol (recognizer/shard_proto.h): every
 * message round-trips bit for bit, the byte layout is little-endian as
 * documented, and every malformed case (truncation at every length, extra
 * bytes, header fields, counts and k past the bounds, wrong dimension, gid 0,
 * NaN/Inf anywhere in a vector or quality, bad responses) fails with the
 * documented code and a reason.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/error.h"
#include "recognizer/shard_proto.h"

#define DIM PV_SHARD_DIM

static void fill(float *v, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)((int32_t)((seed + i) * 2654435761u) % 1000) / 997.0f;
}

static void put_f32(uint8_t *p, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    for (int i = 0; i < 4; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static int dec_search(const uint8_t *b, size_t len)
{
    pv_shard_search_req_t r;
    char err[200] = "";
    int rc = pv_shard_decode_search_req(&r, b, len, err, sizeof(err));
    if (rc != 0)
        assert_true(err[0] != '\0'); /* every failure says why */
    return rc;
}

static int dec_enroll(const uint8_t *b, size_t len)
{
    pv_shard_enroll_req_t r;
    char err[200] = "";
    int rc = pv_shard_decode_enroll_req(&r, b, len, err, sizeof(err));
    if (rc != 0)
        assert_true(err[0] != '\0');
    return rc;
}

static int dec_add(const uint8_t *b, size_t len)
{
    pv_shard_add_req_t r;
    char err[200] = "";
    int rc = pv_shard_decode_add_req(&r, b, len, err, sizeof(err));
    if (rc != 0)
        assert_true(err[0] != '\0');
    return rc;
}

static int dec_remove(const uint8_t *b, size_t len)
{
    uint64_t gid;
    char err[200] = "";
    int rc = pv_shard_decode_remove_req(&gid, b, len, err, sizeof(err));
    if (rc != 0)
        assert_true(err[0] != '\0');
    return rc;
}

static void test_layout(void **state)
{
    (void)state;
    uint8_t b[PV_SHARD_REMOVE_REQ_SIZE];
    assert_int_equal(pv_shard_encode_remove_req(b, 0x0102030405060708ull), 24);
    static const uint8_t want[24] = {'P', 'V', 'S', 'H', 1, 0, PV_SHARD_REMOVE, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                                     8,   7,   6,   5,   4, 3, 2,               1};
    assert_memory_equal(b, want, sizeof(want));
    uint32_t count;
    assert_int_equal(pv_shard_peek(&count, b, sizeof(b), NULL, 0), PV_SHARD_REMOVE);
    assert_int_equal(count, 1);
    /* the float 1.0f is 00 00 80 3f on the wire */
    float v[DIM] = {1.0f};
    uint8_t e[PV_SHARD_ENROLL_REQ_SIZE];
    pv_shard_encode_enroll_req(e, 1, 2, 3, 0.5f, v);
    static const uint8_t one[4] = {0, 0, 0x80, 0x3f};
    assert_memory_equal(e + PV_SHARD_HDR_SIZE + 32, one, 4);
}

static void test_search_roundtrip(void **state)
{
    (void)state;
    for (uint32_t nq = 1; nq <= 7; nq += 3) {
        size_t len = PV_SHARD_SEARCH_REQ_SIZE(nq);
        float *q = malloc(nq * DIM * sizeof(float)), *back = malloc(nq * DIM * sizeof(float));
        uint8_t *b = malloc(len + 1);
        fill(q, nq * DIM, nq);
        q[0] = -0.0f;
        q[1] = 1e-40f; /* subnormal: finite, allowed */
        q[2] = -3.4e38f;
        assert_int_equal(pv_shard_encode_search_req(b, 0xfeedbeefcafe0001ull, 10, nq, q), len);
        pv_shard_search_req_t r;
        assert_int_equal(pv_shard_decode_search_req(&r, b, len, NULL, 0), 0);
        assert_int_equal(r.nq, nq);
        assert_int_equal(r.k, 10);
        assert_true(r.owner == 0xfeedbeefcafe0001ull);
        pv_shard_read_floats(back, r.vecs, nq * DIM);
        assert_memory_equal(back, q, nq * DIM * sizeof(float)); /* bit for bit, -0 and subnormals included */
        /* every truncation and one extra byte fail */
        for (size_t l = 0; l < len; l++)
            assert_int_not_equal(dec_search(b, l), 0);
        b[len] = 0;
        assert_int_equal(dec_search(b, len + 1), PV_EFORMAT);
        free(q);
        free(back);
        free(b);
    }
}

static void test_write_roundtrips(void **state)
{
    (void)state;
    float v[DIM], back[DIM];
    fill(v, DIM, 42);
    uint8_t e[PV_SHARD_ENROLL_REQ_SIZE + 1];
    assert_int_equal(pv_shard_encode_enroll_req(e, 77, 5, -1234567890123ll, 0.75f, v), PV_SHARD_ENROLL_REQ_SIZE);
    pv_shard_enroll_req_t er;
    assert_int_equal(pv_shard_decode_enroll_req(&er, e, PV_SHARD_ENROLL_REQ_SIZE, NULL, 0), 0);
    assert_true(er.gid == 77 && er.owner == 5 && er.time_ms == -1234567890123ll && er.quality == 0.75f);
    pv_shard_read_floats(back, er.vec, DIM);
    assert_memory_equal(back, v, sizeof(v));
    for (size_t l = 0; l < PV_SHARD_ENROLL_REQ_SIZE; l++)
        assert_int_not_equal(dec_enroll(e, l), 0);
    assert_int_equal(dec_enroll(e, PV_SHARD_ENROLL_REQ_SIZE + 1), PV_EFORMAT);

    uint8_t a[PV_SHARD_ADD_REQ_SIZE];
    assert_int_equal(pv_shard_encode_add_req(a, UINT64_MAX, 99, 0.25f, v), PV_SHARD_ADD_REQ_SIZE);
    pv_shard_add_req_t ar;
    assert_int_equal(pv_shard_decode_add_req(&ar, a, sizeof(a), NULL, 0), 0);
    assert_true(ar.gid == UINT64_MAX && ar.time_ms == 99 && ar.quality == 0.25f);
    pv_shard_read_floats(back, ar.vec, DIM);
    assert_memory_equal(back, v, sizeof(v));
    for (size_t l = 0; l < sizeof(a); l++)
        assert_int_not_equal(dec_add(a, l), 0);

    uint8_t r[PV_SHARD_REMOVE_REQ_SIZE];
    pv_shard_encode_remove_req(r, 123456789);
    uint64_t gid = 0;
    assert_int_equal(pv_shard_decode_remove_req(&gid, r, sizeof(r), NULL, 0), 0);
    assert_true(gid == 123456789);
    for (size_t l = 0; l < sizeof(r); l++)
        assert_int_not_equal(dec_remove(r, l), 0);

    /* a request of one kind is not another kind */
    assert_int_equal(dec_add(e, PV_SHARD_ENROLL_REQ_SIZE), PV_EFORMAT);
    assert_int_equal(dec_remove(a, sizeof(a)), PV_EFORMAT);
    assert_int_equal(dec_search(r, sizeof(r)), PV_EFORMAT);
}

static void test_responses(void **state)
{
    (void)state;
    enum { NQ = 3, K = 4 };
    pv_gallery_hit_t hits[NQ * K], back[NQ * K];
    for (int q = 0; q < NQ; q++)
        for (int j = 0; j < K; j++)
            hits[q * K + j] = j < q + 2 ? (pv_gallery_hit_t){(uint64_t)(q * 100 + j + 1), (uint32_t)j, 0.1f * j}
                                        : (pv_gallery_hit_t){0, 7, NAN}; /* empties: slot/distance normalised */
    uint8_t b[PV_SHARD_SEARCH_RESP_SIZE(NQ, K)];
    assert_int_equal(pv_shard_encode_search_resp(b, NQ, K, hits), sizeof(b));
    assert_int_equal(pv_shard_decode_search_resp(back, NQ, K, b, sizeof(b), NULL, 0), 0);
    for (int i = 0; i < NQ * K; i++) {
        assert_true(back[i].gid == hits[i].gid);
        if (hits[i].gid != 0) {
            assert_int_equal(back[i].slot, hits[i].slot);
            assert_true(back[i].distance == hits[i].distance);
        } else {
            assert_int_equal(back[i].slot, 0);
            assert_true(isinf(back[i].distance));
        }
    }
    char err[200];
    /* wrong shape for what was asked */
    assert_int_equal(pv_shard_decode_search_resp(back, NQ, K + 1, b, sizeof(b), err, sizeof(err)), PV_EFORMAT);
    assert_int_equal(pv_shard_decode_search_resp(back, NQ - 1, K, b, sizeof(b), err, sizeof(err)), PV_EFORMAT);
    for (size_t l = 0; l < sizeof(b); l++)
        assert_int_equal(pv_shard_decode_search_resp(back, NQ, K, b, l, err, sizeof(err)), PV_EFORMAT);
    /* hit 0 of query 0 at distance 0.0; hit 1 at 0.1 */
    size_t h0 = PV_SHARD_HDR_SIZE + 8, h1 = h0 + 16;
    uint8_t c[sizeof(b)];
    memcpy(c, b, sizeof(b));
    put_f32(c + h1 + 12, -0.5f); /* negative distance, and unsorted */
    assert_int_equal(pv_shard_decode_search_resp(back, NQ, K, c, sizeof(c), err, sizeof(err)), PV_EFORMAT);
    memcpy(c, b, sizeof(b));
    put_f32(c + h0 + 12, 0.5f); /* unsorted */
    assert_int_equal(pv_shard_decode_search_resp(back, NQ, K, c, sizeof(c), err, sizeof(err)), PV_EFORMAT);
    memcpy(c, b, sizeof(b));
    put_f32(c + h1 + 12, NAN);
    assert_int_equal(pv_shard_decode_search_resp(back, NQ, K, c, sizeof(c), err, sizeof(err)), PV_EFORMAT);
    memcpy(c, b, sizeof(b));
    put_u32(c + h1 + 8, PV_GALLERY_K_MAX); /* slot out of range */
    assert_int_equal(pv_shard_decode_search_resp(back, NQ, K, c, sizeof(c), err, sizeof(err)), PV_EFORMAT);
    memcpy(c, b, sizeof(b));
    memset(c + h1, 0, 8); /* empty hit with a finite distance */
    assert_int_equal(pv_shard_decode_search_resp(back, NQ, K, c, sizeof(c), err, sizeof(err)), PV_EFORMAT);

    uint8_t g[PV_SHARD_GID_RESP_SIZE];
    uint64_t gid;
    pv_shard_encode_gid_resp(g, PV_SHARD_ENROLL, 9);
    assert_int_equal(pv_shard_decode_gid_resp(&gid, PV_SHARD_ENROLL, g, sizeof(g), NULL, 0), 0);
    assert_true(gid == 9);
    assert_int_equal(pv_shard_decode_gid_resp(&gid, PV_SHARD_REMOVE, g, sizeof(g), NULL, 0), PV_EFORMAT);
    pv_shard_encode_gid_resp(g, PV_SHARD_REMOVE, 0);
    assert_int_equal(pv_shard_decode_gid_resp(&gid, PV_SHARD_REMOVE, g, sizeof(g), NULL, 0), PV_EFORMAT);

    uint8_t ad[PV_SHARD_ADD_RESP_SIZE];
    uint32_t slot;
    pv_shard_encode_add_resp(ad, 5, PV_GALLERY_NOSLOT);
    assert_int_equal(pv_shard_decode_add_resp(&gid, &slot, ad, sizeof(ad), NULL, 0), 0);
    assert_true(gid == 5 && slot == PV_GALLERY_NOSLOT);
    pv_shard_encode_add_resp(ad, 5, 3);
    assert_int_equal(pv_shard_decode_add_resp(&gid, &slot, ad, sizeof(ad), NULL, 0), 0);
    assert_int_equal(slot, 3);
    pv_shard_encode_add_resp(ad, 5, 16);
    assert_int_equal(pv_shard_decode_add_resp(&gid, &slot, ad, sizeof(ad), NULL, 0), PV_EFORMAT);

    pv_shard_stats_t st = {1, 2, 3, 4, 5, 6, DIM, 8, 1}, sb;
    uint8_t sbuf[PV_SHARD_STATS_RESP_SIZE];
    assert_int_equal(pv_shard_encode_stats_resp(sbuf, &st), sizeof(sbuf));
    assert_int_equal(pv_shard_decode_stats_resp(&sb, sbuf, sizeof(sbuf), NULL, 0), 0);
    assert_true(sb.identities == 1 && sb.exemplars == 2 && sb.owners == 3 && sb.seq == 4 && sb.snapshot_seq == 5 &&
                sb.lmdb_bytes == 6 && sb.dim == DIM && sb.k == 8 && sb.shared_approx == 1);
    st.dim = 64;
    pv_shard_encode_stats_resp(sbuf, &st);
    assert_int_equal(pv_shard_decode_stats_resp(&sb, sbuf, sizeof(sbuf), err, sizeof(err)), PV_EINVAL);
    for (size_t l = 0; l < sizeof(sbuf); l++)
        assert_int_equal(pv_shard_decode_stats_resp(&sb, sbuf, l, NULL, 0), PV_EFORMAT);

    uint8_t hb[PV_SHARD_HEALTH_RESP_SIZE];
    uint64_t ids;
    pv_shard_encode_health_resp(hb, 42);
    assert_int_equal(pv_shard_decode_health_resp(&ids, hb, sizeof(hb), NULL, 0), 0);
    assert_true(ids == 42);
    hb[PV_SHARD_HDR_SIZE] = 0; /* not serving */
    assert_int_equal(pv_shard_decode_health_resp(&ids, hb, sizeof(hb), NULL, 0), PV_EFORMAT);
}

static void test_header_errors(void **state)
{
    (void)state;
    float v[DIM];
    fill(v, DIM, 1);
    uint8_t good[PV_SHARD_SEARCH_REQ_SIZE(1)], b[sizeof(good)];
    pv_shard_encode_search_req(good, 0, 5, 1, v);
    assert_int_equal(dec_search(good, sizeof(good)), 0);
    /* magic, version, type, flags: every byte of them matters */
    for (int i = 0; i < 16; i++) {
        if (i >= 8 && i < 12)
            continue; /* count: below */
        memcpy(b, good, sizeof(b));
        b[i] ^= 0x40;
        assert_int_equal(dec_search(b, sizeof(b)), PV_EFORMAT);
    }
    /* a response is not a request */
    memcpy(b, good, sizeof(b));
    b[6] |= PV_SHARD_RESPONSE;
    assert_int_equal(dec_search(b, sizeof(b)), PV_EFORMAT);
    uint32_t count;
    assert_int_equal(pv_shard_peek(&count, b, sizeof(b), NULL, 0), PV_SHARD_SEARCH | PV_SHARD_RESPONSE);
    /* unknown types */
    for (int t = 0; t < 0x200; t++) {
        int base = t & ~PV_SHARD_RESPONSE;
        memcpy(b, good, sizeof(b));
        b[6] = (uint8_t)t;
        b[7] = (uint8_t)(t >> 8);
        int rc = pv_shard_peek(&count, b, sizeof(b), NULL, 0);
        if (base >= 1 && base <= 6)
            assert_int_equal(rc, t);
        else
            assert_int_equal(rc, PV_EFORMAT);
    }
    /* count that disagrees with the length */
    memcpy(b, good, sizeof(b));
    b[8] = 2;
    assert_int_equal(dec_search(b, sizeof(b)), PV_EFORMAT);
    b[8] = 0;
    assert_int_equal(dec_search(b, sizeof(b)), PV_EINVAL);
    /* the count is bounded before the length is even considered */
    put_u32(b + 8, PV_SHARD_BATCH_MAX + 1);
    assert_int_equal(dec_search(b, sizeof(b)), PV_ELIMIT);
    put_u32(b + 8, UINT32_MAX);
    assert_int_equal(dec_search(b, sizeof(b)), PV_ELIMIT);
    /* count must be 1 for single-vector messages */
    uint8_t e[PV_SHARD_ENROLL_REQ_SIZE];
    pv_shard_encode_enroll_req(e, 1, 0, 0, 1, v);
    e[8] = 2;
    assert_int_equal(dec_enroll(e, sizeof(e)), PV_EFORMAT);
}

static void test_value_errors(void **state)
{
    (void)state;
    float v[DIM];
    fill(v, DIM, 3);
    size_t len = PV_SHARD_SEARCH_REQ_SIZE(2);
    uint8_t *b = malloc(len), *good = malloc(len);
    float q[2 * DIM];
    fill(q, 2 * DIM, 5);
    pv_shard_encode_search_req(good, 0, 5, 2, q);
    size_t kpos = PV_SHARD_HDR_SIZE + 8, dpos = PV_SHARD_HDR_SIZE + 12, vpos = PV_SHARD_HDR_SIZE + 16;
    /* k */
    memcpy(b, good, len);
    put_u32(b + kpos, 0);
    assert_int_equal(dec_search(b, len), PV_EINVAL);
    put_u32(b + kpos, PV_SHARD_K_MAX + 1);
    assert_int_equal(dec_search(b, len), PV_ELIMIT);
    /* dimension: a wrong one is named as such, whatever the length */
    memcpy(b, good, len);
    put_u32(b + dpos, 64);
    assert_int_equal(dec_search(b, len), PV_EINVAL);
    assert_int_equal(dec_search(b, PV_SHARD_HDR_SIZE + 16 + 2 * 64 * 4), PV_EINVAL);
    /* NaN, +Inf, -Inf at the first, a middle and the last element of each query */
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    const size_t at[4] = {0, 77, DIM - 1, 2 * DIM - 1};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            memcpy(b, good, len);
            put_f32(b + vpos + 4 * at[j], bad[i]);
            assert_int_equal(dec_search(b, len), PV_EINVAL);
        }
    /* a quiet NaN with payload, and a signalling NaN */
    memcpy(b, good, len);
    put_u32(b + vpos + 8, 0x7fc12345);
    assert_int_equal(dec_search(b, len), PV_EINVAL);
    put_u32(b + vpos + 8, 0xff800001);
    assert_int_equal(dec_search(b, len), PV_EINVAL);
    /* nq*k bound: 1024 queries with k=65 would exceed 65536 results */
    size_t big = PV_SHARD_SEARCH_REQ_SIZE(PV_SHARD_BATCH_MAX);
    uint8_t *bb = calloc(1, big);
    float *zq = calloc(PV_SHARD_BATCH_MAX * DIM, sizeof(float));
    pv_shard_encode_search_req(bb, 0, 64, PV_SHARD_BATCH_MAX, zq);
    assert_int_equal(dec_search(bb, big), 0); /* the largest valid batch */
    assert_true(big <= PV_SHARD_BODY_MAX);
    put_u32(bb + kpos, 65);
    assert_int_equal(dec_search(bb, big), PV_ELIMIT);
    free(bb);
    free(zq);

    /* enroll / add: gid 0, quality NaN/Inf, vector NaN, dimension */
    uint8_t e[PV_SHARD_ENROLL_REQ_SIZE], a[PV_SHARD_ADD_REQ_SIZE], r[PV_SHARD_REMOVE_REQ_SIZE];
    pv_shard_encode_enroll_req(e, 0, 0, 0, 1, v);
    assert_int_equal(dec_enroll(e, sizeof(e)), PV_EINVAL);
    for (int i = 0; i < 3; i++) {
        pv_shard_encode_enroll_req(e, 1, 0, 0, bad[i], v);
        assert_int_equal(dec_enroll(e, sizeof(e)), PV_EINVAL);
        pv_shard_encode_add_req(a, 1, 0, bad[i], v);
        assert_int_equal(dec_add(a, sizeof(a)), PV_EINVAL);
        float w[DIM];
        memcpy(w, v, sizeof(w));
        w[DIM / 2] = bad[i];
        pv_shard_encode_enroll_req(e, 1, 0, 0, 1, w);
        assert_int_equal(dec_enroll(e, sizeof(e)), PV_EINVAL);
        pv_shard_encode_add_req(a, 1, 0, 1, w);
        assert_int_equal(dec_add(a, sizeof(a)), PV_EINVAL);
    }
    pv_shard_encode_enroll_req(e, 1, 0, 0, 1, v);
    put_u32(e + PV_SHARD_HDR_SIZE + 28, 127);
    assert_int_equal(dec_enroll(e, sizeof(e)), PV_EINVAL);
    pv_shard_encode_add_req(a, 0, 0, 1, v);
    assert_int_equal(dec_add(a, sizeof(a)), PV_EINVAL);
    pv_shard_encode_add_req(a, 1, 0, 1, v);
    put_u32(a + PV_SHARD_HDR_SIZE + 20, 256);
    assert_int_equal(dec_add(a, sizeof(a)), PV_EINVAL);
    pv_shard_encode_remove_req(r, 0);
    assert_int_equal(dec_remove(r, sizeof(r)), PV_EINVAL);
    free(b);
    free(good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),         cmocka_unit_test(test_search_roundtrip),
        cmocka_unit_test(test_write_roundtrips), cmocka_unit_test(test_responses),
        cmocka_unit_test(test_header_errors),  cmocka_unit_test(test_value_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
