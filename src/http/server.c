/* The server: configuration, routes, worker threads (one per CPU, pinned),
 * each with its own ring, listener (SO_REUSEPORT), arenas, router copy and
 * connections, and the event loop that dispatches completions.  It does not
 * parse HTTP (request.c) or manage connection state (conn.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "catzilla/memory.h"
#include "core/addr.h"
#include "core/fault.h"
#include "core/log.h"
#include "fs/filecache.h"
#include "http/http.h"
#include "http/request.h"
#include "http/static.h"

#define TICK_MS 100
#define NOTSENT_LOWAT (128 * 1024)

/* ---------- set-up API ---------- */

int cz_server_create(const struct cz_config *cfg, cz_server **out)
{
    struct cz_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    srv->cfg = *cfg;
    srv->root_fd = -1;
    pthread_mutex_init(&srv->post_lock, NULL);
    /* The log is process-wide: the server created last sets its level. */
    cz_log_set_level((enum cz_log_level)cfg->log_level);
    pthread_mutex_init(&srv->start_lock, NULL);
    pthread_cond_init(&srv->start_cond, NULL);
    srv->check_router = cz_router_create();
    if (!srv->check_router) {
        free(srv);
        return -ENOMEM;
    }
    *out = srv;
    return 0;
}

int cz_server_route(cz_server *srv, const char *method, const char *pattern, cz_handler_fn fn,
                    void *user_data)
{
    return server_route(srv, method, pattern, fn, user_data, 0);
}

int cz_server_route_streaming(cz_server *srv, const char *method, const char *pattern,
                              cz_handler_fn fn, void *user_data)
{
    return server_route(srv, method, pattern, fn, user_data, ROUTE_STREAM_BODY);
}

int server_route(struct cz_server *srv, const char *method, const char *pattern, cz_handler_fn fn,
                 void *user_data, unsigned flags)
{
    bool admin = flags & ROUTE_ADMIN;
    if (atomic_load(&srv->running))
        return -EBUSY;
    if (!method || !pattern || !fn)
        return -EINVAL;
    int m = strcmp(method, "*") == 0 ? CZ_ROUTER_ANY : cz_method_parse(method, strlen(method));
    if (m < 0 && m != CZ_ROUTER_ANY)
        return -EINVAL;
    struct route *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->fn = fn;
    r->user_data = user_data;
    r->method = m;
    r->admin = admin;
    r->stream_body = flags & ROUTE_STREAM_BODY;
    srv->has_admin_routes |= admin;
    srv->has_stream_routes |= r->stream_body;
    r->pattern = strdup(pattern);
    if (!r->pattern) {
        free(r);
        return -ENOMEM;
    }
    int rc = cz_router_add(srv->check_router, m, pattern, r);
    if (rc < 0) {
        free(r->pattern);
        free(r);
        return rc;
    }
    /* Keep registration order so every worker builds the same trie. */
    struct route **pp = &srv->routes;
    while (*pp)
        pp = &(*pp)->next;
    *pp = r;
    return 0;
}

int cz_server_not_found(cz_server *srv, cz_handler_fn fn, void *user_data)
{
    if (atomic_load(&srv->running))
        return -EBUSY;
    srv->not_found_fn = fn;
    srv->not_found_ud = user_data;
    return 0;
}

void cz_server_handle_signals(cz_server *srv)
{
    srv->handle_signals = true;
}

int cz_server_port(const cz_server *srv)
{
    int port = atomic_load(&srv->port);
    return port > 0 ? port : 0;
}

int cz_server_wait_listening(cz_server *srv, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&srv->start_lock);
    int rc = 0;
    while (atomic_load(&srv->port) == 0 && rc == 0)
        rc = timeout_ms < 0 ? pthread_cond_wait(&srv->start_cond, &srv->start_lock)
                            : pthread_cond_timedwait(&srv->start_cond, &srv->start_lock, &deadline);
    pthread_mutex_unlock(&srv->start_lock);
    int port = atomic_load(&srv->port);
    return port != 0 ? port : -ETIMEDOUT;
}

/* Tell cz_server_wait_listening: the port, or -errno when the start failed. */
static void announce(struct cz_server *srv, int port_or_error)
{
    pthread_mutex_lock(&srv->start_lock);
    atomic_store(&srv->port, port_or_error);
    pthread_cond_broadcast(&srv->start_cond);
    pthread_mutex_unlock(&srv->start_lock);
}

const char *cz_server_error(const cz_server *srv)
{
    return srv->err;
}

void server_wake_workers(struct cz_server *srv)
{
    for (unsigned i = 0; i < srv->nworkers; i++) {
        uint64_t one = 1;
        if (srv->workers[i].wake_fd >= 0) {
            ssize_t n = write(srv->workers[i].wake_fd, &one, sizeof(one));
            (void)n;
        }
    }
}

void cz_server_stop(cz_server *srv)
{
    atomic_store(&srv->stop_requested, true);
    server_wake_workers(srv);
}

void cz_server_destroy(cz_server *srv)
{
    if (!srv)
        return;
    struct route *r = srv->routes;
    while (r) {
        struct route *n = r->next;
        free(r->pattern);
        free(r);
        r = n;
    }
    cz_router_destroy(srv->check_router);
    for (int k = 0; k < 2; k++) {
        struct hook *h = k ? srv->after : srv->before;
        while (h) {
            struct hook *n = h->next;
            free(h);
            h = n;
        }
    }
    pthread_mutex_destroy(&srv->post_lock);
    pthread_mutex_destroy(&srv->start_lock);
    pthread_cond_destroy(&srv->start_cond);
    free(srv->workers);
    free(srv);
}

struct worker *server_worker(struct cz_server *srv, unsigned i)
{
    return i < srv->nworkers ? &srv->workers[i] : NULL;
}

bool server_keepalive_allowed(const struct conn *c)
{
    const struct cz_config *cfg = &c->w->srv->cfg;
    if (c->w->stopping || cfg->keepalive_timeout == 0)
        return false;
    return cfg->max_keepalive_requests == 0 || c->requests < (uint32_t)cfg->max_keepalive_requests;
}

/* ---------- dispatch ---------- */

/* A short text/plain status response; more may add header lines. */
static void answer_status(struct conn *c, const struct cz_request *req, int status,
                          const struct head_spec *more)
{
    response_text(c, status, req->head, c->close_after_send, more);
}

static int add_hook(struct cz_server *srv, struct hook **list, cz_handler_fn fn, void *ud)
{
    if (atomic_load(&srv->running))
        return -EBUSY;
    if (!fn)
        return -EINVAL;
    struct hook *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->fn = fn;
    h->user_data = ud;
    while (*list)
        list = &(*list)->next;
    *list = h;
    return 0;
}

int cz_server_hook_before(cz_server *srv, cz_handler_fn fn, void *user_data)
{
    return add_hook(srv, &srv->before, fn, user_data);
}

int cz_server_hook_after(cz_server *srv, cz_handler_fn fn, void *user_data)
{
    return add_hook(srv, &srv->after, fn, user_data);
}

void server_after_hooks(struct cz_server *srv, struct cz_response *res)
{
    for (const struct hook *h = srv->after; h; h = h->next)
        (void)h->fn(res->req, res, h->user_data);
}

/* The answer in res (built by a handler or a before hook; rc is what it
 * returned), or the status page its failure calls for. */
static void finish_answer(struct conn *c, struct cz_response *res, int rc)
{
    if (res->deferred) {
        /* A placeholder to be filled later (cz_response_defer, a stream):
         * an explicit state, whatever the handler returned. */
        return;
    }
    if (rc >= 0 && !res->failed)
        server_after_hooks(c->w->srv, res);
    if (rc < 0 || res->failed)
        response_text(c, rc == -ENOMEM || res->failed ? 503 : 500, res->head_only,
                      c->close_after_send, NULL);
    else if (response_finish(res) < 0)
        conn_close(c);
}

static bool is_admin_path(const char *p, size_t len)
{
    return len >= sizeof(CZ_ADMIN_PREFIX) - 1 &&
           memcmp(p, CZ_ADMIN_PREFIX, sizeof(CZ_ADMIN_PREFIX) - 1) == 0;
}

bool server_streams_body(struct conn *c, struct cz_request *req)
{
    struct worker *w = c->w;
    if (!w->srv->has_stream_routes || c->admin)
        return false;
    return cz_router_match(w->router, req->method, req->path.ptr, req->path.len, &req->match) ==
               CZ_ROUTE_FOUND &&
           ((const struct route *)req->match.target)->stream_body;
}

/* Where a request goes once it may be answered here. */
static void route_request(struct conn *c, struct cz_request *req, enum cz_route_result rr,
                          struct cz_response *res)
{
    struct worker *w = c->w;
    /* A method this server does not implement at all is 501 wherever the
     * path leads, unless a route takes any method. */
    if (rr != CZ_ROUTE_FOUND && req->method < 0) {
        answer_status(c, req, 501, NULL);
        return;
    }
    if (rr == CZ_ROUTE_FOUND) {
        struct route *r = req->match.target;
        finish_answer(c, res, r->fn(req, res, r->user_data));
        return;
    }
    if (rr == CZ_ROUTE_METHOD_NOT_ALLOWED) {
        char allow[128];
        cz_router_format_allow(req->match.allow, allow, sizeof(allow));
        struct head_spec more = {.allow = allow};
        answer_status(c, req, 405, &more);
        return;
    }
    /* Not a route: the static file tree, if any, then the application's
     * not-found handler, else 404. */
    if (cz_static_serve(c, req) == 0)
        return;
    if (w->srv->not_found_fn) {
        finish_answer(c, res, w->srv->not_found_fn(req, res, w->srv->not_found_ud));
        return;
    }
    answer_status(c, req, 404, NULL);
}

void server_dispatch(struct conn *c, struct cz_request *req)
{
    struct worker *w = c->w;
    enum cz_route_result rr =
        cz_router_match(w->router, req->method, req->path.ptr, req->path.len, &req->match);
    /* The admin surface: its routes only where --admin puts them, and
     * nothing else on its own listener. */
    bool admin_here = c->admin || w->srv->admin_mode == ADMIN_SAME;
    bool hidden = c->admin && rr == CZ_ROUTE_NOT_FOUND;
    bool admin_route = false;
    if (rr != CZ_ROUTE_NOT_FOUND) {
        admin_route = rr == CZ_ROUTE_FOUND ? ((const struct route *)req->match.target)->admin
                                           : is_admin_path(req->path.ptr, req->path.len);
        hidden = admin_route ? !admin_here : c->admin;
    }
    if (hidden) {
        answer_status(c, req, 404, NULL);
        return;
    }

#if CZ_LEAK_CHECK
    /* The leak checker's own test: CATZILLA_LEAK_PLANT makes /_leak forget
     * 100 bytes of request memory, which the check must report. */
    if (req->path.len == 6 && memcmp(req->path.ptr, "/_leak", 6) == 0 &&
        getenv("CATZILLA_LEAK_PLANT"))
        (void)catzilla_request_alloc(100);
#endif
    struct cz_response res;
    response_init(&res, c, 200, req->head);
    res.req = req;
    /* Before hooks see every request of the application's surface. */
    int rc = CZ_HOOK_CONTINUE;
    for (const struct hook *h = admin_route ? NULL : w->srv->before; h; h = h->next) {
        rc = h->fn(req, &res, h->user_data);
        if (rc != CZ_HOOK_CONTINUE || res.deferred)
            break;
    }
    if (rc == CZ_HOOK_CONTINUE && !res.deferred)
        route_request(c, req, rr, &res);
    else
        finish_answer(c, &res, rc < 0 ? rc : 0);
    response_release(&res);
}

/* ---------- listeners ---------- */

/* A listening socket on ss; flag names the option that chose the address
 * in error messages. */
static int open_listener(const struct cz_server *srv, const struct sockaddr_storage *ss,
                         socklen_t sl, bool reuseport, const char *flag, char *err, size_t errlen)
{
    char where[INET6_ADDRSTRLEN + 16];
    cz_addr_format(ss, where, sizeof(where));
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "socket: %s", strerror(e));
        return -e;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    /* Accepted sockets inherit TCP_NODELAY from the listener: responses go out
     * whole anyway, never wait for Nagle. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* Also inherited: the kernel takes at most this many bytes not yet sent,
     * and reports the socket writable again once half of them have left.
     * So a send waiting on a slow reader completes every NOTSENT_LOWAT/2
     * bytes the reader takes (the send timer sees its progress; without
     * this the kernel waits for a third of a multi-megabyte buffer), and
     * unsent bytes wait in our queue, not in kernel memory. */
    int lowat = NOTSENT_LOWAT;
    setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
    if (bind(fd, (const struct sockaddr *)ss, sl) < 0) {
        int e = errno;
        if (e == EADDRINUSE)
            snprintf(err, errlen,
                     "%s is already in use (another server is listening; choose another with %s)",
                     where, flag);
        else if (e == EACCES)
            snprintf(err, errlen,
                     "binding %s: permission denied (ports below 1024 need root or "
                     "CAP_NET_BIND_SERVICE)",
                     where);
        else if (e == EADDRNOTAVAIL)
            snprintf(err, errlen, "binding %s: no interface has that address (check %s)", where,
                     strcmp(flag, "--port") == 0 ? "--bind" : flag);
        else
            snprintf(err, errlen, "bind %s: %s", where, strerror(e));
        close(fd);
        return -e;
    }
    if (listen(fd, (int)srv->cfg.backlog) < 0) {
        int e = errno;
        snprintf(err, errlen, "listen: %s", strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

/* Binding without SO_REUSEPORT first proves nobody else holds the port (a
 * second Catzilla of the same user would otherwise silently share it), and
 * resolves port 0 to the port every worker then binds. */
static int probe_port(struct cz_server *srv, struct sockaddr_storage *ss, socklen_t sl,
                      const char *flag, char *err, size_t errlen)
{
    int fd = open_listener(srv, ss, sl, false, flag, err, errlen);
    if (fd < 0)
        return fd;
    struct sockaddr_storage got;
    socklen_t gl = sizeof(got);
    getsockname(fd, (struct sockaddr *)&got, &gl);
    close(fd);
    cz_addr_set_port(ss, cz_addr_port(&got));
    return 0;
}

/* Where --bind/--port and --admin point, checked and with ports resolved. */
static int resolve_addresses(struct cz_server *srv, struct sockaddr_storage *main_ss,
                             socklen_t *main_len, char *err, size_t errlen)
{
    const struct cz_config *cfg = &srv->cfg;
    if (cz_addr_parse(cfg->bind, (int)cfg->port, main_ss, main_len) < 0) {
        snprintf(err, errlen, "--bind: '%s' is not an IPv4 or IPv6 address", cfg->bind);
        return -EINVAL;
    }
    const char *admin = cfg->admin ? cfg->admin : "off";
    /* No admin route registered (an embedder that did not ask for them):
     * nothing to listen for. */
    if (strcmp(admin, "off") == 0 || !srv->has_admin_routes) {
        srv->admin_mode = ADMIN_OFF;
    } else if (strcmp(admin, "same") == 0) {
        srv->admin_mode = ADMIN_SAME;
    } else if (cz_addr_parse_hostport(admin, &srv->admin_addr, &srv->admin_addrlen) == 0) {
        srv->admin_mode = ADMIN_OWN;
    } else {
        snprintf(err, errlen, "--admin: '%s' is not off, same or ADDR:PORT", admin);
        return -EINVAL;
    }
    int rc = probe_port(srv, main_ss, *main_len, "--port", err, errlen);
    if (rc < 0)
        return rc;
    if (srv->admin_mode != ADMIN_OWN)
        return 0;
    if (cz_addr_port(&srv->admin_addr) != 0 && cz_addr_overlap(main_ss, &srv->admin_addr)) {
        snprintf(err, errlen, "--admin %s overlaps the main listener's address and port", admin);
        return -EINVAL;
    }
    return probe_port(srv, &srv->admin_addr, srv->admin_addrlen, "--admin", err, errlen);
}

static int open_listeners(struct worker *w, const struct sockaddr_storage *main_ss,
                          socklen_t main_len, char *err, size_t errlen)
{
    struct cz_server *srv = w->srv;
    bool multishot = !accesslog_enabled(srv);
    for (unsigned k = 0; k < 2; k++) {
        struct listener *l = &w->lis[k];
        l->w = w;
        l->admin = k == 1;
        l->multishot = multishot;
        for (unsigned i = 0; i < ACCEPT_SLOTS; i++)
            l->slots[i].l = l;
    }
    int fd = open_listener(srv, main_ss, main_len, true, "--port", err, errlen);
    if (fd < 0)
        return fd;
    w->lis[0].fd = fd;
    w->nlis = 1;
    if (srv->admin_mode == ADMIN_OWN) {
        fd = open_listener(srv, &srv->admin_addr, srv->admin_addrlen, true, "--admin", err, errlen);
        if (fd < 0)
            return fd;
        w->lis[1].fd = fd;
        w->nlis = 2;
    }
    return 0;
}

/* ---------- worker loop ---------- */

static void arm_slot(struct worker *w, struct accept_slot *s)
{
    struct listener *l = s->l;
    struct io_uring_sqe *sqe = cz_ring_sqe(&w->ring);
    if (!sqe)
        return;
    /* Non-blocking sockets: a splice into a full socket returns what it
     * moved instead of blocking an io-wq thread (the ring's own sends and
     * receives poll either way). */
    if (l->multishot) {
        io_uring_prep_multishot_accept_direct(sqe, l->fd, NULL, NULL, SOCK_NONBLOCK);
    } else {
        s->addrlen = sizeof(s->addr);
        io_uring_prep_accept(sqe, l->fd, (struct sockaddr *)&s->addr, &s->addrlen, SOCK_NONBLOCK);
        /* Into a free direct descriptor.  Set here: liburing 2.3's
         * prep_accept_direct does not translate IORING_FILE_INDEX_ALLOC. */
        sqe->file_index = IORING_FILE_INDEX_ALLOC;
    }
    io_uring_sqe_set_data64(sqe, cz_ud(s, OP_ACCEPT));
    s->armed = true;
}

static void arm_listener(struct worker *w, struct listener *l)
{
    unsigned n = l->multishot ? 1 : ACCEPT_SLOTS;
    for (unsigned i = 0; i < n; i++)
        if (!l->slots[i].armed)
            arm_slot(w, &l->slots[i]);
}

static void cancel_listener(struct worker *w, struct listener *l)
{
    for (unsigned i = 0; i < ACCEPT_SLOTS; i++) {
        if (!l->slots[i].armed)
            continue;
        struct io_uring_sqe *sqe = cz_ring_sqe(&w->ring);
        if (!sqe)
            return;
        io_uring_prep_cancel64(sqe, cz_ud(&l->slots[i], OP_ACCEPT), 0);
        io_uring_sqe_set_data64(sqe, 0);
    }
}

/* The admin listener accepts whatever holds the main one back (a full
 * worker, memory pressure): health must answer exactly then. */
static void arm_accept(struct worker *w)
{
    if (w->stopping)
        return;
    for (unsigned i = 0; i < w->nlis; i++)
        if (w->lis[i].admin || !w->accept_paused)
            arm_listener(w, &w->lis[i]);
}

static bool accept_allowed(const struct worker *w)
{
    return !w->stopping && w->nconns < (unsigned)w->srv->cfg.max_connections &&
           !memguard_blocks_accept(w);
}

void server_resume_accept(struct worker *w)
{
    if (w->accept_paused && accept_allowed(w)) {
        w->accept_paused = false;
        arm_accept(w);
    }
}

void server_pause_accept(struct worker *w)
{
    w->accept_paused = true;
    if (w->nlis > 0)
        cancel_listener(w, &w->lis[0]);
}

static void on_accept(struct worker *w, struct accept_slot *s, struct io_uring_cqe *cqe)
{
    struct listener *l = s->l;
    if (!l->multishot || !(cqe->flags & IORING_CQE_F_MORE))
        s->armed = false;
    if (cqe->res >= 0) {
        w->metrics.accepted++;
        conn_accepted(w, cqe->res, l->admin,
                      l->multishot ? NULL : (const struct sockaddr *)&s->addr);
        if (w->nconns >= (unsigned)w->srv->cfg.max_connections) {
            /* Make room by closing the oldest idle keep-alive connection; if
             * there is none, stop accepting until a connection closes. */
            conn_close_idle(w, 1);
            if (w->nconns >= (unsigned)w->srv->cfg.max_connections && !w->accept_paused)
                server_pause_accept(w);
        }
    } else if (cqe->res == -ENFILE || cqe->res == -EMFILE || cqe->res == -ENOMEM) {
        /* Descriptor table full: close idle connections, retry on the next tick
         * rather than spinning. */
        conn_close_idle(w, 16);
        if (!w->accept_paused)
            cz_log_warn("accept: %s; pausing accepts", strerror(-cqe->res));
        server_pause_accept(w);
        return;
    } else if (cqe->res != -ECANCELED && cqe->res != -EAGAIN && cqe->res != -ECONNABORTED) {
        cz_log_warn("accept: %s", strerror(-cqe->res));
    }
    if (!s->armed && !w->stopping && (l->admin || !w->accept_paused))
        arm_slot(w, s);
}

/* The tick drives every timer and the shutdown deadline: if no SQE is free
 * now, the loop tries again after its next turn (tick_armed stays false). */
static void arm_tick(struct worker *w)
{
    if (w->tick_armed)
        return;
    struct io_uring_sqe *sqe = cz_ring_sqe(&w->ring);
    if (!sqe)
        return;
    w->tick_armed = true;
    w->tick_ts.tv_sec = 0;
    w->tick_ts.tv_nsec = TICK_MS * 1000000L;
    io_uring_prep_timeout(sqe, &w->tick_ts, 0, 0);
    io_uring_sqe_set_data64(sqe, cz_ud(w, OP_TICK));
}

static void arm_wake(struct worker *w)
{
    struct io_uring_sqe *sqe = cz_ring_sqe(&w->ring);
    if (!sqe)
        return;
    io_uring_prep_read(sqe, w->wake_fd, &w->wake_buf, sizeof(w->wake_buf), 0);
    io_uring_sqe_set_data64(sqe, cz_ud(w, OP_WAKE));
}

static void begin_stop(struct worker *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    w->stop_deadline_ms = w->now_ms + (uint64_t)w->srv->cfg.shutdown_timeout;
    server_pause_accept(w);
    /* Idle connections go now; busy ones finish their request (answered with
     * Connection: close) and then close. */
    conn_close_idle(w, UINT32_MAX);
    struct list_node *h = &w->conns;
    for (struct list_node *n = h->next; n != h;) {
        struct conn *c = container_of(n, struct conn, all_link);
        n = n->next; /* conn_close may unlink c */
        if (c->state == CONN_IDLE && output_idle(c))
            conn_close(c);
    }
}

/* A worker that has seen no accept and no byte for --idle-release gives its
 * memory back: what its arenas hold free (tcaches flushed, dirty pages
 * purged) and the pages of its receive buffers.  Once per idle spell. */
static void release_when_idle(struct worker *w)
{
    long after = w->srv->cfg.idle_release;
    if (after <= 0 || w->memory_released || w->now_ms - w->last_active_ms < (uint64_t)after)
        return;
    w->memory_released = true;
    catzilla_memory_optimize();
    int rc = cz_bufring_release_pages(&w->bufs);
    if (rc < 0)
        cz_log_warn("worker %u: releasing receive-buffer pages: %s", w->id, strerror(-rc));
    else
        cz_log_debug("worker %u: idle, memory given back", w->id);
}

/* A SIGHUP reload this worker has not applied yet. */
static void catch_up_reload(struct worker *w)
{
    unsigned gen = atomic_load(&w->srv->reload_gen);
    if (gen == w->reload_gen)
        return;
    w->reload_gen = gen;
    cz_static_worker_reload(w);
}

/* The eventfd is written to stop the worker or to announce a new memory
 * pressure level. */
static void on_wake(struct worker *w)
{
    /* Posted calls (deferred_run) may come until the loop ends. */
    arm_wake(w);
    if (atomic_load(&w->srv->stop_requested)) {
        begin_stop(w);
        return;
    }
    catch_up_reload(w);
    memguard_apply(w);
}

/* A busy worker returns the free pages of its request and response arenas
 * every --arena-trim: under a churn of large bodies jemalloc's decay alone
 * keeps up to a decay period's worth of freed bodies resident. */
static void trim_arenas(struct worker *w)
{
    long every = w->srv->cfg.arena_trim;
    if (every <= 0 || w->memory_released || w->now_ms - w->last_trim_ms < (uint64_t)every)
        return;
    w->last_trim_ms = w->now_ms;
    catzilla_memory_trim();
}

static void on_tick(struct worker *w)
{
    w->tick_armed = false;
    /* A stop or pressure wake-up that found no free SQE is caught here. */
    if (!w->stopping && atomic_load(&w->srv->stop_requested))
        begin_stop(w);
    catch_up_reload(w);
    memguard_apply(w);
    request_rx_sweep(w);
    trim_arenas(w);
    release_when_idle(w);
    worker_update_date(w);
    conn_timers_expire(w);
    builtin_tick(w);
    accesslog_flush(w);
    server_resume_accept(w);
    if (w->stopping && w->now_ms >= w->stop_deadline_ms) {
        accesslog_cancel(w);
        struct list_node *h = &w->conns;
        for (struct list_node *n = h->next; n != h;) {
            struct conn *c = container_of(n, struct conn, all_link);
            n = n->next;
            conn_close(c);
        }
        deferred_abandon(w);
    }
    arm_tick(w);
}

void server_dispatch_cqe(struct worker *w, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    void *ptr = cz_ud_ptr(ud);
    switch (cz_ud_tag(ud)) {
    case OP_ACCEPT:
        w->last_active_ms = w->now_ms;
        w->memory_released = false;
        on_accept(w, ptr, cqe);
        break;
    case OP_RECV:
        w->last_active_ms = w->now_ms;
        w->memory_released = false;
        conn_on_recv(ptr, cqe);
        break;
    case OP_SEND:
        output_on_send(ptr, cqe);
        break;
    case OP_SEND_ZC:
        output_on_send_zc(ptr, cqe);
        break;
    case OP_FILE:
        output_on_file(ptr, cqe);
        break;
    case OP_CLOSE:
    case OP_SHUTDOWN:
    case OP_CANCEL:
        conn_on_op_done(ptr, cz_ud_tag(ud), cqe);
        break;
    case OP_TICK:
        if (ptr == w)
            on_tick(w);
        else
            deferred_on_timer(w, ptr, cqe);
        break;
    case OP_WAKE:
        on_wake(w);
        break;
    case OP_MSG:
        builtin_on_msg(w, cqe);
        break;
    case OP_MSG_SENT:
        builtin_on_msg_sent(w, cqe);
        break;
    case OP_FS:
        static_on_cqe(w, ptr, cqe);
        break;
    case OP_PROBE:
        output_on_probe(ptr, cqe);
        break;
    case OP_LOG:
        accesslog_on_cqe(w, cqe);
        break;
    default:
        break;
    }
}

void server_leak_check(struct worker *w)
{
#if CZ_LEAK_CHECK
    static const enum catzilla_arena_kind kinds[2] = {CATZILLA_ARENA_REQUEST,
                                                      CATZILLA_ARENA_RESPONSE};
    static const char *const names[2] = {"request", "response"};
    for (int i = 0; i < 2; i++) {
        long long now = catzilla_memory_live_bytes(kinds[i]);
        if (now != w->leak_base[i]) {
            cz_log_error("leak check: with no connection open, worker %u's %s blocks hold %lld "
                         "bytes (%+lld since start)",
                         w->id, names[i], now, now - w->leak_base[i]);
            w->leak_base[i] = now; /* report each leak once */
        }
    }
#else
    (void)w;
#endif
}

static void worker_loop(struct worker *w)
{
    struct io_uring *ring = &w->ring;
#if CZ_LEAK_CHECK
    w->leak_base[0] = catzilla_memory_live_bytes(CATZILLA_ARENA_REQUEST);
    w->leak_base[1] = catzilla_memory_live_bytes(CATZILLA_ARENA_RESPONSE);
#endif
    arm_accept(w);
    arm_tick(w);
    arm_wake(w);
#if CZ_FAULT_INJECTION
    /* Allocations may fail from here on (CATZILLA_FAULT_EVERY); start-up never does. */
    catzilla_memory_fault_arm();
#endif
    for (;;) {
        /* Callbacks waiting (posted calls, writable streams) or connections
         * waiting for receive buffers (whose bytes bring no CQE): no sleep. */
        bool busy = deferred_pending(w) || w->recv_wait_head;
        int rc = busy ? io_uring_submit(ring) : io_uring_submit_and_wait(ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            cz_log_error("io_uring_submit_and_wait: %s", strerror(-rc));
            break;
        }
        w->now_ns = metrics_now_ns();
        w->now_ms = w->now_ns / 1000000;
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(ring, head, cqe)
        {
            server_dispatch_cqe(w, cqe);
            n++;
        }
        io_uring_cq_advance(ring, n);
        cz_bufring_commit(&w->bufs, &w->bufs_pending);
        conn_recv_resume(w);
        memguard_admit_waiters(w);
        deferred_run(w);
        output_flush_all(w);
        conn_free_closed(w);
        arm_tick(w);
        if (w->nconns > 0)
            server_resume_accept(w);
        if (w->stopping && w->nconns == 0) {
            /* The last lines go out before the ring does. */
            accesslog_flush(w);
            if (!accesslog_busy(w))
                break;
        }
    }
}

/* ---------- worker set-up ---------- */

static int worker_build_router(struct worker *w)
{
    w->router = cz_router_create();
    if (!w->router)
        return -ENOMEM;
    for (struct route *r = w->srv->routes; r; r = r->next) {
        int rc = cz_router_add(w->router, r->method, r->pattern, r);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int worker_setup(struct worker *w)
{
    struct cz_server *srv = w->srv;
    char *err = w->start_err;
    size_t errlen = sizeof(w->start_err);
    int rc = catzilla_memory_thread_init();
    if (rc < 0) {
        snprintf(err, errlen, "worker %u: cannot create its arenas: %s", w->id, strerror(-rc));
        return rc;
    }
    struct cz_ring_params rp = {
        .entries = (unsigned)srv->cfg.ring_entries,
        .sqpoll = srv->cfg.sqpoll,
        .sqpoll_cpu = -1,
    };
    rc = cz_ring_setup(&w->ring, &rp, err, errlen);
    if (rc < 0)
        return rc;
    w->ring_ready = true;
    w->ring_fd = w->ring.ring_fd;
    if (w->cpu >= 0) {
        /* Work the kernel punts to io-wq (splice, shutdown) belongs to this
         * core too: left unpinned it would run on the other workers' cores. */
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        rc = io_uring_register_iowq_aff(&w->ring, sizeof(set), &set);
        if (rc < 0)
            cz_log_warn("worker %u: cannot pin its io-wq threads: %s", w->id, strerror(-rc));
    }

    rc = cz_bufring_setup(&w->ring, &w->bufs, 0, (unsigned)srv->cfg.recv_buffers,
                          (unsigned)srv->cfg.recv_buffer_size, err, errlen);
    if (rc < 0)
        return rc;
    w->registered_bytes += w->bufs.registered_bytes;

    /* The direct-descriptor table bounds this worker's connections. */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    unsigned nfiles = (unsigned)srv->cfg.max_connections + 64;
    if (rl.rlim_cur != RLIM_INFINITY && nfiles > rl.rlim_cur)
        nfiles = (unsigned)rl.rlim_cur;
    rc = io_uring_register_files_sparse(&w->ring, nfiles);
    if (rc < 0) {
        snprintf(err, errlen, "io_uring_register_files_sparse(%u): %s", nfiles, strerror(-rc));
        return rc;
    }
    w->files_registered = nfiles;

    rc = worker_build_router(w);
    if (rc < 0) {
        snprintf(err, errlen, "worker %u: cannot build its router: %s", w->id, strerror(-rc));
        return rc;
    }
    rc = output_worker_init(w, err, errlen);
    if (rc < 0)
        return rc;
    {
        /* Files of the docroot and of cz_response_file. */
        struct cz_fs_env env = {
            .ring = &w->ring,
            .mime = srv->mime,
            .cache_size = (size_t)srv->cfg.file_cache_size,
            .max_file = (size_t)srv->cfg.file_cache_max_file,
            .now_ms = &w->now_ms,
            .registered_bytes = &w->registered_bytes,
        };
        w->fcache = cz_filecache_create(&env);
        if (!w->fcache) {
            snprintf(err, errlen, "worker %u: file cache: out of memory", w->id);
            return -ENOMEM;
        }
    }
    if (accesslog_enabled(srv) && accesslog_worker_init(w) < 0) {
        snprintf(err, errlen, "worker %u: access log buffers: out of memory", w->id);
        return -ENOMEM;
    }
    w->reload_gen = atomic_load(&srv->reload_gen);
    worker_update_date(w);
    w->now_ns = metrics_now_ns();
    w->now_ms = w->now_ns / 1000000;
    w->last_active_ms = w->now_ms;
    return 0;
}

static void worker_teardown(struct worker *w)
{
    accesslog_worker_free(w);
    cz_filecache_destroy(w->fcache, w->ring_ready);
    w->fcache = NULL;
    output_worker_free(w);
    if (w->router)
        cz_router_destroy(w->router);
    w->router = NULL;
    if (w->ring_ready) {
        cz_bufring_teardown(&w->ring, &w->bufs);
        io_uring_queue_exit(&w->ring);
        w->ring_ready = false;
    }
    deferred_worker_free(w);
    catzilla_memory_thread_exit();
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct cz_server *srv = w->srv;
    cz_log_set_worker((int)w->id);
    /* Signals belong to the main thread. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    int rc = worker_setup(w);
    if (rc == 0)
        deferred_thread_enter(w);
    pthread_mutex_lock(&srv->start_lock);
    w->start_rc = rc;
    srv->started++;
    pthread_cond_broadcast(&srv->start_cond);
    /* Wait until every worker has reported, so a failed start tears all down. */
    while (srv->started < srv->nworkers)
        pthread_cond_wait(&srv->start_cond, &srv->start_lock);
    bool all_ok = true;
    for (unsigned i = 0; i < srv->nworkers; i++)
        all_ok &= srv->workers[i].start_rc == 0;
    pthread_mutex_unlock(&srv->start_lock);

    if (all_ok)
        worker_loop(w);
    worker_teardown(w);
    return NULL;
}

static int cpu_list(int *cpus, int max)
{
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        for (int i = 0; i < CPU_SETSIZE && n < max; i++)
            if (CPU_ISSET(i, &set))
                cpus[n++] = i;
    }
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        for (int i = 0; i < c && n < max; i++)
            cpus[n++] = i;
    }
    return n;
}

unsigned server_worker_count(const struct cz_config *cfg)
{
    int cpus[1024];
    return cfg->threads > 0 ? (unsigned)cfg->threads : (unsigned)cpu_list(cpus, 1024);
}

/* Registered buffers are locked memory: raise the soft limit as far as the
 * hard limit allows, and the descriptor limit too. */
static void raise_limits(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_MEMLOCK, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---------- signals ---------- */

/* Every signal whose default action ends the process, except the
 * synchronous faults: each is handled here and logged, so none ends the
 * process silently. */
static const int handled_sigs[] = {SIGHUP,    SIGINT,  SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM,
                                   SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGIO,   SIGPWR};
#define NSIG_HANDLED (sizeof(handled_sigs) / sizeof(handled_sigs[0]))

/* SIGHUP: what can change without dropping a connection. */
static void reload(struct cz_server *srv)
{
    char mime[256];
    const char *log = "no access log";
    if (srv->alog)
        log = accesslog_reopen(srv) == 0 ? "access log reopened" : "access log NOT reopened";
    cz_static_reload(srv, mime, sizeof(mime));
    atomic_fetch_add(&srv->reload_gen, 1);
    server_wake_workers(srv);
    cz_log_info("SIGHUP: reloading: %s; %s", log, mime);
}

/* The handlers only forward: a bit per signal in sig_pending, and a post
 * of the running server's semaphore (both async-signal-safe), read by its
 * signal thread.  Handlers rather than sigwait, so that a signal reaching
 * any thread of an embedding program (one it created before cz_server_run,
 * with the signal unblocked) is still handled. */
static _Atomic(sem_t *) sig_sem;
static _Atomic uint64_t sig_pending;

static void on_signal(int sig)
{
    atomic_fetch_or(&sig_pending, (uint64_t)1 << sig);
    sem_t *s = atomic_load(&sig_sem);
    if (s)
        sem_post(s);
}

static void *signal_thread(void *arg)
{
    struct cz_server *srv = arg;
    for (;;) {
        if (sem_wait(&srv->sig_sem) < 0)
            continue; /* EINTR */
        if (atomic_load(&srv->signals_done))
            return NULL; /* cz_server_run is over: posted by itself */
        uint64_t pending = atomic_exchange(&sig_pending, 0);
        for (int sig = 1; sig < 64; sig++) {
            if (!(pending & ((uint64_t)1 << sig)))
                continue;
            switch (sig) {
            case SIGINT:
            case SIGTERM:
            case SIGQUIT:
                if (atomic_load(&srv->stop_requested)) {
                    cz_log_warn("%s: already draining (SIGKILL stops at once)", strsignal(sig));
                    break;
                }
                cz_log_info("%s: draining connections (up to %ldms)", strsignal(sig),
                            srv->cfg.shutdown_timeout);
                cz_server_stop(srv);
                break;
            case SIGHUP:
                reload(srv);
                break;
            case SIGUSR1:
                if (!srv->alog)
                    cz_log_info("SIGUSR1: no access log to reopen");
                else if (accesslog_reopen(srv) == 0)
                    cz_log_info("SIGUSR1: access log reopened");
                break;
            default:
                cz_log_warn("%s (signal %d): ignored", strsignal(sig), sig);
                break;
            }
        }
    }
}

/* A fault is logged (one write, async-signal-safe) before the default
 * action ends the process.  Sanitizer builds keep their own reports. */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
static void on_fatal(int sig)
{
    static const char msg[] = "catzilla: fatal signal ";
    char line[64];
    size_t n = sizeof(msg) - 1;
    memcpy(line, msg, n);
    if (sig >= 10)
        line[n++] = (char)('0' + sig / 10);
    line[n++] = (char)('0' + sig % 10);
    memcpy(line + n, "; exiting\n", 10);
    ssize_t w = write(STDERR_FILENO, line, n + 10);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void log_fatal_signals(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct sigaction sa = {.sa_handler = on_fatal, .sa_flags = SA_RESETHAND};
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}
#else
static void log_fatal_signals(void)
{
}
#endif

int cz_server_run(cz_server *srv)
{
    const struct cz_config *cfg = &srv->cfg;
    char *err = srv->err;
    size_t errlen = sizeof(srv->err);
    int rc;

    if (atomic_exchange(&srv->running, true))
        return -EBUSY;
    atomic_store(&srv->port, 0);
    srv->err[0] = '\0';
    srv->started = 0;
    signal(SIGPIPE, SIG_IGN);
    /* Load the time zone now: a worker would otherwise read /etc/localtime
     * on its first log line, a file read on a thread that must not do any. */
    tzset();
    raise_limits();
    struct catzilla_memory_options mo = {
        .background_thread = cfg->no_background_thread ? 0 : 1,
        .dirty_decay_ms = cfg->dirty_decay_ms,
        .muzzy_decay_ms = cfg->muzzy_decay_ms,
        .metadata_thp = NULL,
        .kind_decay = true,
        .kind_dirty_decay_ms = {cfg->request_dirty_decay_ms, cfg->response_dirty_decay_ms,
                                cfg->cache_dirty_decay_ms, cfg->static_dirty_decay_ms,
                                cfg->task_dirty_decay_ms},
        .kind_muzzy_decay_ms = {cfg->request_muzzy_decay_ms, cfg->response_muzzy_decay_ms,
                                cfg->cache_muzzy_decay_ms, cfg->static_muzzy_decay_ms,
                                cfg->task_muzzy_decay_ms},
        .kind_tcache_set = true,
        .kind_tcache = {cfg->request_tcache, cfg->response_tcache, cfg->cache_tcache,
                        cfg->static_tcache, cfg->task_tcache},
    };
    catzilla_memory_init(&mo);

    rc = cz_static_global_init(srv, err, errlen);
    if (rc < 0)
        goto out;
    rc = accesslog_open(srv, err, errlen);
    if (rc < 0)
        goto out;
    srv->start_ns = metrics_now_ns();

    int cpus[1024];
    int ncpu = cpu_list(cpus, 1024);
    unsigned n = server_worker_count(cfg);
    /* Kept from an earlier run of this server (destroy frees it): a
     * cz_server_stop from another thread may still be reading it. */
    pthread_mutex_lock(&srv->post_lock); /* cz_server_post reads the array */
    if (!srv->workers || srv->nworkers != n) {
        free(srv->workers);
        srv->nworkers = 0;
        srv->workers = aligned_alloc(alignof(struct worker), n * sizeof(*srv->workers));
    }
    if (srv->workers)
        memset(srv->workers, 0, n * sizeof(*srv->workers));
    srv->nworkers = srv->workers ? n : 0;
    pthread_mutex_unlock(&srv->post_lock);
    if (!srv->workers) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        srv->workers[i].lis[0].fd = srv->workers[i].lis[1].fd = -1;
        srv->workers[i].wake_fd = -1;
    }

    rc = memguard_configure(srv, err, errlen);
    if (rc < 0)
        goto out;
    struct sockaddr_storage main_ss;
    socklen_t main_len;
    rc = resolve_addresses(srv, &main_ss, &main_len, err, errlen);
    if (rc < 0)
        goto out;
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &srv->workers[i];
        w->srv = srv;
        w->id = i;
        w->cpu = cfg->no_pin ? -1 : cpus[i % (unsigned)ncpu];
        list_init(&w->conns);
        list_init(&w->rx_idle);
        for (int k = 0; k < TIMER_MAX; k++)
            list_init(&w->timers[k]);
        rc = open_listeners(w, &main_ss, main_len, err, errlen);
        if (rc < 0)
            goto out;
        w->wake_fd = eventfd(0, EFD_CLOEXEC);
        if (w->wake_fd < 0) {
            rc = -errno;
            snprintf(err, errlen, "eventfd: %s", strerror(-rc));
            goto out;
        }
    }

    pthread_t sigthr;
    bool sigthr_started = false;
    struct sigaction old_actions[NSIG_HANDLED];
    if (srv->handle_signals && sem_init(&srv->sig_sem, 0, 0) == 0) {
        log_fatal_signals();
        atomic_store(&srv->signals_done, false);
        atomic_store(&sig_pending, 0);
        sigthr_started = pthread_create(&sigthr, NULL, signal_thread, srv) == 0;
        if (!sigthr_started)
            sem_destroy(&srv->sig_sem);
        if (sigthr_started) {
            atomic_store(&sig_sem, &srv->sig_sem);
            struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
            sigemptyset(&sa.sa_mask);
            for (size_t i = 0; i < NSIG_HANDLED; i++)
                sigaction(handled_sigs[i], &sa, &old_actions[i]);
        }
    }

    unsigned created = 0;
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &srv->workers[i];
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (w->cpu >= 0) {
            /* Pin before the thread runs, so its arenas' first touch is local. */
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(w->cpu, &set);
            pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
        }
        rc = pthread_create(&w->thread, &attr, worker_main, w);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            snprintf(err, errlen, "cannot start worker %u: %s", i, strerror(rc));
            rc = -rc;
            /* Let the started ones see a failed start and exit. */
            pthread_mutex_lock(&srv->start_lock);
            for (unsigned j = i; j < n; j++) {
                srv->workers[j].start_rc = rc;
                srv->started++;
            }
            pthread_cond_broadcast(&srv->start_cond);
            pthread_mutex_unlock(&srv->start_lock);
            break;
        }
        created++;
    }

    pthread_mutex_lock(&srv->start_lock);
    while (srv->started < n)
        pthread_cond_wait(&srv->start_cond, &srv->start_lock);
    pthread_mutex_unlock(&srv->start_lock);
    int start_rc = 0;
    for (unsigned i = 0; i < n; i++) {
        if (srv->workers[i].start_rc < 0 && start_rc == 0) {
            start_rc = srv->workers[i].start_rc;
            if (srv->workers[i].start_err[0])
                snprintf(err, errlen, "%s", srv->workers[i].start_err);
        }
    }
    if (start_rc == 0 && rc >= 0)
        start_rc = memguard_start(srv, err, errlen);
    if (start_rc < 0 && rc >= 0)
        cz_server_stop(srv);
    if (start_rc == 0 && rc >= 0) {
        announce(srv, cz_addr_port(&main_ss));
        char where[INET6_ADDRSTRLEN + 16], admin[INET6_ADDRSTRLEN + 32];
        cz_addr_format(&main_ss, where, sizeof(where));
        if (srv->admin_mode == ADMIN_OWN) {
            char a[INET6_ADDRSTRLEN + 16];
            cz_addr_format(&srv->admin_addr, a, sizeof(a));
            snprintf(admin, sizeof(admin), "admin on %s", a);
        } else {
            snprintf(admin, sizeof(admin), "admin %s",
                     srv->admin_mode == ADMIN_SAME ? "on the main listener" : "off");
        }
        cz_log_info("catzilla %s listening on %s with %u worker%s (%s); %s", CATZILLA_VERSION,
                    where, n, n == 1 ? "" : "s", catzilla_memory_allocator(), admin);
    }
    for (unsigned i = 0; i < created; i++)
        pthread_join(srv->workers[i].thread, NULL);
    memguard_stop(srv);
    if (sigthr_started) {
        /* End the signal thread with a zero byte, with no log line: a
         * failed start must show its own error, not a shutdown. */
        for (size_t i = 0; i < NSIG_HANDLED; i++)
            sigaction(handled_sigs[i], &old_actions[i], NULL);
        atomic_store(&sig_sem, NULL);
        atomic_store(&srv->signals_done, true);
        sem_post(&srv->sig_sem);
        pthread_join(sigthr, NULL);
        sem_destroy(&srv->sig_sem);
    }
    if (rc >= 0)
        rc = start_rc;
    if (rc >= 0)
        cz_log_info("stopped");
out:
    for (unsigned i = 0; srv->workers && i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        for (unsigned k = 0; k < 2; k++) {
            if (w->lis[k].fd >= 0)
                close(w->lis[k].fd);
            w->lis[k].fd = -1;
        }
        if (w->wake_fd >= 0)
            close(w->wake_fd);
        w->wake_fd = -1;
    }
    accesslog_close(srv);
    /* What this run set up goes with it, so a server can run again. */
    cz_static_global_free(srv);
    announce(srv, rc < 0 ? rc : 0);
    atomic_store(&srv->stop_requested, false);
    atomic_store(&srv->running, false);
    return rc < 0 ? rc : 0;
}
