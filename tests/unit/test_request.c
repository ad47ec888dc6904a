/* The request state machine without a network: bytes go straight into
 * request_parse() on a connection of a worker that has no ring, and the
 * responses are read back from the connection's output queue.  Table-driven;
 * every case is also fed split at every byte offset, because a parser that is
 * only right for whole buffers is not right. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catzilla/catzilla.h"
#include "http/http.h"
#include "http/request.h"

static struct cz_server *srv;
static struct worker w;

/* A handler using the old private convention for "answered later" without
 * deferring anything: it must get an error response in its own place. */
static int on_inprogress(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)res;
    (void)ud;
    return -EINPROGRESS;
}

static void setup(void)
{
    struct cz_config cfg;
    cz_config_defaults(&cfg);
    cfg.max_request_line = 256;
    cfg.max_header_size = 1024;
    cfg.max_headers = 10;
    cfg.max_body_size = 64;
    cr_assert_eq(cz_server_create(&cfg, &srv), 0);
    cr_assert_eq(builtin_register(srv), 0);
    /* The binary without a docroot: its page at /. */
    cr_assert_eq(builtin_register_fallback_page(srv), 0);
    cr_assert_eq(cz_server_route(srv, "GET", "/inprogress", on_inprogress, NULL), 0);
    srv->root_fd = -1;
    catzilla_memory_thread_init();
    memset(&w, 0, sizeof(w));
    w.srv = srv;
    list_init(&w.conns);
    list_init(&w.rx_idle);
    for (int k = 0; k < TIMER_MAX; k++)
        list_init(&w.timers[k]);
    w.router = cz_router_create();
    for (struct route *r = srv->routes; r; r = r->next)
        cr_assert_eq(cz_router_add(w.router, r->method, r->pattern, r), 0);
    worker_update_date(&w);
    char err[128];
    cr_assert_eq(output_worker_init(&w, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
    output_worker_free(&w);
    cz_router_destroy(w.router);
    cz_server_destroy(srv);
    catzilla_memory_thread_exit();
}

TestSuite(request, .init = setup, .fini = teardown);

static struct conn *conn_new(void)
{
    struct conn *c = calloc(1, sizeof(*c));
    c->w = &w;
    c->state = CONN_IDLE;
    return c;
}

/* Concatenated output and the list of statuses, e.g. "200,404". */
static void collect(struct conn *c, char *statuses, size_t cap, char **out)
{
    size_t len = output_copy_memory(c, NULL, 0);
    char *buf = malloc(len + 1);
    output_copy_memory(c, buf, len);
    buf[len] = '\0';
    statuses[0] = '\0';
    /* Status lines only: at the start of the output or right after a body. */
    for (char *p = buf; (p = strstr(p, "HTTP/1.1 ")); p += 9) {
        if (p[9] < '1' || p[9] > '5')
            continue;
        size_t l = strlen(statuses);
        snprintf(statuses + l, cap - l, "%s%.3s", l ? "," : "", p + 9);
    }
    *out = buf;
}

static void conn_free(struct conn *c)
{
    output_free(c);
    request_rx_free(c);
    list_del(&c->timer_link);
    free(c);
}

struct parse_case {
    const char *name;
    const char *in;
    const char *statuses;
    bool closes;
    const char *body_has; /* a substring the output must contain, or NULL */
};

static const struct parse_case cases[] = {
    {"simple get", "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n", "200", false, "Hello, World!"},
    {"pipelined three",
     "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\nGET /json HTTP/1.1\r\nHost: a"
     "\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n",
     "200,200,404", false, "{\"message\""},
    {"echo cl", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", "200", false,
     "\r\n\r\nabc"},
    /* A chunked body comes back chunked (/echo streams what it reads). */
    {"echo chunked",
     "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     "2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
     "200", false, "\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
    /* A handler returning -EINPROGRESS without a placeholder got no response,
     * and the next pipelined response answered the wrong request. */
    {"einprogress_handler_answers_in_order",
     "GET /inprogress HTTP/1.1\r\nHost: a\r\n\r\nGET /json HTTP/1.1\r\nHost: a\r\n\r\n", "500,200",
     false, "Hello, World!"},
    {"http/1.0 closes", "GET /plaintext HTTP/1.0\r\n\r\n", "200", true, "Connection: close"},
    {"connection close stops the pipeline",
     "GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /json HTTP/1.1\r\n"
     "Host: a\r\n\r\n",
     "200", true, NULL},
    {"error stops the pipeline", "GET / HTTP/1.1\r\n\r\nGET /json HTTP/1.1\r\nHost: a\r\n\r\n",
     "400", true, "Connection: close"},
    {"head no body", "HEAD /plaintext HTTP/1.1\r\nHost: a\r\n\r\n", "200", false,
     "Content-Length: 13\r\n"},
    {"405 allow", "PUT /json HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "405", false,
     "Allow: GET, HEAD"},
    {"unknown method", "BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n", "501", true, NULL},
    {"bad method char", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", "400", true, NULL},
    {"version 2", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505", true, NULL},
    {"no host", "GET / HTTP/1.1\r\n\r\n", "400", true, NULL},
    {"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", "400", true, NULL},
    {"long target",
     "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n",
     "414", true, NULL},
    {"too many headers",
     "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n"
     "F: 1\r\nG: 1\r\nH: 1\r\nI: 1\r\nJ: 1\r\n\r\n",
     "431", true, NULL},
    {"body over limit", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n", "413", true,
     NULL},
    {"chunked over limit",
     "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     "41\r\n",
     "", false, NULL}, /* not yet over: 65 bytes announced, none received */
    {"expect 100",
     "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
     "Content-Length: 2\r\n\r\nhi",
     "100,200", false, "HTTP/1.1 100 Continue\r\nServer: catzilla\r\n"},
    {"expect other", "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: tea\r\nContent-Length: 2\r\n\r\nhi",
     "417", true, NULL},
    {"cl and te",
     "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "400", true, NULL},
    {"te gzip", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "501", true,
     NULL},
    {"te in 1.0", "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400", true,
     NULL},
/* Chunk extensions (RFC 9112 section 7.1.1), which llhttp 8.1 alone refuses. */
#define CHUNKED "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    {"chunk ext flag after value", CHUNKED "5;a=1;b\r\nhello\r\n0\r\n\r\n", "200", false,
     "\r\nhello\r\n"},
    {"chunk ext bws", CHUNKED "5 ;foo\r\nhello\r\n0 ; last\r\n\r\n", "200", false, "hello"},
    {"chunk ext bws around =", CHUNKED "5\t; a = 1 ;b=\"q \\\" ;\"\r\nhello\r\n0\r\n\r\n", "200",
     false, "hello"},
    {"chunk ext two requests", CHUNKED "2;x=y\r\nhi\r\n0\r\n\r\n" CHUNKED "2;z\r\nho\r\n0\r\n\r\n",
     "200,200", false, "ho"},
    {"chunk ext empty", CHUNKED "5;\r\nhello\r\n0\r\n\r\n", "400", true, NULL},
    {"chunk ext no name", CHUNKED "5;=x\r\nhello\r\n0\r\n\r\n", "400", true, NULL},
    {"chunk ext empty value", CHUNKED "5;a=\r\nhello\r\n0\r\n\r\n", "400", true, NULL},
    {"chunk ext open quote", CHUNKED "5;a=\"x\r\nhello\r\n0\r\n\r\n", "400", true, NULL},
    {"chunk ext control", CHUNKED "5;a\x01\r\nhello\r\n0\r\n\r\n", "400", true, NULL},
    {"chunk size bare lf", CHUNKED "5\nhello\r\n0\r\n\r\n", "400", true, NULL},
    {"chunk size cr alone", CHUNKED "5\rXhello\r\n0\r\n\r\n", "400", true, NULL},
    {"chunk size space inside", CHUNKED "5 5\r\nhello\r\n0\r\n\r\n", "400", true, NULL},
    /* CONNECT has no body for llhttp: its chunk lines are never read as one. */
    {"connect chunked",
     "CONNECT x:1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5;a=1\r\nhello\r\n0\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n",
     "404", true, NULL},
    {"chunk ext bad on last chunk", CHUNKED "5\r\nhello\r\n0;a=\r\n\r\n", "400", true, NULL},
    {"chunk size trailing space", CHUNKED "5 \r\nhello\r\n0\r\n\r\n", "400", true, NULL},
    {"chunk size overflow", CHUNKED "10000000000000000\r\nhello\r\n0\r\n\r\n", "400", true, NULL},
    {"obs fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", "400", true, NULL},
    {"empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", "400", true, NULL},
    {"no version", "GET /\r\n\r\n", "400", true, NULL},
    {"te gzip then chunked",
     "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked"
     "\r\n\r\n0\r\n\r\n",
     "501", true, NULL},
    {"bad escape", "GET /plaintext%zz HTTP/1.1\r\nHost: a\r\n\r\n", "400", true, NULL},
    {"nul escape", "GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n", "400", true, NULL},
    {"truncated escape", "GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n", "400", true, NULL},
    {"good escape", "GET /no%20such HTTP/1.1\r\nHost: a\r\n\r\n", "404", false, NULL},
    {"leading crlf", "\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n", "200", false, NULL},
    {"fallback index", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "200", false, "<h1>Catzilla</h1>"},
};

static void run_case(const struct parse_case *pc, size_t split)
{
    struct conn *c = conn_new();
    size_t len = strlen(pc->in);
    if (split && split < len) {
        request_parse(c, pc->in, split);
        if (!c->close_after_send)
            request_parse(c, pc->in + split, len - split);
    } else {
        request_parse(c, pc->in, len);
    }
    char st[128];
    char *out;
    collect(c, st, sizeof(st), &out);
    cr_assert_str_eq(st, pc->statuses, "%s (split %zu): statuses %s, want %s\n%s", pc->name, split,
                     st, pc->statuses, out);
    cr_assert_eq(c->close_after_send, pc->closes, "%s (split %zu): close %d", pc->name, split,
                 c->close_after_send);
    if (pc->body_has)
        cr_assert_not_null(strstr(out, pc->body_has), "%s (split %zu): no '%s' in\n%s", pc->name,
                           split, pc->body_has, out);
    free(out);
    conn_free(c);
}

Test(request, table_whole_buffers)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i], 0);
}

Test(request, table_split_at_every_offset)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (size_t cut = 1; cut < strlen(cases[i].in); cut++)
            run_case(&cases[i], cut);
}

Test(request, idle_connection_holds_no_request_memory)
{
    struct conn *c = conn_new();
    const char *two =
        "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\nGET /json HTTP/1.1\r\nHost: a\r\n\r\n";
    cr_assert_null(c->rx, "a new connection has no parse state");
    w.now_ms = 1000;
    request_parse(c, two, strlen(two));
    cr_assert_not_null(c->rx);
    cr_assert_null(c->rx->scratch);
    cr_assert_null(c->rx->hdr_offs);
    cr_assert_null(c->rx->body);
    cr_assert_eq(c->state, CONN_IDLE);
    /* A partial request keeps what it needs, and only that. */
    request_parse(c, "GET /plain", 10);
    cr_assert_not_null(c->rx->scratch);
    cr_assert_eq(c->state, CONN_HEAD);
    request_parse(c, "text HTTP/1.1\r\nHost: a\r\n\r\n", 26);
    cr_assert_null(c->rx->scratch);
    cr_assert_eq(c->state, CONN_IDLE);
    /* Parked between requests; freed once silent for RX_IDLE_MS. */
    w.now_ms += RX_IDLE_MS - 1;
    request_rx_sweep(&w);
    cr_assert_not_null(c->rx, "a busy keep-alive connection keeps its parse state");
    w.now_ms += 1;
    request_rx_sweep(&w);
    cr_assert_null(c->rx, "a silent connection is its struct conn alone");
    cr_assert(list_empty(&w.rx_idle));
    /* And it parses again from scratch. */
    request_parse(c, two, strlen(two));
    cr_assert_eq(c->state, CONN_IDLE);
    cr_assert_eq(c->requests, 5);
    conn_free(c);
}

Test(request, output_backpressure_pauses_parsing)
{
    srv->cfg.max_output_queue = 4096;
    struct conn *c = conn_new();
    char buf[64 * 40];
    size_t n = 0;
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "GET /json HTTP/1.1\r\nHost: a\r\n\r\n");
    size_t used = request_parse(c, buf, n);
    cr_assert(c->read_paused, "parser did not pause with %zu bytes queued", output_queued(c));
    cr_assert_lt(used, n);
    cr_assert_geq(output_queued(c), 4096);
    cr_assert_lt(output_queued(c), 4096 + 512);
    conn_free(c);
}

/* The one head builder: the length it announces is the length it writes,
 * whatever is set, and the lines come out in a fixed order. */
Test(request, head_builder_length_is_exact)
{
    struct head_spec h = {
        .status = 206,
        .close = true,
        .accept_ranges = true,
        .content_length = 1234567890123,
        .content_type = "application/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        .etag = "\"1-2-3\"",
        .last_modified = "Sun, 06 Nov 1994 08:49:37 GMT",
        .cache_control = "no-store",
        .content_range = "bytes 0-9/100",
        .allow = "GET, HEAD",
        .location = "/dir/",
        .location_len = 5,
        .extra = "X-A: 1\r\n",
        .extra_len = 8,
    };
    size_t n = response_head_len(&w, &h);
    char *buf = malloc(n + 1);
    cr_assert_eq(response_head_write(&w, &h, buf), n);
    buf[n] = '\0';
    static const char start[] = "HTTP/1.1 206 Partial Content\r\nServer: catzilla\r\nDate: ";
    cr_assert(strncmp(buf, start, sizeof(start) - 1) == 0, "%s", buf);
    cr_assert_not_null(strstr(buf, "Connection: close\r\n"));
    cr_assert_not_null(strstr(buf, "Content-Length: 1234567890123\r\n"));
    cr_assert_not_null(strstr(buf, "Location: /dir/\r\n"));
    cr_assert_not_null(strstr(buf, "X-A: 1\r\n\r\n"));
    cr_assert_eq(strstr(buf, "\r\n\r\n") + 4, buf + n, "one blank line, at the end");
    free(buf);

    struct head_spec bare = {.status = 304, .content_length = -1};
    n = response_head_len(&w, &bare);
    buf = malloc(n);
    cr_assert_eq(response_head_write(&w, &bare, buf), n);
    cr_assert_null(memmem(buf, n, "Content-Length", 14));
    free(buf);
}

Test(request, chunk_size_lines)
{
    static const struct {
        const char *line;
        int rc;
        uint64_t size;
    } lines[] = {
        {"0", 0, 0},
        {"1a", 0, 26},
        {"1A;x", 0, 26},
        {"5;a=1;b", 0, 5},
        {"5 ;foo", 0, 5},
        {"5\t;\ta\t=\t\"v;\\\"\"", 0, 5},
        {"5\t;\ta\t=\t\"v\"\t", -EINVAL, 0},
        {"5 ", -EINVAL, 0},
        {"5;a ", -EINVAL, 0},
        {"7fffffffffffffff", 0, 0x7fffffffffffffffULL},
        {"8000000000000000", -ERANGE, 0},
        {"", -EINVAL, 0},
        {";a", -EINVAL, 0},
        {"5;", -EINVAL, 0},
        {"5;a=", -EINVAL, 0},
        {"5;a=\"", -EINVAL, 0},
        {"5;a=\"x\\", -EINVAL, 0},
        {"5;a b", -EINVAL, 0},
        {"5;a=b c", -EINVAL, 0},
        {"5x", -EINVAL, 0},
        {"5;a@b", -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        uint64_t size = 99;
        int rc = request_chunk_line(lines[i].line, strlen(lines[i].line), &size);
        cr_expect_eq(rc, lines[i].rc, "'%s': %d", lines[i].line, rc);
        if (rc == 0)
            cr_expect_eq(size, lines[i].size, "'%s'", lines[i].line);
    }
}
