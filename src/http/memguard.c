/* The memory guard (see memguard.h): one monitor thread per server that only
 * reads numbers and sets a level; the reactions run on each worker's own
 * thread, on its own arenas, cache and listener. */
#include "http/memguard.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "catzilla/memory.h"
#include "core/log.h"
#include "fs/filecache.h"
#include "http/http.h"

#define SAMPLE_MS 50
#define HYSTERESIS_PCT 5

static const unsigned enter_pct[MEM_LEVEL_MAX] = {0, 70, 85, 95};

const char *memguard_level_name(int level)
{
    static const char *const names[MEM_LEVEL_MAX] = {"ok", "elevated", "high", "critical"};
    return level >= 0 && level < MEM_LEVEL_MAX ? names[level] : "unknown";
}

int memguard_level_for(uint64_t usage, uint64_t limit, int current)
{
    if (limit == 0)
        return MEM_OK;
    /* Percent in tenths, without overflow for any realistic limit. */
    uint64_t permille = usage >= limit ? 1000 : usage * 1000 / limit;
    int level = MEM_OK;
    for (int l = MEM_LEVEL_MAX - 1; l > MEM_OK; l--) {
        if (permille >= enter_pct[l] * 10u) {
            level = l;
            break;
        }
    }
    /* Going down: stay until usage is HYSTERESIS_PCT below the entry point. */
    while (level < current && permille >= (enter_pct[current] - HYSTERESIS_PCT) * 10u)
        level = current;
    return level;
}

static int floor_pow2(long v)
{
    int p = 1;
    while ((long)p * 2 <= v)
        p *= 2;
    return p;
}

static void fit_config(struct cz_server *srv, unsigned nworkers)
{
    struct cz_config *cfg = &srv->cfg;
    uint64_t limit = srv->guard.limit;
    /* A quarter of the budget for cached file contents, a sixteenth for
     * receive buffers; the rest is for requests in flight. */
    uint64_t cache = limit / 4 / nworkers;
    if ((uint64_t)cfg->file_cache_size > cache) {
        cz_log_info("memory limit: file cache %ld -> %" PRIu64 " bytes per worker",
                    cfg->file_cache_size, cache);
        cfg->file_cache_size = (long)cache;
        if (cfg->file_cache_max_file > cfg->file_cache_size)
            cfg->file_cache_max_file = cfg->file_cache_size;
    }
    uint64_t ring = limit / 16 / nworkers;
    if ((uint64_t)cfg->recv_buffers * (uint64_t)cfg->recv_buffer_size > ring) {
        long n = floor_pow2((long)(ring / (uint64_t)cfg->recv_buffer_size));
        if (n < 64)
            n = 64;
        if (n < cfg->recv_buffers) {
            cz_log_info("memory limit: receive buffers %ld -> %ld per worker", cfg->recv_buffers,
                        n);
            cfg->recv_buffers = n;
        }
    }
}

int memguard_configure(struct cz_server *srv, char *err, size_t errlen)
{
    struct memguard *g = &srv->guard;
    g->stop_fd = -1;
    g->source = "none";
    atomic_store(&g->level, MEM_OK);
    if (srv->cfg.memory_limit > 0) {
        g->limit = (uint64_t)srv->cfg.memory_limit;
        g->source = "--memory-limit";
    } else {
        int rc = cz_cgroup_mem_find(NULL, &g->cg);
        if (rc < 0) {
            /* Not fatal: serve without a guard, but say so. */
            cz_log_warn("memory limit: cannot read the cgroup (%s); no memory guard",
                        strerror(-rc));
        } else if (g->cg.version != 0) {
            uint64_t lim = g->cg.max;
            if (g->cg.high && (!lim || g->cg.high < lim))
                lim = g->cg.high;
            if (lim) {
                g->limit = lim;
                g->from_cgroup = true;
                g->source = g->cg.version == 1  ? "cgroup v1 memory.limit_in_bytes"
                            : lim == g->cg.high ? "cgroup v2 memory.high"
                                                : "cgroup v2 memory.max";
            }
        }
    }
#if CZ_FAULT_INJECTION
    g->usage_file = getenv("CATZILLA_FAULT_MEMORY_USAGE");
#endif
    if (g->limit == 0)
        return 0;
    if (g->limit < 8u * 1024 * 1024) {
        snprintf(err, errlen,
                 "memory limit of %" PRIu64 " bytes (%s) is below the 8 MiB "
                 "a server needs",
                 g->limit, g->source);
        return -EINVAL;
    }
    fit_config(srv, srv->nworkers);
    cz_log_info("memory limit %.1f MiB (%s): guarding at 70/85/95 %%",
                (double)g->limit / (1024.0 * 1024.0), g->source);
    return 0;
}

static int read_small(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, len - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    buf[n] = '\0';
    return 0;
}

/* Resident set of this process from /proc/self/statm (pages). */
static int process_rss(uint64_t *bytes)
{
    char buf[128];
    unsigned long size, resident;
    int rc = read_small("/proc/self/statm", buf, sizeof(buf));
    if (rc < 0)
        return rc;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
        return -EINVAL;
    *bytes = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
    return 0;
}

static int sample(const struct memguard *g, uint64_t *usage)
{
    if (g->usage_file) {
        char buf[64];
        int rc = read_small(g->usage_file, buf, sizeof(buf));
        if (rc < 0)
            return rc;
        *usage = strtoull(buf, NULL, 10);
        return 0;
    }
    if (g->from_cgroup) {
        uint64_t total;
        return cz_cgroup_mem_usage(&g->cg, &total, usage);
    }
    return process_rss(usage);
}

static void *monitor(void *arg)
{
    struct cz_server *srv = arg;
    struct memguard *g = &srv->guard;
    bool warned = false;
    for (;;) {
        struct pollfd pfd = {.fd = g->stop_fd, .events = POLLIN};
        if (poll(&pfd, 1, SAMPLE_MS) != 0)
            break; /* stop requested (or poll failed: stop rather than spin) */
        uint64_t usage;
        int rc = sample(g, &usage);
        if (rc < 0) {
            if (!warned)
                cz_log_warn("memory guard: cannot read usage (%s)", strerror(-rc));
            warned = true;
            continue;
        }
        atomic_store_explicit(&g->usage, usage, memory_order_relaxed);
        if (usage > atomic_load_explicit(&g->peak, memory_order_relaxed))
            atomic_store_explicit(&g->peak, usage, memory_order_relaxed);
        int cur = atomic_load(&g->level);
        int next = memguard_level_for(usage, g->limit, cur);
        if (next == cur)
            continue;
        atomic_store(&g->level, next);
        atomic_fetch_add_explicit(&g->changes, 1, memory_order_relaxed);
        cz_log(next > cur ? CZ_LOG_WARN : CZ_LOG_INFO, "memory pressure %s -> %s: %.1f of %.1f MiB",
               memguard_level_name(cur), memguard_level_name(next), (double)usage / 1048576.0,
               (double)g->limit / 1048576.0);
        server_wake_workers(srv);
    }
    return NULL;
}

int memguard_start(struct cz_server *srv, char *err, size_t errlen)
{
    struct memguard *g = &srv->guard;
    if (g->limit == 0)
        return 0;
    uint64_t usage;
    /* Stats and the first decisions see a real number from the start. */
    if (sample(g, &usage) == 0) {
        atomic_store(&g->usage, usage);
        atomic_store(&g->peak, usage);
    }
    g->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (g->stop_fd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "memory guard: eventfd: %s", strerror(-rc));
        return rc;
    }
    int rc = pthread_create(&g->thread, NULL, monitor, srv);
    if (rc != 0) {
        snprintf(err, errlen, "memory guard: cannot start its thread: %s", strerror(rc));
        close(g->stop_fd);
        g->stop_fd = -1;
        return -rc;
    }
    g->thread_started = true;
    return 0;
}

void memguard_stop(struct cz_server *srv)
{
    struct memguard *g = &srv->guard;
    if (!g->thread_started)
        return;
    uint64_t one = 1;
    ssize_t n = write(g->stop_fd, &one, sizeof(one));
    (void)n;
    pthread_join(g->thread, NULL);
    g->thread_started = false;
    close(g->stop_fd);
    g->stop_fd = -1;
}

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

void memguard_apply(struct worker *w)
{
    int to = atomic_load_explicit(&w->srv->guard.level, memory_order_relaxed);
    int from = w->mem_level;
    if (to == from)
        return;
    w->mem_level = (uint8_t)to;
    struct memguard_actions *a = &w->mem_actions;
    if ((to >= MEM_ELEVATED) != (from >= MEM_ELEVATED)) {
        int rc = catzilla_memory_pressure(to >= MEM_ELEVATED);
        if (rc < 0)
            cz_log_warn("worker %u: memory pressure on the arenas: %s", w->id, strerror(-rc));
        if (to >= MEM_ELEVATED)
            count(&a->purges);
    } else if (to > from) {
        catzilla_memory_optimize();
        count(&a->purges);
    }
    if (w->fcache && (to >= MEM_HIGH) != (from >= MEM_HIGH)) {
        cz_filecache_set_budget(w->fcache,
                                to >= MEM_HIGH ? 0 : (size_t)w->srv->cfg.file_cache_size);
        if (to >= MEM_HIGH)
            count(&a->cache_drops);
    }
    if (to >= MEM_HIGH && from < MEM_HIGH) {
        server_pause_accept(w);
        count(&a->accept_pauses);
    } else if (to < MEM_HIGH && from >= MEM_HIGH) {
        server_resume_accept(w);
    }
}

bool memguard_blocks_accept(const struct worker *w)
{
    return w->mem_level >= MEM_HIGH;
}

/* Bytes of request bodies a worker may receive at once. */
static uint64_t body_budget(const struct worker *w)
{
    const struct memguard *g = &w->srv->guard;
    if (g->limit == 0)
        return UINT64_MAX;
    uint64_t b = g->limit / 4 / w->srv->nworkers;
    if (w->mem_level >= MEM_CRITICAL)
        return 0;
    return w->mem_level >= MEM_HIGH ? b / 2 : b;
}

static bool fits(const struct worker *w, uint64_t len)
{
    return w->body_rx_bytes == 0 || w->body_rx_bytes + len <= body_budget(w);
}

bool memguard_admit_body(struct conn *c, uint64_t len)
{
    struct worker *w = c->w;
    c->rx->body_charge = len;
    if (!w->body_wait_head && fits(w, len)) {
        w->body_rx_bytes += len;
        return true;
    }
    c->body_wait = true;
    c->read_paused = true;
    c->rx->body_wait_next = NULL;
    *(w->body_wait_head ? &w->body_wait_tail->rx->body_wait_next : &w->body_wait_head) = c;
    w->body_wait_tail = c;
    count(&w->mem_actions.body_waits);
    return false;
}

static void wait_unlink(struct worker *w, struct conn *c)
{
    struct conn *prev = NULL;
    for (struct conn *q = w->body_wait_head; q; prev = q, q = q->rx->body_wait_next) {
        if (q != c)
            continue;
        *(prev ? &prev->rx->body_wait_next : &w->body_wait_head) = c->rx->body_wait_next;
        if (w->body_wait_tail == c)
            w->body_wait_tail = prev;
        break;
    }
    c->body_wait = false;
    c->rx->body_wait_next = NULL;
}

void memguard_body_done(struct conn *c)
{
    struct worker *w = c->w;
    if (!c->rx)
        return;
    if (c->body_wait)
        wait_unlink(w, c);
    else
        w->body_rx_bytes -= c->rx->body_charge;
    c->rx->body_charge = 0;
}

void memguard_admit_waiters(struct worker *w)
{
    while (w->body_wait_head && fits(w, w->body_wait_head->rx->body_charge)) {
        struct conn *c = w->body_wait_head;
        wait_unlink(w, c);
        w->body_rx_bytes += c->rx->body_charge;
        conn_resume_reading(c);
    }
}
