/*
 * Visitor mappings and the analytics outbox (see visitors.h). Keys are
 * big-endian so LMDB orders them numerically: `visitors` (gid u64, tenant
 * u64) -> record, which also lets an erasure find every tenant that maps a
 * gid with one cursor range; `visitor_ids` (tenant u64, visitor ID text) ->
 * gid u64; `outbox` (sequence u64) -> event JSON. A visitor record is
 * ver u8, pad[7], first i64, last i64, visits u64 (little-endian). `usage`
 * (tenant u64, 'M' yyyymm u32 | 'D' | 'R' | 'F' yyyymmdd u32) -> u64 meters
 * each tenant's images per month (quota) and images, requests and faces per
 * UTC day (usage_daily in PostgreSQL). `meta` holds the outbox's delivery
 * record ("outbox_delivered_ms", "outbox_delivered" -> u64) and its highest
 * sequence number ever used ("outbox_seq" -> u64), so numbers never repeat.
 * `forget` (gid u64) -> queued unix ms: identities that no tenant maps any
 * more (erased or expired), written in the transaction that removed the last
 * mapping, deleted once the gallery no longer holds them.
 */
#include <jansson.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/codec.h"
#include "common/error.h"
#include "tenants/store.h"
#include "tenants/visitors.h"

#define VIS_REC_VERSION 1
#define VIS_REC_SIZE 32
#define EVENT_MAX 1024

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int get_visitor_txn(pv_tenants_t *t, MDB_txn *txn, uint64_t gid, uint64_t tenant, pv_visitor_t *out)
{
    uint8_t k[16];
    put_be64(k, gid);
    put_be64(k + 8, tenant);
    MDB_val key = {sizeof(k), k}, val;
    int rc = pv_tenants_lmdb_err(mdb_get(txn, t->visitors, &key, &val));
    if (rc != 0)
        return rc;
    const uint8_t *p = val.mv_data;
    if (val.mv_size != VIS_REC_SIZE || p[0] != VIS_REC_VERSION)
        return PV_EFORMAT;
    out->gid = gid;
    out->first_seen_ms = (int64_t)get_le64(p + 8);
    out->last_seen_ms = (int64_t)get_le64(p + 16);
    out->visits = get_le64(p + 24);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define META_DELIVERED "outbox_delivered"
#define META_DELIVERED_MS "outbox_delivered_ms"
#define META_SEQ "outbox_seq" /* the highest sequence number ever used: numbers never repeat */

static uint64_t meta_u64(pv_tenants_t *t, MDB_txn *txn, const char *name)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    return mdb_get(txn, t->meta, &k, &v) == MDB_SUCCESS && v.mv_size == 8 ? get_le64(v.mv_data) : 0;
}

static int meta_put_u64(pv_tenants_t *t, MDB_txn *txn, const char *name, uint64_t value)
{
    uint8_t b[8];
    put_le64(b, value);
    MDB_val k = {strlen(name), (void *)name}, v = {sizeof(b), b};
    return pv_tenants_lmdb_err(mdb_put(txn, t->meta, &k, &v, 0));
}

/* Appends one event to the outbox at the next sequence number (store.h). */
int pv_store_outbox_append(pv_tenants_t *t, MDB_txn *txn, json_t *ev)
{
    uint8_t id[16], k[8];
    char hex[33];
    int rc;
    MDB_cursor *c = NULL;
    MDB_val key, val;
    uint64_t seq;

    if (ev == NULL || pv_random_bytes(id, sizeof(id)) != 0) {
        json_decref(ev);
        return PV_ENOMEM;
    }
    pv_hex_encode(hex, id, sizeof(id));
    /* a caller-chosen id (an idempotency key, e.g. a till's event id) is kept */
    if (!json_is_string(json_object_get(ev, "event_id")))
        json_object_set_new(ev, "event_id", json_string(hex));
    /* when it entered the outbox (not when it happened): the writer's age metric */
    json_object_set_new(ev, "queued_ms", json_integer((json_int_t)now_ms()));
    char *text = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(ev);
    if (text == NULL)
        return PV_ENOMEM;
    if ((rc = pv_tenants_lmdb_err(mdb_cursor_open(txn, t->outbox, &c))) != 0)
        goto out;
    /* after the last key and after every number ever used (a store from before
     * META_SEQ has only its last key), so an emptied outbox does not renumber */
    seq = meta_u64(t, txn, META_SEQ) + 1;
    rc = mdb_cursor_get(c, &key, &val, MDB_LAST);
    if (rc == MDB_SUCCESS && key.mv_size == 8 && get_be64(key.mv_data) >= seq)
        seq = get_be64(key.mv_data) + 1;
    else if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND && (rc = pv_tenants_lmdb_err(rc)) != 0)
        goto out;
    put_be64(k, seq);
    key = (MDB_val){sizeof(k), k};
    val = (MDB_val){strlen(text), text};
    if ((rc = pv_tenants_lmdb_err(mdb_put(txn, t->outbox, &key, &val, MDB_APPEND))) == 0)
        rc = meta_put_u64(t, txn, META_SEQ, seq);
out:
    if (c != NULL)
        mdb_cursor_close(c);
    free(text);
    return rc;
}

int pv_visits_record(pv_tenants_t *t, const pv_tenant_t *tn, const pv_visit_t *v, size_t n, pv_visitor_t *out)
{
    MDB_txn *txn = NULL;
    int rc;
    if (n > PV_VISITS_MAX)
        return PV_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (v[i].gid == 0 || v[i].location == NULL || v[i].camera == NULL)
            return PV_EINVAL;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, 0, &txn))) != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        pv_visitor_t *o = &out[i];
        memset(o, 0, sizeof(*o));
        if ((rc = pv_visitor_id_encode(o->id, tn->secret, tn->id, v[i].gid)) != 0)
            break;
        rc = get_visitor_txn(t, txn, v[i].gid, tn->id, o);
        if (rc == PV_ENOTFOUND) {
            o->gid = v[i].gid;
            o->first_seen_ms = o->last_seen_ms = v[i].ts_ms;
            o->visits = 0;
            /* the reverse mapping, written once per (tenant, visitor) */
            uint8_t rk[8 + PV_VISITOR_ID_LEN], gv[8];
            put_be64(rk, tn->id);
            memcpy(rk + 8, o->id, PV_VISITOR_ID_LEN);
            put_be64(gv, v[i].gid);
            MDB_val key = {sizeof(rk), rk}, val = {sizeof(gv), gv};
            rc = pv_tenants_lmdb_err(mdb_put(txn, t->visitor_ids, &key, &val, 0));
        }
        if (rc != 0)
            break;
        if (v[i].ts_ms < o->first_seen_ms)
            o->first_seen_ms = v[i].ts_ms;
        if (v[i].ts_ms > o->last_seen_ms)
            o->last_seen_ms = v[i].ts_ms;
        o->visits++;
        uint8_t k[16], rec[VIS_REC_SIZE] = {VIS_REC_VERSION};
        put_be64(k, v[i].gid);
        put_be64(k + 8, tn->id);
        put_le64(rec + 8, (uint64_t)o->first_seen_ms);
        put_le64(rec + 16, (uint64_t)o->last_seen_ms);
        put_le64(rec + 24, o->visits);
        MDB_val key = {sizeof(k), k}, val = {sizeof(rec), rec};
        if ((rc = pv_tenants_lmdb_err(mdb_put(txn, t->visitors, &key, &val, 0))) != 0)
            break;
        json_t *ev =
            json_pack("{s:s, s:I, s:s, s:s, s:s, s:I, s:s}", "type", "visit", "tenant_id", (json_int_t)tn->id,
                      "visitor", o->id, "location", v[i].location, "camera", v[i].camera, "ts_ms",
                      (json_int_t)v[i].ts_ms, "status", v[i].is_new ? "new" : "returning");
        if (ev != NULL && v[i].distance >= 0)
            json_object_set_new(ev, "distance", json_real(v[i].distance));
        rc = pv_store_outbox_append(t, txn, ev);
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return pv_tenants_lmdb_err(mdb_txn_commit(txn));
}

int pv_visitor_of_gid(pv_tenants_t *t, const pv_tenant_t *tn, uint64_t gid, pv_visitor_t *out)
{
    MDB_txn *txn = NULL;
    memset(out, 0, sizeof(*out));
    int rc = pv_visitor_id_encode(out->id, tn->secret, tn->id, gid);
    if (rc != 0)
        return rc;
    out->gid = gid;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn))) != 0)
        return rc;
    rc = get_visitor_txn(t, txn, gid, tn->id, out);
    mdb_txn_abort(txn);
    return rc;
}

/* Decodes text and checks the tenant knows the visitor, inside txn. */
static int find_txn(pv_tenants_t *t, MDB_txn *txn, const pv_tenant_t *tn, const char *text, size_t len,
                    pv_visitor_t *out)
{
    uint64_t gid;
    memset(out, 0, sizeof(*out));
    if (pv_visitor_id_decode(&gid, tn->secret, tn->id, text, len) != 0 || len != PV_VISITOR_ID_LEN)
        return PV_ENOTFOUND;
    memcpy(out->id, text, PV_VISITOR_ID_LEN);
    out->id[PV_VISITOR_ID_LEN] = '\0';
    return get_visitor_txn(t, txn, gid, tn->id, out);
}

int pv_visitor_get(pv_tenants_t *t, const pv_tenant_t *tn, const char *text, size_t len, pv_visitor_t *out)
{
    MDB_txn *txn = NULL;
    int rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn));
    if (rc != 0)
        return rc;
    rc = find_txn(t, txn, tn, text, len, out);
    mdb_txn_abort(txn);
    return rc;
}

/* Queues gid for removal from the gallery (inside txn). */
static int forget_put(pv_tenants_t *t, MDB_txn *txn, uint64_t gid)
{
    uint8_t k[8], v[8];
    put_be64(k, gid);
    put_le64(v, (uint64_t)now_ms());
    MDB_val key = {sizeof(k), k}, val = {sizeof(v), v};
    return pv_tenants_lmdb_err(mdb_put(txn, t->forget, &key, &val, 0));
}

/* How many tenants map gid (keys (gid, *) of `visitors`), inside txn. */
static int mappings_txn(pv_tenants_t *t, MDB_txn *txn, uint64_t gid, size_t *n)
{
    MDB_cursor *c;
    MDB_val key, val;
    uint8_t lo[16] = {0};
    int rc = mdb_cursor_open(txn, t->visitors, &c);
    if (rc != MDB_SUCCESS)
        return pv_tenants_lmdb_err(rc);
    *n = 0;
    put_be64(lo, gid);
    key = (MDB_val){sizeof(lo), lo};
    for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        if (key.mv_size != 16 || get_be64(key.mv_data) != gid)
            break;
        (*n)++;
    }
    mdb_cursor_close(c);
    return rc == MDB_SUCCESS || rc == MDB_NOTFOUND ? 0 : pv_tenants_lmdb_err(rc);
}

int pv_forget_list(pv_tenants_t *t, uint64_t *gids, size_t max, size_t *n)
{
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val key, val;
    *n = 0;
    int rc = mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn);
    if (rc != MDB_SUCCESS)
        return pv_tenants_lmdb_err(rc);
    if ((rc = mdb_cursor_open(txn, t->forget, &c)) == MDB_SUCCESS) {
        for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == MDB_SUCCESS && *n < max;
             rc = mdb_cursor_get(c, &key, &val, MDB_NEXT))
            if (key.mv_size == 8)
                gids[(*n)++] = get_be64(key.mv_data);
        mdb_cursor_close(c);
    }
    mdb_txn_abort(txn);
    return rc == MDB_SUCCESS || rc == MDB_NOTFOUND ? 0 : pv_tenants_lmdb_err(rc);
}

int pv_forget_done(pv_tenants_t *t, uint64_t gid)
{
    MDB_txn *txn;
    uint8_t k[8];
    put_be64(k, gid);
    MDB_val key = {sizeof(k), k};
    int rc = mdb_txn_begin(t->env, NULL, 0, &txn);
    if (rc != MDB_SUCCESS)
        return pv_tenants_lmdb_err(rc);
    rc = mdb_del(txn, t->forget, &key, NULL);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return pv_tenants_lmdb_err(rc);
    }
    return pv_tenants_lmdb_err(mdb_txn_commit(txn));
}

int pv_forget_pending(pv_tenants_t *t, uint64_t gid)
{
    MDB_txn *txn;
    uint8_t k[8];
    put_be64(k, gid);
    MDB_val key = {sizeof(k), k}, val;
    if (mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn) != MDB_SUCCESS)
        return 0;
    int rc = mdb_get(txn, t->forget, &key, &val);
    mdb_txn_abort(txn);
    return rc == MDB_SUCCESS;
}

int pv_forget_any(pv_tenants_t *t)
{
    MDB_txn *txn;
    MDB_stat st;
    if (mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn) != MDB_SUCCESS)
        return 0;
    int rc = mdb_stat(txn, t->forget, &st);
    mdb_txn_abort(txn);
    return rc == MDB_SUCCESS && st.ms_entries > 0;
}

int pv_visitors_expire(pv_tenants_t *t, const pv_tenant_t *tn, int64_t before_ms, size_t max, size_t *expired)
{
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    MDB_val key, val;
    uint8_t lo[8];
    struct gone {
        uint8_t rk[8 + PV_VISITOR_ID_LEN];
        uint64_t gid;
    } *gone = NULL;
    size_t n = 0;
    *expired = 0;
    if (max == 0)
        return 0;
    if ((gone = malloc(max * sizeof(*gone))) == NULL)
        return PV_ENOMEM;
    int rc = mdb_txn_begin(t->env, NULL, 0, &txn);
    if (rc != MDB_SUCCESS)
        goto out_lmdb;
    if ((rc = mdb_cursor_open(txn, t->visitor_ids, &c)) != MDB_SUCCESS)
        goto out_lmdb;
    /* visitor_ids (tenant, ID) -> gid: this tenant's visitors, unseen since before_ms */
    put_be64(lo, tn->id);
    key = (MDB_val){sizeof(lo), lo};
    for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); rc == MDB_SUCCESS && n < max;
         rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        if (key.mv_size < 8 || get_be64(key.mv_data) != tn->id)
            break;
        if (key.mv_size != sizeof(gone[0].rk) || val.mv_size != 8)
            continue;
        uint64_t gid = get_be64(val.mv_data);
        pv_visitor_t v;
        int r = get_visitor_txn(t, txn, gid, tn->id, &v);
        if (r != 0 && r != PV_ENOTFOUND) {
            rc = r;
            goto out;
        }
        if (r == 0 && v.last_seen_ms >= before_ms)
            continue;
        memcpy(gone[n].rk, key.mv_data, sizeof(gone[n].rk));
        gone[n++].gid = gid;
    }
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        goto out_lmdb;
    mdb_cursor_close(c);
    c = NULL;
    /* both mappings go; an identity no tenant maps any more is queued to leave the gallery */
    for (size_t i = 0; i < n; i++) {
        uint8_t vk[16];
        put_be64(vk, gone[i].gid);
        put_be64(vk + 8, tn->id);
        MDB_val rkey = {sizeof(gone[i].rk), gone[i].rk}, vkey = {sizeof(vk), vk};
        if ((rc = mdb_del(txn, t->visitor_ids, &rkey, NULL)) != MDB_SUCCESS)
            goto out_lmdb;
        rc = mdb_del(txn, t->visitors, &vkey, NULL);
        if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
            goto out_lmdb;
        size_t others = 0;
        if ((rc = mappings_txn(t, txn, gone[i].gid, &others)) != 0 ||
            (others == 0 && (rc = forget_put(t, txn, gone[i].gid)) != 0))
            goto out;
    }
    rc = pv_tenants_lmdb_err(mdb_txn_commit(txn));
    txn = NULL;
    if (rc == 0)
        *expired = n;
    goto out;
out_lmdb:
    rc = pv_tenants_lmdb_err(rc);
out:
    if (c != NULL)
        mdb_cursor_close(c);
    if (txn != NULL)
        mdb_txn_abort(txn);
    free(gone);
    return rc;
}

int pv_visitor_erase(pv_tenants_t *t, const pv_tenant_t *tn, const char *text, size_t len, uint64_t *gid,
                     size_t *others)
{
    MDB_txn *txn = NULL;
    pv_visitor_t v;
    int rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, 0, &txn));
    if (rc != 0)
        return rc;
    *others = 0;
    if ((rc = find_txn(t, txn, tn, text, len, &v)) != 0)
        goto out;
    *gid = v.gid;
    uint8_t k[16], rk[8 + PV_VISITOR_ID_LEN];
    put_be64(k, v.gid);
    put_be64(k + 8, tn->id);
    put_be64(rk, tn->id);
    memcpy(rk + 8, v.id, PV_VISITOR_ID_LEN);
    MDB_val key = {sizeof(k), k}, rkey = {sizeof(rk), rk};
    if ((rc = pv_tenants_lmdb_err(mdb_del(txn, t->visitors, &key, NULL))) != 0)
        goto out;
    rc = pv_tenants_lmdb_err(mdb_del(txn, t->visitor_ids, &rkey, NULL));
    if (rc != 0 && rc != PV_ENOTFOUND)
        goto out;
    /* other tenants that still map this gid; none: the identity is queued to leave the gallery */
    if ((rc = mappings_txn(t, txn, v.gid, others)) != 0 || (*others == 0 && (rc = forget_put(t, txn, v.gid)) != 0))
        goto out;
    /* The event names the visitor (its tenant-scoped ID, never the gid) so the writer can
     * delete that visitor's analytics rows; the erasures table it writes keeps only that one
     * happened (tenant, time, visit count). The outbox is our own store, already holding
     * this visitor's ID in its visit events. */
    json_t *ev = json_pack("{s:s, s:I, s:s, s:I, s:I}", "type", "erasure", "tenant_id", (json_int_t)tn->id,
                           "visitor", v.id, "ts_ms", (json_int_t)now_ms(), "visits", (json_int_t)v.visits);
    if ((rc = pv_store_outbox_append(t, txn, ev)) != 0)
        goto out;
    /* the visitor's own events still waiting in the outbox are its data too: the writer
     * applies the erasure after them in sequence order, so PostgreSQL ends without them */
    rc = pv_tenants_lmdb_err(mdb_txn_commit(txn));
    txn = NULL;
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    return rc;
}

int pv_outbox_stat(pv_tenants_t *t, uint64_t *count, uint64_t *last_seq)
{
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    MDB_stat st;
    MDB_val key, val;
    int rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn));
    if (rc != 0)
        return rc;
    *count = *last_seq = 0;
    if ((rc = pv_tenants_lmdb_err(mdb_stat(txn, t->outbox, &st))) == 0 &&
        (rc = pv_tenants_lmdb_err(mdb_cursor_open(txn, t->outbox, &c))) == 0) {
        *count = st.ms_entries;
        *last_seq = meta_u64(t, txn, META_SEQ);
        int r = mdb_cursor_get(c, &key, &val, MDB_LAST);
        if (r == MDB_SUCCESS && key.mv_size == 8 && get_be64(key.mv_data) > *last_seq)
            *last_seq = get_be64(key.mv_data);
        else if (r != MDB_SUCCESS && r != MDB_NOTFOUND)
            rc = pv_tenants_lmdb_err(r);
        mdb_cursor_close(c);
    }
    mdb_txn_abort(txn);
    return rc;
}

int pv_outbox_get(pv_tenants_t *t, uint64_t seq, char *buf, size_t size)
{
    MDB_txn *txn = NULL;
    uint8_t k[8];
    put_be64(k, seq);
    MDB_val key = {sizeof(k), k}, val;
    int rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn));
    if (rc != 0)
        return rc;
    if ((rc = pv_tenants_lmdb_err(mdb_get(txn, t->outbox, &key, &val))) == 0) {
        if (val.mv_size + 1 > size) {
            rc = PV_ELIMIT;
        } else {
            memcpy(buf, val.mv_data, val.mv_size);
            buf[val.mv_size] = '\0';
        }
    }
    mdb_txn_abort(txn);
    return rc;
}

int pv_outbox_read(pv_tenants_t *t, uint64_t after_seq, size_t max, pv_outbox_cb cb, void *arg, size_t *n)
{
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    uint8_t k[8];
    MDB_val key, val;
    int rc, r;
    *n = 0;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn))) != 0)
        return rc;
    if ((rc = pv_tenants_lmdb_err(mdb_cursor_open(txn, t->outbox, &c))) != 0)
        goto out;
    put_be64(k, after_seq);
    key = (MDB_val){sizeof(k), k};
    for (r = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); r == MDB_SUCCESS && *n < max;
         r = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        if (key.mv_size != 8)
            continue;
        uint64_t seq = get_be64(key.mv_data);
        if (seq <= after_seq)
            continue;
        (*n)++;
        if (cb(arg, seq, val.mv_data, val.mv_size) != 0)
            break;
    }
    if (r != MDB_SUCCESS && r != MDB_NOTFOUND)
        rc = pv_tenants_lmdb_err(r);
out:
    if (c != NULL)
        mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return rc;
}

int pv_outbox_delivery(pv_tenants_t *t, int64_t *last_ms, uint64_t *delivered)
{
    MDB_txn *txn = NULL;
    int rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn));
    if (rc != 0)
        return rc;
    *last_ms = (int64_t)meta_u64(t, txn, META_DELIVERED_MS);
    *delivered = meta_u64(t, txn, META_DELIVERED);
    mdb_txn_abort(txn);
    return 0;
}

int pv_outbox_delete_upto(pv_tenants_t *t, uint64_t seq, uint64_t *deleted)
{
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    MDB_val key, val;
    uint64_t count = 0;
    int rc, r;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, 0, &txn))) != 0)
        return rc;
    if ((rc = pv_tenants_lmdb_err(mdb_cursor_open(txn, t->outbox, &c))) != 0)
        goto out;
    for (r = mdb_cursor_get(c, &key, &val, MDB_FIRST); r == MDB_SUCCESS;
         r = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        if (key.mv_size == 8 && get_be64(key.mv_data) > seq)
            break;
        if ((r = mdb_cursor_del(c, 0)) != MDB_SUCCESS)
            break;
        count++;
    }
    if (r != MDB_SUCCESS && r != MDB_NOTFOUND) {
        rc = pv_tenants_lmdb_err(r);
        goto out;
    }
    mdb_cursor_close(c);
    c = NULL;
    if (count > 0) {
        /* the delivery record for `privid-admin analytics status`, in the same transaction */
        uint64_t total = meta_u64(t, txn, META_DELIVERED);
        if ((rc = meta_put_u64(t, txn, META_DELIVERED, total + count)) != 0 ||
            (rc = meta_put_u64(t, txn, META_DELIVERED_MS, (uint64_t)now_ms())) != 0)
            goto out;
    }
    rc = pv_tenants_lmdb_err(mdb_txn_commit(txn));
    txn = NULL;
    if (rc == 0 && deleted != NULL)
        *deleted = count;
out:
    if (c != NULL)
        mdb_cursor_close(c);
    if (txn != NULL)
        mdb_txn_abort(txn);
    return rc;
}

/* Adds n to the u64 counter at key (13 bytes) in txn; *out = new value. */
static int counter_add(pv_tenants_t *t, MDB_txn *txn, const uint8_t *key, uint64_t n, uint64_t *out)
{
    MDB_val k = {13, (void *)key}, v;
    uint64_t cur = 0;
    int rc = mdb_get(txn, t->usage, &k, &v);
    if (rc == MDB_SUCCESS && v.mv_size == 8)
        cur = get_le64(v.mv_data);
    else if (rc != MDB_NOTFOUND && rc != MDB_SUCCESS)
        return pv_tenants_lmdb_err(rc);
    uint8_t b[8];
    put_le64(b, cur + n);
    v = (MDB_val){sizeof(b), b};
    if (out != NULL)
        *out = cur + n;
    return pv_tenants_lmdb_err(mdb_put(txn, t->usage, &k, &v, 0));
}

static uint64_t month_count_txn(pv_tenants_t *t, MDB_txn *txn, const uint8_t *key)
{
    MDB_val k = {13, (void *)key}, v;
    return mdb_get(txn, t->usage, &k, &v) == MDB_SUCCESS && v.mv_size == 8 ? get_le64(v.mv_data) : 0;
}

/* The usage key of tenant, kind ('M', 'D', 'R', 'F') and period (yyyymm or yyyymmdd). */
static void usage_key(uint8_t *k, uint64_t tenant_id, char kind, uint32_t period)
{
    put_be64(k, tenant_id);
    k[8] = (uint8_t)kind;
    for (int i = 0; i < 4; i++)
        k[9 + i] = (uint8_t)(period >> (24 - 8 * i));
}

/* The UTC yyyymm and yyyymmdd of now_ms. */
static int usage_periods(int64_t now_ms, uint32_t *ym, uint32_t *ymd)
{
    time_t s = (time_t)(now_ms / 1000);
    struct tm tm;
    if (gmtime_r(&s, &tm) == NULL)
        return PV_EINVAL;
    *ym = (uint32_t)(tm.tm_year + 1900) * 100 + (uint32_t)tm.tm_mon + 1;
    *ymd = *ym * 100 + (uint32_t)tm.tm_mday;
    return 0;
}

int pv_usage_take(pv_tenants_t *t, uint64_t tenant_id, int64_t now_ms, uint64_t quota, uint64_t images,
                  uint64_t *month_used)
{
    uint8_t mk[13], dk[13], rk[13];
    MDB_txn *txn = NULL;
    uint64_t used = 0;
    uint32_t ym, ymd;
    if (usage_periods(now_ms, &ym, &ymd) != 0)
        return PV_EINVAL;
    usage_key(mk, tenant_id, 'M', ym);
    usage_key(dk, tenant_id, 'D', ymd);
    usage_key(rk, tenant_id, 'R', ymd);
    int rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, 0, &txn));
    if (rc != 0)
        return rc;
    used = month_count_txn(t, txn, mk);
    if (quota > 0 && used + images > quota) {
        /* refused: no image counted, but the request is (usage_daily.requests) */
        if (month_used != NULL)
            *month_used = used;
        if ((rc = counter_add(t, txn, rk, 1, NULL)) != 0) {
            mdb_txn_abort(txn);
            return rc;
        }
        rc = pv_tenants_lmdb_err(mdb_txn_commit(txn));
        return rc != 0 ? rc : PV_ELIMIT;
    }
    if ((rc = counter_add(t, txn, mk, images, &used)) != 0 ||
        (rc = counter_add(t, txn, dk, images, NULL)) != 0 || (rc = counter_add(t, txn, rk, 1, NULL)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    if (month_used != NULL)
        *month_used = used;
    return pv_tenants_lmdb_err(mdb_txn_commit(txn));
}

int pv_usage_faces(pv_tenants_t *t, uint64_t tenant_id, int64_t now_ms, uint64_t faces)
{
    uint8_t fk[13];
    MDB_txn *txn = NULL;
    uint32_t ym, ymd;
    if (faces == 0)
        return 0;
    if (usage_periods(now_ms, &ym, &ymd) != 0)
        return PV_EINVAL;
    usage_key(fk, tenant_id, 'F', ymd);
    int rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, 0, &txn));
    if (rc != 0)
        return rc;
    if ((rc = counter_add(t, txn, fk, faces, NULL)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return pv_tenants_lmdb_err(mdb_txn_commit(txn));
}

static uint64_t day_count_txn(pv_tenants_t *t, MDB_txn *txn, uint64_t tenant_id, char kind, uint32_t ymd)
{
    uint8_t k[13];
    usage_key(k, tenant_id, kind, ymd);
    return month_count_txn(t, txn, k);
}

/*
 * Keys sort by tenant, then kind ('D' < 'F' < 'M' < 'R'), then day, so a day
 * can appear under up to three kinds. Each day is reported once: at its 'D'
 * key, or at its 'F' / 'R' key when the kinds before it have no such day
 * (a day whose every request was refused by the quota has only 'R').
 */
int pv_usage_days(pv_tenants_t *t, uint64_t tenant_id, uint32_t from_ymd, uint32_t to_ymd, pv_usage_cb cb,
                  void *arg)
{
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    MDB_val key, val;
    uint8_t start[8];
    int rc, r;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn))) != 0)
        return rc;
    if ((rc = pv_tenants_lmdb_err(mdb_cursor_open(txn, t->usage, &c))) != 0)
        goto out;
    put_be64(start, tenant_id);
    key = (MDB_val){sizeof(start), start};
    for (r = mdb_cursor_get(c, &key, &val, tenant_id != 0 ? MDB_SET_RANGE : MDB_FIRST); r == MDB_SUCCESS;
         r = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        if (key.mv_size != 13 || val.mv_size != 8)
            continue;
        const uint8_t *k = key.mv_data;
        pv_usage_day_t d = {.tenant_id = get_be64(k)};
        if (tenant_id != 0 && d.tenant_id != tenant_id)
            break;
        char kind = (char)k[8];
        if (kind != 'D' && kind != 'F' && kind != 'R')
            continue;
        d.ymd = (uint32_t)k[9] << 24 | (uint32_t)k[10] << 16 | (uint32_t)k[11] << 8 | k[12];
        if (d.ymd < from_ymd || (to_ymd != 0 && d.ymd > to_ymd))
            continue;
        d.images = day_count_txn(t, txn, d.tenant_id, 'D', d.ymd);
        d.faces = day_count_txn(t, txn, d.tenant_id, 'F', d.ymd);
        d.requests = day_count_txn(t, txn, d.tenant_id, 'R', d.ymd);
        if ((kind == 'F' && d.images > 0) || (kind == 'R' && (d.images > 0 || d.faces > 0)))
            continue; /* reported at an earlier kind */
        if (cb(arg, &d) != 0)
            break;
    }
    if (r != MDB_SUCCESS && r != MDB_NOTFOUND)
        rc = pv_tenants_lmdb_err(r);
out:
    if (c != NULL)
        mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return rc;
}

int pv_retention_sweep(pv_tenants_t *t, int64_t now_ms, uint64_t only_tenant, size_t *expired)
{
    pv_tenant_t *all = NULL;
    size_t n = 0;
    *expired = 0;
    int rc = pv_tenants_list(t, &all, &n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if ((only_tenant != 0 && all[i].id != only_tenant) || all[i].retention_days == 0)
            continue;
        int64_t before = now_ms - (int64_t)all[i].retention_days * 86400000;
        size_t got = 0;
        do { /* bounded write transactions */
            rc = pv_visitors_expire(t, &all[i], before, 1000, &got);
            *expired += got;
        } while (rc == 0 && got == 1000);
    }
    if (all != NULL)
        explicit_bzero(all, n * sizeof(*all));
    free(all);
    return rc;
}
