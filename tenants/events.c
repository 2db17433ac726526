/*
 * Business events (see events.h). Idempotency lives in the `event_ids`
 * database: (tenant u64 big-endian, event_id text) -> outbox sequence u64,
 * event time i64 (both big-endian), written in the same transaction as the
 * outbox entry, so "stored" and "remembered" never disagree. The outbox
 * entry keeps the client's event_id (unlike visits, whose ids the store
 * mints): the pair (tenant_id, event_id) identifies a business event.
 */
#include <jansson.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/codec.h"
#include "common/error.h"
#include "tenants/events.h"
#include "tenants/store.h"
#include "tenants/visitor_id.h"

#define DAY_MS 86400000LL

/* ISO 4217 active codes (2024), without the "no currency" code X-X-X and XTS (testing). */
static const char currencies[] =
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN "
    "BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR "
    "KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV "
    "MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG "
    "SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN "
    "UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA "
    "YER ZAR ZMW ZWG ZWL";

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

const char *pv_event_status_name(pv_event_status_t s)
{
    switch (s) {
    case PV_EVENT_ACCEPTED:
        return "accepted";
    case PV_EVENT_DUPLICATE:
        return "duplicate";
    case PV_EVENT_REJECTED:
        return "rejected";
    }
    return "?";
}

static int reject(char *reason, size_t size, const char *fmt, const char *what)
{
    snprintf(reason, size, fmt, what);
    return PV_EINVAL;
}

static int event_id_ok(const char *s, size_t len)
{
    if (len == 0 || len > PV_EVENT_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int type_ok(const char *s, size_t len)
{
    if (len == 0 || len > PV_EVENT_TYPE_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* The recognition API's label rule (gateway/request.c): 1..64 bytes, no control characters. */
static int label_ok(const char *s, size_t len)
{
    if (len == 0 || len > PV_EVENT_LABEL_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

static int currency_ok(const char *s, size_t len)
{
    if (len != 3)
        return 0;
    for (int i = 0; i < 3; i++)
        if (s[i] < 'A' || s[i] > 'Z')
            return 0;
    /* every code in the list is followed by a space or the end, and starts at a multiple of 4 */
    for (const char *p = currencies; (p = strstr(p, s)) != NULL; p++)
        if ((p - currencies) % 4 == 0)
            return 1;
    return 0;
}

/* attrs: an object of at most PV_EVENT_ATTRS_KEYS_MAX scalar members, small when serialized. */
static int attrs_ok(const json_t *a, char *reason, size_t size)
{
    const char *k;
    json_t *v;
    if (!json_is_object(a))
        return reject(reason, size, "%s", "attrs: expected an object");
    if (json_object_size(a) > PV_EVENT_ATTRS_KEYS_MAX)
        return reject(reason, size, "attrs: more than %s keys", "16");
    json_object_foreach((json_t *)a, k, v) {
        size_t kl = strlen(k);
        if (kl == 0 || kl > PV_EVENT_LABEL_MAX)
            return reject(reason, size, "%s", "attrs: keys are 1..64 bytes");
        if (json_is_object(v) || json_is_array(v))
            return reject(reason, size, "attrs.%.64s: only strings, numbers, booleans and null", k);
    }
    char *text = json_dumps(a, JSON_COMPACT);
    size_t n = text != NULL ? strlen(text) : SIZE_MAX;
    free(text);
    if (n > PV_EVENT_ATTRS_BYTES_MAX)
        return reject(reason, size, "attrs: larger than %s bytes serialized", "1024");
    return 0;
}

int pv_event_check(const json_t *ev, int64_t now_ms, uint32_t retention_days, char *reason, size_t size)
{
    static const char *const known[] = {"event_id", "visitor",      "type",     "ts",
                                        "location", "amount_minor", "currency", "attrs"};
    const char *k;
    json_t *v;
    if (!json_is_object(ev))
        return reject(reason, size, "%s", "expected an object");
    json_object_foreach((json_t *)ev, k, v) {
        size_t i = 0;
        while (i < sizeof(known) / sizeof(known[0]) && strcmp(k, known[i]) != 0)
            i++;
        if (i == sizeof(known) / sizeof(known[0]))
            return reject(reason, size, "unknown field \"%.64s\"", k);
    }

    const json_t *id = json_object_get(ev, "event_id");
    if (id == NULL)
        return reject(reason, size, "%s", "event_id: missing");
    if (!json_is_string(id) || !event_id_ok(json_string_value(id), json_string_length(id)))
        return reject(reason, size, "%s", "event_id: expected 1..64 characters of A-Z a-z 0-9 _ -");

    const json_t *vis = json_object_get(ev, "visitor");
    if (vis == NULL)
        return reject(reason, size, "%s", "visitor: missing");
    if (!json_is_string(vis))
        return reject(reason, size, "%s", "visitor: expected a visitor ID string");

    const json_t *type = json_object_get(ev, "type");
    if (type == NULL)
        return reject(reason, size, "%s", "type: missing");
    if (!json_is_string(type) || !type_ok(json_string_value(type), json_string_length(type)))
        return reject(reason, size, "%s", "type: expected \"purchase\" or a custom type of 1..32 [a-z0-9_]");
    const int purchase = strcmp(json_string_value(type), "purchase") == 0;

    const json_t *ts = json_object_get(ev, "ts");
    int64_t ts_ms;
    if (ts == NULL)
        return reject(reason, size, "%s", "ts: missing");
    if (!json_is_string(ts) || pv_rfc3339_parse(&ts_ms, json_string_value(ts), json_string_length(ts)) != 0)
        return reject(reason, size, "%s", "ts: expected an RFC 3339 time such as 2026-12-04T10:00:00Z");
    if (ts_ms > now_ms + PV_EVENT_FUTURE_MS)
        return reject(reason, size, "%s", "ts: more than 5 minutes in the future");
    if (ts_ms < now_ms - (int64_t)retention_days * DAY_MS)
        return reject(reason, size, "%s", "ts: older than the tenant's retention period");

    const json_t *loc = json_object_get(ev, "location");
    if (loc != NULL && (!json_is_string(loc) || !label_ok(json_string_value(loc), json_string_length(loc))))
        return reject(reason, size, "%s", "location: expected a label of 1..64 bytes without control characters");

    const json_t *amt = json_object_get(ev, "amount_minor"), *cur = json_object_get(ev, "currency");
    if (amt != NULL) {
        if (!json_is_integer(amt))
            return reject(reason, size, "%s", "amount_minor: expected an integer (minor units, e.g. cents)");
        if (json_integer_value(amt) < 0)
            return reject(reason, size, "%s", "amount_minor: negative");
        if (json_integer_value(amt) > PV_EVENT_AMOUNT_MAX)
            return reject(reason, size, "%s", "amount_minor: larger than 10^15");
    } else if (purchase) {
        return reject(reason, size, "%s", "amount_minor: required for a purchase");
    }
    if (cur != NULL) {
        if (!json_is_string(cur) || !currency_ok(json_string_value(cur), json_string_length(cur)))
            return reject(reason, size, "%s", "currency: expected an ISO 4217 code such as EUR");
        if (amt == NULL)
            return reject(reason, size, "%s", "currency: given without amount_minor");
    } else if (amt != NULL) {
        return reject(reason, size, "%s", "currency: required with amount_minor");
    }

    const json_t *attrs = json_object_get(ev, "attrs");
    if (attrs != NULL && attrs_ok(attrs, reason, size) != 0)
        return PV_EINVAL;
    reason[0] = '\0';
    return 0;
}

int pv_events_parse(json_t **events, const char *body, size_t len, pv_events_error_t *err)
{
    json_error_t je;
    json_t *root = NULL, *arr;
    const char *k;
    json_t *v;
    int rc = PV_EINVAL;

    *events = NULL;
    err->status = 400;
    err->text[0] = '\0';
    if (len > PV_EVENTS_BODY_MAX) {
        err->status = 413;
        snprintf(err->text, sizeof(err->text), "the body is larger than %d bytes", PV_EVENTS_BODY_MAX);
        return PV_ELIMIT;
    }
    /* duplicate keys are an error: {"amount_minor":1,"amount_minor":2} must not pick one silently */
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        snprintf(err->text, sizeof(err->text), "malformed JSON at line %d, column %d (byte %d): %.100s", je.line,
                 je.column, je.position, je.text);
        return PV_EINVAL;
    }
    err->status = 422;
    if (!json_is_object(root)) {
        snprintf(err->text, sizeof(err->text), "expected an object {\"events\":[...]}");
        goto out;
    }
    json_object_foreach(root, k, v) {
        if (strcmp(k, "events") != 0) {
            snprintf(err->text, sizeof(err->text), "unknown field \"%.64s\"", k);
            goto out;
        }
    }
    arr = json_object_get(root, "events");
    if (!json_is_array(arr)) {
        snprintf(err->text, sizeof(err->text), "events: expected an array of events");
        goto out;
    }
    if (json_array_size(arr) == 0) {
        snprintf(err->text, sizeof(err->text), "events: empty");
        goto out;
    }
    if (json_array_size(arr) > PV_EVENTS_BATCH_MAX) {
        err->status = 413;
        snprintf(err->text, sizeof(err->text), "events: %zu events, at most %d in one batch",
                 json_array_size(arr), PV_EVENTS_BATCH_MAX);
        rc = PV_ELIMIT;
        goto out;
    }
    *events = json_incref(arr);
    err->status = 0;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* Whether the visitor ID text belongs to tenant tn and the tenant has seen it, inside txn. */
static int visitor_known(pv_tenants_t *t, MDB_txn *txn, const pv_tenant_t *tn, const char *text, size_t len,
                         int *known)
{
    uint64_t gid;
    uint8_t k[16];
    MDB_val key = {sizeof(k), k}, val;
    *known = 0;
    if (len != PV_VISITOR_ID_LEN || pv_visitor_id_decode(&gid, tn->secret, tn->id, text, len) != 0)
        return 0;
    put_be64(k, gid); /* visitors: (gid, tenant), see visitors.c */
    put_be64(k + 8, tn->id);
    int rc = mdb_get(txn, t->visitors, &key, &val);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != MDB_SUCCESS)
        return pv_tenants_lmdb_err(rc);
    *known = 1;
    return 0;
}

/* The outbox JSON of a checked event (see events.h for the shape); NULL when out of memory. */
static json_t *outbox_event(const json_t *ev, const pv_tenant_t *tn)
{
    int64_t ts_ms = 0;
    const json_t *ts = json_object_get(ev, "ts"), *loc = json_object_get(ev, "location");
    const json_t *amt = json_object_get(ev, "amount_minor"), *cur = json_object_get(ev, "currency");
    const json_t *attrs = json_object_get(ev, "attrs");
    pv_rfc3339_parse(&ts_ms, json_string_value(ts), json_string_length(ts));
    json_t *o = json_pack("{s:s, s:O, s:I, s:O, s:O, s:I, s:s}", "type", "business", "event_id",
                          json_object_get(ev, "event_id"), "tenant_id", (json_int_t)tn->id, "visitor",
                          json_object_get(ev, "visitor"), "event_type", json_object_get(ev, "type"), "ts_ms",
                          (json_int_t)ts_ms, "location", loc != NULL ? json_string_value(loc) : "");
    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "amount_minor", amt != NULL ? json_copy((json_t *)amt) : json_null()) != 0 ||
        json_object_set_new(o, "currency", cur != NULL ? json_copy((json_t *)cur) : json_null()) != 0 ||
        json_object_set_new(o, "attrs", attrs != NULL ? json_deep_copy(attrs) : json_object()) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The outbox's highest sequence number in txn: the event just appended. */
static int last_seq(pv_tenants_t *t, MDB_txn *txn, uint64_t *seq)
{
    MDB_cursor *c = NULL;
    MDB_val key, val;
    int rc = pv_tenants_lmdb_err(mdb_cursor_open(txn, t->outbox, &c));
    if (rc != 0)
        return rc;
    rc = mdb_cursor_get(c, &key, &val, MDB_LAST);
    if (rc == MDB_SUCCESS && key.mv_size == 8)
        *seq = get_be64(key.mv_data);
    rc = rc == MDB_SUCCESS && key.mv_size != 8 ? PV_EFORMAT : pv_tenants_lmdb_err(rc);
    mdb_cursor_close(c);
    return rc;
}

/* Whether event i's event_id already appeared earlier in the batch. */
static int repeated_in_batch(const json_t *events, size_t i)
{
    const char *id = json_string_value(json_object_get(json_array_get(events, i), "event_id"));
    for (size_t j = 0; id != NULL && j < i; j++) {
        const char *other = json_string_value(json_object_get(json_array_get(events, j), "event_id"));
        if (other != NULL && strcmp(id, other) == 0)
            return 1;
    }
    return 0;
}

int pv_events_append(pv_tenants_t *t, const pv_tenant_t *tn, const json_t *events, int64_t now_ms,
                     pv_event_result_t *results, size_t *accepted)
{
    MDB_txn *txn = NULL;
    MDB_val key, val;
    uint64_t seq = 0;
    int rc;

    *accepted = 0;
    if (!json_is_array(events) || json_array_size(events) > PV_EVENTS_BATCH_MAX)
        return PV_EINVAL;
    const size_t n = json_array_size(events);
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, 0, &txn))) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const json_t *ev = json_array_get(events, i);
        pv_event_result_t *r = &results[i];
        r->status = PV_EVENT_REJECTED;
        r->reason[0] = '\0';
        if (pv_event_check(ev, now_ms, tn->retention_days, r->reason, sizeof(r->reason)) != 0)
            continue;
        if (repeated_in_batch(events, i)) {
            snprintf(r->reason, sizeof(r->reason), "event_id: repeated in this batch");
            continue;
        }
        const char *id = json_string_value(json_object_get(ev, "event_id"));
        const size_t idlen = strlen(id);
        uint8_t ik[8 + PV_EVENT_ID_MAX], iv[16];
        put_be64(ik, tn->id);
        memcpy(ik + 8, id, idlen);
        key = (MDB_val){8 + idlen, ik};
        rc = mdb_get(txn, t->event_ids, &key, &val);
        if (rc == MDB_SUCCESS) {
            /* a retry: answered as stored before, whatever the visitor's state is now */
            r->status = PV_EVENT_DUPLICATE;
            rc = 0;
            continue;
        }
        if (rc != MDB_NOTFOUND) {
            rc = pv_tenants_lmdb_err(rc);
            goto out;
        }
        const json_t *vis = json_object_get(ev, "visitor");
        int known;
        if ((rc = visitor_known(t, txn, tn, json_string_value(vis), json_string_length(vis), &known)) != 0)
            goto out;
        if (!known) {
            snprintf(r->reason, sizeof(r->reason), "unknown visitor");
            continue;
        }
        /* the store's one outbox writer: it keeps our event_id and stamps queued_ms */
        if ((rc = pv_store_outbox_append(t, txn, outbox_event(ev, tn))) != 0)
            goto out;
        if ((rc = last_seq(t, txn, &seq)) != 0)
            goto out;
        int64_t ts_ms = 0;
        const json_t *ts = json_object_get(ev, "ts");
        pv_rfc3339_parse(&ts_ms, json_string_value(ts), json_string_length(ts));
        put_be64(iv, seq);
        put_be64(iv + 8, (uint64_t)ts_ms);
        key = (MDB_val){8 + idlen, ik};
        val = (MDB_val){sizeof(iv), iv};
        if ((rc = pv_tenants_lmdb_err(mdb_put(txn, t->event_ids, &key, &val, MDB_NOOVERWRITE))) != 0)
            goto out;
        r->status = PV_EVENT_ACCEPTED;
        (*accepted)++;
    }
    rc = *accepted > 0 ? pv_tenants_lmdb_err(mdb_txn_commit(txn)) : 0;
    if (*accepted == 0)
        mdb_txn_abort(txn);
    txn = NULL;
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (rc != 0)
        *accepted = 0;
    return rc;
}

static int cmp_tenant_id(const void *a, const void *b)
{
    uint64_t x = ((const pv_tenant_t *)a)->id, y = ((const pv_tenant_t *)b)->id;
    return x < y ? -1 : x > y;
}

int pv_events_prune(pv_tenants_t *t, int64_t now_ms, size_t max, size_t *pruned)
{
    pv_tenant_t *tenants = NULL;
    size_t ntenants = 0;
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    MDB_val key, val;
    int rc, r;
    *pruned = 0;
    /* the retention periods first, in their own read transaction */
    if ((rc = pv_tenants_list(t, &tenants, &ntenants)) != 0)
        return rc;
    if (ntenants > 1)
        qsort(tenants, ntenants, sizeof(*tenants), cmp_tenant_id);
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, 0, &txn))) != 0 ||
        (rc = pv_tenants_lmdb_err(mdb_cursor_open(txn, t->event_ids, &c))) != 0)
        goto out;
    for (r = mdb_cursor_get(c, &key, &val, MDB_FIRST); r == MDB_SUCCESS && *pruned < max;
         r = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        if (key.mv_size < 8 || val.mv_size != 16)
            continue; /* not ours: left alone */
        pv_tenant_t probe = {.id = get_be64(key.mv_data)};
        const pv_tenant_t *tn =
            ntenants > 0 ? bsearch(&probe, tenants, ntenants, sizeof(*tenants), cmp_tenant_id) : NULL;
        int64_t ts_ms = (int64_t)get_be64((const uint8_t *)val.mv_data + 8);
        if (tn != NULL && ts_ms >= now_ms - (int64_t)tn->retention_days * DAY_MS)
            continue;
        if ((r = mdb_cursor_del(c, 0)) != MDB_SUCCESS)
            break;
        (*pruned)++;
    }
    if (r != MDB_SUCCESS && r != MDB_NOTFOUND) {
        rc = pv_tenants_lmdb_err(r);
        goto out;
    }
    mdb_cursor_close(c);
    c = NULL;
    rc = pv_tenants_lmdb_err(mdb_txn_commit(txn));
    txn = NULL;
out:
    if (c != NULL)
        mdb_cursor_close(c);
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (rc != 0)
        *pruned = 0;
    free(tenants);
    return rc;
}
