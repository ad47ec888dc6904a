/* Address literals, ADDR:PORT, formatting and overlap (core/addr.h). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>

#include "core/addr.h"

static void fmt(const char *host, int port, const char *want)
{
    struct sockaddr_storage ss;
    socklen_t len;
    cr_assert_eq(cz_addr_parse(host, port, &ss, &len), 0, "%s", host);
    char out[64];
    cz_addr_format(&ss, out, sizeof(out));
    cr_expect_str_eq(out, want);
}

Test(addr, literals_only)
{
    fmt("127.0.0.1", 8080, "127.0.0.1:8080");
    fmt("::1", 8080, "[::1]:8080");
    fmt("[::1]", 9090, "[::1]:9090");
    fmt("0.0.0.0", 0, "0.0.0.0:0");
    fmt("fe80::1:2", 1, "[fe80::1:2]:1");
    struct sockaddr_storage ss;
    socklen_t len;
    static const char *const bad[] = {"localhost", "", "1.2.3", "1.2.3.4.5", "[::1", "::1]",
                                      "[127.0.0.1]", "example.com"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(cz_addr_parse(bad[i], 80, &ss, &len), -EINVAL, "'%s'", bad[i]);
    cr_expect_eq(cz_addr_parse("127.0.0.1", 65536, &ss, &len), -EINVAL);
    cr_expect_eq(cz_addr_parse("127.0.0.1", -1, &ss, &len), -EINVAL);
}

Test(addr, hostport)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char out[64];
    cr_assert_eq(cz_addr_parse_hostport("127.0.0.1:9090", &ss, &len), 0);
    cz_addr_format(&ss, out, sizeof(out));
    cr_expect_str_eq(out, "127.0.0.1:9090");
    cr_expect_eq(len, sizeof(struct sockaddr_in));
    cr_assert_eq(cz_addr_parse_hostport("[::1]:0", &ss, &len), 0);
    cr_expect_eq(cz_addr_port(&ss), 0);
    cr_expect_eq(len, sizeof(struct sockaddr_in6));
    static const char *const bad[] = {"127.0.0.1", ":9090", "127.0.0.1:", "127.0.0.1:x",
                                      "127.0.0.1:-1", "127.0.0.1:65536", "::1:9090",
                                      "[::1]9090", "localhost:9090", "127.0.0.1:+80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(cz_addr_parse_hostport(bad[i], &ss, &len), -EINVAL, "'%s'", bad[i]);
}

Test(addr, wildcard_and_overlap)
{
    struct sockaddr_storage any4, lo4, other4, any6, lo6;
    socklen_t len;
    cz_addr_parse("0.0.0.0", 8080, &any4, &len);
    cz_addr_parse("127.0.0.1", 8080, &lo4, &len);
    cz_addr_parse("10.0.0.1", 8080, &other4, &len);
    cz_addr_parse("::", 8080, &any6, &len);
    cz_addr_parse("::1", 8080, &lo6, &len);
    cr_expect(cz_addr_is_any(&any4) && cz_addr_is_any(&any6) && !cz_addr_is_any(&lo4));
    cr_expect(cz_addr_overlap(&any4, &lo4));
    cr_expect(cz_addr_overlap(&lo4, &lo4));
    cr_expect(!cz_addr_overlap(&lo4, &other4));
    cr_expect(cz_addr_overlap(&any6, &lo4), ":: takes IPv4 too");
    cr_expect(!cz_addr_overlap(&lo6, &lo4));
    cz_addr_set_port(&other4, 9090);
    cr_expect(!cz_addr_overlap(&any4, &other4), "another port");
    char out[64];
    cz_addr_any_to_loopback(&any4);
    cz_addr_format(&any4, out, sizeof(out));
    cr_expect_str_eq(out, "127.0.0.1:8080");
    cz_addr_any_to_loopback(&any6);
    cz_addr_format(&any6, out, sizeof(out));
    cr_expect_str_eq(out, "[::1]:8080");
}
