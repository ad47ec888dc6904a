/* The catzilla binary: flags and CATZILLA_* variables -> config -> server
 * with the built-in routes -> run until SIGINT/SIGTERM.  Exit codes: 0 after
 * a graceful stop, 1 when the server cannot start, 2 for bad usage. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catzilla/catzilla.h"
#include "core/addr.h"
#include "core/config_text.h"
#include "core/log.h"
#include "http/http.h"
#include "http/static.h"

/* jemalloc's process-wide defaults, read before main() (MALLOC_CONF wins).
 * Exported: a sanitizer build's shared jemalloc looks it up dynamically. */
__attribute__((visibility("default"))) const char *malloc_conf = CATZILLA_MALLOC_CONF;

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

/* GET path from ss and wait up to 3 s for the status line.  Returns the
 * status, or -1 (with a message) if there is no answer. */
static int probe(const struct sockaddr_storage *ss, socklen_t len, const char *path)
{
    char where[INET6_ADDRSTRLEN + 16];
    cz_addr_format(ss, where, sizeof(where));
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)ss, len) != 0) {
        fprintf(stderr, "catzilla: --check-health: cannot connect to %s: %s\n", where,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char req[1024];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, where);
    if (n < 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
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
    if (got < 12 || strncmp(buf, "HTTP/1.", 7) != 0) {
        fprintf(stderr, "catzilla: --check-health: no HTTP answer from %s%s\n", where, path);
        return -1;
    }
    return atoi(buf + 9);
}

/* --check-health http://HOST:PORT/PATH (HOST an address literal): exit 0
 * if it answers 200 within 3 s.  For container health checks, where the
 * image has no curl. */
static int check_health_url(const char *url)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    const char *path = strchr(p, '/');
    char hostport[256];
    size_t hl = path ? (size_t)(path - p) : strlen(p);
    struct sockaddr_storage ss;
    socklen_t len;
    if (hl == 0 || hl >= sizeof(hostport)) {
        fprintf(stderr, "catzilla: --check-health: bad URL '%s'\n", url);
        return 2;
    }
    memcpy(hostport, p, hl);
    hostport[hl] = '\0';
    /* The one name everyone writes; both are nine bytes long. */
    if (strncmp(hostport, "localhost", 9) == 0 && (hostport[9] == ':' || hostport[9] == '\0'))
        memcpy(hostport, "127.0.0.1", 9);
    if (cz_addr_parse_hostport(hostport, &ss, &len) < 0 &&
        cz_addr_parse(hostport, 80, &ss, &len) < 0) {
        fprintf(stderr,
                "catzilla: --check-health: '%s' is not ADDR:PORT (an IPv4 or [IPv6] "
                "address; names are not resolved)\n",
                hostport);
        return 2;
    }
    int st = probe(&ss, len, path ? path : "/");
    if (st == 200)
        return 0;
    if (st > 0)
        fprintf(stderr, "catzilla: --check-health: %s answered %d\n", url, st);
    return 1;
}

/* The whole of a /proc file (NUL-separated lists), or NULL. */
static char *read_proc(pid_t pid, const char *what, size_t *len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* The checked server's arguments and environment: cfg points into them, and
 * its CATZILLA_* entries are in our environment, for as long as we run. */
static char *held_args, *held_env;

/* The configuration pid runs with: its arguments and CATZILLA_* variables,
 * parsed as it parsed them.  0, or -1 if pid is not a catzilla server. */
static int config_of(pid_t pid, struct cz_config *cfg)
{
    size_t alen = 0, elen = 0;
    free(held_args);
    held_args = read_proc(pid, "cmdline", &alen);
    char *env = held_args ? read_proc(pid, "environ", &elen) : NULL;
    if (!held_args || !env) {
        free(env);
        return -1;
    }
    /* Its CATZILLA_* variables replace ours. */
    for (char **e = environ; *e;) {
        if (strncmp(*e, "CATZILLA_", 9) == 0) {
            char name[128];
            snprintf(name, sizeof(name), "%.*s", (int)strcspn(*e, "="), *e);
            unsetenv(name);
        } else {
            e++;
        }
    }
    for (char *e = env; e < env + elen; e += strlen(e) + 1)
        if (strncmp(e, "CATZILLA_", 9) == 0)
            putenv(e);
    free(held_env); /* after the unsetenv: none of its strings is in environ now */
    held_env = env;
    char *argv[256];
    int argc = 0;
    for (char *a = held_args; a < held_args + alen && argc < 255; a += strlen(a) + 1)
        argv[argc++] = a;
    argv[argc] = NULL;
    enum cz_config_mode mode;
    char err[512];
    cz_config_defaults(cfg);
    if (cz_config_parse(cfg, argc, argv, &mode, NULL, err, sizeof(err)) < 0 ||
        mode != CZ_MODE_SERVE)
        return -1; /* not a server (another health check, say) */
    return 0;
}

static bool is_catzilla(pid_t pid)
{
    size_t len;
    char *comm = read_proc(pid, "comm", &len);
    bool yes = comm && strcmp(comm, "catzilla\n") == 0;
    free(comm);
    return yes;
}

/* A catzilla process started to serve (not a health check or --help). */
static bool serves(pid_t pid)
{
    static const char *const modes[] = {"--check-health",  "--help",    "-h",
                                        "--version",       "-V",        "--print-config",
                                        "--help-markdown", "--help-man"};
    size_t len;
    char *args = read_proc(pid, "cmdline", &len);
    bool yes = args != NULL;
    for (char *a = args; yes && a < args + len; a += strlen(a) + 1)
        for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
            if (strncmp(a, modes[m], strlen(modes[m])) == 0 &&
                (a[strlen(modes[m])] == '\0' || a[strlen(modes[m])] == '='))
                yes = false;
    free(args);
    return yes;
}

/* The server to check: PID 1 in a container, else the lowest-numbered
 * catzilla server of our user. */
static pid_t find_server(void)
{
    if (is_catzilla(1) && serves(1))
        return 1;
    DIR *d = opendir("/proc");
    pid_t best = -1;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        struct stat st;
        char path[300];
        snprintf(path, sizeof(path), "/proc/%s", de->d_name);
        if (*end || pid <= 1 || pid == getpid() || (best > 0 && pid > best) ||
            stat(path, &st) != 0 || st.st_uid != getuid() || !is_catzilla((pid_t)pid) ||
            !serves((pid_t)pid))
            continue;
        best = (pid_t)pid;
    }
    if (d)
        closedir(d);
    return best;
}

/* --check-health auto (or pid:N): the health route of the server running
 * here (or of process N), wherever its flags put it; with --admin off, any
 * answer below 500 from /. */
static int check_health_auto(pid_t only)
{
    struct cz_config cfg;
    pid_t pid = only > 0 ? only : find_server();
    if (pid > 0 && config_of(pid, &cfg) < 0)
        pid = -1;
    if (pid < 0) {
        if (only > 0)
            fprintf(stderr, "catzilla: --check-health pid:%d: not a catzilla server\n", (int)only);
        else
            fprintf(stderr, "catzilla: --check-health auto: no catzilla server of this user "
                            "runs here\n");
        return 1;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    const char *path = "/_catzilla/health";
    if (strcmp(cfg.admin, "off") != 0 && strcmp(cfg.admin, "same") != 0) {
        cz_addr_parse_hostport(cfg.admin, &ss, &len);
    } else {
        cz_addr_parse(cfg.bind, (int)cfg.port, &ss, &len);
        if (strcmp(cfg.admin, "off") == 0)
            path = "/";
    }
    if (cz_addr_port(&ss) == 0) {
        fprintf(stderr,
                "catzilla: --check-health auto: server %d listens on port 0 (any free "
                "port): give it a fixed --port / --admin to check it\n",
                (int)pid);
        return 1;
    }
    cz_addr_any_to_loopback(&ss);
    int st = probe(&ss, len, path);
    if (st == 200 || (st > 0 && st < 500 && strcmp(path, "/") == 0))
        return 0;
    if (st > 0) {
        char where[INET6_ADDRSTRLEN + 16];
        cz_addr_format(&ss, where, sizeof(where));
        fprintf(stderr, "catzilla: --check-health auto: %s%s answered %d\n", where, path, st);
    }
    return 1;
}

static int check_health(const char *arg)
{
    if (strcmp(arg, "auto") == 0)
        return check_health_auto(0);
    if (strncmp(arg, "pid:", 4) == 0) {
        char *end;
        long pid = strtol(arg + 4, &end, 10);
        if (*end || pid <= 0 || pid > INT_MAX) {
            fprintf(stderr, "catzilla: --check-health: bad pid in '%s'\n", arg);
            return 2;
        }
        return check_health_auto((pid_t)pid);
    }
    return check_health_url(arg);
}

/* --print-config shows what the server would run with: the worker count
 * and docroot resolved. */
static void print_effective(struct cz_config cfg)
{
    char found[PATH_MAX], root[PATH_MAX];
    cfg.threads = (long)server_worker_count(&cfg);
    if (!cfg.root || !*cfg.root)
        cfg.root = cz_static_default_root(found, sizeof(found)) == 0 ? found : "(built-in page)";
    if (realpath(cfg.root, root))
        cfg.root = root;
    cz_config_print(stdout, &cfg);
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
        print_effective(cfg);
        return 0;
    case CZ_MODE_CHECK_HEALTH:
        return check_health(mode_arg);
    case CZ_MODE_HELP_MARKDOWN:
        cz_config_print_markdown(stdout);
        return 0;
    case CZ_MODE_HELP_MAN:
        cz_config_print_man(stdout);
        return 0;
    default:
        break;
    }

    cz_log_set_level((enum cz_log_level)cfg.log_level);
    /* The binary serves its bundled docroot by default (the library serves
     * files only from a root it is given); without one, a page at /. */
    static char bundled[PATH_MAX];
    bool no_docroot = false;
    if (!cfg.root || !*cfg.root) {
        if (cz_static_default_root(bundled, sizeof(bundled)) == 0) {
            cfg.root = bundled;
        } else {
            no_docroot = true;
            cz_log_warn("no --root given and the bundled docroot (public/) was not found; "
                        "serving a built-in page at /");
        }
    }
    cz_server *srv;
    int rc = cz_server_create(&cfg, &srv);
    if (rc < 0) {
        fprintf(stderr, "catzilla: %s\n", strerror(-rc));
        return 1;
    }
    rc = builtin_register(srv);
    if (rc == 0 && no_docroot)
        rc = builtin_register_fallback_page(srv);
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
