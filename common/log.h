/*
 * Structured logging for the edges of PrivID (gateway, CLI, writer threads).
 * One line per event on stderr: `ts=... level=... msg="..." key=value ...`.
 * PV_LOG checks the level before formatting anything. Never pass images,
 * embeddings, API keys or secrets to it.
 */
#ifndef PV_COMMON_LOG_H
#define PV_COMMON_LOG_H

enum pv_log_level { PV_LOG_DEBUG = 0, PV_LOG_INFO = 1, PV_LOG_WARN = 2, PV_LOG_ERROR = 3, PV_LOG_OFF = 4 };

extern int pv_log_level;

/* Parses "debug|info|warn|error|off"; returns 0 or PV_EINVAL. */
int pv_log_set_level(const char *name);

/* Writes one line; `fmt` is the key=value tail after msg (may be NULL). */
void pv_log_write(int level, const char *msg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define PV_LOG(level, msg, ...)                                                                      \
    do {                                                                                             \
        if ((level) >= pv_log_level)                                                                 \
            pv_log_write((level), (msg), __VA_ARGS__);                                               \
    } while (0)

#endif
