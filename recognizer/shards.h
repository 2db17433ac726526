/*
 * The shard client: one interface over S gallery partitions, whether they
 * are in this process (the embedded default: S pv_gallery partitions in S
 * subdirectories) or remote privid-shard processes reached over HTTP/1.1
 * with the binary protocol of shard_proto.h. Always true: a gid lives in
 * shard pv_jump_hash(gid, S) and only there; enroll, add and remove go to
 * that shard and never anywhere else (a down shard refuses with
 * PV_EUNAVAIL, it is never re-routed); a search goes to every shard and the
 * best k per query are merged; an answer missing a shard says so (degraded).
 *
 * Thread safety: every function may be called from any thread at once. The
 * remote implementation blocks the calling thread (plain non-blocking
 * sockets driven by poll() up to the per-shard timeout), so call it from a
 * worker thread, never from an event loop.
 */
#ifndef PV_RECOGNIZER_SHARDS_H
#define PV_RECOGNIZER_SHARDS_H

#include <stddef.h>
#include <stdint.h>

#include "recognizer/gallery.h"
#include "recognizer/shard_proto.h"

#define PV_SHARDS_MAX 64 /* shards per client */

typedef struct pv_shards pv_shards_t;

typedef struct {
    const char *const *urls; /* count base URLs, "http://HOST:PORT" (or "HOST:PORT"); shard i = urls[i] */
    uint32_t count;          /* 1..PV_SHARDS_MAX */
    int timeout_ms;          /* per call to a shard: connect + send + answer; default 1000 */
    int down_ms;             /* after a transport failure or timeout, the shard is considered down
                                and not tried for this long; 0 = always try (each call then waits
                                for a stopped shard's full timeout) */
    int idle_max;            /* idle keep-alive connections kept per shard, default 8 */
} pv_shards_remote_config_t;

/* What a search reached. */
typedef struct {
    int degraded;         /* 1: some shard failed or timed out; the hits cover the others only */
    uint32_t failed;      /* how many shards failed */
    uint64_t failed_mask; /* bit i set: shard i failed */
} pv_shards_info_t;

/* Monotonic counters since open (for metrics). */
typedef struct {
    uint64_t searches;       /* pv_shards_search calls that reached at least one shard */
    uint64_t degraded;       /* of those, answers marked degraded */
    uint64_t shard_failures; /* calls to one shard that failed (transport, timeout, 5xx, bad answer) */
    uint64_t unavailable;    /* writes refused with PV_EUNAVAIL because their shard was down */
} pv_shards_counters_t;

/* Jump consistent hash (Lamping and Veach, 2014): the bucket in
 * [0, buckets) of `key`. Balanced, and when buckets grows from n to n+1 a
 * key either stays or moves to bucket n. buckets must be >= 1. */
int32_t pv_jump_hash(uint64_t key, int32_t buckets);

/* Opens S = count in-process partitions in <dir>/shard-<i> (created when
 * missing), each with the settings of `tmpl` (its dir is ignored; NULL =
 * gallery defaults). *out is the caller's (pv_shards_close). Errors: those
 * of pv_gallery_open, PV_EINVAL, PV_ENOMEM, -errno (mkdir). */
int pv_shards_open_local(pv_shards_t **out, const char *dir, uint32_t count, const pv_gallery_config_t *tmpl);

/* A client of `cfg->count` remote shards. Nothing is connected yet (a
 * shard that is down at open is only noticed when called). Errors:
 * PV_EINVAL (bad URL or count, unresolvable host), PV_ENOMEM. */
int pv_shards_open_remote(pv_shards_t **out, const pv_shards_remote_config_t *cfg);

/* Closes the partitions or the pooled connections. NULL is a no-op. No
 * other call may be running. */
void pv_shards_close(pv_shards_t *s);

uint32_t pv_shards_count(const pv_shards_t *s);

/* The shard that holds (or would hold) gid: pv_jump_hash(gid, S). */
uint32_t pv_shards_shard_of(const pv_shards_t *s, uint64_t gid);

/* k-nearest identities of `owner` for nq queries (row-major nq x 128), over
 * every shard: hits has nq*k entries as in pv_gallery_search (query q's at
 * hits[q*k], sorted by distance, empty entries gid 0 / +Inf). Bounds are
 * the protocol's whatever the implementation: 1 <= nq <= PV_SHARD_BATCH_MAX,
 * 1 <= k <= PV_SHARD_K_MAX, nq*k <= PV_SHARD_RESULTS_MAX. `info` (may be
 * NULL) says which shards failed; with a degraded answer the caller must not
 * conclude that a face is new (it may live on the missing shard). Returns 0
 * (possibly degraded), PV_EINVAL/PV_ELIMIT (bad input), or PV_EUNAVAIL when
 * no shard answered. */
int pv_shards_search(pv_shards_t *s, pv_gallery_hit_t *hits, pv_shards_info_t *info, uint64_t owner, size_t nq,
                     const float *queries, size_t k);

/* Enrolls a new identity in shard pv_jump_hash(gid, S). gid 0 = draw a random
 * unused-looking 64-bit gid (retried on PV_EEXIST a few times). *gid_out
 * (may be NULL) receives it once committed. time_ms is the observation time
 * (carried by the protocol; partitions currently stamp their own commit
 * time). Errors: PV_EUNAVAIL (that shard is down or timed out: nothing is
 * enrolled anywhere else; after a timeout the outcome is unknown, and
 * retrying the same gid answers PV_EEXIST if it had committed), PV_EEXIST,
 * PV_EINVAL, and the partition's errors. */
int pv_shards_enroll(pv_shards_t *s, uint64_t *gid_out, uint64_t gid, uint64_t owner, const float *vec,
                     float quality, int64_t time_ms);

/* Adds an exemplar to gid in its shard (pv_gallery_add semantics; slot_out
 * may be NULL). Errors: PV_ENOTFOUND, PV_EUNAVAIL, PV_EINVAL, ... */
int pv_shards_add(pv_shards_t *s, uint32_t *slot_out, uint64_t gid, const float *vec, float quality,
                  int64_t time_ms);

/* Erases gid from its shard (pv_gallery_remove semantics). Errors:
 * PV_ENOTFOUND, PV_EUNAVAIL, ... */
int pv_shards_remove(pv_shards_t *s, uint64_t gid);

/* Statistics of shard `shard` (< S). Errors: PV_EINVAL, PV_EUNAVAIL. */
int pv_shards_stat(pv_shards_t *s, pv_shard_stats_t *st, uint32_t shard);

/* Copies the counters. */
void pv_shards_counters(pv_shards_t *s, pv_shards_counters_t *out);

#endif
