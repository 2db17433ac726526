/*
 * Visitor ID codec: AES-256-ECB on exactly one block (no padding), which is
 * a pseudorandom permutation of the 128-bit plaintext
 *   gid (8 bytes, big-endian) | tenant id low 32 bits | 'P' 'V' 0x01 0x00
 * The last 8 bytes are the check: a random 22-character string decodes to
 * them with probability 2^-64.
 */
#include <openssl/evp.h>
#include <string.h>
#include "common/codec.h"
#include "common/error.h"
#include "tenants/visitor_id.h"

static const char prefix[] = "vis_";

static int aes_block(uint8_t out[16], const uint8_t in[16], const uint8_t key[32], int encrypt)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, ret = PV_EUNAVAIL;
    if (ctx == NULL)
        return PV_ENOMEM;
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_ecb(), NULL, key, NULL, encrypt) == 1 &&
        EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 && EVP_CipherUpdate(ctx, out, &len, in, 16) == 1 && len == 16)
        ret = 0;
    EVP_CIPHER_CTX_free(ctx);
    return ret;
}

static void plaintext(uint8_t block[16], uint64_t tenant_id, uint64_t gid)
{
    for (int i = 0; i < 8; i++)
        block[i] = (uint8_t)(gid >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        block[8 + i] = (uint8_t)(tenant_id >> (24 - 8 * i));
    block[12] = 'P';
    block[13] = 'V';
    block[14] = 1;
    block[15] = 0;
}

int pv_visitor_id_encode(char *out, const uint8_t secret[32], uint64_t tenant_id, uint64_t gid)
{
    uint8_t in[16], ct[16];
    plaintext(in, tenant_id, gid);
    int ret = aes_block(ct, in, secret, 1);
    if (ret != 0)
        return ret;
    memcpy(out, prefix, 4);
    pv_b64url_encode(out + 4, ct, 16);
    return 0;
}

int pv_visitor_id_decode(uint64_t *gid, const uint8_t secret[32], uint64_t tenant_id, const char *text,
                         size_t len)
{
    uint8_t ct[16], pt[16], want[16];
    if (len != PV_VISITOR_ID_LEN || memcmp(text, prefix, 4) != 0 || pv_b64url_decode(ct, 16, text + 4, 22) != 0)
        return PV_ENOTFOUND;
    int ret = aes_block(pt, ct, secret, 0);
    if (ret != 0)
        return ret;
    uint64_t g = 0;
    for (int i = 0; i < 8; i++)
        g = g << 8 | pt[i];
    plaintext(want, tenant_id, g);
    if (pv_memeq_ct(pt + 8, want + 8, 8) != 0)
        return PV_ENOTFOUND;
    *gid = g;
    return 0;
}
