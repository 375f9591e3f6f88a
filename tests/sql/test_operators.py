"""One contract for every operator: open(); next() gives batches, then [] for ever; close() twice is safe."""
from __future__ import annotations

import inspect

import pytest

from helios.sql import operators as ops
from helios.sql.functions import CountStar, Max
from helios.sql.runtime import Runtime
from helios.storage.schema import Column, IndexDef, TableSchema
from helios.storage.store import Store


@pytest.fixture(scope="module")
def view():
    store = Store(":memory:")
    with store.write() as tx:
        tx.create_table(TableSchema("t", (Column("k", "int8", False), Column("v", "text")), (0,),
                                    (IndexDef("t_v", (1,)),)))
        tx.bulk_insert("t", [(i, f"v{i % 7}") for i in range(3000)])
    return store.snapshot()


def _rt(view):
    rt = Runtime()
    rt.reset((), view, None, None)
    return rt


def _source(rows):
    return ops.Rows(lambda: list(rows))


def cases(view):
    rt = _rt(view)
    v = lambda: view  # noqa: E731
    rows = [(i, i % 3) for i in range(2500)]
    return {
        "TableScan": (ops.TableScan(rt, "t", v), 3000),
        "TableScan range": (ops.TableScan(rt, "t", v, lo=lambda: 10, hi=lambda: 19), 10),
        "KeyLookup": (ops.KeyLookup(rt, "t", v, lambda: [1, 2, 5000]), 2),
        "IndexScan": (ops.IndexScan(rt, "t", "t_v", v, points=lambda: ["v1"]), 429),
        "Values": (ops.Values([[lambda r: 1], [lambda r: 2]]), 2),
        "Rows": (_source(rows), 2500),
        "Filter": (ops.Filter(_source(rows), lambda r: r[1] == 0), 834),
        "Project": (ops.Project(_source(rows), [lambda r: r[0] * 2]), 2500),
        "Project columns": (ops.Project(_source(rows), [], [1, 0]), 2500),
        "HashJoin": (ops.HashJoin(rt, _source(rows), _source([(0, "a"), (1, "b")]), lambda r: r[1],
                                  lambda r: r[0], "INNER", 2), 1667),
        "HashJoin LEFT": (ops.HashJoin(rt, _source(rows[:9]), _source([(0, "a")]), lambda r: r[1],
                                       lambda r: r[0], "LEFT", 2), 9),
        "HashJoin small left": (ops.HashJoin(rt, _source([(0,), (1,), (None,), (7,)]), _source(rows),
                                             lambda r: r[0], lambda r: r[1], "LEFT", 2), 1669),
        "NestedLoopJoin": (ops.NestedLoopJoin(rt, _source(rows[:50]), _source(rows[:40]), "INNER", 2,
                                              lambda r: r[0] == r[2]), 40),
        "HashAggregate": (ops.HashAggregate(rt, _source(rows), [lambda r: r[1]], []), 3),
        "HashJoinAggregate": (ops.HashJoinAggregate(rt, _source(rows), _source([(0, "a"), (1, "b")]),
                                                    lambda r: r[1], lambda r: r[0], "INNER", 2, None,
                                                    [("L", lambda r: r[0] % 5)], [(CountStar, [])]), 5),
        "HashJoinAggregate LEFT per match": (ops.HashJoinAggregate(
            rt, _source(rows[:9]), _source([(0, "a")]), lambda r: r[1], lambda r: r[0], "LEFT", 2, None,
            [("R", lambda r: r[1])], [(CountStar, []), (Max, [("L", lambda r: r[0])])]), 2),
        "Sort": (ops.Sort(_source(rows), lambda r: -r[0]), 2500),
        "TopN": (ops.TopN(rt, _source(rows), lambda r: -r[0], lambda: 5), 5),
        "Limit": (ops.Limit(_source(rows), lambda: 1500, lambda: 100), 1500),
        "Distinct": (ops.Distinct(_source(rows), 1), 2500),
        "SetOp": (ops.SetOp(_source(rows), _source(rows[:10]), "EXCEPT"), 2490),
    }


def test_every_operator_class_is_covered(view):
    classes = {c for _, c in inspect.getmembers(ops, inspect.isclass)
               if issubclass(c, ops.Operator) and c is not ops.Operator}
    covered = {type(op) for op, _ in cases(view).values()}
    assert classes == covered


NAMES = ["TableScan", "TableScan range", "KeyLookup", "IndexScan", "Values", "Rows", "Filter", "Project",
         "Project columns", "HashJoin", "HashJoin LEFT", "HashJoin small left", "NestedLoopJoin",
         "HashAggregate", "HashJoinAggregate", "HashJoinAggregate LEFT per match", "Sort", "TopN", "Limit",
         "Distinct", "SetOp"]


def test_names_match_cases(view):
    assert sorted(NAMES) == sorted(cases(view))


@pytest.mark.parametrize("name", NAMES)
def test_operator_contract(view, name):
    op, expected = cases(view)[name]
    assert op.next() == []                         # before open: nothing
    op.open()
    total = 0
    while True:
        batch = op.next()
        assert isinstance(batch, list)
        if not batch:
            break
        assert all(isinstance(r, tuple) for r in batch)
        total += len(batch)
    assert total == expected
    assert op.next() == [] and op.next() == []     # the end stays the end
    op.close()
    op.close()                                     # safe twice
    assert op.next() == []


def test_close_before_the_end_releases_children(view):
    src = _source([(i,) for i in range(5000)])
    op = ops.Filter(src, lambda r: True)
    op.open()
    assert op.next()
    op.close()
    assert src._closed and op.next() == []


def test_hash_join_keeps_left_order_whichever_side_it_hashes(view):
    rt = _rt(view)
    left = [(i % 5, f"l{i}") for i in range(12)]
    right = [(k, f"r{j}") for j, k in enumerate([3, 1, 3, 0, 9] * 3)]
    expected = [l + r for l in left for r in right if l[0] == r[0]]
    small_left = ops.HashJoin(rt, _source(left), _source(right * 10), lambda r: r[0], lambda r: r[0], "INNER", 2)
    big_left = ops.HashJoin(rt, _source(left * 10), _source(right), lambda r: r[0], lambda r: r[0], "INNER", 2)
    assert ops.run_all(small_left) == [l + r for l in left for r in right * 10 if l[0] == r[0]]
    assert ops.run_all(big_left) == [l + r for l in left * 10 for r in right if l[0] == r[0]]
    assert expected


@pytest.mark.parametrize("positions", [[0], [2, 0], [1, 1, 3], [3, 2, 1, 0], [0, 1, 2, 3, 0]])
def test_columns_of_picks_the_same_values_as_itemgetter(positions):
    from operator import itemgetter
    rows = [(i, None, f"s{i}", i / 2) for i in range(50)]
    get = itemgetter(*positions)
    want = [get(r) if len(positions) > 1 else (get(r),) for r in rows]
    assert ops.columns_of(positions)(rows) == want
    assert ops.run_all(ops.Project(_source(rows), [], positions)) == want


def test_compound_selects_keep_the_value_sqlite_keeps():
    """Equal values of different types (1 and 1.0): each side of UNION / INTERSECT /
    EXCEPT keeps the one that came last, as SQLite's temporary index does; INTERSECT and
    EXCEPT answer with the left side's. Compared with sqlite3, types included."""
    import sqlite3

    from helios import EmbeddedDatabase
    db, ref = EmbeddedDatabase(":memory:"), sqlite3.connect(":memory:")
    for sql in ("CREATE TABLE t(a)", "INSERT INTO t VALUES (1), (1.0), (2.0), (2), ('x'), (NULL), (3)",
                "CREATE TABLE u(b)", "INSERT INTO u VALUES (1.0), (3.0), (NULL), ('x')"):
        db.execute(sql)
        ref.execute(sql)
    queries = ["SELECT 1 UNION SELECT 1.0", "SELECT 1.0 UNION SELECT 1", "SELECT 1 UNION SELECT 1.0 UNION SELECT 1",
               "SELECT 1 INTERSECT SELECT 1.0", "SELECT 1.0 INTERSECT SELECT 1", "SELECT 1 EXCEPT SELECT 1.0"]
    for op in ("UNION", "INTERSECT", "EXCEPT", "UNION ALL"):
        queries += [f"SELECT a FROM t {op} SELECT b FROM u", f"SELECT b FROM u {op} SELECT a FROM t",
                    f"SELECT a FROM t {op} SELECT 9"]
    for q in queries:
        def typed(rows):
            return sorted(((type(v).__name__, v) for r in rows for v in r), key=repr)
        assert typed(db.query(q).rows) == typed(ref.execute(q).fetchall()), q
