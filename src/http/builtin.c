/* Built-in routes: /plaintext, /json, /echo (TechEmpower conventions),
 * /_catzilla/health and /_catzilla/stats.  Stats are gathered through the
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
#include "http/http.h"

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
    /* The body moves from the request to the output queue: one copy of it
     * in memory, whatever its size. */
    int rc = cz_response_send(res, 200, t, NULL, 0);
    if (rc == 0 && cz_request_body(req).len)
        rc = response_move_request_body(res, req);
    return rc;
}

static int on_health(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    return cz_response_send(res, 200, "text/plain", "ok", 2);
}

/* ---------- stats ---------- */

struct snapshot {
    bool ok;
    unsigned id;
    int cpu;
    uint32_t connections;
    uint64_t requests;
    size_t registered_bytes;
    int mem_level;
    uint64_t purges, cache_drops, accept_pauses, body_waits, body_bytes;
    struct catzilla_memory_stats mem;
};

enum msg_phase { MSG_REQUEST, MSG_REPLY };

/* A peer that has not answered by then is reported as not ok: a stopped or
 * stuck worker must never hold a response (or a shutdown) forever. */
#define GATHER_TIMEOUT_MS 1000

struct stats_gather;
struct stats_msg {
    alignas(16) struct stats_gather *g;
    unsigned slot;
    int phase;  /* written by the peer before it replies */
    bool got;   /* the origin has the reply: only then is the slot read */
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
    bool head, close;
    struct stats_msg *msgs;
    struct snapshot *snaps;
};

static void take_snapshot(struct worker *w, struct snapshot *s)
{
    s->id = w->id;
    s->cpu = w->cpu;
    s->connections = w->nconns;
    s->requests = atomic_load_explicit(&w->stats.requests, memory_order_relaxed);
    s->registered_bytes = w->registered_bytes;
    s->mem_level = w->mem_level;
    s->body_bytes = w->body_rx_bytes;
    s->purges = atomic_load_explicit(&w->mem_actions.purges, memory_order_relaxed);
    s->cache_drops = atomic_load_explicit(&w->mem_actions.cache_drops, memory_order_relaxed);
    s->accept_pauses = atomic_load_explicit(&w->mem_actions.accept_pauses, memory_order_relaxed);
    s->body_waits = atomic_load_explicit(&w->mem_actions.body_waits, memory_order_relaxed);
    s->ok = catzilla_memory_get_stats(&s->mem) == 0;
}

struct jbuf {
    char *p;
    size_t len, cap;
    bool failed;
};

static void jprintf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jprintf(struct jbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        /* No buffer yet: measure first (NULL + 0 is undefined behaviour). */
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n) * 2;
        char *np = catzilla_task_realloc(b->p, cap);
        if (!np) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

static void json_arena(struct jbuf *b, const char *name, const struct catzilla_arena_stats *a,
                       bool last)
{
    jprintf(b,
            "\"%s\":{\"index\":%d,\"allocated\":%zu,\"active\":%zu,\"resident\":%zu,"
            "\"metadata\":%zu,\"fragmentation\":%.4f}%s",
            name, a->index == (unsigned)-1 ? -1 : (int)a->index, a->allocated, a->active,
            a->resident, a->metadata, a->fragmentation, last ? "" : ",");
}

static const char *const arena_names[CATZILLA_ARENA_MAX] = {"request", "response", "cache",
                                                            "static", "task"};

static void build_stats_json(const struct cz_server *srv, struct stats_gather *g, struct jbuf *b)
{
    uint64_t conns = 0, reqs = 0, act[4] = {0, 0, 0, 0};
    size_t reg = 0, alloc = 0, active = 0, resident = 0, meta = 0;
    jprintf(b, "{\"allocator\":\"%s\",\"workers\":[", catzilla_memory_allocator());
    for (unsigned i = 0; i < g->n; i++) {
        const struct snapshot *s = &g->snaps[i];
        jprintf(b, "%s{\"id\":%u,\"cpu\":%d,\"ok\":%s,\"connections\":%" PRIu32
                   ",\"requests\":%" PRIu64 ",\"registered_bytes\":%zu,\"memory_level\":\"%s\","
                   "\"memory_actions\":{\"purges\":%" PRIu64 ",\"cache_drops\":%" PRIu64
                   ",\"accept_pauses\":%" PRIu64 ",\"body_waits\":%" PRIu64 "},\"body_bytes\":%" PRIu64
                   ",\"arenas\":{",
                i ? "," : "", s->id, s->cpu, s->ok ? "true" : "false", s->connections,
                s->requests, s->registered_bytes, memguard_level_name(s->mem_level), s->purges,
                s->cache_drops, s->accept_pauses, s->body_waits, s->body_bytes);
        for (int k = 0; k < CATZILLA_ARENA_MAX; k++)
            json_arena(b, arena_names[k], &s->mem.arenas[k], k == CATZILLA_ARENA_MAX - 1);
        jprintf(b, "}}");
        conns += s->connections;
        reqs += s->requests;
        act[0] += s->purges;
        act[1] += s->cache_drops;
        act[2] += s->accept_pauses;
        act[3] += s->body_waits;
        reg += s->registered_bytes;
        alloc += s->mem.thread_total.allocated;
        active += s->mem.thread_total.active;
        resident += s->mem.thread_total.resident;
        meta += s->mem.thread_total.metadata;
    }
    const struct snapshot *o = &g->snaps[g->origin];
    double frag = active ? 1.0 - (double)alloc / (double)active : 0.0;
    if (frag < 0)
        frag = 0;
    jprintf(b,
            "],\"totals\":{\"workers\":%u,\"connections\":%" PRIu64 ",\"requests\":%" PRIu64
            ",\"registered_bytes\":%zu,\"arenas\":{\"allocated\":%zu,\"active\":%zu,"
            "\"resident\":%zu,\"metadata\":%zu,\"fragmentation\":%.4f},"
            "\"process\":{\"allocated\":%zu,\"active\":%zu,\"resident\":%zu,\"metadata\":%zu,"
            "\"mapped\":%zu,\"retained\":%zu},",
            g->n, conns, reqs, reg, alloc, active, resident, meta, frag,
            o->mem.process.allocated, o->mem.process.active, o->mem.process.resident,
            o->mem.process.metadata, o->mem.process.mapped, o->mem.process.retained);
    const struct memguard *mg = &srv->guard;
    jprintf(b,
            "\"memory_guard\":{\"limit\":%" PRIu64 ",\"source\":\"%s\",\"usage\":%" PRIu64
            ",\"peak\":%" PRIu64 ",\"level\":\"%s\",\"level_changes\":%" PRIu64
            ",\"purges\":%" PRIu64 ",\"cache_drops\":%" PRIu64 ",\"accept_pauses\":%" PRIu64
            ",\"body_waits\":%" PRIu64 "}}}\n",
            mg->limit, mg->source ? mg->source : "none",
            atomic_load_explicit(&mg->usage, memory_order_relaxed),
            atomic_load_explicit(&mg->peak, memory_order_relaxed),
            memguard_level_name(atomic_load(&mg->level)),
            atomic_load_explicit(&mg->changes, memory_order_relaxed), act[0], act[1], act[2],
            act[3]);
}

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
    struct jbuf b = {NULL, 0, 0, false};
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
        build_stats_json(w->srv, &view, &b);
    } else {
        b.failed = true;
    }
    struct head_spec h = {
        .status = b.failed ? 503 : 200,
        .close = g->close,
        .content_type = "application/json",
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

/* The stats handler: answer in place with one worker, gather otherwise. */
static int on_stats(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
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
    g->origin = w->id;
    g->head = req->head;
    g->close = !req->keep_alive;
    g->deadline_ms = w->now_ms + GATHER_TIMEOUT_MS;
    g->pending = 1; /* our own slot, released below */
    g->next = w->gathers;
    w->gathers = g;
    take_snapshot(w, &g->snaps[w->id]);

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

void builtin_on_msg(struct worker *w, struct io_uring_cqe *cqe)
{
    struct stats_msg *m = cz_ud_ptr(io_uring_cqe_get_data64(cqe));
    struct stats_gather *g = m->g;
    if (m->phase == MSG_REQUEST) {
        /* On the peer: fill our own slot, then hand the message back. */
        take_snapshot(w, &g->snaps[m->slot]);
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
        rc = rc ? rc : cz_server_route(srv, "*", "/echo", on_echo, NULL);
    }
    rc = rc ? rc : cz_server_route(srv, "GET", "/_catzilla/health", on_health, NULL);
    rc = rc ? rc : cz_server_route(srv, "GET", "/_catzilla/stats", on_stats, NULL);
    return rc;
}
