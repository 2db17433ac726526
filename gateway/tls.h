/*
 * The gateway's TLS server context: TLS 1.2 and 1.3 only, ECDHE with AEAD
 * ciphers, ALPN "h2" then "http/1.1", the certificate chain and key read
 * from PEM files. A context is immutable once built; a reload builds a new
 * one and the old one lives on in the connections that still use it
 * (OpenSSL reference counts it).
 */
#ifndef PV_GATEWAY_TLS_H
#define PV_GATEWAY_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/*
 * Builds a server context from the certificate chain file `cert` and the
 * private key file `key` (PEM). The caller owns *out (SSL_CTX_free). On
 * failure writes the reason (OpenSSL's, without key material) into err and
 * returns PV_EINVAL (unreadable or mismatched files) or PV_ENOMEM.
 */
int pv_tls_ctx_create(SSL_CTX **out, const char *cert, const char *key, char *err, size_t errlen);

/*
 * The SHA-256 fingerprint of ctx's certificate as 64 hex digits into
 * out[65] (for the reload log line). Returns 0 or PV_EINVAL.
 */
int pv_tls_fingerprint(char out[65], SSL_CTX *ctx);

#endif
