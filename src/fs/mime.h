/* MIME type by file extension: a read-only open-addressing table built once at start-up
 * from a built-in list of common web types, overridden by a mime.types file.
 * Owns: parsing mime.types, the charset decision, lookup. Does not own: content sniffing,
 * Content-Encoding (".gz" is served as application/gzip, never as a transfer coding).
 */
#ifndef CZ_FS_MIME_H
#define CZ_FS_MIME_H

#include <stddef.h>

struct cz_mime;

/* Build the table. path is a mime.types file ("type ext1 ext2 ...", '#' comments); NULL or
 * a missing file (ENOENT) means built-ins only. Entries from the file override built-ins;
 * within the file the first line naming an extension wins (Debian's file lists a few twice,
 * sorted by type, e.g. "sh" as application/x-sh and text/x-sh). Extensions are stored
 * lower-cased. Types gain "; charset=utf-8" when they are text/ (any subtype),
 * application/javascript, application/json or application/manifest+json and carry no
 * parameter yet; XML types (application/xml, image/svg+xml) do not, because their own
 * encoding declaration must not be overridden by the HTTP header.
 * default_type (NULL: "application/octet-stream") is returned verbatim for unknown names.
 * Returns the table (caller owns it; free with cz_mime_free) or NULL with errno set: ENOMEM,
 * or the open/read error of a file that exists but cannot be read (EACCES, EISDIR, EIO).
 * Allocates with plain malloc: built once per process before the workers start, read-only
 * afterwards and shared by all of them, so it never touches a worker's arenas.
 * Call from one thread, before the table is shared. */
struct cz_mime *cz_mime_load(const char *path, const char *default_type);

/* Type for the last extension of path[0..len) (case-insensitive; only the final path
 * segment counts; a leading '.' as in ".profile" is not an extension), or the default type.
 * The returned string lives as long as m. No allocation; any thread, concurrently. */
const char *cz_mime_lookup(const struct cz_mime *m, const char *path, size_t len);

/* Number of extensions in the table (for logs and tests). Any thread. */
size_t cz_mime_count(const struct cz_mime *m);

/* Free the table; NULL is a no-op. No lookup may run concurrently or afterwards. */
void cz_mime_free(struct cz_mime *m);

#endif /* CZ_FS_MIME_H */
