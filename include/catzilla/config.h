/* Catzilla configuration: ONE table lists every option.
 *
 * CZ_CONFIG_FIELDS expands to X(field, TYPE, numeric default, string default,
 * min, max, help) for each option.  The flag is "--" + field with '_' -> '-',
 * the environment variable "CATZILLA_" + FIELD upper-cased.  The struct below,
 * the parser, --help, --print-config and the README's flag table all come from
 * this one list.  Durations are milliseconds (flags take "10s", "250ms", "10");
 * sizes are bytes (flags take "16k", "1m", "1g").
 */
#ifndef CATZILLA_CONFIG_H
#define CATZILLA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "catzilla/export.h"

enum cz_opt_type {
    CZ_OPT_INT,      /* long, in [min, max] */
    CZ_OPT_POW2,     /* long, a power of two in [min, max] */
    CZ_OPT_SIZE,     /* long bytes, k/m/g suffixes, in [min, max] */
    CZ_OPT_DURATION, /* long milliseconds, ms/s suffixes (bare number = seconds) */
    CZ_OPT_BOOL,     /* bool; a bare flag sets it; "=true|false|1|0|on|off" */
    CZ_OPT_STRING,   /* const char * */
    CZ_OPT_ZEROCOPY, /* enum cz_zerocopy: auto|on|off */
    CZ_OPT_LOGLEVEL, /* enum cz_log_level: error|warn|info|debug */
};

enum cz_zerocopy { CZ_ZEROCOPY_AUTO, CZ_ZEROCOPY_ON, CZ_ZEROCOPY_OFF };
enum cz_log_level { CZ_LOG_ERROR, CZ_LOG_WARN, CZ_LOG_INFO, CZ_LOG_DEBUG };

#define CZ_KIB 1024L
#define CZ_MIB (1024L * 1024L)
#define CZ_GIB (1024L * 1024L * 1024L)

/* clang-format off */
#define CZ_CONFIG_FIELDS(X) \
  /* workers and rings */ \
  X(threads,              INT,      0,        NULL,      0,    1024,       "worker threads; 0 = one per CPU in the affinity mask") \
  X(no_pin,               BOOL,     0,        NULL,      0,    1,          "do not pin each worker to its CPU") \
  X(bind,                 STRING,   0,        "0.0.0.0", 0,    0,          "IPv4 or IPv6 address to listen on") \
  X(port,                 INT,      8080,     NULL,      0,    65535,      "TCP port (0 = any free port, printed at start)") \
  X(backlog,              INT,      4096,     NULL,      1,    65535,      "listen(2) backlog of each worker's socket") \
  X(ring_entries,         POW2,     1024,     NULL,      8,    32768,      "io_uring submission queue entries per worker (CQ is 4x)") \
  X(sqpoll,               BOOL,     0,        NULL,      0,    1,          "use a kernel SQ polling thread per ring (costs a core)") \
  X(recv_buffers,         POW2,     256,      NULL,      8,    32768,      "provided receive buffers per worker") \
  X(recv_buffer_size,     POW2,     4096,     NULL,      512,  1048576,    "size of each provided receive buffer in bytes") \
  X(max_connections,      INT,      16384,    NULL,      1,    1000000,    "open connections per worker; accepting pauses above it") \
  X(shutdown_timeout,     DURATION, 10000,    NULL,      0,    3600000,    "on SIGTERM/SIGINT, how long to drain in-flight requests") \
  /* HTTP limits and timeouts */ \
  X(max_request_line,     SIZE,     8192,     NULL,      64,   1048576,    "longest request line (else 414)") \
  X(max_header_size,      SIZE,     16384,    NULL,      256,  4194304,    "largest header block (else 431)") \
  X(max_headers,          INT,      100,      NULL,      1,    10000,      "most header fields in a request (else 431)") \
  X(max_header_line,      SIZE,     8192,     NULL,      64,   1048576,    "longest header field line, name and value (else 431)") \
  X(max_body_size,        SIZE,     CZ_MIB,   NULL,      0,    CZ_GIB,     "largest request body (else 413)") \
  X(header_timeout,       DURATION, 10000,    NULL,      1,    3600000,    "time to receive a whole request head (else 408)") \
  X(body_timeout,         DURATION, 30000,    NULL,      1,    3600000,    "time to receive a whole request body (else 408)") \
  X(keepalive_timeout,    DURATION, 10000,    NULL,      0,    3600000,    "idle time allowed between requests; 0 disables keep-alive") \
  X(send_timeout,         DURATION, 60000,    NULL,      1,    3600000,    "a client that takes no response bytes for this long is closed") \
  X(max_keepalive_requests, INT,    0,        NULL,      0,    1000000000, "requests per connection before it closes; 0 = unlimited") \
  X(max_output_queue,     SIZE,     CZ_MIB,   NULL,      4096, CZ_GIB,     "queued response bytes per connection before reading pauses") \
  X(no_builtin_routes,    BOOL,     0,        NULL,      0,    1,          "turn off /plaintext, /json and /echo") \
  /* static files */ \
  X(root,                 STRING,   0,        NULL,      0,    0,          "directory served at / (default: the bundled public/ docroot)") \
  X(serve_dotfiles,       BOOL,     0,        NULL,      0,    1,          "serve files and directories whose name starts with '.'") \
  X(default_type,         STRING,   0,        "application/octet-stream", 0, 0, "Content-Type for unknown extensions") \
  X(mime_types,           STRING,   0,        "/etc/mime.types", 0, 0,    "MIME table to load (the built-in one is used if missing)") \
  X(cache_control,        STRING,   0,        NULL,      0,    0,          "Cache-Control header value for files (none if empty)") \
  X(file_cache_size,      SIZE,     64*CZ_MIB, NULL,     0,    64*CZ_GIB,  "bytes of file contents cached per worker in registered buffers") \
  X(file_cache_max_file,  SIZE,     128*CZ_KIB, NULL,    0,    CZ_GIB,     "largest file whose contents are cached (larger ones are spliced from the page cache)") \
  X(zerocopy,             ZEROCOPY, CZ_ZEROCOPY_AUTO, NULL, 0, 2,        "zero-copy sends: auto|on|off") \
  X(zc_threshold,         SIZE,     16384,    NULL,      0,    CZ_GIB,     "smallest body sent with SEND_ZC when zero-copy is on") \
  /* memory */ \
  X(dirty_decay_ms,       INT,      10000,    NULL,      0,    3600000,    "jemalloc dirty page decay for the worker arenas") \
  X(muzzy_decay_ms,       INT,      30000,    NULL,      0,    3600000,    "jemalloc muzzy page decay for the worker arenas") \
  X(no_background_thread, BOOL,     0,        NULL,      0,    1,          "disable jemalloc's background purging thread") \
  X(memory_limit,         SIZE,     0,        NULL,      0,    1024*CZ_GIB, "memory budget; 0 = the cgroup's limit (memory.max/high or memory.limit_in_bytes), if any") \
  X(arena_trim,           DURATION, 100,      NULL,      0,    3600000,    "a busy worker returns its request and response arenas' free pages this often; 0 = never") \
  X(idle_release,         DURATION, 10000,    NULL,      0,    3600000,    "a worker idle this long purges its arenas and drops its receive-buffer pages; 0 = never") \
  X(request_dirty_decay_ms, INT,      1000,     NULL,      -1,   3600000,    "dirty page decay of the request arenas (short-lived bodies); -1 = --dirty-decay-ms") \
  X(request_muzzy_decay_ms, INT,      0,        NULL,      -1,   3600000,    "muzzy page decay of the request arenas; -1 = --muzzy-decay-ms") \
  X(response_dirty_decay_ms, INT,      1000,     NULL,      -1,   3600000,    "dirty page decay of the response arenas; -1 = --dirty-decay-ms") \
  X(response_muzzy_decay_ms, INT,      0,        NULL,      -1,   3600000,    "muzzy page decay of the response arenas; -1 = --muzzy-decay-ms") \
  X(cache_dirty_decay_ms,  INT,      -1,       NULL,      -1,   3600000,    "dirty page decay of the cache arenas; -1 = --dirty-decay-ms") \
  X(cache_muzzy_decay_ms,  INT,      -1,       NULL,      -1,   3600000,    "muzzy page decay of the cache arenas; -1 = --muzzy-decay-ms") \
  X(static_dirty_decay_ms, INT,      -1,       NULL,      -1,   3600000,    "dirty page decay of the static arenas; -1 = --dirty-decay-ms") \
  X(static_muzzy_decay_ms, INT,      -1,       NULL,      -1,   3600000,    "muzzy page decay of the static arenas; -1 = --muzzy-decay-ms") \
  X(task_dirty_decay_ms,   INT,      -1,       NULL,      -1,   3600000,    "dirty page decay of the task arenas; -1 = --dirty-decay-ms") \
  X(task_muzzy_decay_ms,   INT,      -1,       NULL,      -1,   3600000,    "muzzy page decay of the task arenas; -1 = --muzzy-decay-ms") \
  X(request_tcache,       BOOL,     1,        NULL,      0,    1,          "thread cache for the request arenas (allocated on every request)") \
  X(response_tcache,      BOOL,     1,        NULL,      0,    1,          "thread cache for the response arenas") \
  X(cache_tcache,         BOOL,     1,        NULL,      0,    1,          "thread cache for the cache arenas (connection state)") \
  X(static_tcache,        BOOL,     0,        NULL,      0,    1,          "thread cache for the static arenas (rare, large blocks)") \
  X(task_tcache,          BOOL,     0,        NULL,      0,    1,          "thread cache for the task arenas (stats, timers)") \
  /* operations */ \
  X(admin,                STRING,   0,        "127.0.0.1:9090", 0, 0,    "where /_catzilla/* (health, stats, metrics, dashboard) is served: off, same (the main listener) or ADDR:PORT of its own listener") \
  X(access_log,           STRING,   0,        "off",     0,    0,          "access log: a file PATH (appended to), - for stdout, or off") \
  X(access_log_format,    STRING,   0,        "combined", 0,   0,          "access log line format: combined (Apache/nginx) or json") \
  X(access_log_buffer,    SIZE,     64*CZ_KIB, NULL,     4096, 16*CZ_MIB, "per-worker access log buffer; written through the ring on each tick or when full") \
  /* logging */ \
  X(log_level,            LOGLEVEL, CZ_LOG_INFO, NULL,   0,    3,          "error|warn|info|debug")
/* clang-format on */

#define CZ_CTYPE_INT long
#define CZ_CTYPE_POW2 long
#define CZ_CTYPE_SIZE long
#define CZ_CTYPE_DURATION long
#define CZ_CTYPE_BOOL bool
#define CZ_CTYPE_STRING const char *
#define CZ_CTYPE_ZEROCOPY int
#define CZ_CTYPE_LOGLEVEL int

struct cz_config {
#define CZ_X_FIELD(field, type, num, str, min, max, help) CZ_CTYPE_##type field;
    CZ_CONFIG_FIELDS(CZ_X_FIELD)
#undef CZ_X_FIELD
};

/* One option's description, for parsers and documentation generators. */
struct cz_option {
    const char *field; /* "max_request_line" */
    enum cz_opt_type type;
    size_t offset; /* offsetof(struct cz_config, field) */
    long num_default;
    const char *str_default;
    long min, max;
    const char *help;
};

#ifdef __cplusplus
extern "C" {
#endif

/* The option table and its length; static storage, any thread. */
CZ_API const struct cz_option *cz_config_options(size_t *count);

/* Fill *cfg with every default. */
CZ_API void cz_config_defaults(struct cz_config *cfg);

/* Apply CATZILLA_* environment variables, then argv (argv wins).  On error
 * returns -EINVAL and writes a one-line message to err.  Recognises the
 * mode flags --help, --version, --print-config and --check-health URL through
 * *mode / *mode_arg; with mode NULL (a caller with no modes) they are an
 * error, never silently ignored. */
enum cz_config_mode {
    CZ_MODE_SERVE,
    CZ_MODE_HELP,
    CZ_MODE_VERSION,
    CZ_MODE_PRINT_CONFIG,
    CZ_MODE_CHECK_HEALTH,
    CZ_MODE_HELP_MARKDOWN,
    CZ_MODE_HELP_MAN
};
CZ_API int cz_config_parse(struct cz_config *cfg, int argc, char **argv, enum cz_config_mode *mode,
                           const char **mode_arg, char *err, size_t errlen);
/* For applications with flags of their own: the same, but arguments that are
 * not Catzilla's (unknown --flags, their values, positionals) are handed back,
 * in order, in argv[1..*argc-1] (argv[*argc] = NULL) instead of being an
 * error.  mode is required: --help, --version, ... are reported there for the
 * application to act on (print its own help, then cz_config_print_help's). */
CZ_API int cz_config_parse_app(struct cz_config *cfg, int *argc, char **argv,
                               enum cz_config_mode *mode, const char **mode_arg, char *err,
                               size_t errlen);

/* Catzilla's options as --help shows them (usage line with argv0). */
CZ_API void cz_config_print_help(FILE *f, const char *argv0);

/* Cross-field checks (e.g. file_cache_max_file <= file_cache_size). 0 or -EINVAL + err. */
CZ_API int cz_config_validate(const struct cz_config *cfg, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
