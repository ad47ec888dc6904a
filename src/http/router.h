/* HTTP router (internal): a trie over path segments mapping (method, path) to an opaque target.
 *
 * Owns pattern validation, the trie, method names and the 405 Allow list.  It does not decode
 * percent-escapes, strip query strings or normalise paths: the caller hands it the path as it
 * should be matched.  Built once per worker, then read-only.
 */
#ifndef CZ_HTTP_ROUTER_H
#define CZ_HTTP_ROUTER_H

#include <stddef.h>

#define CZ_ROUTER_MAX_PARAMS 8      /* "{name}" segments per pattern */
#define CZ_ROUTER_MAX_PARAM_NAME 32 /* bytes in one parameter name */
#define CZ_ROUTER_MAX_SEGMENTS                                                                     \
    256                    /* segments per pattern: bounds the trie depth, hence the stack         \
                              cz_router_match and cz_router_destroy use */
#define CZ_ROUTER_ANY (-1) /* cz_router_add method: any method without its own target */

enum cz_method {
    CZ_METHOD_GET,
    CZ_METHOD_HEAD,
    CZ_METHOD_POST,
    CZ_METHOD_PUT,
    CZ_METHOD_DELETE,
    CZ_METHOD_PATCH,
    CZ_METHOD_OPTIONS,
    CZ_METHOD_CONNECT,
    CZ_METHOD_TRACE,
    CZ_METHOD_MAX
};

/* Methods in an allow mask: bit (1u << method). */
#define CZ_METHOD_BIT(m) (1u << (unsigned)(m))
#define CZ_METHOD_ALL (CZ_METHOD_BIT(CZ_METHOD_MAX) - 1u)

struct cz_router;

struct cz_route_param {
    const char *name;  /* from the matched route's pattern, owned by the router */
    const char *value; /* points into the path given to cz_router_match; not NUL-terminated */
    size_t len;        /* > 0, except the wildcard's ("*"), which may be empty */
};

struct cz_route_match {
    void *target;     /* FOUND: the registered target (may be NULL if registered so) */
    unsigned nparams; /* FOUND: entries used in params[], in pattern order */
    struct cz_route_param params[CZ_ROUTER_MAX_PARAMS];
    unsigned allow; /* FOUND and METHOD_NOT_ALLOWED: CZ_METHOD_BIT mask, see cz_router_match */
};

enum cz_route_result { CZ_ROUTE_FOUND, CZ_ROUTE_NOT_FOUND, CZ_ROUTE_METHOD_NOT_ALLOWED };

/* Method token (case-sensitive, as HTTP says) to enum cz_method; s need not be NUL-terminated.
 * Returns the method or -EINVAL.  Pure; any thread. */
int cz_method_parse(const char *s, size_t len);

/* "GET", "HEAD", ... for a valid method; NULL otherwise.  Static strings; any thread. */
const char *cz_method_name(enum cz_method method);

/* An empty router, allocated from the calling thread's cache arena.  Returns NULL on ENOMEM.
 * The caller owns it and frees it with cz_router_destroy on the same thread. */
struct cz_router *cz_router_create(void);

/* Free the router and everything it allocated (NULL is a no-op).  Targets are not touched: the
 * caller owns them.  Call from the thread that created it, after the last match. */
void cz_router_destroy(struct cz_router *r);

/* Register target for method (enum cz_method, or CZ_ROUTER_ANY) on pattern: "/" or "/a/b", where
 * a segment "{name}" ([A-Za-z0-9_]{1,32}) matches one non-empty path segment; at most
 * CZ_ROUTER_MAX_PARAMS parameters and CZ_ROUTER_MAX_SEGMENTS segments.  The pattern is copied.
 * Returns 0; -EINVAL for a bad method or pattern (router unchanged); -EEXIST if the same method (or
 * ANY) is already registered on a pattern of the same shape, parameter names ignored (router
 * unchanged); -ENOMEM (the router stays usable and holds every earlier route). Set-up only: not
 * concurrently with itself or with cz_router_match. */
int cz_router_add(struct cz_router *r, int method, const char *pattern, void *target);

/* Match path (no query string, not NUL-terminated, len bytes) for method, filling *m.
 *
 * Precedence: at each segment a static child beats the parameter; if the static branch leads to
 * no route usable for this method the match backtracks into the parameter branch.  On one route,
 * the method's own target wins, then (HEAD only) the GET target, then the ANY target.  A method
 * that is not a valid enum cz_method (e.g. -EINVAL from cz_method_parse) can only match ANY.
 *
 * FOUND: target, nparams, params[] (values point into path) and allow = the methods the matched
 * route accepts.  METHOD_NOT_ALLOWED: some route matches the path but none accepts the method;
 * allow = every method any matching route accepts (HEAD included whenever GET is).  NOT_FOUND:
 * allow = 0.  target and nparams are NULL/0 unless FOUND.  No allocation; read-only on r, so any
 * number of threads may match concurrently once set-up is over. */
enum cz_route_result cz_router_match(const struct cz_router *r, int method, const char *path,
                                     size_t len, struct cz_route_match *m);

/* Format an allow mask as an Allow header value, "GET, HEAD, POST", in enum order (bits at or
 * above CZ_METHOD_MAX are ignored).  Writes at most cap bytes including a NUL terminator (when
 * cap > 0) and returns the full length, as snprintf does: the output was truncated iff the
 * return value >= cap.  Any thread. */
size_t cz_router_format_allow(unsigned allow, char *buf, size_t cap);

#endif
