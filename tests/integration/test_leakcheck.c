/* The leak checker of debug and sanitizer builds (`--version` says "(leak
 * check)"; other builds skip): with no connection left, a worker's request
 * and response blocks must be back where they started, and a planted leak
 * (CATZILLA_LEAK_PLANT makes /_leak forget 100 request bytes) is reported
 * with the arena and the size.  Every other integration suite fails on the
 * error line the checker logs, so in these builds each of them is a leak
 * test too. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"

static struct server srv;

static void require_leak_check(void)
{
    if (!binary_version_has("(leak check)"))
        cr_skip_test("the server was built without the leak check (make test DEBUG=1 or "
                     "SANITIZE=address,undefined)");
}

TestSuite(leakcheck, .init = require_leak_check, .timeout = 30);

/* Waits until the server has no connection (the check runs then). */
static void settle(void)
{
    long deadline = now_ms() + 3000;
    while (now_ms() < deadline && stats_connections(srv.port) != 1)
        usleep(20000);
    usleep(100000); /* the stats connection itself closes */
}

Test(leakcheck, mixed_requests_leave_nothing_behind)
{
    server_start(&srv, NULL);
    static const char *const reqs[] = {
        "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /_catzilla/stats HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,3-4\r\n\r\n",
        "BREW / HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        struct response r = request_once(srv.port, reqs[i]);
        cr_assert_gt(r.status, 0, "request %zu", i);
        response_free(&r);
    }
    settle();
    char *log = server_log(&srv);
    cr_assert_null(strstr(log, "leak check"), "a leak was reported:\n%s", log);
    free(log);
    server_stop_checked(&srv);
}

Test(leakcheck, planted_leak_is_reported_with_arena_and_size)
{
    setenv("CATZILLA_LEAK_PLANT", "1", 1);
    server_start(&srv, NULL);
    unsetenv("CATZILLA_LEAK_PLANT");
    struct response r = request_once(srv.port, "GET /_leak HTTP/1.1\r\nHost: x\r\n\r\n");
    response_free(&r);
    settle();
    char *log = server_log(&srv);
    const char *line = strstr(log, "leak check");
    cr_assert_not_null(line, "the planted leak was not reported:\n%s", log);
    cr_assert_not_null(strstr(line, "request blocks hold"), "%s", line);
    /* 100 bytes, as the allocator's size class rounds them up. */
    const char *plus = strstr(line, "bytes (+");
    cr_assert_not_null(plus, "%s", line);
    long leaked = strtol(plus + 8, NULL, 10);
    cr_assert(leaked >= 100 && leaked < 200, "leak of %ld bytes reported: %s", leaked, line);
    free(log);
    server_stop(&srv);
    unlink(srv.log_path);
}
