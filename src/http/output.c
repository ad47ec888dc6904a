/* The output queue and its send engines (see output.h for what this module
 * owns).  At most one send of a connection's queue is in flight at a time:
 * either a gathered send of the memory and cached segments at the head
 * (possibly a header linked to a SEND_ZC of a cached body), or one step of
 * the file engine for a file segment at the head.  Every completion that
 * moves bytes restarts the send timer, so --send-timeout means "no progress
 * for this long", never "the whole body within this long".
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdalign.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "catzilla/memory.h"
#include "core/log.h"
#include "http/http.h"
#include "http/output.h"

/* Memory segments are at least this large so a burst of pipelined small
 * responses lands in one buffer and goes out in one send. */
#define SEG_MIN_CAP (8 * 1024 - 32)
#define STREAM_SEG_MAX (64 * 1024 - 64)
#define CACHED_COPY_MAX 2048 /* cached bodies up to this size are copied */
#define SEND_MAX_IOV 32
/* What an unfilled placeholder counts against --max-output-queue: enough
 * that a pipelined flood of deferred requests pauses reading long before it
 * holds much memory. */
#define DEFER_COST 4096u
#define PIPE_POOL 16
#define PIPE_SIZE (256 * 1024)
/* Read-and-send step when no pipe is free: the connection's own buffer. */
#define BOUNCE_SIZE (64 * 1024)
/* Sends measured before --zerocopy auto decides. */
#define ZC_AUTO_PROBES 32

/* Newer than Debian's liburing 2.3 headers (Linux 6.2). */
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

enum seg_kind { SEG_MEM, SEG_CACHED, SEG_FILE, SEG_DEFER };

struct outseg {
    struct outseg *next;
    uint8_t kind;
    uint32_t sent; /* bytes of a memory or cached segment already sent */
    union {
        struct {
            uint32_t len, cap;
            char data[]; /* SEG_MEM only (allocated with the segment) */
        } mem;
        struct {
            struct cz_cache_entry *entry;
            const char *ptr;
            uint32_t len;
        } cached;
        struct {
            struct out_file *f;
            uint64_t off, len; /* what is left to send */
        } file;
        struct {
            struct req_rec *rec; /* the request it answers (metrics.c), or NULL */
            struct outseg *prev; /* the memory segment a stream emitted just before it */
        } defer;
    } u;
};

struct out_file {
    struct out_file *next;
    int fd;
    uint32_t refs; /* segments naming it, and callers between find/adopt and release */
    struct cz_file_id id;
};

struct pipe_slot {
    int rd, wr;
    unsigned size;
    bool busy;
};

enum engine_stage { ENG_IDLE, ENG_FILL, ENG_DRAIN };

/* The transfer of the file segment at the head of a queue: spliced through a
 * pipe from the pool, or read into the connection's own buffer and sent from
 * there when every pipe is taken (a client that stalls holds its pipe; it
 * must never make another connection wait). */
struct out_engine {
    struct pipe_slot *pipe; /* NULL: read-and-send through buf */
    char *buf;
    uint32_t fill; /* bytes read into the pipe or buffer, not yet sent */
    uint32_t boff; /* buffer offset of the next byte to send */
    uint8_t stage; /* enum engine_stage: the operation in flight */
};

struct output_worker {
    struct pipe_slot pipes[PIPE_POOL];
    /* Composing into a placeholder (output_defer_begin .. end or emit) is
     * synchronous, so one connection at a time per worker: its queue is
     * parked here meanwhile (not in every connection). */
    struct conn *composing; /* the connection composing, or NULL */
    struct outseg *saved_head, *saved_tail;
    struct outseg *compose_prev; /* the memory segment just before the placeholder,
                                  * whose free room takes the first bytes */
    bool zc_enabled;             /* SEND_ZC for cached bodies (--zerocopy; measured in auto) */
    bool outq_unsupported;       /* the kernel has no SIOCOUTQ uring_cmd */
    bool zc_probing;
    unsigned zc_probes, zc_copied;
};

struct zc_ctx {
    alignas(16) struct conn *c;
    struct cz_cache_entry *entry;
};

/* ---------- worker-wide state ---------- */

int output_worker_init(struct worker *w, char *err, size_t errlen)
{
    struct output_worker *ow = catzilla_cache_alloc(sizeof(*ow));
    if (!ow) {
        snprintf(err, errlen, "worker %u: output state: out of memory", w->id);
        return -ENOMEM;
    }
    memset(ow, 0, sizeof(*ow));
    for (int i = 0; i < PIPE_POOL; i++)
        ow->pipes[i].rd = ow->pipes[i].wr = -1;
    const struct cz_config *cfg = &w->srv->cfg;
    ow->zc_enabled = cfg->zerocopy != CZ_ZEROCOPY_OFF && w->srv->root_fd >= 0;
    ow->zc_probing = cfg->zerocopy == CZ_ZEROCOPY_AUTO;
    if (ow->zc_probing && (strncmp(cfg->bind, "127.", 4) == 0 || strcmp(cfg->bind, "::1") == 0 ||
                           strcmp(cfg->bind, "[::1]") == 0)) {
        /* Loopback always copies: nothing to measure. */
        ow->zc_enabled = false;
        ow->zc_probing = false;
    }
    w->out = ow;
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

void output_worker_free(struct worker *w)
{
    struct output_worker *ow = w->out;
    if (!ow)
        return;
    for (int i = 0; i < PIPE_POOL; i++)
        pipe_close(&ow->pipes[i]);
    catzilla_cache_free(ow);
    w->out = NULL;
}

/* A free pipe, or NULL when all are taken (the caller reads and sends). */
static struct pipe_slot *pipe_take(struct output_worker *ow)
{
    for (int i = 0; i < PIPE_POOL; i++) {
        struct pipe_slot *p = &ow->pipes[i];
        if (p->busy)
            continue;
        if (p->rd < 0) {
            int fds[2];
            if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
                continue;
            p->rd = fds[0];
            p->wr = fds[1];
            int sz = fcntl(p->wr, F_SETPIPE_SZ, PIPE_SIZE);
            p->size = sz > 0 ? (unsigned)sz : 65536u;
        }
        p->busy = true;
        return p;
    }
    return NULL;
}

/* dirty: the pipe may still hold bytes of an aborted transfer. */
static void pipe_give_back(struct pipe_slot *p, bool dirty)
{
    if (dirty)
        pipe_close(p);
    p->busy = false;
}

/* ---------- segments ---------- */

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

/* A zeroed segment of a kind without inline data. */
static struct outseg *seg_new(enum seg_kind kind)
{
    struct outseg *s = catzilla_response_alloc(sizeof(*s));
    if (s) {
        memset(s, 0, sizeof(*s));
        s->kind = kind;
    }
    return s;
}

static void file_unref(struct conn *c, struct out_file *f)
{
    if (--f->refs)
        return;
    struct out_file **pp = &c->out.files;
    while (*pp != f)
        pp = &(*pp)->next;
    *pp = f->next;
    close(f->fd);
    catzilla_response_free(f);
}

static void seg_free(struct conn *c, struct outseg *s)
{
    if (s->kind == SEG_CACHED)
        cz_filecache_release(s->u.cached.entry);
    else if (s->kind == SEG_FILE)
        file_unref(c, s->u.file.f);
    catzilla_response_free(s);
}

/* Free the (sent) head segment. */
static void pop_head(struct conn *c)
{
    struct output *o = &c->out;
    struct outseg *s = o->head;
    o->head = s->next;
    if (!o->head)
        o->tail = NULL;
    /* A placeholder must not keep pointing at it. */
    if (o->head && o->head->kind == SEG_DEFER && o->head->u.defer.prev == s)
        o->head->u.defer.prev = NULL;
    seg_free(c, s);
}

/* Its bytes are in memory: a gathered send can carry them. */
static bool seg_in_memory(const struct outseg *s)
{
    return s->kind == SEG_MEM || s->kind == SEG_CACHED;
}

/* Bytes of s not yet sent, and where they start (memory kinds only). */
static uint64_t seg_left(const struct outseg *s, const char **ptr)
{
    switch (s->kind) {
    case SEG_MEM:
        *ptr = s->u.mem.data + s->sent;
        return s->u.mem.len - s->sent;
    case SEG_CACHED:
        *ptr = s->u.cached.ptr + s->sent;
        return s->u.cached.len - s->sent;
    case SEG_FILE:
        *ptr = NULL;
        return s->u.file.len;
    default:
        *ptr = NULL;
        return 0;
    }
}

static void seg_link(struct conn *c, struct outseg *s, size_t cost)
{
    struct output *o = &c->out;
    if (o->tail)
        o->tail->next = s;
    else
        o->head = s;
    o->tail = s;
    o->queued += cost;
    output_schedule(c);
}

char *output_reserve(struct conn *c, size_t len)
{
    struct output *o = &c->out;
    struct output_worker *ow = c->w->out;
    struct outseg *prev = ow->composing == c ? ow->compose_prev : NULL;
    struct outseg *t = o->tail ? o->tail : prev;
    /* Appending after bytes an in-flight send covers is safe: the segment is
     * never moved, and the send's iovec length was fixed at submission. */
    if (t && t->kind == SEG_MEM && t->u.mem.cap - t->u.mem.len >= len) {
        char *p = t->u.mem.data + t->u.mem.len;
        t->u.mem.len += (uint32_t)len;
        o->queued += len;
        output_schedule(c);
        return p;
    }
    /* A stream producing faster than the client takes gets segments that
     * double (up to STREAM_SEG_MAX), so pieces of any size pack densely;
     * one that keeps up stays on small ones. */
    size_t cap = len;
    if (!o->tail && prev && prev->kind == SEG_MEM) {
        size_t grow = (size_t)prev->u.mem.cap * 2;
        grow = grow < STREAM_SEG_MAX ? grow : STREAM_SEG_MAX;
        cap = grow > len ? grow : len;
    }
    struct outseg *s = seg_new_mem(cap);
    if (!s)
        return NULL;
    s->u.mem.len = (uint32_t)len;
    seg_link(c, s, len);
    return s->u.mem.data;
}

int output_append(struct conn *c, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    char *p = output_reserve(c, len);
    if (!p)
        return -ENOMEM;
    memcpy(p, data, len);
    return 0;
}

int output_append_cached(struct conn *c, struct cz_cache_entry *e, uint64_t off, uint32_t len)
{
    if (len == 0)
        return 0;
    /* A small body is cheaper copied next to its head than referenced: no
     * segment of its own, no cache reference, and one plain send instead of
     * a sendmsg with its context. */
    if (len <= CACHED_COPY_MAX)
        return output_append(c, e->data + off, len);
    struct outseg *s = seg_new(SEG_CACHED);
    if (!s)
        return -ENOMEM;
    cz_filecache_ref(e);
    s->u.cached.entry = e;
    s->u.cached.ptr = e->data + off;
    s->u.cached.len = len;
    seg_link(c, s, len);
    return 0;
}

struct out_file *output_file_find(struct conn *c, const struct cz_file_id *id)
{
    for (struct out_file *f = c->out.files; f; f = f->next) {
        if (cz_file_id_equal(&f->id, id)) {
            f->refs++;
            return f;
        }
    }
    return NULL;
}

struct out_file *output_file_adopt(struct conn *c, int fd, const struct cz_file_id *id)
{
    struct out_file *f = catzilla_response_alloc(sizeof(*f));
    if (!f) {
        close(fd);
        return NULL;
    }
    f->fd = fd;
    f->refs = 1;
    f->id = *id;
    f->next = c->out.files;
    c->out.files = f;
    return f;
}

void output_file_release(struct conn *c, struct out_file *f)
{
    if (f)
        file_unref(c, f);
}

int output_append_file(struct conn *c, struct out_file *f, uint64_t off, uint64_t len)
{
    if (len == 0)
        return 0;
    struct outseg *s = seg_new(SEG_FILE);
    if (!s)
        return -ENOMEM;
    f->refs++;
    s->u.file.f = f;
    s->u.file.off = off;
    s->u.file.len = len;
    seg_link(c, s, len);
    return 0;
}

struct outseg *output_defer(struct conn *c)
{
    struct outseg *s = seg_new(SEG_DEFER);
    if (!s)
        return NULL;
    seg_link(c, s, DEFER_COST);
    c->out.ndefer++;
    conn_hold(c);
    s->u.defer.rec = reqrec_detach(c->w, c);
    return s;
}

/* Put the list first..last where d stands (or just remove d when first is
 * NULL).  d is a placeholder, so no send in flight covers it. */
static void seg_replace(struct conn *c, struct outseg *d, struct outseg *first, struct outseg *last)
{
    struct output *o = &c->out;
    struct outseg **pp = &o->head, *prev = NULL;
    while (*pp != d) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (first) {
        *pp = first;
        last->next = d->next;
        if (o->tail == d)
            o->tail = last;
    } else {
        *pp = d->next;
        if (o->tail == d)
            o->tail = prev;
    }
}

void output_defer_begin(struct conn *c, struct outseg *d)
{
    struct output *o = &c->out;
    reqrec_enter(c->w, d->u.defer.rec);
    /* Appends go to an empty list for now; end splices it in d's place.  No
     * send can start meanwhile: flushing happens only at the end of a turn. */
    /* No application code runs while composing, so composings never nest. */
    assert(!c->w->out->composing);
    c->w->out->composing = c;
    c->w->out->saved_head = o->head;
    c->w->out->saved_tail = o->tail;
    o->head = o->tail = NULL;
    /* A stream's pieces fill the room of the segment its last piece went
     * to (no half-empty segment per piece). */
    c->w->out->compose_prev = d->u.defer.prev;
}

void output_defer_end(struct conn *c, struct outseg *d)
{
    struct output *o = &c->out;
    struct outseg *first = o->head, *last = o->tail;
    o->head = c->w->out->saved_head;
    o->tail = c->w->out->saved_tail;
    c->w->out->saved_head = c->w->out->saved_tail = NULL;
    c->w->out->compose_prev = NULL;
    c->w->out->composing = NULL;
    o->queued -= DEFER_COST;
    o->ndefer--;
    if (conn_closing(c)) {
        while (first) {
            struct outseg *n = first->next;
            seg_free(c, first);
            first = n;
        }
        last = NULL;
    }
    seg_replace(c, d, first, last);
    output_schedule(c);
    reqrec_leave(c->w, d->u.defer.rec);
    catzilla_response_free(d);
    conn_release(c);
}

void output_defer_emit(struct conn *c, struct outseg *d)
{
    struct output *o = &c->out;
    struct outseg *first = o->head, *last = o->tail;
    o->head = c->w->out->saved_head;
    o->tail = c->w->out->saved_tail;
    c->w->out->saved_head = c->w->out->saved_tail = NULL;
    if (conn_closing(c)) {
        while (first) {
            struct outseg *n = first->next;
            seg_free(c, first);
            first = n;
        }
    } else if (first) {
        struct outseg **pp = &o->head;
        while (*pp != d)
            pp = &(*pp)->next;
        *pp = first;
        last->next = d;
        d->u.defer.prev = last->kind == SEG_MEM ? last : NULL;
    }
    c->w->out->compose_prev = NULL;
    c->w->out->composing = NULL;
    output_schedule(c);
    reqrec_suspend(c->w, d->u.defer.rec);
}

int output_defer_fill(struct conn *c, struct outseg *d, const void *data, size_t len)
{
    output_defer_begin(c, d);
    int rc = output_append(c, data, len);
    if (rc < 0)
        conn_close(c); /* the response is lost: the stream can only end */
    output_defer_end(c, d);
    return rc;
}

/* ---------- state ---------- */

bool output_idle(const struct conn *c)
{
    return !c->out.head && !c->out.busy;
}

bool output_has_space(const struct conn *c)
{
    return c->out.queued < (size_t)c->w->srv->cfg.max_output_queue;
}

bool output_below_half(const struct conn *c)
{
    return c->out.queued <= (size_t)c->w->srv->cfg.max_output_queue / 2;
}

void output_want_writable(struct conn *c)
{
    c->out.want_writable = true;
}

size_t output_queued(const struct conn *c)
{
    return c->out.queued;
}

size_t output_copy_memory(const struct conn *c, char *out, size_t cap)
{
    size_t n = 0;
    for (const struct outseg *s = c->out.head; s; s = s->next) {
        if (!seg_in_memory(s))
            continue;
        const char *p;
        size_t len = seg_left(s, &p);
        if (n < cap)
            memcpy(out + n, p, len < cap - n ? len : cap - n);
        n += len;
    }
    return n;
}

void output_schedule(struct conn *c)
{
    if (c->out.scheduled)
        return;
    c->out.scheduled = true;
    c->flush_next = c->w->flush_list;
    c->w->flush_list = c;
}

/* n bytes left the socket from the head of the queue. */
static void consume(struct conn *c, uint64_t n)
{
    struct output *o = &c->out;
    o->queued -= n < o->queued ? n : o->queued;
    while (n && o->head) {
        struct outseg *s = o->head;
        const char *p;
        uint64_t left = seg_left(s, &p);
        if (n < left) {
            if (s->kind == SEG_FILE) {
                s->u.file.off += n;
                s->u.file.len -= n;
            } else {
                s->sent += (uint32_t)n;
            }
            return;
        }
        n -= left;
        pop_head(c);
    }
}

/* Bytes moved: the client is alive (the send timer looks at this flag when
 * it fires, so progress costs no timer-list work). */
static void progress(struct conn *c, uint64_t n)
{
    c->w->metrics.tx_bytes += n;
    consume(c, n);
    c->out.progressed = true;
}

/* ---------- the send timer ---------- */

/* Newer than Debian's liburing 2.3 headers (Linux 6.7). */
#define CZ_SOCKET_URING_OP_SIOCOUTQ 1

void output_send_timer_reset(struct conn *c)
{
    struct output *o = &c->out;
    o->progressed = false;
    o->outq_known = false;
    o->stalls = 0;
}

/* One send-timer period ended: a stall unless bytes moved.  Two stalls in a
 * row are a whole --send-timeout without progress. */
static bool period_end(struct output *o, bool acked)
{
    bool moved = o->progressed || acked;
    o->progressed = false;
    o->stalls = moved ? 0 : (uint8_t)(o->stalls + 1);
    return o->stalls < 2;
}

bool output_send_timer(struct conn *c)
{
    struct output *o = &c->out;
    /* A send waits for room in the socket, and the kernel reports room only
     * once a good part of its buffer has drained: a slow reader can keep
     * taking bytes without completing a send for a while.  So ask the socket
     * how much is still unacknowledged; less than at the last period's end
     * is progress too, and the probe's answer ends this period. */
    if (o->busy && !c->w->out->outq_unsupported) {
        struct io_uring_sqe *sqe = conn_sqe(c, OP_PROBE);
        if (sqe) {
            io_uring_prep_rw(IORING_OP_URING_CMD, sqe, (int)c->fixed_fd, NULL, 0, 0);
            sqe->cmd_op = CZ_SOCKET_URING_OP_SIOCOUTQ;
            sqe->flags |= IOSQE_FIXED_FILE;
            return true;
        }
    }
    return period_end(o, false);
}

void output_on_probe(struct conn *c, struct io_uring_cqe *cqe)
{
    struct output *o = &c->out;
    bool acked = false;
    if (cqe->res >= 0) {
        acked = o->outq_known && (uint32_t)cqe->res < o->last_outq;
        o->last_outq = (uint32_t)cqe->res;
        o->outq_known = true;
    } else if (cqe->res == -EINVAL || cqe->res == -EOPNOTSUPP) {
        c->w->out->outq_unsupported = true; /* before Linux 6.7: completions only */
    }
    bool closing = conn_closing(c);
    conn_op_complete(c);
    if (!closing && !period_end(o, acked))
        conn_close(c);
}

/* ---------- gathered send and SEND_ZC ---------- */

struct send_ctx {
    struct msghdr msg;
    struct iovec iov[SEND_MAX_IOV];
};

static bool zc_try(struct conn *c)
{
    struct worker *w = c->w;
    struct output_worker *ow = w->out;
    if (!ow->zc_enabled)
        return false;
    struct outseg *hdr = c->out.head, *body = hdr;
    if (hdr->kind == SEG_MEM)
        body = hdr->next;
    else
        hdr = NULL;
    if (!body || body->kind != SEG_CACHED || body->u.cached.entry->buf_index < 0)
        return false;
    uint32_t blen = body->u.cached.len - body->sent;
    if (blen < (uint64_t)w->srv->cfg.zc_threshold)
        return false;
    uint32_t hlen = hdr ? hdr->u.mem.len - hdr->sent : 0;

    struct zc_ctx *ctx = catzilla_response_alloc(sizeof(*ctx));
    if (!ctx)
        return false;
    /* Both SQEs or neither: a header send must never go out alone. */
    if (io_uring_sq_space_left(&w->ring) < 2u)
        io_uring_submit(&w->ring);
    if (io_uring_sq_space_left(&w->ring) < 2u) {
        catzilla_response_free(ctx);
        return false;
    }
    if (hlen) {
        struct io_uring_sqe *hs = conn_sqe(c, OP_SEND);
        /* WAITALL: a short send of the header must not let the linked body
         * go out after a gap (only a failure breaks a link); the kernel
         * retries until the whole header is in, or fails and cancels. */
        io_uring_prep_send(hs, (int)c->fixed_fd, hdr->u.mem.data + hdr->sent, hlen,
                           MSG_NOSIGNAL | MSG_MORE | MSG_WAITALL);
        hs->flags |= IOSQE_FIXED_FILE | IOSQE_IO_LINK;
        c->out.zc_linked = true;
    }
    struct cz_cache_entry *e = body->u.cached.entry;
    struct io_uring_sqe *bs = conn_sqe(c, OP_NONE);
    io_uring_prep_send_zc_fixed(bs, (int)c->fixed_fd, body->u.cached.ptr + body->sent, blen,
                                MSG_NOSIGNAL, ow->zc_probing ? IORING_SEND_ZC_REPORT_USAGE : 0,
                                (unsigned)e->buf_index);
    bs->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(bs, cz_ud(ctx, OP_SEND_ZC));
    ctx->c = c;
    ctx->entry = e;
    cz_filecache_ref(e); /* until the notification: the kernel reads the buffer until then */
    c->out.busy = true;
    return true;
}

static void zc_probe_result(struct worker *w, bool copied)
{
    struct output_worker *ow = w->out;
    if (!ow->zc_probing)
        return;
    ow->zc_probes++;
    ow->zc_copied += copied;
    if (ow->zc_probes < ZC_AUTO_PROBES)
        return;
    ow->zc_probing = false;
    if (ow->zc_copied * 2 > ow->zc_probes) {
        ow->zc_enabled = false;
        cz_log_info("zerocopy auto: the kernel copied %u of %u SEND_ZC sends; using plain sends",
                    ow->zc_copied, ow->zc_probes);
    } else {
        cz_log_info("zerocopy auto: %u of %u SEND_ZC sends were zero-copy; keeping SEND_ZC",
                    ow->zc_probes - ow->zc_copied, ow->zc_probes);
    }
}

/* Gather the memory and cached segments at the head into one send. */
static void gather_send(struct conn *c)
{
    struct output *o = &c->out;
    const char *ptr;
    uint32_t first = (uint32_t)seg_left(o->head, &ptr);
    struct outseg *n = o->head->next;
    struct io_uring_sqe *sqe;
    if (!n || !seg_in_memory(n)) {
        sqe = conn_sqe(c, OP_SEND);
        if (!sqe) {
            conn_fail(c);
            return;
        }
        io_uring_prep_send(sqe, (int)c->fixed_fd, ptr, first, MSG_NOSIGNAL);
    } else {
        struct send_ctx *ctx = catzilla_response_alloc(sizeof(*ctx));
        if (!ctx) {
            conn_fail(c);
            return;
        }
        memset(&ctx->msg, 0, sizeof(ctx->msg));
        unsigned niov = 0;
        for (struct outseg *q = o->head; q && niov < SEND_MAX_IOV; q = q->next) {
            if (!seg_in_memory(q))
                break;
            uint64_t len = seg_left(q, &ptr);
            if (!len)
                continue;
            ctx->iov[niov].iov_base = (void *)ptr;
            ctx->iov[niov].iov_len = len;
            niov++;
        }
        ctx->msg.msg_iov = ctx->iov;
        ctx->msg.msg_iovlen = niov;
        sqe = conn_sqe(c, OP_SEND);
        if (!sqe) {
            catzilla_response_free(ctx);
            conn_fail(c);
            return;
        }
        io_uring_prep_sendmsg(sqe, (int)c->fixed_fd, &ctx->msg, MSG_NOSIGNAL);
        o->send_ctx = ctx;
    }
    sqe->flags |= IOSQE_FIXED_FILE;
    o->busy = true;
}

/* Sockets are non-blocking (so a splice into one cannot stall an io-wq
 * thread), and a send the kernel retried after its own poll may still end
 * with -EAGAIN: then we wait for POLLOUT ourselves and send again. */
static void poll_out(struct conn *c)
{
    struct output *o = &c->out;
    struct io_uring_sqe *sqe = conn_sqe(c, OP_SEND);
    if (!sqe) {
        conn_fail(c);
        return;
    }
    io_uring_prep_poll_add(sqe, (int)c->fixed_fd, POLLOUT);
    sqe->flags |= IOSQE_FIXED_FILE;
    o->need_poll = false;
    o->polling = true;
    o->busy = true;
}

void output_on_send(struct conn *c, struct io_uring_cqe *cqe)
{
    struct output *o = &c->out;
    if (o->polling) {
        o->polling = false;
        o->busy = false;
        bool closing = conn_closing(c);
        conn_op_complete(c);
        if (closing)
            return;
        if (cqe->res < 0)
            conn_fail(c);
        else
            output_schedule(c);
        return;
    }
    if (o->zc_linked) {
        /* The header half of a header + SEND_ZC pair: the body's CQE follows
         * (cancelled if this one was short) and continues the connection. */
        o->zc_linked = false;
        if (!conn_closing(c)) {
            if (cqe->res == -EAGAIN)
                o->need_poll = true; /* the body's send is cancelled and retried */
            else if (cqe->res < 0)
                c->dead = true;
            else
                progress(c, (uint64_t)cqe->res);
        }
        conn_op_complete(c);
        return;
    }
    o->busy = false;
    if (o->send_ctx) {
        catzilla_response_free(o->send_ctx);
        o->send_ctx = NULL;
    }
    if (conn_closing(c)) {
        conn_op_complete(c);
        return;
    }
    conn_op_complete(c);
    if (cqe->res == -EAGAIN) {
        o->need_poll = true;
        output_schedule(c);
        return;
    }
    if (cqe->res < 0) {
        if (cqe->res != -EPIPE && cqe->res != -ECONNRESET && cqe->res != -ECANCELED)
            cz_log_debug("send: %s", strerror(-cqe->res));
        conn_fail(c);
        return;
    }
    progress(c, (uint64_t)cqe->res);
    output_schedule(c);
}

void output_on_send_zc(void *p, struct io_uring_cqe *cqe)
{
    struct zc_ctx *ctx = p;
    struct conn *c = ctx->c;
    bool last = !(cqe->flags & IORING_CQE_F_MORE);
    if (cqe->flags & IORING_CQE_F_NOTIF) {
        zc_probe_result(c->w, (cqe->res & IORING_NOTIF_USAGE_ZC_COPIED) != 0);
    } else {
        /* The result CQE; with F_MORE a notification follows and keeps ctx. */
        c->out.busy = false;
        if (!conn_closing(c)) {
            if ((cqe->res == -ECANCELED || cqe->res == -EAGAIN) && !c->dead) {
                /* The linked header was short, or the socket was full: go
                 * on with plain sends (after POLLOUT for a full socket). */
                c->out.need_poll |= cqe->res == -EAGAIN;
                output_schedule(c);
            } else if (cqe->res < 0 || c->dead) {
                c->dead = true;
                conn_close(c);
            } else {
                progress(c, (uint64_t)cqe->res);
                output_schedule(c);
            }
        }
    }
    if (last) {
        cz_filecache_release(ctx->entry);
        catzilla_response_free(ctx);
        conn_op_complete(c);
    }
}

/* ---------- file engine ---------- */

static void engine_end(struct conn *c, bool dirty)
{
    struct out_engine *e = c->out.engine;
    if (!e)
        return;
    if (e->pipe)
        pipe_give_back(e->pipe, dirty || e->fill);
    catzilla_response_free(e->buf);
    catzilla_response_free(e);
    c->out.engine = NULL;
}

static struct io_uring_sqe *engine_sqe(struct conn *c, enum engine_stage stage)
{
    struct io_uring_sqe *sqe = conn_sqe(c, OP_FILE);
    if (sqe) {
        c->out.engine->stage = (uint8_t)stage;
        c->out.busy = true;
    }
    return sqe;
}

/* Send what the pipe or buffer holds. */
static int engine_drain(struct conn *c)
{
    struct out_engine *e = c->out.engine;
    struct io_uring_sqe *sqe = engine_sqe(c, ENG_DRAIN);
    if (!sqe)
        return -EBUSY;
    if (e->pipe) {
        /* The socket is non-blocking: a full send buffer ends the splice
         * with what it moved (or -EAGAIN), so every step reports progress
         * and a slow reader is never mistaken for a dead one. */
        io_uring_prep_splice(sqe, e->pipe->rd, -1, (int)c->fixed_fd, -1, e->fill,
                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    } else {
        io_uring_prep_send(sqe, (int)c->fixed_fd, e->buf + e->boff, e->fill, MSG_NOSIGNAL);
    }
    sqe->flags |= IOSQE_FIXED_FILE; /* for splice it applies to the output: our socket */
    return 0;
}

/* Start the next step of the file segment s at the head of the queue. */
static int engine_step(struct conn *c, struct outseg *s)
{
    struct output *o = &c->out;
    if (!o->engine) {
        struct out_engine *e = catzilla_response_alloc(sizeof(*e));
        if (!e)
            return -ENOMEM;
        memset(e, 0, sizeof(*e));
        e->pipe = pipe_take(c->w->out);
        if (!e->pipe) {
            e->buf = catzilla_response_alloc(BOUNCE_SIZE);
            if (!e->buf) {
                catzilla_response_free(e);
                return -ENOMEM;
            }
        }
        o->engine = e;
    }
    struct out_engine *e = o->engine;
    if (e->fill)
        return engine_drain(c);
    uint64_t cap = e->pipe ? e->pipe->size : BOUNCE_SIZE;
    uint32_t chunk = (uint32_t)(s->u.file.len < cap ? s->u.file.len : cap);
    struct io_uring_sqe *sqe = engine_sqe(c, ENG_FILL);
    if (!sqe)
        return -EBUSY;
    /* File -> pipe (or buffer); its completion submits the drain.  Not a
     * linked pair: the kernel runs splice in io-wq and looks a fixed file up
     * only when it starts, so a linked drain could name the socket slot after
     * this connection closed and a new one took the slot.  The drain is
     * submitted only by a live connection, and output_abort cancels one
     * still queued. */
    if (e->pipe)
        io_uring_prep_splice(sqe, s->u.file.f->fd, (int64_t)s->u.file.off, e->pipe->wr, -1, chunk,
                             SPLICE_F_MOVE);
    else
        io_uring_prep_read(sqe, s->u.file.f->fd, e->buf, chunk, s->u.file.off);
    return 0;
}

void output_on_file(struct conn *c, struct io_uring_cqe *cqe)
{
    struct output *o = &c->out;
    struct out_engine *e = o->engine;
    int res = cqe->res;
    uint8_t stage = e->stage;
    e->stage = ENG_IDLE;
    o->busy = false;
    if (conn_closing(c)) {
        engine_end(c, true);
        conn_op_complete(c);
        return;
    }
    conn_op_complete(c);
    int rc = 0;
    switch (stage) {
    case ENG_FILL:
        /* A short fill is fine: the segment advances by what the drain
         * sends, and the next step reads on from there. */
        if (res <= 0) {
            if (res == 0)
                cz_log_warn("a file shrank while being sent; closing the connection");
            rc = res < 0 ? res : -EIO;
            break;
        }
        e->fill = (uint32_t)res;
        e->boff = 0;
        rc = engine_drain(c);
        break;
    case ENG_DRAIN:
        if (res == -EAGAIN) {
            /* The socket buffer is full: the queue waits for POLLOUT (as for
             * any send), then the next step drains what the pipe or buffer
             * still holds. */
            o->need_poll = true;
            output_schedule(c);
            break;
        }
        if (res <= 0) {
            rc = res < 0 ? res : -EPIPE;
            break;
        }
        e->fill -= (uint32_t)res;
        e->boff += (uint32_t)res;
        progress(c, (uint64_t)res);
        if (e->fill) {
            rc = engine_drain(c);
            break;
        }
        /* Step done.  The next one goes through the flush list, after the
         * other connections of this turn: a 1 GiB download shares the
         * worker fairly.  Between files the pipe goes back to the pool. */
        if (!o->head || o->head->kind != SEG_FILE)
            engine_end(c, false);
        output_schedule(c);
        break;
    default:
        rc = -EINVAL;
        break;
    }
    if (rc < 0) {
        if (rc != -EPIPE && rc != -ECONNRESET)
            cz_log_debug("file send: %s", strerror(-rc));
        conn_fail(c);
    }
}

bool output_names_slot_late(const struct conn *c)
{
    const struct out_engine *e = c->out.engine;
    return e && e->pipe && e->stage != ENG_IDLE;
}

/* ---------- flushing ---------- */

static void flush(struct conn *c)
{
    struct output *o = &c->out;
    if (o->busy || c->dead || conn_closing(c))
        return;
    /* Drop fully sent leading segments (and empty ones). */
    while (o->head && o->head->kind != SEG_DEFER) {
        const char *p;
        if (seg_left(o->head, &p) > 0)
            break;
        pop_head(c);
    }
    if (o->want_writable && output_below_half(c)) {
        o->want_writable = false;
        deferred_conn_writable(c);
    }
    struct outseg *s = o->head;
    if (o->engine && (!s || s->kind != SEG_FILE))
        engine_end(c, false);
    if (!s) {
        conn_output_drained(c);
        return;
    }
    if (s->kind == SEG_DEFER) {
        /* Waiting for our own producer (a file job, a stats gather, a
         * handler), not for the client: no client timer may close the
         * connection meanwhile, except the body timer of a request whose
         * body still arrives while its answer streams.  The producer
         * schedules us when it fills the placeholder. */
        if (c->state != CONN_BODY)
            conn_set_timer(c, TIMER_NONE);
        else if (c->timer_kind != TIMER_BODY)
            conn_set_timer(c, TIMER_BODY);
        return;
    }
    if (o->need_poll) {
        poll_out(c);
    } else if (s->kind == SEG_FILE) {
        if (engine_step(c, s) < 0)
            conn_fail(c);
    } else if (!zc_try(c)) {
        gather_send(c);
    }
    if (!o->busy || conn_closing(c))
        return;
    /* A send is in flight: the client has --send-timeout to take some of it. */
    if (c->timer_kind != TIMER_SEND) {
        output_send_timer_reset(c);
        conn_set_timer(c, TIMER_SEND);
    }
}

void output_flush_all(struct worker *w)
{
    while (w->flush_list) {
        struct conn *c = w->flush_list;
        w->flush_list = c->flush_next;
        c->flush_next = NULL;
        c->out.scheduled = false;
        flush(c);
    }
}

void output_abort(struct conn *c)
{
    struct out_engine *e = c->out.engine;
    if (!e)
        return;
    if (e->stage == ENG_IDLE) {
        engine_end(c, false);
        return;
    }
    /* A splice still queued in io-wq has not looked the socket slot up yet;
     * cancel it by user_data (a cancel by fd cannot match a request whose
     * file is not assigned yet).  No CQE is wanted for the cancel itself. */
    struct io_uring_sqe *sqe = cz_ring_sqe(&c->w->ring);
    if (sqe) {
        io_uring_prep_cancel64(sqe, cz_ud(c, OP_FILE), IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, 0);
    }
}

void output_free(struct conn *c)
{
    struct output *o = &c->out;
    engine_end(c, true);
    while (o->head) {
        struct outseg *n = o->head->next;
        seg_free(c, o->head);
        o->head = n;
    }
    o->tail = NULL;
    o->queued = 0;
    catzilla_response_free(o->send_ctx);
    o->send_ctx = NULL;
}
