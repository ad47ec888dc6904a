/* Memory layer: the calling thread's five jemalloc arenas and their tcaches, the
 * process-wide jemalloc settings and stats.  It owns arena and
 * tcache lifetimes, including a pool that recycles arenas across threads; it
 * does not own what is allocated in them (callers free their blocks) and never
 * aborts.  CZ_ALLOCATOR_LIBC builds the same API on plain malloc.
 */
#include "catzilla/memory.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fault.h"

#if defined(CZ_ALLOCATOR_JEMALLOC) && defined(CZ_ALLOCATOR_LIBC)
#error "define only one of CZ_ALLOCATOR_JEMALLOC and CZ_ALLOCATOR_LIBC"
#endif
#if !defined(CZ_ALLOCATOR_JEMALLOC) && !defined(CZ_ALLOCATOR_LIBC)
#define CZ_ALLOCATOR_JEMALLOC 1
#endif

static size_t os_page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);

    return p > 0 ? (size_t)p : 4096;
}

/* Round up to whole pages; 0 when the rounding overflows. */
static size_t page_round(size_t size, size_t page)
{
    if (size == 0)
        return page;
    if (size > SIZE_MAX - (page - 1))
        return 0;
    return (size + page - 1) & ~(page - 1);
}

static int check_options(const struct catzilla_memory_options *opts)
{
    static const char *const thp_modes[] = {"auto", "always", "disabled"};
    size_t i;

    if (opts->background_thread > 1)
        return -EINVAL;
    if (opts->metadata_thp == NULL)
        return 0;
    for (i = 0; i < sizeof(thp_modes) / sizeof(thp_modes[0]); i++) {
        if (strcmp(opts->metadata_thp, thp_modes[i]) == 0)
            return 0;
    }
    return -EINVAL;
}

#if CZ_FAULT_INJECTION
static pthread_once_t fault_once = PTHREAD_ONCE_INIT;
static unsigned long fault_env_every; /* CATZILLA_FAULT_EVERY, read once */
static _Thread_local bool fault_armed;
static _Thread_local unsigned long fault_every, fault_count;

static void fault_read_env(void)
{
    const char *e = getenv("CATZILLA_FAULT_EVERY");

    fault_env_every = e != NULL ? strtoul(e, NULL, 10) : 0;
}

void catzilla_memory_fault_arm(void)
{
    pthread_once(&fault_once, fault_read_env);
    catzilla_memory_fault_arm_every(fault_env_every);
}

void catzilla_memory_fault_arm_every(unsigned long every)
{
    fault_every = every;
    fault_count = 0;
    fault_armed = every != 0;
}

/* True when this allocation is the one to fail. */
static inline bool fault_hit(void)
{
    return fault_armed && ++fault_count % fault_every == 0;
}
#else
#define fault_hit() false
#endif

static void stats_clear(struct catzilla_memory_stats *out, const char *allocator)
{
    int k;

    memset(out, 0, sizeof(*out));
    out->allocator = allocator;
    for (k = 0; k < CATZILLA_ARENA_MAX; k++)
        out->arenas[k].index = UINT_MAX;
    out->thread_total.index = UINT_MAX;
}

#if CZ_ALLOCATOR_JEMALLOC

#include <jemalloc/jemalloc.h>

/* jemalloc cannot address more arenas than MALLOCX_ARENA() encodes (4095). */
#define ARENA_POOL_CAP 4096
#define NO_TCACHE UINT_MAX

struct mem_ctx {
    bool ready;
    unsigned arena[CATZILLA_ARENA_MAX];
    unsigned tcache[CATZILLA_ARENA_MAX]; /* NO_TCACHE with MALLOC_CONF=tcache:false */
    /* Zero (automatic arena, automatic tcache) until thread_init: that zero is
     * the fallback, so the hot path has no branch on ready. */
    int alloc_flags[CATZILLA_ARENA_MAX];
    int free_flags[CATZILLA_ARENA_MAX];
    unsigned prev_arena; /* thread.arena before init, restored at exit */
};

static _Thread_local struct mem_ctx tls;

static pthread_once_t boot_once = PTHREAD_ONCE_INIT;
static size_t je_page; /* jemalloc's page: the unit of stats.arenas.<i>.pactive */
static bool je_tcache; /* opt.tcache: tcache.create fails when tcaches are off */

/* Arenas of exited threads, reused before creating new ones. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned arena_pool[ARENA_POOL_CAP];
static size_t arena_pool_len;

/* Serialises option changes so concurrent memory_init calls apply whole sets. */
static pthread_mutex_t opts_lock = PTHREAD_MUTEX_INITIALIZER;

/* mallctl returns a positive errno; the size checks catch a type mismatch
 * between this file and the running jemalloc instead of reading garbage. */
static int ctl_read(const char *name, void *val, size_t len)
{
    size_t got = len;
    int r = mallctl(name, val, &got, NULL, 0);

    if (r != 0)
        return -r;
    return got == len ? 0 : -EINVAL;
}

static int ctl_write(const char *name, void *val, size_t len)
{
    return -mallctl(name, NULL, NULL, val, len);
}

static int ctl_void(const char *name)
{
    return -mallctl(name, NULL, NULL, NULL, 0);
}

static int ctl_arena_void(unsigned arena, const char *leaf)
{
    char name[64];

    snprintf(name, sizeof(name), "arena.%u.%s", arena, leaf);
    return ctl_void(name);
}

static int ctl_arena_stat(unsigned arena, const char *leaf, size_t *val)
{
    char name[80];

    snprintf(name, sizeof(name), "stats.arenas.%u.%s", arena, leaf);
    return ctl_read(name, val, sizeof(*val));
}

static void boot(void)
{
    if (ctl_read("arenas.page", &je_page, sizeof(je_page)) != 0 || je_page == 0)
        je_page = os_page_size();
    if (ctl_read("opt.tcache", &je_tcache, sizeof(je_tcache)) != 0)
        je_tcache = false;
}

/* Per-kind decay overrides (-1: the arenas.* default) and tcache
 * choices, under opts_lock. */
static long kind_dirty_ms[CATZILLA_ARENA_MAX] = {-1, -1, -1, -1, -1};
static long kind_muzzy_ms[CATZILLA_ARENA_MAX] = {-1, -1, -1, -1, -1};
static bool kind_tcache[CATZILLA_ARENA_MAX] = {true, true, true, true, true};

static int tcache_create(int kind, unsigned *tc)
{
    bool want;

    pthread_mutex_lock(&opts_lock);
    want = kind_tcache[kind];
    pthread_mutex_unlock(&opts_lock);
    if (!je_tcache || !want) {
        *tc = NO_TCACHE;
        return 0;
    }
    return ctl_read("tcache.create", tc, sizeof(*tc));
}

static void tcache_ctl(const char *op, unsigned tc)
{
    if (tc != NO_TCACHE)
        ctl_write(op, &tc, sizeof(tc));
}

/* MALLOCX_ARENA() shifts a signed int, which is undefined for arenas >= 2047
 * (UBSan catches it); shift unsigned, then convert (GCC/Clang: modulo 2^32). */
static int arena_flag(unsigned arena)
{
    return (int)((arena + 1u) << 20);
}

static int tcache_flag(unsigned tc)
{
    return tc == NO_TCACHE ? MALLOCX_TCACHE_NONE : MALLOCX_TCACHE(tc);
}

static bool pool_pop(unsigned *arena)
{
    bool ok = false;

    pthread_mutex_lock(&pool_lock);
    if (arena_pool_len > 0) {
        *arena = arena_pool[--arena_pool_len];
        ok = true;
    }
    pthread_mutex_unlock(&pool_lock);
    return ok;
}

static void pool_push(unsigned arena)
{
    pthread_mutex_lock(&pool_lock);
    /* Cannot overflow: the pool holds at most every arena jemalloc can create. */
    if (arena_pool_len < ARENA_POOL_CAP)
        arena_pool[arena_pool_len++] = arena;
    pthread_mutex_unlock(&pool_lock);
}


static int arena_apply_kind(unsigned arena, int kind)
{
    char name[64];
    ssize_t ms;
    int r = 0;

    pthread_mutex_lock(&opts_lock);
    if (kind_dirty_ms[kind] >= 0) {
        ms = (ssize_t)kind_dirty_ms[kind];
        snprintf(name, sizeof(name), "arena.%u.dirty_decay_ms", arena);
        r = ctl_write(name, &ms, sizeof(ms));
    }
    if (r == 0 && kind_muzzy_ms[kind] >= 0) {
        ms = (ssize_t)kind_muzzy_ms[kind];
        snprintf(name, sizeof(name), "arena.%u.muzzy_decay_ms", arena);
        r = ctl_write(name, &ms, sizeof(ms));
    }
    pthread_mutex_unlock(&opts_lock);
    return r;
}

/* A recycled arena keeps the decay times it was created with; give it the
 * current defaults so memory_init affects it like a fresh one. */
static int arena_apply_defaults(unsigned arena)
{
    static const char *const knobs[] = {"dirty_decay_ms", "muzzy_decay_ms"};
    char name[64];
    ssize_t ms;
    size_t i;
    int r;

    for (i = 0; i < 2; i++) {
        snprintf(name, sizeof(name), "arenas.%s", knobs[i]);
        r = ctl_read(name, &ms, sizeof(ms));
        if (r != 0)
            return r;
        snprintf(name, sizeof(name), "arena.%u.%s", arena, knobs[i]);
        r = ctl_write(name, &ms, sizeof(ms));
        if (r != 0)
            return r;
    }
    return 0;
}

static int arena_get(unsigned *arena)
{
    int r;

    if (pool_pop(arena)) {
        r = arena_apply_defaults(*arena);
        if (r != 0)
            pool_push(*arena);
        return r;
    }
    /* arenas.create gives EAGAIN once jemalloc's arena limit is reached. */
    return ctl_read("arenas.create", arena, sizeof(*arena));
}

/* The explicit tcaches plus the automatic one, which caches stray malloc()
 * objects of the request arena. */
static void flush_thread_caches(void)
{
    int k;

    for (k = 0; k < CATZILLA_ARENA_MAX; k++)
        tcache_ctl("tcache.flush", tls.tcache[k]);
    ctl_void("thread.tcache.flush");
}

int catzilla_memory_init(const struct catzilla_memory_options *opts)
{
    const char *thp;
    ssize_t ms, old_dirty;
    bool on;
    int r = 0;

    pthread_once(&boot_once, boot);
    if (opts == NULL)
        return 0;
    r = check_options(opts);
    if (r != 0)
        return r;
    if (opts->metadata_thp != NULL) {
        r = ctl_read("opt.metadata_thp", &thp, sizeof(thp));
        if (r != 0)
            return r;
        if (strcmp(thp, opts->metadata_thp) != 0)
            return -ENOTSUP;
    }

    pthread_mutex_lock(&opts_lock);
    /* arenas.*_decay_ms are the values arenas created from now on start with.
     * jemalloc checks each value only when it is written, so a rejected muzzy
     * value puts the dirty one back: a failed call changes nothing. */
    r = ctl_read("arenas.dirty_decay_ms", &old_dirty, sizeof(old_dirty));
    if (r != 0)
        goto out;
    if (opts->dirty_decay_ms >= 0) {
        ms = (ssize_t)opts->dirty_decay_ms;
        r = ctl_write("arenas.dirty_decay_ms", &ms, sizeof(ms));
        if (r != 0)
            goto out;
    }
    if (opts->muzzy_decay_ms >= 0) {
        ms = (ssize_t)opts->muzzy_decay_ms;
        r = ctl_write("arenas.muzzy_decay_ms", &ms, sizeof(ms));
        if (r != 0)
            goto restore_dirty;
    }
    if (opts->kind_decay) {
        for (int k = 0; k < CATZILLA_ARENA_MAX; k++) {
            kind_dirty_ms[k] = opts->kind_dirty_decay_ms[k] >= 0 ? opts->kind_dirty_decay_ms[k] : -1;
            kind_muzzy_ms[k] = opts->kind_muzzy_decay_ms[k] >= 0 ? opts->kind_muzzy_decay_ms[k] : -1;
        }
    }
    if (opts->kind_tcache_set)
        memcpy(kind_tcache, opts->kind_tcache, sizeof(kind_tcache));
    if (opts->background_thread >= 0) {
        on = opts->background_thread == 1;
        /* Fails only if a thread cannot be created; the decay times stand. */
        r = ctl_write("background_thread", &on, sizeof(on));
    }
    goto out;

restore_dirty:
    ctl_write("arenas.dirty_decay_ms", &old_dirty, sizeof(old_dirty));
out:
    pthread_mutex_unlock(&opts_lock);
    return r;
}

int catzilla_memory_thread_init(void)
{
    unsigned arena[CATZILLA_ARENA_MAX], tcache[CATZILLA_ARENA_MAX];
    unsigned prev;
    int na = 0, nt = 0, k, r;

    if (tls.ready)
        return 0;
    pthread_once(&boot_once, boot);

    for (; na < CATZILLA_ARENA_MAX; na++) {
        r = arena_get(&arena[na]);
        if (r == 0) {
            r = arena_apply_kind(arena[na], na);
            if (r != 0)
                pool_push(arena[na]);
        }
        if (r != 0)
            goto fail;
    }
    /* One tcache per arena: a shared one would hand out one kind's freed
     * objects as another kind's, and the automatic tcache is the thread's
     * stray-malloc() path. */
    for (; nt < CATZILLA_ARENA_MAX; nt++) {
        r = tcache_create(nt, &tcache[nt]);
        if (r != 0)
            goto fail;
    }
    {
        size_t len = sizeof(prev);
        r = -mallctl("thread.arena", &prev, &len, &arena[CATZILLA_ARENA_REQUEST],
                     sizeof(arena[CATZILLA_ARENA_REQUEST]));
        if (r != 0)
            goto fail;
    }
    /* The automatic tcache still holds objects of the old arena and would hand
     * them to the next malloc() calls; flushing sends stray malloc() to the
     * request arena from the first call. */
    ctl_void("thread.tcache.flush");

    for (k = 0; k < CATZILLA_ARENA_MAX; k++) {
        tls.arena[k] = arena[k];
        tls.tcache[k] = tcache[k];
        tls.alloc_flags[k] = arena_flag(arena[k]) | tcache_flag(tcache[k]);
        tls.free_flags[k] = tcache_flag(tcache[k]);
    }
    tls.prev_arena = prev;
    tls.ready = true;
    return 0;

fail:
    while (nt > 0)
        tcache_ctl("tcache.destroy", tcache[--nt]);
    /* Nothing was allocated from them yet: back to the pool as they are. */
    while (na > 0)
        pool_push(arena[--na]);
    return r;
}

void catzilla_memory_thread_exit(void)
{
    struct mem_ctx old = tls;
    int k;

#if CZ_FAULT_INJECTION
    fault_armed = false;
#endif
    if (!old.ready)
        return;
    /* Fall back first, so nothing below can route an allocation into an arena
     * that is about to be parked. */
    memset(&tls, 0, sizeof(tls));

    ctl_write("thread.arena", &old.prev_arena, sizeof(old.prev_arena));
    /* The automatic tcache holds stray malloc() objects of the request arena;
     * return them so the purge below can release their pages. */
    ctl_void("thread.tcache.flush");
    for (k = 0; k < CATZILLA_ARENA_MAX; k++)
        tcache_ctl("tcache.destroy", old.tcache[k]);
    /* Parked arenas should not hold RSS until another thread takes them. */
    for (k = 0; k < CATZILLA_ARENA_MAX; k++) {
        ctl_arena_void(old.arena[k], "purge");
        pool_push(old.arena[k]);
    }
}

int catzilla_memory_arena_index(enum catzilla_arena_kind kind)
{
    if ((unsigned)kind >= CATZILLA_ARENA_MAX)
        return -EINVAL;
    if (!tls.ready)
        return -ENOENT;
    return (int)tls.arena[kind];
}

static inline size_t mem_usable(void *ptr)
{
    return ptr ? sallocx(ptr, 0) : 0;
}

/* mallocx and rallocx are undefined for size 0: 0 is served as 1 byte. */
static inline void *mem_alloc(enum catzilla_arena_kind kind, size_t size)
{
    return mallocx(size != 0 ? size : 1, tls.alloc_flags[kind]);
}

static inline void *mem_realloc(enum catzilla_arena_kind kind, void *ptr, size_t size)
{
    if (ptr == NULL)
        return mem_alloc(kind, size);
    if (size == 0) {
        dallocx(ptr, tls.free_flags[kind]);
        return NULL;
    }
    return rallocx(ptr, size, tls.alloc_flags[kind]);
}

static inline void mem_free(enum catzilla_arena_kind kind, void *ptr)
{
    if (ptr != NULL)
        dallocx(ptr, tls.free_flags[kind]);
}

/* Kind unknown: bypass every tcache so the block goes straight home. */
static void mem_free_untyped(void *ptr)
{
    if (ptr != NULL)
        dallocx(ptr, MALLOCX_TCACHE_NONE);
}

static void *mem_alloc_aligned(size_t size)
{
    size_t page = os_page_size();

    size = page_round(size, page);
    if (size == 0 || fault_hit())
        return NULL;
    return mallocx(size, tls.alloc_flags[CATZILLA_ARENA_STATIC] | MALLOCX_ALIGN(page));
}

static void stats_finish(struct catzilla_arena_stats *s)
{
    double f = 0.0;

    if (s->active > 0)
        f = 1.0 - (double)s->allocated / (double)s->active;
    /* allocated can exceed active for a moment: the counters are read one by one. */
    s->fragmentation = f < 0.0 ? 0.0 : (f > 1.0 ? 1.0 : f);
}

static int arena_stats(unsigned arena, struct catzilla_arena_stats *s)
{
    size_t small, large, pactive, base, internal;
    int r;

    s->index = arena;
    if ((r = ctl_arena_stat(arena, "small.allocated", &small)) != 0 ||
        (r = ctl_arena_stat(arena, "large.allocated", &large)) != 0 ||
        (r = ctl_arena_stat(arena, "pactive", &pactive)) != 0 ||
        (r = ctl_arena_stat(arena, "resident", &s->resident)) != 0 ||
        (r = ctl_arena_stat(arena, "base", &base)) != 0)
        return r;
    if (ctl_arena_stat(arena, "internal", &internal) != 0)
        internal = 0;
    s->allocated = small + large;
    s->active = pactive * je_page;
    s->metadata = base + internal;
    stats_finish(s);
    return 0;
}

int catzilla_memory_get_stats(struct catzilla_memory_stats *out)
{
    static const struct {
        const char *name;
        size_t offset;
    } proc[] = {
        {"stats.allocated", offsetof(struct catzilla_memory_stats, process.allocated)},
        {"stats.active", offsetof(struct catzilla_memory_stats, process.active)},
        {"stats.resident", offsetof(struct catzilla_memory_stats, process.resident)},
        {"stats.metadata", offsetof(struct catzilla_memory_stats, process.metadata)},
        {"stats.mapped", offsetof(struct catzilla_memory_stats, process.mapped)},
        {"stats.retained", offsetof(struct catzilla_memory_stats, process.retained)},
    };
    struct catzilla_arena_stats *t;
    uint64_t epoch = 1;
    size_t i;
    int k, r;

    if (out == NULL)
        return -EINVAL;
    stats_clear(out, "jemalloc");
    pthread_once(&boot_once, boot);

    /* Objects freed into a tcache still count as allocated in jemalloc's
     * stats; flushing makes "allocated" mean what the application holds. */
    if (tls.ready)
        flush_thread_caches();
    /* Stats are a snapshot taken at the last epoch write. */
    r = -mallctl("epoch", &epoch, &(size_t){sizeof(epoch)}, &epoch, sizeof(epoch));
    if (r != 0)
        return r;

    if (tls.ready) {
        t = &out->thread_total;
        for (k = 0; k < CATZILLA_ARENA_MAX; k++) {
            r = arena_stats(tls.arena[k], &out->arenas[k]);
            if (r != 0)
                return r;
            t->allocated += out->arenas[k].allocated;
            t->active += out->arenas[k].active;
            t->resident += out->arenas[k].resident;
            t->metadata += out->arenas[k].metadata;
        }
        stats_finish(t);
        out->per_arena = true;
    }

    for (i = 0; i < sizeof(proc) / sizeof(proc[0]); i++) {
        r = ctl_read(proc[i].name, (char *)out + proc[i].offset, sizeof(size_t));
        if (r != 0)
            return r;
    }
    return 0;
}

int catzilla_memory_optimize(void)
{
    char name[64];
    int k, r;

    if (!tls.ready) {
        ctl_void("thread.tcache.flush");
        snprintf(name, sizeof(name), "arena.%u.purge", (unsigned)MALLCTL_ARENAS_ALL);
        return ctl_void(name);
    }
    flush_thread_caches();
    for (k = 0; k < CATZILLA_ARENA_MAX; k++) {
        r = ctl_arena_void(tls.arena[k], "purge");
        if (r != 0)
            return r;
    }
    return 0;
}

int catzilla_memory_trim(void)
{
    int r;

    if (!tls.ready)
        return 0;
    r = ctl_arena_void(tls.arena[CATZILLA_ARENA_REQUEST], "purge");
    return r != 0 ? r : ctl_arena_void(tls.arena[CATZILLA_ARENA_RESPONSE], "purge");
}

int catzilla_memory_pressure(bool on)
{
    char name[64];
    ssize_t zero = 0;
    int k, r = 0;

    if (!tls.ready)
        return on ? catzilla_memory_optimize() : 0;
    if (on)
        flush_thread_caches();
    for (k = 0; k < CATZILLA_ARENA_MAX && r == 0; k++) {
        if (k == CATZILLA_ARENA_STATIC)
            continue;
        if (on) {
            snprintf(name, sizeof(name), "arena.%u.dirty_decay_ms", tls.arena[k]);
            r = ctl_write(name, &zero, sizeof(zero));
            snprintf(name, sizeof(name), "arena.%u.muzzy_decay_ms", tls.arena[k]);
            if (r == 0)
                r = ctl_write(name, &zero, sizeof(zero));
        } else {
            r = arena_apply_defaults(tls.arena[k]);
            if (r == 0)
                r = arena_apply_kind(tls.arena[k], k);
        }
    }
    return r;
}

const char *catzilla_memory_allocator(void)
{
    return "jemalloc";
}

#else /* CZ_ALLOCATOR_LIBC */

int catzilla_memory_init(const struct catzilla_memory_options *opts)
{
    return opts != NULL ? check_options(opts) : 0;
}

int catzilla_memory_thread_init(void)
{
    return 0;
}

void catzilla_memory_thread_exit(void)
{
#if CZ_FAULT_INJECTION
    fault_armed = false;
#endif
}

int catzilla_memory_arena_index(enum catzilla_arena_kind kind)
{
    return (unsigned)kind >= CATZILLA_ARENA_MAX ? -EINVAL : -ENOTSUP;
}

static inline size_t mem_usable(void *ptr)
{
    return malloc_usable_size(ptr);
}

/* glibc's malloc(0) is already unique, but 1 keeps both builds identical. */
static inline void *mem_alloc(enum catzilla_arena_kind kind, size_t size)
{
    (void)kind;
    return malloc(size != 0 ? size : 1);
}

static inline void *mem_realloc(enum catzilla_arena_kind kind, void *ptr, size_t size)
{
    (void)kind;
    if (ptr == NULL)
        return malloc(size != 0 ? size : 1);
    /* realloc(p, 0) differs between libcs; state the contract here. */
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

static inline void mem_free(enum catzilla_arena_kind kind, void *ptr)
{
    (void)kind;
    free(ptr);
}

static void mem_free_untyped(void *ptr)
{
    free(ptr);
}

static void *mem_alloc_aligned(size_t size)
{
    size_t page = os_page_size();

    size = page_round(size, page);
    if (size == 0 || fault_hit())
        return NULL;
    return aligned_alloc(page, size);
}

int catzilla_memory_get_stats(struct catzilla_memory_stats *out)
{
    struct mallinfo2 mi;

    if (out == NULL)
        return -EINVAL;
    stats_clear(out, "libc");
    mi = mallinfo2();
    /* glibc keeps no page-level or resident accounting: everything obtained
     * from the kernel (heap + mmapped chunks) stands in for active/resident/
     * mapped; free heap bytes kept for reuse are the closest to "retained". */
    out->process.allocated = mi.uordblks + mi.hblkhd;
    out->process.active = mi.arena + mi.hblkhd;
    out->process.resident = out->process.active;
    out->process.mapped = out->process.active;
    out->process.retained = mi.fordblks;
    out->process.metadata = 0;
    return 0;
}

int catzilla_memory_optimize(void)
{
    malloc_trim(0);
    return 0;
}

int catzilla_memory_pressure(bool on)
{
    if (on)
        malloc_trim(0);
    return 0;
}

int catzilla_memory_trim(void)
{
    return 0;
}

const char *catzilla_memory_allocator(void)
{
    return "libc";
}

#endif /* CZ_ALLOCATOR_JEMALLOC */

#if CZ_LEAK_CHECK
static _Thread_local long long live_bytes[CATZILLA_ARENA_MAX];

long long catzilla_memory_live_bytes(enum catzilla_arena_kind kind)
{
    return (unsigned)kind < CATZILLA_ARENA_MAX ? live_bytes[kind] : -EINVAL;
}

static inline void *count_alloc(enum catzilla_arena_kind kind, void *p)
{
    live_bytes[kind] += (long long)mem_usable(p);
    return p;
}
static inline void count_free(enum catzilla_arena_kind kind, void *p)
{
    live_bytes[kind] -= (long long)mem_usable(p);
}
#else
long long catzilla_memory_live_bytes(enum catzilla_arena_kind kind)
{
    (void)kind;
    return -ENOTSUP;
}

static inline void *count_alloc(enum catzilla_arena_kind kind, void *p)
{
    (void)kind;
    return p;
}
static inline void count_free(enum catzilla_arena_kind kind, void *p)
{
    (void)kind;
    (void)p;
}
#endif

/* The counted entry points: every catzilla_* call goes through these. */
static void *kind_alloc(enum catzilla_arena_kind kind, size_t size)
{
    return fault_hit() ? NULL : count_alloc(kind, mem_alloc(kind, size));
}

/* realloc to size 0 frees: never an injected failure. */
static void *kind_realloc(enum catzilla_arena_kind kind, void *ptr, size_t size)
{
    if (size != 0 && fault_hit())
        return NULL;
#if CZ_LEAK_CHECK
    size_t old = mem_usable(ptr);
    void *p = mem_realloc(kind, ptr, size);
    if (p || size == 0)
        live_bytes[kind] += (long long)mem_usable(p) - (long long)old;
    return p;
#else
    return mem_realloc(kind, ptr, size);
#endif
}

static void kind_free(enum catzilla_arena_kind kind, void *ptr)
{
    count_free(kind, ptr);
    mem_free(kind, ptr);
}

void *catzilla_static_alloc_aligned(size_t size)
{
    return count_alloc(CATZILLA_ARENA_STATIC, mem_alloc_aligned(size));
}

void *catzilla_alloc(enum catzilla_arena_kind kind, size_t size)
{
    if ((unsigned)kind >= CATZILLA_ARENA_MAX)
        return NULL;
    return kind_alloc(kind, size);
}

void *catzilla_realloc(enum catzilla_arena_kind kind, void *ptr, size_t size)
{
    if ((unsigned)kind >= CATZILLA_ARENA_MAX)
        return NULL;
    return kind_realloc(kind, ptr, size);
}

void catzilla_free(enum catzilla_arena_kind kind, void *ptr)
{
    /* An invalid kind must still release the block rather than leak it. */
    if ((unsigned)kind >= CATZILLA_ARENA_MAX)
        mem_free_untyped(ptr);
    else
        kind_free(kind, ptr);
}

#define CZ_KIND_FUNCS(name, kind)                                                                  \
    void *catzilla_##name##_alloc(size_t size)                                                     \
    {                                                                                              \
        return kind_alloc(kind, size);                                                             \
    }                                                                                              \
    void *catzilla_##name##_realloc(void *ptr, size_t size)                                        \
    {                                                                                              \
        return kind_realloc(kind, ptr, size);                                                      \
    }                                                                                              \
    void catzilla_##name##_free(void *ptr)                                                         \
    {                                                                                              \
        kind_free(kind, ptr);                                                                      \
    }

CZ_KIND_FUNCS(request, CATZILLA_ARENA_REQUEST)
CZ_KIND_FUNCS(response, CATZILLA_ARENA_RESPONSE)
CZ_KIND_FUNCS(cache, CATZILLA_ARENA_CACHE)
CZ_KIND_FUNCS(static, CATZILLA_ARENA_STATIC)
CZ_KIND_FUNCS(task, CATZILLA_ARENA_TASK)
