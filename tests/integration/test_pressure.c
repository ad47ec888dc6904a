/* The memory guard against the real binary: the limit it finds and reports,
 * the sizing it does at start, and each reaction to pressure.  The reactions
 * are driven by an injected usage (CATZILLA_FAULT_MEMORY_USAGE names a file
 * the monitor reads instead of the cgroup or RSS), which only the
 * fault-injection build honours; those tests skip elsewhere.  The guard's
 * behaviour in a real 48 MiB cgroup under load is bench/pressure.sh. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"

#define LIMIT (64ull * 1024 * 1024)

static struct server srv;
static char usage_path[] = "/tmp/cz-usage-XXXXXX";

TestSuite(pressure, .timeout = 60);

static void teardown(void)
{
    server_stop_checked(&srv);
    unlink(usage_path);
}

/* The JSON number or string after "key": in the stats' memory_guard block
 * (or in the first worker's block for per-worker keys). */
static bool guard_field(int fd, const char *key, char *out, size_t cap)
{
    send_str(fd, "GET /_catzilla/stats HTTP/1.1\r\nHost: t\r\n\r\n");
    struct response r;
    if (!read_response(fd, &r, false))
        return false;
    bool found = false;
    const char *g = strstr(r.body, "\"memory_guard\":{");
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *v = g ? strstr(g, pat) : NULL;
    if (v) {
        v += strlen(pat);
        if (*v == '"')
            v++;
        size_t n = strcspn(v, "\",}");
        if (n < cap) {
            memcpy(out, v, n);
            out[n] = '\0';
            found = true;
        }
    }
    response_free(&r);
    return found;
}

static long guard_num(int fd, const char *key)
{
    char v[64];
    return guard_field(fd, key, v, sizeof(v)) ? strtol(v, NULL, 10) : -1;
}

static void set_usage(double share)
{
    FILE *f = fopen(usage_path, "w");
    cr_assert_not_null(f);
    fprintf(f, "%" PRIu64 "\n", (uint64_t)(share * (double)LIMIT));
    fclose(f);
}

/* Poll the stats (on an open connection) until the level is want. */
static void wait_level(int fd, const char *want)
{
    char level[32] = "";
    for (int i = 0; i < 100; i++) {
        cr_assert(guard_field(fd, "level", level, sizeof(level)), "no memory_guard in stats");
        if (strcmp(level, want) == 0)
            return;
        usleep(20000);
    }
    cr_assert_fail("memory level stayed %s, want %s", level, want);
}

static void start_injected(void)
{
    if (!binary_version_has("(fault injection)"))
        cr_skip_test("usage injection needs the FAULT=1 build (run: make test FAULT=1)");
    int fd = mkstemp(usage_path);
    cr_assert_geq(fd, 0);
    close(fd);
    set_usage(0.10);
    setenv("CATZILLA_FAULT_MEMORY_USAGE", usage_path, 1);
    /* One worker: every connection meets the same worker's reactions. */
    const char *args[] = {"--threads", "1", "--memory-limit", "64m", NULL};
    server_start(&srv, args);
    unsetenv("CATZILLA_FAULT_MEMORY_USAGE");
}

Test(pressure, limit_from_the_flag_is_reported_and_sizes_buffers, .fini = teardown)
{
    const char *args[] = {"--threads", "1", "--memory-limit", "8m", NULL};
    server_start(&srv, args);
    int fd = tcp_connect(srv.port);
    cr_assert_eq(guard_num(fd, "limit"), 8l * 1024 * 1024);
    char src[64];
    cr_assert(guard_field(fd, "source", src, sizeof(src)));
    cr_assert_str_eq(src, "--memory-limit");
    cr_assert_gt(guard_num(fd, "usage"), 0, "the monitor samples the resident set");
    tcp_close(fd);
    char *log = server_log(&srv);
    /* 8 MiB for one worker: a quarter for the file cache, a sixteenth
     * (512 KiB = 128 buffers of 4 KiB) for receive buffers. */
    cr_assert_not_null(strstr(log, "file cache 67108864 -> 2097152 bytes per worker"), "%s", log);
    cr_assert_not_null(strstr(log, "receive buffers 256 -> 128 per worker"), "%s", log);
    free(log);
}

Test(pressure, a_limit_too_small_to_serve_is_refused)
{
    const char *bin = getenv("CATZILLA_BIN") ? getenv("CATZILLA_BIN") : "build/catzilla";
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s --port 0 --bind 127.0.0.1 --memory-limit 4m 2>&1", bin);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    cr_assert_neq(st, 0, "a server that cannot fit its limit must not start");
    cr_assert_not_null(strstr(out, "below the 8 MiB"), "%s", out);
}

Test(pressure, elevated_purges_the_arenas, .fini = teardown)
{
    start_injected();
    int fd = tcp_connect(srv.port);
    wait_level(fd, "ok");
    long before = guard_num(fd, "purges");
    set_usage(0.75);
    wait_level(fd, "elevated");
    cr_assert_gt(guard_num(fd, "purges"), before);
    set_usage(0.60);
    wait_level(fd, "ok");
    tcp_close(fd);
}

Test(pressure, hysteresis_keeps_a_level_until_5_points_below, .fini = teardown)
{
    start_injected();
    int fd = tcp_connect(srv.port);
    set_usage(0.72);
    wait_level(fd, "elevated");
    set_usage(0.67); /* under 70 %, not under 65 % */
    usleep(300000);
    wait_level(fd, "elevated");
    set_usage(0.64);
    wait_level(fd, "ok");
    tcp_close(fd);
}

Test(pressure, high_drops_the_file_cache_and_pauses_accepting, .fini = teardown)
{
    start_injected();
    int fd = tcp_connect(srv.port);
    set_usage(0.90);
    wait_level(fd, "high");
    cr_assert_geq(guard_num(fd, "cache_drops"), 1);
    cr_assert_geq(guard_num(fd, "accept_pauses"), 1);

    /* A new client waits in the backlog: no answer while the level is high. */
    int late = tcp_connect(srv.port);
    send_str(late, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    struct pollfd pfd = {.fd = late, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 400), 0, "a connection was served while accepting is paused");

    /* An open connection is still served. */
    cr_assert_gt(guard_num(fd, "limit"), 0);

    set_usage(0.30);
    wait_level(fd, "ok");
    struct response r;
    cr_assert(read_response(late, &r, false), "the waiting client was never answered");
    cr_assert_eq(r.status, 200);
    response_free(&r);
    tcp_close(late);
    tcp_close(fd);
}

/* At critical a worker receives one body at a time: a second body waits
 * (its reading paused) until the first is complete, then is answered. */
Test(pressure, critical_admits_one_body_at_a_time, .fini = teardown)
{
    start_injected();
    int fd = tcp_connect(srv.port);
    /* Connected before the level rises: at critical nothing is accepted. */
    int a = tcp_connect(srv.port), b = tcp_connect(srv.port);
    cr_assert_gt(guard_num(a, "limit"), 0);
    cr_assert_gt(guard_num(b, "limit"), 0);
    set_usage(0.97);
    wait_level(fd, "critical");

    static char body[200000];
    memset(body, 'a', sizeof(body));
    char head[256];
    snprintf(head, sizeof(head),
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", sizeof(body));

    send_str(a, head);
    send_all(a, body, 1000); /* a's body is admitted and stays incomplete */
    usleep(100000);

    send_str(b, head);
    send_all(b, body, sizeof(body));
    struct pollfd pfd = {.fd = b, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 300), 0, "b's body was received while a's was");
    cr_assert_geq(guard_num(fd, "body_waits"), 1);

    send_all(a, body + 1000, sizeof(body) - 1000);
    struct response r;
    cr_assert(read_response(a, &r, false));
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, sizeof(body));
    response_free(&r);
    cr_assert(read_response(b, &r, false), "the waiting body was never admitted");
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, sizeof(body));
    response_free(&r);
    set_usage(0.10);
    wait_level(fd, "ok");
    /* Both bodies answered and freed: nothing is left charged. */
    send_str(fd, "GET /_catzilla/stats HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(read_response(fd, &r, false));
    cr_assert_not_null(strstr(r.body, "\"body_bytes\":0,"), "%s", r.body);
    response_free(&r);
    tcp_close(a);
    tcp_close(b);
    tcp_close(fd);
}
