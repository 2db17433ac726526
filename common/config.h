/*
 * Runtime configuration as one declarative table per program (the Redis way).
 * Each option has a long flag (--name), an environment variable and a key of
 * the same name in an optional `key = value` config file. Precedence, lowest
 * first: table default, config file, environment, command line.
 */
#ifndef PV_COMMON_CONFIG_H
#define PV_COMMON_CONFIG_H

#include <stddef.h>

#define PV_CONFIG_LIST_MAX 16

typedef enum { PV_OPT_STRING, PV_OPT_INT, PV_OPT_LIST, PV_OPT_BOOL } pv_opt_type_t;

/* A repeatable option's values (e.g. --listen). Strings are owned by the list. */
typedef struct {
    char *items[PV_CONFIG_LIST_MAX];
    int count;
} pv_strlist_t;

typedef struct {
    const char *name;    /* flag and file key, e.g. "listen" */
    const char *env;     /* environment variable, e.g. "PRIVID_LISTEN", or NULL */
    pv_opt_type_t type;
    size_t offset;       /* offsetof() the field in the caller's struct:
                            char * (STRING), long (INT), pv_strlist_t (LIST), int (BOOL) */
    const char *defval;  /* default as text, or NULL */
    long min, max;       /* INT bounds */
    const char *help;
} pv_opt_t;

/*
 * Fills `conf` from the table, the file named by --config / $PRIVID_CONFIG,
 * the environment and argv (argv[0] is skipped; positional arguments are an
 * error). On failure writes a one-line reason into err and returns PV_EINVAL
 * (or -errno when the config file cannot be read). Returns 1 when --help was
 * given (the caller prints pv_config_usage). The caller frees with
 * pv_config_dispose.
 */
int pv_config_load(void *conf, const pv_opt_t *opts, int argc, char **argv, char *err, size_t errlen);

/* Prints one line per option with its flag, variable, default and help. */
void pv_config_usage(const pv_opt_t *opts, const char *prog, const char *summary);

/* Frees the strings held by `conf`'s STRING and LIST fields. */
void pv_config_dispose(void *conf, const pv_opt_t *opts);

#endif
