/* Handlers that answer later, through the library itself: deferred answers
 * finished from a timer or from another thread (cz_server_post), streamed
 * answers (chunked, HTTP/1.0, HEAD, back-pressure, a client that leaves),
 * timers, and hooks before and after handlers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../support/harness.h"
#include "catzilla/catzilla.h"

static cz_server *srv;
static pthread_t runner;
static int run_rc;
static int port;

/* ---- handlers ---- */

static void finish_late(void *arg)
{
    cz_deferred *d = arg;
    cz_response_send(cz_deferred_response(d), 200, "text/plain", "late", 4);
    cz_deferred_finish(d);
}

/* Answered 50 ms later, from a timer. */
static int on_later(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    cz_deferred *d = cz_response_defer(res);
    if (!d)
        return -ENOMEM;
    if (!cz_timer_start(50, 0, finish_late, d))
        return -ENOMEM; /* ignored: d stays open (the test would time out) */
    return 0;
}

static int on_now(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    return cz_response_send(res, 200, "text/plain", "now", 3);
}

/* Answered from a thread of the application's own, through cz_server_post. */
struct job {
    cz_deferred *d;
    unsigned worker;
};

static void finish_posted(void *arg)
{
    struct job *j = arg;
    cz_response *r = cz_deferred_response(j->d);
    cz_response_header(r, "X-Posted", "yes");
    cz_response_send(r, 202, "text/plain", "posted", 6);
    cz_deferred_finish(j->d);
    free(j);
}

static void *app_thread(void *arg)
{
    struct job *j = arg;
    usleep(20000);
    int rc = cz_server_post(srv, j->worker, finish_posted, j);
    cr_expect_eq(rc, 0);
    return NULL;
}

static int on_posted(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    struct job *j = malloc(sizeof(*j));
    j->d = cz_response_defer(res);
    j->worker = cz_request_worker(req);
    pthread_t t;
    pthread_create(&t, NULL, app_thread, j);
    pthread_detach(t);
    return 0;
}

/* Five chunks, one every 10 ms, from a repeating timer that cancels itself. */
struct ticker {
    cz_stream *s;
    cz_timer *t;
    int n;
};

static void tick(void *arg)
{
    struct ticker *k = arg;
    char line[32];
    int len = snprintf(line, sizeof(line), "tick %d\n", k->n);
    cz_stream_write(k->s, line, (size_t)len);
    if (++k->n == 5) {
        cz_timer_cancel(k->t);
        cz_stream_end(k->s);
        free(k);
    }
}

static int on_stream(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    cz_response_header(res, "Content-Type", "text/plain");
    cz_response_write(res, "start\n", 6);
    struct ticker *k = calloc(1, sizeof(*k));
    k->s = cz_response_stream(res);
    if (!k->s) {
        free(k);
        return -ENOMEM;
    }
    k->t = cz_timer_start(10, 10, tick, k);
    return 0;
}

/* As fast as the client takes it: BIG bytes in 64 KiB pieces, waiting for
 * cz_stream_on_writable whenever a write says the queue is full. */
#define BIG (24u << 20)
static atomic_uint big_waits;
struct pump {
    cz_stream *s;
    size_t sent;
};

static void pump(cz_stream *s, void *arg)
{
    struct pump *p = arg;
    static char piece[65536];
    if (cz_stream_gone(s)) {
        cz_stream_end(s);
        free(p);
        return;
    }
    while (p->sent < BIG) {
        size_t n = BIG - p->sent < sizeof(piece) ? BIG - p->sent : sizeof(piece);
        for (size_t i = 0; i < n; i++)
            piece[i] = (char)('a' + (p->sent + i) % 26);
        int rc = cz_stream_write(s, piece, n);
        if (rc < 0) {
            cz_stream_end(s);
            free(p);
            return;
        }
        p->sent += n;
        if (rc == 1) {
            atomic_fetch_add(&big_waits, 1);
            cz_stream_on_writable(s, pump, p);
            return;
        }
    }
    cz_stream_end(s);
    free(p);
}

static int on_big(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    struct pump *p = calloc(1, sizeof(*p));
    p->s = cz_response_stream(res);
    pump(p->s, p);
    return 0;
}

/* Writes every 5 ms until the client is gone; then records that. */
static atomic_bool gone_seen;
static void drip(void *arg)
{
    struct ticker *k = arg;
    if (cz_stream_write(k->s, "drip\n", 5) == -EPIPE) {
        atomic_store(&gone_seen, true);
        cz_timer_cancel(k->t);
        cz_stream_end(k->s);
        free(k);
    }
}

static int on_forever(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    struct ticker *k = calloc(1, sizeof(*k));
    k->s = cz_response_stream(res);
    k->t = cz_timer_start(5, 5, drip, k);
    return 0;
}

/* A deferred answer turned into a stream later. */
static void stream_later(void *arg)
{
    cz_deferred *d = arg;
    cz_response *r = cz_deferred_response(d);
    cz_response_status(r, 201);
    cz_stream *s = cz_response_stream(r);
    cz_stream_write(s, "deferred ", 9);
    cz_stream_write(s, "stream", 6);
    cz_stream_end(s);
}

static int on_defer_stream(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    cz_timer_start(5, 0, stream_later, cz_response_defer(res));
    return 0;
}

/* Never answered: a stop must not wait longer than --shutdown-timeout. */
static int on_never(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    return cz_response_defer(res) ? 0 : -ENOMEM;
}

static atomic_int timer_runs;
static void count_run(void *arg)
{
    (void)arg;
    atomic_fetch_add(&timer_runs, 1);
}

/* A timer cancelled at once never runs; one that runs once is freed. */
static int on_timers(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    cz_timer *t = cz_timer_start(20, 0, count_run, NULL);
    cr_expect_not_null(t);
    cz_timer_cancel(t);
    cz_timer_start(0, 0, count_run, NULL);
    cr_expect_null(cz_timer_start(-1, 0, count_run, NULL));
    cr_expect_eq(errno, EINVAL);
    return cz_response_send(res, 200, "text/plain", "ok", 2);
}

/* Files by path: an absolute path, the same with the handler's own type,
 * and a missing one. */
static char file_path[64];
static int on_file(const cz_request *req, cz_response *res, void *ud)
{
    const char *which = ud;
    cz_response_header(res, "X-File", "1");
    if (which && strcmp(which, "typed") == 0)
        cz_response_header(res, "Content-Type", "application/x-mine");
    int rc = cz_response_file(res, which && strcmp(which, "missing") == 0 ? "/nonexistent/x.txt"
                                                                          : file_path);
    cr_expect_eq(rc, 0);
    (void)req;
    return -EIO; /* ignored: the answer is the file's */
}

/* ---- hooks ---- */

static int before(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    struct cz_str p = cz_request_path(req);
    if (p.len >= 7 && memcmp(p.ptr, "/secret", 7) == 0 && !cz_request_header(req, "X-Key").ptr) {
        cz_response_send(res, 401, "text/plain", "who are you\n", 12);
        return CZ_HOOK_DONE;
    }
    cz_response_header(res, "X-Before", "1");
    return CZ_HOOK_CONTINUE;
}

static int after(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    cz_response_header(res, "Access-Control-Allow-Origin", "*");
    cz_response_header(res, "X-After-Had-Request", req ? "yes" : "no");
    return 0;
}

static void *run_thread(void *arg)
{
    (void)arg;
    run_rc = cz_server_run(srv);
    return NULL;
}

/* What cz_response_header and cz_response_send let onto the wire: the
 * handler answers with the return code of every attempt, in order. */
static int on_header_rules(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    static const char *const tries[][2] = {
        {"X-Ok", "a value\twith a tab"}, {"X-Empty-Value", ""},
        {"", "v"},                       {"X Space", "v"},
        {"X:Colon", "v"},                {"X\tTab", "v"},
        {"X-Cr", "a\rb"},                {"X-Lf", "a\nSet-Cookie: x=1"},
        {"X-Del", "a\x7f"},              {"X-Ctl", "a\x01"},
        {"Content-Length", "5"},         {"server", "mine"},
        {"Transfer-Encoding", "chunked"}, {"X-Utf8", "caf\xc3\xa9"}};
    char body[256] = "";
    size_t n = 0;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "%d ",
                              cz_response_header(res, tries[i][0], tries[i][1]));
    n += (size_t)snprintf(body + n, sizeof(body) - n, "%d",
                          cz_response_send(res, 200, "text/plain\r\nX-Injected: 1", "x", 1));
    return cz_response_send(res, 200, "text/plain", body, n);
}

static void setup(void)
{
    if (!io_uring_usable())
        cr_skip_test("io_uring is not available here");
    static struct cz_config cfg;
    cz_config_defaults(&cfg);
    cfg.port = 0;
    cfg.bind = "127.0.0.1";
    cfg.threads = 1;
    cfg.admin = "off";
    cfg.log_level = CZ_LOG_ERROR;
    cfg.shutdown_timeout = 300;
    cfg.max_output_queue = 256 * 1024;
    cr_assert_eq(cz_server_create(&cfg, &srv), 0);
    static const struct {
        const char *path;
        cz_handler_fn fn;
    } routes[] = {
        {"/later", on_later},   {"/now", on_now},       {"/posted", on_posted},
        {"/stream", on_stream}, {"/big", on_big},       {"/forever", on_forever},
        {"/never", on_never},   {"/timers", on_timers}, {"/defer-stream", on_defer_stream},
        {"/secret", on_now},    {"/header-rules", on_header_rules}};
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        cr_assert_eq(cz_server_route(srv, "*", routes[i].path, routes[i].fn, NULL), 0);
    cr_assert_eq(cz_server_route(srv, "GET", "/file", on_file, NULL), 0);
    cr_assert_eq(cz_server_route(srv, "GET", "/file-typed", on_file, "typed"), 0);
    cr_assert_eq(cz_server_route(srv, "GET", "/file-missing", on_file, "missing"), 0);
    strcpy(file_path, "/tmp/cz-file-XXXXXX.txt");
    int ffd = mkstemps(file_path, 4);
    cr_assert_geq(ffd, 0);
    cr_assert_eq(write(ffd, "hello, file\n", 12), 12);
    close(ffd);
    cr_assert_eq(cz_server_hook_before(srv, before, NULL), 0);
    cr_assert_eq(cz_server_hook_after(srv, after, NULL), 0);
    cr_assert_eq(pthread_create(&runner, NULL, run_thread, NULL), 0);
    port = cz_server_wait_listening(srv, 5000);
    cr_assert_gt(port, 0, "%s", cz_server_error(srv));
}

static void teardown(void)
{
    if (!srv)
        return;
    cz_server_stop(srv);
    pthread_join(runner, NULL);
    cr_expect_eq(run_rc, 0);
    cz_server_destroy(srv);
    srv = NULL;
    unlink(file_path);
}

TestSuite(handlers, .init = setup, .fini = teardown, .timeout = 60);

static struct response get(const char *path)
{
    char req[256];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    return request_once(port, req);
}

Test(handlers, a_deferred_answer_from_a_timer_keeps_pipelined_order)
{
    int fd = tcp_connect(port);
    long t0 = now_ms();
    send_str(fd, "GET /later HTTP/1.1\r\nHost: t\r\n\r\nGET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    struct response a, b;
    cr_assert(read_response(fd, &a, false));
    cr_assert(read_response(fd, &b, false));
    cr_expect_eq(a.status, 200);
    cr_expect_str_eq(a.body, "late", "the deferred answer comes first");
    cr_expect_geq(now_ms() - t0, 40);
    cr_expect_str_eq(b.body, "now");
    cr_expect_str_eq(header(&a, "X-After-Had-Request"), "no", "after hooks ran on it");
    cr_expect_str_eq(header(&b, "X-Before"), "1");
    response_free(&a);
    response_free(&b);
    /* The connection is still good. */
    send_str(fd, "GET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(read_response(fd, &a, false));
    cr_expect_eq(a.status, 200);
    response_free(&a);
    tcp_close(fd);
}

Test(handlers, a_deferred_answer_posted_from_another_thread)
{
    struct response r = get("/posted");
    cr_expect_eq(r.status, 202);
    cr_expect_str_eq(r.body, "posted");
    cr_expect_str_eq(header(&r, "X-Posted"), "yes");
    response_free(&r);
    cr_expect_eq(cz_server_post(srv, 7, count_run, NULL), -EINVAL, "no worker 7");
}

Test(handlers, a_stream_is_chunked_and_keeps_the_connection)
{
    int fd = tcp_connect(port);
    send_str(fd, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\nGET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    struct response r, n;
    cr_assert(read_response(fd, &r, false));
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(header(&r, "Transfer-Encoding"), "chunked");
    cr_expect_null(header(&r, "Content-Length"));
    cr_expect_str_eq(header(&r, "Access-Control-Allow-Origin"), "*");
    cr_expect_str_eq(header(&r, "X-After-Had-Request"), "yes");
    cr_expect(r.chunks_ok, "the body ends with its last chunk");
    cr_expect_str_eq(r.body, "start\ntick 0\ntick 1\ntick 2\ntick 3\ntick 4\n");
    cr_assert(read_response(fd, &n, false), "the pipelined request behind the stream");
    cr_expect_str_eq(n.body, "now");
    response_free(&r);
    response_free(&n);
    tcp_close(fd);
}

Test(handlers, a_stream_to_http10_runs_to_the_close_and_head_has_no_body)
{
    struct response r = request_once(port, "GET /stream HTTP/1.0\r\n\r\n");
    cr_expect_eq(r.status, 200);
    cr_expect_null(header(&r, "Transfer-Encoding"));
    cr_expect(r.closed);
    cr_expect_str_eq(r.body, "start\ntick 0\ntick 1\ntick 2\ntick 3\ntick 4\n");
    response_free(&r);

    int fd = tcp_connect(port);
    send_str(fd, "HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\nGET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(read_response(fd, &r, true));
    cr_expect_eq(r.status, 200);
    response_free(&r);
    cr_assert(read_response(fd, &r, false));
    cr_expect_str_eq(r.body, "now", "nothing of the HEAD stream's body came before it");
    response_free(&r);
    tcp_close(fd);
}

Test(handlers, a_deferred_answer_can_become_a_stream)
{
    struct response r = get("/defer-stream");
    cr_expect_eq(r.status, 201);
    cr_expect(r.chunks_ok);
    cr_expect_str_eq(r.body, "deferred stream");
    response_free(&r);
}

/* Decodes a chunked body as it arrives, checking the pump's pattern. */
struct dechunk {
    enum { HEX, HEX_LF, DATA, DATA_CR, DATA_LF, DONE } st;
    size_t left, got;
    bool ok;
};

static void dechunk_feed(struct dechunk *d, const char *p, size_t n)
{
    for (size_t i = 0; i < n && d->st != DONE; i++) {
        char ch = p[i];
        switch (d->st) {
        case HEX:
            if (ch == '\r')
                d->st = HEX_LF;
            else
                d->left = d->left * 16 + (size_t)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
            break;
        case HEX_LF:
            d->st = d->left ? DATA : DONE;
            break;
        case DATA:
            d->ok &= ch == (char)('a' + d->got % 26);
            d->got++;
            if (--d->left == 0)
                d->st = DATA_CR;
            break;
        case DATA_CR:
            d->st = DATA_LF;
            break;
        case DATA_LF:
            d->st = HEX;
            break;
        case DONE:
            break;
        }
    }
}

/* A client that reads slowly gets every byte, while the producer waits for
 * the queue: memory stays near --max-output-queue, not the 24 MiB. */
Test(handlers, a_big_stream_waits_for_a_slow_reader)
{
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    int fd = tcp_connect_opts(port, 64 * 1024, 0, false);
    send_str(fd, "GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    usleep(300000); /* the queue fills while nobody reads */
    cr_expect_gt(atomic_load(&big_waits), 0, "the producer was told to wait");
    static char buf[65536];
    struct dechunk d = {.ok = true};
    bool in_body = false;
    size_t head_seen = 0;
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0 || (n < 0 && errno == EINTR)) {
        if (n < 0)
            continue;
        size_t off = 0;
        if (!in_body) {
            /* The head: up to its blank line (it fits the first read). */
            char *e = memmem(buf, (size_t)n, "\r\n\r\n", 4);
            cr_assert_not_null(e);
            off = (size_t)(e - buf) + 4;
            head_seen = off;
            in_body = true;
        }
        dechunk_feed(&d, buf + off, (size_t)n - off);
    }
    tcp_close(fd);
    cr_expect_gt(head_seen, 0);
    cr_expect_eq(d.st, DONE, "the last chunk came");
    cr_expect_eq(d.got, BIG);
    cr_expect(d.ok, "the bytes came in order");
    getrusage(RUSAGE_SELF, &ru1);
    cr_expect_lt(ru1.ru_maxrss - ru0.ru_maxrss, 8 * 1024, "the process grew %ld KiB",
                 ru1.ru_maxrss - ru0.ru_maxrss);
}

Test(handlers, a_stream_learns_that_its_client_left)
{
    atomic_store(&gone_seen, false);
    int fd = tcp_connect(port);
    send_str(fd, "GET /forever HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[256];
    cr_assert_gt(recv(fd, buf, sizeof(buf), 0), 0);
    close(fd);
    long t0 = now_ms();
    while (!atomic_load(&gone_seen) && now_ms() - t0 < 3000)
        usleep(10000);
    cr_expect(atomic_load(&gone_seen), "the stream never saw -EPIPE");
}

Test(handlers, timers_cancel_and_refuse_bad_arguments)
{
    atomic_store(&timer_runs, 0);
    struct response r = get("/timers");
    cr_expect_eq(r.status, 200);
    response_free(&r);
    usleep(100000);
    cr_expect_eq(atomic_load(&timer_runs), 1, "only the uncancelled timer ran");
    errno = 0;
    cr_expect_null(cz_timer_start(10, 0, count_run, NULL), "not on a worker");
    cr_expect_eq(errno, EPERM);
}

Test(handlers, hooks_answer_before_and_add_headers_after)
{
    struct response r = get("/secret");
    cr_expect_eq(r.status, 401);
    cr_expect_str_eq(r.body, "who are you\n");
    cr_expect_str_eq(header(&r, "Access-Control-Allow-Origin"), "*", "after hooks see it too");
    cr_expect_null(header(&r, "X-Before"));
    response_free(&r);
    r = request_once(port, "GET /secret HTTP/1.1\r\nHost: t\r\nX-Key: k\r\n\r\n");
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(header(&r, "X-Before"), "1", "a before hook's header stays");
    response_free(&r);
    cr_expect_eq(cz_server_hook_before(srv, before, NULL), -EBUSY);
}

/* A deferred answer never finished: the stop waits --shutdown-timeout
 * (300 ms here), then drops it. */
Test(handlers, a_stop_does_not_wait_forever_for_a_deferred_answer)
{
    int fd = tcp_connect(port);
    send_str(fd, "GET /never HTTP/1.1\r\nHost: t\r\n\r\n");
    usleep(50000);
    long t0 = now_ms();
    teardown();
    cr_expect_lt(now_ms() - t0, 3000);
    cr_expect(wait_closed(fd, 1000));
    tcp_close(fd);
}

Test(handlers, a_handler_sends_a_file_by_path)
{
    struct response r = get("/file");
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "hello, file\n");
    cr_expect_str_eq(header(&r, "Content-Type"), "text/plain; charset=utf-8");
    cr_expect_str_eq(header(&r, "X-File"), "1", "the handler's headers stay");
    cr_expect_str_eq(header(&r, "Access-Control-Allow-Origin"), "*", "after hooks ran");
    cr_assert_not_null(header(&r, "ETag"));
    char etag[128], req[512];
    snprintf(etag, sizeof(etag), "%s", header(&r, "ETag"));
    response_free(&r);

    snprintf(req, sizeof(req), "GET /file HTTP/1.1\r\nHost: t\r\nIf-None-Match: %s\r\n\r\n", etag);
    r = request_once(port, req);
    cr_expect_eq(r.status, 304);
    response_free(&r);
    r = request_once(port, "GET /file HTTP/1.1\r\nHost: t\r\nRange: bytes=7-10\r\n\r\n");
    cr_expect_eq(r.status, 206);
    cr_expect_str_eq(r.body, "file");
    response_free(&r);
    r = get("/file-typed");
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(header(&r, "Content-Type"), "application/x-mine");
    response_free(&r);
    r = get("/file-missing");
    cr_expect_eq(r.status, 404);
    response_free(&r);
}

Test(handlers, response_headers_refuse_injection_and_managed_names)
{
    struct response r = get("/header-rules");
    cr_assert_eq(r.status, 200);
    char want[128];
    snprintf(want, sizeof(want), "0 0 %d %d %d %d %d %d %d %d %d %d %d 0 %d", -EINVAL, -EINVAL,
             -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EPERM, -EPERM, -EPERM, -EINVAL);
    cr_expect_str_eq(r.body, want);
    cr_expect_str_eq(header(&r, "X-Ok"), "a value\twith a tab");
    cr_expect_str_eq(header(&r, "X-Empty-Value"), "");
    cr_expect_str_eq(header(&r, "X-Utf8"), "caf\xc3\xa9");
    cr_expect_str_eq(header(&r, "Content-Type"), "text/plain");
    cr_expect_null(header(&r, "X-Injected"));
    cr_expect_null(header(&r, "Set-Cookie"));
    cr_expect_null(header(&r, "X-Cr"));
    response_free(&r);
}
