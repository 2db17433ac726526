/*
 * libFuzzer target for visitor IDs (tenants/visitor_id.c), which clients
 * send back in GET/DELETE /v1/visitors/{id} and in event batches. Input:
 * tenant id (8 bytes), gid (8), the tenant secret (32; zero-padded when the
 * input is shorter), then a text to decode. Invariants: decode(encode(gid))
 * gives gid back; the same ID fails for another tenant id or secret and
 * after changing any one of its characters; a decoded text is exactly the
 * encoding of what it decodes to (one text per visitor), and anything not
 * "vis_" + 22 base64url characters is refused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "tenants/visitor_id.h"

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t head[48] = {0}, secret[32], other[32];
    memcpy(head, data, size < sizeof(head) ? size : sizeof(head));
    uint64_t tenant = be64(head), gid = be64(head + 8), got = 0;
    memcpy(secret, head + 16, 32);
    char id[PV_VISITOR_ID_LEN + 1], enc[PV_VISITOR_ID_LEN + 1];

    if (pv_visitor_id_encode(id, secret, tenant, gid) != 0 || strlen(id) != PV_VISITOR_ID_LEN ||
        memcmp(id, "vis_", 4) != 0)
        abort();
    if (pv_visitor_id_decode(&got, secret, tenant, id, PV_VISITOR_ID_LEN) != 0 || got != gid)
        abort();
    /* the check bytes hold the low 32 bits of the tenant id */
    if (pv_visitor_id_decode(&got, secret, tenant ^ 1, id, PV_VISITOR_ID_LEN) != PV_ENOTFOUND)
        abort();
    memcpy(other, secret, 32);
    other[size % 32] ^= 0x80;
    if (pv_visitor_id_decode(&got, other, tenant, id, PV_VISITOR_ID_LEN) != PV_ENOTFOUND)
        abort();
    /* one changed character: another base64url character, chosen by the input */
    size_t pos = 4 + (size % 22);
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char c = alphabet[(size / 22 + (unsigned char)id[pos]) % 64];
    if (c == id[pos])
        c = alphabet[(strchr(alphabet, c) - alphabet + 1) % 64];
    id[pos] = c;
    if (pv_visitor_id_decode(&got, secret, tenant, id, PV_VISITOR_ID_LEN) != PV_ENOTFOUND)
        abort();

    /* the rest of the input as a client-supplied ID */
    if (size <= sizeof(head))
        return 0;
    const char *text = (const char *)data + sizeof(head);
    size_t len = size - sizeof(head);
    char *copy = malloc(len);
    if (copy == NULL)
        abort();
    memcpy(copy, text, len);
    int rc = pv_visitor_id_decode(&got, secret, tenant, copy, len);
    if (rc == 0) {
        if (pv_visitor_id_encode(enc, secret, tenant, got) != 0 || len != PV_VISITOR_ID_LEN ||
            memcmp(enc, copy, len) != 0)
            abort();
    } else if (rc != PV_ENOTFOUND) {
        abort();
    }
    free(copy);
    return 0;
}
