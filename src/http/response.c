/* Responses: status lines, the per-worker cached Date header, the
 * cz_response builder handlers use (small inline buffers, then the response
 * arena), and serialisation into the connection's output queue.  It does not
 * decide what to answer; the server and the static module do. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "catzilla/memory.h"
#include "fs/httpfile.h"
#include "http/http.h"

const char *http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default:  return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error"
                                                                              : "Server Error";
    }
}

void worker_update_date(struct worker *w)
{
    time_t now = time(NULL);
    if (now == w->date_sec)
        return;
    w->date_sec = now;
    char d[32];
    size_t n = cz_http_date(now, d);
    w->date_len = (size_t)snprintf(w->date, sizeof(w->date), "Date: %.*s\r\n", (int)n, d);
}

/* Appends a string literal or buffer; the callers size their buffers so
 * that a head always fits (512 bytes and more for a status line, Server,
 * Date and Connection). */
static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

size_t response_head_start(char *buf, size_t cap, struct worker *w, int status, bool close)
{
    const char *reason = http_reason(status);
    size_t rl = strlen(reason);
    static const char server[] = "\r\nServer: catzilla\r\n";
    static const char conn_close[] = "Connection: close\r\n";
    if (cap < 13 + rl + sizeof(server) + w->date_len + sizeof(conn_close) || status < 100 ||
        status > 999)
        return 0;
    /* This runs for every response: plain copies, no printf. */
    char *p = put(buf, "HTTP/1.1 ", 9);
    *p++ = (char)('0' + status / 100);
    *p++ = (char)('0' + status / 10 % 10);
    *p++ = (char)('0' + status % 10);
    *p++ = ' ';
    p = put(p, reason, rl);
    p = put(p, server, sizeof(server) - 1);
    p = put(p, w->date, w->date_len);
    if (close)
        p = put(p, conn_close, sizeof(conn_close) - 1);
    return (size_t)(p - buf);
}

/* "Content-Length: N\r\n" into p; returns the end. */
static char *put_content_length(char *p, size_t n)
{
    char digits[24];
    size_t i = sizeof(digits);
    do {
        digits[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    p = put(p, "Content-Length: ", 16);
    p = put(p, digits + i, sizeof(digits) - i);
    return put(p, "\r\n", 2);
}

void response_init(struct cz_response *res, struct conn *c, int status)
{
    res->conn = c;
    res->status = status;
    res->failed = false;
    res->hdr = res->hdr_inline;
    res->hdr_len = 0;
    res->hdr_cap = sizeof(res->hdr_inline);
    res->body = res->body_inline;
    res->body_len = 0;
    res->body_cap = sizeof(res->body_inline);
}

void response_release(struct cz_response *res)
{
    if (res->hdr != res->hdr_inline)
        catzilla_response_free(res->hdr);
    if (res->body != res->body_inline)
        catzilla_response_free(res->body);
    res->hdr = res->body = NULL;
}

/* Grow one of the two inline-or-arena buffers to hold `need` more bytes. */
static int grow(char **buf, size_t *cap, size_t len, size_t need, char *inline_buf)
{
    if (len + need <= *cap)
        return 0;
    size_t ncap = *cap * 2;
    while (ncap < len + need)
        ncap *= 2;
    char *n;
    if (*buf == inline_buf) {
        n = catzilla_response_alloc(ncap);
        if (n)
            memcpy(n, *buf, len);
    } else {
        n = catzilla_response_realloc(*buf, ncap);
    }
    if (!n)
        return -ENOMEM;
    *buf = n;
    *cap = ncap;
    return 0;
}

void cz_response_status(cz_response *res, int status)
{
    if (status >= 100 && status <= 999)
        res->status = status;
}

static bool header_is_managed(const char *name)
{
    static const char *const managed[] = {"content-length", "date", "server", "connection",
                                          "transfer-encoding"};
    for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++)
        if (strcasecmp(name, managed[i]) == 0)
            return true;
    return false;
}

static bool header_text_ok(const char *s, bool name)
{
    if (!*s && name)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\r' || ch == '\n' || ch == 0x7f || (ch < 0x20 && ch != '\t'))
            return false;
        if (name && (ch == ':' || ch == ' ' || ch == '\t'))
            return false;
    }
    return true;
}

int cz_response_header(cz_response *res, const char *name, const char *value)
{
    /* Header injection (CR/LF in a value) is refused, not passed on. */
    if (!header_text_ok(name, true) || !header_text_ok(value, false))
        return -EINVAL;
    if (header_is_managed(name))
        return -EPERM;
    size_t nl = strlen(name), vl = strlen(value);
    if (grow(&res->hdr, &res->hdr_cap, res->hdr_len, nl + vl + 4, res->hdr_inline)) {
        res->failed = true;
        return -ENOMEM;
    }
    char *p = res->hdr + res->hdr_len;
    memcpy(p, name, nl);
    p[nl] = ':';
    p[nl + 1] = ' ';
    memcpy(p + nl + 2, value, vl);
    p[nl + 2 + vl] = '\r';
    p[nl + 3 + vl] = '\n';
    res->hdr_len += nl + vl + 4;
    return 0;
}

int cz_response_write(cz_response *res, const void *data, size_t len)
{
    if (grow(&res->body, &res->body_cap, res->body_len, len, res->body_inline)) {
        res->failed = true;
        return -ENOMEM;
    }
    memcpy(res->body + res->body_len, data, len);
    res->body_len += len;
    return 0;
}

int cz_response_send(cz_response *res, int status, const char *content_type, const void *body,
                     size_t len)
{
    cz_response_status(res, status);
    int rc = content_type ? cz_response_header(res, "Content-Type", content_type) : 0;
    return rc ? rc : cz_response_write(res, body, len);
}

int response_finish(struct cz_response *res, const struct cz_request *req)
{
    struct conn *c = res->conn;
    char head[512];
    size_t n = response_head_start(head, sizeof(head), c->w, res->status, c->close_after_send);
    bool bodyless = res->status == 204 || res->status == 304 || res->status < 200;
    if (!bodyless)
        n = (size_t)(put_content_length(head + n, res->body_len) - head);
    /* Head, extra headers, blank line and body go into the queue back to back
     * (usually into the same segment), so one send carries them all. */
    int rc = out_append(c, head, n);
    if (!rc && res->hdr_len)
        rc = out_append(c, res->hdr, res->hdr_len);
    if (!rc)
        rc = out_append(c, "\r\n", 2);
    if (!rc && !bodyless && !req->head && res->body_len)
        rc = out_append(c, res->body, res->body_len);
    return rc;
}

void response_error(struct conn *c, int status, bool head)
{
    char buf[512];
    const char *reason = http_reason(status);
    size_t n = response_head_start(buf, sizeof(buf), c->w, status, true);
    size_t blen = strlen(reason) + 1;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n,
                          "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n\r\n",
                          blen);
    if (!head)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\n", reason);
    c->close_after_send = true;
    c->error_pending = true;
    if (out_append(c, buf, n) < 0) {
        conn_close(c);
        return;
    }
}
