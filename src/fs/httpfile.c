/* HTTP file semantics: date formatting and parsing (own calendar arithmetic, no locale, no
 * TZ), entity-tag lists, RFC 9110 §13.2.2 precondition order, Range parsing with merging,
 * and multipart/byteranges framing whose length is computed by the same code that formats.
 * Everything here is pure and bounded by the caller's input; no allocation.
 */
#include "fs/httpfile.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

static const char day_names[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const day_names_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                              "Thursday", "Friday", "Saturday"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const unsigned short days_before_month[12] = {0,   31,  59,  90,  120, 151,
                                                     181, 212, 243, 273, 304, 334};

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void trim_ows(const char **s, size_t *len)
{
    while (*len > 0 && is_ows((*s)[0]))
        (*s)++, (*len)--;
    while (*len > 0 && is_ows((*s)[*len - 1]))
        (*len)--;
}

/* ---- HTTP-date ---- */

static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

size_t cz_http_date(time_t t, char out[30])
{
    struct tm tm;
    out[0] = '\0';
    if (!gmtime_r(&t, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
        return 0;
    unsigned year = (unsigned)(tm.tm_year + 1900);
    memcpy(out, day_names[tm.tm_wday], 3);
    memcpy(out + 3, ", ", 2);
    put2(out + 5, (unsigned)tm.tm_mday);
    out[7] = ' ';
    memcpy(out + 8, month_names[tm.tm_mon], 3);
    out[11] = ' ';
    put2(out + 12, year / 100);
    put2(out + 14, year % 100);
    out[16] = ' ';
    put2(out + 17, (unsigned)tm.tm_hour);
    out[19] = ':';
    put2(out + 20, (unsigned)tm.tm_min);
    out[22] = ':';
    put2(out + 23, (unsigned)tm.tm_sec);
    memcpy(out + 25, " GMT", 5); /* with the NUL */
    return CZ_HTTP_DATE_LEN;
}

/* n decimal digits at s, or -1. */
static int digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int month_index(const char *s)
{
    for (int m = 0; m < 12; m++) {
        if (memcmp(s, month_names[m], 3) == 0)
            return m;
    }
    return -1;
}

static bool is_day_name(const char *s)
{
    for (int d = 0; d < 7; d++) {
        if (memcmp(s, day_names[d], 3) == 0)
            return true;
    }
    return false;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

/* Days from 0000-01-01 (proleptic Gregorian) to the first day of year y. */
static int64_t days_before_year(int64_t y)
{
    int64_t p = y - 1;
    return 365 * y + floor_div(p, 4) - floor_div(p, 100) + floor_div(p, 400) + 1;
}

struct date_parts {
    int year, mon, day, hour, min, sec; /* mon 0..11 */
};

/* "HH:MM:SS" */
static bool parse_time(const char *s, struct date_parts *d)
{
    if (s[2] != ':' || s[5] != ':')
        return false;
    d->hour = digits(s, 2);
    d->min = digits(s + 3, 2);
    d->sec = digits(s + 6, 2);
    /* 60: a leap second, which POSIX time folds into the next minute */
    return d->hour >= 0 && d->hour <= 23 && d->min >= 0 && d->min <= 59 && d->sec >= 0 &&
           d->sec <= 60;
}

static int date_to_time(const struct date_parts *d, time_t *out)
{
    static const unsigned char mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (d->year < 0 || d->mon < 0 || d->day < 1)
        return -EINVAL;
    int dim = mdays[d->mon] + (d->mon == 1 && is_leap(d->year));
    if (d->day > dim)
        return -EINVAL;
    int64_t days = days_before_year(d->year) - days_before_year(1970) + days_before_month[d->mon] +
                   (d->mon > 1 && is_leap(d->year)) + d->day - 1;
    *out = (time_t)(days * 86400 + d->hour * 3600 + d->min * 60 + d->sec);
    return 0;
}

/* RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is in the past. */
static int rfc850_year(int yy)
{
    struct tm tm;
    time_t now = time(NULL);
    int cur = gmtime_r(&now, &tm) ? tm.tm_year + 1900 : 2000;
    int y = cur - cur % 100 + yy;
    if (y > cur + 50)
        y -= 100;
    return y;
}

int cz_http_date_parse(const char *s, size_t len, time_t *out)
{
    struct date_parts d;
    if (!s)
        return -EINVAL;
    trim_ows(&s, &len);

    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
    if (len == 29 && s[3] == ',') {
        if (!is_day_name(s) || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
            memcmp(s + 25, " GMT", 4) != 0 || !parse_time(s + 17, &d))
            return -EINVAL;
        d.day = digits(s + 5, 2);
        d.mon = month_index(s + 8);
        d.year = digits(s + 12, 4);
        return date_to_time(&d, out);
    }
    /* asctime: "Sun Nov  6 08:49:37 1994" */
    if (len == 24 && s[3] == ' ') {
        if (!is_day_name(s) || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' ||
            !parse_time(s + 11, &d))
            return -EINVAL;
        d.mon = month_index(s + 4);
        d.day = s[8] == ' ' ? digits(s + 9, 1) : digits(s + 8, 2);
        d.year = digits(s + 20, 4);
        return date_to_time(&d, out);
    }
    /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
    for (int k = 0; k < 7; k++) {
        size_t nl = strlen(day_names_long[k]);
        if (len != nl + 24 || memcmp(s, day_names_long[k], nl) != 0)
            continue;
        const char *p = s + nl;
        if (p[0] != ',' || p[1] != ' ' || p[4] != '-' || p[8] != '-' || p[11] != ' ' ||
            memcmp(p + 20, " GMT", 4) != 0 || !parse_time(p + 12, &d))
            return -EINVAL;
        d.day = digits(p + 2, 2);
        d.mon = month_index(p + 5);
        int yy = digits(p + 9, 2);
        if (yy < 0)
            return -EINVAL;
        d.year = rfc850_year(yy);
        return date_to_time(&d, out);
    }
    return -EINVAL;
}

/* ---- Entity tags ---- */

static char *put_hex(char *p, uint64_t v)
{
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

size_t cz_etag_format(uint64_t ino, uint64_t size, int64_t mtime_ns, char out[CZ_ETAG_MAX])
{
    char *p = out;
    *p++ = '"';
    p = put_hex(p, ino);
    *p++ = '-';
    p = put_hex(p, size);
    *p++ = '-';
    p = put_hex(p, (uint64_t)mtime_ns);
    *p++ = '"';
    *p = '\0';
    return (size_t)(p - out);
}

static bool is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c != 0x7f); /* %x21 / %x23-7E / obs-text */
}

/* Scans one entity-tag at s[*i..len): [W/] DQUOTE *etagc DQUOTE. On success sets the opaque
 * tag (quotes included) and weakness, advances *i and returns true. */
static bool scan_etag(const char *s, size_t len, size_t *i, const char **tag, size_t *tag_len,
                      bool *weak)
{
    size_t p = *i;
    *weak = false;
    if (p + 1 < len && s[p] == 'W' && s[p + 1] == '/') {
        *weak = true;
        p += 2;
    }
    if (p >= len || s[p] != '"')
        return false;
    size_t start = p++;
    while (p < len && is_etagc((unsigned char)s[p]))
        p++;
    if (p >= len || s[p] != '"')
        return false;
    p++;
    *tag = s + start;
    *tag_len = p - start;
    *i = p;
    return true;
}

/* Splits our own ETag into weakness and opaque tag. */
static void split_own(const char *etag, size_t etag_len, const char **tag, size_t *tag_len,
                      bool *weak)
{
    *weak = etag_len >= 2 && etag[0] == 'W' && etag[1] == '/';
    *tag = etag + (*weak ? 2 : 0);
    *tag_len = etag_len - (*weak ? 2 : 0);
}

bool cz_etag_list_match(const char *header, size_t len, const char *etag, size_t etag_len,
                        bool weak_compare)
{
    const char *own;
    size_t own_len;
    bool own_weak;
    if (!header || !etag)
        return false;
    split_own(etag, etag_len, &own, &own_len, &own_weak);

    size_t i = 0;
    for (;;) {
        while (i < len && (is_ows(header[i]) || header[i] == ','))
            i++;
        if (i >= len)
            return false;
        if (header[i] == '*') {
            i++;
            while (i < len && is_ows(header[i]))
                i++;
            if (i < len && header[i] != ',')
                return false;
            return true;
        }
        const char *tag;
        size_t tag_len;
        bool weak;
        if (!scan_etag(header, len, &i, &tag, &tag_len, &weak))
            return false;
        while (i < len && is_ows(header[i]))
            i++;
        if (i < len && header[i] != ',') /* the element must end here to count */
            return false;
        if (tag_len == own_len && memcmp(tag, own, own_len) == 0 &&
            (weak_compare || (!weak && !own_weak)))
            return true;
    }
}

/* ---- Conditional requests ---- */

enum cz_cond_result cz_http_conditional(const struct cz_cond_input *in)
{
    time_t date;

    /* Steps 1-2: the representation must be the one the client's change was based on. */
    if (in->if_match) {
        if (!cz_etag_list_match(in->if_match, in->if_match_len, in->etag, in->etag_len, false))
            return CZ_COND_PRECONDITION_FAILED;
    } else if (in->if_unmodified_since &&
               cz_http_date_parse(in->if_unmodified_since, in->if_unmodified_since_len, &date) ==
                   0) {
        if (in->mtime > date)
            return CZ_COND_PRECONDITION_FAILED;
    }

    /* Steps 3-4: the client already has it. */
    if (in->if_none_match) {
        if (cz_etag_list_match(in->if_none_match, in->if_none_match_len, in->etag, in->etag_len,
                               true))
            return in->get_or_head ? CZ_COND_NOT_MODIFIED : CZ_COND_PRECONDITION_FAILED;
    } else if (in->if_modified_since && in->get_or_head &&
               cz_http_date_parse(in->if_modified_since, in->if_modified_since_len, &date) == 0) {
        if (in->mtime <= date)
            return CZ_COND_NOT_MODIFIED;
    }
    return CZ_COND_PROCEED;
}

bool cz_http_if_range_ok(const char *hdr, size_t len, const char *etag, size_t etag_len,
                         time_t mtime)
{
    if (!hdr)
        return false;
    trim_ows(&hdr, &len);
    /* An entity-tag starts with '"' or "W/"; a date never does ("Wed," is a date). */
    if (len >= 1 && (hdr[0] == '"' || (len >= 2 && hdr[0] == 'W' && hdr[1] == '/'))) {
        const char *tag, *own;
        size_t tag_len, own_len, i = 0;
        bool weak, own_weak;
        if (!etag || !scan_etag(hdr, len, &i, &tag, &tag_len, &weak) || i != len || weak)
            return false;
        split_own(etag, etag_len, &own, &own_len, &own_weak);
        return !own_weak && tag_len == own_len && memcmp(tag, own, own_len) == 0;
    }
    time_t date;
    return cz_http_date_parse(hdr, len, &date) == 0 && date == mtime;
}

/* ---- Range ---- */

/* Digits at s[*i..len) into *v; false when there are none or they overflow uint64. */
static bool scan_u64(const char *s, size_t len, size_t *i, uint64_t *v)
{
    size_t p = *i;
    uint64_t x = 0;
    while (p < len && s[p] >= '0' && s[p] <= '9') {
        unsigned d = (unsigned)(s[p] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
        p++;
    }
    if (p == *i)
        return false;
    *i = p;
    *v = x;
    return true;
}

enum cz_range_result cz_range_parse(const char *hdr, size_t len, uint64_t size,
                                    struct cz_range *out, unsigned max, unsigned *n)
{
    /* Satisfiable specs before merging: at most 2 * CZ_RANGE_LIMIT, so a fixed array. */
    struct cz_range tmp[2 * CZ_RANGE_LIMIT];
    unsigned specs = 0, kept = 0;

    if (!hdr || max == 0)
        return CZ_RANGE_NONE_OR_IGNORE;
    if (max > CZ_RANGE_LIMIT)
        max = CZ_RANGE_LIMIT;
    trim_ows(&hdr, &len);
    if (len < 6 || strncasecmp(hdr, "bytes=", 6) != 0)
        return CZ_RANGE_NONE_OR_IGNORE;

    size_t i = 6;
    for (;;) {
        while (i < len && (is_ows(hdr[i]) || hdr[i] == ','))
            i++;
        if (i >= len)
            break;
        uint64_t first = 0, last = UINT64_MAX;
        bool suffix = hdr[i] == '-';
        if (suffix) {
            i++;
            if (!scan_u64(hdr, len, &i, &last))
                return CZ_RANGE_NONE_OR_IGNORE;
        } else {
            if (!scan_u64(hdr, len, &i, &first) || i >= len || hdr[i] != '-')
                return CZ_RANGE_NONE_OR_IGNORE;
            i++;
            if (i < len && hdr[i] >= '0' && hdr[i] <= '9') {
                if (!scan_u64(hdr, len, &i, &last) || last < first)
                    return CZ_RANGE_NONE_OR_IGNORE;
            }
        }
        while (i < len && is_ows(hdr[i]))
            i++;
        if (i < len && hdr[i] != ',')
            return CZ_RANGE_NONE_OR_IGNORE;
        /* Abuse guard: stop reading long before the header is exhausted. */
        if (++specs > 2 * max)
            return CZ_RANGE_TOO_MANY;

        struct cz_range r;
        if (suffix) {
            if (last == 0 || size == 0)
                continue;
            r.len = last < size ? last : size;
            r.start = size - r.len;
        } else {
            if (first >= size)
                continue;
            uint64_t end = last < size - 1 ? last : size - 1;
            r.start = first;
            r.len = end - first + 1;
        }
        /* Insertion sort by start: at most 128 entries, most headers hold one or two. */
        unsigned k = kept++;
        while (k > 0 && tmp[k - 1].start > r.start) {
            tmp[k] = tmp[k - 1];
            k--;
        }
        tmp[k] = r;
    }
    if (specs == 0)
        return CZ_RANGE_NONE_OR_IGNORE;
    if (kept == 0)
        return CZ_RANGE_UNSATISFIABLE;

    /* Merge overlapping and adjacent ranges (start + len cannot overflow: both <= size). */
    unsigned m = 0;
    for (unsigned k = 1; k < kept; k++) {
        uint64_t end = tmp[m].start + tmp[m].len;
        if (tmp[k].start <= end) {
            uint64_t kend = tmp[k].start + tmp[k].len;
            if (kend > end)
                tmp[m].len = kend - tmp[m].start;
        } else {
            tmp[++m] = tmp[k];
        }
    }
    m++;
    if (m > max)
        return CZ_RANGE_TOO_MANY;
    memcpy(out, tmp, m * sizeof(*out));
    *n = m;
    return CZ_RANGE_OK;
}

/* snprintf-style appender: counts everything, stores what fits (leaving room for a NUL). */
struct sbuf {
    char *p;
    size_t cap, len;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->len < b->cap) {
        size_t room = b->cap - 1 - b->len;
        memcpy(b->p + b->len, s, n < room ? n : room);
    }
    b->len += n;
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_u64(struct sbuf *b, uint64_t v)
{
    char tmp[20];
    size_t n = sizeof(tmp);
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sb_put(b, tmp + n, sizeof(tmp) - n);
}

static size_t sb_finish(struct sbuf *b)
{
    if (b->cap > 0)
        b->p[b->len < b->cap ? b->len : b->cap - 1] = '\0';
    return b->len;
}

static void sb_content_range(struct sbuf *b, const struct cz_range *r, uint64_t size)
{
    sb_str(b, "bytes ");
    if (r) {
        sb_u64(b, r->start);
        sb_put(b, "-", 1);
        sb_u64(b, r->start + r->len - 1);
    } else {
        sb_put(b, "*", 1);
    }
    sb_put(b, "/", 1);
    sb_u64(b, size);
}

size_t cz_http_content_range(char *out, size_t cap, const struct cz_range *r, uint64_t size)
{
    struct sbuf b = {out, cap, 0};
    sb_content_range(&b, r, size);
    return sb_finish(&b);
}

/* ---- multipart/byteranges ---- */

static uint64_t mix64(uint64_t *state)
{
    /* SplitMix64 step: spreads sequential seeds over all 64 bits. */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

size_t cz_multipart_boundary(uint64_t seed, char out[CZ_MULTIPART_BOUNDARY_MAX])
{
    uint64_t state = seed;
    char *p = out;
    *p++ = 'C';
    *p++ = 'Z';
    for (int w = 0; w < 2; w++) {
        uint64_t v = mix64(&state);
        for (int k = 60; k >= 0; k -= 4)
            *p++ = "0123456789abcdef"[(v >> k) & 15];
    }
    *p = '\0';
    return (size_t)(p - out);
}

size_t cz_multipart_part_header(char *out, size_t cap, const char *boundary, const char *type,
                                uint64_t start, uint64_t len, uint64_t size)
{
    struct sbuf b = {out, cap, 0};
    struct cz_range r = {start, len};
    sb_str(&b, "\r\n--");
    sb_str(&b, boundary);
    if (type) {
        sb_str(&b, "\r\nContent-Type: ");
        sb_str(&b, type);
    }
    sb_str(&b, "\r\nContent-Range: ");
    sb_content_range(&b, &r, size);
    sb_str(&b, "\r\n\r\n");
    return sb_finish(&b);
}

size_t cz_multipart_trailer(char *out, size_t cap, const char *boundary)
{
    struct sbuf b = {out, cap, 0};
    sb_str(&b, "\r\n--");
    sb_str(&b, boundary);
    sb_str(&b, "--\r\n");
    return sb_finish(&b);
}

uint64_t cz_multipart_length(const char *boundary, const char *type, const struct cz_range *r,
                             unsigned n, uint64_t size)
{
    uint64_t total = cz_multipart_trailer(NULL, 0, boundary);
    for (unsigned k = 0; k < n; k++)
        total += cz_multipart_part_header(NULL, 0, boundary, type, r[k].start, r[k].len, size) +
                 r[k].len;
    return total;
}
