/*
 * The single table of PrivID error codes and their names.
 */
#include <string.h>
#include "common/error.h"

static const struct {
    int code;
    const char *name;
    const char *text;
} table[] = {
    {PV_EINVAL, "invalid_argument", "invalid argument"},
    {PV_ENOTFOUND, "not_found", "not found"},
    {PV_EEXIST, "already_exists", "already exists"},
    {PV_EAUTH, "unauthorized", "authentication failed"},
    {PV_EREVOKED, "revoked", "credential revoked"},
    {PV_ESTORE, "store_error", "local store (LMDB) failure"},
    {PV_EDB, "database_error", "PostgreSQL failure"},
    {PV_ENOMEM, "out_of_memory", "out of memory"},
    {PV_ELIMIT, "limit_exceeded", "limit exceeded"},
    {PV_EFORMAT, "bad_format", "corrupt or unsupported data"},
    {PV_EINTEGRITY, "integrity_error", "integrity check failed"},
    {PV_EUNAVAIL, "unavailable", "dependency unavailable"},
    {PV_EIO, "io_error", "input/output error"},
    {PV_EINDEX, "index_error", "vector index failure"},
    {PV_EEXPIRED, "expired", "credential expired"},
};

static int find(int err)
{
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (table[i].code == err)
            return (int)i;
    return -1;
}

const char *pv_strerror(int err)
{
    if (err == 0)
        return "success";
    int i = find(err);
    if (i >= 0)
        return table[i].text;
    if (err < 0 && err > PV_EBASE)
        return strerror(-err);
    return "unknown error";
}

const char *pv_errname(int err)
{
    if (err == 0)
        return "ok";
    int i = find(err);
    if (i >= 0)
        return table[i].name;
    return "system_error";
}
