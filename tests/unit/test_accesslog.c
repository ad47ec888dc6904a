/* Access log lines (accesslog_format_line): both formats, escaping, absent
 * fields, peers, and the PIPE_BUF cap on a line. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <limits.h>
#include <string.h>

#include "http/accesslog.h"

#define S(lit) ((struct cz_str){(lit), sizeof(lit) - 1})
static const time_t when = 1795722001; /* 2026-11-26T19:40:01Z */

static struct reqlog basic(const struct cz_peer *peer)
{
    return (struct reqlog){.peer = peer, .method = S("GET"), .target = S("/plaintext?x=1"),
                           .http_minor = 1, .status = 200, .bytes = 13,
                           .duration_ns = 42000, .user_agent = S("curl/7.88.1")};
}

static struct cz_peer v4(void)
{
    struct cz_peer p = {.family = AF_INET, .port = 5555};
    inet_pton(AF_INET, "192.0.2.7", p.addr);
    return p;
}

Test(accesslog, combined)
{
    struct cz_peer p = v4();
    struct reqlog r = basic(&p);
    char line[PIPE_BUF];
    size_t n = accesslog_format_line(0, &r, when, line, sizeof(line));
    line[n] = '\0';
    cr_expect_str_eq(line, "192.0.2.7 - - [26/Nov/2026:19:40:01 +0000] \"GET /plaintext?x=1 "
                           "HTTP/1.1\" 200 13 \"-\" \"curl/7.88.1\"\n");
    r.bytes = 0;
    r.http_minor = 0;
    r.referer = S("http://a/\"b\"\\");
    r.peer = NULL;
    n = accesslog_format_line(0, &r, when, line, sizeof(line));
    line[n] = '\0';
    cr_expect_str_eq(line, "- - - [26/Nov/2026:19:40:01 +0000] \"GET /plaintext?x=1 HTTP/1.0\" "
                           "200 - \"http://a/\\\"b\\\"\\\\\" \"curl/7.88.1\"\n");
}

Test(accesslog, json)
{
    struct cz_peer p = {.family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8::1", p.addr);
    struct reqlog r = basic(&p);
    char line[PIPE_BUF];
    size_t n = accesslog_format_line(1, &r, when, line, sizeof(line));
    line[n] = '\0';
    cr_expect_str_eq(line, "{\"time\":\"2026-11-26T19:40:01Z\",\"remote\":\"2001:db8::1\","
                           "\"method\":\"GET\",\"target\":\"/plaintext?x=1\","
                           "\"protocol\":\"HTTP/1.1\",\"status\":200,\"bytes\":13,"
                           "\"duration_ms\":0.042,\"referer\":null,"
                           "\"user_agent\":\"curl/7.88.1\"}\n");
}

/* A malformed request has no request line: "-" and nulls, never garbage. */
Test(accesslog, no_request_line)
{
    struct reqlog r = {.http_minor = 0xff, .status = 400, .duration_ns = 1234567};
    char line[PIPE_BUF];
    size_t n = accesslog_format_line(0, &r, when, line, sizeof(line));
    line[n] = '\0';
    cr_expect_str_eq(line, "- - - [26/Nov/2026:19:40:01 +0000] \"-\" 400 - \"-\" \"-\"\n");
    n = accesslog_format_line(1, &r, when, line, sizeof(line));
    line[n] = '\0';
    cr_expect(strstr(line, "\"method\":null,\"target\":null,\"protocol\":null,\"status\":400"),
              "%s", line);
    cr_expect(strstr(line, "\"duration_ms\":1.235,"), "%s", line);
}

/* Control bytes and bytes above 0x7f are escaped: the JSON line stays valid
 * whatever the client sent, and a combined line stays one line. */
Test(accesslog, hostile_bytes_are_escaped)
{
    static const char agent[] = "a\nb\r\x01\"\\\xff\xc3(\xc3\xa9";
    struct reqlog r = basic(NULL);
    r.user_agent = (struct cz_str){agent, sizeof(agent) - 1};
    char line[PIPE_BUF];
    size_t n = accesslog_format_line(1, &r, when, line, sizeof(line));
    line[n] = '\0';
    /* Valid UTF-8 (é) stays, invalid bytes become U+FFFD. */
    cr_expect(strstr(line, "\"user_agent\":\"a\\u000ab\\u000d\\u0001\\\"\\\\\\ufffd\\ufffd(\xc3\xa9\"}"),
              "%s", line);
    n = accesslog_format_line(0, &r, when, line, sizeof(line));
    line[n] = '\0';
    cr_expect(strstr(line, "\"a\\x0ab\\x0d\\x01\\\"\\\\\\xff\\xc3(\\xc3\\xa9\"\n"), "%s", line);
    cr_expect_eq(strchr(line, '\n'), line + n - 1, "one line");
}

/* A line never exceeds PIPE_BUF: long fields are cut, with "...", and the
 * line still ends well-formed. */
Test(accesslog, long_fields_are_cut)
{
    static char target[10000], agent[5000];
    memset(target, 'a', sizeof(target));
    memset(agent, '"', sizeof(agent)); /* each doubles when escaped */
    target[0] = '/';
    struct reqlog r = basic(NULL);
    r.target = (struct cz_str){target, sizeof(target)};
    r.user_agent = (struct cz_str){agent, sizeof(agent)};
    r.referer = (struct cz_str){agent, sizeof(agent)};
    char line[2 * PIPE_BUF];
    for (int json = 0; json < 2; json++) {
        size_t n = accesslog_format_line(json, &r, when, line, sizeof(line));
        cr_expect_leq(n, PIPE_BUF);
        line[n] = '\0';
        cr_expect_eq(line[n - 1], '\n');
        cr_expect(strstr(line, json ? "aaa...\"" : "aaa... HTTP/1.1\""), "%s", line);
        cr_expect(json ? strstr(line, "...\"}\n") != NULL : strstr(line, "...\"\n") != NULL,
                  "%s", line);
    }
}
