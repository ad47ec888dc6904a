/* Ring set-up, feature probe and provided buffers.  Errors become one line
 * that tells an operator what to change (seccomp profile, ulimit, kernel). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "catzilla/memory.h"
#include "core/ring.h"

static const struct {
    int op;
    const char *name;
} required_ops[] = {
    {IORING_OP_ACCEPT, "ACCEPT"},   {IORING_OP_RECV, "RECV"},         {IORING_OP_SEND, "SEND"},
    {IORING_OP_SENDMSG, "SENDMSG"}, {IORING_OP_TIMEOUT, "TIMEOUT"},   {IORING_OP_CLOSE, "CLOSE"},
    {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"}, {IORING_OP_SPLICE, "SPLICE"},
    {IORING_OP_MSG_RING, "MSG_RING"}, {IORING_OP_READ, "READ"},     {IORING_OP_SHUTDOWN, "SHUTDOWN"},
    {IORING_OP_OPENAT2, "OPENAT2"}, {IORING_OP_STATX, "STATX"},     {IORING_OP_POLL_ADD, "POLL_ADD"},
};

const char *cz_ring_register_hint(int err)
{
    if (err == -ENOMEM || err == -EPERM)
        return "RLIMIT_MEMLOCK is too low for io_uring's registered memory; raise it "
               "(ulimit -l unlimited, or run the container with --ulimit memlock=-1)";
    return "io_uring registration failed";
}

int cz_ring_setup(struct io_uring *ring, const struct cz_ring_params *p, char *err, size_t errlen)
{
    struct io_uring_params params;
    memset(&params, 0, sizeof(params));
    /* The CQ is 4x the SQ: multishot accept and recv fan one SQE out into many CQEs. */
    params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER;
    params.cq_entries = p->entries * 4;
    if (p->sqpoll) {
        params.flags |= IORING_SETUP_SQPOLL;
        params.sq_thread_idle = 1000;
        if (p->sqpoll_cpu >= 0) {
            params.flags |= IORING_SETUP_SQ_AFF;
            params.sq_thread_cpu = (unsigned)p->sqpoll_cpu;
        }
    } else {
        /* Task work runs only when this thread waits: no IPIs, better batching. */
        params.flags |= IORING_SETUP_DEFER_TASKRUN;
    }
    int rc = io_uring_queue_init_params(p->entries, ring, &params);
    if (rc == -EINVAL && !p->sqpoll) {
        /* Kernels before 6.1 lack DEFER_TASKRUN; say which feature is missing. */
        snprintf(err, errlen,
                 "io_uring: the kernel rejected SINGLE_ISSUER|DEFER_TASKRUN "
                 "(Linux 6.1 or newer is required)");
        return rc;
    }
    if (rc == -EPERM || rc == -ENOSYS) {
        snprintf(err, errlen,
                 "io_uring is blocked (%s): a seccomp filter or sysctl kernel.io_uring_disabled "
                 "forbids io_uring_setup; in a container run with "
                 "--security-opt seccomp=deploy/seccomp-io_uring.json",
                 strerror(-rc));
        return rc;
    }
    if (rc == -ENOMEM) {
        snprintf(err, errlen, "io_uring_setup: out of locked memory; %s",
                 cz_ring_register_hint(rc));
        return rc;
    }
    if (rc < 0) {
        snprintf(err, errlen, "io_uring_setup failed: %s", strerror(-rc));
        return rc;
    }

    struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
    if (!probe) {
        snprintf(err, errlen, "io_uring: cannot probe supported operations");
        rc = -ENOSYS;
        goto fail;
    }
    for (size_t i = 0; i < sizeof(required_ops) / sizeof(required_ops[0]); i++) {
        if (!io_uring_opcode_supported(probe, required_ops[i].op)) {
            snprintf(err, errlen, "io_uring: the kernel lacks IORING_OP_%s (Linux 6.1+ needed)",
                     required_ops[i].name);
            io_uring_free_probe(probe);
            rc = -ENOSYS;
            goto fail;
        }
    }
    io_uring_free_probe(probe);

    /* Saves an fdget/fdput per io_uring_enter; optional. */
    (void)io_uring_register_ring_fd(ring);
    return 0;
fail:
    io_uring_queue_exit(ring);
    return rc;
}

struct io_uring_sqe *cz_ring_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (!sqe) {
        io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
    }
    return sqe;
}

int cz_bufring_setup(struct io_uring *ring, struct cz_bufring *b, unsigned short bgid,
                     unsigned nbufs, unsigned size, char *err, size_t errlen)
{
    memset(b, 0, sizeof(*b));
    size_t ring_bytes = (size_t)nbufs * sizeof(struct io_uring_buf);
    size_t buf_bytes = (size_t)nbufs * size;
    int rc;

    b->br = catzilla_static_alloc_aligned(ring_bytes);
    b->base = catzilla_static_alloc_aligned(buf_bytes);
    if (!b->br || !b->base) {
        snprintf(err, errlen, "receive buffers: cannot allocate %zu bytes", ring_bytes + buf_bytes);
        rc = -ENOMEM;
        goto fail;
    }
    b->nbufs = nbufs;
    b->size = size;
    b->mask = (unsigned)io_uring_buf_ring_mask(nbufs);
    b->bgid = bgid;
    io_uring_buf_ring_init(b->br);

    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)b->br,
        .ring_entries = nbufs,
        .bgid = bgid,
    };
    rc = io_uring_register_buf_ring(ring, &reg, 0);
    if (rc < 0) {
        snprintf(err, errlen, "io_uring_register_buf_ring: %s; %s", strerror(-rc),
                 cz_ring_register_hint(rc));
        goto fail;
    }
    for (unsigned i = 0; i < nbufs; i++)
        io_uring_buf_ring_add(b->br, cz_bufring_addr(b, i), size, (unsigned short)i, b->mask,
                              (int)i);
    io_uring_buf_ring_advance(b->br, (int)nbufs);
    b->registered_bytes = ring_bytes + buf_bytes;
    return 0;
fail:
    catzilla_static_free(b->base);
    catzilla_static_free(b->br);
    memset(b, 0, sizeof(*b));
    return rc;
}

void cz_bufring_teardown(struct io_uring *ring, struct cz_bufring *b)
{
    if (!b->br)
        return;
    io_uring_unregister_buf_ring(ring, b->bgid);
    catzilla_static_free(b->base);
    catzilla_static_free(b->br);
    memset(b, 0, sizeof(*b));
}

int cz_bufring_release_pages(struct cz_bufring *b)
{
    if (!b->base)
        return 0;
    if (madvise(b->base, (size_t)b->nbufs * b->size, MADV_DONTNEED) < 0)
        return -errno;
    return 0;
}
