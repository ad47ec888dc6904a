/* The examples, built by make and run as their users would: hello (route
 * parameters, a flag of its own), json_api (JSON bodies, hooks, a
 * not-found handler) and stream (streams, deferred answers from a timer and
 * from a thread, a streaming upload, a file by path). */
#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/harness.h"

static struct server srv;

TestSuite(examples, .timeout = 60);

static void teardown(void)
{
    server_stop_checked(&srv);
}

/* build/[variant/]examples/NAME, next to the server binary under test. */
static const char *example(const char *name)
{
    static char path[1024];
    char bin[512];
    snprintf(bin, sizeof(bin), "%s",
             getenv("CATZILLA_BIN") ? getenv("CATZILLA_BIN") : "build/catzilla");
    snprintf(path, sizeof(path), "%s/examples/%s", dirname(bin), name);
    cr_assert_eq(access(path, X_OK), 0, "%s is not built", path);
    return path;
}

static struct response req(const char *raw)
{
    return request_once(srv.port, raw);
}

Test(examples, hello_answers_and_keeps_its_own_flag, .fini = teardown)
{
    char cmd[1200];
    static char out[65536];
    snprintf(cmd, sizeof(cmd), "%s --help 2>&1", example("hello"));
    FILE *p = popen(cmd, "r");
    size_t n = 0, got;
    while ((got = fread(out + n, 1, sizeof(out) - 1 - n, p)) > 0)
        n += got; /* all of it: a pipe closed early would kill the writer */
    out[n] = '\0';
    cr_expect_eq(pclose(p), 0);
    cr_expect(strstr(out, "--label TEXT") && strstr(out, "--max-body-size"), "%s", out);

    const char *args[] = {"--label", "got", NULL};
    server_start_binary(&srv, example("hello"), args);
    struct response r = req("GET /hello/wor%22ld HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "{\"hello\":\"wor%22ld\",\"worker\":0}");
    response_free(&r);
    r = req("POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    cr_expect_str_eq(r.body, "got: 5 bytes\n");
    response_free(&r);
}

Test(examples, json_api_creates_reads_lists_and_deletes, .fini = teardown)
{
    const char *args[] = {"--token", "t0k", "--threads", "2", NULL};
    server_start_binary(&srv, example("json_api"), args);
    struct response r = req("POST /notes HTTP/1.1\r\nHost: t\r\nContent-Length: 13\r\n\r\n"
                            "{\"text\":\"hi\"}");
    cr_expect_eq(r.status, 401, "writes need the token");
    cr_expect_str_eq(header(&r, "WWW-Authenticate"), "Bearer");
    cr_expect_str_eq(header(&r, "Access-Control-Allow-Origin"), "*");
    response_free(&r);

    const char *note = "{\"text\": \"say \\\"hi\\\"\"}";
    char post[256];
    snprintf(post, sizeof(post),
             "POST /notes HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer t0k\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(note), note);
    r = req(post);
    cr_expect_eq(r.status, 201);
    cr_expect_str_eq(r.body, "{\"id\":1}");
    cr_expect_str_eq(header(&r, "Location"), "/notes/1");
    response_free(&r);

    r = req("GET /notes/1 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "{\"id\":1,\"text\":\"say \\\"hi\\\"\"}");
    cr_expect_str_eq(header(&r, "Content-Type"), "application/json");
    response_free(&r);

    r = req("GET /notes?limit=5 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_expect_str_eq(r.body, "[{\"id\":1,\"text\":\"say \\\"hi\\\"\"}]");
    response_free(&r);
    r = req("GET /notes?limit=x HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_expect_eq(r.status, 400);
    response_free(&r);
    r = req("POST /notes HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer t0k\r\n"
            "Content-Length: 7\r\n\r\n{\"x\":1}");
    cr_expect_eq(r.status, 422);
    response_free(&r);

    r = req("DELETE /notes/1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer t0k\r\n\r\n");
    cr_expect_eq(r.status, 204);
    response_free(&r);
    r = req("GET /notes/1 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_expect_eq(r.status, 404);
    cr_expect_str_eq(r.body, "{\"error\":\"no such note\"}");
    response_free(&r);
    r = req("GET /elsewhere HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_expect_eq(r.status, 404);
    cr_expect_str_eq(r.body, "{\"error\":\"no such route\"}", "the not-found handler");
    response_free(&r);
}

static unsigned adler32(const unsigned char *p, size_t n)
{
    unsigned a = 1, b = 0;
    for (size_t i = 0; i < n; i++) {
        a = (a + p[i]) % 65521;
        b = (b + a) % 65521;
    }
    return b << 16 | a;
}

Test(examples, stream_streams_defers_uploads_and_sends_files, .fini = teardown)
{
    const char *args[] = {"--max-body-size", "16m", NULL};
    server_start_binary(&srv, example("stream"), args);

    struct response r = req("GET /ticks?n=3 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(header(&r, "Transfer-Encoding"), "chunked");
    cr_expect(r.chunks_ok);
    cr_expect_str_eq(r.body, "tick 0\ntick 1\ntick 2\n");
    response_free(&r);

    long t0 = now_ms();
    r = req("GET /slow?ms=80 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_expect_str_eq(r.body, "slow and steady\n");
    cr_expect_geq(now_ms() - t0, 70);
    response_free(&r);

    r = req("GET /work?n=50 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_expect_str_eq(r.body, "fib(50) = 12586269025\n");
    response_free(&r);

    /* 5 MB through the streaming route, and a small chunked body. */
    enum { BODY = 5 * 1024 * 1024 };
    static unsigned char body[BODY];
    for (size_t i = 0; i < BODY; i++)
        body[i] = (unsigned char)(i * 7 + i / 1000);
    int fd = tcp_connect(srv.port);
    char head[160];
    snprintf(head, sizeof(head), "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
             BODY);
    send_str(fd, head);
    send_all(fd, body, BODY);
    cr_assert(read_response(fd, &r, false));
    char want[96];
    snprintf(want, sizeof(want), "{\"bytes\":%d,\"adler32\":\"%08x\"}\n", BODY,
             adler32(body, BODY));
    cr_expect_str_eq(r.body, want);
    response_free(&r);
    tcp_close(fd);
    r = req("PUT /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    snprintf(want, sizeof(want), "{\"bytes\":5,\"adler32\":\"%08x\"}\n",
             adler32((const unsigned char *)"abcde", 5));
    cr_expect_str_eq(r.body, want);
    response_free(&r);

    r = req("GET /source HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_expect_eq(r.status, 200);
    cr_expect(r.body && strstr(r.body, "Answers that are not ready"), "the example's source");
    cr_expect_str_eq(header(&r, "Content-Type"), "text/x-c; charset=utf-8");
    response_free(&r);
    r = req("GET /source HTTP/1.1\r\nHost: t\r\nRange: bytes=3-9\r\n\r\n");
    cr_expect_eq(r.status, 206);
    cr_expect_str_eq(r.body, "Answers");
    response_free(&r);
}
