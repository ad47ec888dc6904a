/* Built-in routes: /plaintext, /json, /echo (TechEmpower conventions), and
 * the admin surface: /_catzilla/health, /_catzilla/stats (JSON),
 * /_catzilla/metrics (Prometheus) and the dashboard.  Stats and metrics are
 * gathered through the
 * rings: the worker that got the request sends IORING_OP_MSG_RING to every
 * other worker, each fills its own slot on its own thread, and replies the
 * same way; no worker ever reads another worker's state.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdalign.h>
#include <stdio.h>
#include <string.h>

#include "catzilla/memory.h"
#include "core/log.h"
#include "http/dashboard.h"
#include "http/http.h"
#include "http/report.h"

static int on_plaintext(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    return cz_response_send(res, 200, "text/plain", "Hello, World!", 13);
}

static int on_json(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    static const char body[] = "{\"message\":\"Hello, World!\"}";
    return cz_response_send(res, 200, "application/json", body, sizeof(body) - 1);
}

/* /echo: the body goes back as it arrives and is never held whole (a
 * streaming route).  An announced length is answered with the same
 * Content-Length, a chunked body in chunks.  While the answer's queue is
 * full, reading from the client pauses: memory stays near
 * --max-output-queue whatever the body's size. */
struct echo {
    cz_stream *s;
    cz_body *b;
};

static void echo_writable(cz_stream *s, void *arg)
{
    (void)s;
    struct echo *e = arg;
    cz_body_resume(e->b);
}

static int echo_piece(cz_body *b, enum cz_body_event ev, const void *data, size_t len, void *arg)
{
    (void)b;
    struct echo *e = arg;
    if (ev == CZ_BODY_DATA) {
        if (cz_stream_write(e->s, data, len) != 1)
            return 0; /* queued, or the client is gone (the connection closes) */
        cz_stream_on_writable(e->s, echo_writable, e);
        return CZ_BODY_PAUSE;
    }
    /* END, or ABORT (the connection is closing: nothing more goes out). */
    cz_stream_on_writable(e->s, NULL, NULL);
    cz_stream_end(e->s);
    catzilla_task_free(e);
    return 0;
}

static int on_echo(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    struct cz_str ct = cz_request_header(req, "Content-Type");
    char type[256];
    const char *t = "application/octet-stream";
    if (ct.ptr && ct.len < sizeof(type)) {
        memcpy(type, ct.ptr, ct.len);
        type[ct.len] = '\0';
        t = type;
    }
    int rc = cz_response_send(res, 200, t, NULL, 0);
    long long len = cz_request_content_length(req);
    if (rc < 0 || len == 0)
        return rc;
    struct echo *e = catzilla_task_alloc(sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->s =
        len > 0 ? cz_response_stream_sized(res, (unsigned long long)len) : cz_response_stream(res);
    if (!e->s) {
        catzilla_task_free(e);
        return -errno;
    }
    e->b = cz_request_body_reader(req, echo_piece, e);
    if (!e->b) {
        /* Out of memory: the answer has started, only a close can end it. */
        cz_stream_end(e->s);
        catzilla_task_free(e);
        conn_close(req->conn);
    }
    return 0;
}

/* The binary's page at / when it found no docroot: only what this listener
 * serves (the admin surface has its own address). */
static const char fallback_page[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>Catzilla</title></head>"
    "<body><h1>Catzilla</h1><p>A thread-per-core io_uring HTTP/1.1 server.</p><ul>"
    "<li><a href=\"/plaintext\">/plaintext</a></li><li><a href=\"/json\">/json</a></li>"
    "<li>POST /echo</li></ul><p>Health, stats, metrics and the dashboard are on the admin "
    "address (<code>--admin</code>, by default http://127.0.0.1:9090/_catzilla/).</p>"
    "</body></html>\n";

static int on_fallback_page(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    return cz_response_send(res, 200, "text/html; charset=utf-8", fallback_page,
                            sizeof(fallback_page) - 1);
}

int builtin_register_fallback_page(struct cz_server *srv)
{
    return cz_server_route(srv, "GET", "/", on_fallback_page, NULL);
}

static int on_health(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    return cz_response_send(res, 200, "text/plain", "ok", 2);
}

/* ---------- stats ---------- */

enum msg_phase { MSG_REQUEST, MSG_REPLY };

/* A peer that has not answered by then is reported as not ok: a stopped or
 * stuck worker must never hold a response (or a shutdown) forever. */
#define GATHER_TIMEOUT_MS 1000

struct stats_gather;
struct stats_msg {
    alignas(16) struct stats_gather *g;
    unsigned slot;
    int phase; /* written by the peer before it replies */
    bool got;  /* the origin has the reply: only then is the slot read */
};

/* Lives until every message has come back (pending == 0), even after the
 * response went out at the deadline: a late peer still writes its slot. */
struct stats_gather {
    struct stats_gather *next; /* the origin worker's list, until answered */
    struct conn *c;            /* NULL once answered */
    struct outseg *seg;
    uint64_t deadline_ms;
    unsigned origin;
    unsigned pending;
    unsigned n;
    bool head, close, http10;
    enum { REPORT_STATS, REPORT_METRICS } kind;
    struct stats_msg *msgs;
    struct snapshot *snaps;
};

static void gather_unlink(struct worker *w, struct stats_gather *g)
{
    struct stats_gather **pp = &w->gathers;
    while (*pp && *pp != g)
        pp = &(*pp)->next;
    if (*pp)
        *pp = g->next;
}

/* Fill the placeholder with the JSON of every slot that answered. */
static void gather_answer(struct worker *w, struct stats_gather *g)
{
    struct conn *c = g->c;
    g->c = NULL;
    gather_unlink(w, g);
    /* Read only the slots whose reply arrived; a late peer may still be
     * writing its own. */
    struct stats_gather view = *g;
    view.snaps = catzilla_task_alloc(sizeof(*view.snaps) * g->n);
    struct textbuf b = {NULL, 0, 0, false};
    if (view.snaps) {
        for (unsigned i = 0; i < g->n; i++) {
            if (i == g->origin || g->msgs[i].got) {
                view.snaps[i] = g->snaps[i];
            } else {
                memset(&view.snaps[i], 0, sizeof(view.snaps[i]));
                view.snaps[i].id = i;
                view.snaps[i].cpu = -1;
            }
        }
        if (g->kind == REPORT_METRICS)
            report_metrics_text(w->srv, view.snaps, g->n, g->origin, &b);
        else
            report_stats_json(w->srv, view.snaps, g->n, g->origin, &b);
    } else {
        b.failed = true;
    }
    struct head_spec h = {
        .status = b.failed ? 503 : 200,
        .close = g->close,
        .keep_alive = !g->close && g->http10,
        .content_type = g->kind == REPORT_METRICS ? "text/plain; version=0.0.4; charset=utf-8"
                                                  : "application/json",
        .cache_control = "no-store",
        .content_length = b.failed ? 0 : (int64_t)b.len,
    };
    size_t hn = response_head_len(w, &h);
    size_t total = hn + (g->head || b.failed ? 0 : b.len);
    char *all = catzilla_task_alloc(total);
    if (all) {
        response_head_write(w, &h, all);
        if (total > hn)
            memcpy(all + hn, b.p, b.len);
        output_defer_fill(c, g->seg, all, total);
    } else {
        output_defer_fill(c, g->seg, "", 0);
        conn_close(c);
    }
    catzilla_task_free(all);
    catzilla_task_free(b.p);
    catzilla_task_free(view.snaps);
}

static void gather_free(struct stats_gather *g)
{
    catzilla_task_free(g->msgs);
    catzilla_task_free(g->snaps);
    catzilla_task_free(g);
}

static void gather_reply(struct worker *w, struct stats_gather *g)
{
    if (--g->pending)
        return;
    if (g->c)
        gather_answer(w, g);
    gather_free(g);
}

void builtin_tick(struct worker *w)
{
    struct stats_gather *g = w->gathers;
    while (g) {
        struct stats_gather *next = g->next;
        if (w->now_ms >= g->deadline_ms || w->stopping)
            gather_answer(w, g);
        g = next;
    }
}

/* Stats and metrics: a snapshot of every worker, gathered through the rings
 * (with one worker the answer is immediate). */
static int start_gather(const cz_request *req, cz_response *res, int kind)
{
    struct conn *c = req->conn;
    struct worker *w = c->w;
    struct cz_server *srv = w->srv;
    struct stats_gather *g = catzilla_task_alloc(sizeof(*g));
    if (!g)
        return -ENOMEM;
    memset(g, 0, sizeof(*g));
    g->n = srv->nworkers;
    g->msgs = catzilla_task_alloc(sizeof(*g->msgs) * g->n);
    g->snaps = catzilla_task_alloc(sizeof(*g->snaps) * g->n);
    g->seg = (g->msgs && g->snaps) ? response_defer(res) : NULL;
    if (!g->seg) {
        gather_free(g);
        return -ENOMEM;
    }
    memset(g->snaps, 0, sizeof(*g->snaps) * g->n);
    memset(g->msgs, 0, sizeof(*g->msgs) * g->n);
    g->c = c;
    g->kind = kind;
    g->origin = w->id;
    g->head = req->head;
    g->close = !req->keep_alive;
    g->http10 = req->http_minor == 0;
    g->deadline_ms = w->now_ms + GATHER_TIMEOUT_MS;
    g->pending = 1; /* our own slot, released below */
    g->next = w->gathers;
    w->gathers = g;
    report_snapshot(w, &g->snaps[w->id]);

    for (unsigned i = 0; i < g->n; i++) {
        if (i == w->id)
            continue;
        struct worker *peer = server_worker(srv, i);
        struct stats_msg *m = &g->msgs[i];
        m->g = g;
        m->slot = i;
        m->phase = MSG_REQUEST;
        struct io_uring_sqe *sqe = cz_ring_sqe(&w->ring);
        if (!sqe)
            continue;
        io_uring_prep_msg_ring(sqe, peer->ring_fd, 0, cz_ud(m, OP_MSG), 0);
        io_uring_sqe_set_data64(sqe, cz_ud(m, OP_MSG_SENT));
        g->pending++;
    }
    gather_reply(w, g);
    return 0;
}

static int on_dashboard(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    size_t len;
    const char *page = cz_dashboard_html(&len);
    /* Everything is inline; the page talks only to this server. */
    int rc = cz_response_header(res, "Content-Security-Policy",
                                "default-src 'none'; connect-src 'self'; "
                                "script-src 'unsafe-inline'; style-src 'unsafe-inline'");
    rc = rc ? rc : cz_response_header(res, "Cache-Control", "no-cache");
    return rc ? rc : cz_response_send(res, 200, "text/html; charset=utf-8", page, len);
}

/* /_catzilla -> /_catzilla/: the page's relative URLs need the slash. */
static int on_dashboard_redirect(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    int rc = cz_response_header(res, "Location", "/_catzilla/");
    return rc ? rc : cz_response_send(res, 301, "text/plain", "/_catzilla/\n", 12);
}

static int on_stats(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    return start_gather(req, res, REPORT_STATS);
}

static int on_metrics(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    return start_gather(req, res, REPORT_METRICS);
}

void builtin_on_msg(struct worker *w, struct io_uring_cqe *cqe)
{
    struct stats_msg *m = cz_ud_ptr(io_uring_cqe_get_data64(cqe));
    struct stats_gather *g = m->g;
    if (m->phase == MSG_REQUEST) {
        /* On the peer: fill our own slot, then hand the message back. */
        report_snapshot(w, &g->snaps[m->slot]);
        m->phase = MSG_REPLY;
        struct worker *origin = server_worker(w->srv, g->origin);
        struct io_uring_sqe *sqe = cz_ring_sqe(&w->ring);
        if (!sqe) {
            cz_log_error("stats: no SQE to reply to worker %u", g->origin);
            return;
        }
        io_uring_prep_msg_ring(sqe, origin->ring_fd, 0, cz_ud(m, OP_MSG), 0);
        io_uring_sqe_set_data64(sqe, 0);
    } else {
        m->got = true;
        gather_reply(w, g);
    }
}

/* A failed MSG_RING to a peer: count the slot as answered (ok=false). */
void builtin_on_msg_sent(struct worker *w, struct io_uring_cqe *cqe)
{
    if (cqe->res >= 0)
        return;
    struct stats_msg *m = cz_ud_ptr(io_uring_cqe_get_data64(cqe));
    gather_reply(w, m->g);
}

int builtin_register(struct cz_server *srv)
{
    int rc = 0;
    if (!srv->cfg.no_builtin_routes) {
        rc = rc ? rc : cz_server_route(srv, "GET", "/plaintext", on_plaintext, NULL);
        rc = rc ? rc : cz_server_route(srv, "GET", "/json", on_json, NULL);
        rc = rc ? rc : cz_server_route_streaming(srv, "*", "/echo", on_echo, NULL);
    }
    return rc ? rc : cz_server_admin_routes(srv);
}

int cz_server_admin_routes(cz_server *srv)
{
    if (srv->cfg.admin && strcmp(srv->cfg.admin, "off") == 0)
        return 0;
    static const struct {
        const char *path;
        cz_handler_fn fn;
    } routes[] = {
        {"/_catzilla/health", on_health},      {"/_catzilla/stats", on_stats},
        {"/_catzilla/metrics", on_metrics},    {"/_catzilla/", on_dashboard},
        {"/_catzilla", on_dashboard_redirect},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = server_route(srv, "GET", routes[i].path, routes[i].fn, NULL, ROUTE_ADMIN);
        if (rc < 0)
            return rc;
    }
    return 0;
}
