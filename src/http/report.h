/* What /_catzilla/stats (JSON) and /_catzilla/metrics (Prometheus text
 * exposition format 0.0.4) say, built from one snapshot per worker.  A
 * snapshot is taken on its worker's own thread (builtin.c gathers them
 * through the rings); building the text reads only snapshots. */
#ifndef CZ_HTTP_REPORT_H
#define CZ_HTTP_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catzilla/memory.h"
#include "http/metrics.h"

struct worker;
struct cz_server;

struct snapshot {
    bool ok; /* the worker answered (and its memory stats were read) */
    unsigned id;
    int cpu;
    uint32_t connections;
    uint64_t requests;
    size_t registered_bytes;
    size_t file_cache_bytes;
    int mem_level;
    uint64_t purges, cache_drops, accept_pauses, body_waits, body_bytes;
    uint64_t log_dropped;
    struct worker_metrics m;
    struct catzilla_memory_stats mem;
};

/* A growing text buffer in the task arena; failed stays set after an
 * allocation failure (the caller answers 503). */
struct textbuf {
    char *p;
    size_t len, cap;
    bool failed;
};
void textbuf_printf(struct textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* On w's own thread. */
void report_snapshot(struct worker *w, struct snapshot *s);
/* snaps[n] in worker order; origin is the slot whose process-wide figures
 * are reported. */
void report_stats_json(const struct cz_server *srv, const struct snapshot *snaps, unsigned n,
                       unsigned origin, struct textbuf *b);
void report_metrics_text(const struct cz_server *srv, const struct snapshot *snaps, unsigned n,
                         unsigned origin, struct textbuf *b);

#endif
