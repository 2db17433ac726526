/*
 * The tenants store on LMDB. Named databases: `tenants` (id, 8 bytes
 * big-endian -> tenant record), `tenant_names` (name -> id), `keys` (key id,
 * 8 raw bytes -> key record) and `meta` ("next_tenant_id" -> u64). Records are
 * fixed-layout little-endian byte images that start with a version byte; a
 * record of another version or size is PV_EFORMAT. Older versions stay
 * readable (tenant v1: no limits; key v1: no expiry) and are rewritten in the
 * current version only when they change. Every change is one write
 * transaction, so the name index, the records and the keys always agree.
 */
#include <errno.h>
#include <lmdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "common/codec.h"
#include "common/error.h"
#include "tenants/store.h"
#include "tenants/tenants.h"

#define MAP_SIZE ((size_t)1 << 30) /* 1 GiB of address space; the file grows as needed */
#define MAX_DBS 16                 /* room for visitors, visitor_ids, outbox, ... */
#define DIR_MAX 4096

#define TENANT_REC_VERSION 2
#define TENANT_REC_SIZE 136 /* ver,mode,pad[2],retention u32,id u64,created i64,secret[32],name[64],
                               rate u32,burst u32,quota u64 */
#define TENANT_REC_V1_SIZE 120 /* version 1: no limits (read as unlimited) */
#define KEY_REC_VERSION 2
#define KEY_REC_SIZE 64    /* ver,revoked,pad[2],scopes u32,tenant u64,created i64,hash[32],expires i64 */
#define KEY_REC_V1_SIZE 56 /* version 1: no expiry (read as never) */
#define GRACE_MAX ((int64_t)366 * 86400)
#define KEY_ID_BYTES (PV_KEY_ID_LEN / 2)
#define KEY_SECRET_BYTES 32
#define HASH_LEN 32
#define KEY_PREFIX "pvk_"
#define META_NEXT_ID "next_tenant_id"


struct pv_tenants_reader {
    pv_tenants_t *t;
    MDB_txn *txn; /* always reset between calls */
};

static const char *scope_names[] = {"recognize", "events", "analytics", "erase"};

/* The one place LMDB codes become PV_E* codes. */
int pv_tenants_lmdb_err(int rc)
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

/* ---- little-endian / big-endian field helpers ---- */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Tenant ids are big-endian keys so that cursor order is numeric order. */
static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* ---- records ---- */

static void tenant_encode(uint8_t rec[TENANT_REC_SIZE], const pv_tenant_t *tn)
{
    memset(rec, 0, TENANT_REC_SIZE);
    rec[0] = TENANT_REC_VERSION;
    rec[1] = (uint8_t)tn->mode;
    put_le32(rec + 4, tn->retention_days);
    put_le64(rec + 8, tn->id);
    put_le64(rec + 16, (uint64_t)tn->created_at);
    memcpy(rec + 24, tn->secret, PV_TENANT_SECRET_LEN);
    memcpy(rec + 56, tn->name, strlen(tn->name)); /* validated: <= 63 chars, rest stays NUL */
    put_le32(rec + 120, tn->rate_per_min);
    put_le32(rec + 124, tn->burst);
    put_le64(rec + 128, tn->monthly_quota);
}

static int tenant_decode(pv_tenant_t *tn, const MDB_val *v)
{
    const uint8_t *rec = v->mv_data;
    int v1 = v->mv_size == TENANT_REC_V1_SIZE && rec[0] == 1;
    if (!v1 && (v->mv_size != TENANT_REC_SIZE || rec[0] != TENANT_REC_VERSION))
        return PV_EFORMAT;
    if (rec[1] > PV_TENANT_ISOLATED || rec[56 + PV_TENANT_NAME_MAX] != 0)
        return PV_EFORMAT;
    memset(tn, 0, sizeof(*tn));
    tn->mode = (pv_tenant_mode_t)rec[1];
    tn->retention_days = get_le32(rec + 4);
    tn->id = get_le64(rec + 8);
    tn->created_at = (int64_t)get_le64(rec + 16);
    memcpy(tn->secret, rec + 24, PV_TENANT_SECRET_LEN);
    memcpy(tn->name, rec + 56, PV_TENANT_NAME_MAX);
    if (!v1) {
        tn->rate_per_min = get_le32(rec + 120);
        tn->burst = get_le32(rec + 124);
        tn->monthly_quota = get_le64(rec + 128);
    }
    return 0;
}

static void key_encode(uint8_t rec[KEY_REC_SIZE], const pv_key_info_t *k, const uint8_t hash[HASH_LEN])
{
    memset(rec, 0, KEY_REC_SIZE);
    rec[0] = KEY_REC_VERSION;
    rec[1] = k->revoked ? 1 : 0;
    put_le32(rec + 4, k->scopes);
    put_le64(rec + 8, k->tenant_id);
    put_le64(rec + 16, (uint64_t)k->created_at);
    memcpy(rec + 24, hash, HASH_LEN);
    put_le64(rec + 56, (uint64_t)k->expires_at);
}

/* Fills k (without its id) and, when hash is not NULL, the stored hash. */
static int key_decode(pv_key_info_t *k, uint8_t *hash, const MDB_val *v)
{
    const uint8_t *rec = v->mv_data;
    int v1 = v->mv_size == KEY_REC_V1_SIZE && rec[0] == 1;
    if (!v1 && (v->mv_size != KEY_REC_SIZE || rec[0] != KEY_REC_VERSION))
        return PV_EFORMAT;
    k->revoked = rec[1] != 0;
    k->scopes = get_le32(rec + 4);
    k->tenant_id = get_le64(rec + 8);
    k->created_at = (int64_t)get_le64(rec + 16);
    k->expires_at = v1 ? 0 : (int64_t)get_le64(rec + 56);
    if (hash != NULL)
        memcpy(hash, rec + 24, HASH_LEN);
    return 0;
}

static int sha256(uint8_t out[HASH_LEN], const uint8_t *in, size_t len)
{
    unsigned int n = 0;
    if (EVP_Digest(in, len, out, &n, EVP_sha256(), NULL) != 1 || n != HASH_LEN)
        return PV_EUNAVAIL;
    return 0;
}

/* ---- validation and small parsers ---- */

int pv_tenants_name_valid(const char *name)
{
    size_t n = name == NULL ? 0 : strnlen(name, PV_TENANT_NAME_MAX + 1);
    if (n == 0 || n > PV_TENANT_NAME_MAX)
        return PV_EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return PV_EINVAL;
    }
    return 0;
}

const char *pv_tenant_mode_name(pv_tenant_mode_t mode)
{
    switch (mode) {
    case PV_TENANT_NETWORK:
        return "network";
    case PV_TENANT_ISOLATED:
        return "isolated";
    }
    return "?";
}

int pv_tenant_mode_parse(pv_tenant_mode_t *out, const char *text)
{
    if (text != NULL && strcmp(text, "network") == 0)
        *out = PV_TENANT_NETWORK;
    else if (text != NULL && strcmp(text, "isolated") == 0)
        *out = PV_TENANT_ISOLATED;
    else
        return PV_EINVAL;
    return 0;
}

static int is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int pv_keys_id_valid(const char *key_id)
{
    if (key_id == NULL || strnlen(key_id, PV_KEY_ID_LEN + 1) != PV_KEY_ID_LEN ||
        !is_lower_hex(key_id, PV_KEY_ID_LEN))
        return PV_EINVAL;
    return 0;
}

int pv_scopes_parse(uint32_t *out, const char *list)
{
    uint32_t bits = 0;
    const char *p = list;
    if (list == NULL || *list == '\0')
        return PV_EINVAL;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end == NULL ? strlen(p) : (size_t)(end - p);
        uint32_t bit = 0;
        if (n == 3 && strncmp(p, "all", 3) == 0)
            bit = PV_SCOPE_ALL;
        for (size_t i = 0; i < sizeof(scope_names) / sizeof(scope_names[0]); i++)
            if (strlen(scope_names[i]) == n && strncmp(p, scope_names[i], n) == 0)
                bit = 1u << i;
        if (bit == 0) /* also catches empty items: "a,,b", "a," */
            return PV_EINVAL;
        bits |= bit;
        if (end == NULL)
            break;
        p = end + 1;
    }
    *out = bits;
    return 0;
}

void pv_scopes_format(char *buf, size_t size, uint32_t scopes)
{
    size_t used = 0;
    if (size == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(scope_names) / sizeof(scope_names[0]); i++) {
        if (!(scopes & (1u << i)))
            continue;
        size_t n = strlen(scope_names[i]) + (used > 0);
        if (used + n >= size)
            break; /* truncate at an item boundary rather than overflow */
        if (used > 0)
            buf[used++] = ',';
        memcpy(buf + used, scope_names[i], strlen(scope_names[i]));
        used += strlen(scope_names[i]);
        buf[used] = '\0';
    }
}

/* ---- environment ---- */

/* mkdir -p with mode 0700 for every component it creates. */
static int make_dirs(const char *dir)
{
    char path[DIR_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(path))
        return -ENAMETOOLONG;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -errno;
        path[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int pv_tenants_open(pv_tenants_t **out, const char *dir)
{
    pv_tenants_t *t = NULL;
    MDB_txn *txn = NULL;
    int rc;

    *out = NULL;
    if ((rc = make_dirs(dir)) != 0)
        goto out;
    if ((t = calloc(1, sizeof(*t))) == NULL) {
        rc = PV_ENOMEM;
        goto out;
    }
    if ((rc = pv_tenants_lmdb_err(mdb_env_create(&t->env))) != 0)
        goto out;
    if ((rc = pv_tenants_lmdb_err(mdb_env_set_maxdbs(t->env, MAX_DBS))) != 0 ||
        (rc = pv_tenants_lmdb_err(mdb_env_set_mapsize(t->env, MAP_SIZE))) != 0)
        goto out;
    /* MDB_NOTLS: a reader's transaction is not bound to a thread's slot, so it can be reset and renewed. */
    if ((rc = mdb_env_open(t->env, dir, MDB_NOTLS, 0600)) != 0) {
        rc = rc > 0 && rc != ENOMEM ? -rc : pv_tenants_lmdb_err(rc);
        goto out;
    }
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, 0, &txn))) != 0)
        goto out;
    if ((rc = pv_tenants_lmdb_err(mdb_dbi_open(txn, "tenants", MDB_CREATE, &t->tenants))) != 0 ||
        (rc = pv_tenants_lmdb_err(mdb_dbi_open(txn, "tenant_names", MDB_CREATE, &t->names))) != 0 ||
        (rc = pv_tenants_lmdb_err(mdb_dbi_open(txn, "keys", MDB_CREATE, &t->keys))) != 0 ||
        (rc = pv_tenants_lmdb_err(mdb_dbi_open(txn, "meta", MDB_CREATE, &t->meta))) != 0 ||
        (rc = pv_tenants_lmdb_err(mdb_dbi_open(txn, "visitors", MDB_CREATE, &t->visitors))) != 0 ||
        (rc = pv_tenants_lmdb_err(mdb_dbi_open(txn, "visitor_ids", MDB_CREATE, &t->visitor_ids))) != 0 ||
        (rc = pv_tenants_lmdb_err(mdb_dbi_open(txn, "outbox", MDB_CREATE, &t->outbox))) != 0 ||
        (rc = pv_tenants_lmdb_err(mdb_dbi_open(txn, "usage", MDB_CREATE, &t->usage))) != 0 ||
        (rc = pv_tenants_lmdb_err(mdb_dbi_open(txn, "event_ids", MDB_CREATE, &t->event_ids))) != 0 ||
        (rc = pv_tenants_lmdb_err(mdb_dbi_open(txn, "forget", MDB_CREATE, &t->forget))) != 0)
        goto out;
    rc = pv_tenants_lmdb_err(mdb_txn_commit(txn));
    txn = NULL;
    if (rc != 0)
        goto out;
    *out = t;
    t = NULL;
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    pv_tenants_close(t);
    return rc;
}

const char *pv_tenants_dir(const pv_tenants_t *t)
{
    const char *path = NULL;
    return mdb_env_get_path(t->env, &path) == MDB_SUCCESS ? path : NULL;
}

void pv_tenants_close(pv_tenants_t *t)
{
    if (t == NULL)
        return;
    if (t->env != NULL)
        mdb_env_close(t->env);
    free(t);
}

/* ---- tenants ---- */

static int get_tenant_txn(pv_tenants_t *t, MDB_txn *txn, pv_tenant_t *out, uint64_t id)
{
    uint8_t kb[8];
    put_be64(kb, id);
    MDB_val k = {sizeof(kb), kb}, v;
    int rc = pv_tenants_lmdb_err(mdb_get(txn, t->tenants, &k, &v));
    return rc != 0 ? rc : tenant_decode(out, &v);
}

static int find_id_txn(pv_tenants_t *t, MDB_txn *txn, uint64_t *id, const char *name)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = pv_tenants_lmdb_err(mdb_get(txn, t->names, &k, &v));
    if (rc != 0)
        return rc;
    if (v.mv_size != 8)
        return PV_EFORMAT;
    *id = get_be64(v.mv_data);
    return 0;
}

int pv_tenants_create(pv_tenants_t *t, pv_tenant_t *out, const char *name, pv_tenant_mode_t mode,
                      uint32_t retention_days)
{
    MDB_txn *txn = NULL;
    pv_tenant_t tn;
    uint8_t rec[TENANT_REC_SIZE], idkey[8], next[8];
    uint64_t id = 1;
    MDB_val v;
    int rc;

    memset(&tn, 0, sizeof(tn));
    if (pv_tenants_name_valid(name) != 0 || (mode != PV_TENANT_NETWORK && mode != PV_TENANT_ISOLATED) ||
        retention_days < 1 || retention_days > PV_TENANT_RETENTION_MAX) {
        rc = PV_EINVAL;
        goto out;
    }
    if ((rc = pv_random_bytes(tn.secret, sizeof(tn.secret))) != 0)
        goto out;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, 0, &txn))) != 0)
        goto out;
    MDB_val mk = {strlen(META_NEXT_ID), META_NEXT_ID};
    rc = mdb_get(txn, t->meta, &mk, &v);
    if (rc == 0) {
        if (v.mv_size != 8) {
            rc = PV_EFORMAT;
            goto out;
        }
        id = get_le64(v.mv_data);
    } else if (rc != MDB_NOTFOUND) {
        rc = pv_tenants_lmdb_err(rc);
        goto out;
    }
    tn.id = id;
    memcpy(tn.name, name, strlen(name) + 1);
    tn.mode = mode;
    tn.retention_days = retention_days;
    tn.created_at = (int64_t)time(NULL);

    put_be64(idkey, id);
    MDB_val nk = {strlen(name), (void *)name}, nv = {sizeof(idkey), idkey};
    if ((rc = pv_tenants_lmdb_err(mdb_put(txn, t->names, &nk, &nv, MDB_NOOVERWRITE))) != 0)
        goto out; /* PV_EEXIST when the name is taken */
    tenant_encode(rec, &tn);
    MDB_val tk = {sizeof(idkey), idkey}, tv = {sizeof(rec), rec};
    if ((rc = pv_tenants_lmdb_err(mdb_put(txn, t->tenants, &tk, &tv, MDB_NOOVERWRITE))) != 0) {
        if (rc == PV_EEXIST)
            rc = PV_EFORMAT; /* the id counter is behind the records: a corrupt store */
        goto out;
    }
    put_le64(next, id + 1);
    MDB_val mv = {sizeof(next), next};
    if ((rc = pv_tenants_lmdb_err(mdb_put(txn, t->meta, &mk, &mv, 0))) != 0)
        goto out;
    rc = pv_tenants_lmdb_err(mdb_txn_commit(txn));
    txn = NULL;
    if (rc == 0 && out != NULL)
        *out = tn;
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    OPENSSL_cleanse(&tn, sizeof(tn));
    OPENSSL_cleanse(rec, sizeof(rec));
    return rc;
}

int pv_tenants_get(pv_tenants_t *t, pv_tenant_t *out, uint64_t id)
{
    MDB_txn *txn = NULL;
    int rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn));
    if (rc != 0)
        return rc;
    rc = get_tenant_txn(t, txn, out, id);
    mdb_txn_abort(txn);
    return rc;
}

int pv_tenants_find(pv_tenants_t *t, pv_tenant_t *out, const char *name)
{
    MDB_txn *txn = NULL;
    uint64_t id;
    int rc;

    if (pv_tenants_name_valid(name) != 0)
        return PV_EINVAL;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn))) != 0)
        return rc;
    if ((rc = find_id_txn(t, txn, &id, name)) == 0)
        rc = get_tenant_txn(t, txn, out, id);
    mdb_txn_abort(txn);
    return rc;
}

int pv_tenants_list(pv_tenants_t *t, pv_tenant_t **out, size_t *count)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_stat st = {0};
    pv_tenant_t *arr = NULL;
    size_t n = 0;
    MDB_val k, v;
    int rc, op;

    *out = NULL;
    *count = 0;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn))) != 0)
        goto out;
    if ((rc = pv_tenants_lmdb_err(mdb_stat(txn, t->names, &st))) != 0)
        goto out;
    if (st.ms_entries == 0)
        goto out;
    if ((arr = calloc(st.ms_entries, sizeof(*arr))) == NULL) {
        rc = PV_ENOMEM;
        goto out;
    }
    if ((rc = pv_tenants_lmdb_err(mdb_cursor_open(txn, t->names, &cur))) != 0)
        goto out;
    /* tenant_names is ordered by name bytes, which gives the promised sort */
    for (op = MDB_FIRST; n < st.ms_entries && (rc = mdb_cursor_get(cur, &k, &v, op)) == 0; op = MDB_NEXT) {
        if (v.mv_size != 8) {
            rc = PV_EFORMAT;
            goto out;
        }
        if ((rc = get_tenant_txn(t, txn, &arr[n], get_be64(v.mv_data))) != 0)
            goto out;
        n++;
    }
    rc = rc == MDB_NOTFOUND ? 0 : pv_tenants_lmdb_err(rc);
    if (rc != 0)
        goto out;
    *out = arr;
    *count = n;
    arr = NULL;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (arr != NULL) {
        OPENSSL_cleanse(arr, st.ms_entries * sizeof(*arr));
        free(arr);
    }
    return rc;
}

int pv_tenants_update(pv_tenants_t *t, pv_tenant_t *out, const char *name, const pv_tenant_update_t *u)
{
    MDB_txn *txn = NULL;
    uint8_t idkey[8], rec[TENANT_REC_SIZE];
    uint64_t id;
    pv_tenant_t tn;
    int rc;

    if (pv_tenants_name_valid(name) != 0 ||
        (u->set_retention && (u->retention_days < 1 || u->retention_days > PV_TENANT_RETENTION_MAX)))
        return PV_EINVAL;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, 0, &txn))) != 0)
        return rc;
    if ((rc = find_id_txn(t, txn, &id, name)) != 0 || (rc = get_tenant_txn(t, txn, &tn, id)) != 0)
        goto out;
    if (u->set_retention)
        tn.retention_days = u->retention_days;
    if (u->set_rate)
        tn.rate_per_min = u->rate_per_min;
    if (u->set_burst)
        tn.burst = u->burst;
    if (u->set_quota)
        tn.monthly_quota = u->monthly_quota;
    tenant_encode(rec, &tn);
    put_be64(idkey, id);
    MDB_val k = {sizeof(idkey), idkey}, v = {sizeof(rec), rec};
    if ((rc = pv_tenants_lmdb_err(mdb_put(txn, t->tenants, &k, &v, 0))) != 0)
        goto out;
    rc = pv_tenants_lmdb_err(mdb_txn_commit(txn));
    txn = NULL;
    if (rc == 0 && out != NULL)
        *out = tn;
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    OPENSSL_cleanse(&tn, sizeof(tn));
    OPENSSL_cleanse(rec, sizeof(rec));
    return rc;
}

int pv_tenants_delete(pv_tenants_t *t, const char *name)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    uint8_t idkey[8];
    uint64_t id;
    MDB_val k, v;
    int rc, op;

    if (pv_tenants_name_valid(name) != 0)
        return PV_EINVAL;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, 0, &txn))) != 0)
        goto out;
    if ((rc = find_id_txn(t, txn, &id, name)) != 0)
        goto out;
    MDB_val nk = {strlen(name), (void *)name};
    if ((rc = pv_tenants_lmdb_err(mdb_del(txn, t->names, &nk, NULL))) != 0)
        goto out;
    put_be64(idkey, id);
    MDB_val tk = {sizeof(idkey), idkey};
    rc = mdb_del(txn, t->tenants, &tk, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        rc = pv_tenants_lmdb_err(rc);
        goto out;
    }
    /* Keys are few; a scan keeps the layout to one index. */
    if ((rc = pv_tenants_lmdb_err(mdb_cursor_open(txn, t->keys, &cur))) != 0)
        goto out;
    for (op = MDB_FIRST; (rc = mdb_cursor_get(cur, &k, &v, op)) == 0; op = MDB_NEXT) {
        pv_key_info_t ki;
        if (key_decode(&ki, NULL, &v) != 0 || ki.tenant_id != id)
            continue; /* another tenant's key; an unreadable record is left for inspection */
        if ((rc = pv_tenants_lmdb_err(mdb_cursor_del(cur, 0))) != 0)
            goto out;
    }
    if (rc != MDB_NOTFOUND) {
        rc = pv_tenants_lmdb_err(rc);
        goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    rc = pv_tenants_lmdb_err(mdb_txn_commit(txn));
    txn = NULL;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (txn != NULL)
        mdb_txn_abort(txn);
    return rc;
}

/* ---- keys ---- */

/* Reads key idb's record (and its stored hash) inside txn: PV_ENOTFOUND, PV_EFORMAT. */
static int key_get_txn(pv_tenants_t *t, MDB_txn *txn, const uint8_t idb[KEY_ID_BYTES], pv_key_info_t *ki,
                       uint8_t hash[HASH_LEN])
{
    MDB_val k = {KEY_ID_BYTES, (void *)idb}, v;
    int rc = pv_tenants_lmdb_err(mdb_get(txn, t->keys, &k, &v));
    return rc != 0 ? rc : key_decode(ki, hash, &v);
}

/* Writes key idb's record back (in the current version) and commits; txn is gone afterwards. */
static int key_put_commit(pv_tenants_t *t, MDB_txn *txn, const uint8_t idb[KEY_ID_BYTES],
                          const pv_key_info_t *ki, const uint8_t hash[HASH_LEN])
{
    uint8_t rec[KEY_REC_SIZE];
    key_encode(rec, ki, hash);
    MDB_val k = {KEY_ID_BYTES, (void *)idb}, v = {sizeof(rec), rec};
    int rc = pv_tenants_lmdb_err(mdb_put(txn, t->keys, &k, &v, 0));
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return pv_tenants_lmdb_err(mdb_txn_commit(txn));
}

/*
 * Adds a key for an existing tenant inside txn: 256 random bits of secret
 * (only its SHA-256 is stored) under a random 64-bit id. *ki gets the record
 * with its id; text (when not NULL) the full key. Nothing is visible until
 * the caller commits.
 */
static int key_add_txn(pv_tenants_t *t, MDB_txn *txn, pv_key_info_t *ki, char *text, uint64_t tenant_id,
                       uint32_t scopes)
{
    pv_tenant_t tn;
    uint8_t idb[KEY_ID_BYTES], secret[KEY_SECRET_BYTES], hash[HASH_LEN], rec[KEY_REC_SIZE];
    int rc, attempt;

    memset(ki, 0, sizeof(*ki));
    if (scopes == 0 || (scopes & ~(uint32_t)PV_SCOPE_ALL) != 0)
        return PV_EINVAL;
    if ((rc = pv_random_bytes(secret, sizeof(secret))) != 0 ||
        (rc = sha256(hash, secret, sizeof(secret))) != 0)
        goto out;
    if ((rc = get_tenant_txn(t, txn, &tn, tenant_id)) != 0)
        goto out;
    OPENSSL_cleanse(&tn, sizeof(tn));
    ki->tenant_id = tenant_id;
    ki->scopes = scopes;
    ki->created_at = (int64_t)time(NULL);
    key_encode(rec, ki, hash);
    /* 64 random bits collide essentially never; retry a few times rather than assume it */
    for (attempt = 0; attempt < 4; attempt++) {
        if ((rc = pv_random_bytes(idb, sizeof(idb))) != 0)
            goto out;
        MDB_val k = {sizeof(idb), idb}, v = {sizeof(rec), rec};
        rc = pv_tenants_lmdb_err(mdb_put(txn, t->keys, &k, &v, MDB_NOOVERWRITE));
        if (rc != PV_EEXIST)
            break;
    }
    if (rc != 0)
        goto out;
    pv_hex_encode(ki->id, idb, sizeof(idb));
    if (text != NULL) {
        memcpy(text, KEY_PREFIX, 4);
        memcpy(text + 4, ki->id, PV_KEY_ID_LEN);
        text[4 + PV_KEY_ID_LEN] = '_';
        pv_b64url_encode(text + 5 + PV_KEY_ID_LEN, secret, sizeof(secret));
    }
out:
    OPENSSL_cleanse(secret, sizeof(secret));
    return rc;
}

int pv_keys_create(pv_tenants_t *t, pv_key_info_t *out, char *text, uint64_t tenant_id, uint32_t scopes)
{
    MDB_txn *txn = NULL;
    pv_key_info_t ki;
    char buf[PV_KEY_TEXT_LEN + 1];
    int rc;

    if (scopes == 0 || (scopes & ~(uint32_t)PV_SCOPE_ALL) != 0)
        return PV_EINVAL;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, 0, &txn))) != 0)
        goto out;
    if ((rc = key_add_txn(t, txn, &ki, buf, tenant_id, scopes)) != 0)
        goto out;
    rc = pv_tenants_lmdb_err(mdb_txn_commit(txn));
    txn = NULL;
    if (rc != 0)
        goto out;
    if (text != NULL)
        memcpy(text, buf, sizeof(buf));
    if (out != NULL)
        *out = ki;
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

int pv_keys_rotate(pv_tenants_t *t, pv_key_info_t *out, char *text, pv_key_info_t *old, const char *key_id,
                   int64_t grace_s)
{
    MDB_txn *txn = NULL;
    uint8_t idb[KEY_ID_BYTES], hash[HASH_LEN];
    char buf[PV_KEY_TEXT_LEN + 1];
    pv_key_info_t ki, nk;
    int rc;

    if (pv_keys_id_valid(key_id) != 0 || pv_hex_decode(idb, key_id, sizeof(idb)) != 0 || grace_s < 0 ||
        grace_s > GRACE_MAX)
        return PV_EINVAL;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, 0, &txn))) != 0)
        goto out;
    if ((rc = key_get_txn(t, txn, idb, &ki, hash)) != 0)
        goto out;
    int64_t now = (int64_t)time(NULL);
    /* rotating a dead key would hand out a live one for a credential already withdrawn */
    if (ki.revoked) {
        rc = PV_EREVOKED;
        goto out;
    }
    if (ki.expires_at != 0 && ki.expires_at <= now) {
        rc = PV_EEXPIRED;
        goto out;
    }
    if ((rc = key_add_txn(t, txn, &nk, buf, ki.tenant_id, ki.scopes)) != 0)
        goto out;
    /* the grace never extends an expiry already set (a second rotation cannot revive a key) */
    if (ki.expires_at == 0 || now + grace_s < ki.expires_at)
        ki.expires_at = now + grace_s;
    rc = key_put_commit(t, txn, idb, &ki, hash);
    txn = NULL;
    if (rc != 0)
        goto out;
    memcpy(ki.id, key_id, PV_KEY_ID_LEN + 1);
    if (text != NULL)
        memcpy(text, buf, sizeof(buf));
    if (out != NULL)
        *out = nk;
    if (old != NULL)
        *old = ki;
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

static int cmp_key_info(const void *a, const void *b)
{
    return strcmp(((const pv_key_info_t *)a)->id, ((const pv_key_info_t *)b)->id);
}

int pv_keys_list(pv_tenants_t *t, pv_key_info_t **out, size_t *count, uint64_t tenant_id)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    pv_key_info_t *arr = NULL;
    pv_tenant_t tn;
    size_t n = 0, cap = 0;
    MDB_val k, v;
    int rc, op;

    *out = NULL;
    *count = 0;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn))) != 0)
        goto out;
    if ((rc = get_tenant_txn(t, txn, &tn, tenant_id)) != 0)
        goto out;
    OPENSSL_cleanse(&tn, sizeof(tn));
    if ((rc = pv_tenants_lmdb_err(mdb_cursor_open(txn, t->keys, &cur))) != 0)
        goto out;
    for (op = MDB_FIRST; (rc = mdb_cursor_get(cur, &k, &v, op)) == 0; op = MDB_NEXT) {
        pv_key_info_t ki;
        memset(&ki, 0, sizeof(ki));
        if (k.mv_size != KEY_ID_BYTES || (rc = key_decode(&ki, NULL, &v)) != 0) {
            rc = PV_EFORMAT;
            goto out;
        }
        if (ki.tenant_id != tenant_id)
            continue;
        if (n == cap) {
            size_t ncap = cap == 0 ? 8 : cap * 2;
            pv_key_info_t *na = realloc(arr, ncap * sizeof(*arr));
            if (na == NULL) {
                rc = PV_ENOMEM;
                goto out;
            }
            arr = na;
            cap = ncap;
        }
        pv_hex_encode(ki.id, k.mv_data, KEY_ID_BYTES);
        arr[n++] = ki;
    }
    if (rc != MDB_NOTFOUND) {
        rc = pv_tenants_lmdb_err(rc);
        goto out;
    }
    rc = 0;
    if (n > 1)
        qsort(arr, n, sizeof(*arr), cmp_key_info); /* already in byte order; keeps the contract explicit */
    *out = arr;
    *count = n;
    arr = NULL;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (txn != NULL)
        mdb_txn_abort(txn);
    free(arr);
    return rc;
}

int pv_keys_revoke(pv_tenants_t *t, const char *key_id)
{
    MDB_txn *txn = NULL;
    uint8_t idb[KEY_ID_BYTES], hash[HASH_LEN];
    pv_key_info_t ki;
    int rc;

    if (pv_keys_id_valid(key_id) != 0 || pv_hex_decode(idb, key_id, sizeof(idb)) != 0)
        return PV_EINVAL;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, 0, &txn))) != 0)
        goto out;
    if ((rc = key_get_txn(t, txn, idb, &ki, hash)) != 0)
        goto out;
    if (ki.revoked)
        goto out; /* idempotent: rc is 0, the abort below changes nothing */
    ki.revoked = 1;
    rc = key_put_commit(t, txn, idb, &ki, hash);
    txn = NULL;
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    return rc;
}

/* ---- hot path ---- */

int pv_tenants_reader_create(pv_tenants_reader_t **out, pv_tenants_t *t)
{
    pv_tenants_reader_t *r = calloc(1, sizeof(*r));
    int rc;

    *out = NULL;
    if (r == NULL)
        return PV_ENOMEM;
    r->t = t;
    if ((rc = pv_tenants_lmdb_err(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &r->txn))) != 0) {
        free(r);
        return rc;
    }
    mdb_txn_reset(r->txn); /* keeps the reader slot; renewed per call */
    *out = r;
    return 0;
}

void pv_tenants_reader_destroy(pv_tenants_reader_t *r)
{
    if (r == NULL)
        return;
    if (r->txn != NULL)
        mdb_txn_abort(r->txn);
    free(r);
}

/*
 * Strict parse: exactly "pvk_" + 16 lowercase hex + "_" + 43 canonical
 * base64url chars. One text form per key means no lookalike keys and no
 * ambiguity in logs that carry a key id.
 */
static int parse_key_text(uint8_t idb[KEY_ID_BYTES], uint8_t secret[KEY_SECRET_BYTES], const char *text,
                          size_t len)
{
    if (text == NULL || len != PV_KEY_TEXT_LEN || memcmp(text, KEY_PREFIX, 4) != 0 ||
        text[4 + PV_KEY_ID_LEN] != '_' || !is_lower_hex(text + 4, PV_KEY_ID_LEN))
        return PV_EINVAL;
    if (pv_hex_decode(idb, text + 4, KEY_ID_BYTES) != 0)
        return PV_EINVAL;
    if (pv_b64url_decode(secret, KEY_SECRET_BYTES, text + 5 + PV_KEY_ID_LEN, len - 5 - PV_KEY_ID_LEN) != 0)
        return PV_EINVAL;
    return 0;
}

int pv_tenants_authenticate(pv_tenants_reader_t *r, pv_auth_t *out, const char *text, size_t len)
{
    uint8_t idb[KEY_ID_BYTES], secret[KEY_SECRET_BYTES], hash[HASH_LEN], stored[HASH_LEN];
    pv_key_info_t ki;
    pv_tenant_t tn;
    int rc, renewed = 0;
    MDB_val v;

    memset(&tn, 0, sizeof(tn));
    if ((rc = parse_key_text(idb, secret, text, len)) != 0)
        goto out;
    if ((rc = sha256(hash, secret, sizeof(secret))) != 0)
        goto out;
    if ((rc = mdb_txn_renew(r->txn)) != 0) {
        rc = pv_tenants_lmdb_err(rc) == PV_ELIMIT ? PV_ELIMIT : PV_ESTORE;
        goto out;
    }
    renewed = 1;
    MDB_val k = {sizeof(idb), idb};
    rc = mdb_get(r->txn, r->t->keys, &k, &v);
    if (rc == MDB_NOTFOUND) {
        rc = PV_EAUTH;
        goto out;
    }
    if (rc != 0 || key_decode(&ki, stored, &v) != 0) {
        rc = PV_ESTORE;
        goto out;
    }
    if (pv_memeq_ct(hash, stored, HASH_LEN) != 0) {
        rc = PV_EAUTH;
        goto out;
    }
    /* only a holder of the secret learns that the key is revoked or expired */
    if (ki.revoked) {
        rc = PV_EREVOKED;
        goto out;
    }
    if (ki.expires_at != 0 && (int64_t)time(NULL) >= ki.expires_at) {
        rc = PV_EEXPIRED;
        goto out;
    }
    rc = get_tenant_txn(r->t, r->txn, &tn, ki.tenant_id);
    if (rc == PV_ENOTFOUND) {
        rc = PV_EAUTH; /* a key that outlived its tenant authenticates nothing */
        goto out;
    }
    if (rc != 0) {
        rc = PV_ESTORE;
        goto out;
    }
    memset(out, 0, sizeof(*out));
    out->tenant_id = tn.id;
    memcpy(out->tenant_name, tn.name, sizeof(out->tenant_name));
    out->mode = tn.mode;
    memcpy(out->key_id, text + 4, PV_KEY_ID_LEN);
    out->key_id[PV_KEY_ID_LEN] = '\0';
    out->scopes = ki.scopes;
    out->rate_per_min = tn.rate_per_min;
    out->burst = tn.burst;
    out->monthly_quota = tn.monthly_quota;
out:
    if (renewed)
        mdb_txn_reset(r->txn);
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(&tn, sizeof(tn));
    return rc;
}

int pv_tenants_ping(pv_tenants_reader_t *r)
{
    MDB_stat st;
    int rc = mdb_txn_renew(r->txn);
    if (rc != 0)
        return pv_tenants_lmdb_err(rc) == PV_ELIMIT ? PV_ELIMIT : PV_ESTORE;
    rc = mdb_stat(r->txn, r->t->tenants, &st);
    mdb_txn_reset(r->txn);
    return rc == 0 ? 0 : PV_ESTORE;
}
