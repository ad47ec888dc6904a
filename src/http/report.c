/* /_catzilla/stats and /_catzilla/metrics from worker snapshots (report.h). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "http/http.h"
#include "http/report.h"
#include "http/router.h"

void textbuf_printf(struct textbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        /* No buffer yet: measure first (NULL + 0 is undefined behaviour). */
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n) * 2;
        char *np = catzilla_task_realloc(b->p, cap);
        if (!np) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

void report_snapshot(struct worker *w, struct snapshot *s)
{
    s->id = w->id;
    s->cpu = w->cpu;
    s->connections = w->nconns;
    s->requests = atomic_load_explicit(&w->stats.requests, memory_order_relaxed);
    s->registered_bytes = w->registered_bytes;
    s->file_cache_bytes = cz_filecache_bytes(w->fcache);
    s->mem_level = w->mem_level;
    s->body_bytes = w->body_rx_bytes;
    s->purges = atomic_load_explicit(&w->mem_actions.purges, memory_order_relaxed);
    s->cache_drops = atomic_load_explicit(&w->mem_actions.cache_drops, memory_order_relaxed);
    s->accept_pauses = atomic_load_explicit(&w->mem_actions.accept_pauses, memory_order_relaxed);
    s->body_waits = atomic_load_explicit(&w->mem_actions.body_waits, memory_order_relaxed);
    s->log_dropped = accesslog_dropped(w);
    s->m = w->metrics;
    s->ok = catzilla_memory_get_stats(&s->mem) == 0;
}

static const char *const arena_names[CATZILLA_ARENA_MAX] = {"request", "response", "cache",
                                                            "static", "task"};
static const char *const timeout_names[CZ_TIMEOUT_MAX] = {"header", "body", "keepalive", "send",
                                                          "linger"};
static const uint32_t latency_bounds_us[CZ_LATENCY_NBOUNDS] = CZ_LATENCY_BOUNDS_US;

static double uptime_seconds(const struct cz_server *srv)
{
    return (double)(metrics_now_ns() - srv->start_ns) / 1e9;
}

/* Sums over the workers that answered. */
struct totals {
    struct worker_metrics m; /* codes[] unused: see merge_codes */
    uint64_t connections, requests, accepted, log_dropped, purges, cache_drops, accept_pauses,
        body_waits;
    size_t registered, fc_bytes;
    struct catzilla_arena_stats arenas;
};

static void add_totals(struct totals *t, const struct snapshot *s)
{
    for (int k = 0; k < CZ_TIMEOUT_MAX; k++)
        t->m.timeouts[k] += s->m.timeouts[k];
    for (int b = 0; b <= CZ_LATENCY_NBOUNDS; b++)
        t->m.latency[b] += s->m.latency[b];
    t->m.latency_sum_ns += s->m.latency_sum_ns;
    t->m.latency_count += s->m.latency_count;
    t->m.rx_bytes += s->m.rx_bytes;
    t->m.tx_bytes += s->m.tx_bytes;
    t->m.fc_hits += s->m.fc_hits;
    t->m.fc_misses += s->m.fc_misses;
    t->m.codes_overflow += s->m.codes_overflow;
    t->connections += s->connections;
    t->requests += s->requests;
    t->accepted += s->m.accepted;
    t->m.recv_waits += s->m.recv_waits;
    t->log_dropped += s->log_dropped;
    t->purges += s->purges;
    t->cache_drops += s->cache_drops;
    t->accept_pauses += s->accept_pauses;
    t->body_waits += s->body_waits;
    t->registered += s->registered_bytes;
    t->fc_bytes += s->file_cache_bytes;
    t->arenas.allocated += s->mem.thread_total.allocated;
    t->arenas.active += s->mem.thread_total.active;
    t->arenas.resident += s->mem.thread_total.resident;
    t->arenas.metadata += s->mem.thread_total.metadata;
}

static void sum_totals(const struct snapshot *snaps, unsigned n, struct totals *t)
{
    memset(t, 0, sizeof(*t));
    for (unsigned i = 0; i < n; i++)
        add_totals(t, &snaps[i]);
}

/* The upper bound (ms) of the bucket holding quantile q; -1 if no sample,
 * or the last bound when the sample is above every bound. */
static double latency_quantile_ms(const struct worker_metrics *m, double q)
{
    if (m->latency_count == 0)
        return -1;
    uint64_t want = (uint64_t)(q * (double)m->latency_count + 0.5), seen = 0;
    if (want == 0)
        want = 1;
    for (int b = 0; b < CZ_LATENCY_NBOUNDS; b++) {
        seen += m->latency[b];
        if (seen >= want)
            return latency_bounds_us[b] / 1000.0;
    }
    return latency_bounds_us[CZ_LATENCY_NBOUNDS - 1] / 1000.0;
}

/* ---------- /_catzilla/stats ---------- */

static void json_arena(struct textbuf *b, const char *name, const struct catzilla_arena_stats *a,
                       bool last)
{
    textbuf_printf(b,
                   "\"%s\":{\"index\":%d,\"allocated\":%zu,\"active\":%zu,\"resident\":%zu,"
                   "\"metadata\":%zu,\"fragmentation\":%.4f}%s",
                   name, a->index == (unsigned)-1 ? -1 : (int)a->index, a->allocated, a->active,
                   a->resident, a->metadata, a->fragmentation, last ? "" : ",");
}

static void json_worker(struct textbuf *b, const struct snapshot *s, bool first)
{
    textbuf_printf(b,
                   "%s{\"id\":%u,\"cpu\":%d,\"ok\":%s,\"connections\":%" PRIu32
                   ",\"accepted\":%" PRIu64 ",\"requests\":%" PRIu64
                   ",\"recv_buffer_waits\":%" PRIu64
                   ",\"registered_bytes\":%zu,\"file_cache_bytes\":%zu,\"memory_level\":\"%s\","
                   "\"memory_actions\":{\"purges\":%" PRIu64 ",\"cache_drops\":%" PRIu64
                   ",\"accept_pauses\":%" PRIu64 ",\"body_waits\":%" PRIu64
                   "},\"body_bytes\":%" PRIu64 ",\"arenas\":{",
                   first ? "" : ",", s->id, s->cpu, s->ok ? "true" : "false", s->connections,
                   s->m.accepted, s->requests, s->m.recv_waits, s->registered_bytes,
                   s->file_cache_bytes, memguard_level_name(s->mem_level), s->purges,
                   s->cache_drops, s->accept_pauses, s->body_waits, s->body_bytes);
    for (int k = 0; k < CATZILLA_ARENA_MAX; k++)
        json_arena(b, arena_names[k], &s->mem.arenas[k], k == CATZILLA_ARENA_MAX - 1);
    textbuf_printf(b, "}}");
}

static void json_traffic(struct textbuf *b, const struct snapshot *snaps, unsigned n,
                         const struct totals *t)
{
    uint64_t classes[6] = {0};
    for (unsigned i = 0; i < n; i++)
        for (int k = 0; k < CZ_METRIC_CODES; k++)
            if (snaps[i].m.codes[k].status)
                classes[snaps[i].m.codes[k].status / 100 % 6] += snaps[i].m.codes[k].n;
    textbuf_printf(b,
                   "\"responses\":{\"1xx\":%" PRIu64 ",\"2xx\":%" PRIu64 ",\"3xx\":%" PRIu64
                   ",\"4xx\":%" PRIu64 ",\"5xx\":%" PRIu64 "},\"bytes\":{\"received\":%" PRIu64
                   ",\"sent\":%" PRIu64 "},\"timeouts\":{",
                   classes[1], classes[2], classes[3], classes[4], classes[5], t->m.rx_bytes,
                   t->m.tx_bytes);
    for (int k = 0; k < CZ_TIMEOUT_MAX; k++)
        textbuf_printf(b, "%s\"%s\":%" PRIu64, k ? "," : "", timeout_names[k], t->m.timeouts[k]);
    uint64_t lookups = t->m.fc_hits + t->m.fc_misses;
    textbuf_printf(b,
                   "},\"file_cache\":{\"hits\":%" PRIu64 ",\"misses\":%" PRIu64
                   ",\"hit_rate\":%.4f,\"bytes\":%zu},",
                   t->m.fc_hits, t->m.fc_misses,
                   lookups ? (double)t->m.fc_hits / (double)lookups : 0.0, t->fc_bytes);
    double mean =
        t->m.latency_count ? (double)t->m.latency_sum_ns / (double)t->m.latency_count / 1e6 : 0.0;
    textbuf_printf(b,
                   "\"latency\":{\"count\":%" PRIu64 ",\"mean_ms\":%.4f,\"p50_ms_at_most\":%.3f,"
                   "\"p99_ms_at_most\":%.3f},\"access_log\":{\"dropped_lines\":%" PRIu64 "},",
                   t->m.latency_count, mean, latency_quantile_ms(&t->m, 0.5),
                   latency_quantile_ms(&t->m, 0.99), t->log_dropped);
}

void report_stats_json(const struct cz_server *srv, const struct snapshot *snaps, unsigned n,
                       unsigned origin, struct textbuf *b)
{
    struct totals t;
    sum_totals(snaps, n, &t);
    textbuf_printf(b,
                   "{\"version\":\"%s\",\"allocator\":\"%s\",\"uptime_seconds\":%.3f,"
                   "\"workers\":[",
                   CATZILLA_VERSION, catzilla_memory_allocator(), uptime_seconds(srv));
    for (unsigned i = 0; i < n; i++)
        json_worker(b, &snaps[i], i == 0);
    const struct snapshot *o = &snaps[origin];
    double frag =
        t.arenas.active ? 1.0 - (double)t.arenas.allocated / (double)t.arenas.active : 0.0;
    textbuf_printf(b,
                   "],\"totals\":{\"workers\":%u,\"connections\":%" PRIu64 ",\"accepted\":%" PRIu64
                   ",\"requests\":%" PRIu64 ",\"recv_buffer_waits\":%" PRIu64 ",",
                   n, t.connections, t.accepted, t.requests, t.m.recv_waits);
    json_traffic(b, snaps, n, &t);
    textbuf_printf(b,
                   "\"registered_bytes\":%zu,\"arenas\":{\"allocated\":%zu,\"active\":%zu,"
                   "\"resident\":%zu,\"metadata\":%zu,\"fragmentation\":%.4f},"
                   "\"process\":{\"allocated\":%zu,\"active\":%zu,\"resident\":%zu,"
                   "\"metadata\":%zu,\"mapped\":%zu,\"retained\":%zu},",
                   t.registered, t.arenas.allocated, t.arenas.active, t.arenas.resident,
                   t.arenas.metadata, frag < 0 ? 0 : frag, o->mem.process.allocated,
                   o->mem.process.active, o->mem.process.resident, o->mem.process.metadata,
                   o->mem.process.mapped, o->mem.process.retained);
    const struct memguard *mg = &srv->guard;
    textbuf_printf(b,
                   "\"memory_guard\":{\"limit\":%" PRIu64 ",\"source\":\"%s\",\"usage\":%" PRIu64
                   ",\"peak\":%" PRIu64 ",\"level\":\"%s\",\"level_changes\":%" PRIu64
                   ",\"purges\":%" PRIu64 ",\"cache_drops\":%" PRIu64 ",\"accept_pauses\":%" PRIu64
                   ",\"body_waits\":%" PRIu64 "}}}\n",
                   mg->limit, mg->source ? mg->source : "none",
                   atomic_load_explicit(&mg->usage, memory_order_relaxed),
                   atomic_load_explicit(&mg->peak, memory_order_relaxed),
                   memguard_level_name(atomic_load(&mg->level)),
                   atomic_load_explicit(&mg->changes, memory_order_relaxed), t.purges,
                   t.cache_drops, t.accept_pauses, t.body_waits);
}

/* ---------- /_catzilla/metrics ---------- */

static void family(struct textbuf *b, const char *name, const char *type, const char *help)
{
    textbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *method_label(unsigned m)
{
    if (m < CZ_METHOD_MAX)
        return cz_method_name((enum cz_method)m);
    return m == CZ_METRIC_METHOD_OTHER ? "other" : "none";
}

/* Requests by (method, code), summed over the workers' tables. */
static void metrics_requests(struct textbuf *b, const struct snapshot *snaps, unsigned n)
{
    family(b, "catzilla_http_requests_total", "counter",
           "Requests answered, by method and status code (method none: no request line).");
    for (unsigned i = 0; i < n; i++) {
        for (int k = 0; k < CZ_METRIC_CODES; k++) {
            const typeof(snaps[i].m.codes[0]) *e = &snaps[i].m.codes[k];
            if (!e->status)
                continue;
            /* Print each pair once: at its first occurrence, with every worker's count. */
            bool seen = false;
            for (unsigned j = 0; j < i && !seen; j++)
                for (int l = 0; l < CZ_METRIC_CODES && !seen; l++)
                    seen = snaps[j].m.codes[l].status == e->status &&
                           snaps[j].m.codes[l].method == e->method;
            if (seen)
                continue;
            uint64_t sum = 0;
            for (unsigned j = i; j < n; j++)
                for (int l = 0; l < CZ_METRIC_CODES; l++)
                    if (snaps[j].m.codes[l].status == e->status &&
                        snaps[j].m.codes[l].method == e->method)
                        sum += snaps[j].m.codes[l].n;
            textbuf_printf(b,
                           "catzilla_http_requests_total{method=\"%s\",code=\"%u\"} %" PRIu64 "\n",
                           method_label(e->method), e->status, sum);
        }
    }
}

static void metrics_latency(struct textbuf *b, const struct worker_metrics *m)
{
    family(b, "catzilla_http_request_duration_seconds", "histogram",
           "From a request's first byte to its response being queued for sending.");
    uint64_t cum = 0;
    for (int k = 0; k < CZ_LATENCY_NBOUNDS; k++) {
        cum += m->latency[k];
        textbuf_printf(b, "catzilla_http_request_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                       latency_bounds_us[k] / 1e6, cum);
    }
    cum += m->latency[CZ_LATENCY_NBOUNDS];
    textbuf_printf(b,
                   "catzilla_http_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                   "catzilla_http_request_duration_seconds_sum %.9f\n"
                   "catzilla_http_request_duration_seconds_count %" PRIu64 "\n",
                   cum, (double)m->latency_sum_ns / 1e9, m->latency_count);
}

/* One gauge or counter per worker; field is read with get. */
static void per_worker(struct textbuf *b, const struct snapshot *snaps, unsigned n,
                       const char *name, const char *type, const char *help,
                       uint64_t (*get)(const struct snapshot *))
{
    family(b, name, type, help);
    for (unsigned i = 0; i < n; i++)
        textbuf_printf(b, "%s{worker=\"%u\"} %" PRIu64 "\n", name, snaps[i].id, get(&snaps[i]));
}

static uint64_t get_up(const struct snapshot *s)
{
    return s->ok;
}
static uint64_t get_conns(const struct snapshot *s)
{
    return s->connections;
}
static uint64_t get_accepted(const struct snapshot *s)
{
    return s->m.accepted;
}
static uint64_t get_recv_waits(const struct snapshot *s)
{
    return s->m.recv_waits;
}
static uint64_t get_registered(const struct snapshot *s)
{
    return s->registered_bytes;
}
static uint64_t get_fc_bytes(const struct snapshot *s)
{
    return s->file_cache_bytes;
}

static void metrics_arenas(struct textbuf *b, const struct snapshot *snaps, unsigned n)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } fields[] = {
        {"catzilla_arena_allocated_bytes", "Bytes the worker holds in each of its arenas.",
         offsetof(struct catzilla_arena_stats, allocated)},
        {"catzilla_arena_active_bytes", "Bytes in active pages of each worker arena.",
         offsetof(struct catzilla_arena_stats, active)},
        {"catzilla_arena_resident_bytes", "Resident bytes of each worker arena.",
         offsetof(struct catzilla_arena_stats, resident)},
    };
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        family(b, fields[f].name, "gauge", fields[f].help);
        for (unsigned i = 0; i < n; i++)
            for (int k = 0; k < CATZILLA_ARENA_MAX; k++) {
                size_t v;
                memcpy(&v, (const char *)&snaps[i].mem.arenas[k] + fields[f].off, sizeof(v));
                textbuf_printf(b, "%s{worker=\"%u\",arena=\"%s\"} %zu\n", fields[f].name,
                               snaps[i].id, arena_names[k], v);
            }
    }
}

void report_metrics_text(const struct cz_server *srv, const struct snapshot *snaps, unsigned n,
                         unsigned origin, struct textbuf *b)
{
    (void)origin;
    struct totals t;
    sum_totals(snaps, n, &t);
    family(b, "catzilla_build_info", "gauge", "Version and allocator of this build.");
    textbuf_printf(b, "catzilla_build_info{version=\"%s\",allocator=\"%s\"} 1\n", CATZILLA_VERSION,
                   catzilla_memory_allocator());
    family(b, "catzilla_uptime_seconds", "gauge", "Seconds since the server started.");
    textbuf_printf(b, "catzilla_uptime_seconds %.3f\n", uptime_seconds(srv));
    family(b, "catzilla_workers", "gauge", "Worker threads (one ring and one core each).");
    textbuf_printf(b, "catzilla_workers %u\n", n);
    per_worker(b, snaps, n, "catzilla_worker_up", "gauge",
               "1 if the worker answered this scrape within a second.", get_up);
    metrics_requests(b, snaps, n);
    metrics_latency(b, &t.m);
    family(b, "catzilla_received_bytes_total", "counter", "Bytes received from clients.");
    textbuf_printf(b, "catzilla_received_bytes_total %" PRIu64 "\n", t.m.rx_bytes);
    family(b, "catzilla_sent_bytes_total", "counter", "Bytes sent to clients.");
    textbuf_printf(b, "catzilla_sent_bytes_total %" PRIu64 "\n", t.m.tx_bytes);
    per_worker(b, snaps, n, "catzilla_connections_open", "gauge", "Open connections.", get_conns);
    per_worker(b, snaps, n, "catzilla_connections_accepted_total", "counter",
               "Connections accepted.", get_accepted);
    per_worker(b, snaps, n, "catzilla_recv_buffer_waits_total", "counter",
               "Receives that found every receive buffer taken and waited for one "
               "(raise --recv-buffers if this grows fast).",
               get_recv_waits);
    family(b, "catzilla_timeouts_total", "counter", "Connections timed out, by which timeout.");
    for (int k = 0; k < CZ_TIMEOUT_MAX; k++)
        textbuf_printf(b, "catzilla_timeouts_total{kind=\"%s\"} %" PRIu64 "\n", timeout_names[k],
                       t.m.timeouts[k]);
    family(b, "catzilla_file_cache_hits_total", "counter",
           "Static files answered from the file cache with no system call.");
    textbuf_printf(b, "catzilla_file_cache_hits_total %" PRIu64 "\n", t.m.fc_hits);
    family(b, "catzilla_file_cache_misses_total", "counter",
           "Static file requests that needed to open or stat the file.");
    textbuf_printf(b, "catzilla_file_cache_misses_total %" PRIu64 "\n", t.m.fc_misses);
    per_worker(b, snaps, n, "catzilla_file_cache_bytes", "gauge",
               "File contents held in each worker's cache.", get_fc_bytes);
    metrics_arenas(b, snaps, n);
    per_worker(b, snaps, n, "catzilla_registered_bytes", "gauge",
               "Memory registered with each worker's ring (receive buffers, cached files).",
               get_registered);
    const struct memguard *mg = &srv->guard;
    family(b, "catzilla_memory_limit_bytes", "gauge", "The memory limit obeyed; 0: none.");
    textbuf_printf(b, "catzilla_memory_limit_bytes %" PRIu64 "\n", mg->limit);
    family(b, "catzilla_memory_usage_bytes", "gauge",
           "Working set the memory guard last measured; 0 without a limit.");
    textbuf_printf(b, "catzilla_memory_usage_bytes %" PRIu64 "\n",
                   atomic_load_explicit(&mg->usage, memory_order_relaxed));
    family(b, "catzilla_memory_pressure_level", "gauge",
           "0 ok, 1 elevated (70%), 2 high (85%), 3 critical (95%).");
    textbuf_printf(b, "catzilla_memory_pressure_level %d\n", atomic_load(&mg->level));
    family(b, "catzilla_access_log_dropped_lines_total", "counter",
           "Access log lines dropped because the log could not keep up or failed.");
    textbuf_printf(b, "catzilla_access_log_dropped_lines_total %" PRIu64 "\n", t.log_dropped);
}
