/* Logging: formats a line in a stack buffer and writes it with one write(2),
 * so lines from different workers never interleave.  No allocation. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

static enum cz_log_level log_level = CZ_LOG_INFO;
static _Thread_local int log_worker = -1;

void cz_log_set_level(enum cz_log_level level)
{
    log_level = level;
}

void cz_log_set_worker(int id)
{
    log_worker = id;
}

void cz_log(enum cz_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level > log_level)
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    if (log_worker >= 0)
        n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s [w%d] ",
                              ts.tv_nsec / 1000000, names[level], log_worker);
    else
        n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s [main] ",
                              ts.tv_nsec / 1000000, names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    n = m < 0 ? n : (n + (size_t)m >= sizeof(line) - 1 ? sizeof(line) - 2 : n + (size_t)m);
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
