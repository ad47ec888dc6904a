/* libFuzzer target: the request parser and the connection state machine of
 * src/http/conn.c, driven without a network.  One real worker (real ring,
 * real provided-buffer ring, real router, file cache and a tiny generated
 * docroot) and a fake kernel in this file that plays the ring's part: it reads
 * the SQEs the engine prepared (never submitting them), answers them with
 * CQEs it hands to the same handlers the event loop would call, copies sent
 * bytes out of the engine's buffers as late as the kernel may, and moves the
 * clock so timers fire.  Split points, partial sends, stalls, ENOBUFS, resets
 * and EOF all come from a hash of the input, so plain HTTP seeds work.
 *
 * Built with -DCZ_FAULT_INJECTION=1, a quarter of the inputs also run with
 * every Nth arena allocation failing (N from the hash), so out-of-memory
 * paths get the same oracles.
 *
 * Oracles beyond ASan/UBSan/LSan: no error-level log line (an illegal state
 * transition logs one), every connection is freed in bounded simulated time,
 * no descriptor leaks, and the bytes a client would receive are a valid
 * sequence of HTTP/1.1 responses in which nothing follows "Connection: close".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catzilla/memory.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/ring.h"
#include "fs/filecache.h"
#include "fs/send.h"
#include "fs/static.h"
#include "http/http.h"
#include "http/request.h"
#include "http/sendzc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void __wrap_cz_log(enum cz_log_level level, const char *fmt, ...);

#define MAX_TURNS 20000
#define MAX_PENDING 64
#define MAX_CHUNKS 8

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_request: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* Linked with -Wl,--wrap=cz_log: an error-level line is a bug in the engine
 * (illegal state transition, lost SQE), so it crashes the run. */
void __wrap_cz_log(enum cz_log_level level, const char *fmt, ...)
{
    if (level != CZ_LOG_ERROR)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_request: error-level log: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* ---------- the world: one server, one worker ---------- */

static struct cz_server *srv;
/* Fail when a slot is closed under an operation that has not started yet
 * (the next accept could reuse the slot); CZ_FUZZ_SLOT_ORACLE=0 turns it off. */
static bool slot_oracle;
/* CZ_FUZZ_TRACE=1: print each input's schedule (split points, knobs). */
static bool trace;
static struct worker *w;
static char docroot[64];
static uint64_t clock_ms = 1000000;
static int fd_limit;

static void write_file(const char *rel, size_t size, char fill)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", docroot, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("create %s: %s", path, strerror(errno));
    char buf[1024];
    for (size_t off = 0; off < size;) {
        size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)(fill + (off + i) % 23);
        if (write(fd, buf, n) != (ssize_t)n)
            die("write %s", path);
        off += n;
    }
    close(fd);
}

/* A docroot with a cached file, one too big for the cache (spliced), one
 * big enough for SEND_ZC, a directory with and one without index.html, and a
 * dotfile. */
static void make_docroot(void)
{
    snprintf(docroot, sizeof(docroot), "/tmp/cz-fuzz-root-XXXXXX");
    if (!mkdtemp(docroot))
        die("mkdtemp: %s", strerror(errno));
    char path[256];
    snprintf(path, sizeof(path), "%s/sub", docroot);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/empty", docroot);
    mkdir(path, 0755);
    write_file("index.html", 300, 'a');
    write_file("a.txt", 40, 'A');
    write_file("zc.bin", 3000, '0');
    write_file("big.bin", 9000, 'k');
    write_file("sub/index.html", 10, 's');
    write_file(".hidden", 5, 'h');
}

static void cleanup_docroot(void)
{
    static const char *const files[] = {"index.html",     "a.txt",   "zc.bin", "big.bin",
                                        "sub/index.html", ".hidden", "sub",    "empty"};
    char path[256];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", docroot, files[i]);
        if (unlink(path) < 0)
            rmdir(path);
    }
    rmdir(docroot);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[512];
    const char *so = getenv("CZ_FUZZ_SLOT_ORACLE");
    slot_oracle = !so || *so != '0';
    trace = getenv("CZ_FUZZ_TRACE") != NULL;
    make_docroot();
    atexit(cleanup_docroot);

    static struct cz_config cfg;
    cz_config_defaults(&cfg);
    /* Small limits, so short inputs reach every limit and the output queue
     * backs up (read pause) with a handful of pipelined requests. */
    cfg.threads = 1;
    cfg.ring_entries = 512;
    cfg.recv_buffers = 8;
    cfg.recv_buffer_size = 512;
    cfg.max_request_line = 256;
    cfg.max_header_size = 1024;
    cfg.max_headers = 12;
    cfg.max_body_size = 2048;
    cfg.max_output_queue = 4096;
    cfg.max_keepalive_requests = 40;
    cfg.root = docroot;
    cfg.file_cache_size = 64 * 1024;
    cfg.file_cache_max_file = 4096;
    cfg.zerocopy = CZ_ZEROCOPY_ON;
    cfg.zc_threshold = 1024;
    cfg.log_level = CZ_LOG_ERROR;
    cz_log_set_level(CZ_LOG_ERROR);

    catzilla_memory_init(NULL);
    if (cz_server_create(&cfg, &srv) < 0 || builtin_register(srv) < 0)
        die("server set-up");
    if (cz_static_global_init(srv, err, sizeof(err)) < 0)
        die("static: %s", err);
    /* Aligned as the server allocates them: user_data tags need the low bits. */
    srv->workers = aligned_alloc(alignof(struct worker), sizeof(*srv->workers));
    if (!srv->workers)
        die("out of memory");
    memset(srv->workers, 0, sizeof(*srv->workers));
    srv->nworkers = 1;
    w = &srv->workers[0];
    w->srv = srv;
    w->cpu = -1;
    w->listen_fd = w->wake_fd = -1;
    list_init(&w->conns);
    for (int k = 0; k < TIMER_MAX; k++)
        list_init(&w->timers[k]);
    if (catzilla_memory_thread_init() < 0)
        die("arenas");
    /* A real ring: SQE preparation and buffer registration are the real
     * thing; nothing is ever submitted. */
    int rc = io_uring_queue_init(512, &w->ring, 0);
    if (rc < 0)
        die("io_uring_queue_init: %s (io_uring blocked here?)", strerror(-rc));
    w->ring_ready = true;
    w->ring_fd = w->ring.ring_fd;
    if (cz_bufring_setup(&w->ring, &w->bufs, 0, (unsigned)cfg.recv_buffers,
                         (unsigned)cfg.recv_buffer_size, err, sizeof(err)) < 0)
        die("%s", err);
    w->router = cz_router_create();
    for (struct route *r = srv->routes; r; r = r->next)
        if (!w->router || cz_router_add(w->router, r->method, r->pattern, r) < 0)
            die("router");
    if (cz_send_worker_init(w, err, sizeof(err)) < 0 ||
        cz_filecache_worker_init(w, err, sizeof(err)) < 0)
        die("%s", err);
    sendzc_worker_init(w);
    worker_update_date(w);
    w->now_ms = clock_ms;

    /* Descriptors: the pipe pool may hold 2 per slot; anything above that
     * after an input is a leak. */
    int probe = dup(0);
    fd_limit = probe + 2 * 16 + 8;
    close(probe);
    return 0;
}

/* ---------- deterministic choices from the input ---------- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned rng_below(unsigned n)
{
    return n ? (unsigned)(rng_next() % n) : 0;
}

/* 0 means never. */
static bool rng_chance(unsigned one_in)
{
    return one_in && rng_below(one_in) == 0;
}

/* ---------- the fake kernel ---------- */

struct pending_op {
    struct io_uring_sqe sqe;
};

struct zc_notif {
    uint64_t ud;
    const char *ptr;
    size_t len;
    size_t stream_off; /* where its bytes landed in the client's stream */
    int delay;         /* turns until the notification */
};

static struct {
    bool recv_armed;
    uint64_t recv_ud;
    bool closed, shut_wr, reset;
    struct pending_op pend[MAX_PENDING];
    unsigned npend;
    struct zc_notif notifs[MAX_PENDING];
    unsigned nnotif;
    struct io_uring_cqe cq[4 * MAX_PENDING];
    unsigned ncq;
    char *out; /* what the client received */
    size_t out_len, out_cap;
    bool send_failed; /* the stream may be cut short */
    unsigned next_bid;
    /* knobs */
    unsigned partial_one_in, stall_one_in, enobufs_one_in, error_one_in;
    bool send_eof, allow_reset;
} fk;

static void cq_post(uint64_t ud, int res, unsigned flags)
{
    if (fk.ncq >= sizeof(fk.cq) / sizeof(fk.cq[0]))
        die("fake CQ overflow");
    fk.cq[fk.ncq++] = (struct io_uring_cqe){.user_data = ud, .res = res, .flags = flags};
}

static void out_add(const void *p, size_t n)
{
    if (fk.out_len + n > fk.out_cap) {
        size_t cap = fk.out_cap ? fk.out_cap * 2 : 65536;
        while (cap < fk.out_len + n)
            cap *= 2;
        fk.out = realloc(fk.out, cap);
        if (!fk.out)
            die("out of memory");
        fk.out_cap = cap;
    }
    memcpy(fk.out + fk.out_len, p, n);
    fk.out_len += n;
}

static void dispatch(struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    void *ptr = cz_ud_ptr(ud);
    unsigned tag = cz_ud_tag(ud);
    if (!ud)
        return;
    switch (tag) {
    case OP_RECV:
        conn_on_recv(ptr, cqe);
        break;
    case OP_SEND:
        conn_on_send(ptr, cqe);
        break;
    case OP_SEND_ZC:
        sendzc_on_cqe(ptr, cqe);
        break;
    case OP_SPLICE:
        cz_send_on_cqe(ptr, tag, cqe);
        break;
    case OP_CLOSE:
    case OP_SHUTDOWN:
    case OP_CANCEL:
        conn_on_op_done(ptr, (enum op_tag)tag, cqe);
        break;
    default:
        die("CQE with unexpected tag %u", tag);
    }
}

/* Bytes of a send SQE, read now (the kernel may read them until the CQE). */
static size_t sqe_send_len(const struct io_uring_sqe *sqe)
{
    if (sqe->opcode != IORING_OP_SENDMSG)
        return sqe->len;
    const struct msghdr *m = (const struct msghdr *)(uintptr_t)sqe->addr;
    size_t total = 0;
    for (size_t i = 0; i < m->msg_iovlen; i++)
        total += m->msg_iov[i].iov_len;
    return total;
}

static void sqe_send_copy(const struct io_uring_sqe *sqe, size_t n)
{
    if (sqe->opcode != IORING_OP_SENDMSG) {
        out_add((const void *)(uintptr_t)sqe->addr, n);
        return;
    }
    const struct msghdr *m = (const struct msghdr *)(uintptr_t)sqe->addr;
    for (size_t i = 0; i < m->msg_iovlen && n; i++) {
        size_t k = m->msg_iov[i].iov_len < n ? m->msg_iov[i].iov_len : n;
        out_add(m->msg_iov[i].iov_base, k);
        n -= k;
    }
}

static size_t partial(size_t len)
{
    if (len > 1 && rng_chance(fk.partial_one_in))
        return 1 + rng_below((unsigned)(len - 1));
    return len;
}

/* Complete one send-like operation; returns its result. */
static int complete_send(const struct io_uring_sqe *sqe)
{
    uint64_t ud = sqe->user_data;
    if (sqe->opcode == IORING_OP_SHUTDOWN) {
        int res = fk.closed ? -EBADF : 0;
        fk.shut_wr |= res == 0;
        cq_post(ud, res, 0);
        return res;
    }
    if (sqe->opcode == IORING_OP_SPLICE && !(sqe->flags & IOSQE_FIXED_FILE)) {
        /* file -> pipe: really splice, so the descriptors must still be open. */
        int64_t off = (int64_t)sqe->splice_off_in;
        loff_t o = off;
        ssize_t r = splice(sqe->splice_fd_in, off == -1 ? NULL : &o, sqe->fd, NULL,
                           partial(sqe->len), SPLICE_F_NONBLOCK);
        if (r < 0 && errno == EAGAIN)
            die("splice fill into a full pipe (pipe accounting)");
        int res = r < 0 ? -errno : (int)r;
        if (res == -EBADF)
            die("splice fill from a closed descriptor");
        cq_post(ud, res, 0);
        return res;
    }
    if (fk.closed) {
        cq_post(ud, -EBADF, 0);
        return -EBADF;
    }
    if (fk.shut_wr || fk.reset || rng_chance(fk.error_one_in)) {
        int res = fk.reset ? -ECONNRESET : -EPIPE;
        fk.send_failed = true;
        cq_post(ud, res, 0);
        return res;
    }
    if (sqe->opcode == IORING_OP_SPLICE) {
        /* pipe -> socket: take the bytes out of the real pipe. */
        size_t want = partial(sqe->len);
        char buf[65536];
        if (want > sizeof(buf))
            want = sizeof(buf);
        int fl = fcntl(sqe->splice_fd_in, F_GETFL);
        if (fl < 0)
            die("splice drain from a closed pipe");
        if (!(fl & O_NONBLOCK))
            fcntl(sqe->splice_fd_in, F_SETFL, fl | O_NONBLOCK);
        ssize_t r = read(sqe->splice_fd_in, buf, want);
        if (r < 0 && errno == EAGAIN)
            die("splice drain from an empty pipe: the kernel would block here forever");
        if (r < 0)
            die("pipe read: %s", strerror(errno));
        out_add(buf, (size_t)r);
        cq_post(ud, (int)r, 0);
        return (int)r;
    }
    size_t len = sqe_send_len(sqe);
    size_t n = partial(len);
    if (sqe->opcode == IORING_OP_SEND_ZC) {
        size_t at = fk.out_len;
        out_add((const void *)(uintptr_t)sqe->addr, n);
        if (fk.nnotif >= MAX_PENDING)
            die("too many SEND_ZC notifications");
        fk.notifs[fk.nnotif++] =
            (struct zc_notif){ud, (const char *)(uintptr_t)sqe->addr, n, at, (int)rng_below(3)};
        cq_post(ud, (int)n, IORING_CQE_F_MORE);
        return (int)n;
    }
    sqe_send_copy(sqe, n);
    cq_post(ud, (int)n, 0);
    return (int)n;
}

static void cancel_pending(bool (*match)(const struct pending_op *, uint64_t), uint64_t key,
                           int *count)
{
    unsigned j = 0;
    for (unsigned i = 0; i < fk.npend; i++) {
        if (match(&fk.pend[i], key)) {
            cq_post(fk.pend[i].sqe.user_data, -ECANCELED, 0);
            (*count)++;
        } else {
            fk.pend[j++] = fk.pend[i];
        }
    }
    fk.npend = j;
}

/* cancel_fd on the socket matches operations on the socket that were issued:
 * not a file -> pipe splice, and not the successor of a link whose head is
 * still running (its file is only looked up when it starts). */
static bool match_socket(const struct pending_op *p, uint64_t key)
{
    (void)key;
    if (!(p->sqe.flags & IOSQE_FIXED_FILE) || p->sqe.opcode == IORING_OP_SHUTDOWN)
        return false;
    if (p > fk.pend && (p[-1].sqe.flags & IOSQE_IO_LINK))
        return false;
    return true;
}

static bool match_ud(const struct pending_op *p, uint64_t key)
{
    return p->sqe.user_data == key;
}

/* Take the SQEs the engine prepared this turn, without submitting them. */
static void process_sqes(void)
{
    struct io_uring_sq *sq = &w->ring.sq;
    if (*sq->khead != 0 || sq->sqe_head != 0)
        die("the engine submitted to the ring (SQ overflow?)");
    unsigned n = sq->sqe_tail - sq->sqe_head;
    struct io_uring_sqe sqes[512];
    if (n > 512)
        die("too many SQEs in one turn");
    for (unsigned i = 0; i < n; i++)
        sqes[i] = sq->sqes[(sq->sqe_head + i) & sq->ring_mask];
    sq->sqe_tail = sq->sqe_head;

    for (unsigned i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = &sqes[i];
        uint64_t ud = sqe->user_data;
        switch (sqe->opcode) {
        case IORING_OP_NOP:
            cq_post(ud, 0, 0);
            break;
        case IORING_OP_RECV:
            if (fk.recv_armed)
                die("a second multishot recv on one connection");
            if (fk.closed) {
                cq_post(ud, -EBADF, 0);
                break;
            }
            if (!(sqe->flags & IOSQE_BUFFER_SELECT))
                die("recv without provided buffers");
            fk.recv_armed = true;
            fk.recv_ud = ud;
            break;
        case IORING_OP_SEND:
        case IORING_OP_SENDMSG:
        case IORING_OP_SEND_ZC:
        case IORING_OP_SPLICE:
            if (fk.npend >= MAX_PENDING)
                die("too many operations in flight");
            fk.pend[fk.npend++].sqe = *sqe;
            break;
        case IORING_OP_ASYNC_CANCEL: {
            int count = 0;
            if (sqe->cancel_flags & IORING_ASYNC_CANCEL_FD) {
                if (fk.recv_armed) {
                    cq_post(fk.recv_ud, -ECANCELED, 0);
                    fk.recv_armed = false;
                    count++;
                }
                cancel_pending(match_socket, 0, &count);
            } else {
                if (fk.recv_armed && fk.recv_ud == sqe->addr) {
                    cq_post(fk.recv_ud, -ECANCELED, 0);
                    fk.recv_armed = false;
                    count++;
                }
                cancel_pending(match_ud, sqe->addr, &count);
            }
            cq_post(ud, count ? 0 : -ENOENT, 0);
            break;
        }
        case IORING_OP_CLOSE:
            /* An armed recv keeps the socket alive past close_direct: the
             * connection then waits for it, which the turn limit catches.
             * An operation on the slot that has not started yet (io-wq, or
             * the tail of a link) would instead run on whatever socket the
             * next accept puts in the freed slot. */
            if (slot_oracle)
                for (unsigned j = 0; j < fk.npend; j++)
                    if ((fk.pend[j].sqe.flags & IOSQE_FIXED_FILE) && !match_socket(&fk.pend[j], 0))
                        die("close_direct while a not-yet-started operation (opcode %u) still "
                            "targets the slot: it would hit the next connection in it",
                            fk.pend[j].sqe.opcode);
            fk.closed = true;
            cq_post(ud, 0, 0);
            break;
        case IORING_OP_SHUTDOWN:
            /* The kernel always runs shutdown in io-wq: it completes later,
             * and looks its fixed file up only when it starts. */
            if (fk.npend >= MAX_PENDING)
                die("too many operations in flight");
            fk.pend[fk.npend++].sqe = *sqe;
            break;
        default:
            die("unexpected SQE opcode %u", sqe->opcode);
        }
    }
}

/* Complete in-flight sends in order (a linked successor of a short or
 * failed one is cancelled, as the kernel does); a stalled client completes
 * none this turn. */
static bool complete_pending(bool stall)
{
    if (!fk.npend || stall)
        return false;
    unsigned n = fk.npend;
    unsigned i = 0;
    while (i < n) {
        struct io_uring_sqe *sqe = &fk.pend[i].sqe;
        size_t len = sqe->opcode == IORING_OP_SPLICE || sqe->opcode == IORING_OP_SHUTDOWN
                         ? sqe->len
                         : sqe_send_len(sqe);
        int res = complete_send(sqe);
        i++;
        bool linked = sqe->flags & IOSQE_IO_LINK;
        while (linked && i < n) {
            struct io_uring_sqe *next = &fk.pend[i].sqe;
            if (res >= 0 && (size_t)res == len)
                break;
            cq_post(next->user_data, -ECANCELED, 0);
            linked = next->flags & IOSQE_IO_LINK;
            i++;
        }
    }
    fk.npend = 0;
    return true;
}

static bool notify_zc(void)
{
    bool any = false;
    unsigned j = 0;
    for (unsigned i = 0; i < fk.nnotif; i++) {
        struct zc_notif *z = &fk.notifs[i];
        if (z->delay-- > 0 && !fk.closed) {
            fk.notifs[j++] = *z;
            continue;
        }
        /* The kernel may read the buffer until now: it must still hold the
         * bytes that were sent. */
        if (memcmp(z->ptr, fk.out + z->stream_off, z->len) != 0)
            die("SEND_ZC buffer changed before its notification");
        cq_post(z->ud, 0, IORING_CQE_F_NOTIF);
        any = true;
    }
    fk.nnotif = j;
    return any;
}

static void deliver_data(const uint8_t *p, size_t n)
{
    struct cz_bufring *b = &w->bufs;
    while (n && fk.recv_armed) {
        size_t k = n < b->size ? n : b->size;
        unsigned bid = fk.next_bid++ & b->mask;
        unsigned char *buf = cz_bufring_addr(b, bid);
        memcpy(buf, p, k);
        bool last = k == n;
        unsigned flags = IORING_CQE_F_BUFFER | (bid << IORING_CQE_BUFFER_SHIFT);
        /* Multishot may end with any completion: the engine must re-arm. */
        bool ends = last && rng_chance(8);
        if (!ends)
            flags |= IORING_CQE_F_MORE;
        else
            fk.recv_armed = false;
        struct io_uring_cqe cqe = {.user_data = fk.recv_ud, .res = (int)k, .flags = flags};
        dispatch(&cqe);
        /* The buffer went back to the ring: nothing may still read it. */
        memset(buf, 0xA5, k);
        p += k;
        n -= k;
    }
}

static void post_recv_end(int res)
{
    fk.recv_armed = false;
    struct io_uring_cqe cqe = {.user_data = fk.recv_ud, .res = res, .flags = 0};
    dispatch(&cqe);
}

static void end_turn(void)
{
    cz_bufring_commit(&w->bufs, &w->bufs_pending);
    conn_flush_all(w);
    conn_free_closed(w);
}

/* ---------- the client's view: a valid response stream ---------- */

static long budget;

static bool valid_from(const char *p, size_t n);

static bool rest_ok(const char *p, size_t n, bool closes)
{
    if (n == 0)
        return true;
    if (closes)
        return false;
    return valid_from(p, n);
}

/* A prefix of a sequence of responses.  HEAD answers carry Content-Length
 * without a body, so both readings are tried where the bytes allow. */
static bool valid_from(const char *p, size_t n)
{
    if (--budget < 0)
        return true; /* pathological echo bodies: stop checking, do not fail */
    if (n == 0)
        return true;
    static const char proto[] = "HTTP/1.1 ";
    size_t cmp = n < 9 ? n : 9;
    if (memcmp(p, proto, cmp) != 0)
        return false;
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end)
        return true; /* cut short inside a head */
    size_t hlen = (size_t)(end - p) + 4;
    if (hlen < 13 || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
        p[11] > '9' || p[12] != ' ')
        return false;
    int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    long cl = -1;
    bool closes = false;
    for (const char *l = memmem(p, hlen, "\r\n", 2) + 2; l < end;) {
        const char *eol = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
        const char *colon = memchr(l, ':', (size_t)(eol - l));
        if (!colon || colon == l)
            return false;
        for (const char *q = l; q < eol; q++)
            if ((unsigned char)*q < 0x20 && *q != '\t')
                return false;
        size_t nl = (size_t)(colon - l);
        const char *v = colon + 1;
        while (v < eol && *v == ' ')
            v++;
        if (nl == 14 && strncasecmp(l, "Content-Length", 14) == 0) {
            if (cl >= 0)
                return false;
            cl = strtol(v, NULL, 10);
        } else if (nl == 10 && strncasecmp(l, "Connection", 10) == 0) {
            closes = (size_t)(eol - v) == 5 && strncasecmp(v, "close", 5) == 0;
        }
        l = eol + 2;
    }
    const char *after = p + hlen;
    size_t left = n - hlen;
    if (status < 200 || status == 204 || status == 304)
        return !(status >= 200 && cl > 0) && rest_ok(after, left, closes);
    if (cl < 0)
        return false;
    if (left < (size_t)cl)
        return true; /* cut short inside a body (or a HEAD answer and a cut head) */
    if (rest_ok(after + cl, left - (size_t)cl, closes))
        return true;
    return rest_ok(after, left, closes); /* the answer to a HEAD */
}

/* ---------- one input ---------- */

static void set_fault(unsigned long every)
{
#if CZ_FAULT_INJECTION
    catzilla_memory_fault_arm_every(every);
#else
    (void)every;
#endif
}

static uint64_t fnv1a(const uint8_t *d, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= d[i];
        h *= 1099511628211ull;
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *keep = fk.out;
    size_t keep_cap = fk.out_cap;
    memset(&fk, 0, sizeof(fk));
    fk.out = keep;
    fk.out_cap = keep_cap;
    rng_state = fnv1a(data, size);
    uint64_t knobs = rng_next();
    fk.partial_one_in = (knobs & 1) ? 4 : 1000000;
    fk.stall_one_in = (knobs & 2) ? 2 : 1000000;
    fk.enobufs_one_in = (knobs & 4) ? 5 : 1000000;
    fk.error_one_in = (knobs & 0x78) == 0x78 ? 8 : 0;
    fk.send_eof = (knobs & 0x80) != 0;
    fk.allow_reset = (knobs & 0x700) == 0x700;
    unsigned long fail_every = (knobs & 0x1800) == 0x1800 ? 2 + rng_below(40) : 0;

    /* Split points: a few data-derived offsets, sorted. */
    size_t cuts[MAX_CHUNKS + 1];
    unsigned ncuts = 0;
    unsigned want = 1 + rng_below(MAX_CHUNKS);
    cuts[ncuts++] = 0;
    for (unsigned i = 1; i < want && size > 1; i++) {
        size_t c = 1 + rng_below((unsigned)(size - 1));
        unsigned j = ncuts;
        while (j > 1 && cuts[j - 1] > c) {
            cuts[j] = cuts[j - 1];
            j--;
        }
        cuts[j] = c;
        ncuts++;
    }
    cuts[ncuts] = size;
    if (trace) {
        fprintf(stderr, "fuzz_request: knobs %#llx, fail every %lu, chunks at",
                (unsigned long long)knobs, fail_every);
        for (unsigned i = 0; i <= ncuts; i++)
            fprintf(stderr, " %zu", cuts[i]);
        fputc('\n', stderr);
    }
    unsigned chunk = 0;
    bool eof_sent = false;
    unsigned reset_at = fk.allow_reset ? rng_below(ncuts + 2) : UINT32_MAX;

    w->now_ms = clock_ms;
    set_fault(fail_every);
    conn_accepted(w, 0);
    if (w->nconns != 1 && !fail_every)
        die("conn_accepted did not add a connection");

    int turn;
    for (turn = 0; turn < MAX_TURNS && w->nconns; turn++) {
        bool progress = false;
        process_sqes();
        /* Bytes arrive only while a recv is armed, one chunk per turn. */
        if (fk.recv_armed && !fk.closed) {
            if (chunk == reset_at && !fk.reset) {
                fk.reset = true;
                fk.send_failed = true;
                post_recv_end(-ECONNRESET);
                progress = true;
            } else if (rng_chance(fk.enobufs_one_in)) {
                post_recv_end(-ENOBUFS);
                progress = true;
            } else if (chunk < ncuts) {
                deliver_data(data + cuts[chunk], cuts[chunk + 1] - cuts[chunk]);
                chunk++;
                progress = true;
            } else if (fk.send_eof && !eof_sent && !fk.reset) {
                eof_sent = true;
                post_recv_end(0);
                progress = true;
            }
        }
        bool stall = turn < 200 && rng_chance(fk.stall_one_in);
        progress |= complete_pending(stall);
        progress |= notify_zc();
        for (unsigned i = 0; i < fk.ncq; i++)
            dispatch(&fk.cq[i]);
        progress |= fk.ncq > 0;
        fk.ncq = 0;
        end_turn();
        /* Time: a little every turn, a lot when nothing else moves (the
         * client went quiet), so every deadline is eventually reached. */
        if (!progress && !w->flush_list && w->ring.sq.sqe_tail == w->ring.sq.sqe_head) {
            clock_ms += 500 + rng_below(20000);
        } else if (rng_chance(16)) {
            clock_ms += rng_below(3000);
        }
        if (clock_ms != w->now_ms) {
            w->now_ms = clock_ms;
            worker_update_date(w);
            conn_timers_expire(w);
            end_turn();
        }
    }
    set_fault(0);
    if (w->nconns)
        die("connection still open after %d turns (stuck: no timer, nothing in flight?)", turn);
    if (w->flush_list || w->free_list)
        die("flush or free list not empty after the connection was freed");
    /* Pending notifications of a freed connection would be use-after-free. */
    if (fk.npend || fk.nnotif || fk.recv_armed)
        die("operations still in flight after the connection was freed");
    process_sqes();
    if (fk.ncq) {
        for (unsigned i = 0; i < fk.ncq; i++)
            if (fk.cq[i].user_data)
                die("SQE prepared for a freed connection");
        fk.ncq = 0;
    }

    int probe = dup(0);
    if (probe > fd_limit)
        die("descriptor leak: dup() returned %d (limit %d)", probe, fd_limit);
    close(probe);

    if (!fk.send_failed) {
        budget = 100000;
        if (!valid_from(fk.out, fk.out_len)) {
            fprintf(stderr, "---- client received %zu bytes ----\n%.*s\n----\n", fk.out_len,
                    (int)(fk.out_len < 8192 ? fk.out_len : 8192), fk.out);
            die("the response stream is not a valid sequence of HTTP/1.1 responses");
        }
    }
    clock_ms += 100000; /* the next connection starts later */
    return 0;
}
