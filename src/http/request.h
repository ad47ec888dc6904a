/* Request parsing: llhttp glue that copies what a request needs (target,
 * headers, body) into request-arena scratch, enforces limits and dispatches
 * complete requests in order.  Owned by conn.c's receive path. */
#ifndef CZ_HTTP_REQUEST_H
#define CZ_HTTP_REQUEST_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct worker;

/* How long a silent keep-alive connection keeps its parse state. */
#define RX_IDLE_MS 1000
/* Free c's parse state (connection closing). */
void request_rx_free(struct conn *c);
/* Tick: free the parse state of connections silent for RX_IDLE_MS. */
void request_rx_sweep(struct worker *w);
/* Parse bytes; dispatches every complete request.  Returns the bytes used:
 * less than len only when the parser paused because output is backed up
 * (c->read_paused) or the connection is to close after its response. */
size_t request_parse(struct conn *c, const char *data, size_t len);
/* Undo a pause so held bytes can be fed again. */
void request_parser_resume(struct conn *c);
/* Drop a partially received request (connection closing). */
void request_abort(struct conn *c);
/* A chunk-size line without its CRLF ("5;a=1;b"): 0 and its size, -EINVAL
 * for bad syntax, -ERANGE for a size of 2^63 or more. */
int request_chunk_line(const char *line, size_t len, uint64_t *size);
/* Free all request memory held by the connection. */
void request_free(struct conn *c);

#endif
