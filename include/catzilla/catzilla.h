/* Catzilla public API: a thread-per-core io_uring HTTP/1.1 server to embed.
 *
 * Create a server from a struct cz_config (the same struct the command-line
 * flags fill), register routes, run.  Each worker thread owns its ring, its
 * connections and its five arenas; handlers run on the worker that received
 * the request, and everything they allocate through catzilla_*_alloc (or the
 * cz_response_* helpers) comes from that worker's arenas.
 */
#ifndef CATZILLA_CATZILLA_H
#define CATZILLA_CATZILLA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "catzilla/config.h"
#include "catzilla/memory.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CATZILLA_VERSION "0.3.0"

typedef struct cz_server cz_server;
typedef struct cz_request cz_request;
typedef struct cz_response cz_response;

/* A handler fills the response; it returns 0, or -errno to make the server
 * answer 500 (or close, if a response was already started).  It runs on a
 * worker thread and must not block. */
typedef int (*cz_handler_fn)(const cz_request *req, cz_response *res, void *user_data);

/* Borrowed string: valid until the handler returns. */
struct cz_str {
    const char *ptr;
    size_t len;
};

/* Create a server; cfg is copied (its strings must outlive the server).
 * Files are served only from cfg.root when it is set: unmatched requests are
 * 404 otherwise.
 * Returns 0 and *out, or -errno.  Call from the thread that will call run. */
int cz_server_create(const struct cz_config *cfg, cz_server **out);

/* Register a route.  method is "GET", "POST", ... or "*" for any method;
 * pattern is "/a/b", with "{name}" segments as parameters ("/users/{id}")
 * and an optional final "*" segment for the rest of the path, slashes
 * included, read with cz_request_param(req, "*"): "/static/" then "*".  A static
 * segment wins over a parameter, a parameter over the wildcard.
 * Returns 0, -EEXIST for a duplicate (same method and same pattern shape),
 * -EINVAL for a bad method or pattern, -EBUSY once the server runs. */
int cz_server_route(cz_server *srv, const char *method, const char *pattern, cz_handler_fn fn,
                    void *user_data);

/* The handler for requests that match no route (and no file under cfg.root),
 * instead of the 404 page; it sets its own status.  NULL restores the page.
 * 0, or -EBUSY once running. */
int cz_server_not_found(cz_server *srv, cz_handler_fn fn, void *user_data);

/* Register the admin surface: GET /_catzilla/health, /_catzilla/stats (JSON),
 * /_catzilla/metrics (Prometheus) and the dashboard at /_catzilla/, served
 * only where cfg.admin puts them (by default their own listener on
 * 127.0.0.1:9090; "same": the main one; "off": nowhere).  Without this call
 * no admin listener is opened.  0 or -errno (-EBUSY once running). */
int cz_server_admin_routes(cz_server *srv);

/* Start the workers and serve until cz_server_stop() or SIGINT/SIGTERM (when
 * the caller lets run install its handlers: see cz_server_handle_signals).
 * Returns 0 after a graceful stop, or -errno if start-up failed; then
 * cz_server_error() says why in one line.  A server can run again after
 * run returns; -EBUSY while it runs. */
int cz_server_run(cz_server *srv);

/* Ask the server to drain and stop; any thread, async-signal-safe.  A stop
 * asked before run has started its workers is kept: that run stops at once
 * after starting. */
void cz_server_stop(cz_server *srv);

/* Make cz_server_run stop the server on SIGINT and SIGTERM (off by default). */
void cz_server_handle_signals(cz_server *srv);

/* The port actually bound (useful with port 0) while the server listens;
 * 0 before and after.  Any thread. */
int cz_server_port(const cz_server *srv);

/* From another thread: wait until the server listens (the run in progress,
 * or the next one), up to timeout_ms (-1: no limit).  Returns the port,
 * -errno if the last start-up failed (until the next run begins), or
 * -ETIMEDOUT. */
int cz_server_wait_listening(cz_server *srv, int timeout_ms);

/* One-line description of the last start-up error, "" if none. */
const char *cz_server_error(const cz_server *srv);

void cz_server_destroy(cz_server *srv);

/* --- requests (read-only, valid during the handler) --- */
struct cz_str cz_request_method(const cz_request *req);
struct cz_str cz_request_path(const cz_request *req);   /* without the query */
struct cz_str cz_request_query(const cz_request *req);  /* after '?', may be empty */
/* Percent-decode len bytes of in into out (NUL-terminated), '+' as a space
 * when plus_is_space (query strings).  Returns the decoded length, -EINVAL
 * for a bad escape or %00, -ENOSPC if out (cap bytes) is too small. */
ssize_t cz_url_decode(const char *in, size_t len, bool plus_is_space, char *out, size_t cap);
/* The first query parameter called name ("?a=1&b=x%20y"), decoded into out
 * as cz_url_decode does ("" for "?flag" or "?flag=").  Returns its length,
 * -ENOENT when absent, -EINVAL or -ENOSPC as cz_url_decode. */
ssize_t cz_request_query_param(const cz_request *req, const char *name, char *out, size_t cap);
/* Route parameter by name; .ptr NULL when absent. */
struct cz_str cz_request_param(const cz_request *req, const char *name);
/* First header with that name (case-insensitive); .ptr NULL when absent. */
struct cz_str cz_request_header(const cz_request *req, const char *name);
size_t cz_request_header_count(const cz_request *req);
int cz_request_header_at(const cz_request *req, size_t i, struct cz_str *name,
                         struct cz_str *value);
struct cz_str cz_request_body(const cz_request *req);
/* Index of the worker running this handler. */
unsigned cz_request_worker(const cz_request *req);

/* --- responses --- */
/* Set the status (200..599).  Returns 0, or -EINVAL (the status is kept). */
int cz_response_status(cz_response *res, int status);
/* Add a header (copied).  Content-Length, Date, Server and Connection are
 * managed by the server.  Returns 0 or -errno. */
int cz_response_header(cz_response *res, const char *name, const char *value);
/* Append to the body (copied).  Returns 0 or -ENOMEM. */
int cz_response_write(cz_response *res, const void *data, size_t len);
/* Shorthand: status, Content-Type and whole body.  Returns 0 or -errno. */
int cz_response_send(cz_response *res, int status, const char *content_type, const void *body,
                     size_t len);

#ifdef __cplusplus
}
#endif
#endif
