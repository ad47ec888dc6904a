/* The catzilla binary: flags and CATZILLA_* variables -> config -> server
 * with the built-in routes -> run until SIGINT/SIGTERM.  Exit codes: 0 after
 * a graceful stop, 1 when the server cannot start, 2 for bad usage. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "catzilla/catzilla.h"
#include "core/config_text.h"
#include "core/log.h"
#include "http/http.h"

/* Tests read this to know whether the binary can inject faults (make FAULT=1). */
#if CZ_FAULT_INJECTION
#define VERSION_FAULT " (fault injection)"
#else
#define VERSION_FAULT ""
#endif
#if CZ_LEAK_CHECK
#define VERSION_EXTRA VERSION_FAULT " (leak check)"
#else
#define VERSION_EXTRA VERSION_FAULT
#endif

/* --check-health http://HOST:PORT/PATH: exit 0 if it answers 200 within 3 s.
 * For container health checks, where the image has no curl. */
static int check_health(const char *url)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    char host[256], port[16] = "80";
    const char *path = strchr(p, '/');
    size_t hl = path ? (size_t)(path - p) : strlen(p);
    if (hl == 0 || hl >= sizeof(host)) {
        fprintf(stderr, "catzilla: --check-health: bad URL '%s'\n", url);
        return 2;
    }
    memcpy(host, p, hl);
    host[hl] = '\0';
    char *colon = strrchr(host, ':');
    if (colon && !strchr(colon, ']')) {
        snprintf(port, sizeof(port), "%s", colon + 1);
        *colon = '\0';
    }
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = '\0';
    }
    if (!path)
        path = "/";
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        fprintf(stderr, "catzilla: --check-health: cannot resolve '%s'\n", host);
        return 1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok = fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    freeaddrinfo(ai);
    if (!ok) {
        fprintf(stderr, "catzilla: --check-health: cannot connect to %s:%s\n", host, port);
        if (fd >= 0)
            close(fd);
        return 1;
    }
    char req[1024];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, host);
    if (n < 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n) {
        close(fd);
        return 1;
    }
    char buf[64];
    size_t got = 0;
    while (got < 12) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 3000) <= 0)
            break;
        ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    if (got >= 12 && strncmp(buf, "HTTP/1.", 7) == 0 && strncmp(buf + 9, "200", 3) == 0)
        return 0;
    fprintf(stderr, "catzilla: --check-health: %s did not answer 200\n", url);
    return 1;
}

int main(int argc, char **argv)
{
    struct cz_config cfg;
    cz_config_defaults(&cfg);
    enum cz_config_mode mode;
    const char *mode_arg = NULL;
    char err[512];
    if (cz_config_parse(&cfg, argc, argv, &mode, &mode_arg, err, sizeof(err)) < 0) {
        fprintf(stderr, "catzilla: %s\n", err);
        return 2;
    }
    switch (mode) {
    case CZ_MODE_HELP:
        cz_config_print_help(stdout, argv[0]);
        return 0;
    case CZ_MODE_VERSION:
        printf("catzilla %s (%s, liburing, llhttp %d.%d.%d)%s\n", CATZILLA_VERSION,
               catzilla_memory_allocator(), LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR,
               LLHTTP_VERSION_PATCH, VERSION_EXTRA);
        return 0;
    case CZ_MODE_PRINT_CONFIG:
        cz_config_print(stdout, &cfg);
        return 0;
    case CZ_MODE_CHECK_HEALTH:
        return check_health(mode_arg);
    case CZ_MODE_HELP_MARKDOWN:
        cz_config_print_markdown(stdout);
        return 0;
    default:
        break;
    }

    cz_log_set_level((enum cz_log_level)cfg.log_level);
    cz_server *srv;
    int rc = cz_server_create(&cfg, &srv);
    if (rc < 0) {
        fprintf(stderr, "catzilla: %s\n", strerror(-rc));
        return 1;
    }
    rc = builtin_register(srv);
    if (rc < 0) {
        cz_log_error("registering built-in routes: %s", strerror(-rc));
        cz_server_destroy(srv);
        return 1;
    }
    cz_server_handle_signals(srv);
    rc = cz_server_run(srv);
    if (rc < 0)
        cz_log_error("%s", *cz_server_error(srv) ? cz_server_error(srv) : strerror(-rc));
    cz_server_destroy(srv);
    return rc < 0 ? 1 : 0;
}
