/* The memory limit and usage of the cgroup this process lives in (v1, v2 or a
 * hybrid of both), read from /proc and the cgroup filesystem with plain
 * open/read/close.  It only reports numbers: deciding what to do near the
 * limit (shed load, purge arenas) belongs to the caller.  No allocation. */
#ifndef CZ_CORE_CGROUP_H
#define CZ_CORE_CGROUP_H

#include <stdint.h>

#define CZ_CGROUP_DIR_MAX 512

struct cz_cgroup_mem {
    int version;                 /* 2, 1, or 0 when no memory controller was found */
    uint64_t max;                /* hard limit in bytes, the smallest along the ancestors;
                                    0 = unlimited */
    uint64_t high;               /* v2 memory.high (throttling point), smallest along the
                                    ancestors; 0 = none (always 0 on v1) */
    char dir[CZ_CGROUP_DIR_MAX]; /* the memory cgroup's directory, with root prefixed,
                                    e.g. /sys/fs/cgroup/memory/foo */
};

/* Find the calling process's memory cgroup.  root is prepended to every path
 * read ("" or NULL: the real "/"; tests pass a fake tree).  Reads
 * <root>/proc/self/cgroup and <root>/proc/self/mountinfo; a v1 memory
 * hierarchy wins over the v2 one, because in hybrid mode the v2 hierarchy has
 * no memory controller.  The cgroup directory is the deepest one, from the
 * process's own up to the mount point, that has the limit file: where the
 * kernel charges the memory (v2 charges a cgroup without the controller to
 * its nearest ancestor that has it).  Limits of 1 << 60 bytes or more, and a
 * limit of 0, read as unlimited.
 * Returns 0 (out->version 0 when there is no memory cgroup to be seen, which
 * is not an error), -EINVAL on a malformed file, -ENAMETOOLONG when a path
 * does not fit in dir, or another -errno from open/read.  out is zeroed on
 * failure.  Any thread may call it; it uses about 10 KiB of stack. */
int cz_cgroup_mem_find(const char *root, struct cz_cgroup_mem *out);

/* Current usage of cg (from cz_cgroup_mem_find): usage is memory.current (v2)
 * or memory.usage_in_bytes (v1); working_set is usage minus the inactive file
 * pages (memory.stat "inactive_file" on v2, "total_inactive_file" on v1),
 * never below 0: the kernel reclaims those before it OOM-kills, and it is the
 * number kubelet evicts on.  If memory.stat lacks that line, working_set is
 * usage (an overestimate, never an underestimate).  Returns 0, -ENODEV when
 * cg->version is 0, -EINVAL on a malformed file, or -errno from open/read
 * (-ENOENT for a v2 root cgroup, which has no memory.current).  Only
 * open/read/close on small files with a stack buffer, no allocation: safe to
 * call every 100 ms from any thread. */
int cz_cgroup_mem_usage(const struct cz_cgroup_mem *cg, uint64_t *usage, uint64_t *working_set);

#endif
