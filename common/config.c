/*
 * Table-driven configuration loader: defaults, file, environment, argv.
 * Every value passes through set_value(), which validates it the same way
 * whatever its source, so a bad value names its option and its origin.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/config.h"
#include "common/error.h"

#define FIELD(conf, opt, type) ((type *)((char *)(conf) + (opt)->offset))

static const pv_opt_t *find_opt(const pv_opt_t *opts, const char *name, size_t len)
{
    for (const pv_opt_t *o = opts; o->name != NULL; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static void list_clear(pv_strlist_t *l)
{
    for (int i = 0; i < l->count; i++)
        free(l->items[i]);
    l->count = 0;
}

/* `append` distinguishes repeated flags (accumulate) from a new source (replace). */
static int set_value(void *conf, const pv_opt_t *o, const char *val, const char *origin, int append, char *err,
                     size_t errlen)
{
    switch (o->type) {
    case PV_OPT_STRING: {
        char **f = FIELD(conf, o, char *);
        free(*f);
        *f = strdup(val);
        return *f == NULL ? PV_ENOMEM : 0;
    }
    case PV_OPT_INT: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (*val == '\0' || *end != '\0' || errno != 0 || v < o->min || v > o->max) {
            snprintf(err, errlen, "%s: %s must be an integer in [%ld, %ld], got \"%.64s\"", origin, o->name, o->min,
                     o->max, val);
            return PV_EINVAL;
        }
        *FIELD(conf, o, long) = v;
        return 0;
    }
    case PV_OPT_BOOL: {
        int v;
        if (strcmp(val, "1") == 0 || strcmp(val, "true") == 0 || strcmp(val, "yes") == 0 || strcmp(val, "on") == 0)
            v = 1;
        else if (strcmp(val, "0") == 0 || strcmp(val, "false") == 0 || strcmp(val, "no") == 0 ||
                 strcmp(val, "off") == 0)
            v = 0;
        else {
            snprintf(err, errlen, "%s: %s must be true or false, got \"%.64s\"", origin, o->name, val);
            return PV_EINVAL;
        }
        *FIELD(conf, o, int) = v;
        return 0;
    }
    case PV_OPT_LIST: {
        pv_strlist_t *l = FIELD(conf, o, pv_strlist_t);
        if (!append)
            list_clear(l);
        /* a comma-separated value adds several items at once */
        const char *p = val;
        while (*p != '\0') {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            if (n > 0) {
                if (l->count == PV_CONFIG_LIST_MAX) {
                    snprintf(err, errlen, "%s: too many values for %s (at most %d)", origin, o->name,
                             PV_CONFIG_LIST_MAX);
                    return PV_EINVAL;
                }
                if ((l->items[l->count] = strndup(p, n)) == NULL)
                    return PV_ENOMEM;
                l->count++;
            }
            p += n + (comma ? 1 : 0);
        }
        return 0;
    }
    }
    return PV_EINVAL;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

static int load_file(void *conf, const pv_opt_t *opts, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        int e = errno;
        snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(e));
        return -e;
    }
    char line[1024], origin[300];
    int lineno = 0, ret = 0;
    pv_strlist_t seen_lists = {0}; /* names of LIST options already reset by this file */
    while (fgets(line, sizeof(line), fp) != NULL) {
        lineno++;
        snprintf(origin, sizeof(origin), "%.256s:%d", path, lineno);
        if (strchr(line, '\n') == NULL && !feof(fp)) {
            snprintf(err, errlen, "%s: line too long", origin);
            ret = PV_EINVAL;
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%s: expected key = value", origin);
            ret = PV_EINVAL;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        const pv_opt_t *o = find_opt(opts, key, strlen(key));
        if (o == NULL || strcmp(key, "config") == 0) {
            snprintf(err, errlen, "%s: unknown setting \"%.64s\"", origin, key);
            ret = PV_EINVAL;
            break;
        }
        int append = 0;
        for (int i = 0; i < seen_lists.count; i++)
            append |= strcmp(seen_lists.items[i], key) == 0;
        if (o->type == PV_OPT_LIST && !append && seen_lists.count < PV_CONFIG_LIST_MAX)
            seen_lists.items[seen_lists.count++] = strdup(key);
        if ((ret = set_value(conf, o, val, origin, append, err, errlen)) != 0)
            break;
    }
    list_clear(&seen_lists);
    fclose(fp);
    return ret;
}

int pv_config_load(void *conf, const pv_opt_t *opts, int argc, char **argv, char *err, size_t errlen)
{
    int ret;
    const char *config_path = getenv("PRIVID_CONFIG");

    for (const pv_opt_t *o = opts; o->name != NULL; o++)
        if (o->defval != NULL && (ret = set_value(conf, o, o->defval, "default", 0, err, errlen)) != 0)
            return ret;

    /* first pass over argv: --help and --config only, so the file loads before everything else */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config_path = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config_path = argv[i] + 9;
    }
    if (config_path != NULL && *config_path != '\0' && (ret = load_file(conf, opts, config_path, err, errlen)) != 0)
        return ret;

    for (const pv_opt_t *o = opts; o->name != NULL; o++) {
        const char *v = o->env ? getenv(o->env) : NULL;
        if (v != NULL && (ret = set_value(conf, o, v, o->env, 0, err, errlen)) != 0)
            return ret;
    }

    pv_strlist_t seen = {0};
    ret = 0;
    for (int i = 1; i < argc && ret == 0; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%.64s\"", a);
            ret = PV_EINVAL;
            break;
        }
        const char *name = a + 2, *eq = strchr(name, '='), *val;
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const pv_opt_t *o = find_opt(opts, name, nlen);
        if (o == NULL && !(nlen == 6 && strncmp(name, "config", 6) == 0)) {
            snprintf(err, errlen, "unknown option \"%.64s\" (see --help)", a);
            ret = PV_EINVAL;
            break;
        }
        if (eq != NULL)
            val = eq + 1;
        else if (o != NULL && o->type == PV_OPT_BOOL)
            val = "true";
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            snprintf(err, errlen, "option --%.*s needs a value", (int)nlen, name);
            ret = PV_EINVAL;
            break;
        }
        if (o == NULL)
            continue; /* --config, handled above */
        int append = 0;
        for (int j = 0; j < seen.count; j++)
            append |= strcmp(seen.items[j], o->name) == 0;
        if (o->type == PV_OPT_LIST && !append && seen.count < PV_CONFIG_LIST_MAX)
            seen.items[seen.count++] = strdup(o->name);
        char origin[80];
        snprintf(origin, sizeof(origin), "--%s", o->name);
        ret = set_value(conf, o, val, origin, append, err, errlen);
    }
    list_clear(&seen);
    return ret;
}

void pv_config_usage(const pv_opt_t *opts, const char *prog, const char *summary)
{
    printf("Usage: %s [OPTIONS]\n%s\n\nOptions (flag, environment variable, default):\n", prog, summary);
    printf("  --config FILE            PRIVID_CONFIG  a file of `name = value` lines\n");
    for (const pv_opt_t *o = opts; o->name != NULL; o++)
        printf("  --%-22s %-20s %-14s %s\n", o->name, o->env ? o->env : "", o->defval ? o->defval : "-", o->help);
    printf("  --help                   this text\n");
}

void pv_config_dispose(void *conf, const pv_opt_t *opts)
{
    for (const pv_opt_t *o = opts; o->name != NULL; o++) {
        if (o->type == PV_OPT_STRING) {
            char **f = FIELD(conf, o, char *);
            free(*f);
            *f = NULL;
        } else if (o->type == PV_OPT_LIST) {
            list_clear(FIELD(conf, o, pv_strlist_t));
        }
    }
}
