/* Per-worker file cache: metadata (stat, ETag, Last-Modified, MIME type) for
 * recently served paths, and the bytes of small and medium files in buffers
 * from the worker's static arena that are registered with its ring.  LRU
 * bounded by --file-cache-size; entries are revalidated with a stat at most
 * once a second, so a changed file is never served stale for longer. */
#ifndef CZ_FS_FILECACHE_H
#define CZ_FS_FILECACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "fs/httpfile.h"

struct io_uring;
struct statx;
struct cz_mime;
struct cz_filecache;

/* What identifies one version of a file: a changed file gets a new id. */
struct cz_file_id {
    uint64_t dev, ino, size;
    int64_t mtime_ns;
};

static inline bool cz_file_id_equal(const struct cz_file_id *a, const struct cz_file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns;
}

/* What the cache needs from its owner (a worker), so it knows nothing of
 * workers or HTTP.  The pointed-to values outlive the cache. */
struct cz_fs_env {
    struct io_uring *ring;   /* cached bytes are registered here; NULL: never */
    const struct cz_mime *mime;
    size_t cache_size;       /* bytes of file contents kept */
    size_t max_file;         /* largest file whose contents are kept */
    const uint64_t *now_ms;  /* the owner's clock */
    size_t *registered_bytes; /* the owner's tally of registered memory */
};

enum cz_cache_kind { CZ_CACHE_FILE, CZ_CACHE_DIR };

struct cz_cache_entry {
    struct cz_cache_entry *hnext;         /* hash chain */
    struct cz_cache_entry *lru_prev, *lru_next;
    struct cz_filecache *fc;
    uint32_t refs;                        /* table reference + in-flight sends */
    uint8_t kind;                         /* enum cz_cache_kind */
    bool in_table;
    int buf_index;                        /* registered buffer slot, -1 if none */
    char *data;                           /* file bytes (static arena), NULL if not cached */
    struct cz_file_id id;                 /* id.size is the file's size */
    uint64_t size;
    time_t mtime;
    uint64_t checked_ms;                  /* last stat */
    bool loading;                         /* a read of its contents is under way */
    const char *mime;
    char etag[CZ_ETAG_MAX];
    size_t etag_len;
    char last_modified[32];
    uint32_t hash;
    uint16_t key_len;
    char key[];                           /* relative path, NUL-terminated */
};

/* A cache for one thread.  Registers a sparse fixed-buffer table on
 * env->ring when it caches contents.  Returns NULL when out of memory. */
struct cz_filecache *cz_filecache_create(const struct cz_fs_env *env);
/* Drop every entry; entries still referenced (in-flight sends) are freed by
 * their last release, and the cache with them.  ring_alive: false if the
 * ring is already gone (its buffer table went with it). */
void cz_filecache_destroy(struct cz_filecache *fc, bool ring_alive);

/* A fresh entry for rel (relative to the docroot; checked within the last
 * second): 0 and a referenced entry in *out (release with
 * cz_filecache_release).  -EAGAIN: none, or stale: the caller opens and
 * stats the file and calls cz_filecache_update.  No I/O. */
int cz_filecache_lookup(struct cz_filecache *fc, const char *rel, size_t rel_len,
                        struct cz_cache_entry **out);
/* rel was just opened and stat'ed (statx of the open descriptor): 0 and a
 * referenced entry describing that version (the old entry refreshed if the
 * file is unchanged, else a new one), -EACCES (not a regular file or
 * directory), -ENAMETOOLONG or -ENOMEM. */
int cz_filecache_update(struct cz_filecache *fc, const char *rel, size_t rel_len,
                        const struct statx *stx, struct cz_cache_entry **out);
/* A static-arena buffer of e->size bytes to read e's contents into, if the
 * cache wants to hold them (NULL: it does not, or another load is under way;
 * the body then leaves from the page cache).  Hand it back with data_done. */
char *cz_filecache_data_buffer(struct cz_filecache *fc, struct cz_cache_entry *e);
/* ok: the buffer holds all of e's bytes (install and register it); else it
 * is freed. */
void cz_filecache_data_done(struct cz_filecache *fc, struct cz_cache_entry *e, char *data,
                            bool ok);
/* Change how many content bytes the cache may hold (memory pressure: 0 drops
 * every cached body now and caches none until it is raised again); contents
 * above the new budget are evicted at once, least recently used first. */
void cz_filecache_set_budget(struct cz_filecache *fc, size_t bytes);
/* Forget every entry (in-flight sends keep theirs) and look MIME types up
 * in mime from now on (the owner keeps the old table alive for those). */
void cz_filecache_clear(struct cz_filecache *fc, const struct cz_mime *mime);
/* Bytes of file contents held now; 0 for NULL. */
size_t cz_filecache_bytes(const struct cz_filecache *fc);
void cz_filecache_ref(struct cz_cache_entry *e);
void cz_filecache_release(struct cz_cache_entry *e);

#endif
