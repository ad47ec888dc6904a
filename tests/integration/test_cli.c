/* The binary's command line: exit codes, short flags, the effective
 * configuration, and --check-health auto finding a running server. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/harness.h"

/* Run the binary with args (one shell string); output (both streams) to out. */
static int run(const char *args, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s %s 2>&1", getenv("CATZILLA_BIN"), args);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(cli, bad_values_exit_2_before_starting)
{
    static const struct {
        const char *args, *says;
    } cases[] = {
        {"--bind localhost --port 0", "host names are not resolved"},
        {"--port 0 --mime-types /nonexistent", "--mime-types /nonexistent"},
        {"--port 0 --admin 127.0.0.1", "--admin"},
        {"--port 0 --access-log-format xml", "--access-log-format"},
        {"--port 0 --access-log /nonexistent-dir/a.log", "/nonexistent-dir"},
        {"--threads many", "--threads"},
        {"-x", "unexpected argument"},
    };
    char out[4096];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_expect_eq(run(cases[i].args, out, sizeof(out)), 2, "%s: %s", cases[i].args, out);
        cr_expect(strstr(out, cases[i].says), "%s: %s", cases[i].args, out);
        cr_expect(!strstr(out, "listening"), "%s started: %s", cases[i].args, out);
    }
}

Test(cli, short_flags_and_help)
{
    char out[65536];
    cr_expect_eq(run("-V", out, sizeof(out)), 0);
    cr_expect(strncmp(out, "catzilla ", 9) == 0, "%s", out);
    cr_expect_eq(run("-h", out, sizeof(out)), 0);
    cr_expect(strstr(out, "--threads N") && strstr(out, "--bind ADDR"), "%s", out);
}

Test(cli, print_config_is_effective)
{
    char out[65536];
    cr_assert_eq(run("--print-config", out, sizeof(out)), 0, "%s", out);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    char want[64];
    snprintf(want, sizeof(want), "\nthreads=%ld\n", cpus);
    cr_expect(strncmp(out, want + 1, strlen(want) - 1) == 0 || strstr(out, want),
              "want %s in %s", want + 1, out);
    const char *root = strstr(out, "\nroot=");
    cr_assert(root, "%s", out);
    cr_expect(root[6] == '/' || strncmp(root + 6, "(built-in page)", 15) == 0, "%s", root);
    cr_expect_eq(run("--print-config --threads 3 --root /tmp", out, sizeof(out)), 0);
    cr_expect(strstr(out, "threads=3\n") && strstr(out, "root=/tmp\n"), "%s", out);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    cr_assert(bind(fd, (struct sockaddr *)&sa, sl) == 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    return ntohs(sa.sin_port);
}

/* A container's HEALTHCHECK cannot see the server's flags: auto reads them
 * (and its CATZILLA_* variables) from /proc and probes the right place. */
Test(cli, check_health_auto_follows_the_flags)
{
    char out[4096];
    char port[16], admin[32];
    snprintf(port, sizeof(port), "%d", free_port());
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", free_port());
    /* Health is only on the admin listener: probing the main port fails.
     * (pid:N names the server: other tests' servers may run meanwhile, and
     * auto would take the lowest-numbered one.) */
    struct server s;
    server_start(&s, (const char *const[]){"--port", port, "--admin", admin, NULL});
    char arg[128];
    snprintf(arg, sizeof(arg), "--check-health pid:%d", (int)s.pid);
    cr_expect_eq(run(arg, out, sizeof(out)), 0, "%s", out);
    snprintf(arg, sizeof(arg), "--check-health http://127.0.0.1:%s/_catzilla/health", port);
    cr_expect_eq(run(arg, out, sizeof(out)), 1, "%s", out);
    pid_t gone = s.pid;
    server_stop_checked(&s);
    snprintf(arg, sizeof(arg), "--check-health pid:%d", (int)gone);
    cr_expect_eq(run(arg, out, sizeof(out)), 1);
    cr_expect(strstr(out, "not a catzilla server"), "%s", out);
}

/* Addresses in logs: IPv6 bracketed, so the port is unambiguous. */
Test(cli, ipv6_addresses_are_bracketed)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool v6 = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    if (!v6)
        cr_skip_test("no IPv6 loopback here");
    struct server s;
    server_start(&s, (const char *const[]){"--bind", "::1", "--admin", "[::1]:0", NULL});
    char *log = server_log(&s);
    cr_expect(strstr(log, "listening on [::1]:") && strstr(log, "admin on [::1]:"), "%s", log);
    free(log);
    server_stop_checked(&s);
}
