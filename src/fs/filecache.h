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

struct worker;

enum cz_cache_kind { CZ_CACHE_FILE, CZ_CACHE_DIR };

struct cz_cache_entry {
    struct cz_cache_entry *hnext;         /* hash chain */
    struct cz_cache_entry *lru_prev, *lru_next;
    struct worker *w;
    uint32_t refs;                        /* table reference + in-flight sends */
    uint8_t kind;                         /* enum cz_cache_kind */
    bool in_table;
    int buf_index;                        /* registered buffer slot, -1 if none */
    char *data;                           /* file bytes (static arena), NULL if not cached */
    uint64_t size, ino, dev;
    int64_t mtime_ns;
    time_t mtime;
    uint64_t checked_ms;                  /* last stat */
    const char *mime;
    char etag[CZ_ETAG_MAX];
    size_t etag_len;
    char last_modified[32];
    uint32_t hash;
    uint16_t key_len;
    char key[];                           /* relative path, NUL-terminated */
};

int cz_filecache_worker_init(struct worker *w, char *err, size_t errlen);
void cz_filecache_worker_free(struct worker *w);
/* Periodic maintenance from the worker tick (no-op today; kept for symmetry). */
void cz_filecache_tick(struct worker *w);

/* Find or (re)load the entry for rel (relative to the docroot).  Returns 0
 * and a referenced entry in *out (release with cz_filecache_release), or
 * -errno: -ENOENT, -EXDEV (escapes the root), -EACCES, -ENOMEM ...
 * On CZ_CACHE_FILE entries without data the caller opens the file itself. */
int cz_filecache_get(struct worker *w, const char *rel, size_t rel_len,
                     struct cz_cache_entry **out);
void cz_filecache_release(struct cz_cache_entry *e);

#endif
