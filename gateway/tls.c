/*
 * TLS server contexts for the gateway (see tls.h). The settings follow the
 * "intermediate" profile most public guides recommend: TLS 1.2+ only,
 * ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 for TLS 1.2 (TLS 1.3
 * suites are all AEAD), no compression, no renegotiation.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include "common/codec.h"
#include "common/error.h"
#include "gateway/tls.h"

#define TLS12_CIPHERS                                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"               \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* ALPN: h2 when the client offers it, else http/1.1; a client offering neither gets no ALPN (HTTP/1.1). */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    static const unsigned char ours[] = "\x02h2\x08http/1.1";
    (void)ssl;
    (void)arg;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* OpenSSL's first queued error as text (file names, never key bytes), then clears the queue. */
static void openssl_reason(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s %s: %s", what, file, buf);
    ERR_clear_error();
}

int pv_tls_ctx_create(SSL_CTX **out, const char *cert, const char *key, char *err, size_t errlen)
{
    int ret = PV_EINVAL;
    *out = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "SSL_CTX_new failed");
        return PV_ENOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx,
                        SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
        SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1) {
        snprintf(err, errlen, "the cipher settings were refused by OpenSSL");
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        openssl_reason(err, errlen, "cannot load the certificate chain", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        openssl_reason(err, errlen, "cannot load the private key", key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        openssl_reason(err, errlen, "the private key does not match the certificate", cert);
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return ret;
}

int pv_tls_fingerprint(char out[65], SSL_CTX *ctx)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    X509 *x = SSL_CTX_get0_certificate(ctx); /* borrowed */
    if (x == NULL || X509_digest(x, EVP_sha256(), md, &n) != 1 || n != 32)
        return PV_EINVAL;
    pv_hex_encode(out, md, n);
    out[64] = '\0';
    return 0;
}
