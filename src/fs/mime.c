/* Extension -> MIME type table: every string lives in one pool (referenced by offset while it
 * grows), slots are linear-probed with the cached hash, load factor <= 1/2.
 * Built once with malloc at start-up (not on a worker's arenas: it is shared read-only by all
 * workers and outlives any one of them); lookups never allocate.
 */
#include "core/hash.h"
#include "fs/mime.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIME_EXT_MAX 32   /* longer "extensions" are not worth a slot */
#define MIME_TYPE_MAX 128 /* type/subtype plus our charset parameter */

struct mime_slot {
    uint32_t ext;  /* pool offset of the lower-cased extension; 0 = empty slot */
    uint32_t type; /* pool offset of the full Content-Type value */
    uint32_t hash;
    bool builtin; /* a file entry may replace it; a file entry is never replaced */
};

struct cz_mime {
    char *pool;
    size_t pool_len, pool_cap;
    struct mime_slot *slots;
    size_t mask; /* slot count - 1, a power of two minus one */
    size_t count;
    uint32_t default_type;
};

static const struct {
    const char *type;
    const char *exts;
} builtin_types[] = {
    {"text/html", "html htm"},
    {"text/css", "css"},
    {"text/javascript", "js mjs"}, /* RFC 9239: text/javascript is the one current name */
    {"application/json", "json"},
    {"application/manifest+json", "webmanifest"},
    {"application/json", "map"}, /* source maps */
    {"text/plain", "txt"},
    {"application/xml", "xml"},
    {"text/markdown", "md"},
    {"text/csv", "csv"},
    {"image/svg+xml", "svg"},
    {"image/png", "png"},
    {"image/jpeg", "jpg jpeg"},
    {"image/gif", "gif"},
    {"image/webp", "webp"},
    {"image/avif", "avif"},
    {"image/vnd.microsoft.icon", "ico"},
    {"application/wasm", "wasm"},
    {"application/pdf", "pdf"},
    {"font/woff", "woff"},
    {"font/woff2", "woff2"},
    {"font/ttf", "ttf"},
    {"font/otf", "otf"},
    {"video/mp4", "mp4"},
    {"video/webm", "webm"},
    {"audio/mpeg", "mp3"},
    {"audio/ogg", "ogg"},
    {"audio/wav", "wav"},
    {"application/zip", "zip"},
    {"application/gzip", "gz"},
    {"application/x-tar", "tar"},
};

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool ascii_prefix_ci(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++) {
        if (ascii_lower(*s) != *prefix)
            return false;
    }
    return true;
}

/* Appends s[0..n) and a NUL; returns its offset, or 0 when out of memory. */
static uint32_t pool_add(struct cz_mime *m, const char *s, size_t n)
{
    if (m->pool_len + n + 1 > m->pool_cap) {
        size_t cap = m->pool_cap ? m->pool_cap : 4096;
        while (m->pool_len + n + 1 > cap)
            cap *= 2;
        if (cap > UINT32_MAX)
            return 0;
        char *p = realloc(m->pool, cap);
        if (!p)
            return 0;
        m->pool = p;
        m->pool_cap = cap;
    }
    uint32_t off = (uint32_t)m->pool_len;
    memcpy(m->pool + off, s, n);
    m->pool[off + n] = '\0';
    m->pool_len += n + 1;
    return off;
}

/* Interns a Content-Type value, adding "; charset=utf-8" where it belongs (see mime.h). */
static uint32_t add_type(struct cz_mime *m, const char *type, size_t n)
{
    char buf[MIME_TYPE_MAX + 32];
    if (n == 0 || n > MIME_TYPE_MAX)
        return 0;
    memcpy(buf, type, n);
    buf[n] = '\0';
    bool textual = ascii_prefix_ci(buf, "text/") ||
                   strcasecmp(buf, "application/javascript") == 0 ||
                   strcasecmp(buf, "application/json") == 0 ||
                   strcasecmp(buf, "application/manifest+json") == 0;
    if (textual && !memchr(buf, ';', n)) {
        static const char cs[] = "; charset=utf-8";
        memcpy(buf + n, cs, sizeof(cs));
        n += sizeof(cs) - 1;
    }
    return pool_add(m, buf, n);
}

static struct mime_slot *find_slot(struct mime_slot *slots, size_t mask, const char *pool,
                                   const char *ext, size_t n, uint32_t hash)
{
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        struct mime_slot *s = &slots[i];
        if (s->ext == 0)
            return s;
        if (s->hash == hash && strncmp(pool + s->ext, ext, n) == 0 && pool[s->ext + n] == '\0')
            return s;
    }
}

static int grow_slots(struct cz_mime *m)
{
    size_t nslots = m->slots ? (m->mask + 1) * 2 : 256;
    struct mime_slot *slots = calloc(nslots, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; m->slots && i <= m->mask; i++) {
        const struct mime_slot *old = &m->slots[i];
        if (old->ext == 0)
            continue;
        size_t j = old->hash & (nslots - 1);
        while (slots[j].ext != 0)
            j = (j + 1) & (nslots - 1);
        slots[j] = *old;
    }
    free(m->slots);
    m->slots = slots;
    m->mask = nslots - 1;
    return 0;
}

/* ext is already lower-case and valid. Returns 0 or -ENOMEM. */
static int insert(struct cz_mime *m, const char *ext, size_t n, uint32_t type, bool builtin)
{
    if ((m->count + 1) * 2 > m->mask + 1 && grow_slots(m) < 0)
        return -ENOMEM;
    uint32_t hash = cz_hash(ext, n);
    struct mime_slot *s = find_slot(m->slots, m->mask, m->pool, ext, n, hash);
    if (s->ext != 0) {
        if (s->builtin) {
            s->type = type;
            s->builtin = builtin;
        }
        return 0;
    }
    uint32_t off = pool_add(m, ext, n);
    if (off == 0)
        return -ENOMEM;
    *s = (struct mime_slot){.ext = off, .type = type, .hash = hash, .builtin = builtin};
    m->count++;
    return 0;
}

/* Returns the lower-cased length, or 0 if token is not a usable extension. */
static size_t normalize_ext(const char *tok, size_t n, char out[MIME_EXT_MAX])
{
    if (n == 0 || n >= MIME_EXT_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tok[i];
        if (c <= ' ' || c >= 0x7f || c == '/' || c == '.' || c == '\\')
            return 0;
        out[i] = ascii_lower((char)c);
    }
    return n;
}

static bool valid_type(const char *t, size_t n)
{
    const char *slash = memchr(t, '/', n);
    if (!slash || slash == t || slash == t + n - 1 ||
        memchr(slash + 1, '/', n - 1 - (size_t)(slash - t)))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= ' ' || c >= 0x7f || strchr("\"(),:;<=>?@[\\]{}", c))
            return false;
    }
    return true;
}

/* One line of "type ext1 ext2 ... [# comment]"; lines that do not parse are skipped. */
static int add_line(struct cz_mime *m, const char *line, size_t len, bool builtin)
{
    static const char ws[] = " \t\r\n\v\f";
    size_t i = 0, n;
    char ext[MIME_EXT_MAX];

    i += strspn(line + i, ws);
    if (i >= len || line[i] == '#')
        return 0;
    n = strcspn(line + i, ws);
    if (!valid_type(line + i, n))
        return 0;
    uint32_t type = 0;
    for (i += n;;) {
        i += strspn(line + i, ws);
        if (i >= len || line[i] == '#')
            return 0;
        n = strcspn(line + i, ws);
        size_t en = normalize_ext(line + i, n, ext);
        i += n;
        if (en == 0)
            continue;
        if (type == 0) {
            /* Interned only once an extension needs it. The type token starts the line. */
            size_t start = strspn(line, ws);
            type = add_type(m, line + start, strcspn(line + start, ws));
            if (type == 0)
                return -ENOMEM;
        }
        if (insert(m, ext, en, type, builtin) < 0)
            return -ENOMEM;
    }
}

static int load_file(struct cz_mime *m, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int err = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        if (strlen(line) != (size_t)n) /* embedded NUL: not a text line */
            continue;
        err = add_line(m, line, (size_t)n, false);
        if (err < 0)
            break;
    }
    if (err == 0 && ferror(f))
        err = errno ? -errno : -EIO;
    free(line);
    fclose(f);
    return err;
}

struct cz_mime *cz_mime_load(const char *path, const char *default_type)
{
    struct cz_mime *m = calloc(1, sizeof(*m));
    int err = -ENOMEM;
    if (!m)
        goto fail;
    pool_add(m, "", 0); /* offset 0 is taken, so 0 can mean "empty slot" and "no memory" */
    if (m->pool_len != 1 || grow_slots(m) < 0)
        goto fail;
    for (size_t k = 0; k < sizeof(builtin_types) / sizeof(builtin_types[0]); k++) {
        char line[256];
        int len =
            snprintf(line, sizeof(line), "%s %s", builtin_types[k].type, builtin_types[k].exts);
        if (add_line(m, line, (size_t)len, true) < 0)
            goto fail;
    }
    if (path && (err = load_file(m, path)) < 0)
        goto fail;
    const char *def = default_type ? default_type : "application/octet-stream";
    err = -ENOMEM;
    m->default_type = pool_add(m, def, strlen(def));
    if (m->default_type == 0)
        goto fail;
    return m;
fail:
    cz_mime_free(m);
    errno = -err;
    return NULL;
}

const char *cz_mime_lookup(const struct cz_mime *m, const char *path, size_t len)
{
    size_t base = len, dot = len;
    while (base > 0 && path[base - 1] != '/')
        base--;
    for (size_t i = len; i > base; i--) {
        if (path[i - 1] == '.') {
            dot = i - 1;
            break;
        }
    }
    char ext[MIME_EXT_MAX];
    size_t n = 0;
    /* dot == base: ".profile" is a name, not an extension */
    if (dot < len && dot > base)
        n = normalize_ext(path + dot + 1, len - dot - 1, ext);
    if (n == 0)
        return m->pool + m->default_type;
    const struct mime_slot *s = find_slot(m->slots, m->mask, m->pool, ext, n, cz_hash(ext, n));
    return s->ext ? m->pool + s->type : m->pool + m->default_type;
}

size_t cz_mime_count(const struct cz_mime *m)
{
    return m->count;
}

void cz_mime_free(struct cz_mime *m)
{
    if (!m)
        return;
    free(m->slots);
    free(m->pool);
    free(m);
}
