/* Request target -> safe relative path (one pass: decode, split, resolve), and the openat2
 * guard that keeps symlinks and races from leaving the docroot.
 * The lexical pass is the first line of defence and decides the status code; the kernel
 * (RESOLVE_BENEATH) is the one that actually enforces the boundary on the filesystem.
 */
#include "fs/path.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The resolved path lives directly in out[]: committed segments are joined by '/', and the
 * segment being decoded is written just past the separator it will need. "." and ".." are
 * recognised from their first two bytes and length, so they never need room in out[]. */
int cz_path_sanitize(const char *target, size_t len, char *out, size_t cap, unsigned flags,
                     size_t *out_len)
{
    if (!target || len == 0 || target[0] != '/')
        return -EINVAL;

    bool too_long = (out == NULL || cap == 0);
    bool climbed = false, hidden = false, dir_end = true;
    size_t pos = 0;     /* committed length of out[] (no NUL) */
    size_t depth = 0;   /* committed segments, tracked even once out[] overflowed */
    size_t seg_len = 0; /* decoded bytes in the current segment */
    unsigned char c0 = 0, c1 = 0;
    size_t i = 1;

    for (;;) {
        bool at_end = (i == len);
        unsigned char c = '/';

        if (!at_end) {
            c = (unsigned char)target[i];
            if (c == '%') {
                if (i + 2 >= len)
                    return -EINVAL;
                int hi = hex_value((unsigned char)target[i + 1]);
                int lo = hex_value((unsigned char)target[i + 2]);
                if (hi < 0 || lo < 0)
                    return -EINVAL;
                c = (unsigned char)(hi << 4 | lo); /* never decoded again, even if '%' */
                i += 3;
            } else {
                i++;
            }
            if (c < 0x20 || c == 0x7f || c == '\\')
                return -EINVAL;
        }

        if (c != '/') {
            if (seg_len == 0)
                c0 = c;
            else if (seg_len == 1)
                c1 = c;
            size_t at = pos + (pos > 0) + seg_len;
            if (!too_long && at + 1 < cap)
                out[at] = (char)c;
            seg_len++;
            continue;
        }

        /* End of a segment (decoded '/', raw '/' or end of input). */
        if (seg_len == 0 || (seg_len == 1 && c0 == '.')) {
            dir_end = true;
        } else if (seg_len == 2 && c0 == '.' && c1 == '.') {
            dir_end = true;
            if (depth == 0) {
                climbed = true;
            } else {
                depth--;
                if (!too_long) {
                    while (pos > 0 && out[pos - 1] != '/')
                        pos--;
                    if (pos > 0)
                        pos--;
                }
            }
        } else {
            dir_end = false;
            if (c0 == '.' && !(flags & CZ_PATH_ALLOW_DOT))
                hidden = true;
            depth++;
            size_t end = pos + (pos > 0) + seg_len;
            if (!too_long && end + 1 <= cap) {
                if (pos > 0)
                    out[pos] = '/';
                pos = end;
            } else {
                too_long = true;
            }
        }
        seg_len = 0;
        if (at_end)
            break;
    }

    if (climbed)
        return -EPERM;
    if (hidden)
        return -ENOENT;
    if (too_long)
        return -ENAMETOOLONG;
    out[pos] = '\0';
    if (out_len)
        *out_len = pos;
    return dir_end ? CZ_PATH_TRAILING_SLASH : 0;
}

void cz_path_open_how(struct open_how *how, int flags)
{
    memset(how, 0, sizeof(*how));
    how->flags = (unsigned long long)(unsigned)(flags | O_CLOEXEC | O_NOCTTY);
    /* BENEATH rejects absolute paths, ".." above the root and symlinks leaving it;
     * NO_MAGICLINKS rejects /proc/self/fd-style jumps that BENEATH alone allows. */
    how->resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
}

int cz_path_open_beneath(int root_fd, const char *rel, int flags)
{
    if (!rel)
        return -EINVAL;
    struct open_how how;
    cz_path_open_how(&how, flags);
    const char *p = rel[0] ? rel : ".";

    /* EAGAIN: a rename or mount raced the resolution; the kernel asks us to retry. */
    for (int tries = 0;; tries++) {
        long fd = syscall(SYS_openat2, root_fd, p, &how, sizeof(how));
        if (fd >= 0)
            return (int)fd;
        int err = errno;
        if ((err == EINTR || err == EAGAIN) && tries < 8)
            continue;
        return -err;
    }
}
