"""Run every benchmark in sequence: ``make bench`` (or ``.venv/bin/python -P bench/run_all.py [--quick]``).

Every ``bench/bench_*.py`` with a ``main(argv)`` is a module: bench_btree,
bench_storage and bench_sql first, then any others by name. Each prints its own
tables (every figure beside a baseline from the same run); this script adds
the machine line, the wall time of each module and one summary of every
target from the issues. A module that crashes is reported and the rest still run.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import common as c  # noqa: E402  (the bench dir is not on sys.path under ``python -P``)

FIRST = ("btree", "storage", "sql")


def module_names() -> list[str]:
    found = sorted(p.stem[len("bench_"):] for p in BENCH_DIR.glob("bench_*.py"))
    return [n for n in FIRST if n in found] + [n for n in found if n not in FIRST]


def module_argv(name: str, quick: bool) -> list[str]:
    if name == "btree":                       # bench_btree predates --quick: it takes a size
        return ["--n", "100000" if quick else "1000000"]
    return ["--quick"] if quick else []


def main(argv: list[str] | None = None) -> int:
    names = module_names()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.add_quick_flag(ap)
    ap.add_argument("--only", choices=names, action="append", help="run only these modules (repeatable)")
    args = ap.parse_args(argv)
    print(f"HeliosDB Nano benchmarks{' (--quick)' if args.quick else ''}: {', '.join(names)}")
    print(c.machine_line(), flush=True)
    checks: list[c.Check] = []
    walls: list[tuple[str, float]] = []
    failed: list[str] = []
    t_all = time.monotonic()
    for name in names:
        if args.only and name not in args.only:
            continue
        if name == "btree":                   # bench_btree prints no header of its own
            c.print_header("bench_btree: helios.storage.btree.PTree vs immutables.Map (in memory)")
        c.progress(f"run_all: {name} ...")
        t0 = time.monotonic()
        try:
            result = importlib.import_module(f"bench_{name}").main(module_argv(name, args.quick))
        except Exception:  # noqa: BLE001  (one broken module must not hide the others' figures)
            traceback.print_exc()
            failed.append(name)
            result = None
        walls.append((name, time.monotonic() - t0))
        checks += [ch for ch in result or [] if isinstance(ch, c.Check)]
    print()
    print("=" * 100)
    print(f"Summary ({'; '.join(f'{n} {s:.0f}s' for n, s in walls)}; total {time.monotonic() - t_all:.0f}s)")
    print(c.machine_line())
    c.print_checks(checks, title="All targets")
    print(f"{sum(ch.passed for ch in checks)} of {len(checks)} targets met")
    if failed:
        print(f"FAILED modules: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
