/* Arena isolation against the real binary: every worker has its own five
 * jemalloc arenas, and what a worker allocates for a request stays in its
 * own arena of the right kind.  The libc build has no per-worker arenas
 * (its stats say "libc"); these tests skip there. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../support/harness.h"

#define WORKERS 2
#define KINDS 5

static struct server srv;
static const char *const kinds[KINDS] = {"request", "response", "cache", "static", "task"};

struct arena {
    long index, allocated;
};

TestSuite(arenas, .timeout = 60);

static void teardown(void)
{
    server_stop_checked(&srv);
}

/* Parse "workers":[...] of the stats: arena index and allocated bytes per
 * worker and kind.  Returns false on the libc build. */
static bool read_arenas(int fd, struct arena a[WORKERS][KINDS])
{
    send_str(fd, "GET /_catzilla/stats HTTP/1.1\r\nHost: t\r\n\r\n");
    struct response r;
    cr_assert(read_response(fd, &r, false));
    cr_assert_eq(r.status, 200);
    bool jemalloc = strstr(r.body, "\"allocator\":\"jemalloc\"") != NULL;
    const char *p = r.body;
    for (int w = 0; jemalloc && w < WORKERS; w++) {
        char key[32];
        snprintf(key, sizeof(key), "{\"id\":%d,", w);
        p = strstr(r.body, key);
        cr_assert_not_null(p, "worker %d missing:\n%s", w, r.body);
        for (int k = 0; k < KINDS; k++) {
            snprintf(key, sizeof(key), "\"%s\":{\"index\":", kinds[k]);
            const char *q = strstr(p, key);
            cr_assert_not_null(q);
            a[w][k].index = strtol(q + strlen(key), NULL, 10);
            q = strstr(q, "\"allocated\":");
            cr_assert_not_null(q);
            a[w][k].allocated = strtol(q + 12, NULL, 10);
        }
    }
    response_free(&r);
    return jemalloc;
}

static void start(void)
{
    const char *args[] = {"--threads", "2", "--max-body-size", "4m", NULL};
    server_start(&srv, args);
}

Test(arenas, every_worker_has_five_arenas_of_its_own, .fini = teardown)
{
    start();
    int fd = tcp_connect(srv.port);
    struct arena a[WORKERS][KINDS];
    if (!read_arenas(fd, a))
        cr_skip_test("libc build: no per-worker arenas");
    for (int i = 0; i < WORKERS * KINDS; i++) {
        long x = a[i / KINDS][i % KINDS].index;
        cr_assert_gt(x, 0, "arena 0 is the process's shared arena");
        for (int j = i + 1; j < WORKERS * KINDS; j++)
            cr_assert_neq(x, a[j / KINDS][j % KINDS].index, "two arenas share index %ld", x);
    }
    /* Both workers serve files: each keeps its receive ring in its own
     * static arena, registered with its own ring. */
    for (int w = 0; w < WORKERS; w++)
        cr_assert_gt(a[w][3].allocated, 512 * 1024, "worker %d static arena", w);
    tcp_close(fd);
}

/* A 3 MB body held by an unfinished request sits in the request arena of
 * the one worker receiving it: no other worker's arena, no other kind.
 * (POST /plaintext buffers its body, then answers 405; /echo streams.) */
Test(arenas, a_request_body_stays_in_its_workers_request_arena, .fini = teardown)
{
    start();
    int stats = tcp_connect(srv.port);
    struct arena before[WORKERS][KINDS], during[WORKERS][KINDS];
    if (!read_arenas(stats, before))
        cr_skip_test("libc build: no per-worker arenas");

    enum { BODY = 3 * 1024 * 1024 };
    int fd = tcp_connect(srv.port);
    char head[128];
    snprintf(head, sizeof(head),
             "POST /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", BODY);
    send_str(fd, head);
    static char part[BODY / 2];
    memset(part, 'x', sizeof(part));
    send_all(fd, part, sizeof(part));
    usleep(200000);

    cr_assert(read_arenas(stats, during));
    int holders = 0;
    for (int w = 0; w < WORKERS; w++) {
        long grew = during[w][0].allocated - before[w][0].allocated;
        if (grew >= BODY) {
            holders++;
            for (int k = 1; k < KINDS; k++)
                cr_assert_lt(during[w][k].allocated - before[w][k].allocated, 256 * 1024,
                             "worker %d: the body grew its %s arena", w, kinds[k]);
        } else {
            cr_assert_lt(grew, 256 * 1024, "worker %d's request arena grew by %ld", w, grew);
        }
    }
    cr_assert_eq(holders, 1, "the body must be in exactly one worker's request arena");

    /* Finished, answered and gone: back to where it started. */
    send_all(fd, part, sizeof(part));
    struct response r;
    cr_assert(read_response(fd, &r, false));
    cr_assert_eq(r.status, 405);
    response_free(&r);
    tcp_close(fd);
    usleep(100000);
    cr_assert(read_arenas(stats, during));
    for (int w = 0; w < WORKERS; w++)
        cr_assert_lt(during[w][0].allocated - before[w][0].allocated, 64 * 1024,
                     "worker %d kept the body", w);
    tcp_close(stats);
}

struct sender {
    int fd;
    const char *data;
    size_t len;
};

static void *send_thread(void *arg)
{
    struct sender *x = arg;
    send_all(x->fd, x->data, x->len);
    return NULL;
}

/* /echo never holds a body whole: with 3 MB sent and nothing read back, no
 * worker's arenas grew by much more than --max-output-queue (reading from
 * the client paused), and the whole body comes back once read. */
Test(arenas, an_echoed_body_is_never_held_whole, .fini = teardown)
{
    start();
    int stats = tcp_connect(srv.port);
    struct arena before[WORKERS][KINDS], during[WORKERS][KINDS];
    if (!read_arenas(stats, before))
        cr_skip_test("libc build: no per-worker arenas");
    enum { BODY = 3 * 1024 * 1024 };
    static char body[BODY];
    for (size_t i = 0; i < BODY; i++)
        body[i] = (char)('a' + i % 26);
    int fd = tcp_connect(srv.port);
    char head[128];
    snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
             BODY);
    send_str(fd, head);
    struct sender x = {fd, body, BODY};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, send_thread, &x), 0);
    usleep(300000); /* the sender stalls once the server stops reading */
    cr_assert(read_arenas(stats, during));
    for (int w = 0; w < WORKERS; w++) {
        long total = 0;
        char kinds_grew[256] = "";
        for (int k = 0; k < KINDS; k++) {
            long g = during[w][k].allocated - before[w][k].allocated;
            total += g;
            snprintf(kinds_grew + strlen(kinds_grew), sizeof(kinds_grew) - strlen(kinds_grew),
                     " %s %+ld", kinds[k], g);
        }
        cr_expect_lt(total, 2 * 1024 * 1024, "worker %d holds %ld bytes:%s", w, total, kinds_grew);
    }
    struct response r;
    cr_assert(read_response(fd, &r, false));
    pthread_join(t, NULL);
    cr_expect_eq(r.status, 200);
    cr_expect_eq(r.body_len, (size_t)BODY);
    cr_expect(r.body_len == BODY && memcmp(r.body, body, BODY) == 0, "the echo differs");
    response_free(&r);
    tcp_close(fd);
    tcp_close(stats);
}

static long status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    long v = -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':')
            v = strtol(line + fl + 1, NULL, 10);
    fclose(f);
    return v;
}

/* The yardstick: echoing 50 MB (--max-body-size 100m) raises the
 * server's peak RSS by a few MB, not by the body. */
Test(arenas, a_50_mb_echo_raises_peak_rss_by_a_few_mb, .fini = teardown)
{
    const char *args[] = {"--threads", "1", "--max-body-size", "100m", NULL};
    server_start(&srv, args);
    enum { BODY = 50 * 1024 * 1024, PIECE = 256 * 1024 };
    static char piece[PIECE];
    for (size_t i = 0; i < PIECE; i++)
        piece[i] = (char)('a' + i % 26);
    /* Warm up (first-touch of buffers), then reset the peak. */
    struct response r = request_once(srv.port, "POST /echo HTTP/1.1\r\nHost: t\r\n"
                                               "Content-Length: 5\r\n\r\nhello");
    cr_assert_eq(r.status, 200);
    response_free(&r);
    long rss0 = status_kib(srv.pid, "VmRSS");
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)srv.pid);
    FILE *cf = fopen(path, "w");
    cr_assert_not_null(cf);
    fputs("5", cf); /* resets VmHWM to the current RSS */
    fclose(cf);

    int fd = tcp_connect(srv.port);
    char head[128];
    snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
             BODY);
    send_str(fd, head);
    /* One thread sends the body piece by piece while this one reads. */
    static char body_copy[BODY];
    for (size_t off = 0; off < BODY; off += PIECE)
        memcpy(body_copy + off, piece, PIECE);
    struct sender x = {fd, body_copy, BODY};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, send_thread, &x), 0);
    static char buf[65536];
    size_t got = 0, hl = 0;
    bool ok = true, in_body = false;
    ssize_t n;
    while (got < BODY && ((n = recv(fd, buf, sizeof(buf), 0)) > 0 || (n < 0 && errno == EINTR))) {
        if (n < 0)
            continue;
        size_t off = 0;
        if (!in_body) {
            char *e = memmem(buf, (size_t)n, "\r\n\r\n", 4);
            cr_assert_not_null(e, "the head came in pieces");
            hl = (size_t)(e - buf) + 4;
            cr_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0);
            off = hl;
            in_body = true;
        }
        for (size_t i = off; i < (size_t)n && ok; i++)
            ok = buf[i] == (char)('a' + (got + i - off) % PIECE % 26);
        got += (size_t)n - off;
    }
    pthread_join(t, NULL);
    tcp_close(fd);
    cr_expect_eq(got, (size_t)BODY);
    cr_expect(ok, "the echo differs from the body");
    long hwm = status_kib(srv.pid, "VmHWM");
    cr_log_info("50 MB echo: peak RSS %ld KiB, %+ld KiB over the idle %ld KiB", hwm, hwm - rss0,
                rss0);
    cr_expect_lt(hwm - rss0, 8 * 1024, "peak RSS rose by %ld KiB (from %ld KiB) for a 50 MB echo",
                 hwm - rss0, rss0);
}
