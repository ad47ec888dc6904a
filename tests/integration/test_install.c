/* `make install` as a packager and an application developer use it: the
 * staged tree (make test installs into $CATZILLA_STAGE with PREFIX=/usr) has
 * every file, the libraries show only the public API, and a program built
 * there with `pkg-config --cflags --libs catzilla` links the shared library
 * (or the static one), defines names the library uses internally, and
 * serves. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/harness.h"
#include "catzilla/catzilla.h"

/* A program of the embedder's own.  Its conn_close, http_reason and
 * request_parse share names with the library's internals: with those
 * internals hidden it links, and each side calls its own. */
static const char program[] =
    "#include <catzilla/catzilla.h>\n"
    "#include <pthread.h>\n"
    "#include <stdio.h>\n"
    "void conn_close(void *c);\n"
    "void conn_close(void *c) { (void)c; }\n"
    "const char *http_reason(int s);\n"
    "const char *http_reason(int s) { (void)s; return \"mine\"; }\n"
    "int request_parse(void);\n"
    "int request_parse(void) { return 0; }\n"
    "static int hi(const cz_request *q, cz_response *r, void *u)\n"
    "{\n"
    "    (void)q; (void)u;\n"
    "    return cz_response_send(r, 200, \"text/plain\", http_reason(0), 4);\n"
    "}\n"
    "static void *watch(void *srv)\n"
    "{\n"
    "    printf(\"%d\\n\", cz_server_wait_listening(srv, 10000));\n"
    "    fflush(stdout);\n"
    "    return NULL;\n"
    "}\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    struct cz_config cfg;\n"
    "    cz_config_defaults(&cfg);\n"
    "    enum cz_config_mode mode;\n"
    "    const char *arg;\n"
    "    char err[256];\n"
    "    if (cz_config_parse(&cfg, argc, argv, &mode, &arg, err, sizeof(err)) < 0) {\n"
    "        fprintf(stderr, \"%s\\n\", err);\n"
    "        return 2;\n"
    "    }\n"
    "    cz_server *srv;\n"
    "    if (cz_server_create(&cfg, &srv) < 0 ||\n"
    "        cz_server_route(srv, \"GET\", \"/hi\", hi, NULL) < 0)\n"
    "        return 1;\n"
    "    cz_server_handle_signals(srv);\n"
    "    pthread_t t;\n"
    "    pthread_create(&t, NULL, watch, srv);\n"
    "    int rc = cz_server_run(srv);\n"
    "    pthread_join(t, NULL);\n"
    "    cz_server_destroy(srv);\n"
    "    return rc < 0 ? 1 : 0;\n"
    "}\n";

static char stage[512], work[] = "/tmp/cz-install-XXXXXX";

static void setup(void)
{
    const char *s = getenv("CATZILLA_STAGE");
    if (!s || !*s)
        cr_skip_test("CATZILLA_STAGE is not set (make test stages an install there)");
    snprintf(stage, sizeof(stage), "%s", s);
    strcpy(work, "/tmp/cz-install-XXXXXX");
    cr_assert_not_null(mkdtemp(work));
}

static void teardown(void)
{
    if (work[sizeof("/tmp/cz-install-") - 1] != 'X')
        rm_tree(work);
}

/* Run a shell command; its output (both streams) is kept for messages. */
static int sh(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    char full[4200];
    snprintf(full, sizeof(full), "( %s ) 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool exists(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/usr/%s", stage, rel);
    struct stat st;
    return lstat(path, &st) == 0;
}

TestSuite(install, .init = setup, .fini = teardown, .timeout = 120);

Test(install, the_tree_has_every_file)
{
    static const char *const files[] = {
        "bin/catzilla",
        "lib/libcatzilla.so",
        "lib/libcatzilla.so." CATZILLA_VERSION,
        "lib/libcatzilla.a",
        "lib/pkgconfig/catzilla.pc",
        "include/catzilla/catzilla.h",
        "include/catzilla/config.h",
        "include/catzilla/memory.h",
        "include/catzilla/export.h",
        "share/man/man1/catzilla.1",
        "share/catzilla/public/index.html",
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        cr_expect(exists(files[i]), "%s/usr/%s is missing", stage, files[i]);

    char out[4096];
    cr_assert_eq(sh(out, sizeof(out), "readelf -d %s/usr/lib/libcatzilla.so", stage), 0, "%s", out);
    cr_expect(strstr(out, "Library soname: [libcatzilla.so.0.3]"), "soname:\n%s", out);
    /* The soname's link is there for the dynamic loader. */
    cr_expect(exists("lib/libcatzilla.so.0.3"));

    /* The man page comes from the option table: every flag is in it, and
     * man(1) renders it without warnings. */
    cr_assert_eq(sh(out, sizeof(out),
                    "LC_ALL=C groff -ww -man -Tutf8 %s/usr/share/man/man1/catzilla.1 "
                    ">/dev/null",
                    stage),
                 0, "%s", out);
    cr_expect_eq(out[0], '\0', "groff warns:\n%s", out);
    size_t n;
    const struct cz_option *opts = cz_config_options(&n);
    for (size_t i = 0; i < n; i++) {
        char flag[80];
        snprintf(flag, sizeof(flag), "%s", opts[i].field);
        for (char *p = flag; *p; p++)
            if (*p == '_')
                *p = '-';
        cr_expect_eq(sh(out, sizeof(out),
                        "MANWIDTH=200 man -l %s/usr/share/man/man1/catzilla.1 2>/dev/null | "
                        "grep -q -- '--%s'",
                        stage, flag),
                     0, "--%s is not in the man page", flag);
    }

    /* The installed binary finds the installed docroot. */
    cr_expect_eq(sh(out, sizeof(out), "%s/usr/bin/catzilla --print-config | grep '^root='", stage),
                 0, "%s", out);
    cr_expect(strstr(out, "/usr/share/catzilla/public"), "root: %s", out);
}

/* Only cz_* and catzilla_* leave either library: no internals, no llhttp,
 * no malloc_conf. */
Test(install, only_the_public_api_is_exported)
{
    static const struct {
        const char *what, *nm;
    } libs[] = {{"the shared library", "nm -D --defined-only %s/usr/lib/libcatzilla.so"},
                {"the static library", "nm -g --defined-only %s/usr/lib/libcatzilla.a"}};
    char out[16384], nm[1024];
    for (size_t i = 0; i < 2; i++) {
        snprintf(nm, sizeof(nm), libs[i].nm, stage);
        cr_assert_eq(sh(out, sizeof(out),
                        "%s | awk 'NF == 3 {print $3}' | grep -v -e '^cz_' -e '^catzilla_' || true",
                        nm),
                     0);
        cr_expect_eq(out[0], '\0', "%s exports:\n%s", libs[i].what, out);
    }
    cr_assert_eq(sh(out, sizeof(out),
                    "nm -D --defined-only %s/usr/lib/libcatzilla.so | "
                    "grep -c ' T cz_server_create$'",
                    stage),
                 0, "cz_server_create is not exported: %s", out);
}

/* Build the program in the staged tree with pkg-config (libs: the flags to
 * link with), start it, GET /hi, stop it. */
static void build_and_serve(const char *libs_cmd, bool shared)
{
    char out[8192], path[600];
    snprintf(path, sizeof(path), "%s/app.c", work);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(program, f);
    fclose(f);

    const char *extra = getenv("CATZILLA_TEST_CFLAGS");
    char pc_env[1400];
    snprintf(pc_env, sizeof(pc_env),
             "PKG_CONFIG_SYSROOT_DIR=%s PKG_CONFIG_LIBDIR=%s/usr/lib/pkgconfig", stage, stage);
    int rc = sh(out, sizeof(out),
                "cd %s && %s; cc -Wall -Werror %s -o app app.c $(%s pkg-config --cflags catzilla) "
                "$(%s %s)",
                work, "true", extra ? extra : "", pc_env, pc_env, libs_cmd);
    cr_assert_eq(rc, 0, "building against the installed tree failed:\n%s", out);
    rc = sh(out, sizeof(out), "readelf -d %s/app | grep NEEDED", work);
    cr_expect_eq(strstr(out, "libcatzilla.so.0.3") != NULL, shared, "linked libraries:\n%s", out);

    if (!io_uring_usable())
        cr_skip_test("io_uring is not available here");
    /* Start it with the installed library on the loader's path. */
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        char ld[600], app[600];
        snprintf(ld, sizeof(ld), "LD_LIBRARY_PATH=%s/usr/lib", stage);
        putenv(ld);
        snprintf(app, sizeof(app), "%s/app", work);
        execl(app, app, "--port", "0", "--bind", "127.0.0.1", "--threads", "1", "--log-level",
              "error", (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    char line[32] = {0};
    FILE *in = fdopen(pipefd[0], "r");
    bool got = fgets(line, sizeof(line), in) != NULL;
    fclose(in);
    int port = got ? atoi(line) : -1;
    if (port <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        cr_assert_fail("the installed program did not listen (got '%s')", line);
    }
    struct response r = request_once(port, "GET /hi HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_expect_eq(r.status, 200);
    /* The library's status line used its own reason phrase, the handler the
     * program's function of the same name. */
    cr_expect(r.head && strncmp(r.head, "HTTP/1.1 200 OK\r\n", 17) == 0, "head: %s", r.head);
    cr_expect(r.body && r.body_len == 4 && memcmp(r.body, "mine", 4) == 0);
    response_free(&r);
    kill(pid, SIGTERM);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
}

Test(install, a_program_links_the_shared_library_with_pkg_config)
{
    build_and_serve("pkg-config --libs catzilla", true);
}

/* The static archive: the same program, the same pkg-config file (--static
 * adds the private libraries), the archive named instead of the .so. */
Test(install, a_program_links_the_static_library)
{
    build_and_serve("pkg-config --static --libs catzilla | sed 's/-lcatzilla/-l:libcatzilla.a/'",
                    false);
}
