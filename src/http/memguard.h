/* The memory guard: keeps the server under its memory limit (a container's
 * cgroup limit, or --memory-limit) instead of being OOM-killed.
 *
 * At start it sizes the per-worker file cache and receive buffers to fit the
 * limit.  While serving, a monitor thread samples usage every 50 ms and sets
 * a process-wide pressure level; each worker applies the reactions for that
 * level to its own memory (no worker touches another's), woken through its
 * eventfd when the level changes:
 *
 *   ok        below 70 % of the limit
 *   elevated  70 %: purge the arenas; freed pages go back at once (decay 0)
 *   high      85 %: also drop the file cache's contents, stop accepting
 *   critical  95 %: also receive one request body at a time per worker
 *
 * With a limit, request bodies under reception are also budgeted: at most a
 * quarter of the limit per worker share (half that at high), admitted in
 * arrival order; a request over budget waits with its connection's reading
 * paused instead of failing.  A body handed on to the response (echo) keeps
 * its budget until the block is freed after sending.  One body is always admitted, however large,
 * so nothing waits forever.
 *
 * A level is left 5 points below where it was entered, so it does not flap.
 * Usage is the cgroup's working set (usage minus inactive file pages, as
 * kubelet counts it) when the limit comes from the cgroup, else the
 * process's resident set. */
#ifndef CZ_HTTP_MEMGUARD_H
#define CZ_HTTP_MEMGUARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/cgroup.h"

struct cz_server;
struct worker;
struct jbuf;

enum mem_level { MEM_OK, MEM_ELEVATED, MEM_HIGH, MEM_CRITICAL, MEM_LEVEL_MAX };

/* What a chunked body (length unknown) is charged against the budget. */
#define MEMGUARD_CHUNKED_CHARGE (64u * 1024u)

struct conn;

struct memguard {
    uint64_t limit;          /* bytes; 0 = no limit known: the guard is off */
    const char *source;      /* where limit came from */
    struct cz_cgroup_mem cg; /* usage source when the limit is the cgroup's */
    bool from_cgroup;
    const char *usage_file;   /* fault builds: usage read from this file */
    _Atomic int level;        /* enum mem_level */
    _Atomic uint64_t usage;   /* last sample, bytes */
    _Atomic uint64_t peak;    /* highest sample */
    _Atomic uint64_t changes; /* level changes */
    pthread_t thread;
    bool thread_started;
    int stop_fd; /* eventfd: ends the monitor */
};

/* Per-worker actions taken, written by the worker, read by stats. */
struct memguard_actions {
    _Atomic uint64_t purges;        /* arena purges */
    _Atomic uint64_t cache_drops;   /* file-cache contents dropped */
    _Atomic uint64_t accept_pauses; /* times accepting stopped */
    _Atomic uint64_t body_waits;    /* request bodies that waited for budget */
};

/* Find the limit, fit the file cache and receive buffers of srv->cfg into it
 * (logging what changed).  Before the workers start.  0 or -errno. */
int memguard_configure(struct cz_server *srv, char *err, size_t errlen);
/* Start / stop the monitor thread (no-op without a limit). */
int memguard_start(struct cz_server *srv, char *err, size_t errlen);
void memguard_stop(struct cz_server *srv);

/* On the worker's thread: apply the current level if it changed (wake and
 * tick call it). */
void memguard_apply(struct worker *w);
/* Accepting is held back by pressure. */
bool memguard_blocks_accept(const struct worker *w);
/* c's head announced a body of len bytes: true if it may be received now;
 * else c waits (reading paused) until memguard_admit_waiters lets it go. */
bool memguard_admit_body(struct conn *c, uint64_t len);
/* c's body is complete or abandoned (or c closes while waiting). */
void memguard_body_done(struct conn *c);
/* End of a loop turn, and tick: let waiting bodies in as budget allows. */
void memguard_admit_waiters(struct worker *w);

const char *memguard_level_name(int level);
/* Pure level logic, for tests: the level for usage of limit, given the current one. */
int memguard_level_for(uint64_t usage, uint64_t limit, int current);

#endif
