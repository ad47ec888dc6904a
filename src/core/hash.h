/* FNV-1a over a byte string: the one string hash of the tables that key
 * by path or name (file cache, MIME table).  Not for hostile keys where
 * flooding matters more than speed: those tables are bounded. */
#ifndef CZ_CORE_HASH_H
#define CZ_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t cz_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

#endif
