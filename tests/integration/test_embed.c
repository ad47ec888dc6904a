/* The embedding API's lifecycle, through the library itself: waiting until
 * the server listens, the port from any thread, stopping before, during and
 * after a run, running a server twice, and an invalid status refused. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../support/harness.h"
#include "catzilla/catzilla.h"

static int on_hello(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    return cz_response_send(res, 200, "text/plain", "embedded", 8);
}

static int on_bad_status(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    int rc = cz_response_status(res, 99);
    cr_expect_eq(rc, -EINVAL);
    cr_expect_eq(cz_response_status(res, 600), -EINVAL);
    cr_expect_eq(cz_response_status(res, 102), -EINVAL, "an interim status is not an answer");
    return cz_response_send(res, 1000, "text/plain", "x", 1);
}

struct runner {
    pthread_t thread;
    cz_server *srv;
    int rc;
};

static void *run_thread(void *arg)
{
    struct runner *r = arg;
    r->rc = cz_server_run(r->srv);
    return NULL;
}

static cz_server *make_server_admin(int port, const char *admin)
{
    if (!io_uring_usable())
        cr_skip_test("io_uring is not available here");
    static struct cz_config cfg;
    cz_config_defaults(&cfg);
    cfg.port = port;
    cfg.bind = "127.0.0.1";
    cfg.threads = 1;
    cfg.admin = admin;
    cfg.log_level = CZ_LOG_ERROR;
    cz_server *srv;
    cr_assert_eq(cz_server_create(&cfg, &srv), 0);
    cr_assert_eq(cz_server_route(srv, "GET", "/hello", on_hello, NULL), 0);
    cr_assert_eq(cz_server_route(srv, "GET", "/bad", on_bad_status, NULL), 0);
    return srv;
}

/* Run srv on a thread of its own; returns the port once it listens. */
static int start(cz_server *srv, struct runner *r)
{
    r->srv = srv;
    cr_assert_eq(pthread_create(&r->thread, NULL, run_thread, r), 0);
    int port = cz_server_wait_listening(srv, 5000);
    cr_assert_gt(port, 0, "%s", cz_server_error(srv));
    return port;
}

/* Stop, join and destroy what start ran. */
static void finish(struct runner *r)
{
    cz_server_stop(r->srv);
    pthread_join(r->thread, NULL);
    cr_expect_eq(r->rc, 0);
    cz_server_destroy(r->srv);
}

static cz_server *make_server(int port)
{
    return make_server_admin(port, "off");
}

static int get_status(int port, const char *path, char *body, size_t cap)
{
    char req[256];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    struct response r = request_once(port, req);
    int st = r.status;
    if (body)
        snprintf(body, cap, "%s", r.body ? r.body : "");
    response_free(&r);
    return st;
}

Test(embed, wait_port_stop_and_run_again, .timeout = 30)
{
    cz_server *srv = make_server(0);
    cr_expect_eq(cz_server_port(srv), 0, "no port before run");
    for (int round = 0; round < 2; round++) {
        struct runner r = {.srv = srv};
        cr_assert_eq(pthread_create(&r.thread, NULL, run_thread, &r), 0);
        int port = cz_server_wait_listening(srv, 5000);
        cr_assert_gt(port, 0, "round %d: %d", round, port);
        cr_expect_eq(cz_server_port(srv), port);
        char body[64];
        cr_expect_eq(get_status(port, "/hello", body, sizeof(body)), 200);
        cr_expect_str_eq(body, "embedded");
        cr_expect_eq(get_status(port, "/bad", NULL, 0), 500, "an invalid status is an error");
        cr_expect_eq(cz_server_run(srv), -EBUSY, "a second run while it runs");
        cz_server_stop(srv);
        pthread_join(r.thread, NULL);
        cr_expect_eq(r.rc, 0);
        cr_expect_eq(cz_server_port(srv), 0, "no port after the run");
        cr_expect_eq(cz_server_wait_listening(srv, 100), -ETIMEDOUT, "stopped: nothing listens");
    }
    cz_server_destroy(srv);
}

/* A stop asked before run has started anything is not lost. */
Test(embed, stop_before_run, .timeout = 30)
{
    cz_server *srv = make_server(0);
    cz_server_stop(srv);
    long t0 = now_ms();
    struct runner r = {.srv = srv};
    cr_assert_eq(pthread_create(&r.thread, NULL, run_thread, &r), 0);
    pthread_join(r.thread, NULL);
    cr_expect_eq(r.rc, 0);
    cr_expect_lt(now_ms() - t0, 3000, "the early stop was lost");
    /* And it does not stick: the next run serves. */
    struct runner r2 = {.srv = srv};
    cr_assert_eq(pthread_create(&r2.thread, NULL, run_thread, &r2), 0);
    int port = cz_server_wait_listening(srv, 5000);
    cr_expect_gt(port, 0);
    cr_expect_eq(get_status(port, "/hello", NULL, 0), 200);
    finish(&r2);
}

/* A start-up failure reaches a thread that waits for the server. */
Test(embed, failed_start_is_reported_to_waiters, .timeout = 30)
{
    cz_server *a = make_server(0);
    struct runner r = {.srv = a};
    cr_assert_eq(pthread_create(&r.thread, NULL, run_thread, &r), 0);
    int port = cz_server_wait_listening(a, 5000);
    cr_assert_gt(port, 0);
    cz_server *b = make_server(port); /* the same port: in use */
    struct runner rb = {.srv = b};
    cr_assert_eq(pthread_create(&rb.thread, NULL, run_thread, &rb), 0);
    cr_expect_eq(cz_server_wait_listening(b, 5000), -EADDRINUSE);
    pthread_join(rb.thread, NULL);
    cr_expect_eq(rb.rc, -EADDRINUSE);
    cr_expect(strstr(cz_server_error(b), "already in use"), "%s", cz_server_error(b));
    cz_server_destroy(b);
    cz_server_stop(a);
    pthread_join(r.thread, NULL);
    cz_server_destroy(a);
}

static int on_static_rest(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    struct cz_str rest = cz_request_param(req, "*");
    return cz_response_send(res, 200, "text/plain", rest.ptr ? rest.ptr : "", rest.len);
}

/* A final "*" segment matches the rest of the path, not a literal star. */
Test(embed, wildcard_route, .timeout = 30)
{
    cz_server *srv = make_server(0);
    cr_assert_eq(cz_server_route(srv, "GET", "/static/*", on_static_rest, NULL), 0);
    struct runner r;
    int port = start(srv, &r);
    char body[128];
    cr_expect_eq(get_status(port, "/static/css/site.css", body, sizeof(body)), 200);
    cr_expect_str_eq(body, "css/site.css");
    cr_expect_eq(get_status(port, "/static/*", body, sizeof(body)), 200);
    cr_expect_str_eq(body, "*");
    finish(&r);
}

/* The library serves files only from a root it is given: no guessed
 * docroot, no built-in page. */
Test(embed, no_root_no_files, .timeout = 30)
{
    cz_server *srv = make_server(0);
    struct runner r;
    int port = start(srv, &r);
    cr_expect_eq(get_status(port, "/", NULL, 0), 404);
    cr_expect_eq(get_status(port, "/index.html", NULL, 0), 404);
    cr_expect_eq(get_status(port, "/_catzilla/health", NULL, 0), 404, "no admin routes asked");
    finish(&r);
}

/* The admin surface is one call away, served where cfg.admin says; without
 * the call no admin listener is opened (the default address may be busy). */
Test(embed, admin_routes_on_request, .timeout = 30)
{
    /* A port held by someone else, as another program would. */
    int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    cr_assert(bind(busy, (struct sockaddr *)&sa, sl) == 0 && listen(busy, 1) == 0);
    getsockname(busy, (struct sockaddr *)&sa, &sl);
    static char admin[32];
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", ntohs(sa.sin_port));

    /* Its admin address is taken, but it has no admin routes: it starts. */
    cz_server *plain = make_server_admin(0, admin);
    struct runner r = {.srv = plain};
    cr_assert_eq(pthread_create(&r.thread, NULL, run_thread, &r), 0);
    cr_expect_gt(cz_server_wait_listening(plain, 5000), 0, "%s", cz_server_error(plain));
    cz_server_stop(plain);
    pthread_join(r.thread, NULL);
    cz_server_destroy(plain);
    close(busy);

    cz_server *srv = make_server_admin(0, "same");
    cr_assert_eq(cz_server_admin_routes(srv), 0);
    struct runner r2;
    int port = start(srv, &r2);
    char body[64];
    cr_expect_eq(get_status(port, "/_catzilla/health", body, sizeof(body)), 200);
    cr_expect_str_eq(body, "ok");
    cr_expect_eq(get_status(port, "/_catzilla/metrics", NULL, 0), 200);
    finish(&r2);
}

static int on_missing(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    char body[256];
    struct cz_str path = cz_request_path(req);
    int n = snprintf(body, sizeof(body), "{\"missing\":\"%.*s\"}", (int)path.len, path.ptr);
    return cz_response_send(res, 404, "application/json", body, (size_t)n);
}

/* The application's own not-found answer. */
Test(embed, custom_not_found, .timeout = 30)
{
    cz_server *srv = make_server(0);
    cr_assert_eq(cz_server_not_found(srv, on_missing, NULL), 0);
    struct runner r;
    int port = start(srv, &r);
    cr_expect_eq(cz_server_not_found(srv, NULL, NULL), -EBUSY);
    char body[128];
    cr_expect_eq(get_status(port, "/nowhere/x", body, sizeof(body)), 404);
    cr_expect_str_eq(body, "{\"missing\":\"/nowhere/x\"}");
    cr_expect_eq(get_status(port, "/hello", body, sizeof(body)), 200, "routes still win");
    finish(&r);
}

static int on_search(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    char q[64], out[160];
    ssize_t n = cz_request_query_param(req, "q", q, sizeof(q));
    int len = n >= 0 ? snprintf(out, sizeof(out), "q=[%s]", q)
                     : snprintf(out, sizeof(out), "error %zd", n);
    return cz_response_send(res, 200, "text/plain", out, (size_t)len);
}

/* Query parameters, decoded. */
Test(embed, query_params, .timeout = 30)
{
    char out[64];
    cr_expect_eq(cz_url_decode("a%20b+c%2Fd", 11, true, out, sizeof(out)), 7);
    cr_expect_str_eq(out, "a b c/d");
    cr_expect_eq(cz_url_decode("a+b", 3, false, out, sizeof(out)), 3);
    cr_expect_str_eq(out, "a+b");
    cr_expect_eq(cz_url_decode("%zz", 3, true, out, sizeof(out)), -EINVAL);
    cr_expect_eq(cz_url_decode("%00", 3, true, out, sizeof(out)), -EINVAL);
    cr_expect_eq(cz_url_decode("%4", 2, true, out, sizeof(out)), -EINVAL);
    cr_expect_eq(cz_url_decode("abcdef", 6, true, out, 4), -ENOSPC);

    cz_server *srv = make_server(0);
    cr_assert_eq(cz_server_route(srv, "GET", "/search", on_search, NULL), 0);
    struct runner r;
    int port = start(srv, &r);
    static const char *const cases[][2] = {
        {"/search?q=hello+world%21", "q=[hello world!]"},
        {"/search?a=1&q=%E2%9C%93&q=second", "q=[\xe2\x9c\x93]"},
        {"/search?q", "q=[]"},
        {"/search?%71=by+encoded+name", "q=[by encoded name]"},
        {"/search?x=1", "error -2"},
    };
    /* (A bad escape never reaches a handler: the target is refused with 400.) */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[160];
        cr_expect_eq(get_status(port, cases[i][0], body, sizeof(body)), 200, "%s", cases[i][0]);
        cr_expect_str_eq(body, cases[i][1], "%s", cases[i][0]);
    }
    finish(&r);
}
