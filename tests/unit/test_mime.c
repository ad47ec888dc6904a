/* Unit tests for src/fs/mime.c: built-in table, charset rule, case and extension edge cases,
 * mime.types parsing (comments, overrides, first-wins, junk lines, growth), the real
 * /etc/mime.types when present, and load errors.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/mime.h"

#define OCTET "application/octet-stream"

struct mime_case {
    const char *path;
    const char *type;
};

/* Look up from an exact-size heap copy so that ASan catches reads past len. */
static const char *lookup(const struct cz_mime *m, const char *path)
{
    size_t len = strlen(path);
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, path, len);
    const char *t = cz_mime_lookup(m, copy, len);
    free(copy);
    return t;
}

static void check_cases(const struct cz_mime *m, const struct mime_case *cases, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const char *t = lookup(m, cases[k].path);
        cr_expect_str_eq(t, cases[k].type, "\"%s\": got \"%s\", want \"%s\"", cases[k].path, t,
                         cases[k].type);
    }
}

Test(mime, builtin_table)
{
    static const struct mime_case cases[] = {
        {"index.html", "text/html; charset=utf-8"},
        {"a.htm", "text/html; charset=utf-8"},
        {"style.css", "text/css; charset=utf-8"},
        {"app.js", "text/javascript; charset=utf-8"},
        {"mod.mjs", "text/javascript; charset=utf-8"},
        {"data.json", "application/json; charset=utf-8"},
        {"app.js.map", "application/json; charset=utf-8"},
        {"site.webmanifest", "application/manifest+json; charset=utf-8"},
        {"notes.txt", "text/plain; charset=utf-8"},
        {"README.md", "text/markdown; charset=utf-8"},
        {"t.csv", "text/csv; charset=utf-8"},
        {"feed.xml", "application/xml"},
        {"logo.svg", "image/svg+xml"},
        {"a.png", "image/png"},
        {"a.jpg", "image/jpeg"},
        {"a.jpeg", "image/jpeg"},
        {"a.gif", "image/gif"},
        {"a.webp", "image/webp"},
        {"a.avif", "image/avif"},
        {"favicon.ico", "image/vnd.microsoft.icon"},
        {"m.wasm", "application/wasm"},
        {"doc.pdf", "application/pdf"},
        {"f.woff", "font/woff"},
        {"f.woff2", "font/woff2"},
        {"f.ttf", "font/ttf"},
        {"f.otf", "font/otf"},
        {"v.mp4", "video/mp4"},
        {"v.webm", "video/webm"},
        {"s.mp3", "audio/mpeg"},
        {"s.ogg", "audio/ogg"},
        {"s.wav", "audio/wav"},
        {"a.zip", "application/zip"},
        {"a.tar.gz", "application/gzip"},
        {"a.tar", "application/x-tar"},
    };
    struct cz_mime *m = cz_mime_load(NULL, NULL);
    cr_assert_not_null(m);
    check_cases(m, cases, sizeof(cases) / sizeof(cases[0]));
    cr_expect_eq(cz_mime_count(m), 34);
    cz_mime_free(m);
}

Test(mime, case_and_extension_edges)
{
    static const struct mime_case cases[] = {
        {"INDEX.HTML", "text/html; charset=utf-8"},
        {"Photo.JpG", "image/jpeg"},
        {"dir/a.PNG", "image/png"},
        {"a/b/c/style.Css", "text/css; charset=utf-8"},
        {"README", OCTET},
        {"", OCTET},
        {"dir/", OCTET},
        {"dir.html/", OCTET},
        {"dir.html/file", OCTET}, /* a dot in a directory is not an extension */
        {".profile", OCTET},
        {"a/.html", OCTET},
        {"file.", OCTET},
        {"file.unknownext", OCTET},
        {"file.h\xc3\xa9", OCTET},
        {"a.b.c.d.json", "application/json; charset=utf-8"},
        {"x.html.bak", OCTET},
        {"x.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", OCTET},
    };
    struct cz_mime *m = cz_mime_load(NULL, NULL);
    cr_assert_not_null(m);
    check_cases(m, cases, sizeof(cases) / sizeof(cases[0]));
    cz_mime_free(m);
}

Test(mime, custom_default_type)
{
    struct cz_mime *m = cz_mime_load(NULL, "text/plain");
    cr_assert_not_null(m);
    cr_expect_str_eq(lookup(m, "Makefile"), "text/plain"); /* verbatim: no charset added */
    cr_expect_str_eq(lookup(m, "x.nope"), "text/plain");
    cr_expect_str_eq(lookup(m, "x.png"), "image/png");
    cz_mime_free(m);
}

static char tmp_file[64];

static void write_tmp(const char *text)
{
    strcpy(tmp_file, "/tmp/cz_mime_XXXXXX");
    int fd = mkstemp(tmp_file);
    cr_assert_geq(fd, 0);
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

Test(mime, file_parsing_and_overrides)
{
    write_tmp("# a comment line\n"
              "\n"
              "   \t  \n"
              "text/x-site\t\thtml shtml   # trailing comment names html too\n"
              "image/x-first  DUP Foo\n"
              "image/x-second dup bar\n"
              "application/x-custom-thing  cust\r\n"
              "nonsense-without-slash  zzz\n"
              "bad/type/extra  yyy\n"
              "/nosubtype  xxx\n"
              "audio/x-wav wav\n"
              "text/x-params;a=b  ppp\n"
              "application/x-tar tar.gz\n"
              "application/json json\n"
              "application/javascript legacyjs\n"
              "application/x-onlytype\n"
              "video/x-long  aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ok1\n"
              "application/x-nonl nonl");
    struct cz_mime *m = cz_mime_load(tmp_file, NULL);
    unlink(tmp_file);
    cr_assert_not_null(m);
    static const struct mime_case cases[] = {
        {"a.html", "text/x-site; charset=utf-8"}, /* file overrides built-in */
        {"a.shtml", "text/x-site; charset=utf-8"},
        {"a.names", OCTET},         /* words after '#' are a comment */
        {"a.dup", "image/x-first"}, /* first line in the file wins */
        {"a.DUP", "image/x-first"},
        {"a.foo", "image/x-first"}, /* upper case in the file is folded */
        {"a.bar", "image/x-second"},
        {"a.cust", "application/x-custom-thing"}, /* CRLF */
        {"a.zzz", OCTET},
        {"a.yyy", OCTET},
        {"a.xxx", OCTET},
        {"a.wav", "audio/x-wav"},
        {"a.ppp", OCTET},             /* ';' is not a type character */
        {"a.gz", "application/gzip"}, /* "tar.gz" is not a single extension */
        {"a.json", "application/json; charset=utf-8"},
        {"a.legacyjs", "application/javascript; charset=utf-8"},
        {"a.ok1", "video/x-long"},
        {"a.nonl", "application/x-nonl"},     /* last line without a newline */
        {"a.css", "text/css; charset=utf-8"}, /* built-ins not named in the file stay */
    };
    check_cases(m, cases, sizeof(cases) / sizeof(cases[0]));
    cz_mime_free(m);
}

Test(mime, table_grows)
{
    size_t cap = 3000 * 24 + 64, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    for (int i = 0; i < 3000; i++)
        len += (size_t)snprintf(text + len, cap - len, "application/x-t%d e%d\n", i % 7, i);
    write_tmp(text);
    free(text);
    struct cz_mime *m = cz_mime_load(tmp_file, NULL);
    unlink(tmp_file);
    cr_assert_not_null(m);
    cr_expect_geq(cz_mime_count(m), 3000);
    for (int i = 0; i < 3000; i++) {
        char name[32], want[32];
        snprintf(name, sizeof(name), "f.E%d", i);
        snprintf(want, sizeof(want), "application/x-t%d", i % 7);
        cr_assert_str_eq(lookup(m, name), want, "%s", name);
    }
    cr_expect_str_eq(lookup(m, "x.html"), "text/html; charset=utf-8");
    cz_mime_free(m);
}

Test(mime, missing_file_means_builtins)
{
    struct cz_mime *m = cz_mime_load("/nonexistent/cz/mime.types", "x/y");
    cr_assert_not_null(m);
    cr_expect_str_eq(lookup(m, "a.css"), "text/css; charset=utf-8");
    cr_expect_str_eq(lookup(m, "a.q"), "x/y");
    cz_mime_free(m);
}

Test(mime, unreadable_file_fails)
{
    errno = 0;
    struct cz_mime *m = cz_mime_load("/tmp", NULL); /* a directory: open works, read fails */
    cr_expect_null(m);
    cr_expect_eq(errno, EISDIR, "errno %d", errno);
    cz_mime_free(NULL);
}

Test(mime, system_mime_types)
{
    if (access("/etc/mime.types", R_OK) != 0)
        cr_skip_test("/etc/mime.types missing (apt-get install media-types)");
    struct cz_mime *m = cz_mime_load("/etc/mime.types", NULL);
    cr_assert_not_null(m, "errno %d", errno);
    cr_expect_gt(cz_mime_count(m), 500);
    static const struct mime_case cases[] = {
        {"index.html", "text/html; charset=utf-8"},
        {"a.JS", "text/javascript; charset=utf-8"},
        {"a.css", "text/css; charset=utf-8"},
        {"a.json", "application/json; charset=utf-8"},
        {"a.png", "image/png"},
        {"a.svg", "image/svg+xml"},
        {"a.woff2", "font/woff2"},
        {"a.wasm", "application/wasm"},
        {"a.map", "application/json; charset=utf-8"}, /* not in Debian's file: built-in */
        {"a.nothing-like-this", OCTET},
    };
    check_cases(m, cases, sizeof(cases) / sizeof(cases[0]));
    cr_expect(strncmp(lookup(m, "a.docx"), "application/vnd.openxmlformats", 30) == 0);
    cz_mime_free(m);
}
