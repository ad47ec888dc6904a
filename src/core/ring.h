/* One io_uring ring per worker: set-up with the flags Catzilla relies on, a
 * feature probe with clear errors, the provided receive-buffer ring, and the
 * user_data encoding (pointer | op tag).  The event loop itself belongs to the
 * server (src/http/server.c); this module only builds and describes rings. */
#ifndef CZ_CORE_RING_H
#define CZ_CORE_RING_H

#include <assert.h>
#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Constants newer than Debian's liburing 2.3 headers. */
#ifndef IORING_FILE_INDEX_ALLOC
#define IORING_FILE_INDEX_ALLOC (~0U)
#endif

/* user_data = object pointer (16-byte aligned) | tag in the low 4 bits. */
#define CZ_UD_TAG_BITS 4u
#define CZ_UD_TAG_MASK ((1u << CZ_UD_TAG_BITS) - 1)

static inline uint64_t cz_ud(const void *ptr, unsigned tag)
{
    /* A misaligned object would corrupt the tag: catch it in debug builds. */
    assert(((uintptr_t)ptr & CZ_UD_TAG_MASK) == 0);
    return (uint64_t)(uintptr_t)ptr | tag;
}
static inline void *cz_ud_ptr(uint64_t ud)
{
    return (void *)(uintptr_t)(ud & ~(uint64_t)CZ_UD_TAG_MASK);
}
static inline unsigned cz_ud_tag(uint64_t ud)
{
    return (unsigned)(ud & CZ_UD_TAG_MASK);
}

struct cz_ring_params {
    unsigned entries;  /* SQ entries (power of two); the CQ gets 4x */
    bool sqpoll;
    int sqpoll_cpu;    /* -1: let the kernel choose */
};

/* Create the ring on the calling thread (which must be the only thread that
 * submits to it: SINGLE_ISSUER | DEFER_TASKRUN), register its fd and probe the
 * operations Catzilla needs.  Returns 0, or -errno with a one-line reason in
 * err (seccomp, old kernel, missing operation, memlock). */
int cz_ring_setup(struct io_uring *ring, const struct cz_ring_params *p, char *err,
                  size_t errlen);

/* An SQE, submitting pending ones first if the SQ is full.  Never NULL unless
 * the ring is broken (then the caller closes the connection). */
struct io_uring_sqe *cz_ring_sqe(struct io_uring *ring);

/* A provided-buffer ring (IORING_REGISTER_PBUF_RING) whose ring and buffers
 * come from the calling thread's static arena. */
struct cz_bufring {
    struct io_uring_buf_ring *br;
    unsigned char *base;   /* nbufs * size bytes, page-aligned */
    unsigned nbufs, size, mask;
    unsigned short bgid;
    size_t registered_bytes;
};

int cz_bufring_setup(struct io_uring *ring, struct cz_bufring *b, unsigned short bgid,
                     unsigned nbufs, unsigned size, char *err, size_t errlen);
void cz_bufring_teardown(struct io_uring *ring, struct cz_bufring *b);

static inline unsigned char *cz_bufring_addr(const struct cz_bufring *b, unsigned bid)
{
    return b->base + (size_t)bid * b->size;
}

/* Give buffer bid back to the kernel (visible after cz_bufring_commit). */
static inline void cz_bufring_recycle(struct cz_bufring *b, unsigned bid, unsigned *pending)
{
    io_uring_buf_ring_add(b->br, cz_bufring_addr(b, bid), b->size, (unsigned short)bid, b->mask,
                          (int)*pending);
    (*pending)++;
}
static inline void cz_bufring_commit(struct cz_bufring *b, unsigned *pending)
{
    if (*pending) {
        io_uring_buf_ring_advance(b->br, (int)*pending);
        *pending = 0;
    }
}

/* Give the pages of every receive buffer back to the kernel (MADV_DONTNEED;
 * they read as zeroes and are faulted in again when used).  Only when no
 * buffer's bytes are still needed: with DEFER_TASKRUN the kernel fills
 * buffers only inside this thread's own io_uring_enter, so between loop
 * turns, with every buffer recycled, none is in use.  Returns 0 or -errno. */
int cz_bufring_release_pages(struct cz_bufring *b);

/* A one-line explanation for a registration failure (ENOMEM -> memlock). */
const char *cz_ring_register_hint(int err);

#endif
