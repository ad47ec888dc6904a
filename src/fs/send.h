/* Send paths for file bodies, through the ring: cached bytes from registered
 * buffers, and files too big for the cache spliced file -> pipe -> socket
 * from the page cache (zero-copy), in bounded steps so one big download does
 * not starve the worker's other connections.  Owns the per-worker pipe pool. */
#ifndef CZ_FS_SEND_H
#define CZ_FS_SEND_H

#include <liburing.h>
#include <stddef.h>

struct conn;
struct outseg;
struct worker;
struct cz_cache_entry;

int cz_send_worker_init(struct worker *w, char *err, size_t errlen);
void cz_send_worker_free(struct worker *w);

/* Start the next bounded step of a file segment at the head of c's queue.
 * Returns 0 (a step is in flight) or -errno (the caller closes). */
int cz_send_file_step(struct conn *c, struct outseg *seg);
/* Completion of a splice step. */
void cz_send_on_cqe(struct conn *c, unsigned tag, struct io_uring_cqe *cqe);
/* The connection is closing: give back what it holds once nothing is in flight. */
void cz_send_abort(struct conn *c);

void cz_send_release_cached(struct cz_cache_entry *e);
void cz_send_release_file(int fd);

#endif
