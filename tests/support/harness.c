/* Integration-test harness (see harness.h).  Plain POSIX sockets, blocking
 * with timeouts, so a hung server fails a test instead of hanging it. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

bool io_uring_usable(void)
{
    struct io_uring ring;
    if (io_uring_queue_init(4, &ring, 0) < 0)
        return false;
    io_uring_queue_exit(&ring);
    return true;
}

static const char *binary(void)
{
    const char *b = getenv("CATZILLA_BIN");
    return b && *b ? b : "build/catzilla";
}

long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

char *server_log(const struct server *s)
{
    FILE *f = fopen(s->log_path, "r");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

void server_start(struct server *s, const char *const *args)
{
    server_start_binary(s, binary(), args);
}

void server_start_binary(struct server *s, const char *path, const char *const *args)
{
    if (!io_uring_usable())
        cr_skip_test("io_uring is not available here (seccomp or kernel)");
    memset(s, 0, sizeof(*s));
    static int seq;
    snprintf(s->log_path, sizeof(s->log_path), "/tmp/cz-test-%d-%d.log", getpid(), seq++);
    const char *argv[64];
    int n = 0;
    argv[n++] = path;
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    bool has_threads = false, has_admin = false;
    for (int i = 0; args && args[i] && n < 58; i++) {
        if (strcmp(args[i], "--threads") == 0)
            has_threads = true;
        if (strcmp(args[i], "--admin") == 0)
            has_admin = true;
        argv[n++] = args[i];
    }
    if (!has_threads) {
        argv[n++] = "--threads";
        argv[n++] = "1";
    }
    /* The admin surface on the test port (its default, 127.0.0.1:9090,
     * would be shared by every test server). */
    if (!has_admin) {
        argv[n++] = "--admin";
        argv[n++] = "same";
    }
    argv[n] = NULL;
    /* Truncate the log before forking: a stale log from an earlier run by a
     * process with the same PID would otherwise be read for the port. */
    int fd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert(fd >= 0, "%s: %s", s->log_path, strerror(errno));
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        /* A failed assertion ends the test process: the server must not
         * outlive it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fd, 2);
        dup2(fd, 1);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    s->pid = pid;
    long deadline = now_ms() + 5000;
    while (now_ms() < deadline) {
        char *log = server_log(s);
        char *p = strstr(log, "listening on ");
        if (p) {
            char *colon = strchr(p + 13, ' ');
            /* "listening on ADDR:PORT with" */
            char *q = p + 13;
            char *last = NULL;
            for (char *t = q; t < colon; t++)
                if (*t == ':')
                    last = t;
            s->port = last ? atoi(last + 1) : 0;
            free(log);
            cr_assert(s->port > 0, "cannot parse the port from the log");
            return;
        }
        free(log);
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            char *l = server_log(s);
            cr_assert_fail("server exited at start: %s", l);
        }
        usleep(10000);
    }
    kill(pid, SIGKILL);
    cr_assert_fail("server did not start within 5 s");
}

int server_stop(struct server *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    long deadline = now_ms() + 15000;
    int st;
    while (now_ms() < deadline) {
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid) {
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(10000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    return -1;
}

void send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the server may legitimately have closed */
        p += n;
        len -= (size_t)n;
    }
}

void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

/* Buffered reader state per fd: responses may arrive back to back. */
struct rbuf {
    int fd;
    char *data;
    size_t len, cap;
};
/* Connections a test may read from at once (each gets its buffer on first use). */
#define RBUF_MAX 512
static struct rbuf rbufs[RBUF_MAX];

static struct rbuf *rbuf_for(int fd)
{
    for (int i = 0; i < RBUF_MAX; i++)
        if (rbufs[i].fd == fd && rbufs[i].data)
            return &rbufs[i];
    for (int i = 0; i < RBUF_MAX; i++) {
        if (!rbufs[i].data) {
            rbufs[i].fd = fd;
            rbufs[i].cap = 65536;
            rbufs[i].data = malloc(rbufs[i].cap);
            rbufs[i].len = 0;
            return &rbufs[i];
        }
    }
    cr_assert_fail("too many open test connections");
    return NULL;
}

static void rbuf_drop(struct rbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* Returns bytes read, 0 on EOF, -1 on timeout/error. */
static ssize_t rbuf_fill(struct rbuf *b)
{
    if (b->cap - b->len < 65536 + 1) {
        b->cap *= 2;
        b->data = realloc(b->data, b->cap);
    }
    /* One byte stays free so the data can always be NUL-terminated. */
    ssize_t n;
    do
        n = recv(b->fd, b->data + b->len, b->cap - b->len - 1, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        b->len += (size_t)n;
    return n;
}

static void rbuf_consume(struct rbuf *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

bool head_value(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = strstr(head, "\r\n");
    while (p && p[2] != '\r' && p[2]) {
        p += 2;
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(eol - v), v);
            return true;
        }
        p = eol;
    }
    return false;
}

static char hdrval[8192];

static const char *find_header(const char *head, const char *name)
{
    return head_value(head, name, hdrval, sizeof(hdrval)) ? hdrval : NULL;
}

const char *header(const struct response *r, const char *name)
{
    return r->head ? find_header(r->head, name) : NULL;
}

/* Wait until b holds a CRLF-terminated line; its length with the CRLF, or 0
 * at EOF or timeout. */
static size_t rbuf_line(struct rbuf *b)
{
    for (;;) {
        char *nl = b->len ? memmem(b->data, b->len, "\r\n", 2) : NULL;
        if (nl)
            return (size_t)(nl - b->data) + 2;
        if (rbuf_fill(b) <= 0)
            return 0;
    }
}

/* A chunked body, decoded (extensions and trailers skipped).  False when
 * the stream ends early or is malformed. */
static bool read_chunked(struct rbuf *b, struct response *r)
{
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    bool ok = false;
    for (;;) {
        size_t ll = rbuf_line(b);
        if (!ll)
            break;
        char *endp;
        size_t size = strtoull(b->data, &endp, 16);
        if (endp == b->data)
            break;
        rbuf_consume(b, ll);
        if (size == 0) {
            /* Trailer fields, then the empty line. */
            while ((ll = rbuf_line(b)) > 2)
                rbuf_consume(b, ll);
            ok = ll == 2;
            if (ok)
                rbuf_consume(b, 2);
            break;
        }
        while (b->len < size + 2)
            if (rbuf_fill(b) <= 0)
                goto out;
        if (memcmp(b->data + size, "\r\n", 2) != 0)
            break;
        if (len + size + 1 > cap) {
            while (len + size + 1 > cap)
                cap *= 2;
            out = realloc(out, cap);
        }
        memcpy(out + len, b->data, size);
        len += size;
        rbuf_consume(b, size + 2);
    }
out:
    out[len] = '\0';
    r->body = out;
    r->body_len = len;
    r->chunks_ok = ok;
    return ok;
}

bool read_response(int fd, struct response *r, bool head_only)
{
    memset(r, 0, sizeof(*r));
    struct rbuf *b = rbuf_for(fd);
    char *end;
    for (;;) {
        if (b->len) {
            b->data[b->len] = '\0';
            end = memmem(b->data, b->len, "\r\n\r\n", 4);
            if (end)
                break;
        }
        ssize_t n = rbuf_fill(b);
        if (n <= 0) {
            rbuf_drop(b);
            return false;
        }
    }
    size_t hlen = (size_t)(end - b->data) + 4;
    r->head = malloc(hlen + 1);
    memcpy(r->head, b->data, hlen);
    r->head[hlen] = '\0';
    rbuf_consume(b, hlen);
    r->status = atoi(r->head + 9);
    /* find_header returns a shared buffer: use each value before the next call. */
    const char *conn = find_header(r->head, "Connection");
    bool close_hdr = conn && strcasecmp(conn, "close") == 0;
    const char *cl = find_header(r->head, "Content-Length");
    bool bodyless = head_only || r->status == 304 || r->status == 204 || r->status < 200;
    if (r->status == 100) {
        r->body = strdup("");
        return true;
    }
    const char *te = find_header(r->head, "Transfer-Encoding");
    bool chunked = te && strcasecmp(te, "chunked") == 0;
    if (bodyless) {
        r->body = strdup("");
    } else if (chunked) {
        if (!read_chunked(b, r))
            r->closed = true;
    } else if (cl) {
        size_t want = strtoull(cl, NULL, 10);
        while (b->len < want) {
            if (rbuf_fill(b) <= 0)
                break;
        }
        size_t got = b->len < want ? b->len : want;
        r->body = malloc(got + 1);
        memcpy(r->body, b->data, got);
        r->body[got] = '\0';
        r->body_len = got;
        rbuf_consume(b, got);
    } else {
        while (rbuf_fill(b) > 0)
            ;
        r->body = malloc(b->len + 1);
        memcpy(r->body, b->data, b->len);
        r->body[b->len] = '\0';
        r->body_len = b->len;
        rbuf_consume(b, b->len);
        r->closed = true;
    }
    if (close_hdr)
        r->closed = true;
    if (r->closed)
        rbuf_drop(b);
    return true;
}

void response_free(struct response *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

struct response request_once(int port, const char *raw)
{
    int fd = tcp_connect(port);
    send_str(fd, raw);
    struct response r;
    bool head = strncmp(raw, "HEAD ", 5) == 0;
    if (!read_response(fd, &r, head))
        r.status = -1;
    struct rbuf *b = rbuf_for(fd);
    rbuf_drop(b);
    close(fd);
    return r;
}

bool wait_closed(int fd, int ms)
{
    struct rbuf *b = rbuf_for(fd);
    long deadline = now_ms() + ms;
    for (;;) {
        long left = deadline - now_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return false;
        char tmp[4096];
        ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
        if (n <= 0) {
            rbuf_drop(b);
            return true;
        }
    }
}

char *read_all(int fd, size_t *len, int timeout_ms)
{
    struct rbuf *b = rbuf_for(fd);
    long deadline = now_ms() + timeout_ms;
    for (;;) {
        long left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        if (rbuf_fill(b) <= 0)
            break;
    }
    char *out = malloc(b->len + 1);
    memcpy(out, b->data, b->len);
    out[b->len] = '\0';
    *len = b->len;
    rbuf_drop(b);
    return out;
}

int count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

int server_admin_port(const struct server *s)
{
    char *log = server_log(s);
    const char *p = strstr(log, "admin on ");
    int port = 0;
    if (p) {
        const char *end = strpbrk(p + 9, " \n");
        const char *colon = NULL;
        for (const char *t = p + 9; t < end; t++)
            if (*t == ':')
                colon = t;
        port = colon ? atoi(colon + 1) : 0;
    }
    free(log);
    return port;
}

long stats_total(int port, const char *key)
{
    struct response r = request_once(port, "GET /_catzilla/stats HTTP/1.1\r\nHost: t\r\n"
                                           "Connection: close\r\n\r\n");
    long v = -1;
    char quoted[64];
    snprintf(quoted, sizeof(quoted), "\"%s\":", key);
    if (r.status == 200) {
        const char *t = strstr(r.body, "\"totals\":{");
        const char *c = t ? strstr(t, quoted) : NULL;
        if (c)
            v = strtol(c + strlen(quoted), NULL, 10);
    }
    response_free(&r);
    return v;
}

long stats_connections(int port)
{
    return stats_total(port, "connections");
}

void tcp_close(int fd)
{
    /* A buffer left behind would be handed to the next socket with this number. */
    for (int i = 0; i < RBUF_MAX; i++)
        if (rbufs[i].data && rbufs[i].fd == fd)
            rbuf_drop(&rbufs[i]);
    close(fd);
}

int tcp_connect_opts(int port, int rcvbuf, int mss, bool nonblocking)
{
    /* connect() on a socket with SO_SNDTIMEO is never restarted: any signal,
     * or a task_work notification (io_uring teardown in this process sets
     * one), fails it with EINTR.  Connect non-blocking and poll instead. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    if (rcvbuf > 0)
        cr_assert(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) == 0);
    if (mss > 0)
        cr_assert(setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss)) == 0, "TCP_MAXSEG: %s",
                  strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        cr_assert(errno == EINPROGRESS || errno == EINTR, "connect: %s", strerror(errno));
        long deadline = now_ms() + 5000;
        for (;;) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            long left = deadline - now_ms();
            cr_assert(left > 0, "connect: timed out");
            int pr = poll(&p, 1, (int)left);
            if (pr < 0 && errno == EINTR)
                continue;
            cr_assert(pr > 0, "connect: timed out");
            break;
        }
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        cr_assert(err == 0, "connect: %s", strerror(err));
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!nonblocking) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    return fd;
}

int tcp_connect(int port)
{
    return tcp_connect_opts(port, 0, 0, false);
}

void expect_error_response(int port, const char *name, const void *data, size_t len, int status)
{
    int fd = tcp_connect(port);
    send_all(fd, data, len);
    struct response r;
    cr_assert(read_response(fd, &r, false), "%s: no response", name);
    cr_expect_eq(r.status, status, "%s: status %d, want %d", name, r.status, status);
    const char *conn = header(&r, "Connection");
    cr_expect(conn && strcmp(conn, "close") == 0, "%s: no Connection: close", name);
    cr_expect(r.closed || wait_closed(fd, 3000), "%s: connection not closed", name);
    response_free(&r);
    tcp_close(fd);
}

bool binary_version_has(const char *marker)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s --version 2>&1", binary());
    FILE *p = popen(cmd, "r");
    if (!p)
        return false;
    char line[256] = "";
    if (!fgets(line, sizeof(line), p))
        line[0] = '\0';
    pclose(p);
    return strstr(line, marker) != NULL;
}

void server_stop_checked(struct server *s)
{
    if (s->pid <= 0)
        return;
    int st = server_stop(s);
    char *log = server_log(s);
    cr_expect_eq(st, 0, "server exit status %d; log:\n%s", st, log);
    cr_expect_null(strstr(log, "Z error ["), "error in the server log:\n%s", log);
    free(log);
    if (!getenv("CZ_KEEP_LOG"))
        unlink(s->log_path);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

void rm_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
