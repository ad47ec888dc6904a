/* Hostile clients against the real binary.  Malformed requests beyond the
 * engine tests' protocol_errors_get_exact_status (each: exact status,
 * Connection: close, then the connection closes); clients that reset during
 * a response, stop reading, half-close, vanish during an upload, or open far
 * more connections than allowed.  After every test the server must be back
 * where it started: only our own connection open, the same number of
 * descriptors, and no error-level line in its log.  Regressions for inputs
 * the fuzzers found are at the end, named for what broke. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../support/harness.h"

static struct server srv;
static int baseline_fds;

/* Touch every feature whose descriptors are created lazily, then count. */
static void warm_up_and_count_fds(void)
{
    static const char *const reqs[] = {
        "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /_catzilla/stats HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        struct response r = request_once(srv.port, reqs[i]);
        cr_assert_eq(r.status, 200, "warm-up request %zu: %d", i, r.status);
        response_free(&r);
    }
    /* The last connection may still be closing on the server. */
    usleep(100000);
    baseline_fds = count_fds(srv.pid);
    cr_assert_gt(baseline_fds, 0);
}

static void start_with(const char *const *args)
{
    server_start(&srv, args);
    warm_up_and_count_fds();
}

static void start_default(void)
{
    start_with((const char *const[]){"--header-timeout", "2s", "--body-timeout", "2s",
                                     "--max-request-line", "1k", "--max-header-size", "4k",
                                     "--max-headers", "32", NULL});
}

/* Connections: only the one asking for the stats.  Descriptors: as before. */
static void expect_back_to_baseline(void)
{
    long conns = -1;
    int fds = -1;
    long deadline = now_ms() + 5000;
    while (now_ms() < deadline) {
        conns = stats_connections(srv.port);
        fds = count_fds(srv.pid);
        if (conns == 1 && fds == baseline_fds)
            break;
        usleep(50000);
    }
    cr_expect_eq(conns, 1, "connections did not return to 0 (stats says %ld with ours)", conns);
    cr_expect_eq(fds, baseline_fds, "descriptors: %d, baseline %d", fds, baseline_fds);
}

static void stop_and_check(void)
{
    expect_back_to_baseline();
    server_stop_checked(&srv);
}

TestSuite(hardening, .init = start_default, .fini = stop_and_check, .timeout = 40);

/* ---------- malformed requests ---------- */

struct bad {
    const char *name;
    const char *data;
    size_t len;
    int status;
};
#define BAD(name, lit, status)                                                                     \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, status                                                         \
    }

static void expect_error(const struct bad *b)
{
    expect_error_response(srv.port, b->name, b->data, b->len, b->status);
}

static void expect_errors(const struct bad *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_error(&cases[i]);
}
#define EXPECT_ERRORS(cases) expect_errors(cases, sizeof(cases) / sizeof(cases[0]))

#define H "Host: x\r\n"

Test(hardening, bad_header_names_and_values_get_400)
{
    static const struct bad cases[] = {
        BAD("empty name", "GET / HTTP/1.1\r\n" H ": v\r\n\r\n", 400),
        BAD("NUL in name", "GET / HTTP/1.1\r\n" H "X-A\0B: v\r\n\r\n", 400),
        BAD("BEL in name", "GET / HTTP/1.1\r\n" H "X\aA: v\r\n\r\n", 400),
        BAD("ESC in name", "GET / HTTP/1.1\r\n" H "X\x1b: v\r\n\r\n", 400),
        BAD("'@' in name", "GET / HTTP/1.1\r\n" H "X@Y: v\r\n\r\n", 400),
        BAD("quote in name", "GET / HTTP/1.1\r\n" H "X\"Y: v\r\n\r\n", 400),
        BAD("high byte in name", "GET / HTTP/1.1\r\n" H "X\xffY: v\r\n\r\n", 400),
        BAD("no colon", "GET / HTTP/1.1\r\n" H "NoColonHere\r\n\r\n", 400),
        BAD("NUL in value", "GET / HTTP/1.1\r\n" H "X-A: a\0b\r\n\r\n", 400),
        BAD("CR in value", "GET / HTTP/1.1\r\n" H "X-A: a\rb\r\n\r\n", 400),
        BAD("BEL in value", "GET / HTTP/1.1\r\n" H "X-A: a\ab\r\n\r\n", 400),
        BAD("ESC in value", "GET / HTTP/1.1\r\n" H "X-A: \x1b[31m\r\n\r\n", 400),
        BAD("DEL in value", "GET / HTTP/1.1\r\n" H "X-A: a\x7f\r\n\r\n", 400),
        BAD("obs-fold with space", "GET / HTTP/1.1\r\n" H "X-A: a\r\n b\r\n\r\n", 400),
        BAD("obs-fold with tab", "GET / HTTP/1.1\r\n" H "X-A: a\r\n\tb\r\n\r\n", 400),
        BAD("obs-fold of Host", "GET / HTTP/1.1\r\nHost: x\r\n y\r\n\r\n", 400),
        BAD("obs-fold after an empty value", "GET / HTTP/1.1\r\n" H "X-A:\r\n b\r\n\r\n", 400),
        BAD("obs-fold after blanks", "GET / HTTP/1.1\r\n" H "X-A:  \r\n\t b\r\n\r\n", 400),
        BAD("blank continuation line", "GET / HTTP/1.1\r\n" H "X-A: a\r\n \r\n\r\n", 400),
        BAD("bare CR ends a header", "GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400),
        BAD("tab before colon", "GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", 400),
    };
    EXPECT_ERRORS(cases);
}

/* Regression: the obs-fold check took llhttp's empty span for an empty value
 * (it points at the start of the next line) for a fold, so every request
 * with an empty header value got 400. */
Test(hardening, empty_header_values_are_accepted)
{
    static const char *const reqs[] = {
        "GET /plaintext HTTP/1.1\r\n" H "X-Empty:\r\n\r\n",
        "GET /plaintext HTTP/1.1\r\n" H "X-Empty: \r\nX-Next: v\r\n\r\n",
        "GET /plaintext HTTP/1.1\r\nX-Empty:\t\r\n" H "\r\n",
        "GET /plaintext HTTP/1.1\r\nHost:\r\n\r\n", /* RFC 9112, 3.2: may be empty */
    };
    int fd = tcp_connect(srv.port);
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        send_str(fd, reqs[i]);
        struct response r;
        cr_assert(read_response(fd, &r, false), "request %zu: no response", i);
        cr_assert_eq(r.status, 200, "request %zu: %d", i, r.status);
        cr_assert_not(r.closed, "request %zu closed the connection", i);
        response_free(&r);
    }
    tcp_close(fd);
}

Test(hardening, bad_content_length_gets_400)
{
    static const struct bad cases[] = {
        BAD("plus sign", "POST /echo HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\nhello", 400),
        BAD("hex", "POST /echo HTTP/1.1\r\n" H "Content-Length: 0x10\r\n\r\nhello", 400),
        BAD("two numbers", "POST /echo HTTP/1.1\r\n" H "Content-Length: 1 2\r\n\r\nhello", 400),
        BAD("list", "POST /echo HTTP/1.1\r\n" H "Content-Length: 2, 2\r\n\r\nhello", 400),
        BAD("empty", "POST /echo HTTP/1.1\r\n" H "Content-Length: \r\n\r\nhello", 400),
        BAD("overflows 64 bits",
            "POST /echo HTTP/1.1\r\n" H "Content-Length: 18446744073709551616\r\n\r\nhello", 400),
        BAD("overflows by far",
            "POST /echo HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999\r\n\r\nx", 400),
        BAD("two different",
            "POST /echo HTTP/1.1\r\n" H "Content-Length: 1\r\nContent-Length: 2"
            "\r\n\r\nxy",
            400),
        BAD("CL then TE",
            "POST /echo HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: "
            "chunked\r\n\r\n0\r\n\r\n",
            400),
    };
    EXPECT_ERRORS(cases);
}

Test(hardening, bad_transfer_encoding_and_chunks)
{
    static const struct bad cases[] = {
        BAD("chunked not last",
            "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked, gzip"
            "\r\n\r\n",
            501),
        BAD("unsupported coding before chunked",
            "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        BAD("identity", "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n", 501),
        BAD("chunked twice",
            "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            501),
        BAD("chunk longer than its size",
            "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked"
            "\r\n\r\n3\r\nabcde\r\n0\r\n\r\n",
            400),
        BAD("chunk size overflows",
            "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked"
            "\r\n\r\nfffffffffffffffff\r\n",
            400),
        BAD("negative chunk size",
            "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked"
            "\r\n\r\n-1\r\nx\r\n",
            400),
        BAD("space in chunk size",
            "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked"
            "\r\n\r\n1 1\r\nx\r\n",
            400),
        BAD("CTL in chunk extension",
            "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked"
            "\r\n\r\n3;a\x01=b\r\nabc\r\n0\r\n\r\n",
            400),
    };
    EXPECT_ERRORS(cases);
}

/* Non-strict llhttp (the default build of its C sources) skips the two bytes
 * after chunk data whatever they are, and takes "\r\r\n" as the end of the
 * head: a front end that frames these differently can be desynchronised
 * (request smuggling).  request.c checks those bytes itself (llhttp's
 * LLHTTP_STRICT_MODE=1 would also reject both). */
Test(hardening, lenient_llhttp_framing_is_rejected)
{
    static const struct bad cases[] = {
        BAD("chunk data not followed by CRLF",
            "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
            400),
        BAD("bare CR before the head's final CRLF", "GET / HTTP/1.1\r\n" H "\r\r\n", 400),
    };
    EXPECT_ERRORS(cases);
}

Test(hardening, bad_versions_and_methods)
{
    static const struct bad cases[] = {
        BAD("no version", "GET /\r\n" H "\r\n", 400),
        BAD("HTTP/1 without minor", "GET / HTTP/1\r\n" H "\r\n", 400),
        BAD("lowercase protocol", "GET / http/1.1\r\n" H "\r\n", 400),
        BAD("junk after the version", "GET / HTTP/1.1x\r\n" H "\r\n", 400),
        BAD("bare CR after the version", "GET / HTTP/1.1\rHost: x\r\n\r\n", 400),
        BAD("HTTP/0.9 spelled out", "GET / HTTP/0.9\r\n" H "\r\n", 400),
        BAD("two-digit major", "GET / HTTP/11.1\r\n" H "\r\n", 400),
        BAD("HTTP/1.2", "GET / HTTP/1.2\r\n" H "\r\n", 505),
        BAD("HTTP/3.0", "GET / HTTP/3.0\r\n" H "\r\n", 505),
        BAD("CTL in method", "G\x01T / HTTP/1.1\r\n" H "\r\n", 400),
        BAD("'@' in method", "GE@T / HTTP/1.1\r\n" H "\r\n", 400),
        BAD("unknown long method", "ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\n" H "\r\n", 501),
        BAD("lowercase method", "get / HTTP/1.1\r\n" H "\r\n", 501),
        BAD("SSH banner", "SSH-2.0-OpenSSH_9.2\r\n", 400),
        BAD("a response as a request", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 400),
    };
    EXPECT_ERRORS(cases);
}

Test(hardening, bad_targets_get_400_everywhere)
{
    static const struct bad cases[] = {
        BAD("space in target", "GET /plain text HTTP/1.1\r\n" H "\r\n", 400),
        BAD("tab in target", "GET /plain\ttext HTTP/1.1\r\n" H "\r\n", 400),
        BAD("CTL in target", "GET /plain\x01text HTTP/1.1\r\n" H "\r\n", 400),
        BAD("DEL in target", "GET /plain\x7ftext HTTP/1.1\r\n" H "\r\n", 400),
        BAD("NUL in target", "GET /plain\0text HTTP/1.1\r\n" H "\r\n", 400),
        BAD("CTL in query", "GET /plaintext?a=\x02 HTTP/1.1\r\n" H "\r\n", 400),
        BAD("%zz on a route", "GET /plaintext%zz HTTP/1.1\r\n" H "\r\n", 400),
        BAD("%00 on a route", "GET /plain%00text HTTP/1.1\r\n" H "\r\n", 400),
        BAD("%zz in a query", "GET /plaintext?q=%zz HTTP/1.1\r\n" H "\r\n", 400),
        BAD("truncated escape", "GET /plaintext%4 HTTP/1.1\r\n" H "\r\n", 400),
        BAD("%zz on echo", "POST /echo%zz HTTP/1.1\r\n" H "Content-Length: 1\r\n\r\nx", 400),
        BAD("%zz on a file", "GET /index.html%zz HTTP/1.1\r\n" H "\r\n", 400),
        BAD("%00 on a file", "GET /index.html%00.txt HTTP/1.1\r\n" H "\r\n", 400),
        BAD("%zz on a missing path", "GET /no/such%zz HTTP/1.1\r\n" H "\r\n", 400),
    };
    EXPECT_ERRORS(cases);
}

Test(hardening, header_limits_431)
{
    char req[8192];
    /* One header line alone over the 4k block. */
    size_t n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n" H "X-Long: ");
    memset(req + n, 'v', 4200);
    n += 4200;
    n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n\r\n");
    expect_error(&(struct bad){"one long line", req, n, 431});
    /* Many short lines, none long, together over the block. */
    n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n" H);
    for (int i = 0; i < 30; i++)
        n += (size_t)snprintf(req + n, sizeof(req) - n, "X-%02d: %0150d\r\n", i, i);
    n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
    expect_error(&(struct bad){"block of short lines", req, n, 431});
    /* A long name. */
    n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n" H);
    memset(req + n, 'N', 5000);
    n += 5000;
    n += (size_t)snprintf(req + n, sizeof(req) - n, ": v\r\n\r\n");
    expect_error(&(struct bad){"long name", req, n, 431});
    /* 33 tiny headers with a limit of 32. */
    n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n" H);
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(req + n, sizeof(req) - n, "A%d: b\r\n", i);
    n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
    expect_error(&(struct bad){"33 headers", req, n, 431});
    /* The request line limit, with the long part in the query. */
    n = (size_t)snprintf(req, sizeof(req), "GET /plaintext?");
    memset(req + n, 'q', 1100);
    n += 1100;
    n += (size_t)snprintf(req + n, sizeof(req) - n, " HTTP/1.1\r\n" H "\r\n");
    expect_error(&(struct bad){"long query", req, n, 414});
}

Test(hardening, body_over_limit_is_413_before_the_body)
{
    /* The head alone gets the answer: the client has sent no body byte, and
     * with Expect: 100-continue no interim 100 comes first. */
    int fd = tcp_connect(srv.port);
    send_str(fd, "PUT /echo HTTP/1.1\r\n" H "Content-Length: 104857600\r\n"
                 "Expect: 100-continue\r\n\r\n");
    long t0 = now_ms();
    struct response r;
    cr_assert(read_response(fd, &r, false));
    cr_assert_eq(r.status, 413);
    cr_assert_lt(now_ms() - t0, 1500, "413 took %ld ms", now_ms() - t0);
    cr_assert_str_eq(header(&r, "Connection"), "close");
    response_free(&r);
    /* A client that sends its body anyway is drained, then closed. */
    static char junk[65536];
    memset(junk, 'j', sizeof(junk));
    for (int i = 0; i < 16; i++)
        send_all(fd, junk, sizeof(junk));
    cr_assert(wait_closed(fd, 5000), "connection not closed after 413");
    tcp_close(fd);
}

Test(hardening, smuggled_request_behind_an_error_is_not_processed)
{
    int fd = tcp_connect(srv.port);
    send_str(fd, "GET /plaintext HTTP/1.1\r\n" H "\r\n"
                 "POST /echo HTTP/1.1\r\n" H "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"
                 "\r\n0\r\n\r\nGET /json HTTP/1.1\r\n" H "\r\n");
    struct response r;
    cr_assert(read_response(fd, &r, false));
    cr_assert_eq(r.status, 200);
    response_free(&r);
    cr_assert(read_response(fd, &r, false));
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(header(&r, "Connection"), "close");
    response_free(&r);
    size_t n;
    char *rest = read_all(fd, &n, 1500);
    cr_assert_eq(n, 0, "answered behind the error: %s", rest);
    free(rest);
    tcp_close(fd);
}

Test(hardening, implemented_elsewhere_method_is_501_and_keeps_the_connection)
{
    /* A method llhttp knows but nothing here implements is a well-formed
     * request: 501, and the connection goes on. */
    int fd = tcp_connect(srv.port);
    send_str(fd, "PROPFIND / HTTP/1.1\r\n" H "\r\nGET /plaintext HTTP/1.1\r\n" H "\r\n");
    struct response r;
    cr_assert(read_response(fd, &r, false));
    cr_assert_eq(r.status, 501);
    response_free(&r);
    cr_assert(read_response(fd, &r, false));
    cr_assert_eq(r.status, 200);
    response_free(&r);
    tcp_close(fd);
}

Test(hardening, upgrade_request_is_answered_with_connection_close)
{
    int fd = tcp_connect(srv.port);
    send_str(fd, "GET /plaintext HTTP/1.1\r\n" H "Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                 "GET /json HTTP/1.1\r\n" H "\r\n");
    struct response r;
    cr_assert(read_response(fd, &r, false));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(header(&r, "Connection"), "close");
    response_free(&r);
    size_t n;
    char *rest = read_all(fd, &n, 1500);
    cr_assert_eq(n, 0, "answered after the upgrade request: %s", rest);
    free(rest);
    tcp_close(fd);
}

/* ---------- misbehaving connections ---------- */

static void plaintext_works(const char *when)
{
    long t0 = now_ms();
    struct response r = request_once(srv.port, "GET /plaintext HTTP/1.1\r\n" H "\r\n");
    cr_assert_eq(r.status, 200, "%s: a fresh client got %d", when, r.status);
    cr_assert_lt(now_ms() - t0, 1000, "%s: a fresh client waited %ld ms", when, now_ms() - t0);
    response_free(&r);
}

static void abortive_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    tcp_close(fd); /* RST */
}

/* Read at most n bytes (whatever arrives within a short time). */
static void read_some(int fd, size_t n)
{
    char buf[16384];
    while (n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 500) <= 0)
            return;
        ssize_t k = recv(fd, buf, n < sizeof(buf) ? n : sizeof(buf), 0);
        if (k <= 0)
            return;
        n -= (size_t)k;
    }
}

Test(hardening, reset_during_a_large_echo_response)
{
    size_t len = 900 * 1024;
    char *body = malloc(len);
    memset(body, 'e', len);
    for (int round = 0; round < 3; round++) {
        int fd = tcp_connect(srv.port);
        char head[128];
        snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\n" H "Content-Length: %zu\r\n\r\n",
                 len);
        send_str(fd, head);
        send_all(fd, body, len);
        read_some(fd, (size_t)round * 20000 + 1000);
        abortive_close(fd);
        plaintext_works("after a reset during an echo");
    }
    free(body);
}

Test(hardening, reset_during_a_pipelined_burst)
{
    char req[64 * 40];
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(req + n, sizeof(req) - n, "GET %s HTTP/1.1\r\n" H "\r\n",
                              i % 3 == 0   ? "/"
                              : i % 3 == 1 ? "/json"
                                           : "/_catzilla/stats");
    for (int round = 0; round < 5; round++) {
        int fd = tcp_connect(srv.port);
        for (int k = 0; k < 10; k++)
            send_all(fd, req, n);
        read_some(fd, (size_t)round * 3000 + 100);
        abortive_close(fd);
        plaintext_works("after a reset during a pipelined burst");
    }
}

static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t k = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[k] = '\0';
    /* Fields after the ")" of comm: state is field 3; utime, stime are 14, 15. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)(ut + st);
}

/* A client connected with a small receive buffer, so it fills quickly. */
static int connect_small_rcvbuf(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    int sz = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    return fd;
}

/* Regression: the bytes a paused connection still received in the same turn
 * were capped at 256 KiB and the connection was then closed at once, so a
 * fast pipelining client was reset instead of being held back. */
Test(hardening, client_that_stops_reading_is_held_back_and_freed)
{
    int fd = connect_small_rcvbuf(srv.port);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    static char req[32 * 1024];
    size_t n = 0;
    const char *one = "GET /json HTTP/1.1\r\n" H "\r\n";
    size_t ol = strlen(one);
    while (n + ol <= sizeof(req)) {
        memcpy(req + n, one, ol);
        n += ol;
    }
    /* Pipeline until the server stops reading (its output queue is full and
     * our receive buffer too): send() then blocks for good. */
    size_t sent = 0, off = 0;
    long quiet_since = now_ms(), t0 = now_ms();
    while (now_ms() - quiet_since < 300 && now_ms() - t0 < 15000) {
        ssize_t k = send(fd, req + off, n - off, MSG_NOSIGNAL);
        if (k > 0) {
            sent += (size_t)k;
            off = (off + (size_t)k) % n;
            quiet_since = now_ms();
        } else if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            cr_assert_fail("send: %s", strerror(errno));
        } else {
            usleep(10000);
        }
    }
    cr_assert(now_ms() - t0 < 15000, "the server never stopped reading (%zu bytes sent)", sent);
    cr_log_info("stalled after %zu request bytes", sent);

    /* Stalled, the connection costs nothing: other clients are served and
     * the server does not spin. */
    long c0 = cpu_ticks(srv.pid);
    for (int i = 0; i < 5; i++) {
        plaintext_works("while a client is stalled");
        usleep(200000);
    }
    long c1 = cpu_ticks(srv.pid);
    cr_assert_lt(c1 - c0, 30, "server used %ld ticks of CPU in 1 s with a stalled client", c1 - c0);
    cr_assert_gt(stats_connections(srv.port), 1, "the stalled client was dropped early");
    tcp_close(fd); /* unread data: the kernel resets */
}

/* A client that pipelines megabytes while reading is paused and resumed
 * many times (held bytes fed again); every request is answered, in order,
 * none twice. */
Test(hardening, pipelined_flood_answered_completely)
{
    int fd = tcp_connect(srv.port);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    enum { TOTAL = 100000 };
    static char req[40 * 1000];
    size_t n = 0;
    for (int i = 0; i < 1000; i++) {
        const char *path = i % 2 ? "/json" : "/plaintext";
        n += (size_t)snprintf(req + n, sizeof(req) - n, "GET %s HTTP/1.1\r\n" H "\r\n", path);
    }
    /* 1000 requests per buffer, alternating: the answers alternate too. */
    const char *want[2] = {"Hello, World!", "{\"message\":\"Hello, World!\"}"};
    size_t sent_reqs_bytes = 0, total_bytes = n * (TOTAL / 1000);
    static char in[1 << 16];
    size_t have = 0;
    unsigned answered = 0;
    long t0 = now_ms();
    while (answered < TOTAL) {
        cr_assert_lt(now_ms() - t0, 20000, "flood stalled: %u of %d answered", answered, TOTAL);
        struct pollfd p = {.fd = fd,
                           .events = POLLIN | (sent_reqs_bytes < total_bytes ? POLLOUT : 0)};
        poll(&p, 1, 1000);
        if (sent_reqs_bytes < total_bytes && (p.revents & POLLOUT)) {
            size_t off = sent_reqs_bytes % n;
            ssize_t k = send(fd, req + off, n - off, MSG_NOSIGNAL);
            cr_assert(k > 0 || errno == EAGAIN, "send: %s", strerror(errno));
            if (k > 0)
                sent_reqs_bytes += (size_t)k;
        }
        if (!(p.revents & POLLIN))
            continue;
        ssize_t k = recv(fd, in + have, sizeof(in) - have, 0);
        cr_assert(k > 0 || errno == EAGAIN || errno == EINTR, "connection lost after %u answers",
                  answered);
        if (k <= 0)
            continue;
        have += (size_t)k;
        /* Parse whole responses: head, Content-Length body. */
        size_t pos = 0;
        for (;;) {
            char *end = memmem(in + pos, have - pos, "\r\n\r\n", 4);
            if (!end)
                break;
            char *cl = memmem(in + pos, (size_t)(end - (in + pos)), "Content-Length: ", 16);
            cr_assert_not_null(cl, "response %u without Content-Length", answered);
            size_t blen = strtoul(cl + 16, NULL, 10);
            size_t hlen = (size_t)(end + 4 - (in + pos));
            if (have - pos < hlen + blen)
                break;
            cr_assert(strncmp(in + pos, "HTTP/1.1 200 ", 13) == 0, "response %u: %.40s", answered,
                      in + pos);
            const char *w = want[answered % 2];
            cr_assert(blen == strlen(w) && memcmp(end + 4, w, blen) == 0,
                      "response %u out of order", answered);
            answered++;
            pos += hlen + blen;
        }
        memmove(in, in + pos, have - pos);
        have -= pos;
    }
    tcp_close(fd);
}

Test(hardening, half_close_after_complete_requests_still_answered)
{
    int fd = tcp_connect(srv.port);
    send_str(fd, "GET /plaintext HTTP/1.1\r\n" H "\r\n"
                 "POST /echo HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nabc"
                 "GET /json HTTP/1.1\r\n" H "\r\n");
    shutdown(fd, SHUT_WR);
    struct response r;
    cr_assert(read_response(fd, &r, false));
    cr_assert_str_eq(r.body, "Hello, World!");
    response_free(&r);
    cr_assert(read_response(fd, &r, false));
    cr_assert_str_eq(r.body, "abc");
    response_free(&r);
    cr_assert(read_response(fd, &r, false));
    cr_assert_str_eq(r.body, "{\"message\":\"Hello, World!\"}");
    response_free(&r);
    cr_assert(wait_closed(fd, 3000), "not closed after the half-closed client's answers");
    tcp_close(fd);

    /* Half-closed in the middle of a head: nothing to answer, just closed. */
    fd = tcp_connect(srv.port);
    send_str(fd, "GET /plaintext HTTP/1.1\r\nHo");
    shutdown(fd, SHUT_WR);
    size_t n;
    char *got = read_all(fd, &n, 3000);
    cr_assert(n == 0 || strncmp(got, "HTTP/1.1 400", 12) == 0, "unexpected: %s", got);
    free(got);
    tcp_close(fd);
}

Test(hardening, client_vanishes_during_a_large_upload)
{
    static char chunk[64 * 1024];
    memset(chunk, 'u', sizeof(chunk));
    for (int round = 0; round < 4; round++) {
        int fd = tcp_connect(srv.port);
        send_str(fd, round % 2 ? "POST /echo HTTP/1.1\r\n" H "Content-Length: 1000000\r\n\r\n"
                               : "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
                                 "100000\r\n");
        for (int i = 0; i < 4; i++)
            send_all(fd, chunk, sizeof(chunk));
        if (round < 2)
            tcp_close(fd); /* FIN */
        else
            abortive_close(fd); /* RST */
        plaintext_works("after a client vanished mid-upload");
    }
}

/* ---------- too many connections ---------- */

static void start_saturation(void)
{
    start_with((const char *const[]){"--max-connections", "8", "--header-timeout", "5s",
                                     "--keepalive-timeout", "10s", NULL});
}

TestSuite(saturation, .init = start_saturation, .fini = stop_and_check, .timeout = 40);

/* Eight busy connections (bodies half sent, so none is an idle one the server
 * may evict) fill the slots; 42 more clients wait in the backlog. */
Test(saturation, fifty_clients_against_eight_busy_slots)
{
    enum { N = 50, SLOTS = 8 };
    int fds[N];
    for (int i = 0; i < SLOTS; i++) {
        fds[i] = tcp_connect(srv.port);
        send_str(fds[i], "POST /echo HTTP/1.1\r\n" H "Content-Length: 40\r\n\r\n0123456789");
    }
    usleep(200000);
    for (int i = SLOTS; i < N; i++) {
        fds[i] = tcp_connect(srv.port); /* completes in the kernel's backlog */
        send_str(fds[i], "GET /plaintext HTTP/1.1\r\n" H "\r\n");
    }
    /* Nobody beyond the slots is served while they are busy. */
    for (int i = SLOTS; i < N; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        cr_assert_eq(poll(&p, 1, i == SLOTS ? 300 : 0), 0, "client %d served beyond the limit", i);
    }

    /* Saturated for 2 s: the busy connections keep working, and the server
     * does not spin on the clients it cannot take. */
    long c0 = cpu_ticks(srv.pid);
    for (int step = 0; step < 2; step++) {
        usleep(1000000);
        for (int i = 0; i < SLOTS; i++)
            send_str(fds[i], "abcdefghij");
    }
    long used = cpu_ticks(srv.pid) - c0;
    cr_assert_lt(used, 40, "server used %ld ticks of CPU in 2 s while saturated", used);
    for (int i = 0; i < SLOTS; i++) {
        send_str(fds[i], "ABCDEFGHIJ");
        struct response r;
        cr_assert(read_response(fds[i], &r, false), "busy connection %d lost", i);
        cr_assert_eq(r.status, 200);
        cr_assert_str_eq(r.body, "0123456789abcdefghijabcdefghijABCDEFGHIJ");
        response_free(&r);
        tcp_close(fds[i]);
    }

    /* Accepting resumes: every waiting client is answered. */
    for (int i = SLOTS; i < N; i++) {
        struct response r;
        cr_assert(read_response(fds[i], &r, false), "waiting client %d never answered", i);
        cr_assert_eq(r.status, 200);
        response_free(&r);
        tcp_close(fds[i]);
    }
    plaintext_works("after saturation");
}

/* ---------- regressions: inputs the fuzzers found ---------- */

/* fuzz_request: llhttp keeps a form feed inside the target ("GET /sub?/\f
 * HTTP/1.1"); it reached handlers, and a directory redirect echoed it into
 * its Location header.  Every control character in the target is now 400. */
Test(hardening, form_feed_in_the_target_is_400)
{
    static const struct bad cases[] = {
        BAD("form feed in a route's query", "GET /plaintext?a\f HTTP/1.1\r\n" H "\r\n", 400),
        BAD("form feed in a file's query", "GET /index.html?\f HTTP/1.1\r\n" H "\r\n", 400),
        BAD("form feed ending the path", "GET /index.html\f HTTP/1.1\r\n" H "\r\n", 400),
        BAD("vertical tab in the query", "GET /plaintext?\v HTTP/1.1\r\n" H "\r\n", 400),
    };
    EXPECT_ERRORS(cases);
}

/* fuzz_request: llhttp reports an empty URL span for a CR right after the
 * method; scratch_append then did memcpy(NULL + 0, at, 0) (UB). */
Test(hardening, empty_target_span_after_the_method)
{
    expect_error(&(struct bad)BAD("CONNECT, space, CR", "CONNECT \rCT ", 400));
    expect_error(&(struct bad)BAD("GET, space, CRLF", "GET \r\n", 400));
}

/* The send timer: a client that takes nothing at all for --send-timeout is
 * closed (between one and one and a half timeouts: the timer looks twice
 * per timeout, and a SIOCOUTQ probe of the socket counts acknowledged bytes
 * as progress), and one that takes bytes, however slowly, is not. */
Test(hardening, stalled_reader_closed_after_send_timeout, .timeout = 30)
{
    server_stop(&srv);
    unlink(srv.log_path);
    start_with((const char *const[]){"--send-timeout", "1s", NULL});
    int fd = connect_small_rcvbuf(srv.port);
    /* Enough pipelined output to fill both socket buffers: never read. */
    static char req[64 * 1024];
    size_t n = 0;
    const char *one = "POST /echo HTTP/1.1\r\n" H "Content-Length: 4000\r\n\r\n";
    size_t ol = strlen(one);
    while (n + ol + 4000 <= sizeof(req)) {
        memcpy(req + n, one, ol);
        memset(req + n + ol, 'x', 4000);
        n += ol + 4000;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    size_t sent = 0;
    long t0 = now_ms();
    for (int round = 0; round < 40 && now_ms() - t0 < 3000; round++) {
        ssize_t k = send(fd, req, n, MSG_NOSIGNAL);
        if (k > 0)
            sent += (size_t)k;
        usleep(20000);
    }
    cr_assert_gt(sent, 0u);
    long conns = -1;
    long deadline = now_ms() + 8000;
    while (now_ms() < deadline && (conns = stats_connections(srv.port)) != 1)
        usleep(100000);
    cr_assert_eq(conns, 1, "the stalled reader is still connected after %ld ms (%ld conns)",
                 now_ms() - t0, conns);
    cr_log_info("stalled reader closed %ld ms after its requests", now_ms() - t0);
    tcp_close(fd);
}
