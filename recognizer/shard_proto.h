/*
 * The shard wire protocol: compact binary bodies between the shard client
 * (recognizer/shards.c) and privid-shard, so vectors never travel as JSON
 * floats. Every message is a 16-byte header followed by a fixed layout whose
 * size follows from the header alone; a message is valid only when its
 * length is exactly that size. All integers and floats are little-endian.
 *
 *   header  magic "PVSH" | version u16 (1) | type u16 | count u32 | flags u32 (0)
 *
 *   SEARCH  req  count=nq  owner u64 | k u32 | dim u32 | nq*dim f32
 *           resp count=nq  k u32 | 0 u32 | nq*k * (gid u64 | slot u32 | distance f32)
 *   ENROLL  req  count=1   gid u64 | owner u64 | time_ms i64 | quality f32 | dim u32 | dim f32
 *           resp count=1   gid u64
 *   ADD     req  count=1   gid u64 | time_ms i64 | quality f32 | dim u32 | dim f32
 *           resp count=1   gid u64 | slot u32 (0xffffffff: not kept) | 0 u32
 *   REMOVE  req  count=1   gid u64
 *           resp count=1   gid u64
 *   STATS   resp count=1   identities, exemplars, owners, seq, snapshot_seq, lmdb_bytes u64 |
 *                          dim u32 | k u32 | shared_approx u32 | 0 u32
 *   HEALTH  resp count=1   serving u32 (1) | 0 u32 | identities u64
 *
 * A response's type is its request's type | PV_SHARD_RESPONSE. Decoding is
 * strict: wrong magic, version, type, flags or length are PV_EFORMAT;
 * counts or k past the bounds below are PV_ELIMIT; a dimension other than
 * PV_SHARD_DIM, gid 0, k 0, and NaN/Inf in any vector or quality are
 * PV_EINVAL. Each decoder also writes a one-line reason. Decoders never
 * allocate: vectors stay in the caller's buffer (unaligned) and are copied
 * out with pv_shard_read_floats().
 */
#ifndef PV_RECOGNIZER_SHARD_PROTO_H
#define PV_RECOGNIZER_SHARD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "recognizer/gallery.h"

#define PV_SHARD_MAGIC "PVSH"
#define PV_SHARD_VERSION 1
#define PV_SHARD_DIM 128
#define PV_SHARD_HDR_SIZE 16
#define PV_SHARD_BATCH_MAX 1024      /* queries per search request */
#define PV_SHARD_K_MAX 256           /* neighbours per query */
#define PV_SHARD_RESULTS_MAX 65536   /* nq * k per search */
#define PV_SHARD_BODY_MAX (1u << 20) /* bytes in any request or response (1 MiB) */
#define PV_SHARD_CONTENT_TYPE "application/x-privid-shard"

/* What a message is; a response ORs PV_SHARD_RESPONSE into its request's type. */
enum {
    PV_SHARD_SEARCH = 1,
    PV_SHARD_ENROLL = 2,
    PV_SHARD_ADD = 3,
    PV_SHARD_REMOVE = 4,
    PV_SHARD_STATS = 5,
    PV_SHARD_HEALTH = 6,
    PV_SHARD_RESPONSE = 0x80,
};

/* Sizes of each message, header included. */
#define PV_SHARD_VEC_BYTES ((size_t)PV_SHARD_DIM * 4)
#define PV_SHARD_SEARCH_REQ_SIZE(nq) (PV_SHARD_HDR_SIZE + 16 + (size_t)(nq) * PV_SHARD_VEC_BYTES)
#define PV_SHARD_SEARCH_RESP_SIZE(nq, k) (PV_SHARD_HDR_SIZE + 8 + (size_t)(nq) * (size_t)(k) * 16)
#define PV_SHARD_ENROLL_REQ_SIZE (PV_SHARD_HDR_SIZE + 32 + PV_SHARD_VEC_BYTES)
#define PV_SHARD_ADD_REQ_SIZE (PV_SHARD_HDR_SIZE + 24 + PV_SHARD_VEC_BYTES)
#define PV_SHARD_REMOVE_REQ_SIZE (PV_SHARD_HDR_SIZE + 8)
#define PV_SHARD_GID_RESP_SIZE (PV_SHARD_HDR_SIZE + 8) /* ENROLL and REMOVE responses */
#define PV_SHARD_ADD_RESP_SIZE (PV_SHARD_HDR_SIZE + 16)
#define PV_SHARD_STATS_RESP_SIZE (PV_SHARD_HDR_SIZE + 64)
#define PV_SHARD_HEALTH_RESP_SIZE (PV_SHARD_HDR_SIZE + 16)

/* Decoded requests. `vecs`/`vec` point into the decoded buffer: raw
 * little-endian float32, already checked finite; copy them out with
 * pv_shard_read_floats(). */
typedef struct {
    uint64_t owner;
    uint32_t k, nq;
    const uint8_t *vecs; /* nq * PV_SHARD_DIM floats */
} pv_shard_search_req_t;

typedef struct {
    uint64_t gid, owner; /* gid != 0 */
    int64_t time_ms;     /* the client's time of the observation */
    float quality;
    const uint8_t *vec;
} pv_shard_enroll_req_t;

typedef struct {
    uint64_t gid;
    int64_t time_ms;
    float quality;
    const uint8_t *vec;
} pv_shard_add_req_t;

typedef struct {
    uint64_t identities, exemplars, owners, seq, snapshot_seq, lmdb_bytes;
    uint32_t dim, k, shared_approx;
} pv_shard_stats_t;

/* The type of a message after checking its header (magic, version, flags
 * zero); *count receives the header count. Returns the type (> 0) or
 * PV_EFORMAT. */
int pv_shard_peek(uint32_t *count, const uint8_t *buf, size_t len, char *err, size_t errlen);

/* Copies n little-endian float32 values from src (any alignment). */
void pv_shard_read_floats(float *dst, const uint8_t *src, size_t n);

/* ---- encoders: each writes exactly its message's size into buf, which the
 * caller sized with the macros above, and returns that size. Arguments are
 * the caller's to get right (asserted); the decoders check the peer's. ---- */

size_t pv_shard_encode_search_req(uint8_t *buf, uint64_t owner, uint32_t k, uint32_t nq, const float *queries);
size_t pv_shard_encode_enroll_req(uint8_t *buf, uint64_t gid, uint64_t owner, int64_t time_ms, float quality,
                                  const float *vec);
size_t pv_shard_encode_add_req(uint8_t *buf, uint64_t gid, int64_t time_ms, float quality, const float *vec);
size_t pv_shard_encode_remove_req(uint8_t *buf, uint64_t gid);
/* hits: nq*k entries (a gid 0 entry is empty; its distance is sent as +Inf) */
size_t pv_shard_encode_search_resp(uint8_t *buf, uint32_t nq, uint32_t k, const pv_gallery_hit_t *hits);
/* type: PV_SHARD_ENROLL or PV_SHARD_REMOVE */
size_t pv_shard_encode_gid_resp(uint8_t *buf, int type, uint64_t gid);
size_t pv_shard_encode_add_resp(uint8_t *buf, uint64_t gid, uint32_t slot);
size_t pv_shard_encode_stats_resp(uint8_t *buf, const pv_shard_stats_t *st);
size_t pv_shard_encode_health_resp(uint8_t *buf, uint64_t identities);

/* ---- decoders: 0 or a negative PV_E* code (see the top of this file), with
 * a reason in err (may be NULL). Nothing is allocated. ---- */

int pv_shard_decode_search_req(pv_shard_search_req_t *out, const uint8_t *buf, size_t len, char *err, size_t errlen);
int pv_shard_decode_enroll_req(pv_shard_enroll_req_t *out, const uint8_t *buf, size_t len, char *err, size_t errlen);
int pv_shard_decode_add_req(pv_shard_add_req_t *out, const uint8_t *buf, size_t len, char *err, size_t errlen);
int pv_shard_decode_remove_req(uint64_t *gid, const uint8_t *buf, size_t len, char *err, size_t errlen);

/* Decodes a search response that must answer exactly (nq, k) into hits
 * (nq*k entries). A hit with gid 0 must carry distance +Inf; any other
 * distance must be finite and >= 0; in each query, distances never decrease. */
int pv_shard_decode_search_resp(pv_gallery_hit_t *hits, uint32_t nq, uint32_t k, const uint8_t *buf, size_t len,
                                char *err, size_t errlen);
/* type: PV_SHARD_ENROLL or PV_SHARD_REMOVE; the gid must be nonzero. */
int pv_shard_decode_gid_resp(uint64_t *gid, int type, const uint8_t *buf, size_t len, char *err, size_t errlen);
int pv_shard_decode_add_resp(uint64_t *gid, uint32_t *slot, const uint8_t *buf, size_t len, char *err,
                             size_t errlen);
int pv_shard_decode_stats_resp(pv_shard_stats_t *st, const uint8_t *buf, size_t len, char *err, size_t errlen);
int pv_shard_decode_health_resp(uint64_t *identities, const uint8_t *buf, size_t len, char *err, size_t errlen);

#endif
