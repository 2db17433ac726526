/*
 * libFuzzer target for the shard wire protocol (recognizer/shard_proto.h):
 * any bytes go to every decoder. Oracle: whatever a decoder accepts, the
 * matching encoder must write back byte for byte (the layout is canonical:
 * one valid encoding per message), and every rejection must say why.
 * Seeds: corpus_shard_proto/, written by gen_corpus_shard_proto.py.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "recognizer/shard_proto.h"

static void same(const uint8_t *a, const uint8_t *b, size_t len)
{
    if (memcmp(a, b, len) != 0)
        abort();
}

static void said_why(int rc, const char *err)
{
    if (rc != 0 && err[0] == '\0')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[PV_SHARD_BODY_MAX];
    static float vecs[PV_SHARD_BATCH_MAX * PV_SHARD_DIM];
    static pv_gallery_hit_t hits[PV_SHARD_RESULTS_MAX];
    char err[256];
    int rc;
    if (size > PV_SHARD_BODY_MAX)
        return 0;

    pv_shard_search_req_t sr;
    err[0] = '\0';
    rc = pv_shard_decode_search_req(&sr, data, size, err, sizeof(err));
    said_why(rc, err);
    if (rc == 0) {
        if (sr.nq == 0 || sr.nq > PV_SHARD_BATCH_MAX || sr.k == 0 || sr.k > PV_SHARD_K_MAX ||
            (size_t)sr.nq * sr.k > PV_SHARD_RESULTS_MAX)
            abort();
        pv_shard_read_floats(vecs, sr.vecs, (size_t)sr.nq * PV_SHARD_DIM);
        same(out, data, pv_shard_encode_search_req(out, sr.owner, sr.k, sr.nq, vecs));
    }

    pv_shard_enroll_req_t er;
    err[0] = '\0';
    rc = pv_shard_decode_enroll_req(&er, data, size, err, sizeof(err));
    said_why(rc, err);
    if (rc == 0) {
        pv_shard_read_floats(vecs, er.vec, PV_SHARD_DIM);
        same(out, data, pv_shard_encode_enroll_req(out, er.gid, er.owner, er.time_ms, er.quality, vecs));
    }

    pv_shard_add_req_t ar;
    err[0] = '\0';
    rc = pv_shard_decode_add_req(&ar, data, size, err, sizeof(err));
    said_why(rc, err);
    if (rc == 0) {
        pv_shard_read_floats(vecs, ar.vec, PV_SHARD_DIM);
        same(out, data, pv_shard_encode_add_req(out, ar.gid, ar.time_ms, ar.quality, vecs));
    }

    uint64_t gid;
    uint32_t slot, count;
    err[0] = '\0';
    rc = pv_shard_decode_remove_req(&gid, data, size, err, sizeof(err));
    said_why(rc, err);
    if (rc == 0)
        same(out, data, pv_shard_encode_remove_req(out, gid));

    /* responses: a search response is decoded for the (nq, k) its header and
     * first field announce, as the client would after asking for them */
    if (pv_shard_peek(&count, data, size, NULL, 0) == (PV_SHARD_SEARCH | PV_SHARD_RESPONSE) &&
        size >= PV_SHARD_HDR_SIZE + 8) {
        uint32_t k = (uint32_t)data[16] | (uint32_t)data[17] << 8 | (uint32_t)data[18] << 16 |
                     (uint32_t)data[19] << 24;
        if (count > 0 && k > 0 && (uint64_t)count * k <= PV_SHARD_RESULTS_MAX) {
            err[0] = '\0';
            rc = pv_shard_decode_search_resp(hits, count, k, data, size, err, sizeof(err));
            said_why(rc, err);
            if (rc == 0)
                same(out, data, pv_shard_encode_search_resp(out, count, k, hits));
        }
    }
    for (int type = PV_SHARD_ENROLL; type <= PV_SHARD_REMOVE; type += PV_SHARD_REMOVE - PV_SHARD_ENROLL) {
        if (pv_shard_decode_gid_resp(&gid, type, data, size, NULL, 0) == 0)
            same(out, data, pv_shard_encode_gid_resp(out, type, gid));
    }
    if (pv_shard_decode_add_resp(&gid, &slot, data, size, NULL, 0) == 0)
        same(out, data, pv_shard_encode_add_resp(out, gid, slot));
    pv_shard_stats_t st;
    if (pv_shard_decode_stats_resp(&st, data, size, NULL, 0) == 0)
        same(out, data, pv_shard_encode_stats_resp(out, &st));
    uint64_t ids;
    if (pv_shard_decode_health_resp(&ids, data, size, NULL, 0) == 0)
        same(out, data, pv_shard_encode_health_resp(out, ids));
    return 0;
}
