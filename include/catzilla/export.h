/* CZ_API marks the public functions of libcatzilla.  The library is compiled
 * with -fvisibility=hidden, so everything else (its internals and llhttp)
 * stays out of the shared library's dynamic symbols and is made local in
 * the installed static archive: a program may define its own conn_close. */
#ifndef CATZILLA_EXPORT_H
#define CATZILLA_EXPORT_H

#if defined(__GNUC__)
#define CZ_API __attribute__((visibility("default")))
#else
#define CZ_API
#endif

#endif
