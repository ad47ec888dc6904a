/* SEND_ZC for cached file bodies: the header goes out in a plain send linked
 * to a SEND_ZC of the body straight from its registered buffer
 * (IORING_RECVSEND_FIXED_BUF), one submission.  The buffer must stay put until
 * the notification CQE, so each zero-copy send holds a reference on its cache
 * entry until then.  --zerocopy auto measures: the first sends ask the kernel
 * to report whether it copied anyway (loopback always does), and a worker
 * whose sends were mostly copied turns SEND_ZC off.
 */
#include <errno.h>
#include <stdalign.h>
#include <string.h>
#include <sys/socket.h>

#include "catzilla/memory.h"
#include "core/log.h"
#include "fs/filecache.h"
#include "http/http.h"
#include "http/sendzc.h"

/* Newer than Debian's liburing 2.3 headers (Linux 6.2). */
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

/* Sends measured before --zerocopy auto decides. */
#define AUTO_PROBES 32

struct zc_ctx {
    alignas(16) struct conn *c;
    struct cz_cache_entry *entry;
};

void sendzc_worker_init(struct worker *w)
{
    const struct cz_config *cfg = &w->srv->cfg;
    w->zc_enabled = cfg->zerocopy != CZ_ZEROCOPY_OFF && w->srv->root_fd >= 0;
    w->zc_probing = cfg->zerocopy == CZ_ZEROCOPY_AUTO;
    if (w->zc_probing && (strncmp(cfg->bind, "127.", 4) == 0 || strcmp(cfg->bind, "::1") == 0 ||
                          strcmp(cfg->bind, "[::1]") == 0)) {
        /* Loopback always copies: nothing to measure. */
        w->zc_enabled = false;
        w->zc_probing = false;
    }
}

bool sendzc_try(struct conn *c)
{
    struct worker *w = c->w;
    if (!w->zc_enabled)
        return false;
    struct outseg *hdr = c->out_head, *body = hdr;
    if (hdr->kind == SEG_MEM) {
        body = hdr->next;
    } else {
        hdr = NULL;
    }
    if (!body || body->kind != SEG_CACHED || body->u.cached.entry->buf_index < 0)
        return false;
    uint32_t blen = body->u.cached.len - body->sent;
    if (blen < (uint64_t)w->srv->cfg.zc_threshold)
        return false;
    uint32_t hlen = hdr ? hdr->u.mem.len - hdr->sent : 0;

    struct zc_ctx *ctx = catzilla_response_alloc(sizeof(*ctx));
    if (!ctx)
        return false;
    struct io_uring_sqe *hs = NULL, *bs;
    if (hlen) {
        hs = cz_ring_sqe(&w->ring);
        if (!hs) {
            catzilla_response_free(ctx);
            return false;
        }
    }
    bs = cz_ring_sqe(&w->ring);
    if (!bs) {
        if (hs) { /* turn the reserved SQE into a no-op */
            io_uring_prep_nop(hs);
            io_uring_sqe_set_data64(hs, 0);
        }
        catzilla_response_free(ctx);
        return false;
    }
    if (hs) {
        io_uring_prep_send(hs, (int)c->fixed_fd, hdr->u.mem.data + hdr->sent, hlen,
                           MSG_NOSIGNAL | MSG_MORE);
        hs->flags |= IOSQE_FIXED_FILE | IOSQE_IO_LINK;
        io_uring_sqe_set_data64(hs, cz_ud(c, OP_SEND));
        c->inflight++;
        c->zc_linked = true;
    }
    struct cz_cache_entry *e = body->u.cached.entry;
    io_uring_prep_send_zc_fixed(bs, (int)c->fixed_fd, body->u.cached.ptr + body->sent, blen,
                                MSG_NOSIGNAL, w->zc_probing ? IORING_SEND_ZC_REPORT_USAGE : 0,
                                (unsigned)e->buf_index);
    bs->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(bs, cz_ud(ctx, OP_SEND_ZC));
    ctx->c = c;
    ctx->entry = e;
    e->refs++; /* until the notification: the kernel reads the buffer until then */
    c->inflight++;
    c->send_busy = true;
    return true;
}

static void zc_ctx_free(struct zc_ctx *ctx)
{
    cz_filecache_release(ctx->entry);
    catzilla_response_free(ctx);
}

static void probe_result(struct worker *w, bool copied)
{
    if (!w->zc_probing)
        return;
    w->zc_probes++;
    w->zc_copied += copied;
    if (w->zc_probes < AUTO_PROBES)
        return;
    w->zc_probing = false;
    if (w->zc_copied * 2 > w->zc_probes) {
        w->zc_enabled = false;
        cz_log_info("zerocopy auto: the kernel copied %u of %u SEND_ZC sends; using plain sends",
                    w->zc_copied, w->zc_probes);
    } else {
        cz_log_info("zerocopy auto: %u of %u SEND_ZC sends were zero-copy; keeping SEND_ZC",
                    w->zc_probes - w->zc_copied, w->zc_probes);
    }
}

void sendzc_on_cqe(struct zc_ctx *ctx, struct io_uring_cqe *cqe)
{
    struct conn *c = ctx->c;
    if (cqe->flags & IORING_CQE_F_NOTIF) {
        probe_result(c->w, (cqe->res & IORING_NOTIF_USAGE_ZC_COPIED) != 0);
        zc_ctx_free(ctx);
        c->inflight--;
        conn_on_op_done(c, OP_NONE, NULL);
        return;
    }
    /* The result CQE; with F_MORE a notification follows and keeps ctx. */
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        zc_ctx_free(ctx);
        c->inflight--;
    }
    c->send_busy = false;
    if (c->state == CONN_CLOSING) {
        conn_on_op_done(c, OP_NONE, NULL);
        return;
    }
    if (cqe->res == -ECANCELED && !c->dead) {
        /* The linked header send was short: continue with plain sends. */
        conn_schedule_flush(c);
        return;
    }
    if (cqe->res < 0 || c->dead) {
        c->dead = true;
        conn_close(c);
        return;
    }
    conn_output_advance(c, (size_t)cqe->res);
    conn_schedule_flush(c);
}
