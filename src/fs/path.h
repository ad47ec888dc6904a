/* Request target -> safe relative path, and opening it beneath the docroot.
 *
 * Owns: %XX decoding (exactly once), dot-segment resolution, the dotfile rule, and
 * openat2(RESOLVE_BENEATH) as the kernel-side guard against symlinks out of the root.
 * Does not own: the query string (the caller strips it), index.html, redirects, stat().
 */
#ifndef CZ_FS_PATH_H
#define CZ_FS_PATH_H

#include <stddef.h>

/* Input flags for cz_path_sanitize(). */
enum {
    CZ_PATH_ALLOW_DOT = 1u << 0, /* allow segments starting with '.' (".well-known", ".git") */
};

/* Result bits returned by cz_path_sanitize() on success (>= 0). */
enum {
    /* The target names a directory explicitly: the decoded path ends in '/', or its last
     * segment is "." or ".." (RFC 3986 remove_dot_segments leaves a '/' there too).
     * Always set for the root "/". Use it for the "301 to add the slash" rule. */
    CZ_PATH_TRAILING_SLASH = 1u << 0,
};

/* Turn the raw path part of a request target (no query, not NUL-terminated) into a
 * path relative to the docroot: %XX decoded once ("%252e" -> "%2e", literally), "//" and
 * "." collapsed, ".." resolved, decoded '/' ("%2f") treated as a separator.
 * On success writes out[] = the relative path without a leading '/' ("" for the root),
 * NUL-terminated, sets *out_len (if not NULL) to its length, and returns a set of
 * CZ_PATH_* result bits (>= 0). On failure returns, in this order of precedence:
 *   -EINVAL        target not starting with '/', bad %-escape, control char (0x00-0x1f,
 *                  0x7f, raw or decoded), backslash (raw or %5c)            -> 400
 *   -EPERM         a ".." climbing above the root                            -> 400/404
 *   -ENOENT        a segment starting with '.' (other than "." and "..") without
 *                  CZ_PATH_ALLOW_DOT; checked on every decoded segment, even one a
 *                  later ".." removes                                        -> 404
 *   -ENAMETOOLONG  the result does not fit in cap bytes (including the NUL)  -> 414/404
 * out[] is unspecified after a failure. Pure: no allocation, no system call, any thread. */
int cz_path_sanitize(const char *target, size_t len, char *out, size_t cap, unsigned flags,
                     size_t *out_len);

/* openat2(root_fd, rel, flags | O_CLOEXEC | O_NOCTTY) with RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS: no path component, symlink target or ".." may leave root_fd.
 * rel "" opens the root directory itself. Returns the new fd (caller owns and closes it)
 * or -errno: -EXDEV when resolution would escape the root (symlink or absolute path),
 * -ENOSYS on kernels before 5.6 (there is deliberately no unsafe fallback), otherwise what
 * openat2 says (ENOENT, EACCES, ELOOP, ...). Retries EINTR and the EAGAIN a concurrent
 * rename can cause. Blocking system call: call it where blocking is acceptable; any thread. */
int cz_path_open_beneath(int root_fd, const char *rel, int flags);

/* The open_how cz_path_open_beneath uses, for an IORING_OP_OPENAT2 of rel
 * ("" must be passed as ".") beneath the root: same guarantees, no blocking. */
struct open_how;
void cz_path_open_how(struct open_how *how, int flags);

#endif /* CZ_FS_PATH_H */
