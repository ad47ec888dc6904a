/* A JSON API on Catzilla: a small notes store with route parameters, query
 * strings, JSON bodies, a bearer-token hook for writes, CORS from an after
 * hook, and JSON errors from a not-found handler.
 *
 *   make && build/examples/json_api --port 9000 --token s3cret
 *   curl -X POST -H 'Authorization: Bearer s3cret' -d '{"text":"hi"}' localhost:9000/notes
 *   curl localhost:9000/notes/1
 *   curl 'localhost:9000/notes?limit=10'
 *   curl -X DELETE -H 'Authorization: Bearer s3cret' localhost:9000/notes/1
 *
 * Handlers run on every worker at once: the store is shared, behind a
 * mutex (a real service would use its database here).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catzilla/catzilla.h"

const char *malloc_conf = CATZILLA_MALLOC_CONF;

#define MAX_NOTES 1024
#define MAX_TEXT 256

static struct {
    pthread_mutex_t lock;
    unsigned next_id;
    struct note {
        unsigned id;
        char text[MAX_TEXT];
    } notes[MAX_NOTES];
    size_t count;
} store = {.lock = PTHREAD_MUTEX_INITIALIZER, .next_id = 1};

/* JSON string escaping into out (cap bytes); returns the length written. */
static size_t json_escape(char *out, size_t cap, const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 7 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            n += (size_t)snprintf(out + n, cap - n, "\\%c", ch);
        else if (ch < 0x20)
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
        else
            out[n++] = (char)ch;
    }
    out[n] = '\0';
    return n;
}

/* The string value of "text" in a flat JSON object: enough for this
 * example (no nested objects, escapes \" and \\ only).  -EINVAL if absent. */
static int json_text(struct cz_str body, char *out, size_t cap)
{
    const char *end = body.ptr + body.len;
    const char *p = body.ptr;
    const char key[] = "\"text\"";
    while (p && (p = memmem(p, (size_t)(end - p), key, sizeof(key) - 1)) != NULL) {
        p += sizeof(key) - 1;
        while (p < end && (*p == ' ' || *p == ':'))
            p++;
        if (p >= end || *p != '"')
            return -EINVAL;
        size_t n = 0;
        for (p++; p < end && *p != '"'; p++) {
            if (*p == '\\' && p + 1 < end)
                p++;
            if (n + 1 >= cap)
                return -ENOSPC;
            out[n++] = *p;
        }
        out[n] = '\0';
        return p < end ? (int)n : -EINVAL;
    }
    return -EINVAL;
}

static int send_json(cz_response *res, int status, const char *json)
{
    return cz_response_send(res, status, "application/json", json, strlen(json));
}

static int on_create(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    char text[MAX_TEXT];
    int n = json_text(cz_request_body(req), text, sizeof(text));
    if (n < 0)
        return send_json(
            res, n == -ENOSPC ? 413 : 422,
            "{\"error\":\"expected {\\\"text\\\": \\\"...\\\"} (at most 255 bytes)\"}");
    pthread_mutex_lock(&store.lock);
    if (store.count == MAX_NOTES) {
        pthread_mutex_unlock(&store.lock);
        return send_json(res, 507, "{\"error\":\"the store is full\"}");
    }
    struct note *note = &store.notes[store.count++];
    note->id = store.next_id++;
    memcpy(note->text, text, (size_t)n + 1);
    unsigned id = note->id;
    pthread_mutex_unlock(&store.lock);
    char out[64], loc[32];
    snprintf(out, sizeof(out), "{\"id\":%u}", id);
    snprintf(loc, sizeof(loc), "/notes/%u", id);
    cz_response_header(res, "Location", loc);
    return send_json(res, 201, out);
}

/* The note with the id in the path, under the lock; NULL if none. */
static struct note *find_locked(const cz_request *req)
{
    struct cz_str p = cz_request_param(req, "id");
    char *end;
    char buf[16];
    if (p.len == 0 || p.len >= sizeof(buf))
        return NULL;
    memcpy(buf, p.ptr, p.len);
    buf[p.len] = '\0';
    unsigned long id = strtoul(buf, &end, 10);
    if (*end)
        return NULL;
    for (size_t i = 0; i < store.count; i++)
        if (store.notes[i].id == id)
            return &store.notes[i];
    return NULL;
}

static int on_get(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    char out[MAX_TEXT * 6 + 64], esc[MAX_TEXT * 6];
    pthread_mutex_lock(&store.lock);
    struct note *n = find_locked(req);
    if (n) {
        json_escape(esc, sizeof(esc), n->text, strlen(n->text));
        snprintf(out, sizeof(out), "{\"id\":%u,\"text\":\"%s\"}", n->id, esc);
    }
    pthread_mutex_unlock(&store.lock);
    return n ? send_json(res, 200, out) : send_json(res, 404, "{\"error\":\"no such note\"}");
}

static int on_delete(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    pthread_mutex_lock(&store.lock);
    struct note *n = find_locked(req);
    if (n)
        *n = store.notes[--store.count];
    pthread_mutex_unlock(&store.lock);
    if (!n)
        return send_json(res, 404, "{\"error\":\"no such note\"}");
    return cz_response_status(res, 204);
}

/* GET /notes?limit=N: the first N notes (default 20), built in the
 * worker's response arena. */
static int on_list(const cz_request *req, cz_response *res, void *ud)
{
    (void)ud;
    char v[16];
    long limit = 20;
    if (cz_request_query_param(req, "limit", v, sizeof(v)) >= 0) {
        char *end;
        limit = strtol(v, &end, 10);
        if (*end || limit < 0)
            return send_json(res, 400, "{\"error\":\"limit must be a number\"}");
    }
    pthread_mutex_lock(&store.lock);
    size_t n = store.count < (size_t)limit ? store.count : (size_t)limit;
    size_t cap = 16 + n * (MAX_TEXT * 6 + 40);
    char *out = catzilla_response_alloc(cap);
    if (!out) {
        pthread_mutex_unlock(&store.lock);
        return -ENOMEM;
    }
    size_t len = (size_t)snprintf(out, cap, "[");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(out + len, cap - len, "%s{\"id\":%u,\"text\":\"", i ? "," : "",
                                store.notes[i].id);
        len += json_escape(out + len, cap - len, store.notes[i].text, strlen(store.notes[i].text));
        len += (size_t)snprintf(out + len, cap - len, "\"}");
    }
    pthread_mutex_unlock(&store.lock);
    len += (size_t)snprintf(out + len, cap - len, "]");
    int rc = cz_response_send(res, 200, "application/json", out, len);
    catzilla_response_free(out);
    return rc;
}

/* Writes need "Authorization: Bearer <token>"; reads are open. */
static int require_token(const cz_request *req, cz_response *res, void *ud)
{
    const char *token = ud;
    struct cz_str m = cz_request_method(req);
    if ((m.len == 3 && memcmp(m.ptr, "GET", 3) == 0) ||
        (m.len == 7 && !memcmp(m.ptr, "OPTIONS", 7)))
        return CZ_HOOK_CONTINUE;
    struct cz_str auth = cz_request_header(req, "Authorization");
    size_t tl = strlen(token);
    if (auth.len == 7 + tl && memcmp(auth.ptr, "Bearer ", 7) == 0 &&
        memcmp(auth.ptr + 7, token, tl) == 0)
        return CZ_HOOK_CONTINUE;
    cz_response_header(res, "WWW-Authenticate", "Bearer");
    send_json(res, 401, "{\"error\":\"a bearer token is needed to write\"}");
    return CZ_HOOK_DONE;
}

static int cors(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    cz_response_header(res, "Access-Control-Allow-Origin", "*");
    return 0;
}

static int not_found(const cz_request *req, cz_response *res, void *ud)
{
    (void)req;
    (void)ud;
    return send_json(res, 404, "{\"error\":\"no such route\"}");
}

int main(int argc, char **argv)
{
    struct cz_config cfg;
    cz_config_defaults(&cfg);
    char err[256];
    enum cz_config_mode mode;
    if (cz_config_parse_app(&cfg, &argc, argv, &mode, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "json_api: %s\n", err);
        return 2;
    }
    const char *token = "secret";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--token") == 0 && i + 1 < argc) {
            token = argv[++i];
        } else {
            fprintf(stderr, "json_api: unexpected argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (mode == CZ_MODE_HELP) {
        printf("json_api: a notes API on Catzilla.\n  --token TEXT   bearer token for writes "
               "(default: secret)\n\n");
        cz_config_print_help(stdout, argv[0]);
        return 0;
    }
    cz_server *srv;
    if (mode != CZ_MODE_SERVE || cz_server_create(&cfg, &srv) < 0)
        return 2;
    int rc = cz_server_route(srv, "POST", "/notes", on_create, NULL);
    rc = rc ? rc : cz_server_route(srv, "GET", "/notes", on_list, NULL);
    rc = rc ? rc : cz_server_route(srv, "GET", "/notes/{id}", on_get, NULL);
    rc = rc ? rc : cz_server_route(srv, "DELETE", "/notes/{id}", on_delete, NULL);
    rc = rc ? rc : cz_server_hook_before(srv, require_token, (void *)token);
    rc = rc ? rc : cz_server_hook_after(srv, cors, NULL);
    rc = rc ? rc : cz_server_not_found(srv, not_found, NULL);
    if (rc < 0) {
        fprintf(stderr, "json_api: setting up: %s\n", strerror(-rc));
        cz_server_destroy(srv);
        return 1;
    }
    cz_server_handle_signals(srv);
    rc = cz_server_run(srv);
    if (rc < 0)
        fprintf(stderr, "json_api: %s\n", cz_server_error(srv));
    cz_server_destroy(srv);
    return rc < 0 ? 1 : 0;
}
