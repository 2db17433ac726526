/*
 * libFuzzer target for `privid-admin demo` argument parsing (tenants/demo.c
 * pv_demo_parse and pv_demo_wanted). The input is split at NUL bytes into
 * argv (at most 64 words). Invariants: a refusal has a message; an accepted
 * seed names a valid tenant and has weeks, visitors and seed in their
 * documented ranges, with every string taken from argv.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tenants/demo.h"

#define WORDS_MAX 64

static int from(const char *s, const char *buf, size_t size)
{
    return s == NULL || (s >= buf && s <= buf + size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_demo_opts_t o;
    char *buf = malloc(size + 1), *argv[WORDS_MAX + 2], err[256];
    int argc = 0;
    if (buf == NULL)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    for (char *p = buf; argc < WORDS_MAX && size > 0 && p <= buf + size; p += strlen(p) + 1)
        argv[argc++] = p;
    argv[argc] = NULL;
    (void)pv_demo_wanted(argc, argv);
    memset(err, 0x55, sizeof(err));
    if (pv_demo_parse(&o, argc, argv, err, sizeof(err)) != 0) {
        if (strnlen(err, sizeof(err)) == 0 || strnlen(err, sizeof(err)) == sizeof(err))
            abort();
    } else if (!o.help) {
        if (o.tenant == NULL || pv_tenants_name_valid(o.tenant) != 0)
            abort();
        if (o.weeks < 1 || o.weeks > PV_DEMO_WEEKS_MAX || o.visitors < PV_DEMO_VISITORS_MIN ||
            o.visitors > PV_DEMO_VISITORS_MAX)
            abort();
    }
    if (!from(o.tenant, buf, size) || !from(o.data_dir, buf, size))
        abort();
    free(buf);
    return 0;
}
