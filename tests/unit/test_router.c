/* Unit tests for src/http/router.c: pattern validation, trie matching and its precedence,
 * method dispatch (HEAD -> GET, ANY, 405 + Allow), duplicates and scale.  Most tests are tables
 * run through one helper that copies each path into an exactly-sized heap buffer, so a read past
 * the end shows up under ASan, and checks that parameter values point into it.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/router.h"

#define ANY CZ_ROUTER_ANY
#define GET CZ_METHOD_GET
#define HEAD CZ_METHOD_HEAD
#define POST CZ_METHOD_POST
#define PUT CZ_METHOD_PUT
#define DELETE CZ_METHOD_DELETE
#define PATCH CZ_METHOD_PATCH
#define OPTIONS CZ_METHOD_OPTIONS
#define NF CZ_ROUTE_NOT_FOUND
#define FOUND CZ_ROUTE_FOUND
#define NA CZ_ROUTE_METHOD_NOT_ALLOWED
#define BIT(m) CZ_METHOD_BIT(m)

#define ID(n) ((void *)(uintptr_t)(n))
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

struct route_def {
    int method;
    const char *pattern;
    int id; /* target is ID(id) */
};

struct match_case {
    int method;
    const char *path;
    enum cz_route_result result;
    int id;             /* expected target when FOUND */
    const char *params; /* expected "name=value,name=value" when FOUND */
};

static struct cz_router *build(const struct route_def *defs, size_t n)
{
    struct cz_router *r = cz_router_create();
    cr_assert_not_null(r);
    for (size_t i = 0; i < n; i++) {
        int rc = cz_router_add(r, defs[i].method, defs[i].pattern, ID(defs[i].id));
        cr_assert_eq(rc, 0, "add %d %s: %d", defs[i].method, defs[i].pattern, rc);
    }
    return r;
}

/* Match path from an exact-size copy (no NUL); render params as "name=value,...". */
static enum cz_route_result match_copy(const struct cz_router *r, int method, const char *path,
                                       struct cz_route_match *m, char *params, size_t cap)
{
    size_t len = strlen(path);
    char *buf = malloc(len ? len : 1);
    cr_assert_not_null(buf);
    memcpy(buf, path, len);
    enum cz_route_result res = cz_router_match(r, method, buf, len, m);
    size_t off = 0;
    params[0] = '\0';
    if (res == CZ_ROUTE_FOUND) {
        for (unsigned i = 0; i < m->nparams; i++) {
            const struct cz_route_param *p = &m->params[i];
            cr_assert(p->value >= buf && p->value + p->len <= buf + len,
                      "%s: param %u does not point into the path", path, i);
            cr_assert(p->len > 0 || strcmp(p->name, "*") == 0, "%s: empty parameter", path);
            int w = snprintf(params + off, cap - off, "%s%s=%.*s", i ? "," : "", p->name,
                             (int)p->len, p->value);
            cr_assert(w > 0 && (size_t)w < cap - off);
            off += (size_t)w;
        }
    } else {
        cr_assert_null(m->target);
        cr_assert_eq(m->nparams, 0);
    }
    free(buf);
    return res;
}

static void run_cases(const struct cz_router *r, const struct match_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct match_case *c = &cases[i];
        struct cz_route_match m;
        char params[512];
        enum cz_route_result res = match_copy(r, c->method, c->path, &m, params, sizeof(params));
        cr_assert_eq(res, c->result, "case %zu: %d %s: result %d, want %d", i, c->method, c->path,
                     res, c->result);
        if (res != CZ_ROUTE_FOUND)
            continue;
        cr_assert_eq(m.target, ID(c->id), "case %zu: %s: target %p, want %d", i, c->path, m.target,
                     c->id);
        cr_assert_str_eq(params, c->params ? c->params : "", "case %zu: %s", i, c->path);
    }
}

/* ---- methods ---- */

Test(method, parse_and_name_round_trip)
{
    static const char *const names[] = {"GET",   "HEAD",    "POST",    "PUT",  "DELETE",
                                        "PATCH", "OPTIONS", "CONNECT", "TRACE"};
    cr_assert_eq(COUNT(names), CZ_METHOD_MAX);
    for (int m = 0; m < CZ_METHOD_MAX; m++) {
        cr_assert_eq(cz_method_parse(names[m], strlen(names[m])), m, "%s", names[m]);
        cr_assert_str_eq(cz_method_name((enum cz_method)m), names[m]);
    }
    cr_assert_null(cz_method_name(CZ_METHOD_MAX));
    cr_assert_null(cz_method_name((enum cz_method)CZ_ROUTER_ANY));
}

Test(method, parse_rejects)
{
    static const struct {
        const char *s;
        size_t len;
    } bad[] = {
        {"get", 3}, {"Get", 3},  {"GE", 2},    {"GETS", 4},     {"", 0},
        {"*", 1},   {"GET ", 4}, {"POSTX", 5}, {"PROPFIND", 8}, {"OPTIONS!", 8},
    };
    for (size_t i = 0; i < COUNT(bad); i++)
        cr_assert_eq(cz_method_parse(bad[i].s, bad[i].len), -EINVAL, "%s", bad[i].s);
    cr_assert_eq(cz_method_parse(NULL, 3), -EINVAL);
    /* Not NUL-terminated: only len bytes count. */
    cr_assert_eq(cz_method_parse("GETX", 3), CZ_METHOD_GET);
    cr_assert_eq(cz_method_parse("POST /", 4), CZ_METHOD_POST);
}

/* ---- static routes and parameters ---- */

Test(match, static_routes)
{
    static const struct route_def defs[] = {
        {GET, "/", 1},    {GET, "/plaintext", 2}, {GET, "/json", 3}, {GET, "/a/b/c", 4},
        {GET, "/a/b", 5}, {GET, "/a/bc", 6},      {GET, "/ab", 7},   {GET, "/static/app.js", 8},
    };
    static const struct match_case cases[] = {
        {GET, "/", FOUND, 1, NULL},       {GET, "/plaintext", FOUND, 2, NULL},
        {GET, "/json", FOUND, 3, NULL},   {GET, "/a/b/c", FOUND, 4, NULL},
        {GET, "/a/b", FOUND, 5, NULL},    {GET, "/a/bc", FOUND, 6, NULL},
        {GET, "/ab", FOUND, 7, NULL},     {GET, "/static/app.js", FOUND, 8, NULL},
        {GET, "/a", NF, 0, NULL},         {GET, "/a/b/c/d", NF, 0, NULL},
        {GET, "/plaintex", NF, 0, NULL},  {GET, "/plaintextt", NF, 0, NULL},
        {GET, "/PLAINTEXT", NF, 0, NULL}, {GET, "/a/b/", NF, 0, NULL},
        {GET, "/static", NF, 0, NULL},    {GET, "/b", NF, 0, NULL},
    };
    struct cz_router *r = build(defs, COUNT(defs));
    run_cases(r, cases, COUNT(cases));
    cz_router_destroy(r);
}

Test(match, params_values_and_names)
{
    static const struct route_def defs[] = {
        {GET, "/users/{id}", 1},         {GET, "/users/{id}/posts/{post_id}", 2},
        {GET, "/files/{dir}/{file}", 3}, {GET, "/{first}", 4},
        {POST, "/users/{user}", 5}, /* same shape as 1, its own name */
        {GET, "/x/{A_b9}/", 6},
    };
    static const struct match_case cases[] = {
        {GET, "/users/42", FOUND, 1, "id=42"},
        {POST, "/users/42", FOUND, 5, "user=42"},
        {GET, "/users/7/posts/99", FOUND, 2, "id=7,post_id=99"},
        {GET, "/files/a.b/c%20d", FOUND, 3, "dir=a.b,file=c%20d"},
        {GET, "/anything", FOUND, 4, "first=anything"},
        {GET, "/x/y/", FOUND, 6, "A_b9=y"},
        {GET, "/users/", NF, 0, NULL}, /* a parameter never matches an empty segment */
        {GET, "/users//posts/1", NF, 0, NULL},
        {GET, "/users/7/posts/", NF, 0, NULL},
        {GET, "/files/a", NF, 0, NULL},
        {GET, "/x/y", NF, 0, NULL},
        {GET, "/users/7/posts/99/z", NF, 0, NULL},
    };
    struct cz_router *r = build(defs, COUNT(defs));
    run_cases(r, cases, COUNT(cases));
    cz_router_destroy(r);
}

Test(match, params_with_different_names_share_the_node)
{
    static const struct route_def defs[] = {
        {GET, "/u/{id}", 1},
        {GET, "/u/{name}/x", 2},
        {GET, "/u/{slug}/x/{n}", 3},
    };
    static const struct match_case cases[] = {
        {GET, "/u/7", FOUND, 1, "id=7"},
        {GET, "/u/bob/x", FOUND, 2, "name=bob"},
        {GET, "/u/bob/x/3", FOUND, 3, "slug=bob,n=3"},
    };
    struct cz_router *r = build(defs, COUNT(defs));
    run_cases(r, cases, COUNT(cases));
    cz_router_destroy(r);
}

Test(match, static_beats_param_with_backtracking)
{
    static const struct route_def defs[] = {
        {GET, "/users/me/settings", 1},
        {GET, "/users/{id}/profile", 2},
        {GET, "/users/me", 3},
        {GET, "/users/{id}", 4},
        /* three levels of alternatives */
        {GET, "/a/b/c/d", 10},
        {GET, "/a/{x}/c/e", 11},
        {GET, "/{y}/b/c/f", 12},
        {GET, "/a/b/{z}/g", 13},
    };
    static const struct match_case cases[] = {
        {GET, "/users/me/settings", FOUND, 1, NULL},
        {GET, "/users/me/profile", FOUND, 2, "id=me"},
        {GET, "/users/42/profile", FOUND, 2, "id=42"},
        {GET, "/users/me", FOUND, 3, NULL},
        {GET, "/users/you", FOUND, 4, "id=you"},
        {GET, "/users/42/settings", NF, 0, NULL},
        {GET, "/a/b/c/d", FOUND, 10, NULL},
        {GET, "/a/b/c/e", FOUND, 11, "x=b"},
        {GET, "/a/b/c/f", FOUND, 12, "y=a"},
        {GET, "/a/b/c/g", FOUND, 13, "z=c"},
        {GET, "/a/b/q/g", FOUND, 13, "z=q"},
        {GET, "/q/b/c/f", FOUND, 12, "y=q"},
        {GET, "/a/b/c/h", NF, 0, NULL},
        {GET, "/q/b/c/d", NF, 0, NULL},
    };
    struct cz_router *r = build(defs, COUNT(defs));
    run_cases(r, cases, COUNT(cases));
    cz_router_destroy(r);
}

Test(match, static_route_without_the_method_backtracks_to_param)
{
    static const struct route_def defs[] = {
        {GET, "/users/me", 1},
        {POST, "/users/{id}", 2},
    };
    static const struct match_case cases[] = {
        {GET, "/users/me", FOUND, 1, NULL},  {POST, "/users/me", FOUND, 2, "id=me"},
        {HEAD, "/users/me", FOUND, 1, NULL}, {PUT, "/users/me", NA, 0, NULL},
        {GET, "/users/42", NA, 0, NULL},
    };
    struct cz_router *r = build(defs, COUNT(defs));
    run_cases(r, cases, COUNT(cases));
    /* Allow is the union over every route the path matched. */
    struct cz_route_match m;
    cr_assert_eq(cz_router_match(r, PUT, "/users/me", 9, &m), NA);
    cr_assert_eq(m.allow, BIT(GET) | BIT(HEAD) | BIT(POST));
    cr_assert_eq(cz_router_match(r, GET, "/users/42", 9, &m), NA);
    cr_assert_eq(m.allow, BIT(POST));
    cz_router_destroy(r);
}

Test(match, trailing_slash_is_significant)
{
    static const struct route_def defs[] = {
        {GET, "/a", 1},  {GET, "/b/", 2},    {GET, "/c", 3},
        {GET, "/c/", 4}, {GET, "/p/{x}", 5}, {GET, "/q/{x}/", 6},
    };
    static const struct match_case cases[] = {
        {GET, "/a", FOUND, 1, NULL},     {GET, "/a/", NF, 0, NULL},
        {GET, "/b/", FOUND, 2, NULL},    {GET, "/b", NF, 0, NULL},
        {GET, "/c", FOUND, 3, NULL},     {GET, "/c/", FOUND, 4, NULL},
        {GET, "/p/1", FOUND, 5, "x=1"},  {GET, "/p/1/", NF, 0, NULL},
        {GET, "/q/1/", FOUND, 6, "x=1"}, {GET, "/q/1", NF, 0, NULL},
    };
    struct cz_router *r = build(defs, COUNT(defs));
    run_cases(r, cases, COUNT(cases));
    cz_router_destroy(r);
}

Test(match, empty_segments_are_literal)
{
    static const struct route_def defs[] = {
        {GET, "/", 1},
        {GET, "/a/b", 2},
        {GET, "/a//b", 3}, /* an empty static segment is a legal pattern */
        {GET, "/x/{p}/y", 4},
    };
    static const struct match_case cases[] = {
        {GET, "/", FOUND, 1, NULL},    {GET, "//", NF, 0, NULL},
        {GET, "/a/b", FOUND, 2, NULL}, {GET, "/a//b", FOUND, 3, NULL},
        {GET, "//a/b", NF, 0, NULL},   {GET, "/a/b//", NF, 0, NULL},
        {GET, "/x//y", NF, 0, NULL},   {GET, "/x/1/y", FOUND, 4, "p=1"},
        {GET, "", NF, 0, NULL},        {GET, "a/b", NF, 0, NULL},
        {GET, "*", NF, 0, NULL},
    };
    struct cz_router *r = build(defs, COUNT(defs));
    run_cases(r, cases, COUNT(cases));
    cz_router_destroy(r);
}

Test(match, path_is_not_nul_terminated)
{
    static const struct route_def defs[] = {{GET, "/ab", 1}, {GET, "/a/{x}", 2}};
    struct cz_router *r = build(defs, COUNT(defs));
    struct cz_route_match m;
    /* Only len bytes are the path: what follows (a query, the next header) is not. */
    const char *raw = "/a/xyz/more?q=1";
    cr_assert_eq(cz_router_match(r, GET, raw, 3, &m), NF); /* "/a/": empty parameter */
    cr_assert_eq(cz_router_match(r, GET, raw, 6, &m), FOUND);
    cr_assert_eq(m.target, ID(2));
    cr_assert_eq(m.nparams, 1);
    cr_assert_str_eq(m.params[0].name, "x");
    cr_assert_eq(m.params[0].value, raw + 3);
    cr_assert_eq(m.params[0].len, 3);
    cr_assert_eq(cz_router_match(r, GET, "/abc", 3, &m), FOUND);
    cr_assert_eq(m.target, ID(1));
    cr_assert_eq(cz_router_match(r, GET, raw, 2, &m), NF);
    cz_router_destroy(r);
}

/* ---- methods on one path ---- */

Test(dispatch, per_method_targets)
{
    static const struct route_def defs[] = {
        {GET, "/r", 1},
        {POST, "/r", 2},
        {PUT, "/r", 3},
        {DELETE, "/r", 4},
        {PATCH, "/r", 5},
        {OPTIONS, "/r", 6},
        {CZ_METHOD_CONNECT, "/r", 7},
        {CZ_METHOD_TRACE, "/r", 8},
        {HEAD, "/r", 9},
    };
    static const struct match_case cases[] = {
        {GET, "/r", FOUND, 1, NULL},
        {POST, "/r", FOUND, 2, NULL},
        {PUT, "/r", FOUND, 3, NULL},
        {DELETE, "/r", FOUND, 4, NULL},
        {PATCH, "/r", FOUND, 5, NULL},
        {OPTIONS, "/r", FOUND, 6, NULL},
        {CZ_METHOD_CONNECT, "/r", FOUND, 7, NULL},
        {CZ_METHOD_TRACE, "/r", FOUND, 8, NULL},
        {HEAD, "/r", FOUND, 9, NULL},
    };
    struct cz_router *r = build(defs, COUNT(defs));
    run_cases(r, cases, COUNT(cases));
    struct cz_route_match m;
    cr_assert_eq(cz_router_match(r, GET, "/r", 2, &m), FOUND);
    cr_assert_eq(m.allow, CZ_METHOD_ALL);
    cz_router_destroy(r);
}

Test(dispatch, head_falls_back_to_get)
{
    static const struct route_def defs[] = {
        {GET, "/g", 1},  {GET, "/h", 2},      {HEAD, "/h", 3}, /* explicit HEAD wins */
        {GET, "/ga", 4}, {ANY, "/ga", 5},                      /* HEAD prefers GET to ANY */
        {POST, "/p", 6}, {GET, "/u/{id}", 7},
    };
    static const struct match_case cases[] = {
        {HEAD, "/g", FOUND, 1, NULL},     {HEAD, "/h", FOUND, 3, NULL}, {GET, "/h", FOUND, 2, NULL},
        {HEAD, "/ga", FOUND, 4, NULL},    {PUT, "/ga", FOUND, 5, NULL}, {HEAD, "/p", NA, 0, NULL},
        {HEAD, "/u/5", FOUND, 7, "id=5"},
    };
    struct cz_router *r = build(defs, COUNT(defs));
    run_cases(r, cases, COUNT(cases));
    cz_router_destroy(r);
}

Test(dispatch, any_matches_every_method_without_its_own)
{
    static const struct route_def defs[] = {
        {ANY, "/any", 1},   {ANY, "/mix", 2},   {POST, "/mix", 3},
        {ANY, "/p/{a}", 4}, {GET, "/p/{b}", 5},
    };
    struct cz_router *r = build(defs, COUNT(defs));
    for (int m = 0; m < CZ_METHOD_MAX; m++) {
        const struct match_case cases[] = {
            {m, "/any", FOUND, 1, NULL},
            {m, "/mix", FOUND, m == POST ? 3 : 2, NULL},
            {m, "/p/z", FOUND, m == GET || m == HEAD ? 5 : 4,
             m == GET || m == HEAD ? "b=z" : "a=z"},
        };
        run_cases(r, cases, COUNT(cases));
    }
    /* A method the parser did not know (cz_method_parse said -EINVAL) reaches only ANY. */
    const struct match_case unknown[] = {
        {-EINVAL, "/any", FOUND, 1, NULL},
        {CZ_METHOD_MAX, "/mix", FOUND, 2, NULL},
    };
    run_cases(r, unknown, COUNT(unknown));
    struct cz_route_match m;
    cr_assert_eq(cz_router_match(r, DELETE, "/any", 4, &m), FOUND);
    cr_assert_eq(m.allow, CZ_METHOD_ALL);
    cz_router_destroy(r);
}

Test(dispatch, unknown_method_is_405_without_any)
{
    static const struct route_def defs[] = {{GET, "/g", 1}};
    struct cz_router *r = build(defs, COUNT(defs));
    struct cz_route_match m;
    cr_assert_eq(cz_router_match(r, -EINVAL, "/g", 2, &m), NA);
    cr_assert_eq(m.allow, BIT(GET) | BIT(HEAD));
    cr_assert_eq(cz_router_match(r, 1000, "/g", 2, &m), NA);
    cz_router_destroy(r);
}

/* ---- 404 and 405 ---- */

Test(errors, method_not_allowed_sets_allow)
{
    static const struct route_def defs[] = {
        {GET, "/g", 1},    {POST, "/p", 2},        {POST, "/gp", 3},
        {GET, "/gp", 4},   {DELETE, "/d/{id}", 5}, {PUT, "/d/{id}", 6},
        {HEAD, "/h", 7},   {OPTIONS, "/o", 8},     {CZ_METHOD_TRACE, "/o", 9},
        {PATCH, "/o", 10},
    };
    static const struct {
        int method;
        const char *path;
        unsigned allow;
        const char *header;
    } cases[] = {
        {POST, "/g", BIT(GET) | BIT(HEAD), "GET, HEAD"},
        {GET, "/p", BIT(POST), "POST"},
        {HEAD, "/p", BIT(POST), "POST"},
        {PUT, "/gp", BIT(GET) | BIT(HEAD) | BIT(POST), "GET, HEAD, POST"},
        {GET, "/d/1", BIT(PUT) | BIT(DELETE), "PUT, DELETE"},
        {GET, "/h", BIT(HEAD), "HEAD"},
        {GET, "/o", BIT(PATCH) | BIT(OPTIONS) | BIT(CZ_METHOD_TRACE), "PATCH, OPTIONS, TRACE"},
    };
    struct cz_router *r = build(defs, COUNT(defs));
    for (size_t i = 0; i < COUNT(cases); i++) {
        struct cz_route_match m;
        size_t len = strlen(cases[i].path);
        cr_assert_eq(cz_router_match(r, cases[i].method, cases[i].path, len, &m), NA, "%s",
                     cases[i].path);
        cr_assert_eq(m.allow, cases[i].allow, "%s: allow %#x", cases[i].path, m.allow);
        cr_assert_null(m.target);
        char buf[128];
        size_t n = cz_router_format_allow(m.allow, buf, sizeof(buf));
        cr_assert_str_eq(buf, cases[i].header);
        cr_assert_eq(n, strlen(cases[i].header));
    }
    cz_router_destroy(r);
}

Test(errors, not_found)
{
    static const struct route_def defs[] = {{GET, "/a", 1}, {GET, "/b/{x}", 2}};
    static const char *const paths[] = {"/", "/c", "/a/b", "/b", "/b/", "/b/x/y", "/aa", ""};
    struct cz_router *r = build(defs, COUNT(defs));
    for (size_t i = 0; i < COUNT(paths); i++) {
        struct cz_route_match m;
        m.allow = 123;
        cr_assert_eq(cz_router_match(r, GET, paths[i], strlen(paths[i]), &m), NF, "%s", paths[i]);
        cr_assert_eq(m.allow, 0);
        cr_assert_null(m.target);
    }
    struct cz_route_match m;
    cr_assert_eq(cz_router_match(r, GET, NULL, 0, &m), NF);
    cz_router_destroy(r);

    /* An empty router finds nothing. */
    r = cz_router_create();
    cr_assert_eq(cz_router_match(r, GET, "/", 1, &m), NF);
    cz_router_destroy(r);
}

Test(format, allow_strings)
{
    static const struct {
        unsigned allow;
        const char *want;
    } cases[] = {
        {0, ""},
        {BIT(GET), "GET"},
        {BIT(POST) | BIT(GET) | BIT(HEAD), "GET, HEAD, POST"},
        {CZ_METHOD_ALL, "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT, TRACE"},
        {BIT(CZ_METHOD_TRACE) | BIT(CZ_METHOD_MAX) | 0x80000000u, "TRACE"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        char buf[128];
        memset(buf, 'x', sizeof(buf));
        size_t n = cz_router_format_allow(cases[i].allow, buf, sizeof(buf));
        cr_assert_str_eq(buf, cases[i].want);
        cr_assert_eq(n, strlen(cases[i].want));
    }
}

Test(format, allow_truncates_like_snprintf)
{
    const unsigned allow = BIT(GET) | BIT(HEAD) | BIT(POST);
    const char *full = "GET, HEAD, POST";
    for (size_t cap = 0; cap <= strlen(full) + 1; cap++) {
        char buf[32];
        memset(buf, 'x', sizeof(buf));
        size_t n = cz_router_format_allow(allow, cap ? buf : NULL, cap);
        cr_assert_eq(n, strlen(full), "cap %zu", cap);
        if (cap == 0)
            continue;
        cr_assert_eq(strlen(buf), cap - 1, "cap %zu", cap);
        cr_assert_eq(memcmp(buf, full, cap - 1), 0, "cap %zu", cap);
        cr_assert_eq(buf[cap], 'x', "cap %zu: wrote past cap", cap);
    }
}

/* ---- registration errors ---- */

Test(add, duplicates)
{
    struct cz_router *r = cz_router_create();
    cr_assert_eq(cz_router_add(r, GET, "/a", ID(1)), 0);
    cr_assert_eq(cz_router_add(r, GET, "/a", ID(2)), -EEXIST);
    cr_assert_eq(cz_router_add(r, POST, "/a", ID(3)), 0);
    cr_assert_eq(cz_router_add(r, HEAD, "/a", ID(4)), 0);
    cr_assert_eq(cz_router_add(r, ANY, "/a", ID(5)), 0);
    cr_assert_eq(cz_router_add(r, ANY, "/a", ID(6)), -EEXIST);
    cr_assert_eq(cz_router_add(r, GET, "/a/", ID(7)), 0); /* another shape */
    /* same shape, different parameter names */
    cr_assert_eq(cz_router_add(r, GET, "/u/{id}", ID(10)), 0);
    cr_assert_eq(cz_router_add(r, GET, "/u/{name}", ID(11)), -EEXIST);
    cr_assert_eq(cz_router_add(r, ANY, "/u/{x}", ID(12)), 0);
    cr_assert_eq(cz_router_add(r, ANY, "/u/{y}", ID(13)), -EEXIST);
    cr_assert_eq(cz_router_add(r, GET, "/u/{a}/{b}", ID(14)), 0);
    cr_assert_eq(cz_router_add(r, GET, "/u/{c}/{d}", ID(15)), -EEXIST);
    cr_assert_eq(cz_router_add(r, GET, "/u/me", ID(16)), 0); /* static is not the same shape */

    /* The first registration survives a rejected duplicate, names included. */
    static const struct match_case cases[] = {
        {GET, "/a", FOUND, 1, NULL},       {POST, "/a", FOUND, 3, NULL},
        {HEAD, "/a", FOUND, 4, NULL},      {PUT, "/a", FOUND, 5, NULL},
        {GET, "/a/", FOUND, 7, NULL},      {GET, "/u/1", FOUND, 10, "id=1"},
        {PATCH, "/u/1", FOUND, 12, "x=1"}, {GET, "/u/1/2", FOUND, 14, "a=1,b=2"},
        {GET, "/u/me", FOUND, 16, NULL},
    };
    run_cases(r, cases, COUNT(cases));
    cz_router_destroy(r);
}

Test(add, invalid_patterns)
{
    static const char *const bad[] = {
        "",       "a",       "a/b",       "plaintext",    "{id}",   "/{}",     "/{",     "/}",
        "/{a",    "/a}",     "/{a}b",     "/x{a}",        "/x{a}y", "/{a}}",   "/{{a}}", "/{a-b}",
        "/{a.b}", "/{a b}",  "/{a}/{a}",  "/{id}/x/{id}", "/a?b",   "/a?",     "/?",     "/a#b",
        "/#",     "/a%20b",  "/%",        "/a b",         "/ ",     "/a\tb",   "/a\r\n", "/\x01",
        "/a\x7f", "/{a}/b{", "/a/{b}/c}", "/{\xc3\xa9}",  "//{}",   "/{a}{b}",
    };
    struct cz_router *r = cz_router_create();
    for (size_t i = 0; i < COUNT(bad); i++)
        cr_assert_eq(cz_router_add(r, GET, bad[i], ID(1)), -EINVAL, "case %zu: \"%s\"", i, bad[i]);
    cr_assert_eq(cz_router_add(r, GET, NULL, ID(1)), -EINVAL);
    cr_assert_eq(cz_router_add(NULL, GET, "/a", ID(1)), -EINVAL);
    /* None of them left a route behind. */
    struct cz_route_match m;
    cr_assert_eq(cz_router_match(r, GET, "/a", 2, &m), NF);
    cr_assert_eq(cz_router_match(r, GET, "/x", 2, &m), NF);
    cz_router_destroy(r);
}

Test(add, valid_unusual_patterns)
{
    static const char *const good[] = {
        "/",          "//",   "/a//b",   "/a/",       "/~user/.hidden", "/caf\xc3\xa9",
        "/a:b;c=d,e", "/{_}", "/q/{A9}", "/{a}/{b}/", "/x/{a}/y/{b}",
    };
    struct cz_router *r = cz_router_create();
    for (size_t i = 0; i < COUNT(good); i++)
        cr_assert_eq(cz_router_add(r, GET, good[i], ID(i + 1)), 0, "\"%s\"", good[i]);
    static const struct match_case cases[] = {
        {GET, "//", FOUND, 2, NULL},          {GET, "/caf\xc3\xa9", FOUND, 6, NULL},
        {GET, "/a:b;c=d,e", FOUND, 7, NULL},  {GET, "/z", FOUND, 8, "_=z"},
        {GET, "/p/q/", FOUND, 10, "a=p,b=q"},
    };
    run_cases(r, cases, COUNT(cases));
    cz_router_destroy(r);
}

Test(add, invalid_methods)
{
    struct cz_router *r = cz_router_create();
    static const int bad[] = {-2, -EINVAL, CZ_METHOD_MAX, CZ_METHOD_MAX + 1, 1 << 20};
    for (size_t i = 0; i < COUNT(bad); i++)
        cr_assert_eq(cz_router_add(r, bad[i], "/a", ID(1)), -EINVAL, "method %d", bad[i]);
    cz_router_destroy(r);
}

Test(add, param_limits)
{
    struct cz_router *r = cz_router_create();
    cr_assert_eq(cz_router_add(r, GET, "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", ID(1)), -EINVAL);
    cr_assert_eq(cz_router_add(r, GET, "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}", ID(2)), 0);
    cr_assert_eq(cz_router_add(r, GET, "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/x", ID(3)), 0);
    cr_assert_eq(cz_router_add(r, GET, "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", ID(4)), -EINVAL);

    char name32[64], name33[64];
    snprintf(name32, sizeof(name32), "/n/{%s}", "abcdefghijklmnopqrstuvwxyz_01234");
    snprintf(name33, sizeof(name33), "/m/{%s}", "abcdefghijklmnopqrstuvwxyz_012345");
    cr_assert_eq(cz_router_add(r, GET, name33, ID(5)), -EINVAL);
    cr_assert_eq(cz_router_add(r, GET, name32, ID(6)), 0);

    static const struct match_case cases[] = {
        {GET, "/1/2/3/4/5/6/7/8", FOUND, 2, "a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8"},
        {GET, "/1/2/3/4/5/6/7/8/x", FOUND, 3, "a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8"},
        {GET, "/1/2/3/4/5/6/7/8/9", NF, 0, NULL},
        {GET, "/n/v", FOUND, 6, "abcdefghijklmnopqrstuvwxyz_01234=v"},
    };
    run_cases(r, cases, COUNT(cases));
    cz_router_destroy(r);
}

/* ---- scale ---- */

Test(scale, thousand_generated_routes)
{
    enum { N = 1000 };
    struct cz_router *r = cz_router_create();
    char pat[64], path[64];
    /* Registered in a scrambled order so the sorted insert moves entries around. */
    for (int k = 0; k < N; k++) {
        int i = (k * 337) % N;
        snprintf(pat, sizeof(pat), "/r%d", i);
        cr_assert_eq(cz_router_add(r, GET, pat, ID(i + 1)), 0, "%s", pat);
        snprintf(pat, sizeof(pat), "/p/{id}/r%d", i);
        cr_assert_eq(cz_router_add(r, POST, pat, ID(N + i + 1)), 0, "%s", pat);
        snprintf(pat, sizeof(pat), "/s/%d/{x}/%d/", i % 10, i);
        cr_assert_eq(cz_router_add(r, ANY, pat, ID(2 * N + i + 1)), 0, "%s", pat);
    }
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(path, sizeof(path), "/r%d", i);
        const struct match_case c1 = {GET, path, FOUND, i + 1, NULL};
        run_cases(r, &c1, 1);
        snprintf(path, sizeof(path), "/p/u%d/r%d", i, i);
        snprintf(want, sizeof(want), "id=u%d", i);
        const struct match_case c2 = {POST, path, FOUND, N + i + 1, want};
        run_cases(r, &c2, 1);
        snprintf(path, sizeof(path), "/s/%d/v/%d/", i % 10, i);
        const struct match_case c3 = {DELETE, path, FOUND, 2 * N + i + 1, "x=v"};
        run_cases(r, &c3, 1);
    }
    static const struct match_case misses[] = {
        {GET, "/r1000", NF, 0, NULL}, {GET, "/r-1", NF, 0, NULL},      {GET, "/r01", NF, 0, NULL},
        {POST, "/r5", NA, 0, NULL},   {GET, "/s/1/v/2/", NF, 0, NULL},
    };
    run_cases(r, misses, COUNT(misses));
    cr_assert_eq(cz_router_add(r, GET, "/r500", ID(1)), -EEXIST);
    cz_router_destroy(r);
}

Test(scale, long_paths)
{
    enum { SEGS = CZ_ROUTER_MAX_SEGMENTS, LONG = 64 * 1024 };
    struct cz_router *r = cz_router_create();
    /* The deepest pattern allowed: /s0/s1/.../{p255}, a parameter every 50 segments and last. */
    char *pat = malloc(SEGS * 8 + 16);
    char *path = malloc(SEGS * 8 + 16);
    cr_assert(pat && path);
    size_t pl = 0, ql = 0;
    for (int i = 0; i < SEGS; i++) {
        if (i % 50 == 49 || i == SEGS - 1) {
            pl += (size_t)sprintf(pat + pl, "/{p%d}", i);
            ql += (size_t)sprintf(path + ql, "/v%d", i);
        } else {
            pl += (size_t)sprintf(pat + pl, "/s%d", i);
            ql += (size_t)sprintf(path + ql, "/s%d", i);
        }
    }
    cr_assert_eq(cz_router_add(r, GET, pat, ID(1)), 0);
    strcpy(pat + pl, "/x"); /* one segment more than allowed */
    cr_assert_eq(cz_router_add(r, GET, pat, ID(9)), -EINVAL);
    const struct match_case deep = {GET, path, FOUND, 1,
                                    "p49=v49,p99=v99,p149=v149,p199=v199,"
                                    "p249=v249,p255=v255"};
    run_cases(r, &deep, 1);
    path[ql - 1] = 'X'; /* last segment "v255" -> "v25X" still matches the parameter */
    struct cz_route_match m;
    cr_assert_eq(cz_router_match(r, GET, path, ql, &m), FOUND);
    cr_assert_eq(cz_router_match(r, GET, path, ql - 5, &m), NF); /* stops at an inner node */
    strcpy(path + ql, "/x");
    cr_assert_eq(cz_router_match(r, GET, path, ql + 2, &m), NF); /* deeper than the trie */

    /* A 64 KiB segment and a 64 KiB path of slashes match nothing, and do not crash. */
    cr_assert_eq(cz_router_add(r, GET, "/{any}", ID(2)), 0);
    char *big = malloc(LONG);
    cr_assert_not_null(big);
    memset(big, 'a', LONG);
    big[0] = '/';
    cr_assert_eq(cz_router_match(r, GET, big, LONG, &m), FOUND);
    cr_assert_eq(m.params[0].len, (size_t)LONG - 1);
    memset(big, '/', LONG);
    cr_assert_eq(cz_router_match(r, GET, big, LONG, &m), NF);
    /* and a long static pattern registers and matches */
    memset(big, 'b', LONG);
    big[0] = '/';
    big[LONG - 1] = '\0';
    cr_assert_eq(cz_router_add(r, GET, big, ID(3)), 0);
    cr_assert_eq(cz_router_match(r, GET, big, LONG - 1, &m), FOUND);
    cr_assert_eq(m.target, ID(3));
    free(big);
    free(pat);
    free(path);
    cz_router_destroy(r);
}

/* ---- lifecycle and threads ---- */

Test(lifecycle, destroy_null_and_repeat)
{
    cz_router_destroy(NULL);
    static const struct route_def defs[] = {
        {GET, "/", 1},
        {GET, "/a/{b}/c", 2},
        {ANY, "/a/{b}/c", 3},
        {POST, "/x/{y}/", 4},
    };
    for (int i = 0; i < 100; i++)
        cz_router_destroy(build(defs, COUNT(defs)));
}

struct thread_arg {
    const struct cz_router *r;
    int failures;
};

static void *match_thread(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 20000; i++) {
        struct cz_route_match m;
        char path[32];
        int n = snprintf(path, sizeof(path), "/u/%d/p", i);
        if (cz_router_match(a->r, GET, path, (size_t)n, &m) != CZ_ROUTE_FOUND ||
            m.target != ID(2) || m.nparams != 1 || m.params[0].value != path + 3)
            a->failures++;
        if (cz_router_match(a->r, GET, "/plaintext", 10, &m) != CZ_ROUTE_FOUND || m.target != ID(1))
            a->failures++;
    }
    return NULL;
}

Test(lifecycle, concurrent_matches_on_one_router)
{
    static const struct route_def defs[] = {{GET, "/plaintext", 1}, {GET, "/u/{id}/p", 2}};
    struct cz_router *r = build(defs, COUNT(defs));
    pthread_t t[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){.r = r, .failures = 0};
        cr_assert_eq(pthread_create(&t[i], NULL, match_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(args[i].failures, 0);
    }
    cz_router_destroy(r);
}

/* ---- micro-benchmark (reports, never asserts a time) ---- */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

Test(bench, plaintext_among_ten_routes)
{
    static const struct route_def defs[] = {
        {GET, "/", 1},           {GET, "/plaintext", 2},
        {GET, "/json", 3},       {POST, "/echo", 4},
        {GET, "/db", 5},         {GET, "/queries", 6},
        {GET, "/fortunes", 7},   {GET, "/updates", 8},
        {GET, "/users/{id}", 9}, {GET, "/static/{file}", 10},
    };
    struct cz_router *r = build(defs, COUNT(defs));
    enum { ITERS = 2000000 };
    struct cz_route_match m;
    volatile uintptr_t sink = 0;
    const char *paths[] = {"/plaintext", "/users/12345"};
    for (int p = 0; p < 2; p++) {
        size_t len = strlen(paths[p]);
        double t0 = now_ns();
        for (int i = 0; i < ITERS; i++) {
            cz_router_match(r, GET, paths[p], len, &m);
            sink += (uintptr_t)m.target;
        }
        double t1 = now_ns();
        cr_log_info("router match %s: %.1f ns/op", paths[p], (t1 - t0) / ITERS);
        fprintf(stderr, "bench: router match %s: %.1f ns/op\n", paths[p], (t1 - t0) / ITERS);
    }
    (void)sink;
    cz_router_destroy(r);
}

/* ---- the final "*" wildcard ---- */

Test(match, wildcard_takes_the_rest)
{
    static const struct route_def defs[] = {
        {GET, "/static/*", 1},          {GET, "/static/app.js", 2}, {GET, "/static/{file}/x", 3},
        {GET, "/files/{user}/*", 4},    {GET, "/*", 5},
    };
    static const struct match_case cases[] = {
        {GET, "/static/a/b/c.css", FOUND, 1, "*=a/b/c.css"},
        {GET, "/static/", FOUND, 1, "*="},
        {GET, "/static/app.js", FOUND, 2, NULL},     /* static wins */
        {GET, "/static/lib/x", FOUND, 3, "file=lib"}, /* a parameter wins */
        {GET, "/files/ann/2026/a.txt", FOUND, 4, "user=ann,*=2026/a.txt"},
        {GET, "/static", FOUND, 5, "*=static"},       /* no slash: not /static/'s */
        {GET, "/anything/else", FOUND, 5, "*=anything/else"},
        {GET, "/", FOUND, 5, "*="},
        {POST, "/static/a", NA, 0, NULL},
    };
    struct cz_router *r = build(defs, COUNT(defs));
    run_cases(r, cases, COUNT(cases));
    cz_router_destroy(r);
}

Test(pattern, wildcard_only_at_the_end)
{
    struct cz_router *r = cz_router_create();
    static const char *const bad[] = {"/*/x", "/a/*/b", "/a*", "/*b", "/a/**", "/a/{x}*"};
    for (size_t i = 0; i < COUNT(bad); i++)
        cr_expect_eq(cz_router_add(r, CZ_METHOD_GET, bad[i], ID(1)), -EINVAL, "%s", bad[i]);
    cr_expect_eq(cz_router_add(r, CZ_METHOD_GET, "/a/*", ID(1)), 0);
    cr_expect_eq(cz_router_add(r, CZ_METHOD_GET, "/a/*", ID(2)), -EEXIST);
    cz_router_destroy(r);
}
