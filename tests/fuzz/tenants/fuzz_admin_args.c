/*
 * libFuzzer target for privid-admin's command line (tenants/admin_args.c
 * pv_admin_parse; the faces command's image files go through the decoder
 * that fuzz_image covers). The input is split at NUL bytes into argv[1..]
 * (at most 64 words). Invariants: a refusal has a message; an accepted
 * command line names a command (or asks for help), and every value is in
 * its documented range: retention 1..3650 days, scopes a non-empty subset,
 * min-score in (0, 1), month YYYYMM from 2000, the faces command's files
 * NULL-terminated and taken from argv.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tenants/admin_args.h"
#include "tenants/admin_forget.h"

#define WORDS_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    static pv_admin_args_t a;
    char *buf = malloc(size + 1), *argv[WORDS_MAX + 2], err[256];
    int argc = 1;
    if (buf == NULL)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    argv[0] = "privid-admin";
    for (char *p = buf; argc <= WORDS_MAX && p <= buf + size; p += strlen(p) + 1)
        argv[argc++] = p;
    if (size == 0)
        argc = 1;
    argv[argc] = NULL;
    /* visitor erase / retention run: their own parser */
    pv_forget_opts_t fo;
    memset(err, 0x55, sizeof(err));
    if (pv_forget_parse(&fo, argc - 1, argv + 1, err, sizeof(err)) != 0) {
        if (strnlen(err, sizeof(err)) == 0 || strnlen(err, sizeof(err)) == sizeof(err))
            abort();
    } else if ((fo.cmd == PV_FORGET_NONE && !fo.help) ||
               (fo.cmd == PV_FORGET_ERASE && !fo.help && (fo.tenant == NULL || fo.visitor == NULL))) {
        abort();
    }
    memset(err, 0x55, sizeof(err));
    if (pv_admin_parse(&a, argc, argv, err, sizeof(err)) != 0) {
        if (strnlen(err, sizeof(err)) == 0 || strnlen(err, sizeof(err)) == sizeof(err))
            abort();
    } else {
        if (a.cmd < PV_ADMIN_NONE || a.cmd >= PV_ADMIN_CMD_COUNT || (a.cmd == PV_ADMIN_NONE && !a.help))
            abort();
        if (a.cmd != PV_ADMIN_NONE && pv_admin_cmd_name(a.cmd) == NULL)
            abort();
        if (a.retention_days < 1 || a.retention_days > PV_TENANT_RETENTION_MAX)
            abort();
        if (a.scopes == 0 || (a.scopes & ~(uint32_t)PV_SCOPE_ALL) != 0)
            abort();
        if (a.min_score != 0 && !(a.min_score > 0 && a.min_score < 1))
            abort();
        if (a.month != 0 && (a.month / 100 < 2000 || a.month % 100 < 1 || a.month % 100 > 12))
            abort();
        /* files[] is meaningful for faces only (other commands leave their positionals there) */
        if (a.nfiles < 0 || a.nfiles > PV_ADMIN_FILES_MAX ||
            (a.cmd == PV_ADMIN_FACES && !a.help && a.files[a.nfiles] != NULL))
            abort();
        for (int i = 0; i < a.nfiles; i++)
            if (a.files[i] < buf || a.files[i] > buf + size)
                abort();
        if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
            abort();
        pv_admin_usage(devnull, &a);
    }
    free(buf);
    return 0;
}
