/* Logging to stderr: one line per event, "TIME LEVEL [wN] message".
 * Thread-safe (each line is one write(2)); the level is process-wide. */
#ifndef CZ_CORE_LOG_H
#define CZ_CORE_LOG_H

#include "catzilla/config.h"

void cz_log_set_level(enum cz_log_level level);
/* Tag this thread's lines with a worker id; -1 for the main thread. */
void cz_log_set_worker(int id);
void cz_log(enum cz_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cz_log_error(...) cz_log(CZ_LOG_ERROR, __VA_ARGS__)
#define cz_log_warn(...) cz_log(CZ_LOG_WARN, __VA_ARGS__)
#define cz_log_info(...) cz_log(CZ_LOG_INFO, __VA_ARGS__)
#define cz_log_debug(...) cz_log(CZ_LOG_DEBUG, __VA_ARGS__)

#endif
