/* The static-file responder: maps a request to a file beneath the docroot
 * and answers it with the HTTP file semantics of fs/httpfile.c (validators,
 * conditionals, ranges).  Path safety is fs/path.c's (decode once, dot
 * segments, openat2 RESOLVE_BENEATH), metadata and small hot bodies are
 * fs/filecache.c's; how bodies leave is output.c's.  This file decides
 * statuses, builds heads through response.c and queues bodies.
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
#include "http/http.h"
#include "http/static.h"

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

/* A small complete status page that keeps the connection. */
static void simple_response(struct conn *c, const struct cz_request *req, int status,
                            const struct head_spec *more)
{
    if (response_text(c, status, req->head, c->close_after_send, more) < 0)
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
    /* "/" + rel encoded (3 bytes a byte at most) + "/" + "?" + query */
    size_t cap = 2 + 3 * rl + 1 + req->query.len;
    char *loc = catzilla_response_alloc(cap);
    if (!loc) {
        conn_close(c);
        return;
    }
    size_t n = 0;
    loc[n++] = '/';
    for (size_t i = 0; i < rl; i++) {
        unsigned char ch = (unsigned char)rel[i];
        if (location_safe(ch)) {
            loc[n++] = (char)ch;
        } else {
            loc[n++] = '%';
            loc[n++] = "0123456789ABCDEF"[ch >> 4];
            loc[n++] = "0123456789ABCDEF"[ch & 15];
        }
    }
    if (rl > 0) /* never "//": that would name a host */
        loc[n++] = '/';
    if (req->query.len) {
        /* The query is the client's own, already valid in a request line. */
        loc[n++] = '?';
        memcpy(loc + n, req->query.ptr, req->query.len);
        n += req->query.len;
    }
    struct head_spec more = {.location = loc, .location_len = n};
    simple_response(c, req, 301, &more);
    catzilla_response_free(loc);
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

/* Queue len bytes of the file from off: from the cache's registered copy, or
 * zero-copy from the page cache through the connection's one descriptor. */
static int queue_body(struct conn *c, struct cz_cache_entry *e, struct out_file *f, uint64_t off,
                      uint64_t len)
{
    if (e->data)
        return output_append_cached(c, e, off, (uint32_t)len);
    return output_append_file(c, f, off, len);
}

/* The connection's descriptor for the file e describes: one it already has
 * open (pipelined ranges of one file share it), or a fresh one checked
 * against e.  -EAGAIN: the file changed since e was made. */
static int open_body(struct conn *c, const struct cz_cache_entry *e, const char *rel,
                     struct out_file **out)
{
    struct out_file *f = output_file_find(c, &e->id);
    if (!f) {
        int fd = cz_path_open_beneath(c->w->srv->root_fd, rel, O_RDONLY);
        if (fd < 0)
            return fd;
        if (!cz_file_id_matches(fd, &e->id)) {
            close(fd);
            return -EAGAIN;
        }
        f = output_file_adopt(c, fd, &e->id);
        if (!f)
            return -ENOMEM;
    }
    *out = f;
    return 0;
}

/* The multipart body: a part header and the bytes for each range, then the
 * closing delimiter.  Part headers are as long as the MIME type makes them. */
static int queue_multipart(struct conn *c, const struct file_reply *fr,
                           struct cz_cache_entry *e, struct out_file *f)
{
    int rc = 0;
    for (unsigned i = 0; rc == 0 && i < fr->nranges; i++) {
        const struct cz_range *r = &fr->ranges[i];
        size_t n = cz_multipart_part_header(NULL, 0, fr->boundary, e->mime, r->start, r->len,
                                            e->size);
        char *tmp = catzilla_response_alloc(n + 1);
        if (!tmp)
            return -ENOMEM;
        cz_multipart_part_header(tmp, n + 1, fr->boundary, e->mime, r->start, r->len, e->size);
        rc = output_append(c, tmp, n);
        catzilla_response_free(tmp);
        if (rc == 0)
            rc = queue_body(c, e, f, r->start, r->len);
    }
    if (rc == 0) {
        char tail[CZ_MULTIPART_BOUNDARY_MAX + 16];
        size_t n = cz_multipart_trailer(tail, sizeof(tail), fr->boundary);
        rc = n < sizeof(tail) ? output_append(c, tail, n) : -ENOBUFS;
    }
    return rc;
}

static int serve_file(struct conn *c, const struct cz_request *req, struct cz_cache_entry *e,
                      const char *rel)
{
    struct worker *w = c->w;
    const struct cz_config *cfg = &w->srv->cfg;
    struct file_reply fr;
    evaluate(w, req, e, &fr);
    bool body = !req->head && (fr.status == 200 || fr.status == 206);

    struct out_file *f = NULL;
    if (body && !e->data && e->size > 0) {
        /* Not cached: the descriptor must be the file the headers describe. */
        int rc = open_body(c, e, rel, &f);
        if (rc < 0)
            return rc;
    }

    char cr[80] = "";
    char type[160];
    struct head_spec h = {
        .status = fr.status,
        .close = c->close_after_send,
        .etag = e->etag,
        .last_modified = e->last_modified,
        .cache_control = cfg->cache_control && *cfg->cache_control ? cfg->cache_control : NULL,
        .content_length = -1,
    };
    int rc = 0;
    switch (fr.status) {
    case 304:
        break;
    case 412:
    case 416:
        if (fr.status == 416) {
            cz_http_content_range(cr, sizeof(cr), NULL, e->size);
            h.content_range = cr;
        }
        output_file_release(c, f);
        return response_text(c, fr.status, req->head, c->close_after_send, &h) < 0 ? -ENOMEM
                                                                                    : 0;
    case 206:
        h.accept_ranges = true;
        if (fr.nranges == 1) {
            cz_http_content_range(cr, sizeof(cr), &fr.ranges[0], e->size);
            h.content_range = cr;
            h.content_type = e->mime;
            h.content_length = (int64_t)fr.ranges[0].len;
        } else {
            snprintf(type, sizeof(type), "multipart/byteranges; boundary=%s", fr.boundary);
            h.content_type = type;
            h.content_length =
                (int64_t)cz_multipart_length(fr.boundary, e->mime, fr.ranges, fr.nranges, e->size);
        }
        break;
    default:
        h.accept_ranges = true;
        h.content_type = e->mime;
        h.content_length = (int64_t)e->size;
        break;
    }
    rc = response_head(c, &h);
    if (rc == 0 && body) {
        if (fr.status == 200)
            rc = queue_body(c, e, f, 0, e->size);
        else if (fr.nranges == 1)
            rc = queue_body(c, e, f, fr.ranges[0].start, fr.ranges[0].len);
        else
            rc = queue_multipart(c, &fr, e, f);
    }
    output_file_release(c, f);
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
        struct head_spec more = {.allow = "GET, HEAD"};
        simple_response(c, req, 405, &more);
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
        int rc = cz_filecache_get(w->fcache, rel, rl, &e);
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
            /* The file changed between cache and open: check it again. */
            cz_filecache_invalidate(e);
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
