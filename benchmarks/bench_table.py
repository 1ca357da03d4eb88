#!/usr/bin/env python3
"""Prints the results table of scripts/bench (markdown) from the benchmarks' outputs.

Reads, in the results directory: pool_throughput.json, pool_async.json, pool_overhead.json
(Google Benchmark's --benchmark_out, JSON), hikaricp.txt (benchmarks/java/HikariLookup's
output), and facts.txt (KEY=VALUE lines scripts/bench writes: machine, load, versions). Any
of them may be missing: its columns or rows are then left out, with a note saying why.

Each ratio stands next to its target from issue 12, marked met or not met. Medians are used
when the run had repetitions, else the single run.
Usage: bench_table.py RESULTS_DIR
"""

import json
import re
import sys
from pathlib import Path

THREADS = [1, 4, 16, 64]


def load_json(path):
    """{(name, threads): figures} from Google Benchmark's JSON; name without /real_time and
    /threads:N (e.g. "pooled", "async_pooled/64/1"); medians win over single runs."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    singles, medians = {}, {}
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            continue
        name = b.get("run_name", b.get("name", ""))
        name = re.sub(r"/real_time|/threads:\d+|/min_time:[0-9.]+", "", name)
        key = (name, int(b.get("threads", 1)))
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[key] = b
        else:
            singles.setdefault(key, []).append(b)
    out = {}
    for key, runs in singles.items():
        runs.sort(key=lambda r: r.get("items_per_second", 0))
        out[key] = runs[len(runs) // 2]
    out.update(medians)
    return out


def qps(figures, name, threads):
    if figures is None:
        return None
    b = figures.get((name, threads))
    return b.get("items_per_second") if b else None


def load_hikari(path):
    """{threads: queries/s} and the versions line from HikariLookup's output."""
    rates, versions = {}, None
    if not path.exists():
        return None, None
    for line in path.read_text().splitlines():
        m = re.match(r"hikaricp threads=(\d+) queries_per_second=([0-9.]+)", line)
        if m:
            rates[int(m.group(1))] = float(m.group(2))
        elif line.startswith("hikaricp versions: "):
            versions = line[len("hikaricp versions: "):]
    return (rates or None), versions


def rate(x):
    return "—" if x is None else f"{x:,.0f}"


def judged(value, target, at_least=True):
    """'0.93, not met' for a ratio and its target."""
    if value is None:
        return "—"
    met = value >= target if at_least else value < target
    return f"{value:.2f}, {'met' if met else 'not met'}"


def ratio(a, b):
    return a / b if a and b else None


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench_table.py RESULTS_DIR")
    results = Path(sys.argv[1])
    facts = {}
    if (results / "facts.txt").exists():
        for line in (results / "facts.txt").read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                facts[k] = v
    throughput = load_json(results / "pool_throughput.json")
    async_ = load_json(results / "pool_async.json")
    overhead = load_json(results / "pool_overhead.json")
    hikari, hikari_versions = load_hikari(results / "hikaricp.txt")
    notes = []

    print("| machine and versions | |")
    print("|---|---|")
    for key, label in [("cpu", "cores, CPU"), ("load", "load average before / after the run"),
                       ("runs", "runs"), ("server", "MariaDB server"),
                       ("libmariadb", "libmariadb"), ("compiler", "compiler"),
                       ("cloudmysql", "cloudmysql"), ("benchmark", "Google Benchmark"),
                       ("soci", "SOCI (libsoci-dev)"), ("hikaricp", "HikariCP and Connector/J")]:
        if key in facts:
            print(f"| {label} | {facts[key]} |")
    if hikari_versions:
        print(f"| HikariLookup | {hikari_versions} |")
    print()

    if throughput is None:
        notes.append("pool_throughput produced no figures: the lookup table is left out.")
    else:
        have_soci = any(k[0] == "soci_pooled" for k in throughput)
        if not have_soci:
            notes.append(
                "SOCI column left out: pool_throughput was built without SOCI (Debian "
                "libsoci-dev) or its SOCI runs failed (see pool_throughput.txt).")
        if hikari is None:
            notes.append(
                "HikariCP column left out: " + facts.get(
                    "hikari_why", "HikariLookup did not run (see hikaricp.txt)."))
        ways = [w for w in ("pooled", "pooled_typed") if any(k[0] == w for k in throughput)]
        print("Lookups per second (one patient by id, TLS, pool of 16 for every pool), and the "
              "ratios of issue 12 with their targets:")
        print()
        print("| threads | dedicated (raw libmariadb) | cloudmysql way | its queries/s | SOCI pool | "
              "HikariCP | connect per query | cloudmysql / dedicated | / SOCI (>= 1.3) | "
              "/ HikariCP (>= 1.0) | / connect per query (>= 30) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for t in THREADS:
            d = qps(throughput, "dedicated", t)
            s = qps(throughput, "soci_pooled", t)
            h = hikari.get(t) if hikari else None
            c = qps(throughput, "connect_per_query", t)
            for way in ways:
                p = qps(throughput, way, t)
                if p is None and d is None:
                    continue
                if t < 64:
                    vs_dedicated = f"{judged(ratio(p, d), 0.97)} (>= 0.97)"
                else:
                    d16 = qps(throughput, "dedicated", 16)
                    best = max(x for x in (d16, d) if x) if (d16 or d) else None
                    each = " / ".join("—" if r is None else f"{r:.2f}"
                                      for r in (ratio(p, d16), ratio(p, d)))
                    vs_dedicated = (f"{judged(ratio(p, best), 0.95)} (>= 0.95 against the "
                                    f"better of dedicated at 16 and 64: {each})")
                print(f"| {t}{' (pool 16)' if t > 16 else ''} | {rate(d)} | {way} | "
                      f"{rate(p)} | {rate(s)} | {rate(h)} | {rate(c)} | {vs_dedicated} | "
                      f"{judged(ratio(p, s), 1.3)} | {judged(ratio(p, h), 1.0)} | "
                      f"{judged(ratio(p, c), 30)} |")
        print()

    rows = []
    if async_ is not None:
        dedicated_counts = sorted(k[1] for k in async_ if k[0] == "dedicated")
        runs = []
        for (name, _), b in async_.items():
            m = re.fullmatch(r"async_pooled/(\d+)/(\d+)", name)
            if m:
                runs.append((int(m.group(1)), int(m.group(2)), b))
        for conc, io, b in sorted(runs, key=lambda r: r[:2]):
            fitting = [n for n in dedicated_counts if n <= conc]
            if not fitting:
                continue
            dt = max(fitting)
            a, d = b.get("items_per_second"), qps(async_, "dedicated", dt)
            rows.append((f"async: {conc} coroutines on {io} I/O thread(s) / dedicated "
                         f"({dt} threads)", f"{rate(a)} / {rate(d)}", ">= 0.90",
                         judged(ratio(a, d), 0.90)))
    else:
        notes.append("pool_async produced no figures: its rows are left out.")
    if overhead is not None:
        families = {}
        for (name, t), b in overhead.items():
            families.setdefault(name, {})[t] = b
        for name, by_threads in sorted(families.items()):
            one, many = by_threads.get(1), by_threads.get(32)
            if one is None or not one.get("items_per_second"):
                continue
            ns = 1e9 / one["items_per_second"]
            rows.append((f"fake connector ({name}): acquire + release, 1 thread",
                         f"{ns:.0f} ns per cycle", "< 100 ns",
                         "met" if ns < 100 else "not met"))
            if many is not None and many.get("items_per_second"):
                r = many["items_per_second"] / one["items_per_second"]
                p99 = many.get("wait_p99_ns")
                rows.append((f"fake connector ({name}): cycles/s at 32 threads over 16 "
                             "connections / at 1 thread",
                             f"{r:.2f}" + (f" (wait p99 at 32 threads {p99 / 1000:.1f} µs)"
                                           if p99 else ""),
                             ">= 0.5", judged(r, 0.5).split(", ")[1]))
    else:
        notes.append("pool_overhead produced no figures: its rows are left out.")
    if rows:
        print("| figure | value | target | |")
        print("|---|---|---|---|")
        for what, value, target, verdict in rows:
            print(f"| {what} | {value} | {target} | {verdict} |")
        print()
    others = [(results / f).read_text().strip() for f in ("pool_warmup.md", "clinic_server.md")
              if (results / f).exists()]
    others = [o for o in others if o]
    if others:
        print("| benchmark | figure | value | target |")
        print("|---|---|---|---|")
        print("\n".join(others))
        print()
    for n in notes:
        print(f"- {n}")


if __name__ == "__main__":
    main()
