/*
 * privid-admin's argument parser and help texts. One option table says which
 * commands accept each option; parsing collects options and command words in
 * any order, then resolves the command, then checks applicability, argument
 * counts and values, so every error names exactly one culprit.
 */
#include <string.h>
#include "common/error.h"
#include "tenants/admin_args.h"

#define POS_MAX 4 /* group, command, argument, and the first unexpected word */
#define CMD_BIT(c) (1u << (c))
#define SHOWN 64 /* longest piece of user input echoed back in a message */

enum {
    OPT_DATA_DIR,
    OPT_PG,
    OPT_JSON,
    OPT_MIGRATIONS,
    OPT_MODE,
    OPT_RETENTION,
    OPT_SCOPES,
    OPT_DETECTOR,
    OPT_MIN_SCORE,
    OPT_MODELS,
    OPT_RATE,
    OPT_BURST,
    OPT_QUOTA,
    OPT_MONTH,
    OPT_TIMEOUT,
    OPT_GRACE,
    OPT_K_ANON,
    OPT_COUNT
};

static const struct {
    const char *name;
    int takes_value;
    unsigned cmds; /* commands accepting it; 0 means every command */
} opts[OPT_COUNT] = {
    [OPT_DATA_DIR] = {"data-dir", 1, 0},
    [OPT_PG] = {"pg", 1, 0},
    [OPT_JSON] = {"json", 0, 0},
    [OPT_MIGRATIONS] = {"migrations", 1, CMD_BIT(PV_ADMIN_MIGRATE)},
    [OPT_MODE] = {"mode", 1, CMD_BIT(PV_ADMIN_TENANT_CREATE)},
    [OPT_RETENTION] = {"retention-days", 1,
                       CMD_BIT(PV_ADMIN_TENANT_CREATE) | CMD_BIT(PV_ADMIN_TENANT_UPDATE)},
    [OPT_RATE] = {"rate", 1, CMD_BIT(PV_ADMIN_TENANT_UPDATE)},
    [OPT_BURST] = {"burst", 1, CMD_BIT(PV_ADMIN_TENANT_UPDATE)},
    [OPT_QUOTA] = {"quota", 1, CMD_BIT(PV_ADMIN_TENANT_UPDATE)},
    [OPT_SCOPES] = {"scopes", 1, CMD_BIT(PV_ADMIN_KEY_CREATE)},
    [OPT_DETECTOR] = {"detector", 1, CMD_BIT(PV_ADMIN_FACES)},
    [OPT_MIN_SCORE] = {"min-score", 1, CMD_BIT(PV_ADMIN_FACES)},
    [OPT_MODELS] = {"models", 1, CMD_BIT(PV_ADMIN_FACES)},
    [OPT_MONTH] = {"month", 1, CMD_BIT(PV_ADMIN_USAGE)},
    [OPT_TIMEOUT] = {"timeout", 1, CMD_BIT(PV_ADMIN_ANALYTICS_BACKFILL)},
    [OPT_GRACE] = {"grace", 1, CMD_BIT(PV_ADMIN_KEY_ROTATE)},
    [OPT_K_ANON] = {"k-anon", 1, CMD_BIT(PV_ADMIN_TENANT_UPDATE)},
};

static const struct {
    pv_admin_cmd_t cmd;
    pv_admin_group_t group;
    const char *word;    /* the second word, or the only one for migrate */
    const char *argname; /* the positional it takes, or NULL */
} cmds[] = {
    {PV_ADMIN_MIGRATE, PV_ADMIN_GROUP_NONE, "migrate", NULL},
    {PV_ADMIN_TENANT_CREATE, PV_ADMIN_GROUP_TENANT, "create", "NAME"},
    {PV_ADMIN_TENANT_LIST, PV_ADMIN_GROUP_TENANT, "list", NULL},
    {PV_ADMIN_TENANT_SHOW, PV_ADMIN_GROUP_TENANT, "show", "NAME"},
    {PV_ADMIN_TENANT_DELETE, PV_ADMIN_GROUP_TENANT, "delete", "NAME"},
    {PV_ADMIN_TENANT_UPDATE, PV_ADMIN_GROUP_TENANT, "update", "NAME"},
    {PV_ADMIN_KEY_CREATE, PV_ADMIN_GROUP_KEY, "create", "TENANT"},
    {PV_ADMIN_KEY_LIST, PV_ADMIN_GROUP_KEY, "list", "TENANT"},
    {PV_ADMIN_KEY_REVOKE, PV_ADMIN_GROUP_KEY, "revoke", "KEYID"},
    {PV_ADMIN_KEY_ROTATE, PV_ADMIN_GROUP_KEY, "rotate", "KEYID"},
    {PV_ADMIN_FACES, PV_ADMIN_GROUP_NONE, "faces", "IMAGE"},
    {PV_ADMIN_ANALYTICS_STATUS, PV_ADMIN_GROUP_ANALYTICS, "status", NULL},
    {PV_ADMIN_ANALYTICS_BACKFILL, PV_ADMIN_GROUP_ANALYTICS, "backfill", NULL},
    {PV_ADMIN_USAGE, PV_ADMIN_GROUP_NONE, "usage", "TENANT"},
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

const char *pv_admin_cmd_name(pv_admin_cmd_t cmd)
{
    switch (cmd) {
    case PV_ADMIN_MIGRATE:
        return "migrate";
    case PV_ADMIN_TENANT_CREATE:
        return "tenant create";
    case PV_ADMIN_TENANT_LIST:
        return "tenant list";
    case PV_ADMIN_TENANT_SHOW:
        return "tenant show";
    case PV_ADMIN_TENANT_DELETE:
        return "tenant delete";
    case PV_ADMIN_TENANT_UPDATE:
        return "tenant update";
    case PV_ADMIN_KEY_CREATE:
        return "key create";
    case PV_ADMIN_KEY_LIST:
        return "key list";
    case PV_ADMIN_KEY_REVOKE:
        return "key revoke";
    case PV_ADMIN_KEY_ROTATE:
        return "key rotate";
    case PV_ADMIN_FACES:
        return "faces";
    case PV_ADMIN_ANALYTICS_STATUS:
        return "analytics status";
    case PV_ADMIN_ANALYTICS_BACKFILL:
        return "analytics backfill";
    case PV_ADMIN_USAGE:
        return "usage";
    default:
        return "";
    }
}

static const char *group_name(pv_admin_group_t g)
{
    return g == PV_ADMIN_GROUP_TENANT      ? "tenant"
           : g == PV_ADMIN_GROUP_KEY       ? "key"
           : g == PV_ADMIN_GROUP_ANALYTICS ? "analytics"
                                           : "";
}

static const char *group_words(pv_admin_group_t g)
{
    return g == PV_ADMIN_GROUP_TENANT      ? "create, list, show, update, delete"
           : g == PV_ADMIN_GROUP_ANALYTICS ? "status, backfill"
                                           : "create, list, revoke, rotate";
}

/* "YYYY-MM" (2000-01 .. 9999-12) -> yyyymm. */
static int parse_month(uint32_t *out, const char *s)
{
    uint32_t y = 0, m = 0;
    if (strlen(s) != 7 || s[4] != '-')
        return PV_EINVAL;
    for (int i = 0; i < 7; i++) {
        if (i == 4)
            continue;
        if (s[i] < '0' || s[i] > '9')
            return PV_EINVAL;
        if (i < 4)
            y = y * 10 + (uint32_t)(s[i] - '0');
        else
            m = m * 10 + (uint32_t)(s[i] - '0');
    }
    if (y < 2000 || m < 1 || m > 12)
        return PV_EINVAL;
    *out = y * 100 + m;
    return 0;
}

/* Strict decimal in [lo, hi]: digits only, no sign, no spaces, no overflow. */
static int parse_uint(uint32_t *out, const char *s, uint32_t lo, uint32_t hi)
{
    uint64_t v = 0;
    if (*s == '\0')
        return PV_EINVAL;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return PV_EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > hi)
            return PV_EINVAL;
    }
    if (v < lo)
        return PV_EINVAL;
    *out = (uint32_t)v;
    return 0;
}

/* A duration: decimal digits with an optional unit s, m, h or d (seconds by
 * default), from 0 to 366 days: "0", "90", "90s", "15m", "24h", "7d". */
static int parse_duration(int64_t *out, const char *s)
{
    int64_t v = 0, unit = 1;
    size_t n = strlen(s), i;
    if (n == 0)
        return PV_EINVAL;
    switch (s[n - 1]) {
    case 's':
        n--;
        break;
    case 'm':
        unit = 60, n--;
        break;
    case 'h':
        unit = 3600, n--;
        break;
    case 'd':
        unit = 86400, n--;
        break;
    }
    if (n == 0 || n > 9)
        return PV_EINVAL;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PV_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    if (v * unit > 366 * 86400)
        return PV_EINVAL;
    *out = v * unit;
    return 0;
}

/* Strict decimal fraction in (0, 1): "0.5", ".35", "0.9"; no sign, exponent or spaces. */
static int parse_score(double *out, const char *s)
{
    double v = 0, scale = 1;
    int digits = 0, dot = 0;
    for (; *s != '\0'; s++) {
        if (*s == '.' && !dot) {
            dot = 1;
        } else if (*s >= '0' && *s <= '9' && digits < 12) {
            digits++;
            if (dot) {
                scale /= 10;
                v += (*s - '0') * scale;
            } else {
                v = v * 10 + (*s - '0');
            }
        } else {
            return PV_EINVAL;
        }
    }
    if (digits == 0 || !(v > 0 && v < 1))
        return PV_EINVAL;
    *out = v;
    return 0;
}

int pv_admin_parse(pv_admin_args_t *out, int argc, char **argv, char *err, size_t errlen)
{
    const char *vals[OPT_COUNT] = {0};
    int seen[OPT_COUNT] = {0};
    const char *pos[POS_MAX];
    int npos = 0, end_of_opts = 0, want = 0, rc = PV_EINVAL;
    size_t i;

    memset(out, 0, sizeof(*out));
    out->mode = PV_TENANT_NETWORK;
    out->retention_days = PV_TENANT_RETENTION_DEFAULT;
    out->scopes = PV_SCOPE_ALL;
    out->grace_s = PV_ADMIN_GRACE_DEFAULT;
    if (errlen > 0)
        err[0] = '\0';

    for (int ai = 1; ai < argc; ai++) {
        const char *a = argv[ai];
        if (a == NULL)
            break;
        if (end_of_opts || a[0] != '-' || a[1] == '\0') {
            /* past POS_MAX only the count matters: the first extra word is what gets reported */
            if (npos < POS_MAX)
                pos[npos] = a;
            if (npos < PV_ADMIN_FILES_MAX + 1)
                out->files[npos] = a; /* every positional; kept only for faces */
            npos++;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            end_of_opts = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            out->help = 1;
            continue;
        }
        if (a[1] != '-') {
            snprintf(err, errlen, "unknown option '%.*s'", SHOWN, a);
            goto out;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
        int o;
        for (o = 0; o < OPT_COUNT; o++)
            if (strlen(opts[o].name) == nlen && strncmp(opts[o].name, name, nlen) == 0)
                break;
        if (o == OPT_COUNT) {
            snprintf(err, errlen, "unknown option '--%.*s'", (int)(nlen < SHOWN ? nlen : SHOWN), name);
            goto out;
        }
        if (seen[o]) {
            snprintf(err, errlen, "option --%s given twice", opts[o].name);
            goto out;
        }
        seen[o] = 1;
        if (!opts[o].takes_value) {
            if (eq != NULL) {
                snprintf(err, errlen, "option --%s takes no value", opts[o].name);
                goto out;
            }
        } else if (eq != NULL) {
            vals[o] = eq + 1;
        } else if (ai + 1 < argc && argv[ai + 1] != NULL) {
            vals[o] = argv[++ai];
        } else {
            snprintf(err, errlen, "option --%s needs a value", opts[o].name);
            goto out;
        }
    }

    /* the command words */
    int used = 0;
    if (npos == 0) {
        if (!out->help) {
            snprintf(err, errlen, "missing command (migrate, tenant, key, faces, analytics, usage)");
            goto out;
        }
    } else if (strcmp(pos[0], "migrate") == 0) {
        out->cmd = PV_ADMIN_MIGRATE;
        used = 1;
    } else if (strcmp(pos[0], "faces") == 0) {
        out->cmd = PV_ADMIN_FACES;
        used = 1;
    } else if (strcmp(pos[0], "usage") == 0) {
        out->cmd = PV_ADMIN_USAGE;
        used = 1;
    } else if (strcmp(pos[0], "tenant") == 0 || strcmp(pos[0], "key") == 0 ||
               strcmp(pos[0], "analytics") == 0) {
        out->group = pos[0][0] == 't'   ? PV_ADMIN_GROUP_TENANT
                     : pos[0][0] == 'k' ? PV_ADMIN_GROUP_KEY
                                        : PV_ADMIN_GROUP_ANALYTICS;
        used = 1;
        if (npos < 2) {
            if (!out->help) {
                snprintf(err, errlen, "missing %s command (%s)", group_name(out->group),
                         group_words(out->group));
                goto out;
            }
        } else {
            for (i = 0; i < NCMDS; i++)
                if (cmds[i].group == out->group && strcmp(cmds[i].word, pos[1]) == 0)
                    out->cmd = cmds[i].cmd;
            if (out->cmd == PV_ADMIN_NONE) {
                snprintf(err, errlen, "unknown %s command '%.*s' (expected %s)", group_name(out->group),
                         SHOWN, pos[1], group_words(out->group));
                goto out;
            }
            used = 2;
        }
    } else {
        snprintf(err, errlen,
                 "unknown command '%.*s' (expected migrate, tenant, key, faces, analytics, usage, visitor, retention or demo)", SHOWN,
                 pos[0]);
        goto out;
    }
    out->data_dir = vals[OPT_DATA_DIR];
    out->pg = vals[OPT_PG];
    out->migrations = vals[OPT_MIGRATIONS];
    out->models = vals[OPT_MODELS];
    out->json = seen[OPT_JSON];
    if (out->help) {
        rc = 0;
        goto out;
    }

    /* options that belong to other commands */
    for (int o = 0; o < OPT_COUNT; o++) {
        if (seen[o] && opts[o].cmds != 0 && !(opts[o].cmds & CMD_BIT(out->cmd))) {
            snprintf(err, errlen, "option --%s is not valid for '%s'", opts[o].name,
                     pv_admin_cmd_name(out->cmd));
            goto out;
        }
    }
    for (int o = 0; o < OPT_COUNT; o++) {
        if (seen[o] && opts[o].takes_value && vals[o][0] == '\0') {
            snprintf(err, errlen, "option --%s needs a non-empty value", opts[o].name);
            goto out;
        }
    }

    /* the positional argument */
    const char *argname = NULL;
    for (i = 0; i < NCMDS; i++)
        if (cmds[i].cmd == out->cmd)
            argname = cmds[i].argname;
    want = used + (argname != NULL);
    if (out->cmd == PV_ADMIN_FACES && npos > want) {
        /* faces takes one or more images */
        if (npos - used > PV_ADMIN_FILES_MAX) {
            snprintf(err, errlen, "too many images (at most %d per run)", PV_ADMIN_FILES_MAX);
            goto out;
        }
        want = npos;
    }
    if (npos < want) {
        snprintf(err, errlen, "missing argument %s for '%s'", argname, pv_admin_cmd_name(out->cmd));
        goto out;
    }
    if (npos > want) {
        snprintf(err, errlen, "unexpected argument '%.*s'", SHOWN, pos[want]);
        goto out;
    }
    if (argname != NULL)
        out->arg = pos[used];
    if (out->cmd == PV_ADMIN_FACES) {
        out->arg = NULL;
        out->nfiles = npos - used;
        memmove(out->files, out->files + used, (size_t)out->nfiles * sizeof(out->files[0]));
        out->files[out->nfiles] = NULL;
    } else {
        memset(out->files, 0, sizeof(out->files));
    }

    /* values */
    if (out->cmd == PV_ADMIN_KEY_REVOKE || out->cmd == PV_ADMIN_KEY_ROTATE) {
        if (pv_keys_id_valid(out->arg) != 0) {
            snprintf(err, errlen, "invalid key id '%.*s': expected %d lowercase hex digits", SHOWN, out->arg,
                     PV_KEY_ID_LEN);
            goto out;
        }
    } else if (out->arg != NULL && out->cmd != PV_ADMIN_FACES && pv_tenants_name_valid(out->arg) != 0) {
        snprintf(err, errlen,
                 "invalid tenant name '%.*s': use 1-%d characters from [A-Za-z0-9._-], starting with a "
                 "letter or digit",
                 SHOWN, out->arg, PV_TENANT_NAME_MAX);
        goto out;
    }
    if (seen[OPT_MODE] && pv_tenant_mode_parse(&out->mode, vals[OPT_MODE]) != 0) {
        snprintf(err, errlen, "invalid --mode '%.*s': expected network or isolated", SHOWN, vals[OPT_MODE]);
        goto out;
    }
    out->update.set_retention = seen[OPT_RETENTION];
    if (seen[OPT_RETENTION] &&
        parse_uint(&out->retention_days, vals[OPT_RETENTION], 1, PV_TENANT_RETENTION_MAX) != 0) {
        snprintf(err, errlen, "invalid --retention-days '%.*s': expected an integer from 1 to %d", SHOWN,
                 vals[OPT_RETENTION], PV_TENANT_RETENTION_MAX);
        goto out;
    }
    if (seen[OPT_SCOPES] && pv_scopes_parse(&out->scopes, vals[OPT_SCOPES]) != 0) {
        snprintf(
            err, errlen,
            "invalid --scopes '%.*s': expected a comma-separated list of recognize, events, analytics, erase "
            "(or all)",
            SHOWN, vals[OPT_SCOPES]);
        goto out;
    }
    out->update.retention_days = out->retention_days;
    static const struct {
        int opt;
        uint32_t max;
        const char *what;
    } limits[] = {{OPT_RATE, 1000000, "requests per minute per key, 0 = unlimited"},
                  {OPT_BURST, 1000000, "requests, 0 = automatic"},
                  {OPT_QUOTA, 4000000000u, "images per month, 0 = unlimited"}};
    for (size_t li = 0; li < sizeof(limits) / sizeof(limits[0]); li++) {
        int o = limits[li].opt;
        uint32_t v = 0;
        if (!seen[o])
            continue;
        if (parse_uint(&v, vals[o], 0, limits[li].max) != 0) {
            snprintf(err, errlen, "invalid --%s '%.*s': expected an integer from 0 to %u (%s)", opts[o].name, SHOWN,
                     vals[o], limits[li].max, limits[li].what);
            goto out;
        }
        if (o == OPT_RATE)
            out->update.set_rate = 1, out->update.rate_per_min = v;
        else if (o == OPT_BURST)
            out->update.set_burst = 1, out->update.burst = v;
        else
            out->update.set_quota = 1, out->update.monthly_quota = v;
    }
    if (seen[OPT_K_ANON]) {
        uint32_t k = 0;
        if (parse_uint(&k, vals[OPT_K_ANON], PV_ADMIN_K_MIN, PV_ADMIN_K_MAX) != 0) {
            snprintf(err, errlen, "invalid --k-anon '%.*s': expected an integer from %d to %d", SHOWN,
                     vals[OPT_K_ANON], PV_ADMIN_K_MIN, PV_ADMIN_K_MAX);
            goto out;
        }
        out->k_anon = (int)k;
    }
    if (out->cmd == PV_ADMIN_TENANT_UPDATE && !seen[OPT_RETENTION] && !seen[OPT_RATE] && !seen[OPT_BURST] &&
        !seen[OPT_QUOTA] && !seen[OPT_K_ANON]) {
        snprintf(err, errlen,
                 "tenant update needs at least one of --retention-days, --rate, --burst, --quota, --k-anon");
        goto out;
    }
    if (seen[OPT_DETECTOR]) {
        if (strcmp(vals[OPT_DETECTOR], "ssd") == 0) {
            out->detector_ssd = 1;
        } else if (strcmp(vals[OPT_DETECTOR], "tiny") != 0) {
            snprintf(err, errlen, "invalid --detector '%.*s': expected tiny or ssd", SHOWN, vals[OPT_DETECTOR]);
            goto out;
        }
    }
    if (seen[OPT_MONTH] && parse_month(&out->month, vals[OPT_MONTH]) != 0) {
        snprintf(err, errlen,
                 "invalid --month '%.*s': expected YYYY-MM (for example 2026-03), year 2000 or later", SHOWN,
                 vals[OPT_MONTH]);
        goto out;
    }
    if (seen[OPT_TIMEOUT] && parse_uint(&out->timeout_s, vals[OPT_TIMEOUT], 1, 86400) != 0) {
        snprintf(err, errlen, "invalid --timeout '%.*s': expected seconds from 1 to 86400", SHOWN,
                 vals[OPT_TIMEOUT]);
        goto out;
    }
    if (seen[OPT_GRACE] && parse_duration(&out->grace_s, vals[OPT_GRACE]) != 0) {
        snprintf(err, errlen,
                 "invalid --grace '%.*s': expected a duration such as 0, 90s, 15m, 24h or 7d (at most 366d)",
                 SHOWN, vals[OPT_GRACE]);
        goto out;
    }
    if (seen[OPT_MIN_SCORE] && parse_score(&out->min_score, vals[OPT_MIN_SCORE]) != 0) {
        snprintf(err, errlen, "invalid --min-score '%.*s': expected a number greater than 0 and less than 1", SHOWN,
                 vals[OPT_MIN_SCORE]);
        goto out;
    }
    rc = 0;
out:
    return rc;
}

static const char global_help[] =
    "Global options (before or after the command):\n"
    "  --data-dir DIR   tenants store directory (env PRIVID_DATA_DIR, default ./var/data)\n"
    "  --pg DSN         PostgreSQL connection string (env PRIVID_PG); tenant changes are\n"
    "                   mirrored there when set\n"
    "  --json           print JSON instead of text\n"
    "  -h, --help       show help for the command given\n";

static const char exit_help[] =
    "Exit status: 0 ok, 1 store or database failure, 2 usage error,\n"
    "3 not found or already exists, 4 saved locally but mirroring to PostgreSQL failed\n"
    "(re-run 'privid-admin migrate' to re-sync).\n";

void pv_admin_usage(FILE *f, const pv_admin_args_t *a)
{
    switch (a->cmd) {
    case PV_ADMIN_MIGRATE:
        fprintf(f, "Usage: privid-admin migrate [--migrations DIR] --pg DSN\n\n"
                   "Applies the migrations/NNNN_*.sql files not yet recorded in schema_migrations,\n"
                   "in order, each in its own transaction, under an advisory lock; then mirrors\n"
                   "every tenant of the local store into PostgreSQL.\n\n"
                   "  --migrations DIR  folder of NNNN_name.sql files (env PRIVID_MIGRATIONS; default:\n"
                   "                    the repository's migrations/ folder)\n\n");
        break;
    case PV_ADMIN_TENANT_CREATE:
        fprintf(f,
                "Usage: privid-admin tenant create NAME [--mode network|isolated] [--retention-days N]\n\n"
                "Creates a tenant. NAME: 1-%d characters from [A-Za-z0-9._-], starting with a\n"
                "letter or digit.\n\n"
                "  --mode MODE           network (match the shared gallery, default) or isolated\n"
                "  --retention-days N    forget identities unseen for N days, 1..%d (default %d)\n\n",
                PV_TENANT_NAME_MAX, PV_TENANT_RETENTION_MAX, PV_TENANT_RETENTION_DEFAULT);
        break;
    case PV_ADMIN_TENANT_LIST:
        fprintf(f, "Usage: privid-admin tenant list\n\nLists tenants by name.\n\n");
        break;
    case PV_ADMIN_TENANT_SHOW:
        fprintf(f, "Usage: privid-admin tenant show NAME\n\nShows one tenant (never its secret).\n\n");
        break;
    case PV_ADMIN_TENANT_UPDATE:
        fprintf(f, "Usage: privid-admin tenant update NAME [--retention-days N] [--rate N] [--burst N] [--quota N]\n"
                   "                                 [--k-anon N --pg DSN]\n\n"
                   "Changes a tenant's retention and limits; the gateway applies them at the next request.\n\n"
                   "  --retention-days N  forget identities unseen for N days, 1..%d\n"
                   "  --rate N            requests per minute per API key (token bucket), 0 = unlimited\n"
                   "  --burst N           requests a key may send at once, 0 = max(5, rate/10)\n"
                   "  --quota N           images per calendar month (UTC) for the tenant, 0 = unlimited\n"
                   "  --k-anon N          the reports' k-anonymity: cells of fewer than N visitors are\n"
                   "                      suppressed, %d..%d (default 5); kept in PostgreSQL, so it needs\n"
                   "                      --pg (or PRIVID_PG); report requests may raise it, never lower it\n\n",
                PV_TENANT_RETENTION_MAX, PV_ADMIN_K_MIN, PV_ADMIN_K_MAX);
        break;
    case PV_ADMIN_TENANT_DELETE:
        fprintf(f, "Usage: privid-admin tenant delete NAME\n\nDeletes a tenant and all its API keys.\n\n");
        break;
    case PV_ADMIN_KEY_CREATE:
        fprintf(
            f, "Usage: privid-admin key create TENANT [--scopes LIST]\n\n"
               "Creates an API key and prints it once, alone on a line (or in JSON with --json).\n"
               "It cannot be shown again: only its hash is stored.\n\n"
               "  --scopes LIST   comma-separated recognize,events,analytics,erase or all (default all)\n\n");
        break;
    case PV_ADMIN_KEY_LIST:
        fprintf(
            f, "Usage: privid-admin key list TENANT\n\nLists a tenant's API keys (ids, scopes, status).\n\n");
        break;
    case PV_ADMIN_FACES:
        fprintf(f, "Usage: privid-admin faces [--detector tiny|ssd] [--min-score S] [--models DIR] IMAGE...\n\n"
                   "Runs the face pipeline on each image (JPEG, PNG or WebP) and prints one JSON\n"
                   "object per image and line: size, timing per stage, and the faces with box,\n"
                   "score, 68 landmarks, quality and 128-d descriptor. Nothing is stored.\n\n"
                   "  --detector D    tiny (default, 416 px) or ssd (512 px)\n"
                   "  --min-score S   detection threshold, 0 < S < 1 (default 0.5)\n"
                   "  --models DIR    face-api's model/ folder (env PRIVID_MODELS/model; default:\n"
                   "                  the one deploy/setup.sh fetched)\n\n");
        break;
    case PV_ADMIN_KEY_REVOKE:
        fprintf(f, "Usage: privid-admin key revoke KEYID\n\nRevokes an API key at once; KEYID is its 16 hex "
                   "digits.\n\n");
        break;
    case PV_ADMIN_KEY_ROTATE:
        fprintf(f, "Usage: privid-admin key rotate KEYID [--grace DURATION]\n\n"
                   "Creates a new API key with the same tenant and scopes and prints it once, like\n"
                   "'key create'; the old key keeps working for the grace period, then expires (the\n"
                   "gateway answers 401 expired_key). A revoked or expired key cannot be rotated.\n\n"
                   "  --grace DURATION  how long the old key stays valid: seconds, or a number with\n"
                   "                    s, m, h or d (0 = expire at once; default 24h; at most 366d)\n\n");
        break;
    case PV_ADMIN_ANALYTICS_STATUS:
        fprintf(f, "Usage: privid-admin analytics status [--pg DSN]\n\n"
                   "Shows the analytics outbox of the local store: events waiting, the age of the\n"
                   "oldest, and the last delivery to PostgreSQL (time and events delivered in all,\n"
                   "as recorded in the store by whichever writer delivered them). With --pg (or\n"
                   "PRIVID_PG), also the newest visit and business event in PostgreSQL.\n\n");
        break;
    case PV_ADMIN_ANALYTICS_BACKFILL:
        fprintf(f, "Usage: privid-admin analytics backfill --pg DSN [--timeout SECONDS]\n\n"
                   "Delivers every event waiting in the local outbox to PostgreSQL now, with the\n"
                   "gateway's writer (same batches, same idempotent inserts: running it twice, or\n"
                   "after the gateway delivered some, never doubles a row), and copies the usage\n"
                   "counters into usage_daily. For an operator after an outage. Refused (exit 1)\n"
                   "while another writer drains the same data directory (a gateway started with --pg).\n\n"
                   "  --timeout SECONDS  give up when PostgreSQL has not taken the events within\n"
                   "                     this time (1..86400, default 300); exit 1\n\n");
        break;
    case PV_ADMIN_USAGE:
        fprintf(f, "Usage: privid-admin usage TENANT [--month YYYY-MM]\n\n"
                   "Shows a tenant's metered usage per UTC day of a month (default: the current UTC\n"
                   "month) and the month's totals, from the local store: requests (image requests,\n"
                   "including those refused by the quota), images (counted against the quota) and\n"
                   "faces found.\n\n"
                   "  --month YYYY-MM  the month to show\n\n");
        break;
    default:
        if (a->group == PV_ADMIN_GROUP_TENANT) {
            fprintf(f, "Usage: privid-admin tenant COMMAND [ARGS]\n\n"
                       "Commands:\n"
                       "  create NAME [--mode network|isolated] [--retention-days N]\n"
                       "  list\n"
                       "  show NAME\n"
                       "  update NAME [--retention-days N] [--rate N] [--burst N] [--quota N] [--k-anon N]\n"
                       "  delete NAME\n\n");
        } else if (a->group == PV_ADMIN_GROUP_ANALYTICS) {
            fprintf(f, "Usage: privid-admin analytics COMMAND [ARGS]\n\n"
                       "Commands:\n"
                       "  status [--pg DSN]                     outbox depth, oldest event, last delivery\n"
                       "  backfill --pg DSN [--timeout SECONDS]  deliver the outbox to PostgreSQL now\n\n");
        } else if (a->group == PV_ADMIN_GROUP_KEY) {
            fprintf(f, "Usage: privid-admin key COMMAND [ARGS]\n\n"
                       "Commands:\n"
                       "  create TENANT [--scopes LIST]\n"
                       "  list TENANT\n"
                       "  revoke KEYID\n"
                       "  rotate KEYID [--grace DURATION]\n\n");
        } else {
            fprintf(f, "Usage: privid-admin [OPTIONS] COMMAND [ARGS]\n\n"
                       "Manages PrivID tenants and API keys (local LMDB store) and the PostgreSQL schema.\n\n"
                       "Commands:\n"
                       "  migrate                       apply SQL migrations, mirror tenants to PostgreSQL\n"
                       "  tenant create|list|show|delete\n"
                       "  key create|list|revoke|rotate\n"
                       "  faces IMAGE...                what the face pipeline sees in images (JSON)\n"
                       "  analytics status|backfill     the analytics outbox and its delivery to PostgreSQL\n"
                       "  usage TENANT [--month YYYY-MM]  a tenant's metered usage per day\n"
                       "  visitor erase TENANT ID       erase one visitor (as DELETE /v1/visitors/{id})\n"
                       "  retention run [--tenant NAME] forget visitors unseen for the retention period\n"
                       "  demo seed --tenant NAME       SYNTHETIC demo visits and purchases (demo --help)\n\n"
                       "Run 'privid-admin COMMAND --help' for a command's options.\n\n");
        }
        break;
    }
    fputs(global_help, f);
    fputc('\n', f);
    fputs(exit_help, f);
}
