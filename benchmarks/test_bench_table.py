#!/usr/bin/env python3
"""Checks bench_table.py on made-up benchmark outputs: each ratio is computed from the right
figures and marked met / not met against its target, a missing program's column is left out
with a note, and medians win over single runs. Run by ctest (bench_table); no server."""

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

TABLE = Path(__file__).with_name("bench_table.py")


def run_entry(name, threads, qps, aggregate=None, **counters):
    b = {"name": name, "run_name": name, "threads": threads, "items_per_second": qps,
         "run_type": "aggregate" if aggregate else "iteration", "real_time": 1.0,
         "time_unit": "ns"}
    if aggregate:
        b["aggregate_name"] = aggregate
        b["name"] = f"{name}_{aggregate}"
    b.update(counters)
    return b


def write_json(directory, program, entries):
    (directory / f"{program}.json").write_text(json.dumps({"benchmarks": entries}))


def table(directory):
    return subprocess.run([sys.executable, str(TABLE), str(directory)], check=True,
                          capture_output=True, text=True).stdout


def row(text, start):
    rows = [line for line in text.splitlines() if line.startswith(start)]
    assert len(rows) == 1, (start, text)
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


class BenchTableTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def throughput(self, with_soci=True):
        entries = []
        figures = {  # threads: dedicated, pooled, soci, connect per query
            1: (1000, 970, 700, 30),
            4: (4000, 3800, 2000, 100),
            16: (5000, 4900, 3000, 160),
            64: (4000, 4600, 3600, 150),
        }
        for t, (d, p, s, c) in figures.items():
            entries.append(run_entry(f"dedicated/real_time/threads:{t}", t, d))
            entries.append(run_entry(f"pooled/real_time/threads:{t}", t, p))
            if with_soci:
                entries.append(run_entry(f"soci_pooled/real_time/threads:{t}", t, s))
            entries.append(run_entry(f"connect_per_query/real_time/threads:{t}", t, c))
        write_json(self.dir, "pool_throughput", entries)

    def test_ratios_and_verdicts(self):
        self.throughput()
        (self.dir / "hikaricp.txt").write_text(
            "hikaricp versions: Java 17, MariaDB Connector/J 2.7.6, TLS cipher X\n"
            "hikaricp threads=1 queries_per_second=1000.0 lookups=3000 seconds=3.00\n"
            "hikaricp threads=4 queries_per_second=3000.0 lookups=9000 seconds=3.00\n")
        out = table(self.dir)
        one = row(out, "| 1 |")
        self.assertEqual(one[1:7], ["1,000", "pooled", "970", "700", "1,000", "30"])
        self.assertEqual(one[7], "0.97, met (>= 0.97)")
        self.assertEqual(one[8], "1.39, met")
        self.assertEqual(one[9], "0.97, not met")
        self.assertEqual(one[10], "32.33, met")
        four = row(out, "| 4 |")
        self.assertEqual(four[7], "0.95, not met (>= 0.97)")
        self.assertEqual(four[9], "1.27, met")
        # No HikariCP figure at 16 threads: a dash, no verdict.
        self.assertEqual(row(out, "| 16 |")[5], "—")
        self.assertEqual(row(out, "| 16 |")[9], "—")
        # At 64 threads: against the better of dedicated at 16 (5000) and at 64 (4000).
        sixty_four = row(out, "| 64 (pool 16) |")
        self.assertTrue(sixty_four[7].startswith("0.92, not met (>= 0.95"), sixty_four[7])
        self.assertIn("0.92 / 1.15", sixty_four[7])
        self.assertEqual(sixty_four[10], "30.67, met")

    def test_missing_columns_are_said(self):
        self.throughput(with_soci=False)
        (self.dir / "facts.txt").write_text("hikari_why=no JDK here\n")
        out = table(self.dir)
        self.assertIn("SOCI column left out", out)
        self.assertIn("HikariCP column left out: no JDK here", out)
        self.assertEqual(row(out, "| 1 |")[4], "—")
        self.assertIn("pool_async produced no figures", out)

    def test_medians_win_and_other_targets(self):
        write_json(self.dir, "pool_async", [
            run_entry("async_pooled/64/1/real_time", 1, 100),  # a single run ...
            run_entry("async_pooled/64/1/real_time", 1, 9000, aggregate="median"),  # ... loses
            run_entry("async_pooled/256/2/real_time", 1, 8000, aggregate="median"),
            run_entry("dedicated/real_time/threads:64", 64, 10000, aggregate="median"),
            run_entry("dedicated/real_time/threads:90", 90, 10000, aggregate="median"),
        ])
        write_json(self.dir, "pool_overhead", [
            run_entry("acquire_release/real_time/threads:1", 1, 12_500_000),
            run_entry("acquire_release/real_time/threads:32", 32, 5_000_000,
                      wait_p99_ns=2500.0),
        ])
        out = table(self.dir)
        self.assertEqual(row(out, "| async: 64 coroutines on 1")[3], "0.90, met")
        self.assertIn("(90 threads)", row(out, "| async: 256 coroutines on 2")[0])
        self.assertEqual(row(out, "| async: 256 coroutines on 2")[3], "0.80, not met")
        cycle = row(out, "| fake connector (acquire_release): acquire + release")
        self.assertEqual(cycle[1:], ["80 ns per cycle", "< 100 ns", "met"])
        scaling = row(out, "| fake connector (acquire_release): cycles/s at 32")
        self.assertEqual(scaling[1], "0.40 (wait p99 at 32 threads 2.5 µs)")
        self.assertEqual(scaling[3], "not met")


if __name__ == "__main__":
    unittest.main()
