/* Connections: the per-connection state machine on a worker's ring.
 * Owns receiving (multishot recv into provided buffers), llhttp parsing into
 * request scratch, limits and timeouts, the ordered output queue and its
 * sends, lingering close and freeing.  Routing and response bodies are the
 * server's (server.c); file bodies are the fs module's (src/fs/send.c).
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>

#include "catzilla/memory.h"
#include "core/log.h"
#include "fs/send.h"
#include "http/http.h"
#include "http/request.h"
#include "http/sendzc.h"

#define LINGER_MS 2000
/* Memory segments are at least this large so a burst of pipelined small
 * responses lands in one buffer and goes out in one send. */
#define SEG_MIN_CAP (8 * 1024 - 32)
#define SEND_MAX_IOV 32

static const char *const state_names[CONN_STATE_MAX] = {"idle", "head", "body", "linger",
                                                        "closing"};

/* Legal transitions; everything else is a bug. */
static bool transition_ok(enum conn_state from, enum conn_state to)
{
    switch (to) {
    case CONN_IDLE:
        return from == CONN_HEAD || from == CONN_BODY || from == CONN_IDLE;
    case CONN_HEAD:
        return from == CONN_IDLE;
    case CONN_BODY:
        return from == CONN_HEAD;
    case CONN_LINGER:
        return from != CONN_CLOSING;
    case CONN_CLOSING:
        return true;
    default:
        return false;
    }
}

static void conn_set_state(struct conn *c, enum conn_state to)
{
    if (!transition_ok(c->state, to)) {
        cz_log_error("connection state %s -> %s is illegal", state_names[c->state],
                     state_names[to]);
        return;
    }
    c->state = to;
}

/* ---------- timers ---------- */

static long timer_duration(const struct worker *w, enum timer_kind k)
{
    const struct cz_config *cfg = &w->srv->cfg;
    switch (k) {
    case TIMER_IDLE:
        return cfg->keepalive_timeout;
    case TIMER_HEAD:
        return cfg->header_timeout;
    case TIMER_BODY:
        return cfg->body_timeout;
    case TIMER_SEND:
        return cfg->send_timeout;
    case TIMER_LINGER:
        return LINGER_MS;
    default:
        return 0;
    }
}

/* Every list holds one kind of deadline with one duration, so appending keeps
 * each list sorted and expiry only ever looks at list heads. */
static void timer_set(struct conn *c, enum timer_kind k)
{
    struct worker *w = c->w;
    list_del(&c->timer_link);
    c->timer_kind = (uint8_t)k;
    if (k == TIMER_NONE)
        return;
    c->deadline_ms = w->now_ms + (uint64_t)timer_duration(w, k);
    list_add_tail(&w->timers[k], &c->timer_link);
}

/* The timer a connection should run when nothing is being sent. */
static void timer_for_state(struct conn *c)
{
    switch (c->state) {
    case CONN_IDLE:
        timer_set(c, TIMER_IDLE);
        break;
    case CONN_HEAD:
        timer_set(c, TIMER_HEAD);
        break;
    case CONN_BODY:
        timer_set(c, TIMER_BODY);
        break;
    case CONN_LINGER:
        timer_set(c, TIMER_LINGER);
        break;
    default:
        timer_set(c, TIMER_NONE);
        break;
    }
}

/* ---------- ring operations ---------- */

static struct io_uring_sqe *conn_sqe(struct conn *c, enum op_tag tag)
{
    struct io_uring_sqe *sqe = cz_ring_sqe(&c->w->ring);
    if (!sqe)
        return NULL;
    io_uring_sqe_set_data64(sqe, cz_ud(c, tag));
    c->inflight++;
    return sqe;
}

static void arm_recv(struct conn *c)
{
    if (c->recv_armed || c->dead || c->state == CONN_CLOSING)
        return;
    struct io_uring_sqe *sqe = conn_sqe(c, OP_RECV);
    if (!sqe) {
        conn_close(c);
        return;
    }
    io_uring_prep_recv_multishot(sqe, (int)c->fixed_fd, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = c->w->bufs.bgid;
    c->recv_armed = true;
}

/* Stop the multishot recv while output is backed up, so TCP flow control
 * pushes back on the client instead of us buffering its pipeline. */
static void cancel_recv(struct conn *c)
{
    if (!c->recv_armed)
        return;
    struct io_uring_sqe *sqe = conn_sqe(c, OP_CANCEL);
    if (sqe)
        io_uring_prep_cancel64(sqe, cz_ud(c, OP_RECV), 0);
}

void conn_accepted(struct worker *w, int fixed_fd)
{
    struct conn *c = catzilla_cache_alloc(sizeof(*c));
    if (!c) {
        /* No memory for state: close the descriptor and carry on. */
        struct io_uring_sqe *sqe = cz_ring_sqe(&w->ring);
        if (sqe) {
            io_uring_prep_close_direct(sqe, (unsigned)fixed_fd);
            io_uring_sqe_set_data64(sqe, 0);
        }
        cz_log_warn("out of memory accepting a connection");
        return;
    }
    memset(c, 0, sizeof(*c));
    c->w = w;
    c->fixed_fd = (unsigned)fixed_fd;
    c->state = CONN_IDLE;
    c->pipe_idx = -1;
    request_parser_init(c);
    list_add_tail(&w->conns, &c->all_link);
    w->nconns++;
    atomic_store_explicit(&w->stats.connections, w->nconns, memory_order_relaxed);
    /* A new connection must send a whole request head within header_timeout;
     * silence until then is closed without a response. */
    timer_set(c, TIMER_HEAD);
    arm_recv(c);
}

/* ---------- output queue ---------- */

static struct outseg *seg_new_mem(size_t need)
{
    size_t cap = need > SEG_MIN_CAP ? need : SEG_MIN_CAP;
    if (cap > UINT32_MAX - 64)
        return NULL;
    struct outseg *s = catzilla_response_alloc(offsetof(struct outseg, u.mem.data) + cap);
    if (!s)
        return NULL;
    s->next = NULL;
    s->kind = SEG_MEM;
    s->sent = 0;
    s->u.mem.len = 0;
    s->u.mem.cap = (uint32_t)cap;
    return s;
}

static void seg_link(struct conn *c, struct outseg *s)
{
    if (c->out_tail)
        c->out_tail->next = s;
    else
        c->out_head = s;
    c->out_tail = s;
}

static void seg_free(struct outseg *s)
{
    switch (s->kind) {
    case SEG_CACHED:
        cz_send_release_cached(s->u.cached.entry);
        break;
    case SEG_FILE:
        cz_send_release_file(s->u.file.fd);
        break;
    default:
        break;
    }
    catzilla_response_free(s);
}

int out_append(struct conn *c, const void *data, size_t len)
{
    struct outseg *t = c->out_tail;
    /* Appending after bytes an in-flight send covers is safe: the segment is
     * never moved, and the send's iovec length was fixed at submission. */
    if (t && t->kind == SEG_MEM && t->u.mem.cap - t->u.mem.len >= len) {
        memcpy(t->u.mem.data + t->u.mem.len, data, len);
        t->u.mem.len += (uint32_t)len;
    } else {
        struct outseg *s = seg_new_mem(len);
        if (!s)
            return -ENOMEM;
        memcpy(s->u.mem.data, data, len);
        s->u.mem.len = (uint32_t)len;
        seg_link(c, s);
    }
    c->out_bytes += len;
    conn_schedule_flush(c);
    return 0;
}

/* A zeroed non-memory segment of that kind. */
static struct outseg *seg_new(enum seg_kind kind)
{
    struct outseg *s = catzilla_response_alloc(sizeof(*s));
    if (s) {
        memset(s, 0, sizeof(*s));
        s->kind = kind;
    }
    return s;
}

/* Link s at the tail; len bytes more are queued. */
static void seg_queue(struct conn *c, struct outseg *s, uint64_t len)
{
    seg_link(c, s);
    c->out_bytes += len;
    conn_schedule_flush(c);
}

int out_append_cached(struct conn *c, struct cz_cache_entry *e, const char *ptr, uint32_t len)
{
    struct outseg *s = seg_new(SEG_CACHED);
    if (!s)
        return -ENOMEM;
    s->u.cached.entry = e;
    s->u.cached.ptr = ptr;
    s->u.cached.len = len;
    seg_queue(c, s, len);
    return 0;
}

int out_append_file(struct conn *c, int fd, uint64_t off, uint64_t len)
{
    struct outseg *s = seg_new(SEG_FILE);
    if (!s)
        return -ENOMEM;
    s->u.file.fd = fd;
    s->u.file.off = off;
    s->u.file.len = len;
    seg_queue(c, s, len);
    return 0;
}

struct outseg *out_append_pending(struct conn *c)
{
    struct outseg *s = seg_new(SEG_PENDING);
    if (s)
        seg_link(c, s);
    return s;
}

/* Replaces a pending placeholder by a memory segment holding data. */
int out_fill_pending(struct conn *c, struct outseg *seg, const void *data, size_t len)
{
    struct outseg *s = seg_new_mem(len);
    struct outseg **pp = &c->out_head;
    while (*pp && *pp != seg)
        pp = &(*pp)->next;
    if (!*pp) {
        catzilla_response_free(s);
        return -ENOENT;
    }
    if (!s) {
        /* Keep order: the placeholder becomes an empty segment, the conn closes. */
        seg->kind = SEG_MEM;
        c->close_after_send = true;
        conn_schedule_flush(c);
        return -ENOMEM;
    }
    memcpy(s->u.mem.data, data, len);
    s->u.mem.len = (uint32_t)len;
    s->next = seg->next;
    *pp = s;
    if (c->out_tail == seg)
        c->out_tail = s;
    catzilla_response_free(seg);
    c->out_bytes += len;
    conn_schedule_flush(c);
    return 0;
}

bool conn_output_space(const struct conn *c)
{
    return c->out_bytes < (size_t)c->w->srv->cfg.max_output_queue;
}

void conn_schedule_flush(struct conn *c)
{
    if (c->on_flush_list)
        return;
    c->on_flush_list = true;
    c->flush_next = c->w->flush_list;
    c->w->flush_list = c;
}

static void free_output(struct conn *c)
{
    struct outseg *s = c->out_head;
    while (s) {
        struct outseg *n = s->next;
        seg_free(s);
        s = n;
    }
    c->out_head = c->out_tail = NULL;
    c->out_bytes = 0;
}

struct send_ctx {
    struct msghdr msg;
    struct iovec iov[SEND_MAX_IOV];
};

static uint32_t seg_remaining(const struct outseg *s, const char **ptr)
{
    switch (s->kind) {
    case SEG_MEM:
        *ptr = s->u.mem.data + s->sent;
        return s->u.mem.len - s->sent;
    case SEG_CACHED:
        *ptr = s->u.cached.ptr + s->sent;
        return s->u.cached.len - s->sent;
    default:
        *ptr = NULL;
        return 0;
    }
}

static void start_linger(struct conn *c);

/* Submit the next send for c if none is in flight. */
static void conn_send(struct conn *c)
{
    if (c->send_busy || c->dead || c->state == CONN_CLOSING)
        return;
    /* Drop fully sent and empty leading memory segments. */
    while (c->out_head) {
        const char *p;
        struct outseg *s = c->out_head;
        if (s->kind == SEG_PENDING || s->kind == SEG_FILE || seg_remaining(s, &p) > 0)
            break;
        c->out_head = s->next;
        if (!c->out_head)
            c->out_tail = NULL;
        seg_free(s);
    }
    struct outseg *s = c->out_head;
    if (!s) {
        if (c->close_after_send)
            start_linger(c);
        else if (c->read_paused)
            conn_resume_pending(c);
        else
            timer_for_state(c);
        return;
    }
    if (s->kind == SEG_PENDING)
        return;
    if (s->kind == SEG_FILE) {
        int rc = cz_send_file_step(c, s);
        if (rc < 0)
            conn_close(c);
        else
            timer_set(c, TIMER_SEND);
        return;
    }

    if (sendzc_try(c)) {
        timer_set(c, TIMER_SEND);
        return;
    }
    /* Gather consecutive in-memory segments: header and cached body (and any
     * pipelined responses behind them) leave in one submission. */
    const char *ptr;
    uint32_t first = seg_remaining(s, &ptr);
    struct outseg *n = s->next;
    if (!n || (n->kind != SEG_MEM && n->kind != SEG_CACHED)) {
        struct io_uring_sqe *sqe = conn_sqe(c, OP_SEND);
        if (!sqe) {
            conn_close(c);
            return;
        }
        io_uring_prep_send(sqe, (int)c->fixed_fd, ptr, first, MSG_NOSIGNAL);
        sqe->flags |= IOSQE_FIXED_FILE;
        c->send_len = first;
    } else {
        struct send_ctx *ctx = catzilla_response_alloc(sizeof(*ctx));
        if (!ctx) {
            conn_close(c);
            return;
        }
        memset(&ctx->msg, 0, sizeof(ctx->msg));
        unsigned niov = 0;
        size_t total = 0;
        for (struct outseg *q = s; q && niov < SEND_MAX_IOV; q = q->next) {
            if (q->kind != SEG_MEM && q->kind != SEG_CACHED)
                break;
            uint32_t len = seg_remaining(q, &ptr);
            if (!len)
                continue;
            ctx->iov[niov].iov_base = (void *)ptr;
            ctx->iov[niov].iov_len = len;
            niov++;
            total += len;
        }
        ctx->msg.msg_iov = ctx->iov;
        ctx->msg.msg_iovlen = niov;
        struct io_uring_sqe *sqe = conn_sqe(c, OP_SEND);
        if (!sqe) {
            catzilla_response_free(ctx);
            conn_close(c);
            return;
        }
        io_uring_prep_sendmsg(sqe, (int)c->fixed_fd, &ctx->msg, MSG_NOSIGNAL);
        sqe->flags |= IOSQE_FIXED_FILE;
        c->send_ctx = ctx;
        c->send_len = (uint32_t)(total > UINT32_MAX ? UINT32_MAX : total);
    }
    c->send_busy = true;
    timer_set(c, TIMER_SEND);
}

void conn_output_advance(struct conn *c, size_t n)
{
    c->out_bytes -= n < c->out_bytes ? n : c->out_bytes;
    while (n && c->out_head) {
        struct outseg *s = c->out_head;
        uint64_t len = s->kind == SEG_MEM      ? s->u.mem.len
                       : s->kind == SEG_CACHED ? s->u.cached.len
                       : s->kind == SEG_FILE   ? s->u.file.len
                                               : 0;
        uint64_t left = len - s->sent;
        if (n < left) {
            s->sent += (uint32_t)n;
            if (s->kind == SEG_FILE) {
                s->u.file.off += n;
                s->u.file.len -= n;
                s->sent = 0;
            }
            return;
        }
        n -= left;
        c->out_head = s->next;
        if (!c->out_head)
            c->out_tail = NULL;
        seg_free(s);
    }
}

void conn_on_send(struct conn *c, struct io_uring_cqe *cqe)
{
    if (c->zc_linked) {
        /* The header half of a header + SEND_ZC pair: the body's CQE follows
         * (cancelled if this one was short) and continues the connection. */
        c->zc_linked = false;
        c->inflight--;
        if (c->state == CONN_CLOSING) {
            conn_on_op_done(c, OP_NONE, NULL);
            return;
        }
        if (cqe->res < 0)
            c->dead = true;
        else
            conn_output_advance(c, (size_t)cqe->res);
        return;
    }
    c->inflight--;
    c->send_busy = false;
    if (c->send_ctx) {
        catzilla_response_free(c->send_ctx);
        c->send_ctx = NULL;
    }
    if (c->state == CONN_CLOSING) {
        conn_on_op_done(c, OP_NONE, NULL);
        return;
    }
    if (cqe->res < 0) {
        if (cqe->res != -EPIPE && cqe->res != -ECONNRESET && cqe->res != -ECANCELED)
            cz_log_debug("send: %s", strerror(-cqe->res));
        c->dead = true;
        conn_close(c);
        return;
    }
    conn_output_advance(c, (size_t)cqe->res);
    conn_send(c);
}

void conn_flush_all(struct worker *w)
{
    while (w->flush_list) {
        struct conn *c = w->flush_list;
        w->flush_list = c->flush_next;
        c->on_flush_list = false;
        c->flush_next = NULL;
        if (c->state != CONN_CLOSING)
            conn_send(c);
    }
}

/* ---------- receiving and parsing ---------- */

static bool hold_bytes(struct conn *c, const char *data, size_t len)
{
    size_t have = c->held_len - c->held_off;
    /* Bytes the kernel handed over before the recv cancel took effect: at
     * most one turn's worth of provided buffers (they are given back only at
     * the end of a turn).  A smaller limit cut off fast pipelining clients. */
    const struct cz_config *cfg = &c->w->srv->cfg;
    size_t limit = (size_t)cfg->max_header_size +
                   (size_t)cfg->recv_buffers * (size_t)cfg->recv_buffer_size;
    if (have + len > limit) {
        /* A client that keeps sending while we cannot answer: stop buffering. */
        return false;
    }
    char *n = catzilla_request_alloc(have + len ? have + len : 1);
    if (!n)
        return false;
    if (have)
        memcpy(n, c->held + c->held_off, have);
    memcpy(n + have, data, len);
    catzilla_request_free(c->held);
    c->held = n;
    c->held_len = (uint32_t)(have + len);
    c->held_off = 0;
    return true;
}

/* The client sent more than we hold while its answers are backed up: stop
 * reading for good, deliver what is queued, then close.  Closing at once
 * would reset the connection and could destroy those queued answers; a
 * pipelining client retries the rest (RFC 9112, 9.3.2). */
static void conn_stop_reading(struct conn *c)
{
    c->close_after_send = true;
    conn_schedule_flush(c);
}

/* Feed bytes to the parser; on pause keep the rest for later. */
static void conn_feed(struct conn *c, const char *data, size_t len)
{
    size_t used = request_parse(c, data, len);
    if (c->read_paused && !c->close_after_send) {
        cancel_recv(c);
        if (used < len && !hold_bytes(c, data + used, len - used))
            conn_stop_reading(c);
    }
}

void conn_resume_pending(struct conn *c)
{
    c->read_paused = false;
    request_parser_resume(c);
    while (c->held && c->held_off < c->held_len && !c->read_paused && !c->close_after_send &&
           c->state != CONN_CLOSING) {
        /* Feed a copy-free view; request_parse copies what it keeps. */
        char *buf = c->held;
        uint32_t off = c->held_off, len = c->held_len - off;
        c->held = NULL;
        c->held_len = c->held_off = 0;
        conn_feed(c, buf + off, len);
        catzilla_request_free(buf);
    }
    if (c->held && c->held_off >= c->held_len) {
        catzilla_request_free(c->held);
        c->held = NULL;
        c->held_len = c->held_off = 0;
    }
    if (!c->read_paused && !c->close_after_send && !c->eof)
        arm_recv(c);
    if (!c->out_head)
        timer_for_state(c);
}

static void conn_on_eof(struct conn *c)
{
    c->eof = true;
    if (c->state == CONN_LINGER || (!c->out_head && !c->held)) {
        conn_close(c);
        return;
    }
    /* Half-closed: answer what was fully received, then close. */
    if (c->state != CONN_IDLE)
        request_abort(c);
    c->close_after_send = true;
    conn_schedule_flush(c);
}

void conn_on_recv(struct conn *c, struct io_uring_cqe *cqe)
{
    struct worker *w = c->w;
    int res = cqe->res;
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        c->recv_armed = false;
        c->inflight--;
    }
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && c->state != CONN_CLOSING) {
            const char *data = (const char *)cz_bufring_addr(&w->bufs, bid);
            if (c->state == CONN_LINGER || c->close_after_send) {
                /* Draining before close: discard. */
            } else if (c->read_paused) {
                if (!hold_bytes(c, data, (size_t)res))
                    conn_stop_reading(c);
            } else {
                conn_feed(c, data, (size_t)res);
            }
        }
        /* Parsed bytes were copied into request scratch: the buffer goes back now. */
        cz_bufring_recycle(&w->bufs, bid, &w->bufs_pending);
    }
    if (c->state == CONN_CLOSING) {
        conn_on_op_done(c, OP_NONE, NULL);
        return;
    }
    if (res == 0) {
        conn_on_eof(c);
        return;
    }
    if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
        if (res != -ECONNRESET)
            cz_log_debug("recv: %s", strerror(-res));
        c->dead = true;
        conn_close(c);
        return;
    }
    /* ENOBUFS ends a multishot recv: the buffers come back at the end of this
     * loop turn, so re-arming now is safe.  A missing re-arm would silently
     * kill the connection. */
    if (!c->recv_armed && !c->read_paused && !c->eof)
        arm_recv(c);
}

/* ---------- closing ---------- */

static void start_linger(struct conn *c)
{
    if (c->state == CONN_CLOSING || c->state == CONN_LINGER)
        return;
    if (c->eof || c->dead) {
        conn_close(c);
        return;
    }
    /* Shut our side, then read and discard until the client closes: closing
     * with unread input would send RST and could destroy the response. */
    request_abort(c);
    conn_set_state(c, CONN_LINGER);
    struct io_uring_sqe *sqe = conn_sqe(c, OP_SHUTDOWN);
    if (!sqe) {
        conn_close(c);
        return;
    }
    io_uring_prep_shutdown(sqe, (int)c->fixed_fd, SHUT_WR);
    sqe->flags |= IOSQE_FIXED_FILE;
    timer_set(c, TIMER_LINGER);
    arm_recv(c);
}

/* c->fixed_fd once close_direct is submitted: the slot is no longer ours. */
#define SLOT_CLOSED UINT_MAX

static void close_slot(struct conn *c)
{
    struct io_uring_sqe *sqe = conn_sqe(c, OP_CLOSE);
    if (sqe)
        io_uring_prep_close_direct(sqe, c->fixed_fd);
    c->fixed_fd = SLOT_CLOSED;
}

void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    /* An operation that has not started yet looks its fixed file up only
     * when it starts: a shutdown (the kernel always runs it in io-wq) and the
     * socket half of a linked splice.  Cancel-by-fd cannot catch those, and
     * once the slot is closed the next accept may reuse it: they would hit
     * that new connection.  So with either possibly in flight, the slot is
     * closed only when nothing is in flight any more (conn_on_op_done). */
    bool defer_slot = c->state == CONN_LINGER || c->pipe_idx >= 0;
    c->state = CONN_CLOSING;
    timer_set(c, TIMER_NONE);
    request_abort(c);
    /* Cancel everything still pending on the socket, then close it; the
     * connection is freed once every operation has completed. */
    struct io_uring_sqe *sqe = conn_sqe(c, OP_CANCEL);
    if (sqe) {
        io_uring_prep_cancel_fd(sqe, (int)c->fixed_fd,
                                IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
    }
    if (!defer_slot)
        close_slot(c);
    cz_send_abort(c);
    if (c->inflight == 0)
        conn_on_op_done(c, OP_NONE, NULL);
}

void conn_on_op_done(struct conn *c, enum op_tag tag, struct io_uring_cqe *cqe)
{
    if (tag != OP_NONE)
        c->inflight--;
    if (tag == OP_SHUTDOWN && cqe && cqe->res < 0 && c->state == CONN_LINGER)
        conn_close(c);
    if (c->state != CONN_CLOSING || c->inflight != 0)
        return;
    if (c->fixed_fd != SLOT_CLOSED) {
        close_slot(c); /* deferred by conn_close: nothing can name the slot now */
        if (c->inflight)
            return;
    }
    struct worker *w = c->w;
    list_del(&c->all_link);
    list_del(&c->timer_link);
    /* Freed at the end of the loop turn: later CQEs in this batch may still
     * name it (they cannot, once inflight is 0, but the batch is cheap to keep safe). */
    c->flush_next = w->free_list;
    w->free_list = c;
}

void conn_free_closed(struct worker *w)
{
    while (w->free_list) {
        struct conn *c = w->free_list;
        w->free_list = c->flush_next;
        if (c->on_flush_list) {
            /* Unlink from the flush list before freeing. */
            struct conn **pp = &w->flush_list;
            while (*pp && *pp != c)
                pp = &(*pp)->flush_next;
            if (*pp)
                *pp = c->flush_next;
        }
        free_output(c);
        request_free(c);
        catzilla_request_free(c->held);
        catzilla_cache_free(c);
        w->nconns--;
        atomic_store_explicit(&w->stats.connections, w->nconns, memory_order_relaxed);
    }
}

/* Close up to max idle keep-alive connections, oldest first. */
void conn_close_idle(struct worker *w, unsigned max)
{
    struct list_node *h = &w->timers[TIMER_IDLE];
    while (max-- && !list_empty(h)) {
        struct conn *c = container_of(h->next, struct conn, timer_link);
        conn_close(c);
    }
}

void conn_timers_expire(struct worker *w)
{
    for (int k = TIMER_IDLE; k < TIMER_MAX; k++) {
        struct list_node *h = &w->timers[k];
        while (!list_empty(h)) {
            struct conn *c = container_of(h->next, struct conn, timer_link);
            if (c->deadline_ms > w->now_ms)
                break;
            timer_set(c, TIMER_NONE);
            if (k == TIMER_HEAD && c->request_started && !c->close_after_send && !c->out_head) {
                response_error(c, 408, false);
            } else if (k == TIMER_BODY && !c->close_after_send && !c->out_head) {
                response_error(c, 408, false);
            } else {
                conn_close(c);
            }
        }
    }
}
