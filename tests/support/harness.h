/* Integration-test harness: start the real catzilla binary on a loopback
 * port (--port 0, the port is read from its log), talk raw HTTP to it, stop
 * it with SIGTERM, and read its log. */
#ifndef CZ_TEST_HARNESS_H
#define CZ_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct server {
    pid_t pid;
    int port;
    char log_path[256];
};

/* NULL-terminated extra arguments (--threads 1 and --admin same unless
 * given).  Skips the test when io_uring cannot be
 * used here; fails it when the server does not start within 5 s. */
void server_start(struct server *s, const char *const *args);
/* The same for another program built on the library (an example). */
void server_start_binary(struct server *s, const char *path, const char *const *args);
/* SIGTERM and wait; returns the exit status (or -1 on timeout, after SIGKILL). */
int server_stop(struct server *s);
/* server_stop, then the nginx-tests rule: exit status 0 and no error-level
 * line in the log (Criterion expectations); removes the log unless
 * CZ_KEEP_LOG is set.  No-op if the server is not running. */
void server_stop_checked(struct server *s);
/* Remove a file or a directory tree (symlinks not followed). */
void rm_tree(const char *path);
/* The whole log so far (malloc'ed, caller frees). */
char *server_log(const struct server *s);
/* True if the server binary's --version line contains marker, e.g.
 * "(fault injection)" or "(leak check)": which variant is under test. */
bool binary_version_has(const char *marker);
/* True if io_uring works in this environment. */
bool io_uring_usable(void);

/* Connect to 127.0.0.1:port (blocking afterwards, with 5 s send/receive
 * timeouts).  Connects non-blocking and polls, because a blocking connect
 * with a timeout is not restarted after EINTR. */
int tcp_connect(int port);
/* The same with options: SO_RCVBUF and TCP_MAXSEG (0: the default), and
 * left non-blocking (no timeouts) if asked. */
int tcp_connect_opts(int port, int rcvbuf, int mss, bool nonblocking);
void send_all(int fd, const void *data, size_t len);
void send_str(int fd, const char *s);

struct response {
    int status;
    char *head; /* status line and headers, NUL-terminated */
    char *body; /* NUL-terminated, body_len bytes */
    size_t body_len;
    bool closed;    /* the server closed after this response */
    bool chunks_ok; /* a chunked body ended with its last chunk */
};
/* Read one response (Content-Length framed, chunked (decoded), or to EOF).  head_only for HEAD.
 * Returns false on timeout or EOF before a status line. */
bool read_response(int fd, struct response *r, bool head_only);
void response_free(struct response *r);
/* Copy of the value of header name in head ("Name: value\r\n" lines after
 * the status line), truncated to cap; false if it is not there. */
bool head_value(const char *head, const char *name, char *out, size_t cap);
/* Header value (NUL-terminated copy in a static buffer) or NULL. */
const char *header(const struct response *r, const char *name);
/* One request on a fresh connection; returns the response. */
struct response request_once(int port, const char *raw);
/* True if the peer closed (EOF or reset) within ms milliseconds. */
bool wait_closed(int fd, int ms);
/* Read everything until EOF or timeout into a malloc'ed buffer. */
char *read_all(int fd, size_t *len, int timeout_ms);
/* CLOCK_MONOTONIC in milliseconds. */
long now_ms(void);
/* Current number of open fds of a process. */
int count_fds(pid_t pid);
/* Send data on a fresh connection and expect an error response with the
 * given status that says Connection: close, then the close itself. */
void expect_error_response(int port, const char *name, const void *data, size_t len, int status);
/* The admin listener's port from the start-up line ("admin on ADDR:PORT"),
 * 0 if the admin surface has no listener of its own. */
int server_admin_port(const struct server *s);
/* Fetch /_catzilla/stats and return the number totals.<key>, or -1. */
long stats_total(int port, const char *key);
/* stats_total(port, "connections") */
long stats_connections(int port);
/* Forget any bytes buffered for fd, then close it (use instead of close()
 * when a response may have been left unread). */
void tcp_close(int fd);

#endif
