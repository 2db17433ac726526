/*
 * Small encodings and randomness shared by tenants (API keys), gateway
 * (request ids) and recognizer (visitor IDs): hex, unpadded base64url,
 * cryptographic random bytes and constant-time comparison (OpenSSL), RFC 3339
 * times (gateway query parameters, business events), query-string
 * percent-decoding (gateway and report parameters).
 */
#ifndef PV_COMMON_CODEC_H
#define PV_COMMON_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2*len hex digits and a NUL to out (size >= 2*len+1). */
void pv_hex_encode(char *out, const uint8_t *in, size_t len);

/* Decodes exactly 2*len hex digits from in (lower or upper case).
 * Returns 0, or PV_EINVAL when a character is not a hex digit. */
int pv_hex_decode(uint8_t *out, const char *in, size_t len);

/* Percent-decodes a query-string name or value of len bytes into out (NUL-terminated; capacity
 * size), '+' read as a space. Returns the decoded length, or -1 when a '%' is not followed by two
 * hex digits, the result holds a NUL byte (raw or "%00": "never%00x" must not read as "never"),
 * or it needs more than size - 1 bytes. */
int pv_url_decode(char *out, size_t size, const char *s, size_t len);

/* Length of the unpadded base64url text for len bytes (without NUL). */
size_t pv_b64url_len(size_t len);

/* Writes the unpadded base64url text of in and a NUL; out needs pv_b64url_len(len)+1. */
void pv_b64url_encode(char *out, const uint8_t *in, size_t len);

/* Decodes unpadded base64url text of length textlen into exactly outlen bytes.
 * Returns 0, or PV_EINVAL when the text is not the canonical encoding of outlen bytes. */
int pv_b64url_decode(uint8_t *out, size_t outlen, const char *text, size_t textlen);

/* Fills buf with cryptographically secure random bytes. Returns 0 or PV_EUNAVAIL. */
int pv_random_bytes(void *buf, size_t len);

/* Compares two equal-length buffers in time independent of their contents; 0 when equal. */
int pv_memeq_ct(const void *a, const void *b, size_t len);

/* Parses an RFC 3339 date-time ("2026-12-04T10:00:00.250+01:00", 'Z' or offset) into unix ms.
 * Returns 0, or PV_EINVAL (malformed, impossible date, before 1970). */
int pv_rfc3339_parse(int64_t *out_ms, const char *s, size_t len);

#endif
