/* The flag table: every option well-formed, parsing from flags and
 * environment, validation messages, and the README's flag table generated
 * from the same table (so the two cannot drift). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catzilla/config.h"
#include "core/config_text.h"

Test(config, table_is_well_formed)
{
    size_t n;
    const struct cz_option *o = cz_config_options(&n);
    cr_assert_gt(n, 20);
    struct cz_config def;
    cz_config_defaults(&def);
    for (size_t i = 0; i < n; i++) {
        cr_assert(o[i].help && strlen(o[i].help) > 5, "%s has no help", o[i].field);
        for (size_t j = i + 1; j < n; j++)
            cr_assert_str_neq(o[i].field, o[j].field);
        if (o[i].type == CZ_OPT_INT || o[i].type == CZ_OPT_POW2 || o[i].type == CZ_OPT_SIZE ||
            o[i].type == CZ_OPT_DURATION) {
            long v = *(const long *)((const char *)&def + o[i].offset);
            cr_assert(v >= o[i].min && v <= o[i].max, "%s default %ld out of range", o[i].field,
                      v);
            if (o[i].type == CZ_OPT_POW2)
                cr_assert_eq(v & (v - 1), 0, "%s default not a power of two", o[i].field);
        }
    }
    cr_assert_eq(def.port, 8080);
    cr_assert_str_eq(def.bind, "0.0.0.0");
}

static int parse(struct cz_config *c, char *err, const char *const *args)
{
    char *argv[32] = {"catzilla"};
    int argc = 1;
    for (int i = 0; args[i]; i++)
        argv[argc++] = (char *)args[i];
    cz_config_defaults(c);
    return cz_config_parse(c, argc, argv, NULL, NULL, err, 256);
}

Test(config, flags_with_units)
{
    struct cz_config c;
    char err[256];
    cr_assert_eq(parse(&c, err,
                       (const char *const[]){"--port", "9000", "--max-body-size=2m",
                                             "--header-timeout", "250ms", "--keepalive-timeout",
                                             "7", "--no-pin", "--zerocopy", "on", "--root",
                                             "/srv", NULL}),
                 0, "%s", err);
    cr_assert_eq(c.port, 9000);
    cr_assert_eq(c.max_body_size, 2 * 1024 * 1024);
    cr_assert_eq(c.header_timeout, 250);
    cr_assert_eq(c.keepalive_timeout, 7000);
    cr_assert(c.no_pin);
    cr_assert_eq(c.zerocopy, CZ_ZEROCOPY_ON);
    cr_assert_str_eq(c.root, "/srv");
}

Test(config, bad_values_have_clear_messages)
{
    struct cz_config c;
    char err[256];
    static const struct {
        const char *args[4];
        const char *msg;
    } cases[] = {
        {{"--port", "70000"}, "out of range"},
        {{"--port", "80x"}, "not a valid number"},
        {{"--recv-buffers", "1000"}, "not a power of two"},
        {{"--max-body-size", "lots"}, "not a valid size"},
        {{"--header-timeout", "1h"}, "not a valid duration"},
        {{"--zerocopy", "maybe"}, "auto|on|off"},
        {{"--no-pin=perhaps"}, "expected true or false"},
        {{"--nope"}, "unknown option '--nope'"},
        {{"--port"}, "needs a value"},
        {{"stray"}, "unexpected argument"},
        {{"--file-cache-size", "1m", "--file-cache-max-file", "2m"}, "must not exceed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[5] = {cases[i].args[0], cases[i].args[1], cases[i].args[2],
                               cases[i].args[3], NULL};
        cr_assert_eq(parse(&c, err, args), -EINVAL, "case %zu accepted", i);
        cr_assert_not_null(strstr(err, cases[i].msg), "case %zu: '%s'", i, err);
    }
}

Test(config, environment_then_flags)
{
    struct cz_config c;
    char err[256];
    setenv("CATZILLA_PORT", "7000", 1);
    setenv("CATZILLA_NO_BUILTIN_ROUTES", "true", 1);
    cr_assert_eq(parse(&c, err, (const char *const[]){NULL}), 0, "%s", err);
    cr_assert_eq(c.port, 7000);
    cr_assert(c.no_builtin_routes);
    cr_assert_eq(parse(&c, err, (const char *const[]){"--port", "7001", NULL}), 0);
    cr_assert_eq(c.port, 7001, "flags win over the environment");
    setenv("CATZILLA_PORT", "seven", 1);
    cr_assert_eq(parse(&c, err, (const char *const[]){NULL}), -EINVAL);
    cr_assert_not_null(strstr(err, "CATZILLA_PORT"), "%s", err);
    unsetenv("CATZILLA_PORT");
    unsetenv("CATZILLA_NO_BUILTIN_ROUTES");
}

Test(config, modes)
{
    struct cz_config c;
    char err[256];
    enum cz_config_mode mode;
    const char *arg = NULL;
    char *argv[] = {"catzilla", "--check-health", "http://127.0.0.1:1/x", NULL};
    cz_config_defaults(&c);
    cr_assert_eq(cz_config_parse(&c, 3, argv, &mode, &arg, err, sizeof(err)), 0);
    cr_assert_eq(mode, CZ_MODE_CHECK_HEALTH);
    cr_assert_str_eq(arg, "http://127.0.0.1:1/x");
}

Test(config, short_help_and_version)
{
    struct cz_config c;
    char err[256];
    enum cz_config_mode mode;
    char *h[] = {"catzilla", "-h", NULL}, *v[] = {"catzilla", "-V", NULL};
    cz_config_defaults(&c);
    cr_assert_eq(cz_config_parse(&c, 2, h, &mode, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(mode, CZ_MODE_HELP);
    cr_assert_eq(cz_config_parse(&c, 2, v, &mode, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(mode, CZ_MODE_VERSION);
}

/* Every value the server would refuse at start is refused here, with exit
 * status 2 in main. */
Test(config, addresses_and_operations_are_validated)
{
    struct cz_config c;
    char err[256];
    static const struct {
        const char *flag, *value, *says;
    } bad[] = {
        {"--bind", "localhost", "host names are not resolved"},
        {"--bind", "1.2.3", "not an IPv4 or IPv6 address"},
        {"--admin", "nowhere", "not off, same or ADDR:PORT"},
        {"--admin", "127.0.0.1", "not off, same or ADDR:PORT"},
        {"--admin", "127.0.0.1:70000", "not off, same or ADDR:PORT"},
        {"--admin", "::1:9090", "not off, same or ADDR:PORT"},
        {"--admin", "0.0.0.0:8080", "overlaps the main listener"},
        {"--admin", "127.0.0.1:8080", "overlaps the main listener"},
        {"--access-log-format", "xml", "not combined or json"},
        {"--access-log", "/nonexistent-dir/x.log", "directory /nonexistent-dir"},
        {"--access-log", "", "empty"},
        {"--mime-types", "/nonexistent/mime.types", "No such file"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(parse(&c, err, (const char *const[]){bad[i].flag, bad[i].value, NULL}),
                     -EINVAL, "%s %s accepted", bad[i].flag, bad[i].value);
        cr_expect(strstr(err, bad[i].says), "%s %s: %s", bad[i].flag, bad[i].value, err);
    }
    static const char *const good[][2] = {
        {"--bind", "::1"},          {"--bind", "[::1]"},         {"--admin", "[::1]:9090"},
        {"--admin", "same"},        {"--admin", "off"},          {"--admin", "127.0.0.1:0"},
        {"--admin", "10.1.2.3:9091"}, {"--access-log", "-"},     {"--access-log", "/tmp/x.log"},
        {"--access-log-format", "json"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_expect_eq(parse(&c, err, (const char *const[]){good[i][0], good[i][1], NULL}), 0,
                     "%s %s: %s", good[i][0], good[i][1], err);
}

/* The default MIME table may be missing (the built-in one is used); only a
 * table asked for must exist. */
Test(config, default_mime_table_may_be_missing)
{
    struct cz_config c;
    char err[256];
    cr_assert_eq(parse(&c, err, (const char *const[]){NULL}), 0, "%s", err);
    cr_assert_str_eq(c.mime_types, "/etc/mime.types");
    setenv("CATZILLA_MIME_TYPES", "/nonexistent/types", 1);
    cr_expect_eq(parse(&c, err, (const char *const[]){NULL}), -EINVAL);
    unsetenv("CATZILLA_MIME_TYPES");
}

Test(config, help_shows_value_placeholders)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cz_config_print_help(f, "catzilla");
    fclose(f);
    static const char *const want[] = {"--threads N ", "--bind ADDR ", "--max-body-size SIZE ",
                                       "--header-timeout DURATION ", "--root DIR ",
                                       "--admin off|same|ADDR:PORT ", "--access-log PATH|-|off ",
                                       "--zerocopy auto|on|off ", "-h, --help", "-V, --version"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_expect(strstr(text, want[i]), "--help lacks '%s'", want[i]);
    cr_expect(strstr(text, "--no-pin  "), "a boolean flag takes no value");
    free(text);
}

/* The README's flag table is generated from the option table; regenerate it
 * with scripts/update-readme-flags.sh. */
Test(config, readme_flag_table_is_current)
{
    FILE *f = fopen("README.md", "r");
    cr_assert_not_null(f, "run the tests from the repository root");
    static char readme[1 << 20];
    size_t n = fread(readme, 1, sizeof(readme) - 1, f);
    fclose(f);
    readme[n] = '\0';
    const char *begin = strstr(readme, "<!-- flags:begin -->\n");
    const char *end = strstr(readme, "<!-- flags:end -->");
    cr_assert(begin && end && end > begin, "README.md lacks the flags markers");
    begin += strlen("<!-- flags:begin -->\n");

    char *gen = NULL;
    size_t glen = 0;
    FILE *m = open_memstream(&gen, &glen);
    cz_config_print_markdown(m);
    fclose(m);
    cr_assert_eq((size_t)(end - begin), glen,
                 "README flag table is stale: run scripts/update-readme-flags.sh");
    cr_assert(memcmp(begin, gen, glen) == 0,
              "README flag table is stale: run scripts/update-readme-flags.sh");
    free(gen);
}

/* Applications with flags of their own get back what is not Catzilla's, in
 * order; Catzilla's flags (and their values) are consumed. */
Test(config, parse_app_hands_back_the_rest)
{
    struct cz_config c;
    char err[256];
    enum cz_config_mode mode;
    char *argv[] = {"app", "--port", "9001", "--label", "x y", "--threads=3", "input.txt",
                    "--verbose", "--no-pin", NULL};
    int argc = 9;
    cz_config_defaults(&c);
    cr_assert_eq(cz_config_parse_app(&c, &argc, argv, &mode, NULL, err, sizeof(err)), 0, "%s",
                 err);
    cr_expect_eq(c.port, 9001);
    cr_expect_eq(c.threads, 3);
    cr_expect(c.no_pin);
    cr_expect_eq(mode, CZ_MODE_SERVE);
    cr_assert_eq(argc, 5);
    cr_expect_str_eq(argv[0], "app");
    cr_expect_str_eq(argv[1], "--label");
    cr_expect_str_eq(argv[2], "x y");
    cr_expect_str_eq(argv[3], "input.txt");
    cr_expect_str_eq(argv[4], "--verbose");
    cr_expect_null(argv[5]);

    /* Modes are reported, not acted on. */
    char *h[] = {"app", "--help", "--mine", NULL};
    argc = 3;
    cr_assert_eq(cz_config_parse_app(&c, &argc, h, &mode, NULL, err, sizeof(err)), 0);
    cr_expect_eq(mode, CZ_MODE_HELP);
    cr_expect_eq(argc, 2);
    /* A bad value of a Catzilla flag is still an error. */
    char *bad[] = {"app", "--port", "x", NULL};
    argc = 3;
    cr_expect_eq(cz_config_parse_app(&c, &argc, bad, &mode, NULL, err, sizeof(err)), -EINVAL);
}

/* A caller with no modes never gets a server started by "--help". */
Test(config, modes_without_a_mode_pointer_are_errors)
{
    struct cz_config c;
    char err[256];
    static const char *const flags[] = {"--help", "-h", "--version", "--print-config"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        cr_expect_eq(parse(&c, err, (const char *const[]){flags[i], NULL}), -EINVAL, "%s",
                     flags[i]);
        cr_expect(strstr(err, "is not available here"), "%s: %s", flags[i], err);
    }
}
