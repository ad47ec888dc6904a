/* Catzilla memory layer: five jemalloc arenas per worker thread.
 *
 * Each thread that calls catzilla_memory_thread_init() gets its own request,
 * response, cache, static and task arenas (and explicit tcaches for them); the
 * catzilla_<kind>_* calls then act on the calling thread's arenas.  A thread
 * that never called it falls back to the process's default arenas.  With
 * ALLOCATOR=libc the same API runs on plain malloc, and stats say so.
 * This layer never aborts: allocation failure returns NULL.
 *
 * Rules for pointers from this API:
 * - Free or resize them only with catzilla_<kind>_free/_realloc (never free(),
 *   which under a sanitizer is not jemalloc's), passing the kind they were
 *   allocated with.
 * - Free them on the thread that allocated them, before it calls
 *   catzilla_memory_thread_exit().  Breaking this rule is memory-safe (arenas
 *   are never destroyed, see thread_exit) but mixes one thread's memory into
 *   another's cache, or leaks it.
 * - size 0 is a 1-byte request: a unique pointer that must be freed.
 * jemalloc reads its process-wide defaults from the program's `malloc_conf`
 * symbol before main(); the library leaves that choice to the program.  The
 * catzilla binary and the examples use the defaults below (see
 * catzilla_memory_init):
 *     const char *malloc_conf = CATZILLA_MALLOC_CONF;
 */
#ifndef CATZILLA_MEMORY_H
#define CATZILLA_MEMORY_H

#include <stdbool.h>
#include <stddef.h>

#include "catzilla/export.h"

/* narenas:1 - workers allocate from their own arenas; the few other threads
 * (main, signals, jemalloc's purger) share arena 0 instead of each creating
 * an automatic arena with ~100 KiB of metadata.  metadata_thp:disabled - a
 * huge page of metadata would cost more RSS than a whole idle server.
 * MALLOC_CONF in the environment still wins. */
#define CATZILLA_MALLOC_CONF                                                                       \
    "narenas:1,background_thread:true,metadata_thp:disabled,dirty_decay_ms:10000,"                 \
    "muzzy_decay_ms:30000"

#ifdef __cplusplus
extern "C" {
#endif

enum catzilla_arena_kind {
    CATZILLA_ARENA_REQUEST,  /* per-request scratch: parsed headers, path, params */
    CATZILLA_ARENA_RESPONSE, /* response headers and small bodies */
    CATZILLA_ARENA_CACHE,    /* router trie, connection state, file metadata */
    CATZILLA_ARENA_STATIC,   /* registered buffers: recv ring, file contents */
    CATZILLA_ARENA_TASK,     /* timers, stats snapshots, background work */
    CATZILLA_ARENA_MAX
};

/* Process-wide allocator options; negative/NULL fields keep the current value
 * (the default unless an earlier call changed it).  Note that jemalloc's own
 * "-1 = never purge" decay cannot be requested through this struct. */
struct catzilla_memory_options {
    int background_thread;    /* 1 on (default), 0 off, -1 default */
    long dirty_decay_ms;      /* default 10000 */
    long muzzy_decay_ms;      /* default 30000 */
    const char *metadata_thp; /* "disabled" (default), "auto", "always"; effective
                                 only through MALLOC_CONF before start-up */
    /* Per-kind decay, for arenas of threads initialised from now on: used
     * only when kind_decay is true; a negative entry keeps dirty_decay_ms /
     * muzzy_decay_ms for that kind.  Short-lived kinds (request, response)
     * hold big transient buffers that are best returned at once. */
    bool kind_decay;
    long kind_dirty_decay_ms[CATZILLA_ARENA_MAX]; /* indexed by enum catzilla_arena_kind */
    long kind_muzzy_decay_ms[CATZILLA_ARENA_MAX];
    /* Per-kind thread caches, for threads initialised from now on: used only
     * when kind_tcache_set is true (else every kind gets one).  A tcache
     * speeds up kinds allocated on every request and costs about 30 KiB of
     * metadata plus the objects it holds; rarely-allocated kinds (static,
     * task) gain nothing from one. */
    bool kind_tcache_set;
    bool kind_tcache[CATZILLA_ARENA_MAX];
};

struct catzilla_arena_stats {
    unsigned index;       /* jemalloc arena index (UINT_MAX when not per-arena) */
    size_t allocated;     /* bytes the application holds */
    size_t active;        /* bytes in active pages */
    size_t resident;      /* bytes resident in physical memory */
    size_t metadata;      /* allocator metadata bytes */
    double fragmentation; /* 1 - allocated/active, 0 when active == 0 */
};

struct catzilla_memory_stats {
    const char *allocator; /* "jemalloc" or "libc" */
    bool per_arena;        /* false on libc or on a thread without arenas */
    struct catzilla_arena_stats arenas[CATZILLA_ARENA_MAX]; /* calling thread's */
    struct catzilla_arena_stats thread_total;               /* sum of the five above */
    struct {
        size_t allocated, active, resident, metadata, mapped, retained;
    } process;
};

/* Process set-up: call before any worker starts; opts may be NULL; any thread.
 * The defaults (background_thread on, dirty 10000 ms, muzzy 30000 ms,
 * metadata_thp disabled, one automatic arena) apply from process start when
 * the program defines malloc_conf as CATZILLA_MALLOC_CONF; the MALLOC_CONF
 * environment variable overrides them.  opts then
 * changes background_thread and the decay times of arenas created (or reused
 * by catzilla_memory_thread_init) afterwards.  metadata_thp cannot change at
 * run time: a value other than the running one gives -ENOTSUP, an unknown one
 * -EINVAL (nothing is applied then).  Returns 0 or -errno.  Calling it again is
 * harmless: it applies its options again.  The libc build validates and
 * ignores opts. */
CZ_API int catzilla_memory_init(const struct catzilla_memory_options *opts);

/* Create the calling thread's five arenas and tcaches and make its request
 * arena the thread's default arena (so plain malloc() on it stays on the
 * core).  Arenas released by exited threads are reused first.  Returns 0 or
 * -errno (then the thread keeps using the process's default arenas).  Calling
 * it again on the same thread returns 0 and changes nothing.  Call from the
 * thread itself.  In the libc build: returns 0, no arenas. */
CZ_API int catzilla_memory_thread_init(void);

/* Undo thread_init for the calling thread: destroy its tcaches, restore its
 * previous default arena, purge its arenas and park them for the next
 * thread_init to reuse.  The arenas are never destroyed: memory that glibc
 * allocated through thread.arena is freed at pthread exit, after this call,
 * and destroying would turn that (and any stray free) into heap corruption.
 * Anything the thread did not free stays allocated (leaked).  After it the
 * thread uses the default arenas; no-op without arenas. */
CZ_API void catzilla_memory_thread_exit(void);

/* Arena index of the calling thread's arena of that kind; -EINVAL for an
 * invalid kind, -ENOENT on a thread without arenas, -ENOTSUP in the libc
 * build (which has none). */
CZ_API int catzilla_memory_arena_index(enum catzilla_arena_kind kind);

/* Generic form of the per-kind functions below.  alloc: at least size bytes
 * from the calling thread's arena of that kind, or NULL (out of memory, size
 * too large, invalid kind).  realloc: like realloc(3); ptr NULL allocates,
 * size 0 frees ptr and returns NULL; on failure NULL and ptr is untouched; the
 * block keeps its arena when resized in place, else moves to the caller's
 * arena of that kind.  free: NULL is a no-op.  Any thread; the caller owns the
 * block. */
CZ_API void *catzilla_alloc(enum catzilla_arena_kind kind, size_t size);
CZ_API void *catzilla_realloc(enum catzilla_arena_kind kind, void *ptr, size_t size);
CZ_API void catzilla_free(enum catzilla_arena_kind kind, void *ptr);

/* Leak checking, compiled in by debug and sanitizer builds (CZ_LEAK_CHECK):
 * bytes the calling thread holds in blocks of that kind, as counted by the
 * catzilla_* calls (usable sizes).  -ENOTSUP in other builds.  Any thread. */
CZ_API long long catzilla_memory_live_bytes(enum catzilla_arena_kind kind);

CZ_API void *catzilla_request_alloc(size_t size);
CZ_API void *catzilla_request_realloc(void *ptr, size_t size);
CZ_API void catzilla_request_free(void *ptr);
CZ_API void *catzilla_response_alloc(size_t size);
CZ_API void *catzilla_response_realloc(void *ptr, size_t size);
CZ_API void catzilla_response_free(void *ptr);
CZ_API void *catzilla_cache_alloc(size_t size);
CZ_API void *catzilla_cache_realloc(void *ptr, size_t size);
CZ_API void catzilla_cache_free(void *ptr);
CZ_API void *catzilla_static_alloc(size_t size);
CZ_API void *catzilla_static_realloc(void *ptr, size_t size);
CZ_API void catzilla_static_free(void *ptr);
CZ_API void *catzilla_task_alloc(size_t size);
CZ_API void *catzilla_task_realloc(void *ptr, size_t size);
CZ_API void catzilla_task_free(void *ptr);

/* Page-aligned allocation from the static arena (for io_uring registered
 * buffers), size rounded up to whole pages (0 gives one page); NULL on
 * failure.  Free with catzilla_static_free; catzilla_static_realloc does not
 * keep the alignment. */
CZ_API void *catzilla_static_alloc_aligned(size_t size);

/* Fill *out for the calling thread's arenas plus process totals (refreshed
 * through jemalloc's epoch).  It first flushes the calling thread's tcaches so
 * that freed objects no longer count as allocated.  Returns 0 or -errno. */
CZ_API int catzilla_memory_get_stats(struct catzilla_memory_stats *out);

/* Flush the calling thread's tcaches and purge unused dirty pages of its
 * arenas (of all arenas for a thread without arenas; malloc_trim on libc).
 * Live allocations are untouched.  Returns 0 or -errno. */
CZ_API int catzilla_memory_optimize(void);

/* Return the free pages of the calling thread's short-lived arenas (request,
 * response) to the kernel now, without flushing tcaches: what a busy worker
 * calls periodically so freed bodies are not kept for a whole decay period.
 * No-op without arenas and on libc.  Returns 0 or -errno. */
CZ_API int catzilla_memory_trim(void);

/* Memory pressure on the calling thread's arenas.  on: every kind but static
 * returns freed pages at once (dirty and muzzy decay 0, which also purges what
 * is dirty now); off: the decay times of the current options come back.
 * Static (registered buffers) is left alone: its blocks are few and live
 * long.  Without arenas, and on libc: on trims the heap, off does nothing.
 * Returns 0 or -errno. */
CZ_API int catzilla_memory_pressure(bool on);

/* "jemalloc" or "libc". */
CZ_API const char *catzilla_memory_allocator(void);

#ifdef __cplusplus
}
#endif
#endif
