/* idleconns: opens N keep-alive HTTP/1.1 connections to HOST:PORT, sends one GET on each,
 * reads each full response, then holds every connection open and idle, so that a benchmark
 * can read the server's memory per idle connection.
 *
 *   idleconns HOST PORT N [PATH] [HOLD_SECONDS]
 *
 * Prints "ready OK FAILED" on stdout once every connection has been answered or has failed,
 * then holds until HOLD_SECONDS (default 60) pass, stdin reaches EOF, or SIGTERM/SIGINT; it
 * ends with "closed_by_server K". Connects are issued at most MAX_INFLIGHT at a time so the
 * server's listen backlog never overflows (an overflow costs a 1 s SYN retry).
 * Build: cc -O2 -o idleconns bench/idleconns.c */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_INFLIGHT = 256, BUF = 4096 };
enum state { CONNECTING, READING, IDLE, DEAD };

struct conn {
    int fd;
    enum state st;
    size_t got;         /* bytes of the response read so far */
    long want;          /* header length + Content-Length, once the header is complete */
    char buf[BUF];
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Returns 1 when the buffered response is complete (header + Content-Length body). */
static int response_complete(struct conn *c) {
    if (c->want < 0) {
        c->buf[c->got < BUF - 1 ? c->got : BUF - 1] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end) return 0;
        long hlen = end + 4 - c->buf, clen = 0;
        for (char *p = c->buf; p && p < end; p = strstr(p, "\r\n")) {
            if (*p == '\r') p += 2;
            if (strncasecmp(p, "content-length:", 15) == 0) clen = strtol(p + 15, NULL, 10);
        }
        c->want = hlen + clen;
    }
    return (long)c->got >= c->want;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s HOST PORT N [PATH] [HOLD_SECONDS]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argc > 4 ? argv[4] : "/";
    int port = atoi(argv[2]), n = atoi(argv[3]);
    double hold = argc > 5 ? atof(argv[5]) : 60;

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)n + 16 > rl.rlim_cur) {
        fprintf(stderr, "idleconns: RLIMIT_NOFILE %llu is too low for %d connections\n",
                (unsigned long long)rl.rlim_cur, n);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "idleconns: bad IPv4 address %s\n", host);
        return 2;
    }
    char req[512];
    int reqlen = snprintf(req, sizeof req,
                          "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: catzilla-bench-idleconns\r\n\r\n",
                          path, host, port);

    struct conn *cs = calloc(n, sizeof *cs);
    int ep = epoll_create1(0);
    if (!cs || ep < 0) { perror("idleconns"); return 1; }
    struct epoll_event ev;

    int started = 0, inflight = 0, ok = 0, failed = 0, closed = 0;
    double deadline = now() + 60;  /* establishing phase */
    struct epoll_event evs[512];
    while (!stop && ok + failed < n && now() < deadline) {
        while (started < n && inflight < MAX_INFLIGHT) {
            struct conn *c = &cs[started];
            c->want = -1;
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c->fd < 0) { c->st = DEAD; failed++; started++; continue; }
            int r = connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
            if (r < 0 && errno != EINPROGRESS) {
                close(c->fd); c->st = DEAD; failed++; started++; continue;
            }
            c->st = CONNECTING;
            ev.events = EPOLLOUT | EPOLLIN;
            ev.data.u64 = (uint64_t)started;
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            started++;
            inflight++;
        }
        int k = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < k; i++) {
            if (evs[i].data.u64 == (uint64_t)-1) continue;
            struct conn *c = &cs[evs[i].data.u64];
            if (c->st == CONNECTING) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err || write(c->fd, req, reqlen) != reqlen) goto dead;
                c->st = READING;
                ev.events = EPOLLIN;
                ev.data.u64 = evs[i].data.u64;
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                continue;
            }
            if (c->st == READING) {
                for (;;) {
                    char tmp[16384];
                    ssize_t r = read(c->fd, tmp, sizeof tmp);
                    if (r > 0) { /* keep the first BUF-1 bytes: the header is in there */
                        if (c->got < BUF - 1) {
                            size_t keep = BUF - 1 - c->got;
                            memcpy(c->buf + c->got, tmp, (size_t)r < keep ? (size_t)r : keep);
                        }
                        c->got += r;
                        continue;
                    }
                    if (r < 0 && errno == EAGAIN) break;
                    goto dead; /* EOF or error before the full response */
                }
                if (response_complete(c)) { c->st = IDLE; ok++; inflight--; }
                continue;
            }
            continue;
        dead:
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->st = DEAD;
            failed++;
            inflight--;
        }
    }
    failed += n - ok - failed; /* whatever did not finish in time */
    printf("ready %d %d\n", ok, failed);
    fflush(stdout);

    /* Hold: every connection idle; count the ones the server closes. stdin EOF ends it
     * (epoll refuses a regular file such as /dev/null: then only the timer or a signal). */
    ev.events = EPOLLIN;
    ev.data.u64 = (uint64_t)-1;
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    double until = now() + hold;
    while (!stop && now() < until) {
        int k = epoll_wait(ep, evs, 512, 200);
        for (int i = 0; i < k; i++) {
            if (evs[i].data.u64 == (uint64_t)-1) {
                char b[64];
                if (read(0, b, sizeof b) <= 0) stop = 1;
                continue;
            }
            struct conn *c = &cs[evs[i].data.u64];
            char b[256];
            ssize_t r = read(c->fd, b, sizeof b);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->st = DEAD;
                closed++;
            }
        }
    }
    printf("closed_by_server %d\n", closed);
    fflush(stdout);
    return 0;
}
