/*
 * Line-oriented key=value logger. Writes each line with one write(2) so lines
 * from several threads never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"

int pv_log_level = PV_LOG_INFO;

static const char *names[] = {"debug", "info", "warn", "error", "off"};

int pv_log_set_level(const char *name)
{
    for (int i = 0; i <= PV_LOG_OFF; i++) {
        if (strcmp(name, names[i]) == 0) {
            pv_log_level = i;
            return 0;
        }
    }
    return PV_EINVAL;
}

void pv_log_write(int level, const char *msg, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"%s\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, names[level < 0 || level > PV_LOG_ERROR ? PV_LOG_ERROR : level], msg);
    if (fmt != NULL && n > 0 && (size_t)n < sizeof(line) - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
        n = m < 0 ? n : n + m;
    }
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t r = write(STDERR_FILENO, line, (size_t)n);
    (void)r;
}
