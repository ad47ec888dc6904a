/* HTTP router: pattern validation, a trie over path segments, and (method, path) matching.
 *
 * Every node is one path segment; a node has sorted static children and at most one parameter
 * child.  Routes end on a node's terminal record, which holds one target per method plus ANY.
 * All memory comes from the cache arena of the thread that builds the router; matching never
 * allocates, never writes to the router, and does not decode or normalise the path.
 */
#include "http/router.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "catzilla/memory.h"

#define SLOT_ANY CZ_METHOD_MAX /* targets[] index of the ANY registration */
#define NSLOTS (CZ_METHOD_MAX + 1)
#define SLOT_BIT(s) (1u << (unsigned)(s))

/* Static children sit in an array sorted by (length, bytes) rather than in a hash: fan-out is
 * small (a handful of children, rarely more than a few dozen), the array is one contiguous
 * allocation that a lookup walks in a couple of cache lines, ordering by length first means most
 * probes are one integer compare (memcmp only runs on equal lengths), and nothing has to hash the
 * request segment first.  A 1000-way node still takes ~10 probes. */
struct rchild {
    uint32_t len;
    const char *seg; /* the child's bytes, stored right after its struct rnode */
    struct rnode *node;
};

/* A route ending on a node.  Every route ending here has the same shape, hence the same number
 * of parameters; their names may differ per method, so each slot keeps its own. */
struct rterm {
    unsigned set;     /* SLOT_BIT(slot) for each registered slot */
    unsigned allow;   /* methods accepted here: set bits, HEAD when GET, all when ANY */
    unsigned nparams; /* parameters on the way from the root to this node */
    void *target[NSLOTS];
    const char **names[NSLOTS]; /* nparams NUL-terminated names, one allocation; NULL if none */
};

struct rnode {
    struct rchild *kids; /* sorted, see struct rchild */
    uint32_t nkids;
    uint32_t capkids;
    struct rnode *param; /* the "{...}" child, shared by every parameter name */
    struct rnode *wild;  /* the final "*" child: the rest of the path, a route's end */
    struct rterm *term;  /* NULL unless a route ends here */
};

struct cz_router {
    struct rnode root; /* the position before the first segment; never a terminal itself */
};

/* Index is the enum value.  Lengths are stored so parse and format never call strlen. */
static const struct {
    const char *name;
    size_t len;
} method_names[CZ_METHOD_MAX] = {
    [CZ_METHOD_GET] = {"GET", 3},         [CZ_METHOD_HEAD] = {"HEAD", 4},
    [CZ_METHOD_POST] = {"POST", 4},       [CZ_METHOD_PUT] = {"PUT", 3},
    [CZ_METHOD_DELETE] = {"DELETE", 6},   [CZ_METHOD_PATCH] = {"PATCH", 5},
    [CZ_METHOD_OPTIONS] = {"OPTIONS", 7}, [CZ_METHOD_CONNECT] = {"CONNECT", 7},
    [CZ_METHOD_TRACE] = {"TRACE", 5},
};

int cz_method_parse(const char *s, size_t len)
{
    if (!s)
        return -EINVAL;
    /* Nine entries: a length compare rejects almost all of them before memcmp runs. */
    for (int m = 0; m < CZ_METHOD_MAX; m++) {
        if (method_names[m].len == len && memcmp(method_names[m].name, s, len) == 0)
            return m;
    }
    return -EINVAL;
}

const char *cz_method_name(enum cz_method method)
{
    if ((unsigned)method >= CZ_METHOD_MAX)
        return NULL;
    return method_names[method].name;
}

/* ---- pattern validation ---- */

struct pattern_info {
    unsigned nparams;
    size_t names_bytes; /* sum of name lengths + NULs */
    const char *name[CZ_ROUTER_MAX_PARAMS];
    size_t name_len[CZ_ROUTER_MAX_PARAMS];
};

static bool is_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Bytes a static segment may not contain: braces (a '{' is only legal as a whole "{name}"
 * segment), and what can never appear in a matched path: '?' and '#' end the path before the
 * router sees it, '%' would mean the pattern is written encoded, spaces and controls end the
 * request line.  Bytes >= 0x80 pass so decoded UTF-8 paths can be routed. */
static bool is_bad_static_char(unsigned char c)
{
    return c < 0x20 || c == 0x7f || c == ' ' || c == '{' || c == '}' || c == '?' || c == '#' ||
           c == '%';
}

/* Check one "{name}" segment and record the name.  Returns 0 or -EINVAL. */
static int pattern_param(const char *seg, size_t len, struct pattern_info *pi)
{
    if (len < 3 || seg[len - 1] != '}')
        return -EINVAL;
    const char *name = seg + 1;
    size_t name_len = len - 2;
    if (name_len > CZ_ROUTER_MAX_PARAM_NAME)
        return -EINVAL;
    for (size_t i = 0; i < name_len; i++) {
        if (!is_name_char((unsigned char)name[i]))
            return -EINVAL;
    }
    if (pi->nparams == CZ_ROUTER_MAX_PARAMS)
        return -EINVAL;
    for (unsigned i = 0; i < pi->nparams; i++) {
        if (pi->name_len[i] == name_len && memcmp(pi->name[i], name, name_len) == 0)
            return -EINVAL;
    }
    pi->name[pi->nparams] = name;
    pi->name_len[pi->nparams] = name_len;
    pi->nparams++;
    pi->names_bytes += name_len + 1;
    return 0;
}

/* Validate the whole pattern before the trie is touched, so -EINVAL leaves the router as it
 * was.  Returns 0 or -EINVAL. */
static int pattern_check(const char *pattern, size_t len, struct pattern_info *pi)
{
    memset(pi, 0, sizeof(*pi));
    if (len == 0 || pattern[0] != '/')
        return -EINVAL;
    const char *end = pattern + len;
    const char *seg = pattern + 1;
    for (unsigned nsegs = 1;; nsegs++) {
        const char *slash = memchr(seg, '/', (size_t)(end - seg));
        const char *seg_end = slash ? slash : end;
        size_t seg_len = (size_t)(seg_end - seg);
        if (nsegs > CZ_ROUTER_MAX_SEGMENTS || seg_len > UINT32_MAX)
            return -EINVAL;
        if (seg_len > 0 && seg[0] == '{') {
            int rc = pattern_param(seg, seg_len, pi);
            if (rc < 0)
                return rc;
        } else if (seg_len == 1 && seg[0] == '*') {
            /* The rest of the path, as the parameter "*": last segment only. */
            if (slash || pi->nparams == CZ_ROUTER_MAX_PARAMS)
                return -EINVAL;
            pi->name[pi->nparams] = "*";
            pi->name_len[pi->nparams] = 1;
            pi->nparams++;
            pi->names_bytes += 2;
        } else {
            for (size_t i = 0; i < seg_len; i++) {
                if (is_bad_static_char((unsigned char)seg[i]) || seg[i] == '*')
                    return -EINVAL;
            }
        }
        if (!slash)
            return 0;
        seg = slash + 1;
    }
}

/* ---- trie building ---- */

static int seg_cmp(const struct rchild *k, const char *s, size_t len)
{
    if (k->len != len)
        return k->len < len ? -1 : 1;
    return memcmp(k->seg, s, len);
}

/* The static child of n for segment s, or NULL; *pos receives the insertion point. */
static struct rnode *find_static(const struct rnode *n, const char *s, size_t len, uint32_t *pos)
{
    uint32_t lo = 0, hi = n->nkids;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = seg_cmp(&n->kids[mid], s, len);
        if (c == 0)
            return n->kids[mid].node;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos)
        *pos = lo;
    return NULL;
}

static struct rnode *node_new(const char *seg, size_t len)
{
    /* The segment bytes live in the same allocation, right after the node. */
    struct rnode *n = catzilla_cache_alloc(sizeof(*n) + len);
    if (!n)
        return NULL;
    memset(n, 0, sizeof(*n));
    if (len > 0)
        memcpy(n + 1, seg, len);
    return n;
}

/* Find or create n's static child for seg.  Returns 0 and *out, or -ENOMEM. */
static int node_static_child(struct rnode *n, const char *seg, size_t len, struct rnode **out)
{
    uint32_t pos = 0;
    struct rnode *child = find_static(n, seg, len, &pos);
    if (child) {
        *out = child;
        return 0;
    }
    if (n->nkids == n->capkids) {
        uint32_t cap = n->capkids ? n->capkids * 2 : 4;
        struct rchild *kids = catzilla_cache_realloc(n->kids, cap * sizeof(*kids));
        if (!kids)
            return -ENOMEM;
        n->kids = kids;
        n->capkids = cap;
    }
    child = node_new(seg, len);
    if (!child)
        return -ENOMEM;
    memmove(&n->kids[pos + 1], &n->kids[pos], (n->nkids - pos) * sizeof(n->kids[0]));
    n->kids[pos] =
        (struct rchild){.len = (uint32_t)len, .seg = (const char *)(child + 1), .node = child};
    n->nkids++;
    *out = child;
    return 0;
}

/* The parameter or wildcard child in *slot, created when missing. */
static int node_special_child(struct rnode **slot, struct rnode **out)
{
    if (!*slot) {
        *slot = node_new(NULL, 0);
        if (!*slot)
            return -ENOMEM;
    }
    *out = *slot;
    return 0;
}

/* One allocation: nparams pointers, then the names they point to.  NULL on ENOMEM. */
static const char **names_new(const struct pattern_info *pi)
{
    size_t ptrs = pi->nparams * sizeof(const char *);
    char *block = catzilla_cache_alloc(ptrs + pi->names_bytes);
    if (!block)
        return NULL;
    const char **names = (const char **)(void *)block;
    char *p = block + ptrs;
    for (unsigned i = 0; i < pi->nparams; i++) {
        memcpy(p, pi->name[i], pi->name_len[i]);
        p[pi->name_len[i]] = '\0';
        names[i] = p;
        p += pi->name_len[i] + 1;
    }
    return names;
}

struct cz_router *cz_router_create(void)
{
    struct cz_router *r = catzilla_cache_alloc(sizeof(*r));
    if (!r)
        return NULL;
    memset(r, 0, sizeof(*r));
    return r;
}

static void node_free(struct rnode *n)
{
    for (uint32_t i = 0; i < n->nkids; i++) {
        node_free(n->kids[i].node);
        catzilla_cache_free(n->kids[i].node);
    }
    catzilla_cache_free(n->kids);
    if (n->param) {
        node_free(n->param);
        catzilla_cache_free(n->param);
    }
    if (n->wild) {
        node_free(n->wild);
        catzilla_cache_free(n->wild);
    }
    if (n->term) {
        for (int s = 0; s < NSLOTS; s++)
            catzilla_cache_free((void *)n->term->names[s]);
        catzilla_cache_free(n->term);
    }
}

void cz_router_destroy(struct cz_router *r)
{
    if (!r)
        return;
    node_free(&r->root);
    catzilla_cache_free(r);
}

int cz_router_add(struct cz_router *r, int method, const char *pattern, void *target)
{
    struct pattern_info pi;
    if (!r || !pattern || method < CZ_ROUTER_ANY || method >= CZ_METHOD_MAX)
        return -EINVAL;
    size_t len = strlen(pattern);
    int rc = pattern_check(pattern, len, &pi);
    if (rc < 0)
        return rc;

    /* Walk the shape, creating nodes as needed.  A duplicate walks only existing nodes, so
     * -EEXIST never leaves new ones behind; after -ENOMEM a few route-less nodes may remain,
     * which matching passes through harmlessly until destroy frees them. */
    struct rnode *n = &r->root;
    const char *end = pattern + len;
    const char *seg = pattern + 1;
    for (;;) {
        const char *slash = memchr(seg, '/', (size_t)(end - seg));
        const char *seg_end = slash ? slash : end;
        size_t seg_len = (size_t)(seg_end - seg);
        if (seg_len > 0 && seg[0] == '{')
            rc = node_special_child(&n->param, &n);
        else if (seg_len == 1 && seg[0] == '*')
            rc = node_special_child(&n->wild, &n);
        else
            rc = node_static_child(n, seg, seg_len, &n);
        if (rc < 0)
            return rc;
        if (!slash)
            break;
        seg = slash + 1;
    }

    int slot = method == CZ_ROUTER_ANY ? SLOT_ANY : method;
    if (n->term && (n->term->set & SLOT_BIT(slot)))
        return -EEXIST;
    const char **names = NULL;
    if (pi.nparams > 0) {
        names = names_new(&pi);
        if (!names)
            return -ENOMEM;
    }
    if (!n->term) {
        n->term = catzilla_cache_alloc(sizeof(*n->term));
        if (!n->term) {
            catzilla_cache_free((void *)names);
            return -ENOMEM;
        }
        memset(n->term, 0, sizeof(*n->term));
        n->term->nparams = pi.nparams;
    }
    struct rterm *t = n->term;
    t->target[slot] = target;
    t->names[slot] = names;
    t->set |= SLOT_BIT(slot);
    if (slot == SLOT_ANY)
        t->allow = CZ_METHOD_ALL;
    else
        t->allow |= CZ_METHOD_BIT(slot);
    if (t->allow & CZ_METHOD_BIT(CZ_METHOD_GET))
        t->allow |= CZ_METHOD_BIT(CZ_METHOD_HEAD);
    return 0;
}

/* ---- matching (the hot path) ---- */

struct match_state {
    int method;
    const char *end;
    const struct rterm *term; /* set when a usable route is found */
    int slot;
    unsigned allow; /* union over routes that matched the path but not the method */
    bool path_seen;
    const char *val[CZ_ROUTER_MAX_PARAMS];
    size_t val_len[CZ_ROUTER_MAX_PARAMS];
};

static int term_slot(const struct rterm *t, int method)
{
    if ((unsigned)method < CZ_METHOD_MAX && (t->set & SLOT_BIT(method)))
        return method;
    /* HEAD prefers the GET handler to ANY: the server answers it as a GET without the body. */
    if (method == CZ_METHOD_HEAD && (t->set & SLOT_BIT(CZ_METHOD_GET)))
        return CZ_METHOD_GET;
    if (t->set & SLOT_BIT(SLOT_ANY))
        return SLOT_ANY;
    return -1;
}

static bool match_node(const struct rnode *n, const char *seg, unsigned np, struct match_state *st);

/* The path has reached n: either descend to the next segment or, at the end, try n's route. */
static bool match_visit(const struct rnode *n, const char *slash, unsigned np,
                        struct match_state *st)
{
    if (slash)
        return match_node(n, slash + 1, np, st);
    const struct rterm *t = n->term;
    if (!t)
        return false;
    st->path_seen = true;
    int slot = term_slot(t, st->method);
    if (slot < 0) {
        st->allow |= t->allow;
        return false;
    }
    st->term = t;
    st->slot = slot;
    return true;
}

/* Match the segment starting at seg against n's children.  Every trie node stands for one
 * sequence of static/parameter choices, so backtracking visits each node at most once: the worst
 * case is linear in the trie, the usual case one probe per segment. */
static bool match_node(const struct rnode *n, const char *seg, unsigned np, struct match_state *st)
{
    size_t left = (size_t)(st->end - seg);
    const char *slash = left ? memchr(seg, '/', left) : NULL;
    size_t len = slash ? (size_t)(slash - seg) : left;

    if (n->nkids) {
        const struct rnode *child = find_static(n, seg, len, NULL);
        if (child && match_visit(child, slash, np, st))
            return true;
    }
    /* np < MAX always holds for a trie built by cz_router_add; the check keeps val[] safe. */
    if (n->param && len > 0 && np < CZ_ROUTER_MAX_PARAMS) {
        st->val[np] = seg;
        st->val_len[np] = len;
        if (match_visit(n->param, slash, np + 1, st))
            return true;
    }
    /* Least specific last: the wildcard takes the rest, slashes and all
     * (possibly nothing: a final "*" after "/static" matches "/static/"). */
    if (n->wild && np < CZ_ROUTER_MAX_PARAMS) {
        st->val[np] = seg;
        st->val_len[np] = left;
        if (match_visit(n->wild, NULL, np + 1, st))
            return true;
    }
    return false;
}

enum cz_route_result cz_router_match(const struct cz_router *r, int method, const char *path,
                                     size_t len, struct cz_route_match *m)
{
    m->target = NULL;
    m->nparams = 0;
    m->allow = 0;
    if (!path || len == 0 || path[0] != '/')
        return CZ_ROUTE_NOT_FOUND;

    struct match_state st;
    st.method = method;
    st.end = path + len;
    st.term = NULL;
    st.allow = 0;
    st.path_seen = false;
    if (!match_node(&r->root, path + 1, 0, &st)) {
        if (!st.path_seen)
            return CZ_ROUTE_NOT_FOUND;
        m->allow = st.allow;
        return CZ_ROUTE_METHOD_NOT_ALLOWED;
    }

    const struct rterm *t = st.term;
    const char *const *names = t->names[st.slot];
    m->target = t->target[st.slot];
    m->nparams = t->nparams;
    m->allow = t->allow;
    for (unsigned i = 0; i < t->nparams; i++) {
        m->params[i].name = names[i];
        m->params[i].value = st.val[i];
        m->params[i].len = st.val_len[i];
    }
    return CZ_ROUTE_FOUND;
}

size_t cz_router_format_allow(unsigned allow, char *buf, size_t cap)
{
    size_t total = 0;
    for (int m = 0; m < CZ_METHOD_MAX; m++) {
        if (!(allow & CZ_METHOD_BIT(m)))
            continue;
        const char *parts[2] = {", ", method_names[m].name};
        size_t lens[2] = {2, method_names[m].len};
        for (int i = total ? 0 : 1; i < 2; i++) {
            if (cap > 0 && total < cap - 1) {
                size_t room = cap - 1 - total;
                memcpy(buf + total, parts[i], lens[i] < room ? lens[i] : room);
            }
            total += lens[i];
        }
    }
    if (cap > 0)
        buf[total < cap ? total : cap - 1] = '\0';
    return total;
}
