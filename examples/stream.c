/* Answers that are not ready when the handler returns, on Catzilla:
 *
 *   GET  /ticks?n=5      a chunked stream, one line every 100 ms (a timer)
 *   GET  /slow?ms=300    a deferred answer, finished by a timer
 *   GET  /work?n=30      a deferred answer computed on a thread of our own,
 *                        handed back to the worker with cz_server_post
 *   POST /upload         a streaming route: counts and checksums a body of
 *                        any size (up to --max-body-size) without holding it
 *   GET  /source         this file, sent by path (zero-copy, Range, ETag)
 *
 *   make && build/examples/stream --port 9000 --max-body-size 1g
 *   curl -N localhost:9000/ticks
 *   head -c 100M /dev/zero | curl -T - localhost:9000/upload
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catzilla/catzilla.h"

const char *malloc_conf = CATZILLA_MALLOC_CONF;

static cz_server *srv;

static long query_long(const cz_request *req, const char *name, long def, long max)
{
    char v[24];
    if (cz_request_query_param(req, name, v, sizeof(v)) < 0)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    return *end || n < 0 ? def : n > max ? max : n;
}

/* ---- /ticks: a stream fed by a repeating timer ---- */

struct ticks {
    cz_stream *s;
    cz_timer *t;
    long left, n;
};

static void tick(void *arg)
{
    struct ticks *k = arg;
    char line[48];
    int len = snprintf(line, sizeof(line), "tick %ld\n", k->n++);
    /* A client that left, or the last tick: stop. */
    if (cz_stream_write(k->s, line, (size_t)len) < 0 || --k->left == 0) {
        cz_timer_cancel(k->t);
        cz_stream_end(k->s);
        free(k);
    }
}

static int on_ticks(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    struct ticks *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->left = query_long(req, "n", 5, 1000);
    cz_response_header(res, "Content-Type", "text/plain; charset=utf-8");
    if (k->left == 0) {
        free(k);
        return cz_response_send(res, 200, NULL, "", 0);
    }
    k->s = cz_response_stream(res);
    if (!k->s) {
        free(k);
        return -ENOMEM;
    }
    k->t = cz_timer_start(100, 100, tick, k);
    if (!k->t) {
        cz_stream_end(k->s);
        free(k);
    }
    return 0;
}

/* ---- /slow: deferred, finished by a one-shot timer ---- */

static void finish_slow(void *arg)
{
    cz_deferred *d = arg;
    cz_response_send(cz_deferred_response(d), 200, "text/plain", "slow and steady\n", 16);
    cz_deferred_finish(d);
}

static int on_slow(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    cz_deferred *d = cz_response_defer(res);
    if (!d)
        return -ENOMEM;
    if (!cz_timer_start(query_long(req, "ms", 300, 60000), 0, finish_slow, d)) {
        cz_response_status(cz_deferred_response(d), 503);
        cz_deferred_finish(d);
    }
    return 0;
}

/* ---- /work: deferred, computed on a thread, posted back ---- */

struct job {
    cz_deferred *d;
    unsigned worker;
    long n;
    uint64_t result;
};

static void job_done(void *arg)
{
    struct job *j = arg;
    char out[64];
    int len = snprintf(out, sizeof(out), "fib(%ld) = %llu\n", j->n, (unsigned long long)j->result);
    cz_response_send(cz_deferred_response(j->d), 200, "text/plain", out, (size_t)len);
    cz_deferred_finish(j->d);
    free(j);
}

static void *job_thread(void *arg)
{
    struct job *j = arg;
    uint64_t a = 0, b = 1;
    for (long i = 0; i < j->n; i++) {
        uint64_t t = a + b;
        a = b;
        b = t;
    }
    j->result = a;
    /* Back to the worker that owns the deferred answer. */
    if (cz_server_post(srv, j->worker, job_done, j) < 0)
        free(j); /* the server stopped: the answer went with it */
    return NULL;
}

static int on_work(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->n = query_long(req, "n", 30, 90);
    j->worker = cz_request_worker(req);
    j->d = cz_response_defer(res);
    if (!j->d) {
        free(j);
        return -ENOMEM;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, job_thread, j) != 0) {
        cz_response_status(cz_deferred_response(j->d), 503);
        cz_deferred_finish(j->d);
        free(j);
        return 0;
    }
    pthread_detach(t);
    return 0;
}

/* ---- /upload: the body as a stream, answered at its end ---- */

struct upload {
    cz_deferred *d;
    unsigned long long bytes;
    uint32_t sum; /* Adler-32 */
    uint32_t a, b;
};

static int upload_piece(cz_body *body, enum cz_body_event ev, const void *data, size_t len,
                        void *arg)
{
    (void)body;
    struct upload *u = arg;
    if (ev == CZ_BODY_DATA) {
        const unsigned char *p = data;
        for (size_t i = 0; i < len; i++) {
            u->a = (u->a + p[i]) % 65521;
            u->b = (u->b + u->a) % 65521;
        }
        u->bytes += len;
        return 0;
    }
    if (ev == CZ_BODY_END) {
        char out[96];
        int n = snprintf(out, sizeof(out), "{\"bytes\":%llu,\"adler32\":\"%08x\"}\n", u->bytes,
                         (unsigned)(u->b << 16 | u->a));
        cz_response_send(cz_deferred_response(u->d), 200, "application/json", out, (size_t)n);
    }
    cz_deferred_finish(u->d); /* after ABORT: only frees it */
    free(u);
    return 0;
}

static int on_upload(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    if (cz_request_content_length(req) == 0)
        return cz_response_send(res, 200, "application/json", "{\"bytes\":0}\n", 12);
    struct upload *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    u->a = 1;
    u->d = cz_response_defer(res);
    if (!u->d) {
        free(u);
        return -ENOMEM;
    }
    if (!cz_request_body_reader(req, upload_piece, u)) {
        cz_response_status(cz_deferred_response(u->d), 503);
        cz_deferred_finish(u->d);
        free(u);
    }
    return 0;
}

/* ---- /source: a file by path ---- */

static int on_source(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    cz_response_header(res, "Content-Type", "text/x-c; charset=utf-8");
    return cz_response_file(res, ud);
}

int main(int argc, char **argv)
{
    struct cz_config cfg;
    cz_config_defaults(&cfg);
    char err[256];
    enum cz_config_mode mode;
    if (cz_config_parse_app(&cfg, &argc, argv, &mode, NULL, err, sizeof(err)) < 0 || argc > 1) {
        fprintf(stderr, "stream: %s\n", argc > 1 ? "unexpected argument (see --help)" : err);
        return 2;
    }
    if (mode == CZ_MODE_HELP) {
        printf("stream: deferred and streamed answers on Catzilla.\n\n");
        cz_config_print_help(stdout, argv[0]);
        return 0;
    }
    if (mode != CZ_MODE_SERVE || cz_server_create(&cfg, &srv) < 0)
        return 2;
    /* This example's own source: build/[variant/]examples/stream is two or
     * three levels below the tree's examples/stream.c. */
    static char source[4096];
    char exe[2048];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(source, sizeof(source), "%s/../../examples/stream.c", exe);
    if (access(source, R_OK) != 0)
        snprintf(source, sizeof(source), "%s/../../../examples/stream.c", exe);
    int rc = cz_server_route(srv, "GET", "/ticks", on_ticks, NULL);
    rc = rc ? rc : cz_server_route(srv, "GET", "/slow", on_slow, NULL);
    rc = rc ? rc : cz_server_route(srv, "GET", "/work", on_work, NULL);
    rc = rc ? rc : cz_server_route_streaming(srv, "POST", "/upload", on_upload, NULL);
    rc = rc ? rc : cz_server_route_streaming(srv, "PUT", "/upload", on_upload, NULL);
    rc = rc ? rc : cz_server_route(srv, "GET", "/source", on_source, source);
    if (rc < 0) {
        fprintf(stderr, "stream: setting up: %s\n", strerror(-rc));
        cz_server_destroy(srv);
        return 1;
    }
    cz_server_handle_signals(srv);
    rc = cz_server_run(srv);
    if (rc < 0)
        fprintf(stderr, "stream: %s\n", cz_server_error(srv));
    cz_server_destroy(srv);
    return rc < 0 ? 1 : 0;
}
