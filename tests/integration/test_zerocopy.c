/* SEND_ZC of cached bodies from registered buffers: bytes intact with
 * --zerocopy on (header linked to the zero-copy body), pipelined behind and in
 * front of other responses, and with the plain path (off). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"

static struct server srv;
static char root[] = "/tmp/cz-zc-XXXXXX";
static char *data;
#define SIZE (200 * 1024)

static void make_root(void)
{
    cr_assert_not_null(mkdtemp(root));
    data = malloc(SIZE);
    for (size_t i = 0; i < SIZE; i++)
        data[i] = (char)(i * 7 + (i >> 10));
    char path[256];
    snprintf(path, sizeof(path), "%s/blob.bin", root);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(write(fd, data, SIZE) == SIZE);
    close(fd);
}

static void remove_root(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    cr_expect_eq(system(cmd), 0);
    free(data);
}

static void check_mode(const char *mode)
{
    make_root();
    server_start(&srv, (const char *const[]){"--root", root, "--zerocopy", mode,
                                             "--zc-threshold", "16k", NULL});
    int fd = tcp_connect(srv.port);
    /* Cached body between two small responses, all in one pipeline. */
    for (int round = 0; round < 5; round++) {
        send_str(fd, "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /blob.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /blob.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=100000-\r\n\r\n"
                     "GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
        struct response r;
        cr_assert(read_response(fd, &r, false));
        cr_assert_str_eq(r.body, "Hello, World!");
        response_free(&r);
        cr_assert(read_response(fd, &r, false));
        cr_assert_eq(r.status, 200);
        cr_assert_eq(r.body_len, SIZE);
        cr_assert(memcmp(r.body, data, SIZE) == 0, "%s: body differs", mode);
        response_free(&r);
        cr_assert(read_response(fd, &r, false));
        cr_assert_eq(r.status, 206);
        cr_assert_eq(r.body_len, SIZE - 100000);
        cr_assert(memcmp(r.body, data + 100000, SIZE - 100000) == 0);
        response_free(&r);
        cr_assert(read_response(fd, &r, false));
        cr_assert_eq(r.status, 200);
        response_free(&r);
    }
    close(fd);
    cr_assert_eq(server_stop(&srv), 0);
    char *log = server_log(&srv);
    cr_assert_null(strstr(log, "Z error ["), "%s", log);
    free(log);
    unlink(srv.log_path);
    remove_root();
}

Test(zerocopy, on_bytes_intact, .timeout = 30)
{
    check_mode("on");
}

Test(zerocopy, off_bytes_intact, .timeout = 30)
{
    check_mode("off");
}

Test(zerocopy, auto_bytes_intact, .timeout = 30)
{
    check_mode("auto");
}
