/* Unit tests for src/fs/path.c: request-target sanitising (every traversal encoding, decode
 * once, dotfiles, trailing slash, output capacity) and openat2 beneath a temporary root
 * with symlinks pointing in and out of it.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/path.h"

#define TS CZ_PATH_TRAILING_SLASH

struct path_case {
    const char *in;
    size_t len; /* 0: strlen(in) */
    unsigned flags;
    int ret;
    const char *out;
};

static const struct path_case path_cases[] = {
    /* plain paths, collapsing, trailing slash */
    {"/", 0, 0, TS, ""},
    {"/index.html", 0, 0, 0, "index.html"},
    {"/a/b/c.txt", 0, 0, 0, "a/b/c.txt"},
    {"/a/b/", 0, 0, TS, "a/b"},
    {"//a///b", 0, 0, 0, "a/b"},
    {"//", 0, 0, TS, ""},
    {"/a//", 0, 0, TS, "a"},
    {"/a/./b", 0, 0, 0, "a/b"},
    {"/./a", 0, 0, 0, "a"},
    {"/.", 0, 0, TS, ""},
    {"/a/b/.", 0, 0, TS, "a/b"},
    {"/a/b/..", 0, 0, TS, "a"},
    {"/a/b/../", 0, 0, TS, "a"},
    {"/a/../b", 0, 0, 0, "b"},
    {"/a/b/../../c", 0, 0, 0, "c"},
    {"/a/..", 0, 0, TS, ""},
    {"/a/b/../c/./d/..", 0, 0, TS, "a/c"},
    /* traversal, raw */
    {"/..", 0, 0, -EPERM, NULL},
    {"/../", 0, 0, -EPERM, NULL},
    {"/../etc/passwd", 0, 0, -EPERM, NULL},
    {"/a/../../b", 0, 0, -EPERM, NULL},
    {"/a/b/../../../etc/passwd", 0, 0, -EPERM, NULL},
    {"/../a/..", 0, 0, -EPERM, NULL},
    {"//../", 0, 0, -EPERM, NULL},
    {"/./../", 0, 0, -EPERM, NULL},
    /* traversal, encoded: decoded '.' and '/' go through the same resolution */
    {"/%2e%2e/", 0, 0, -EPERM, NULL},
    {"/%2e%2e", 0, 0, -EPERM, NULL},
    {"/%2e%2e%2f", 0, 0, -EPERM, NULL},
    {"/%2e%2e%2fetc%2fpasswd", 0, 0, -EPERM, NULL},
    {"/..%2f", 0, 0, -EPERM, NULL},
    {"/..%2fetc/passwd", 0, 0, -EPERM, NULL},
    {"/a/..%2f..%2fetc", 0, 0, -EPERM, NULL},
    {"/a%2f..%2f..%2fb", 0, 0, -EPERM, NULL},
    {"/%2E%2E", 0, 0, -EPERM, NULL},
    {"/%2E%2E/x", 0, 0, -EPERM, NULL},
    {"/%2e%2E%2F", 0, 0, -EPERM, NULL},
    {"/.%2e/", 0, 0, -EPERM, NULL},
    {"/%2e./", 0, 0, -EPERM, NULL},
    {"%2f..", 0, 0, -EINVAL, NULL}, /* must start with a raw '/' */
    /* decode exactly once: double-encoded dots are a file name, not traversal */
    {"/%252e%252e", 0, 0, 0, "%2e%2e"},
    {"/%252e%252e/x", 0, 0, 0, "%2e%2e/x"},
    {"/%252e%252e%252f", 0, 0, 0, "%2e%2e%2f"},
    {"/%25", 0, 0, 0, "%"},
    {"/%2541", 0, 0, 0, "%41"},
    {"/%25zz", 0, 0, 0, "%zz"},
    {"/a%2fb", 0, 0, 0, "a/b"},
    {"/a%2F", 0, 0, TS, "a"},
    {"/a%20b", 0, 0, 0, "a b"},
    {"/caf%C3%A9.txt", 0, 0, 0, "caf\xc3\xa9.txt"},
    {"/caf\xc3\xa9", 0, 0, 0, "caf\xc3\xa9"},
    {"/%41%62%63", 0, 0, 0, "Abc"},
    {"/a+b", 0, 0, 0, "a+b"}, /* '+' is not a space in a path */
    /* backslash is never a separator, just rejected */
    {"/a\\b", 0, 0, -EINVAL, NULL},
    {"/..\\..\\etc\\passwd", 0, 0, -EINVAL, NULL},
    {"/\\", 0, 0, -EINVAL, NULL},
    {"/a%5cb", 0, 0, -EINVAL, NULL},
    {"/a%5Cb", 0, 0, -EINVAL, NULL},
    {"/..%5c..%5cetc", 0, 0, -EINVAL, NULL},
    {"\\a", 0, 0, -EINVAL, NULL},
    /* control characters, decoded or raw */
    {"/a%00b", 0, 0, -EINVAL, NULL},
    {"/%00", 0, 0, -EINVAL, NULL},
    {"/a%0ab", 0, 0, -EINVAL, NULL},
    {"/a%0d%0aSet-Cookie:x", 0, 0, -EINVAL, NULL},
    {"/a%1f", 0, 0, -EINVAL, NULL},
    {"/a%7f", 0, 0, -EINVAL, NULL},
    {"/a%09", 0, 0, -EINVAL, NULL},
    {"/a\x01", 0, 0, -EINVAL, NULL},
    {"/a\x7f", 0, 0, -EINVAL, NULL},
    {"/a\tb", 0, 0, -EINVAL, NULL},
    {"/a\0b", 4, 0, -EINVAL, NULL},
    /* bad escapes */
    {"/%zz", 0, 0, -EINVAL, NULL},
    {"/%4", 0, 0, -EINVAL, NULL},
    {"/%", 0, 0, -EINVAL, NULL},
    {"/a%", 0, 0, -EINVAL, NULL},
    {"/%g0", 0, 0, -EINVAL, NULL},
    {"/%0g", 0, 0, -EINVAL, NULL},
    {"/%%41", 0, 0, -EINVAL, NULL},
    {"/% 1", 0, 0, -EINVAL, NULL},
    {"/%2", 0, 0, -EINVAL, NULL},
    {"/%4x1", 0, 0, -EINVAL, NULL},
    /* not a path */
    {"", 0, 0, -EINVAL, NULL},
    {"a/b", 0, 0, -EINVAL, NULL},
    {"../", 0, 0, -EINVAL, NULL},
    {"*", 0, 0, -EINVAL, NULL},
    {"http://x/a", 0, 0, -EINVAL, NULL},
    /* dotfiles */
    {"/.git/config", 0, 0, -ENOENT, NULL},
    {"/.git", 0, 0, -ENOENT, NULL},
    {"/a/.hidden", 0, 0, -ENOENT, NULL},
    {"/a/.hidden/", 0, 0, -ENOENT, NULL},
    {"/%2egit/config", 0, 0, -ENOENT, NULL},
    {"/%2Ehtaccess", 0, 0, -ENOENT, NULL},
    {"/...", 0, 0, -ENOENT, NULL},
    {"/.git/../index.html", 0, 0, -ENOENT, NULL}, /* conservative: any decoded segment */
    {"/a.b/c.d", 0, 0, 0, "a.b/c.d"},
    {"/.git/config", 0, CZ_PATH_ALLOW_DOT, 0, ".git/config"},
    {"/a/.hidden", 0, CZ_PATH_ALLOW_DOT, 0, "a/.hidden"},
    {"/.well-known/acme", 0, CZ_PATH_ALLOW_DOT, 0, ".well-known/acme"},
    {"/...", 0, CZ_PATH_ALLOW_DOT, 0, "..."},
    {"/../.x", 0, CZ_PATH_ALLOW_DOT, -EPERM, NULL},
    /* precedence: malformed > traversal > hidden */
    {"/.git/%zz", 0, 0, -EINVAL, NULL},
    {"/../%00", 0, 0, -EINVAL, NULL},
    {"/../.git", 0, 0, -EPERM, NULL},
    {"/.git/../../x", 0, 0, -EPERM, NULL},
};

/* Feed each input from an exact-size heap copy (no NUL after it) so that ASan catches any
 * read past len. */
static int run_sanitize(const char *in, size_t len, char *out, size_t cap, unsigned flags,
                        size_t *out_len)
{
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, in, len);
    int r = cz_path_sanitize(copy, len, out, cap, flags, out_len);
    free(copy);
    return r;
}

Test(path_sanitize, table)
{
    for (size_t k = 0; k < sizeof(path_cases) / sizeof(path_cases[0]); k++) {
        const struct path_case *c = &path_cases[k];
        size_t len = c->len ? c->len : strlen(c->in);
        char out[256];
        size_t out_len = 12345;
        memset(out, 'X', sizeof(out));
        int r = run_sanitize(c->in, len, out, sizeof(out), c->flags, &out_len);
        cr_expect_eq(r, c->ret, "case %zu \"%s\": ret %d, want %d", k, c->in, r, c->ret);
        if (c->ret >= 0 && r >= 0) {
            cr_expect_str_eq(out, c->out, "case %zu \"%s\"", k, c->in);
            cr_expect_eq(out_len, strlen(c->out), "case %zu \"%s\": out_len", k, c->in);
        }
    }
}

Test(path_sanitize, output_capacity)
{
    char out[16];
    size_t n = 0;
    cr_expect_eq(cz_path_sanitize("/abc", 4, out, 4, 0, &n), 0);
    cr_expect_str_eq(out, "abc");
    cr_expect_eq(n, 3);
    cr_expect_eq(cz_path_sanitize("/abc", 4, out, 3, 0, &n), -ENAMETOOLONG);
    cr_expect_eq(cz_path_sanitize("/a/bc", 5, out, 4, 0, &n), -ENAMETOOLONG);
    cr_expect_eq(cz_path_sanitize("/a/bc", 5, out, 5, 0, &n), 0);
    cr_expect_str_eq(out, "a/bc");
    cr_expect_eq(cz_path_sanitize("/", 1, out, 1, 0, &n), TS);
    cr_expect_str_eq(out, "");
    cr_expect_eq(cz_path_sanitize("/", 1, out, 0, 0, &n), -ENAMETOOLONG);
    cr_expect_eq(cz_path_sanitize("/", 1, NULL, 0, 0, &n), -ENAMETOOLONG);
    /* "." and ".." need no room of their own */
    cr_expect_eq(cz_path_sanitize("/ab/../cd/.", 11, out, 3, 0, &n), TS);
    cr_expect_str_eq(out, "cd");
    /* out_len is optional */
    cr_expect_eq(cz_path_sanitize("/x", 2, out, sizeof(out), 0, NULL), 0);
    /* errors of higher precedence still win over a too-small buffer */
    cr_expect_eq(cz_path_sanitize("/abcdef/%zz", 11, out, 2, 0, &n), -EINVAL);
    cr_expect_eq(cz_path_sanitize("/abcdef/../..", 13, out, 2, 0, &n), -EPERM);
}

/* Reference model: decode the whole string first, then resolve with a segment stack.
 * Slow and obvious; the real implementation must agree with it on every input. */
static int reference_sanitize(const char *in, size_t len, unsigned flags, char *out)
{
    char dec[512];
    size_t d = 0;
    if (len == 0 || in[0] != '/')
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            unsigned v;
            char hex[3] = {0};
            if (i + 2 >= len)
                return -EINVAL;
            hex[0] = in[i + 1];
            hex[1] = in[i + 2];
            if (!strchr("0123456789abcdefABCDEF", hex[0]) || !hex[0] ||
                !strchr("0123456789abcdefABCDEF", hex[1]) || !hex[1])
                return -EINVAL;
            sscanf(hex, "%x", &v);
            c = (unsigned char)v;
            i += 2;
        }
        if (c < 0x20 || c == 0x7f || c == '\\')
            return -EINVAL;
        dec[d++] = (char)c;
    }
    dec[d] = '\0';
    const char *segs[256];
    size_t seg_lens[256], n = 0;
    bool perm = false, hidden = false, slash = true;
    size_t s = 1;
    while (s <= d) {
        size_t e = s;
        while (e < d && dec[e] != '/')
            e++;
        size_t l = e - s;
        if (l == 0 || (l == 1 && dec[s] == '.')) {
            slash = true;
        } else if (l == 2 && dec[s] == '.' && dec[s + 1] == '.') {
            slash = true;
            if (n == 0)
                perm = true;
            else
                n--;
        } else {
            slash = false;
            if (dec[s] == '.' && !(flags & CZ_PATH_ALLOW_DOT))
                hidden = true;
            segs[n] = dec + s;
            seg_lens[n++] = l;
        }
        s = e + 1;
    }
    if (perm)
        return -EPERM;
    if (hidden)
        return -ENOENT;
    out[0] = '\0';
    for (size_t k = 0; k < n; k++) {
        if (k)
            strcat(out, "/");
        strncat(out, segs[k], seg_lens[k]);
    }
    return slash ? TS : 0;
}

Test(path_sanitize, agrees_with_reference_model)
{
    static const char *const atoms[] = {"/",  ".",   "a", "%2e", "%2f", "%25", "%2E",    "..",
                                        "b.", "%5c", "%", "%0",  "\\",  "%00", "%2e%2e", "%2F"};
    const size_t natoms = sizeof(atoms) / sizeof(atoms[0]);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int iter = 0; iter < 200000; iter++) {
        char in[128] = "/";
        size_t len = 1;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned n = (unsigned)(x % 10);
        for (unsigned k = 0; k < n; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const char *a = atoms[x % natoms];
            memcpy(in + len, a, strlen(a));
            len += strlen(a);
        }
        unsigned flags = (x >> 32) & 1 ? CZ_PATH_ALLOW_DOT : 0;
        char want[512], got[256];
        int rw = reference_sanitize(in, len, flags, want);
        int rg = run_sanitize(in, len, got, sizeof(got), flags, NULL);
        cr_assert_eq(rg, rw, "\"%.*s\" flags %u: got %d, want %d", (int)len, in, flags, rg, rw);
        if (rg >= 0) {
            cr_assert_str_eq(got, want, "\"%.*s\"", (int)len, in);
            cr_assert(got[0] != '/' && !strstr(got, "//"), "\"%s\"", got);
        }
    }
}

/* ---- open beneath a root ---- */

static char tmp_base[64];
static int root_fd = -1;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static void beneath_setup(void)
{
    char p[256], q[256];
    strcpy(tmp_base, "/tmp/cz_path_XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_base));
    snprintf(p, sizeof(p), "%s/root", tmp_base);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/root/sub", tmp_base);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/secret.txt", tmp_base);
    write_file(p, "secret");
    snprintf(p, sizeof(p), "%s/root/in.txt", tmp_base);
    write_file(p, "inside");

    static const struct {
        const char *target, *name;
    } links[] = {
        {"../secret.txt", "out"},    /* relative, leaves the root */
        {"in.txt", "inlink"},        /* inside */
        {"../in.txt", "sub/up"},     /* climbs, but stays inside */
        {"..", "dotdot"},            /* the root's parent */
        {"../..", "sub/dotdot2"},    /* the root's parent, from a subdirectory */
        {"sub", "sublink"},          /* directory inside */
        {"/proc/self/cwd", "magic"}, /* absolute */
        {"/etc/passwd", "abs"},      /* absolute */
    };
    for (size_t k = 0; k < sizeof(links) / sizeof(links[0]); k++) {
        snprintf(p, sizeof(p), "%s/root/%s", tmp_base, links[k].name);
        cr_assert_eq(symlink(links[k].target, p), 0, "symlink %s: %s", p, strerror(errno));
    }
    snprintf(q, sizeof(q), "%s/secret.txt", tmp_base);
    snprintf(p, sizeof(p), "%s/root/abs_secret", tmp_base);
    cr_assert_eq(symlink(q, p), 0);

    snprintf(p, sizeof(p), "%s/root", tmp_base);
    root_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(root_fd, 0);
}

static void beneath_teardown(void)
{
    char cmd[128];
    if (root_fd >= 0)
        close(root_fd);
    root_fd = -1;
    if (tmp_base[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_base);
        cr_expect_eq(system(cmd), 0);
    }
}

static void skip_without_openat2(void)
{
    int fd = cz_path_open_beneath(root_fd, "", O_RDONLY | O_DIRECTORY);
    if (fd == -ENOSYS)
        cr_skip_test("openat2(2) unavailable (kernel < 5.6 or seccomp)");
    cr_assert_geq(fd, 0, "open root: %d", fd);
    close(fd);
}

static void expect_content(int fd, const char *want)
{
    char buf[64] = {0};
    cr_assert_geq(fd, 0, "fd %d (%s)", fd, strerror(-fd));
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    cr_expect_eq(n, (ssize_t)strlen(want));
    cr_expect_str_eq(buf, want);
    int fl = fcntl(fd, F_GETFD);
    cr_expect(fl & FD_CLOEXEC, "O_CLOEXEC added");
    close(fd);
}

Test(path_open_beneath, inside_works, .init = beneath_setup, .fini = beneath_teardown)
{
    skip_without_openat2();
    expect_content(cz_path_open_beneath(root_fd, "in.txt", O_RDONLY), "inside");
    expect_content(cz_path_open_beneath(root_fd, "inlink", O_RDONLY), "inside");
    expect_content(cz_path_open_beneath(root_fd, "sub/up", O_RDONLY), "inside");
    expect_content(cz_path_open_beneath(root_fd, "sublink/up", O_RDONLY), "inside");
    expect_content(cz_path_open_beneath(root_fd, "sub/../in.txt", O_RDONLY), "inside");

    int fd = cz_path_open_beneath(root_fd, "", O_RDONLY | O_DIRECTORY);
    cr_assert_geq(fd, 0);
    struct stat a, b;
    cr_expect_eq(fstat(fd, &a), 0);
    cr_expect_eq(fstat(root_fd, &b), 0);
    cr_expect(a.st_ino == b.st_ino && a.st_dev == b.st_dev, "\"\" opens the root itself");
    close(fd);
}

Test(path_open_beneath, escapes_fail, .init = beneath_setup, .fini = beneath_teardown)
{
    skip_without_openat2();
    static const char *const escapes[] = {
        "out",
        "abs_secret",
        "abs",
        "magic",
        "dotdot/secret.txt",
        "sub/dotdot2/secret.txt",
        "../secret.txt",
        "sub/../../secret.txt",
        "/etc/passwd",
        "dotdot",
        "magic/x",
    };
    for (size_t k = 0; k < sizeof(escapes) / sizeof(escapes[0]); k++) {
        int fd = cz_path_open_beneath(root_fd, escapes[k], O_RDONLY);
        if (fd >= 0)
            close(fd);
        cr_expect_eq(fd, -EXDEV, "\"%s\": %d, want -EXDEV", escapes[k], fd);
    }
}

Test(path_open_beneath, errors, .init = beneath_setup, .fini = beneath_teardown)
{
    skip_without_openat2();
    cr_expect_eq(cz_path_open_beneath(root_fd, "missing.txt", O_RDONLY), -ENOENT);
    cr_expect_eq(cz_path_open_beneath(root_fd, "in.txt", O_RDONLY | O_DIRECTORY), -ENOTDIR);
    cr_expect_eq(cz_path_open_beneath(root_fd, "in.txt/x", O_RDONLY), -ENOTDIR);
    cr_expect_eq(cz_path_open_beneath(-1, "in.txt", O_RDONLY), -EBADF);
    cr_expect_eq(cz_path_open_beneath(root_fd, NULL, O_RDONLY), -EINVAL);
}

/* The two layers together: what the sanitiser lets through still cannot leave the root. */
Test(path_open_beneath, sanitized_then_opened, .init = beneath_setup, .fini = beneath_teardown)
{
    skip_without_openat2();
    char rel[256];
    cr_assert_geq(cz_path_sanitize("/sub/%2e%2e/in.txt", 18, rel, sizeof(rel), 0, NULL), 0);
    cr_expect_str_eq(rel, "in.txt");
    expect_content(cz_path_open_beneath(root_fd, rel, O_RDONLY), "inside");
    cr_assert_geq(cz_path_sanitize("/out", 4, rel, sizeof(rel), 0, NULL), 0);
    cr_expect_eq(cz_path_open_beneath(root_fd, rel, O_RDONLY), -EXDEV);
}
