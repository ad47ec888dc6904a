/* Request records and the per-worker counters behind /_catzilla/metrics,
 * /_catzilla/stats and the access log (see metrics.h). */
#include <string.h>
#include <time.h>

#include "catzilla/memory.h"
#include "http/http.h"
#include "http/metrics.h"

uint64_t metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void count_status(struct worker_metrics *m, uint16_t method, uint16_t status)
{
    unsigned h = ((unsigned)method * 131u + status) % CZ_METRIC_CODES;
    for (unsigned i = 0; i < CZ_METRIC_CODES; i++) {
        unsigned k = (h + i) % CZ_METRIC_CODES;
        if (m->codes[k].status == 0) {
            m->codes[k].method = method;
            m->codes[k].status = status;
        }
        if (m->codes[k].method == method && m->codes[k].status == status) {
            m->codes[k].n++;
            return;
        }
    }
    m->codes_overflow++;
}

static void count_latency(struct worker_metrics *m, uint64_t ns)
{
    static const uint32_t bounds[CZ_LATENCY_NBOUNDS] = CZ_LATENCY_BOUNDS_US;
    uint64_t us = ns / 1000;
    unsigned b = 0;
    while (b < CZ_LATENCY_NBOUNDS && us > bounds[b])
        b++;
    m->latency[b]++;
    m->latency_sum_ns += ns;
    m->latency_count++;
}

static void finish(struct worker *w, struct req_rec *r)
{
    if (r->finished || r->log.status == 0)
        return;
    r->finished = true;
    /* The loop turn's clock, not a clock read per request (3.5 % of a
     * pipelined load's CPU): durations have the turn's granularity, which
     * is far below the histogram's first bound (100 us). */
    uint64_t now = w->now_ns;
    r->log.duration_ns = now > r->start_ns ? now - r->start_ns : 0;
    count_status(&w->metrics, r->method, (uint16_t)r->log.status);
    count_latency(&w->metrics, r->log.duration_ns);
    if (w->alog)
        accesslog_record(w, &r->log);
}

void reqrec_begin(struct worker *w, struct req_rec *r, struct conn *c, const struct cz_request *req,
                  uint64_t start_ns)
{
    memset(r, 0, sizeof(*r));
    r->c = c;
    r->start_ns = start_ns;
    r->log.peer = c->peer.family ? &c->peer : NULL;
    if (req) {
        r->method = req->method >= 0 ? (uint16_t)req->method : CZ_METRIC_METHOD_OTHER;
        r->log.method = req->method_str;
        r->log.target = req->target;
        r->log.http_minor = req->http_minor;
        if (w->alog) {
            r->log.referer = cz_request_header(req, "Referer");
            r->log.user_agent = cz_request_header(req, "User-Agent");
        }
    } else {
        r->method = CZ_METRIC_METHOD_NONE;
        r->log.http_minor = 0xff;
    }
    r->prev = w->cur_req;
    w->cur_req = r;
}

void reqrec_end(struct worker *w, struct req_rec *r)
{
    w->cur_req = r->prev;
    if (!r->detached)
        finish(w, r);
}

bool reqrec_current(const struct worker *w, const struct conn *c)
{
    const struct req_rec *r = w->cur_req;
    return r && r->c == c && !r->detached && r->log.status == 0;
}

/* The copy owns its strings: the request's scratch is reused for the next
 * pipelined request long before a deferred answer comes. */
static void copy_field(char **p, struct cz_str *s)
{
    if (!s->ptr)
        return;
    memcpy(*p, s->ptr, s->len);
    s->ptr = *p;
    *p += s->len;
}

struct req_rec *reqrec_detach(struct worker *w, struct conn *c)
{
    struct req_rec *cur = w->cur_req;
    if (!reqrec_current(w, c))
        return NULL;
    size_t strings = 0;
    if (w->alog)
        strings = cur->log.method.len + cur->log.target.len + cur->log.referer.len +
                  cur->log.user_agent.len;
    struct req_rec *r = catzilla_task_alloc(sizeof(*r) + strings);
    cur->detached = true; /* either way the stack record is done */
    if (!r)
        return NULL;
    *r = *cur;
    r->detached = false;
    r->prev = NULL;
    if (w->alog) {
        char *p = (char *)(r + 1);
        copy_field(&p, &r->log.method);
        copy_field(&p, &r->log.target);
        copy_field(&p, &r->log.referer);
        copy_field(&p, &r->log.user_agent);
    } else {
        r->log.method = r->log.target = r->log.referer = r->log.user_agent =
            (struct cz_str){NULL, 0};
    }
    return r;
}

void reqrec_enter(struct worker *w, struct req_rec *r)
{
    if (!r)
        return;
    r->prev = w->cur_req;
    w->cur_req = r;
}

void reqrec_leave(struct worker *w, struct req_rec *r)
{
    if (!r)
        return;
    w->cur_req = r->prev;
    finish(w, r);
    catzilla_task_free(r);
}

void reqrec_suspend(struct worker *w, struct req_rec *r)
{
    if (r)
        w->cur_req = r->prev;
}

void reqrec_add_bytes(const struct worker *w, uint64_t n)
{
    struct req_rec *r = w->cur_req;
    if (r && !r->detached && r->method != CZ_METHOD_HEAD)
        r->log.bytes += n;
}

void reqrec_head(const struct worker *w, int status, int64_t content_length)
{
    struct req_rec *r = w->cur_req;
    if (!r || r->detached || r->log.status != 0 || status < 200)
        return;
    r->log.status = status;
    bool no_body = r->method == CZ_METHOD_HEAD || status == 204 || status == 304;
    r->log.bytes = no_body || content_length < 0 ? 0 : content_length;
}

void metrics_timeout(struct worker *w, enum cz_timeout_kind kind)
{
    w->metrics.timeouts[kind]++;
}
