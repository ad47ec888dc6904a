/* The access log (accesslog.h): per-worker buffers written through the
 * worker's ring, one write in flight per worker so its lines stay in order. */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catzilla/memory.h"
#include "core/log.h"
#include "http/http.h"

/* No line is longer: a write of whole lines of at most PIPE_BUF bytes to a
 * pipe is atomic, so lines of different workers never interleave. */
#define LINE_MAX_BYTES PIPE_BUF
/* Output budgets of the free-form fields (escaped), so a line always fits. */
#define TARGET_BUDGET 2048
#define REFERER_BUDGET 640
#define AGENT_BUDGET 768
#define METHOD_BUDGET 32

enum { FORMAT_COMBINED, FORMAT_JSON };

struct accesslog {
    int fd; /* every worker writes here; reopen dup3()s onto it */
    int format;
    bool pipe;        /* a pipe, FIFO or socket: writes of at most PIPE_BUF */
    const char *path; /* NULL for stdout */
};

struct logbuf {
    alignas(16) struct accesslog_worker *owner;
    char *data;
    size_t len; /* bytes filled */
    size_t off; /* bytes written so far */
    bool busy;  /* a write of data[off..] is in flight */
};

struct accesslog_worker {
    struct worker *w;
    struct logbuf buf[2];
    unsigned fill; /* the buffer lines go into; never busy */
    size_t cap;
    uint64_t dropped;
    bool failing;     /* inside a spell of failed writes (reported once) */
    bool cancelled;   /* the writes were cancelled at shutdown */
    time_t stamp_sec; /* the second the cached time stamps are for */
    char stamp_combined[32], stamp_json[24];
};

/* ---------- process-wide ---------- */

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

int accesslog_open(struct cz_server *srv, char *err, size_t errlen)
{
    const char *where = srv->cfg.access_log ? srv->cfg.access_log : "off";
    const char *fmt = srv->cfg.access_log_format ? srv->cfg.access_log_format : "combined";
    int format;
    if (strcmp(fmt, "combined") == 0) {
        format = FORMAT_COMBINED;
    } else if (strcmp(fmt, "json") == 0) {
        format = FORMAT_JSON;
    } else {
        snprintf(err, errlen, "--access-log-format: '%s' is not combined or json", fmt);
        return -EINVAL;
    }
    if (strcmp(where, "off") == 0)
        return 0;
    bool is_stdout = strcmp(where, "-") == 0;
    /* stdout is duplicated, so that reopening never touches descriptor 1. */
    int fd = is_stdout ? fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3) : open_path(where);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "--access-log %s: %s", where, strerror(e));
        return -e;
    }
    struct stat st;
    bool is_file = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    /* Workers' writes at the file position would overwrite each other in a
     * file opened without O_APPEND (a shell's "> file"); appending cannot.
     * (This sets it on stdout's open file too, which only helps.) */
    if (is_stdout && is_file)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_APPEND);
    struct accesslog *log = calloc(1, sizeof(*log));
    if (!log) {
        close(fd);
        snprintf(err, errlen, "access log: out of memory");
        return -ENOMEM;
    }
    log->fd = fd;
    log->format = format;
    /* Pipes, sockets, terminals: writes of at most PIPE_BUF, at line ends. */
    log->pipe = !is_file;
    log->path = is_stdout ? NULL : where;
    srv->alog = log;
    return 0;
}

int accesslog_reopen(struct cz_server *srv)
{
    struct accesslog *log = srv->alog;
    if (!log || !log->path)
        return 0;
    int fd = open_path(log->path);
    if (fd < 0 || dup3(fd, log->fd, O_CLOEXEC) < 0) {
        int e = errno;
        cz_log_error("access log: cannot reopen %s: %s; still writing to the old file", log->path,
                     strerror(e));
        if (fd >= 0)
            close(fd);
        return -e;
    }
    close(fd);
    return 0;
}

void accesslog_close(struct cz_server *srv)
{
    if (!srv->alog)
        return;
    close(srv->alog->fd);
    free(srv->alog);
    srv->alog = NULL;
}

bool accesslog_enabled(const struct cz_server *srv)
{
    return srv->alog != NULL;
}

/* ---------- formatting ---------- */

struct out {
    char *p, *end;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (n > (size_t)(o->end - o->p))
        n = (size_t)(o->end - o->p);
    memcpy(o->p, s, n);
    o->p += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Digits by hand: snprintf's format parsing shows in a per-request profile. */
static void put_u64(struct out *o, uint64_t v)
{
    char d[24], *p = d + sizeof(d);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, p, (size_t)(d + sizeof(d) - p));
}

static const char hex[] = "0123456789abcdef";

/* Length of the valid UTF-8 sequence (2 to 4 bytes, no overlong form, no
 * surrogate) at p, or 0. */
static size_t utf8_len(const unsigned char *p, size_t left)
{
    size_t n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || n > left || p[0] >= 0xf8)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
        return 0;
    return n;
}

/* s escaped for a quoted field, in at most budget bytes (an escape or a
 * character is never cut; a cut field ends in "...").  Combined: \", \\
 * and \xHH for every byte outside printable ASCII, as Apache and nginx
 * write them.  JSON: valid UTF-8 as it is, controls as \u00XX, and a byte
 * that is not UTF-8 as U+FFFD, so the line is valid JSON whatever was sent. */
static void put_escaped(struct out *o, struct cz_str s, size_t budget, bool json)
{
    char *limit = o->p + budget < o->end ? o->p + budget : o->end;
    const unsigned char *u = (const unsigned char *)s.ptr;
    for (size_t i = 0; i < s.len;) {
        unsigned char ch = u[i];
        char esc[8];
        const char *out = esc;
        size_t n, used = 1;
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            n = 2;
        } else if (ch >= 0x20 && ch < 0x7f) {
            esc[0] = (char)ch;
            n = 1;
        } else if (!json) {
            n = (size_t)snprintf(esc, sizeof(esc), "\\x%c%c", hex[ch >> 4], hex[ch & 15]);
        } else if (ch < 0x80) {
            n = (size_t)snprintf(esc, sizeof(esc), "\\u00%c%c", hex[ch >> 4], hex[ch & 15]);
        } else if ((used = utf8_len(u + i, s.len - i)) > 0) {
            out = s.ptr + i;
            n = used;
        } else {
            out = "\\ufffd";
            n = 6;
            used = 1;
        }
        if ((size_t)(limit - o->p) < n + 3) {
            put(o, "...", 3);
            return;
        }
        put(o, out, n);
        i += used;
    }
}

static void put_peer(struct out *o, const struct cz_peer *peer)
{
    char host[64];
    if (!peer || !peer->family || !inet_ntop(peer->family, peer->addr, host, sizeof(host))) {
        puts_(o, "-");
        return;
    }
    puts_(o, host);
}

/* "[26/Nov/2026:19:40:01 +0000]" and "2026-11-26T19:40:01Z" for now. */
static void stamps(time_t now, char *combined, size_t ccap, char *json, size_t jcap)
{
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(combined, ccap, "[%d/%b/%Y:%H:%M:%S +0000]", &tm);
    strftime(json, jcap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void put_field(struct out *o, struct cz_str s, size_t budget, bool json)
{
    if (!s.ptr) {
        puts_(o, json ? "null" : "\"-\"");
        return;
    }
    put(o, "\"", 1);
    put_escaped(o, s, budget, json);
    put(o, "\"", 1);
}

static void format_combined(const struct reqlog *r, const char *stamp, struct out *o)
{
    put_peer(o, r->peer);
    puts_(o, " - - ");
    puts_(o, stamp);
    if (r->http_minor == 0xff || !r->method.ptr) {
        puts_(o, " \"-\" ");
    } else {
        puts_(o, " \"");
        put_escaped(o, r->method, METHOD_BUDGET, false);
        put(o, " ", 1);
        put_escaped(o, r->target, TARGET_BUDGET, false);
        puts_(o, r->http_minor ? " HTTP/1.1\" " : " HTTP/1.0\" ");
    }
    put_u64(o, (uint64_t)r->status);
    put(o, " ", 1);
    if (r->bytes > 0)
        put_u64(o, (uint64_t)r->bytes);
    else
        put(o, "-", 1);
    put(o, " ", 1);
    put_field(o, r->referer, REFERER_BUDGET, false);
    put(o, " ", 1);
    put_field(o, r->user_agent, AGENT_BUDGET, false);
}

static void format_json(const struct reqlog *r, const char *stamp, struct out *o)
{
    puts_(o, "{\"time\":\"");
    puts_(o, stamp);
    puts_(o, "\",\"remote\":");
    if (r->peer && r->peer->family) {
        put(o, "\"", 1);
        put_peer(o, r->peer);
        put(o, "\"", 1);
    } else {
        puts_(o, "null");
    }
    bool line = r->http_minor != 0xff && r->method.ptr;
    puts_(o, ",\"method\":");
    put_field(o, line ? r->method : (struct cz_str){NULL, 0}, METHOD_BUDGET, true);
    puts_(o, ",\"target\":");
    put_field(o, line ? r->target : (struct cz_str){NULL, 0}, TARGET_BUDGET, true);
    puts_(o, ",\"protocol\":");
    puts_(o, !line ? "null" : r->http_minor ? "\"HTTP/1.1\"" : "\"HTTP/1.0\"");
    puts_(o, ",\"status\":");
    put_u64(o, (uint64_t)r->status);
    puts_(o, ",\"bytes\":");
    put_u64(o, r->bytes > 0 ? (uint64_t)r->bytes : 0);
    /* Milliseconds with three decimals (microsecond resolution). */
    uint64_t us = (r->duration_ns + 500) / 1000;
    char frac[4] = {(char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10), (char)('0' + us % 10),
                    '\0'};
    puts_(o, ",\"duration_ms\":");
    put_u64(o, us / 1000);
    put(o, ".", 1);
    put(o, frac, 3);
    puts_(o, ",\"referer\":");
    put_field(o, r->referer, REFERER_BUDGET, true);
    puts_(o, ",\"user_agent\":");
    put_field(o, r->user_agent, AGENT_BUDGET, true);
    put(o, "}", 1);
}

size_t accesslog_format_line(int json, const struct reqlog *r, time_t now, char *out, size_t cap)
{
    char combined[32], js[24];
    stamps(now, combined, sizeof(combined), js, sizeof(js));
    if (cap > LINE_MAX_BYTES)
        cap = LINE_MAX_BYTES;
    if (cap < 2)
        return 0;
    struct out o = {out, out + cap - 1}; /* room for the newline */
    if (json)
        format_json(r, js, &o);
    else
        format_combined(r, combined, &o);
    *o.p++ = '\n';
    return (size_t)(o.p - out);
}

/* ---------- per worker ---------- */

int accesslog_worker_init(struct worker *w)
{
    if (!w->srv->alog)
        return 0;
    struct accesslog_worker *a = catzilla_task_alloc(sizeof(*a));
    if (!a)
        return -ENOMEM;
    memset(a, 0, sizeof(*a));
    a->w = w;
    a->cap = (size_t)w->srv->cfg.access_log_buffer;
    for (int i = 0; i < 2; i++) {
        a->buf[i].owner = a;
        a->buf[i].data = catzilla_static_alloc(a->cap);
        if (!a->buf[i].data) {
            catzilla_static_free(a->buf[0].data);
            catzilla_task_free(a);
            return -ENOMEM;
        }
    }
    w->alog = a;
    return 0;
}

void accesslog_worker_free(struct worker *w)
{
    struct accesslog_worker *a = w->alog;
    if (!a)
        return;
    for (int i = 0; i < 2; i++)
        catzilla_static_free(a->buf[i].data);
    catzilla_task_free(a);
    w->alog = NULL;
}

static uint64_t count_lines(const char *p, size_t n)
{
    uint64_t lines = 0;
    for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
        lines++;
    return lines;
}

/* Start writing what b holds from off: all of it, or for a pipe the whole
 * lines that fit in PIPE_BUF.  False if the ring has no free SQE (the next
 * flush tries again). */
static bool submit(struct accesslog_worker *a, struct logbuf *b)
{
    const struct accesslog *log = a->w->srv->alog;
    size_t n = b->len - b->off;
    if (log->pipe && n > PIPE_BUF) {
        const char *start = b->data + b->off;
        const char *nl = memrchr(start, '\n', PIPE_BUF);
        n = nl ? (size_t)(nl - start) + 1 : PIPE_BUF;
    }
    struct io_uring_sqe *sqe = cz_ring_sqe(&a->w->ring);
    if (!sqe)
        return false;
    /* Offset -1: the file position, which O_APPEND puts at the end. */
    io_uring_prep_write(sqe, log->fd, b->data + b->off, (unsigned)n, (__u64)-1);
    io_uring_sqe_set_data64(sqe, cz_ud(b, OP_LOG));
    b->busy = true;
    return true;
}

static bool done(const struct logbuf *b)
{
    return !b->busy && b->off == b->len;
}

/* Hand the filling buffer to the kernel once the other one is written:
 * one write in flight keeps this worker's lines in order. */
static bool rotate(struct accesslog_worker *a)
{
    struct logbuf *cur = &a->buf[a->fill], *other = &a->buf[!a->fill];
    if (!done(other) || cur->len == 0 || !submit(a, cur))
        return false;
    other->len = other->off = 0;
    a->fill = !a->fill;
    return true;
}

void accesslog_record(struct worker *w, const struct reqlog *r)
{
    struct accesslog_worker *a = w->alog;
    if (!a)
        return;
    if (w->date_sec != a->stamp_sec) {
        a->stamp_sec = w->date_sec;
        stamps(a->stamp_sec, a->stamp_combined, sizeof(a->stamp_combined), a->stamp_json,
               sizeof(a->stamp_json));
    }
    char line[LINE_MAX_BYTES];
    struct out o = {line, line + sizeof(line) - 1};
    if (w->srv->alog->format == FORMAT_JSON)
        format_json(r, a->stamp_json, &o);
    else
        format_combined(r, a->stamp_combined, &o);
    *o.p++ = '\n';
    size_t n = (size_t)(o.p - line);
    struct logbuf *b = &a->buf[a->fill];
    if (b->len + n > a->cap) {
        if (!rotate(a)) {
            a->dropped++;
            return;
        }
        b = &a->buf[a->fill];
    }
    memcpy(b->data + b->len, line, n);
    b->len += n;
}

void accesslog_flush(struct worker *w)
{
    struct accesslog_worker *a = w->alog;
    if (!a || a->cancelled)
        return;
    struct logbuf *other = &a->buf[!a->fill];
    if (!other->busy && other->off < other->len)
        submit(a, other); /* a rest that found no SQE before */
    else
        rotate(a);
}

void accesslog_on_cqe(struct worker *w, struct io_uring_cqe *cqe)
{
    struct logbuf *b = cz_ud_ptr(io_uring_cqe_get_data64(cqe));
    struct accesslog_worker *a = b->owner;
    b->busy = false;
    if ((cqe->res == -EAGAIN || cqe->res == -EINTR) && !a->cancelled)
        return; /* a non-blocking pipe was full: the next flush tries again */
    if (cqe->res <= 0 || a->cancelled) {
        /* Nothing more of this buffer is tried: its lines are lost. */
        uint64_t lost = count_lines(b->data + b->off, b->len - b->off);
        a->dropped += lost;
        if (!a->failing && !a->cancelled && cqe->res <= 0)
            cz_log_warn("access log: write failed: %s; dropping lines until writes work again",
                        cqe->res < 0 ? strerror(-cqe->res) : "nothing written");
        a->failing = true;
        b->off = b->len;
    } else {
        if (a->failing) {
            cz_log_info("access log: writing again (%llu lines were dropped so far)",
                        (unsigned long long)a->dropped);
            a->failing = false;
        }
        b->off += (size_t)cqe->res;
    }
    if (b->off < b->len) {
        submit(a, b); /* a short write, or the next pipe-sized piece */
        return;
    }
    if (b != &a->buf[a->fill])
        b->len = b->off = 0;
    (void)w;
}

bool accesslog_busy(const struct worker *w)
{
    const struct accesslog_worker *a = w->alog;
    return a && !(done(&a->buf[0]) && done(&a->buf[1]) && a->buf[a->fill].len == 0);
}

void accesslog_cancel(struct worker *w)
{
    struct accesslog_worker *a = w->alog;
    if (!a)
        return;
    a->cancelled = true;
    for (int i = 0; i < 2; i++) {
        struct logbuf *b = &a->buf[i];
        if (b->busy) {
            struct io_uring_sqe *sqe = cz_ring_sqe(&w->ring);
            if (sqe) {
                io_uring_prep_cancel64(sqe, cz_ud(b, OP_LOG), 0);
                io_uring_sqe_set_data64(sqe, 0);
            }
        } else {
            a->dropped += count_lines(b->data + b->off, b->len - b->off);
            b->len = b->off = 0;
        }
    }
}

uint64_t accesslog_dropped(const struct worker *w)
{
    return w->alog ? w->alog->dropped : 0;
}
