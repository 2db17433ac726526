/*
 * Command-line parsing for privid-admin, kept apart from everything that
 * touches a store or a database so that it can be unit tested and fuzzed:
 * pv_admin_parse reads only argv and writes only *out and err. Strings in the
 * result are borrowed from argv.
 */
#ifndef PV_TENANTS_ADMIN_ARGS_H
#define PV_TENANTS_ADMIN_ARGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "tenants/tenants.h"

typedef enum {
    PV_ADMIN_NONE = 0,
    PV_ADMIN_MIGRATE,
    PV_ADMIN_TENANT_CREATE,
    PV_ADMIN_TENANT_LIST,
    PV_ADMIN_TENANT_SHOW,
    PV_ADMIN_TENANT_DELETE,
    PV_ADMIN_TENANT_UPDATE,
    PV_ADMIN_KEY_CREATE,
    PV_ADMIN_KEY_LIST,
    PV_ADMIN_KEY_REVOKE,
    PV_ADMIN_KEY_ROTATE,
    PV_ADMIN_FACES,
    PV_ADMIN_ANALYTICS_STATUS,
    PV_ADMIN_ANALYTICS_BACKFILL,
    PV_ADMIN_USAGE,
    PV_ADMIN_CMD_COUNT,
} pv_admin_cmd_t;

typedef enum {
    PV_ADMIN_GROUP_NONE = 0,
    PV_ADMIN_GROUP_TENANT,
    PV_ADMIN_GROUP_KEY,
    PV_ADMIN_GROUP_ANALYTICS
} pv_admin_group_t;

/* key rotate: how long the old key keeps working unless --grace says otherwise. */
#define PV_ADMIN_GRACE_DEFAULT (24 * 3600)

/* tenant update --k-anon: the range tenant_report_settings.k accepts (migrations/0003). */
#define PV_ADMIN_K_MIN 2
#define PV_ADMIN_K_MAX 1000

/* Most images one `faces` run takes. */
#define PV_ADMIN_FILES_MAX 1024

typedef struct {
    pv_admin_cmd_t cmd;     /* NONE only with help */
    pv_admin_group_t group; /* for help on "tenant" / "key" alone */
    int help;               /* --help / -h was given: print pv_admin_usage, exit 0 */
    int json;
    const char *data_dir;    /* --data-dir, or NULL (caller applies env and default) */
    const char *pg;          /* --pg, or NULL */
    const char *migrations;  /* --migrations, or NULL */
    const char *arg;         /* the positional: tenant name (tenant *, key create/list, usage) or key id (revoke) */
    pv_tenant_mode_t mode;   /* PV_TENANT_NETWORK unless --mode */
    uint32_t retention_days; /* PV_TENANT_RETENTION_DEFAULT unless --retention-days */
    uint32_t scopes;         /* PV_SCOPE_ALL unless --scopes */
    pv_tenant_update_t update; /* tenant update: --retention-days, --rate, --burst, --quota */
    uint32_t month;            /* usage: --month as yyyymm, 0 unless given (current UTC month) */
    uint32_t timeout_s;        /* analytics backfill: --timeout, 0 unless given */
    int64_t grace_s;           /* key rotate: --grace in seconds, PV_ADMIN_GRACE_DEFAULT unless given */
    int k_anon;                /* tenant update: --k-anon (reports' k, in PostgreSQL), 0 unless given */
    /* faces */
    const char *models;     /* --models DIR (face-api's model/ folder), or NULL */
    int detector_ssd;       /* --detector ssd */
    double min_score;       /* --min-score, 0 unless given */
    int nfiles;             /* the IMAGE arguments */
    const char *files[PV_ADMIN_FILES_MAX + 1]; /* NULL after the last */
} pv_admin_args_t;

/*
 * Parses argv (argv[0] is the program). Options may come before or after the
 * command words; "--" ends options. Returns 0, or PV_EINVAL with a one-line
 * message in err naming the offending command, option, argument or value.
 * With --help, only the command words and option names are checked.
 */
int pv_admin_parse(pv_admin_args_t *out, int argc, char **argv, char *err, size_t errlen);

/* Prints the help for what *a names (the whole tool, a group or one command). */
void pv_admin_usage(FILE *f, const pv_admin_args_t *a);

/* "tenant create", "key revoke", ...; static. */
const char *pv_admin_cmd_name(pv_admin_cmd_t cmd);

#endif
