/* The access log, end to end: both formats, stdout, reopening on SIGUSR1
 * and SIGHUP, malformed requests, and a log that fails or stalls without
 * stalling the server. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/harness.h"

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = (cap + 4096) * 2;
            buf = realloc(buf, cap);
            cr_assert(buf);
        }
        size_t n = fread(buf + len, 1, 4096, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* Wait up to ms until the file holds at least lines lines. */
static char *wait_lines(const char *path, int lines, int ms)
{
    long deadline = now_ms() + ms;
    for (;;) {
        char *text = read_file(path);
        int n = 0;
        for (const char *p = text; (p = strchr(p, '\n')); p++)
            n++;
        if (n >= lines || now_ms() >= deadline)
            return text;
        free(text);
        usleep(20000);
    }
}

static void tmp_log_path(char *out, size_t cap, const char *tag)
{
    static int seq;
    snprintf(out, cap, "/tmp/cz-access-%d-%s-%d.log", getpid(), tag, seq++);
    unlink(out);
}

static void expect_match(const char *text, const char *pattern)
{
    regex_t re;
    cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE), 0, "%s", pattern);
    int rc = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    cr_expect_eq(rc, 0, "no line matches /%s/ in:\n%s", pattern, text);
}

static int status_of(int port, const char *raw)
{
    struct response r = request_once(port, raw);
    int st = r.status;
    response_free(&r);
    return st;
}

Test(logging, combined_lines)
{
    char path[128];
    tmp_log_path(path, sizeof(path), "combined");
    struct server s;
    server_start(&s, (const char *const[]){"--access-log", path, NULL});
    cr_expect_eq(status_of(s.port, "GET /plaintext?x=1 HTTP/1.1\r\nHost: t\r\n"
                                   "User-Agent: tester/1.0 \"quoted\"\r\n"
                                   "Referer: http://example.test/from\r\nConnection: close\r\n\r\n"),
                 200);
    cr_expect_eq(status_of(s.port, "HEAD /index.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
                 200);
    cr_expect_eq(status_of(s.port, "GET /missing HTTP/1.0\r\n\r\n"), 404);
    char *text = wait_lines(path, 3, 3000);
    expect_match(text, "^127\\.0\\.0\\.1 - - \\[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:"
                       "[0-9]{2} \\+0000\\] \"GET /plaintext\\?x=1 HTTP/1\\.1\" 200 13 "
                       "\"http://example\\.test/from\" \"tester/1\\.0 \\\\\"quoted\\\\\"\"$");
    expect_match(text, "\"HEAD /index\\.html HTTP/1\\.1\" 200 - \"-\" \"-\"$");
    expect_match(text, "\"GET /missing HTTP/1\\.0\" 404 [0-9]+ \"-\" \"-\"$");
    free(text);
    server_stop_checked(&s);
    unlink(path);
}

Test(logging, json_lines_and_malformed_requests)
{
    char path[128];
    tmp_log_path(path, sizeof(path), "json");
    struct server s;
    server_start(&s, (const char *const[]){"--access-log", path, "--access-log-format", "json",
                                           NULL});
    cr_expect_eq(status_of(s.port, "GET /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
                 200);
    expect_error_response(s.port, "garbage", "\x01\x02 nonsense\r\n\r\n", 14, 400);
    char *text = wait_lines(path, 2, 3000);
    expect_match(text, "^\\{\"time\":\"[0-9T:Z-]+\",\"remote\":\"127\\.0\\.0\\.1\",\"method\":\"GET\","
                       "\"target\":\"/json\",\"protocol\":\"HTTP/1\\.1\",\"status\":200,"
                       "\"bytes\":27,\"duration_ms\":[0-9.]+,\"referer\":null,"
                       "\"user_agent\":null\\}$");
    expect_match(text, "\"status\":400");
    free(text);
    server_stop_checked(&s);
    unlink(path);
}

Test(logging, stdout_is_the_container_log)
{
    struct server s;
    server_start(&s, (const char *const[]){"--access-log", "-", NULL});
    cr_expect_eq(status_of(s.port, "GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
                 200);
    /* The harness sends the server's stdout to its log file. */
    char *text = wait_lines(s.log_path, 3, 3000);
    expect_match(text, "\"GET /plaintext HTTP/1\\.1\" 200 13 ");
    free(text);
    server_stop_checked(&s);
}

static void reopen_with(int sig, const char *logline)
{
    char path[128], rotated[160];
    tmp_log_path(path, sizeof(path), "rotate");
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    struct server s;
    server_start(&s, (const char *const[]){"--access-log", path, NULL});
    cr_expect_eq(status_of(s.port, "GET /before HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
                 404);
    free(wait_lines(path, 1, 3000));
    /* logrotate: rename, then signal. */
    cr_assert_eq(rename(path, rotated), 0);
    kill(s.pid, sig);
    long deadline = now_ms() + 3000;
    struct stat st;
    while (stat(path, &st) < 0 && now_ms() < deadline)
        usleep(20000);
    cr_assert(stat(path, &st) == 0, "the log was not reopened");
    cr_expect_eq(status_of(s.port, "GET /after HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
                 404);
    char *now = wait_lines(path, 1, 3000), *old = read_file(rotated);
    cr_expect(strstr(now, "GET /after") && !strstr(now, "GET /before"), "%s", now);
    cr_expect(strstr(old, "GET /before") && !strstr(old, "GET /after"), "%s", old);
    free(now);
    free(old);
    char *log = server_log(&s);
    cr_expect(strstr(log, logline), "%s", log);
    free(log);
    server_stop_checked(&s);
    unlink(path);
    unlink(rotated);
}

Test(logging, sigusr1_reopens)
{
    reopen_with(SIGUSR1, "SIGUSR1: access log reopened");
}

Test(logging, sighup_reopens_too)
{
    reopen_with(SIGHUP, "access log reopened");
}

/* /dev/full fails every write with ENOSPC: serving goes on, the failure is
 * reported once, and the dropped lines are counted. */
Test(logging, failing_log_is_reported_once)
{
    struct server s;
    server_start(&s, (const char *const[]){"--access-log", "/dev/full", NULL});
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 20; i++)
            cr_expect_eq(status_of(s.port, "GET /plaintext HTTP/1.1\r\nHost: t\r\n"
                                           "Connection: close\r\n\r\n"),
                         200);
        usleep(250000); /* a tick flushes, and fails */
    }
    struct response r = request_once(s.port, "GET /_catzilla/stats HTTP/1.1\r\nHost: t\r\n"
                                             "Connection: close\r\n\r\n");
    cr_expect(r.status == 200 && !strstr(r.body, "\"dropped_lines\":0}"), "%s", r.body);
    response_free(&r);
    char *log = server_log(&s);
    int warnings = 0;
    for (const char *p = log; (p = strstr(p, "access log")); p++)
        warnings += strstr(p, "No space left") && strstr(p, "No space left") < strchr(p, '\n');
    cr_expect_eq(warnings, 1, "%s", log);
    free(log);
    cr_expect_eq(server_stop(&s), 0);
    unlink(s.log_path);
}

/* stdout is a pipe nobody reads: the log stalls, the server does not, and
 * it still stops within --shutdown-timeout. */
Test(logging, stalled_pipe_never_stalls_serving, .timeout = 30)
{
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    char port_s[16];
    snprintf(port_s, sizeof(port_s), "%d", 0);
    /* A server of our own: its stdout is the pipe, its stderr a file. */
    char logpath[128];
    tmp_log_path(logpath, sizeof(logpath), "stall-stderr");
    int lfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        dup2(lfd, 2);
        execl(getenv("CATZILLA_BIN"), "catzilla", "--port", "0", "--bind", "127.0.0.1",
              "--threads", "1", "--admin", "same", "--access-log", "-", "--access-log-buffer",
              "4k", "--shutdown-timeout", "2s", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    close(lfd);
    struct server s = {.pid = pid};
    snprintf(s.log_path, sizeof(s.log_path), "%s", logpath);
    long deadline = now_ms() + 5000;
    while (now_ms() < deadline) {
        char *log = server_log(&s);
        char *p = strstr(log, "listening on 127.0.0.1:");
        if (p)
            s.port = atoi(p + 23);
        free(log);
        if (s.port)
            break;
        usleep(20000);
    }
    cr_assert(s.port > 0, "server did not start");
    /* Far more than a pipe (64 KiB) and two buffers hold. */
    long t0 = now_ms();
    for (int i = 0; i < 3000; i++) {
        int fd = tcp_connect(s.port);
        for (int k = 0; k < 4; k++) {
            send_str(fd, "GET /plaintext?padding-padding-padding-padding-padding HTTP/1.1\r\n"
                         "Host: t\r\nUser-Agent: a-rather-long-user-agent-string/1.0\r\n\r\n");
            struct response r;
            cr_assert(read_response(fd, &r, false), "request %d stalled", i);
            cr_assert_eq(r.status, 200);
            response_free(&r);
        }
        tcp_close(fd);
    }
    long took = now_ms() - t0;
    cr_expect_lt(took, 20000, "serving slowed to %ld ms", took);
    long stop0 = now_ms();
    int st = server_stop(&s);
    cr_expect_eq(st, 0, "exit status %d", st);
    cr_expect_lt(now_ms() - stop0, 5000, "stop took %ld ms", now_ms() - stop0);
    close(pfd[0]);
    unlink(logpath);
}
