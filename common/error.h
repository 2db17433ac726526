/*
 * PrivID error codes: one table for every component. Functions return 0 on
 * success and a negative value on failure: either -errno or one of the
 * PV_E* codes below. pv_strerror() names both kinds. LMDB, libpq, FAISS and
 * OpenSSL codes are translated into these at each module's boundary.
 */
#ifndef PV_COMMON_ERROR_H
#define PV_COMMON_ERROR_H

enum {
    PV_EBASE = -10000,
    PV_EINVAL = PV_EBASE - 1,      /* malformed argument or input */
    PV_ENOTFOUND = PV_EBASE - 2,   /* no such object */
    PV_EEXIST = PV_EBASE - 3,      /* object already exists */
    PV_EAUTH = PV_EBASE - 4,       /* authentication failed */
    PV_EREVOKED = PV_EBASE - 5,    /* credential revoked */
    PV_ESTORE = PV_EBASE - 6,      /* LMDB failure */
    PV_EDB = PV_EBASE - 7,         /* PostgreSQL failure */
    PV_ENOMEM = PV_EBASE - 8,      /* allocation failed */
    PV_ELIMIT = PV_EBASE - 9,      /* a configured bound was exceeded */
    PV_EFORMAT = PV_EBASE - 10,    /* corrupt or unsupported data format */
    PV_EINTEGRITY = PV_EBASE - 11, /* checksum or hash mismatch */
    PV_EUNAVAIL = PV_EBASE - 12,   /* dependency unavailable, try later */
    PV_EIO = PV_EBASE - 13,        /* I/O failure */
    PV_EINDEX = PV_EBASE - 14,     /* FAISS failure */
    PV_EEXPIRED = PV_EBASE - 15,   /* credential past its expiry */
    PV_ELAST = PV_EBASE - 16,
};

/* Returns a static, human-readable description of `err` (PV_E* or -errno). */
const char *pv_strerror(int err);

/* Returns the short machine name of `err` (e.g. "invalid_argument"), static. */
const char *pv_errname(int err);

#endif
