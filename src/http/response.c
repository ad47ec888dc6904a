/* Responses: the one builder of every response head (handlers, errors,
 * static files, redirects, stats), reason phrases, the per-worker cached
 * Date header, and the cz_response builder handlers use (small inline
 * buffers, then the response arena).  It does not decide what to answer
 * (server.c, static.c) nor how bytes leave (output.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "catzilla/memory.h"
#include "fs/httpfile.h"
#include "http/http.h"
#include "http/request.h"

const char *http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 300   ? "OK"
               : status < 400 ? "Redirect"
               : status < 500 ? "Client Error"
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

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_str(char *p, const char *s)
{
    return put(p, s, strlen(s));
}

static size_t digits_len(uint64_t n)
{
    size_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

static char *put_u64(char *p, uint64_t n)
{
    size_t d = digits_len(n);
    for (size_t i = d; i-- > 0; n /= 10)
        p[i] = (char)('0' + n % 10);
    return p + d;
}

/* Every optional line of a head: its name and the field holding its value. */
#define HEAD_LINES(X)                                                                              \
    X("Content-Type: ", content_type)                                                              \
    X("ETag: ", etag)                                                                              \
    X("Last-Modified: ", last_modified)                                                            \
    X("Cache-Control: ", cache_control)                                                            \
    X("Content-Range: ", content_range)                                                            \
    X("Allow: ", allow)

static const char server_line[] = "\r\nServer: catzilla\r\n";
static const char close_line[] = "Connection: close\r\n";
static const char keep_alive_line[] = "Connection: keep-alive\r\n";
static const char ranges_line[] = "Accept-Ranges: bytes\r\n";
static const char chunked_line[] = "Transfer-Encoding: chunked\r\n";
static const char length_name[] = "Content-Length: ";
static const char location_name[] = "Location: ";

size_t response_head_len(const struct worker *w, const struct head_spec *h)
{
    size_t n = 9 + 4 + strlen(http_reason(h->status)) + sizeof(server_line) - 1 + w->date_len;
    if (h->close)
        n += sizeof(close_line) - 1;
    else if (h->keep_alive)
        n += sizeof(keep_alive_line) - 1;
    if (h->accept_ranges)
        n += sizeof(ranges_line) - 1;
    if (h->chunked)
        n += sizeof(chunked_line) - 1;
#define X_LEN(name, field)                                                                         \
    if (h->field)                                                                                  \
        n += sizeof(name) - 1 + strlen(h->field) + 2;
    HEAD_LINES(X_LEN)
#undef X_LEN
    if (h->location)
        n += sizeof(location_name) - 1 + h->location_len + 2;
    if (h->content_length >= 0)
        n += sizeof(length_name) - 1 + digits_len((uint64_t)h->content_length) + 2;
    return n + h->extra_len + 2;
}

size_t response_head_write(const struct worker *w, const struct head_spec *h, char *out)
{
    reqrec_head(w, h->status, h->content_length);
    const char *reason = http_reason(h->status);
    char *p = put(out, "HTTP/1.1 ", 9);
    *p++ = (char)('0' + h->status / 100 % 10);
    *p++ = (char)('0' + h->status / 10 % 10);
    *p++ = (char)('0' + h->status % 10);
    *p++ = ' ';
    p = put_str(p, reason);
    p = put(p, server_line, sizeof(server_line) - 1);
    p = put(p, w->date, w->date_len);
    if (h->close)
        p = put(p, close_line, sizeof(close_line) - 1);
    else if (h->keep_alive)
        p = put(p, keep_alive_line, sizeof(keep_alive_line) - 1);
    if (h->accept_ranges)
        p = put(p, ranges_line, sizeof(ranges_line) - 1);
    if (h->chunked)
        p = put(p, chunked_line, sizeof(chunked_line) - 1);
#define X_PUT(name, field)                                                                         \
    if (h->field) {                                                                                \
        p = put(p, name, sizeof(name) - 1);                                                        \
        p = put_str(p, h->field);                                                                  \
        p = put(p, "\r\n", 2);                                                                     \
    }
    HEAD_LINES(X_PUT)
#undef X_PUT
    if (h->location) {
        p = put(p, location_name, sizeof(location_name) - 1);
        p = put(p, h->location, h->location_len);
        p = put(p, "\r\n", 2);
    }
    if (h->content_length >= 0) {
        p = put(p, length_name, sizeof(length_name) - 1);
        p = put_u64(p, (uint64_t)h->content_length);
        p = put(p, "\r\n", 2);
    }
    if (h->extra_len)
        p = put(p, h->extra, h->extra_len);
    p = put(p, "\r\n", 2);
    return (size_t)(p - out);
}

int response_head(struct conn *c, const struct head_spec *h)
{
    /* An HTTP/1.0 client keeps the connection only if told it stays open
     * (ab -k waits out the keep-alive timeout otherwise). */
    struct head_spec ka;
    if (c->http10 && !h->close && !h->keep_alive) {
        ka = *h;
        ka.keep_alive = true;
        h = &ka;
    }
    size_t n = response_head_len(c->w, h);
    char *p = output_reserve(c, n);
    if (!p)
        return -ENOMEM;
    response_head_write(c->w, h, p);
    return 0;
}

void response_init(struct cz_response *res, struct conn *c, int status, bool head_only)
{
    res->conn = c;
    res->status = status;
    res->head_only = head_only;
    res->req = NULL;
    res->owner = NULL;
    res->close = c->close_after_send;
    res->http10 = c->http10;
    res->failed = false;
    res->deferred = false;
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

int cz_response_status(cz_response *res, int status)
{
    /* 1xx are interim answers, not a handler's final one. */
    if (status < 200 || status > 599)
        return -EINVAL;
    res->status = status;
    return 0;
}

static bool header_is_managed(const char *name, size_t len)
{
    /* By length first: most names a handler sets match none of these. */
    static const struct {
        size_t len;
        const char *name;
    } managed[] = {{14, "content-length"},
                   {4, "date"},
                   {6, "server"},
                   {10, "connection"},
                   {17, "transfer-encoding"}};
    for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++)
        if (len == managed[i].len && strcasecmp(name, managed[i].name) == 0)
            return true;
    return false;
}

/* The length of header text, or -1 if it may not go on the wire: CR, LF,
 * DEL and control bytes other than tab anywhere (header injection is
 * refused, not passed on); in a name also ':', space, tab, and emptiness.
 * One pass: it replaces the strlen. */
static ssize_t header_text_len(const char *s, bool name)
{
    const char *p = s;
    for (;; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch >= 0x20 && ch != 0x7f) {
            if (name && (ch == ':' || ch == ' '))
                return -1;
            continue;
        }
        if (ch == '\t' && !name)
            continue;
        if (ch != 0)
            return -1;
        break;
    }
    return name && p == s ? -1 : p - s;
}

static int header_append(cz_response *res, const char *name, size_t nl, const char *value,
                         size_t vl)
{
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

int cz_response_header(cz_response *res, const char *name, const char *value)
{
    ssize_t nl = header_text_len(name, true), vl = header_text_len(value, false);
    if (nl < 0 || vl < 0)
        return -EINVAL;
    if (header_is_managed(name, (size_t)nl))
        return -EPERM;
    return header_append(res, name, (size_t)nl, value, (size_t)vl);
}

int cz_response_write(cz_response *res, const void *data, size_t len)
{
    if (len == 0)
        return 0; /* data may be NULL then: memcpy(p, NULL, 0) is undefined */
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
    int rc = cz_response_status(res, status);
    if (rc == 0 && content_type) {
        ssize_t vl = header_text_len(content_type, false);
        rc = vl < 0 ? -EINVAL : header_append(res, "Content-Type", 12, content_type, (size_t)vl);
    }
    return rc ? rc : cz_response_write(res, body, len);
}

struct outseg *response_defer(struct cz_response *res)
{
    struct outseg *d = output_defer(res->conn);
    if (d)
        res->deferred = true;
    return d;
}

bool response_status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

int response_finish(struct cz_response *res)
{
    struct conn *c = res->conn;
    bool body = response_status_has_body(res->status);
    size_t len = res->body_len;
    struct head_spec h = {
        .status = res->status,
        .close = res->close,
        .keep_alive = res->http10 && !res->close,
        .content_length = body ? (int64_t)len : -1,
        .extra = res->hdr,
        .extra_len = res->hdr_len,
    };
    /* Head and body go into the queue back to back (usually into the same
     * segment), so one send carries them. */
    int rc = response_head(c, &h);
    if (rc || !body || res->head_only)
        return rc;
    return output_append(c, res->body, res->body_len);
}

void response_text(struct conn *c, int status, bool head, bool close, const struct head_spec *more)
{
    const char *reason = http_reason(status);
    size_t rl = strlen(reason);
    struct head_spec h = more ? *more : (struct head_spec){0};
    h.status = status;
    h.close = close;
    bool body = response_status_has_body(status);
    h.content_type = body ? "text/plain; charset=utf-8" : NULL;
    h.content_length = body ? (int64_t)rl + 1 : -1;
    char *p = NULL;
    if (response_head(c, &h) < 0 || (body && !head && !(p = output_reserve(c, rl + 1)))) {
        conn_close(c); /* a half-queued response: the stream can only end */
        return;
    }
    if (p) {
        memcpy(p, reason, rl);
        p[rl] = '\n';
    }
}

void response_error(struct conn *c, int status, bool head)
{
    static const char retry[] = "Retry-After: 1\r\n";
    const struct head_spec more = {.extra = retry, .extra_len = sizeof(retry) - 1};
    c->close_after_send = true;
    c->error_pending = true;
    /* Outside a dispatch (a malformed request, a timeout) the page is a
     * request of its own for metrics and the access log. */
    struct req_rec rec;
    bool orphan = !reqrec_current(c->w, c);
    if (orphan)
        reqrec_begin(c->w, &rec, c, NULL,
                     c->rx && c->request_started ? c->rx->start_ns : c->w->now_ns);
    /* 503 is only sent for a passing condition (memory pressure). */
    response_text(c, status, head, true, status == 503 ? &more : NULL);
    if (orphan)
        reqrec_end(c->w, &rec);
}
