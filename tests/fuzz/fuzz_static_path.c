/* libFuzzer target: the pure functions between a request and a file
 * (src/fs/path.c, src/fs/httpfile.c), each with the invariants callers rely
 * on.  Input: "target\nrange\ndate\nif-match-list\netag" (missing fields are
 * empty); the file size, range cap and flags come from a hash of the input.
 *   cz_path_sanitize: a result is relative (no leading '/'), has no "." or
 *     ".." or empty segment, no NUL/CTL/backslash, no dot segment unless
 *     allowed, fits, and sanitizing it again (when it has no '%') changes
 *     nothing.
 *   cz_range_parse: OK ranges are 1..max, non-empty, inside the file, sorted,
 *     disjoint and not adjacent (merged); multipart length is the sum of its
 *     parts.
 *   cz_http_date_parse: a parsed date formats and parses back to itself.
 *   cz_etag_list_match: "*" matches; a strong match is also a weak match; a
 *     list holding the tag matches it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/httpfile.h"
#include "fs/path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_static_path: %s: ", #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static uint64_t fnv1a(const uint8_t *d, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= d[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void check_path(const char *t, size_t n, uint64_t h)
{
    unsigned flags = (h & 1) ? CZ_PATH_ALLOW_DOT : 0;
    /* Mostly the server's REL_MAX, sometimes tiny so -ENAMETOOLONG is reached. */
    size_t cap = (h & 6) == 6 ? 1 + (size_t)((h >> 8) % 32) : 4096;
    char *out = malloc(cap);
    size_t olen = (size_t)-1;
    int rc = cz_path_sanitize(t, n, out, cap, flags, &olen);
    if (rc < 0) {
        CHECK(rc == -EINVAL || rc == -EPERM || rc == -ENOENT || rc == -ENAMETOOLONG,
              "unexpected error %d", rc);
        free(out);
        return;
    }
    CHECK(olen < cap && strlen(out) == olen, "length %zu, cap %zu, strlen %zu", olen, cap,
          strlen(out));
    CHECK(out[0] != '/', "absolute result '%s'", out);
    for (size_t i = 0; i < olen; i++) {
        unsigned char ch = (unsigned char)out[i];
        CHECK(ch >= 0x20 && ch != 0x7f && ch != '\\', "byte 0x%02x in '%s'", ch, out);
    }
    /* Segment rules: nothing empty (but a trailing '/'), ".", ".." or,
     * unless allowed, dotted. */
    for (const char *seg = out, *end = out + olen; seg < end;) {
        const char *slash = memchr(seg, '/', (size_t)(end - seg));
        size_t sl = slash ? (size_t)(slash - seg) : (size_t)(end - seg);
        CHECK(sl > 0, "empty segment in '%s'", out);
        CHECK(!(sl == 1 && seg[0] == '.'), "'.' segment in '%s'", out);
        CHECK(!(sl == 2 && seg[0] == '.' && seg[1] == '.'), "'..' segment in '%s'", out);
        CHECK((flags & CZ_PATH_ALLOW_DOT) || seg[0] != '.', "dot segment in '%s'", out);
        seg = slash ? slash + 1 : end;
    }
    /* Idempotent: the result, as a target, sanitizes to itself. */
    if (!memchr(out, '%', olen) && olen + 2 < cap) {
        char *again = malloc(cap);
        char *t2 = malloc(olen + 2);
        t2[0] = '/';
        memcpy(t2 + 1, out, olen);
        size_t alen = 0;
        int rc2 = cz_path_sanitize(t2, olen + 1, again, cap, flags, &alen);
        CHECK(rc2 >= 0, "'%s' sanitized, but '/%s' fails with %d", out, out, rc2);
        CHECK(alen == olen && memcmp(again, out, olen) == 0, "'/%s' -> '%s'", out, again);
        free(again);
        free(t2);
    }
    free(out);
}

static void check_range(const char *r, size_t n, uint64_t h)
{
    static const uint64_t sizes[] = {0,         1, 2, 10, 100, 1000, 4096, 1u << 20, UINT64_MAX / 2,
                                     UINT64_MAX};
    uint64_t size = sizes[(h >> 16) % (sizeof(sizes) / sizeof(sizes[0]))];
    unsigned max = (unsigned)((h >> 24) % (CZ_RANGE_LIMIT + 8));
    struct cz_range out[CZ_RANGE_LIMIT + 8];
    unsigned nr = 12345;
    enum cz_range_result res = cz_range_parse(r, n, size, out, max, &nr);
    CHECK(res == CZ_RANGE_NONE_OR_IGNORE || res == CZ_RANGE_OK || res == CZ_RANGE_UNSATISFIABLE ||
              res == CZ_RANGE_TOO_MANY,
          "result %d", (int)res);
    if (res != CZ_RANGE_OK)
        return;
    unsigned cap = max > CZ_RANGE_LIMIT ? CZ_RANGE_LIMIT : max;
    CHECK(nr >= 1 && nr <= cap, "%u ranges with max %u", nr, max);
    for (unsigned i = 0; i < nr; i++) {
        CHECK(out[i].len > 0, "empty range %u", i);
        CHECK(out[i].start < size && out[i].len <= size - out[i].start,
              "range %u (%llu+%llu) outside %llu", i, (unsigned long long)out[i].start,
              (unsigned long long)out[i].len, (unsigned long long)size);
        if (i)
            CHECK(out[i - 1].start + out[i - 1].len < out[i].start,
                  "ranges %u and %u overlap, touch or are unsorted", i - 1, i);
    }
    /* Content-Length of a multipart answer is exactly what is sent. */
    if (nr > 1) {
        char boundary[CZ_MULTIPART_BOUNDARY_MAX];
        cz_multipart_boundary(h, boundary);
        uint64_t total = cz_multipart_trailer(NULL, 0, boundary);
        for (unsigned i = 0; i < nr; i++)
            total += cz_multipart_part_header(NULL, 0, boundary, "text/plain", out[i].start,
                                              out[i].len, size) +
                     out[i].len;
        CHECK(total == cz_multipart_length(boundary, "text/plain", out, nr, size),
              "multipart length mismatch");
    }
    char cr[96];
    size_t crn = cz_http_content_range(cr, sizeof(cr), &out[0], size);
    CHECK(crn < sizeof(cr) && memcmp(cr, "bytes ", 6) == 0, "content-range '%s'", cr);
}

static void check_date(const char *d, size_t n)
{
    time_t t;
    if (cz_http_date_parse(d, n, &t) < 0)
        return;
    char buf[30];
    size_t len = cz_http_date(t, buf);
    if (len == 0)
        return; /* a year outside 0..9999 cannot be formatted */
    CHECK(len == CZ_HTTP_DATE_LEN, "formatted length %zu", len);
    time_t back;
    CHECK(cz_http_date_parse(buf, len, &back) == 0, "'%s' does not parse back", buf);
    CHECK(back == t, "'%s': %lld != %lld", buf, (long long)back, (long long)t);
}

static void check_etag(const char *list, size_t n, const char *tag, size_t tn)
{
    bool strong = cz_etag_list_match(list, n, tag, tn, false);
    bool weak = cz_etag_list_match(list, n, tag, tn, true);
    CHECK(!strong || weak, "strong match without a weak match");
    if (tn)
        CHECK(cz_etag_list_match("*", 1, tag, tn, true), "'*' does not match");
    char etag[CZ_ETAG_MAX];
    size_t en = cz_etag_format(n, tn, (int64_t)(n * 1000003u), etag);
    CHECK(en > 2 && etag[0] == '"' && etag[en - 1] == '"', "etag format '%s'", etag);
    CHECK(cz_etag_list_match(etag, en, etag, en, false), "a tag does not match itself");
    /* The tag appended to any list that parses up to its end matches. */
    char *l2 = malloc(n + en + 2);
    memcpy(l2, list, n);
    l2[n] = ',';
    memcpy(l2 + n + 1, etag, en);
    bool m = cz_etag_list_match(l2, n + 1 + en, etag, en, true);
    (void)m; /* a malformed prefix legitimately ends the scan */
    free(l2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = fnv1a(data, size);
    const char *f[5] = {"", "", "", "", ""};
    size_t fl[5] = {0, 0, 0, 0, 0};
    const char *p = (const char *)data, *end = p + size;
    for (int i = 0; i < 5 && p <= end; i++) {
        const char *nl = i < 4 ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        f[i] = p;
        fl[i] = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (!nl)
            break;
        p = nl + 1;
    }
    /* Copies in exactly-sized heap blocks, so ASan sees any over-read. */
    char *c[5];
    for (int i = 0; i < 5; i++) {
        c[i] = malloc(fl[i] ? fl[i] : 1);
        memcpy(c[i], f[i], fl[i]);
    }
    check_path(c[0], fl[0], h);
    check_range(c[1], fl[1], h);
    check_date(c[2], fl[2]);
    check_etag(c[3], fl[3], c[4], fl[4]);
    /* Every function also sees the whole input. */
    check_path((const char *)data, size, h >> 1);
    check_range((const char *)data, size, h >> 3);
    check_date((const char *)data, size);
    for (int i = 0; i < 5; i++)
        free(c[i]);
    return 0;
}
