#!/usr/bin/env python3
"""Turns one bench/run.sh run (its raw directory) into bench/results/latest.md, the CSVs and
the PNG charts.  Usage: report.py RAW_DIR RESULTS_DIR   (standard library only)."""
import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import sys

SERVERS = ["catzilla", "nginx", "h2o", "ceiling"]
PEERS = ["nginx", "h2o"]
# bench/ceiling.c: not a peer but this machine's limit for a fixed answer (see bench/README.md)
CEILING = "ceiling"
COLORS = {"catzilla": "#d9480f", "nginx": "#2b8a3e", "h2o": "#1864ab", "ceiling": "#868e96"}
# the throughput scenarios, in report order (the scaling row is added with its CPUs)
SCENARIOS = [
    ("plaintext", "/plaintext, keep-alive, 64 conns"),
    ("pipelined", "/plaintext, pipelined ×16, 64 conns"),
    ("file19", "19 B file, 64 conns"),
    ("file16k", "16 KiB file, 64 conns"),
    ("file1m", "1 MiB file, 16 conns"),
    ("conns1k", "/plaintext, keep-alive, 1,000 conns"),
    ("conns10k", "/plaintext, keep-alive, 10,000 conns"),
]
# issue 13's targets: catzilla's requests per busy CPU-second against the better peer's
TARGETS = [("plaintext", 1.5), ("pipelined", 8.0), ("file19", 1.5), ("file16k", 1.4), ("file1m", 1.2)]
# disturbed runs leave the medians only while at least this many undisturbed runs remain
MIN_CLEAN_RUNS = 2


def num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def median(vals):
    vals = [v for v in vals if not math.isnan(v)]
    return statistics.median(vals) if vals else math.nan


def spread(runs, field):
    vals = [v for v in (num(r.get(field)) for r in runs) if not math.isnan(v)]
    return (min(vals), max(vals)) if vals else (math.nan, math.nan)


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fmt(v, kind):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "short":
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(v) >= div:
                return f"{v / div:.3g}{suffix}"
        return f"{v:.3g}"
    if kind == "gb":
        return f"{v:.2f}"
    if kind == "ms":
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    if kind == "mib":
        return f"{v:.1f}"
    if kind == "kib":
        return f"{v:.2f}"
    if kind == "x":
        return f"{v:.2f}×"
    if kind == "pct":
        return f"{v * 100:.1f} %"
    if kind == "percent":
        return f"{v:.1f} %"
    return str(v)


def advantage(values, better):
    """catzilla's factor against the better peer; > 1 means catzilla is ahead."""
    cz = values.get("catzilla", math.nan)
    peers = [values[p] for p in PEERS if p in values and not math.isnan(values[p])]
    if math.isnan(cz) or not peers or cz == 0:
        return math.nan, None
    if better == "higher":
        best = max(peers)
        return (cz / best if best else math.nan), PEERS[[values.get(p) for p in PEERS].index(best)]
    best = min(peers)
    return best / cz, PEERS[[values.get(p) for p in PEERS].index(best)]


def of_ceiling(values):
    """catzilla as a share of the ceiling responder's figure."""
    cz, ce = values.get("catzilla", math.nan), values.get(CEILING, math.nan)
    return cz / ce if not math.isnan(cz) and not math.isnan(ce) and ce else math.nan


def numeric_leaves(obj, prefix=""):
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(numeric_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix] = float(obj)
    return out


def main():
    raw, results = sys.argv[1], sys.argv[2]
    os.makedirs(results, exist_ok=True)
    env = {}
    if os.path.exists(os.path.join(raw, "env.txt")):
        for line in open(os.path.join(raw, "env.txt")):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v

    runs = read_csv(os.path.join(raw, "runs.csv"))
    lat = read_csv(os.path.join(raw, "latency.csv"))
    idle = read_csv(os.path.join(raw, "idle.csv"))
    mem = read_csv(os.path.join(raw, "memory.csv"))

    # ------------------------------------------------------------ medians
    med = {}      # (scenario, server) -> {field: median over "runs", the runs the medians use}
    problems = []
    groups = {}
    disturbed = excluded = 0
    for r in runs:
        groups.setdefault((r["scenario"], r["server"]), []).append(r)
    for key, rows in groups.items():
        ok = [r for r in rows if not math.isnan(num(r["rps"]))]
        clean = [r for r in ok if r.get("disturbed") != "1"]
        used = clean if len(clean) >= MIN_CLEAN_RUNS else ok
        med[key] = {f: median([num(r.get(f)) for r in used])
                    for f in ("rps", "bytes_per_sec", "p50_us", "p99_us", "req_per_busy_s", "busy_pct")}
        med[key].update(runs=used, n=len(used), disturbed=len(used) - len(clean))
        disturbed += len(ok) - len(clean)
        excluded += len(ok) - len(used)
        for r in rows:
            n2, se = int(num(r["non2xx"]) or 0), int(num(r["socket_errors"]) or 0)
            if math.isnan(num(r["rps"])):
                problems.append(f"round {r['round']} {r['scenario']} {r['server']}: no result (server did not start or wrk failed)")
            elif n2 or se:
                problems.append(f"round {r['round']} {r['scenario']} {r['server']}: {n2} non-2xx, {se} socket errors")
            if r in ok and r not in clean:
                other = num(r.get("foreign_cpu_pct"))
                problems.append(f"round {r['round']} {r['scenario']} {r['server']}: disturbed (steal "
                                f"{fmt(num(r.get('steal_pct')), 'percent')} of the server CPU"
                                + ("" if math.isnan(other) else f", other processes {fmt(other, 'percent')} of a core "
                                   "on the server's CPUs") + "); "
                                + ("left out of the medians" if r not in used else
                                   f"kept in the medians, for want of {MIN_CLEAN_RUNS} undisturbed runs"))

    idle_med = {}
    for srv in SERVERS:
        rows = [r for r in idle if r["server"] == srv]
        if not rows:
            continue
        after = median([num(r["rss_after_kib"]) for r in rows])
        per = median([(num(r["rss_after_kib"]) - num(r["rss_before_kib"])) / num(r["conns_ok"])
                      if num(r["conns_ok"]) > 0 else math.nan for r in rows])
        ok = median([num(r["conns_ok"]) for r in rows])
        idle_med[srv] = {"after_mib": after / 1024, "per_kib": per, "ok": ok,
                         "before_mib": median([num(r["rss_before_kib"]) for r in rows]) / 1024}
        for r in rows:
            if num(r["conns_failed"]) > 0 or num(r["closed_by_server"]) > 0:
                problems.append(f"round {r['round']} idle {srv}: {r['conns_failed']} connections failed, "
                                f"{r['closed_by_server']} closed by the server while idle")

    lat_med = {}   # server -> {field: median over its undisturbed runs}
    lat_fields = ("p50_us", "p90_us", "p99_us", "p999_us", "max_us", "busy_pct", "achieved_rps")
    for srv in SERVERS:
        rows_ = [r for r in lat if r["server"] == srv and not math.isnan(num(r["p50_us"]))]
        clean = [r for r in rows_ if r.get("disturbed") != "1"]
        used = clean if len(clean) >= MIN_CLEAN_RUNS else rows_
        if used:
            lat_med[srv] = {f: median([num(r[f]) for r in used]) for f in lat_fields}
            lat_med[srv]["runs"] = used
        for r in lat:
            if r["server"] != srv:
                continue
            if math.isnan(num(r["p50_us"])):
                problems.append(f"round {r['round']} latency {srv}: no result")
            elif num(r["errors"]) > 0:
                problems.append(f"round {r['round']} latency {srv}: {r['errors']} errors")
            if r.get("disturbed") == "1":
                problems.append(f"round {r['round']} latency {srv}: disturbed (steal {r['steal_pct']} %)")

    # ------------------------------------------------------------ summary rows
    def vals(scen, field, scale=1.0):
        return {s: med[(scen, s)][field] * scale for s in SERVERS if (scen, s) in med}

    workers = env.get("scale_threads", "2")
    throughput = SCENARIOS + [("scaling", f"/plaintext, {workers} workers on CPUs "
                                          f"{env.get('scale_server_cpus', '?')} (client shares them)")]

    def throughput_rows(field):
        """(scenario, label, medians per server) of the throughput scenarios with a figure for field."""
        out = [(scen, label, vals(scen, field)) for scen, label in throughput]
        return [r for r in out if any(not math.isnan(x) for x in r[2].values())]

    # the two throughput tables: (title, field, unit, what follows each cell, introduction)
    tables = [
        ("Requests per second", "rps", "req/s", None,
         "wrk's Requests/sec."),
        ("Requests per busy CPU-second", "req_per_busy_s", "req/busy CPU-s",
         lambda m: f", busy {m['busy_pct']:.0f} %",
         "wrk's request count ÷ the busy time of the server's CPU over the run, in CPU-seconds from "
         "/proc/stat: user + nice + system + irq + softirq. Idle and iowait are not busy (a worker "
         "waiting in io_uring_enter is accounted as iowait), nor is steal. This is all the work done on "
         "the server's core, its loopback packet work included, per request: the fair comparison when "
         "the client, not the server, limits req/s. After the comma, the median busy share of the server "
         "CPU: well below 100 % the server was waiting for the client; near 100 % this figure equals "
         "req/s, within the counters' 10 ms resolution. Rows whose client shares the server's CPUs "
         "(scaling) have no figure: their busy time is the client's too."),
    ]
    spec = [
        ("1 MiB file, 16 conns", "file1m", "bytes_per_sec", 1e-9, "GB/s", "higher", "gb"),
        ("latency p50, /plaintext 64 conns", "plaintext", "p50_us", 1e-3, "ms", "lower", "ms"),
        ("latency p99, /plaintext 64 conns", "plaintext", "p99_us", 1e-3, "ms", "lower", "ms"),
    ]
    rows = []
    for label, scen, field, scale, unit, better, kind in spec:
        v = vals(scen, field, scale)
        if v:
            rows.append((label, unit, better, kind, v))
    sc = vals("scaling", "rps")
    if sc:
        one = vals("plaintext", "rps")
        factor = {s: sc[s] / one[s] for s in sc if s in one and one[s]}
        if factor:
            rows.append((f"scaling: {workers} workers ÷ 1 worker", "×", "higher", "x", factor))
    for field, what in (("req_per_busy_s", "requests per busy CPU-second"),):
        flat = {}
        for srv in SERVERS:
            a, b = med.get(("plaintext", srv)), med.get(("conns10k", srv))
            if a and b and a[field] and not math.isnan(a[field]) and not math.isnan(b[field]):
                flat[srv] = b[field] / a[field]
        if flat:
            rows.append((f"{what}, 10,000 conns ÷ 64 conns", "×", "higher", "x", flat))
    if idle_med:
        n = env.get("idle_conns", "10000")
        rows.append((f"RSS with {int(float(n)):,} idle keep-alive conns", "MiB", "lower", "mib",
                     {s: idle_med[s]["after_mib"] for s in idle_med}))
        rows.append(("RSS per idle connection", "KiB", "lower", "kib",
                     {s: idle_med[s]["per_kib"] for s in idle_med}))

    present = [s for s in SERVERS if any(k[1] == s for k in med) or s in idle_med or s in lat_med] or SERVERS
    thr_rows = [(label, unit, "higher", "int", v)
                for _, field, unit, _, _ in tables for _, label, v in throughput_rows(field)]
    with open(os.path.join(results, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario", "unit", "better", *present, "catzilla_vs_best_peer", "catzilla_of_ceiling"])
        for label, unit, better, kind, v in thr_rows + rows:
            adv, _ = advantage(v, better)
            ceil = of_ceiling(v) if unit.startswith("req") else math.nan
            w.writerow([label, unit, better, *[("" if math.isnan(v.get(s, math.nan)) else f"{v[s]:.6g}")
                                               for s in present], "" if math.isnan(adv) else f"{adv:.4f}",
                        "" if math.isnan(ceil) else f"{ceil:.4f}"])

    # ------------------------------------------------------------ memory headline
    mem_rows = {}
    for r in mem:
        b = r["build"]
        d = mem_rows.setdefault(b, {"rss0": [], "rss1": [], "stats": []})
        d["rss0"].append(num(r["rss_start_kib"]))
        d["rss1"].append(num(r["rss_after_load_kib"]))
        p = os.path.join(raw, r["stats_file"])
        try:
            with open(p) as f:
                st = json.load(f)
            tot = st.get("totals", st) if isinstance(st, dict) else {}
            d["stats"].append(numeric_leaves(tot))
        except (OSError, ValueError):
            d["stats"].append({})
            problems.append(f"round {r['round']} memory {b}: /_catzilla/stats missing or not JSON")
    interesting = ("fragment", "allocated", "active", "resident", "metadata", "mapped", "retained")
    mem_keys = sorted({k for d in mem_rows.values() for s in d["stats"] for k in s
                       if any(w in k.lower() for w in interesting)})
    with open(os.path.join(results, "memory.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["build", "rss_start_kib", "rss_after_load_kib", *mem_keys])
        for b, d in mem_rows.items():
            w.writerow([b, f"{median(d['rss0']):.0f}", f"{median(d['rss1']):.0f}",
                        *[f"{median([s.get(k, math.nan) for s in d['stats']]):.6g}" for k in mem_keys]])

    # ------------------------------------------------------------ charts
    charts = []
    if shutil.which("gnuplot"):
        charts = make_charts(raw, results, present, med, idle_med, mem_rows, env, lat_med)

    # ------------------------------------------------------------ markdown
    def cell(m, field, extra):
        """median (min–max over the runs it is taken from), † if disturbed runs are among them"""
        if m is None or math.isnan(m[field]):
            return "n/a"
        text = fmt(m[field], "int")
        if m["n"] > 1:
            lo, hi = spread(m["runs"], field)
            text += f" ({fmt(lo, 'short')}–{fmt(hi, 'short')})"
        return text + (" †" if m["disturbed"] else "") + (extra(m) if extra else "")

    L = []
    L.append("# Catzilla benchmark results\n")
    L.append(f"Run {env.get('date', '?')} on {env.get('cpu', '?')} ({env.get('nproc', '?')} CPUs), "
             f"kernel {env.get('kernel', '?')}, governor {env.get('governor', 'n/a')}. "
             f"{env.get('rounds', '?')} round(s) of {env.get('duration', '?')} s wrk runs (+1 s warm-up each), "
             f"servers alternated within each round; figures are medians over rounds.\n")
    L.append(f"One server worker pinned to CPU {env.get('server_cpus', '?')} (`taskset`), wrk "
             f"{env.get('wrk', '?')} with {env.get('wrk_threads', '?')} thread(s) pinned to CPU "
             f"{env.get('client_cpus', '?')}, all on 127.0.0.1. {env.get('catzilla', 'catzilla n/a')} "
             f"(git {env.get('git', '?')}), nginx {env.get('nginx', '?')}, h2o {env.get('h2o', '?')}.\n")
    L.append("The last column is catzilla's factor against the better of nginx and h2o for that row: "
             "above 1.00× catzilla is ahead (for throughput catzilla ÷ best peer; for latency and memory "
             "best peer ÷ catzilla).\n")
    has_ceiling = CEILING in present
    for title, field, unit, extra, intro in tables:
        body = []
        for scen, label, v in throughput_rows(field):
            adv, who = advantage(v, "higher")
            body.append(f"| {label} | " + " | ".join(cell(med.get((scen, s)), field, extra) for s in present)
                        + " | " + (f"{fmt(adv, 'x')} ({who})" if who else "n/a") + " |"
                        + (f" {fmt(of_ceiling(v), 'pct')} |" if has_ceiling else ""))
        if body:
            L.append(f"## {title}\n")
            L.append(f"{intro} Median over the rounds (disturbed runs left out, see below), "
                     "(min–max) across the runs it is taken from where there are several.\n")
            L.append(f"| scenario ({unit}) | " + " | ".join(present) + " | catzilla vs best peer |"
                     + (" catzilla of ceiling |" if has_ceiling else ""))
            L.append("|---|" + "---:|" * len(present) + "---:|" + ("---:|" if has_ceiling else ""))
            L.extend(body)
            L.append("")
    if has_ceiling:
        L.append("`ceiling` is `bench/ceiling.c`: one io_uring thread that answers every request with the "
                 "same fixed bytes (the scenario's body) and does nothing else (no parsing, no headers read, "
                 "no Date, no limits or timeouts): what this machine's kernel and loopback allow a server "
                 "on one core. \"catzilla of ceiling\" is catzilla's figure as a share of it. It is not a peer "
                 "and takes no part in the \"best peer\" column.\n")
    target_rows = []
    for scen, goal in TARGETS:
        v = vals(scen, "req_per_busy_s")
        adv, who = advantage(v, "higher")
        if not who:
            continue
        ce = v.get(CEILING, math.nan)
        reach = ce / v[who] if not math.isnan(ce) and v[who] else math.nan
        if adv >= goal:
            verdict = "met"
        elif not math.isnan(reach) and reach < goal:
            verdict = (f"beyond this machine: the ceiling itself is {fmt(reach, 'x')} {who}; catzilla "
                       f"reaches {fmt(of_ceiling(v), 'pct')} of it")
        else:
            verdict = "missed" + (f" (the ceiling is {fmt(reach, 'x')} {who})" if not math.isnan(reach) else "")
        label = dict(SCENARIOS)[scen]
        target_rows.append(f"| {label} | {goal:.1f}× | {fmt(adv, 'x')} ({who}) | "
                           f"{fmt(reach, 'x')} | {verdict} |")
    if target_rows:
        L.append("## Targets\n")
        L.append("The performance targets (issue 13), in requests per busy CPU-second against the better "
                 "peer, beside the same ratio for the ceiling responder: a target above the ceiling's "
                 "ratio cannot be met by any server on this machine, however little it does per request. "
                 "Where the cycles go is in `bench/results/profile-*.md` (`bench/profile.sh`).\n")
        L.append("| scenario | target | catzilla | ceiling | verdict |")
        L.append("|---|---:|---:|---:|---|")
        L.extend(target_rows)
        L.append("")
    if lat_med:
        L.append("## Latency at a fixed rate\n")
        L.append(f"`bench/ratelat.c` offers {int(float(env.get('latency_rate', 0))):,} GET /plaintext per "
                 f"second over {env.get('latency_conns', '?')} keep-alive connections, request k due at "
                 "start + k ÷ rate whatever came before (open loop). Latency runs from when a request was "
                 "due, so a stall is charged to every request that waited behind it. Medians over the "
                 "rounds of each percentile, in µs; the busy row is the server CPU's busy share at this "
                 "rate (lower: less work per request). A run with steal above "
                 f"{env.get('latency_disturbed_pct', '?')} % of the server CPU is disturbed, run again, "
                 "and left out of these medians while 2 clean runs remain: short bursts of steal that "
                 "barely move a throughput figure ruin any server's p99.9 on this VM.\n")
        if env.get("latency_note"):
            L.append(env["latency_note"] + "\n")
        lp = [s for s in present if s in lat_med]
        L.append("| | " + " | ".join(lp) + " | catzilla vs best peer |")
        L.append("|---|" + "---:|" * len(lp) + "---:|")
        for f, label, kind in (("achieved_rps", "answered req/s", "int"), ("p50_us", "p50", "int"),
                               ("p90_us", "p90", "int"), ("p99_us", "p99", "int"),
                               ("p999_us", "p99.9", "int"), ("max_us", "max", "int"),
                               ("busy_pct", "server CPU busy (%)", "percent")):
            v = {s: lat_med[s][f] for s in lp}
            adv, who = advantage(v, "higher" if f == "achieved_rps" else "lower")
            L.append(f"| {label} | " + " | ".join(fmt(v[s], kind) for s in lp) + " | "
                     + (f"{fmt(adv, 'x')} ({who})" if who else "n/a") + " |")
        L.append("")
    measured = [r for r in runs if not math.isnan(num(r["rps"]))]
    if measured:
        if any(m["disturbed"] for m in med.values()):
            L.append(f"† the median includes disturbed runs, for want of {MIN_CLEAN_RUNS} undisturbed ones.\n")
        steal = [v for v in (num(r.get("steal_pct")) for r in measured) if not math.isnan(v)]
        L.append(f"Disturbed runs (steal, or CPU taken by other processes, above "
                 f"{env.get('disturbed_pct', '?')} % of the server CPU): {disturbed} of {len(measured)}, "
                 f"{excluded} of them left out of the medians"
                 + (" (each is listed under Problems in this run)" if disturbed else "") + ". "
                 f"Steal on the server CPU: median {fmt(median(steal), 'percent')}, "
                 f"at most {fmt(max(steal, default=math.nan), 'percent')} in one run.\n")

    if rows:
        L.append("## Other figures\n")
        L.append("| scenario | unit | " + " | ".join(present) + " | catzilla vs best peer |")
        L.append("|---|---|" + "---:|" * len(present) + "---:|")
        for label, unit, better, kind, v in rows:
            adv, who = advantage(v, better)
            cells = [fmt(v.get(s, math.nan), kind) for s in present]
            L.append(f"| {label} | {unit} | " + " | ".join(cells) + " | "
                     + (f"{fmt(adv, 'x')} ({who})" if who else "n/a") + " |")
        L.append("")
    for c in charts:
        L.append(f"![{c[1]}]({c[0]})")
    if charts:
        L.append("")

    if mem_rows:
        L.append("## Memory: jemalloc build vs libc build\n")
        L.append("catzilla with one worker after a mixed load (/plaintext, 16 KiB and 1 MiB files, /json, "
                 "pipelined /plaintext, then 1,000 short keep-alive connections). RSS from /proc; the rest from "
                 "`/_catzilla/stats` totals (bytes unless the name says otherwise).\n")
        builds = list(mem_rows)
        L.append("| | " + " | ".join(f"`{b}`" for b in builds) + " |")
        L.append("|---|" + "---:|" * len(builds))
        L.append("| RSS at start (MiB) | " + " | ".join(fmt(median(mem_rows[b]["rss0"]) / 1024, "mib") for b in builds) + " |")
        L.append("| RSS after the load (MiB) | " + " | ".join(fmt(median(mem_rows[b]["rss1"]) / 1024, "mib") for b in builds) + " |")
        def stat(b, k):
            v = median([s.get(k, math.nan) for s in mem_rows[b]["stats"]])
            # a section whose "active" is 0 is not measured by that build (libc has no arenas)
            active = k.rsplit(".", 1)[0] + ".active" if "." in k else "active"
            if median([s.get(active, math.nan) for s in mem_rows[b]["stats"]]) == 0:
                return math.nan
            return v
        for k in mem_keys:
            cells = []
            for b in builds:
                v = stat(b, k)
                if "fragment" in k.lower():
                    cells.append(fmt(v, "pct") if not math.isnan(v) and v <= 1 else fmt(v, "kib"))
                else:
                    cells.append(fmt(v, "int"))
            L.append(f"| totals.{k} | " + " | ".join(cells) + " |")
        L.append("")
        if "jemalloc" in mem_rows:
            fr = [k for k in mem_keys if "fragment" in k.lower()]
            if fr:
                v = stat("jemalloc", fr[0])
                L.append(f"Headline: jemalloc build RSS {fmt(median(mem_rows['jemalloc']['rss1']) / 1024, 'mib')} MiB "
                         f"after the load, arena fragmentation (1 − allocated/active) {fmt(v, 'pct')}"
                         + (f"; libc build RSS {fmt(median(mem_rows['libc']['rss1']) / 1024, 'mib')} MiB."
                            if "libc" in mem_rows else ".") + "\n")

    L.append("## Notes\n")
    L.append("- nginx runs as deployed: `master_process on` with `worker_processes 1` (the master only "
             "supervises and does no request work); the whole tree is under `taskset` and the worker is "
             "also bound by `worker_cpu_affinity`. Its RSS figures are master + worker.")
    L.append("- h2o 2.2 has no fixed-response handler without mruby, so its `/plaintext` is a 13-byte static "
             "file (`file.file`); nginx uses `return 200`, catzilla its built-in route. This costs h2o a "
             "little on the /plaintext rows.")
    L.append("- Keep-alive request limits are lifted on all three (nginx `keepalive_requests`, catzilla "
             "`--max-keepalive-requests 0`; h2o has none) so that wrk's connections are never recycled.")
    L.append("- On 2 CPUs one wrk thread on one core can be the bottleneck for small non-pipelined "
             "requests: when several servers reach about the same req/s, look at their busy share and "
             "requests per busy CPU-second. The pipelined row shows more of the servers' own cost.")
    L.append("- The latency p50/p99 rows of \"Other figures\" come from the saturating /plaintext run "
             "(wrk --latency): latencies under full load. \"Latency at a fixed rate\" is the light-load view.")
    L.append(f"- The scaling row runs {env.get('scale_threads', '2')} workers on CPUs "
             f"{env.get('scale_server_cpus', '?')} with wrk on CPUs {env.get('scale_client_cpus', '?')}: "
             "on a 2-CPU machine the client shares the server's cores, so this measures how well each "
             "server shares a busy machine, not clean scaling.")
    L.append("- 1 MiB GB/s is wrk's Transfer/sec (headers included) in 10^9 bytes per second; loopback, so "
             "it measures copying, not a network.")
    L.append("- Idle RSS: the client opens the connections at most 256 at a time, sends one GET /plaintext "
             "on each, reads the reply, and holds them; RSS is read 1 s later from /proc/PID/status "
             "(VmRSS, summed over the process tree). Per-connection = (after − before) ÷ connections.")
    warn = os.path.join(raw, "warnings.txt")
    if os.path.exists(warn):
        for line in open(warn):
            problems.append(line.strip())
    if problems:
        L.append("\n## Problems in this run\n")
        for p in problems:
            L.append(f"- {p}")
    L.append(f"\nRaw wrk output and CSVs: `bench/results/raw/{os.path.basename(os.path.normpath(raw))}/` "
             "(not committed). Reproduce: `make bench` (see bench/README.md).")
    with open(os.path.join(results, "latest.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    for name in ("runs.csv", "idle.csv", "latency.csv"):
        src = os.path.join(raw, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(results, name))
    print("\n".join(L))


def make_charts(raw, results, present, med, idle_med, mem_rows, env, lat_med):
    charts = []
    term = 'set terminal pngcairo size 960,480 enhanced font "sans,11"\n'
    style = ("set style data histogram\nset style histogram clustered gap 1\n"
             "set style fill solid 0.9 border -1\nset boxwidth 0.9\nset grid ytics\n"
             "set key top right\nset datafile missing '?'\nset yrange [0:*]\n")

    def plot_cmd(dat, cols, label_col=1):
        parts = []
        for i, s in enumerate(cols):
            src = f"'{dat}'" if i == 0 else "''"
            xt = f":xtic({label_col})" if i == 0 else ""
            parts.append(f"{src} using {i + 2}{xt} title '{s}' lc rgb '{COLORS.get(s, '#888888')}'")
        return "plot " + ", ".join(parts) + "\n"

    def val(x):
        return "?" if x is None or math.isnan(x) else f"{x:.6g}"

    # throughput: absolute requests per busy CPU-second (wrk req/s where there is no busy figure),
    # one panel per scenario, the bar at the median and the whisker from the lowest to the highest round
    panels = []
    for key, label in SCENARIOS:
        lines = []
        for s in present:
            m = med.get((key, s))
            if not m:
                continue
            field = "req_per_busy_s" if not math.isnan(m["req_per_busy_s"]) else "rps"
            lo, hi = spread(m["runs"], field)
            color = int(COLORS.get(s, "#888888")[1:], 16)
            lines.append(f'"{s}" {val(m[field])} {val(lo)} {val(hi)} {color}')
        if lines:
            dat = os.path.join(raw, f"thr-{key}.dat")
            open(dat, "w").write("\n".join(lines) + "\n")
            panels.append((label, dat))
    if panels:
        out = os.path.join(results, "throughput.png")
        cols = min(4, len(panels))
        rows_n = (len(panels) + cols - 1) // cols
        gp = (term.replace("960,480", f"{330 * cols},{300 * rows_n}") + f"set output '{out}'\n"
              + f"set multiplot layout {rows_n},{cols} title 'Requests per busy CPU-second "
              + "(median; whiskers: min to max round)'\n"
              + "set style fill solid 0.9 border -1\nset boxwidth 0.7\nset grid ytics\nset key off\n"
              + "set yrange [0:*]\nset format y '%.1s%c'\nset xtics font ',9'\nset title font ',10'\n")
        for label, dat in panels:
            gp += (f"set title '{label}'\n"
                   f"plot '{dat}' using 0:2:5:xtic(1) with boxes lc rgb variable, "
                   f"'' using 0:2:3:4 with yerrorbars lc rgb 'black' pt 7 ps 0\n")
        gp += "unset multiplot\n"
        if run_gnuplot(raw, "throughput.gp", gp):
            charts.append(("throughput.png", "requests per busy CPU-second"))

    # latency: at the fixed rate when there is that run, else at saturation (wrk)
    lines = []
    lat_med = lat_med or {}
    if lat_med:
        lp = [s for s in present if s in lat_med]
        for field, label in (("p50_us", "p50"), ("p90_us", "p90"), ("p99_us", "p99"), ("p999_us", "p99.9")):
            lines.append(f'"{label}" ' + " ".join(val(lat_med[s][field] / 1000) for s in lp))
        title = (f"Latency at {int(float(env.get('latency_rate', 0))):,} req/s offered, "
                 "/plaintext, one worker (lower is better)")
        extra = "set logscale y\nset yrange [*:*]\nset key top left\n"
    else:
        lp = present
        for field, label in (("p50_us", "p50"), ("p99_us", "p99")):
            v = {s: med[("plaintext", s)][field] / 1000 for s in lp if ("plaintext", s) in med}
            if v:
                lines.append(f'"{label}" ' + " ".join(val(v.get(s, math.nan)) for s in lp))
        title = "Latency under load: /plaintext, 64 connections, one worker (lower is better)"
        extra = ""
    if lines:
        dat = os.path.join(raw, "latency.dat")
        open(dat, "w").write("\n".join(lines) + "\n")
        out = os.path.join(results, "latency.png")
        gp = (term + f"set output '{out}'\n" + style + extra
              + f"set title '{title}'\n" + "set ylabel 'ms'\n" + plot_cmd(dat, lp))
        if run_gnuplot(raw, "latency.gp", gp):
            charts.append(("latency.png", "latency"))

    # memory: idle RSS per server, and jemalloc vs libc
    if idle_med or mem_rows:
        out = os.path.join(results, "memory.png")
        panels = (1 if idle_med else 0) + (1 if mem_rows else 0)
        size = "960,420" if panels == 2 else "560,420"
        gp = (term.replace("960,480", size) + f"set output '{out}'\nset multiplot layout 1,{panels}\n"
              + style)
        gp += "set key off\nset style histogram clustered gap 1\n"
        if idle_med:
            dat = os.path.join(raw, "idle.dat")
            open(dat, "w").write("\n".join(f'"{s}" {val(idle_med[s]["after_mib"])}' for s in present
                                           if s in idle_med) + "\n")
            gp += (f"set title 'RSS with {int(float(env.get('idle_conns', 10000))):,} idle connections'\n"
                   "set ylabel 'MiB'\nset style fill solid 0.9 border -1\n"
                   f"plot '{dat}' using 2:xtic(1) lc rgb '#495057' notitle\n")
        if mem_rows:
            dat = os.path.join(raw, "alloc.dat")
            open(dat, "w").write("\n".join(f'"{b}" {val(median(d["rss1"]) / 1024)}' for b, d in mem_rows.items()) + "\n")
            gp += ("set title 'catzilla RSS after a mixed load'\nset ylabel 'MiB'\n"
                   f"plot '{dat}' using 2:xtic(1) lc rgb '#d9480f' notitle\n")
        gp += "unset multiplot\n"
        if run_gnuplot(raw, "memory.gp", gp):
            charts.append(("memory.png", "memory"))
    return charts


def run_gnuplot(raw, name, script):
    path = os.path.join(raw, name)
    with open(path, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", path], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(f"gnuplot {name} failed: {r.stderr}\n")
        return False
    return True


if __name__ == "__main__":
    main()
