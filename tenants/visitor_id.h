/*
 * Visitor IDs: what a tenant sees instead of a global identity. The ID is
 * one AES-256 block, encrypted under the tenant's own pseudonym secret, of
 * (gid, tenant id, check bytes), written "vis_" + 22 base64url characters.
 * It is a keyed pseudorandom permutation: stable for a (gid, tenant), computed
 * by any gateway without coordination, unlinkable across tenants, and only
 * the service can map it back. 64 check bits make a forged or mistyped ID
 * fail to decode (the API answers 404) rather than name another visitor.
 */
#ifndef PV_TENANTS_VISITOR_ID_H
#define PV_TENANTS_VISITOR_ID_H

#include <stddef.h>
#include <stdint.h>

#define PV_VISITOR_ID_LEN 26 /* "vis_" + 22 */

/* Writes the visitor ID of gid for this tenant into out (PV_VISITOR_ID_LEN + 1 bytes). */
int pv_visitor_id_encode(char *out, const uint8_t secret[32], uint64_t tenant_id, uint64_t gid);

/*
 * Maps text back to the gid. Returns 0, or PV_ENOTFOUND when text is not a
 * visitor ID of this tenant (malformed, forged, mistyped or another tenant's).
 */
int pv_visitor_id_decode(uint64_t *gid, const uint8_t secret[32], uint64_t tenant_id, const char *text,
                         size_t len);

#endif
