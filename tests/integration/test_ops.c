/* Operations: the admin surface (--admin), Prometheus metrics, the extended
 * stats, and signals (every one logged; SIGHUP reloads without dropping a
 * connection; a failed start shows its own error). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/harness.h"

static const char get_close_fmt[] = "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

static struct response get(int port, const char *path)
{
    char req[512];
    snprintf(req, sizeof(req), get_close_fmt, path);
    return request_once(port, req);
}

static int get_status(int port, const char *path)
{
    struct response r = get(port, path);
    int st = r.status;
    response_free(&r);
    return st;
}

/* Wait up to ms for the log to contain text. */
static bool log_has(const struct server *s, const char *text, int ms)
{
    long deadline = now_ms() + ms;
    do {
        char *log = server_log(s);
        bool found = strstr(log, text) != NULL;
        free(log);
        if (found)
            return true;
        usleep(20000);
    } while (now_ms() < deadline);
    return false;
}

/* Run a shell command; its output (stdout and stderr) goes to out.
 * Returns its exit status. */
static int run_command(const char *cmd, char *out, size_t cap)
{
    char full[1024];
    snprintf(full, sizeof(full), "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert(p, "popen %s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The value of the sample line that starts with prefix (name and labels). */
static double sample(const char *text, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, pl) == 0 && p[pl] == ' ')
            return strtod(p + pl + 1, NULL);
    return -1;
}

/* ---------- the admin surface ---------- */

Test(ops, admin_on_its_own_listener_only)
{
    struct server s;
    server_start(&s, (const char *const[]){"--admin", "127.0.0.1:0", NULL});
    int admin = server_admin_port(&s);
    cr_assert(admin > 0 && admin != s.port, "no admin port in the log");
    /* Internal routes answer only there; the site only on the main port. */
    cr_expect_eq(get_status(admin, "/_catzilla/health"), 200);
    cr_expect_eq(get_status(admin, "/_catzilla/stats"), 200);
    cr_expect_eq(get_status(admin, "/_catzilla/metrics"), 200);
    cr_expect_eq(get_status(s.port, "/_catzilla/health"), 404);
    cr_expect_eq(get_status(s.port, "/_catzilla/metrics"), 404);
    cr_expect_eq(get_status(s.port, "/plaintext"), 200);
    cr_expect_eq(get_status(admin, "/plaintext"), 404);
    cr_expect_eq(get_status(admin, "/index.html"), 404);
    /* A wrong method on a hidden admin route does not betray it. */
    struct response r = request_once(s.port, "POST /_catzilla/stats HTTP/1.1\r\nHost: t\r\n"
                                             "Content-Length: 0\r\nConnection: close\r\n\r\n");
    cr_expect_eq(r.status, 404);
    response_free(&r);
    r = request_once(admin, "POST /_catzilla/stats HTTP/1.1\r\nHost: t\r\n"
                            "Content-Length: 0\r\nConnection: close\r\n\r\n");
    cr_expect_eq(r.status, 405);
    response_free(&r);
    server_stop_checked(&s);
}

Test(ops, admin_off_hides_everything)
{
    struct server s;
    server_start(&s, (const char *const[]){"--admin", "off", NULL});
    cr_expect_eq(server_admin_port(&s), 0);
    cr_expect_eq(get_status(s.port, "/_catzilla/health"), 404);
    cr_expect_eq(get_status(s.port, "/_catzilla/stats"), 404);
    cr_expect_eq(get_status(s.port, "/_catzilla/metrics"), 404);
    cr_expect_eq(get_status(s.port, "/plaintext"), 200);
    server_stop_checked(&s);
}

/* This machine's first non-loopback IPv4 address, or false. */
static bool outside_address(struct in_addr *out)
{
    struct ifaddrs *ifs, *i;
    if (getifaddrs(&ifs) < 0)
        return false;
    bool found = false;
    for (i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        struct in_addr a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
        if ((ntohl(a.s_addr) >> 24) == 127)
            continue;
        *out = a;
        found = true;
    }
    freeifaddrs(ifs);
    return found;
}

/* The default admin address is loopback: from another interface, even of
 * this very host, the internal routes cannot be reached. */
Test(ops, default_admin_is_loopback_only)
{
    struct in_addr outside;
    if (!outside_address(&outside))
        cr_skip_test("no non-loopback IPv4 address on this machine");
    /* The default's address with a free port (9090 may be taken here). */
    struct server s;
    server_start(&s, (const char *const[]){"--bind", "0.0.0.0", "--admin", "127.0.0.1:0", NULL});
    int admin = server_admin_port(&s);
    cr_assert(admin > 0);
    cr_expect_eq(get_status(admin, "/_catzilla/health"), 200);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)admin),
                             .sin_addr = outside};
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    close(fd);
    cr_expect(rc < 0 && e == ECONNREFUSED, "admin port reachable from %s", inet_ntoa(outside));
    /* The site itself is reachable there (bind 0.0.0.0). */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sa.sin_port = htons((uint16_t)s.port);
    cr_expect_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    server_stop_checked(&s);
}

Test(ops, default_admin_address_is_documented_loopback)
{
    char cmd[512], out[8192];
    snprintf(cmd, sizeof(cmd), "%s --print-config", getenv("CATZILLA_BIN"));
    cr_expect_eq(run_command(cmd, out, sizeof(out)), 0);
    cr_expect(strstr(out, "\nadmin=127.0.0.1:9090\n"), "the default --admin: %s", out);
}

Test(ops, admin_port_in_use_is_a_clear_error)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    cr_assert(bind(fd, (struct sockaddr *)&sa, sl) == 0 && listen(fd, 1) == 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    char admin[64];
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", ntohs(sa.sin_port));
    char cmd[512], out[4096];
    snprintf(cmd, sizeof(cmd), "%s --port 0 --bind 127.0.0.1 --admin %s", getenv("CATZILLA_BIN"),
             admin);
    int st = run_command(cmd, out, sizeof(out));
    close(fd);
    cr_expect_eq(st, 1);
    cr_expect(strstr(out, "already in use") && strstr(out, "--admin"), "%s", out);
    /* A failed start shows its own error, not a shutdown. */
    cr_expect(!strstr(out, "draining"), "%s", out);
}

/* ---------- metrics ---------- */

/* Checks each line of the Prometheus text format: comments are HELP/TYPE,
 * samples are name{labels} value, every sample's family was TYPEd. */
static void check_exposition(const char *text)
{
    char types[4096] = " ";
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        cr_assert(nl, "the last line has no newline");
        size_t len = (size_t)(nl - p);
        char line[1024];
        cr_assert(len < sizeof(line));
        memcpy(line, p, len);
        line[len] = '\0';
        p = nl + 1;
        if (line[0] == '#') {
            char name[256], type[32];
            if (sscanf(line, "# TYPE %255s %31s", name, type) == 2) {
                cr_expect(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                              strcmp(type, "histogram") == 0,
                          "%s", line);
                strncat(types, name, sizeof(types) - strlen(types) - 2);
                strcat(types, " ");
            } else {
                cr_expect(strncmp(line, "# HELP ", 7) == 0, "bad comment: %s", line);
            }
            continue;
        }
        size_t nl_name = strspn(line, "abcdefghijklmnopqrstuvwxyz_0123456789");
        cr_assert(nl_name > 0, "bad sample: %s", line);
        char fam[256];
        snprintf(fam, sizeof(fam), " %.*s ", (int)nl_name, line);
        char base[256];
        snprintf(base, sizeof(base), "%s", fam);
        /* Histogram samples belong to their family's name without the suffix. */
        static const char *const suffixes[] = {"_bucket ", "_sum ", "_count "};
        for (int i = 0; i < 3; i++) {
            char *suf = strstr(base, suffixes[i]);
            if (suf && suf[strlen(suffixes[i])] == '\0')
                strcpy(suf, " ");
        }
        cr_expect(strstr(types, fam) || strstr(types, base), "sample before its TYPE: %s", line);
        const char *v = strrchr(line, ' ');
        cr_assert(v, "no value: %s", line);
        char *end;
        strtod(v + 1, &end);
        cr_expect(*end == '\0', "bad value: %s", line);
    }
}

Test(ops, metrics_count_requests_and_pass_promtool)
{
    struct server s;
    server_start(&s, (const char *const[]){"--threads", "2", NULL});
    for (int i = 0; i < 5; i++)
        cr_expect_eq(get_status(s.port, "/plaintext"), 200);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(get_status(s.port, "/no-such-page"), 404);
    expect_error_response(s.port, "garbage", "BLAH\r\n\r\n", 8, 400);
    struct response r = get(s.port, "/_catzilla/metrics");
    cr_assert_eq(r.status, 200);
    const char *ct = header(&r, "Content-Type");
    cr_expect(ct && strncmp(ct, "text/plain; version=0.0.4", 25) == 0, "%s", ct ? ct : "none");
    check_exposition(r.body);
    /* Both workers' counts, summed (connections land on either). */
    cr_expect_eq(sample(r.body, "catzilla_http_requests_total{method=\"GET\",code=\"200\"}"), 5);
    cr_expect_eq(sample(r.body, "catzilla_http_requests_total{method=\"GET\",code=\"404\"}"), 3);
    cr_expect_eq(sample(r.body, "catzilla_http_requests_total{method=\"none\",code=\"400\"}"), 1);
    cr_expect_eq(sample(r.body, "catzilla_workers"), 2);
    cr_expect_eq(sample(r.body, "catzilla_worker_up{worker=\"1\"}"), 1);
    cr_expect_geq(sample(r.body, "catzilla_http_request_duration_seconds_count"), 9);
    cr_expect_geq(sample(r.body, "catzilla_sent_bytes_total"), 5 * 13);
    cr_expect_gt(sample(r.body, "catzilla_received_bytes_total"), 0);
    cr_expect_gt(sample(r.body, "catzilla_uptime_seconds"), 0);
    double accepted = sample(r.body, "catzilla_connections_accepted_total{worker=\"0\"}") +
                      sample(r.body, "catzilla_connections_accepted_total{worker=\"1\"}");
    cr_expect_geq(accepted, 10);
    cr_expect_gt(sample(r.body, "catzilla_registered_bytes{worker=\"0\"}"), 0);
    cr_expect_geq(sample(r.body, "catzilla_arena_resident_bytes{worker=\"1\",arena=\"request\"}"),
                  0);

    /* Debian's promtool, when present (make test installs it). */
    if (access("/usr/bin/promtool", X_OK) == 0) {
        char path[] = "/tmp/cz-metrics-XXXXXX";
        int fd = mkstemp(path);
        cr_assert(fd >= 0);
        cr_assert_eq(write(fd, r.body, r.body_len), (ssize_t)r.body_len);
        close(fd);
        char cmd[256], out[4096];
        snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
        int st = run_command(cmd, out, sizeof(out));
        unlink(path);
        cr_expect_eq(st, 0, "promtool check metrics: %s", out);
    }
    response_free(&r);
    server_stop_checked(&s);
}

Test(ops, timeouts_and_file_cache_are_counted)
{
    struct server s;
    server_start(&s, (const char *const[]){"--keepalive-timeout", "200ms", NULL});
    cr_expect_eq(get_status(s.port, "/index.html"), 200); /* miss: opened */
    cr_expect_eq(get_status(s.port, "/index.html"), 200); /* hit */
    int fd = tcp_connect(s.port);
    send_str(fd, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    struct response r;
    cr_assert(read_response(fd, &r, false));
    response_free(&r);
    cr_expect(wait_closed(fd, 2000), "the keep-alive timeout did not close");
    tcp_close(fd);
    r = get(s.port, "/_catzilla/metrics");
    cr_expect_eq(sample(r.body, "catzilla_timeouts_total{kind=\"keepalive\"}"), 1);
    cr_expect_geq(sample(r.body, "catzilla_file_cache_hits_total"), 1);
    cr_expect_geq(sample(r.body, "catzilla_file_cache_misses_total"), 1);
    response_free(&r);
    server_stop_checked(&s);
}

Test(ops, stats_report_uptime_traffic_and_latency)
{
    struct server s;
    server_start(&s, NULL);
    cr_expect_eq(get_status(s.port, "/plaintext"), 200);
    cr_expect_eq(get_status(s.port, "/missing"), 404);
    struct response r = get(s.port, "/_catzilla/stats");
    cr_assert_eq(r.status, 200);
    static const char *const keys[] = {
        "\"uptime_seconds\":",  "\"responses\":{\"1xx\":0,\"2xx\":1,", "\"4xx\":1,",
        "\"bytes\":{\"received\":", "\"timeouts\":{\"header\":0,",     "\"file_cache\":{\"hits\":",
        "\"hit_rate\":",        "\"latency\":{\"count\":2,",            "\"p99_ms_at_most\":",
        "\"access_log\":{\"dropped_lines\":0}"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        cr_expect(strstr(r.body, keys[i]), "stats lack %s: %s", keys[i], r.body);
    response_free(&r);
    server_stop_checked(&s);
}

/* ---------- signals ---------- */

Test(ops, signals_are_logged_and_hup_keeps_connections)
{
    struct server s;
    server_start(&s, NULL);
    int fd = tcp_connect(s.port);
    send_str(fd, "GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n");
    struct response r;
    cr_assert(read_response(fd, &r, false));
    response_free(&r);

    kill(s.pid, SIGHUP);
    cr_expect(log_has(&s, "SIGHUP: reloading", 2000), "no reload line");
    cr_expect(log_has(&s, "MIME table reloaded", 100) || log_has(&s, "not reloaded", 100));
    kill(s.pid, SIGUSR1);
    cr_expect(log_has(&s, "SIGUSR1: no access log to reopen", 2000));
    kill(s.pid, SIGUSR2);
    cr_expect(log_has(&s, "(signal 12): ignored", 2000));

    /* The connection opened before the reload still works, and files are
     * served after it (from a cache dropped and refilled). */
    send_str(fd, "GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(read_response(fd, &r, false), "the connection was dropped by SIGHUP");
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.head, "Content-Type: text/html"), "%s", r.head);
    response_free(&r);
    tcp_close(fd);
    cr_expect_eq(server_stop(&s), 0);
    cr_expect(log_has(&s, "Terminated: draining", 100));
    char *log = server_log(&s);
    cr_expect(!strstr(log, "error"), "%s", log);
    free(log);
    unlink(s.log_path);
}

/* ---------- the dashboard ---------- */

Test(ops, dashboard_is_one_self_contained_page)
{
    struct server s;
    server_start(&s, (const char *const[]){"--admin", "127.0.0.1:0", NULL});
    int admin = server_admin_port(&s);
    struct response r = get(admin, "/_catzilla/");
    cr_assert_eq(r.status, 200);
    cr_expect(strncmp(header(&r, "Content-Type"), "text/html", 9) == 0);
    const char *csp = header(&r, "Content-Security-Policy");
    cr_expect(csp && strstr(csp, "default-src 'none'") && strstr(csp, "connect-src 'self'"),
              "%s", csp ? csp : "no CSP");
    cr_expect(strstr(r.body, "fetch(\"metrics\"") && strstr(r.body, "catzilla_http_requests_total"),
              "the page does not poll the metrics");
    /* No external assets: nothing is loaded from anywhere but this server. */
    cr_expect(!strstr(r.body, "src=\"http") && !strstr(r.body, "href=\"http") &&
                  !strstr(r.body, "<link"),
              "the page loads an external asset");
    response_free(&r);
    r = get(admin, "/_catzilla");
    cr_expect_eq(r.status, 301);
    cr_expect_str_eq(header(&r, "Location"), "/_catzilla/");
    response_free(&r);
    cr_expect_eq(get_status(s.port, "/_catzilla/"), 404, "the dashboard leaks to the main port");
    server_stop_checked(&s);
}
