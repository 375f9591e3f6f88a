"""Benchmark helios.storage.btree.PTree against immutables.Map in the same run.

Usage: ``PYTHONPATH=. .venv/bin/python bench/bench_btree.py [--n 1000000] [--sweep]``
(the source tree; without PYTHONPATH it measures the installed package).

Prints machine info and one table: bulk build, point gets, single-key sets,
batched updates, scans and diff. ``--sweep`` also times a few node capacities
(the measurement LEAF_MAX / INNER_MAX were chosen from). Medians of repeats.
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
from typing import Callable

import immutables

from helios.storage.btree import INNER_MAX, LEAF_MAX, PTree


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rate(ops: int, seconds: float) -> str:
    r = ops / seconds
    return f"{r / 1e6:7.2f} M/s" if r >= 1e6 else f"{r / 1e3:7.1f} k/s"


def row(name: str, tree: str, hamt: str = "") -> None:
    print(f"{name:<34}{tree:>16}{hamt:>18}")


def make_items(n: int) -> list[tuple[int, tuple]]:
    """Even keys 0..2n-2 (odd keys stay free for inserts), 5-tuple rows."""
    return [(2 * k, (2 * k, f"name{k}", k * 0.5, k % 7 == 0, None)) for k in range(n)]


def bench_layout(cls: type[PTree], items: list, n: int, rnd: random.Random,
                 with_hamt: bool) -> None:
    get_keys = [2 * rnd.randrange(n) for _ in range(200_000)]
    set_keys = [2 * rnd.randrange(n) for _ in range(50_000)]
    ins_keys = [2 * rnd.randrange(n) + 1 for _ in range(50_000)]
    newrow = (0, "new", 0.0, False, None)

    build = median_time(lambda: cls.from_sorted(items), 3)
    tree = cls.from_sorted(items)
    hamt = immutables.Map(items) if with_hamt else None
    hbuild = median_time(lambda: immutables.Map(items), 3) if with_hamt else 0.0
    row("from_sorted build (items/s)", rate(n, build), rate(n, hbuild) if with_hamt else "")

    def gets(get: Callable) -> Callable[[], None]:
        def run() -> None:
            for k in get_keys:
                get(k)
        return run
    g = median_time(gets(tree.get), 5)
    hg = median_time(gets(hamt.get), 5) if hamt is not None else 0.0
    row("point get", rate(len(get_keys), g), rate(len(get_keys), hg) if hamt is not None else "")

    def sets(t: object, keys: list) -> Callable[[], None]:
        def run() -> None:
            x = t
            for k in keys:
                x = x.set(k, newrow)  # type: ignore[attr-defined]
        return run
    s = median_time(sets(tree, set_keys), 3)
    hs = median_time(sets(hamt, set_keys), 3) if hamt is not None else 0.0
    row("set, replace (persistent)", rate(len(set_keys), s), rate(len(set_keys), hs) if hamt is not None else "")
    si = median_time(sets(tree, ins_keys), 3)
    hsi = median_time(sets(hamt, ins_keys), 3) if hamt is not None else 0.0
    row("set, insert new key", rate(len(ins_keys), si), rate(len(ins_keys), hsi) if hamt is not None else "")

    batch = [(k, newrow) for k in ins_keys]
    u = median_time(lambda: tree.update(batch), 3)
    row("update(), 50k-insert batch", rate(len(batch), u),
        rate(len(batch), median_time(lambda: hamt.update(batch), 3)) if hamt is not None else "")
    rem_keys = set_keys[:20_000]

    def removes() -> None:
        x = tree
        for k in set(rem_keys):
            x = x.discard(k)
    r = median_time(removes, 3)
    row("discard, one key at a time", rate(len(set(rem_keys)), r),
        rate(len(set(rem_keys)), median_time(lambda: _hamt_deletes(hamt, set(rem_keys)), 3))
        if hamt is not None else "")

    def scan_batches() -> None:
        for _, vs in tree.batches():
            for _v in vs:
                pass

    def scan_items() -> None:
        for _k, _v in tree.items():
            pass

    def scan_hamt() -> None:
        for _k, _v in hamt.items():  # type: ignore[union-attr]
            pass

    def scan_hamt_values() -> None:
        for _v in hamt.values():  # type: ignore[union-attr]
            pass
    row("scan rows, batches() + loop", rate(n, median_time(scan_batches, 3)),
        rate(n, median_time(scan_hamt_values, 3)) + " vals" if hamt is not None else "")
    row("scan rows, items()", rate(n, median_time(scan_items, 3)),
        rate(n, median_time(scan_hamt, 3)) + " itms" if hamt is not None else "")
    row("scan leaves only, batches()", rate(n, median_time(lambda: sum(map(len, (vs for _, vs in tree.batches()))), 3)))

    changes = [(2 * k, newrow) for k in rnd.sample(range(n), 100)]
    changed = tree.update(changes)
    d = median_time(lambda: list(tree.diff(changed)), 5)
    assert len(list(tree.diff(changed))) == 100
    hamt_changed = hamt.update(changes) if hamt is not None else None

    def hamt_compare() -> None:  # a HAMT has no node-level diff: full comparison
        old = hamt
        [k for k, v in hamt_changed.items() if old.get(k) is not v]  # type: ignore[union-attr]
    row("diff, 100 changes (ms)", f"{d * 1e3:9.2f} ms",
        f"{median_time(hamt_compare, 3) * 1e3:9.1f} ms full" if hamt is not None else "")
    ranks = get_keys[:50_000]
    row("rank()", rate(len(ranks), median_time(lambda: [tree.rank(k) for k in ranks], 3)))


def _hamt_deletes(m: immutables.Map, keys: set) -> None:
    for k in keys:
        m = m.delete(k)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--sweep", action="store_true", help="also time other node capacities")
    args = ap.parse_args(argv)
    print(f"platform: {platform.platform()}  cpus: {os.cpu_count()}  "
          f"python: {sys.version.split()[0]} ({platform.python_implementation()})")
    print(f"n = {args.n:,} int keys, 5-tuple values; LEAF_MAX={LEAF_MAX} INNER_MAX={INNER_MAX}")
    items = make_items(args.n)
    gc.freeze()  # the item list is long-lived: keep it out of every collection
    row("", "PTree", "immutables.Map")
    bench_layout(PTree, items, args.n, random.Random(1), with_hamt=True)
    if args.sweep:
        for leaf_max, inner_max in ((64, 64), (256, 64), (128, 32), (128, 128), (512, 128)):
            cls = type(f"PTree_{leaf_max}_{inner_max}", (PTree,),
                       {"leaf_max": leaf_max, "inner_max": inner_max, "__slots__": ()})
            print(f"\n-- LEAF_MAX={leaf_max} INNER_MAX={inner_max}")
            bench_layout(cls, items, args.n, random.Random(1), with_hamt=False)


if __name__ == "__main__":
    main()
