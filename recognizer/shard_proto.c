/*
 * The shard wire protocol (see shard_proto.h). Encoders trust their caller;
 * decoders trust nothing: the length must match the layout the header
 * announces before any field is read, so no read can run past the buffer.
 * Byte order is handled byte by byte, so any alignment and any host work.
 */
#include "recognizer/shard_proto.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"

/* ---- little-endian primitives ---- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static void putf(uint8_t *p, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put32(p, v);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static float getf(const uint8_t *p)
{
    uint32_t v = get32(p);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

void pv_shard_read_floats(float *dst, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = getf(src + 4 * i);
}

static size_t put_header(uint8_t *buf, int type, uint32_t count)
{
    memcpy(buf, PV_SHARD_MAGIC, 4);
    put16(buf + 4, PV_SHARD_VERSION);
    put16(buf + 6, (uint16_t)type);
    put32(buf + 8, count);
    put32(buf + 12, 0);
    return PV_SHARD_HDR_SIZE;
}

static void put_vec(uint8_t *p, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        putf(p + 4 * i, v[i]);
}

/* ---- errors ---- */

static int fail(int code, char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static const char *type_name(int type)
{
    static const char *names[] = {"?", "search", "enroll", "add", "remove", "stats", "health"};
    int base = type & ~PV_SHARD_RESPONSE;
    return base >= 1 && base <= 6 ? names[base] : "unknown";
}

int pv_shard_peek(uint32_t *count, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    *count = 0;
    if (len < PV_SHARD_HDR_SIZE)
        return fail(PV_EFORMAT, err, errlen, "message of %zu bytes is shorter than the %d-byte header", len,
                    PV_SHARD_HDR_SIZE);
    if (memcmp(buf, PV_SHARD_MAGIC, 4) != 0)
        return fail(PV_EFORMAT, err, errlen, "bad magic (expected \"" PV_SHARD_MAGIC "\")");
    if (get16(buf + 4) != PV_SHARD_VERSION)
        return fail(PV_EFORMAT, err, errlen, "unsupported protocol version %u (expected %d)", get16(buf + 4),
                    PV_SHARD_VERSION);
    if (get32(buf + 12) != 0)
        return fail(PV_EFORMAT, err, errlen, "unknown header flags 0x%x", get32(buf + 12));
    int type = get16(buf + 6);
    int base = type & ~PV_SHARD_RESPONSE;
    if (base < PV_SHARD_SEARCH || base > PV_SHARD_HEALTH)
        return fail(PV_EFORMAT, err, errlen, "unknown message type %d", type);
    *count = get32(buf + 8);
    return type;
}

/* Header check: the message must be of `type`; *count receives its count. */
static int expect(const uint8_t *buf, size_t len, int type, uint32_t *count, char *err, size_t errlen)
{
    int got = pv_shard_peek(count, buf, len, err, errlen);
    if (got < 0)
        return got;
    if (got != type)
        return fail(PV_EFORMAT, err, errlen, "expected a %s %s, got a %s %s", type_name(type),
                    type & PV_SHARD_RESPONSE ? "response" : "request", type_name(got),
                    got & PV_SHARD_RESPONSE ? "response" : "request");
    return 0;
}

static int check_size(size_t len, size_t want, const char *what, char *err, size_t errlen)
{
    if (len != want)
        return fail(PV_EFORMAT, err, errlen, "%s is %zu bytes, its header announces %zu", what, len, want);
    return 0;
}

static int check_one(uint32_t count, const char *what, char *err, size_t errlen)
{
    if (count != 1)
        return fail(PV_EFORMAT, err, errlen, "%s must have count 1, got %u", what, count);
    return 0;
}

static int check_dim(uint32_t dim, char *err, size_t errlen)
{
    if (dim != PV_SHARD_DIM)
        return fail(PV_EINVAL, err, errlen, "vector dimension %u, this shard takes %d", dim, PV_SHARD_DIM);
    return 0;
}

/* Rejects NaN and +-Inf in n floats at p; `which` names the vector. */
static int check_finite(const uint8_t *p, size_t n, const char *which, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        /* exponent all ones = Inf or NaN; test the bits, not the float, so
         * signalling NaNs are never loaded into an FPU register */
        if ((get32(p + 4 * i) & 0x7f800000u) == 0x7f800000u)
            return fail(PV_EINVAL, err, errlen, "%s: element %zu is NaN or infinite", which, i % PV_SHARD_DIM);
    }
    return 0;
}

static int check_gid(uint64_t gid, char *err, size_t errlen)
{
    if (gid == 0)
        return fail(PV_EINVAL, err, errlen, "gid 0 is not a valid identity");
    return 0;
}

static int check_quality(const uint8_t *p, char *err, size_t errlen)
{
    if ((get32(p) & 0x7f800000u) == 0x7f800000u)
        return fail(PV_EINVAL, err, errlen, "quality is NaN or infinite");
    return 0;
}

/* ---- requests ---- */

size_t pv_shard_encode_search_req(uint8_t *buf, uint64_t owner, uint32_t k, uint32_t nq, const float *queries)
{
    assert(nq >= 1 && nq <= PV_SHARD_BATCH_MAX && k >= 1 && k <= PV_SHARD_K_MAX);
    uint8_t *p = buf + put_header(buf, PV_SHARD_SEARCH, nq);
    put64(p, owner);
    put32(p + 8, k);
    put32(p + 12, PV_SHARD_DIM);
    put_vec(p + 16, queries, (size_t)nq * PV_SHARD_DIM);
    return PV_SHARD_SEARCH_REQ_SIZE(nq);
}

int pv_shard_decode_search_req(pv_shard_search_req_t *out, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    uint32_t nq;
    int ret = expect(buf, len, PV_SHARD_SEARCH, &nq, err, errlen);
    if (ret != 0)
        return ret;
    if (nq == 0)
        return fail(PV_EINVAL, err, errlen, "search needs at least one query");
    if (nq > PV_SHARD_BATCH_MAX)
        return fail(PV_ELIMIT, err, errlen, "batch of %u queries exceeds the limit of %d", nq, PV_SHARD_BATCH_MAX);
    if (len < PV_SHARD_HDR_SIZE + 16)
        return fail(PV_EFORMAT, err, errlen, "search request truncated (%zu bytes)", len);
    const uint8_t *p = buf + PV_SHARD_HDR_SIZE;
    uint32_t k = get32(p + 8);
    if ((ret = check_dim(get32(p + 12), err, errlen)) != 0 ||
        (ret = check_size(len, PV_SHARD_SEARCH_REQ_SIZE(nq), "search request", err, errlen)) != 0)
        return ret;
    if (k == 0)
        return fail(PV_EINVAL, err, errlen, "k must be at least 1");
    if (k > PV_SHARD_K_MAX || (uint64_t)k * nq > PV_SHARD_RESULTS_MAX)
        return fail(PV_ELIMIT, err, errlen, "k=%u for %u queries exceeds the limits (k <= %d, nq*k <= %d)", k, nq,
                    PV_SHARD_K_MAX, PV_SHARD_RESULTS_MAX);
    if ((ret = check_finite(p + 16, (size_t)nq * PV_SHARD_DIM, "query", err, errlen)) != 0)
        return ret;
    out->owner = get64(p);
    out->k = k;
    out->nq = nq;
    out->vecs = p + 16;
    return 0;
}

size_t pv_shard_encode_enroll_req(uint8_t *buf, uint64_t gid, uint64_t owner, int64_t time_ms, float quality,
                                  const float *vec)
{
    uint8_t *p = buf + put_header(buf, PV_SHARD_ENROLL, 1);
    put64(p, gid);
    put64(p + 8, owner);
    put64(p + 16, (uint64_t)time_ms);
    putf(p + 24, quality);
    put32(p + 28, PV_SHARD_DIM);
    put_vec(p + 32, vec, PV_SHARD_DIM);
    return PV_SHARD_ENROLL_REQ_SIZE;
}

int pv_shard_decode_enroll_req(pv_shard_enroll_req_t *out, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    uint32_t count;
    int ret;
    if ((ret = expect(buf, len, PV_SHARD_ENROLL, &count, err, errlen)) != 0 ||
        (ret = check_one(count, "enroll request", err, errlen)) != 0)
        return ret;
    const uint8_t *p = buf + PV_SHARD_HDR_SIZE;
    if (len >= PV_SHARD_HDR_SIZE + 32 && (ret = check_dim(get32(p + 28), err, errlen)) != 0)
        return ret;
    if ((ret = check_size(len, PV_SHARD_ENROLL_REQ_SIZE, "enroll request", err, errlen)) != 0 ||
        (ret = check_gid(get64(p), err, errlen)) != 0 || (ret = check_quality(p + 24, err, errlen)) != 0 ||
        (ret = check_finite(p + 32, PV_SHARD_DIM, "vector", err, errlen)) != 0)
        return ret;
    out->gid = get64(p);
    out->owner = get64(p + 8);
    out->time_ms = (int64_t)get64(p + 16);
    out->quality = getf(p + 24);
    out->vec = p + 32;
    return 0;
}

size_t pv_shard_encode_add_req(uint8_t *buf, uint64_t gid, int64_t time_ms, float quality, const float *vec)
{
    uint8_t *p = buf + put_header(buf, PV_SHARD_ADD, 1);
    put64(p, gid);
    put64(p + 8, (uint64_t)time_ms);
    putf(p + 16, quality);
    put32(p + 20, PV_SHARD_DIM);
    put_vec(p + 24, vec, PV_SHARD_DIM);
    return PV_SHARD_ADD_REQ_SIZE;
}

int pv_shard_decode_add_req(pv_shard_add_req_t *out, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    uint32_t count;
    int ret;
    if ((ret = expect(buf, len, PV_SHARD_ADD, &count, err, errlen)) != 0 ||
        (ret = check_one(count, "add request", err, errlen)) != 0)
        return ret;
    const uint8_t *p = buf + PV_SHARD_HDR_SIZE;
    if (len >= PV_SHARD_HDR_SIZE + 24 && (ret = check_dim(get32(p + 20), err, errlen)) != 0)
        return ret;
    if ((ret = check_size(len, PV_SHARD_ADD_REQ_SIZE, "add request", err, errlen)) != 0 ||
        (ret = check_gid(get64(p), err, errlen)) != 0 || (ret = check_quality(p + 16, err, errlen)) != 0 ||
        (ret = check_finite(p + 24, PV_SHARD_DIM, "vector", err, errlen)) != 0)
        return ret;
    out->gid = get64(p);
    out->time_ms = (int64_t)get64(p + 8);
    out->quality = getf(p + 16);
    out->vec = p + 24;
    return 0;
}

size_t pv_shard_encode_remove_req(uint8_t *buf, uint64_t gid)
{
    put64(buf + put_header(buf, PV_SHARD_REMOVE, 1), gid);
    return PV_SHARD_REMOVE_REQ_SIZE;
}

int pv_shard_decode_remove_req(uint64_t *gid, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    uint32_t count;
    int ret;
    if ((ret = expect(buf, len, PV_SHARD_REMOVE, &count, err, errlen)) != 0 ||
        (ret = check_one(count, "remove request", err, errlen)) != 0 ||
        (ret = check_size(len, PV_SHARD_REMOVE_REQ_SIZE, "remove request", err, errlen)) != 0 ||
        (ret = check_gid(get64(buf + PV_SHARD_HDR_SIZE), err, errlen)) != 0)
        return ret;
    *gid = get64(buf + PV_SHARD_HDR_SIZE);
    return 0;
}

/* ---- responses ---- */

size_t pv_shard_encode_search_resp(uint8_t *buf, uint32_t nq, uint32_t k, const pv_gallery_hit_t *hits)
{
    uint8_t *p = buf + put_header(buf, PV_SHARD_SEARCH | PV_SHARD_RESPONSE, nq);
    put32(p, k);
    put32(p + 4, 0);
    p += 8;
    for (size_t i = 0; i < (size_t)nq * k; i++, p += 16) {
        int empty = hits[i].gid == 0;
        put64(p, hits[i].gid);
        put32(p + 8, empty ? 0 : hits[i].slot);
        putf(p + 12, empty ? INFINITY : hits[i].distance);
    }
    return PV_SHARD_SEARCH_RESP_SIZE(nq, k);
}

int pv_shard_decode_search_resp(pv_gallery_hit_t *hits, uint32_t nq, uint32_t k, const uint8_t *buf, size_t len,
                                char *err, size_t errlen)
{
    uint32_t count;
    int ret = expect(buf, len, PV_SHARD_SEARCH | PV_SHARD_RESPONSE, &count, err, errlen);
    if (ret != 0)
        return ret;
    if (count != nq || len < PV_SHARD_HDR_SIZE + 8 || get32(buf + PV_SHARD_HDR_SIZE) != k ||
        get32(buf + PV_SHARD_HDR_SIZE + 4) != 0)
        return fail(PV_EFORMAT, err, errlen, "search response does not answer %u queries with k=%u", nq, k);
    if ((ret = check_size(len, PV_SHARD_SEARCH_RESP_SIZE(nq, k), "search response", err, errlen)) != 0)
        return ret;
    const uint8_t *p = buf + PV_SHARD_HDR_SIZE + 8;
    for (size_t q = 0; q < nq; q++) {
        float prev = 0;
        for (size_t j = 0; j < k; j++, p += 16) {
            pv_gallery_hit_t *h = &hits[q * k + j];
            h->gid = get64(p);
            h->slot = get32(p + 8);
            h->distance = getf(p + 12);
            if (h->gid == 0 ? (h->slot != 0 || !(isinf(h->distance) && h->distance > 0))
                            : (h->slot >= PV_GALLERY_K_MAX || !isfinite(h->distance) || h->distance < 0))
                return fail(PV_EFORMAT, err, errlen, "search response: hit %zu of query %zu is malformed", j, q);
            if (h->distance < prev)
                return fail(PV_EFORMAT, err, errlen, "search response: query %zu is not sorted by distance", q);
            prev = h->distance;
        }
    }
    return 0;
}

size_t pv_shard_encode_gid_resp(uint8_t *buf, int type, uint64_t gid)
{
    assert(type == PV_SHARD_ENROLL || type == PV_SHARD_REMOVE);
    put64(buf + put_header(buf, type | PV_SHARD_RESPONSE, 1), gid);
    return PV_SHARD_GID_RESP_SIZE;
}

int pv_shard_decode_gid_resp(uint64_t *gid, int type, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    uint32_t count;
    int ret;
    if ((ret = expect(buf, len, type | PV_SHARD_RESPONSE, &count, err, errlen)) != 0 ||
        (ret = check_one(count, "response", err, errlen)) != 0 ||
        (ret = check_size(len, PV_SHARD_GID_RESP_SIZE, "response", err, errlen)) != 0)
        return ret;
    if (get64(buf + PV_SHARD_HDR_SIZE) == 0)
        return fail(PV_EFORMAT, err, errlen, "response carries gid 0");
    *gid = get64(buf + PV_SHARD_HDR_SIZE);
    return 0;
}

size_t pv_shard_encode_add_resp(uint8_t *buf, uint64_t gid, uint32_t slot)
{
    uint8_t *p = buf + put_header(buf, PV_SHARD_ADD | PV_SHARD_RESPONSE, 1);
    put64(p, gid);
    put32(p + 8, slot);
    put32(p + 12, 0);
    return PV_SHARD_ADD_RESP_SIZE;
}

int pv_shard_decode_add_resp(uint64_t *gid, uint32_t *slot, const uint8_t *buf, size_t len, char *err,
                             size_t errlen)
{
    uint32_t count;
    int ret;
    if ((ret = expect(buf, len, PV_SHARD_ADD | PV_SHARD_RESPONSE, &count, err, errlen)) != 0 ||
        (ret = check_one(count, "add response", err, errlen)) != 0 ||
        (ret = check_size(len, PV_SHARD_ADD_RESP_SIZE, "add response", err, errlen)) != 0)
        return ret;
    const uint8_t *p = buf + PV_SHARD_HDR_SIZE;
    uint32_t s = get32(p + 8);
    if (get64(p) == 0 || (s >= PV_GALLERY_K_MAX && s != PV_GALLERY_NOSLOT) || get32(p + 12) != 0)
        return fail(PV_EFORMAT, err, errlen, "malformed add response");
    *gid = get64(p);
    *slot = s;
    return 0;
}

size_t pv_shard_encode_stats_resp(uint8_t *buf, const pv_shard_stats_t *st)
{
    uint8_t *p = buf + put_header(buf, PV_SHARD_STATS | PV_SHARD_RESPONSE, 1);
    const uint64_t v[6] = {st->identities, st->exemplars, st->owners, st->seq, st->snapshot_seq, st->lmdb_bytes};
    for (int i = 0; i < 6; i++)
        put64(p + 8 * i, v[i]);
    put32(p + 48, st->dim);
    put32(p + 52, st->k);
    put32(p + 56, st->shared_approx);
    put32(p + 60, 0);
    return PV_SHARD_STATS_RESP_SIZE;
}

int pv_shard_decode_stats_resp(pv_shard_stats_t *st, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    uint32_t count;
    int ret;
    if ((ret = expect(buf, len, PV_SHARD_STATS | PV_SHARD_RESPONSE, &count, err, errlen)) != 0 ||
        (ret = check_one(count, "stats response", err, errlen)) != 0 ||
        (ret = check_size(len, PV_SHARD_STATS_RESP_SIZE, "stats response", err, errlen)) != 0)
        return ret;
    const uint8_t *p = buf + PV_SHARD_HDR_SIZE;
    pv_shard_stats_t s = {
        .identities = get64(p),
        .exemplars = get64(p + 8),
        .owners = get64(p + 16),
        .seq = get64(p + 24),
        .snapshot_seq = get64(p + 32),
        .lmdb_bytes = get64(p + 40),
        .dim = get32(p + 48),
        .k = get32(p + 52),
        .shared_approx = get32(p + 56),
    };
    if (s.dim != PV_SHARD_DIM)
        return fail(PV_EINVAL, err, errlen, "shard has dimension %u, expected %d", s.dim, PV_SHARD_DIM);
    if (s.k == 0 || s.k > PV_GALLERY_K_MAX || s.shared_approx > 1 || get32(p + 60) != 0 ||
        s.exemplars < s.identities)
        return fail(PV_EFORMAT, err, errlen, "malformed stats response");
    *st = s;
    return 0;
}

size_t pv_shard_encode_health_resp(uint8_t *buf, uint64_t identities)
{
    uint8_t *p = buf + put_header(buf, PV_SHARD_HEALTH | PV_SHARD_RESPONSE, 1);
    put32(p, 1);
    put32(p + 4, 0);
    put64(p + 8, identities);
    return PV_SHARD_HEALTH_RESP_SIZE;
}

int pv_shard_decode_health_resp(uint64_t *identities, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    uint32_t count;
    int ret;
    if ((ret = expect(buf, len, PV_SHARD_HEALTH | PV_SHARD_RESPONSE, &count, err, errlen)) != 0 ||
        (ret = check_one(count, "health response", err, errlen)) != 0 ||
        (ret = check_size(len, PV_SHARD_HEALTH_RESP_SIZE, "health response", err, errlen)) != 0)
        return ret;
    const uint8_t *p = buf + PV_SHARD_HDR_SIZE;
    if (get32(p) != 1 || get32(p + 4) != 0)
        return fail(PV_EFORMAT, err, errlen, "malformed health response");
    *identities = get64(p + 8);
    return 0;
}
