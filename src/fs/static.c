/* Static files: maps a request to a file beneath the docroot and answers it
 * with the HTTP file semantics of httpfile.c (validators, conditionals,
 * ranges), taking bodies from the file cache or splicing them from the page
 * cache.  Path safety is path.c's (decode once, dot segments, openat2
 * RESOLVE_BENEATH); this file decides statuses and queues the bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catzilla/memory.h"
#include "core/log.h"
#include "fs/filecache.h"
#include "fs/httpfile.h"
#include "fs/mime.h"
#include "fs/path.h"
#include "fs/static.h"
#include "http/http.h"

#define MAX_RANGES 16
#define REL_MAX 4096

static const char fallback_page[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>Catzilla</title></head>"
    "<body><h1>Catzilla</h1><p>A thread-per-core io_uring HTTP/1.1 server.</p><ul>"
    "<li><a href=\"/_catzilla/health\">/_catzilla/health</a></li>"
    "<li><a href=\"/_catzilla/stats\">/_catzilla/stats</a></li>"
    "<li><a href=\"/plaintext\">/plaintext</a></li><li><a href=\"/json\">/json</a></li>"
    "</ul></body></html>\n";

/* The bundled docroot: next to the binary in a build tree (build/catzilla ->
 * public/, build/<variant>/catzilla -> public/) or at the install path. */
static int find_default_docroot(char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        static const char *const rel[] = {"/../public", "/../../public", "/public",
                                          "/../share/catzilla/public"};
        for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
            snprintf(out, cap, "%s%s", exe, rel[i]);
            struct stat st;
            if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
                return 0;
        }
    }
    static const char *const abs_paths[] = {"/usr/share/catzilla/public",
                                            "/usr/local/share/catzilla/public"};
    for (size_t i = 0; i < sizeof(abs_paths) / sizeof(abs_paths[0]); i++) {
        struct stat st;
        if (stat(abs_paths[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            snprintf(out, cap, "%s", abs_paths[i]);
            return 0;
        }
    }
    return -ENOENT;
}

int cz_static_global_init(struct cz_server *srv, char *err, size_t errlen)
{
    const char *root = srv->cfg.root;
    char found[PATH_MAX];
    if (!root || !*root) {
        if (find_default_docroot(found, sizeof(found)) < 0) {
            cz_log_warn("no --root given and the bundled docroot (public/) was not found; "
                        "serving a built-in page at /");
            return 0;
        }
        root = found;
    }
    int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "--root %s: %s", root,
                 e == ENOTDIR ? "not a directory" : strerror(e));
        return -e;
    }
    char *real = realpath(root, NULL);
    srv->root = real ? real : strdup(root);
    srv->root_fd = fd;
    srv->mime = cz_mime_load(srv->cfg.mime_types, srv->cfg.default_type);
    if (!srv->mime && errno != ENOMEM) {
        cz_log_warn("--mime-types %s: %s; using the built-in table", srv->cfg.mime_types,
                    strerror(errno));
        srv->mime = cz_mime_load(NULL, srv->cfg.default_type);
    }
    if (!srv->mime || !srv->root) {
        snprintf(err, errlen, "static files: out of memory");
        return -ENOMEM;
    }
    cz_log_info("serving files from %s", srv->root);
    return 0;
}

void cz_static_global_free(struct cz_server *srv)
{
    if (srv->root_fd >= 0)
        close(srv->root_fd);
    srv->root_fd = -1;
    free(srv->root);
    srv->root = NULL;
    cz_mime_free(srv->mime);
    srv->mime = NULL;
}

/* snprintf at buf + *n that never runs past cap: on truncation *n becomes
 * cap, which callers treat as "did not fit".  (A bare n += snprintf() goes
 * past the buffer on truncation and the next call writes out of bounds.) */
static void appendf(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
    if (*n >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + *n, cap - *n, fmt, ap);
    va_end(ap);
    *n = (m < 0 || (size_t)m >= cap - *n) ? cap : *n + (size_t)m;
}

/* The part of a status page after its extra headers. */
static int simple_response_tail(struct conn *c, const struct cz_request *req, int status)
{
    char buf[256];
    size_t n = 0;
    const char *reason = http_reason(status);
    if (status != 304)
        appendf(buf, sizeof(buf), &n,
                "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Length: %zu\r\n\r\n%s%s",
                strlen(reason) + 1, req->head ? "" : reason, req->head ? "" : "\n");
    else
        appendf(buf, sizeof(buf), &n, "\r\n");
    return n < sizeof(buf) ? out_append(c, buf, n) : -ENOBUFS;
}

/* A small complete response (status page) that keeps the connection.  The
 * extra header lines are queued as they are, so their length is not limited
 * by a stack buffer (out_append joins the pieces into one segment). */
static void simple_response(struct conn *c, const struct cz_request *req, int status,
                            const char *extra_headers)
{
    char buf[512];
    size_t n = response_head_start(buf, sizeof(buf), c->w, status, c->close_after_send);
    int rc = out_append(c, buf, n);
    if (rc == 0 && extra_headers)
        rc = out_append(c, extra_headers, strlen(extra_headers));
    if (rc == 0)
        rc = simple_response_tail(c, req, status);
    if (rc < 0)
        conn_close(c);
}

/* Bytes a Location path may carry as they are (RFC 3986 pchar and '/');
 * everything else, '%' '?' '#' included, is percent-encoded. */
static bool location_safe(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("-._~!$&'()*+,;=:@/", ch));
}

/* 301 to the directory with its slash.  The Location is built from the
 * sanitised path, not echoed from the target: "//host" (dot segments and
 * empty segments collapse to the same directory) would otherwise be a
 * protocol-relative URL, i.e. an open redirect to another host, and a target
 * padded with "./" segments would be arbitrarily long. */
static void redirect_to_dir(struct conn *c, const struct cz_request *req, const char *rel,
                            size_t rl)
{
    char buf[512];
    size_t n = response_head_start(buf, sizeof(buf), c->w, 301, c->close_after_send);
    int rc = out_append(c, buf, n);
    if (rc == 0)
        rc = out_append(c, "Location: /", 11);
    n = 0;
    for (size_t i = 0; rc == 0 && i <= rl; i++) {
        /* Flush the chunk before it could overflow, and at the end. */
        if (i == rl || n + 3 > sizeof(buf)) {
            rc = out_append(c, buf, n);
            n = 0;
        }
        if (i == rl)
            break;
        unsigned char ch = (unsigned char)rel[i];
        if (location_safe(ch)) {
            buf[n++] = (char)ch;
        } else {
            buf[n++] = '%';
            buf[n++] = "0123456789ABCDEF"[ch >> 4];
            buf[n++] = "0123456789ABCDEF"[ch & 15];
        }
    }
    if (rc == 0 && rl > 0) /* never "//": that would name a host */
        rc = out_append(c, "/", 1);
    if (rc == 0 && req->query.len) {
        /* The query is the client's own, already valid in a request line. */
        rc = out_append(c, "?", 1);
        if (rc == 0)
            rc = out_append(c, req->query.ptr, req->query.len);
    }
    if (rc == 0)
        rc = out_append(c, "\r\n", 2);
    if (rc == 0)
        rc = simple_response_tail(c, req, 301);
    if (rc < 0)
        conn_close(c);
}

static int status_for_error(int err)
{
    switch (err) {
    case -EINVAL:
    case -EPERM:
        return 400;
    case -ENOENT:
    case -ENOTDIR:
    case -EXDEV:
    case -ELOOP:
        return 404;
    case -EACCES:
        return 403;
    case -ENAMETOOLONG:
        return 414;
    case -ENOMEM:
    case -EMFILE:
    case -ENFILE:
        return 503;
    default:
        return 500;
    }
}

struct file_reply {
    int status;
    struct cz_range ranges[MAX_RANGES];
    unsigned nranges;
    char boundary[CZ_MULTIPART_BOUNDARY_MAX];
};

static void hdr_val(const struct cz_request *req, const char *name, const char **p, size_t *n)
{
    struct cz_str s = cz_request_header(req, name);
    *p = s.ptr;
    *n = s.len;
}

/* Decide status and ranges from the request's conditional and Range headers. */
static void evaluate(struct worker *w, const struct cz_request *req,
                     const struct cz_cache_entry *e, struct file_reply *fr)
{
    struct cz_cond_input in = {0};
    hdr_val(req, "If-Match", &in.if_match, &in.if_match_len);
    hdr_val(req, "If-Unmodified-Since", &in.if_unmodified_since, &in.if_unmodified_since_len);
    hdr_val(req, "If-None-Match", &in.if_none_match, &in.if_none_match_len);
    hdr_val(req, "If-Modified-Since", &in.if_modified_since, &in.if_modified_since_len);
    in.get_or_head = true;
    in.etag = e->etag;
    in.etag_len = e->etag_len;
    in.mtime = e->mtime;
    switch (cz_http_conditional(&in)) {
    case CZ_COND_NOT_MODIFIED:
        fr->status = 304;
        return;
    case CZ_COND_PRECONDITION_FAILED:
        fr->status = 412;
        return;
    default:
        break;
    }
    fr->status = 200;
    struct cz_str range = cz_request_header(req, "Range");
    if (!range.ptr || req->method != CZ_METHOD_GET)
        return;
    struct cz_str if_range = cz_request_header(req, "If-Range");
    if (if_range.ptr &&
        !cz_http_if_range_ok(if_range.ptr, if_range.len, e->etag, e->etag_len, e->mtime))
        return;
    switch (cz_range_parse(range.ptr, range.len, e->size, fr->ranges, MAX_RANGES, &fr->nranges)) {
    case CZ_RANGE_OK:
        fr->status = 206;
        if (fr->nranges > 1) {
            static _Thread_local uint64_t counter;
            cz_multipart_boundary(((uint64_t)w->id << 56) ^ (++counter << 20) ^ w->now_ms,
                                  fr->boundary);
        }
        break;
    case CZ_RANGE_UNSATISFIABLE:
        fr->status = 416;
        break;
    default:
        break;
    }
}

static int queue_body(struct conn *c, struct cz_cache_entry *e, int fd, uint64_t off,
                      uint64_t len)
{
    if (len == 0)
        return 0;
    if (e->data) {
        e->refs++;
        int rc = out_append_cached(c, e, e->data + off, (uint32_t)len);
        if (rc < 0)
            e->refs--;
        return rc;
    }
    int own = dup(fd);
    if (own < 0)
        return -errno;
    int rc = out_append_file(c, own, off, len);
    if (rc < 0)
        close(own);
    return rc;
}

static int serve_file(struct conn *c, const struct cz_request *req, struct cz_cache_entry *e,
                      const char *rel)
{
    struct worker *w = c->w;
    const struct cz_config *cfg = &w->srv->cfg;
    int fd = -1;
    if (!e->data && e->size > 0 && !req->head) {
        /* Not cached: the fd we splice from must be the file the headers describe. */
        fd = cz_path_open_beneath(w->srv->root_fd, rel, O_RDONLY);
        if (fd < 0)
            return fd;
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size ||
            (uint64_t)st.st_ino != e->ino) {
            close(fd);
            return -EAGAIN; /* changed under us: the caller retries with fresh metadata */
        }
    }

    struct file_reply fr;
    evaluate(w, req, e, &fr);

    char head[1024];
    size_t n = response_head_start(head, sizeof(head), w, fr.status, c->close_after_send);
    appendf(head, sizeof(head), &n, "ETag: %s\r\nLast-Modified: %s\r\n", e->etag,
            e->last_modified);
    int rc = n < sizeof(head) ? out_append(c, head, n) : -ENOBUFS;
    /* The operator's Cache-Control value has no length limit: queued as it is. */
    if (rc == 0 && cfg->cache_control && *cfg->cache_control) {
        rc = out_append(c, "Cache-Control: ", 15);
        if (rc == 0)
            rc = out_append(c, cfg->cache_control, strlen(cfg->cache_control));
        if (rc == 0)
            rc = out_append(c, "\r\n", 2);
    }
    n = 0;
    uint64_t body_len = 0;
    switch (fr.status) {
    case 304:
        break;
    case 412:
    case 416: {
        const char *reason = http_reason(fr.status);
        char cr[80] = "";
        if (fr.status == 416)
            cz_http_content_range(cr, sizeof(cr), NULL, e->size);
        appendf(head, sizeof(head), &n,
                "%s%s%sContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Length: %zu\r\n\r\n%s%s",
                *cr ? "Content-Range: " : "", cr, *cr ? "\r\n" : "", strlen(reason) + 1,
                req->head ? "" : reason, req->head ? "" : "\n");
        fr.nranges = 0;
        break;
    }
    case 206:
        if (fr.nranges == 1) {
            char cr[80];
            cz_http_content_range(cr, sizeof(cr), &fr.ranges[0], e->size);
            body_len = fr.ranges[0].len;
            appendf(head, sizeof(head), &n,
                    "Accept-Ranges: bytes\r\nContent-Type: %s\r\n"
                    "Content-Range: %s\r\nContent-Length: %llu\r\n",
                    e->mime, cr, (unsigned long long)body_len);
        } else {
            body_len = cz_multipart_length(fr.boundary, e->mime, fr.ranges, fr.nranges, e->size);
            appendf(head, sizeof(head), &n,
                    "Accept-Ranges: bytes\r\n"
                    "Content-Type: multipart/byteranges; boundary=%s\r\n"
                    "Content-Length: %llu\r\n",
                    fr.boundary, (unsigned long long)body_len);
        }
        break;
    default:
        body_len = e->size;
        appendf(head, sizeof(head), &n,
                "Accept-Ranges: bytes\r\nContent-Type: %s\r\nContent-Length: %llu\r\n",
                e->mime, (unsigned long long)body_len);
        break;
    }
    if (fr.status != 412 && fr.status != 416)
        appendf(head, sizeof(head), &n, "\r\n");
    if (rc == 0)
        rc = n < sizeof(head) ? out_append(c, head, n) : -ENOBUFS;
    if (rc == 0 && !req->head && (fr.status == 200 || fr.status == 206)) {
        if (fr.status == 200) {
            rc = queue_body(c, e, fd, 0, e->size);
        } else if (fr.nranges == 1) {
            rc = queue_body(c, e, fd, fr.ranges[0].start, fr.ranges[0].len);
        } else {
            char part[512];
            for (unsigned i = 0; rc == 0 && i < fr.nranges; i++) {
                size_t pn = cz_multipart_part_header(part, sizeof(part), fr.boundary, e->mime,
                                                     fr.ranges[i].start, fr.ranges[i].len,
                                                     e->size);
                rc = out_append(c, part, pn);
                if (rc == 0)
                    rc = queue_body(c, e, fd, fr.ranges[i].start, fr.ranges[i].len);
            }
            if (rc == 0) {
                size_t tn = cz_multipart_trailer(part, sizeof(part), fr.boundary);
                rc = out_append(c, part, tn);
            }
        }
    }
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        conn_close(c); /* the response is half queued: the only safe answer is to close */
    return 0;
}

int cz_static_serve(struct conn *c, struct cz_request *req)
{
    struct worker *w = c->w;
    struct cz_server *srv = w->srv;
    if (srv->root_fd < 0) {
        if (req->path.len == 1 && (req->method == CZ_METHOD_GET || req->method == CZ_METHOD_HEAD)) {
            struct cz_response res;
            response_init(&res, c, 200);
            cz_response_send(&res, 200, "text/html; charset=utf-8", fallback_page,
                             sizeof(fallback_page) - 1);
            if (response_finish(&res, req) < 0)
                conn_close(c);
            response_release(&res);
            return 0;
        }
        return -ENOENT;
    }

    char rel[REL_MAX + 16];
    size_t rl = 0;
    int flags = cz_path_sanitize(req->path.ptr, req->path.len, rel, REL_MAX, 
                                 srv->cfg.serve_dotfiles ? CZ_PATH_ALLOW_DOT : 0, &rl);
    if (flags < 0) {
        int status = status_for_error(flags);
        if (status == 400)
            response_error(c, 400, req->head);
        else
            simple_response(c, req, status, NULL);
        return 0;
    }
    if (req->method != CZ_METHOD_GET && req->method != CZ_METHOD_HEAD) {
        simple_response(c, req, 405, "Allow: GET, HEAD\r\n");
        return 0;
    }
    bool dir_req = (flags & CZ_PATH_TRAILING_SLASH) != 0;
    if (dir_req) {
        if (rl > 0 && rel[rl - 1] != '/')
            rel[rl++] = '/';
        memcpy(rel + rl, "index.html", sizeof("index.html"));
        rl += sizeof("index.html") - 1;
    }

    for (int attempt = 0; attempt < 2; attempt++) {
        struct cz_cache_entry *e;
        int rc = cz_filecache_get(w, rel, rl, &e);
        if (rc < 0) {
            if (rc != -ENOENT && rc != -ENOTDIR && rc != -EXDEV && rc != -ELOOP &&
                rc != -EACCES)
                cz_log_warn("open %s: %s", rel, strerror(-rc));
            simple_response(c, req, status_for_error(rc), NULL);
            return 0;
        }
        if (e->kind == CZ_CACHE_DIR) {
            cz_filecache_release(e);
            if (dir_req) {
                simple_response(c, req, 404, NULL);
                return 0;
            }
            /* A directory without its slash: redirect so relative links work. */
            redirect_to_dir(c, req, rel, rl);
            return 0;
        }
        rc = serve_file(c, req, e, rel);
        if (rc == -EAGAIN && attempt == 0) {
            /* The file changed between cache and open: force revalidation. */
            e->checked_ms = w->now_ms > 2000 ? w->now_ms - 2000 : 0;
            cz_filecache_release(e);
            continue;
        }
        cz_filecache_release(e);
        if (rc < 0)
            simple_response(c, req, status_for_error(rc), NULL);
        return 0;
    }
    simple_response(c, req, 503, NULL);
    return 0;
}
