/*
 * libFuzzer target for the configuration loader (common/config.c
 * pv_config_load): the `key = value` file named by --config, then the
 * command line. Input: the file's content up to the first NUL, then argv
 * words separated by NULs (at most 32; words naming another config file are
 * skipped so the target reads only its own file). The option table has one
 * option of each type. Invariants: a refusal has a message and is PV_EINVAL;
 * an accepted configuration holds integers within their bounds, booleans 0
 * or 1, at most PV_CONFIG_LIST_MAX list items, and every string option set.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "common/config.h"
#include "common/error.h"

#define WORDS_MAX 32

typedef struct {
    char *name;
    char *dir;
    long workers;
    long port;
    int verbose;
    pv_strlist_t listen;
} conf_t;

static const pv_opt_t opts[] = {
    {"name", "PV_FUZZ_NAME", PV_OPT_STRING, offsetof(conf_t, name), "privid", 0, 0, "a name"},
    {"dir", NULL, PV_OPT_STRING, offsetof(conf_t, dir), NULL, 0, 0, "a folder"},
    {"workers", "PV_FUZZ_WORKERS", PV_OPT_INT, offsetof(conf_t, workers), "2", 1, 64, "threads"},
    {"port", NULL, PV_OPT_INT, offsetof(conf_t, port), "0", 0, 65535, "a port"},
    {"verbose", NULL, PV_OPT_BOOL, offsetof(conf_t, verbose), "false", 0, 0, "louder"},
    {"listen", NULL, PV_OPT_LIST, offsetof(conf_t, listen), "127.0.0.1:8080", 0, 0, "addresses"},
    {NULL, NULL, 0, 0, NULL, 0, 0, NULL},
};

static int fd = -1; /* the config file: a memfd, read back through /proc/self/fd */
static char config_arg[64];

static void init(void)
{
    if ((fd = memfd_create("pv_fuzz_config", 0)) < 0)
        abort();
    snprintf(config_arg, sizeof(config_arg), "--config=/proc/self/fd/%d", fd);
    unsetenv("PRIVID_CONFIG");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0)
        init();
    const uint8_t *nul = memchr(data, '\0', size);
    size_t flen = nul ? (size_t)(nul - data) : size;
    if (ftruncate(fd, 0) != 0 || (flen > 0 && pwrite(fd, data, flen, 0) != (ssize_t)flen))
        abort();

    char *buf = malloc(size + 1), *argv[WORDS_MAX + 3], err[256];
    if (buf == NULL)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    int argc = 0;
    argv[argc++] = "fuzz";
    argv[argc++] = config_arg;
    for (char *p = buf + flen + 1; nul != NULL && argc < WORDS_MAX + 2 && p <= buf + size; p += strlen(p) + 1)
        if (strstr(p, "config") == NULL)
            argv[argc++] = p;
    argv[argc] = NULL;

    conf_t c;
    memset(&c, 0, sizeof(c));
    err[0] = '\0';
    int rc = pv_config_load(&c, opts, argc, argv, err, sizeof(err));
    if (rc == 0) {
        if (c.name == NULL || c.workers < 1 || c.workers > 64 || c.port < 0 || c.port > 65535 ||
            (c.verbose != 0 && c.verbose != 1) || c.listen.count < 0 || c.listen.count > PV_CONFIG_LIST_MAX)
            abort();
        for (int i = 0; i < c.listen.count; i++)
            if (c.listen.items[i] == NULL)
                abort();
    } else if (rc != 1 && (rc != PV_EINVAL || err[0] == '\0')) {
        abort();
    }
    pv_config_dispose(&c, opts);
    free(buf);
    return 0;
}
