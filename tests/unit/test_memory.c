/* Tests for src/core/memory.c: arenas per thread, ownership, stats deltas,
 * defaults and failure behaviour.  The same file runs against the libc build
 * (CZ_ALLOCATOR_LIBC), where jemalloc-only facts are skipped but the API
 * contract (contents, alignment, NULL on failure, stats call) is the same.
 * Assertions run on the Criterion thread; worker threads only record results.
 */
#include "catzilla/memory.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if !defined(CZ_ALLOCATOR_JEMALLOC) && !defined(CZ_ALLOCATOR_LIBC)
#define CZ_ALLOCATOR_JEMALLOC 1
#endif
#if CZ_ALLOCATOR_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define CZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CZ_ASAN 1
#endif
#endif

#ifdef CZ_ASAN
/* The layer promises NULL on impossible sizes; by default ASan's malloc (the
 * libc build's allocator under ASan) would abort instead. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif

#define KIB ((size_t)1024)
#define MIB (KIB * KIB)
#define NTHREADS 4
#define NKINDS CATZILLA_ARENA_MAX

static const enum catzilla_arena_kind kinds[NKINDS] = {
    CATZILLA_ARENA_REQUEST, CATZILLA_ARENA_RESPONSE, CATZILLA_ARENA_CACHE,
    CATZILLA_ARENA_STATIC,  CATZILLA_ARENA_TASK,
};

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 31u + 7u);
}

static void fill(unsigned char *p, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        p[i] = pattern(i);
}

static bool intact(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != pattern(i))
            return false;
    }
    return true;
}

static void run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size)
{
    pthread_t t[NTHREADS];

    cr_assert_leq(n, NTHREADS);
    for (int i = 0; i < n; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * arg_size), 0);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

#if CZ_ALLOCATOR_JEMALLOC
/* The arena jemalloc says owns p (UINT_MAX if the lookup fails). */
static unsigned arena_of(const void *p)
{
    unsigned idx = UINT_MAX;
    size_t len = sizeof(idx);

    if (mallctl("arenas.lookup", &idx, &len, &p, sizeof(p)) != 0)
        return UINT_MAX;
    return idx;
}

static unsigned read_unsigned(const char *name)
{
    unsigned v = UINT_MAX;
    size_t len = sizeof(v);

    cr_assert_eq(mallctl(name, &v, &len, NULL, 0), 0, "mallctl %s", name);
    return v;
}

static bool read_bool(const char *name)
{
    bool v = false;
    size_t len = sizeof(v);

    cr_assert_eq(mallctl(name, &v, &len, NULL, 0), 0, "mallctl %s", name);
    return v;
}

static ssize_t read_ssize(const char *name)
{
    ssize_t v = -2;
    size_t len = sizeof(v);

    cr_assert_eq(mallctl(name, &v, &len, NULL, 0), 0, "mallctl %s", name);
    return v;
}

static ssize_t arena_decay(unsigned arena, const char *which)
{
    char name[64];
    ssize_t v = -2;
    size_t len = sizeof(v);

    snprintf(name, sizeof(name), "arena.%u.%s_decay_ms", arena, which);
    cr_assert_eq(mallctl(name, &v, &len, NULL, 0), 0, "mallctl %s", name);
    return v;
}

/* Arena indices below this are jemalloc's automatic ones (plus its huge arena)
 * in a fresh test process, before anything called arenas.create. */
static unsigned first_manual_arena(void)
{
    return read_unsigned("arenas.narenas");
}
#endif

/* ---- arenas per thread ------------------------------------------------ */

struct arena_probe {
    pthread_barrier_t *barrier;
    int init_rc;
    int index[NKINDS];
    unsigned small_owner[NKINDS];
    unsigned large_owner[NKINDS];
};

static void *arena_probe_thread(void *arg)
{
    struct arena_probe *a = arg;

    a->init_rc = catzilla_memory_thread_init();
    for (int k = 0; k < NKINDS; k++) {
        void *small = catzilla_alloc(kinds[k], 64);
        void *large = catzilla_alloc(kinds[k], MIB);

        a->index[k] = catzilla_memory_arena_index(kinds[k]);
#if CZ_ALLOCATOR_JEMALLOC
        a->small_owner[k] = arena_of(small);
        a->large_owner[k] = arena_of(large);
#endif
        catzilla_free(kinds[k], small);
        catzilla_free(kinds[k], large);
    }
    /* Keep every thread's arenas alive until all have reported: an exited
     * thread parks its arenas and the next thread_init may reuse them. */
    pthread_barrier_wait(a->barrier);
    catzilla_memory_thread_exit();
    return NULL;
}

Test(memory, each_thread_gets_five_distinct_arenas)
{
    struct arena_probe probes[NTHREADS] = {0};
    pthread_barrier_t barrier;
#if CZ_ALLOCATOR_JEMALLOC
    unsigned first_manual = first_manual_arena();
#endif

    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++)
        probes[i].barrier = &barrier;
    run_threads(NTHREADS, arena_probe_thread, probes, sizeof(probes[0]));
    pthread_barrier_destroy(&barrier);

    for (int i = 0; i < NTHREADS; i++) {
        cr_assert_eq(probes[i].init_rc, 0, "thread %d: thread_init = %d", i, probes[i].init_rc);
        for (int k = 0; k < NKINDS; k++) {
            int idx = probes[i].index[k];
#if CZ_ALLOCATOR_JEMALLOC
            cr_assert_neq(idx, 0, "the default arena must never be a worker arena");
            cr_assert_geq(idx, (int)first_manual, "arena %d is an automatic arena", idx);
            for (int j = 0; j <= i; j++) {
                for (int l = 0; l < NKINDS; l++) {
                    if (j == i && l == k)
                        continue;
                    cr_assert_neq(idx, probes[j].index[l], "arena %d shared", idx);
                }
            }
#else
            cr_assert_eq(idx, -ENOTSUP, "the libc build has no arenas");
#endif
        }
    }
}

Test(memory, allocations_are_owned_by_the_calling_threads_arena_of_that_kind)
{
    struct arena_probe probes[NTHREADS] = {0};
    pthread_barrier_t barrier;

    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++)
        probes[i].barrier = &barrier;
    run_threads(NTHREADS, arena_probe_thread, probes, sizeof(probes[0]));
    pthread_barrier_destroy(&barrier);

#if CZ_ALLOCATOR_JEMALLOC
    for (int i = 0; i < NTHREADS; i++) {
        for (int k = 0; k < NKINDS; k++) {
            unsigned want = (unsigned)probes[i].index[k];

            cr_assert_eq(probes[i].small_owner[k], want, "thread %d kind %d: 64 B in arena %u", i,
                         k, probes[i].small_owner[k]);
            cr_assert_eq(probes[i].large_owner[k], want, "thread %d kind %d: 1 MiB in arena %u", i,
                         k, probes[i].large_owner[k]);
        }
    }
#else
    cr_assert_eq(probes[0].init_rc, 0);
#endif
}

Test(memory, thread_init_is_idempotent)
{
    int first[NKINDS];

    cr_assert_eq(catzilla_memory_thread_init(), 0);
    for (int k = 0; k < NKINDS; k++)
        first[k] = catzilla_memory_arena_index(kinds[k]);
    cr_assert_eq(catzilla_memory_thread_init(), 0);
    for (int k = 0; k < NKINDS; k++)
        cr_assert_eq(catzilla_memory_arena_index(kinds[k]), first[k]);
    catzilla_memory_thread_exit();
    cr_assert_lt(catzilla_memory_arena_index(CATZILLA_ARENA_REQUEST), 0);
#if CZ_ALLOCATOR_JEMALLOC
    cr_assert_eq(catzilla_memory_arena_index(CATZILLA_ARENA_REQUEST), -ENOENT);
#else
    cr_assert_eq(catzilla_memory_arena_index(CATZILLA_ARENA_REQUEST), -ENOTSUP);
#endif
    catzilla_memory_thread_exit(); /* second exit: no-op */
}

/* ---- stats ------------------------------------------------------------ */

static struct catzilla_memory_stats stats_now(void)
{
    struct catzilla_memory_stats s;

    cr_assert_eq(catzilla_memory_get_stats(&s), 0);
    return s;
}

Test(memory, stats_follow_a_large_allocation_and_its_free)
{
    enum { T = CATZILLA_ARENA_TASK, C = CATZILLA_ARENA_CACHE };
    const size_t slack = 64 * KIB;
    struct catzilla_memory_stats before, during, after;
    unsigned char *p;

    cr_assert_eq(catzilla_memory_thread_init(), 0);
    before = stats_now();
    p = catzilla_task_alloc(MIB);
    cr_assert_not_null(p);
    memset(p, 0xab, MIB);
    during = stats_now();
    catzilla_task_free(p);
    after = stats_now();

    cr_assert_str_eq(during.allocator, catzilla_memory_allocator());
#if CZ_ALLOCATOR_JEMALLOC
    cr_assert(during.per_arena);
    size_t grew = during.arenas[T].allocated - before.arenas[T].allocated;
    cr_assert_geq(grew, MIB, "task arena allocated grew by %zu", grew);
    cr_assert_lt(grew, MIB + slack, "task arena allocated grew by %zu", grew);
    cr_assert_geq(during.arenas[T].active - before.arenas[T].active, MIB);
    cr_assert_geq(during.arenas[T].active, during.arenas[T].allocated);
    /* Other kinds are untouched: each kind really is its own arena. */
    cr_assert_eq(during.arenas[C].allocated, before.arenas[C].allocated);
    cr_assert_eq(after.arenas[T].allocated, before.arenas[T].allocated,
                 "after free: %zu, before: %zu", after.arenas[T].allocated,
                 before.arenas[T].allocated);
    cr_assert_geq(during.process.allocated - before.process.allocated, MIB);
#else
    cr_assert_not(during.per_arena);
#ifndef CZ_ASAN /* mallinfo2 cannot see ASan's heap */
    cr_assert_geq(during.process.allocated - before.process.allocated, MIB);
#endif
#endif
    (void)before;
    (void)slack;
    (void)after;
    catzilla_memory_thread_exit();
}

Test(memory, stats_follow_small_allocations_exactly)
{
    enum { T = CATZILLA_ARENA_TASK, N = 1000, SZ = 64 };
    struct catzilla_memory_stats before, during, after;
    static void *blocks[N];

    cr_assert_eq(catzilla_memory_thread_init(), 0);
    /* Warm the tcache so the measured round trip is not the first fill. */
    for (int i = 0; i < N; i++)
        blocks[i] = catzilla_task_alloc(SZ);
    for (int i = 0; i < N; i++)
        catzilla_task_free(blocks[i]);

    before = stats_now();
    for (int i = 0; i < N; i++) {
        blocks[i] = catzilla_task_alloc(SZ);
        cr_assert_not_null(blocks[i]);
    }
    during = stats_now();
    for (int i = 0; i < N; i++)
        catzilla_task_free(blocks[i]);
    after = stats_now();

#if CZ_ALLOCATOR_JEMALLOC
    /* get_stats flushes the thread's tcaches, so objects cached for reuse do
     * not count: the deltas are exact for a size that is its own size class. */
    cr_assert_eq(during.arenas[T].allocated - before.arenas[T].allocated, (size_t)N * SZ,
                 "grew by %zu", during.arenas[T].allocated - before.arenas[T].allocated);
    cr_assert_eq(after.arenas[T].allocated, before.arenas[T].allocated);
    cr_assert_eq(during.thread_total.allocated - before.thread_total.allocated, (size_t)N * SZ);
#else
    (void)before;
    (void)during;
    (void)after;
#endif
    catzilla_memory_thread_exit();
}

Test(memory, stats_thread_total_is_the_sum_and_fragmentation_is_a_ratio)
{
    struct catzilla_memory_stats s;
    void *keep[NKINDS];

    cr_assert_eq(catzilla_memory_thread_init(), 0);
    for (int k = 0; k < NKINDS; k++)
        keep[k] = catzilla_alloc(kinds[k], 100 + (size_t)k * 5000);
    s = stats_now();
    cr_assert_eq(catzilla_memory_get_stats(NULL), -EINVAL);

    size_t alloc = 0, active = 0, resident = 0, meta = 0;
    for (int k = 0; k < NKINDS; k++) {
        const struct catzilla_arena_stats *a = &s.arenas[k];

        cr_assert(a->fragmentation >= 0.0 && a->fragmentation <= 1.0);
#if CZ_ALLOCATOR_JEMALLOC
        cr_assert_eq(a->index, (unsigned)catzilla_memory_arena_index(kinds[k]));
        cr_assert_gt(a->allocated, 0);
        cr_assert_geq(a->active, a->allocated);
        cr_assert_gt(a->metadata, 0);
#else
        cr_assert_eq(a->index, UINT_MAX);
#endif
        alloc += a->allocated;
        active += a->active;
        resident += a->resident;
        meta += a->metadata;
    }
    cr_assert_eq(s.thread_total.allocated, alloc);
    cr_assert_eq(s.thread_total.active, active);
    cr_assert_eq(s.thread_total.resident, resident);
    cr_assert_eq(s.thread_total.metadata, meta);
    cr_assert(s.thread_total.fragmentation >= 0.0 && s.thread_total.fragmentation <= 1.0);
#if CZ_ALLOCATOR_JEMALLOC
    cr_assert_gt(s.process.allocated, 0);
    cr_assert_geq(s.process.active, s.process.allocated);
    cr_assert_gt(s.process.resident, 0);
    cr_assert_gt(s.process.metadata, 0);
    cr_assert_geq(s.process.mapped, s.process.active);
#endif
    for (int k = 0; k < NKINDS; k++)
        catzilla_free(kinds[k], keep[k]);
    catzilla_memory_thread_exit();
}

/* ---- realloc, alignment, edge sizes ------------------------------------ */

static void grow_and_check(enum catzilla_arena_kind kind)
{
    static const size_t steps[] = {16, 100, 4000, 70000, 300000, MIB, 1000, 16};
    unsigned char *p = NULL;
    size_t have = 0;

    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        size_t want = steps[s];

        p = catzilla_realloc(kind, p, want);
        cr_assert_not_null(p, "realloc to %zu", want);
        cr_assert(intact(p, have < want ? have : want), "contents lost at %zu -> %zu", have, want);
#if CZ_ALLOCATOR_JEMALLOC
        int idx = catzilla_memory_arena_index(kind);
        if (idx >= 0)
            cr_assert_eq(arena_of(p), (unsigned)idx, "moved to arena %u at %zu", arena_of(p), want);
#endif
        fill(p, have < want ? have : want, want);
        have = want;
    }
    cr_assert_null(catzilla_realloc(kind, p, 0), "realloc to 0 frees and returns NULL");
}

Test(memory, realloc_keeps_contents_and_arena)
{
    cr_assert_eq(catzilla_memory_thread_init(), 0);
    for (int k = 0; k < NKINDS; k++)
        grow_and_check(kinds[k]);
    /* The per-kind entry points are the same paths. */
    unsigned char *p = catzilla_task_realloc(NULL, 10);
    fill(p, 0, 10);
    p = catzilla_task_realloc(p, 200000);
    cr_assert(intact(p, 10));
    catzilla_task_free(p);
    catzilla_memory_thread_exit();
}

Test(memory, static_alloc_aligned_is_page_aligned_and_in_the_static_arena)
{
    static const size_t sizes[] = {0,     1,   100,        4095, 4096, 4097, 3 * 4096 + 1,
                                   65536, MIB, 5 * MIB + 3};
    const size_t page = page_size();

    cr_assert_eq(catzilla_memory_thread_init(), 0);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t rounded = sizes[i] == 0 ? page : (sizes[i] + page - 1) / page * page;
        unsigned char *p = catzilla_static_alloc_aligned(sizes[i]);

        cr_assert_not_null(p, "size %zu", sizes[i]);
        cr_assert_eq((uintptr_t)p % page, 0, "size %zu at %p", sizes[i], (void *)p);
        memset(p, 0x5a, rounded); /* the whole rounded size is usable */
#if CZ_ALLOCATOR_JEMALLOC
        cr_assert_eq(arena_of(p), (unsigned)catzilla_memory_arena_index(CATZILLA_ARENA_STATIC),
                     "size %zu in arena %u", sizes[i], arena_of(p));
#endif
        catzilla_static_free(p);
    }
    cr_assert_null(catzilla_static_alloc_aligned(SIZE_MAX));
    cr_assert_null(catzilla_static_alloc_aligned(SIZE_MAX - page));
    catzilla_memory_thread_exit();
}

Test(memory, size_zero_gives_unique_pointers_and_free_null_is_a_noop)
{
    cr_assert_eq(catzilla_memory_thread_init(), 0);
    for (int k = 0; k < NKINDS; k++) {
        void *a = catzilla_alloc(kinds[k], 0);
        void *b = catzilla_alloc(kinds[k], 0);

        cr_assert_not_null(a);
        cr_assert_not_null(b);
        cr_assert_neq(a, b);
        catzilla_free(kinds[k], a);
        cr_assert_null(catzilla_realloc(kinds[k], b, 0));
        catzilla_free(kinds[k], NULL);
        a = catzilla_realloc(kinds[k], NULL, 0);
        cr_assert_not_null(a);
        catzilla_free(kinds[k], a);
    }
    catzilla_request_free(NULL);
    catzilla_static_free(NULL);
    catzilla_memory_thread_exit();
}

Test(memory, invalid_kind_is_rejected_not_asserted)
{
    const enum catzilla_arena_kind bad = (enum catzilla_arena_kind)CATZILLA_ARENA_MAX;
    void *p;

    cr_assert_eq(catzilla_memory_thread_init(), 0);
    cr_assert_null(catzilla_alloc(bad, 16));
    cr_assert_null(catzilla_realloc(bad, NULL, 16));
    cr_assert_eq(catzilla_memory_arena_index(bad), -EINVAL);
    p = catzilla_cache_alloc(16);
    catzilla_free(bad, p); /* still released, bypassing every tcache */
    catzilla_memory_thread_exit();
}

Test(memory, impossible_sizes_return_null_without_aborting)
{
    const size_t huge[] = {SIZE_MAX / 2, SIZE_MAX, SIZE_MAX - 4096};

    cr_assert_eq(catzilla_memory_thread_init(), 0);
    for (int k = 0; k < NKINDS; k++) {
        unsigned char *keep = catzilla_alloc(kinds[k], 64);

        fill(keep, 0, 64);
        for (size_t h = 0; h < sizeof(huge) / sizeof(huge[0]); h++) {
            cr_assert_null(catzilla_alloc(kinds[k], huge[h]), "kind %d size %zu", k, huge[h]);
            cr_assert_null(catzilla_realloc(kinds[k], keep, huge[h]));
            cr_assert(intact(keep, 64), "a failed realloc must leave the block alone");
        }
        catzilla_free(kinds[k], keep);
    }
    cr_assert_null(catzilla_request_alloc(SIZE_MAX / 2));
    cr_assert_null(catzilla_static_alloc_aligned(SIZE_MAX / 2));
    catzilla_memory_thread_exit();
}

/* ---- threads without arenas -------------------------------------------- */

struct fallback_probe {
    int index[NKINDS];
    bool data_ok;
    bool all_allocated;
    int stats_rc, optimize_rc;
    struct catzilla_memory_stats stats;
    unsigned owner[NKINDS];
};

static void *fallback_thread(void *arg)
{
    struct fallback_probe *f = arg;

    f->data_ok = true;
    f->all_allocated = true;
    for (int k = 0; k < NKINDS; k++) {
        unsigned char *small = catzilla_alloc(kinds[k], 48);
        unsigned char *large = catzilla_alloc(kinds[k], 2 * MIB);

        f->index[k] = catzilla_memory_arena_index(kinds[k]);
        if (small == NULL || large == NULL) {
            f->all_allocated = false;
            continue;
        }
        fill(small, 0, 48);
        fill(large, 0, 2 * MIB);
        small = catzilla_realloc(kinds[k], small, 5000);
        f->data_ok = f->data_ok && small != NULL && intact(small, 48) && intact(large, 2 * MIB);
#if CZ_ALLOCATOR_JEMALLOC
        f->owner[k] = arena_of(large);
#endif
        catzilla_free(kinds[k], small);
        catzilla_free(kinds[k], large);
    }
    void *al = catzilla_static_alloc_aligned(10000);
    f->all_allocated = f->all_allocated && al != NULL && (uintptr_t)al % page_size() == 0;
    catzilla_static_free(al);
    f->stats_rc = catzilla_memory_get_stats(&f->stats);
    f->optimize_rc = catzilla_memory_optimize();
    catzilla_memory_thread_exit(); /* without init: a no-op */
    return NULL;
}

Test(memory, thread_without_init_uses_default_arenas)
{
    struct fallback_probe f;

    memset(&f, 0, sizeof(f));
#if CZ_ALLOCATOR_JEMALLOC
    unsigned first_manual = first_manual_arena();
#endif
    run_threads(1, fallback_thread, &f, sizeof(f));

    cr_assert(f.all_allocated);
    cr_assert(f.data_ok);
    cr_assert_eq(f.stats_rc, 0);
    cr_assert_eq(f.optimize_rc, 0);
    cr_assert_not(f.stats.per_arena);
    cr_assert_str_eq(f.stats.allocator, catzilla_memory_allocator());
    for (int k = 0; k < NKINDS; k++) {
        cr_assert_lt(f.index[k], 0);
        cr_assert_eq(f.stats.arenas[k].index, UINT_MAX);
#if CZ_ALLOCATOR_JEMALLOC
        cr_assert_lt(f.owner[k], first_manual, "fallback went to manual arena %u", f.owner[k]);
#endif
    }
    cr_assert_eq(f.stats.thread_total.index, UINT_MAX);
}

/* ---- thread.arena: stray malloc() stays on the core --------------------- */

Test(memory, thread_arena_is_the_request_arena_until_thread_exit)
{
#if CZ_ALLOCATOR_JEMALLOC
    unsigned before = read_unsigned("thread.arena");

    cr_assert_eq(catzilla_memory_thread_init(), 0);
    unsigned req = (unsigned)catzilla_memory_arena_index(CATZILLA_ARENA_REQUEST);
    cr_assert_eq(read_unsigned("thread.arena"), req);
#ifndef CZ_ASAN
    /* Under ASan malloc() is ASan's allocator, not jemalloc's: arenas.lookup
     * would be asked about memory jemalloc never saw. */
    void *small = malloc(40);
    void *large = malloc(3 * MIB);
    cr_assert_eq(arena_of(small), req, "malloc(40) landed in arena %u", arena_of(small));
    cr_assert_eq(arena_of(large), req, "malloc(3 MiB) landed in arena %u", arena_of(large));
    free(small);
    free(large);
#endif
    catzilla_memory_thread_exit();
    cr_assert_eq(read_unsigned("thread.arena"), before);
#else
    cr_assert_eq(catzilla_memory_thread_init(), 0);
    cr_assert_eq(catzilla_memory_arena_index(CATZILLA_ARENA_REQUEST), -ENOTSUP);
    catzilla_memory_thread_exit();
#endif
}

/* ---- optimize ------------------------------------------------------------ */

Test(memory, optimize_keeps_live_data)
{
    enum { N = 200 };
    static unsigned char *blocks[NKINDS][N];
    struct catzilla_memory_stats s;

    cr_assert_eq(catzilla_memory_thread_init(), 0);
    for (int k = 0; k < NKINDS; k++) {
        for (int i = 0; i < N; i++) {
            size_t sz = 32 + (size_t)i * 997;

            blocks[k][i] = catzilla_alloc(kinds[k], sz);
            cr_assert_not_null(blocks[k][i]);
            fill(blocks[k][i], 0, sz);
        }
        /* Free every other block so there is something to purge. */
        for (int i = 0; i < N; i += 2) {
            catzilla_free(kinds[k], blocks[k][i]);
            blocks[k][i] = NULL;
        }
    }
    cr_assert_eq(catzilla_memory_optimize(), 0);
    for (int k = 0; k < NKINDS; k++) {
        for (int i = 1; i < N; i += 2)
            cr_assert(intact(blocks[k][i], 32 + (size_t)i * 997), "kind %d block %d", k, i);
    }
    s = stats_now();
    for (int k = 0; k < NKINDS; k++)
        cr_assert(s.arenas[k].fragmentation >= 0.0 && s.arenas[k].fragmentation <= 1.0);
    cr_assert(s.thread_total.fragmentation >= 0.0 && s.thread_total.fragmentation <= 1.0);
    for (int k = 0; k < NKINDS; k++) {
        for (int i = 1; i < N; i += 2)
            catzilla_free(kinds[k], blocks[k][i]);
    }
    catzilla_memory_thread_exit();
    cr_assert_eq(catzilla_memory_optimize(), 0, "without arenas it purges all arenas");
}

/* ---- process options ----------------------------------------------------- */

Test(memory, init_options_apply_to_arenas_created_afterwards)
{
    struct catzilla_memory_options o = {.background_thread = -1,
                                        .dirty_decay_ms = 5000,
                                        .muzzy_decay_ms = 7000,
                                        .metadata_thp = NULL};

    cr_assert_eq(catzilla_memory_init(&o), 0);
    cr_assert_eq(catzilla_memory_init(NULL), 0, "a second call is harmless");
    cr_assert_eq(catzilla_memory_thread_init(), 0);
#if CZ_ALLOCATOR_JEMALLOC
    for (int k = 0; k < NKINDS; k++) {
        unsigned a = (unsigned)catzilla_memory_arena_index(kinds[k]);

        cr_assert_eq(arena_decay(a, "dirty"), 5000, "arena %u", a);
        cr_assert_eq(arena_decay(a, "muzzy"), 7000, "arena %u", a);
    }
    /* The automatic arenas were created before: they keep the start-up value. */
    cr_assert_eq(arena_decay(0, "dirty"), read_ssize("opt.dirty_decay_ms"));
#endif
    catzilla_memory_thread_exit();
}

/* Per-kind decay: the short-lived kinds can give their pages back at once
 * while the long-lived ones keep the process default; -1 keeps it too. */
Test(memory, per_kind_decay_overrides_the_default)
{
    struct catzilla_memory_options o = {.background_thread = -1,
                                        .dirty_decay_ms = 5000,
                                        .muzzy_decay_ms = 7000,
                                        .kind_decay = true,
                                        .kind_dirty_decay_ms = {0, 100, -1, -1, 2000},
                                        .kind_muzzy_decay_ms = {0, 0, -1, 9000, -1}};

    cr_assert_eq(catzilla_memory_init(&o), 0);
    cr_assert_eq(catzilla_memory_thread_init(), 0);
#if CZ_ALLOCATOR_JEMALLOC
    static const ssize_t dirty[NKINDS] = {0, 100, 5000, 5000, 2000};
    static const ssize_t muzzy[NKINDS] = {0, 0, 7000, 9000, 7000};
    for (int k = 0; k < NKINDS; k++) {
        unsigned a = (unsigned)catzilla_memory_arena_index(kinds[k]);

        cr_assert_eq(arena_decay(a, "dirty"), dirty[k], "kind %d", k);
        cr_assert_eq(arena_decay(a, "muzzy"), muzzy[k], "kind %d", k);
    }
#endif
    catzilla_memory_thread_exit();
    /* Back to no overrides for the tests that follow in this process. */
    struct catzilla_memory_options reset = {.background_thread = -1,
                                            .dirty_decay_ms = -1,
                                            .muzzy_decay_ms = -1,
                                            .kind_decay = true,
                                            .kind_dirty_decay_ms = {-1, -1, -1, -1, -1},
                                            .kind_muzzy_decay_ms = {-1, -1, -1, -1, -1}};
    cr_assert_eq(catzilla_memory_init(&reset), 0);
}

#if CZ_ALLOCATOR_JEMALLOC
/* Small bytes arena a holds as seen by jemalloc, tcache contents included. */
static size_t arena_small_allocated(unsigned a)
{
    char name[64];
    uint64_t epoch = 1;
    size_t v = 0, len = sizeof(v);

    cr_assert_eq(mallctl("epoch", NULL, NULL, &epoch, sizeof(epoch)), 0);
    snprintf(name, sizeof(name), "stats.arenas.%u.small.allocated", a);
    cr_assert_eq(mallctl(name, &v, &len, NULL, 0), 0);
    return v;
}
#endif

/* A freed object stays in a kind's tcache (still "allocated" to jemalloc)
 * only when that kind has one. */
Test(memory, per_kind_tcache_can_be_turned_off)
{
    struct catzilla_memory_options o = {.background_thread = -1,
                                        .dirty_decay_ms = -1,
                                        .muzzy_decay_ms = -1,
                                        .kind_tcache_set = true,
                                        .kind_tcache = {true, true, true, false, false}};

    cr_assert_eq(catzilla_memory_init(&o), 0);
    cr_assert_eq(catzilla_memory_thread_init(), 0);
#if CZ_ALLOCATOR_JEMALLOC
    if (!read_bool("opt.tcache"))
        cr_skip_test("tcache disabled through MALLOC_CONF");
    for (int k = 0; k < NKINDS; k++) {
        unsigned a = (unsigned)catzilla_memory_arena_index(kinds[k]);
        size_t before = arena_small_allocated(a);
        void *p = catzilla_alloc(kinds[k], 48);

        cr_assert_not_null(p);
        catzilla_free(kinds[k], p);
        size_t after = arena_small_allocated(a);
        if (o.kind_tcache[k])
            cr_assert_gt(after, before, "kind %d: the object waits in its tcache", k);
        else
            cr_assert_eq(after, before, "kind %d: the object went straight home", k);
    }
#endif
    catzilla_memory_thread_exit();
    struct catzilla_memory_options reset = {.background_thread = -1,
                                            .dirty_decay_ms = -1,
                                            .muzzy_decay_ms = -1,
                                            .kind_tcache_set = true,
                                            .kind_tcache = {true, true, true, true, true}};
    cr_assert_eq(catzilla_memory_init(&reset), 0);
}

/* trim gives the free pages of the request and response arenas back at once,
 * whatever their decay time. */
Test(memory, trim_returns_the_short_lived_arenas_free_pages)
{
    cr_assert_eq(catzilla_memory_thread_init(), 0);
#if CZ_ALLOCATOR_JEMALLOC
    for (int k = CATZILLA_ARENA_REQUEST; k <= CATZILLA_ARENA_RESPONSE; k++) {
        unsigned a = (unsigned)catzilla_memory_arena_index(kinds[k]);
        char name[64];
        ssize_t forever = 3600000;
        snprintf(name, sizeof(name), "arena.%u.dirty_decay_ms", a);
        cr_assert_eq(mallctl(name, NULL, NULL, &forever, sizeof(forever)), 0);
        char *p = catzilla_alloc(kinds[k], 2 << 20);
        memset(p, 1, 2 << 20);
        catzilla_free(kinds[k], p);
        snprintf(name, sizeof(name), "stats.arenas.%u.pdirty", a);
        uint64_t epoch = 1;
        size_t dirty = 0, len = sizeof(dirty);
        cr_assert_eq(mallctl("epoch", NULL, NULL, &epoch, sizeof(epoch)), 0);
        cr_assert_eq(mallctl(name, &dirty, &len, NULL, 0), 0);
        cr_assert_geq(dirty, (size_t)(2 << 20) / 4096, "kind %d: the freed block stays dirty", k);
        cr_assert_eq(catzilla_memory_trim(), 0);
        cr_assert_eq(mallctl("epoch", NULL, NULL, &epoch, sizeof(epoch)), 0);
        cr_assert_eq(mallctl(name, &dirty, &len, NULL, 0), 0);
        cr_assert_eq(dirty, 0, "kind %d: trim purged it", k);
    }
#else
    cr_assert_eq(catzilla_memory_trim(), 0);
#endif
    catzilla_memory_thread_exit();
}

struct index_probe {
    int index[NKINDS];
};

static void *init_exit_thread(void *arg)
{
    struct index_probe *p = arg;
    void *v;

    catzilla_memory_thread_init();
    for (int k = 0; k < NKINDS; k++)
        p->index[k] = catzilla_memory_arena_index(kinds[k]);
    v = catzilla_task_alloc(4096);
    catzilla_task_free(v);
    catzilla_memory_thread_exit();
    return NULL;
}

static bool same_set(const int *a, const int *b)
{
    for (int i = 0; i < NKINDS; i++) {
        bool found = false;

        for (int j = 0; j < NKINDS; j++)
            found = found || a[i] == b[j];
        if (!found)
            return false;
    }
    return true;
}

Test(memory, init_options_also_apply_to_recycled_arenas)
{
    struct index_probe first;
    struct catzilla_memory_options o = {.background_thread = -1,
                                        .dirty_decay_ms = 4000,
                                        .muzzy_decay_ms = -1,
                                        .metadata_thp = NULL};
    int now[NKINDS];

    run_threads(1, init_exit_thread, &first, sizeof(first));
    cr_assert_eq(catzilla_memory_init(&o), 0);
    cr_assert_eq(catzilla_memory_thread_init(), 0);
    for (int k = 0; k < NKINDS; k++)
        now[k] = catzilla_memory_arena_index(kinds[k]);
#if CZ_ALLOCATOR_JEMALLOC
    cr_assert(same_set(now, first.index), "the exited thread's arenas are reused");
    for (int k = 0; k < NKINDS; k++) {
        cr_assert_eq(arena_decay((unsigned)now[k], "dirty"), 4000);
        cr_assert_eq(arena_decay((unsigned)now[k], "muzzy"), read_ssize("opt.muzzy_decay_ms"),
                     "-1 keeps the default");
    }
#else
    (void)now;
#endif
    catzilla_memory_thread_exit();
}

Test(memory, malloc_conf_defaults_are_honoured)
{
#if CZ_ALLOCATOR_JEMALLOC
    const char *thp = NULL;
    size_t len = sizeof(thp);

    if (getenv("MALLOC_CONF") != NULL)
        cr_skip_test("MALLOC_CONF is set in the environment and overrides malloc_conf");
    cr_assert_eq(mallctl("opt.metadata_thp", &thp, &len, NULL, 0), 0);
    cr_assert_str_eq(thp, "disabled");
    cr_assert(read_bool("opt.background_thread"));
    cr_assert_eq(read_unsigned("opt.narenas"), 1, "one automatic arena for non-worker threads");
    /* jemalloc's own muzzy default is 0: 30000 can only come from malloc_conf. */
    cr_assert_eq(read_ssize("opt.muzzy_decay_ms"), 30000);
    cr_assert_eq(read_ssize("opt.dirty_decay_ms"), 10000);
#else
    cr_assert_str_eq(catzilla_memory_allocator(), "libc");
#endif
}

Test(memory, init_toggles_background_thread)
{
    struct catzilla_memory_options off = {
        .background_thread = 0, .dirty_decay_ms = -1, .muzzy_decay_ms = -1};
    struct catzilla_memory_options on = off;

    on.background_thread = 1;
    cr_assert_eq(catzilla_memory_init(&off), 0);
#if CZ_ALLOCATOR_JEMALLOC
    cr_assert_not(read_bool("background_thread"));
#endif
    cr_assert_eq(catzilla_memory_init(&on), 0);
#if CZ_ALLOCATOR_JEMALLOC
    cr_assert(read_bool("background_thread"));
#endif
}

Test(memory, init_validates_options)
{
    struct catzilla_memory_options o = {.background_thread = -1,
                                        .dirty_decay_ms = -1,
                                        .muzzy_decay_ms = -1,
                                        .metadata_thp = "bogus"};

    const char *running = "disabled";
#if CZ_ALLOCATOR_JEMALLOC
    size_t len = sizeof(running);

    cr_assert_eq(mallctl("opt.metadata_thp", &running, &len, NULL, 0), 0);
#endif

    cr_assert_eq(catzilla_memory_init(&o), -EINVAL);
    o.metadata_thp = running;
    cr_assert_eq(catzilla_memory_init(&o), 0, "the running value is accepted");
    o.background_thread = 2;
    cr_assert_eq(catzilla_memory_init(&o), -EINVAL);
    o.background_thread = -1;
#if CZ_ALLOCATOR_JEMALLOC
    o.metadata_thp = strcmp(running, "always") != 0 ? "always" : "disabled";
    cr_assert_eq(catzilla_memory_init(&o), -ENOTSUP, "metadata_thp is start-up only");
    o.metadata_thp = NULL;
    o.dirty_decay_ms = LONG_MAX;
    cr_assert_lt(catzilla_memory_init(&o), 0, "jemalloc rejects an absurd decay time");

    /* A rejected value must not leave the set half applied. */
    o.dirty_decay_ms = 1234;
    o.muzzy_decay_ms = LONG_MAX;
    cr_assert_lt(catzilla_memory_init(&o), 0);
    cr_assert_neq(read_ssize("arenas.dirty_decay_ms"), 1234,
                  "dirty_decay_ms applied although muzzy was rejected");
#endif
}

/* ---- thread exit --------------------------------------------------------- */

Test(memory, thread_exit_recycles_arenas_instead_of_leaking_them)
{
    enum { CYCLES = 8 };
    struct index_probe runs[CYCLES];

#if CZ_ALLOCATOR_JEMALLOC
    unsigned narenas_before = read_unsigned("arenas.narenas");
#endif
    for (int i = 0; i < CYCLES; i++)
        run_threads(1, init_exit_thread, &runs[i], sizeof(runs[i]));
#if CZ_ALLOCATOR_JEMALLOC
    cr_assert_leq(read_unsigned("arenas.narenas") - narenas_before, NKINDS,
                  "repeated worker start/stop must not create new arenas each time");
#else
    cr_assert_lt(runs[CYCLES - 1].index[0], 0);
#endif
    for (int i = 1; i < CYCLES; i++)
        cr_assert(same_set(runs[i].index, runs[0].index), "cycle %d used other arenas", i);
}

struct leftover {
    unsigned char *small, *large;
};

static void *allocate_and_exit_thread(void *arg)
{
    struct leftover *l = arg;

    catzilla_memory_thread_init();
    l->small = catzilla_cache_alloc(200);
    l->large = catzilla_cache_alloc(MIB);
    if (l->small != NULL && l->large != NULL) {
        fill(l->small, 0, 200);
        fill(l->large, 0, MIB);
    }
    catzilla_memory_thread_exit();
    return NULL;
}

Test(memory, memory_freed_after_its_threads_exit_stays_valid)
{
    struct leftover l = {0};
    struct index_probe again;

    /* The rule is "free before thread_exit"; breaking it must not corrupt the
     * heap, because arenas are parked rather than destroyed. */
    run_threads(1, allocate_and_exit_thread, &l, sizeof(l));
    cr_assert_not_null(l.small);
    cr_assert_not_null(l.large);
    cr_assert(intact(l.small, 200));
    cr_assert(intact(l.large, MIB));
    run_threads(1, init_exit_thread, &again, sizeof(again)); /* reuses those arenas */
    cr_assert(intact(l.small, 200));
    cr_assert(intact(l.large, MIB));
    catzilla_cache_free(l.small);
    catzilla_cache_free(l.large);
}

static void *strerror_thread(void *arg)
{
    int *rc = arg;

    *rc = catzilla_memory_thread_init();
    /* An unknown errno makes glibc malloc() a message buffer in thread-local
     * storage (through thread.arena, i.e. the request arena) and free() it only
     * at pthread exit, after thread_exit.  A destroyed arena crashed here. */
    if (strerror(123456) == NULL)
        *rc = -1;
    catzilla_memory_thread_exit();
    return NULL;
}

Test(memory, glibc_frees_at_pthread_exit_survive_thread_exit)
{
    int rc[2] = {-1, -1};

    run_threads(1, strerror_thread, &rc[0], sizeof(rc[0]));
    run_threads(1, strerror_thread, &rc[1], sizeof(rc[1]));
    cr_assert_eq(rc[0], 0);
    cr_assert_eq(rc[1], 0);
    for (int i = 0; i < 1000; i++)
        free(malloc((size_t)i * 8 + 1));
}

#if CZ_ALLOCATOR_JEMALLOC
static long mem_available_kib(void)
{
    char line[128];
    long kib = -1;
    FILE *f = fopen("/proc/meminfo", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "MemAvailable: %ld kB", &kib) == 1)
            break;
    }
    fclose(f);
    return kib;
}

static void destroy_arena(unsigned a)
{
    char name[64];

    snprintf(name, sizeof(name), "arena.%u.destroy", a);
    cr_assert_eq(mallctl(name, NULL, NULL, NULL, 0), 0, "%s", name);
}

/* The only portable way to make arenas.create fail is to use up jemalloc's
 * arena limit (about 4090 arenas, ~90 KiB of metadata each). */
Test(memory, failed_thread_init_unwinds_and_falls_back, .timeout = 60)
{
    static unsigned made[8192];
    size_t n = 0, len;
    unsigned before = read_unsigned("thread.arena");
    int r;

    if (mem_available_kib() < 2L * 1024 * 1024)
        cr_skip_test("needs 2 GiB of available memory to exhaust jemalloc's arena limit");
    for (;;) {
        len = sizeof(made[n]);
        r = mallctl("arenas.create", &made[n], &len, NULL, 0);
        if (r != 0)
            break;
        cr_assert_lt(++n, sizeof(made) / sizeof(made[0]));
    }
    cr_assert_eq(r, EAGAIN);
    for (int i = 0; i < 3; i++)
        destroy_arena(made[--n]); /* room for 3 of the 5 arenas */

    cr_assert_eq(catzilla_memory_thread_init(), -EAGAIN);
    cr_assert_eq(catzilla_memory_arena_index(CATZILLA_ARENA_REQUEST), -ENOENT);
    cr_assert_eq(read_unsigned("thread.arena"), before, "thread.arena untouched on failure");
    void *p = catzilla_task_alloc(MIB);
    cr_assert_not_null(p, "the fallback path still allocates");
    cr_assert_lt(arena_of(p), first_manual_arena());
    catzilla_task_free(p);

    /* The 3 arenas the failed call created were parked, not lost: 2 more free
     * slots are enough now. */
    for (int i = 0; i < 2; i++)
        destroy_arena(made[--n]);
    cr_assert_eq(catzilla_memory_thread_init(), 0);
    p = catzilla_cache_alloc(64);
    cr_assert_eq(arena_of(p), (unsigned)catzilla_memory_arena_index(CATZILLA_ARENA_CACHE));
    catzilla_cache_free(p);
    catzilla_memory_thread_exit();
    while (n > 0)
        destroy_arena(made[--n]);
}
#endif

/* ---- concurrency ---------------------------------------------------------- */

struct churn {
    unsigned seed;
    bool ok;
};

static void *churn_thread(void *arg)
{
    enum { SLOTS = 256, OPS = 40000 };
    struct churn *c = arg;
    unsigned char *slot[SLOTS] = {0};
    size_t size[SLOTS] = {0};
    int kind_of[SLOTS] = {0};

    c->ok = catzilla_memory_thread_init() == 0;
    for (int op = 0; op < OPS && c->ok; op++) {
        int i = (int)(rand_r(&c->seed) % SLOTS);
        int k = (int)(rand_r(&c->seed) % NKINDS);
        size_t sz = (size_t)(rand_r(&c->seed) % (op % 97 == 0 ? 200000 : 2000));

        if (slot[i] != NULL) {
            c->ok = intact(slot[i], size[i]);
            if (rand_r(&c->seed) % 2) {
                unsigned char *n = catzilla_realloc(kinds[kind_of[i]], slot[i], sz + 1);

                if (n == NULL) {
                    c->ok = false;
                    break;
                }
                c->ok = c->ok && intact(n, size[i] < sz + 1 ? size[i] : sz + 1);
                slot[i] = n;
                size[i] = sz + 1;
                fill(n, 0, sz + 1);
                continue;
            }
            catzilla_free(kinds[kind_of[i]], slot[i]);
        }
        slot[i] = catzilla_alloc(kinds[k], sz);
        size[i] = sz;
        kind_of[i] = k;
        c->ok = c->ok && slot[i] != NULL;
        if (slot[i] != NULL)
            fill(slot[i], 0, sz);
    }
    for (int i = 0; i < SLOTS; i++)
        catzilla_free(kinds[kind_of[i]], slot[i]);
    catzilla_memory_thread_exit();
    return NULL;
}

Test(memory, concurrent_workers_keep_their_data, .timeout = 60)
{
    struct churn c[NTHREADS];

    for (int i = 0; i < NTHREADS; i++)
        c[i] = (struct churn){.seed = 1234u + (unsigned)i, .ok = false};
    run_threads(NTHREADS, churn_thread, c, sizeof(c[0]));
    for (int i = 0; i < NTHREADS; i++)
        cr_assert(c[i].ok, "thread %d saw corrupted or missing data", i);
}
