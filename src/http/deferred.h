/* Answers that come after the handler returns, and the worker services
 * that produce them: deferred responses (cz_deferred), streamed responses
 * with back-pressure (cz_stream), per-worker timers (cz_timer) and calls
 * posted from other threads (cz_server_post).
 * Owns those objects and the worker's lists of them.  Does not own the
 * output queue (output.c keeps each answer's placeholder and its place
 * among pipelined responses) or the head builder (response.c).
 * Everything runs on the worker's thread, except cz_server_post. */
#ifndef CZ_HTTP_DEFERRED_H
#define CZ_HTTP_DEFERRED_H

#include <liburing.h>
#include <stdbool.h>

struct worker;
struct conn;
struct post;

/* Per-worker state, embedded in struct worker. */
struct deferred_worker {
    struct cz_deferred *open;  /* answers not finished, newest first */
    struct cz_deferred *ready; /* streams to tell they may write again */
    struct cz_timer *timers;   /* armed timers */
    /* Under the server's post_lock (cz_server_post, from any thread): */
    struct post *posts, *posts_tail;
    bool accepting_posts; /* the worker's loop runs */
};

/* On the worker thread once it is set up (zeroed state): cz_timer_start
 * finds its worker, cz_server_post may queue calls.  free: at its end,
 * whatever is left is dropped. */
void deferred_thread_enter(struct worker *w);
void deferred_worker_free(struct worker *w);
/* Once per loop turn: posted calls, then streams that may write again. */
void deferred_run(struct worker *w);
/* Work is waiting for deferred_run: the loop must not block. */
bool deferred_pending(const struct worker *w);
/* The completion of a timer's timeout. */
void deferred_on_timer(struct worker *w, struct cz_timer *t, const struct io_uring_cqe *cqe);
/* The shutdown deadline: every open answer's client is gone (its
 * connection is released; the handles stay valid until finished or the
 * worker ends), and timers stop. */
void deferred_abandon(struct worker *w);
/* output.c: c's stream may write again (the queue shrank, or c closes). */
void deferred_conn_writable(struct conn *c);

#endif
