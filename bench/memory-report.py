#!/usr/bin/env python3
"""Writes bench/results/memory.md from the memory-*.csv files bench/memory.sh leaves in the
results directory.  Usage: memory-report.py RESULTS_DIR   (standard library only).
Each part's section says when it was measured: parts run separately (--only) keep their CSVs,
so one report can hold parts from different runs."""
import collections
import csv
import math
import os
import statistics
import sys

MIB = 1024.0


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        # a column an older run did not write reads as "" (n/a), not as an error
        return [collections.defaultdict(str, r) for r in csv.DictReader(f)]


def med(vals):
    vals = [v for v in vals if not math.isnan(v)]
    return statistics.median(vals) if vals else math.nan


def rng(vals):
    vals = [v for v in vals if not math.isnan(v)]
    return (min(vals), max(vals)) if vals else (math.nan, math.nan)


def f_mib(kib, digits=1):
    return "n/a" if math.isnan(kib) else f"{kib / MIB:.{digits}f}"


def f_mib_spread(vals, digits=1):
    """median MiB, with (min–max) when there is more than one run and they differ"""
    m = med(vals)
    if math.isnan(m):
        return "n/a"
    lo, hi = rng(vals)
    clean = [v for v in vals if not math.isnan(v)]
    if len(clean) > 1 and hi > lo:
        return f"{m / MIB:.{digits}f} ({lo / MIB:.{digits}f}–{hi / MIB:.{digits}f})"
    return f"{m / MIB:.{digits}f}"


def f_int(v):
    return "n/a" if math.isnan(v) else f"{v:,.0f}"


def f_x(v):
    return "n/a" if math.isnan(v) or math.isinf(v) else f"{v:.2f}×"


def ratio(a, b):
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def table(head, rows, align=None):
    align = align or ["l"] + ["r"] * (len(head) - 1)
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def measured(info, part):
    r = info.get(part)
    if not r:
        return "*Measured: unknown.*"
    return f"*Measured {r['date']} at `{r['git']}`; settings: {r['settings'].replace(';', ',')}.*"


def main():
    res = sys.argv[1]
    info = {r["part"]: r for r in read_csv(os.path.join(res, "memory-runinfo.csv"))}
    warnings = read_csv(os.path.join(res, "memory-warnings.csv"))
    # the env row: "kernel=... cpu=... nproc=..."; values may hold spaces (the CPU model)
    env = {}
    if "env" in info:
        s = info["env"]["settings"]
        keys = ["kernel", "cpu", "nproc", "nginx", "wrk", "catzilla", "governor"]
        for i, k in enumerate(keys):
            start = s.find(k + "=")
            if start < 0:
                continue
            end = len(s)
            for k2 in keys[i + 1:]:
                j = s.find(" " + k2 + "=", start)
                if j >= 0:
                    end = min(end, j)
            env[k] = s[start + len(k) + 1:end].strip()

    L = ["# Catzilla memory suite", ""]
    L.append("Written by `bench/memory.sh` (see \"Memory suite\" in `bench/README.md`). RSS is VmRSS "
             "from `/proc` (for nginx: master + workers summed); MiB = 1024 KiB. Where a cell "
             "shows `a (b–c)`, *a* is the median over the rounds and *b–c* the range.")
    L.append("")
    if env:
        L.append(f"Machine: {env.get('cpu', '?')}, {env.get('nproc', '?')} CPUs, kernel "
                 f"{env.get('kernel', '?')}, governor {env.get('governor', '?')}; "
                 f"{env.get('catzilla', 'catzilla ?')}, nginx {env.get('nginx', '?')}, "
                 f"wrk {env.get('wrk', '?')}. Last run {info['env']['date']}"
                 + (f": `{info['command']['settings']}`." if "command" in info else "."))
        L.append("")

    notes = []

    # ------------------------------------------------------------ churn
    churn = read_csv(os.path.join(res, "memory-churn.csv"))
    if churn:
        L += ["## 1. Churn: jemalloc build vs libc build", "", measured(info, "churn"), ""]
        after_s = churn[0].get("after_s", "?")
        L.append("`bench/churn.sh`: the same server code built with jemalloc (`build/catzilla`) and "
                 "with glibc malloc (`make ALLOCATOR=libc`), 2 workers, 256 connections of "
                 "`bench/churn.lua` (60 % POST /echo with 64 B – 600 KB bodies, 16 KiB and 128 KiB "
                 "files, /plaintext); the builds alternate. RSS in MiB: at start, the peak under "
                 f"load (0.2 s samples) and {after_s} s after the load (catzilla's workers release "
                 "memory after 10 s idle).")
        L.append("")
        rows, m = [], {}
        for b in ("jemalloc", "libc"):
            rs = [r for r in churn if r["build"] == b]
            if not rs:
                continue
            m[b] = {k: med([num(r[k]) for r in rs]) for k in ("start_kib", "peak_kib", "after_kib", "requests")}
            rows.append([f"{b} ({len(rs)} run{'s' if len(rs) != 1 else ''})",
                         f_mib_spread([num(r["start_kib"]) for r in rs]),
                         f_mib_spread([num(r["peak_kib"]) for r in rs]),
                         f_mib_spread([num(r["after_kib"]) for r in rs]),
                         f_int(m[b]["requests"])])
        if "jemalloc" in m and "libc" in m:
            j, c = m["jemalloc"], m["libc"]
            rows.append(["jemalloc ÷ libc", f_x(ratio(j["start_kib"], c["start_kib"])),
                         f_x(ratio(j["peak_kib"], c["peak_kib"])),
                         f_x(ratio(j["after_kib"], c["after_kib"])),
                         f_x(ratio(j["requests"], c["requests"]))])
        L += table(["build", "RSS start", "RSS peak", f"RSS {after_s} s after", "requests"], rows)
        errs = [r for r in churn if r.get("errors")]
        if errs:
            notes.append("churn: wrk reported errors in %d run(s): %s" % (
                len(errs), "; ".join(f"{r['build']} run {r['run']}: {r['errors']}" for r in errs)))
        L.append("")

    # ------------------------------------------------------------ static
    static = read_csv(os.path.join(res, "memory-static.csv"))
    if static:
        st = info.get("static", {}).get("settings", "")
        sset = dict(kv.split("=", 1) for kv in st.split(" ") if "=" in kv)
        L += ["## 2. Static site: catzilla vs nginx", "", measured(info, "static"), ""]
        L.append(f"{sset.get('files', '200')} files of {sset.get('file_kib', '256')} KiB of random "
                 f"data; wrk ({sset.get('wrk_threads', '2')} threads, {sset.get('conns', '64')} "
                 f"connections, {sset.get('duration_s', '?')} s) asks for random files among them. "
                 f"Servers and wrk share CPUs {sset.get('cpus', '0,1').replace(';', ',')}. "
                 "nginx: the bench template (`sendfile`, `open_file_cache`, no access log), "
                 f"`worker_connections {sset.get('nginx_worker_connections', '1024')}`. RSS of the "
                 "whole server sampled every 0.2 s: *start* before the load, *peak* during it, "
                 "*end* 1 s after it. *req/server CPU-s*: requests ÷ the user + system time of the "
                 "server's processes (the CPUs are shared with wrk, so the CPUs' busy time from "
                 "`/proc/stat` would count the client too).")
        L.append("")
        cfgs = [("catzilla", "2"), ("nginx", "2"), ("catzilla", "1"), ("nginx", "1")]
        sm = {}
        rows = []
        for s, w in cfgs:
            rs = [r for r in static if r["server"] == s and r["workers"] == w]
            if not rs:
                continue
            sm[(s, w)] = {k: med([num(r[k]) for r in rs]) for k in
                          ("rss_start_kib", "rss_peak_kib", "rss_end_kib", "pss_start_kib",
                           "pss_peak_kib", "pss_end_kib", "distinct_start_kib", "distinct_end_kib",
                           "rps", "req_per_server_cpu_s",
                           "bytes_per_sec", "non2xx", "socket_errors")}
            m = sm[(s, w)]
            rows.append([s, w, f_mib_spread([num(r["rss_start_kib"]) for r in rs]),
                         f_mib_spread([num(r["rss_peak_kib"]) for r in rs]),
                         f_mib_spread([num(r["rss_end_kib"]) for r in rs]),
                         f_mib(m["distinct_start_kib"]), f_mib(m["distinct_end_kib"]),
                         f_int(m["rps"]),
                         "n/a" if math.isnan(m["bytes_per_sec"]) else f"{m['bytes_per_sec'] / 1e9:.2f}",
                         f_int(m["req_per_server_cpu_s"])])
            bad = [r for r in rs if num(r["non2xx"]) > 0 or num(r["socket_errors"]) > 0 or math.isnan(num(r["rps"]))]
            if bad:
                notes.append(f"static {s} {w} worker(s): {len(bad)} run(s) with non-2xx answers, socket "
                             "errors or no result (see memory-static.csv)")
        L += table(["server", "workers", "RSS start (MiB)", "RSS peak (MiB)", "RSS end (MiB)",
                    "distinct start (MiB)", "distinct end (MiB)", "req/s", "GB/s",
                    "req/server CPU-s"], rows)
        L.append("")
        L.append("*distinct*: the server's resident pages with each physical page counted once "
                 "(`/proc/PID/pagemap`), read at start and at end. nginx's master and workers share "
                 "most of their pages (fork, the same binary and libraries): summed VmRSS counts "
                 "those once per process, *distinct* once. For catzilla, one process, the two are "
                 "the same. PSS (`smaps_rollup`, in the CSV) would split shared library pages with "
                 "every other process on the machine that maps them, so it moves with whatever "
                 "else runs.")
        L.append("")
        c2, n2 = sm.get(("catzilla", "2")), sm.get(("nginx", "2"))
        if c2 and n2:
            L.append("catzilla ÷ nginx at 2 workers (below 1.00× catzilla uses less memory; above "
                     "1.00× it serves more): "
                     f"RSS start {f_x(ratio(c2['rss_start_kib'], n2['rss_start_kib']))}, "
                     f"peak {f_x(ratio(c2['rss_peak_kib'], n2['rss_peak_kib']))}, "
                     f"end {f_x(ratio(c2['rss_end_kib'], n2['rss_end_kib']))}; "
                     f"distinct start {f_x(ratio(c2['distinct_start_kib'], n2['distinct_start_kib']))}, "
                     f"end {f_x(ratio(c2['distinct_end_kib'], n2['distinct_end_kib']))}; "
                     f"req/s {f_x(ratio(c2['rps'], n2['rps']))}, "
                     f"req per server CPU-s {f_x(ratio(c2['req_per_server_cpu_s'], n2['req_per_server_cpu_s']))}.")
            L.append("")
        # per-worker cost
        rows = []
        for s in ("catzilla", "nginx"):
            a, b = sm.get((s, "1")), sm.get((s, "2"))
            if not a or not b:
                continue
            d = {k: b[k] - a[k] for k in ("rss_start_kib", "rss_peak_kib", "rss_end_kib",
                                          "distinct_start_kib", "distinct_end_kib")}
            rows.append([s, f_mib(d["rss_start_kib"], 2), f_mib(d["rss_peak_kib"], 2),
                         f_mib(d["rss_end_kib"], 2), f_mib(b["rss_peak_kib"] + 14 * d["rss_peak_kib"], 0),
                         f_mib(d["distinct_start_kib"], 2), f_mib(d["distinct_end_kib"], 2),
                         f_mib(b["distinct_end_kib"] + 14 * d["distinct_end_kib"], 0)])
        if rows:
            L.append("**Per-worker cost** = memory(2 workers) − memory(1 worker), from the medians, "
                     "MiB. Projection for 16 workers = memory(2 workers) + 14 × per-worker cost "
                     "(RSS: at peak; distinct: at end, 1 s after the load, when it is read): a linear "
                     "extrapolation with the same 64 connections spread over more workers.")
            L.append("")
            L += table(["server", "RSS/worker, start", "RSS/worker, peak", "RSS/worker, end",
                        "RSS peak, 16 workers", "distinct/worker, start", "distinct/worker, end",
                        "distinct end, 16 workers"], rows)
            L.append("")
            reg = {w: med([num(r["registered_kib"]) / int(w) for r in static
                           if r["server"] == "catzilla" and r["workers"] == w]) for w in ("1", "2")}
            if not math.isnan(reg["2"]):
                L.append(f"catzilla registers {f_mib(reg['2'], 2)} MiB per worker with io_uring "
                         "(`registered_bytes` in `/_catzilla/stats`): its ring of provided receive "
                         "buffers (`--recv-buffers` × `--recv-buffer-size`, 1024 × 4 KiB by default) "
                         "and file-cache buffers. The ring is allocated at start but becomes "
                         "resident only as a load cycles through it, so it shows in *peak*, not in "
                         "*start*, and a worker idle for `--idle-release` (10 s) drops those pages "
                         "again. The 256 KiB files are above `--file-cache-max-file` (128 KiB): "
                         "catzilla splices them from the page cache, as nginx sendfile()s them, and "
                         "neither server caches their contents.")
                L.append("")

    # ------------------------------------------------------------ idle
    idle = read_csv(os.path.join(res, "memory-idle.csv"))
    if idle:
        L += ["## 3. Idle keep-alive connections: catzilla vs nginx", "", measured(info, "idle"), ""]
        n_conns = info.get("idle", {}).get("settings", "")
        nc = dict(kv.split("=", 1) for kv in n_conns.split(" ") if "=" in kv).get("conns", "10000")
        nconn = int(nc)
        L.append(f"`bench/idleconns.c` opens {nconn:,} keep-alive connections, sends one `GET "
                 "/plaintext` on each, reads the answers and holds them idle. Both servers have 2 "
                 "workers (nginx: `worker_connections` "
                 f"{nconn + 1024:,} each). *fresh*: RSS after one request; *before*: after a 1 s "
                 "wrk load (64 connections) and 1 s of rest, so buffers any load touches are not "
                 "counted per connection; *held*: 1 s after every connection was answered. "
                 "**bytes/conn = (held − before) ÷ connections answered.**")
        L.append("")
        im, rows = {}, []
        for s in ("catzilla", "nginx"):
            rs = [r for r in idle if r["server"] == s]
            if not rs:
                continue
            def per_conn(rows_, a, b):
                return [(num(r[b]) - num(r[a])) * 1024 / num(r["conns_ok"])
                        if num(r["conns_ok"]) > 0 else math.nan for r in rows_]
            per = per_conn(rs, "rss_before_kib", "rss_held_kib")
            im[s] = {"per": med(per), "held": med([num(r["rss_held_kib"]) for r in rs]),
                     "before": med([num(r["rss_before_kib"]) for r in rs]),
                     "fresh_per": med(per_conn(rs, "rss_fresh_kib", "rss_held_kib")),
                     "dist_per": med(per_conn(rs, "distinct_before_kib", "distinct_held_kib")),
                     "dist_held": med([num(r["distinct_held_kib"]) for r in rs]),
                     "slab": med(per_conn(rs, "slab_before_kib", "slab_held_kib"))}
            lo, hi = rng(per)
            per_s = f_int(im[s]["per"]) + (f" ({lo:,.0f}–{hi:,.0f})" if len(rs) > 1 and hi > lo else "")
            rows.append([s, f_int(med([num(r["conns_ok"]) for r in rs])),
                         f_mib_spread([num(r["rss_fresh_kib"]) for r in rs]),
                         f_mib_spread([num(r["rss_before_kib"]) for r in rs]),
                         f_mib_spread([num(r["rss_held_kib"]) for r in rs]),
                         "**" + per_s + "**", f_int(im[s]["fresh_per"]),
                         f_mib(im[s]["dist_held"]), f_int(im[s]["dist_per"]), f_int(im[s]["slab"])])
            bad = [r for r in rs if num(r["conns_failed"]) > 0 or num(r["closed_by_server"]) > 0]
            if bad:
                notes.append(f"idle {s}: {len(bad)} run(s) where connections failed or the server "
                             "closed some early (see memory-idle.csv)")
        if "catzilla" in im and "nginx" in im:
            c, n = im["catzilla"], im["nginx"]
            rows.append(["catzilla ÷ nginx", "", "", f_x(ratio(c["before"], n["before"])),
                         f_x(ratio(c["held"], n["held"])), "**" + f_x(ratio(c["per"], n["per"])) + "**",
                         f_x(ratio(c["fresh_per"], n["fresh_per"])), f_x(ratio(c["dist_held"], n["dist_held"])),
                         f_x(ratio(c["dist_per"], n["dist_per"])), f_x(ratio(c["slab"], n["slab"]))])
        L += table(["server", "conns", "RSS fresh (MiB)", "RSS before (MiB)", "RSS held (MiB)",
                    "bytes/conn", "bytes/conn from fresh", "distinct held (MiB)", "distinct bytes/conn",
                    "kernel slab bytes/conn"], rows)
        L.append("")
        L.append("*bytes/conn from fresh* = (held − fresh) ÷ connections: what the first 10,000 "
                 "connections cost a server that had served nothing yet, warm-up memory included. "
                 "*distinct*: as in part 2, each physical page counted once.")
        L.append("")
        probe = [r for r in idle if r["server"] == "nginx-wc1024"]
        big = [r for r in idle if r["server"] == "nginx"]
        if probe and big:
            pre = med([num(r["rss_before_kib"]) for r in big]) - med([num(r["rss_before_kib"]) for r in probe])
            L.append(f"nginx allocates its connection and event arrays for all `worker_connections` "
                     f"when a worker starts, so that part of its per-connection cost is in *before*: "
                     f"the same nginx with `worker_connections 1024` has "
                     f"{f_mib(med([num(r['rss_before_kib']) for r in probe]))} MiB before, "
                     f"{f_mib(pre)} MiB less. Counting that preallocation for the {nconn:,} "
                     f"connections, nginx costs about "
                     f"{f_int((im['nginx']['held'] - med([num(r['rss_before_kib']) for r in probe])) * 1024 / nconn)} "
                     f"bytes per connection.")
            L.append("")
        L.append("*Kernel slab bytes/conn*: the change of the machine's `Slab` (`/proc/meminfo`) over "
                 "the same interval ÷ connections: socket and io_uring structures live in the "
                 "kernel, not in any RSS. It covers both ends of every connection (the client's "
                 "sockets too) and anything else the machine did meanwhile: indicative only.")
        L.append("")

    # ------------------------------------------------------------ soak
    soak = read_csv(os.path.join(res, "memory-soak.csv"))
    if soak:
        sset = dict(kv.split("=", 1) for kv in info.get("soak", {}).get("settings", "").split(" ") if "=" in kv)
        load_s = num(sset.get("load_s"))
        L += ["## 4. Soak: jemalloc build vs libc build side by side", "", measured(info, "soak"), ""]
        L.append(f"Both builds run at the same time, 1 worker each, pinned to CPU "
                 f"{sset.get('server_cpus', '1')}; two wrk instances ({sset.get('conns', '64')} "
                 f"connections each, `bench/churn.lua`) on CPU {sset.get('client_cpus', '0')} load "
                 f"them for {sset.get('load_s', '?')} s; VmRSS every 2 s "
                 f"(`memory-soak.csv`), then {sset.get('tail_s', '?')} s more without load. "
                 "*start*: first sample; *peak* and *mean*: over the load; *end*: the last sample "
                 "under load; *idle*: the last sample after it.")
        L.append("")
        wrk = {r["build"]: r for r in read_csv(os.path.join(res, "memory-soak-wrk.csv"))}
        rows, sm = [], {}
        for b, col in (("jemalloc", "jemalloc_kib"), ("libc", "libc_kib")):
            pts = [(num(r["seconds"]), num(r[col])) for r in soak]
            load = [v for t, v in pts if math.isnan(load_s) or t <= load_s]
            tail = [v for t, v in pts if not math.isnan(load_s) and t > load_s]
            if not load:
                continue
            sm[b] = {"start": load[0], "peak": max(load), "end": load[-1],
                     "mean": statistics.mean(load), "idle": tail[-1] if tail else math.nan}
            w = wrk.get(b, {})
            rows.append([b, f_mib(sm[b]["start"]), f_mib(sm[b]["peak"]), f_mib(sm[b]["end"]),
                         f_mib(sm[b]["mean"]), f_mib(sm[b]["idle"]), f_int(num(w.get("requests"))),
                         f_int(num(w.get("rps")))])
            if num(w.get("non2xx")) > 0 or num(w.get("socket_errors")) > 0:
                notes.append(f"soak {b}: wrk reported {w.get('non2xx')} non-2xx answers and "
                             f"{w.get('socket_errors')} socket errors")
        if "jemalloc" in sm and "libc" in sm:
            j, c = sm["jemalloc"], sm["libc"]
            rows.append(["jemalloc ÷ libc"] + [f_x(ratio(j[k], c[k])) for k in
                                                ("start", "peak", "end", "mean", "idle")] + ["", ""])
        L += table(["build", "start (MiB)", "peak (MiB)", "end (MiB)", "mean (MiB)", "idle (MiB)",
                    "requests", "req/s"], rows)
        L.append("")
        if os.path.exists(os.path.join(res, "memory-soak.png")):
            L += ["![RSS over time, jemalloc and libc builds](memory-soak.png)", ""]

    # ------------------------------------------------------------ pressure
    pressure = os.path.join(res, "memory-pressure.txt")
    if os.path.exists(pressure):
        L += ["## 5. Under a 48 MiB cgroup limit", "",
              measured(info, "pressure"), "",
              "`bench/pressure.sh`: 2 workers in a cgroup v1 memory cgroup, the churn load (256 "
              "connections) plus random 256 KiB files (64 connections) at once. \"guard off\" is "
              "`--memory-limit 1000g`, which keeps the memory guard from acting.", "", "```"]
        with open(pressure) as f:
            L += [line.rstrip("\n") for line in f]
        L += ["```", ""]

    # ------------------------------------------------------------ notes
    if warnings:
        notes += [f"{w['part']} ({w['date']}): {w['warning']}" for w in warnings]
    if notes:
        L += ["## Problems and warnings", ""] + [f"- {n}" for n in notes] + [""]

    L += ["## Files", "",
          "`memory-churn.csv` (every churn run), `memory-static.csv` (every static run), "
          "`memory-static-samples.csv` (the 0.2 s RSS samples), `memory-idle.csv`, "
          "`memory-soak.csv` (seconds, jemalloc_kib, libc_kib), `memory-soak-wrk.csv`, "
          "`memory-soak.png`, `memory-runinfo.csv` (when each part ran, with its settings), "
          "`memory-warnings.csv`.", ""]
    with open(os.path.join(res, "memory.md"), "w") as f:
        f.write("\n".join(L))
    print("\n".join(L))


if __name__ == "__main__":
    main()
