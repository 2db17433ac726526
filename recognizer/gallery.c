/*
 * The identity gallery (see gallery.h): LMDB is the truth, FAISS (C API) the
 * in-memory search structure. Always true between calls: every exemplar in
 * LMDB is in exactly one index (its owner's), under FAISS id
 * fid = iid * PV_GALLERY_K_MAX + slot, and nothing else is in any index.
 *
 * LMDB databases: meta (dim, k, uuid, seq, log_floor, next_iid),
 * identities (gid BE -> iid, owner, times, slot mask), exemplars (fid BE ->
 * gid, owner, time, quality, vector), log (seq BE -> fid, owner: which
 * exemplar a committed write touched; no vector bytes). Each write
 * transaction increments seq; the snapshot file records the seq it reflects
 * and open() replays the log after it (remove fid, re-add if still in LMDB).
 *
 * Indexes: one per owner (0 = shared), so an isolated tenant's search scans
 * only its own identities (the FAISS 1.7.3 C API has no search-time
 * IDSelector). Exact IDMap2,Flat up to exact_max exemplars, then IVFn,Flat
 * retrained from LMDB each time it grows ivf_regrow-fold. Why IVF and not
 * HNSW: FAISS HNSW cannot remove ids (erasure would only hide a vector) and
 * its efSearch is reachable only through ParameterSpace; IVF-Flat removes
 * ids, keeps raw vectors (so snapshot bytes can be scrubbed) and measured
 * well on face-like data (tests/bench/recognizer).
 */
#include "recognizer/gallery.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include "common/codec.h"
#include "common/error.h"

#define KMAX PV_GALLERY_K_MAX
#define EX_HDR 32  /* exemplar value: gid u64, owner u64, time i64, quality f32, pad u32, then the vector */
#define ID_SIZE 40 /* identity value: iid u64, owner u64, created i64, updated i64, slot mask u32, pad u32 */
#define SNAP_NAME "index.snap"
#define SNAP_MAGIC "PVGSNAP1"
#define SNAP_END "PVGSEND1"
#define ADD_CHUNK 256
#define SEARCH_CHUNK 32

typedef struct {
    uint64_t owner;
    FaissIndex *idx;
    int approx;     /* 0: IDMap2,Flat; 1: IVF,Flat */
    size_t built_n; /* ntotal when the IVF was trained */
} space_t;

struct pv_gallery {
    pv_gallery_config_t cfg;
    char *dir;
    MDB_env *env;
    MDB_dbi meta, ids, exs, log;
    uint8_t uuid[16];
    uint64_t seq, log_floor, next_iid, snap_seq;
    int from_snapshot;

    pthread_mutex_t wmu;   /* one writer at a time */
    pthread_rwlock_t lock; /* spaces, iid_gid */
    space_t *spaces;       /* sorted by owner */
    size_t nspaces, capspaces;
    uint64_t *iid_gid; /* iid -> gid (0: none) */
    size_t cap_iid;
};

/* ---- error translation: the one place LMDB and FAISS codes become PV_E* ---- */

static int lmdb_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return PV_ENOTFOUND;
    case MDB_KEYEXIST:
        return PV_EEXIST;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_DBS_FULL:
    case MDB_READERS_FULL:
        return PV_ELIMIT;
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID:
    case MDB_CORRUPTED:
        return PV_EFORMAT;
    case ENOMEM:
        return PV_ENOMEM;
    default:
        return PV_ESTORE;
    }
}

static int faiss_err(int rc)
{
    return rc == 0 ? 0 : PV_EINDEX;
}

/* ---- encoding helpers ---- */

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Host-order fields in values: the environment never leaves this machine
 * (a shard's LMDB file is not portable across architectures anyway). */
static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void wr64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int vec_ok(const float *v, uint32_t dim)
{
    for (uint32_t i = 0; i < dim; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

typedef struct {
    uint64_t iid, owner;
    int64_t created, updated;
    uint32_t mask;
} idrec_t;

static void idrec_enc(uint8_t *b, const idrec_t *r)
{
    memset(b, 0, ID_SIZE);
    wr64(b, r->iid);
    wr64(b + 8, r->owner);
    wr64(b + 16, (uint64_t)r->created);
    wr64(b + 24, (uint64_t)r->updated);
    memcpy(b + 32, &r->mask, 4);
}

static int idrec_dec(idrec_t *r, const MDB_val *v)
{
    if (v->mv_size != ID_SIZE)
        return PV_EFORMAT;
    const uint8_t *b = v->mv_data;
    r->iid = rd64(b);
    r->owner = rd64(b + 8);
    r->created = (int64_t)rd64(b + 16);
    r->updated = (int64_t)rd64(b + 24);
    memcpy(&r->mask, b + 32, 4);
    return 0;
}

static size_t ex_size(const pv_gallery_t *g)
{
    return EX_HDR + sizeof(float) * g->cfg.dim;
}

static void ex_enc(uint8_t *b, uint64_t gid, uint64_t owner, int64_t t, float q, const float *vec, uint32_t dim)
{
    memset(b, 0, EX_HDR);
    wr64(b, gid);
    wr64(b + 8, owner);
    wr64(b + 16, (uint64_t)t);
    memcpy(b + 24, &q, 4);
    memcpy(b + EX_HDR, vec, sizeof(float) * dim);
}

static uint64_t popcount32(uint32_t m)
{
    return (uint64_t)__builtin_popcount(m);
}

/* ---- meta ---- */

static int meta_get64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *out)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc != 0)
        return lmdb_err(rc);
    if (v.mv_size != 8)
        return PV_EFORMAT;
    *out = rd64(v.mv_data);
    return 0;
}

static int meta_put64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t val)
{
    uint8_t b[8];
    wr64(b, val);
    MDB_val k = {strlen(name), (void *)name}, v = {8, b};
    return lmdb_err(mdb_put(txn, dbi, &k, &v, 0));
}

/* Appends one change-log entry and advances the change counter (in g->seq;
 * the caller stores "seq" before committing and restores it on abort). */
static int log_append(pv_gallery_t *g, MDB_txn *txn, uint64_t fid, uint64_t owner)
{
    uint8_t kb[8], vb[16];
    put_be64(kb, ++g->seq);
    wr64(vb, fid);
    wr64(vb + 8, owner);
    MDB_val k = {8, kb}, v = {16, vb};
    return lmdb_err(mdb_put(txn, g->log, &k, &v, MDB_APPEND));
}

/* ---- spaces (one index per owner) ---- */

static space_t *space_find(pv_gallery_t *g, uint64_t owner)
{
    size_t lo = 0, hi = g->nspaces;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g->spaces[mid].owner == owner)
            return &g->spaces[mid];
        if (g->spaces[mid].owner < owner)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Inserts an empty slot for owner (idx NULL) keeping the order; the caller
 * holds the write lock. Returns NULL on allocation failure. */
static space_t *space_insert(pv_gallery_t *g, uint64_t owner)
{
    space_t *s = space_find(g, owner);
    if (s)
        return s;
    if (g->nspaces == g->capspaces) {
        size_t cap = g->capspaces ? g->capspaces * 2 : 8;
        space_t *n = realloc(g->spaces, cap * sizeof(*n));
        if (!n)
            return NULL;
        g->spaces = n;
        g->capspaces = cap;
    }
    size_t i = 0;
    while (i < g->nspaces && g->spaces[i].owner < owner)
        i++;
    memmove(&g->spaces[i + 1], &g->spaces[i], (g->nspaces - i) * sizeof(space_t));
    g->nspaces++;
    memset(&g->spaces[i], 0, sizeof(space_t));
    g->spaces[i].owner = owner;
    return &g->spaces[i];
}

static int iid_reserve(pv_gallery_t *g, uint64_t need)
{
    if (need <= g->cap_iid)
        return 0;
    size_t cap = g->cap_iid ? g->cap_iid : 1024;
    while (cap < need)
        cap *= 2;
    uint64_t *n = realloc(g->iid_gid, cap * sizeof(*n));
    if (!n)
        return PV_ENOMEM;
    memset(n + g->cap_iid, 0, (cap - g->cap_iid) * sizeof(*n));
    g->iid_gid = n;
    g->cap_iid = cap;
    return 0;
}

static uint32_t auto_nlist(const pv_gallery_t *g, size_t n)
{
    if (g->cfg.ivf_nlist)
        return g->cfg.ivf_nlist;
    double want = 4.0 * sqrt((double)n);
    uint32_t nl = 1;
    while (nl * 2 <= want * 1.41 && nl < 65536)
        nl *= 2;
    while (nl > 1 && (size_t)nl * 39 > n) /* FAISS wants >= 39 training points per list */
        nl /= 2;
    return nl;
}

/* Creates an empty index for n expected exemplars: exact, or an untrained IVF. */
static int index_new(pv_gallery_t *g, FaissIndex **out, int *approx, size_t n)
{
    char desc[64];
    *approx = n > g->cfg.exact_max;
    if (*approx)
        snprintf(desc, sizeof(desc), "IVF%u,Flat", auto_nlist(g, n));
    else
        snprintf(desc, sizeof(desc), "IDMap2,Flat");
    int rc = faiss_err(faiss_index_factory(out, (int)g->cfg.dim, desc, METRIC_L2));
    if (rc == 0 && *approx) {
        FaissIndexIVF *ivf = faiss_IndexIVF_cast(*out);
        if (!ivf)
            return PV_EINDEX;
        faiss_IndexIVF_set_nprobe(ivf, g->cfg.ivf_nprobe);
    }
    return rc;
}

/* ---- building indexes from LMDB ---- */

typedef struct {
    uint64_t owner;
    size_t n;        /* exemplars in LMDB */
    size_t seen;     /* pass-2 counter (sampling) */
    float *train;    /* pass 2 sample */
    size_t ntrain, captrain;
    FaissIndex *idx; /* being built */
    int approx;
    float *buf; /* pass 3 chunk */
    int64_t *bids;
    size_t nbuf;
} build_t;

static build_t *build_find(build_t *b, size_t nb, uint64_t owner)
{
    size_t lo = 0, hi = nb;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (b[mid].owner == owner)
            return &b[mid];
        if (b[mid].owner < owner)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void build_free(build_t *b, size_t nb)
{
    for (size_t i = 0; b && i < nb; i++) {
        free(b[i].train);
        free(b[i].buf);
        free(b[i].bids);
        if (b[i].idx)
            faiss_Index_free(b[i].idx);
    }
    free(b);
}

static int build_flush(pv_gallery_t *g, build_t *b)
{
    (void)g;
    if (b->nbuf == 0)
        return 0;
    int rc = faiss_err(faiss_Index_add_with_ids(b->idx, (idx_t)b->nbuf, b->buf, b->bids));
    b->nbuf = 0;
    return rc;
}

/* Builds fresh indexes from LMDB (three cursor passes: count, sample for IVF
 * training, add) for one owner (only_owner != NULL) or for every owner.
 * On success *out holds nb entries sorted by owner; the caller installs the
 * indexes (b[i].idx) and frees the array with build_free after clearing idx. */
static int build_from_lmdb(pv_gallery_t *g, MDB_txn *txn, const uint64_t *only_owner, build_t **out, size_t *nbout)
{
    build_t *b = NULL;
    size_t nb = 0, capb = 0;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, mrc;
    const size_t dim = g->cfg.dim, esz = ex_size(g);

    if (only_owner) {
        b = calloc(1, sizeof(*b));
        if (!b)
            return PV_ENOMEM;
        b[0].owner = *only_owner;
        nb = capb = 1;
    }
    if ((rc = lmdb_err(mdb_cursor_open(txn, g->exs, &cur))) != 0)
        goto fail;
    /* pass 1: counts per owner */
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size != esz) {
            rc = PV_EFORMAT;
            goto fail;
        }
        uint64_t owner = rd64((uint8_t *)v.mv_data + 8);
        build_t *e = build_find(b, nb, owner);
        if (!e) {
            if (only_owner)
                continue;
            if (nb == capb) {
                capb = capb ? capb * 2 : 8;
                build_t *n = realloc(b, capb * sizeof(*b));
                if (!n) {
                    rc = PV_ENOMEM;
                    goto fail;
                }
                b = n;
            }
            size_t i = nb;
            while (i > 0 && b[i - 1].owner > owner)
                i--;
            memmove(&b[i + 1], &b[i], (nb - i) * sizeof(*b));
            memset(&b[i], 0, sizeof(*b));
            b[i].owner = owner;
            nb++;
            e = &b[i];
        }
        e->n++;
    }
    if (mrc != MDB_NOTFOUND) {
        rc = lmdb_err(mrc);
        goto fail;
    }
    int need_train = 0;
    for (size_t i = 0; i < nb; i++) {
        if ((rc = index_new(g, &b[i].idx, &b[i].approx, b[i].n)) != 0)
            goto fail;
        if (b[i].approx) {
            FaissIndexIVF *ivf = faiss_IndexIVF_cast(b[i].idx);
            size_t want = faiss_IndexIVF_nlist(ivf) * 40;
            b[i].captrain = want < b[i].n ? want : b[i].n;
            if (!(b[i].train = malloc(b[i].captrain * dim * sizeof(float)))) {
                rc = PV_ENOMEM;
                goto fail;
            }
            need_train = 1;
        }
        b[i].buf = malloc(ADD_CHUNK * dim * sizeof(float));
        b[i].bids = malloc(ADD_CHUNK * sizeof(int64_t));
        if (!b[i].buf || !b[i].bids) {
            rc = PV_ENOMEM;
            goto fail;
        }
    }
    /* pass 2: an evenly spaced training sample per IVF */
    if (need_train) {
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
             mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            build_t *e = build_find(b, nb, rd64((uint8_t *)v.mv_data + 8));
            if (!e || !e->approx)
                continue;
            /* take item i when floor(i*cap/n) advances */
            size_t i = e->seen++;
            if (e->ntrain < e->captrain && (i * e->captrain) / e->n >= e->ntrain)
                memcpy(e->train + e->ntrain++ * dim, (uint8_t *)v.mv_data + EX_HDR, dim * sizeof(float));
        }
        for (size_t i = 0; i < nb; i++) {
            if (!b[i].approx)
                continue;
            if ((rc = faiss_err(faiss_Index_train(b[i].idx, (idx_t)b[i].ntrain, b[i].train))) != 0)
                goto fail;
            free(b[i].train);
            b[i].train = NULL;
        }
    }
    /* pass 3: add everything in chunks */
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        build_t *e = build_find(b, nb, rd64((uint8_t *)v.mv_data + 8));
        if (!e || k.mv_size != 8)
            continue;
        memcpy(e->buf + e->nbuf * dim, (uint8_t *)v.mv_data + EX_HDR, dim * sizeof(float));
        e->bids[e->nbuf++] = (int64_t)get_be64(k.mv_data);
        if (e->nbuf == ADD_CHUNK && (rc = build_flush(g, e)) != 0)
            goto fail;
    }
    for (size_t i = 0; i < nb; i++)
        if ((rc = build_flush(g, &b[i])) != 0)
            goto fail;
    mdb_cursor_close(cur);
    *out = b;
    *nbout = nb;
    return 0;
fail:
    if (cur)
        mdb_cursor_close(cur);
    build_free(b, nb);
    return rc;
}

/* Replaces owner's index with a fresh one built from LMDB. Writer only. */
static int rebuild_owner(pv_gallery_t *g, uint64_t owner)
{
    MDB_txn *txn = NULL;
    build_t *b = NULL;
    size_t nb = 0;
    int rc = lmdb_err(mdb_txn_begin(g->env, NULL, MDB_RDONLY, &txn));
    if (rc == 0)
        rc = build_from_lmdb(g, txn, &owner, &b, &nb);
    if (txn)
        mdb_txn_abort(txn);
    if (rc != 0)
        return rc;
    FaissIndex *old = NULL;
    pthread_rwlock_wrlock(&g->lock);
    space_t *s = space_insert(g, owner);
    if (!s) {
        rc = PV_ENOMEM;
    } else {
        old = s->idx;
        s->idx = b[0].idx;
        s->approx = b[0].approx;
        s->built_n = b[0].n;
        b[0].idx = NULL;
    }
    pthread_rwlock_unlock(&g->lock);
    if (old)
        faiss_Index_free(old);
    build_free(b, nb);
    return rc;
}

/* Switches owner's index to IVF past exact_max, and retrains an IVF that has
 * grown ivf_regrow-fold. Nothing is lost: the new index is built from LMDB
 * while writers wait (searches continue on the old one), then swapped in. */
static int maybe_regrow(pv_gallery_t *g, uint64_t owner)
{
    space_t *s = space_find(g, owner);
    if (!s || !s->idx)
        return 0;
    size_t n = (size_t)faiss_Index_ntotal(s->idx);
    if ((!s->approx && n > g->cfg.exact_max) || (s->approx && n > s->built_n * g->cfg.ivf_regrow))
        return rebuild_owner(g, owner);
    return 0;
}

/* ---- snapshot ---- */

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : PV_EIO;
    close(fd);
    return rc;
}

/* Loads the snapshot into g->spaces if it belongs to this environment and
 * the change log still covers everything after it. */
static int snapshot_load(pv_gallery_t *g)
{
    char *path = path_join(g->dir, SNAP_NAME);
    FILE *f = NULL;
    int rc = PV_EFORMAT;
    uint8_t hdr[48], end[8];
    if (!path)
        return PV_ENOMEM;
    if (!(f = fopen(path, "rb"))) {
        rc = PV_ENOTFOUND;
        goto out;
    }
    if (fread(hdr, 1, sizeof(hdr), f) != sizeof(hdr) || memcmp(hdr, SNAP_MAGIC, 8) != 0)
        goto out;
    uint32_t ver, dim;
    memcpy(&ver, hdr + 8, 4);
    memcpy(&dim, hdr + 12, 4);
    uint64_t seq = rd64(hdr + 32), ns = rd64(hdr + 40);
    if (ver != 1 || dim != g->cfg.dim || memcmp(hdr + 16, g->uuid, 16) != 0 || seq > g->seq || seq < g->log_floor ||
        ns > (1u << 24))
        goto out;
    for (uint64_t i = 0; i < ns; i++) {
        uint8_t sh[24];
        FaissIndex *idx = NULL;
        if (fread(sh, 1, sizeof(sh), f) != sizeof(sh))
            goto out;
        if (faiss_read_index(f, 0, &idx) != 0) {
            rc = PV_EFORMAT;
            goto out;
        }
        uint32_t approx;
        memcpy(&approx, sh + 8, 4);
        int ok = faiss_Index_d(idx) == (int)g->cfg.dim &&
                 (approx ? faiss_IndexIVF_cast(idx) != NULL : faiss_IndexIDMap2_cast(idx) != NULL);
        space_t *s = ok ? space_insert(g, rd64(sh)) : NULL;
        if (!s || s->idx) {
            faiss_Index_free(idx);
            goto out;
        }
        s->idx = idx;
        s->approx = (int)approx;
        s->built_n = rd64(sh + 16);
        if (approx)
            faiss_IndexIVF_set_nprobe(faiss_IndexIVF_cast(idx), g->cfg.ivf_nprobe);
    }
    if (fread(end, 1, 8, f) != 8 || memcmp(end, SNAP_END, 8) != 0)
        goto out;
    g->snap_seq = seq;
    rc = 0;
out:
    if (f)
        fclose(f);
    free(path);
    return rc;
}

typedef struct {
    uint64_t owner, fid;
} change_t;

static int change_cmp(const void *a, const void *b)
{
    const change_t *x = a, *y = b;
    if (x->owner != y->owner)
        return x->owner < y->owner ? -1 : 1;
    return x->fid < y->fid ? -1 : x->fid > y->fid;
}

/* Brings the loaded snapshot up to date: every exemplar the log says was
 * touched after snap_seq is removed from its index and re-added when LMDB
 * still has it. Idempotent, so a fid touched many times is simply redone. */
static int catch_up(pv_gallery_t *g)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    change_t *ch = NULL;
    size_t n = 0, cap = 0;
    uint8_t kb[8];
    int rc, mrc;
    put_be64(kb, g->snap_seq + 1);
    MDB_val k = {8, kb}, v;
    if ((rc = lmdb_err(mdb_txn_begin(g->env, NULL, MDB_RDONLY, &txn))) != 0)
        return rc;
    if ((rc = lmdb_err(mdb_cursor_open(txn, g->log, &cur))) != 0)
        goto out;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size != 16) {
            rc = PV_EFORMAT;
            goto out;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            change_t *nc = realloc(ch, cap * sizeof(*ch));
            if (!nc) {
                rc = PV_ENOMEM;
                goto out;
            }
            ch = nc;
        }
        ch[n].fid = rd64(v.mv_data);
        ch[n].owner = rd64((uint8_t *)v.mv_data + 8);
        n++;
    }
    if (mrc != MDB_NOTFOUND) {
        rc = lmdb_err(mrc);
        goto out;
    }
    if (n > 0) /* qsort(NULL, 0) is undefined */
        qsort(ch, n, sizeof(*ch), change_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        idx_t *fids = malloc((n - i) * sizeof(idx_t));
        size_t nf = 0;
        if (!fids) {
            rc = PV_ENOMEM;
            goto out;
        }
        for (; j < n && ch[j].owner == ch[i].owner; j++)
            if (nf == 0 || fids[nf - 1] != (idx_t)ch[j].fid)
                fids[nf++] = (idx_t)ch[j].fid;
        space_t *s = space_insert(g, ch[i].owner);
        int approx = 0;
        if (!s || (!s->idx && (rc = index_new(g, &s->idx, &approx, 0)) != 0)) {
            free(fids);
            rc = rc ? rc : PV_ENOMEM;
            goto out;
        }
        FaissIDSelectorBatch *sel = NULL;
        size_t removed = 0;
        rc = faiss_err(faiss_IDSelectorBatch_new(&sel, nf, fids));
        if (rc == 0)
            rc = faiss_err(faiss_Index_remove_ids(s->idx, (FaissIDSelector *)sel, &removed));
        if (sel)
            faiss_IDSelector_free((FaissIDSelector *)sel);
        for (size_t f = 0; rc == 0 && f < nf; f++) {
            uint8_t fk[8];
            put_be64(fk, (uint64_t)fids[f]);
            MDB_val ek = {8, fk}, ev;
            int grc = mdb_get(txn, g->exs, &ek, &ev);
            if (grc == MDB_NOTFOUND)
                continue;
            if (grc != 0 || ev.mv_size != ex_size(g)) {
                rc = grc ? lmdb_err(grc) : PV_EFORMAT;
                break;
            }
            idx_t id = fids[f];
            rc = faiss_err(faiss_Index_add_with_ids(s->idx, 1, (float *)((uint8_t *)ev.mv_data + EX_HDR), &id));
        }
        free(fids);
        if (rc != 0)
            goto out;
        i = j;
    }
out:
    free(ch);
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

/* Deletes log entries up to and including `upto` and records the new floor. */
static int log_trim(pv_gallery_t *g, uint64_t upto)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, mrc;
    if ((rc = lmdb_err(mdb_txn_begin(g->env, NULL, 0, &txn))) != 0)
        return rc;
    if ((rc = lmdb_err(mdb_cursor_open(txn, g->log, &cur))) != 0)
        goto fail;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 || get_be64(k.mv_data) > upto)
            break;
        if ((rc = lmdb_err(mdb_cursor_del(cur, 0))) != 0)
            goto fail;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if ((rc = meta_put64(txn, g->meta, "log_floor", upto)) != 0)
        goto fail;
    if ((rc = lmdb_err(mdb_txn_commit(txn))) != 0)
        return rc;
    g->log_floor = upto;
    return 0;
fail:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

/* Writes the snapshot; the caller holds the writer mutex, so the indexes
 * reflect exactly g->seq. */
static int snapshot_write(pv_gallery_t *g)
{
    char *path = path_join(g->dir, SNAP_NAME), *tmp = path_join(g->dir, SNAP_NAME ".tmp");
    FILE *f = NULL;
    int rc = PV_EIO;
    if (!path || !tmp) {
        rc = PV_ENOMEM;
        goto out;
    }
    /* the snapshot holds embeddings: owner-only, like the LMDB files (fopen would make it 0666 & ~umask) */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0 || !(f = fdopen(fd, "wb"))) {
        if (fd >= 0)
            close(fd);
        goto out;
    }
    uint8_t hdr[48] = {0};
    uint32_t ver = 1, dim = g->cfg.dim;
    memcpy(hdr, SNAP_MAGIC, 8);
    memcpy(hdr + 8, &ver, 4);
    memcpy(hdr + 12, &dim, 4);
    memcpy(hdr + 16, g->uuid, 16);
    wr64(hdr + 32, g->seq);
    size_t ns = 0;
    for (size_t i = 0; i < g->nspaces; i++)
        ns += g->spaces[i].idx != NULL;
    wr64(hdr + 40, ns);
    if (fwrite(hdr, 1, sizeof(hdr), f) != sizeof(hdr))
        goto out;
    for (size_t i = 0; i < g->nspaces; i++) {
        space_t *s = &g->spaces[i];
        uint8_t sh[24] = {0};
        uint32_t approx = (uint32_t)s->approx;
        if (!s->idx)
            continue;
        wr64(sh, s->owner);
        memcpy(sh + 8, &approx, 4);
        wr64(sh + 16, s->built_n);
        if (fwrite(sh, 1, sizeof(sh), f) != sizeof(sh))
            goto out;
        if (faiss_write_index(s->idx, f) != 0) {
            rc = PV_EINDEX;
            goto out;
        }
    }
    if (fwrite(SNAP_END, 1, 8, f) != 8 || fflush(f) != 0 || fsync(fileno(f)) != 0)
        goto out;
    int crc = fclose(f);
    f = NULL;
    if (crc != 0 || rename(tmp, path) != 0)
        goto out;
    if ((rc = fsync_dir(g->dir)) != 0)
        goto out;
    g->snap_seq = g->seq;
    rc = log_trim(g, g->seq);
out:
    if (f) {
        fclose(f);
        unlink(tmp);
    }
    free(path);
    free(tmp);
    return rc;
}

/* ---- open / close ---- */

void pv_gallery_config_init(pv_gallery_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->dim = PV_GALLERY_DIM_DEFAULT;
    cfg->k = PV_GALLERY_K_DEFAULT;
    cfg->map_size = (size_t)4 << 30;
    cfg->durable = 1;
    cfg->exact_max = 20000;
    cfg->ivf_nprobe = 48;
    cfg->ivf_regrow = 4;
}

static int init_meta(pv_gallery_t *g)
{
    MDB_txn *txn = NULL;
    uint64_t dim, k;
    int rc = lmdb_err(mdb_txn_begin(g->env, NULL, 0, &txn));
    if (rc != 0)
        return rc;
    if ((rc = lmdb_err(mdb_dbi_open(txn, "meta", MDB_CREATE, &g->meta))) != 0 ||
        (rc = lmdb_err(mdb_dbi_open(txn, "identities", MDB_CREATE, &g->ids))) != 0 ||
        (rc = lmdb_err(mdb_dbi_open(txn, "exemplars", MDB_CREATE, &g->exs))) != 0 ||
        (rc = lmdb_err(mdb_dbi_open(txn, "log", MDB_CREATE, &g->log))) != 0)
        goto fail;
    rc = meta_get64(txn, g->meta, "dim", &dim);
    if (rc == PV_ENOTFOUND) {
        /* a new environment: its identity (uuid) ties snapshots to it */
        MDB_val uk = {4, "uuid"}, uv = {16, g->uuid};
        if ((rc = pv_random_bytes(g->uuid, 16)) != 0 || (rc = meta_put64(txn, g->meta, "dim", g->cfg.dim)) != 0 ||
            (rc = meta_put64(txn, g->meta, "k", g->cfg.k)) != 0 || (rc = meta_put64(txn, g->meta, "seq", 0)) != 0 ||
            (rc = meta_put64(txn, g->meta, "log_floor", 0)) != 0 ||
            (rc = meta_put64(txn, g->meta, "next_iid", 1)) != 0 ||
            (rc = lmdb_err(mdb_put(txn, g->meta, &uk, &uv, 0))) != 0)
            goto fail;
    } else if (rc != 0) {
        goto fail;
    } else {
        MDB_val uk = {4, "uuid"}, uv;
        if ((rc = meta_get64(txn, g->meta, "k", &k)) != 0)
            goto fail;
        if (dim != g->cfg.dim || k != g->cfg.k) {
            rc = PV_EINVAL;
            goto fail;
        }
        if ((rc = lmdb_err(mdb_get(txn, g->meta, &uk, &uv))) != 0)
            goto fail;
        if (uv.mv_size != 16) {
            rc = PV_EFORMAT;
            goto fail;
        }
        memcpy(g->uuid, uv.mv_data, 16);
    }
    if ((rc = meta_get64(txn, g->meta, "seq", &g->seq)) != 0 ||
        (rc = meta_get64(txn, g->meta, "log_floor", &g->log_floor)) != 0 ||
        (rc = meta_get64(txn, g->meta, "next_iid", &g->next_iid)) != 0)
        goto fail;
    return lmdb_err(mdb_txn_commit(txn));
fail:
    mdb_txn_abort(txn);
    return rc;
}

static int load_identities(pv_gallery_t *g)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, mrc;
    if ((rc = iid_reserve(g, g->next_iid)) != 0)
        return rc;
    if ((rc = lmdb_err(mdb_txn_begin(g->env, NULL, MDB_RDONLY, &txn))) != 0)
        return rc;
    if ((rc = lmdb_err(mdb_cursor_open(txn, g->ids, &cur))) != 0)
        goto out;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        idrec_t r;
        if (k.mv_size != 8 || (rc = idrec_dec(&r, &v)) != 0 || r.iid == 0 || r.iid >= g->next_iid) {
            rc = PV_EFORMAT;
            goto out;
        }
        g->iid_gid[r.iid] = get_be64(k.mv_data);
    }
    rc = mrc == MDB_NOTFOUND ? 0 : lmdb_err(mrc);
out:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

static void spaces_clear(pv_gallery_t *g)
{
    for (size_t i = 0; i < g->nspaces; i++)
        if (g->spaces[i].idx)
            faiss_Index_free(g->spaces[i].idx);
    g->nspaces = 0;
}

static int rebuild_all(pv_gallery_t *g)
{
    MDB_txn *txn = NULL;
    build_t *b = NULL;
    size_t nb = 0;
    int rc = lmdb_err(mdb_txn_begin(g->env, NULL, MDB_RDONLY, &txn));
    if (rc == 0)
        rc = build_from_lmdb(g, txn, NULL, &b, &nb);
    if (txn)
        mdb_txn_abort(txn);
    for (size_t i = 0; rc == 0 && i < nb; i++) {
        space_t *s = space_insert(g, b[i].owner);
        if (!s) {
            rc = PV_ENOMEM;
            break;
        }
        s->idx = b[i].idx;
        s->approx = b[i].approx;
        s->built_n = b[i].n;
        b[i].idx = NULL;
    }
    build_free(b, nb);
    return rc;
}

int pv_gallery_open(pv_gallery_t **out, const pv_gallery_config_t *cfg)
{
    pv_gallery_t *g = NULL;
    int rc;
    *out = NULL;
    if (!cfg || !cfg->dir || cfg->dim == 0 || cfg->dim > 4096 || cfg->k == 0 || cfg->k > KMAX ||
        cfg->map_size < ((size_t)1 << 20) || cfg->ivf_nprobe == 0 || cfg->ivf_regrow < 2)
        return PV_EINVAL;
    if (!(g = calloc(1, sizeof(*g))))
        return PV_ENOMEM;
    g->cfg = *cfg;
    pthread_mutex_init(&g->wmu, NULL);
    pthread_rwlock_init(&g->lock, NULL);
    if (!(g->dir = strdup(cfg->dir))) {
        rc = PV_ENOMEM;
        goto fail;
    }
    g->cfg.dir = g->dir;
    if ((rc = lmdb_err(mdb_env_create(&g->env))) != 0)
        goto fail;
    if ((rc = lmdb_err(mdb_env_set_maxdbs(g->env, 8))) != 0 ||
        (rc = lmdb_err(mdb_env_set_mapsize(g->env, cfg->map_size))) != 0)
        goto fail;
    /* MDB_NOTLS: read transactions are not tied to threads. MDB_NOMEMINIT is
     * never set: unused parts of written pages are zeroed, never stale heap. */
    if ((rc = mdb_env_open(g->env, cfg->dir, MDB_NOTLS | (cfg->durable ? 0 : MDB_NOSYNC), 0600)) != 0) {
        rc = rc == ENOENT || rc == ENOTDIR ? PV_EINVAL : lmdb_err(rc);
        goto fail;
    }
    if ((rc = init_meta(g)) != 0 || (rc = load_identities(g)) != 0)
        goto fail;
    if (snapshot_load(g) == 0 && catch_up(g) == 0) {
        g->from_snapshot = 1;
    } else {
        spaces_clear(g);
        g->snap_seq = 0;
        if ((rc = rebuild_all(g)) != 0)
            goto fail;
        /* the indexes reflect seq now and no snapshot is usable: the log before it is of no use */
        char *p = path_join(g->dir, SNAP_NAME);
        if (p)
            unlink(p);
        free(p);
        if (g->seq > g->log_floor && (rc = log_trim(g, g->seq)) != 0)
            goto fail;
    }
    if (!space_find(g, 0)) {
        space_t *s = space_insert(g, 0);
        int approx;
        if (!s || (rc = index_new(g, &s->idx, &approx, 0)) != 0) {
            rc = s ? rc : PV_ENOMEM;
            goto fail;
        }
    }
    for (size_t i = 0; i < g->nspaces; i++)
        if ((rc = maybe_regrow(g, g->spaces[i].owner)) != 0)
            goto fail;
    *out = g;
    return 0;
fail:
    pv_gallery_close(g);
    return rc;
}

void pv_gallery_close(pv_gallery_t *g)
{
    if (!g)
        return;
    if (g->cfg.snapshot_on_close && g->env && g->nspaces) {
        pthread_mutex_lock(&g->wmu);
        (void)snapshot_write(g); /* best effort: LMDB is the truth */
        pthread_mutex_unlock(&g->wmu);
    }
    spaces_clear(g);
    free(g->spaces);
    free(g->iid_gid);
    if (g->env)
        mdb_env_close(g->env);
    pthread_rwlock_destroy(&g->lock);
    pthread_mutex_destroy(&g->wmu);
    free(g->dir);
    free(g);
}

int pv_gallery_snapshot(pv_gallery_t *g)
{
    if (!g)
        return PV_EINVAL;
    pthread_mutex_lock(&g->wmu);
    int rc = snapshot_write(g);
    pthread_mutex_unlock(&g->wmu);
    return rc;
}

/* ---- search ---- */

int pv_gallery_search(pv_gallery_t *g, pv_gallery_hit_t *hits, uint64_t owner, size_t nq, const float *queries,
                      size_t k)
{
    if (!g || !hits || !queries || nq == 0 || nq > PV_GALLERY_BATCH_MAX || k == 0 || k > PV_GALLERY_SEARCH_K_MAX)
        return PV_EINVAL;
    const size_t dim = g->cfg.dim;
    for (size_t q = 0; q < nq; q++)
        if (!vec_ok(queries + q * dim, (uint32_t)dim))
            return PV_EINVAL;
    for (size_t i = 0; i < nq * k; i++)
        hits[i] = (pv_gallery_hit_t){0, PV_GALLERY_NOSLOT, INFINITY};

    int rc = 0;
    float *dist = NULL;
    idx_t *lab = NULL;
    pthread_rwlock_rdlock(&g->lock);
    space_t *s = space_find(g, owner);
    idx_t ntotal = s && s->idx ? faiss_Index_ntotal(s->idx) : 0;
    if (ntotal == 0)
        goto out;
    /* k*K neighbours hold at least k distinct identities (each has <= K) */
    size_t kk = k * g->cfg.k;
    if (kk > (size_t)ntotal)
        kk = (size_t)ntotal;
    size_t chunk = nq < SEARCH_CHUNK ? nq : SEARCH_CHUNK;
    dist = malloc(chunk * kk * sizeof(float));
    lab = malloc(chunk * kk * sizeof(idx_t));
    if (!dist || !lab) {
        rc = PV_ENOMEM;
        goto out;
    }
    for (size_t q0 = 0; q0 < nq; q0 += chunk) {
        size_t n = nq - q0 < chunk ? nq - q0 : chunk;
        if ((rc = faiss_err(faiss_Index_search(s->idx, (idx_t)n, queries + q0 * dim, (idx_t)kk, dist, lab))) != 0)
            goto out;
        for (size_t q = 0; q < n; q++) {
            pv_gallery_hit_t *h = hits + (q0 + q) * k;
            size_t nh = 0;
            for (size_t j = 0; j < kk && nh < k; j++) {
                idx_t l = lab[q * kk + j];
                if (l < 0)
                    break;
                uint64_t iid = (uint64_t)l / KMAX, gid = iid < g->cap_iid ? g->iid_gid[iid] : 0;
                if (gid == 0)
                    continue;
                size_t e = 0;
                while (e < nh && h[e].gid != gid)
                    e++;
                if (e < nh)
                    continue; /* results are sorted: this identity's best exemplar came first */
                float d = dist[q * kk + j];
                h[nh++] = (pv_gallery_hit_t){gid, (uint32_t)((uint64_t)l % KMAX), sqrtf(d > 0 ? d : 0)};
            }
        }
    }
out:
    pthread_rwlock_unlock(&g->lock);
    free(dist);
    free(lab);
    return rc;
}

/* ---- writes ---- */

/* Ensures owner has an index before a commit, so nothing after the commit
 * can fail for lack of one. Writer only. */
static int prepare_space(pv_gallery_t *g, uint64_t owner, uint64_t iids_needed)
{
    int rc = 0, approx;
    pthread_rwlock_wrlock(&g->lock);
    space_t *s = space_insert(g, owner);
    if (!s)
        rc = PV_ENOMEM;
    else if (!s->idx)
        rc = index_new(g, &s->idx, &approx, 0);
    if (rc == 0)
        rc = iid_reserve(g, iids_needed);
    pthread_rwlock_unlock(&g->lock);
    return rc;
}

static int enroll_common(pv_gallery_t *g, uint64_t *gids, size_t n, uint64_t gid_req, uint64_t owner,
                         const float *vecs, const float *quals)
{
    const size_t dim = g->cfg.dim, esz = ex_size(g);
    MDB_txn *txn = NULL;
    uint8_t *eb = NULL;
    idx_t *fids = NULL;
    int rc;
    for (size_t i = 0; i < n; i++)
        if (!vec_ok(vecs + i * dim, (uint32_t)dim) || !isfinite(quals[i]))
            return PV_EINVAL;
    if (!(eb = malloc(esz)) || !(fids = malloc(n * sizeof(idx_t)))) {
        free(eb);
        return PV_ENOMEM;
    }
    pthread_mutex_lock(&g->wmu);
    uint64_t seq0 = g->seq, iid0 = g->next_iid;
    int64_t t = now_ms();
    if ((rc = prepare_space(g, owner, iid0 + n)) != 0)
        goto fail;
    if ((rc = lmdb_err(mdb_txn_begin(g->env, NULL, 0, &txn))) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        uint64_t iid = iid0 + i, gid = gid_req;
        idrec_t r = {iid, owner, t, t, 1u};
        uint8_t kb[8], ib[ID_SIZE];
        idrec_enc(ib, &r);
        MDB_val k = {8, kb}, v = {ID_SIZE, ib};
        for (int attempt = 0;; attempt++) {
            if (gid_req == 0) {
                /* random 63-bit gids: unguessable, reveal no enrolment order or count */
                if ((rc = pv_random_bytes(&gid, sizeof(gid))) != 0)
                    goto fail;
                gid &= INT64_MAX;
                if (gid == 0)
                    continue;
            }
            put_be64(kb, gid);
            rc = lmdb_err(mdb_put(txn, g->ids, &k, &v, MDB_NOOVERWRITE));
            if (rc != PV_EEXIST || gid_req != 0 || attempt >= 16)
                break;
        }
        if (rc != 0)
            goto fail;
        gids[i] = gid;
        fids[i] = (idx_t)(iid * KMAX);
        ex_enc(eb, gid, owner, t, quals[i], vecs + i * dim, (uint32_t)dim);
        put_be64(kb, (uint64_t)fids[i]);
        MDB_val ev = {esz, eb};
        if ((rc = lmdb_err(mdb_put(txn, g->exs, &k, &ev, MDB_NOOVERWRITE | MDB_APPEND))) != 0 ||
            (rc = log_append(g, txn, (uint64_t)fids[i], owner)) != 0)
            goto fail;
    }
    if ((rc = meta_put64(txn, g->meta, "next_iid", iid0 + n)) != 0 || (rc = meta_put64(txn, g->meta, "seq", g->seq)) != 0)
        goto fail;
    rc = lmdb_err(mdb_txn_commit(txn));
    txn = NULL;
    if (rc != 0)
        goto fail;
    /* committed: from here on the write stands, whatever the index does */
    g->next_iid = iid0 + n;
    pthread_rwlock_wrlock(&g->lock);
    for (size_t i = 0; i < n; i++)
        g->iid_gid[iid0 + i] = gids[i];
    rc = faiss_err(faiss_Index_add_with_ids(space_find(g, owner)->idx, (idx_t)n, vecs, fids));
    pthread_rwlock_unlock(&g->lock);
    if (rc != 0)
        rc = rebuild_owner(g, owner) == 0 ? 0 : PV_EINDEX;
    else
        rc = maybe_regrow(g, owner);
    pthread_mutex_unlock(&g->wmu);
    free(eb);
    free(fids);
    return rc;
fail:
    if (txn)
        mdb_txn_abort(txn);
    g->seq = seq0;
    pthread_mutex_unlock(&g->wmu);
    free(eb);
    free(fids);
    return rc;
}

int pv_gallery_enroll(pv_gallery_t *g, uint64_t *gid_out, uint64_t gid_req, uint64_t owner, const float *vec,
                      float quality)
{
    if (!g || !gid_out || !vec)
        return PV_EINVAL;
    return enroll_common(g, gid_out, 1, gid_req, owner, vec, &quality);
}

int pv_gallery_enroll_batch(pv_gallery_t *g, uint64_t *gids_out, size_t n, uint64_t owner, const float *vecs,
                            const float *qualities)
{
    if (!g || !gids_out || !vecs || !qualities || n == 0 || n > PV_GALLERY_BATCH_MAX)
        return PV_EINVAL;
    return enroll_common(g, gids_out, n, 0, owner, vecs, qualities);
}

static float dist2(const float *a, const float *b, size_t dim)
{
    float s = 0;
    for (size_t i = 0; i < dim; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

/* Index (0..n-1) of the most redundant of n vectors: the one whose nearest
 * other is closest; ties go to the one closer to all others, then to the
 * lower quality, then to the lower index (so an old exemplar loses a full
 * tie against the new one, which is last). */
static size_t most_redundant(const float *v, const float *q, size_t n, size_t dim)
{
    float nn[KMAX + 1], sum[KMAX + 1];
    for (size_t i = 0; i < n; i++) {
        nn[i] = INFINITY;
        sum[i] = 0;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            float d = dist2(v + i * dim, v + j * dim, dim);
            if (d < nn[i])
                nn[i] = d;
            if (d < nn[j])
                nn[j] = d;
            sum[i] += d;
            sum[j] += d;
        }
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (nn[i] < nn[best] || (nn[i] == nn[best] && (sum[i] < sum[best] || (sum[i] == sum[best] && q[i] < q[best]))))
            best = i;
    return best;
}

int pv_gallery_add(pv_gallery_t *g, uint32_t *slot_out, uint64_t gid, const float *vec, float quality)
{
    if (!g || !vec || gid == 0 || !vec_ok(vec, g->cfg.dim) || !isfinite(quality))
        return PV_EINVAL;
    const size_t dim = g->cfg.dim, esz = ex_size(g);
    float *v = malloc((KMAX + 1) * dim * sizeof(float));
    uint8_t *eb = malloc(esz);
    MDB_txn *txn = NULL;
    uint32_t slot = PV_GALLERY_NOSLOT;
    int rc;
    if (slot_out)
        *slot_out = PV_GALLERY_NOSLOT;
    if (!v || !eb) {
        free(v);
        free(eb);
        return PV_ENOMEM;
    }
    pthread_mutex_lock(&g->wmu);
    uint64_t seq0 = g->seq;
    uint8_t kb[8], ib[ID_SIZE];
    put_be64(kb, gid);
    MDB_val k = {8, kb}, iv;
    idrec_t r;
    if ((rc = lmdb_err(mdb_txn_begin(g->env, NULL, 0, &txn))) != 0)
        goto fail;
    if ((rc = lmdb_err(mdb_get(txn, g->ids, &k, &iv))) != 0 || (rc = idrec_dec(&r, &iv)) != 0)
        goto fail;
    if (popcount32(r.mask) < g->cfg.k) {
        for (slot = 0; r.mask & (1u << slot); slot++)
            ;
    } else {
        /* full: gather the K stored exemplars and the new one (last) */
        float q[KMAX + 1];
        uint32_t slots[KMAX];
        size_t n = 0;
        for (uint32_t s = 0; s < KMAX; s++) {
            if (!(r.mask & (1u << s)))
                continue;
            uint8_t fk[8];
            put_be64(fk, r.iid * KMAX + s);
            MDB_val ek = {8, fk}, ev;
            if ((rc = lmdb_err(mdb_get(txn, g->exs, &ek, &ev))) != 0)
                goto fail;
            if (ev.mv_size != esz) {
                rc = PV_EFORMAT;
                goto fail;
            }
            memcpy(&q[n], (uint8_t *)ev.mv_data + 24, 4);
            memcpy(v + n * dim, (uint8_t *)ev.mv_data + EX_HDR, dim * sizeof(float));
            slots[n++] = s;
        }
        memcpy(v + n * dim, vec, dim * sizeof(float));
        q[n] = quality;
        size_t victim = most_redundant(v, q, n + 1, dim);
        if (victim == n) { /* the new one adds the least: keep the set as it is */
            mdb_txn_abort(txn);
            pthread_mutex_unlock(&g->wmu);
            free(v);
            free(eb);
            return 0;
        }
        slot = slots[victim];
    }
    int64_t t = now_ms();
    uint64_t fid = r.iid * KMAX + slot;
    r.mask |= 1u << slot;
    r.updated = t;
    idrec_enc(ib, &r);
    MDB_val nv = {ID_SIZE, ib};
    ex_enc(eb, gid, r.owner, t, quality, vec, (uint32_t)dim);
    uint8_t fk[8];
    put_be64(fk, fid);
    MDB_val ek = {8, fk}, ev = {esz, eb};
    if ((rc = lmdb_err(mdb_put(txn, g->ids, &k, &nv, 0))) != 0 || (rc = lmdb_err(mdb_put(txn, g->exs, &ek, &ev, 0))) != 0 ||
        (rc = log_append(g, txn, fid, r.owner)) != 0 || (rc = meta_put64(txn, g->meta, "seq", g->seq)) != 0)
        goto fail;
    if ((rc = prepare_space(g, r.owner, 0)) != 0)
        goto fail;
    rc = lmdb_err(mdb_txn_commit(txn));
    txn = NULL;
    if (rc != 0)
        goto fail;
    if (slot_out)
        *slot_out = slot;
    pthread_rwlock_wrlock(&g->lock);
    space_t *s = space_find(g, r.owner);
    FaissIDSelectorBatch *sel = NULL;
    size_t removed = 0;
    idx_t id = (idx_t)fid;
    rc = faiss_err(faiss_IDSelectorBatch_new(&sel, 1, &id));
    if (rc == 0)
        rc = faiss_err(faiss_Index_remove_ids(s->idx, (FaissIDSelector *)sel, &removed));
    if (sel)
        faiss_IDSelector_free((FaissIDSelector *)sel);
    if (rc == 0)
        rc = faiss_err(faiss_Index_add_with_ids(s->idx, 1, vec, &id));
    pthread_rwlock_unlock(&g->lock);
    if (rc != 0)
        rc = rebuild_owner(g, r.owner) == 0 ? 0 : PV_EINDEX;
    else
        rc = maybe_regrow(g, r.owner);
    pthread_mutex_unlock(&g->wmu);
    free(v);
    free(eb);
    return rc;
fail:
    if (txn)
        mdb_txn_abort(txn);
    g->seq = seq0;
    pthread_mutex_unlock(&g->wmu);
    free(v);
    free(eb);
    return rc;
}

/* ---- erasure ---- */

/* Pieces of the erased vectors to hunt for: CH-byte chunks covering each
 * vector, so whole copies and partial ones (LMDB moves nodes inside pages)
 * are found. 32 bytes = 8 floats: far too specific to occur by chance. */
#define CH 32

typedef struct {
    const uint8_t *bytes;
    size_t off; /* position in its vector */
    uint64_t prefix;
    int live; /* a live exemplar holds the same bytes at the same place */
} chunk_t;

static size_t make_chunks(chunk_t *out, const uint8_t *vec, size_t vbytes)
{
    size_t n = 0;
    if (vbytes < CH)
        return 0;
    for (size_t off = 0;; off += CH) {
        if (off + CH > vbytes)
            off = vbytes - CH;
        const uint8_t *p = vec + off;
        int zero = 1;
        for (size_t i = 0; i < CH && zero; i++)
            zero = p[i] == 0;
        if (!zero) { /* an all-zero piece has nothing to erase */
            out[n] = (chunk_t){p, off, 0, 0};
            memcpy(&out[n].prefix, p, 8);
            n++;
        }
        if (off + CH >= vbytes)
            break;
    }
    return n;
}

/* Overwrites with zeros every occurrence of any chunk in the file at path,
 * then syncs it. *found receives the number of occurrences zeroed. A missing
 * file is not an error. The caller holds the writer mutex: LMDB writes
 * nothing meanwhile, and every occurrence lies in a free page or in the
 * unused gap of a page (the live tree no longer holds these bytes, and
 * chunks that a live exemplar shares were left out). */
static int scrub_file(const char *path, const chunk_t *c, size_t nc, size_t *found)
{
    int fd = open(path, O_RDWR);
    struct stat st;
    int rc = 0;
    *found = 0;
    if (fd < 0)
        return errno == ENOENT ? 0 : PV_EIO;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return PV_EIO;
    }
    size_t size = (size_t)st.st_size;
    if (size < CH || nc == 0) {
        close(fd);
        return 0;
    }
    const uint8_t *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        close(fd);
        return PV_EIO;
    }
    uint64_t *bloom = calloc(1024, sizeof(uint64_t)); /* 65536 bits */
    if (!bloom) {
        munmap((void *)m, size);
        close(fd);
        return PV_ENOMEM;
    }
    for (size_t i = 0; i < nc; i++) {
        uint64_t h = (c[i].prefix * 0x9E3779B97F4A7C15ull) >> 48;
        bloom[h >> 6] |= 1ull << (h & 63);
    }
    static const uint8_t zeros[CH];
    for (size_t p = 0; p + CH <= size; p++) {
        uint64_t x;
        memcpy(&x, m + p, 8);
        uint64_t h = (x * 0x9E3779B97F4A7C15ull) >> 48;
        if (!(bloom[h >> 6] & (1ull << (h & 63))))
            continue;
        for (size_t i = 0; i < nc; i++) {
            if (c[i].prefix != x || memcmp(m + p, c[i].bytes, CH) != 0)
                continue;
            if (pwrite(fd, zeros, CH, (off_t)p) != (ssize_t)CH)
                rc = PV_EIO;
            (*found)++;
            p += CH - 1;
            break;
        }
    }
    if (fdatasync(fd) != 0)
        rc = PV_EIO;
    free(bloom);
    munmap((void *)m, size);
    close(fd);
    return rc;
}

/* Zeros the stored copies of `fids` inside an exact index before they are
 * removed, so no copy outlives the removal in the Flat array. */
static void zero_flat(space_t *s, const idx_t *fids, size_t nf, size_t dim)
{
    FaissIndexIDMap2 *m = faiss_IndexIDMap2_cast(s->idx);
    if (!m)
        return;
    FaissIndexFlat *flat = faiss_IndexFlat_cast(faiss_IndexIDMap2_sub_index(m));
    idx_t *ids;
    size_t n, nx;
    float *xb;
    if (!flat)
        return;
    faiss_IndexIDMap2_id_map(m, &ids, &n);
    faiss_IndexFlat_xb(flat, &xb, &nx);
    for (size_t j = 0; j < n; j++)
        for (size_t f = 0; f < nf; f++)
            if (ids[j] == fids[f] && (j + 1) * dim <= nx)
                memset(xb + j * dim, 0, dim * sizeof(float));
}

/* Marks the chunks that a live exemplar holds at the same position (only a
 * duplicate vector can): those bytes are still legitimately stored for
 * another identity and must not be zeroed, in data.mdb or the snapshot.
 * Returns the number of chunks left to erase, compacted to the front. */
static int drop_live_chunks(pv_gallery_t *g, chunk_t *c, size_t *nc)
{
    const size_t esz = ex_size(g);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, mrc;
    if ((rc = lmdb_err(mdb_txn_begin(g->env, NULL, MDB_RDONLY, &txn))) != 0)
        return rc;
    if ((rc = lmdb_err(mdb_cursor_open(txn, g->exs, &cur))) != 0)
        goto out;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size != esz)
            continue;
        const uint8_t *lv = (const uint8_t *)v.mv_data + EX_HDR;
        for (size_t i = 0; i < *nc; i++)
            if (!c[i].live && memcmp(lv + c[i].off, c[i].bytes, CH) == 0)
                c[i].live = 1;
    }
    rc = mrc == MDB_NOTFOUND ? 0 : lmdb_err(mrc);
    size_t j = 0;
    for (size_t i = 0; i < *nc; i++)
        if (!c[i].live)
            c[j++] = c[i];
    *nc = j;
out:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

int pv_gallery_remove(pv_gallery_t *g, uint64_t gid)
{
    if (!g || gid == 0)
        return PV_EINVAL;
    const size_t dim = g->cfg.dim, esz = ex_size(g), vb = dim * sizeof(float);
    float *vecs = malloc(KMAX * vb);
    idx_t fids[KMAX];
    size_t nv = 0;
    MDB_txn *txn = NULL;
    char *dpath = NULL, *spath = NULL;
    int rc;
    if (!vecs)
        return PV_ENOMEM;
    pthread_mutex_lock(&g->wmu);
    uint64_t seq0 = g->seq;
    uint8_t kb[8];
    put_be64(kb, gid);
    MDB_val k = {8, kb}, iv;
    idrec_t r;
    if ((rc = lmdb_err(mdb_txn_begin(g->env, NULL, 0, &txn))) != 0)
        goto fail;
    if ((rc = lmdb_err(mdb_get(txn, g->ids, &k, &iv))) != 0 || (rc = idrec_dec(&r, &iv)) != 0)
        goto fail;
    for (uint32_t s = 0; s < KMAX; s++) {
        if (!(r.mask & (1u << s)))
            continue;
        uint8_t fk[8];
        uint64_t fid = r.iid * KMAX + s;
        put_be64(fk, fid);
        MDB_val ek = {8, fk}, ev;
        if ((rc = lmdb_err(mdb_get(txn, g->exs, &ek, &ev))) != 0)
            goto fail;
        if (ev.mv_size != esz) {
            rc = PV_EFORMAT;
            goto fail;
        }
        memcpy(vecs + nv * dim, (uint8_t *)ev.mv_data + EX_HDR, vb);
        fids[nv++] = (idx_t)fid;
        /* zero the value in this transaction's (dirty) page first, so the page
         * written by this commit holds zeros where the node was, then delete */
        MDB_val zv = {esz, NULL};
        if ((rc = lmdb_err(mdb_put(txn, g->exs, &ek, &zv, MDB_RESERVE))) != 0)
            goto fail;
        memset(zv.mv_data, 0, esz);
        if ((rc = lmdb_err(mdb_del(txn, g->exs, &ek, NULL))) != 0 || (rc = log_append(g, txn, fid, r.owner)) != 0)
            goto fail;
    }
    MDB_val zi = {ID_SIZE, NULL};
    if ((rc = lmdb_err(mdb_put(txn, g->ids, &k, &zi, MDB_RESERVE))) != 0)
        goto fail;
    memset(zi.mv_data, 0, ID_SIZE);
    if ((rc = lmdb_err(mdb_del(txn, g->ids, &k, NULL))) != 0 || (rc = meta_put64(txn, g->meta, "seq", g->seq)) != 0)
        goto fail;
    rc = lmdb_err(mdb_txn_commit(txn));
    txn = NULL;
    if (rc != 0)
        goto fail;

    pthread_rwlock_wrlock(&g->lock);
    space_t *s = space_find(g, r.owner);
    if (s && s->idx && nv > 0) {
        FaissIDSelectorBatch *sel = NULL;
        size_t removed = 0;
        zero_flat(s, fids, nv, dim);
        rc = faiss_err(faiss_IDSelectorBatch_new(&sel, nv, fids));
        if (rc == 0)
            rc = faiss_err(faiss_Index_remove_ids(s->idx, (FaissIDSelector *)sel, &removed));
        if (sel)
            faiss_IDSelector_free((FaissIDSelector *)sel);
    }
    if (r.iid < g->cap_iid)
        g->iid_gid[r.iid] = 0; /* never returned again, even if the index kept it */
    pthread_rwlock_unlock(&g->lock);
    if (rc != 0)
        rc = rebuild_owner(g, r.owner);

    /* LMDB's copy-on-write left older versions of these pages in free pages
     * (and maybe in the gap of a live page): zero every remaining copy in
     * data.mdb, and in the snapshot, which also holds them. */
    size_t nc = 0, found = 0;
    chunk_t *chunks = malloc((nv * (vb / CH + 1) + 1) * sizeof(chunk_t));
    int src = chunks ? 0 : PV_ENOMEM;
    for (size_t i = 0; src == 0 && i < nv; i++)
        nc += make_chunks(chunks + nc, (const uint8_t *)(vecs + i * dim), vb);
    if (src == 0)
        src = drop_live_chunks(g, chunks, &nc);
    if (src == 0) {
        dpath = path_join(g->dir, "data.mdb");
        spath = path_join(g->dir, SNAP_NAME);
        if (!dpath || !spath)
            src = PV_ENOMEM;
    }
    if (src == 0)
        src = scrub_file(dpath, chunks, nc, &found);
    if (src == 0)
        src = scrub_file(spath, chunks, nc, &found);
    free(chunks);
    if (rc == 0)
        rc = src;
    pthread_mutex_unlock(&g->wmu);
    explicit_bzero(vecs, KMAX * vb);
    free(vecs);
    free(dpath);
    free(spath);
    return rc;
fail:
    if (txn)
        mdb_txn_abort(txn);
    g->seq = seq0;
    pthread_mutex_unlock(&g->wmu);
    explicit_bzero(vecs, KMAX * vb);
    free(vecs);
    return rc;
}

/* ---- reads ---- */

int pv_gallery_get(pv_gallery_t *g, pv_gallery_identity_t *out, uint64_t gid)
{
    if (!g || !out || gid == 0)
        return PV_EINVAL;
    MDB_txn *txn = NULL;
    uint8_t kb[8];
    put_be64(kb, gid);
    MDB_val k = {8, kb}, v;
    idrec_t r;
    int rc = lmdb_err(mdb_txn_begin(g->env, NULL, MDB_RDONLY, &txn));
    if (rc != 0)
        return rc;
    if ((rc = lmdb_err(mdb_get(txn, g->ids, &k, &v))) != 0 || (rc = idrec_dec(&r, &v)) != 0)
        goto out;
    memset(out, 0, sizeof(*out));
    out->gid = gid;
    out->owner = r.owner;
    out->created_ms = r.created;
    out->updated_ms = r.updated;
    out->slot_mask = r.mask;
    out->n_exemplars = (uint32_t)popcount32(r.mask);
    for (uint32_t s = 0; s < KMAX; s++) {
        if (!(r.mask & (1u << s)))
            continue;
        uint8_t fk[8];
        put_be64(fk, r.iid * KMAX + s);
        MDB_val ek = {8, fk}, ev;
        if ((rc = lmdb_err(mdb_get(txn, g->exs, &ek, &ev))) != 0)
            goto out;
        if (ev.mv_size != ex_size(g)) {
            rc = PV_EFORMAT;
            goto out;
        }
        out->time_ms[s] = (int64_t)rd64((uint8_t *)ev.mv_data + 16);
        memcpy(&out->quality[s], (uint8_t *)ev.mv_data + 24, 4);
    }
out:
    mdb_txn_abort(txn);
    return rc;
}

int pv_gallery_get_exemplar(pv_gallery_t *g, float *vec, uint64_t gid, uint32_t slot)
{
    if (!g || !vec || gid == 0 || slot >= KMAX)
        return PV_EINVAL;
    MDB_txn *txn = NULL;
    uint8_t kb[8];
    put_be64(kb, gid);
    MDB_val k = {8, kb}, v;
    idrec_t r;
    int rc = lmdb_err(mdb_txn_begin(g->env, NULL, MDB_RDONLY, &txn));
    if (rc != 0)
        return rc;
    if ((rc = lmdb_err(mdb_get(txn, g->ids, &k, &v))) != 0 || (rc = idrec_dec(&r, &v)) != 0)
        goto out;
    if (!(r.mask & (1u << slot))) {
        rc = PV_ENOTFOUND;
        goto out;
    }
    put_be64(kb, r.iid * KMAX + slot);
    if ((rc = lmdb_err(mdb_get(txn, g->exs, &k, &v))) != 0)
        goto out;
    if (v.mv_size != ex_size(g))
        rc = PV_EFORMAT;
    else
        memcpy(vec, (uint8_t *)v.mv_data + EX_HDR, g->cfg.dim * sizeof(float));
out:
    mdb_txn_abort(txn);
    return rc;
}

int pv_gallery_list(pv_gallery_t *g, uint64_t *gids, size_t max, size_t *n, uint64_t after)
{
    if (!g || !n || (max && !gids))
        return PV_EINVAL;
    *n = 0;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    uint8_t kb[8];
    put_be64(kb, after);
    MDB_val k = {8, kb}, v;
    int rc = lmdb_err(mdb_txn_begin(g->env, NULL, MDB_RDONLY, &txn)), mrc;
    if (rc != 0)
        return rc;
    if ((rc = lmdb_err(mdb_cursor_open(txn, g->ids, &cur))) != 0)
        goto out;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && *n < max;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t gid = get_be64(k.mv_data);
        if (gid > after)
            gids[(*n)++] = gid;
    }
    rc = mrc == 0 || mrc == MDB_NOTFOUND ? 0 : lmdb_err(mrc);
out:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

int pv_gallery_stat(pv_gallery_t *g, pv_gallery_stat_t *st)
{
    if (!g || !st)
        return PV_EINVAL;
    memset(st, 0, sizeof(*st));
    MDB_txn *txn = NULL;
    MDB_stat ms;
    MDB_envinfo info;
    int rc = lmdb_err(mdb_txn_begin(g->env, NULL, MDB_RDONLY, &txn));
    if (rc != 0)
        return rc;
    if ((rc = lmdb_err(mdb_stat(txn, g->ids, &ms))) == 0) {
        st->identities = ms.ms_entries;
        if ((rc = lmdb_err(mdb_stat(txn, g->exs, &ms))) == 0)
            st->exemplars = ms.ms_entries;
    }
    mdb_txn_abort(txn);
    mdb_env_info(g->env, &info);
    mdb_env_stat(g->env, &ms);
    st->lmdb_bytes = (info.me_last_pgno + 1) * (size_t)ms.ms_psize;
    pthread_mutex_lock(&g->wmu); /* seq and snap_seq change under it */
    st->seq = g->seq;
    st->snapshot_seq = g->snap_seq;
    pthread_mutex_unlock(&g->wmu);
    pthread_rwlock_rdlock(&g->lock);
    for (size_t i = 0; i < g->nspaces; i++)
        st->owners += g->spaces[i].idx != NULL;
    space_t *s = space_find(g, 0);
    st->shared_approx = s ? s->approx : 0;
    pthread_rwlock_unlock(&g->lock);
    st->opened_from_snapshot = g->from_snapshot;
    return rc;
}
