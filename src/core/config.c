/* Option parsing for struct cz_config, driven by the one table in
 * include/catzilla/config.h: defaults, CATZILLA_* environment variables,
 * --flags, validation, --help and --print-config.  It knows nothing about
 * what the options do.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "catzilla/catzilla.h"
#include "core/addr.h"
#include "core/config_text.h"

static const struct cz_option options[] = {
#define CZ_X_OPT(field, type, num, str, min, max, help)                                            \
    {#field, CZ_OPT_##type, offsetof(struct cz_config, field), (long)(num), str, min, max, help},
    CZ_CONFIG_FIELDS(CZ_X_OPT)
#undef CZ_X_OPT
};
#define NOPTIONS (sizeof(options) / sizeof(options[0]))

static const char *const zerocopy_names[] = {"auto", "on", "off"};
static const char *const loglevel_names[] = {"error", "warn", "info", "debug"};

const struct cz_option *cz_config_options(size_t *count)
{
    *count = NOPTIONS;
    return options;
}

static void *field_ptr(struct cz_config *cfg, const struct cz_option *o)
{
    return (char *)cfg + o->offset;
}

static const void *field_cptr(const struct cz_config *cfg, const struct cz_option *o)
{
    return (const char *)cfg + o->offset;
}

void cz_config_defaults(struct cz_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct cz_option *o = &options[i];
        void *p = field_ptr(cfg, o);
        switch (o->type) {
        case CZ_OPT_BOOL:
            *(bool *)p = o->num_default != 0;
            break;
        case CZ_OPT_STRING:
            *(const char **)p = o->str_default;
            break;
        case CZ_OPT_ZEROCOPY:
        case CZ_OPT_LOGLEVEL:
            *(int *)p = (int)o->num_default;
            break;
        default:
            *(long *)p = o->num_default;
            break;
        }
    }
}

void cz_option_flag_name(const struct cz_option *o, char *buf, size_t cap)
{
    size_t i = 0;
    for (; o->field[i] && i + 1 < cap; i++)
        buf[i] = o->field[i] == '_' ? '-' : o->field[i];
    buf[i] = '\0';
}

void cz_option_env_name(const struct cz_option *o, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "CATZILLA_");
    size_t i = (size_t)n;
    for (size_t j = 0; o->field[j] && i + 1 < cap; j++, i++)
        buf[i] = (char)toupper((unsigned char)o->field[j]);
    buf[i] = '\0';
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int parse_enum(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

/* Parses a decimal number with an optional unit suffix; the unit table depends
 * on the type.  Returns 0 or -EINVAL. */
static int parse_number(const struct cz_option *o, const char *s, long *out)
{
    if (!*s || !(isdigit((unsigned char)*s) || (*s == '-' && isdigit((unsigned char)s[1]))))
        return -EINVAL;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno)
        return -EINVAL;
    long long mult = 1;
    if (o->type == CZ_OPT_SIZE) {
        if (!strcasecmp(end, "k") || !strcasecmp(end, "kb") || !strcasecmp(end, "kib"))
            mult = CZ_KIB;
        else if (!strcasecmp(end, "m") || !strcasecmp(end, "mb") || !strcasecmp(end, "mib"))
            mult = CZ_MIB;
        else if (!strcasecmp(end, "g") || !strcasecmp(end, "gb") || !strcasecmp(end, "gib"))
            mult = CZ_GIB;
        else if (*end)
            return -EINVAL;
    } else if (o->type == CZ_OPT_DURATION) {
        if (!strcmp(end, "ms"))
            mult = 1;
        else if (!strcmp(end, "s") || !*end)
            mult = 1000;
        else if (!strcmp(end, "m") || !strcmp(end, "min"))
            mult = 60000;
        else
            return -EINVAL;
    } else if (*end) {
        return -EINVAL;
    }
    if (v != 0 && (v > (long long)(CZ_GIB * 1024 * 1024) / mult || v < -(long long)CZ_GIB))
        return -EINVAL;
    *out = (long)(v * mult);
    return 0;
}

static int parse_bool(const char *s)
{
    if (!strcmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "on") || !strcasecmp(s, "yes"))
        return 1;
    if (!strcmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "off") || !strcasecmp(s, "no"))
        return 0;
    return -1;
}

/* Sets one option from text; `source` names it in messages ("--port", "CATZILLA_PORT"). */
static int set_option(struct cz_config *cfg, const struct cz_option *o, const char *value,
                      const char *source, char *err, size_t errlen)
{
    void *p = field_ptr(cfg, o);
    switch (o->type) {
    case CZ_OPT_BOOL: {
        int b = value ? parse_bool(value) : 1;
        if (b < 0)
            return fail(err, errlen, "%s: expected true or false, got '%s'", source, value);
        *(bool *)p = b;
        return 0;
    }
    case CZ_OPT_STRING:
        *(const char **)p = value;
        return 0;
    case CZ_OPT_ZEROCOPY:
    case CZ_OPT_LOGLEVEL: {
        const char *const *names = o->type == CZ_OPT_ZEROCOPY ? zerocopy_names : loglevel_names;
        size_t n = o->type == CZ_OPT_ZEROCOPY ? 3 : 4;
        int v = parse_enum(value, names, n);
        if (v < 0)
            return fail(err, errlen, "%s: '%s' is not one of %s", source, value,
                        o->type == CZ_OPT_ZEROCOPY ? "auto|on|off" : "error|warn|info|debug");
        *(int *)p = v;
        return 0;
    }
    default:
        break;
    }
    long v;
    if (parse_number(o, value, &v) < 0)
        return fail(err, errlen, "%s: '%s' is not a valid %s", source, value,
                    o->type == CZ_OPT_SIZE       ? "size (e.g. 16k, 1m)"
                    : o->type == CZ_OPT_DURATION ? "duration (e.g. 10s, 250ms)"
                                                 : "number");
    long vmin = o->min, vmax = o->max;
    if (o->type == CZ_OPT_DURATION) {
        if (v < vmin || v > vmax)
            return fail(err, errlen, "%s: %s is out of range (%ldms..%lds)", source, value, vmin,
                        vmax / 1000);
    } else if (v < vmin || v > vmax) {
        return fail(err, errlen, "%s: %s is out of range (%ld..%ld)", source, value, vmin, vmax);
    }
    if (o->type == CZ_OPT_POW2 && (v & (v - 1)) != 0)
        return fail(err, errlen, "%s: %s is not a power of two", source, value);
    *(long *)p = v;
    return 0;
}

static const struct cz_option *find_flag(const char *name, size_t len)
{
    char flag[64];
    for (size_t i = 0; i < NOPTIONS; i++) {
        cz_option_flag_name(&options[i], flag, sizeof(flag));
        if (strlen(flag) == len && memcmp(flag, name, len) == 0)
            return &options[i];
    }
    return NULL;
}

/* The one parser.  rest: arguments that are not ours go there (in order,
 * *nrest of them) instead of being an error. */
static int parse_args(struct cz_config *cfg, int argc, char **argv, enum cz_config_mode *mode,
                      const char **mode_arg, char **rest, int *nrest, char *err, size_t errlen)
{
    char name[96];
    if (mode)
        *mode = CZ_MODE_SERVE;

    for (size_t i = 0; i < NOPTIONS; i++) {
        cz_option_env_name(&options[i], name, sizeof(name));
        const char *v = getenv(name);
        if (v && *v) {
            int rc = set_option(cfg, &options[i], v, name, err, errlen);
            if (rc < 0)
                return rc;
        }
    }

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        /* The two short forms everyone tries. */
        if (strcmp(arg, "-h") == 0)
            arg = "--help";
        else if (strcmp(arg, "-V") == 0)
            arg = "--version";
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (rest) {
                rest[(*nrest)++] = argv[i];
                continue;
            }
            return fail(err, errlen, "unexpected argument '%s' (see --help)", arg);
        }
        const char *key = arg + 2;
        const char *eq = strchr(key, '=');
        size_t keylen = eq ? (size_t)(eq - key) : strlen(key);

        static const struct {
            const char *name;
            enum cz_config_mode mode;
            bool needs_arg;
        } modes[] = {{"help", CZ_MODE_HELP, false},
                     {"version", CZ_MODE_VERSION, false},
                     {"print-config", CZ_MODE_PRINT_CONFIG, false},
                     {"help-markdown", CZ_MODE_HELP_MARKDOWN, false},
                     {"help-man", CZ_MODE_HELP_MAN, false},
                     {"check-health", CZ_MODE_CHECK_HEALTH, true}};
        bool is_mode = false;
        for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
            if (strlen(modes[m].name) != keylen || memcmp(modes[m].name, key, keylen) != 0)
                continue;
            is_mode = true;
            const char *v = eq ? eq + 1 : NULL;
            if (modes[m].needs_arg && !v) {
                if (i + 1 >= argc)
                    return fail(err, errlen, "--%s needs a value", modes[m].name);
                v = argv[++i];
            } else if (!modes[m].needs_arg && v) {
                return fail(err, errlen, "--%s takes no value", modes[m].name);
            }
            /* A caller with no use for modes must not start a server on
             * "--help" (a public one, on 0.0.0.0:8080). */
            if (!mode)
                return fail(err, errlen, "--%s is not available here", modes[m].name);
            *mode = modes[m].mode;
            if (mode_arg)
                *mode_arg = v;
        }
        if (is_mode)
            continue;

        const struct cz_option *o = find_flag(key, keylen);
        if (!o && rest) {
            rest[(*nrest)++] = argv[i];
            continue;
        }
        if (!o)
            return fail(err, errlen, "unknown option '--%.*s' (see --help)", (int)keylen, key);
        const char *value = eq ? eq + 1 : NULL;
        if (!value && o->type != CZ_OPT_BOOL) {
            if (i + 1 >= argc)
                return fail(err, errlen, "--%.*s needs a value", (int)keylen, key);
            value = argv[++i];
        }
        snprintf(name, sizeof(name), "--%.*s", (int)keylen, key);
        int rc = set_option(cfg, o, value, name, err, errlen);
        if (rc < 0)
            return rc;
    }
    return cz_config_validate(cfg, err, errlen);
}

static const struct cz_option *find_field(const char *field)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strcmp(options[i].field, field) == 0)
            return &options[i];
    return NULL;
}

/* True if the string option still holds its default (the table's own
 * pointer: anything from argv or the environment is another one). */
static bool string_is_default(const struct cz_config *cfg, const char *field)
{
    const struct cz_option *o = find_field(field);
    return o && *(const char *const *)field_cptr(cfg, o) == o->str_default;
}

/* --access-log PATH: the file is created at start, so its directory must
 * exist and be writable now, and the file, if it exists, writable. */
static int check_log_path(const char *path, char *err, size_t errlen)
{
    if (access(path, F_OK) == 0) {
        if (access(path, W_OK) != 0)
            return fail(err, errlen, "--access-log %s: %s", path, strerror(errno));
        return 0;
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    if (access(dir, W_OK | X_OK) != 0)
        return fail(err, errlen, "--access-log %s: directory %s: %s", path, dir, strerror(errno));
    return 0;
}

int cz_config_parse(struct cz_config *cfg, int argc, char **argv, enum cz_config_mode *mode,
                    const char **mode_arg, char *err, size_t errlen)
{
    return parse_args(cfg, argc, argv, mode, mode_arg, NULL, NULL, err, errlen);
}

int cz_config_parse_app(struct cz_config *cfg, int *argc, char **argv, enum cz_config_mode *mode,
                        const char **mode_arg, char *err, size_t errlen)
{
    if (!argc || !mode)
        return fail(err, errlen, "cz_config_parse_app: argc and mode are required");
    int nrest = 0;
    /* Ours are consumed left to right, so the rest fits in argv itself:
     * slot nrest + 1 is never ahead of the argument being read. */
    int rc = parse_args(cfg, *argc, argv, mode, mode_arg, argv + 1, &nrest, err, errlen);
    if (rc < 0)
        return rc;
    *argc = nrest + 1;
    argv[*argc] = NULL;
    return 0;
}

int cz_config_validate(const struct cz_config *cfg, char *err, size_t errlen)
{
    if (cfg->file_cache_max_file > cfg->file_cache_size && cfg->file_cache_size > 0)
        return fail(err, errlen,
                    "--file-cache-max-file (%ld) must not exceed --file-cache-size (%ld)",
                    cfg->file_cache_max_file, cfg->file_cache_size);
    struct sockaddr_storage main_ss, admin_ss;
    socklen_t len;
    if (!cfg->bind || cz_addr_parse(cfg->bind, (int)cfg->port, &main_ss, &len) < 0)
        return fail(err, errlen,
                    "--bind: '%s' is not an IPv4 or IPv6 address (host names are not "
                    "resolved; use e.g. 0.0.0.0, 127.0.0.1, :: or ::1)",
                    cfg->bind ? cfg->bind : "");
    const char *admin = cfg->admin ? cfg->admin : "";
    if (strcmp(admin, "off") != 0 && strcmp(admin, "same") != 0) {
        if (cz_addr_parse_hostport(admin, &admin_ss, &len) < 0)
            return fail(err, errlen,
                        "--admin: '%s' is not off, same or ADDR:PORT (e.g. 127.0.0.1:9090, "
                        "[::1]:9090)",
                        admin);
        if (cfg->port != 0 && cz_addr_port(&admin_ss) != 0 && cz_addr_overlap(&main_ss, &admin_ss))
            return fail(err, errlen,
                        "--admin %s overlaps the main listener (--bind %s --port %ld); use "
                        "another port, or --admin same",
                        admin, cfg->bind, cfg->port);
    }
    const char *fmt = cfg->access_log_format ? cfg->access_log_format : "";
    if (strcmp(fmt, "combined") != 0 && strcmp(fmt, "json") != 0)
        return fail(err, errlen, "--access-log-format: '%s' is not combined or json", fmt);
    const char *log = cfg->access_log ? cfg->access_log : "";
    if (!*log)
        return fail(err, errlen, "--access-log: empty (a PATH, - for stdout, or off)");
    if (strcmp(log, "off") != 0 && strcmp(log, "-") != 0 && check_log_path(log, err, errlen) < 0)
        return -EINVAL;
    /* The default table may be missing on a minimal system (the built-in
     * one is used then); a table asked for by name must be there. */
    if (cfg->mime_types && *cfg->mime_types && !string_is_default(cfg, "mime_types") &&
        access(cfg->mime_types, R_OK) != 0)
        return fail(err, errlen, "--mime-types %s: %s", cfg->mime_types, strerror(errno));
    return 0;
}

/* Renders an option's current value in the form a flag would take. */
void cz_option_format_value(const struct cz_config *cfg, const struct cz_option *o, char *buf,
                            size_t cap)
{
    const void *p = field_cptr(cfg, o);
    switch (o->type) {
    case CZ_OPT_BOOL:
        snprintf(buf, cap, "%s", *(const bool *)p ? "true" : "false");
        break;
    case CZ_OPT_STRING:
        snprintf(buf, cap, "%s", *(const char *const *)p ? *(const char *const *)p : "");
        break;
    case CZ_OPT_ZEROCOPY:
        snprintf(buf, cap, "%s", zerocopy_names[*(const int *)p]);
        break;
    case CZ_OPT_LOGLEVEL:
        snprintf(buf, cap, "%s", loglevel_names[*(const int *)p]);
        break;
    case CZ_OPT_DURATION: {
        long ms = *(const long *)p;
        if (ms % 1000 == 0)
            snprintf(buf, cap, "%lds", ms / 1000);
        else
            snprintf(buf, cap, "%ldms", ms);
        break;
    }
    case CZ_OPT_SIZE: {
        long v = *(const long *)p;
        if (v && v % CZ_GIB == 0)
            snprintf(buf, cap, "%ldg", v / CZ_GIB);
        else if (v && v % CZ_MIB == 0)
            snprintf(buf, cap, "%ldm", v / CZ_MIB);
        else if (v && v % CZ_KIB == 0)
            snprintf(buf, cap, "%ldk", v / CZ_KIB);
        else
            snprintf(buf, cap, "%ld", v);
        break;
    }
    default:
        snprintf(buf, cap, "%ld", *(const long *)p);
        break;
    }
}

/* What a flag's value looks like in --help ("--threads N"). */
static const char *metavar(const struct cz_option *o)
{
    static const struct {
        const char *field, *meta;
    } strings[] = {
        {"bind", "ADDR"},
        {"root", "DIR"},
        {"default_type", "TYPE"},
        {"mime_types", "FILE"},
        {"cache_control", "VALUE"},
        {"admin", "off|same|ADDR:PORT"},
        {"access_log", "PATH|-|off"},
        {"access_log_format", "combined|json"},
    };
    switch (o->type) {
    case CZ_OPT_BOOL:
        return "";
    case CZ_OPT_INT:
    case CZ_OPT_POW2:
        return "N";
    case CZ_OPT_SIZE:
        return "SIZE";
    case CZ_OPT_DURATION:
        return "DURATION";
    case CZ_OPT_ZEROCOPY:
        return "auto|on|off";
    case CZ_OPT_LOGLEVEL:
        return "LEVEL";
    case CZ_OPT_STRING:
        for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
            if (strcmp(strings[i].field, o->field) == 0)
                return strings[i].meta;
        return "TEXT";
    }
    return "VALUE";
}

/* One option's names and default, as every generated text shows them. */
struct option_text {
    char flag[64], env[96], def[128];
    const char *meta; /* "N", "SIZE", ... ("" for a boolean) */
};

static void option_text(const struct cz_option *o, const struct cz_config *def,
                        struct option_text *t)
{
    cz_option_flag_name(o, t->flag, sizeof(t->flag));
    cz_option_env_name(o, t->env, sizeof(t->env));
    cz_option_format_value(def, o, t->def, sizeof(t->def));
    t->meta = metavar(o);
}

/* The flags that do something other than serve (see cz_config_parse). */
static const struct {
    const char *flag, *meta, *help;
} mode_flags[] = {
    {"--check-health", "URL|auto|pid:N",
     "GET URL and exit 0 if it answers 200; auto: the health route of the catzilla running "
     "here (PID 1, else this user's), found in /proc with its flags and CATZILLA_* variables; "
     "pid:N: the same for process N"},
    {"--print-config", "", "print the effective configuration and exit"},
    {"-V, --version", "", "print the version and exit"},
    {"-h, --help", "", "print this help and exit"},
};

/* text after a 37-column gutter (already written), wrapped at 79 columns. */
static void print_wrapped(FILE *f, const char *text)
{
    const int gutter = 37, width = 79;
    int col = gutter;
    while (*text) {
        size_t word = strcspn(text, " ");
        if (col > gutter && col + 1 + (int)word > width) {
            fprintf(f, "\n%*s", gutter, "");
            col = gutter;
        } else if (col > gutter) {
            fputc(' ', f);
            col++;
        }
        fwrite(text, 1, word, f);
        col += (int)word;
        text += word;
        text += strspn(text, " ");
    }
    fputc('\n', f);
}

void cz_config_print_help(FILE *f, const char *argv0)
{
    struct cz_config def;
    cz_config_defaults(&def);
    fprintf(f,
            "Usage: %s [options]\n"
            "Catzilla: a thread-per-core io_uring HTTP/1.1 server.\n\n"
            "Every option also reads the environment variable shown (flags win). SIZE takes\n"
            "k, m, g suffixes (16k, 1m); DURATION takes ms, s, m (250ms, 10s; bare = seconds).\n\n",
            argv0);
    struct option_text t;
    char usage[96];
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct cz_option *o = &options[i];
        option_text(o, &def, &t);
        snprintf(usage, sizeof(usage), "--%s%s%s", t.flag, *t.meta ? " " : "", t.meta);
        fprintf(f, "  %-34s %s\n  %-34s [%s; default: %s]\n", usage, o->help, "", t.env,
                *t.def ? t.def : "none");
    }
    fputc('\n', f);
    for (size_t i = 0; i < sizeof(mode_flags) / sizeof(mode_flags[0]); i++) {
        snprintf(usage, sizeof(usage), "%s%s%s", mode_flags[i].flag, *mode_flags[i].meta ? " " : "",
                 mode_flags[i].meta);
        fprintf(f, "  %-34s ", usage);
        print_wrapped(f, mode_flags[i].help);
    }
    fprintf(f, "\nExit status: 0 after a clean stop, 1 when the server cannot start, 2 for bad "
               "usage.\n");
}

void cz_config_print_markdown(FILE *f)
{
    static const char *const type_names[] = {
        "integer", "power of two", "size",        "duration",
        "boolean", "string",       "auto|on|off", "error|warn|info|debug"};
    struct cz_config def;
    cz_config_defaults(&def);
    struct option_text t;
    fprintf(f, "| Flag | Environment | Type | Default | Description |\n");
    fprintf(f, "|---|---|---|---|---|\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct cz_option *o = &options[i];
        option_text(o, &def, &t);
        fprintf(f, "| `--%s` | `%s` | %s | %s%s%s | %s |\n", t.flag, t.env, type_names[o->type],
                *t.def ? "`" : "", *t.def ? t.def : "none", *t.def ? "`" : "", o->help);
    }
}

void cz_config_print(FILE *f, const struct cz_config *cfg)
{
    char flag[64], val[256];
    for (size_t i = 0; i < NOPTIONS; i++) {
        cz_option_flag_name(&options[i], flag, sizeof(flag));
        cz_option_format_value(cfg, &options[i], val, sizeof(val));
        fprintf(f, "%s=%s\n", flag, val);
    }
}

/* Text for roff: a leading '.' or '\'' would be a request, '\' an escape,
 * and '-' in options must be a real minus (\-) to be searchable. */
static void man_text(FILE *f, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", f);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
    }
}

static void man_option(FILE *f, const char *flag, const char *meta, const char *help)
{
    fputs(".TP\n\\fB", f);
    man_text(f, flag);
    fputs("\\fR", f);
    if (meta && *meta) {
        fputs(" \\fI", f);
        man_text(f, meta);
        fputs("\\fR", f);
    }
    fputc('\n', f);
    man_text(f, help);
    fputc('\n', f);
}

void cz_config_print_man(FILE *f)
{
    struct cz_config def;
    cz_config_defaults(&def);
    fprintf(f, ".TH CATZILLA 1 \"\" \"catzilla %s\" \"User Commands\"\n", CATZILLA_VERSION);
    fputs(".SH NAME\ncatzilla \\- thread\\-per\\-core io_uring HTTP/1.1 server\n"
          ".SH SYNOPSIS\n.B catzilla\n[\\fIOPTION\\fR]...\n"
          ".SH DESCRIPTION\n"
          "Catzilla serves static files and built\\-in routes over HTTP/1.1 with one worker "
          "thread per CPU, each with its own io_uring ring, listener (SO_REUSEPORT), "
          "connections and jemalloc arenas.\n"
          "Without \\fB\\-\\-root\\fR it serves its bundled docroot "
          "(\\fIPREFIX\\fR/share/catzilla/public).\n"
          ".PP\nEvery option also reads the environment variable shown (flags win).  "
          "\\fISIZE\\fR takes k, m, g suffixes (16k, 1m); \\fIDURATION\\fR takes ms, s, m "
          "(250ms, 10s; a bare number is seconds).  A flag takes its value as the next "
          "argument or after '='.\n.SH OPTIONS\n",
          f);
    struct option_text t;
    char flag[80], more[256];
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct cz_option *o = &options[i];
        option_text(o, &def, &t);
        snprintf(flag, sizeof(flag), "--%s", t.flag);
        man_option(f, flag, t.meta, o->help);
        snprintf(more, sizeof(more), "Environment: %s.  Default: %s.", t.env,
                 *t.def ? t.def : "none");
        fputs(".br\n", f);
        man_text(f, more);
        fputc('\n', f);
    }
    for (size_t i = 0; i < sizeof(mode_flags) / sizeof(mode_flags[0]); i++)
        man_option(f, mode_flags[i].flag, mode_flags[i].meta, mode_flags[i].help);
    fputs(".SH SIGNALS\n"
          ".TP\n.B SIGTERM, SIGINT, SIGQUIT\n"
          "Stop accepting, finish in\\-flight requests for up to \\fB\\-\\-shutdown\\-timeout\\fR, "
          "exit 0.\n"
          ".TP\n.B SIGHUP\n"
          "Reopen the access log, reload the MIME table, drop every worker's file cache.\n"
          ".TP\n.B SIGUSR1\nReopen the access log (after rotation).\n"
          ".SH ADMIN SURFACE\n"
          "/_catzilla/health, /_catzilla/stats (JSON), /_catzilla/metrics (Prometheus) and the "
          "dashboard at /_catzilla/ are served where \\fB\\-\\-admin\\fR puts them: by default "
          "their own listener on 127.0.0.1:9090.\n"
          ".SH EXIT STATUS\n"
          "0 after a clean stop, 1 when the server cannot start (the reason is logged in one "
          "line), 2 for bad usage.\n"
          ".SH ENVIRONMENT\n"
          ".TP\n.B MALLOC_CONF\njemalloc options; they override the built\\-in defaults.\n"
          ".SH NOTES\n"
          "io_uring must be allowed by the container's seccomp profile "
          "(docker/podman: \\fB\\-\\-security\\-opt seccomp=\\fR a profile allowing "
          "io_uring_setup, io_uring_enter and io_uring_register), and registered buffers need "
          "a memlock limit above the default (\\fB\\-\\-ulimit memlock=\\-1\\fR).\n"
          ".SH SEE ALSO\n"
          ".BR io_uring (7),\n.BR jemalloc (3)\n",
          f);
}
