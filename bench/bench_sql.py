"""SQL benchmarks (issue 3): helios.EmbeddedDatabase beside sqlite3 and sqlglot's executor.

Usage: ``.venv/bin/python -P bench/bench_sql.py [--quick] [--no-sqlglot-100k]``
(``-P``: measure the installed package, not the source tree).

Workload: users(id, name, email, age, created_at) at 10k, 100k and 1M rows
(1M only without --quick) and orders(id, user_id, amount), three per user.
Every query runs on helios and on stdlib sqlite3 in memory (rows fetched as
Python tuples, so sqlite3 pays for Python objects too); at 10k rows also on
``sqlglot.executor`` (pure Python, slow: one run per query), and at 100k rows
on every query too, where issue 3 sets its target (about 5 s of sqlglot in
all, the joins most of it; ``--no-sqlglot-100k`` skips it). Each answer is
compared with sqlite3's: a fast wrong answer would be worthless.
"""
from __future__ import annotations

import argparse
import gc
import math
import random
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402  (the bench dir is not on sys.path under ``python -P``)

from helios import EmbeddedDatabase  # noqa: E402

POINT_SELECTS = 10_000
SQLGLOT_POINT_SELECTS = 3


@dataclass(frozen=True)
class Query:
    label: str
    sql: str
    ordered: bool = False        # compare in order (ORDER BY) rather than as multisets

    def for_helios(self) -> str:
        return self.sql.replace("?", "$1")


POINT = Query("point select by id (parameterised)", "SELECT * FROM users WHERE id = ?")
QUERIES = [
    Query("filter: WHERE age > 50", "SELECT id, name FROM users WHERE age > 50"),
    Query("group by age: COUNT, AVG", "SELECT age, COUNT(*), AVG(id) FROM users GROUP BY age"),
    Query("top 20 ORDER BY created_at DESC (no index)", "SELECT * FROM users ORDER BY created_at DESC LIMIT 20",
          ordered=True),
    Query("join users x orders WHERE age > 60",
          "SELECT u.name, o.amount FROM users u JOIN orders o ON o.user_id = u.id WHERE u.age > 60"),
    Query("join users x orders GROUP BY age",
          "SELECT u.age, SUM(o.amount) FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.age"),
]
USERS_DDL = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, email TEXT, age INT, created_at INT)"
ORDERS_DDL = "CREATE TABLE orders(id INTEGER PRIMARY KEY, user_id INT, amount REAL)"


# ---------------------------------------------------------------- answers
def _norm(v: Any) -> Any:
    return round(v, 6) if isinstance(v, float) else v


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return a == b


def compare(got: list, want: list, ordered: bool) -> str:
    """'' when the answers agree (floats to 1e-9 relative), else what differs."""
    got, want = [tuple(r) for r in got], [tuple(r) for r in want]
    if len(got) != len(want):
        return f"{len(got)} rows, expected {len(want)}"
    if not ordered:
        key = lambda r: tuple((v is None, _norm(v)) for v in r)  # noqa: E731
        got, want = sorted(got, key=key), sorted(want, key=key)
    for i, (g, w) in enumerate(zip(got, want)):
        if len(g) != len(w) or not all(_same_value(x, y) for x, y in zip(g, w)):
            return f"row {i}: {g!r} != {w!r}"
    return ""


# ---------------------------------------------------------------- engines
def load_helios(users: list, orders: list) -> tuple[EmbeddedDatabase, float, float]:
    db = EmbeddedDatabase(":memory:")
    db.execute(USERS_DDL)
    db.execute(ORDERS_DDL)
    t_users = c.timed(lambda: db.executemany("INSERT INTO users VALUES ($1, $2, $3, $4, $5)", users))
    t_orders = c.timed(lambda: db.executemany("INSERT INTO orders VALUES ($1, $2, $3)", orders))
    return db, t_users, t_orders


def load_sqlite(users: list, orders: list) -> tuple[sqlite3.Connection, float, float]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(USERS_DDL)
    conn.execute(ORDERS_DDL)

    def insert(sql: str, rows: list) -> Callable[[], None]:
        def run() -> None:
            conn.execute("BEGIN")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        return run
    t_users = c.timed(insert("INSERT INTO users VALUES (?, ?, ?, ?, ?)", users))
    t_orders = c.timed(insert("INSERT INTO orders VALUES (?, ?, ?)", orders))
    return conn, t_users, t_orders


def run_timed(fn: Callable[[], list], repeats: int) -> tuple[float, list]:
    """(median seconds, the answer of the untimed warm-up run)."""
    answer = fn()
    return c.median_time(fn, repeats), answer


def sqlglot_tables(users: list, orders: list) -> tuple[dict, dict]:
    from sqlglot.executor.table import Table
    tables = {"users": Table(c.USERS_COLUMNS, users), "orders": Table(c.ORDERS_COLUMNS, orders)}
    schema = {"users": {"id": "INT", "name": "TEXT", "email": "TEXT", "age": "INT", "created_at": "INT"},
              "orders": {"id": "INT", "user_id": "INT", "amount": "DOUBLE"}}
    return tables, schema


# ---------------------------------------------------------------- one size
@dataclass
class SizeResult:
    n: int
    rows: list                   # table lines
    ratios: dict[str, float]     # label -> helios time / sqlite3 time
    point_rate: float
    helios_times: dict[str, float]
    point_helios_per_op: float
    mismatches: list[str]


def bench_size(n: int, repeats: int) -> SizeResult:
    c.progress(f"sql: {n:,} users — generating rows")
    users = c.user_rows(n)
    orders = c.order_rows(n)
    c.progress(f"sql: {n:,} users — loading helios (executemany) and sqlite3")
    db, h_users, h_orders = load_helios(users, orders)
    conn, s_users, s_orders = load_sqlite(users, orders)
    rows, ratios, h_times, mismatches = [], {}, {}, []

    def line(label: str, h: float, s: float, nrows: Any, diff: str) -> None:
        ratios[label] = h / s
        h_times[label] = h
        rows.append((label, c.fmt_time(h), c.fmt_time(s), c.fmt_ratio(h / s), nrows, diff or "same"))
        if diff:
            mismatches.append(f"{n:,} rows, {label}: {diff}")

    line("bulk insert users (executemany)", h_users, s_users, f"{n:,}",
         compare(db.execute("SELECT * FROM users").rows, conn.execute("SELECT * FROM users").fetchall(), False))
    line("bulk insert orders (executemany)", h_orders, s_orders, f"{3 * n:,}",
         compare(db.execute("SELECT * FROM orders").rows, conn.execute("SELECT * FROM orders").fetchall(), False))

    rnd = random.Random(n)
    ids = [rnd.randrange(1, n + 1) for _ in range(POINT_SELECTS)]
    h_sql, s_sql = POINT.for_helios(), POINT.sql

    def h_points() -> list:
        ex = db.execute
        return [ex(h_sql, (i,)).rows for i in ids]

    def s_points() -> list:
        ex = conn.execute
        return [ex(s_sql, (i,)).fetchall() for i in ids]
    c.progress(f"sql: {n:,} users — {POINT_SELECTS:,} point selects")
    h_pt, h_ans = run_timed(h_points, 3)
    s_pt, s_ans = run_timed(s_points, 3)
    diff = "" if h_ans == s_ans else compare([r for rs in h_ans for r in rs], [r for rs in s_ans for r in rs], True)
    line(f"point select by id x{POINT_SELECTS // 1000}k", h_pt, s_pt, f"{POINT_SELECTS:,}", diff)

    for q in QUERIES:
        c.progress(f"sql: {n:,} users — {q.label}")
        h_sql = q.for_helios()
        h_t, h_rows = run_timed(lambda: db.execute(h_sql).rows, repeats)
        s_t, s_rows = run_timed(lambda: conn.execute(q.sql).fetchall(), repeats)
        line(q.label, h_t, s_t, f"{len(s_rows):,}", compare(h_rows, s_rows, q.ordered))
    db.close()
    conn.close()
    del db, conn
    gc.collect()
    return SizeResult(n, rows, ratios, POINT_SELECTS / h_pt, h_times, h_pt / POINT_SELECTS, mismatches)


def bench_sqlglot(n: int, base: SizeResult,
                  queries: list[Query] = QUERIES) -> tuple[list, dict[str, float], list[str]]:
    """Each query once on sqlglot's executor (it is slow), answers checked against sqlite3."""
    from sqlglot.executor import execute
    users, orders = c.user_rows(n), c.order_rows(n)
    tables, schema = sqlglot_tables(users, orders)
    conn, _, _ = load_sqlite(users, orders)
    rows, speedups, mismatches = [], {}, []
    rnd = random.Random(n + 1)
    ids = [rnd.randrange(1, n + 1) for _ in range(SQLGLOT_POINT_SELECTS)]
    c.progress(f"sql: sqlglot executor at {n:,} users — {SQLGLOT_POINT_SELECTS} point selects")
    t0 = time.perf_counter()
    answers = [execute(f"SELECT * FROM users WHERE id = {i}", schema=schema, tables=tables).rows for i in ids]
    per_op = (time.perf_counter() - t0) / len(ids)
    want = [conn.execute(POINT.sql, (i,)).fetchall() for i in ids]
    diff = compare([r for a in answers for r in a], [r for w in want for r in w], True)
    label = f"point select by id x{POINT_SELECTS // 1000}k"
    speedups[label] = per_op / base.point_helios_per_op
    rows.append(("point select by id (per op)", c.fmt_time(base.point_helios_per_op), c.fmt_time(per_op),
                 c.fmt_ratio(speedups[label]), diff or "same"))
    if diff:
        mismatches.append(f"sqlglot {n:,} rows, point select: {diff}")
    for q in queries:
        c.progress(f"sql: sqlglot executor at {n:,} users — {q.label}")
        t0 = time.perf_counter()
        got = execute(q.sql, schema=schema, tables=tables).rows
        t = time.perf_counter() - t0
        diff = compare(got, conn.execute(q.sql).fetchall(), q.ordered)
        speedups[q.label] = t / base.helios_times[q.label]
        rows.append((q.label, c.fmt_time(base.helios_times[q.label]), c.fmt_time(t),
                     c.fmt_ratio(speedups[q.label]), diff or "same"))
        if diff:
            mismatches.append(f"sqlglot {n:,} rows, {q.label}: {diff}")
    conn.close()
    return rows, speedups, mismatches


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> list[c.Check]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.add_quick_flag(ap)
    ap.add_argument("--sqlglot-100k", action=argparse.BooleanOptionalAction, default=True,
                    help="also run sqlglot's executor at 100k users on every query "
                         "(about 5 s in all), beside the 10k figures (default: on)")
    args = ap.parse_args(argv)
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    import sqlglot
    c.print_header(f"bench_sql: helios.EmbeddedDatabase vs sqlite3 (in memory) and sqlglot {sqlglot.__version__} "
                   f"executor (sizes {', '.join(f'{s:,}' for s in sizes)}{'; --quick' if args.quick else ''})")
    print(f"sqlite3 {sqlite3.sqlite_version}; helios {__import__('helios').__version__}; "
          f"orders = 3 per user; times are medians of 3-5 runs after one warm-up run")
    results: dict[int, SizeResult] = {}
    mismatches: list[str] = []
    glot_rows: list = []
    speedups: dict[str, float] = {}
    for n in sizes:
        res = results[n] = bench_size(n, 3 if n >= 1_000_000 else 5)
        mismatches += res.mismatches
        c.print_table(("query", "helios", "sqlite3", "helios/sqlite3", "rows", "answers"), res.rows,
                      title=f"{n:,} users, {3 * n:,} orders (helios/sqlite3 = time ratio, lower is better)")
        print(f"point selects: helios {c.fmt_rate(res.point_rate)}, "
              f"sqlite3 {c.fmt_rate(res.point_rate * res.ratios[f'point select by id x{POINT_SELECTS // 1000}k'])}")
        if n == min(sizes):
            glot_rows, speedups, bad = bench_sqlglot(n, res)
            mismatches += bad
            c.print_table(("query", "helios", "sqlglot executor", "speedup", "answers"), glot_rows,
                          title=f"helios vs sqlglot's pure-Python executor at {n:,} users (one sqlglot run each)")
        if n == 100_000 and args.sqlglot_100k:
            big_rows, big_speedups, bad = bench_sqlglot(n, res)
            mismatches += bad
            c.print_table(("query", "helios", "sqlglot executor", "speedup", "answers"), big_rows,
                          title=f"helios vs sqlglot's executor at {n:,} users (one sqlglot run each)")

    checks: list[c.Check] = []
    target_n = 100_000 if 100_000 in results else max(results)
    for label, ratio in results[target_n].ratios.items():
        checks.append(c.Check(f"{label} at {target_n:,}: helios/sqlite3", f"{ratio:.2f}x", "<= 2x", ratio <= 2))
    rate = results[target_n].point_rate
    checks.append(c.Check(f"point selects/s at {target_n:,}", c.fmt_rate(rate), ">= 100k/s", rate >= 100_000))
    worst = min(speedups, key=speedups.get)
    checks.append(c.Check(f"vs sqlglot at {min(sizes):,} (slowest: {worst})", f"{speedups[worst]:.0f}x", ">= 20x",
                          speedups[worst] >= 20))
    if args.sqlglot_100k and 100_000 in results:
        worst = min(big_speedups, key=big_speedups.get)
        checks.append(c.Check(f"vs sqlglot at 100,000 (slowest: {worst})",
                              f"{big_speedups[worst]:.0f}x", ">= 20x", big_speedups[worst] >= 20))
    checks.append(c.Check("answers agree with sqlite3 (every query, every size)",
                          "all" if not mismatches else f"{len(mismatches)} differ", "all", not mismatches))
    for m in mismatches:
        print(f"MISMATCH {m}")
    c.print_checks(checks, title="SQL targets (issue 3)")
    return checks


if __name__ == "__main__":
    main()
