/* File send paths.  Files too large for the cache go out zero-copy from the
 * page cache: IORING_OP_SPLICE file -> pipe, then pipe -> socket, one
 * pipe-sized step at a time (each step ends the connection's turn, so a 1 GiB
 * download shares the worker fairly).  Pipes come from a small per-worker
 * pool because pipe memory is capped per user; a connection that finds the
 * pool empty waits, in FIFO order, for the next free pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "catzilla/memory.h"
#include "core/log.h"
#include "fs/filecache.h"
#include "fs/send.h"
#include "http/http.h"

#define PIPE_POOL 16
#define PIPE_SIZE (256 * 1024)
/* conn->pipe_idx while the connection is in the waiter queue (-1: no pipe,
 * not waiting); it keeps a connection from being queued twice. */
#define PIPE_WAITING (-2)

enum splice_stage { SPLICE_IDLE, SPLICE_FILL, SPLICE_DRAIN };

/* Per-connection splice state lives in the pipe slot while a pipe is held. */
struct pipe_slot {
    int rd, wr;
    unsigned size;
    bool busy;
    bool dirty;          /* may hold bytes of an aborted transfer: recreate */
    struct conn *owner;
    uint8_t stage;
    uint8_t ops;         /* splice SQEs in flight */
    uint32_t fill;       /* bytes in the pipe not yet sent */
    uint32_t chunk;      /* bytes the current fill step asked for */
};

struct send_pool {
    struct pipe_slot slots[PIPE_POOL];
    /* Connections waiting for a pipe: a circular FIFO that grows on demand.
     * A fixed cap would have to close every connection beyond it, and 16
     * pipes with a few hundred concurrent large downloads is ordinary load. */
    struct conn **waiters;
    unsigned wcap, whead, nwaiters;
};

static int waiter_push(struct send_pool *pool, struct conn *c)
{
    if (pool->nwaiters == pool->wcap) {
        unsigned ncap = pool->wcap ? pool->wcap * 2 : 64;
        struct conn **n = catzilla_cache_alloc(ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        for (unsigned i = 0; i < pool->nwaiters; i++)
            n[i] = pool->waiters[(pool->whead + i) % pool->wcap];
        catzilla_cache_free(pool->waiters);
        pool->waiters = n;
        pool->wcap = ncap;
        pool->whead = 0;
    }
    pool->waiters[(pool->whead + pool->nwaiters++) % pool->wcap] = c;
    c->pipe_idx = PIPE_WAITING;
    return 0;
}

static struct conn *waiter_pop(struct send_pool *pool)
{
    if (!pool->nwaiters)
        return NULL;
    struct conn *c = pool->waiters[pool->whead];
    pool->whead = (pool->whead + 1) % pool->wcap;
    pool->nwaiters--;
    c->pipe_idx = -1;
    return c;
}

/* Take c out of the queue wherever it is (it closed, or found a pipe itself). */
static void waiter_remove(struct send_pool *pool, struct conn *c)
{
    for (unsigned i = 0; i < pool->nwaiters; i++) {
        if (pool->waiters[(pool->whead + i) % pool->wcap] != c)
            continue;
        for (unsigned k = i; k + 1 < pool->nwaiters; k++)
            pool->waiters[(pool->whead + k) % pool->wcap] =
                pool->waiters[(pool->whead + k + 1) % pool->wcap];
        pool->nwaiters--;
        break;
    }
    c->pipe_idx = -1;
}

static int pipe_open(struct pipe_slot *p)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    p->rd = fds[0];
    p->wr = fds[1];
    int sz = fcntl(p->wr, F_SETPIPE_SZ, PIPE_SIZE);
    p->size = sz > 0 ? (unsigned)sz : 65536u;
    p->dirty = false;
    p->fill = 0;
    return 0;
}

static void pipe_close(struct pipe_slot *p)
{
    if (p->rd >= 0)
        close(p->rd);
    if (p->wr >= 0)
        close(p->wr);
    p->rd = p->wr = -1;
}

int cz_send_worker_init(struct worker *w, char *err, size_t errlen)
{
    struct send_pool *pool = catzilla_cache_alloc(sizeof(*pool));
    if (!pool) {
        snprintf(err, errlen, "send pool: out of memory");
        return -ENOMEM;
    }
    memset(pool, 0, sizeof(*pool));
    for (int i = 0; i < PIPE_POOL; i++)
        pool->slots[i].rd = pool->slots[i].wr = -1;
    w->pipes = (struct cz_pipe *)pool;
    return 0;
}

void cz_send_worker_free(struct worker *w)
{
    struct send_pool *pool = (struct send_pool *)w->pipes;
    if (!pool)
        return;
    for (int i = 0; i < PIPE_POOL; i++)
        pipe_close(&pool->slots[i]);
    catzilla_cache_free(pool->waiters);
    catzilla_cache_free(pool);
    w->pipes = NULL;
}

void cz_send_release_cached(struct cz_cache_entry *e)
{
    cz_filecache_release(e);
}

void cz_send_release_file(int fd)
{
    if (fd >= 0)
        close(fd);
}

static struct pipe_slot *pipe_get(struct send_pool *pool, struct conn *c)
{
    if (c->pipe_idx >= 0)
        return &pool->slots[c->pipe_idx];
    for (int i = 0; i < PIPE_POOL; i++) {
        struct pipe_slot *p = &pool->slots[i];
        if (p->busy)
            continue;
        if (p->rd < 0 || p->dirty) {
            pipe_close(p);
            if (pipe_open(p) < 0)
                continue;
        }
        /* A waiter flushed for another reason can find a pipe before its
         * wake-up: it leaves the queue so the wake-up goes to someone else. */
        if (c->pipe_idx == PIPE_WAITING)
            waiter_remove(pool, c);
        p->busy = true;
        p->owner = c;
        p->stage = SPLICE_IDLE;
        p->fill = 0;
        c->pipe_idx = i;
        return p;
    }
    return NULL;
}

static void pipe_put(struct worker *w, struct conn *c)
{
    struct send_pool *pool = (struct send_pool *)w->pipes;
    if (c->pipe_idx < 0)
        return;
    struct pipe_slot *p = &pool->slots[c->pipe_idx];
    if (p->ops)
        return; /* the last completion gives it back */
    if (p->fill)
        p->dirty = true;
    p->busy = false;
    p->owner = NULL;
    c->pipe_idx = -1;
    /* Wake one waiter: its flush will find the free pipe.  Closing
     * connections left the queue in cz_send_abort. */
    struct conn *n = waiter_pop(pool);
    if (n)
        conn_schedule_flush(n);
}

static int submit_drain(struct conn *c, struct pipe_slot *p)
{
    struct io_uring_sqe *sqe = cz_ring_sqe(&c->w->ring);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_splice(sqe, p->rd, -1, (int)c->fixed_fd, -1, p->fill, SPLICE_F_MOVE);
    sqe->flags |= IOSQE_FIXED_FILE; /* applies to the output: our socket */
    io_uring_sqe_set_data64(sqe, cz_ud(c, OP_SPLICE));
    c->inflight++;
    p->ops++;
    p->stage = SPLICE_DRAIN;
    return 0;
}

int cz_send_file_step(struct conn *c, struct outseg *seg)
{
    struct worker *w = c->w;
    struct send_pool *pool = (struct send_pool *)w->pipes;
    struct pipe_slot *p = pipe_get(pool, c);
    if (!p) {
        /* Flushed again while waiting (more output was queued): keep its place. */
        if (c->pipe_idx == PIPE_WAITING)
            return 0;
        return waiter_push(pool, c);
    }
    c->send_busy = true;
    if (p->fill)
        return submit_drain(c, p);

    uint64_t left = seg->u.file.len;
    uint32_t chunk = left < p->size ? (uint32_t)left : p->size;
    struct io_uring_sqe *sqe = cz_ring_sqe(&w->ring);
    if (!sqe) {
        c->send_busy = false;
        return -EBUSY;
    }
    /* File -> pipe; its completion submits pipe -> socket.  Not a linked
     * pair: the kernel always runs splice in io-wq and looks a fixed file up
     * only when a worker starts the request, so a linked drain would name
     * the socket slot whenever the fill happened to finish, possibly after
     * this connection closed and a new one was accepted into the same slot,
     * sending this file to another client.  The drain is submitted only by
     * a live connection, and cz_send_abort cancels one still queued. */
    io_uring_prep_splice(sqe, seg->u.file.fd, (int64_t)seg->u.file.off, p->wr, -1, chunk,
                         SPLICE_F_MOVE);
    io_uring_sqe_set_data64(sqe, cz_ud(c, OP_SPLICE));
    c->inflight++;
    p->ops++;
    p->stage = SPLICE_FILL;
    p->chunk = chunk;
    return 0;
}

void cz_send_on_cqe(struct conn *c, unsigned tag, struct io_uring_cqe *cqe)
{
    (void)tag;
    struct worker *w = c->w;
    struct send_pool *pool = (struct send_pool *)w->pipes;
    struct pipe_slot *p = &pool->slots[c->pipe_idx];
    c->inflight--;
    p->ops--;
    int res = cqe->res;

    if (c->state == CONN_CLOSING) {
        if (p->ops == 0) {
            p->dirty = true;
            c->send_busy = false;
            pipe_put(w, c);
        }
        conn_on_op_done(c, OP_NONE, NULL);
        return;
    }
    if (p->stage == SPLICE_FILL) {
        /* Bytes are in the pipe (a short fill is fine: the segment advances
         * by what the drain sends, and the next step reads on from there). */
        if (res <= 0) {
            if (res == 0)
                cz_log_warn("file shrank while being sent; closing the connection");
            goto fail;
        }
        p->fill += (uint32_t)res;
        if (submit_drain(c, p) < 0)
            goto fail;
        return;
    }
    /* Pipe -> socket. */
    if (res <= 0)
        goto fail;
    p->fill -= (uint32_t)res < p->fill ? (uint32_t)res : p->fill;
    conn_output_advance(c, (size_t)res);
    if (p->fill) {
        if (submit_drain(c, p) < 0)
            goto fail;
        return;
    }
    c->send_busy = false;
    p->stage = SPLICE_IDLE;
    /* Give the pipe back between files; the next step goes through the
     * flush list, i.e. after the other connections of this loop turn. */
    if (!c->out_head || c->out_head->kind != SEG_FILE)
        pipe_put(w, c);
    conn_schedule_flush(c);
    return;
fail:
    c->send_busy = false;
    c->dead = true;
    if (p->ops == 0) {
        p->dirty = true;
        pipe_put(w, c);
    }
    conn_close(c);
}

void cz_send_abort(struct conn *c)
{
    struct worker *w = c->w;
    struct send_pool *pool = (struct send_pool *)w->pipes;
    if (!pool)
        return;
    if (c->pipe_idx == PIPE_WAITING)
        waiter_remove(pool, c);
    if (c->pipe_idx >= 0 && pool->slots[c->pipe_idx].ops > 0) {
        /* A splice still queued in io-wq has not looked up the socket slot
         * yet; conn_close is closing that slot in this same submission, and
         * the next accept may reuse it.  Cancel by user_data (a cancel by fd
         * cannot match a request whose file is not yet assigned).  No CQE
         * is wanted for the cancel itself: OP_NONE is ignored. */
        struct io_uring_sqe *sqe = cz_ring_sqe(&w->ring);
        if (sqe) {
            io_uring_prep_cancel64(sqe, cz_ud(c, OP_SPLICE), IORING_ASYNC_CANCEL_ALL);
            io_uring_sqe_set_data64(sqe, 0);
        }
    }
    if (c->pipe_idx >= 0 && pool->slots[c->pipe_idx].ops == 0) {
        pool->slots[c->pipe_idx].dirty = pool->slots[c->pipe_idx].fill != 0;
        pipe_put(w, c);
    }
}
