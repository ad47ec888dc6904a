/* Arena isolation against the real binary: every worker has its own five
 * jemalloc arenas, and what a worker allocates for a request stays in its
 * own arena of the right kind.  The libc build has no per-worker arenas
 * (its stats say "libc"); these tests skip there. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
 * the one worker receiving it: no other worker's arena, no other kind. */
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
    snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
             BODY);
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
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, (size_t)BODY);
    response_free(&r);
    tcp_close(fd);
    usleep(100000);
    cr_assert(read_arenas(stats, during));
    for (int w = 0; w < WORKERS; w++)
        cr_assert_lt(during[w][0].allocated - before[w][0].allocated, 64 * 1024,
                     "worker %d kept the body", w);
    tcp_close(stats);
}
