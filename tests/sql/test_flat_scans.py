"""Scans that read flat leaves a column at a time give exactly what row-at-a-time gives.

A table's leaves hold its rows end to end (``btree.Leaf``, width >= 1), and filters,
top-N, GROUP BY and hash joins over a table scan read them through ``TableScan.chunks``:
a column is a slice, and only the rows kept are built. Here the same queries run over
the same data read that way and row at a time (every leaf handed over as rows, width 0,
which takes each fast path's row branch), and against sqlite3; and the building blocks
are checked on their own against the row forms, NULLs, ties and mixed chunks included.
"""
from __future__ import annotations

import random
import sqlite3
from collections import Counter
from itertools import chain

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helios import EmbeddedDatabase, errors
from helios.sql.compile import ColumnTest, column_select, flat_filter, row_select
from helios.sql.operators import ColumnOrder, ScanColumns, rows_of
from helios.storage.btree import PTree

U_DDL = "CREATE TABLE u (id INTEGER PRIMARY KEY, a INT, b TEXT, c REAL, d)"
QUERIES = [
    "SELECT id, b FROM u WHERE a > 2", "SELECT * FROM u WHERE c <= 1", "SELECT b, id FROM u WHERE b != 'ab'",
    "SELECT c FROM u WHERE a = 2", "SELECT id, d FROM u WHERE d > 1", "SELECT a, c FROM u WHERE a < 3 AND c > 0",
    "SELECT id FROM u WHERE a > 1 LIMIT 3", "SELECT * FROM u WHERE b >= 'a' LIMIT 5",
    "SELECT * FROM u ORDER BY c DESC LIMIT 4", "SELECT * FROM u ORDER BY a LIMIT 7",
    "SELECT id, a FROM u ORDER BY b LIMIT 3 OFFSET 2", "SELECT * FROM u ORDER BY a DESC NULLS FIRST LIMIT 5",
    "SELECT * FROM u ORDER BY c NULLS LAST LIMIT 150",
    "SELECT a, COUNT(*), SUM(c), MIN(b), MAX(id), AVG(a) FROM u GROUP BY a", "SELECT count(*), avg(c) FROM u",
    "SELECT a, b, count(*) FROM u GROUP BY a, b", "SELECT b, sum(d) FROM u GROUP BY b",
    "SELECT x.id, y.b FROM u x JOIN u y ON y.a = x.id WHERE x.a > 1",
    "SELECT x.a, SUM(y.c) FROM u x JOIN u y ON y.a = x.id GROUP BY x.a",
    "SELECT x.id, y.id FROM u x LEFT JOIN u y ON y.a = x.id", "SELECT x.b, y.c FROM u x JOIN u y ON x.a = y.a",
    "SELECT y.c FROM u x JOIN u y ON y.a = x.id", "SELECT x.b FROM u x JOIN u y ON y.a = x.id WHERE x.c > 0",
    "SELECT x.id, y.b, y.c FROM u x LEFT JOIN u y ON y.a = x.id WHERE x.a >= 2",
    "SELECT y.b, x.id FROM u x JOIN u y ON y.a = x.id", "SELECT x.id, y.id, x.b FROM u x JOIN u y ON y.a = x.id",
    "SELECT x.id, y.b FROM u x JOIN u y ON y.a = x.id + 0", "SELECT x.a, y.b FROM u x JOIN u y ON y.c = x.c WHERE x.b != 'a'",
    "SELECT x.d, y.d FROM u x JOIN u y ON y.d = x.d",
]


def _rows(seed: int, n: int) -> list[tuple]:
    """n rows of u: NULLs everywhere but the key, ties, and mixed types in ``d``."""
    rnd = random.Random(seed)
    pick = lambda *xs: xs[rnd.randrange(len(xs))]  # noqa: E731
    return [(k, pick(None, *range(-2, 8)), pick(None, "a", "b", "ab", "", "B"),
             pick(None, -1.5, 0.5, 2.0, 1e300, 0, 1, 3), pick(None, 1, 2, 1.5, "x", "2", ""))
            for k in rnd.sample(range(-50, 1000), n)]


def _db(rows: list[tuple]) -> EmbeddedDatabase:
    db = EmbeddedDatabase(":memory:")
    db.execute(U_DDL)
    if rows:
        db.executemany("INSERT INTO u VALUES ($1, $2, $3, $4, $5)", rows)
    return db


def _as_rows(tree: PTree, *args, **kw):
    """``PTree.chunks`` as if every leaf were plain: the rows, width 0."""
    return ((keys, tuple(values), 0) for keys, values in tree.batches(*args, **kw))


def _outcome(db: EmbeddedDatabase, sql: str):
    """Rows with their values' types (1, 1.0 and True differ), or the error."""
    try:
        r = db.execute(sql)
    except errors.HeliosError as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("ok", r.columns, r.column_types, [(tuple(map(type, row)), row) for row in r.rows])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), n=st.integers(0, 400), sql=st.sampled_from(QUERIES))
def test_flat_scans_give_what_rows_give_and_what_sqlite_gives(seed, n, sql):
    _check(_rows(seed, n), sql)


@pytest.mark.parametrize("sql", QUERIES)
def test_every_query_over_many_leaves(sql):
    _check(_rows(7, 700), sql)
    _check(_rows(8, 300)[:1], sql)


def _check(rows: list[tuple], sql: str) -> None:
    n = len(rows)
    db = _db(rows)
    assert n < 129 or {leaf.width for leaf in db.store.snapshot().table("u").rows.nodes()
                       if hasattr(leaf, "width")} == {5}
    got = _outcome(db, sql)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(PTree, "chunks", _as_rows)
        assert _outcome(db, sql) == got, sql
    if got[0] == "ok" and "LIMIT" not in sql:
        ref = sqlite3.connect(":memory:")
        ref.execute(U_DDL)
        ref.executemany("INSERT INTO u VALUES (?, ?, ?, ?, ?)", rows)
        assert Counter(r for _, r in got[3]) == Counter(ref.execute(sql).fetchall()), sql


# ------------------------------------------------------------------ the parts
def _chunks(rows: list[tuple], cuts: list[int], plain: set[int]) -> list[tuple]:
    """``rows`` cut at ``cuts`` into chunks, those numbered in ``plain`` as rows (width 0)."""
    out = []
    for i, (s, e) in enumerate(zip([0] + cuts, cuts + [len(rows)])):
        piece = rows[s:e]
        if not piece:
            continue
        w = 0 if i in plain or len({len(r) for r in piece}) != 1 else len(piece[0])
        out.append((tuple(range(s, e)), tuple(piece) if not w else tuple(chain.from_iterable(piece)), w))
    return out


VALUE = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from([0.5, 2.0, -1.0]))
ROWS = st.lists(st.tuples(st.integers(0, 5), VALUE, st.sampled_from(["a", "b", None])), max_size=60)
CUTS = st.lists(st.integers(0, 60), max_size=6).map(sorted)
PLAIN = st.sets(st.integers(0, 6), max_size=3)


@settings(max_examples=300, deadline=None)
@given(rows=ROWS, cuts=CUTS, plain=PLAIN, op=st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
       c=st.sampled_from([0, 1, 0.5]), pick=st.sampled_from([slice(None), slice(1, None), slice(None, 2),
                                                             slice(2, None, -1), slice(0, 3, 2), slice(5, 9)]))
def test_column_select_and_flat_filter_match_the_row_forms(rows, cuts, plain, op, c, pick):
    chunks = _chunks(rows, cuts, plain)
    test = ColumnTest(1, op, c)
    want = row_select(test, pick)(lambda: [rows])
    assert column_select(test, pick)(lambda: chunks) == want
    keep = flat_filter(test)
    kept = [r for _, data, w in chunks for r in (keep(data, w) if w else row_select(test, slice(None))(
        lambda: [data]))]
    assert kept == row_select(test, slice(None))(lambda: [rows])


@settings(max_examples=300, deadline=None)
@given(rows=ROWS, cuts=CUTS, plain=PLAIN, n=st.integers(0, 30), desc=st.booleans(), nulls_first=st.booleans(),
       pos=st.sampled_from([0, 1]))
def test_top_n_from_chunks_is_top_n_of_the_rows(rows, cuts, plain, n, desc, nulls_first, pos):
    rows = [r for r in rows if type(r[pos]) is not str]
    order = ColumnOrder(pos, desc, nulls_first)
    want = order.top(list(rows), n)
    got = order.top_chunks(_chunks(rows, cuts, plain), n)
    assert got == want and [tuple(map(type, r)) for r in got] == [tuple(map(type, r)) for r in want]


def test_top_n_keeps_the_earliest_of_ties_across_many_chunks():
    rows = [(i, i % 7, f"r{i}") for i in range(2000)]
    chunks = _chunks(rows, list(range(128, 2000, 128)), set())
    for desc in (True, False):
        order = ColumnOrder(1, desc, False)
        assert order.top_chunks(chunks, 10) == order.top(rows, 10)
        assert order.top_chunks(chunks, 300) == order.top(rows, 300)


@settings(max_examples=200, deadline=None)
@given(rows=ROWS, cuts=CUTS, plain=PLAIN, mask=st.lists(st.booleans(), min_size=60, max_size=60))
def test_scan_columns_are_the_rows_columns(rows, cuts, plain, mask):
    from operator import itemgetter
    cols = ScanColumns(_chunks(rows, cuts, plain))
    assert len(cols) == len(rows) and cols.rows() == rows
    assert cols.column(itemgetter(1)) == [r[1] for r in rows]
    mask = mask[:len(rows)]
    assert cols.compress(mask) == [r for r, m in zip(rows, mask) if m]
    assert rows_of(tuple(chain.from_iterable(rows)), 3) == rows


def test_a_column_test_error_that_is_not_a_null_is_raised_as_the_row_form_raises_it():
    rows = [(1, 2, "a"), (2, "x", "b")]
    chunks = _chunks(rows, [], set())
    test = ColumnTest(1, ">", 1)
    with pytest.raises(TypeError):
        row_select(test, slice(None))(lambda: [rows])
    with pytest.raises(TypeError):
        column_select(test, slice(None))(lambda: chunks)
    with pytest.raises(TypeError):
        flat_filter(test)(chunks[0][1], 3)
