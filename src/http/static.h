/* The static-file responder (HTTP code): request path -> file under the
 * docroot -> response with ETag/Last-Modified, conditionals, ranges and MIME
 * type.  Owns the docroot (its directory fd and the MIME table, shared
 * read-only by the workers). */
#ifndef CZ_HTTP_STATIC_H
#define CZ_HTTP_STATIC_H

#include <stddef.h>

struct cz_server;
struct conn;
struct cz_request;

/* Resolve and open the docroot (--root, else the bundled public/), load the
 * MIME table.  Returns 0 or -errno with a one-line message in err. */
/* The bundled docroot: public/ next to the binary in a build tree, or the
 * installed one.  0 with its path in out, or -ENOENT. */
int cz_static_default_root(char *out, size_t cap);
int cz_static_global_init(struct cz_server *srv, char *err, size_t errlen);
void cz_static_global_free(struct cz_server *srv);
/* SIGHUP, on the signal thread: load the MIME table again and publish it
 * for the workers (cz_static_worker_reload).  Writes what it did to msg.
 * 0, or -errno (the old table stays; msg says why). */
int cz_static_reload(struct cz_server *srv, char *msg, size_t cap);
/* On a worker, after a reload was published: forget the cached entries
 * (their MIME types and contents) and use the new table. */
void cz_static_worker_reload(struct worker *w);

/* Answer req from the docroot.  Returns 0 when a response was queued, or
 * -ENOENT when there is no docroot (the caller answers 404). */
int cz_static_serve(struct conn *c, struct cz_request *req);

/* Completion of a file job's open, statx or read (tag OP_FS). */
struct worker;
struct io_uring_cqe;
void static_on_cqe(struct worker *w, void *job, struct io_uring_cqe *cqe);

#endif
