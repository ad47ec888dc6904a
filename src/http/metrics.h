/* Per-worker request accounting: what /_catzilla/metrics, /_catzilla/stats
 * and the access log say about requests.
 *
 * A request is followed by a record (struct req_rec) from its dispatch to
 * its final response head: the head builder reports the status and length
 * to the record of the request being answered (w->cur_req).  A request
 * answered later (a file job, a stats gather: a deferred placeholder) takes
 * a copy of its record into the placeholder, and the record becomes current
 * again while the placeholder is filled.  When the status is known the
 * record is finished: counted here, and written to the access log.
 *
 * Counters are plain integers: only the worker writes them, and a scrape
 * reads them on the worker's own thread (builtin.c gathers through the
 * rings), so no atomics and no sharing.
 */
#ifndef CZ_HTTP_METRICS_H
#define CZ_HTTP_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "http/accesslog.h"

struct worker;
struct conn;
struct cz_request;

/* Request-duration histogram bounds in microseconds (a last bucket, +Inf,
 * follows). */
#define CZ_LATENCY_BOUNDS_US                                                                       \
    {                                                                                              \
        100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,     \
            2500000, 5000000, 10000000                                                             \
    }
#define CZ_LATENCY_NBOUNDS 16

/* (method, status) counters: a small open-addressed table.  Methods are enum
 * cz_method, then these two: */
#define CZ_METRIC_METHOD_OTHER 9 /* a method this server does not know */
#define CZ_METRIC_METHOD_NONE 10 /* no request line (a malformed request) */
#define CZ_METRIC_CODES 64

enum cz_timeout_kind {
    CZ_TIMEOUT_HEADER,
    CZ_TIMEOUT_BODY,
    CZ_TIMEOUT_KEEPALIVE,
    CZ_TIMEOUT_SEND,
    CZ_TIMEOUT_LINGER,
    CZ_TIMEOUT_MAX
};

struct worker_metrics {
    uint64_t accepted;
    uint64_t recv_waits; /* recvs that found no free receive buffer (ENOBUFS) */
    uint64_t rx_bytes, tx_bytes;
    uint64_t timeouts[CZ_TIMEOUT_MAX];
    uint64_t fc_hits, fc_misses;              /* static files answered from the cache / not */
    uint64_t latency[CZ_LATENCY_NBOUNDS + 1]; /* per bucket, not cumulative */
    uint64_t latency_sum_ns, latency_count;
    uint64_t codes_overflow; /* (method, status) pairs the table had no room for */
    struct {
        uint16_t method, status; /* status 0: free slot */
        uint64_t n;
    } codes[CZ_METRIC_CODES];
};

/* A request from dispatch to its final head. */
struct req_rec {
    struct reqlog log;
    struct conn *c;
    struct req_rec *prev; /* the record this one interrupted */
    uint64_t start_ns;
    uint16_t method; /* enum cz_method or CZ_METRIC_METHOD_* */
    bool detached;   /* moved into a deferred placeholder */
    bool finished;
};

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t metrics_now_ns(void);

/* Around server_dispatch: r lives on the caller's stack.  req NULL: an
 * error page with no parsed request (a malformed request, a timeout). */
void reqrec_begin(struct worker *w, struct req_rec *r, struct conn *c, const struct cz_request *req,
                  uint64_t start_ns);
void reqrec_end(struct worker *w, struct req_rec *r);
/* A response for c is being deferred: a copy of the current record, to be
 * kept with the placeholder (NULL if the current request is not c's, or out
 * of memory: the request then goes uncounted). */
struct req_rec *reqrec_detach(struct worker *w, struct conn *c);
/* Stop being current without finishing (a streamed response between
 * writes); reqrec_enter makes it current again. */
void reqrec_suspend(struct worker *w, struct req_rec *r);
/* Body bytes of the current record's response sent in pieces (a stream). */
void reqrec_add_bytes(const struct worker *w, uint64_t n);
/* Filling a placeholder: its record is current meanwhile; leave finishes it
 * (if a head was written) and frees it.  r may be NULL. */
void reqrec_enter(struct worker *w, struct req_rec *r);
void reqrec_leave(struct worker *w, struct req_rec *r);
/* The head builder saw a final head for the current request. */
void reqrec_head(const struct worker *w, int status, int64_t content_length);
/* True if the current record is c's and still waits for its head. */
bool reqrec_current(const struct worker *w, const struct conn *c);

void metrics_timeout(struct worker *w, enum cz_timeout_kind kind);

#endif
