/*
 * bench/ratelat.c: latency at a fixed offered rate, for bench/run.sh.
 *
 *   ratelat HOST PORT PATH RATE CONNS SECONDS [WARMUP_SECONDS]
 *
 * Request k is due at start + k / RATE, whatever happened before it (an open-loop client, unlike
 * wrk, which waits for each answer before it sends the next request). A due request goes out on
 * the first of CONNS keep-alive connections that has no request outstanding. Its latency runs
 * from the moment it was due, not from when it was sent, so a server that stalls is charged for
 * every request that had to wait behind the stall ("coordinated omission" corrected). Requests
 * due in the first WARMUP_SECONDS (default 1) are sent but not counted.
 *
 * Prints key=value lines: offered_rps, achieved_rps, completed, errors, late (requests sent
 * more than 1 ms after they were due: the client or the connections could not keep up),
 * p50_us p90_us p99_us p999_us max_us. Exit status 1 when no answer came back.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { RBUF = 1 << 17 };

struct conn {
    int fd;
    bool busy;          /* a request is outstanding */
    bool dead;
    uint64_t due_ns;    /* when the outstanding request was due */
    size_t len;         /* bytes in rbuf */
    char rbuf[RBUF];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "ratelat: %s: %s\n", what, strerror(errno));
    exit(2);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Length of the complete response at the start of buf (head + Content-Length body), 0 when it
 * is not all there yet, -1 when it cannot be read. *ok is set for a 2xx status. */
static long response_len(const char *buf, size_t len, bool *ok)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return len >= RBUF ? -1 : 0;
    size_t head = (size_t)(end - buf) + 4;
    if (head < 12 || memcmp(buf, "HTTP/1.", 7) != 0)
        return -1;
    *ok = buf[9] == '2';
    long body = -1;
    for (const char *p = buf; p < end;) {
        const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
        if (eol - p > 15 && strncasecmp(p, "content-length:", 15) == 0)
            body = strtol(p + 15, NULL, 10);
        p = eol + 2;
    }
    if (body < 0)
        return -1;   /* every server here answers with a Content-Length */
    return head + (size_t)body <= len ? (long)(head + (size_t)body) : 0;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: ratelat HOST PORT PATH RATE CONNS SECONDS [WARMUP_SECONDS]\n");
        return 2;
    }
    const char *host = argv[1], *port = argv[2], *path = argv[3];
    double rate = atof(argv[4]), secs = atof(argv[6]), warm = argc > 7 ? atof(argv[7]) : 1;
    int nconn = atoi(argv[5]);
    if (rate <= 0 || nconn <= 0 || secs <= 0 || warm < 0) {
        fprintf(stderr, "ratelat: RATE, CONNS and SECONDS must be positive\n");
        return 2;
    }
    char req[512];
    int reqlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%s\r\n\r\n", path, host, port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        fprintf(stderr, "ratelat: cannot resolve %s\n", host);
        return 2;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    int *idle = malloc((size_t)nconn * sizeof *idle), nidle = 0;
    if (ep < 0 || !conns || !idle)
        die("setup");
    for (int i = 0; i < nconn; i++) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
            die("connect");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            die("epoll_ctl");
        conns[i].fd = fd;
        idle[nidle++] = i;
    }
    freeaddrinfo(ai);

    uint64_t total = (uint64_t)((warm + secs) * rate), counted_from = (uint64_t)(warm * rate);
    uint64_t *lat = malloc((size_t)(total - counted_from + 1) * sizeof *lat);
    uint64_t next = 0, completed = 0, errors = 0, late = 0, nlat = 0, alive = (uint64_t)nconn;
    double interval = 1e9 / rate;
    uint64_t start = now_ns() + 1000000, measure_start = start + (uint64_t)(warm * 1e9);
    uint64_t drain_until = 0, last_done = 0;
    if (!lat)
        die("malloc");
    while (alive > 0) {
        uint64_t now = now_ns();
        /* send every due request that has a free connection */
        while (next < total && nidle > 0 && start + (uint64_t)(next * interval) <= now) {
            struct conn *c = &conns[idle[--nidle]];
            c->due_ns = start + (uint64_t)(next * interval);
            if (now - c->due_ns > 1000000)
                late += next >= counted_from;
            if (write(c->fd, req, (size_t)reqlen) != reqlen) {   /* a request fits any socket buffer */
                c->dead = true;
                alive--;
                errors++;
                continue;
            }
            c->busy = true;
            c->len = 0;
            next++;
        }
        if (next == total && drain_until == 0)
            drain_until = now + 2000000000u;   /* wait up to 2 s for the last answers */
        if (drain_until && (nidle == (int)alive || now > drain_until))
            break;
        int64_t wait = 100000000;   /* 100 ms */
        if (next < total && nidle > 0) {
            int64_t due = (int64_t)(start + (uint64_t)(next * interval)) - (int64_t)now;
            wait = due < 0 ? 0 : due;
        }
        struct timespec ts = { .tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000 };
        struct epoll_event evs[256];
        int n = epoll_pwait2(ep, evs, 256, &ts, NULL);
        if (n < 0 && errno != EINTR)
            die("epoll_pwait2");
        for (int e = 0; e < n; e++) {
            int i = (int)evs[e].data.u32;
            struct conn *c = &conns[i];
            if (c->dead)
                continue;
            ssize_t r = read(c->fd, c->rbuf + c->len, RBUF - c->len);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            bool ok = false;
            long rl = 0;
            if (r > 0) {
                c->len += (size_t)r;
                rl = c->busy ? response_len(c->rbuf, c->len, &ok) : -1;
            }
            if (r <= 0 || rl < 0 || (rl > 0 && (size_t)rl != c->len)) {
                /* closed, unreadable, or more than the one answer asked for */
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->dead = true;
                alive--;
                errors += c->busy;
                continue;
            }
            if (rl == 0)
                continue;
            uint64_t done = now_ns();
            if (!ok)
                errors++;
            else if (c->due_ns >= measure_start)
                lat[nlat++] = done - c->due_ns;
            completed++;
            last_done = done;
            c->busy = false;
            c->len = 0;
            idle[nidle++] = i;
        }
    }
    if (nlat == 0) {
        fprintf(stderr, "ratelat: no answer was counted (%llu errors)\n", (unsigned long long)errors);
        return 1;
    }
    qsort(lat, nlat, sizeof *lat, cmp_u64);
#define PCT(q) (lat[(uint64_t)((q) * (double)(nlat - 1) + 0.5)] / 1000.0)
    double span = (double)(last_done > measure_start ? last_done - measure_start : 1) / 1e9;
    printf("offered_rps=%.0f\nachieved_rps=%.0f\ncompleted=%llu\ncounted=%llu\nerrors=%llu\nlate=%llu\n"
           "p50_us=%.1f\np90_us=%.1f\np99_us=%.1f\np999_us=%.1f\nmax_us=%.1f\n",
           rate, (double)nlat / span, (unsigned long long)completed, (unsigned long long)nlat,
           (unsigned long long)errors, (unsigned long long)late, PCT(0.5), PCT(0.9), PCT(0.99),
           PCT(0.999), lat[nlat - 1] / 1000.0);
    return 0;
}
