/* libFuzzer target: the request parser, the connection state machine of
 * src/http/conn.c, the output engines of src/http/output.c and the file jobs
 * of src/http/static.c, driven without a network.  One real worker (real
 * ring, real provided-buffer ring, real router, output state, file cache and
 * a tiny generated docroot), a second worker that only answers stats
 * gathers, and a fake kernel in this file that plays the rings' part: it
 * reads the SQEs the engine prepared (never submitting them), answers them
 * with CQEs that go through the server's own dispatch, server_dispatch_cqe()
 * (so no operation tag is handled in two places), copies sent bytes out of
 * the engine's buffers as late as the kernel may, and moves the clock so the
 * worker's tick fires.
 *
 * One input drives up to MAX_SOCKS client connections.  The input is split
 * into one byte stream per connection at each "\n--conn--\n" (see
 * http.dict); without a separator it is sent whole on one connection, or on
 * two or three (each with its own schedule), as a hash of the input decides.
 * Connections are accepted at different turns into free socket slots, so a
 * slot closed by one connection is reused by the next.  Split points,
 * partial sends, stalls (a full socket: non-blocking sends and splices answer
 * -EAGAIN, then POLLOUT waits), silent clients (the send timer's SIOCOUTQ
 * probes), ENOBUFS, resets, EOF, lost cancellation races, a taken pipe pool,
 * failing or slow opens, late completions in a shuffled order across
 * connections, the output queue limit (so answers queue up behind a file
 * job's placeholder, or reading pauses at once) and slow peers all come from
 * a hash of the input, so plain HTTP seeds work.
 *
 * The fake kernel models exactly the operations below and dies on any other
 * opcode, on a user_data tag the dispatch does not handle, and on a tag used
 * with an opcode it does not belong to:
 *   ACCEPT (multishot, direct), RECV (multishot, provided buffers), SEND,
 *   SENDMSG, SEND_ZC (+ notification), MSG_WAITALL (a send either completes
 *   or fails, possibly after part of it went out, and the failure cancels the
 *   link), -EAGAIN from sends on a full non-blocking socket, SPLICE file ->
 *   pipe and pipe -> socket (non-blocking: -EAGAIN on a full socket), READ
 *   (pread of the real file; short or late), POLL_ADD (POLLOUT), SHUTDOWN,
 *   ASYNC_CANCEL (by fd or user_data), CLOSE (direct), TIMEOUT (the tick; a
 *   file job's CATZILLA_FAULT_SLOW_OPEN delay), MSG_RING (stats gathers),
 *   OPENAT2 (the real openat2 with the engine's dirfd, path and open_how, so
 *   path safety is the kernel's; sometimes -EAGAIN or -EMFILE), STATX (the
 *   real statx of the descriptor), URING_CMD SIOCOUTQ (unacknowledged bytes
 *   that shrink while the client reads; -EINVAL/-EOPNOTSUPP in some inputs:
 *   an old kernel), NOP.
 * Links behave as in Linux: a failed operation cancels its linked successors;
 * a short send without MSG_WAITALL does not (CZ_FUZZ_SHORT_SEND_CANCELS_LINK=1
 * models it as cancelling, to hunt other bugs while that one is open).
 *
 * Built with -DCZ_FAULT_INJECTION=1, a quarter of the inputs also run with
 * every Nth arena allocation failing (N from the hash), so out-of-memory
 * paths get the same oracles, and some set CATZILLA_FAULT_SLOW_OPEN.
 *
 * Oracles beyond ASan/UBSan/LSan: no error-level log line (an illegal state
 * transition logs one), every connection is freed in bounded simulated time,
 * no descriptor leaks (a file job's descriptor is closed by the time its
 * connection is freed; nothing closes a descriptor that is not open), no
 * stats gather outlives its connection, a connection runs at most one file
 * operation at a time and only for the job at the head of its list, opens
 * are relative to the docroot with RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS,
 * read-only, and only ever open the docroot's own files and directories, no
 * socket slot is closed while an operation that has not looked it up yet
 * still names it, nothing names a slot after its close or another
 * connection's slot, file reads stay inside the file and never fill a pipe
 * that still holds bytes, the bytes each client would receive are a valid
 * sequence of HTTP/1.1 responses in which nothing follows "Connection:
 * close", and they answer its requests in order: the n-th final response
 * answers the n-th request the parser dispatched (a response carrying a
 * docroot file's ETag answers a request for that file, a GET or HEAD of an
 * existing file is answered with its ETag or an error, one of a path naming
 * nothing never with a success or redirect, a built-in route's 200 carries
 * its body).
 *
 * Linked with -Wl,--wrap=cz_log,--wrap=pipe2,--wrap=close,--wrap=server_dispatch
 * (scripts/fuzz.sh).  CZ_FUZZ_TRACE=1 prints each input's schedule, SQEs,
 * CQEs, what each client received and the order check; CZ_FUZZ_STATS=1
 * counts what the fake kernel saw and prints it at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "catzilla/memory.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/ring.h"
#include "fs/filecache.h"
#include "fs/httpfile.h"
#include "fs/path.h"
#include "http/http.h"
#include "http/output.h"
#include "http/static.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void __wrap_cz_log(enum cz_log_level level, const char *fmt, ...);
int __wrap_pipe2(int fds[2], int flags);
int __real_pipe2(int fds[2], int flags);
int __wrap_close(int fd);
int __real_close(int fd);
void __wrap_server_dispatch(struct conn *c, struct cz_request *req);
void __real_server_dispatch(struct conn *c, struct cz_request *req);

#define MAX_TURNS 20000
#define MAX_SOCKS 4
#define NSLOTS 8
#define MAX_PENDING 128
#define MAX_CHUNKS 8
#define MAX_MSGS 64
#define MAX_TIMERS 16
#define MAX_EXPECT 256
#define MAX_FDS 4096
#define SQ_ENTRIES 512
#define PEER_SQ_ENTRIES 16
#define SIOCOUTQ_CMD 1 /* SOCKET_URING_OP_SIOCOUTQ */

static const char conn_sep[] = "\n--conn--\n";

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

/* ---------- the world: one server, a worker and a stats peer ---------- */

static struct cz_server *srv;
/* Fail when a slot is closed under an operation that has not started yet
 * (the next accept could reuse the slot); CZ_FUZZ_SLOT_ORACLE=0 turns it off. */
static bool slot_oracle;
/* CZ_FUZZ_SHORT_SEND_CANCELS_LINK=1: the pre-Linux model of links. */
static bool short_send_cancels_link;
/* CZ_FUZZ_TRACE=1: print each input's schedule, SQEs and CQEs. */
static bool trace;
/* CZ_FUZZ_STATS=1: count what the fake kernel saw, printed at exit (to tell
 * which paths a corpus reaches). */
static bool stats;
static struct {
    unsigned long inputs, multi, sqes[64], tagged[OP_MAX], send_eagain, waitall_fail, late,
        open_fail, probes, probe_unsupported, responses_checked, etags_checked, job_fds_closed;
} st;

static void print_stats(void)
{
    fprintf(stderr, "fuzz_request stats: %lu inputs, %lu with several connections, %lu late "
                    "completions, %lu sends -EAGAIN, %lu WAITALL sends failed part-way, %lu "
                    "opens failed, %lu probes (%lu unsupported), %lu responses checked for "
                    "order (%lu by ETag), %lu job descriptors seen closed\n",
            st.inputs, st.multi, st.late, st.send_eagain, st.waitall_fail, st.open_fail,
            st.probes, st.probe_unsupported, st.responses_checked, st.etags_checked,
            st.job_fds_closed);
    for (unsigned i = 0; i < 64; i++)
        if (st.sqes[i])
            fprintf(stderr, "  opcode %2u: %lu SQEs\n", i, st.sqes[i]);
    for (unsigned i = 0; i < OP_MAX; i++)
        if (st.tagged[i])
            fprintf(stderr, "  tag %2u: %lu SQEs\n", i, st.tagged[i]);
}
static struct worker *w, *peer;
static char docroot[64];
static uint64_t clock_ms = 1000000;
static int fd_limit;
static bool in_input; /* between the start and the end of one input */

/* Worker-wide operations and fault knobs: they outlive one input. */
static struct {
    bool accept_armed, accept_nonblock;
    uint64_t accept_ud;
    bool tick_armed;
    uint64_t tick_ud, tick_due;
    struct msg {
        struct worker *to;
        uint64_t ud;
        int res;
        uint64_t due;
    } msgs[MAX_MSGS];
    unsigned nmsgs;
    bool no_pipes;      /* pipe2 fails: the worker's pipe pool is all taken */
    bool reinit_output; /* the last input changed worker-wide output state */
} wk;

int __wrap_pipe2(int fds[2], int flags)
{
    if (wk.no_pipes) {
        errno = EMFILE;
        return -1;
    }
    return __real_pipe2(fds, flags);
}

/* Descriptors the fake kernel's openat2 handed out, until closed. */
static struct {
    bool live;
    int sock;        /* the connection whose job opened it */
    const void *job;
} fdt[MAX_FDS];
static int fdt_max = -1;

/* Linked with -Wl,--wrap=close: every close() of the engine (and of this
 * file) goes through here, so a job's descriptor is known closed the moment
 * it is, and closing something that is not open is caught. */
int __wrap_close(int fd)
{
    if (fd >= 0 && fd < MAX_FDS) {
        st.job_fds_closed += fdt[fd].live;
        fdt[fd].live = false;
    }
    int r = __real_close(fd);
    if (r < 0 && errno == EBADF && in_input)
        die("close(%d): not an open descriptor (a double close?)", fd);
    return r;
}

/* The docroot: a cached file, one big enough for SEND_ZC, two too big for
 * the cache (sent by the file engine; huge.bin takes more than one step of
 * the read-and-send engine), a directory with and one without index.html,
 * and a dotfile. */
static const struct docfile {
    const char *rel;
    size_t size;
    char fill;
} docfiles[] = {
    {"index.html", 300, 'a'}, {"a.txt", 40, 'A'},         {"zc.bin", 3000, '0'},
    {"big.bin", 9000, 'k'},   {"huge.bin", 70000, 'K'},   {"sub/index.html", 10, 's'},
    {".hidden", 5, 'h'},
};
#define NDOCFILES (sizeof(docfiles) / sizeof(docfiles[0]))
static const char *const docdirs[] = {"sub", "empty"};
#define NDOCDIRS (sizeof(docdirs) / sizeof(docdirs[0]))
static char file_etag[NDOCFILES][CZ_ETAG_MAX];
/* Every inode an open may reach: the files, the directories and the root. */
static struct {
    dev_t dev;
    ino_t ino;
} doc_inodes[NDOCFILES + NDOCDIRS + 1];

/* CATZILLA_FAULT_SLOW_OPEN patterns an input may pick (NULL: unset). */
static const char *const slow_patterns[] = {NULL, "a.txt", ".bin", "index", "sub/", "huge"};

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

static void remember_inode(unsigned i, const char *rel)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", docroot, rel);
    struct stat st;
    if (stat(path, &st) < 0)
        die("stat %s: %s", path, strerror(errno));
    doc_inodes[i].dev = st.st_dev;
    doc_inodes[i].ino = st.st_ino;
}

static void make_docroot(void)
{
    snprintf(docroot, sizeof(docroot), "/tmp/cz-fuzz-root-XXXXXX");
    if (!mkdtemp(docroot))
        die("mkdtemp: %s", strerror(errno));
    char path[256];
    for (size_t i = 0; i < NDOCDIRS; i++) {
        snprintf(path, sizeof(path), "%s/%s", docroot, docdirs[i]);
        mkdir(path, 0755);
    }
    unsigned k = 0;
    for (size_t i = 0; i < NDOCFILES; i++) {
        write_file(docfiles[i].rel, docfiles[i].size, docfiles[i].fill);
        snprintf(path, sizeof(path), "%s/%s", docroot, docfiles[i].rel);
        struct stat st;
        if (stat(path, &st) < 0)
            die("stat %s", path);
        cz_etag_format(st.st_ino, (uint64_t)st.st_size,
                       (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
                       file_etag[i]);
        remember_inode(k++, docfiles[i].rel);
    }
    for (size_t i = 0; i < NDOCDIRS; i++)
        remember_inode(k++, docdirs[i]);
    remember_inode(k++, ".");
}

static void cleanup_docroot(void)
{
    char path[256];
    for (size_t i = 0; i < NDOCFILES; i++) {
        snprintf(path, sizeof(path), "%s/%s", docroot, docfiles[i].rel);
        unlink(path);
    }
    for (size_t i = 0; i < NDOCDIRS; i++) {
        snprintf(path, sizeof(path), "%s/%s", docroot, docdirs[i]);
        rmdir(path);
    }
    rmdir(docroot);
}

static void worker_basics(struct worker *x, unsigned id)
{
    x->srv = srv;
    x->id = id;
    x->cpu = -1;
    x->wake_fd = -1;
    /* One main listener, accepting multishot (no access log); the fake
     * kernel never looks at its descriptor. */
    x->nlis = 1;
    x->lis[0].fd = x->lis[1].fd = -1;
    x->lis[0].w = x;
    x->lis[0].multishot = true;
    for (unsigned i = 0; i < ACCEPT_SLOTS; i++)
        x->lis[0].slots[i].l = &x->lis[0];
    list_init(&x->conns);
    list_init(&x->rx_idle);
    for (int k = 0; k < TIMER_MAX; k++)
        list_init(&x->timers[k]);
    /* A real ring: SQE preparation and buffer registration are the real
     * thing; nothing is ever submitted. */
    int rc = io_uring_queue_init(id == 0 ? SQ_ENTRIES : PEER_SQ_ENTRIES, &x->ring, 0);
    if (rc < 0)
        die("io_uring_queue_init: %s (io_uring blocked here?)", strerror(-rc));
    x->ring_ready = true;
    x->ring_fd = x->ring.ring_fd;
    x->now_ms = clock_ms;
}

static void process_sqes(void);
static void dispatch(struct io_uring_cqe *cqe);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[512];
    const char *so = getenv("CZ_FUZZ_SLOT_ORACLE");
    slot_oracle = !so || *so != '0';
    const char *sl = getenv("CZ_FUZZ_SHORT_SEND_CANCELS_LINK");
    short_send_cancels_link = sl && *sl == '1';
    trace = getenv("CZ_FUZZ_TRACE") != NULL;
    stats = getenv("CZ_FUZZ_STATS") != NULL;
    if (stats)
        atexit(print_stats);
    make_docroot();
    atexit(cleanup_docroot);

    static struct cz_config cfg;
    cz_config_defaults(&cfg);
    /* Small limits, so short inputs reach every limit and the output queue
     * backs up (read pause) with a handful of pipelined requests. */
    cfg.threads = 2;
    cfg.ring_entries = SQ_ENTRIES;
    cfg.recv_buffers = 8;
    cfg.recv_buffer_size = 512;
    cfg.max_request_line = 256;
    cfg.max_header_size = 1024;
    cfg.max_headers = 12;
    cfg.max_body_size = 2048;
    cfg.max_output_queue = 4096; /* per input: see LLVMFuzzerTestOneInput */
    cfg.max_keepalive_requests = 40;
    cfg.root = docroot;
    cfg.file_cache_size = 64 * 1024;
    cfg.file_cache_max_file = 4096;
    cfg.zerocopy = CZ_ZEROCOPY_ON;
    cfg.zc_threshold = 1024;
    cfg.log_level = CZ_LOG_ERROR;
    cfg.admin = "same"; /* the admin routes (stats gathers) on the fuzzed connections */
    cz_log_set_level(CZ_LOG_ERROR);

    catzilla_memory_init(NULL);
    if (cz_server_create(&cfg, &srv) < 0 || builtin_register(srv) < 0)
        die("server set-up");
    if (cz_static_global_init(srv, err, sizeof(err)) < 0)
        die("static: %s", err);
    srv->admin_mode = ADMIN_SAME; /* what cz_server_run resolves --admin same to */
    /* Aligned as the server allocates them: user_data tags need the low bits.
     * Worker 1 only answers the stats gathers of worker 0 (MSG_RING). */
    srv->workers = aligned_alloc(alignof(struct worker), 2 * sizeof(*srv->workers));
    if (!srv->workers)
        die("out of memory");
    memset(srv->workers, 0, 2 * sizeof(*srv->workers));
    srv->nworkers = 2;
    w = &srv->workers[0];
    peer = &srv->workers[1];
    if (catzilla_memory_thread_init() < 0)
        die("arenas");
    worker_basics(w, 0);
    worker_basics(peer, 1);
    if (cz_bufring_setup(&w->ring, &w->bufs, 0, (unsigned)cfg.recv_buffers,
                         (unsigned)cfg.recv_buffer_size, err, sizeof(err)) < 0)
        die("%s", err);
    w->registered_bytes += w->bufs.registered_bytes;
    w->router = cz_router_create();
    for (struct route *r = srv->routes; r; r = r->next)
        if (!w->router || cz_router_add(w->router, r->method, r->pattern, r) < 0)
            die("router");
    if (output_worker_init(w, err, sizeof(err)) < 0)
        die("%s", err);
    struct cz_fs_env env = {
        .ring = &w->ring,
        .mime = srv->mime,
        .cache_size = (size_t)cfg.file_cache_size,
        .max_file = (size_t)cfg.file_cache_max_file,
        .now_ms = &w->now_ms,
        .registered_bytes = &w->registered_bytes,
    };
    w->fcache = cz_filecache_create(&env);
    if (!w->fcache)
        die("file cache: out of memory");
    worker_update_date(w);

    /* The loop's first turn arms the multishot accept and the tick: here one
     * tick with accepts paused does both, through the real dispatch. */
    w->accept_paused = true;
    struct io_uring_cqe kick = {.user_data = cz_ud(w, OP_TICK), .res = -ETIME};
    dispatch(&kick);
    process_sqes();
    if (!wk.accept_armed || !wk.tick_armed)
        die("the first tick armed no accept or no tick");

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
    /* It has looked its file up: operations issued at submission have; an
     * io-wq one (splice, shutdown) or the tail of a link only once it runs. */
    bool started;
    bool link_tail; /* the previous SQE linked to this one */
    int sock;       /* the socket it names (-1: none) */
    int due_turn;   /* it completes no earlier than this turn */
    int res;        /* OPENAT2: the result, decided at submission */
    const struct conn *job_conn; /* OP_FS: the connection of its job */
};

struct zc_notif {
    int sock;
    uint64_t ud;
    const char *ptr;
    size_t len;
    size_t stream_off; /* where its bytes landed in the client's stream */
    int delay;         /* turns until the notification */
};

/* What the response to one dispatched request must look like. */
enum expect_kind {
    EXP_NOFILE,  /* anything without a docroot file's ETag */
    EXP_FILE,    /* a docroot file: its ETag if anything of it is served */
    EXP_MISSING, /* a GET or HEAD of a static path that names nothing */
    EXP_BODY     /* a built-in route: its body if 200 */
};
struct expect {
    uint8_t kind;
    uint8_t file;     /* EXP_FILE: docfiles index */
    bool head;
    bool get_or_head;
    const char *body; /* EXP_BODY: a built-in route's 200 body */
};

/* One client connection: the kernel's socket and the client's side. */
struct sock {
    bool accepted;
    bool no_conn;     /* accepted, but the server had no memory for it */
    bool slot_closed; /* its close_direct ran: the slot is free again */
    bool freed;       /* the server freed its connection */
    unsigned slot;
    struct conn *c;
    bool recv_armed;
    uint64_t recv_ud;
    bool shut_wr, reset;
    bool send_failed; /* the stream may be cut short */
    char *out;        /* what the client received */
    size_t out_len, out_cap;
    uint32_t outq;    /* bytes sent but not yet acknowledged (SIOCOUTQ) */
    /* the client's schedule */
    const uint8_t *data;
    size_t size;
    size_t cuts[MAX_CHUNKS + 1];
    unsigned ncuts, chunk;
    unsigned reset_at;
    bool eof_sent;
    int accept_turn;
    uint64_t silent_until; /* takes no sends before then */
    bool slow;             /* meanwhile it still acknowledges a little */
    /* the requests dispatched, in order */
    struct expect exp[MAX_EXPECT];
    unsigned nexp;
};

/* The kernel's state for one input (reset for every input). */
static struct {
    struct sock socks[MAX_SOCKS];
    unsigned nsocks;
    int slots[NSLOTS]; /* the socket in each direct-descriptor slot, -1 if free */
    struct pending_op pend[MAX_PENDING];
    unsigned npend;
    struct zc_notif notifs[MAX_PENDING];
    unsigned nnotif;
    struct {
        uint64_t ud, due;
    } timers[MAX_TIMERS]; /* file jobs' delays (CATZILLA_FAULT_SLOW_OPEN) */
    unsigned ntimers;
    struct io_uring_cqe cq[4 * MAX_PENDING + MAX_MSGS];
    unsigned ncq;
    unsigned next_bid;
    int turn;
    bool stalled[MAX_SOCKS];
    /* knobs */
    unsigned partial_one_in, stall_one_in, enobufs_one_in, error_one_in, race_one_in, eagain_one_in,
        msg_fail_one_in, send_eagain_one_in, late_one_in, late_max, open_fail_one_in,
        fs_error_one_in, accept_end_one_in;
    bool send_eof, allow_reset, shuffle, zc_cancel_notifies, probe_unsupported;
} fk;

/* Client streams keep their buffers from one input to the next. */
static struct {
    char *p;
    size_t cap;
} out_keep[MAX_SOCKS];

static void dispatch(struct io_uring_cqe *cqe)
{
    server_dispatch_cqe(w, cqe);
}

static void cq_post(uint64_t ud, int res, unsigned flags)
{
    if (trace)
        fprintf(stderr, "fuzz_request:   cqe tag %u res %d flags %#x\n", cz_ud_tag(ud), res, flags);
    if (fk.ncq >= sizeof(fk.cq) / sizeof(fk.cq[0]))
        die("fake CQ overflow");
    fk.cq[fk.ncq++] = (struct io_uring_cqe){.user_data = ud, .res = res, .flags = flags};
}

static void out_add(struct sock *k, const void *p, size_t n)
{
    if (k->out_len + n > k->out_cap) {
        size_t cap = k->out_cap ? k->out_cap * 2 : 65536;
        while (cap < k->out_len + n)
            cap *= 2;
        k->out = realloc(k->out, cap);
        if (!k->out)
            die("out of memory");
        k->out_cap = cap;
    }
    memcpy(k->out + k->out_len, p, n);
    k->out_len += n;
    uint64_t q = (uint64_t)k->outq + n;
    k->outq = q > (4u << 20) ? (4u << 20) : (uint32_t)q;
}

/* ---------- who is who ---------- */

static bool conn_listed(const struct conn *c)
{
    for (struct list_node *n = w->conns.next; n != &w->conns; n = n->next)
        if (container_of(n, struct conn, all_link) == c)
            return true;
    return false;
}

/* The socket of a live connection, -1 if none. */
static int sock_of_conn(const struct conn *c)
{
    for (unsigned i = 0; i < fk.nsocks; i++)
        if (fk.socks[i].c == c && c && !fk.socks[i].freed)
            return (int)i;
    return -1;
}

/* A file job's connection: the job must be the head of its job list (one
 * job runs per connection at a time, the oldest first). */
static struct conn *conn_of_job(const void *job, unsigned opcode)
{
    for (struct list_node *n = w->conns.next; n != &w->conns; n = n->next) {
        struct conn *c = container_of(n, struct conn, all_link);
        if ((const void *)c->file_jobs == job)
            return c;
    }
    die("file operation (opcode %u) for a job that is not the running job of any live "
        "connection",
        opcode);
}

static bool tag_names_conn(unsigned tag)
{
    return tag == OP_RECV || tag == OP_SEND || tag == OP_FILE || tag == OP_CLOSE ||
           tag == OP_SHUTDOWN || tag == OP_CANCEL || tag == OP_PROBE;
}

/* An operation on a socket slot: the socket there, which must be the
 * connection's own. */
static int check_slot(const struct io_uring_sqe *sqe, int slot)
{
    if (slot < 0 || slot >= NSLOTS || fk.slots[slot] < 0)
        die("opcode %u names slot %d, which holds no socket (closed, or never accepted): the "
            "next accept may put another connection there",
            sqe->opcode, slot);
    int s = fk.slots[slot];
    unsigned tag = cz_ud_tag(sqe->user_data);
    if (sqe->user_data && tag_names_conn(tag)) {
        int cs = sock_of_conn(cz_ud_ptr(sqe->user_data));
        if (cs != s)
            die("opcode %u (tag %u) of connection %d names slot %d, which holds connection %d's "
                "socket",
                sqe->opcode, tag, cs, slot, s);
    }
    return s;
}

/* Which opcodes each user_data tag may carry: server_dispatch_cqe reads the
 * CQE by its tag, so a tag on another operation, or a tag it does not know,
 * is a completion handled wrongly or dropped. */
#define OPS(x) (1ull << (x))
static const uint64_t tag_ops[OP_MAX] = {
    [OP_ACCEPT] = OPS(IORING_OP_ACCEPT),
    [OP_RECV] = OPS(IORING_OP_RECV),
    [OP_SEND] = OPS(IORING_OP_SEND) | OPS(IORING_OP_SENDMSG) | OPS(IORING_OP_POLL_ADD),
    [OP_SEND_ZC] = OPS(IORING_OP_SEND_ZC),
    [OP_FILE] =
        OPS(IORING_OP_SPLICE) | OPS(IORING_OP_READ) | OPS(IORING_OP_SEND) | OPS(IORING_OP_POLL_ADD),
    [OP_CLOSE] = OPS(IORING_OP_CLOSE),
    [OP_SHUTDOWN] = OPS(IORING_OP_SHUTDOWN),
    [OP_CANCEL] = OPS(IORING_OP_ASYNC_CANCEL),
    [OP_TICK] = OPS(IORING_OP_TIMEOUT),
    [OP_MSG_SENT] = OPS(IORING_OP_MSG_RING),
    [OP_FS] = OPS(IORING_OP_OPENAT2) | OPS(IORING_OP_STATX) | OPS(IORING_OP_READ) |
              OPS(IORING_OP_TIMEOUT),
    [OP_PROBE] = OPS(IORING_OP_URING_CMD),
};

static void check_tag(const struct io_uring_sqe *sqe)
{
    uint64_t ud = sqe->user_data;
    if (!ud)
        return; /* no CQE wanted: dispatch ignores it */
    unsigned tag = cz_ud_tag(ud);
    if (!cz_ud_ptr(ud))
        die("SQE (opcode %u) with tag %u and a NULL pointer", sqe->opcode, tag);
    if (tag >= OP_MAX || !(tag_ops[tag] & OPS(sqe->opcode)))
        die("SQE opcode %u carries user_data tag %u: the fake kernel does not model that pair "
            "(a new operation? model it here)",
            sqe->opcode, tag);
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

static void sqe_send_copy(struct sock *k, const struct io_uring_sqe *sqe, size_t n)
{
    if (sqe->opcode != IORING_OP_SENDMSG) {
        out_add(k, (const void *)(uintptr_t)sqe->addr, n);
        return;
    }
    const struct msghdr *m = (const struct msghdr *)(uintptr_t)sqe->addr;
    for (size_t i = 0; i < m->msg_iovlen && n; i++) {
        size_t c = m->msg_iov[i].iov_len < n ? m->msg_iov[i].iov_len : n;
        out_add(k, m->msg_iov[i].iov_base, c);
        n -= c;
    }
}

static size_t partial(size_t len)
{
    if (len > 1 && rng_chance(fk.partial_one_in))
        return 1 + rng_below((unsigned)(len - 1));
    return len;
}

static bool is_send(const struct io_uring_sqe *sqe)
{
    return sqe->opcode == IORING_OP_SEND || sqe->opcode == IORING_OP_SENDMSG ||
           sqe->opcode == IORING_OP_SEND_ZC;
}

static bool waitall(const struct io_uring_sqe *sqe)
{
    return is_send(sqe) && (sqe->msg_flags & MSG_WAITALL);
}

/* A step on a file, not on the socket: a client's stall does not hold it. */
static bool is_file_side(const struct io_uring_sqe *sqe)
{
    return sqe->opcode == IORING_OP_READ || sqe->opcode == IORING_OP_OPENAT2 ||
           sqe->opcode == IORING_OP_STATX ||
           (sqe->opcode == IORING_OP_SPLICE && !(sqe->flags & IOSQE_FIXED_FILE));
}

/* Run by io-wq: looks its file up only when a worker thread starts it. */
static bool is_iowq(const struct io_uring_sqe *sqe)
{
    return sqe->opcode == IORING_OP_SPLICE || sqe->opcode == IORING_OP_SHUTDOWN;
}

static bool is_drain_splice(const struct io_uring_sqe *sqe)
{
    return sqe->opcode == IORING_OP_SPLICE && (sqe->flags & IOSQE_FIXED_FILE);
}

/* A splice into a non-blocking socket (or with SPLICE_F_NONBLOCK) returns
 * -EAGAIN when the socket buffer is full instead of waiting. */
static bool drain_nonblocking(const struct io_uring_sqe *sqe)
{
    return (sqe->splice_flags & SPLICE_F_NONBLOCK) || wk.accept_nonblock;
}

static struct stat fd_stat(int fd, const char *what)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        die("%s: descriptor %d is not open", what, fd);
    return st;
}

static int pipe_bytes(int fd)
{
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) < 0)
        die("FIONREAD on pipe %d: %s", fd, strerror(errno));
    return n;
}

/* The byte range a file step reads must lie inside the file (the docroot
 * never changes while fuzzing). */
static void check_file_range(int fd, uint64_t off, uint64_t len, const char *what)
{
    struct stat st = fd_stat(fd, what);
    if (!S_ISREG(st.st_mode))
        die("%s from descriptor %d, which is not a regular file", what, fd);
    if (off > (uint64_t)st.st_size || len > (uint64_t)st.st_size - off)
        die("%s of %llu bytes at %llu from a %lld-byte file (range bookkeeping)", what,
            (unsigned long long)len, (unsigned long long)off, (long long)st.st_size);
}

static void check_drain(const struct io_uring_sqe *sqe)
{
    if (sqe->splice_flags & SPLICE_F_FD_IN_FIXED)
        die("splice from a fixed descriptor: not modelled");
    if ((int64_t)sqe->splice_off_in != -1 || (int64_t)sqe->off != -1)
        die("pipe -> socket splice with an offset");
    struct stat st = fd_stat(sqe->splice_fd_in, "splice drain");
    if (!S_ISFIFO(st.st_mode))
        die("splice drain from descriptor %d, which is not a pipe", sqe->splice_fd_in);
    if (pipe_bytes(sqe->splice_fd_in) == 0)
        die(drain_nonblocking(sqe)
                ? "splice drain from an empty pipe: the kernel answers -EAGAIN, which the "
                  "engine takes for a full socket, and it polls and drains forever"
                : "splice drain from an empty pipe: the kernel would block here forever");
}

/* file -> pipe: really splice, so the descriptors must still be open. */
static int splice_fill(const struct io_uring_sqe *sqe)
{
    if (sqe->splice_flags & SPLICE_F_FD_IN_FIXED)
        die("splice from a fixed descriptor: not modelled");
    int64_t off = (int64_t)sqe->splice_off_in;
    if (off < 0 || (int64_t)sqe->off != -1)
        die("file -> pipe splice without a file offset, or with a pipe offset");
    check_file_range(sqe->splice_fd_in, (uint64_t)off, sqe->len, "splice fill");
    struct stat st = fd_stat(sqe->fd, "splice fill");
    if (!S_ISFIFO(st.st_mode))
        die("splice fill into descriptor %d, which is not a pipe", sqe->fd);
    int held = pipe_bytes(sqe->fd);
    if (held)
        die("splice fill into a pipe that still holds %d bytes of an earlier transfer", held);
    loff_t o = off;
    ssize_t r = splice(sqe->splice_fd_in, &o, sqe->fd, NULL, partial(sqe->len),
                       SPLICE_F_NONBLOCK | (sqe->splice_flags & SPLICE_F_MOVE));
    if (r < 0 && errno == EAGAIN)
        die("splice fill into a full pipe (pipe accounting)");
    return r < 0 ? -errno : (int)r;
}

/* A file job's descriptor: opened by this fake kernel for this job, still open. */
static void check_job_fd(const struct io_uring_sqe *sqe, const char *what)
{
    int fd = sqe->fd;
    if (sqe->flags & IOSQE_FIXED_FILE)
        die("%s of a fixed descriptor: not modelled", what);
    if (fd < 0 || fd >= MAX_FDS || !fdt[fd].live)
        die("%s of descriptor %d, which no open of a file job returned (or it was closed)", what,
            fd);
    if (fdt[fd].job != cz_ud_ptr(sqe->user_data))
        die("%s of descriptor %d, which another file job opened", what, fd);
}

/* READ of a file into the engine's buffer (the read-and-send engine's
 * bounce buffer, or a file job's cache buffer), written now (at completion). */
static int file_read(const struct io_uring_sqe *sqe)
{
    if (sqe->flags & IOSQE_FIXED_FILE)
        die("read from a fixed descriptor: not modelled");
    if (cz_ud_tag(sqe->user_data) == OP_FS) {
        check_job_fd(sqe, "file job read");
        if (rng_chance(fk.fs_error_one_in))
            return -EIO;
    }
    check_file_range(sqe->fd, sqe->off, sqe->len, "read");
    ssize_t r = pread(sqe->fd, (void *)(uintptr_t)sqe->addr, partial(sqe->len), (off_t)sqe->off);
    return r < 0 ? -errno : (int)r;
}

static int file_statx(const struct io_uring_sqe *sqe)
{
    check_job_fd(sqe, "statx");
    if (rng_chance(fk.fs_error_one_in))
        return -ENOMEM;
    struct statx *stx = (struct statx *)(uintptr_t)sqe->off;
    int r = statx(sqe->fd, "", (int)sqe->statx_flags, sqe->len, stx);
    return r < 0 ? -errno : 0;
}

/* pipe -> socket: take the bytes out of the real pipe. */
static int splice_drain(struct sock *k, const struct io_uring_sqe *sqe)
{
    check_drain(sqe);
    size_t want = partial(sqe->len);
    char buf[65536];
    if (want > sizeof(buf))
        want = sizeof(buf);
    int fd = sqe->splice_fd_in;
    int fl = fcntl(fd, F_GETFL);
    if (!(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    ssize_t r = read(fd, buf, want);
    if (r < 0)
        die("pipe read: %s", strerror(errno));
    out_add(k, buf, (size_t)r);
    return (int)r;
}

static void zc_notify_later(int s, uint64_t ud, const char *ptr, size_t len, size_t at)
{
    if (fk.nnotif >= MAX_PENDING)
        die("too many SEND_ZC notifications");
    fk.notifs[fk.nnotif++] = (struct zc_notif){s, ud, ptr, len, at, (int)rng_below(3)};
}

/* A send that failed (or was cancelled): SEND_ZC's result CQE then says
 * whether a notification follows (Linux posts one for an issued request, and
 * some versions for a cancelled one too). */
static void post_send_failure(int s, const struct io_uring_sqe *sqe, int res, bool issued)
{
    if (sqe->opcode == IORING_OP_SEND_ZC && (issued || fk.zc_cancel_notifies)) {
        cq_post(sqe->user_data, res, IORING_CQE_F_MORE);
        zc_notify_later(s, sqe->user_data, NULL, 0, 0);
        return;
    }
    cq_post(sqe->user_data, res, 0);
}

/* Complete one operation (post its CQE); returns its result.  *failed: the
 * request failed (as req_set_fail), which cancels what is linked to it even
 * when the result is a byte count (a MSG_WAITALL send cut by an error). */
static int complete_op(const struct pending_op *p, bool *failed)
{
    const struct io_uring_sqe *sqe = &p->sqe;
    uint64_t ud = sqe->user_data;
    int res;
    *failed = false;
    if (sqe->opcode == IORING_OP_OPENAT2) {
        cq_post(ud, p->res, 0);
        return p->res;
    }
    if (sqe->opcode == IORING_OP_STATX) {
        res = file_statx(sqe);
        cq_post(ud, res, 0);
        return res;
    }
    if (is_file_side(sqe)) {
        res = sqe->opcode == IORING_OP_READ ? file_read(sqe) : splice_fill(sqe);
        cq_post(ud, res, 0);
        return res;
    }
    int s = p->sock;
    if (s < 0)
        die("socket operation (opcode %u) without a socket", sqe->opcode);
    struct sock *k = &fk.socks[s];
    if (sqe->opcode == IORING_OP_SHUTDOWN) {
        res = k->slot_closed ? -EBADF : 0;
        k->shut_wr |= res == 0;
        cq_post(ud, res, 0);
        return res;
    }
    if (k->slot_closed) {
        post_send_failure(s, sqe, -EBADF, true);
        return -EBADF;
    }
    if (sqe->opcode == IORING_OP_POLL_ADD) {
        /* Shut or reset, the socket polls writable (with POLLERR when reset). */
        res = POLLOUT | (k->reset ? POLLERR | POLLHUP : 0);
        cq_post(ud, res, 0);
        return res;
    }
    if (k->shut_wr || k->reset || rng_chance(fk.error_one_in)) {
        res = k->reset ? -ECONNRESET : -EPIPE;
        k->send_failed = true;
        size_t len = sqe_send_len(sqe);
        if (waitall(sqe) && sqe->opcode != IORING_OP_SEND_ZC && len > 1 && rng_chance(2)) {
            /* Linux: a WAITALL send that fails after part of it went out
             * completes with the bytes sent, and fails its link. */
            size_t n = 1 + rng_below((unsigned)(len - 1));
            st.waitall_fail++;
            sqe_send_copy(k, sqe, n);
            *failed = true;
            cq_post(ud, (int)n, 0);
            return (int)n;
        }
        post_send_failure(s, sqe, res, true);
        return res;
    }
    if (is_drain_splice(sqe)) {
        res = splice_drain(k, sqe);
        cq_post(ud, res, 0);
        return res;
    }
    size_t len = sqe_send_len(sqe);
    /* MSG_WAITALL: the kernel retries a short send on a stream socket. */
    size_t n = waitall(sqe) ? len : partial(len);
    if (sqe->opcode == IORING_OP_SEND_ZC) {
        size_t at = k->out_len;
        out_add(k, (const void *)(uintptr_t)sqe->addr, n);
        zc_notify_later(s, ud, (const char *)(uintptr_t)sqe->addr, n, at);
        cq_post(ud, (int)n, IORING_CQE_F_MORE);
        return (int)n;
    }
    sqe_send_copy(k, sqe, n);
    cq_post(ud, (int)n, 0);
    return (int)n;
}

/* Does this result fail the link (cancel the linked successors)?  As in
 * Linux: an error does, and a failed request does; a short send only with
 * MSG_WAITALL (only ever a failure here: the send is retried until
 * complete); a short splice or read does. */
static bool breaks_link(const struct io_uring_sqe *sqe, int res, bool failed)
{
    if (res < 0 || failed)
        return true;
    if (is_send(sqe))
        return short_send_cancels_link && (size_t)res != sqe_send_len(sqe);
    if (sqe->opcode == IORING_OP_SPLICE || sqe->opcode == IORING_OP_READ)
        return (size_t)res != sqe->len;
    return false;
}

/* Cancel the pending operations match() selects (all of them, or the first);
 * the linked successors of a cancelled one are cancelled with it.  An io-wq
 * operation that already runs cannot be cancelled (-EALREADY); one that has
 * not started yet loses the race with its worker thread 1 in race_one_in. */
static int cancel_pending(bool (*match)(const struct pending_op *, uint64_t), uint64_t key,
                          bool all)
{
    int cancelled = 0, running = 0;
    unsigned j = 0;
    bool chain = false;
    for (unsigned i = 0; i < fk.npend; i++) {
        struct pending_op *p = &fk.pend[i];
        if (p->link_tail && chain) {
            post_send_failure(p->sock, &p->sqe, -ECANCELED, false);
            chain = p->sqe.flags & IOSQE_IO_LINK;
            continue;
        }
        chain = false;
        if ((all || !cancelled) && match(p, key)) {
            if (is_iowq(&p->sqe) && !p->started && rng_chance(fk.race_one_in))
                p->started = true;
            if (is_iowq(&p->sqe) && p->started) {
                running++;
                fk.pend[j++] = *p;
                continue;
            }
            post_send_failure(p->sock, &p->sqe, -ECANCELED, false);
            cancelled++;
            chain = p->sqe.flags & IOSQE_IO_LINK;
            continue;
        }
        fk.pend[j++] = *p;
    }
    fk.npend = j;
    return cancelled ? cancelled : running ? -EALREADY : -ENOENT;
}

/* Cancel by the socket's descriptor matches the operations that hold it:
 * those that have looked the fixed file up. */
static bool match_socket(const struct pending_op *p, uint64_t key)
{
    return (p->sqe.flags & IOSQE_FIXED_FILE) && p->started && p->sock == (int)key;
}

static bool match_ud(const struct pending_op *p, uint64_t key)
{
    return p->sqe.user_data == key;
}

/* A connection runs one file operation at a time (its oldest job's). */
static void check_one_fs_op(const struct conn *c)
{
    for (unsigned j = 0; j < fk.npend; j++)
        if (cz_ud_tag(fk.pend[j].sqe.user_data) == OP_FS && fk.pend[j].job_conn == c)
            die("a second file operation of one connection while one is in flight");
    for (unsigned j = 0; j < fk.ntimers; j++)
        if (conn_of_job(cz_ud_ptr(fk.timers[j].ud), IORING_OP_TIMEOUT) == c)
            die("a file operation of a connection whose job still waits for its delay");
}

static struct pending_op *pend_add(const struct io_uring_sqe *sqe, bool link_tail, int sock)
{
    if (fk.npend >= MAX_PENDING)
        die("too many operations in flight");
    struct pending_op *p = &fk.pend[fk.npend++];
    memset(p, 0, sizeof(*p));
    p->sqe = *sqe;
    p->link_tail = link_tail;
    p->started = !is_iowq(sqe) && !link_tail;
    p->sock = sock;
    /* Late: held back a few turns (the clock runs on meanwhile when nothing
     * else moves, so timers fire and connections close under it). */
    p->due_turn = fk.turn + (rng_chance(fk.late_one_in) ? 1 + (int)rng_below(fk.late_max) : 0);
    return p;
}

static uint64_t msg_delay(void)
{
    static const uint64_t d[] = {0, 0, 40, 700, 1600, 30000};
    return d[rng_below(sizeof(d) / sizeof(d[0]))];
}

static void msg_queue(struct worker *to, uint64_t ud, int res)
{
    if (wk.nmsgs >= MAX_MSGS)
        die("too many MSG_RING messages in flight");
    wk.msgs[wk.nmsgs++] = (struct msg){to, ud, res, clock_ms + msg_delay()};
}

static void check_msg_ring(const struct io_uring_sqe *sqe, const struct worker *to)
{
    if (sqe->addr != 0 /* IORING_MSG_DATA */ || sqe->msg_ring_flags != 0)
        die("MSG_RING command %llu flags %#x: not modelled", (unsigned long long)sqe->addr,
            sqe->msg_ring_flags);
    if (sqe->fd != to->ring_fd)
        die("MSG_RING to descriptor %d, which is not worker %u's ring", sqe->fd, to->id);
    if (cz_ud_tag(sqe->off) != OP_MSG || !cz_ud_ptr(sqe->off))
        die("MSG_RING carrying user_data tag %u, not OP_MSG", cz_ud_tag(sqe->off));
}

/* Copy out the SQEs prepared on ring since the last call, without submitting. */
static unsigned take_sqes(struct io_uring *ring, struct io_uring_sqe *out, unsigned cap)
{
    struct io_uring_sq *sq = &ring->sq;
    if (*sq->khead != 0 || sq->sqe_head != 0)
        die("the engine submitted to the ring (SQ overflow?)");
    unsigned n = sq->sqe_tail - sq->sqe_head;
    if (n > cap)
        die("too many SQEs in one turn");
    for (unsigned i = 0; i < n; i++)
        out[i] = sq->sqes[(sq->sqe_head + i) & sq->ring_mask];
    sq->sqe_tail = sq->sqe_head;
    return n;
}

/* The peer worker's SQEs: only replies to a stats gather. */
static void process_peer_sqes(void)
{
    struct io_uring_sqe sqes[PEER_SQ_ENTRIES];
    unsigned n = take_sqes(&peer->ring, sqes, PEER_SQ_ENTRIES);
    for (unsigned i = 0; i < n; i++) {
        if (sqes[i].opcode != IORING_OP_MSG_RING)
            die("peer worker: unexpected SQE opcode %u", sqes[i].opcode);
        if (sqes[i].user_data)
            die("peer worker: a MSG_RING that wants its own CQE: not modelled");
        check_msg_ring(&sqes[i], w);
        msg_queue(w, sqes[i].off, (int)sqes[i].len);
    }
}

/* Messages whose time has come (all of them if flush). */
static bool deliver_msgs(bool flush)
{
    bool any = false;
    unsigned i = 0;
    while (i < wk.nmsgs) {
        struct msg m = wk.msgs[i];
        if (!flush && clock_ms < m.due) {
            i++;
            continue;
        }
        wk.msgs[i] = wk.msgs[--wk.nmsgs];
        any = true;
        if (m.to == peer) {
            struct io_uring_cqe cqe = {.user_data = m.ud, .res = m.res};
            server_dispatch_cqe(peer, &cqe);
            process_peer_sqes();
        } else {
            cq_post(m.ud, m.res, 0);
        }
    }
    return any;
}

/* File jobs' delays whose time has come. */
static bool fire_timers(void)
{
    bool any = false;
    unsigned j = 0;
    for (unsigned i = 0; i < fk.ntimers; i++) {
        if (clock_ms < fk.timers[i].due) {
            fk.timers[j++] = fk.timers[i];
            continue;
        }
        cq_post(fk.timers[i].ud, -ETIME, 0);
        any = true;
    }
    fk.ntimers = j;
    return any;
}

/* The engine's openat2: relative to the docroot, read-only, beneath it.  The
 * kernel copies path and open_how at submission; the open itself is the real
 * system call (or an injected failure), its result delivered when due. */
static int submit_open(const struct io_uring_sqe *sqe, int sock)
{
    if (sqe->flags & (IOSQE_FIXED_FILE | IOSQE_IO_LINK))
        die("openat2 with a fixed descriptor or a link: not modelled");
    if (sqe->file_index)
        die("openat2 into a direct descriptor: not modelled");
    if (sqe->fd != srv->root_fd)
        die("openat2 relative to descriptor %d, not the docroot's (%d)", sqe->fd, srv->root_fd);
    if (sqe->len != sizeof(struct open_how))
        die("openat2 with an open_how of %u bytes", sqe->len);
    const struct open_how *how = (const struct open_how *)(uintptr_t)sqe->off;
    const char *path = (const char *)(uintptr_t)sqe->addr;
    if (!how || !path)
        die("openat2 without a path or an open_how");
    const uint64_t need = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    if ((how->resolve & need) != need)
        die("openat2 of \"%s\" without RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS (resolve %#llx)",
            path, (unsigned long long)how->resolve);
    if ((how->flags & O_ACCMODE) != O_RDONLY || (how->flags & (O_CREAT | O_TRUNC | O_PATH)))
        die("openat2 of \"%s\" with flags %#llo: not a plain read-only open", path,
            (unsigned long long)how->flags);
    if (rng_chance(fk.open_fail_one_in)) {
        st.open_fail++;
        return rng_below(2) ? -EAGAIN : -EMFILE;
    }
    long r = syscall(SYS_openat2, sqe->fd, path, how, sizeof(*how));
    if (r < 0)
        return -errno;
    int fd = (int)r;
    struct stat st = fd_stat(fd, "openat2");
    bool ours = false;
    for (size_t i = 0; i < sizeof(doc_inodes) / sizeof(doc_inodes[0]); i++)
        ours |= doc_inodes[i].dev == st.st_dev && doc_inodes[i].ino == st.st_ino;
    if (!ours)
        die("openat2 of \"%s\" opened something outside the docroot", path);
    if (fd >= MAX_FDS)
        die("descriptor %d: too many open", fd);
    fdt[fd].live = true;
    fdt[fd].sock = sock;
    fdt[fd].job = cz_ud_ptr(sqe->user_data);
    if (fd > fdt_max)
        fdt_max = fd;
    return fd;
}

/* Take the SQEs the engine prepared this turn, without submitting them. */
static void process_sqes(void)
{
    static struct io_uring_sqe sqes[SQ_ENTRIES];
    unsigned n = take_sqes(&w->ring, sqes, SQ_ENTRIES);
    bool link_tail = false;
    int link_sock = -1;
    for (unsigned i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = &sqes[i];
        uint64_t ud = sqe->user_data;
        unsigned tag = cz_ud_tag(ud);
        bool tail = link_tail;
        link_tail = sqe->flags & IOSQE_IO_LINK;
        if (trace)
            fprintf(stderr, "fuzz_request: sqe opcode %u tag %u fd %d len %u flags %#x%s\n",
                    sqe->opcode, tag, sqe->fd, sqe->len, sqe->flags, tail ? " (link tail)" : "");
        check_tag(sqe);
        st.sqes[sqe->opcode & 63]++;
        st.tagged[tag]++;
        int s = -1;
        if (sqe->flags & IOSQE_FIXED_FILE)
            s = check_slot(sqe, sqe->fd);
        if (tail && !is_send(sqe))
            die("opcode %u linked after another operation: not modelled", sqe->opcode);
        if (tail && s != link_sock)
            die("a link across two sockets");
        link_sock = s;
        switch (sqe->opcode) {
        case IORING_OP_NOP:
            cq_post(ud, 0, 0);
            break;
        case IORING_OP_ACCEPT:
            if (wk.accept_armed)
                die("a second multishot accept");
            if (!(sqe->ioprio & IORING_ACCEPT_MULTISHOT) ||
                sqe->file_index != IORING_FILE_INDEX_ALLOC)
                die("accept that is not multishot into a direct descriptor: not modelled");
            wk.accept_armed = true;
            wk.accept_ud = ud;
            wk.accept_nonblock = sqe->accept_flags & SOCK_NONBLOCK;
            break;
        case IORING_OP_TIMEOUT: {
            if (sqe->off != 0 || sqe->timeout_flags != 0)
                die("timeout with a count or flags %#x: not modelled", sqe->timeout_flags);
            const struct __kernel_timespec *ts =
                (const struct __kernel_timespec *)(uintptr_t)sqe->addr;
            uint64_t due = clock_ms + (uint64_t)ts->tv_sec * 1000 + (uint64_t)ts->tv_nsec / 1000000;
            if (tag == OP_FS) {
                check_one_fs_op(conn_of_job(cz_ud_ptr(ud), sqe->opcode));
                if (fk.ntimers >= MAX_TIMERS)
                    die("too many file job delays");
                fk.timers[fk.ntimers].ud = ud;
                fk.timers[fk.ntimers].due = due;
                fk.ntimers++;
                break;
            }
            if (wk.tick_armed)
                die("a second tick armed while one is pending");
            wk.tick_armed = true;
            wk.tick_ud = ud;
            wk.tick_due = due;
            break;
        }
        case IORING_OP_MSG_RING:
            check_msg_ring(sqe, peer);
            if (rng_chance(fk.msg_fail_one_in)) {
                cq_post(ud, -EOVERFLOW, 0); /* the peer's CQ is full */
            } else {
                msg_queue(peer, sqe->off, (int)sqe->len);
                cq_post(ud, 0, 0);
            }
            break;
        case IORING_OP_RECV: {
            if (s < 0)
                die("recv on a plain descriptor: not modelled");
            struct sock *k = &fk.socks[s];
            if (k->recv_armed)
                die("a second multishot recv on one connection");
            if (!(sqe->flags & IOSQE_BUFFER_SELECT) || !(sqe->ioprio & IORING_RECV_MULTISHOT) ||
                sqe->buf_group != w->bufs.bgid)
                die("recv that is not multishot into the worker's provided buffers");
            k->recv_armed = true;
            k->recv_ud = ud;
            break;
        }
        case IORING_OP_SEND:
        case IORING_OP_SENDMSG:
        case IORING_OP_SEND_ZC:
        case IORING_OP_POLL_ADD:
        case IORING_OP_SHUTDOWN:
            if (s < 0)
                die("opcode %u on a plain descriptor: not modelled", sqe->opcode);
            if (sqe->opcode == IORING_OP_POLL_ADD &&
                (sqe->len != 0 /* multishot */ || sqe->poll32_events != POLLOUT))
                die("poll for events %#x (flags %#x): only a one-shot POLLOUT is modelled",
                    sqe->poll32_events, sqe->len);
            pend_add(sqe, tail, s);
            break;
        case IORING_OP_SPLICE:
            pend_add(sqe, tail, s);
            break;
        case IORING_OP_READ:
            if (tag == OP_FS)
                check_one_fs_op(conn_of_job(cz_ud_ptr(ud), sqe->opcode));
            pend_add(sqe, tail, -1)->job_conn =
                tag == OP_FS ? conn_of_job(cz_ud_ptr(ud), sqe->opcode) : NULL;
            break;
        case IORING_OP_OPENAT2: {
            struct conn *c = conn_of_job(cz_ud_ptr(ud), sqe->opcode);
            check_one_fs_op(c);
            int res = submit_open(sqe, sock_of_conn(c));
            struct pending_op *p = pend_add(sqe, tail, -1);
            p->res = res;
            p->job_conn = c;
            break;
        }
        case IORING_OP_STATX: {
            struct conn *c = conn_of_job(cz_ud_ptr(ud), sqe->opcode);
            check_one_fs_op(c);
            const char *path = (const char *)(uintptr_t)sqe->addr;
            if (!path || *path || !(sqe->statx_flags & AT_EMPTY_PATH))
                die("statx that is not of the descriptor itself (AT_EMPTY_PATH, \"\")");
            if ((sqe->len & STATX_BASIC_STATS) != STATX_BASIC_STATS)
                die("statx for mask %#x: not the basic stats", sqe->len);
            check_job_fd(sqe, "statx");
            pend_add(sqe, tail, -1)->job_conn = c;
            break;
        }
        case IORING_OP_URING_CMD: {
            if (s < 0)
                die("uring_cmd on a plain descriptor: not modelled");
            if (sqe->cmd_op != SIOCOUTQ_CMD)
                die("uring_cmd %u: only SIOCOUTQ is modelled", sqe->cmd_op);
            /* SIOCOUTQ runs inline at submission.  A send that waits means
             * a full socket buffer. */
            int res;
            struct sock *k = &fk.socks[s];
            bool waiting = false;
            for (unsigned j = 0; j < fk.npend; j++)
                waiting |= fk.pend[j].sock == s && is_send(&fk.pend[j].sqe);
            if (waiting && k->outq < 65536)
                k->outq = 65536 + rng_below(65536);
            st.probes++;
            st.probe_unsupported += fk.probe_unsupported;
            if (fk.probe_unsupported)
                res = rng_below(2) ? -EINVAL : -EOPNOTSUPP;
            else
                res = (int)k->outq;
            cq_post(ud, res, 0);
            break;
        }
        case IORING_OP_ASYNC_CANCEL: {
            int res;
            if (sqe->cancel_flags & IORING_ASYNC_CANCEL_FD) {
                if (!(sqe->cancel_flags & IORING_ASYNC_CANCEL_FD_FIXED))
                    die("cancel by a plain descriptor: not modelled");
                int cs = check_slot(sqe, sqe->fd);
                struct sock *k = &fk.socks[cs];
                int count = 0;
                if (k->recv_armed) {
                    cq_post(k->recv_ud, -ECANCELED, 0);
                    k->recv_armed = false;
                    count++;
                }
                res = cancel_pending(match_socket, (uint64_t)cs,
                                     sqe->cancel_flags & IORING_ASYNC_CANCEL_ALL);
                if (count)
                    res = res > 0 ? res + count : count;
            } else if (wk.accept_armed && sqe->addr == wk.accept_ud) {
                cq_post(wk.accept_ud, -ECANCELED, 0);
                wk.accept_armed = false;
                res = 0;
            } else {
                res = -ENOENT;
                for (unsigned j = 0; j < fk.nsocks; j++) {
                    struct sock *k = &fk.socks[j];
                    if (k->recv_armed && k->recv_ud == sqe->addr) {
                        cq_post(k->recv_ud, -ECANCELED, 0);
                        k->recv_armed = false;
                        res = 0;
                        break;
                    }
                }
                if (res < 0)
                    res = cancel_pending(match_ud, sqe->addr,
                                         sqe->cancel_flags & IORING_ASYNC_CANCEL_ALL);
            }
            cq_post(ud, res > 0 ? 0 : res, 0);
            break;
        }
        case IORING_OP_CLOSE: {
            if (sqe->file_index == 0)
                die("close of a plain descriptor: not modelled");
            int slot = (int)sqe->file_index - 1;
            int cs = check_slot(sqe, slot);
            /* An armed recv keeps the socket alive past close_direct: the
             * connection then waits for it, which the turn limit catches.
             * An operation on the slot that has not started yet (io-wq, or
             * the tail of a link) would instead run on whatever socket the
             * next accept puts in the freed slot. */
            if (slot_oracle)
                for (unsigned j = 0; j < fk.npend; j++)
                    if (fk.pend[j].sock == cs && (fk.pend[j].sqe.flags & IOSQE_FIXED_FILE) &&
                        !fk.pend[j].started)
                        die("close_direct while a not-yet-started operation (opcode %u) still "
                            "targets the slot: it would hit the next connection in it",
                            fk.pend[j].sqe.opcode);
            fk.socks[cs].slot_closed = true;
            fk.slots[slot] = -1;
            cq_post(ud, 0, 0);
            break;
        }
        default:
            die("unexpected SQE opcode %u (user_data tag %u): not modelled", sqe->opcode, tag);
        }
    }
    if (link_tail)
        die("the last SQE of a turn links to nothing");
}

/* Complete in-flight operations (a link completes as a unit; a failed
 * member cancels the rest), in a shuffled order when the input says so.  An
 * operation held back as late waits; a stalled client (full socket buffer)
 * completes nothing on its socket this turn, except that a non-blocking
 * splice or send into it may answer -EAGAIN at once; file steps go on. */
static bool complete_pending(void)
{
    if (!fk.npend)
        return false;
    bool any = false;
    static struct pending_op cur[MAX_PENDING];
    unsigned n = fk.npend;
    memcpy(cur, fk.pend, n * sizeof(cur[0]));
    fk.npend = 0;
    unsigned start[MAX_PENDING], end[MAX_PENDING], order[MAX_PENDING];
    bool keep[MAX_PENDING];
    unsigned nch = 0;
    for (unsigned i = 0; i < n;) {
        unsigned e = i + 1;
        while (e < n && cur[e].link_tail)
            e++;
        start[nch] = i;
        end[nch] = e;
        order[nch] = nch;
        keep[nch] = false;
        nch++;
        i = e;
    }
    if (fk.shuffle)
        for (unsigned i = nch; i > 1; i--) {
            unsigned j = rng_below(i);
            unsigned t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
    for (unsigned oi = 0; oi < nch; oi++) {
        unsigned ch = order[oi], i = start[ch], e = end[ch];
        const struct io_uring_sqe *head = &cur[i].sqe;
        int s = cur[i].sock;
        if (fk.turn < cur[i].due_turn) {
            st.late++;
            keep[ch] = true;
            continue;
        }
        if (s >= 0 && fk.stalled[s] && !is_file_side(head)) {
            bool closed = fk.socks[s].slot_closed;
            if (e == i + 1 && is_drain_splice(head) && drain_nonblocking(head) && !closed &&
                rng_chance(fk.eagain_one_in)) {
                check_drain(head);
                cq_post(head->user_data, -EAGAIN, 0);
                any = true;
            } else if (is_send(head) && wk.accept_nonblock && !closed &&
                       rng_chance(fk.send_eagain_one_in)) {
                /* The kernel's own poll gave up: -EAGAIN, and the link fails. */
                st.send_eagain++;
                post_send_failure(s, head, -EAGAIN, true);
                for (unsigned k = i + 1; k < e; k++)
                    post_send_failure(s, &cur[k].sqe, -ECANCELED, false);
                any = true;
            } else {
                keep[ch] = true;
            }
            continue;
        }
        bool failed;
        int res = complete_op(&cur[i], &failed);
        bool broken = breaks_link(head, res, failed);
        for (unsigned k = i + 1; k < e; k++) {
            if (broken) {
                post_send_failure(cur[k].sock, &cur[k].sqe, -ECANCELED, false);
                continue;
            }
            res = complete_op(&cur[k], &failed);
            broken = breaks_link(&cur[k].sqe, res, failed);
        }
        any = true;
    }
    /* Nothing was dispatched meanwhile, so the kept ones are all that is
     * pending; they keep their order. */
    for (unsigned ch = 0; ch < nch; ch++)
        if (keep[ch])
            for (unsigned i = start[ch]; i < end[ch]; i++)
                fk.pend[fk.npend++] = cur[i];
    return any;
}

static bool notify_zc(void)
{
    bool any = false;
    unsigned j = 0;
    for (unsigned i = 0; i < fk.nnotif; i++) {
        struct zc_notif *z = &fk.notifs[i];
        if (z->delay-- > 0 && !fk.socks[z->sock].slot_closed) {
            fk.notifs[j++] = *z;
            continue;
        }
        /* The kernel may read the buffer until now: it must still hold the
         * bytes that were sent. */
        if (z->len && memcmp(z->ptr, fk.socks[z->sock].out + z->stream_off, z->len) != 0)
            die("SEND_ZC buffer changed before its notification");
        cq_post(z->ud, 0, IORING_CQE_F_NOTIF);
        any = true;
    }
    fk.nnotif = j;
    return any;
}

static void deliver_data(struct sock *k, const uint8_t *p, size_t n)
{
    struct cz_bufring *b = &w->bufs;
    while (n && k->recv_armed) {
        size_t c = n < b->size ? n : b->size;
        unsigned bid = fk.next_bid++ & b->mask;
        unsigned char *buf = cz_bufring_addr(b, bid);
        memcpy(buf, p, c);
        bool last = c == n;
        unsigned flags = IORING_CQE_F_BUFFER | (bid << IORING_CQE_BUFFER_SHIFT);
        /* Multishot may end with any completion: the engine must re-arm. */
        bool ends = last && rng_chance(8);
        if (!ends)
            flags |= IORING_CQE_F_MORE;
        else
            k->recv_armed = false;
        struct io_uring_cqe cqe = {.user_data = k->recv_ud, .res = (int)c, .flags = flags};
        dispatch(&cqe);
        /* The buffer went back to the ring: nothing may still read it. */
        memset(buf, 0xA5, c);
        p += c;
        n -= c;
    }
}

static void post_recv_end(struct sock *k, int res)
{
    k->recv_armed = false;
    struct io_uring_cqe cqe = {.user_data = k->recv_ud, .res = res, .flags = 0};
    dispatch(&cqe);
}

/* A connection the server freed: its job descriptors must be closed. */
static void notice_frees(void)
{
    for (unsigned i = 0; i < fk.nsocks; i++) {
        struct sock *k = &fk.socks[i];
        if (!k->c || k->freed || conn_listed(k->c))
            continue;
        k->freed = true;
        for (int fd = 0; fd <= fdt_max; fd++)
            if (fdt[fd].live && fdt[fd].sock == (int)i)
                die("connection %u was freed while descriptor %d, opened by one of its file "
                    "jobs, is still open",
                    i, fd);
        if (k->recv_armed)
            die("connection %u was freed with its multishot recv still armed", i);
        for (unsigned j = 0; j < fk.npend; j++)
            if (fk.pend[j].sock == (int)i || fk.pend[j].job_conn == k->c)
                die("connection %u was freed with an operation (opcode %u) in flight", i,
                    fk.pend[j].sqe.opcode);
        for (unsigned j = 0; j < fk.nnotif; j++)
            if (fk.notifs[j].sock == (int)i)
                die("connection %u was freed before a SEND_ZC notification", i);
    }
}

static void end_turn(void)
{
    cz_bufring_commit(&w->bufs, &w->bufs_pending);
    conn_recv_resume(w);
    output_flush_all(w);
    conn_free_closed(w);
    notice_frees();
}

/* The clock moved: the worker's tick fires once its time has come. */
static void clock_moved(void)
{
    w->now_ms = peer->now_ms = clock_ms;
    if (!wk.tick_armed)
        die("no tick armed: no timer would ever fire");
    if (clock_ms < wk.tick_due)
        return;
    wk.tick_armed = false;
    struct io_uring_cqe cqe = {.user_data = wk.tick_ud, .res = -ETIME};
    dispatch(&cqe);
    end_turn();
}

/* ---------- the requests each connection dispatched ---------- */

/* Linked with -Wl,--wrap=server_dispatch: every request the parser hands to
 * the server, in order, with what its answer must look like. */
void __wrap_server_dispatch(struct conn *c, struct cz_request *req)
{
    int s = sock_of_conn(c);
    if (s >= 0 && fk.socks[s].nexp < MAX_EXPECT) {
        struct expect *e = &fk.socks[s].exp[fk.socks[s].nexp++];
        memset(e, 0, sizeof(*e));
        e->kind = EXP_NOFILE;
        e->head = req->head;
        e->get_or_head = req->method == CZ_METHOD_GET || req->method == CZ_METHOD_HEAD;
        static const struct {
            const char *path, *body;
        } builtins[] = {{"/plaintext", "Hello, World!"},
                        {"/json", "{\"message\":\"Hello, World!\"}"},
                        {"/_catzilla/health", "ok"}};
        for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
            if (req->method == CZ_METHOD_GET && req->path.len == strlen(builtins[i].path) &&
                memcmp(req->path.ptr, builtins[i].path, req->path.len) == 0) {
                e->kind = EXP_BODY;
                e->body = builtins[i].body;
            }
        char rel[4200];
        size_t rl = 0;
        int fl = cz_path_sanitize(req->path.ptr, req->path.len, rel, 4096, 0, &rl);
        if (e->kind == EXP_NOFILE && fl >= 0) {
            if (fl & CZ_PATH_TRAILING_SLASH) {
                if (rl > 0 && rel[rl - 1] != '/')
                    rel[rl++] = '/';
                memcpy(rel + rl, "index.html", sizeof("index.html"));
                rl += sizeof("index.html") - 1;
            }
            rel[rl] = '\0';
            for (size_t i = 0; i < NDOCFILES; i++)
                if (strcmp(rel, docfiles[i].rel) == 0) {
                    e->kind = EXP_FILE;
                    e->file = (uint8_t)i;
                }
            /* Names nothing: no file, no directory (whose answer is a
             * redirect), and no built-in route (/plaintext, /json, /echo,
             * /_catzilla/...) whatever its method. */
            static const char *const taken[] = {"sub", "empty", "plaintext", "json", "echo",
                                                "_catzilla"};
            bool maybe = rl == 0;
            for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
                size_t tl = strlen(taken[i]);
                maybe |= strncasecmp(rel, taken[i], tl) == 0 && (rel[tl] == '\0' || rel[tl] == '/');
            }
            const char *raw = req->path.ptr;
            size_t rawl = req->path.len;
            for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
                size_t tl = strlen(taken[i]);
                maybe |= rawl > tl && raw[0] == '/' && strncasecmp(raw + 1, taken[i], tl) == 0;
            }
            if (e->kind == EXP_NOFILE && !maybe && e->get_or_head)
                e->kind = EXP_MISSING;
        }
    }
    __real_server_dispatch(c, req);
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

/* The length of a chunked body at p (as this server sends them: hex size,
 * CRLF, data, CRLF, ..., "0" CRLF CRLF): 1 and *len when whole, 0 when cut
 * short, -1 when malformed. */
static int chunked_len(const char *p, size_t n, size_t *len)
{
    size_t off = 0;
    for (;;) {
        const char *eol = memmem(p + off, n - off, "\r\n", 2);
        if (!eol)
            return n - off < 20 ? 0 : -1;
        char *e;
        unsigned long size = strtoul(p + off, &e, 16);
        if (e == p + off || e != eol)
            return -1;
        off = (size_t)(eol - p) + 2;
        if (n - off < size + 2)
            return 0;
        if (size && memcmp(p + off + size, "\r\n", 2) != 0)
            return -1;
        if (!size && memcmp(p + off, "\r\n", 2) != 0)
            return -1;
        off += size + 2;
        if (!size) {
            *len = off;
            return 1;
        }
    }
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
    bool closes = false, chunked = false;
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
        } else if (nl == 17 && strncasecmp(l, "Transfer-Encoding", 17) == 0) {
            if (cl >= 0 || (size_t)(eol - v) != 7 || strncasecmp(v, "chunked", 7) != 0)
                return false;
            chunked = true;
        }
        l = eol + 2;
    }
    const char *after = p + hlen;
    size_t left = n - hlen;
    if (status < 200 || status == 204 || status == 304)
        return !(status >= 200 && cl > 0) && !chunked && rest_ok(after, left, closes);
    if (chunked) {
        if (cl >= 0)
            return false;
        size_t blen;
        int rc = chunked_len(after, left, &blen);
        if (rc == 0)
            return true; /* cut short inside a body (or a HEAD answer and a cut head) */
        if (rc > 0 && rest_ok(after + blen, left - blen, closes))
            return true;
        return rest_ok(after, left, closes); /* the answer to a HEAD */
    }
    if (cl < 0)
        return closes; /* a stream to an HTTP/1.0 client: its body runs to the close */
    if (left < (size_t)cl)
        return true; /* cut short inside a body (or a HEAD answer and a cut head) */
    if (rest_ok(after + cl, left - (size_t)cl, closes))
        return true;
    return rest_ok(after, left, closes); /* the answer to a HEAD */
}

/* The value of header name in the head [p, end), or NULL. */
static const char *header_value(const char *p, const char *end, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (const char *l = memmem(p, (size_t)(end - p), "\r\n", 2) + 2; l < end;) {
        const char *eol = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
        if ((size_t)(eol - l) > nl && l[nl] == ':' && strncasecmp(l, name, nl) == 0) {
            const char *v = l + nl + 1;
            while (v < eol && *v == ' ')
                v++;
            *len = (size_t)(eol - v);
            return v;
        }
        l = eol + 2;
    }
    return NULL;
}

/* The final responses answer the dispatched requests in order (responses
 * past the last dispatched request are the parser's closing errors). */
static void check_order(unsigned s)
{
    const struct sock *k = &fk.socks[s];
    const char *p = k->out;
    size_t n = k->out_len;
    unsigned idx = 0;
    while (n > 0 && idx < k->nexp) {
        const char *end = memmem(p, n, "\r\n\r\n", 4);
        if (!end || n < 13)
            return; /* cut short */
        size_t hlen = (size_t)(end - p) + 4;
        int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        if (status < 200) {
            p += hlen;
            n -= hlen;
            continue;
        }
        const struct expect *e = &k->exp[idx];
        size_t vl = 0, cll = 0;
        const char *etag = header_value(p, end, "ETag", &vl);
        const char *clv = header_value(p, end, "Content-Length", &cll);
        if (etag) {
            if (e->kind != EXP_FILE || vl != strlen(file_etag[e->file]) ||
                memcmp(etag, file_etag[e->file], vl) != 0) {
                int f = -1;
                for (size_t i = 0; i < NDOCFILES; i++)
                    if (vl == strlen(file_etag[i]) && memcmp(etag, file_etag[i], vl) == 0)
                        f = (int)i;
                die("connection %u: response %u (status %d) carries the ETag of %s, but request "
                    "%u asked for %s: responses out of request order",
                    s, idx, status, f >= 0 ? docfiles[f].rel : "no docroot file", idx,
                    e->kind == EXP_FILE ? docfiles[e->file].rel : "no file");
            }
        }
        /* A file's own answers carry its ETag; a path naming nothing is
         * never a success or a redirect. */
        if (e->kind == EXP_FILE && e->get_or_head && !etag &&
            (status == 200 || status == 206 || status == 304 || status == 412 || status == 416))
            die("connection %u: response %u (status %d) has no ETag, but request %u asked for "
                "%s: responses out of request order",
                s, idx, status, idx, docfiles[e->file].rel);
        if (e->kind == EXP_FILE && e->get_or_head && status >= 300 && status < 500 &&
            status != 304 && status != 412 && status != 416)
            die("connection %u: response %u has status %d, but request %u asked for %s, which "
                "exists: responses out of request order",
                s, idx, status, idx, docfiles[e->file].rel);
        if (e->kind == EXP_MISSING && status < 400)
            die("connection %u: response %u has status %d, but request %u asked for a path "
                "that names nothing: responses out of request order",
                s, idx, status, idx);
        size_t body = 0, te_len = 0;
        bool chunked = header_value(p, end, "Transfer-Encoding", &te_len) != NULL;
        if (!e->head && status != 204 && status != 304) {
            if (chunked) {
                if (chunked_len(p + hlen, n - hlen, &body) <= 0)
                    return; /* cut short inside the body */
            } else if (!clv) {
                return;
            } else {
                body = (size_t)strtoul(clv, NULL, 10);
            }
        }
        if (n - hlen < body)
            return; /* cut short inside the body */
        if (e->kind == EXP_BODY && status == 200 && !e->head && !chunked &&
            (body != strlen(e->body) || memcmp(p + hlen, e->body, body) != 0))
            die("connection %u: response %u is a 200 with a %zu-byte body that is not \"%s\", "
                "which request %u asked for: responses out of request order",
                s, idx, body, e->body, idx);
        st.responses_checked++;
        st.etags_checked += etag != NULL;
        if (trace)
            fprintf(stderr, "fuzz_request: connection %u response %u: status %d%s%s%s\n", s, idx,
                    status, etag ? ", ETag of " : "",
                    etag ? docfiles[e->file].rel : "",
                    e->kind == EXP_BODY ? ", a built-in route" : "");
        p += hlen + body;
        n -= hlen + body;
        idx++;
    }
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

/* The client's schedule for one connection: split points and events. */
static void plan_sock(struct sock *k, unsigned idx)
{
    unsigned want = 1 + rng_below(MAX_CHUNKS);
    k->ncuts = 0;
    k->cuts[k->ncuts++] = 0;
    for (unsigned i = 1; i < want && k->size > 1; i++) {
        size_t c = 1 + rng_below((unsigned)(k->size - 1));
        unsigned j = k->ncuts;
        while (j > 1 && k->cuts[j - 1] > c) {
            k->cuts[j] = k->cuts[j - 1];
            j--;
        }
        k->cuts[j] = c;
        k->ncuts++;
    }
    k->cuts[k->ncuts] = k->size;
    k->reset_at = fk.allow_reset ? rng_below(k->ncuts + 2) : UINT32_MAX;
    k->accept_turn = idx == 0 ? 0 : (int)rng_below(rng_chance(2) ? 8 : 80);
    /* A silent client reads nothing for a while: its sends stall, the send
     * timer probes the socket and may close it. */
    k->silent_until =
        rng_chance(6) ? clock_ms + rng_below(3 * (unsigned)srv->cfg.send_timeout) : 0;
    k->slow = k->silent_until && rng_chance(2);
    if (trace) {
        fprintf(stderr, "fuzz_request: connection %u: %zu bytes, accept at turn %d, chunks at",
                idx, k->size, k->accept_turn);
        for (unsigned i = 0; i <= k->ncuts; i++)
            fprintf(stderr, " %zu", k->cuts[i]);
        if (k->reset_at != UINT32_MAX)
            fprintf(stderr, ", reset before chunk %u", k->reset_at);
        if (k->silent_until)
            fprintf(stderr, ", %s for %llu ms", k->slow ? "slow" : "silent",
                    (unsigned long long)(k->silent_until - clock_ms));
        fputc('\n', stderr);
    }
}

/* Accept the connections whose turn has come, into free slots. */
static bool accept_due(unsigned long fail_every)
{
    bool any = false;
    for (unsigned i = 0; i < fk.nsocks; i++) {
        struct sock *k = &fk.socks[i];
        if (k->accepted || k->accept_turn > fk.turn || !wk.accept_armed)
            continue;
        unsigned free_slots[NSLOTS], nfree = 0;
        for (unsigned s = 0; s < NSLOTS; s++)
            if (fk.slots[s] < 0)
                free_slots[nfree++] = s;
        if (!nfree)
            die("no free socket slot");
        k->slot = free_slots[rng_below(nfree)];
        k->accepted = true;
        fk.slots[k->slot] = (int)i;
        unsigned before = w->nconns;
        bool more = !rng_chance(fk.accept_end_one_in);
        if (!more)
            wk.accept_armed = false;
        struct io_uring_cqe acq = {.user_data = wk.accept_ud,
                                   .res = (int)k->slot,
                                   .flags = more ? IORING_CQE_F_MORE : 0};
        if (trace)
            fprintf(stderr, "fuzz_request: accept connection %u into slot %u\n", i, k->slot);
        dispatch(&acq);
        if (w->nconns == before + 1) {
            k->c = container_of(w->conns.prev, struct conn, all_link);
        } else if (!fail_every) {
            die("the accept completion did not add a connection");
        } else {
            k->no_conn = true;
        }
        any = true;
    }
    return any;
}

static bool all_accepted(void)
{
    for (unsigned i = 0; i < fk.nsocks; i++)
        if (!fk.socks[i].accepted)
            return false;
    return true;
}

/* One turn of the clients: bytes arrive only while a recv is armed, one
 * chunk per turn, or the client resets, runs out of buffers, or ends. */
static bool client_step(unsigned i)
{
    struct sock *k = &fk.socks[i];
    if (!k->recv_armed || k->slot_closed)
        return false;
    if (k->chunk == k->reset_at && !k->reset) {
        k->reset = true;
        k->send_failed = true;
        post_recv_end(k, -ECONNRESET);
        return true;
    }
    if (rng_chance(fk.enobufs_one_in)) {
        post_recv_end(k, -ENOBUFS);
        return true;
    }
    if (k->chunk < k->ncuts) {
        deliver_data(k, k->data + k->cuts[k->chunk], k->cuts[k->chunk + 1] - k->cuts[k->chunk]);
        k->chunk++;
        return true;
    }
    if (fk.send_eof && !k->eof_sent && !k->reset) {
        k->eof_sent = true;
        post_recv_end(k, 0);
        return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&fk, 0, sizeof(fk));
    for (unsigned i = 0; i < MAX_SOCKS; i++) {
        fk.socks[i].out = out_keep[i].p;
        fk.socks[i].out_cap = out_keep[i].cap;
    }
    for (unsigned s = 0; s < NSLOTS; s++)
        fk.slots[s] = -1;
    in_input = true;
    rng_state = fnv1a(data, size);
    uint64_t knobs = rng_next();
    fk.partial_one_in = (knobs & 1) ? 4 : 1000000;
    fk.stall_one_in = (knobs & 2) ? 2 : 1000000;
    fk.enobufs_one_in = (knobs & 4) ? 5 : 1000000;
    fk.error_one_in = (knobs & 0x78) == 0x78 ? 8 : 0;
    fk.send_eof = (knobs & 0x80) != 0;
    fk.allow_reset = (knobs & 0x700) == 0x700;
    unsigned long fail_every = (knobs & 0x1800) == 0x1800 ? 2 + rng_below(40) : 0;
    bool no_pipes = (knobs & 0x6000) == 0x6000;
    fk.race_one_in = (knobs & 0x8000) ? 2 : 0;
    fk.eagain_one_in = (knobs & 0x10000) ? 1 : 2;
    fk.msg_fail_one_in = (knobs & 0x60000) == 0x60000 ? 2 : 0;
    fk.send_eagain_one_in = (knobs & 0x80000) ? 2 : 0;
    fk.late_one_in = (knobs & 0x300000) == 0 ? 0 : (knobs & 0x100000) ? 2 : 5;
    fk.late_max = 1 + ((knobs >> 22) & 15);
    fk.shuffle = (knobs & 0x4000000) != 0;
    fk.open_fail_one_in = (knobs & 0x18000000) == 0x18000000 ? 3 : 0;
    fk.fs_error_one_in = (knobs & 0x60000000) == 0x60000000 ? 4 : 0;
    fk.zc_cancel_notifies = (knobs & 0x80000000ull) != 0;
    fk.probe_unsupported = (knobs & 0x700000000ull) == 0x700000000ull;
    fk.accept_end_one_in = (knobs & 0x800000000ull) ? 4 : 0;
    /* The output queue limit: at 4096 one placeholder (a file job or a stats
     * gather counts as 4096 bytes) pauses reading, so nothing is ever queued
     * behind it; larger limits let pipelined answers queue up behind
     * placeholders. */
    static const int queue_limits[] = {4096, 4096, 16384, 65536};
    srv->cfg.max_output_queue = queue_limits[(knobs >> 41) & 3];
    unsigned copies = (knobs & 0x1000000000ull) ? 1 + (unsigned)((knobs >> 37) & 1) + 1 : 1;
    const char *slow = (knobs & 0x18000000000ull) == 0x18000000000ull
                           ? slow_patterns[1 + rng_below(sizeof(slow_patterns) /
                                                             sizeof(slow_patterns[0]) - 1)]
                           : NULL;
    if (slow)
        setenv("CATZILLA_FAULT_SLOW_OPEN", slow, 1);
    else
        unsetenv("CATZILLA_FAULT_SLOW_OPEN");

    /* The connections: the pieces between separators, or copies of it all. */
    const uint8_t *p = data;
    size_t left = size;
    const size_t seplen = sizeof(conn_sep) - 1;
    while (fk.nsocks < MAX_SOCKS - 1) {
        const uint8_t *q = memmem(p, left, conn_sep, seplen);
        if (!q)
            break;
        fk.socks[fk.nsocks].data = p;
        fk.socks[fk.nsocks].size = (size_t)(q - p);
        fk.nsocks++;
        left -= (size_t)(q - p) + seplen;
        p = q + seplen;
    }
    fk.socks[fk.nsocks].data = p;
    fk.socks[fk.nsocks].size = left;
    fk.nsocks++;
    if (fk.nsocks == 1)
        for (; fk.nsocks < copies; fk.nsocks++) {
            fk.socks[fk.nsocks].data = data;
            fk.socks[fk.nsocks].size = size;
        }
    if (trace)
        fprintf(stderr,
                "fuzz_request: knobs %#llx, fail every %lu%s%s%s%s, late 1 in %u (up to %u "
                "turns), queue limit %ld, %u connection(s)%s%s\n",
                (unsigned long long)knobs, fail_every, no_pipes ? ", no pipes" : "",
                fk.shuffle ? ", shuffled" : "", fk.probe_unsupported ? ", no SIOCOUTQ" : "",
                fk.send_eagain_one_in ? ", sends may -EAGAIN" : "", fk.late_one_in, fk.late_max,
                (long)srv->cfg.max_output_queue, fk.nsocks, slow ? ", slow opens of " : "", slow ? slow : "");
    for (unsigned i = 0; i < fk.nsocks; i++)
        plan_sock(&fk.socks[i], i);
    st.inputs++;
    st.multi += fk.nsocks > 1;

    /* Every pipe of the pool taken: start from an empty pool that cannot
     * grow, so file bodies go through the read-and-send engine.  A new
     * output state also forgets that SIOCOUTQ was unsupported. */
    if (no_pipes || wk.no_pipes || wk.reinit_output) {
        char err[256];
        output_worker_free(w);
        if (output_worker_init(w, err, sizeof(err)) < 0)
            die("%s", err);
    }
    wk.no_pipes = no_pipes;
    wk.reinit_output = fk.probe_unsupported;

    w->now_ms = peer->now_ms = clock_ms;
    set_fault(fail_every);
    if (!wk.accept_armed)
        die("no accept armed: the worker would never take another connection");

    int turn;
    for (turn = 0; turn < MAX_TURNS && (w->nconns || !all_accepted()); turn++) {
        fk.turn = turn;
        bool progress = false;
        process_sqes();
        progress |= deliver_msgs(false);
        progress |= fire_timers();
        progress |= accept_due(fail_every);
        for (unsigned i = 0; i < fk.nsocks; i++) {
            struct sock *k = &fk.socks[i];
            fk.stalled[i] =
                (turn < 200 && rng_chance(fk.stall_one_in)) || clock_ms < k->silent_until;
            /* A reading client acknowledges some of what it was sent; a
             * slow one a little even while its sends wait. */
            if (!fk.stalled[i] && k->outq)
                k->outq -= rng_below(k->outq + 1);
            else if (k->slow && k->outq > 4096)
                k->outq -= rng_below(4096);
        }
        unsigned first = rng_below(fk.nsocks);
        for (unsigned i = 0; i < fk.nsocks; i++)
            progress |= client_step((first + i) % fk.nsocks);
        progress |= complete_pending();
        progress |= notify_zc();
        for (unsigned i = 0; i < fk.ncq; i++)
            dispatch(&fk.cq[i]);
        progress |= fk.ncq > 0;
        fk.ncq = 0;
        end_turn();
        /* Time: a little every turn, a lot when nothing else moves (the
         * clients went quiet, or every completion is late), so every
         * deadline is eventually reached. */
        if (!progress && !w->flush_list && w->ring.sq.sqe_tail == w->ring.sq.sqe_head) {
            clock_ms += 500 + rng_below(20000);
        } else if (rng_chance(16)) {
            clock_ms += rng_below(3000);
        }
        if (clock_ms != w->now_ms)
            clock_moved();
    }
    set_fault(0);
    wk.no_pipes = false;
    if (w->nconns)
        die("connection still open after %d turns (stuck: no timer, nothing in flight?)", turn);
    if (!all_accepted())
        die("a connection was never accepted: no accept armed for %d turns", turn);
    if (w->flush_list || w->free_list)
        die("flush or free list not empty after the connection was freed");
    if (w->gathers)
        die("a stats gather is still waiting for its answer after its connection was freed");
    /* Pending notifications of a freed connection would be use-after-free. */
    bool recv = false;
    for (unsigned i = 0; i < fk.nsocks; i++)
        recv |= fk.socks[i].recv_armed;
    if (fk.npend || fk.nnotif || fk.ntimers || recv)
        die("operations still in flight after every connection was freed");
    fk.turn = turn;
    process_sqes();
    if (fk.ncq) {
        for (unsigned i = 0; i < fk.ncq; i++)
            if (fk.cq[i].user_data)
                die("SQE prepared for a freed connection");
        fk.ncq = 0;
    }
    if (fk.npend)
        die("operation submitted after every connection was freed");
    /* Late peers still answer: their gathers are freed with the last reply. */
    for (int round = 0; wk.nmsgs; round++) {
        if (round > 8)
            die("stats messages still bouncing between the workers");
        deliver_msgs(true);
        for (unsigned i = 0; i < fk.ncq; i++)
            dispatch(&fk.cq[i]);
        fk.ncq = 0;
        end_turn();
        process_sqes();
        if (fk.ncq)
            die("SQE with a completion prepared while only stats replies were delivered");
    }

    for (int fd = 0; fd <= fdt_max; fd++)
        if (fdt[fd].live)
            die("descriptor leak: %d, opened by a file job of connection %d, is still open", fd,
                fdt[fd].sock);
    int probe = dup(0);
    if (probe > fd_limit)
        die("descriptor leak: dup() returned %d (limit %d)", probe, fd_limit);
    close(probe);

    for (unsigned i = 0; i < fk.nsocks; i++) {
        struct sock *k = &fk.socks[i];
        if (trace)
            fprintf(stderr,
                    "---- client %u received %zu bytes%s (%u requests dispatched) ----\n"
                    "%.*s\n----\n",
                    i, k->out_len, k->send_failed ? ", cut short" : "", k->nexp,
                    (int)(k->out_len < 4096 ? k->out_len : 4096), k->out);
        if (!k->send_failed) {
            check_order(i);
            budget = 100000;
            if (!valid_from(k->out, k->out_len)) {
                fprintf(stderr, "---- client %u received %zu bytes ----\n%.*s\n----\n", i,
                        k->out_len, (int)(k->out_len < 8192 ? k->out_len : 8192), k->out);
                die("the response stream is not a valid sequence of HTTP/1.1 responses");
            }
        }
        out_keep[i].p = k->out;
        out_keep[i].cap = k->out_cap;
    }
    in_input = false;
    clock_ms += 100000; /* the next connections start later */
    return 0;
}
