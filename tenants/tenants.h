/*
 * The tenants store: tenants, API keys (and, later, pseudonymous visitor
 * mappings) in one LMDB environment under the data directory. LMDB is the
 * truth; PostgreSQL only mirrors tenants for analytics. An API key is
 * "pvk_<key id: 16 hex>_<secret: 43 base64url chars, 256 bits>"; only the
 * SHA-256 of the secret is stored, and it is compared in constant time.
 */
#ifndef PV_TENANTS_H
#define PV_TENANTS_H

#include <stddef.h>
#include <stdint.h>

#define PV_TENANT_NAME_MAX 63 /* [A-Za-z0-9._-], 1..63 chars, starts with a letter or digit */
#define PV_KEY_ID_LEN 16      /* hex chars */
#define PV_KEY_TEXT_LEN (4 + PV_KEY_ID_LEN + 1 + 43)
#define PV_TENANT_SECRET_LEN 32        /* pseudonym (visitor ID) secret */
#define PV_TENANT_RETENTION_DEFAULT 90 /* days */
#define PV_TENANT_RETENTION_MAX 3650   /* days; the minimum is 1 */
#define PV_SCOPES_TEXT_MAX 40          /* "recognize,events,analytics,erase" + NUL fits */

typedef enum { PV_TENANT_NETWORK = 0, PV_TENANT_ISOLATED = 1 } pv_tenant_mode_t;

enum {
    PV_SCOPE_RECOGNIZE = 1u << 0,
    PV_SCOPE_EVENTS = 1u << 1,
    PV_SCOPE_ANALYTICS = 1u << 2,
    PV_SCOPE_ERASE = 1u << 3,
    PV_SCOPE_ALL = (1u << 4) - 1,
};

typedef struct pv_tenants pv_tenants_t;
typedef struct pv_tenants_reader pv_tenants_reader_t;

typedef struct {
    uint64_t id; /* assigned at creation, never reused */
    char name[PV_TENANT_NAME_MAX + 1];
    pv_tenant_mode_t mode;
    uint32_t retention_days;
    int64_t created_at; /* unix seconds */
    uint8_t secret[PV_TENANT_SECRET_LEN];
    uint32_t rate_per_min;  /* requests per minute per API key, 0 = unlimited */
    uint32_t burst;         /* token-bucket depth, 0 = max(5, rate_per_min / 10) */
    uint64_t monthly_quota; /* images per calendar month (UTC), 0 = unlimited */
} pv_tenant_t;

/* What `tenant update` may change; a field is applied when its set_ flag is 1. */
typedef struct {
    int set_retention, set_rate, set_burst, set_quota;
    uint32_t retention_days, rate_per_min, burst;
    uint64_t monthly_quota;
} pv_tenant_update_t;

typedef struct {
    char id[PV_KEY_ID_LEN + 1];
    uint64_t tenant_id;
    uint32_t scopes;
    int revoked;
    int64_t created_at;
    int64_t expires_at; /* unix seconds; 0 = never (set by pv_keys_rotate) */
} pv_key_info_t;

/* What a successful authentication yields. */
typedef struct {
    uint64_t tenant_id;
    char tenant_name[PV_TENANT_NAME_MAX + 1];
    pv_tenant_mode_t mode;
    char key_id[PV_KEY_ID_LEN + 1];
    uint32_t scopes;
    uint32_t rate_per_min, burst; /* the tenant's limits (see pv_tenant_t) */
    uint64_t monthly_quota;
} pv_auth_t;

/*
 * Opens (creating when missing, mode 0700/0600) the environment in dir; the
 * caller owns *out. Errors: -errno when the directory cannot be made,
 * PV_ESTORE / PV_ELIMIT / PV_ENOMEM from LMDB.
 */
int pv_tenants_open(pv_tenants_t **out, const char *dir);
/* Closes; NULL is a no-op. All readers must be destroyed first. */
void pv_tenants_close(pv_tenants_t *t);
/* The environment's directory (borrowed: valid until pv_tenants_close), or NULL. */
const char *pv_tenants_dir(const pv_tenants_t *t);

/* Returns 0 when name is a valid tenant name (see PV_TENANT_NAME_MAX), else PV_EINVAL. */
int pv_tenants_name_valid(const char *name);
/* "network" / "isolated"; a static string ("?" for an unknown value). */
const char *pv_tenant_mode_name(pv_tenant_mode_t mode);
/* Parses "network" / "isolated"; PV_EINVAL otherwise. */
int pv_tenant_mode_parse(pv_tenant_mode_t *out, const char *text);

/*
 * Tenants. Names are validated (PV_EINVAL); a taken name is PV_EEXIST;
 * retention_days must be 1..PV_TENANT_RETENTION_MAX (PV_EINVAL). get/find
 * return PV_ENOTFOUND for an unknown tenant. A full map is PV_ELIMIT.
 */
int pv_tenants_create(pv_tenants_t *t, pv_tenant_t *out, const char *name, pv_tenant_mode_t mode,
                      uint32_t retention_days);
int pv_tenants_get(pv_tenants_t *t, pv_tenant_t *out, uint64_t id);
int pv_tenants_find(pv_tenants_t *t, pv_tenant_t *out, const char *name);
/* *out is a malloc'ed array the caller frees; sorted by name. */
int pv_tenants_list(pv_tenants_t *t, pv_tenant_t **out, size_t *count);
/* Changes a tenant's retention and limits (the rest is immutable); *out gets
 * the result. PV_ENOTFOUND, PV_EINVAL (retention out of range). */
int pv_tenants_update(pv_tenants_t *t, pv_tenant_t *out, const char *name, const pv_tenant_update_t *u);
/* Deletes the tenant and all its keys in one transaction; PV_ENOTFOUND when unknown. */
int pv_tenants_delete(pv_tenants_t *t, const char *name);

/*
 * Keys. text receives the full key (PV_KEY_TEXT_LEN + 1 bytes), shown once.
 * scopes must be a non-empty subset of PV_SCOPE_ALL (PV_EINVAL); an unknown
 * tenant is PV_ENOTFOUND. pv_keys_list gives a malloc'ed array (caller frees,
 * NULL when empty) sorted by key id. pv_keys_revoke is idempotent;
 * PV_EINVAL for a malformed id, PV_ENOTFOUND for an unknown one.
 */
int pv_keys_create(pv_tenants_t *t, pv_key_info_t *out, char *text, uint64_t tenant_id, uint32_t scopes);
int pv_keys_list(pv_tenants_t *t, pv_key_info_t **out, size_t *count, uint64_t tenant_id);
int pv_keys_revoke(pv_tenants_t *t, const char *key_id);
/*
 * Rotates key_id: in one transaction, creates a new key of the same tenant
 * and scopes (*out, its text as for pv_keys_create) and makes the old one
 * expire grace_s seconds from now (0: at once; an earlier expiry already
 * set is kept). *old (may be NULL) gets the old key's record after the
 * change. Errors: PV_EINVAL (malformed id, grace_s outside 0..366 days),
 * PV_ENOTFOUND, PV_EREVOKED / PV_EEXPIRED (the old key is already dead).
 */
int pv_keys_rotate(pv_tenants_t *t, pv_key_info_t *out, char *text, pv_key_info_t *old, const char *key_id,
                   int64_t grace_s);
/* Returns 0 when key_id is 16 lowercase hex digits, else PV_EINVAL. */
int pv_keys_id_valid(const char *key_id);

/* "recognize,events" -> bits ("all" is every scope; empty items, unknown
 * names and an empty list are PV_EINVAL, which names nothing, so callers print the list). */
int pv_scopes_parse(uint32_t *out, const char *list);
/* Writes "recognize,events,..." into buf (PV_SCOPES_TEXT_MAX always suffices; truncates safely). */
void pv_scopes_format(char *buf, size_t size, uint32_t scopes);

/*
 * Hot path. A reader holds one reusable LMDB read transaction (reset/renew)
 * and must stay on one thread. pv_tenants_authenticate parses `text`,
 * looks the key up in LMDB (so a revocation is seen at once) and compares
 * the secret's SHA-256 in constant time. Errors: PV_EINVAL (malformed),
 * PV_EAUTH (unknown key or wrong secret), PV_EREVOKED, PV_EEXPIRED (past
 * its expiry; both only for the right secret), PV_ESTORE.
 */
int pv_tenants_reader_create(pv_tenants_reader_t **out, pv_tenants_t *t);
void pv_tenants_reader_destroy(pv_tenants_reader_t *r);
int pv_tenants_authenticate(pv_tenants_reader_t *r, pv_auth_t *out, const char *text, size_t len);
/* Returns 0 when the environment answers a read transaction. */
int pv_tenants_ping(pv_tenants_reader_t *r);

/*
 * Usage metering: counts `images` for the tenant in its current UTC month
 * and day, and one request for the day. With quota > 0, refuses (PV_ELIMIT,
 * no image counted, the request still counted) when the month's count would
 * pass it. *month_used gets the month's count after the call. One small
 * write transaction.
 */
int pv_usage_take(pv_tenants_t *t, uint64_t tenant_id, int64_t now_ms, uint64_t quota, uint64_t images,
                  uint64_t *month_used);

/* Adds `faces` (found by the pipeline) to the tenant's UTC day; no-op for 0.
 * One small write transaction. */
int pv_usage_faces(pv_tenants_t *t, uint64_t tenant_id, int64_t now_ms, uint64_t faces);

/* One tenant's metered UTC day. */
typedef struct {
    uint64_t tenant_id;
    uint32_t ymd; /* yyyymmdd */
    uint64_t requests, images, faces;
} pv_usage_day_t;

/* Called per day by pv_usage_days; d is borrowed. Nonzero stops the walk. */
typedef int (*pv_usage_cb)(void *arg, const pv_usage_day_t *d);

/*
 * Calls cb for every metered day of tenant_id (0: every tenant) from from_ymd
 * to to_ymd (yyyymmdd, inclusive; to_ymd 0: no end), in one read
 * transaction, each (tenant, day) once, in tenant order. PV_ESTORE (LMDB).
 */
int pv_usage_days(pv_tenants_t *t, uint64_t tenant_id, uint32_t from_ymd, uint32_t to_ymd, pv_usage_cb cb,
                  void *arg);

#endif
