/* Request parsing with llhttp.  Every byte a request needs after its receive
 * buffer goes back to the kernel is copied into the connection's request
 * scratch (request arena): target and headers in one append-only buffer,
 * headers as offsets, the body in its own buffer.  Limits are checked as the
 * bytes arrive; errors become the exact status the protocol asks for.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "catzilla/memory.h"
#include "core/log.h"
#include "http/http.h"
#include "http/request.h"

static inline struct conn *parser_conn(llhttp_t *p)
{
    return container_of(p, struct conn_rx, parser)->conn;
}

static int fail(struct conn *c, int status)
{
    if (!c->rx->error_status)
        c->rx->error_status = status;
    return -1;
}

/* The longest chunk-size line, extensions included (else 400). */
#define CHUNK_LINE_MAX 4096u

/* A streaming route's handler runs when the body is complete or this much
 * of it has arrived, whichever comes first: a small body is answered like
 * any other (a bad or late one gets its error page), a large one streams. */
#define STREAM_BODY_BUFFER (64u * 1024u)

/* A streaming route's body reader (cz_request_body_reader). */
struct cz_body {
    struct conn *c;
    cz_body_fn fn;
    void *arg;
};

/* Give the sink an event; END and ABORT free it.  Returns what fn did. */
static int sink_event(struct conn *c, enum cz_body_event ev, const char *data, size_t len)
{
    struct cz_body *b = c->rx->sink;
    if (!b)
        return 0;
    if (ev != CZ_BODY_DATA)
        c->rx->sink = NULL;
    int rc = b->fn(b, ev, data, len, b->arg);
    if (ev != CZ_BODY_DATA)
        catzilla_task_free(b);
    return rc;
}

cz_body *cz_request_body_reader(const cz_request *req, cz_body_fn fn, void *arg)
{
    struct conn *c = req ? req->conn : NULL;
    if (!c || !fn || !c->rx || !c->rx->streamed || c->rx->sink) {
        errno = EINVAL;
        return NULL;
    }
    struct cz_body *b = catzilla_task_alloc(sizeof(*b));
    if (!b) {
        errno = ENOMEM;
        return NULL;
    }
    b->c = c;
    b->fn = fn;
    b->arg = arg;
    c->rx->sink = b;
    return b;
}

void cz_body_resume(cz_body *b)
{
    struct conn *c = b->c;
    if (c->read_paused && !c->body_wait && !conn_closing(c))
        conn_resume_reading(c);
}

long long cz_request_content_length(const cz_request *req)
{
    const llhttp_t *p = &req->conn->rx->parser;
    if (p->flags & F_CHUNKED)
        return -1;
    return (p->flags & F_CONTENT_LENGTH) ? (long long)req->conn->rx->content_length : 0;
}

static int scratch_append(struct conn *c, const char *at, size_t len)
{
    /* llhttp reports empty spans too; with no scratch yet, memcpy to NULL is UB. */
    if (len == 0)
        return 0;
    if (c->rx->scratch_len + len > c->rx->scratch_cap) {
        size_t cap = c->rx->scratch_cap ? c->rx->scratch_cap : 512;
        while (cap < c->rx->scratch_len + len)
            cap *= 2;
        char *n = catzilla_request_realloc(c->rx->scratch, cap);
        if (!n)
            return -ENOMEM;
        c->rx->scratch = n;
        c->rx->scratch_cap = (uint32_t)cap;
    }
    memcpy(c->rx->scratch + c->rx->scratch_len, at, len);
    c->rx->scratch_len += (uint32_t)len;
    return 0;
}

static void request_reset(struct conn *c)
{
    c->rx->scratch_len = 0;
    c->rx->url_len = 0;
    c->rx->header_bytes = 0;
    c->rx->nheaders = 0;
    c->rx->last_was_value = false;
    c->rx->body_len = 0;
    c->rx->streamed = false;
    c->rx->stream_route = false;
    c->rx->at_chunk_line = false;
    c->rx->chunk_line_len = 0;
}

void request_free(struct conn *c)
{
    if (!c->rx)
        return;
    memguard_body_done(c);
    catzilla_request_free(c->rx->scratch);
    catzilla_request_free(c->rx->hdr_offs);
    catzilla_request_free(c->rx->body);
    catzilla_request_free(c->rx->chunk_line);
    c->rx->chunk_line = NULL;
    c->rx->scratch = NULL;
    c->rx->hdr_offs = NULL;
    c->rx->body = NULL;
    c->rx->scratch_cap = c->rx->hdr_offs_cap = 0;
    c->rx->body_cap = 0;
    request_reset(c);
}

void request_abort(struct conn *c)
{
    if (c->rx && c->rx->sink)
        sink_event(c, CZ_BODY_ABORT, NULL, 0);
    if (c->rx)
        c->rx->streamed = false;
    request_free(c);
    c->request_started = false;
}

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = parser_conn(p);
    request_reset(c);
    c->request_started = true;
    c->rx->start_ns = c->w->now_ns;
    if (c->state == CONN_IDLE) {
        conn_set_state(c, CONN_HEAD);
        /* The head deadline counts from the first byte and is never extended
         * by further bytes: a trickling client is closed on time.  While
         * responses are still leaving, the send timer rules. */
        if (output_idle(c))
            conn_set_timer(c, TIMER_HEAD);
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = parser_conn(p);
    c->rx->url_len += (uint32_t)len;
    if (c->rx->url_len > (uint64_t)c->w->srv->cfg.max_request_line)
        return fail(c, 414);
    return scratch_append(c, at, len) ? fail(c, 503) : 0;
}

/* Both limits of RFC 9110 section 15.5.20: the whole block and one line
 * (a single 9,000-byte field is refused, as nginx and Apache do). */
static int add_header_bytes(struct conn *c, size_t len)
{
    const struct cz_config *cfg = &c->w->srv->cfg;
    c->rx->header_bytes += (uint32_t)len;
    c->rx->line_bytes += (uint32_t)len;
    if (c->rx->header_bytes > (uint64_t)cfg->max_header_size ||
        c->rx->line_bytes > (uint64_t)cfg->max_header_line)
        return fail(c, 431);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = parser_conn(p);
    if (c->rx->nheaders == 0 || c->rx->last_was_value) {
        if (c->rx->nheaders >= (uint32_t)c->w->srv->cfg.max_headers)
            return fail(c, 431);
        if (c->rx->nheaders == c->rx->hdr_offs_cap) {
            uint32_t cap = c->rx->hdr_offs_cap ? c->rx->hdr_offs_cap * 2 : 16;
            void *n = catzilla_request_realloc(c->rx->hdr_offs, cap * sizeof(*c->rx->hdr_offs));
            if (!n)
                return fail(c, 503);
            c->rx->hdr_offs = n;
            c->rx->hdr_offs_cap = cap;
        }
        uint32_t *h = c->rx->hdr_offs[c->rx->nheaders++];
        h[0] = c->rx->scratch_len;
        h[1] = h[2] = h[3] = 0;
        c->rx->last_was_value = false;
        c->rx->line_bytes = 0;
        /* ": " and CRLF count toward the header block, as on the wire. */
        if (add_header_bytes(c, 4))
            return -1;
    }
    c->rx->hdr_offs[c->rx->nheaders - 1][1] += (uint32_t)len;
    if (add_header_bytes(c, len))
        return -1;
    return scratch_append(c, at, len) ? fail(c, 503) : 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = parser_conn(p);
    /* llhttp accepts obs-fold (a line starting with whitespace continues the
     * previous value) and reports the continuation as more value bytes;
     * RFC 9112 lets a server reject it, and we do: it smuggles headers past
     * proxies that unfold differently. */
    /* An empty value is reported as an empty span at the start of the next
     * line: not a fold.  A fold after an empty value ("X:\r\n b") is reported
     * without its leading whitespace: look back over it.  (Whitespace that
     * ended the previous buffer is not looked through.) */
    const char *q = at;
    while (q > c->rx->parse_base && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    const char *before = q > c->rx->parse_base ? q - 1 : &c->rx->tail[2];
    if (len > 0 && *before == '\n')
        return fail(c, 400); /* a value span starting a line: obs-fold */
    uint32_t *h = c->rx->hdr_offs[c->rx->nheaders - 1];
    if (!c->rx->last_was_value) {
        h[2] = c->rx->scratch_len;
        c->rx->last_was_value = true;
    }
    h[3] += (uint32_t)len;
    if (add_header_bytes(c, len))
        return -1;
    return scratch_append(c, at, len) ? fail(c, 503) : 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct conn *c = parser_conn(p);
    /* llhttp lets an empty field name (": value") through. */
    if (c->rx->nheaders == 0 || c->rx->hdr_offs[c->rx->nheaders - 1][1] == 0)
        return fail(c, 400);
    return 0;
}

static bool is_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
}

/* llhttp checks the target's characters; escapes are ours to check: every
 * '%' starts two hex digits, and %00 is never acceptable. */
static bool target_ok(const char *t, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        /* llhttp lets a form feed through: no control character may reach a
         * handler, or a Location header that echoes the target. */
        unsigned char ch = (unsigned char)t[i];
        if (ch < 0x20 || ch == 0x7f)
            return false;
        if (ch != '%')
            continue;
        if (i + 2 >= len)
            return false;
        if (!is_hex(t[i + 1]) || !is_hex(t[i + 2]))
            return false;
        if (t[i + 1] == '0' && t[i + 2] == '0')
            return false;
        i += 2;
    }
    return true;
}

static struct cz_str hdr_name(const struct conn *c, uint32_t i)
{
    return (struct cz_str){c->rx->scratch + c->rx->hdr_offs[i][0], c->rx->hdr_offs[i][1]};
}

static struct cz_str hdr_value(const struct conn *c, uint32_t i)
{
    return (struct cz_str){c->rx->scratch + c->rx->hdr_offs[i][2], c->rx->hdr_offs[i][3]};
}

static bool str_ieq(struct cz_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.ptr, lit, n) == 0;
}

/* Trim optional whitespace around a header value. */
static struct cz_str str_trim(struct cz_str s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

static bool stream_route(struct conn *c, llhttp_t *p);
static int dispatch_streamed(struct conn *c, llhttp_t *p);
static int pause_body(struct conn *c);
static int request_done(struct conn *c);

static int on_headers_complete(llhttp_t *p)
{
    struct conn *c = parser_conn(p);
    const struct cz_config *cfg = &c->w->srv->cfg;
    /* llhttp reports a request line without a version as HTTP/0.9. */
    if (p->http_major == 0 && p->http_minor == 9)
        return fail(c, 400);
    if (p->http_major != 1)
        return fail(c, 505);
    if (!target_ok(c->rx->scratch, c->rx->url_len))
        return fail(c, 400);

    unsigned hosts = 0;
    bool te = false, te_other = false;
    struct cz_str expect = {NULL, 0};
    for (uint32_t i = 0; i < c->rx->nheaders; i++) {
        struct cz_str name = hdr_name(c, i);
        if (str_ieq(name, "host")) {
            hosts++;
        } else if (str_ieq(name, "transfer-encoding")) {
            /* Only a lone "chunked" is implemented; llhttp accepts any list
             * that ends in chunked ("gzip, chunked"). */
            te_other |= te || !str_ieq(str_trim(hdr_value(c, i)), "chunked");
            te = true;
        } else if (str_ieq(name, "expect")) {
            expect = str_trim(hdr_value(c, i));
        }
    }
    if (hosts > 1 || (p->http_minor == 1 && hosts == 0))
        return fail(c, 400);
    if (te && p->http_minor == 0)
        return fail(c, 400);
    if (te_other)
        return fail(c, 501);

    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool has_body = chunked || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
    /* llhttp counts its content_length down as the body arrives. */
    c->rx->content_length = p->content_length;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > (uint64_t)cfg->max_body_size)
        return fail(c, 413);
    if (expect.ptr && p->http_minor == 1) {
        if (!str_ieq(expect, "100-continue"))
            return fail(c, 417);
        if (has_body) {
            struct head_spec h = {.status = 100, .content_length = -1};
            if (response_head(c, &h) < 0)
                return fail(c, 503);
        }
    }
    if (has_body && c->state == CONN_HEAD) {
        conn_set_state(c, CONN_BODY);
        if (output_idle(c) || c->timer_kind != TIMER_SEND)
            conn_set_timer(c, TIMER_BODY);
        /* Under a memory limit the body may have to wait for budget: the
         * parse stops after the head (request_parse) with reading paused. */
        uint64_t charge = chunked ? MEMGUARD_CHUNKED_CHARGE : p->content_length;
        if (stream_route(c, p) && charge > STREAM_BODY_BUFFER)
            charge = STREAM_BODY_BUFFER; /* all it ever holds */
        memguard_admit_body(c, charge);
    }
    /* Pause so request_parse can check the bytes that ended the head: llhttp
     * accepts a bare CR there ("\r\r\n"). */
    c->rx->check_end = 4;
    /* llhttp reads a chunked body except after CONNECT (the rest of the
     * stream is another protocol). */
    c->rx->at_chunk_line = chunked && !(p->upgrade && p->method == HTTP_CONNECT);
    return HPE_PAUSED;
}

static int on_chunk_header(llhttp_t *p)
{
    parser_conn(p)->rx->chunk_nonzero = p->content_length > 0;
    return 0;
}

/* llhttp does not check the CRLF after chunk data ("abcXY" passes): pause
 * so request_parse can.  A chunk with data is followed by the next
 * chunk-size line, which request_parse reads itself. */
static int on_chunk_complete(llhttp_t *p)
{
    struct conn_rx *x = parser_conn(p)->rx;
    x->check_end = 2;
    x->at_chunk_line = x->chunk_nonzero;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = parser_conn(p);
    if (c->rx->body_len + len > (size_t)c->w->srv->cfg.max_body_size)
        return fail(c, 413);
    if (c->rx->streamed) {
        /* Straight to the handler's reader, never buffered. */
        c->rx->body_len += len;
        return sink_event(c, CZ_BODY_DATA, at, len) == CZ_BODY_PAUSE ? pause_body(c) : 0;
    }
    if (c->rx->body_len + len > c->rx->body_cap) {
        size_t cap = c->rx->body_cap ? c->rx->body_cap : 1024;
        /* A known Content-Length sizes the buffer once. */
        if ((p->flags & F_CONTENT_LENGTH) && c->rx->body_len + p->content_length + len > cap)
            cap = c->rx->body_len + len + p->content_length;
        while (cap < c->rx->body_len + len)
            cap *= 2;
        char *n = catzilla_request_realloc(c->rx->body, cap);
        if (!n)
            return fail(c, 503);
        c->rx->body = n;
        c->rx->body_cap = cap;
    }
    memcpy(c->rx->body + c->rx->body_len, at, len);
    c->rx->body_len += len;
    /* A streaming route's handler runs once its first STREAM_BODY_BUFFER
     * bytes are here (a smaller body waits for its end, so that a bad or
     * late one still gets an error page). */
    if (c->rx->stream_route && c->rx->body_len >= STREAM_BODY_BUFFER)
        return dispatch_streamed(c, p);
    return 0;
}

/* The path and query of a target.  The origin form ("/p?q") is split at
 * its '?'; the absolute form ("http://host/p?q", RFC 9112 section 3.2.2,
 * which a server MUST accept) routes on what follows its authority, and
 * has the path "/" when nothing does. */
static void split_target(struct cz_str t, struct cz_str *path, struct cz_str *query)
{
    const char *p = t.ptr, *end = t.ptr + t.len;
    bool origin = t.len > 0 && *p == '/'; /* the usual form: no scheme to look for */
    size_t skip = origin                                             ? 0
                  : t.len >= 7 && strncasecmp(p, "http://", 7) == 0  ? 7
                  : t.len >= 8 && strncasecmp(p, "https://", 8) == 0 ? 8
                                                                     : 0;
    bool absolute = skip > 0;
    p += skip;
    if (absolute)
        while (p < end && *p != '/' && *p != '?')
            p++;
    size_t rest = t.len - (size_t)(p - t.ptr); /* skip <= t.len: never past end */
    const char *q = memchr(p, '?', rest);
    *path = (struct cz_str){p, (size_t)((q ? q : end) - p)};
    if (absolute && path->len == 0)
        *path = (struct cz_str){"/", 1};
    *query = q ? (struct cz_str){q + 1, (size_t)(end - q - 1)} : (struct cz_str){end, 0};
}

/* The request as handlers see it.  At the head (a streaming route) its
 * body is still to come. */
static void request_build(struct conn *c, llhttp_t *p, struct cz_request *req)
{
    memset(req, 0, sizeof(*req));
    req->conn = c;
    const char *mname = llhttp_method_name((llhttp_method_t)p->method);
    req->method_str = (struct cz_str){mname, strlen(mname)};
    req->method = cz_method_parse(mname, req->method_str.len);
    req->target = (struct cz_str){c->rx->scratch, c->rx->url_len};
    split_target(req->target, &req->path, &req->query);
    req->body = (struct cz_str){c->rx->body ? c->rx->body : "", c->rx->body_len};
    req->http_minor = p->http_minor;
    c->http10 = p->http_minor == 0;
    req->head = req->method == CZ_METHOD_HEAD;
}

/* Count the request and run its handler. */
static void request_dispatch(struct conn *c, llhttp_t *p, struct cz_request *req)
{
    struct worker *w = c->w;
    c->requests++;
    atomic_fetch_add_explicit(&w->stats.requests, 1, memory_order_relaxed);
    /* llhttp stops after an Upgrade (or CONNECT) request (HPE_PAUSED_UPGRADE)
     * and we close: the response must say so. */
    req->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade && server_keepalive_allowed(c);
    if (!req->keep_alive)
        c->close_after_send = true;

    struct req_rec rec;
    reqrec_begin(w, &rec, c, req, c->rx->start_ns);
    server_dispatch(c, req);
    reqrec_end(w, &rec);
}

/* The request leads to a streaming route (remembered for on_body). */
static bool stream_route(struct conn *c, llhttp_t *p)
{
    struct cz_request req;
    if (c->rx->error_status || !c->w->srv->has_stream_routes)
        return false;
    request_build(c, p, &req);
    c->rx->stream_route = server_streams_body(c, &req);
    return c->rx->stream_route;
}

/* Reading waits for the reader's cz_body_resume. */
static int pause_body(struct conn *c)
{
    if (!c->rx->sink)
        return 0; /* it ended (ABORT): nothing to wait for */
    c->read_paused = true;
    return HPE_PAUSED;
}

/* After the handler: its reader gets the body received so far (all of it
 * when end is true, followed by END), and the buffer is freed.  Returns
 * what the reader asked for (CZ_BODY_PAUSE). */
static int deliver_buffered(struct conn *c, bool end)
{
    int rc = 0;
    if (c->rx->body_len > 0)
        rc = sink_event(c, CZ_BODY_DATA, c->rx->body, c->rx->body_len);
    catzilla_request_free(c->rx->body);
    c->rx->body = NULL;
    c->rx->body_cap = 0;
    memguard_body_done(c);
    if (end) {
        sink_event(c, CZ_BODY_END, NULL, 0);
        rc = 0;
    }
    return rc;
}

/* The body outgrew the buffer: run the handler with what is here; the
 * rest goes to its reader as it comes. */
static int dispatch_streamed(struct conn *c, llhttp_t *p)
{
    struct cz_request req;
    request_build(c, p, &req);
    c->rx->streamed = true;
    request_dispatch(c, p, &req);
    if (conn_closing(c))
        return 0;
    return deliver_buffered(c, false) == CZ_BODY_PAUSE ? pause_body(c) : 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct conn *c = parser_conn(p);
    if (c->rx->streamed) {
        /* Answered already: its reader learns the body is whole. */
        sink_event(c, CZ_BODY_END, NULL, 0);
        return request_done(c);
    }
    struct cz_request req;
    request_build(c, p, &req);
    c->rx->streamed = c->rx->stream_route; /* a reader may be set */
    request_dispatch(c, p, &req);
    if (c->rx->sink)
        deliver_buffered(c, true);
    memguard_body_done(c);
    return request_done(c);
}

/* The request is answered (or its answer is on the way): next one. */
static int request_done(struct conn *c)
{
    c->request_started = false;
    if (c->state == CONN_HEAD || c->state == CONN_BODY)
        conn_set_state(c, CONN_IDLE);
    request_reset(c);
    if (c->close_after_send)
        return HPE_PAUSED; /* nothing behind the last response is processed */
    /* A stream's length is open-ended: the next request waits for its end
     * (so its writes measure only its own bytes against the queue limit). */
    if (!output_has_space(c) || c->stream) {
        c->read_paused = true;
        return HPE_PAUSED;
    }
    return 0;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_field_complete = on_header_field_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_chunk_complete = on_chunk_complete,
    .on_message_complete = on_message_complete,
};

/* ---------- the parse state's lifetime ---------- */

/* c's parse state, created on its first bytes (or taken off the idle list).
 * NULL when out of memory. */
static struct conn_rx *rx_get(struct conn *c)
{
    struct conn_rx *x = c->rx;
    if (x) {
        if (x->idle_link.next)
            list_del(&x->idle_link);
        return x;
    }
    x = catzilla_request_alloc(sizeof(*x));
    if (!x)
        return NULL;
    memset(x, 0, sizeof(*x));
    llhttp_init(&x->parser, HTTP_REQUEST, &settings);
    x->conn = c;
    c->rx = x;
    return x;
}

/* Between requests with nothing held: park the parse state; a connection
 * that stays silent for RX_IDLE_MS loses it (request_rx_sweep). */
static void rx_park(struct conn *c)
{
    struct conn_rx *x = c->rx;
    if (!x || x->idle_link.next || c->read_paused || x->held_off < x->held_len)
        return;
    x->idle_since_ms = c->w->now_ms;
    list_add_tail(&c->w->rx_idle, &x->idle_link);
}

void request_rx_free(struct conn *c)
{
    struct conn_rx *x = c->rx;
    if (!x)
        return;
    request_free(c);
    if (x->idle_link.next)
        list_del(&x->idle_link);
    catzilla_request_free(x->held);
    catzilla_request_free(x);
    c->rx = NULL;
}

void request_rx_sweep(struct worker *w)
{
    while (!list_empty(&w->rx_idle)) {
        struct conn_rx *x = container_of(w->rx_idle.next, struct conn_rx, idle_link);
        if (w->now_ms - x->idle_since_ms < RX_IDLE_MS)
            break;
        request_rx_free(x->conn);
    }
}

void request_parser_resume(struct conn *c)
{
    if (c->rx && llhttp_get_errno(&c->rx->parser) == HPE_PAUSED)
        llhttp_resume(&c->rx->parser);
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* llhttp knows only registered methods.  A well-formed token it does not
 * know is a method we do not implement (501); anything else is garbage (400). */
static int method_error_status(const char *data, size_t len, const char *err_pos)
{
    const char *end = data + len;
    if (err_pos < data || err_pos >= end)
        return 400;
    /* Everything before err_pos matched a known method's prefix, possibly in
     * an earlier buffer; the rest of the token must be tchars up to a space
     * (or to the end of what has arrived so far). */
    const char *t = err_pos;
    while (t < end && is_tchar((unsigned char)*t))
        t++;
    if (t == err_pos || (t < end && *t != ' '))
        return 400;
    return 501;
}

/* "HTTP/x.y" with digits but a version we do not speak -> 505, else 400. */
static int version_error_status(const struct conn *c, const char *data, size_t len,
                                const char *err_pos)
{
    (void)c;
    const char *end = data + len;
    const char *v = err_pos;
    while (v > data && v[-1] != ' ' && v - data > 0 && err_pos - v < 16)
        v--;
    /* Only a well-formed version token (ending the line, or the bytes so far)
     * can be unsupported; "HTTP/1.1x" or a bare CR after "HTTP/1.1" is
     * malformed, and 1.0/1.1 are never "unsupported". */
    if (end - v >= 8 && memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
        v[7] >= '0' && v[7] <= '9' && (end - v == 8 || v[8] == '\r' || v[8] == '\n') &&
        !(v[5] == '1' && (v[7] == '0' || v[7] == '1')))
        return 505;
    return 400;
}

static int error_status(struct conn *c, enum llhttp_errno e, const char *data, size_t len)
{
    if (c->rx->error_status)
        return c->rx->error_status;
    const char *pos = llhttp_get_error_pos(&c->rx->parser);
    switch (e) {
    case HPE_PAUSED_H2_UPGRADE:
        return 505; /* the HTTP/2 preface ("PRI * HTTP/2.0"): HTTP/1.1 only here */
    case HPE_INVALID_METHOD:
        return method_error_status(data, len, pos);
    case HPE_INVALID_VERSION:
        return version_error_status(c, data, len, pos);
    case HPE_INVALID_TRANSFER_ENCODING:
        return 501;
    default:
        return 400;
    }
}

/* ---------- chunk-size lines ---------- */

/* RFC 9112 section 7.1.1: chunk-size [ chunk-ext ] CRLF, where
 *   chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *   ext-val   = token / quoted-string
 * llhttp 8.1 refuses valid lines ("5;a=1;b", "5 ;x"), so request_parse reads
 * every chunk-size line itself and gives llhttp only "HEX\r\n".  line
 * excludes the CRLF.  Extensions are checked and ignored. */
/* Past the spaces and tabs (BWS) at p. */
static const char *skip_bws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* Past the token at p; NULL when none starts there. */
static const char *skip_token(const char *p, const char *end)
{
    const char *start = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    return p > start ? p : NULL;
}

/* Past the quoted-string that opens at p ('"'); NULL when it is unterminated
 * or holds a control byte (tab allowed), quoted or not. */
static const char *skip_quoted(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"')
            return p + 1;
        if (ch == '\\') {
            if (++p >= end)
                return NULL;
            ch = (unsigned char)*p;
        }
        if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
            return NULL;
    }
    return NULL;
}

int request_chunk_line(const char *line, size_t len, uint64_t *size)
{
    const char *p = line, *end = line + len;
    uint64_t v = 0;
    size_t digits = 0;
    for (; p < end && isxdigit((unsigned char)*p); p++, digits++) {
        if (v >> 59)
            return -ERANGE; /* beyond 2^63: no body is that long */
        v = v * 16 + (uint64_t)(isdigit((unsigned char)*p) ? *p - '0' : (*p | 0x20) - 'a' + 10);
    }
    /* Whitespace only ever comes before ";" or "=": never at the end. */
    if (digits == 0 || line[len - 1] == ' ' || line[len - 1] == '\t')
        return -EINVAL;
    p = skip_bws(p, end);
    while (p < end) {
        if (*p++ != ';' || !(p = skip_token(skip_bws(p, end), end)))
            return -EINVAL; /* no ";" or no name */
        p = skip_bws(p, end);
        if (p < end && *p == '=') {
            p = skip_bws(p + 1, end);
            p = p < end && *p == '"' ? skip_quoted(p, end) : skip_token(p, end);
            if (!p)
                return -EINVAL;
            p = skip_bws(p, end);
        }
    }
    *size = v;
    return 0;
}

/* At a chunk-size line: take the bytes of [data, data + len) that belong to
 * it (kept in rx->chunk_line when the line goes on in the next buffer) and,
 * once it is whole and valid, give llhttp its canonical form.  Returns the
 * bytes taken, or -1 for a bad line (400). */
static ssize_t take_chunk_line(struct conn *c, const char *data, size_t len)
{
    struct conn_rx *x = c->rx;
    const char *lf = memchr(data, '\n', len);
    size_t take = lf ? (size_t)(lf - data) + 1 : len;
    const char *line = data;
    size_t ll = take;
    if (x->chunk_line_len || !lf) {
        /* Split across buffers: gather it (bounded). */
        if (x->chunk_line_len + take > CHUNK_LINE_MAX)
            return -1;
        if (!x->chunk_line && !(x->chunk_line = catzilla_request_alloc(CHUNK_LINE_MAX)))
            return -1;
        memcpy(x->chunk_line + x->chunk_line_len, data, take);
        x->chunk_line_len += (uint32_t)take;
        if (!lf)
            return (ssize_t)take;
        line = x->chunk_line;
        ll = x->chunk_line_len;
    } else if (take > CHUNK_LINE_MAX) {
        return -1;
    }
    x->chunk_line_len = 0;
    x->at_chunk_line = false;
    uint64_t size;
    if (ll < 2 || line[ll - 2] != '\r' || request_chunk_line(line, ll - 2, &size) < 0)
        return -1;
    char canon[24];
    int n = snprintf(canon, sizeof(canon), "%" PRIx64 "\r\n", size);
    if (llhttp_execute(&x->parser, canon, (size_t)n) != HPE_OK)
        return -1;
    return (ssize_t)take;
}

/* The n bytes before pos (some may be the tail of the previous buffer) must
 * be CRLF (n = 2, after chunk data) or CRLF CRLF (n = 4, the end of a head). */
static bool line_end_ok(const struct conn *c, const char *data, const char *pos, int n)
{
    char last[4];
    for (int i = 0; i < n; i++) {
        ptrdiff_t at = (pos - data) - n + i;
        last[i] = at >= 0 ? data[at] : at >= -3 ? c->rx->tail[3 + at] : '\0';
    }
    return memcmp(last, "\r\n\r\n", (size_t)n) == 0;
}

size_t request_parse(struct conn *c, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    if (!rx_get(c)) {
        /* No memory for the parse state: nothing can be answered. */
        conn_close(c);
        return len;
    }
    c->rx->parse_base = data;
    const char *p = data, *end = data + len;
    enum llhttp_errno e = HPE_OK;
    for (;;) {
        if (c->rx->at_chunk_line) {
            ssize_t k = take_chunk_line(c, p, (size_t)(end - p));
            if (k < 0) {
                c->rx->error_status = c->rx->error_status ? c->rx->error_status : 400;
                e = HPE_USER;
                break;
            }
            p += k;
            if (c->rx->at_chunk_line) {
                e = HPE_OK; /* the line goes on in the next buffer */
                break;
            }
        }
        /* Also with nothing left: a resumed parser finishes a message
         * that ended with the bytes it had (a request without a body). */
        e = llhttp_execute(&c->rx->parser, p, (size_t)(end - p));
        if (e != HPE_PAUSED || !c->rx->check_end)
            break;
        int n = c->rx->check_end;
        c->rx->check_end = 0;
        const char *pos = llhttp_get_error_pos(&c->rx->parser);
        if (!pos || pos < data || pos > end || !line_end_ok(c, data, pos, n)) {
            c->rx->error_status = 400;
            e = HPE_USER;
            break;
        }
        if (c->body_wait)
            break; /* paused at the end of the head until the body is admitted */
        llhttp_resume(&c->rx->parser);
        p = pos;
    }
    size_t used = len;
    if (e == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&c->rx->parser);
        used = pos && pos >= data && pos <= data + len ? (size_t)(pos - data) : len;
    }
    /* Remember the last bytes parsed for checks that look back across
     * buffers (a pause mid-buffer parses the rest later). */
    if (used >= sizeof(c->rx->tail)) {
        memcpy(c->rx->tail, data + used - sizeof(c->rx->tail), sizeof(c->rx->tail));
    } else {
        memmove(c->rx->tail, c->rx->tail + used, sizeof(c->rx->tail) - used);
        memcpy(c->rx->tail + sizeof(c->rx->tail) - used, data, used);
    }
    switch (e) {
    case HPE_OK:
    case HPE_PAUSED:
        break;
    case HPE_PAUSED_UPGRADE:
        /* No protocol upgrades here: the request was answered; close after it. */
        c->close_after_send = true;
        break;
    default: {
        int status = error_status(c, e, data, len);
        cz_log_debug("bad request (%d): %s", status, llhttp_get_error_reason(&c->rx->parser));
        bool head = c->rx->parser.method == HTTP_HEAD && c->rx->url_len > 0;
        /* A request answered at its head cannot get an error page: its
         * answer has started.  Its reader is told, the connection closes. */
        bool streamed = c->rx->streamed;
        request_abort(c);
        if (streamed)
            conn_close(c);
        else
            response_error(c, status, head);
        break;
    }
    }
    /* Idle connections hold no request memory. */
    if (c->state == CONN_IDLE && !c->request_started) {
        request_free(c);
        rx_park(c);
    }
    return used;
}

/* ---------- the public request accessors ---------- */

struct cz_str cz_request_method(const cz_request *req)
{
    return req->method_str;
}

struct cz_str cz_request_path(const cz_request *req)
{
    return req->path;
}

struct cz_str cz_request_query(const cz_request *req)
{
    return req->query;
}

struct cz_str cz_request_body(const cz_request *req)
{
    return req->body;
}

unsigned cz_request_worker(const cz_request *req)
{
    return req->conn->w->id;
}

size_t cz_request_header_count(const cz_request *req)
{
    return req->conn->rx->nheaders;
}

int cz_request_header_at(const cz_request *req, size_t i, struct cz_str *name, struct cz_str *value)
{
    const struct conn *c = req->conn;
    if (i >= c->rx->nheaders)
        return -ENOENT;
    *name = hdr_name(c, (uint32_t)i);
    *value = str_trim(hdr_value(c, (uint32_t)i));
    return 0;
}

struct cz_str cz_request_header(const cz_request *req, const char *name)
{
    const struct conn *c = req->conn;
    size_t n = strlen(name);
    for (uint32_t i = 0; i < c->rx->nheaders; i++) {
        struct cz_str hn = hdr_name(c, i);
        if (hn.len == n && strncasecmp(hn.ptr, name, n) == 0)
            return str_trim(hdr_value(c, i));
    }
    return (struct cz_str){NULL, 0};
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)(ch | 0x20);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

ssize_t cz_url_decode(const char *in, size_t len, bool plus_is_space, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = in[i];
        if (ch == '%') {
            int hi = i + 2 < len ? hex_value(in[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(in[i + 2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0))
                return -EINVAL; /* a bad escape, or %00 */
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        }
        if (n + 1 >= cap)
            return -ENOSPC;
        out[n++] = ch;
    }
    if (cap == 0)
        return -ENOSPC;
    out[n] = '\0';
    return (ssize_t)n;
}

ssize_t cz_request_query_param(const cz_request *req, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = req->query.ptr, *end = p + req->query.len;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        const char *key_end = eq ? eq : pair_end;
        /* Names are compared decoded: "a%20b" is the name "a b". */
        char key[256];
        ssize_t kl = cz_url_decode(p, (size_t)(key_end - p), true, key, sizeof(key));
        if (kl == (ssize_t)nl && memcmp(key, name, nl) == 0) {
            const char *v = eq ? eq + 1 : pair_end;
            return cz_url_decode(v, (size_t)(pair_end - v), true, out, cap);
        }
        p = amp ? amp + 1 : end;
    }
    return -ENOENT;
}

struct cz_str cz_request_param(const cz_request *req, const char *name)
{
    size_t n = strlen(name);
    for (unsigned i = 0; i < req->match.nparams; i++) {
        const struct cz_route_param *prm = &req->match.params[i];
        if (strlen(prm->name) == n && memcmp(prm->name, name, n) == 0)
            return (struct cz_str){prm->value, prm->len};
    }
    return (struct cz_str){NULL, 0};
}
