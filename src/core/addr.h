/* Socket addresses as the options give them: IPv4 or IPv6 literals (never
 * host names, which would make start-up depend on a resolver), "ADDR:PORT"
 * and "[V6]:PORT", and the bracketed form logs and messages use. */
#ifndef CZ_CORE_ADDR_H
#define CZ_CORE_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* host ("127.0.0.1", "::1" or "[::1]") and port into *ss.  0 or -EINVAL. */
int cz_addr_parse(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len);
/* "ADDR:PORT" or "[V6]:PORT", port 0..65535.  0 or -EINVAL. */
int cz_addr_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len);
int cz_addr_port(const struct sockaddr_storage *ss);
void cz_addr_set_port(struct sockaddr_storage *ss, int port);
/* "127.0.0.1:8080" or "[::1]:8080". */
void cz_addr_format(const struct sockaddr_storage *ss, char *out, size_t cap);
/* True if ss is the wildcard address (0.0.0.0 or ::). */
int cz_addr_is_any(const struct sockaddr_storage *ss);
/* The wildcard address becomes the loopback one of its family (where a
 * local client reaches a server bound to it); others stay. */
void cz_addr_any_to_loopback(struct sockaddr_storage *ss);
/* Two addresses that cannot both be bound by different listeners without
 * one taking the other's connections: same port, and the same address or
 * either one the wildcard of the same family. */
int cz_addr_overlap(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
