/* The access log: one line per answered request, combined (Apache/nginx)
 * or JSON, to a file (appended), stdout, or nowhere (--access-log).
 *
 * Off the hot path: each worker formats lines into its own buffer and
 * writes full buffers through its own ring (IORING_OP_WRITE) on the tick or
 * when a buffer fills; no syscall per request, nothing shared between
 * workers.  Two buffers per worker: one filling while the other is written.
 * When both are busy (a slow disk or a stalled pipe reader) lines are
 * dropped and counted, never waited for.  A failing write is reported once
 * per failure spell.  Reopening (SIGUSR1, SIGHUP) swaps the descriptor
 * under every worker with dup3(2): writes in flight keep the old file.
 */
#ifndef CZ_HTTP_ACCESSLOG_H
#define CZ_HTTP_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "catzilla/catzilla.h"

struct cz_server;
struct worker;
struct io_uring_cqe;

/* A client's address as accepted (IPv4 or IPv6); family 0 = unknown. */
struct cz_peer {
    uint8_t family;   /* AF_INET, AF_INET6 or 0 */
    uint16_t port;    /* host order */
    uint8_t addr[16]; /* network order; 4 bytes for IPv4 */
};

/* What a line says about one request.  Strings need not be NUL-terminated;
 * ptr NULL means absent ("-" in combined, null in JSON). */
struct reqlog {
    const struct cz_peer *peer; /* NULL: unknown */
    struct cz_str method, target, referer, user_agent;
    uint8_t http_minor; /* HTTP/1.x; 0xff: no request line was parsed */
    int status;
    int64_t bytes;        /* response body bytes */
    uint64_t duration_ns; /* first request byte to response queued */
};

/* Main thread, before workers start: open --access-log (no-op for off) and
 * check --access-log-format.  0, or -errno with a message in err. */
int accesslog_open(struct cz_server *srv, char *err, size_t errlen);
/* Any thread (the signal thread): reopen the file at the same path (for
 * logrotate).  0 or -errno (the old file stays in use; logged). */
int accesslog_reopen(struct cz_server *srv);
/* After the workers have exited. */
void accesslog_close(struct cz_server *srv);
bool accesslog_enabled(const struct cz_server *srv);

/* Worker thread: buffers from the worker's own arena.  0 or -ENOMEM. */
int accesslog_worker_init(struct worker *w);
void accesslog_worker_free(struct worker *w);
/* Append one line (dropped and counted if no buffer is free). */
void accesslog_record(struct worker *w, const struct reqlog *r);
/* Submit what is buffered (the tick, and before the worker exits). */
void accesslog_flush(struct worker *w);
/* Completion of an OP_LOG write. */
void accesslog_on_cqe(struct worker *w, struct io_uring_cqe *cqe);
/* A write is in flight: the worker must not tear its ring down yet. */
bool accesslog_busy(const struct worker *w);
/* At the shutdown deadline: stop writing (a stalled pipe must not keep the
 * worker alive); what is not written is dropped. */
void accesslog_cancel(struct worker *w);
/* Lines this worker dropped (no free buffer, or a failed write). */
uint64_t accesslog_dropped(const struct worker *w);

/* One line, newline included, as the worker writes it (json: the JSON
 * format, else combined); at most min(cap, PIPE_BUF) bytes.  For tests. */
size_t accesslog_format_line(int json, const struct reqlog *r, time_t now, char *out, size_t cap);

#endif
