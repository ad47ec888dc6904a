/* Tests run with the catzilla binary's jemalloc defaults (see memory.h). */
#include "catzilla/memory.h"

__attribute__((visibility("default"))) const char *malloc_conf = CATZILLA_MALLOC_CONF;
