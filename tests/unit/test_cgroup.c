/* Unit tests for src/core/cgroup.c: memory cgroup discovery on fake /proc and
 * /sys/fs/cgroup trees under a temporary root (v1, v2, hybrid, container
 * mount roots, ancestors' limits, malformed files, usage), then the real
 * machine, and a real v1 cgroup with a limit that a forked child is moved into.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/harness.h"
#include "core/cgroup.h"

#define MiB (1024ULL * 1024)
#define V1_NO_LIMIT "9223372036854771712\n"

static char base[64];

static void tree_setup(void)
{
    strcpy(base, "/tmp/cz_cgroup_XXXXXX");
    cr_assert_not_null(mkdtemp(base), "mkdtemp: %s", strerror(errno));
}

static void tree_teardown(void)
{
    if (base[0])
        rm_tree(base);
    base[0] = '\0';
}

TestSuite(cgroup, .init = tree_setup, .fini = tree_teardown);

/* Write base/rel, creating its directories. */
static void put(const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    for (char *s = path + strlen(base) + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
        *s = '/';
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
}

static void expect_dir(const struct cz_cgroup_mem *cg, const char *rel)
{
    char want[1024];
    snprintf(want, sizeof(want), "%s%s", base, rel);
    cr_expect_str_eq(cg->dir, want);
}

static struct cz_cgroup_mem find_ok(void)
{
    struct cz_cgroup_mem cg;
    int rc = cz_cgroup_mem_find(base, &cg);
    cr_assert_eq(rc, 0, "cz_cgroup_mem_find: %d (%s)", rc, strerror(-rc));
    return cg;
}

/* A systemd host's mountinfo in hybrid mode: v1 controllers, cgroup2 at
 * unified (whose options name "memory_recursiveprot", not "memory"). */
static const char v1_mountinfo[] =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
    "25 22 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "26 25 0:24 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755\n"
    "27 26 0:25 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 "
    "cgroup2 rw,nsdelegate,memory_recursiveprot\n"
    "28 26 0:26 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup "
    "cgroup rw,xattr,name=systemd\n"
    "31 26 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup "
    "cgroup rw,cpu,cpuacct\n"
    "35 26 0:33 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:17 - cgroup "
    "cgroup rw,memory\n";

static const char v1_proc_cgroup[] = "12:pids:/user.slice/user-0.slice\n"
                                     "4:memory:/user.slice/app\n"
                                     "2:cpu,cpuacct:/user.slice\n"
                                     "1:name=systemd:/user.slice/app\n"
                                     "0::/user.slice/app\n";

static void v1_tree(const char *root_limit, const char *parent_limit, const char *own_limit)
{
    put("proc/self/cgroup", v1_proc_cgroup);
    put("proc/self/mountinfo", v1_mountinfo);
    put("sys/fs/cgroup/memory/memory.limit_in_bytes", root_limit);
    put("sys/fs/cgroup/memory/user.slice/memory.limit_in_bytes", parent_limit);
    put("sys/fs/cgroup/memory/user.slice/app/memory.limit_in_bytes", own_limit);
}

Test(cgroup, v1_limit)
{
    v1_tree(V1_NO_LIMIT, V1_NO_LIMIT, "268435456\n");
    struct cz_cgroup_mem cg = find_ok();
    cr_expect_eq(cg.version, 1);
    cr_expect_eq(cg.max, 256 * MiB);
    cr_expect_eq(cg.high, 0);
    expect_dir(&cg, "/sys/fs/cgroup/memory/user.slice/app");
}

Test(cgroup, v1_unlimited)
{
    v1_tree(V1_NO_LIMIT, V1_NO_LIMIT, V1_NO_LIMIT);
    struct cz_cgroup_mem cg = find_ok();
    cr_expect_eq(cg.version, 1);
    cr_expect_eq(cg.max, 0, "9223372036854771712 is unlimited, got %llu",
                 (unsigned long long)cg.max);
    expect_dir(&cg, "/sys/fs/cgroup/memory/user.slice/app");

    /* Other page sizes round PAGE_COUNTER_MAX differently: anything >= 2^60 is none. */
    put("sys/fs/cgroup/memory/user.slice/app/memory.limit_in_bytes", "1152921504606846976\n");
    cr_expect_eq(find_ok().max, 0);
    put("sys/fs/cgroup/memory/user.slice/app/memory.limit_in_bytes", "1152921504606846975\n");
    cr_expect_eq(find_ok().max, 1152921504606846975ULL);
}

/* memory among several controllers of one v1 hierarchy, on both sides. */
Test(cgroup, v1_comounted_controllers)
{
    put("proc/self/cgroup", "7:cpu,memory,pids:/job\n0::/\n");
    put("proc/self/mountinfo", "40 26 0:40 / /cg rw - cgroup none rw,cpu,memory,pids\n");
    put("cg/memory.limit_in_bytes", V1_NO_LIMIT);
    put("cg/job/memory.limit_in_bytes", "1048576");
    struct cz_cgroup_mem cg = find_ok();
    cr_expect_eq(cg.version, 1);
    cr_expect_eq(cg.max, 1 * MiB, "no trailing newline is fine");
    expect_dir(&cg, "/cg/job");
}

static const char v2_mountinfo[] =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";

static void v2_tree(const char *own_max, const char *own_high)
{
    put("proc/self/cgroup", "0::/system.slice/cz.service\n");
    put("proc/self/mountinfo", v2_mountinfo);
    put("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    put("sys/fs/cgroup/system.slice/memory.max", "max\n");
    put("sys/fs/cgroup/system.slice/memory.high", "max\n");
    put("sys/fs/cgroup/system.slice/cz.service/memory.max", own_max);
    put("sys/fs/cgroup/system.slice/cz.service/memory.high", own_high);
}

Test(cgroup, v2_max_and_high)
{
    v2_tree("536870912\n", "402653184\n");
    struct cz_cgroup_mem cg = find_ok();
    cr_expect_eq(cg.version, 2);
    cr_expect_eq(cg.max, 512 * MiB);
    cr_expect_eq(cg.high, 384 * MiB);
    expect_dir(&cg, "/sys/fs/cgroup/system.slice/cz.service");
}

Test(cgroup, v2_max_is_unlimited)
{
    v2_tree("max\n", "max\n");
    struct cz_cgroup_mem cg = find_ok();
    cr_expect_eq(cg.version, 2);
    cr_expect_eq(cg.max, 0);
    cr_expect_eq(cg.high, 0);
    expect_dir(&cg, "/sys/fs/cgroup/system.slice/cz.service");
}

/* The process sits in a v2 root cgroup: no memory.max anywhere, but the
 * controller is there, so it is v2 with no limit. */
Test(cgroup, v2_root_cgroup)
{
    put("proc/self/cgroup", "0::/\n");
    put("proc/self/mountinfo", v2_mountinfo);
    put("sys/fs/cgroup/cgroup.controllers", "cpu io memory pids\n");
    struct cz_cgroup_mem cg = find_ok();
    cr_expect_eq(cg.version, 2);
    cr_expect_eq(cg.max, 0);
    expect_dir(&cg, "/sys/fs/cgroup");
    uint64_t u, ws;
    cr_expect_eq(cz_cgroup_mem_usage(&cg, &u, &ws), -ENOENT, "a root cgroup has no memory.current");
}

/* v2 charges a cgroup without the memory controller to the nearest ancestor
 * that has it: that ancestor is the cgroup to watch. */
Test(cgroup, v2_controller_only_on_ancestor)
{
    put("proc/self/cgroup", "0::/app.slice/cz/worker\n");
    put("proc/self/mountinfo", v2_mountinfo);
    put("sys/fs/cgroup/cgroup.controllers", "cpu io memory pids\n");
    put("sys/fs/cgroup/app.slice/memory.max", "max\n");
    put("sys/fs/cgroup/app.slice/cz/memory.max", "104857600\n");
    put("sys/fs/cgroup/app.slice/cz/worker/cgroup.controllers", "cpu\n");
    struct cz_cgroup_mem cg = find_ok();
    cr_expect_eq(cg.version, 2);
    cr_expect_eq(cg.max, 100 * MiB);
    cr_expect_eq(cg.high, 0, "memory.high missing: none");
    expect_dir(&cg, "/sys/fs/cgroup/app.slice/cz");
}

/* Docker without a cgroup namespace: /proc/self/cgroup names the host path,
 * mountinfo says that path is the mount's root. */
Test(cgroup, container_mount_root_v1)
{
    put("proc/self/cgroup", "13:memory:/docker/abc123\n0::/docker/abc123\n");
    put("proc/self/mountinfo",
        "1200 1100 0:100 / / rw,relatime - overlay overlay rw,lowerdir=/l1:/l2\n"
        /* a decoy: the same hierarchy, another part of it */
        "1230 1200 0:32 /docker/abc1234 /other ro - cgroup cgroup rw,memory\n"
        "1234 1200 0:32 /docker/abc123 /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime "
        "master:17 - cgroup cgroup rw,memory\n");
    put("other/memory.limit_in_bytes", "1\n");
    put("sys/fs/cgroup/memory/memory.limit_in_bytes", "1073741824\n");
    struct cz_cgroup_mem cg = find_ok();
    cr_expect_eq(cg.version, 1);
    cr_expect_eq(cg.max, 1024 * MiB);
    expect_dir(&cg, "/sys/fs/cgroup/memory");

    /* A child cgroup inside the container: the container's limit still binds. */
    put("proc/self/cgroup", "13:memory:/docker/abc123/worker\n0::/docker/abc123\n");
    put("sys/fs/cgroup/memory/worker/memory.limit_in_bytes", V1_NO_LIMIT);
    cg = find_ok();
    cr_expect_eq(cg.max, 1024 * MiB);
    expect_dir(&cg, "/sys/fs/cgroup/memory/worker");
}

Test(cgroup, container_mount_root_v2)
{
    put("proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
    put("proc/self/mountinfo", "700 600 0:26 /kubepods/pod1/ctr /sys/fs/cgroup ro,nosuid - cgroup2 "
                               "cgroup rw,nsdelegate\n");
    put("sys/fs/cgroup/memory.max", "209715200\n");
    put("sys/fs/cgroup/memory.high", "max\n");
    struct cz_cgroup_mem cg = find_ok();
    cr_expect_eq(cg.version, 2);
    cr_expect_eq(cg.max, 200 * MiB);
    cr_expect_eq(cg.high, 0);
    expect_dir(&cg, "/sys/fs/cgroup");
}

/* With a cgroup namespace both say "/"; a cgroup outside the namespace shows
 * as "/../.." and is not ours to read. */
Test(cgroup, cgroup_namespace)
{
    put("proc/self/cgroup", "0::/\n");
    put("proc/self/mountinfo", "700 600 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    put("sys/fs/cgroup/memory.max", "33554432\n");
    struct cz_cgroup_mem cg = find_ok();
    cr_expect_eq(cg.version, 2);
    cr_expect_eq(cg.max, 32 * MiB);
    expect_dir(&cg, "/sys/fs/cgroup");

    put("proc/self/cgroup", "0::/../../elsewhere\n");
    cg = find_ok();
    cr_expect_eq(cg.version, 0, "a path outside the namespace is not followed");
    cr_expect_str_eq(cg.dir, "");
}

Test(cgroup, parent_limit_is_smaller)
{
    v1_tree(V1_NO_LIMIT, "67108864\n", "134217728\n");
    struct cz_cgroup_mem cg = find_ok();
    cr_expect_eq(cg.version, 1);
    cr_expect_eq(cg.max, 64 * MiB, "the parent's 64 MiB binds the child's 128 MiB");
    expect_dir(&cg, "/sys/fs/cgroup/memory/user.slice/app");

    v2_tree("max\n", "157286400\n");
    put("sys/fs/cgroup/system.slice/memory.max", "104857600\n");
    put("sys/fs/cgroup/system.slice/memory.high", "max\n");
    cg = find_ok();
    /* The v1 lines are gone from /proc/self/cgroup, so this is the v2 tree. */
    cr_expect_eq(cg.version, 2);
    cr_expect_eq(cg.max, 100 * MiB);
    cr_expect_eq(cg.high, 150 * MiB);
    expect_dir(&cg, "/sys/fs/cgroup/system.slice/cz.service");
}

/* A mount point with a space is escaped as \040 in mountinfo. */
Test(cgroup, escaped_mount_point)
{
    put("proc/self/cgroup", "0::/a\n");
    put("proc/self/mountinfo", "30 23 0:26 / /my\\040cg rw - cgroup2 cgroup2 rw\n");
    put("my cg/a/memory.max", "4096\n");
    struct cz_cgroup_mem cg = find_ok();
    cr_expect_eq(cg.max, 4096);
    expect_dir(&cg, "/my cg/a");
}

/* Hybrid: the process is in a v2 cgroup too, but memory is bound to v1. */
Test(cgroup, hybrid_prefers_v1)
{
    v1_tree(V1_NO_LIMIT, V1_NO_LIMIT, "268435456\n");
    put("sys/fs/cgroup/unified/user.slice/app/memory.max", "1\n");
    struct cz_cgroup_mem cg = find_ok();
    cr_expect_eq(cg.version, 1);
    cr_expect_eq(cg.max, 256 * MiB);
}

/* An overlay mount's option list can exceed the 8 KiB line buffer. */
Test(cgroup, long_mountinfo_line)
{
    static char info[40000];
    size_t n =
        (size_t)snprintf(info, sizeof(info), "1 0 0:1 / / rw - overlay overlay rw,lowerdir=");
    while (n < 20000)
        n += (size_t)snprintf(info + n, sizeof(info) - n, "/var/lib/docker/overlay2/l/ABCDEFGH:");
    snprintf(info + n, sizeof(info) - n, "\n%s", v2_mountinfo);
    put("proc/self/mountinfo", info);
    put("proc/self/cgroup", "0::/system.slice/cz.service\n");
    put("sys/fs/cgroup/system.slice/cz.service/memory.max", "8192\n");
    struct cz_cgroup_mem cg = find_ok();
    cr_expect_eq(cg.version, 2);
    cr_expect_eq(cg.max, 8192);
}

static void expect_none(const char *why)
{
    struct cz_cgroup_mem cg;
    memset(&cg, 0xa5, sizeof(cg));
    int rc = cz_cgroup_mem_find(base, &cg);
    cr_expect_eq(rc, 0, "%s: rc %d", why, rc);
    cr_expect_eq(cg.version, 0, "%s", why);
    cr_expect_eq(cg.max, 0, "%s", why);
    cr_expect_str_eq(cg.dir, "", "%s", why);
    uint64_t u, ws;
    cr_expect_eq(cz_cgroup_mem_usage(&cg, &u, &ws), -ENODEV, "%s", why);
}

Test(cgroup, no_memory_controller)
{
    expect_none("no /proc at all");

    put("proc/self/cgroup", "3:cpu:/\n1:name=systemd:/\n0::/\n");
    expect_none("no mountinfo");

    put("proc/self/mountinfo", v1_mountinfo);
    put("sys/fs/cgroup/unified/cgroup.controllers", "\n");
    expect_none("v1 without memory, v2 without controllers");

    put("proc/self/cgroup", "4:memory:/x\n0::/\n");
    put("proc/self/mountinfo", "30 23 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
    expect_none("memory in /proc/self/cgroup but its hierarchy is not mounted");

    put("proc/self/cgroup", "0::/a\n");
    put("proc/self/mountinfo", v2_mountinfo);
    put("sys/fs/cgroup/cgroup.controllers", "cpu io pids\n");
    put("sys/fs/cgroup/a/cgroup.controllers", "cpu\n");
    expect_none("v2 without the memory controller");
}

static void expect_find_error(int want, const char *why)
{
    struct cz_cgroup_mem cg;
    memset(&cg, 0xa5, sizeof(cg));
    int rc = cz_cgroup_mem_find(base, &cg);
    cr_expect_eq(rc, want, "%s: rc %d, want %d", why, rc, want);
    cr_expect_eq(cg.version, 0, "%s: out zeroed", why);
    cr_expect_str_eq(cg.dir, "", "%s: out zeroed", why);
}

Test(cgroup, malformed_limit)
{
    static const char *const bad[] = {
        "12abc\n",                /* trailing garbage */
        "",                       /* empty */
        "\n",                     /* only a newline */
        "-1\n",                   /* what one writes for "no limit", never what one reads */
        " 5\n",                   /* leading space */
        "0x10\n",                 /* not decimal */
        "max\n",                  /* v2's word, not v1's */
        "18446744073709551616\n", /* UINT64_MAX + 1 */
        "1\n2\n",                 /* two values */
        "123456789012345678901234567890123456789012345678901234567890123456789\n", /* too long */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v1_tree(V1_NO_LIMIT, V1_NO_LIMIT, bad[i]);
        expect_find_error(-EINVAL, bad[i]);
    }
    /* A parent's garbage counts too. */
    v1_tree(V1_NO_LIMIT, "lots\n", "4096\n");
    expect_find_error(-EINVAL, "parent");
    /* v1 has no "max"; v2 has nothing else. */
    v2_tree("maximum\n", "max\n");
    expect_find_error(-EINVAL, "v2 memory.max maximum");
    v2_tree("max\n", "high\n");
    expect_find_error(-EINVAL, "v2 memory.high");
    /* UINT64_MAX itself is fine (and unlimited). */
    v2_tree("18446744073709551615\n", "max\n");
    cr_expect_eq(find_ok().max, 0);
}

Test(cgroup, malformed_proc_files)
{
    put("proc/self/mountinfo", v1_mountinfo);
    put("proc/self/cgroup", "hello\n");
    expect_find_error(-EINVAL, "cgroup line without colons");
    put("proc/self/cgroup", "x:memory:/a\n");
    expect_find_error(-EINVAL, "cgroup line with a bad id");
    put("proc/self/cgroup", "4:memory:relative\n");
    expect_find_error(-EINVAL, "relative cgroup path");

    put("proc/self/cgroup", v1_proc_cgroup);
    put("proc/self/mountinfo", "1 2 3\n");
    expect_find_error(-EINVAL, "short mountinfo line");
    put("proc/self/mountinfo", "35 26 0:33 / /sys/fs/cgroup/memory rw shared:17 cgroup\n");
    expect_find_error(-EINVAL, "mountinfo line without the - separator");
}

Test(cgroup, name_too_long)
{
    char line[800] = "4:memory:/";
    memset(line + strlen(line), 'a', 600);
    strcat(line, "\n");
    put("proc/self/cgroup", line);
    put("proc/self/mountinfo", v1_mountinfo);
    expect_find_error(-ENAMETOOLONG, "cgroup path longer than dir");

    /* Short enough for /proc/self/cgroup, too long once the mount point is prepended. */
    char line2[800] = "4:memory:/";
    memset(line2 + strlen(line2), 'b', CZ_CGROUP_DIR_MAX - 12);
    strcat(line2, "\n");
    put("proc/self/cgroup", line2);
    expect_find_error(-ENAMETOOLONG, "mount point + cgroup path longer than dir");

    char root[700];
    memset(root, 'r', sizeof(root) - 1);
    root[0] = '/';
    root[sizeof(root) - 1] = '\0';
    struct cz_cgroup_mem cg;
    cr_expect_eq(cz_cgroup_mem_find(root, &cg), -ENAMETOOLONG, "root longer than a path");
}

static void expect_usage(const struct cz_cgroup_mem *cg, uint64_t usage, uint64_t ws)
{
    uint64_t u = 1, w = 1;
    int rc = cz_cgroup_mem_usage(cg, &u, &w);
    cr_assert_eq(rc, 0, "cz_cgroup_mem_usage: %d (%s)", rc, strerror(-rc));
    cr_expect_eq(u, usage, "usage %llu, want %llu", (unsigned long long)u,
                 (unsigned long long)usage);
    cr_expect_eq(w, ws, "working set %llu, want %llu", (unsigned long long)w,
                 (unsigned long long)ws);
}

Test(cgroup, usage_v1)
{
    const char *dir = "sys/fs/cgroup/memory/user.slice/app";
    char p[256];
    v1_tree(V1_NO_LIMIT, V1_NO_LIMIT, "268435456\n");
    snprintf(p, sizeof(p), "%s/memory.usage_in_bytes", dir);
    put(p, "10485760\n");
    snprintf(p, sizeof(p), "%s/memory.stat", dir);
    /* inactive_file is this cgroup's alone; total_inactive_file includes children. */
    put(p, "cache 3182592\nrss 1679360\ninactive_file 1000\nactive_file 2330624\n"
           "hierarchical_memory_limit 268435456\ntotal_cache 3182592\n"
           "total_inactive_file 2097152\ntotal_active_file 2330624\n");
    struct cz_cgroup_mem cg = find_ok();
    expect_usage(&cg, 10 * MiB, 8 * MiB);

    /* More inactive file pages than usage (the counters are read apart): 0, not a wrap. */
    put(p, "total_inactive_file 20971520\n");
    expect_usage(&cg, 10 * MiB, 0);
    /* No such line: the working set is all of usage. */
    put(p, "cache 1\nrss 2\ntotal_inactive_filex 5\n");
    expect_usage(&cg, 10 * MiB, 10 * MiB);
}

Test(cgroup, usage_v2)
{
    const char *dir = "sys/fs/cgroup/system.slice/cz.service";
    char p[256];
    v2_tree("536870912\n", "max\n");
    snprintf(p, sizeof(p), "%s/memory.current", dir);
    put(p, "5000000\n");
    snprintf(p, sizeof(p), "%s/memory.stat", dir);
    put(p, "anon 1000\nfile 4000000\nkernel 12\nactive_anon 3\ninactive_file 1000000\n"
           "active_file 3000000\n");
    struct cz_cgroup_mem cg = find_ok();
    expect_usage(&cg, 5000000, 4000000);

    /* A memory.stat bigger than the buffer, with a line longer than it. */
    static char big[30000];
    size_t n = 0;
    for (int i = 0; n < 10000; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "counter_%d %d\n", i, i);
    memset(big + n, 'x', 9000);
    n += 9000;
    n += (size_t)snprintf(big + n, sizeof(big) - n, " 7\ninactive_file 250000\nunevictable 0");
    put(p, big);
    expect_usage(&cg, 5000000, 4750000);
}

Test(cgroup, usage_errors)
{
    const char *dir = "sys/fs/cgroup/system.slice/cz.service";
    char p[256];
    v2_tree("max\n", "max\n");
    struct cz_cgroup_mem cg = find_ok();
    uint64_t u = 7, w = 7;
    cr_expect_eq(cz_cgroup_mem_usage(&cg, &u, &w), -ENOENT, "no memory.current");

    snprintf(p, sizeof(p), "%s/memory.current", dir);
    put(p, "lots\n");
    cr_expect_eq(cz_cgroup_mem_usage(&cg, &u, &w), -EINVAL);
    put(p, "100\n");
    cr_expect_eq(cz_cgroup_mem_usage(&cg, &u, &w), -ENOENT, "no memory.stat");
    snprintf(p, sizeof(p), "%s/memory.stat", dir);
    put(p, "anon 1\ninactive_file 12x\n");
    cr_expect_eq(cz_cgroup_mem_usage(&cg, &u, &w), -EINVAL);
    put(p, "anon 1\ninactive_file \n");
    cr_expect_eq(cz_cgroup_mem_usage(&cg, &u, &w), -EINVAL);
    cr_expect(u == 7 && w == 7, "outputs untouched on failure");

    struct cz_cgroup_mem none = {0};
    cr_expect_eq(cz_cgroup_mem_usage(&none, &u, &w), -ENODEV);
}

/* This machine, whatever it is: some memory cgroup, and its usage. */
Test(cgroup_real, this_machine)
{
    struct cz_cgroup_mem cg;
    int rc = cz_cgroup_mem_find(NULL, &cg);
    cr_assert_eq(rc, 0, "cz_cgroup_mem_find(NULL): %d (%s)", rc, strerror(-rc));
    cr_assert(cg.version == 1 || cg.version == 2, "version %d", cg.version);
    cr_expect_eq(access(cg.dir, F_OK), 0, "%s: %s", cg.dir, strerror(errno));
    struct cz_cgroup_mem again;
    cr_assert_eq(cz_cgroup_mem_find("/", &again), 0);
    cr_expect_str_eq(again.dir, cg.dir, "\"/\" is the real root too");
    uint64_t u, ws;
    rc = cz_cgroup_mem_usage(&cg, &u, &ws);
    if (rc == -ENOENT && cg.version == 2)
        return; /* a v2 root cgroup has no memory.current */
    cr_assert_eq(rc, 0, "cz_cgroup_mem_usage(%s): %d (%s)", cg.dir, rc, strerror(-rc));
    cr_expect_gt(u, 0);
    cr_expect_leq(ws, u);
    if (cg.max)
        cr_expect_leq(u, cg.max + 64 * MiB, "usage within reach of the limit");
}

#define V1_MEMORY "/sys/fs/cgroup/memory"
#define REAL_LIMIT 50331648

static char real_dir[128];

struct child_report {
    int rc, usage_rc, version;
    uint64_t max, usage, ws;
    char dir[CZ_CGROUP_DIR_MAX];
};

static void real_cleanup(void)
{
    /* The child was reaped, but the kernel may not have let go of it yet. */
    for (int i = 0; real_dir[0] && i < 100; i++) {
        if (rmdir(real_dir) == 0 || errno == ENOENT)
            break;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    real_dir[0] = '\0';
}

static int write_str(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, s, strlen(s));
    int rc = n == (ssize_t)strlen(s) ? 0 : -errno;
    close(fd);
    return rc;
}

/* In the child: wait until moved, touch fresh memory so that something is
 * charged to the new cgroup, report, and leave without atexit handlers. */
static void child_run(int go_fd, int report_fd)
{
    char c;
    struct child_report r = {0};
    alarm(10);
    if (read(go_fd, &c, 1) != 1)
        _exit(2);
    size_t len = 4 * MiB;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        _exit(3);
    memset(p, 1, len);
    struct cz_cgroup_mem cg;
    r.rc = cz_cgroup_mem_find(NULL, &cg);
    r.version = cg.version;
    r.max = cg.max;
    memcpy(r.dir, cg.dir, sizeof(r.dir));
    r.usage_rc = cz_cgroup_mem_usage(&cg, &r.usage, &r.ws);
    _exit(write(report_fd, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 4);
}

Test(cgroup_real, v1_child_in_limited_cgroup, .fini = real_cleanup)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to create a cgroup");
    if (access(V1_MEMORY "/cgroup.procs", W_OK) != 0)
        cr_skip_test("no writable cgroup v1 memory hierarchy at " V1_MEMORY);
    snprintf(real_dir, sizeof(real_dir), V1_MEMORY "/cztest%d", (int)getpid());
    if (mkdir(real_dir, 0755) != 0) {
        int err = errno;
        real_dir[0] = '\0';
        if (err == EROFS || err == EACCES || err == EPERM)
            cr_skip_test("cannot create a v1 memory cgroup: %s", strerror(err));
        cr_assert_fail("mkdir " V1_MEMORY "/cztest: %s", strerror(err));
    }

    char path[256], num[32];
    snprintf(path, sizeof(path), "%s/memory.limit_in_bytes", real_dir);
    int setup_rc = write_str(path, "50331648");

    int go[2], rep[2];
    cr_assert_eq(pipe(go), 0);
    cr_assert_eq(pipe(rep), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(go[1]);
        close(rep[0]);
        child_run(go[0], rep[1]);
    }
    close(go[0]);
    close(rep[1]);

    /* Checks wait until the cgroup is gone: a failed assertion must not leave it behind. */
    int move_rc = -1;
    if (setup_rc == 0) {
        snprintf(path, sizeof(path), "%s/cgroup.procs", real_dir);
        snprintf(num, sizeof(num), "%d", (int)pid);
        move_rc = write_str(path, num);
    }
    if (move_rc == 0) {
        ssize_t w = write(go[1], "g", 1);
        (void)w;
    } else {
        kill(pid, SIGKILL);
    }
    close(go[1]);
    struct child_report r = {.rc = 1};
    ssize_t got = read(rep[0], &r, sizeof(r));
    close(rep[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    char want_dir[sizeof(real_dir)];
    strcpy(want_dir, real_dir);
    real_cleanup();

    cr_assert_eq(setup_rc, 0, "memory.limit_in_bytes: %s", strerror(-setup_rc));
    cr_assert_eq(move_rc, 0, "cgroup.procs: %s", strerror(-move_rc));
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    cr_assert_eq(got, (ssize_t)sizeof(r));
    cr_assert_eq(r.rc, 0, "find in the child: %d (%s)", r.rc, strerror(-r.rc));
    cr_expect_eq(r.version, 1);
    cr_expect_eq(r.max, REAL_LIMIT, "max %llu", (unsigned long long)r.max);
    cr_expect_str_eq(r.dir, want_dir);
    cr_assert_eq(r.usage_rc, 0, "usage in the child: %d (%s)", r.usage_rc, strerror(-r.usage_rc));
    cr_expect_gt(r.usage, 0);
    cr_expect_leq(r.usage, REAL_LIMIT);
    cr_expect_leq(r.ws, r.usage);
}
