/* Deferred and streamed answers, timers and posted calls (see deferred.h).
 *
 * A deferred answer and a stream are one object (struct cz_deferred; a
 * cz_stream is the same object under the other handle type).  It holds a
 * placeholder in its connection's output queue: composing into it puts
 * bytes where the request's answer belongs, ahead of pipelined answers.  A
 * stream emits each chunk in front of its placeholder, which stays until
 * the end.  Objects come from the worker's task arena. */
#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catzilla/catzilla.h"
#include "catzilla/memory.h"
#include "core/log.h"
#include "http/deferred.h"
#include "http/http.h"

struct cz_deferred {
    struct cz_deferred *next, *prev; /* the worker's open answers */
    struct cz_deferred *ready_next;  /* the worker's ready list (streams) */
    struct worker *w;
    struct conn *c;     /* NULL once abandoned at the shutdown deadline */
    struct outseg *seg; /* the placeholder */
    bool stream;        /* the head is out; chunks follow */
    bool chunked;       /* framed as chunks (not HTTP/1.0) */
    bool sized;         /* Content-Length: remaining bytes to come */
    unsigned long long remaining;
    bool in_ready;
    void (*on_writable)(cz_stream *s, void *arg);
    void *writable_arg;
    struct cz_response res; /* what cz_deferred_response fills */
};

struct cz_stream {
    struct cz_deferred d;
};

struct cz_timer {
    alignas(16) struct worker *w;
    struct cz_timer *next, *prev; /* the worker's timers */
    struct __kernel_timespec ts;
    long repeat_ms;
    cz_timer_fn fn;
    void *arg;
    bool armed;   /* a timeout is in the ring */
    bool running; /* fn is on the stack */
    bool cancelled;
};

struct post {
    struct post *next;
    void (*fn)(void *arg);
    void *arg;
};

static __thread struct worker *tls_worker;

/* ---------- the worker's lists ---------- */

void deferred_thread_enter(struct worker *w)
{
    tls_worker = w;
    pthread_mutex_lock(&w->srv->post_lock);
    w->dw.accepting_posts = true;
    pthread_mutex_unlock(&w->srv->post_lock);
}

static void open_link(struct deferred_worker *dw, struct cz_deferred *d)
{
    d->prev = NULL;
    d->next = dw->open;
    if (dw->open)
        dw->open->prev = d;
    dw->open = d;
}

static void open_unlink(struct deferred_worker *dw, struct cz_deferred *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        dw->open = d->next;
    if (d->next)
        d->next->prev = d->prev;
}

static void timer_unlink(struct deferred_worker *dw, struct cz_timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        dw->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

static void ready_remove(struct deferred_worker *dw, struct cz_deferred *d)
{
    for (struct cz_deferred **pp = &dw->ready; *pp; pp = &(*pp)->ready_next) {
        if (*pp == d) {
            *pp = d->ready_next;
            break;
        }
    }
    d->in_ready = false;
}

static void ready_add(struct cz_deferred *d)
{
    if (d->in_ready || !d->on_writable)
        return;
    d->in_ready = true;
    d->ready_next = d->w->dw.ready;
    d->w->dw.ready = d;
}

/* Free d; its placeholder is already ended. */
static void release(struct cz_deferred *d)
{
    struct deferred_worker *dw = &d->w->dw;
    open_unlink(dw, d);
    if (d->in_ready)
        ready_remove(dw, d);
    if (d->c && d->c->stream == d)
        d->c->stream = NULL;
    response_release(&d->res);
    catzilla_task_free(d);
}

/* End d's placeholder: what was composed since begin takes its place (or
 * nothing, when nothing was). */
static void end_placeholder(struct cz_deferred *d)
{
    if (d->c) {
        output_defer_end(d->c, d->seg);
        d->seg = NULL;
    }
}

void deferred_worker_free(struct worker *w)
{
    struct deferred_worker *dw = &w->dw;
    pthread_mutex_lock(&w->srv->post_lock);
    dw->accepting_posts = false;
    struct post *p = dw->posts;
    dw->posts = dw->posts_tail = NULL;
    pthread_mutex_unlock(&w->srv->post_lock);
    while (p) {
        struct post *n = p->next;
        free(p);
        p = n;
    }
    /* The run is over: answers never finished are dropped with it. */
    while (dw->open) {
        struct cz_deferred *d = dw->open;
        d->c = NULL; /* its connection is gone with the worker */
        release(d);
    }
    while (dw->timers) {
        struct cz_timer *t = dw->timers;
        timer_unlink(dw, t);
        catzilla_task_free(t);
    }
    tls_worker = NULL;
}

bool deferred_pending(const struct worker *w)
{
    return w->dw.ready != NULL || w->dw.posts != NULL;
}

void deferred_run(struct worker *w)
{
    struct deferred_worker *dw = &w->dw;
    if (dw->posts) { /* read unlocked: a post that races is caught next turn (its wake) */
        pthread_mutex_lock(&w->srv->post_lock);
        struct post *p = dw->posts;
        dw->posts = dw->posts_tail = NULL;
        pthread_mutex_unlock(&w->srv->post_lock);
        while (p) {
            struct post *n = p->next;
            p->fn(p->arg);
            free(p);
            p = n;
        }
    }
    /* Take the list first: a callback may end its stream or ask again. */
    struct cz_deferred *d = dw->ready;
    dw->ready = NULL;
    while (d) {
        struct cz_deferred *n = d->ready_next;
        d->in_ready = false;
        void (*fn)(cz_stream *, void *) = d->on_writable;
        d->on_writable = NULL;
        if (fn)
            fn((cz_stream *)d, d->writable_arg);
        d = n;
    }
}

void deferred_abandon(struct worker *w)
{
    for (struct cz_deferred *d = w->dw.open; d; d = d->next) {
        if (!d->c)
            continue;
        struct conn *c = d->c;
        output_defer_begin(c, d->seg);
        end_placeholder(d); /* c is closing: nothing goes out */
        if (c->stream == d)
            c->stream = NULL;
        d->c = NULL;
        ready_add(d); /* a stream waiting to write learns it is gone */
    }
}

void deferred_conn_writable(struct conn *c)
{
    if (c->stream)
        ready_add(c->stream);
}

/* ---------- deferred answers ---------- */

static struct cz_deferred *deferred_new(cz_response *res)
{
    struct conn *c = res->conn;
    struct cz_deferred *d = catzilla_task_alloc(sizeof(*d));
    if (!d) {
        errno = ENOMEM;
        return NULL;
    }
    memset(d, 0, offsetof(struct cz_deferred, res));
    d->seg = response_defer(res);
    if (!d->seg) {
        catzilla_task_free(d);
        errno = ENOMEM;
        return NULL;
    }
    d->w = c->w;
    d->c = c;
    response_init(&d->res, c, 200, res->head_only);
    d->res.close = res->close;
    d->res.http10 = res->http10;
    d->res.owner = d;
    open_link(&c->w->dw, d);
    return d;
}

cz_deferred *cz_response_defer(cz_response *res)
{
    if (!res || res->deferred || res->owner || !res->conn) {
        errno = EINVAL;
        return NULL;
    }
    return deferred_new(res);
}

cz_response *cz_deferred_response(cz_deferred *d)
{
    return &d->res;
}

bool cz_deferred_gone(const cz_deferred *d)
{
    return !d->c || conn_closing(d->c);
}

int cz_deferred_finish(cz_deferred *d)
{
    if (d->stream)
        return cz_stream_end((cz_stream *)d);
    int rc = -EPIPE;
    if (!cz_deferred_gone(d)) {
        struct conn *c = d->c;
        server_after_hooks(c->w->srv, &d->res); /* application code: before composing */
        output_defer_begin(c, d->seg);
        if (d->res.failed) {
            rc = -ENOMEM;
            response_text(c, 503, d->res.head_only, d->res.close, NULL);
        } else if ((rc = response_finish(&d->res)) < 0) {
            conn_close(c);
        }
    }
    end_placeholder(d);
    release(d);
    return rc;
}

/* ---------- streams ---------- */

static cz_stream *stream_start(cz_response *res, bool sized, unsigned long long length);

cz_stream *cz_response_stream(cz_response *res)
{
    return stream_start(res, false, 0);
}

cz_stream *cz_response_stream_sized(cz_response *res, unsigned long long length)
{
    return stream_start(res, true, length);
}

static cz_stream *stream_start(cz_response *res, bool sized, unsigned long long length)
{
    if (!res || !res->conn || (res->deferred && !res->owner) ||
        !response_status_has_body(res->status) || res->failed) {
        errno = res && res->failed ? ENOMEM : EINVAL;
        return NULL;
    }
    struct cz_deferred *d = res->owner;
    if (d && d->stream) {
        errno = EINVAL;
        return NULL;
    }
    /* Before deferring: a handler's request is still there for the hooks. */
    server_after_hooks(res->conn->w->srv, res);
    if (!d && !(d = deferred_new(res)))
        return NULL;
    d->stream = true;
    d->sized = sized;
    d->remaining = length;
    if (cz_deferred_gone(d))
        return (cz_stream *)d; /* writes say -EPIPE */
    struct conn *c = d->c;
    /* HTTP/1.0 has no chunks: without a length the body runs to the
     * connection's end. */
    d->chunked = !sized && !res->http10;
    bool close = res->close || (res->http10 && !sized);
    struct head_spec h = {
        .status = res->status,
        .close = close,
        .keep_alive = res->http10 && !close,
        .chunked = d->chunked,
        .content_length = sized ? (int64_t)length : -1,
        .extra = res->hdr,
        .extra_len = res->hdr_len,
    };
    output_defer_begin(c, d->seg);
    int rc = response_head(c, &h);
    output_defer_emit(c, d->seg);
    if (close)
        c->close_after_send = true;
    c->stream = d;
    if (rc < 0)
        conn_close(c);
    else if (res->body_len > 0) /* a failure closes the connection: later writes say so */
        (void)cz_stream_write((cz_stream *)d, res->body, res->body_len);
    return (cz_stream *)d;
}

bool cz_stream_gone(const cz_stream *s)
{
    return cz_deferred_gone(&s->d);
}

int cz_stream_write(cz_stream *s, const void *data, size_t len)
{
    struct cz_deferred *d = &s->d;
    if (cz_deferred_gone(d))
        return -EPIPE;
    struct conn *c = d->c;
    if (d->sized) {
        if (len > d->remaining)
            return -EINVAL;
        d->remaining -= len;
    }
    /* A chunk of 0 bytes would end the body; HEAD has none. */
    if (len == 0 || d->res.head_only)
        return output_has_space(c) ? 0 : 1;
    char size[20];
    size_t sl = d->chunked ? (size_t)snprintf(size, sizeof(size), "%zx\r\n", len) : 0;
    size_t trail = d->chunked ? 2 : 0;
    output_defer_begin(c, d->seg);
    /* One reservation: a chunk is queued whole or not at all. */
    char *p = output_reserve(c, sl + len + trail);
    if (p) {
        memcpy(p, size, sl);
        memcpy(p + sl, data, len);
        memcpy(p + sl + len, "\r\n", trail);
        reqrec_add_bytes(c->w, len);
    } else {
        conn_close(c); /* the body is cut: the stream can only end */
    }
    output_defer_emit(c, d->seg);
    if (!p)
        return -ENOMEM;
    return output_has_space(c) ? 0 : 1;
}

void cz_stream_on_writable(cz_stream *s, void (*fn)(cz_stream *s, void *arg), void *arg)
{
    struct cz_deferred *d = &s->d;
    d->on_writable = fn;
    d->writable_arg = arg;
    if (!fn) {
        if (d->in_ready)
            ready_remove(&d->w->dw, d);
        return;
    }
    if (cz_deferred_gone(d) || output_below_half(d->c))
        ready_add(d);
    else
        output_want_writable(d->c);
}

int cz_stream_end(cz_stream *s)
{
    struct cz_deferred *d = &s->d;
    int rc = -EPIPE;
    if (d->c) {
        struct conn *c = d->c;
        output_defer_begin(c, d->seg);
        if (!conn_closing(c)) {
            rc = 0;
            if (d->chunked && !d->res.head_only && output_append(c, "0\r\n\r\n", 5) < 0) {
                rc = -ENOMEM;
                conn_close(c);
            } else if (d->sized && d->remaining > 0 && !d->res.head_only) {
                /* Short of its Content-Length: only a close tells the client. */
                c->close_after_send = true;
                rc = -EPIPE;
            }
        }
        end_placeholder(d);
    }
    release(d);
    return rc;
}

/* ---------- timers ---------- */

static bool timer_arm(struct cz_timer *t, long ms)
{
    struct io_uring_sqe *sqe = cz_ring_sqe(&t->w->ring);
    if (!sqe)
        return false;
    t->ts.tv_sec = ms / 1000;
    t->ts.tv_nsec = (ms % 1000) * 1000000L;
    io_uring_prep_timeout(sqe, &t->ts, 0, 0);
    /* OP_TICK: the worker's tick has the worker as its pointer, a timer itself. */
    io_uring_sqe_set_data64(sqe, cz_ud(t, OP_TICK));
    t->armed = true;
    return true;
}

static void timer_free(struct cz_timer *t)
{
    timer_unlink(&t->w->dw, t);
    catzilla_task_free(t);
}

cz_timer *cz_timer_start(long ms, long repeat_ms, cz_timer_fn fn, void *arg)
{
    struct worker *w = tls_worker;
    if (!w) {
        errno = EPERM;
        return NULL;
    }
    if (ms < 0 || repeat_ms < 0 || !fn) {
        errno = EINVAL;
        return NULL;
    }
    struct cz_timer *t = catzilla_task_alloc(sizeof(*t));
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    memset(t, 0, sizeof(*t));
    t->w = w;
    t->repeat_ms = repeat_ms;
    t->fn = fn;
    t->arg = arg;
    t->next = w->dw.timers;
    if (t->next)
        t->next->prev = t;
    w->dw.timers = t;
    if (!timer_arm(t, ms)) {
        timer_free(t);
        errno = ENOMEM;
        return NULL;
    }
    return t;
}

void cz_timer_cancel(cz_timer *t)
{
    if (!t || t->cancelled)
        return;
    t->cancelled = true;
    if (t->running || !t->armed)
        return; /* freed when fn returns */
    struct io_uring_sqe *sqe = cz_ring_sqe(&t->w->ring);
    if (sqe) {
        /* Its timeout completes with -ECANCELED; the remove's own
         * completion (user_data 0) is ignored. */
        io_uring_prep_timeout_remove(sqe, cz_ud(t, OP_TICK), 0);
        io_uring_sqe_set_data64(sqe, 0);
    }
}

void deferred_on_timer(struct worker *w, struct cz_timer *t, const struct io_uring_cqe *cqe)
{
    (void)w;
    (void)cqe;
    t->armed = false;
    if (t->cancelled) {
        timer_free(t);
        return;
    }
    t->running = true;
    t->fn(t->arg);
    t->running = false;
    if (t->cancelled || t->repeat_ms == 0 || !timer_arm(t, t->repeat_ms))
        timer_free(t);
}

/* ---------- posted calls ---------- */

int cz_server_post(cz_server *srv, unsigned worker, void (*fn)(void *arg), void *arg)
{
    if (!srv || !fn)
        return -EINVAL;
    struct post *p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->next = NULL;
    p->fn = fn;
    p->arg = arg;
    pthread_mutex_lock(&srv->post_lock);
    struct worker *w = worker < srv->nworkers && srv->workers ? &srv->workers[worker] : NULL;
    if (!w || !w->dw.accepting_posts) {
        pthread_mutex_unlock(&srv->post_lock);
        free(p);
        return w || worker < server_worker_count(&srv->cfg) ? -ESHUTDOWN : -EINVAL;
    }
    if (w->dw.posts_tail)
        w->dw.posts_tail->next = p;
    else
        w->dw.posts = p;
    w->dw.posts_tail = p;
    uint64_t one = 1;
    ssize_t n = write(w->wake_fd, &one, sizeof(one));
    (void)n;
    pthread_mutex_unlock(&srv->post_lock);
    return 0;
}
