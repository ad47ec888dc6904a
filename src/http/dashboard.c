/* The dashboard page (dashboard.html), embedded in the binary at build time
 * with the assembler's .incbin: no generated source, no xxd. */
#include "http/dashboard.h"

__asm__(".section .rodata\n"
        ".balign 16\n"
        ".globl cz_dashboard_html_start\n"
        ".hidden cz_dashboard_html_start\n"
        "cz_dashboard_html_start:\n"
        ".incbin \"src/http/dashboard.html\"\n"
        ".globl cz_dashboard_html_end\n"
        ".hidden cz_dashboard_html_end\n"
        "cz_dashboard_html_end:\n"
        ".previous\n");

extern const char cz_dashboard_html_start[], cz_dashboard_html_end[];

const char *cz_dashboard_html(size_t *len)
{
    *len = (size_t)(cz_dashboard_html_end - cz_dashboard_html_start);
    return cz_dashboard_html_start;
}
