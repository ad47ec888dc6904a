/* Internal shapes of the HTTP engine: workers, connections, requests,
 * responses and the output queue.  Shared by src/http and src/fs only; the
 * embedder sees the opaque handles of include/catzilla/catzilla.h. */
#ifndef CZ_HTTP_HTTP_H
#define CZ_HTTP_HTTP_H

#include <llhttp.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "catzilla/catzilla.h"
#include "core/ring.h"
#include "http/accesslog.h"
#include "http/deferred.h"
#include "http/memguard.h"
#include "http/metrics.h"
#include "http/output.h"
#include "http/router.h"

struct cz_filecache; /* src/fs/filecache.h */
struct cz_mime;
struct output_worker; /* src/http/output.c */
struct stats_gather;  /* src/http/builtin.c */
struct file_job;      /* src/http/static.c */
struct accesslog;     /* src/http/accesslog.c */
struct accesslog_worker;

/* Operation tags carried in the low bits of user_data. */
enum op_tag {
    OP_NONE,
    OP_ACCEPT,   /* multishot accept on the listener; ptr = worker */
    OP_RECV,     /* multishot recv; ptr = conn */
    OP_SEND,     /* send/sendmsg of the output queue; ptr = conn */
    OP_SEND_ZC,  /* SEND_ZC of a cached body; ptr = its context (output.c) */
    OP_FILE,     /* a step of the file engine (splice, read, send); ptr = conn */
    OP_CLOSE,    /* close_direct; ptr = conn */
    OP_SHUTDOWN, /* shutdown(SHUT_WR) before lingering close; ptr = conn */
    OP_CANCEL,   /* async cancel; ptr = conn or worker */
    OP_TICK,     /* a timeout: the worker's tick (ptr = worker) or a cz_timer (ptr = it) */
    OP_WAKE,     /* eventfd read: stop requested; ptr = worker */
    OP_MSG,      /* MSG_RING from another worker; ptr = message */
    OP_MSG_SENT, /* completion of our own MSG_RING submission */
    OP_FS,       /* open, statx or read of a file job; ptr = job (static.c) */
    OP_PROBE,    /* SIOCOUTQ of a socket whose send waits; ptr = conn */
    OP_LOG,      /* write of an access log buffer; ptr = its buffer (accesslog.c) */
    OP_MAX
};

enum conn_state {
    CONN_IDLE,    /* between requests: no buffer held, keep-alive timer */
    CONN_HEAD,    /* receiving a request head: header timer (total, not per byte) */
    CONN_BODY,    /* receiving a request body: body timer */
    CONN_LINGER,  /* final response sent, write side shut: drain until EOF */
    CONN_CLOSING, /* close submitted or waiting for in-flight operations */
    CONN_STATE_MAX
};

enum timer_kind {
    TIMER_NONE,
    TIMER_IDLE,
    TIMER_HEAD,
    TIMER_BODY,
    TIMER_SEND,
    TIMER_LINGER,
    TIMER_MAX
};

struct list_node {
    struct list_node *prev, *next;
};

struct cz_request {
    struct conn *conn;
    int method; /* enum cz_method, negative if not one we know */
    struct cz_str method_str;
    struct cz_str target; /* raw request-target */
    struct cz_str path;   /* target without query, raw (not decoded) */
    struct cz_str query;
    struct cz_str body;
    uint8_t http_minor; /* 0 or 1 */
    bool keep_alive;
    bool head; /* answer without a body */
    struct cz_route_match match;
};

struct cz_response {
    struct conn *conn;
    int status;
    bool failed;    /* out of memory while building */
    bool deferred;  /* the handler answers later through a placeholder */
    bool head_only; /* a HEAD request: the head without the body */
    bool close;     /* Connection: close (the connection's state when the request came) */
    bool http10;    /* an HTTP/1.0 request: say keep-alive when it stays open */
    const struct cz_request *req; /* during the handler only; NULL for a deferred answer */
    struct cz_deferred *owner;    /* the deferred answer this builds, or NULL */
    char *hdr;                    /* extra header lines, "Name: value\r\n"... */
    size_t hdr_len, hdr_cap;
    char *body;
    size_t body_len, body_cap;
    char hdr_inline[256];
    char body_inline[512];
};

struct worker;

/* A connection's request being received (request arena).  Everything here
 * is about one request at a time; between requests it is parked on the
 * worker's rx_idle list and freed after RX_IDLE_MS without a byte. */
struct conn_rx {
    llhttp_t parser;
    struct conn *conn;
    uint64_t start_ns;          /* the loop turn that brought the request's first byte */
    struct list_node idle_link; /* in the worker's rx_idle list while parked */
    uint64_t idle_since_ms;

    char *scratch; /* target and header bytes */
    uint32_t scratch_len, scratch_cap;
    uint32_t url_len, header_bytes, nheaders;
    uint32_t line_bytes;     /* of the header field line being received */
    uint32_t (*hdr_offs)[4]; /* name off, name len, value off, value len */
    uint32_t hdr_offs_cap;
    bool last_was_value;
    char tail[3];           /* last bytes of the previous buffer parsed */
    uint8_t check_end;      /* paused to check the 2 or 4 line-end bytes before */
    const char *parse_base; /* start of the buffer being parsed */
    char *body;
    size_t body_len, body_cap;
    int error_status;        /* set by a callback that rejects the request */
    uint64_t content_length; /* as announced (llhttp's own counts down) */
    bool at_chunk_line;      /* a chunk-size line comes next (request_parse reads it) */
    bool chunk_nonzero;      /* the chunk being read has data */
    char *chunk_line;        /* a chunk-size line split across buffers, so far */
    uint32_t chunk_line_len;
    bool stream_route;           /* its route reads the body as a stream */
    bool streamed;               /* dispatched: the rest of the body goes to sink */
    struct cz_body *sink;        /* the handler's body reader (NULL: discarded) */
    uint32_t body_charge;        /* body bytes budgeted by the memory guard */
    struct conn *body_wait_next; /* the worker's queue of bodies waiting for budget */

    /* Bytes received while reading was paused. */
    char *held;
    uint32_t held_len, held_off, held_cap;
};

struct conn {
    struct list_node timer_link; /* in the worker's list for timer_kind */
    struct list_node all_link;   /* in the worker's list of connections */
    struct worker *w;
    uint64_t deadline_ms;
    unsigned fixed_fd;  /* direct descriptor index */
    uint8_t state;      /* enum conn_state, changed by conn_set_state */
    uint8_t timer_kind; /* changed by conn_set_timer */
    /* Ring operations (and deferred producers) that still reference this
     * conn: it is freed only when this is 0.  32 bits: a pipelined flood
     * must never wrap it. */
    uint32_t inflight;
    bool recv_armed : 1;
    bool close_after_send : 1; /* the last queued response ends the connection */
    bool read_paused : 1;      /* output queue too long: not reading */
    bool eof : 1;              /* peer closed its write side */
    bool dead : 1;             /* a fatal socket error: only wait for in-flight ops */
    bool request_started : 1;
    bool error_pending : 1; /* a parse error response was queued */
    bool body_wait : 1;     /* its body waits for memory budget (memguard.c) */
    bool admin : 1;         /* accepted on the admin listener: only /_catzilla/... */
    bool http10 : 1;        /* the request being answered is HTTP/1.0 */
    bool recv_waiting : 1;  /* queued for receive buffers (conn.c) */
    uint32_t requests;      /* served on this connection */
    struct cz_peer peer;    /* the client, when the access log needs it */

    /* Parse state, allocated when a request's first bytes arrive and freed
     * after the connection has been idle a while (request.c): an idle
     * keep-alive connection is this struct alone. */
    struct conn_rx *rx;

    struct output out;          /* private to output.c */
    struct file_job *file_jobs; /* private to static.c: its file jobs, oldest first */
    struct cz_deferred *stream; /* its open stream (deferred.c); reading waits for its end */
    struct conn *flush_next;    /* the worker's flush list (output.c) */
    /* The worker's list of conns to free, or its queue of conns waiting for
     * receive buffers.  Never both: a waiting conn holds a reference, and
     * only a conn with none is freed. */
    struct conn *list_next;
};

struct worker_stats {
    _Atomic uint64_t requests;
    _Atomic uint32_t connections;
};

/* Accepting on one listening socket.  Multishot (one SQE, no address) unless
 * the access log wants client addresses: then ACCEPT_SLOTS single-shot
 * accepts, each with its own address buffer (a multishot accept would write
 * every connection's address into the same one). */
#define ACCEPT_SLOTS 4
struct accept_slot {
    alignas(16) struct listener *l;
    bool armed;
    socklen_t addrlen;
    struct sockaddr_storage addr;
};
struct listener {
    int fd;
    bool admin; /* the --admin ADDR:PORT listener */
    bool multishot;
    struct worker *w;
    struct accept_slot slots[ACCEPT_SLOTS];
};

/* Cache-line aligned: workers sit side by side in one array, each touched by
 * its own core only (no false sharing), and user_data tags need the low bits. */
struct worker {
    alignas(64) struct cz_server *srv;
    unsigned id;
    int cpu; /* pinned CPU, -1 if not pinned */
    pthread_t thread;
    struct io_uring ring;
    bool ring_ready;
    int ring_fd;            /* for MSG_RING from other workers */
    struct listener lis[2]; /* main, and admin when --admin ADDR:PORT */
    unsigned nlis;
    int wake_fd; /* eventfd: main thread -> worker (stop) */
    uint64_t wake_buf;
    struct cz_bufring bufs;
    unsigned bufs_pending;
    struct cz_router *router;
    struct cz_filecache *fcache;
    struct output_worker *out;

    unsigned files_registered;
    size_t registered_bytes;

    bool tick_armed;
    bool memory_released;    /* idle: arenas purged, receive-buffer pages dropped */
    uint64_t last_active_ms; /* last accept or receive */
    uint64_t last_trim_ms;   /* last catzilla_memory_trim (--arena-trim) */
    bool accept_paused;
    bool stopping;
    uint64_t stop_deadline_ms;
    uint64_t now_ms;
    uint64_t now_ns;     /* CLOCK_MONOTONIC at the start of this loop turn */
    unsigned reload_gen; /* the SIGHUP reload this worker has applied */
    struct __kernel_timespec tick_ts;

    unsigned nconns;
    struct list_node conns;
    struct list_node timers[TIMER_MAX];
    struct list_node rx_idle; /* parked conn_rx, oldest first (request.c) */
    struct conn *flush_list;
    struct conn *free_list;        /* closed conns, freed at the end of the loop turn */
    struct conn *recv_wait_head;   /* conns out of receive buffers, oldest first (conn.c) */
    struct conn *recv_wait_tail;
    struct stats_gather *gathers;  /* stats requests of this worker still gathering */
    struct accesslog_worker *alog; /* private to accesslog.c; NULL when the log is off */
    struct deferred_worker dw;     /* private to deferred.c */

    char date[40]; /* "Date: ...\r\n" rebuilt once a second */
    size_t date_len;
    time_t date_sec;

    struct worker_stats stats;
    struct worker_metrics metrics;
    struct req_rec *cur_req; /* the request being answered (metrics.c) */
    uint8_t mem_level;       /* enum mem_level this worker has applied */
    uint64_t body_rx_bytes;  /* request bodies being received, as budgeted */
    struct conn *body_wait_head, *body_wait_tail;
    struct memguard_actions mem_actions;
    long long leak_base[2]; /* request, response live bytes with no connection (leak check) */
    char start_err[256];
    int start_rc;
};

struct hook {
    cz_handler_fn fn;
    void *user_data;
    struct hook *next;
};

/* Route targets: what the router stores. */
struct route {
    cz_handler_fn fn;
    void *user_data;
    int method;       /* enum cz_method or CZ_ROUTER_ANY */
    bool admin;       /* on the admin surface only (/_catzilla/...) */
    bool stream_body; /* cz_server_route_streaming: dispatched at the head */
    char *pattern;
    struct route *next;
};

struct cz_server {
    struct cz_config cfg;
    struct route *routes;           /* registration order, process-wide read-only after run */
    struct cz_router *check_router; /* detects duplicates at registration time */
    struct worker *workers;
    unsigned nworkers;
    _Atomic int port; /* 0 until listening, -errno once start-up failed */
    enum { ADMIN_OFF, ADMIN_SAME, ADMIN_OWN } admin_mode;
    struct sockaddr_storage admin_addr; /* ADMIN_OWN: where, port resolved at start */
    socklen_t admin_addrlen;
    uint64_t start_ns;                 /* CLOCK_MONOTONIC when run started (uptime) */
    _Atomic unsigned reload_gen;       /* bumped by SIGHUP; workers catch up on wake */
    struct cz_mime *_Atomic mime_next; /* SIGHUP's table, picked up with reload_gen */
    struct mime_retired *mime_old;     /* tables replaced by SIGHUP: a file job may still
                                        * hold an entry naming one; freed at destroy */
    pthread_mutex_t post_lock;         /* the workers' posted-call queues (deferred.c) */
    struct hook *before, *after;       /* cz_server_hook_before/after, in order */
    _Atomic bool running;
    _Atomic bool stop_requested;
    bool handle_signals;
    bool has_admin_routes;      /* cz_server_admin_routes was called */
    bool has_stream_routes;     /* some route takes its body as a stream */
    cz_handler_fn not_found_fn; /* cz_server_not_found; NULL: a 404 page */
    void *not_found_ud;
    sem_t sig_sem;             /* handlers -> signal thread (cz_server_handle_signals) */
    _Atomic bool signals_done; /* tells the signal thread that run is over */
    struct cz_mime *mime;
    char *root; /* resolved docroot, NULL if none */
    int root_fd;
    char err[512];
    pthread_mutex_t start_lock;
    pthread_cond_t start_cond;
    unsigned started;
    struct memguard guard;
    struct accesslog *alog; /* private to accesslog.c; NULL when the log is off */
};

/* --- src/http/conn.c: the worker thread of c only --- */
/* addr: the client's address, or NULL when not asked for (multishot accept). */
void conn_accepted(struct worker *w, int fixed_fd, bool admin, const struct sockaddr *addr);
void conn_on_recv(struct conn *c, struct io_uring_cqe *cqe);
/* Completion of OP_CLOSE, OP_SHUTDOWN or OP_CANCEL. */
void conn_on_op_done(struct conn *c, enum op_tag tag, struct io_uring_cqe *cqe);
void conn_timers_expire(struct worker *w);
/* Close now (idempotent); freed at the end of the loop turn in which its
 * last operation completes. */
void conn_close(struct conn *c);
/* A fatal socket error: nothing more can be sent; close. */
void conn_fail(struct conn *c);
bool conn_closing(const struct conn *c);
void conn_free_closed(struct worker *w);
/* Reading was paused (held bytes kept): parse them and read again. */
void conn_resume_reading(struct conn *c);
void conn_close_idle(struct worker *w, unsigned max);
/* The one way to change a connection's state (illegal moves are logged and refused). */
void conn_set_state(struct conn *c, enum conn_state to);
/* The one way to start, restart or stop a connection's timer. */
void conn_set_timer(struct conn *c, enum timer_kind k);
/* An SQE tagged for c that counts as in flight until conn_op_complete;
 * NULL if the ring has none. */
struct io_uring_sqe *conn_sqe(struct conn *c, enum op_tag tag);
/* One of c's operations completed (after its buffers were released). */
void conn_op_complete(struct conn *c);
/* Keep c allocated for a producer outside the ring (a deferred response). */
void conn_hold(struct conn *c);
void conn_release(struct conn *c);
/* Called by output.c when the queue is empty and nothing is in flight. */
void conn_output_drained(struct conn *c);
/* Re-arm connections that ran out of receive buffers, oldest first, once
 * the loop turn has given its buffers back. */
void conn_recv_resume(struct worker *w);

/* --- src/http/response.c --- */
const char *http_reason(int status);
void worker_update_date(struct worker *w);
/* A builder for c's current request (head_only: a HEAD request). */
void response_init(struct cz_response *res, struct conn *c, int status, bool head_only);
void response_release(struct cz_response *res);
/* Serialises res into the conn's output.  0 or -ENOMEM. */
int response_finish(struct cz_response *res);
/* 1xx, 204 and 304 have no body. */
bool response_status_has_body(int status);
/* Answer later: a placeholder in the output queue that the handler fills
 * with output_defer_fill (on this worker).  NULL when out of memory. */
struct outseg *response_defer(struct cz_response *res);
/* A complete error response with Connection: close; marks the conn to close. */
void response_error(struct conn *c, int status, bool head);

/* Everything a response head can say; NULL / negative fields are left out.
 * Status line, Server and Date are always there. */
struct head_spec {
    int status;      /* 100..599 */
    bool close;      /* Connection: close */
    bool keep_alive; /* Connection: keep-alive (HTTP/1.0 clients need it said) */
    bool chunked;    /* Transfer-Encoding: chunked */
    bool accept_ranges;
    int64_t content_length; /* < 0: no Content-Length */
    const char *content_type, *etag, *last_modified, *cache_control, *content_range, *allow;
    const char *location; /* location_len bytes, already encoded */
    size_t location_len;
    const char *extra; /* preformatted "Name: value\r\n" lines */
    size_t extra_len;
};
/* The one head builder: exact length, then the bytes (blank line included). */
size_t response_head_len(const struct worker *w, const struct head_spec *h);
size_t response_head_write(const struct worker *w, const struct head_spec *h, char *out);
/* Build the head straight into c's output queue.  0 or -ENOMEM. */
int response_head(struct conn *c, const struct head_spec *h);
/* A short text/plain page saying the reason phrase (no body for 1xx/204/304);
 * more adds header lines (its status, close and length fields are ignored).
 * Out of memory closes the connection. */
void response_text(struct conn *c, int status, bool head, bool close, const struct head_spec *more);

/* --- src/http/server.c --- */
/* Write every worker's eventfd: it wakes and looks at what changed (a stop,
 * a memory pressure level, a reload).  Any thread, async-signal-safe. */
void server_wake_workers(struct cz_server *srv);
/* Workers a server with cfg runs: --threads, or one per CPU of the affinity mask. */
unsigned server_worker_count(const struct cz_config *cfg);
/* Paths of the admin surface (health, stats, metrics, dashboard). */
#define CZ_ADMIN_PREFIX "/_catzilla/"
/* cz_server_route with flags: ROUTE_ADMIN, a route of the admin surface
 * (served only where --admin puts it); ROUTE_STREAM_BODY, a handler that
 * runs at the head and reads its body as a stream. */
enum { ROUTE_ADMIN = 1, ROUTE_STREAM_BODY = 2 };
int server_route(struct cz_server *srv, const char *method, const char *pattern, cz_handler_fn fn,
                 void *user_data, unsigned flags);
/* The route req leads to takes its body as a stream (matches req->match). */
bool server_streams_body(struct conn *c, struct cz_request *req);
/* Stop accepting / accept again if nothing else holds accepting back. */
void server_pause_accept(struct worker *w);
void server_resume_accept(struct worker *w);
struct worker *server_worker(struct cz_server *srv, unsigned i);
void server_dispatch(struct conn *c, struct cz_request *req);
/* The after hooks, on an answer about to get its head. */
void server_after_hooks(struct cz_server *srv, struct cz_response *res);
bool server_keepalive_allowed(const struct conn *c);

/* Debug and sanitizer builds: with no connection left, the worker's request
 * and response blocks must be back to what they were at start; logs an
 * error naming the kind and the bytes otherwise (tests fail on it). */
void server_leak_check(struct worker *w);

/* One dispatch for every completion of worker w's ring (the fuzz harness
 * drives it too, so no operation tag can be handled in two places). */
void server_dispatch_cqe(struct worker *w, struct io_uring_cqe *cqe);

/* --- src/http/builtin.c --- */
int builtin_register(struct cz_server *srv);
/* GET /: a page naming the built-in routes (the binary without a docroot). */
int builtin_register_fallback_page(struct cz_server *srv);
void builtin_on_msg(struct worker *w, struct io_uring_cqe *cqe);
void builtin_on_msg_sent(struct worker *w, struct io_uring_cqe *cqe);
/* Stats gathers past their deadline answer with what they have. */
void builtin_tick(struct worker *w);

/* --- lists --- */
static inline void list_init(struct list_node *h)
{
    h->prev = h->next = h;
}
static inline bool list_empty(const struct list_node *h)
{
    return h->next == h;
}
static inline void list_add_tail(struct list_node *h, struct list_node *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void list_del(struct list_node *n)
{
    if (n->next) {
        n->prev->next = n->next;
        n->next->prev = n->prev;
    }
    n->prev = n->next = NULL;
}
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
