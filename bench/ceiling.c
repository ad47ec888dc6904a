/*
 * bench/ceiling.c: the least work an io_uring HTTP/1.1 server can do, so that bench/run.sh can
 * say what fraction of this machine's limit catzilla reaches.
 *
 *   ceiling PORT BODY_FILE
 *
 * One thread, one ring, one listener on 127.0.0.1:PORT. Every request, whatever its method or
 * target, is answered with the same 200 whose body is BODY_FILE's bytes. A request is counted at
 * its blank line ("\r\n\r\n"): no parsing, no headers read, no bodies, no Date, no limits, no
 * timeouts. Multishot accept, multishot recv into a provided buffer ring, and one send per
 * connection in flight carrying every answer owed so far (up to a 64 KiB batch of copies).
 * This is a measuring stick, not a server: do not expose it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

enum { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3 };
enum { MAX_FD = 65536, BUF_GROUP = 1, BUF_COUNT = 4096, BUF_SIZE = 4096, BATCH_BYTES = 65536 };

struct conn {
    uint64_t owed;     /* bytes of answers not yet sent */
    unsigned match;    /* how much of "\r\n\r\n" the input ends with */
    bool sending;      /* a send is in flight */
    bool reading;      /* the multishot recv is armed */
};

static struct io_uring ring;
static struct io_uring_buf_ring *bufring;
static char *bufs;
static struct conn conns[MAX_FD];
static char *batch;         /* the answer, repeated */
static size_t answer_len;   /* one answer's bytes */
static size_t batch_len;    /* a whole number of answers */

static void die(const char *what, int err)
{
    fprintf(stderr, "ceiling: %s: %s\n", what, strerror(err));
    exit(1);
}

static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe) {
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
        if (!sqe)
            die("io_uring_get_sqe", EBUSY);
    }
    return sqe;
}

static void arm(struct io_uring_sqe *sqe, int op, int fd)
{
    io_uring_sqe_set_data64(sqe, (uint64_t)op << 32 | (uint32_t)fd);
}

static void recv_arm(int fd)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    arm(sqe, OP_RECV, fd);
    conns[fd].reading = true;
}

/* Sends the next run of owed bytes: the batch repeats the answer, so any offset into an answer
 * is also an offset into the batch. */
static void send_owed(int fd)
{
    struct conn *c = &conns[fd];
    if (c->sending || c->owed == 0)
        return;
    size_t pos = (answer_len - c->owed % answer_len) % answer_len;
    size_t len = batch_len - pos;
    if (len > c->owed)
        len = (size_t)c->owed;
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_send(sqe, fd, batch + pos, len, MSG_NOSIGNAL);
    arm(sqe, OP_SEND, fd);
    c->sending = true;
}

static void conn_maybe_close(int fd)
{
    if (!conns[fd].reading && !conns[fd].sending) {
        close(fd);
        memset(&conns[fd], 0, sizeof conns[fd]);
    }
}

/* Counts the requests that end in this piece of input. */
static unsigned requests_in(struct conn *c, const char *p, size_t n)
{
    static const char end[4] = { '\r', '\n', '\r', '\n' };
    unsigned count = 0, m = c->match;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == end[m]) {
            if (++m == 4) {
                count++;
                m = 0;
            }
        } else {
            m = p[i] == '\r';
        }
    }
    c->match = m;
    return count;
}

static void on_recv(int fd, int res, unsigned flags)
{
    struct conn *c = &conns[fd];
    if (res > 0) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        char *buf = bufs + (size_t)bid * BUF_SIZE;
        c->owed += (uint64_t)requests_in(c, buf, (size_t)res) * answer_len;
        io_uring_buf_ring_add(bufring, buf, BUF_SIZE, (unsigned short)bid,
                              io_uring_buf_ring_mask(BUF_COUNT), 0);
        io_uring_buf_ring_advance(bufring, 1);
        send_owed(fd);
    }
    if (flags & IORING_CQE_F_MORE)
        return;
    c->reading = false;
    if (res > 0 || res == -ENOBUFS)
        recv_arm(fd);
    else
        conn_maybe_close(fd);
}

static void on_send(int fd, int res)
{
    struct conn *c = &conns[fd];
    c->sending = false;
    if (res < 0) {
        c->owed = 0;
        shutdown(fd, SHUT_RDWR);   /* ends the recv too; the close follows its last completion */
    } else {
        c->owed -= (uint64_t)res;
        send_owed(fd);
    }
    conn_maybe_close(fd);
}

static void answer_load(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        die(path, errno);
    char head[160];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 200 OK\r\nServer: ceiling\r\nContent-Type: text/plain\r\n"
                      "Content-Length: %lld\r\n\r\n", (long long)st.st_size);
    answer_len = (size_t)hl + (size_t)st.st_size;
    size_t copies = answer_len >= BATCH_BYTES ? 1 : BATCH_BYTES / answer_len;
    batch_len = copies * answer_len;
    batch = malloc(batch_len);
    if (!batch)
        die("malloc", ENOMEM);
    memcpy(batch, head, (size_t)hl);
    for (size_t got = 0; got < (size_t)st.st_size;) {
        ssize_t r = pread(fd, batch + hl + got, (size_t)st.st_size - got, (off_t)got);
        if (r <= 0)
            die(path, r < 0 ? errno : EIO);
        got += (size_t)r;
    }
    close(fd);
    for (size_t i = 1; i < copies; i++)
        memcpy(batch + i * answer_len, batch, answer_len);
}

static int listener(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd < 0)
        die("socket", errno);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);   /* accepted sockets inherit it */
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("bind", errno);
    if (listen(fd, 4096) < 0)
        die("listen", errno);
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: ceiling PORT BODY_FILE\n");
        return 2;
    }
    answer_load(argv[2]);
    int lfd = listener(atoi(argv[1]));

    struct io_uring_params p = { .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                          IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,
                                 .cq_entries = 16384 };
    int rc = io_uring_queue_init_params(1024, &ring, &p);
    if (rc < 0)
        die("io_uring_queue_init_params", -rc);
    bufs = aligned_alloc(4096, (size_t)BUF_COUNT * BUF_SIZE);
    bufring = aligned_alloc(4096, BUF_COUNT * sizeof(struct io_uring_buf));
    if (!bufs || !bufring)
        die("aligned_alloc", ENOMEM);
    io_uring_buf_ring_init(bufring);
    struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)bufring, .ring_entries = BUF_COUNT,
                                    .bgid = BUF_GROUP };
    if ((rc = io_uring_register_buf_ring(&ring, &reg, 0)) < 0)
        die("io_uring_register_buf_ring", -rc);
    for (unsigned i = 0; i < BUF_COUNT; i++)
        io_uring_buf_ring_add(bufring, bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(BUF_COUNT), (int)i);
    io_uring_buf_ring_advance(bufring, BUF_COUNT);

    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    arm(sqe, OP_ACCEPT, lfd);
    for (;;) {
        rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            die("io_uring_submit_and_wait", -rc);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            int op = (int)(cqe->user_data >> 32), fd = (int)(uint32_t)cqe->user_data;
            seen++;
            if (op == OP_RECV) {
                on_recv(fd, cqe->res, cqe->flags);
            } else if (op == OP_SEND) {
                on_send(fd, cqe->res);
            } else if (op == OP_ACCEPT) {
                int cfd = cqe->res;
                if (cfd >= MAX_FD)
                    close(cfd);
                else if (cfd >= 0)
                    recv_arm(cfd);
                if (!(cqe->flags & IORING_CQE_F_MORE)) {
                    sqe = sqe_get();
                    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
                    arm(sqe, OP_ACCEPT, lfd);
                }
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
}
