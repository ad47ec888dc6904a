/* Embedding Catzilla: a tiny API with a route parameter, a JSON body built in
 * the worker's response arena, and graceful stop on SIGINT/SIGTERM.
 *
 *   make && build/examples/hello --port 9000
 *   curl localhost:9000/hello/world      -> {"hello":"world","worker":0}
 *   curl -X POST -d hi localhost:9000/count
 *   build/examples/hello --label got --port 9000   # a flag of its own, next to Catzilla's
 */
#include <stdio.h>
#include <string.h>

#include "catzilla/catzilla.h"

/* jemalloc's defaults for this process: the ones the catzilla binary uses. */
const char *malloc_conf = CATZILLA_MALLOC_CONF;

static int on_hello(const cz_request *req, cz_response *res, void *user_data)
{
    (void)user_data;
    struct cz_str name = cz_request_param(req, "name");
    /* Scratch for the body comes from this worker's response arena. */
    size_t cap = name.len * 6 + 64;
    char *body = catzilla_response_alloc(cap);
    if (!body)
        return -12; /* -ENOMEM: the server answers 503 */
    size_t n = (size_t)snprintf(body, cap, "{\"hello\":\"");
    for (size_t i = 0; i < name.len; i++) {
        unsigned char ch = (unsigned char)name.ptr[i];
        if (ch == '"' || ch == '\\' || ch < 0x20)
            n += (size_t)snprintf(body + n, cap - n, "\\u%04x", ch);
        else
            body[n++] = (char)ch;
    }
    n += (size_t)snprintf(body + n, cap - n, "\",\"worker\":%u}", cz_request_worker(req));
    int rc = cz_response_send(res, 200, "application/json", body, n);
    catzilla_response_free(body);
    return rc;
}

/* Per-worker state would live in thread-local storage; user_data here is
 * shared and read-only. */
static int on_count(const cz_request *req, cz_response *res, void *user_data)
{
    const char *label = user_data;
    char out[128];
    int n = snprintf(out, sizeof(out), "%s: %zu bytes\n", label, cz_request_body(req).len);
    return cz_response_send(res, 200, "text/plain", out, (size_t)n);
}

int main(int argc, char **argv)
{
    struct cz_config cfg;
    cz_config_defaults(&cfg);
    char err[256];
    enum cz_config_mode mode;
    /* Catzilla's flags are applied; ours (--label TEXT) come back in argv. */
    if (cz_config_parse_app(&cfg, &argc, argv, &mode, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "hello: %s\n", err);
        return 2;
    }
    const char *label = "received";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--label") == 0 && i + 1 < argc) {
            label = argv[++i];
        } else {
            fprintf(stderr, "hello: unexpected argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (mode == CZ_MODE_HELP) {
        printf("hello: a Catzilla embedding example.\n  --label TEXT   what /count says "
               "(default: received)\n\n");
        cz_config_print_help(stdout, argv[0]);
        return 0;
    }
    if (mode != CZ_MODE_SERVE) {
        fprintf(stderr, "hello: only --help is supported among Catzilla's modes\n");
        return 2;
    }
    cz_server *srv;
    if (cz_server_create(&cfg, &srv) < 0)
        return 1;
    if (cz_server_route(srv, "GET", "/hello/{name}", on_hello, NULL) < 0 ||
        cz_server_route(srv, "POST", "/count", on_count, (void *)label) < 0 ||
        cz_server_admin_routes(srv) < 0) {
        fprintf(stderr, "hello: cannot register routes\n");
        cz_server_destroy(srv);
        return 1;
    }
    cz_server_handle_signals(srv);
    int rc = cz_server_run(srv);
    if (rc < 0)
        fprintf(stderr, "hello: %s\n", cz_server_error(srv));
    cz_server_destroy(srv);
    return rc < 0 ? 1 : 0;
}
