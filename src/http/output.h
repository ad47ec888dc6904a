/* A connection's output: the ordered queue of response bytes and every way
 * they leave.  Nothing outside output.c touches segments.  Owns: segment
 * kinds (memory, cached-body reference, file range, deferred placeholder),
 * coalescing into one send per loop turn, the send engines (gathered
 * sendmsg, SEND_ZC, splice file -> pipe -> socket, read-and-send when no
 * pipe is free), the worker's pipe pool, the open files a queue names, the
 * send-progress timer and back-pressure accounting.
 * Does not own: deciding what to answer (server.c, static.c), connection
 * state, receiving or closing (conn.c).  Everything here runs on the
 * connection's own worker thread. */
#ifndef CZ_HTTP_OUTPUT_H
#define CZ_HTTP_OUTPUT_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs/filecache.h"

struct conn;
struct worker;
struct outseg;
struct out_file;
struct out_engine;

/* Per-connection output state, embedded in struct conn; private to output.c. */
struct output {
    struct outseg *head, *tail;
    size_t queued;             /* bytes (and placeholder costs) not yet sent */
    struct out_file *files;    /* open files named by queued segments */
    struct out_engine *engine; /* file transfer in progress, NULL if none */
    void *send_ctx;            /* iovecs of the in-flight sendmsg */
    uint32_t ndefer;           /* placeholders not yet filled */
    uint32_t last_outq;        /* the socket's unacknowledged bytes at the last probe */
    uint8_t stalls;            /* send-timer periods in a row without progress */
    bool busy : 1;             /* a send of the queue head is in flight */
    bool zc_linked : 1;        /* that send is a header linked to a SEND_ZC */
    bool scheduled : 1;        /* on the worker's flush list */
    bool need_poll : 1;        /* a send found the socket full: wait for POLLOUT first */
    bool progressed : 1;       /* bytes moved since the send timer last fired */
    bool outq_known : 1;       /* last_outq holds a probe result */
    bool polling : 1;          /* the in-flight OP_SEND is that POLLOUT wait */
    bool want_writable : 1;    /* a stream waits for the queue to shrink */
};

/* Worker-wide state: the pipe pool and the SEND_ZC decision. */
int output_worker_init(struct worker *w, char *err, size_t errlen);
void output_worker_free(struct worker *w);

/* ---- queueing (0 or -ENOMEM; on failure nothing was queued) ---- */

/* Copy len bytes to the tail of the queue. */
int output_append(struct conn *c, const void *data, size_t len);
/* Room for len bytes at the tail, to be written in place at once (before any
 * other output call); NULL if out of memory. */
char *output_reserve(struct conn *c, size_t len);
/* len bytes of a cached body starting at off; takes its own reference. */
int output_append_cached(struct conn *c, struct cz_cache_entry *e, uint64_t off, uint32_t len);

/* Open files: one descriptor per file per connection, however many ranges
 * or pipelined responses name it.  find returns a referenced handle for the
 * file id (or NULL); adopt takes ownership of fd (closing it on failure) and
 * returns a referenced handle; release drops the caller's reference (the
 * descriptor closes when no queued segment names it any more). */
struct out_file *output_file_find(struct conn *c, const struct cz_file_id *id);
struct out_file *output_file_adopt(struct conn *c, int fd, const struct cz_file_id *id);
void output_file_release(struct conn *c, struct out_file *f);
/* len bytes of f from off, sent zero-copy from the page cache. */
int output_append_file(struct conn *c, struct out_file *f, uint64_t off, uint64_t len);

/* Deferred responses: a placeholder keeps its place in the queue (pipelined
 * responses behind it wait) and counts against --max-output-queue; the
 * connection stays allocated until the placeholder is filled or dropped,
 * even if it closes meanwhile.  Returns NULL when out of memory. */
struct outseg *output_defer(struct conn *c);
/* Compose a deferred response with the ordinary output calls: between
 * begin and end, everything appended goes where the placeholder stands.
 * end ends the placeholder (and the connection hold); if the connection
 * closed meanwhile, what was appended is dropped. */
void output_defer_begin(struct conn *c, struct outseg *d);
void output_defer_end(struct conn *c, struct outseg *d);
/* Like end, but d stays: what was appended goes before it and may be sent
 * while d keeps its place (a streamed response between two writes). */
void output_defer_emit(struct conn *c, struct outseg *d);
/* begin, one append of data (a complete response), end.  -ENOMEM closes
 * the connection. */
int output_defer_fill(struct conn *c, struct outseg *d, const void *data, size_t len);

/* ---- state ---- */

/* Nothing queued and nothing in flight. */
bool output_idle(const struct conn *c);
/* Queued bytes are below --max-output-queue: the parser may go on. */
bool output_has_space(const struct conn *c);
/* Queued bytes are at or below half of --max-output-queue. */
bool output_below_half(const struct conn *c);
/* Tell the connection's stream (deferred_conn_writable) once the queue is
 * below half of --max-output-queue again. */
void output_want_writable(struct conn *c);
/* Ask for a flush at the end of this loop turn. */
void output_schedule(struct conn *c);
/* Flush every connection scheduled this turn: one send each. */
void output_flush_all(struct worker *w);
/* The send timer fired (every --send-timeout/2 while a send is pending).
 * Returns false when the client has taken nothing for a whole
 * --send-timeout (the caller closes); true to re-arm.  While a send waits,
 * the period's verdict comes from a SIOCOUTQ probe of the socket (fewer
 * unacknowledged bytes than last time is progress too), and the probe's
 * completion closes the connection if it must. */
bool output_send_timer(struct conn *c);
/* A send is (about to be) pending from now: start counting afresh. */
void output_send_timer_reset(struct conn *c);

/* An operation that the kernel runs in io-wq is in flight and may still
 * look the socket slot up (so the slot must not be closed yet). */
bool output_names_slot_late(const struct conn *c);
/* The connection is closing: cancel file transfers, give back pipes. */
void output_abort(struct conn *c);
/* Free everything queued (the connection is being freed). */
void output_free(struct conn *c);

/* Introspection (tests, fuzz oracles): bytes counted against the queue
 * limit, and a copy of the queued unsent in-memory bytes in order (returns
 * their total length; copies at most cap). */
size_t output_queued(const struct conn *c);
size_t output_copy_memory(const struct conn *c, char *out, size_t cap);

/* ---- completions (dispatched by the worker loop) ---- */
void output_on_send(struct conn *c, struct io_uring_cqe *cqe);
void output_on_send_zc(void *ctx, struct io_uring_cqe *cqe);
void output_on_file(struct conn *c, struct io_uring_cqe *cqe);
void output_on_probe(struct conn *c, struct io_uring_cqe *cqe);

#endif
