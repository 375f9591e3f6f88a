"""Per-commit latency of durable one-row commits in the storage layer alone (issue 4's write tail).

Usage: ``.venv/bin/python -P bench/commit_latency.py [--threads 16] [--commits 300] [--runs 3] [--rows 10000]``

N threads each run ``--commits`` one-row ``with store.write() as tx: tx.insert(...)``
commits against an on-disk store preloaded with ``--rows`` users (the HTTP
benchmark's table size). Prints the distribution of the time each ``with``
block took (lock wait + commit + fsync wait), beside the distribution of the
fsync calls of the same runs: a commit waits for at most about two fsyncs
(the one under way and its own), so a commit tail far above twice the fsync
tail would point at the storage layer itself (lock convoys, checkpoints,
garbage-collector pauses), one that tracks it at the disk.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402
from bench_storage import _threads, users_schema  # noqa: E402


def quantiles(values: list[float]) -> str:
    values = sorted(values)

    def q(p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))] * 1e3
    return (f"p50 {q(0.5):.2f} ms  p90 {q(0.9):.2f} ms  p99 {q(0.99):.2f} ms  "
            f"p99.9 {q(0.999):.2f} ms  max {values[-1] * 1e3:.2f} ms  (n={len(values)})")


def run(threads: int, commits: int, rows: int, fsyncs: list[float]) -> tuple[list[float], float]:
    """One run: returns every commit's latency (seconds) and the commit rate."""
    from helios.storage.store import Store

    def timed_fsync(fd: int, clock=time.perf_counter) -> None:
        started = clock()
        os.fsync(fd)
        fsyncs.append(clock() - started)     # list.append is atomic: no lock needed

    d = c.make_tmp_dir("commit-latency")
    store = Store(str(d), progress=lambda msg: None, fsync=timed_fsync)
    try:
        with store.write() as tx:
            tx.create_table(users_schema())
            tx.bulk_insert("users", c.user_rows(rows, start=10_000_000))
        latencies: list[list[float]] = [[] for _ in range(threads)]

        def work(t: int, clock=time.perf_counter) -> None:
            mine = latencies[t]
            for i in range(commits):
                started = clock()
                with store.write() as tx:
                    tx.insert("users", c.user_row(t * commits + i + 1))
                mine.append(clock() - started)
        elapsed = _threads(threads, work)
        if store.snapshot().row_count("users") != rows + threads * commits:
            raise AssertionError("commits were lost")
        return [x for per_thread in latencies for x in per_thread], threads * commits / elapsed
    finally:
        store.close(checkpoint=False)
        c.remove_tmp_dir(d)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--commits", type=int, default=300, help="commits per thread and run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rows", type=int, default=10_000, help="rows loaded before the timed commits")
    args = ap.parse_args(argv)
    c.print_header(f"commit_latency: {args.threads} threads x {args.commits} one-row durable commits, "
                   f"{args.runs} runs, {args.rows:,} rows loaded")
    latencies: list[float] = []
    fsyncs: list[float] = []
    rates = []
    for i in range(args.runs):
        c.progress(f"run {i + 1} of {args.runs}")
        got, rate = run(args.threads, args.commits, args.rows, fsyncs)
        latencies.extend(got)
        rates.append(rate)
    print(f"commit latency  {quantiles(latencies)}")
    print(f"fsync           {quantiles(fsyncs)}")
    print(f"commits/s       {c.fmt_rate(c.median(rates))} (median of {args.runs} runs)")


if __name__ == "__main__":
    main()
