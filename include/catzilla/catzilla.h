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
typedef struct cz_deferred cz_deferred;
typedef struct cz_stream cz_stream;
typedef struct cz_timer cz_timer;
typedef struct cz_body cz_body;

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
CZ_API int cz_server_create(const struct cz_config *cfg, cz_server **out);

/* Register a route.  method is "GET", "POST", ... or "*" for any method;
 * pattern is "/a/b", with "{name}" segments as parameters ("/users/{id}")
 * and an optional final "*" segment for the rest of the path, slashes
 * included, read with cz_request_param(req, "*"): "/static/" then "*".  A static
 * segment wins over a parameter, a parameter over the wildcard.
 * Returns 0, -EEXIST for a duplicate (same method and same pattern shape),
 * -EINVAL for a bad method or pattern, -EBUSY once the server runs. */
CZ_API int cz_server_route(cz_server *srv, const char *method, const char *pattern,
                           cz_handler_fn fn, void *user_data);

/* A route that reads large bodies as a stream: its handler runs when the
 * body is complete or its first 64 KiB have arrived, whichever comes
 * first (so a small body that is malformed or late still gets its error
 * page), and takes the body in pieces through cz_request_body_reader:
 * first what has arrived, then the rest as it comes (a body it does not
 * read is discarded).  It answers at once, later (cz_response_defer) or as
 * a stream.  Otherwise as cz_server_route. */
CZ_API int cz_server_route_streaming(cz_server *srv, const char *method, const char *pattern,
                                     cz_handler_fn fn, void *user_data);

/* The handler for requests that match no route (and no file under cfg.root),
 * instead of the 404 page; it sets its own status.  NULL restores the page.
 * 0, or -EBUSY once running. */
CZ_API int cz_server_not_found(cz_server *srv, cz_handler_fn fn, void *user_data);

/* Hooks, run in registration order on the worker, for every request on the
 * main listener (routes, static files, 404 and 405 alike; never the admin
 * surface).  A before hook runs first and returns CZ_HOOK_CONTINUE to go
 * on (headers it adds to res stay in a handler's answer), CZ_HOOK_DONE when
 * it answered in res itself (a 401, a CORS preflight), or -errno (500).
 * An after hook runs on every answer built with cz_response (a handler's,
 * a before hook's, a deferred or streamed one) just before its head is
 * made: it may add headers (CORS) or change the status; req is NULL for an
 * answer finished after its handler returned.  Its return value is
 * ignored.  0, -EINVAL, -ENOMEM, or -EBUSY once running. */
#define CZ_HOOK_CONTINUE 0
#define CZ_HOOK_DONE 1
CZ_API int cz_server_hook_before(cz_server *srv, cz_handler_fn fn, void *user_data);
CZ_API int cz_server_hook_after(cz_server *srv, cz_handler_fn fn, void *user_data);

/* From any thread: run fn(arg) on worker `worker` (cz_request_worker of a
 * request, 0..threads-1) at its next loop turn, where it may finish a
 * deferred answer or write to a stream of that worker.  0, -EINVAL,
 * -ESHUTDOWN when that worker is not running (fn will not run), -ENOMEM. */
CZ_API int cz_server_post(cz_server *srv, unsigned worker, void (*fn)(void *arg), void *arg);

/* Register the admin surface: GET /_catzilla/health, /_catzilla/stats (JSON),
 * /_catzilla/metrics (Prometheus) and the dashboard at /_catzilla/, served
 * only where cfg.admin puts them (by default their own listener on
 * 127.0.0.1:9090; "same": the main one; "off": nowhere).  Without this call
 * no admin listener is opened.  0 or -errno (-EBUSY once running). */
CZ_API int cz_server_admin_routes(cz_server *srv);

/* Start the workers and serve until cz_server_stop() or SIGINT/SIGTERM (when
 * the caller lets run install its handlers: see cz_server_handle_signals).
 * Returns 0 after a graceful stop, or -errno if start-up failed; then
 * cz_server_error() says why in one line.  A server can run again after
 * run returns; -EBUSY while it runs. */
CZ_API int cz_server_run(cz_server *srv);

/* Ask the server to drain and stop; any thread, async-signal-safe.  A stop
 * asked before run has started its workers is kept: that run stops at once
 * after starting. */
CZ_API void cz_server_stop(cz_server *srv);

/* Make cz_server_run stop the server on SIGINT and SIGTERM (off by default). */
CZ_API void cz_server_handle_signals(cz_server *srv);

/* The port actually bound (useful with port 0) while the server listens;
 * 0 before and after.  Any thread. */
CZ_API int cz_server_port(const cz_server *srv);

/* From another thread: wait until the server listens (the run in progress,
 * or the next one), up to timeout_ms (-1: no limit).  Returns the port,
 * -errno if the last start-up failed (until the next run begins), or
 * -ETIMEDOUT. */
CZ_API int cz_server_wait_listening(cz_server *srv, int timeout_ms);

/* One-line description of the last start-up error, "" if none. */
CZ_API const char *cz_server_error(const cz_server *srv);

CZ_API void cz_server_destroy(cz_server *srv);

/* --- requests (read-only, valid during the handler) --- */
CZ_API struct cz_str cz_request_method(const cz_request *req);
CZ_API struct cz_str cz_request_path(const cz_request *req);  /* without the query */
CZ_API struct cz_str cz_request_query(const cz_request *req); /* after '?', may be empty */
/* Percent-decode len bytes of in into out (NUL-terminated), '+' as a space
 * when plus_is_space (query strings).  Returns the decoded length, -EINVAL
 * for a bad escape or %00, -ENOSPC if out (cap bytes) is too small. */
CZ_API ssize_t cz_url_decode(const char *in, size_t len, bool plus_is_space, char *out, size_t cap);
/* The first query parameter called name ("?a=1&b=x%20y"), decoded into out
 * as cz_url_decode does ("" for "?flag" or "?flag=").  Returns its length,
 * -ENOENT when absent, -EINVAL or -ENOSPC as cz_url_decode. */
CZ_API ssize_t cz_request_query_param(const cz_request *req, const char *name, char *out,
                                      size_t cap);
/* Route parameter by name; .ptr NULL when absent. */
CZ_API struct cz_str cz_request_param(const cz_request *req, const char *name);
/* First header with that name (case-insensitive); .ptr NULL when absent. */
CZ_API struct cz_str cz_request_header(const cz_request *req, const char *name);
CZ_API size_t cz_request_header_count(const cz_request *req);
CZ_API int cz_request_header_at(const cz_request *req, size_t i, struct cz_str *name,
                                struct cz_str *value);
CZ_API struct cz_str cz_request_body(const cz_request *req);
/* The body's announced length (Content-Length), 0 without a body, -1 when
 * chunked (unknown until its end). */
CZ_API long long cz_request_content_length(const cz_request *req);

/* A streaming route's body, piece by piece, from when the handler returns.
 * fn gets CZ_BODY_DATA with len bytes (valid during the call), then
 * CZ_BODY_END once; or CZ_BODY_ABORT
 * when the request fails (client gone, a timeout, a body over
 * --max-body-size: the connection closes).  After END or ABORT, b is gone.
 * fn returns 0 for more, or CZ_BODY_PAUSE to stop reading from the client
 * until cz_body_resume(b) (back-pressure: e.g. while a stream is full). */
enum cz_body_event { CZ_BODY_DATA, CZ_BODY_END, CZ_BODY_ABORT };
#define CZ_BODY_PAUSE 1
typedef int (*cz_body_fn)(cz_body *b, enum cz_body_event ev, const void *data, size_t len,
                          void *arg);
/* From a streaming route's handler, for a request with a body: where its
 * body goes.  NULL (errno EINVAL) otherwise. */
CZ_API cz_body *cz_request_body_reader(const cz_request *req, cz_body_fn fn, void *arg);
/* Read again after CZ_BODY_PAUSE.  On the request's worker. */
CZ_API void cz_body_resume(cz_body *b);
/* Index of the worker running this handler. */
CZ_API unsigned cz_request_worker(const cz_request *req);

/* --- responses --- */
/* Set the status (200..599).  Returns 0, or -EINVAL (the status is kept). */
CZ_API int cz_response_status(cz_response *res, int status);
/* Add a header (copied).  Content-Length, Date, Server and Connection are
 * managed by the server.  Returns 0 or -errno. */
CZ_API int cz_response_header(cz_response *res, const char *name, const char *value);
/* Append to the body (copied).  Returns 0 or -ENOMEM. */
CZ_API int cz_response_write(cz_response *res, const void *data, size_t len);
/* Shorthand: status, Content-Type and whole body.  Returns 0 or -errno. */
CZ_API int cz_response_send(cz_response *res, int status, const char *content_type,
                            const void *body, size_t len);

/* Answer with the file at path (absolute, or relative to the working
 * directory) as static files are answered: ETag, Last-Modified, Range and
 * conditional requests, Content-Type from the file name (unless res has
 * one), sent zero-copy.  Headers already on res are kept; the status is 200
 * (206, 304, 416 as the request asks); a missing file is 404.  The file is
 * opened after the handler returns, without blocking the worker.
 * 0, -EINVAL (not a handler's response), -ENOMEM. */
CZ_API int cz_response_file(cz_response *res, const char *path);

/* --- answering later, on the request's worker ---
 * Handles below belong to the worker that made them: use them only there
 * (in a handler, a timer, or a call posted with cz_server_post).  They
 * live until finished or ended, or until the server run is over. */

/* From a handler: answer this request later.  What res holds is dropped,
 * and the handler's return value is ignored.  The request keeps its place
 * on the connection: pipelined answers behind it wait.  A server stopping
 * waits for it up to --shutdown-timeout.  NULL (errno ENOMEM, or EINVAL
 * when res is not a handler's) on failure. */
CZ_API cz_deferred *cz_response_defer(cz_response *res);
/* The response to fill before cz_deferred_finish. */
CZ_API cz_response *cz_deferred_response(cz_deferred *d);
/* The client went away (closed, timed out, or the server stopped):
 * finishing now only frees d. */
CZ_API bool cz_deferred_gone(const cz_deferred *d);
/* Send the response and free d.  0, -EPIPE if the client was gone,
 * -ENOMEM (the connection closes). */
CZ_API int cz_deferred_finish(cz_deferred *d);

/* Stream the body: the head (status and headers of res) goes out now with
 * Transfer-Encoding: chunked (to an HTTP/1.0 client: no length, and the
 * connection closes at the end); what res's body holds is the first piece.
 * res is a handler's response (the handler then returns) or a deferred's
 * (which the stream replaces: d is freed).  The status must allow a body.
 * Requests pipelined behind a stream wait until it ends.  NULL (errno
 * ENOMEM, EINVAL) on failure. */
CZ_API cz_stream *cz_response_stream(cz_response *res);
/* The same with a known length: the head says Content-Length: length
 * (no chunks), writes beyond it are refused (-EINVAL), and a stream ended
 * short closes the connection (the client sees the body cut). */
CZ_API cz_stream *cz_response_stream_sized(cz_response *res, unsigned long long length);
/* Queue len bytes (copied) as one chunk.  Returns 0; 1 when the
 * connection's queue is now above --max-output-queue (the bytes are
 * queued: wait for cz_stream_on_writable before writing more); -EPIPE when
 * the client is gone; -ENOMEM (the connection closes). */
CZ_API int cz_stream_write(cz_stream *s, const void *data, size_t len);
/* Call fn(s, arg) once, on the worker, when the queue is below half of
 * --max-output-queue again, or the client is gone (a write then says
 * -EPIPE).  At most one callback is pending per stream. */
CZ_API void cz_stream_on_writable(cz_stream *s, void (*fn)(cz_stream *s, void *arg), void *arg);
CZ_API bool cz_stream_gone(const cz_stream *s);
/* End the body and free s.  0, or -EPIPE if the client was gone. */
CZ_API int cz_stream_end(cz_stream *s);

/* A timer on the calling worker: fn(arg) after ms milliseconds, then every
 * repeat_ms if that is not 0.  A one-shot timer is freed once fn has run.
 * Timers end with the server run.  NULL with errno EPERM off a worker
 * thread, EINVAL, ENOMEM. */
typedef void (*cz_timer_fn)(void *arg);
CZ_API cz_timer *cz_timer_start(long ms, long repeat_ms, cz_timer_fn fn, void *arg);
/* fn will not run again and t is freed (also from inside fn). */
CZ_API void cz_timer_cancel(cz_timer *t);

#ifdef __cplusplus
}
#endif
#endif
