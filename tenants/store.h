/*
 * Internal to tenants/: the store's LMDB handles, shared by tenants.c (tenants
 * and keys), visitors.c (visitor mappings and the analytics outbox) and
 * events.c (business events and their idempotency records). Not for other
 * components: they use tenants.h, visitors.h and events.h.
 */
#ifndef PV_TENANTS_STORE_H
#define PV_TENANTS_STORE_H

#include <lmdb.h>
#include "tenants/tenants.h"

struct pv_tenants {
    MDB_env *env;
    MDB_dbi tenants, names, keys, meta;
    MDB_dbi visitors, visitor_ids, outbox, usage;
    MDB_dbi event_ids; /* business events: (tenant, client event_id) -> outbox seq (events.c) */
    MDB_dbi forget;    /* gids no tenant maps any more, to leave the gallery (visitors.c) */
};

/* LMDB return codes -> PV_E* (the one translation of the store). */
int pv_tenants_lmdb_err(int rc);

typedef struct json_t json_t;
/* Adds a random "event_id" to ev unless it has a string one (taking ownership
 * of ev) and a "queued_ms" (now), and appends it to the outbox inside txn, at
 * the next sequence number. */
int pv_store_outbox_append(pv_tenants_t *t, MDB_txn *txn, json_t *ev);

#endif
