/* Connections: the per-connection state machine on a worker's ring.
 * Owns the connection's state and timers (each changed through one checked
 * function), receiving (multishot recv into provided buffers), feeding the
 * parser, back-pressure pauses, half-close, lingering close, counting the
 * operations in flight, and freeing.  How bytes leave is output.c's;
 * parsing is request.c's; what to answer is the server's.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "catzilla/memory.h"
#include "core/log.h"
#include "http/http.h"
#include "http/output.h"
#include "http/request.h"

#define LINGER_MS 2000

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

void conn_set_state(struct conn *c, enum conn_state to)
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
        /* Fires twice per timeout: see output_send_timer. */
        return cfg->send_timeout > 1 ? cfg->send_timeout / 2 : 1;
    case TIMER_LINGER:
        return LINGER_MS;
    default:
        return 0;
    }
}

/* Every list holds one kind of deadline with one duration, so appending keeps
 * each list sorted and expiry only ever looks at list heads. */
void conn_set_timer(struct conn *c, enum timer_kind k)
{
    struct worker *w = c->w;
    /* A closing connection is freed without looking at the timer lists
     * again: it must never be put back on one. */
    if (c->state == CONN_CLOSING && k != TIMER_NONE)
        k = TIMER_NONE;
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
        conn_set_timer(c, TIMER_IDLE);
        break;
    case CONN_HEAD:
        conn_set_timer(c, TIMER_HEAD);
        break;
    case CONN_BODY:
        conn_set_timer(c, TIMER_BODY);
        break;
    case CONN_LINGER:
        conn_set_timer(c, TIMER_LINGER);
        break;
    default:
        conn_set_timer(c, TIMER_NONE);
        break;
    }
}

/* ---------- ring operations ---------- */

struct io_uring_sqe *conn_sqe(struct conn *c, enum op_tag tag)
{
    struct io_uring_sqe *sqe = cz_ring_sqe(&c->w->ring);
    if (!sqe)
        return NULL;
    io_uring_sqe_set_data64(sqe, cz_ud(c, tag));
    c->inflight++;
    return sqe;
}

void conn_hold(struct conn *c)
{
    c->inflight++;
}

void conn_release(struct conn *c)
{
    conn_op_complete(c);
}

bool conn_closing(const struct conn *c)
{
    return c->state == CONN_CLOSING;
}

void conn_fail(struct conn *c)
{
    c->dead = true;
    conn_close(c);
}

static void recv_wait_buffers(struct conn *c);

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

static void set_peer(struct cz_peer *p, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        p->family = AF_INET;
        p->port = ntohs(in4->sin_port);
        memcpy(p->addr, &in4->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        p->family = AF_INET6;
        p->port = ntohs(in6->sin6_port);
        memcpy(p->addr, &in6->sin6_addr, 16);
    }
}

void conn_accepted(struct worker *w, int fixed_fd, bool admin, const struct sockaddr *addr)
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
    c->admin = admin;
    if (addr)
        set_peer(&c->peer, addr);
    list_add_tail(&w->conns, &c->all_link);
    w->nconns++;
    atomic_store_explicit(&w->stats.connections, w->nconns, memory_order_relaxed);
    /* A new connection must send a whole request head within header_timeout;
     * silence until then is closed without a response. */
    conn_set_timer(c, TIMER_HEAD);
    arm_recv(c);
}

/* ---------- receiving and parsing ---------- */

static bool hold_bytes(struct conn *c, const char *data, size_t len)
{
    if (!c->rx)
        return false; /* reading pauses only mid-parse, with the state there */
    size_t have = c->rx->held_len - c->rx->held_off;
    /* Bytes the kernel handed over before the recv cancel took effect: at
     * most one turn's worth of provided buffers (they are given back only at
     * the end of a turn).  A smaller limit cut off fast pipelining clients. */
    const struct cz_config *cfg = &c->w->srv->cfg;
    size_t limit =
        (size_t)cfg->max_header_size + (size_t)cfg->recv_buffers * (size_t)cfg->recv_buffer_size;
    if (have + len > limit) {
        /* A client that keeps sending while we cannot answer: stop buffering. */
        return false;
    }
    if (c->rx->held_off && c->rx->held_len + len > c->rx->held_cap) {
        /* Slide the unread bytes to the front before growing. */
        memmove(c->rx->held, c->rx->held + c->rx->held_off, have);
        c->rx->held_len = (uint32_t)have;
        c->rx->held_off = 0;
    }
    if (c->rx->held_len + len > c->rx->held_cap) {
        /* Geometric growth: holding n bytes in pieces costs O(n), not O(n^2). */
        size_t cap = c->rx->held_cap ? c->rx->held_cap : 4096;
        while (cap < c->rx->held_len + len)
            cap *= 2;
        char *n = catzilla_request_realloc(c->rx->held, cap);
        if (!n)
            return false;
        c->rx->held = n;
        c->rx->held_cap = (uint32_t)cap;
    }
    memcpy(c->rx->held + c->rx->held_len, data, len);
    c->rx->held_len += (uint32_t)len;
    return true;
}

static void held_free(struct conn *c)
{
    if (!c->rx)
        return;
    catzilla_request_free(c->rx->held);
    c->rx->held = NULL;
    c->rx->held_len = c->rx->held_off = c->rx->held_cap = 0;
}

/* The client sent more than we hold while its answers are backed up: stop
 * reading for good, deliver what is queued, then close.  Closing at once
 * would reset the connection and could destroy those queued answers; a
 * pipelining client retries the rest (RFC 9112, 9.3.2). */
static void conn_stop_reading(struct conn *c)
{
    c->close_after_send = true;
    output_schedule(c);
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

static void start_linger(struct conn *c);

/* The peer will send nothing more and every complete request it sent has
 * been dispatched: drop a partial one, answer the rest, then close. */
static void finish_eof(struct conn *c)
{
    if (c->state == CONN_HEAD || c->state == CONN_BODY) {
        request_abort(c);
        conn_set_state(c, CONN_IDLE);
    }
    if (output_idle(c)) {
        conn_close(c);
        return;
    }
    c->close_after_send = true;
    output_schedule(c);
}

void conn_resume_reading(struct conn *c)
{
    c->read_paused = false;
    request_parser_resume(c);
    /* Parse what arrived while paused, in place: request_parse copies what it
     * keeps, and a new pause stops with the unparsed rest still held. */
    while (c->rx && c->rx->held_off < c->rx->held_len && !c->read_paused && !c->close_after_send &&
           c->state != CONN_CLOSING) {
        uint32_t off = c->rx->held_off, len = c->rx->held_len - off;
        size_t used = request_parse(c, c->rx->held + off, len);
        c->rx->held_off += (uint32_t)used;
        if (c->read_paused && !c->close_after_send)
            cancel_recv(c);
        if (used == 0 && !c->read_paused)
            break;
    }
    if (c->rx && (c->rx->held_off >= c->rx->held_len || c->close_after_send))
        held_free(c);
    if (c->state == CONN_CLOSING || c->read_paused)
        return;
    if (c->eof && !c->close_after_send) {
        finish_eof(c);
        return;
    }
    if (!c->close_after_send)
        arm_recv(c);
    if (output_idle(c))
        timer_for_state(c);
}

void conn_output_drained(struct conn *c)
{
    if (c->close_after_send)
        start_linger(c);
    else if (c->read_paused) {
        /* A body waiting for memory budget resumes when it is admitted. */
        if (!c->body_wait)
            conn_resume_reading(c);
    } else if (c->eof)
        finish_eof(c);
    else
        timer_for_state(c);
}

static void conn_on_eof(struct conn *c)
{
    c->eof = true;
    if (c->state == CONN_LINGER) {
        conn_close(c);
        return;
    }
    /* Half-closed: every complete request already received is answered,
     * including those held while reading was paused (the resume does it). */
    if (!c->read_paused)
        finish_eof(c);
}

void conn_on_recv(struct conn *c, struct io_uring_cqe *cqe)
{
    struct worker *w = c->w;
    int res = cqe->res;
    bool last = !(cqe->flags & IORING_CQE_F_MORE);
    if (last)
        c->recv_armed = false;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0)
            w->metrics.rx_bytes += (uint64_t)res;
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
        if (last)
            conn_op_complete(c);
        return;
    }
    if (last)
        conn_op_complete(c);
    if (res == 0) {
        conn_on_eof(c);
        return;
    }
    if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
        if (res != -ECONNRESET)
            cz_log_debug("recv: %s", strerror(-res));
        conn_fail(c);
        return;
    }
    /* A multishot recv that ended must be re-armed: a missing re-arm would
     * silently kill the connection.  One that ran out of buffers waits its
     * turn for them (recv_wait_buffers). */
    if (!c->recv_armed && !c->read_paused && !c->eof && !c->recv_waiting) {
        if (res == -ENOBUFS)
            recv_wait_buffers(c);
        else
            arm_recv(c);
    }
}

/* Out of receive buffers: ENOBUFS ended c's multishot recv.  Re-armed at
 * once, it would fail again the moment it is submitted while its bytes are
 * pending and the ring is still empty; with thousands of connections in that
 * state a worker spends its turns re-arming them (measured: 10,000 keep-alive
 * connections on 32 buffers fell to 4k req/s, 339 submissions per request).
 * So c waits in the worker's queue, holding a reference, and conn_recv_resume
 * re-arms the oldest waiters as buffers come back. */
static void recv_wait_buffers(struct conn *c)
{
    struct worker *w = c->w;
    w->metrics.recv_waits++;
    conn_hold(c);
    c->recv_waiting = true;
    c->list_next = NULL;
    if (w->recv_wait_tail)
        w->recv_wait_tail->list_next = c;
    else
        w->recv_wait_head = c;
    w->recv_wait_tail = c;
}

void conn_recv_resume(struct worker *w)
{
    /* All buffers are back in the ring at this point of the loop turn.  Half
     * of them go to waiters, oldest first; the other half stay for the
     * connections whose recv is still armed. */
    unsigned budget = w->bufs.nbufs / 2 ? w->bufs.nbufs / 2 : 1;
    while (w->recv_wait_head && budget-- > 0) {
        struct conn *c = w->recv_wait_head;
        w->recv_wait_head = c->list_next;
        if (!w->recv_wait_head)
            w->recv_wait_tail = NULL;
        c->list_next = NULL;
        c->recv_waiting = false;
        if (!c->read_paused && !c->eof)
            arm_recv(c); /* a closing or dead conn is not armed */
        conn_release(c);
    }
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
    conn_set_timer(c, TIMER_LINGER);
    arm_recv(c);
}

/* c->fixed_fd once its close is submitted: the slot is no longer ours. */
#define SLOT_CLOSED UINT_MAX

static void close_slot(struct conn *c)
{
    struct io_uring_sqe *sqe = conn_sqe(c, OP_CLOSE);
    if (sqe) {
        io_uring_prep_close_direct(sqe, c->fixed_fd);
    } else {
        /* No SQE (a broken ring): empty the slot synchronously, never
         * pretend it was closed. */
        int none = -1;
        int rc = io_uring_register_files_update(&c->w->ring, c->fixed_fd, &none, 1);
        if (rc < 0)
            cz_log_error("cannot close socket slot %u: %s", c->fixed_fd, strerror(-rc));
    }
    c->fixed_fd = SLOT_CLOSED;
}

static void finish_if_done(struct conn *c);

void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    /* An operation that has not started yet looks its fixed file up only
     * when it starts: a shutdown (the kernel always runs it in io-wq) and a
     * splice into the socket.  Cancel-by-fd cannot catch those, and once the
     * slot is closed the next accept may reuse it: they would hit that new
     * connection.  So with either possibly in flight, the slot is closed
     * only when nothing is in flight any more (conn_op_complete). */
    bool defer_slot = c->state == CONN_LINGER || output_names_slot_late(c);
    conn_set_state(c, CONN_CLOSING);
    conn_set_timer(c, TIMER_NONE);
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
    output_abort(c);
    deferred_conn_writable(c); /* a stream waiting to write learns it is gone */
    finish_if_done(c);
}

/* A closing connection with nothing in flight: close its slot if that was
 * deferred, then queue it to be freed at the end of the loop turn. */
static void finish_if_done(struct conn *c)
{
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
    /* Freed at the end of the loop turn, after every CQE of this batch. */
    c->list_next = w->free_list;
    w->free_list = c;
}

void conn_op_complete(struct conn *c)
{
    c->inflight--;
    finish_if_done(c);
}

void conn_on_op_done(struct conn *c, enum op_tag tag, struct io_uring_cqe *cqe)
{
    if (tag == OP_SHUTDOWN && cqe->res < 0 && c->state == CONN_LINGER)
        conn_close(c);
    conn_op_complete(c);
}

void conn_free_closed(struct worker *w)
{
    while (w->free_list) {
        struct conn *c = w->free_list;
        w->free_list = c->list_next;
        if (c->out.scheduled) {
            /* Unlink from the flush list before freeing. */
            struct conn **pp = &w->flush_list;
            while (*pp && *pp != c)
                pp = &(*pp)->flush_next;
            if (*pp)
                *pp = c->flush_next;
        }
        output_free(c);
        request_rx_free(c);
        catzilla_cache_free(c);
        w->nconns--;
        atomic_store_explicit(&w->stats.connections, w->nconns, memory_order_relaxed);
        if (w->nconns == 0)
            server_leak_check(w);
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
    static const enum cz_timeout_kind timeout_kinds[TIMER_MAX] = {
        [TIMER_IDLE] = CZ_TIMEOUT_KEEPALIVE, [TIMER_HEAD] = CZ_TIMEOUT_HEADER,
        [TIMER_BODY] = CZ_TIMEOUT_BODY,      [TIMER_SEND] = CZ_TIMEOUT_SEND,
        [TIMER_LINGER] = CZ_TIMEOUT_LINGER,
    };
    for (int k = TIMER_IDLE; k < TIMER_MAX; k++) {
        struct list_node *h = &w->timers[k];
        while (!list_empty(h)) {
            struct conn *c = container_of(h->next, struct conn, timer_link);
            if (c->deadline_ms > w->now_ms)
                break;
            conn_set_timer(c, TIMER_NONE);
            if (k == TIMER_SEND && output_send_timer(c)) {
                conn_set_timer(c, TIMER_SEND);
                continue;
            }
            metrics_timeout(w, timeout_kinds[k]);
            if (k == TIMER_HEAD && c->request_started && !c->close_after_send && output_idle(c)) {
                response_error(c, 408, false);
            } else if (k == TIMER_BODY && !c->close_after_send && output_idle(c)) {
                response_error(c, 408, false);
            } else {
                conn_close(c);
            }
        }
    }
}
