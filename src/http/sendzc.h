/* SEND_ZC of cached bodies from their registered buffers (see sendzc.c). */
#ifndef CZ_HTTP_SENDZC_H
#define CZ_HTTP_SENDZC_H

#include <liburing.h>
#include <stdbool.h>

struct conn;
struct worker;
struct zc_ctx;

void sendzc_worker_init(struct worker *w);
/* Submit header + SEND_ZC body if the head of c's queue qualifies; true if submitted. */
bool sendzc_try(struct conn *c);
void sendzc_on_cqe(struct zc_ctx *ctx, struct io_uring_cqe *cqe);

#endif
