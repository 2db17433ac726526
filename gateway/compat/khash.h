/*
 * Just enough of klib's khash names for <h2o/http2_internal.h> to compile:
 * Debian's libh2o-dev installs that header but not the khash.h it includes.
 * Only the types matter (the connection keeps a pointer to its stream
 * table); the lookup macros below are never executed by the gateway, which
 * reads no stream table. Used by h2guard.c alone.
 */
#ifndef PV_GATEWAY_COMPAT_KHASH_H
#define PV_GATEWAY_COMPAT_KHASH_H

typedef unsigned int khint_t;
typedef khint_t khiter_t;

#define KHASH_MAP_INIT_INT64(name, khval_t) typedef struct kh_##name##_s kh_##name##_t;
#define khash_t(name) kh_##name##_t
#define kh_get(name, h, k) ((void)(h), (void)(k), (khiter_t)0)
#define kh_end(h) ((void)(h), (khiter_t)0)
#define kh_val(h, x) ((void)(x), NULL)

#endif
