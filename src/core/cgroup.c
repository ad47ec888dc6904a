/* Memory cgroup discovery and usage: /proc/self/cgroup names the cgroup,
 * /proc/self/mountinfo says where its hierarchy is mounted, the cgroup's own
 * files give the limits.  Every file is read with open/read/close into a
 * stack buffer, line by line where it has lines, so a large mountinfo (many
 * overlay mounts) or memory.stat costs no allocation.  Paths are built here,
 * never followed outside the mount point ("..") or guessed. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/cgroup.h"

/* v1 reports "no limit" as PAGE_COUNTER_MAX * PAGE_SIZE rounded down to a
 * page (9223372036854771712 on x86-64, different elsewhere); no machine has
 * an exbibyte of memory, so anything this large is no limit. */
#define UNLIMITED_MIN (1ULL << 60)

/* memory.stat is ~2 KiB; mountinfo can be much larger, but is read a line at
 * a time and lines longer than this (overlay option lists) are skipped. */
#define LINE_BUF 8192

/* A file path: a cgroup directory plus the longest file name used here. */
#define FILE_PATH_MAX (CZ_CGROUP_DIR_MAX + 32)

static int open_ro(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* Read the whole of a small file into buf as a C string.  Returns its length,
 * -EINVAL if it does not fit (a value file is never that big), or -errno. */
static int read_small(const char *path, char *buf, size_t cap)
{
    int fd = open_ro(path);
    if (fd < 0)
        return fd;
    size_t len = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        /* No room left for the NUL: too big for a value file. */
        if (len == cap) {
            rc = -EINVAL;
            break;
        }
    }
    close(fd);
    if (rc < 0)
        return rc;
    buf[len] = '\0';
    return (int)len;
}

struct line_reader {
    int fd;
    char *buf;
    size_t cap;
    size_t start, end; /* unconsumed bytes are buf[start, end) */
    bool eof;
};

static void line_init(struct line_reader *r, int fd, char *buf, size_t cap)
{
    *r = (struct line_reader){.fd = fd, .buf = buf, .cap = cap};
}

/* Read more after the unconsumed bytes.  Returns 0 or -errno. */
static int line_fill(struct line_reader *r)
{
    for (;;) {
        /* One byte stays free for the NUL of a last line without '\n'. */
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - 1 - r->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        r->eof = n == 0;
        r->end += (size_t)n;
        return 0;
    }
}

/* The next line, NUL-terminated in place without its '\n'; a last line
 * without '\n' counts.  Lines that do not fit in the buffer are skipped
 * whole.  Returns 1 with *line set, 0 at the end, or -errno. */
static int line_next(struct line_reader *r, char **line)
{
    bool skipping = false;
    for (;;) {
        char *s = r->buf + r->start;
        char *nl = memchr(s, '\n', r->end - r->start);
        if (nl) {
            *nl = '\0';
            r->start = (size_t)(nl + 1 - r->buf);
            if (skipping) {
                skipping = false;
                continue;
            }
            *line = s;
            return 1;
        }
        if (r->eof) {
            if (r->start == r->end || skipping)
                return 0;
            r->buf[r->end] = '\0';
            r->start = r->end;
            *line = s;
            return 1;
        }
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        /* Full without a newline: drop it all, and the rest of the line. */
        if (r->end == r->cap - 1) {
            skipping = true;
            r->end = 0;
        }
        int rc = line_fill(r);
        if (rc < 0)
            return rc;
    }
}

/* Exactly n decimal digits, no sign, no overflow.  Returns 0 or -EINVAL. */
static int parse_u64(const char *s, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    if (n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -EINVAL;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

static size_t trim_end(const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return n;
}

/* A file holding one number, or "max" when allow_max, which reads as 0 (our
 * "unlimited").  Returns 0, -EINVAL for anything else, or -errno. */
static int read_value(const char *path, bool allow_max, uint64_t *v)
{
    char buf[64];
    int len = read_small(path, buf, sizeof(buf));
    if (len < 0)
        return len;
    size_t n = trim_end(buf, (size_t)len);
    if (allow_max && n == 3 && memcmp(buf, "max", 3) == 0) {
        *v = 0;
        return 0;
    }
    return parse_u64(buf, n, v);
}

static uint64_t as_limit(uint64_t v)
{
    return v >= UNLIMITED_MIN ? 0 : v;
}

/* The tighter of two limits, where 0 means none. */
static uint64_t min_limit(uint64_t a, uint64_t b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

/* Is word one of the sep-separated items of list? */
static bool has_item(const char *list, char sep, const char *word)
{
    size_t wn = strlen(word);
    for (const char *p = list; p;) {
        const char *e = strchr(p, sep);
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == wn && memcmp(p, word, n) == 0)
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

/* Does the path have a ".." component?  The kernel shows one for a cgroup
 * outside the reader's cgroup namespace; such a cgroup is not ours to see. */
static bool has_dotdot(const char *path)
{
    for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2)
        if ((p == path || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
            return true;
    return false;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
    char *w = s;
    for (char *r = s; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/* dir/name into path.  Returns 0 or -ENAMETOOLONG. */
static int file_path(char *path, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(path, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* The process's path in each hierarchy: found 1, absent 0, or -errno. */
struct cg_paths {
    int v1_rc, v2_rc;
    char v1[CZ_CGROUP_DIR_MAX];
    char v2[CZ_CGROUP_DIR_MAX];
};

static int keep_path(char *dst, const char *path)
{
    if (path[0] != '/')
        return -EINVAL;
    if (strlen(path) >= CZ_CGROUP_DIR_MAX)
        return -ENAMETOOLONG;
    if (has_dotdot(path))
        return 0;
    strcpy(dst, path);
    return 1;
}

/* "ID:CONTROLLERS:PATH"; the path itself may contain ':'. */
static int cgroup_line(char *line, struct cg_paths *p)
{
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    uint64_t id;
    if (!c2 || parse_u64(line, (size_t)(c1 - line), &id) < 0)
        return -EINVAL;
    *c2 = '\0';
    const char *ctrl = c1 + 1, *path = c2 + 1;
    if (id == 0 && ctrl[0] == '\0') {
        if (p->v2_rc == 0)
            p->v2_rc = keep_path(p->v2, path);
    } else if (has_item(ctrl, ',', "memory")) {
        if (p->v1_rc == 0)
            p->v1_rc = keep_path(p->v1, path);
    }
    return 0;
}

/* Open root + rel read-only: a descriptor or -errno (-ENAMETOOLONG when the
 * path does not fit). */
static int open_under(const char *root, size_t rootlen, const char *rel)
{
    char path[FILE_PATH_MAX];
    size_t rl = strlen(rel);
    if (rootlen + rl + 1 > sizeof(path))
        return -ENAMETOOLONG;
    memcpy(path, root, rootlen);
    memcpy(path + rootlen, rel, rl + 1);
    return open_ro(path);
}

/* Returns 0 (a missing file leaves both paths absent) or -errno. */
static int read_proc_cgroup(const char *root, size_t rootlen, struct cg_paths *p)
{
    char buf[LINE_BUF];
    p->v1_rc = p->v2_rc = 0;
    int fd = open_under(root, rootlen, "/proc/self/cgroup");
    if (fd < 0)
        return fd == -ENOENT ? 0 : fd;
    struct line_reader r;
    line_init(&r, fd, buf, sizeof(buf));
    char *line;
    int rc;
    while ((rc = line_next(&r, &line)) > 0)
        if (line[0] != '\0' && (rc = cgroup_line(line, p)) < 0)
            break;
    close(fd);
    return rc < 0 ? rc : 0;
}

struct mount_dir {
    char dir[CZ_CGROUP_DIR_MAX]; /* root + mount point + path below the mount's root */
    size_t stop;                 /* length of root + mount point: the walk stops there */
};

/* The part of cgpath at or below the mount's root ("" for the root itself),
 * or NULL when the mount shows another part of the hierarchy. */
static const char *path_below(const char *cgpath, const char *mroot)
{
    size_t n = strlen(mroot);
    while (n > 0 && mroot[n - 1] == '/')
        n--;
    if (strncmp(cgpath, mroot, n) != 0 || (cgpath[n] != '\0' && cgpath[n] != '/'))
        return NULL;
    return cgpath + n;
}

static int mount_join(struct mount_dir *m, const char *root, size_t rootlen, const char *mpoint,
                      const char *rel)
{
    int n = snprintf(m->dir, sizeof(m->dir), "%.*s%s", (int)rootlen, root, mpoint);
    if (n < 0 || (size_t)n >= sizeof(m->dir))
        return -ENAMETOOLONG;
    size_t len = (size_t)n;
    /* A fake root plus mount point "/" would end in '/'; keep only "/". */
    while (len > 1 && m->dir[len - 1] == '/')
        len--;
    m->dir[len] = '\0';
    m->stop = len;
    /* The mount's root itself is the mount point, without a trailing '/'. */
    if (strcmp(rel, "/") == 0)
        rel = "";
    if (rel[0] == '/' && m->dir[len - 1] == '/')
        rel++;
    if (len + strlen(rel) >= sizeof(m->dir))
        return -ENAMETOOLONG;
    strcpy(m->dir + len, rel);
    return 0;
}

/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS".
 * Returns 1 when it is the mount of cgpath's hierarchy (m filled), 0 when
 * not, or -errno. */
static int mount_line(char *line, int version, const char *cgpath, const char *root, size_t rootlen,
                      struct mount_dir *m)
{
    char *f[6];
    for (int i = 0; i < 6; i++)
        if ((f[i] = strsep(&line, " ")) == NULL)
            return -EINVAL;
    char *sep;
    do {
        sep = strsep(&line, " ");
    } while (sep && strcmp(sep, "-") != 0);
    char *fstype = strsep(&line, " ");
    char *source = strsep(&line, " ");
    char *opts = strsep(&line, " ");
    if (!sep || !fstype || !source || !opts || f[3][0] != '/' || f[4][0] != '/')
        return -EINVAL;
    if (version == 2 ? strcmp(fstype, "cgroup2") != 0
                     : strcmp(fstype, "cgroup") != 0 || !has_item(opts, ',', "memory"))
        return 0;
    unescape_octal(f[3]);
    unescape_octal(f[4]);
    /* Several mounts may show the hierarchy (bind mounts, a container's own
     * part of it); take the first that shows our cgroup. */
    const char *rel = path_below(cgpath, f[3]);
    if (!rel)
        return 0;
    int rc = mount_join(m, root, rootlen, f[4], rel);
    return rc < 0 ? rc : 1;
}

/* Returns 1 with m filled, 0 when no mount shows cgpath, or -errno. */
static int find_mount(const char *root, size_t rootlen, int version, const char *cgpath,
                      struct mount_dir *m)
{
    char buf[LINE_BUF];
    int fd = open_under(root, rootlen, "/proc/self/mountinfo");
    if (fd < 0)
        return fd == -ENOENT ? 0 : fd;
    struct line_reader r;
    line_init(&r, fd, buf, sizeof(buf));
    char *line;
    int rc;
    while ((rc = line_next(&r, &line)) > 0) {
        if (line[0] == '\0')
            continue;
        rc = mount_line(line, version, cgpath, root, rootlen, m);
        if (rc != 0)
            break;
    }
    close(fd);
    return rc;
}

/* dir/name as a limit (0: none); a missing file is -ENOENT (ENOTDIR: a path
 * component is a file, as absent as a missing one). */
static int read_limit(const char *dir, const char *name, bool v2, uint64_t *v)
{
    char path[FILE_PATH_MAX];
    int rc = file_path(path, sizeof(path), dir, name);
    if (rc == 0)
        rc = read_value(path, v2, v);
    if (rc == -ENOTDIR)
        return -ENOENT;
    if (rc == 0)
        *v = as_limit(*v);
    return rc;
}

/* One directory's limits folded into out; the first directory that has them
 * becomes out->dir.  Returns 1 if it had them, 0 if not, or -errno. */
static int fold_level(const char *d, int version, struct cz_cgroup_mem *out)
{
    uint64_t v;
    int rc = read_limit(d, version == 2 ? "memory.max" : "memory.limit_in_bytes", version == 2, &v);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    if (out->dir[0] == '\0')
        strcpy(out->dir, d);
    out->max = min_limit(out->max, v);
    if (version == 2) {
        rc = read_limit(d, "memory.high", true, &v);
        if (rc < 0 && rc != -ENOENT)
            return rc;
        if (rc == 0)
            out->high = min_limit(out->high, v);
    }
    return 1;
}

/* From m->dir up to the mount point: a parent's limit binds its children
 * too, so the smallest one wins.  m->dir ends as the mount point.  Returns
 * 1 if some directory had a limit file, 0 if none did, or -errno. */
static int walk_up(struct mount_dir *m, int version, struct cz_cgroup_mem *out)
{
    char *d = m->dir;
    size_t len = strlen(d);
    for (;;) {
        int rc = fold_level(d, version, out);
        if (rc < 0)
            return rc;
        if (len <= m->stop)
            break;
        char *slash = memrchr(d, '/', len);
        len = slash && (size_t)(slash - d) > m->stop ? (size_t)(slash - d) : m->stop;
        d[len] = '\0';
    }
    return out->dir[0] != '\0';
}

/* A v2 root cgroup has no memory.max, but has the controller if its
 * cgroup.controllers lists it. */
static int v2_root_has_memory(const char *dir)
{
    char path[FILE_PATH_MAX], buf[256];
    int rc = file_path(path, sizeof(path), dir, "cgroup.controllers");
    if (rc < 0)
        return rc;
    int len = read_small(path, buf, sizeof(buf));
    if (len == -ENOENT)
        return 0;
    if (len < 0)
        return len;
    buf[trim_end(buf, (size_t)len)] = '\0';
    return has_item(buf, ' ', "memory");
}

/* Try one hierarchy.  Returns 1 when it has our memory cgroup (out filled),
 * 0 when not, or -errno. */
static int try_version(const char *root, size_t rootlen, int version, int path_rc,
                       const char *cgpath, struct cz_cgroup_mem *out)
{
    struct mount_dir m;
    if (path_rc <= 0)
        return path_rc;
    int rc = find_mount(root, rootlen, version, cgpath, &m);
    if (rc <= 0)
        return rc;
    rc = walk_up(&m, version, out);
    if (rc == 0 && version == 2) {
        rc = v2_root_has_memory(m.dir);
        if (rc > 0)
            strcpy(out->dir, m.dir);
    }
    if (rc > 0)
        out->version = version;
    return rc;
}

int cz_cgroup_mem_find(const char *root, struct cz_cgroup_mem *out)
{
    struct cg_paths p;
    memset(out, 0, sizeof(*out));
    if (!root)
        root = "";
    /* "/" and "/tmp/x/" mean the same as "" and "/tmp/x". */
    size_t rootlen = strlen(root);
    while (rootlen > 0 && root[rootlen - 1] == '/')
        rootlen--;
    int rc = read_proc_cgroup(root, rootlen, &p);
    /* v1 first: in hybrid mode the process is in a v2 cgroup too, but the
     * memory controller is bound to the v1 hierarchy. */
    if (rc == 0)
        rc = try_version(root, rootlen, 1, p.v1_rc, p.v1, out);
    if (rc == 0)
        rc = try_version(root, rootlen, 2, p.v2_rc, p.v2, out);
    if (rc < 0) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    return 0;
}

/* The value of "key N" in a memory.stat file.  Returns 1 with *v set, 0 when
 * the key is absent, or -errno. */
static int stat_value(const char *path, const char *key, uint64_t *v)
{
    char buf[LINE_BUF];
    int fd = open_ro(path);
    if (fd < 0)
        return fd;
    size_t kn = strlen(key);
    struct line_reader r;
    line_init(&r, fd, buf, sizeof(buf));
    char *line;
    int rc;
    while ((rc = line_next(&r, &line)) > 0) {
        if (strncmp(line, key, kn) != 0 || line[kn] != ' ')
            continue;
        const char *s = line + kn + 1;
        rc = parse_u64(s, trim_end(s, strlen(s)), v);
        rc = rc < 0 ? rc : 1;
        break;
    }
    close(fd);
    return rc;
}

int cz_cgroup_mem_usage(const struct cz_cgroup_mem *cg, uint64_t *usage, uint64_t *working_set)
{
    if (cg->version != 1 && cg->version != 2)
        return -ENODEV;
    bool v2 = cg->version == 2;
    char path[FILE_PATH_MAX];
    uint64_t u = 0, inactive = 0;
    int rc =
        file_path(path, sizeof(path), cg->dir, v2 ? "memory.current" : "memory.usage_in_bytes");
    if (rc == 0)
        rc = read_value(path, false, &u);
    if (rc == 0)
        rc = file_path(path, sizeof(path), cg->dir, "memory.stat");
    if (rc == 0)
        rc = stat_value(path, v2 ? "inactive_file" : "total_inactive_file", &inactive);
    if (rc < 0)
        return rc;
    *usage = u;
    *working_set = u > inactive ? u - inactive : 0;
    return 0;
}
