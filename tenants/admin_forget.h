/*
 * privid-admin visitor erase TENANT VISITOR_ID and privid-admin retention run
 * [--tenant NAME]: the erasure and the retention sweep from the command line,
 * on the tenants store (tenants/visitors.h). Identities that no tenant maps
 * any more are queued; the running gateway removes them from the gallery
 * (its upkeep, every --forget-ms), or the next one that starts does.
 */
#ifndef PV_TENANTS_ADMIN_FORGET_H
#define PV_TENANTS_ADMIN_FORGET_H

#include <stddef.h>

typedef enum { PV_FORGET_NONE = 0, PV_FORGET_ERASE, PV_FORGET_RETENTION } pv_forget_cmd_t;

typedef struct {
    pv_forget_cmd_t cmd;
    int help, json;
    const char *tenant;   /* erase: TENANT; retention: --tenant or NULL (all) */
    const char *visitor;  /* erase: VISITOR_ID */
    const char *data_dir; /* --data-dir or NULL */
} pv_forget_opts_t;

/* Whether argv's command is `visitor` or `retention` (options skipped). */
int pv_forget_wanted(int argc, char **argv);
/* Parses argv after the program name; PV_EINVAL with a one-line message in err. Fuzzed. */
int pv_forget_parse(pv_forget_opts_t *out, int argc, char **argv, char *err, size_t errlen);
/* Runs it; returns the exit status (0, 1 store failure, 2 usage, 3 not found). */
int pv_forget_main(int argc, char **argv);

#endif
