/*
 * libFuzzer target for API-key authentication: the input is an
 * Authorization header value. It goes through the gateway's Bearer parsing
 * (gateway/request.c pv_bearer_key) and pv_tenants_authenticate against a
 * real LMDB store (one per process, in a temporary directory removed at
 * exit) holding tenant A with a live and a revoked key and tenant B with a
 * live key. The placeholders KEY_A, KEY_B and REVOKED in the input are
 * replaced by those keys' texts so the fuzzer reaches the lookup, secret and
 * revocation paths. Invariants: only a live key's exact text authenticates,
 * as its own tenant with its own scopes; the revoked key's exact text and
 * nothing else is PV_EREVOKED; anything else is PV_EINVAL or PV_EAUTH.
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "common/error.h"
#include "gateway/request.h"
#include "tenants/tenants.h"

static char dir[64];
static pv_tenants_t *store;
static pv_tenants_reader_t *reader;
static pv_tenant_t ta, tb;
static pv_key_info_t ka, kb, kr;
static char text_a[PV_KEY_TEXT_LEN + 1], text_b[PV_KEY_TEXT_LEN + 1], text_r[PV_KEY_TEXT_LEN + 1];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    pv_tenants_reader_destroy(reader);
    pv_tenants_close(store);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/pv_fuzz_api_key_XXXXXX");
    if (mkdtemp(dir) == NULL || pv_tenants_open(&store, dir) != 0 ||
        pv_tenants_create(store, &ta, "tenant-a", PV_TENANT_NETWORK, 30) != 0 ||
        pv_tenants_create(store, &tb, "tenant-b", PV_TENANT_ISOLATED, 30) != 0 ||
        pv_keys_create(store, &ka, text_a, ta.id, PV_SCOPE_RECOGNIZE | PV_SCOPE_EVENTS) != 0 ||
        pv_keys_create(store, &kr, text_r, ta.id, PV_SCOPE_ALL) != 0 || pv_keys_revoke(store, kr.id) != 0 ||
        pv_keys_create(store, &kb, text_b, tb.id, PV_SCOPE_ANALYTICS) != 0 ||
        pv_tenants_reader_create(&reader, store) != 0)
        abort();
    atexit(cleanup);
}

/* Copies in to out replacing each placeholder by its key text; returns the length. */
static size_t expand(char *out, const uint8_t *in, size_t len)
{
    static const struct {
        const char *word;
        const char *text;
    } subst[] = {{"KEY_A", text_a}, {"KEY_B", text_b}, {"REVOKED", text_r}};
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t s;
        for (s = 0; s < 3; s++) {
            size_t n = strlen(subst[s].word);
            if (len - i >= n && memcmp(in + i, subst[s].word, n) == 0) {
                memcpy(out + o, subst[s].text, PV_KEY_TEXT_LEN);
                o += PV_KEY_TEXT_LEN;
                i += n;
                break;
            }
        }
        if (s == 3)
            out[o++] = (char)in[i++];
    }
    return o;
}

static int is(const char *key, size_t len, const char *text)
{
    return len == PV_KEY_TEXT_LEN && memcmp(key, text, len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    if (store == NULL)
        init();
    /* each placeholder (>= 5 bytes) grows to PV_KEY_TEXT_LEN bytes */
    char *value = malloc(size * (PV_KEY_TEXT_LEN / 5 + 1) + 1);
    if (value == NULL)
        abort();
    size_t vlen = expand(value, data, size);
    const char *key;
    size_t klen;
    if (pv_bearer_key(&key, &klen, value, vlen) != 0) {
        if (vlen <= PV_AUTH_HEADER_MAX && vlen >= 7 && strncasecmp(value, "bearer ", 7) == 0)
            abort();
        free(value);
        return 0;
    }
    if (key < value + 7 || key + klen > value + vlen || (klen > 0 && (key[0] == ' ' || key[klen - 1] == ' ')))
        abort();
    pv_auth_t auth;
    memset(&auth, 0, sizeof(auth));
    int rc = pv_tenants_authenticate(reader, &auth, key, klen);
    if (is(key, klen, text_a)) {
        if (rc != 0 || auth.tenant_id != ta.id || strcmp(auth.key_id, ka.id) != 0 ||
            auth.scopes != ka.scopes || strcmp(auth.tenant_name, "tenant-a") != 0)
            abort();
    } else if (is(key, klen, text_b)) {
        if (rc != 0 || auth.tenant_id != tb.id || strcmp(auth.key_id, kb.id) != 0 ||
            auth.scopes != kb.scopes || auth.mode != PV_TENANT_ISOLATED)
            abort();
    } else if (is(key, klen, text_r)) {
        if (rc != PV_EREVOKED)
            abort();
    } else if (rc != PV_EINVAL && rc != PV_EAUTH) {
        abort();
    }
    free(value);
    return 0;
}
