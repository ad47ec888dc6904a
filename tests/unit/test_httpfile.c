/* Unit tests for src/fs/httpfile.c: HTTP-date formatting and the three parse formats,
 * ETag formatting and list matching, the RFC 9110 precondition matrix, If-Range, Range
 * parsing (valid, merged, unsatisfiable, malformed, too many) and multipart framing lengths.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/httpfile.h"

#define T_1994 ((time_t)784111777) /* Sun, 06 Nov 1994 08:49:37 GMT */

/* Every parser input is fed from an exact-size heap copy so that ASan catches reads past len. */
static char *dup_exact(const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);
    cr_assert_not_null(p);
    memcpy(p, s, len);
    return p;
}

static int parse_date(const char *s, time_t *t)
{
    size_t len = strlen(s);
    char *p = dup_exact(s, len);
    int r = cz_http_date_parse(p, len, t);
    free(p);
    return r;
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---- HTTP-date ---- */

Test(http_date, format_known_values)
{
    static const struct {
        time_t t;
        const char *s;
    } cases[] = {
        {T_1994, "Sun, 06 Nov 1994 08:49:37 GMT"},
        {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
        {-1, "Wed, 31 Dec 1969 23:59:59 GMT"},
        {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
        {2147483648LL, "Tue, 19 Jan 2038 03:14:08 GMT"},
        {253402300799LL, "Fri, 31 Dec 9999 23:59:59 GMT"},
        {-62135596800LL, "Mon, 01 Jan 0001 00:00:00 GMT"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char out[30];
        memset(out, 'X', sizeof(out));
        size_t n = cz_http_date(cases[k].t, out);
        cr_expect_eq(n, CZ_HTTP_DATE_LEN);
        cr_expect_str_eq(out, cases[k].s);
    }
    char out[30];
    cr_expect_eq(cz_http_date(253402300800LL, out), 0, "year 10000 does not fit");
    cr_expect_str_eq(out, "");
}

Test(http_date, format_matches_strftime_and_round_trips)
{
    for (int k = 0; k < 100000; k++) {
        /* years 1000..9999, plus the neighbourhood of now */
        time_t t = k % 2 ? (time_t)(rng() % 284012524800ull) - 30610224000LL
                         : time(NULL) + (time_t)(rng() % 200000000) - 100000000;
        char got[30], want[64], ctime_s[64], r850[64];
        struct tm tm;
        cr_assert_not_null(gmtime_r(&t, &tm));
        strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cr_assert_eq(cz_http_date(t, got), 29);
        cr_assert_str_eq(got, want, "t=%lld", (long long)t);

        time_t back = 0;
        cr_assert_eq(parse_date(got, &back), 0, "%s", got);
        cr_assert_eq(back, t, "%s", got);

        strftime(ctime_s, sizeof(ctime_s), "%a %b %e %H:%M:%S %Y", &tm);
        cr_assert_eq(parse_date(ctime_s, &back), 0, "%s", ctime_s);
        cr_assert_eq(back, t, "%s", ctime_s);

        if (k % 2 == 0) { /* two-digit years: only meaningful within 50 years of now */
            strftime(r850, sizeof(r850), "%A, %d-%b-%y %H:%M:%S GMT", &tm);
            cr_assert_eq(parse_date(r850, &back), 0, "%s", r850);
            cr_assert_eq(back, t, "%s", r850);
        }
    }
}

Test(http_date, parse_three_formats_and_rejects)
{
    static const struct {
        const char *s;
        int ret;
        time_t t;
    } cases[] = {
        {"Sun, 06 Nov 1994 08:49:37 GMT", 0, T_1994},
        {"Sunday, 06-Nov-94 08:49:37 GMT", 0, T_1994},
        {"Sun Nov  6 08:49:37 1994", 0, T_1994},
        {"Sun Nov 06 08:49:37 1994", 0, T_1994},
        {"  Sun, 06 Nov 1994 08:49:37 GMT\t", 0, T_1994},
        {"Mon, 06 Nov 1994 08:49:37 GMT", 0, T_1994}, /* weekday form only, not agreement */
        {"Tue, 29 Feb 2000 00:00:00 GMT", 0, 951782400},
        {"Thu, 01 Jan 1970 00:00:00 GMT", 0, 0},
        {"Wed, 31 Dec 1969 23:59:59 GMT", 0, -1},
        {"Wednesday, 31-Dec-69 23:59:59 GMT", 0, 3155759999LL}, /* 69 -> 2069 */
        {"Fri, 31 Dec 9999 23:59:59 GMT", 0, 253402300799LL},
        {"Sat, 31 Dec 2016 23:59:60 GMT", 0, 1483228800}, /* leap second folds forward */
        {"Sun, 06 Nov 1994 08:49:37 UTC", -EINVAL, 0},
        {"Sun, 06 Nov 1994 08:49:37 gmt", -EINVAL, 0},
        {"sun, 06 Nov 1994 08:49:37 GMT", -EINVAL, 0},
        {"Sun, 06 nov 1994 08:49:37 GMT", -EINVAL, 0},
        {"Sun, 6 Nov 1994 08:49:37 GMT", -EINVAL, 0},
        {"Sun, 06 Nov 94 08:49:37 GMT", -EINVAL, 0},
        {"Sun,  06 Nov 1994 08:49:37 GMT", -EINVAL, 0},
        {"Sun, 06 Nov 1994 08:49:37 GMT,", -EINVAL, 0},
        {"Sun, 06 Nov 1994 08:49:37 +0000", -EINVAL, 0},
        {"Xyz, 06 Nov 1994 08:49:37 GMT", -EINVAL, 0},
        {"Sun, 00 Nov 1994 08:49:37 GMT", -EINVAL, 0},
        {"Sun, 31 Nov 1994 08:49:37 GMT", -EINVAL, 0},
        {"Thu, 29 Feb 1900 00:00:00 GMT", -EINVAL, 0},
        {"Sun, 06 Nov 1994 24:00:00 GMT", -EINVAL, 0},
        {"Sun, 06 Nov 1994 08:60:00 GMT", -EINVAL, 0},
        {"Sun, 06 Nov 1994 08:49:61 GMT", -EINVAL, 0},
        {"Sun, 06 Nov 1994 08-49-37 GMT", -EINVAL, 0},
        {"Sun, 06 Nov 199x 08:49:37 GMT", -EINVAL, 0},
        {"Sun, 0x Nov 1994 08:49:37 GMT", -EINVAL, 0},
        {"Sunday, 06-Nov-1994 08:49:37 GMT", -EINVAL, 0},
        {"Sunday 06-Nov-94 08:49:37 GMT", -EINVAL, 0},
        {"Sundae, 06-Nov-94 08:49:37 GMT", -EINVAL, 0},
        {"Sunday, 06 Nov 94 08:49:37 GMT", -EINVAL, 0},
        {"Sunday, 06-Nov-9x 08:49:37 GMT", -EINVAL, 0},
        {"Sun Nov  6 08:49:37 94", -EINVAL, 0},
        {"Sun Nov 6 08:49:37 1994", -EINVAL, 0},
        {"Sun Nov  x 08:49:37 1994", -EINVAL, 0},
        {"Sun Nov  6 08:49:37 1994 ", 0, T_1994},
        {"", -EINVAL, 0},
        {"   ", -EINVAL, 0},
        {"784111777", -EINVAL, 0},
        {"yesterday", -EINVAL, 0},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        time_t t = 42;
        int r = parse_date(cases[k].s, &t);
        cr_expect_eq(r, cases[k].ret, "\"%s\": %d", cases[k].s, r);
        if (r == 0 && cases[k].ret == 0)
            cr_expect_eq(t, cases[k].t, "\"%s\": %lld", cases[k].s, (long long)t);
    }
    time_t t;
    cr_expect_eq(cz_http_date_parse(NULL, 0, &t), -EINVAL);
}

/* ---- ETags ---- */

Test(etag, format)
{
    char out[CZ_ETAG_MAX];
    cr_expect_eq(cz_etag_format(0x1234, 0x10, 0xabc, out), 13);
    cr_expect_str_eq(out, "\"1234-10-abc\"");
    cr_expect_eq(cz_etag_format(0, 0, 0, out), 7);
    cr_expect_str_eq(out, "\"0-0-0\"");
    cr_expect_eq(cz_etag_format(UINT64_MAX, UINT64_MAX, -1, out), 52);
    cr_expect_str_eq(out, "\"ffffffffffffffff-ffffffffffffffff-ffffffffffffffff\"");
    char a[CZ_ETAG_MAX], b[CZ_ETAG_MAX];
    cz_etag_format(7, 100, 1700000000000000001LL, a);
    cz_etag_format(7, 100, 1700000000000000002LL, b);
    cr_expect_str_neq(a, b, "a 1 ns touch changes the tag");
}

struct etag_case {
    const char *header;
    const char *etag;
    bool weak_compare;
    bool want;
};

Test(etag, list_match)
{
    static const struct etag_case cases[] = {
        {"\"abc\"", "\"abc\"", false, true},
        {"\"abc\"", "\"abc\"", true, true},
        {"W/\"abc\"", "\"abc\"", false, false},
        {"W/\"abc\"", "\"abc\"", true, true},
        {"\"abc\"", "W/\"abc\"", false, false},
        {"\"abc\"", "W/\"abc\"", true, true},
        {"W/\"abc\"", "W/\"abc\"", false, false},
        {"W/\"abc\"", "W/\"abc\"", true, true},
        {"*", "\"abc\"", false, true},
        {"*", "\"abc\"", true, true},
        {" * ", "\"abc\"", false, true},
        {"*x", "\"abc\"", true, false},
        {"\"x\", \"abc\"", "\"abc\"", false, true},
        {"\"x\" ,  \"abc\" ", "\"abc\"", false, true},
        {"\"x\",\t\"abc\"", "\"abc\"", false, true},
        {",,\"abc\",", "\"abc\"", false, true},
        {"\"x\", W/\"abc\"", "\"abc\"", true, true},
        {"\"x\", W/\"abc\"", "\"abc\"", false, false},
        {"\"x\", \"y\", \"z\"", "\"abc\"", true, false},
        {"\"x\"", "\"abc\"", true, false},
        {"\"ABC\"", "\"abc\"", true, false},
        {"abc", "\"abc\"", true, false},
        {"\"abc", "\"abc\"", true, false},
        {"\"ab c\"", "\"ab c\"", true, false},
        {"\"x\" \"abc\"", "\"abc\"", true, false},
        {"\"abc\"x", "\"abc\"", true, false},
        {"w/\"abc\"", "\"abc\"", true, false},
        {"\"bad\"\"abc\"", "\"abc\"", true, false},
        {"\"abc\", junk", "\"abc\"", true, true}, /* matched before the junk */
        {"junk, \"abc\"", "\"abc\"", true, false},
        {"", "\"abc\"", true, false},
        {"  ,  ", "\"abc\"", true, false},
        {"\"\"", "\"\"", false, true},
        {"\"caf\xc3\xa9\"", "\"caf\xc3\xa9\"", false, true}, /* obs-text */
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct etag_case *c = &cases[k];
        size_t hl = strlen(c->header), el = strlen(c->etag);
        char *h = dup_exact(c->header, hl), *e = dup_exact(c->etag, el);
        bool got = cz_etag_list_match(h, hl, e, el, c->weak_compare);
        cr_expect_eq(got, c->want, "case %zu: '%s' vs '%s' (%s)", k, c->header, c->etag,
                     c->weak_compare ? "weak" : "strong");
        free(h);
        free(e);
    }
    cr_expect_not(cz_etag_list_match(NULL, 0, "\"a\"", 3, true));
}

/* ---- Preconditions ---- */

#define E "\"e1\""
#define D_EQ "Sun, 06 Nov 1994 08:49:37 GMT"
#define D_BEFORE "Sun, 06 Nov 1994 08:49:36 GMT"
#define D_AFTER "Sun, 06 Nov 1994 08:49:38 GMT"
#define D_BAD "Sun, 06 Nov 1994 08:49:37 XYZ"

struct cond_case {
    const char *name;
    const char *im, *ius, *inm, *ims;
    bool get;
    enum cz_cond_result want;
};

Test(conditional, rfc9110_matrix)
{
    static const struct cond_case cases[] = {
        {"no conditionals", NULL, NULL, NULL, NULL, true, CZ_COND_PROCEED},
        {"no conditionals, POST", NULL, NULL, NULL, NULL, false, CZ_COND_PROCEED},
        /* If-None-Match */
        {"INM match", NULL, NULL, E, NULL, true, CZ_COND_NOT_MODIFIED},
        {"INM in list", NULL, NULL, "\"a\", " E, NULL, true, CZ_COND_NOT_MODIFIED},
        {"INM weak match", NULL, NULL, "W/" E, NULL, true, CZ_COND_NOT_MODIFIED},
        {"INM mismatch", NULL, NULL, "\"e2\"", NULL, true, CZ_COND_PROCEED},
        {"INM star", NULL, NULL, "*", NULL, true, CZ_COND_NOT_MODIFIED},
        {"INM match POST", NULL, NULL, E, NULL, false, CZ_COND_PRECONDITION_FAILED},
        {"INM star POST", NULL, NULL, "*", NULL, false, CZ_COND_PRECONDITION_FAILED},
        {"INM mismatch POST", NULL, NULL, "\"e2\"", NULL, false, CZ_COND_PROCEED},
        {"INM malformed", NULL, NULL, "e1", NULL, true, CZ_COND_PROCEED},
        /* If-Modified-Since */
        {"IMS equal", NULL, NULL, NULL, D_EQ, true, CZ_COND_NOT_MODIFIED},
        {"IMS after", NULL, NULL, NULL, D_AFTER, true, CZ_COND_NOT_MODIFIED},
        {"IMS before", NULL, NULL, NULL, D_BEFORE, true, CZ_COND_PROCEED},
        {"IMS invalid ignored", NULL, NULL, NULL, D_BAD, true, CZ_COND_PROCEED},
        {"IMS obsolete format", NULL, NULL, NULL, "Sun Nov  6 08:49:37 1994", true,
         CZ_COND_NOT_MODIFIED},
        {"IMS ignored for POST", NULL, NULL, NULL, D_EQ, false, CZ_COND_PROCEED},
        /* INM beats IMS */
        {"INM mismatch beats IMS", NULL, NULL, "\"e2\"", D_EQ, true, CZ_COND_PROCEED},
        {"INM match beats IMS", NULL, NULL, E, D_BEFORE, true, CZ_COND_NOT_MODIFIED},
        {"INM malformed still hides IMS", NULL, NULL, "junk", D_EQ, true, CZ_COND_PROCEED},
        /* If-Match */
        {"IM match", E, NULL, NULL, NULL, true, CZ_COND_PROCEED},
        {"IM in list", "\"x\"," E, NULL, NULL, NULL, false, CZ_COND_PROCEED},
        {"IM mismatch", "\"e2\"", NULL, NULL, NULL, true, CZ_COND_PRECONDITION_FAILED},
        {"IM mismatch POST", "\"e2\"", NULL, NULL, NULL, false, CZ_COND_PRECONDITION_FAILED},
        {"IM star", "*", NULL, NULL, NULL, true, CZ_COND_PROCEED},
        {"IM weak never matches", "W/" E, NULL, NULL, NULL, true, CZ_COND_PRECONDITION_FAILED},
        {"IM malformed", "e1", NULL, NULL, NULL, true, CZ_COND_PRECONDITION_FAILED},
        {"IM empty", "", NULL, NULL, NULL, true, CZ_COND_PRECONDITION_FAILED},
        /* If-Unmodified-Since */
        {"IUS equal", NULL, D_EQ, NULL, NULL, false, CZ_COND_PROCEED},
        {"IUS after", NULL, D_AFTER, NULL, NULL, false, CZ_COND_PROCEED},
        {"IUS before", NULL, D_BEFORE, NULL, NULL, false, CZ_COND_PRECONDITION_FAILED},
        {"IUS before GET", NULL, D_BEFORE, NULL, NULL, true, CZ_COND_PRECONDITION_FAILED},
        {"IUS invalid ignored", NULL, D_BAD, NULL, NULL, false, CZ_COND_PROCEED},
        /* IM hides IUS */
        {"IM match hides IUS", E, D_BEFORE, NULL, NULL, false, CZ_COND_PROCEED},
        {"IM mismatch, IUS fine", "\"e2\"", D_AFTER, NULL, NULL, false,
         CZ_COND_PRECONDITION_FAILED},
        /* ordering across the two pairs */
        {"IM mismatch before INM", "\"e2\"", NULL, E, NULL, true, CZ_COND_PRECONDITION_FAILED},
        {"IM mismatch before INM mismatch", "\"e2\"", NULL, "\"e3\"", NULL, true,
         CZ_COND_PRECONDITION_FAILED},
        {"IM match then INM match", E, NULL, E, NULL, true, CZ_COND_NOT_MODIFIED},
        {"IUS before INM", NULL, D_BEFORE, E, NULL, true, CZ_COND_PRECONDITION_FAILED},
        {"IUS ok then IMS", NULL, D_EQ, NULL, D_EQ, true, CZ_COND_NOT_MODIFIED},
        {"IUS fail before IMS", NULL, D_BEFORE, NULL, D_EQ, true, CZ_COND_PRECONDITION_FAILED},
        {"all four, all pass", E, D_EQ, "\"e2\"", D_BEFORE, true, CZ_COND_PROCEED},
        {"all four, INM matches", E, D_EQ, E, D_BEFORE, true, CZ_COND_NOT_MODIFIED},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct cond_case *c = &cases[k];
        char *bufs[4] = {0};
        const char *vals[4] = {c->im, c->ius, c->inm, c->ims};
        for (int j = 0; j < 4; j++)
            bufs[j] = vals[j] ? dup_exact(vals[j], strlen(vals[j])) : NULL;
        struct cz_cond_input in = {
            .if_match = bufs[0],
            .if_match_len = c->im ? strlen(c->im) : 0,
            .if_unmodified_since = bufs[1],
            .if_unmodified_since_len = c->ius ? strlen(c->ius) : 0,
            .if_none_match = bufs[2],
            .if_none_match_len = c->inm ? strlen(c->inm) : 0,
            .if_modified_since = bufs[3],
            .if_modified_since_len = c->ims ? strlen(c->ims) : 0,
            .get_or_head = c->get,
            .etag = E,
            .etag_len = strlen(E),
            .mtime = T_1994,
        };
        enum cz_cond_result r = cz_http_conditional(&in);
        cr_expect_eq(r, c->want, "%s: got %d, want %d", c->name, r, c->want);
        for (int j = 0; j < 4; j++)
            free(bufs[j]);
    }
}

Test(conditional, if_range)
{
    static const struct {
        const char *hdr;
        const char *etag;
        time_t mtime;
        bool want;
    } cases[] = {
        {E, E, T_1994, true},
        {"  " E " ", E, T_1994, true},
        {"W/" E, E, T_1994, false},
        {E, "W/" E, T_1994, false},
        {"\"e2\"", E, T_1994, false},
        {E ", \"e2\"", E, T_1994, false},
        {"\"e1", E, T_1994, false},
        {D_EQ, E, T_1994, true},
        {D_BEFORE, E, T_1994, false},
        {D_AFTER, E, T_1994, false},
        {"Sunday, 06-Nov-94 08:49:37 GMT", E, T_1994, true},
        {"Wed, 07 Jan 1970 00:00:00 GMT", E, 518400, true}, /* 'W' of a date, not "W/" */
        {D_BAD, E, T_1994, false},
        {"", E, T_1994, false},
        {"*", E, T_1994, false},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t hl = strlen(cases[k].hdr);
        char *h = dup_exact(cases[k].hdr, hl);
        bool got = cz_http_if_range_ok(h, hl, cases[k].etag, strlen(cases[k].etag), cases[k].mtime);
        cr_expect_eq(got, cases[k].want, "'%s'", cases[k].hdr);
        free(h);
    }
    cr_expect_not(cz_http_if_range_ok(NULL, 0, E, 4, T_1994));
}

/* ---- Range ---- */

struct range_case {
    const char *hdr;
    uint64_t size;
    enum cz_range_result want;
    unsigned n;
    struct cz_range r[4];
};

#define NONE CZ_RANGE_NONE_OR_IGNORE
#define OK CZ_RANGE_OK
#define UNSAT CZ_RANGE_UNSATISFIABLE

Test(range, parse_table)
{
    static const struct range_case cases[] = {
        /* single, suffix, open-ended, clamped */
        {"bytes=0-499", 1000, OK, 1, {{0, 500}}},
        {"bytes=500-999", 1000, OK, 1, {{500, 500}}},
        {"bytes=0-0", 1000, OK, 1, {{0, 1}}},
        {"bytes=999-", 1000, OK, 1, {{999, 1}}},
        {"bytes=-500", 1000, OK, 1, {{500, 500}}},
        {"bytes=-1", 1000, OK, 1, {{999, 1}}},
        {"bytes=900-", 1000, OK, 1, {{900, 100}}},
        {"bytes=0-", 1000, OK, 1, {{0, 1000}}}, /* whole file: still OK, one range */
        {"bytes=0-5000", 1000, OK, 1, {{0, 1000}}},
        {"bytes=990-5000", 1000, OK, 1, {{990, 10}}},
        {"bytes=-5000", 1000, OK, 1, {{0, 1000}}},
        {"bytes=0-18446744073709551615", 1000, OK, 1, {{0, 1000}}},
        {"BYTES=0-1", 1000, OK, 1, {{0, 2}}},
        {"Bytes=0-1", 1000, OK, 1, {{0, 2}}},
        /* multiple: sorted, merged when overlapping or adjacent */
        {"bytes=500-600,0-100", 1000, OK, 2, {{0, 101}, {500, 101}}},
        {"bytes=0-100,50-150", 1000, OK, 1, {{0, 151}}},
        {"bytes=50-150,0-100", 1000, OK, 1, {{0, 151}}},
        {"bytes=0-99,100-199", 1000, OK, 1, {{0, 200}}},
        {"bytes=0-99,101-199", 1000, OK, 2, {{0, 100}, {101, 99}}},
        {"bytes=0-10,5-6", 1000, OK, 1, {{0, 11}}},
        {"bytes=100-200,-100,0-50", 1000, OK, 3, {{0, 51}, {100, 101}, {900, 100}}},
        {"bytes=0-1,2-3,4-5,6-7", 1000, OK, 1, {{0, 8}}},
        {"bytes=0-1,4-5,2-3", 1000, OK, 1, {{0, 6}}},
        {"bytes=900-,-200", 1000, OK, 1, {{800, 200}}},
        {"bytes=0-,1000-", 1000, OK, 1, {{0, 1000}}}, /* unsatisfiable spec dropped */
        {"bytes=5000-,0-0", 1000, OK, 1, {{0, 1}}},
        {"bytes=-0,0-0", 1000, OK, 1, {{0, 1}}},
        /* whitespace around commas, empty list elements */
        {"bytes=0-1 , 3-4", 1000, OK, 2, {{0, 2}, {3, 2}}},
        {"bytes=0-1,\t3-4", 1000, OK, 2, {{0, 2}, {3, 2}}},
        {"bytes=0-1, ,3-4,", 1000, OK, 2, {{0, 2}, {3, 2}}},
        {"  bytes=0-1  ", 1000, OK, 1, {{0, 2}}},
        {"bytes=,0-1", 1000, OK, 1, {{0, 2}}},
        /* unsatisfiable */
        {"bytes=1000-", 1000, UNSAT, 0, {{0}}},
        {"bytes=1000-1000", 1000, UNSAT, 0, {{0}}},
        {"bytes=9500-", 1000, UNSAT, 0, {{0}}},
        {"bytes=1000-,2000-3000", 1000, UNSAT, 0, {{0}}},
        {"bytes=-0", 1000, UNSAT, 0, {{0}}},
        {"bytes=18446744073709551615-", 1000, UNSAT, 0, {{0}}},
        {"bytes=0-", 0, UNSAT, 0, {{0}}},
        {"bytes=0-0", 0, UNSAT, 0, {{0}}},
        {"bytes=-5", 0, UNSAT, 0, {{0}}},
        /* malformed or not bytes: ignore the header */
        {"bytes=", 1000, NONE, 0, {{0}}},
        {"bytes=,", 1000, NONE, 0, {{0}}},
        {"bytes= , ", 1000, NONE, 0, {{0}}},
        {"bytes=a-b", 1000, NONE, 0, {{0}}},
        {"items=0-1", 1000, NONE, 0, {{0}}},
        {"byte=0-1", 1000, NONE, 0, {{0}}},
        {"bytesx=0-1", 1000, NONE, 0, {{0}}},
        {"bytes 0-1", 1000, NONE, 0, {{0}}},
        {"bytes =0-1", 1000, NONE, 0, {{0}}},
        {"bytes=5-1", 1000, NONE, 0, {{0}}},
        {"bytes=--1", 1000, NONE, 0, {{0}}},
        {"bytes=1-2-3", 1000, NONE, 0, {{0}}},
        {"bytes=99999999999999999999-", 1000, NONE, 0, {{0}}},
        {"bytes=18446744073709551616-", 1000, NONE, 0, {{0}}},
        {"bytes=0-99999999999999999999", 1000, NONE, 0, {{0}}},
        {"bytes=-99999999999999999999", 1000, NONE, 0, {{0}}},
        {"bytes=-", 1000, NONE, 0, {{0}}},
        {"bytes=1", 1000, NONE, 0, {{0}}},
        {"bytes=0-1;", 1000, NONE, 0, {{0}}},
        {"bytes=0 -1", 1000, NONE, 0, {{0}}},
        {"bytes=0- 1", 1000, NONE, 0, {{0}}},
        {"bytes=+1-2", 1000, NONE, 0, {{0}}},
        {"bytes=0x10-20", 1000, NONE, 0, {{0}}},
        {"bytes=1-2 3-4", 1000, NONE, 0, {{0}}},
        {"bytes=0-1,,x", 1000, NONE, 0, {{0}}},
        {"bytes=0-1,5-4", 1000, NONE, 0, {{0}}}, /* one bad spec spoils the header */
        {"bytes=1000-,x", 1000, NONE, 0, {{0}}},
        {"", 1000, NONE, 0, {{0}}},
        {"bytes", 1000, NONE, 0, {{0}}},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct range_case *c = &cases[k];
        struct cz_range out[16];
        unsigned n = 777;
        size_t hl = strlen(c->hdr);
        char *h = dup_exact(c->hdr, hl);
        enum cz_range_result r = cz_range_parse(h, hl, c->size, out, 16, &n);
        free(h);
        cr_expect_eq(r, c->want, "'%s' size %llu: got %d, want %d", c->hdr,
                     (unsigned long long)c->size, r, c->want);
        if (r != OK || c->want != OK) {
            cr_expect_eq(n, 777, "'%s': *n only set for OK", c->hdr);
            continue;
        }
        cr_expect_eq(n, c->n, "'%s': %u ranges, want %u", c->hdr, n, c->n);
        for (unsigned j = 0; j < n && j < c->n; j++) {
            cr_expect(out[j].start == c->r[j].start && out[j].len == c->r[j].len,
                      "'%s' range %u: {%llu,%llu}, want {%llu,%llu}", c->hdr, j,
                      (unsigned long long)out[j].start, (unsigned long long)out[j].len,
                      (unsigned long long)c->r[j].start, (unsigned long long)c->r[j].len);
        }
    }
}

/* "bytes=" followed by count specs; each disjoint (gap of 1) or all identical. */
static char *many_ranges(unsigned count, bool identical)
{
    size_t cap = 16 + (size_t)count * 24, len = 0;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    len += (size_t)snprintf(s, cap, "bytes=");
    for (unsigned k = 0; k < count; k++) {
        unsigned a = identical ? 0 : k * 10;
        len += (size_t)snprintf(s + len, cap - len, "%s%u-%u", k ? ", " : "", a, a + 5);
    }
    return s;
}

static enum cz_range_result parse_many(unsigned count, bool identical, unsigned max, unsigned *n)
{
    struct cz_range out[CZ_RANGE_LIMIT];
    char *s = many_ranges(count, identical);
    enum cz_range_result r = cz_range_parse(s, strlen(s), 100000, out, max, n);
    if (r == OK && !identical) {
        for (unsigned k = 0; k < *n; k++)
            cr_assert(out[k].start == k * 10 && out[k].len == 6);
    }
    free(s);
    return r;
}

Test(range, too_many)
{
    unsigned n = 0;
    cr_expect_eq(parse_many(16, false, 16, &n), OK);
    cr_expect_eq(n, 16);
    cr_expect_eq(parse_many(17, false, 16, &n), CZ_RANGE_TOO_MANY);
    /* 17..32 specs that merge into one are fine; more than 2*max never is */
    cr_expect_eq(parse_many(17, true, 16, &n), OK);
    cr_expect_eq(n, 1);
    cr_expect_eq(parse_many(32, true, 16, &n), OK);
    cr_expect_eq(parse_many(33, true, 16, &n), CZ_RANGE_TOO_MANY);
    cr_expect_eq(parse_many(1, false, 1, &n), OK);
    cr_expect_eq(parse_many(2, false, 1, &n), CZ_RANGE_TOO_MANY);
    /* max is clamped to CZ_RANGE_LIMIT; 0 turns ranges off */
    cr_expect_eq(parse_many(CZ_RANGE_LIMIT, false, 100000, &n), OK);
    cr_expect_eq(n, CZ_RANGE_LIMIT);
    cr_expect_eq(parse_many(CZ_RANGE_LIMIT + 1, false, 100000, &n), CZ_RANGE_TOO_MANY);
    cr_expect_eq(parse_many(1, false, 0, &n), CZ_RANGE_NONE_OR_IGNORE);
    /* a huge header stops at the guard, long before its end */
    cr_expect_eq(parse_many(100000, true, 16, &n), CZ_RANGE_TOO_MANY);
}

Test(range, huge_file_sizes)
{
    struct cz_range out[4];
    unsigned n = 0;
    cr_expect_eq(cz_range_parse("bytes=-1", 8, UINT64_MAX, out, 4, &n), OK);
    cr_expect(out[0].start == UINT64_MAX - 1 && out[0].len == 1);
    cr_expect_eq(cz_range_parse("bytes=0-", 8, UINT64_MAX, out, 4, &n), OK);
    cr_expect(out[0].start == 0 && out[0].len == UINT64_MAX);
    const char *h = "bytes=18446744073709551614-";
    cr_expect_eq(cz_range_parse(h, strlen(h), UINT64_MAX, out, 4, &n), OK);
    cr_expect(out[0].start == UINT64_MAX - 1 && out[0].len == 1);
}

Test(range, content_range)
{
    char buf[96];
    struct cz_range r = {0, 500};
    cr_expect_eq(cz_http_content_range(buf, sizeof(buf), &r, 1000), 16);
    cr_expect_str_eq(buf, "bytes 0-499/1000");
    cr_expect_eq(cz_http_content_range(buf, sizeof(buf), NULL, 1000), 12);
    cr_expect_str_eq(buf, "bytes */1000");
    r = (struct cz_range){UINT64_MAX - 1, 1};
    cz_http_content_range(buf, sizeof(buf), &r, UINT64_MAX);
    cr_expect_str_eq(buf, "bytes 18446744073709551614-18446744073709551614/18446744073709551615");
    cr_expect_eq(cz_http_content_range(buf, 6, NULL, 1000), 12);
    cr_expect_str_eq(buf, "bytes", "truncated like snprintf");
}

/* ---- multipart/byteranges ---- */

Test(multipart, boundary)
{
    char a[CZ_MULTIPART_BOUNDARY_MAX], b[CZ_MULTIPART_BOUNDARY_MAX], c[40];
    cr_expect_eq(cz_multipart_boundary(1, a), 34);
    cr_expect_eq(cz_multipart_boundary(1, b), 34);
    cr_expect_eq(cz_multipart_boundary(2, c), 34);
    cr_expect_str_eq(a, b, "deterministic in the seed");
    cr_expect_str_neq(a, c);
    cr_expect_eq(strspn(a, "CZ0123456789abcdef"), 34);
}

Test(multipart, part_header_and_trailer)
{
    char buf[256];
    size_t n = cz_multipart_part_header(buf, sizeof(buf), "B", "text/plain", 0, 10, 100);
    const char *want =
        "\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-9/100\r\n\r\n";
    cr_expect_eq(n, strlen(want));
    cr_expect_str_eq(buf, want);
    n = cz_multipart_part_header(buf, sizeof(buf), "B", NULL, 90, 10, 100);
    cr_expect_str_eq(buf, "\r\n--B\r\nContent-Range: bytes 90-99/100\r\n\r\n");
    cr_expect_eq(n, strlen(buf));
    cr_expect_eq(cz_multipart_trailer(buf, sizeof(buf), "B"), 9);
    cr_expect_str_eq(buf, "\r\n--B--\r\n");
    /* snprintf semantics: full length returned, output truncated and terminated */
    cr_expect_eq(cz_multipart_part_header(buf, 5, "B", "x/y", 0, 1, 1),
                 strlen("\r\n--B\r\nContent-Type: x/y\r\nContent-Range: bytes 0-0/1\r\n\r\n"));
    cr_expect_str_eq(buf, "\r\n--");
    cr_expect_eq(cz_multipart_trailer(NULL, 0, "B"), 9);
}

/* Build the whole multipart body the way a sender would, and compare with the prediction. */
Test(multipart, length_equals_bytes_formatted)
{
    static const char *const headers[] = {
        "bytes=0-0",
        "bytes=0-99,200-299,-50",
        "bytes=500-600,0-100,50-150,-1",
        "bytes=1-1,3-3,5-5,7-7,9-9,11-11,13-13,15-15,17-17,19-19",
        "bytes=0-",
    };
    static const char *const types[] = {"text/html; charset=utf-8", NULL, "image/png"};
    const uint64_t size = 1000;
    char file[1000];
    for (size_t i = 0; i < size; i++)
        file[i] = (char)('a' + i % 26);

    for (size_t h = 0; h < sizeof(headers) / sizeof(headers[0]); h++) {
        for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
            struct cz_range r[16];
            unsigned n = 0;
            char boundary[CZ_MULTIPART_BOUNDARY_MAX];
            cz_multipart_boundary(h * 31 + t, boundary);
            cr_assert_eq(cz_range_parse(headers[h], strlen(headers[h]), size, r, 16, &n), OK);

            size_t cap = 64 * 1024, len = 0;
            char *body = malloc(cap);
            cr_assert_not_null(body);
            for (unsigned k = 0; k < n; k++) {
                len += cz_multipart_part_header(body + len, cap - len, boundary, types[t],
                                                r[k].start, r[k].len, size);
                memcpy(body + len, file + r[k].start, r[k].len);
                len += r[k].len;
            }
            len += cz_multipart_trailer(body + len, cap - len, boundary);
            cr_assert_lt(len, cap);
            cr_expect_eq(cz_multipart_length(boundary, types[t], r, n, size), (uint64_t)len,
                         "'%s' type %s", headers[h], types[t] ? types[t] : "(none)");

            /* and the framing really is what we said: part count and closing delimiter */
            char delim[64];
            int dl = snprintf(delim, sizeof(delim), "\r\n--%s\r\n", boundary);
            unsigned parts = 0;
            for (char *p = body; (p = memmem(p, len - (size_t)(p - body), delim, (size_t)dl));
                 p += dl)
                parts++;
            cr_expect_eq(parts, n);
            snprintf(delim, sizeof(delim), "\r\n--%s--\r\n", boundary);
            cr_expect(len >= strlen(delim) &&
                      memcmp(body + len - strlen(delim), delim, strlen(delim)) == 0);
            free(body);
        }
    }
    cr_expect_eq(cz_multipart_length("B", NULL, NULL, 0, 0), 9);
}
