/* HTTP semantics of serving a file (RFC 9110): HTTP-dates, ETags, conditional requests in
 * the §13.2.2 order, Range parsing and multipart/byteranges framing.
 * Pure functions on caller-provided buffers: no allocation, no I/O, no locale, any thread.
 * Does not own: stat(), choosing the status line, or sending bytes (the static handler does).
 */
#ifndef CZ_FS_HTTPFILE_H
#define CZ_FS_HTTPFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- HTTP-date ---- */

#define CZ_HTTP_DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* Format t as an IMF-fixdate into out (NUL-terminated). Returns CZ_HTTP_DATE_LEN, or 0 (and
 * out = "") when t's year is outside 0..9999. Uses gmtime_r: thread-safe, locale-free. */
size_t cz_http_date(time_t t, char out[30]);

/* Parse an HTTP-date: IMF-fixdate, or the obsolete RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT",
 * two-digit year read per RFC 9110 §5.6.7: more than 50 years ahead means the century before)
 * and asctime ("Sun Nov  6 08:49:37 1994") forms recipients must accept. Names are
 * case-sensitive, as the grammar says; surrounding whitespace is ignored; the day-of-week
 * is checked for form, not for agreement with the date. Returns 0 and *out, or -EINVAL. */
int cz_http_date_parse(const char *s, size_t len, time_t *out);

/* ---- Entity tags ---- */

#define CZ_ETAG_MAX 64

/* Strong ETag "\"<ino hex>-<size hex>-<mtime_ns hex>\"" into out (NUL-terminated); returns
 * its length (at most 52). Changes whenever the file is replaced (inode), resized or touched. */
size_t cz_etag_format(uint64_t ino, uint64_t size, int64_t mtime_ns, char out[CZ_ETAG_MAX]);

/* Does the If-Match / If-None-Match value header[0..len) match etag[0..etag_len) (a quoted
 * entity-tag, optionally W/-prefixed)? "*" matches; a comma-separated list with optional
 * whitespace and empty elements is accepted. weak_compare: W/ prefixes are ignored
 * (If-None-Match); otherwise a weak tag on either side never matches (If-Match).
 * A malformed element ends the scan: only elements before it can match. */
bool cz_etag_list_match(const char *header, size_t len, const char *etag, size_t etag_len,
                        bool weak_compare);

/* ---- Conditional requests (RFC 9110 §13.2.2) ---- */

/* Header values point into the request and need not be NUL-terminated; NULL = absent. */
struct cz_cond_input {
    const char *if_match;
    size_t if_match_len;
    const char *if_unmodified_since;
    size_t if_unmodified_since_len;
    const char *if_none_match;
    size_t if_none_match_len;
    const char *if_modified_since;
    size_t if_modified_since_len;
    bool get_or_head; /* the method is GET or HEAD */
    const char *etag; /* the current representation's ETag, as sent */
    size_t etag_len;
    time_t mtime; /* its Last-Modified, in whole seconds */
};

enum cz_cond_result {
    CZ_COND_PROCEED,             /* serve normally (then look at Range / If-Range) */
    CZ_COND_NOT_MODIFIED,        /* 304, with ETag / Last-Modified, no body */
    CZ_COND_PRECONDITION_FAILED, /* 412 */
};

/* Evaluate the preconditions in RFC 9110 order: If-Match (strong; "*" is true since the file
 * exists) else If-Unmodified-Since -> 412; then If-None-Match (weak) -> 304 for GET/HEAD, 412
 * otherwise; else If-Modified-Since, only for GET/HEAD -> 304. If-Match hides
 * If-Unmodified-Since, If-None-Match hides If-Modified-Since; an invalid date is ignored. */
enum cz_cond_result cz_http_conditional(const struct cz_cond_input *in);

/* If-Range: true (send the range) if hdr is a strong entity-tag equal to etag, or an
 * HTTP-date exactly equal to mtime; false (send 200 with the whole file) for a weak tag, a
 * different validator or anything malformed. The caller decides whether mtime is a strong
 * validator (RFC 9110 §8.8.2.2: at least a second older than the Date it sends). */
bool cz_http_if_range_ok(const char *hdr, size_t len, const char *etag, size_t etag_len,
                         time_t mtime);

/* ---- Range (RFC 9110 §14) ---- */

#define CZ_RANGE_LIMIT 64 /* the largest usable max for cz_range_parse */

struct cz_range {
    uint64_t start;
    uint64_t len; /* > 0; start + len <= size */
};

enum cz_range_result {
    CZ_RANGE_NONE_OR_IGNORE, /* no usable Range: malformed, not "bytes", ranges off -> 200 */
    CZ_RANGE_OK,             /* *n ranges in out -> 206 */
    CZ_RANGE_UNSATISFIABLE,  /* valid, but none overlaps the file -> 416 */
    CZ_RANGE_TOO_MANY,       /* more than max after merging, or more than 2*max range-specs
                                in the header (parsing stops there) -> 200 */
};

/* Parse the Range value hdr[0..len) ("bytes=a-b, c-, -d"; unit case-insensitive, OWS around
 * commas, empty list elements skipped) against a file of size bytes. Numbers are digits only
 * and must fit in uint64 (otherwise malformed); "a-b" with b < a is malformed. Unsatisfiable
 * specs (start >= size, "-0", anything on an empty file) are dropped; if none is left the
 * result is UNSATISFIABLE. The rest are clamped to the file, sorted by start, and overlapping
 * or adjacent ranges merged, then written to out[0..*n) (*n is set only for OK). A request
 * covering the whole file still returns OK with one range {0, size}: answering 206 is legal;
 * a caller preferring 200 checks for that. max is the cap on ranges (out has room for max);
 * 0 disables ranges, above CZ_RANGE_LIMIT it is clamped. */
enum cz_range_result cz_range_parse(const char *hdr, size_t len, uint64_t size,
                                    struct cz_range *out, unsigned max, unsigned *n);

/* Content-Range value: "bytes a-b/size" for *r; when r is NULL, the unsatisfied-range form
 * for a 416 (a '*' in place of "a-b").
 * snprintf-style: returns the full length, writes at most cap - 1 bytes plus a NUL. */
size_t cz_http_content_range(char *out, size_t cap, const struct cz_range *r, uint64_t size);

/* ---- multipart/byteranges ---- */

#define CZ_MULTIPART_BOUNDARY_MAX 40

/* A boundary derived from seed (e.g. a per-worker counter mixed with the time): "CZ" and 32
 * hex digits, NUL-terminated; returns its length (34). Not secret, just never in the data by
 * accident. Content-Type: "multipart/byteranges; boundary=<it>". */
size_t cz_multipart_boundary(uint64_t seed, char out[CZ_MULTIPART_BOUNDARY_MAX]);

/* The delimiter and headers that precede one part:
 * "\r\n--B\r\nContent-Type: T\r\nContent-Range: bytes a-b/N\r\n\r\n" (no Content-Type line if
 * type is NULL). snprintf-style: returns the full length, writes at most cap - 1 bytes and a
 * NUL; out may be NULL when cap is 0. */
size_t cz_multipart_part_header(char *out, size_t cap, const char *boundary, const char *type,
                                uint64_t start, uint64_t len, uint64_t size);

/* The closing delimiter "\r\n--B--\r\n"; snprintf-style like cz_multipart_part_header. */
size_t cz_multipart_trailer(char *out, size_t cap, const char *boundary);

/* Exact multipart body length for Content-Length: every part header, every part's bytes and
 * the trailer, as the two functions above format them for ranges r[0..n). */
uint64_t cz_multipart_length(const char *boundary, const char *type, const struct cz_range *r,
                             unsigned n, uint64_t size);

#endif /* CZ_FS_HTTPFILE_H */
