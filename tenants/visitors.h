/*
 * Visitors: the per-tenant face of a global identity, in the tenants store.
 * `visitors` maps (gid, tenant) -> first/last seen and visit count;
 * `visitor_ids` maps (tenant, visitor ID) -> gid; `outbox` holds the
 * analytics events (sequence -> JSON) until the writer delivers them. A
 * recognition's visitor updates and its visit events commit in one LMDB
 * transaction, so an acknowledged visit is never missing from the outbox
 * and the outbox never holds a visit the counters do not.
 */
#ifndef PV_TENANTS_VISITORS_H
#define PV_TENANTS_VISITORS_H

#include <stddef.h>
#include <stdint.h>
#include "tenants/tenants.h"
#include "tenants/visitor_id.h"

#define PV_VISITS_MAX 64 /* visits recorded in one transaction (faces of one image) */

typedef struct {
    char id[PV_VISITOR_ID_LEN + 1]; /* the tenant's visitor ID */
    uint64_t gid;                   /* internal; never shown to a tenant */
    int64_t first_seen_ms, last_seen_ms;
    uint64_t visits;
} pv_visitor_t;

/* One visit to record. Labels may be "" (not NULL). */
typedef struct {
    uint64_t gid;
    int64_t ts_ms;
    const char *location, *camera;
    int is_new;      /* the identity was enrolled by this visit */
    double distance; /* to the identity; negative when new */
} pv_visit_t;

/*
 * Records n visits of tenant tn in one transaction: creates or updates each
 * visitor (first seen = earliest, last seen = latest visit time, visits + 1)
 * and appends one visit event per face to the outbox. out[i] receives the
 * visitor after the update. Errors: PV_EINVAL (n > PV_VISITS_MAX, gid 0),
 * PV_ESTORE / PV_ELIMIT (LMDB); nothing is written on error.
 */
int pv_visits_record(pv_tenants_t *t, const pv_tenant_t *tn, const pv_visit_t *v, size_t n,
                     pv_visitor_t *out);

/* The visitor ID of gid for tenant tn, and its record when the tenant has
 * seen it (PV_ENOTFOUND otherwise; out->id is set either way). */
int pv_visitor_of_gid(pv_tenants_t *t, const pv_tenant_t *tn, uint64_t gid, pv_visitor_t *out);

/* Looks a visitor ID up for tenant tn. PV_ENOTFOUND when the text is not a
 * visitor ID of this tenant (malformed, forged, another tenant's) or the
 * tenant never saw that visitor (or erased it). */
int pv_visitor_get(pv_tenants_t *t, const pv_tenant_t *tn, const char *text, size_t len, pv_visitor_t *out);

/*
 * Erases visitor `text` of tenant tn: both mappings go and an erasure event
 * is appended to the outbox, in one transaction. The event carries the
 * visitor ID (never the gid) so the analytics writer can delete that
 * visitor's rows in PostgreSQL; the writer records the erasure there without
 * it. *gid receives the identity and *others how many other
 * tenants still map it (0: the caller removes the identity's exemplars).
 * PV_ENOTFOUND as pv_visitor_get().
 */
int pv_visitor_erase(pv_tenants_t *t, const pv_tenant_t *tn, const char *text, size_t len, uint64_t *gid,
                     size_t *others);

/*
 * The forget queue: identities that no tenant maps any more (the last mapping
 * was erased or expired, in the same transaction), which must leave the
 * gallery. Whoever holds the gallery (the gateway) removes them and then
 * calls pv_forget_done; until then they stay queued, across restarts, so an
 * erasure reaches the gallery even when a shard was down or the process died.
 * pv_forget_list copies up to max queued gids (oldest gid order);
 * pv_forget_pending says whether gid is queued (1) or not (0).
 */
int pv_forget_list(pv_tenants_t *t, uint64_t *gids, size_t max, size_t *n);
int pv_forget_done(pv_tenants_t *t, uint64_t gid);
int pv_forget_pending(pv_tenants_t *t, uint64_t gid);
/* Whether anything is queued (one cheap check before per-gid lookups). */
int pv_forget_any(pv_tenants_t *t);

/*
 * Retention: forgets up to max visitors of tenant tn last seen before
 * before_ms (both mappings go, in one transaction; identities no other
 * tenant maps are queued to be forgotten by the gallery). The analytics rows
 * stay: they carry a visitor ID that no face leads back to any more. A later
 * visit of that person is a new visitor. *expired receives how many went;
 * call again while it equals max.
 */
int pv_visitors_expire(pv_tenants_t *t, const pv_tenant_t *tn, int64_t before_ms, size_t max, size_t *expired);

/* The retention sweep: pv_visitors_expire for every tenant (only_tenant 0) or
 * one, with its retention period before now_ms; *expired counts all of them. */
int pv_retention_sweep(pv_tenants_t *t, int64_t now_ms, uint64_t only_tenant, size_t *expired);

/* Events waiting in the outbox and the highest sequence number ever used (0: none). */
int pv_outbox_stat(pv_tenants_t *t, uint64_t *count, uint64_t *last_seq);

/* Copies event `seq` (JSON text, NUL-terminated) into buf (size bytes);
 * PV_ENOTFOUND when there is none, PV_ELIMIT when buf is too small. */
int pv_outbox_get(pv_tenants_t *t, uint64_t seq, char *buf, size_t size);

/*
 * Called by pv_outbox_read for each event in sequence order. json (len bytes,
 * not NUL-terminated) is borrowed: valid only during the call. Returns 0 to
 * go on, nonzero to stop before the next event (this one counts as read).
 */
typedef int (*pv_outbox_cb)(void *arg, uint64_t seq, const char *json, size_t len);

/*
 * Reads up to max events with a sequence number above after_seq, in order,
 * in one read transaction (never blocks writers). *n receives how many were
 * passed to cb. Errors: PV_ESTORE (LMDB).
 */
int pv_outbox_read(pv_tenants_t *t, uint64_t after_seq, size_t max, pv_outbox_cb cb, void *arg, size_t *n);

/*
 * Deletes every event with a sequence number <= seq (what the writer has
 * delivered) in one write transaction; *deleted (may be NULL) receives how
 * many went. An append takes the next number after every number the store
 * ever used (kept in its meta record, so an emptied outbox does not
 * renumber from 1 and an event's sequence number is never reused): events
 * appended after a read always sort after it.
 */
int pv_outbox_delete_upto(pv_tenants_t *t, uint64_t seq, uint64_t *deleted);

/* The delivery record pv_outbox_delete_upto keeps in the store: unix ms of
 * the last delete that removed events (0: never) and how many it removed in
 * all. Lets another process (privid-admin analytics status) see the writer's
 * progress. PV_ESTORE (LMDB). */
int pv_outbox_delivery(pv_tenants_t *t, int64_t *last_ms, uint64_t *delivered);

#endif
