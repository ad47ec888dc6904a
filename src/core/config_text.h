/* Text forms of configuration options, for --help, --print-config and docs. */
#ifndef CZ_CORE_CONFIG_TEXT_H
#define CZ_CORE_CONFIG_TEXT_H

#include <stdio.h>

#include "catzilla/config.h"

/* "max_request_line" -> "max-request-line" / "CATZILLA_MAX_REQUEST_LINE". */
void cz_option_flag_name(const struct cz_option *o, char *buf, size_t cap);
void cz_option_env_name(const struct cz_option *o, char *buf, size_t cap);
/* The option's value in cfg, in the form a flag would accept. */
void cz_option_format_value(const struct cz_config *cfg, const struct cz_option *o, char *buf,
                            size_t cap);

void cz_config_print(FILE *f, const struct cz_config *cfg);
/* The flag table as Markdown, for the README (checked by tests/unit/test_config.c). */
void cz_config_print_markdown(FILE *f);
/* The catzilla(1) man page (roff), generated from the same table. */
void cz_config_print_man(FILE *f);

#endif
