/*
 * The identity gallery: one partition of anonymous identities. Each identity
 * (gid, 64-bit, never 0) keeps up to K exemplar embeddings with a quality and
 * a time, and optionally an owner tenant (0 = shared, network mode). LMDB is
 * the truth; the FAISS indexes in memory are rebuilt from it, or loaded from
 * a snapshot tagged with the LMDB change counter and caught up from LMDB's
 * change log. A write returns 0 only after its LMDB transaction committed.
 *
 * Thread safety: every function may be called from any thread. Searches,
 * get, list and stat run concurrently (read lock); writes (enroll, add,
 * remove, snapshot) are serialised by one writer mutex and hold the index
 * write lock only while they change the in-memory indexes, so searches keep
 * running during LMDB commits and index rebuilds. Design notes: gallery.c.
 */
#ifndef PV_RECOGNIZER_GALLERY_H
#define PV_RECOGNIZER_GALLERY_H

#include <stddef.h>
#include <stdint.h>

#define PV_GALLERY_DIM_DEFAULT 128
#define PV_GALLERY_K_DEFAULT 8
#define PV_GALLERY_K_MAX 16           /* exemplars per identity, hard bound */
#define PV_GALLERY_SEARCH_K_MAX 1024  /* neighbours per query */
#define PV_GALLERY_BATCH_MAX 4096     /* queries per search, vectors per enroll batch */
#define PV_GALLERY_NOSLOT UINT32_MAX  /* pv_gallery_add: the new exemplar was not kept */

typedef struct pv_gallery pv_gallery_t;

typedef struct {
    const char *dir;        /* LMDB environment directory (must exist); snapshot file lives there too */
    uint32_t dim;           /* embedding dimension, default 128; fixed at creation, checked at open */
    uint32_t k;             /* exemplars kept per identity, 1..PV_GALLERY_K_MAX, default 8 */
    size_t map_size;        /* LMDB map size in bytes, default 4 GiB */
    int durable;            /* 1 (default): each commit waits for fsync. 0: MDB_NOSYNC, a commit
                               survives a killed process but not a machine crash or power loss */
    size_t exact_max;       /* an index holding more exemplars than this becomes IVF, default 20000 */
    uint32_t ivf_nlist;     /* IVF lists; 0 (default) = automatic, about 4*sqrt(n) at build time */
    uint32_t ivf_nprobe;    /* lists visited per query, default 48 */
    uint32_t ivf_regrow;    /* rebuild (retrain) the IVF when it has grown this many times, default 4 */
    int snapshot_on_close;  /* 1: pv_gallery_close() writes a snapshot first (default 0) */
} pv_gallery_config_t;

/* One search result. `distance` is the Euclidean (L2, NOT squared) distance
 * between the query and the identity's closest exemplar `slot`. */
typedef struct {
    uint64_t gid; /* 0 marks an empty result (fewer than k identities) */
    uint32_t slot;
    float distance;
} pv_gallery_hit_t;

typedef struct {
    uint64_t gid;
    uint64_t owner;           /* 0 = shared */
    int64_t created_ms;       /* unix milliseconds */
    int64_t updated_ms;
    uint32_t n_exemplars;
    uint32_t slot_mask;       /* bit s set = slot s holds an exemplar */
    float quality[PV_GALLERY_K_MAX];
    int64_t time_ms[PV_GALLERY_K_MAX];
} pv_gallery_identity_t;

typedef struct {
    uint64_t identities;
    uint64_t exemplars;
    uint64_t owners;          /* distinct owners with an index, including shared (0) */
    uint64_t seq;             /* LMDB change counter (one per committed write) */
    uint64_t snapshot_seq;    /* change counter of the snapshot loaded or written last, 0 = none */
    int shared_approx;        /* 1 when the shared index is IVF, 0 when exact */
    size_t lmdb_bytes;        /* bytes of data.mdb in use (last page * page size) */
    int opened_from_snapshot; /* 1 when open() loaded a snapshot rather than rebuilding */
} pv_gallery_stat_t;

/* Fills `cfg` with the defaults above; dir is NULL. */
void pv_gallery_config_init(pv_gallery_config_t *cfg);

/* Opens (creating if empty) the gallery in cfg->dir. Loads the snapshot when
 * it matches this environment and the change log still covers it, else
 * rebuilds every index from LMDB. *out is owned by the caller
 * (pv_gallery_close). Errors: PV_EINVAL (bad config, dim or k differ from the
 * stored ones), PV_ESTORE/PV_EFORMAT (LMDB), PV_EINDEX (FAISS), PV_ENOMEM. */
int pv_gallery_open(pv_gallery_t **out, const pv_gallery_config_t *cfg);

/* Closes the gallery (after a snapshot when cfg.snapshot_on_close). NULL is a
 * no-op. No other call may be running or start. */
void pv_gallery_close(pv_gallery_t *g);

/* k-nearest identities for each of `nq` queries (row-major nq x dim floats)
 * among the identities of `owner` only (0 = the shared gallery; an owner's
 * identities are in their own index and never scanned otherwise). Results
 * are merged per identity (its best exemplar), sorted by distance; hits has
 * nq*k entries, query q's at hits[q*k]; missing ones have gid 0 and distance
 * INFINITY. Errors: PV_EINVAL (NULL, nq or k out of bounds, NaN/Inf in a
 * query), PV_EINDEX. An owner with no identities yields empty results. */
int pv_gallery_search(pv_gallery_t *g, pv_gallery_hit_t *hits, uint64_t owner, size_t nq, const float *queries,
                      size_t k);

/* Enrolls a new identity with one exemplar. gid_req 0 = allocate a random
 * unused gid (unique: checked in the committing transaction; durable: it is
 * written with it); otherwise use gid_req (PV_EEXIST when taken). *gid_out
 * receives the gid once committed. Errors: PV_EINVAL (NaN/Inf, quality not
 * finite), PV_EEXIST, PV_ELIMIT (LMDB map full), PV_ESTORE, PV_EINDEX. */
int pv_gallery_enroll(pv_gallery_t *g, uint64_t *gid_out, uint64_t gid_req, uint64_t owner, const float *vec,
                      float quality);

/* Enrolls n (1..PV_GALLERY_BATCH_MAX) new identities, one exemplar each, in
 * one transaction (group commit): all or none. gids_out has n entries. */
int pv_gallery_enroll_batch(pv_gallery_t *g, uint64_t *gids_out, size_t n, uint64_t owner, const float *vecs,
                            const float *qualities);

/* Adds an exemplar to identity `gid`. While it has fewer than K, the new one
 * takes a free slot. When full, the most redundant of the K+1 (the one whose
 * nearest other exemplar is closest; ties: the one closer to all others,
 * then the lower quality) is dropped: an old one is replaced in its slot, or
 * the new one is not stored and *slot_out is PV_GALLERY_NOSLOT (still 0
 * returned). Errors: PV_EINVAL, PV_ENOTFOUND (unknown gid), PV_ESTORE,
 * PV_EINDEX. slot_out may be NULL. */
int pv_gallery_add(pv_gallery_t *g, uint32_t *slot_out, uint64_t gid, const float *vec, float quality);

/* Erases identity `gid`: its exemplars leave the index (an exact index's
 * copy is zeroed first), and its LMDB records are zeroed then deleted in one
 * transaction. After the commit, every remaining copy of any 32-byte piece of
 * its vectors in data.mdb (LMDB's copy-on-write leaves old page versions in
 * free pages and node remnants in page gaps) and in the snapshot file is
 * overwritten with zeros and synced before this returns 0; pieces that a
 * live exemplar holds too (a duplicate vector) are kept. Costs one pass over
 * both files (about 1 s per GB). A crash between the commit and the scrub
 * leaves those stale copies in free pages until LMDB reuses them.
 * Errors: PV_ENOTFOUND, PV_ESTORE, PV_EIO. */
int pv_gallery_remove(pv_gallery_t *g, uint64_t gid);

/* Copies identity `gid`'s record into *out. Errors: PV_ENOTFOUND. */
int pv_gallery_get(pv_gallery_t *g, pv_gallery_identity_t *out, uint64_t gid);

/* Copies an identity's exemplar vector (dim floats) into vec. */
int pv_gallery_get_exemplar(pv_gallery_t *g, float *vec, uint64_t gid, uint32_t slot);

/* Lists gids in increasing order, starting after `after` (0 = from the
 * start), at most max of them; *n receives how many were written. */
int pv_gallery_list(pv_gallery_t *g, uint64_t *gids, size_t max, size_t *n, uint64_t after);

/* Fills *st. */
int pv_gallery_stat(pv_gallery_t *g, pv_gallery_stat_t *st);

/* Writes the in-memory indexes to <dir>/index.snap (temporary file, fsync,
 * rename), tagged with the current change counter, then trims the change
 * log up to it. Blocks writers (not searches) while it runs. */
int pv_gallery_snapshot(pv_gallery_t *g);

#endif
