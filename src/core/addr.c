/* Socket address parsing and formatting (addr.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"

int cz_addr_parse(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (!host || port < 0 || port > 65535)
        return -EINVAL;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof(*in4);
        return 0;
    }
    const char *a = host;
    char buf[INET6_ADDRSTRLEN + 2];
    size_t l = strlen(host);
    if (l >= 2 && host[0] == '[' && host[l - 1] == ']' && l - 2 < sizeof(buf)) {
        memcpy(buf, host + 1, l - 2);
        buf[l - 2] = '\0';
        a = buf;
    }
    if (inet_pton(AF_INET6, a, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*in6);
        return 0;
    }
    return -EINVAL;
}

int cz_addr_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *colon = s ? strrchr(s, ':') : NULL;
    /* More than one colon is IPv6, which must be bracketed before the port. */
    if (!colon || colon == s || (strchr(s, ':') != colon && (s[0] != '[' || colon[-1] != ']')))
        return -EINVAL;
    char host[INET6_ADDRSTRLEN + 2], *end;
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof(host))
        return -EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (!colon[1] || colon[1] == '-' || colon[1] == '+')
        return -EINVAL;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return -EINVAL;
    return cz_addr_parse(host, (int)port, ss, len);
}

int cz_addr_port(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                          : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

void cz_addr_set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

void cz_addr_format(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof(host));
        snprintf(out, cap, "%s:%d", host, cz_addr_port(ss));
    } else {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host, sizeof(host));
        snprintf(out, cap, "[%s]:%d", host, cz_addr_port(ss));
    }
}

int cz_addr_is_any(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

void cz_addr_any_to_loopback(struct sockaddr_storage *ss)
{
    if (!cz_addr_is_any(ss))
        return;
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else
        ((struct sockaddr_in6 *)ss)->sin6_addr = in6addr_loopback;
}

int cz_addr_overlap(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (cz_addr_port(a) != cz_addr_port(b))
        return 0;
    if (cz_addr_is_any(a) || cz_addr_is_any(b))
        return 1; /* a v6 wildcard takes v4 too, unless IPV6_V6ONLY */
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}
