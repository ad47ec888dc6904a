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
#include <linux/openat2.h>
#include <stdalign.h>
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

/* The bundled docroot: next to the binary in a build tree (build/catzilla ->
 * public/, build/<variant>/catzilla -> public/) or at the install path. */
int cz_static_default_root(char *out, size_t cap)
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
    /* The MIME table serves the docroot and cz_response_file alike. */
    srv->mime = cz_mime_load(srv->cfg.mime_types, srv->cfg.default_type);
    if (!srv->mime && errno != ENOMEM) {
        cz_log_warn("--mime-types %s: %s; using the built-in table", srv->cfg.mime_types,
                    strerror(errno));
        srv->mime = cz_mime_load(NULL, srv->cfg.default_type);
    }
    if (!srv->mime) {
        snprintf(err, errlen, "static files: out of memory");
        return -ENOMEM;
    }
    /* No root, no file tree: the library never guesses a directory (the
     * catzilla binary resolves its bundled one before it gets here). */
    const char *root = srv->cfg.root;
    if (!root || !*root)
        return 0;
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
    if (!srv->root) {
        snprintf(err, errlen, "static files: out of memory");
        return -ENOMEM;
    }
    cz_log_info("serving files from %s", srv->root);
    return 0;
}

/* Tables replaced by a reload.  A file job may still hold a cache entry
 * that names a type in one, so they live as long as the server. */
struct mime_retired {
    struct mime_retired *next;
    struct cz_mime *mime;
};

int cz_static_reload(struct cz_server *srv, char *msg, size_t cap)
{
    struct mime_retired *r = malloc(sizeof(*r));
    struct cz_mime *m = r ? cz_mime_load(srv->cfg.mime_types, srv->cfg.default_type) : NULL;
    if (!m) {
        int e = r ? errno : ENOMEM;
        free(r);
        snprintf(msg, cap, "MIME table %s not reloaded (%s)", srv->cfg.mime_types, strerror(e));
        return -e;
    }
    r->mime = atomic_exchange(&srv->mime_next, m);
    if (r->mime) {
        r->next = srv->mime_old;
        srv->mime_old = r;
    } else {
        free(r);
    }
    snprintf(msg, cap, "MIME table reloaded from %s (%zu types), file caches dropped",
             srv->cfg.mime_types, cz_mime_count(m));
    return 0;
}

void cz_static_worker_reload(struct worker *w)
{
    struct cz_mime *m = atomic_load(&w->srv->mime_next);
    if (w->fcache && m)
        cz_filecache_clear(w->fcache, m);
}

void cz_static_global_free(struct cz_server *srv)
{
    while (srv->mime_old) {
        struct mime_retired *r = srv->mime_old;
        srv->mime_old = r->next;
        cz_mime_free(r->mime);
        free(r);
    }
    cz_mime_free(atomic_exchange(&srv->mime_next, NULL));
    if (srv->root_fd >= 0)
        close(srv->root_fd);
    srv->root_fd = -1;
    free(srv->root);
    srv->root = NULL;
    cz_mime_free(srv->mime);
    srv->mime = NULL;
}

/* What answering a file request needs from the request.  It points into the
 * request while answering at once, and into the job's own copy when the
 * answer waits for the ring (the request's scratch serves the next one). */
enum file_hdr {
    FH_IF_MATCH,
    FH_IF_UNMODIFIED_SINCE,
    FH_IF_NONE_MATCH,
    FH_IF_MODIFIED_SINCE,
    FH_RANGE,
    FH_IF_RANGE,
    FH_MAX
};
static const char *const file_hdr_names[FH_MAX] = {
    "If-Match", "If-Unmodified-Since", "If-None-Match", "If-Modified-Since", "Range", "If-Range",
};

struct file_req {
    bool head, close, dir_req, get;
    bool by_path;  /* cz_response_file: no directory redirects */
    bool absolute; /* rel is an absolute path (cz_response_file), not beneath the docroot */
    bool own_type; /* extra has a Content-Type: do not add the file's */
    struct cz_str hdr[FH_MAX];
    struct cz_str query;
    struct cz_str extra; /* the handler's header lines (cz_response_file) */
    const char *rel;     /* NUL-terminated, relative to the docroot */
    size_t rl;
};

/* A small complete status page. */
static void simple_response(struct conn *c, const struct file_req *fq, int status,
                            const struct head_spec *more)
{
    response_text(c, status, fq->head, fq->close, more);
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
static void redirect_to_dir(struct conn *c, const struct file_req *fq)
{
    /* "/" + rel encoded (3 bytes a byte at most) + "/" + "?" + query */
    size_t cap = 3 + 3 * fq->rl + fq->query.len;
    char *loc = catzilla_response_alloc(cap);
    if (!loc) {
        conn_close(c);
        return;
    }
    size_t n = 0;
    loc[n++] = '/';
    for (size_t i = 0; i < fq->rl; i++) {
        unsigned char ch = (unsigned char)fq->rel[i];
        if (location_safe(ch)) {
            loc[n++] = (char)ch;
        } else {
            loc[n++] = '%';
            loc[n++] = "0123456789ABCDEF"[ch >> 4];
            loc[n++] = "0123456789ABCDEF"[ch & 15];
        }
    }
    if (fq->rl > 0) /* never "//": that would name a host */
        loc[n++] = '/';
    if (fq->query.len) {
        /* The query is the client's own, already valid in a request line. */
        loc[n++] = '?';
        memcpy(loc + n, fq->query.ptr, fq->query.len);
        n += fq->query.len;
    }
    struct head_spec more = {.location = loc, .location_len = n};
    simple_response(c, fq, 301, &more);
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

/* Decide status and ranges from the request's conditional and Range headers. */
static void evaluate(struct worker *w, const struct file_req *fq, const struct cz_cache_entry *e,
                     struct file_reply *fr)
{
    const struct cz_str *h = fq->hdr;
    struct cz_cond_input in = {
        .if_match = h[FH_IF_MATCH].ptr,
        .if_match_len = h[FH_IF_MATCH].len,
        .if_unmodified_since = h[FH_IF_UNMODIFIED_SINCE].ptr,
        .if_unmodified_since_len = h[FH_IF_UNMODIFIED_SINCE].len,
        .if_none_match = h[FH_IF_NONE_MATCH].ptr,
        .if_none_match_len = h[FH_IF_NONE_MATCH].len,
        .if_modified_since = h[FH_IF_MODIFIED_SINCE].ptr,
        .if_modified_since_len = h[FH_IF_MODIFIED_SINCE].len,
        .get_or_head = true,
        .etag = e->etag,
        .etag_len = e->etag_len,
        .mtime = e->mtime,
    };
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
    const struct cz_str *range = &h[FH_RANGE], *if_range = &h[FH_IF_RANGE];
    if (!range->ptr || !fq->get)
        return;
    if (if_range->ptr &&
        !cz_http_if_range_ok(if_range->ptr, if_range->len, e->etag, e->etag_len, e->mtime))
        return;
    switch (cz_range_parse(range->ptr, range->len, e->size, fr->ranges, MAX_RANGES, &fr->nranges)) {
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

/* The multipart body: a part header and the bytes for each range, then the
 * closing delimiter.  Part headers are as long as the MIME type makes them. */
static int queue_multipart(struct conn *c, const struct file_reply *fr, struct cz_cache_entry *e,
                           struct out_file *f)
{
    int rc = 0;
    for (unsigned i = 0; rc == 0 && i < fr->nranges; i++) {
        const struct cz_range *r = &fr->ranges[i];
        size_t n =
            cz_multipart_part_header(NULL, 0, fr->boundary, e->mime, r->start, r->len, e->size);
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

/* Answer with the file e describes.  *fd is a descriptor of exactly that
 * version opened by a job (-1 if none): it is adopted when the body needs it
 * and left for the caller to close otherwise.  Returns 0 (answered, or the
 * connection closed), or -EWOULDBLOCK before queueing anything when the
 * body must leave from the file and no descriptor is at hand. */
static int serve_file(struct conn *c, const struct file_req *fq, struct cz_cache_entry *e, int *fd)
{
    struct worker *w = c->w;
    const struct cz_config *cfg = &w->srv->cfg;
    struct file_reply fr;
    evaluate(w, fq, e, &fr);
    bool body = !fq->head && (fr.status == 200 || fr.status == 206);

    struct out_file *f = NULL;
    if (body && !e->data && e->size > 0) {
        /* Pipelined requests for one file share one descriptor. */
        f = output_file_find(c, &e->id);
        if (!f && *fd < 0)
            return -EWOULDBLOCK;
        if (!f) {
            f = output_file_adopt(c, *fd, &e->id);
            *fd = -1;
            if (!f) {
                conn_close(c);
                return 0;
            }
        }
    }

    char cr[80] = "";
    char type[160];
    struct head_spec h = {
        .status = fr.status,
        .close = fq->close,
        .etag = e->etag,
        .last_modified = e->last_modified,
        .cache_control = cfg->cache_control && *cfg->cache_control ? cfg->cache_control : NULL,
        .content_length = -1,
        .extra = fq->extra.ptr,
        .extra_len = fq->extra.len,
    };
    const char *mime = fq->own_type ? NULL : e->mime;
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
        simple_response(c, fq, fr.status, &h);
        return 0;
    case 206:
        h.accept_ranges = true;
        if (fr.nranges == 1) {
            cz_http_content_range(cr, sizeof(cr), &fr.ranges[0], e->size);
            h.content_range = cr;
            h.content_type = mime;
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
        h.content_type = mime;
        h.content_length = (int64_t)e->size;
        break;
    }
    int rc = response_head(c, &h);
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

/* Answer from an entry: a directory redirects or is not found, a file is
 * served.  -EWOULDBLOCK as serve_file. */
static int answer_entry(struct conn *c, const struct file_req *fq, struct cz_cache_entry *e,
                        int *fd)
{
    if (e->kind == CZ_CACHE_DIR) {
        if (fq->dir_req || fq->by_path)
            simple_response(c, fq, 404, NULL); /* ".../index.html" is a directory */
        else
            redirect_to_dir(c, fq); /* without its slash: relative links need it */
        return 0;
    }
    return serve_file(c, fq, e, fd);
}

static void answer_error(struct conn *c, const struct file_req *fq, int err)
{
    if (err != -ENOENT && err != -ENOTDIR && err != -EXDEV && err != -ELOOP && err != -EACCES)
        cz_log_warn("open %s: %s", fq->rel, strerror(-err));
    simple_response(c, fq, status_for_error(err), NULL);
}

/* ---------- jobs: opening, stat'ing and reading through the ring ---------- */

/* A cold or stale file is opened (IORING_OP_OPENAT2, RESOLVE_BENEATH),
 * stat'ed (IORING_OP_STATX of the open descriptor) and, if the cache keeps
 * its bytes, read (IORING_OP_READ) by the ring, never by the worker thread:
 * a slow disk delays this response only.  Its place in the connection's
 * output is held by a placeholder, so pipelined responses stay in order. */
enum job_stage { JOB_QUEUED, JOB_DELAY, JOB_OPEN, JOB_STATX, JOB_READ };

/* A connection runs one job at a time, in request order: a pipeline of
 * requests for a cold file opens it once (the next job finds the
 * descriptor the first one left with the connection), and one connection
 * never holds more than one descriptor in flight. */
struct file_job {
    alignas(16) struct conn *c;
    struct file_job *next; /* the connection's next job */
    struct outseg *seg;
    struct file_req fq;
    struct cz_cache_entry *e;
    char *data; /* cache buffer being read into */
    uint64_t got;
    int fd;
    uint8_t stage; /* enum job_stage */
    uint8_t tries; /* openat2 EAGAIN retries (a rename raced the lookup) */
    struct open_how how;
    struct statx stx;
    struct __kernel_timespec delay;
    char buf[]; /* rel, NUL, then the header copies and the query */
};

#if CZ_FAULT_INJECTION
/* CATZILLA_FAULT_SLOW_OPEN=<substring>: opens of matching paths wait 2 s
 * first, so a test can prove that one slow open delays nobody else. */
static bool fault_slow_open(const char *rel)
{
    const char *pat = getenv("CATZILLA_FAULT_SLOW_OPEN");
    return pat && *pat && strstr(rel, pat);
}
#endif

static void job_free(struct file_job *job)
{
    if (job->fd >= 0)
        close(job->fd);
    if (job->data)
        cz_filecache_data_done(job->c->w->fcache, job->e, job->data, false);
    cz_filecache_release(job->e);
    catzilla_task_free(job);
}

static int job_submit(struct file_job *job, enum job_stage stage)
{
    struct worker *w = job->c->w;
    struct io_uring_sqe *sqe = cz_ring_sqe(&w->ring);
    if (!sqe)
        return -EBUSY;
    job->stage = (uint8_t)stage;
    switch (stage) {
    case JOB_DELAY:
        job->delay.tv_sec = 2;
        job->delay.tv_nsec = 0;
        io_uring_prep_timeout(sqe, &job->delay, 0, 0);
        break;
    case JOB_OPEN:
        io_uring_prep_openat2(sqe, job->fq.absolute ? AT_FDCWD : w->srv->root_fd,
                              job->fq.rl ? job->fq.rel : ".", &job->how);
        break;
    case JOB_STATX:
        io_uring_prep_statx(sqe, job->fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &job->stx);
        break;
    case JOB_READ:
        io_uring_prep_read(sqe, job->fd, job->data + job->got, (unsigned)(job->e->size - job->got),
                           job->got);
        break;
    default:
        return -EINVAL;
    }
    io_uring_sqe_set_data64(sqe, cz_ud(job, OP_FS));
    return 0;
}

/* Fill the job's placeholder: err's status page, or the answer from job->e;
 * dropped if the connection closed. */
static void job_answer(struct file_job *job, int err)
{
    struct conn *c = job->c;
    output_defer_begin(c, job->seg);
    if (!conn_closing(c)) {
        if (err < 0)
            answer_error(c, &job->fq, err);
        else if (answer_entry(c, &job->fq, job->e, &job->fd) < 0)
            answer_error(c, &job->fq, -EIO); /* cannot happen: the job has a descriptor */
    }
    output_defer_end(c, job->seg);
}

/* The answer from the cache needs no I/O: a fresh entry whose body (if any)
 * is cached or already open on this connection. */
static bool answerable_now(struct conn *c, const struct file_req *fq,
                           const struct cz_cache_entry *e)
{
    if (e->kind != CZ_CACHE_FILE || e->data || e->size == 0 || fq->head)
        return true;
    struct out_file *f = output_file_find(c, &e->id);
    output_file_release(c, f);
    return f != NULL;
}

/* Run the connection's jobs from the oldest: answer each that needs no I/O,
 * start the first that does. */
static void jobs_run(struct conn *c)
{
    struct file_job *job;
    while ((job = c->file_jobs) && job->stage == JOB_QUEUED) {
        struct cz_cache_entry *e;
        int err = 0;
        if (!conn_closing(c) &&
            cz_filecache_lookup(c->w->fcache, job->fq.rel, job->fq.rl, &e) == 0) {
            if (!answerable_now(c, &job->fq, e))
                cz_filecache_release(e);
            else
                job->e = e;
        }
        if (!job->e && !conn_closing(c)) {
            enum job_stage first = JOB_OPEN;
#if CZ_FAULT_INJECTION
            if (fault_slow_open(job->fq.rel))
                first = JOB_DELAY;
#endif
            err = job_submit(job, first);
            if (err == 0)
                return;
            err = -ENOMEM;
        }
        job_answer(job, err);
        c->file_jobs = job->next;
        job_free(job);
    }
}

/* The running job is done: answer it and go on with the next. */
static void job_finish(struct file_job *job, int err)
{
    struct conn *c = job->c;
    job_answer(job, err);
    c->file_jobs = job->next;
    job_free(job);
    jobs_run(c);
}

void static_on_cqe(struct worker *w, void *ptr, struct io_uring_cqe *cqe)
{
    struct file_job *job = ptr;
    int res = cqe->res;
    int rc = 0;
    switch (job->stage) {
    case JOB_QUEUED:
        rc = -EINVAL; /* nothing was submitted for it */
        break;
    case JOB_DELAY:
        rc = job_submit(job, JOB_OPEN);
        break;
    case JOB_OPEN:
        if (res == -EAGAIN && job->tries++ < 8) {
            rc = job_submit(job, JOB_OPEN);
            break;
        }
        if (res < 0) {
            rc = res;
            break;
        }
        job->fd = res;
        rc = job_submit(job, JOB_STATX);
        break;
    case JOB_STATX:
        if (res < 0) {
            rc = res;
            break;
        }
        rc = cz_filecache_update(w->fcache, job->fq.rel, job->fq.rl, &job->stx, &job->e);
        if (rc < 0)
            break;
        job->data = cz_filecache_data_buffer(w->fcache, job->e);
        if (job->data) {
            rc = job_submit(job, JOB_READ);
            break;
        }
        job_finish(job, 0);
        return;
    case JOB_READ:
        if (res <= 0) {
            /* An error, or the file shrank: serve it from the descriptor. */
            cz_filecache_data_done(w->fcache, job->e, job->data, false);
            job->data = NULL;
            job_finish(job, 0);
            return;
        }
        job->got += (uint64_t)res;
        if (job->got < job->e->size) {
            rc = job_submit(job, JOB_READ);
            break;
        }
        cz_filecache_data_done(w->fcache, job->e, job->data, true);
        job->data = NULL;
        job_finish(job, 0);
        return;
    }
    if (rc < 0)
        job_finish(job, rc == -EBUSY ? -ENOMEM : rc);
}

/* Copy s into *p and point d at the copy. */
static void copy_str(char **p, struct cz_str *d, struct cz_str s)
{
    if (!s.ptr) {
        *d = (struct cz_str){NULL, 0};
        return;
    }
    memcpy(*p, s.ptr, s.len);
    *d = (struct cz_str){*p, s.len};
    *p += s.len;
}

static void start_job(struct conn *c, const struct file_req *fq)
{
    size_t need = fq->rl + 1 + fq->query.len + fq->extra.len;
    for (int i = 0; i < FH_MAX; i++)
        need += fq->hdr[i].len;
    struct file_job *job = catzilla_task_alloc(sizeof(*job) + need);
    if (!job) {
        simple_response(c, fq, 503, NULL);
        return;
    }
    memset(job, 0, sizeof(*job));
    job->c = c;
    job->fd = -1;
    char *p = job->buf;
    memcpy(p, fq->rel, fq->rl + 1);
    job->fq = *fq;
    job->fq.rel = p;
    p += fq->rl + 1;
    for (int i = 0; i < FH_MAX; i++)
        copy_str(&p, &job->fq.hdr[i], fq->hdr[i]);
    copy_str(&p, &job->fq.query, fq->query);
    copy_str(&p, &job->fq.extra, fq->extra);
    cz_path_open_how(&job->how, O_RDONLY | O_NONBLOCK);
    if (fq->absolute)
        job->how.resolve = RESOLVE_NO_MAGICLINKS; /* the application named it */
    job->seg = output_defer(c);
    if (!job->seg) {
        catzilla_task_free(job);
        simple_response(c, fq, 503, NULL);
        return;
    }
    struct file_job **pp = &c->file_jobs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = job;
    jobs_run(c);
}

static int serve_request(struct conn *c, const struct cz_request *req, struct file_req *fq);

int cz_static_serve(struct conn *c, struct cz_request *req)
{
    struct worker *w = c->w;
    struct cz_server *srv = w->srv;
    if (srv->root_fd < 0)
        return -ENOENT;

    char rel[REL_MAX + 16];
    size_t rl = 0;
    struct file_req fq = {
        .head = req->head,
        .close = c->close_after_send,
        .get = req->method == CZ_METHOD_GET,
        .query = req->query,
        .rel = rel,
    };
    int flags = cz_path_sanitize(req->path.ptr, req->path.len, rel, REL_MAX,
                                 srv->cfg.serve_dotfiles ? CZ_PATH_ALLOW_DOT : 0, &rl);
    if (flags < 0) {
        int status = status_for_error(flags);
        if (status == 400)
            response_error(c, 400, req->head);
        else
            simple_response(c, &fq, status, NULL);
        return 0;
    }
    if (req->method != CZ_METHOD_GET && req->method != CZ_METHOD_HEAD) {
        struct head_spec more = {.allow = "GET, HEAD"};
        simple_response(c, &fq, 405, &more);
        return 0;
    }
    fq.dir_req = (flags & CZ_PATH_TRAILING_SLASH) != 0;
    if (fq.dir_req) {
        if (rl > 0 && rel[rl - 1] != '/')
            rel[rl++] = '/';
        memcpy(rel + rl, "index.html", sizeof("index.html"));
        rl += sizeof("index.html") - 1;
    }
    fq.rl = rl;
    return serve_request(c, req, &fq);
}

/* Answer fq: from a fresh cache entry at once, else through a file job. */
static int serve_request(struct conn *c, const struct cz_request *req, struct file_req *fq)
{
    struct worker *w = c->w;
    for (int i = 0; i < FH_MAX; i++)
        fq->hdr[i] = cz_request_header(req, file_hdr_names[i]);

    /* A fresh entry answers at once, with no system call (behind any
     * placeholder of this connection: the queue keeps the order); anything
     * else goes through the ring. */
    struct cz_cache_entry *e;
    if (cz_filecache_lookup(w->fcache, fq->rel, fq->rl, &e) == 0) {
        int rc = -EWOULDBLOCK;
        int none = -1;
        if (answerable_now(c, fq, e))
            rc = answer_entry(c, fq, e, &none);
        cz_filecache_release(e);
        if (rc != -EWOULDBLOCK) {
            w->metrics.fc_hits++;
            return 0;
        }
    }
    w->metrics.fc_misses++;
    start_job(c, fq);
    return 0;
}

/* A header line "Content-Type:" among "Name: value\r\n" lines. */
static bool has_content_type(const char *hdr, size_t len)
{
    static const char name[] = "content-type:";
    for (size_t i = 0; i + sizeof(name) - 1 <= len;) {
        if (strncasecmp(hdr + i, name, sizeof(name) - 1) == 0)
            return true;
        const char *nl = memchr(hdr + i, '\n', len - i);
        if (!nl)
            break;
        i = (size_t)(nl - hdr) + 1;
    }
    return false;
}

int cz_response_file(cz_response *res, const char *path)
{
    if (!res || !res->conn || !res->req || res->deferred || res->owner || !path || !*path)
        return -EINVAL;
    struct conn *c = res->conn;
    struct cz_server *srv = c->w->srv;
    const struct cz_request *req = res->req;
    size_t pl = strlen(path);
    bool absolute = path[0] == '/';
    while (!absolute && pl > 2 && path[0] == '.' && path[1] == '/') {
        path += 2;
        pl -= 2;
    }
    if (pl > REL_MAX)
        return -ENAMETOOLONG;
    if (!absolute && srv->root_fd < 0)
        return -ENOENT; /* relative to a docroot this server does not have */
    server_after_hooks(srv, res);
    if (res->failed)
        return -ENOMEM;
    struct file_req fq = {
        .head = res->head_only,
        .close = res->close,
        .get = req->method == CZ_METHOD_GET,
        .by_path = true,
        .absolute = absolute,
        .own_type = has_content_type(res->hdr, res->hdr_len),
        .extra = {res->hdr, res->hdr_len},
        .rel = path,
        .rl = pl,
    };
    /* The answer is the file's, whatever the handler returns now. */
    res->deferred = true;
    return serve_request(c, req, &fq);
}
