/* The live dashboard served at /_catzilla/: one self-contained page that
 * polls /_catzilla/metrics and draws requests/s, connections and memory. */
#ifndef CZ_HTTP_DASHBOARD_H
#define CZ_HTTP_DASHBOARD_H

#include <stddef.h>

/* The page's bytes (static storage) and their length. */
const char *cz_dashboard_html(size_t *len);

#endif
