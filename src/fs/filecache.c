/* Per-worker file cache.  Metadata lives in the cache arena; file bytes live
 * in page-aligned static-arena buffers registered with the worker's ring (a
 * sparse fixed-buffer table), so they can go out with SEND_ZC FIXED_BUF.
 * Entries are reference counted: eviction unlinks them, the last in-flight
 * send frees them.  The cache does no file I/O at all: its owner opens,
 * stats and reads through its ring and hands the results in, so a cold file
 * never blocks the thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>

#include "catzilla/memory.h"
#include "core/hash.h"
#include "core/log.h"
#include "fs/filecache.h"
#include "fs/mime.h"

#define NBUCKETS 4096u      /* power of two */
#define MAX_ENTRIES 16384u  /* metadata entries per worker */
#define MAX_REG_BUFFERS 4096u
#define REVALIDATE_MS 1000u

struct cz_filecache {
    struct cz_fs_env env;
    bool ring_alive;          /* the buffer table can still be updated */
    bool destroyed;           /* freed with its last live entry */
    unsigned nlive;           /* entries allocated, in the table or not */
    struct cz_cache_entry *buckets[NBUCKETS];
    struct cz_cache_entry *lru_head, *lru_tail; /* head = most recent */
    unsigned nentries;
    size_t data_bytes;
    int *free_slots;
    unsigned nfree, nslots;
    bool warned_register;
};

struct cz_filecache *cz_filecache_create(const struct cz_fs_env *env)
{
    struct cz_filecache *fc = catzilla_cache_alloc(sizeof(*fc));
    if (!fc)
        return NULL;
    memset(fc, 0, sizeof(*fc));
    fc->env = *env;
    fc->ring_alive = env->ring != NULL;
    if (env->cache_size > 0 && env->ring) {
        fc->nslots = MAX_REG_BUFFERS;
        fc->free_slots = catzilla_cache_alloc(sizeof(int) * fc->nslots);
        int rc = fc->free_slots ? io_uring_register_buffers_sparse(env->ring, fc->nslots)
                                : -ENOMEM;
        if (rc < 0) {
            /* Without a fixed-buffer table the cache still works; only
             * SEND_ZC with FIXED_BUF is lost. */
            cz_log_warn("file cache: cannot register a buffer table (%s)%s%s", strerror(-rc),
                        rc == -ENOMEM ? "; " : "",
                        rc == -ENOMEM ? "raise the locked-memory limit (--ulimit memlock=-1)" : "");
            fc->nslots = 0;
        }
        for (unsigned i = 0; i < fc->nslots; i++)
            fc->free_slots[fc->nfree++] = (int)(fc->nslots - 1 - i);
    }
    return fc;
}

static void cache_free(struct cz_filecache *fc)
{
    catzilla_cache_free(fc->free_slots);
    catzilla_cache_free(fc);
}

static void entry_free(struct cz_cache_entry *e)
{
    struct cz_filecache *fc = e->fc;
    if (e->buf_index >= 0) {
        if (fc->ring_alive) {
            struct iovec none = {NULL, 0};
            io_uring_register_buffers_update_tag(fc->env.ring, (unsigned)e->buf_index, &none,
                                                 NULL, 1);
        }
        fc->free_slots[fc->nfree++] = e->buf_index;
        *fc->env.registered_bytes -= e->size;
    }
    catzilla_static_free(e->data);
    catzilla_cache_free(e);
    if (--fc->nlive == 0 && fc->destroyed)
        cache_free(fc);
}

void cz_filecache_ref(struct cz_cache_entry *e)
{
    e->refs++;
}

void cz_filecache_release(struct cz_cache_entry *e)
{
    if (e && --e->refs == 0)
        entry_free(e);
}

static void lru_unlink(struct cz_filecache *fc, struct cz_cache_entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        fc->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        fc->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(struct cz_filecache *fc, struct cz_cache_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = fc->lru_head;
    if (fc->lru_head)
        fc->lru_head->lru_prev = e;
    fc->lru_head = e;
    if (!fc->lru_tail)
        fc->lru_tail = e;
}

static void table_remove(struct cz_filecache *fc, struct cz_cache_entry *e)
{
    struct cz_cache_entry **pp = &fc->buckets[e->hash & (NBUCKETS - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    lru_unlink(fc, e);
    fc->nentries--;
    if (e->data)
        fc->data_bytes -= e->size;
    e->in_table = false;
    cz_filecache_release(e);
}

/* Every entry out of the table; in-flight sends keep theirs. */
static void forget_all(struct cz_filecache *fc)
{
    while (fc->lru_head)
        table_remove(fc, fc->lru_head);
}

void cz_filecache_destroy(struct cz_filecache *fc, bool ring_alive)
{
    if (!fc)
        return;
    fc->ring_alive = fc->ring_alive && ring_alive;
    forget_all(fc);
    if (fc->nlive == 0)
        cache_free(fc);
    else
        fc->destroyed = true;
}

static void evict(struct cz_filecache *fc, size_t limit)
{
    struct cz_cache_entry *e = fc->lru_tail;
    while (e && (fc->data_bytes > limit || fc->nentries > MAX_ENTRIES)) {
        struct cz_cache_entry *prev = e->lru_prev;
        table_remove(fc, e);
        e = prev;
    }
}

void cz_filecache_set_budget(struct cz_filecache *fc, size_t bytes)
{
    fc->env.cache_size = bytes;
    evict(fc, bytes);
}

void cz_filecache_clear(struct cz_filecache *fc, const struct cz_mime *mime)
{
    forget_all(fc);
    fc->env.mime = mime;
}

size_t cz_filecache_bytes(const struct cz_filecache *fc)
{
    return fc ? fc->data_bytes : 0;
}

static struct cz_file_id file_id_of_statx(const struct statx *stx)
{
    return (struct cz_file_id){
        .dev = (uint64_t)makedev(stx->stx_dev_major, stx->stx_dev_minor),
        .ino = (uint64_t)stx->stx_ino,
        .size = (uint64_t)stx->stx_size,
        .mtime_ns = (int64_t)stx->stx_mtime.tv_sec * 1000000000 + stx->stx_mtime.tv_nsec,
    };
}

static void fill_meta(struct cz_filecache *fc, struct cz_cache_entry *e, const struct statx *stx)
{
    e->kind = S_ISDIR(stx->stx_mode) ? CZ_CACHE_DIR : CZ_CACHE_FILE;
    e->id = file_id_of_statx(stx);
    e->size = e->id.size;
    e->mtime = (time_t)stx->stx_mtime.tv_sec;
    e->etag_len = cz_etag_format(e->id.ino, e->size, e->id.mtime_ns, e->etag);
    cz_http_date(e->mtime, e->last_modified);
    e->mime = cz_mime_lookup(fc->env.mime, e->key, e->key_len);
    e->checked_ms = *fc->env.now_ms;
}

static struct cz_cache_entry *table_find(struct cz_filecache *fc, const char *rel, size_t rel_len,
                                         uint32_t h)
{
    struct cz_cache_entry *e = fc->buckets[h & (NBUCKETS - 1)];
    while (e && !(e->hash == h && e->key_len == rel_len && memcmp(e->key, rel, rel_len) == 0))
        e = e->hnext;
    return e;
}

static void touch(struct cz_filecache *fc, struct cz_cache_entry *e)
{
    lru_unlink(fc, e);
    lru_push_front(fc, e);
    e->refs++;
}

int cz_filecache_lookup(struct cz_filecache *fc, const char *rel, size_t rel_len,
                        struct cz_cache_entry **out)
{
    if (!fc)
        return -ENOENT;
    struct cz_cache_entry *e = table_find(fc, rel, rel_len, cz_hash(rel, rel_len));
    if (!e || *fc->env.now_ms - e->checked_ms >= REVALIDATE_MS)
        return -EAGAIN;
    touch(fc, e);
    *out = e;
    return 0;
}

int cz_filecache_update(struct cz_filecache *fc, const char *rel, size_t rel_len,
                        const struct statx *stx, struct cz_cache_entry **out)
{
    if (!S_ISREG(stx->stx_mode) && !S_ISDIR(stx->stx_mode))
        return -EACCES; /* devices, fifos, sockets are never served */
    if (rel_len > UINT16_MAX)
        return -ENAMETOOLONG;
    uint32_t h = cz_hash(rel, rel_len);
    struct cz_cache_entry *e = table_find(fc, rel, rel_len, h);
    struct cz_file_id id = file_id_of_statx(stx);
    if (e && cz_file_id_equal(&e->id, &id) && (e->kind == CZ_CACHE_DIR) == S_ISDIR(stx->stx_mode)) {
        e->checked_ms = *fc->env.now_ms;
        touch(fc, e);
        *out = e;
        return 0;
    }
    if (e)
        table_remove(fc, e); /* changed: in-flight sends keep the old version */
    e = catzilla_cache_alloc(sizeof(*e) + rel_len + 1);
    if (!e)
        return -ENOMEM;
    memset(e, 0, sizeof(*e));
    e->fc = fc;
    fc->nlive++;
    e->buf_index = -1;
    e->hash = h;
    e->key_len = (uint16_t)rel_len;
    memcpy(e->key, rel, rel_len);
    e->key[rel_len] = '\0';
    fill_meta(fc, e, stx);

    e->refs = 2; /* the table's and the caller's: eviction below cannot free it */
    e->in_table = true;
    e->hnext = fc->buckets[h & (NBUCKETS - 1)];
    fc->buckets[h & (NBUCKETS - 1)] = e;
    lru_push_front(fc, e);
    fc->nentries++;
    evict(fc, fc->env.cache_size);
    *out = e;
    return 0;
}

char *cz_filecache_data_buffer(struct cz_filecache *fc, struct cz_cache_entry *e)
{
    const struct cz_fs_env *env = &fc->env;
    if (e->kind != CZ_CACHE_FILE || e->data || e->loading || !e->in_table || e->size == 0 ||
        e->size > env->max_file || e->size > env->cache_size)
        return NULL;
    evict(fc, env->cache_size - e->size);
    if (!e->in_table)
        return NULL;
    char *data = catzilla_static_alloc_aligned(e->size);
    if (data)
        e->loading = true;
    return data;
}

void cz_filecache_data_done(struct cz_filecache *fc, struct cz_cache_entry *e, char *data, bool ok)
{
    const struct cz_fs_env *env = &fc->env;
    e->loading = false;
    if (!ok || !e->in_table || e->data) {
        /* A torn read, or the entry left the table meanwhile: keep nothing. */
        catzilla_static_free(data);
        return;
    }
    e->data = data;
    fc->data_bytes += e->size;
    if (fc->nfree && fc->ring_alive) {
        int slot = fc->free_slots[fc->nfree - 1];
        struct iovec iov = {data, e->size};
        int rc = io_uring_register_buffers_update_tag(env->ring, (unsigned)slot, &iov, NULL, 1);
        if (rc >= 0) {
            fc->nfree--;
            e->buf_index = slot;
            *env->registered_bytes += e->size;
        } else if (!fc->warned_register) {
            fc->warned_register = true;
            cz_log_warn("file cache: registering a buffer failed (%s)%s", strerror(-rc),
                        rc == -ENOMEM ? "; raise the locked-memory limit (--ulimit memlock=-1)"
                                      : "");
        }
    }
    evict(fc, env->cache_size);
}
