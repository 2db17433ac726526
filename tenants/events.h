/*
 * Business events (POST /v1/events): a tenant's till or app reports what a
 * visitor did (a purchase, or a custom event type) against a visitor ID the
 * tenant already knows. A batch is parsed and checked field by field, and
 * every acceptable event is appended to the analytics outbox in ONE LMDB
 * transaction together with its idempotency record, so a retried batch
 * never writes an event twice and an acknowledged event is never lost.
 */
#ifndef PV_TENANTS_EVENTS_H
#define PV_TENANTS_EVENTS_H

#include <stddef.h>
#include <stdint.h>
#include "tenants/tenants.h"

#define PV_EVENTS_BATCH_MAX 500          /* events in one batch (413 above) */
#define PV_EVENTS_BODY_MAX (1024 * 1024) /* bytes of one batch's JSON (413 above) */
#define PV_EVENT_ID_MAX 64               /* client event_id: 1..64 of [A-Za-z0-9_-] */
#define PV_EVENT_TYPE_MAX 32             /* "purchase" or a custom [a-z0-9_]{1,32} */
#define PV_EVENT_LABEL_MAX 64            /* location: the recognition API's label rule */
#define PV_EVENT_ATTRS_KEYS_MAX 16       /* attrs: at most 16 keys ... */
#define PV_EVENT_ATTRS_BYTES_MAX 1024    /* ... and 1 KB serialized, scalar values only */
#define PV_EVENT_FUTURE_MS (5 * 60 * 1000) /* ts may run ahead of the server by 5 minutes */
#define PV_EVENT_AMOUNT_MAX 1000000000000000LL /* 10^15 minor units: far above any till */
#define PV_EVENT_REASON_MAX 128

typedef struct json_t json_t;

typedef enum {
    PV_EVENT_ACCEPTED = 0,  /* appended to the outbox by this call */
    PV_EVENT_DUPLICATE = 1, /* its event_id was stored before: nothing written */
    PV_EVENT_REJECTED = 2,  /* invalid: reason says why; nothing written */
} pv_event_status_t;

typedef struct {
    pv_event_status_t status;
    char reason[PV_EVENT_REASON_MAX]; /* "" unless rejected */
} pv_event_result_t;

/* Batch-level failures of pv_events_parse: what to answer and why. */
typedef struct {
    int status; /* 400 malformed JSON, 413 too many events or too large, 422 wrong shape */
    char text[200];
} pv_events_error_t;

/* "accepted" / "duplicate" / "rejected"; a static string. */
const char *pv_event_status_name(pv_event_status_t s);

/*
 * Parses a request body {"events":[...]} (len <= PV_EVENTS_BODY_MAX, at most
 * PV_EVENTS_BATCH_MAX events, at least one; no other top-level key). *events
 * receives the array (a new reference the caller owns and json_decref()s).
 * Returns 0, or PV_EINVAL / PV_ELIMIT with err filled (malformed JSON names
 * its line, column and byte position). The events themselves are not
 * checked here: see pv_events_append().
 */
int pv_events_parse(json_t **events, const char *body, size_t len, pv_events_error_t *err);

/*
 * Checks one event object against the rules, without the store (so it can be
 * fuzzed and tested alone): event_id, type, ts within [now - retention,
 * now + PV_EVENT_FUTURE_MS], visitor present (its existence is the store's
 * question), location, amount_minor/currency, attrs, no unknown field.
 * Returns 0, or PV_EINVAL with reason (size bytes) filled.
 */
int pv_event_check(const json_t *ev, int64_t now_ms, uint32_t retention_days, char *reason, size_t size);

/*
 * Validates and appends the events of `events` (a JSON array, at most
 * PV_EVENTS_BATCH_MAX) for tenant tn in one write transaction. results[i]
 * (results has json_array_size(events) entries, caller-owned) tells event i's
 * fate: rejected (pv_event_check, an unknown visitor of this tenant, or an
 * event_id repeated earlier in the same batch), duplicate (event_id already
 * stored for this tenant) or accepted (outbox event appended and the
 * (tenant, event_id) -> sequence record written). *accepted receives how many
 * were appended. Returns 0, PV_EINVAL (not an array, too many), or an LMDB
 * error (PV_ESTORE, PV_ELIMIT), in which case nothing at all is written.
 */
int pv_events_append(pv_tenants_t *t, const pv_tenant_t *tn, const json_t *events, int64_t now_ms,
                     pv_event_result_t *results, size_t *accepted);

/*
 * Prunes idempotency records (the (tenant, event_id) records that make a
 * retry a duplicate) that can no longer matter: an event whose time is older
 * than its tenant's retention period is refused by pv_event_check anyway, so
 * its record goes once ts < now_ms - retention_days; a deleted tenant's
 * records all go. The age of what is kept is thus bounded by the retention
 * (PV_TENANT_RETENTION_MAX at most). Deletes at most `max` records in one
 * write transaction (a bounded lock on the store): call again while *pruned
 * == max. (A retention raised later could accept a pruned event again;
 * PostgreSQL's primary key (tenant_id, ts, event_id) still stores it once.)
 * Returns 0 or an LMDB error (PV_ESTORE).
 */
int pv_events_prune(pv_tenants_t *t, int64_t now_ms, size_t max, size_t *pruned);

#endif
