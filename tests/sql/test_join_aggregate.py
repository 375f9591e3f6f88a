"""HashJoinAggregate against what it replaces, HashAggregate over HashJoin.

The fused operator must give the very same rows in the very same order: same
groups, same group order, and every aggregate fed the same values in the same
order (so float sums agree to the bit, min/max keep the same one of equal
values, group_concat joins in the same order). Keys and arguments read the
left side, the right side or both; joins are INNER or LEFT, with or without a
residual, hashing either input.
"""
from __future__ import annotations

import threading
from operator import itemgetter

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helios import EmbeddedDatabase, errors
from helios.sql import functions as fn
from helios.sql import operators as ops
from helios.sql.planner import AnyValue
from helios.sql.runtime import Runtime

LEFT_WIDTH = 3            # left rows (k, g, x), right rows (k, g, y): joined = left + right

values = st.one_of(st.none(), st.integers(-2, 3), st.sampled_from([0.1, 0.2, 1.0, 1e16, -1e16, 2.5]))
keys = st.one_of(st.none(), st.integers(0, 3))
row = st.tuples(keys, st.one_of(st.none(), st.integers(0, 2)), values)

# name -> (side, function over that side's row, the same over the joined row)
SIDED = {
    "left g": ("L", itemgetter(1), itemgetter(1)),
    "left x": ("L", itemgetter(2), itemgetter(2)),
    "right g": ("R", itemgetter(1), itemgetter(4)),
    "right y": ("R", itemgetter(2), itemgetter(5)),
    "both": ("LR", lambda j: fn.add(j[2], j[5]), lambda j: fn.add(j[2], j[5])),
    "constant": ("R", lambda r: 7, lambda j: 7),
}
AGGREGATES = {
    "count(*)": (lambda: fn.make_aggregate("count", 0), 0),
    "count": (lambda: fn.make_aggregate("count", 1), 1),
    "sum": (lambda: fn.make_aggregate("sum", 1), 1),
    "total": (lambda: fn.make_aggregate("total", 1), 1),
    "avg": (lambda: fn.make_aggregate("avg", 1), 1),
    "min": (lambda: fn.make_aggregate("min", 1), 1),
    "max": (lambda: fn.make_aggregate("max", 1), 1),
    "count distinct": (lambda: fn.make_aggregate("count", 1, distinct=True), 1),
    "sum distinct": (lambda: fn.make_aggregate("sum", 1, distinct=True), 1),
    "group_concat": (lambda: fn.make_aggregate("group_concat", 2), 2),
    "any value": (AnyValue, 1),
}


def _rt(timeout_ms: int | None = None, cancel=None) -> Runtime:
    rt = Runtime()
    rt.reset((), None, timeout_ms, None, cancel)
    return rt


def _source(rows):
    return ops.Rows(lambda: list(rows))


def _residual(j):              # a condition on both sides: the right g is not below the left g
    return j[1] is None or j[4] is None or j[4] >= j[1]


def _operators(rt, left, right, kind, residual, key_names, agg_specs, composite):
    lkey = (lambda r: (r[0], r[1])) if composite else itemgetter(0)
    rkey = (lambda r: (r[0], r[1])) if composite else itemgetter(0)
    res = _residual if residual else None
    join = ops.HashJoin(rt, _source(left), _source(right), lkey, rkey, kind, 3, res)
    plain = ops.HashAggregate(rt, join, [SIDED[k][2] for k in key_names],
                              [(factory, [SIDED[a][2] for a in args]) for factory, args in agg_specs])
    fused = ops.HashJoinAggregate(rt, _source(left), _source(right), lkey, rkey, kind, 3, res,
                                  [SIDED[k][:2] for k in key_names],
                                  [(factory, [SIDED[a][:2] for a in args]) for factory, args in agg_specs])
    return plain, fused


def _exactly(rows: list) -> list:
    """Rows with every value's type beside it: 1 and 1.0 must not pass for each other."""
    return [tuple((type(v).__name__, v) for v in r) for r in rows]


@st.composite
def aggregate_specs(draw):
    specs = []
    for name in draw(st.lists(st.sampled_from(sorted(AGGREGATES)), min_size=1, max_size=4)):
        factory, nargs = AGGREGATES[name]
        args = [draw(st.sampled_from(sorted(SIDED))) for _ in range(nargs)]
        specs.append((factory, args))
    return specs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(left=st.lists(row, max_size=14), right=st.lists(row, max_size=14), repeat_left=st.sampled_from([1, 6]),
       repeat_right=st.sampled_from([1, 6]), kind=st.sampled_from(["INNER", "LEFT"]), residual=st.booleans(),
       composite=st.booleans(), key_names=st.lists(st.sampled_from(sorted(SIDED)), max_size=2),
       agg_specs=aggregate_specs())
def test_fused_join_aggregate_matches_aggregate_over_join(left, right, repeat_left, repeat_right, kind, residual,
                                                          composite, key_names, agg_specs):
    # Repeating one input makes it over 4x the other: both inputs get hashed across examples.
    plain, fused = _operators(_rt(), left * repeat_left, right * repeat_right, kind, residual, key_names,
                              agg_specs, composite)
    try:
        expected = ops.run_all(plain)
    except errors.HeliosError as exc:            # e.g. integer overflow in sum: the same error
        with pytest.raises(type(exc)):
            ops.run_all(fused)
        return
    assert _exactly(ops.run_all(fused)) == _exactly(expected)


def test_float_sums_are_fed_in_join_order():
    """Left order, then each left row's matches in right order: the float sum
    depends on it, 1e16 + 1 + 1 - 1e16 is 0.0 in one order and 2.0 in another."""
    left = [(1, 0, None), (2, 0, None)]
    right = [(2, 0, 1.0), (1, 0, 1e16), (2, 0, -1e16), (1, 0, 1.0)]
    rt = _rt()
    plain, fused = _operators(rt, left, right, "INNER", False, ["left g"],
                              [(AGGREGATES["sum"][0], ["right y"])], False)
    assert ops.run_all(fused) == ops.run_all(plain) == [(0, (1e16 + 1.0) + 1.0 + -1e16)]


@pytest.mark.parametrize("per_match", [False, True])
def test_fused_join_aggregate_notices_the_deadline_and_cancellation(per_match):
    left = [(i % 50, i % 3, float(i)) for i in range(5000)]
    right = [(i % 50, i % 2, float(i)) for i in range(5000)]
    key = ["right g"] if per_match else ["left g"]
    aggs = [(AGGREGATES["sum"][0], ["right y"])]
    _, fused = _operators(_rt(timeout_ms=0), left, right, "INNER", False, key, aggs, False)
    with pytest.raises(errors.QueryTimeout):
        ops.run_all(fused)
    gone = threading.Event()
    gone.set()
    _, fused = _operators(_rt(cancel=gone), left, right, "INNER", False, key, aggs, False)
    with pytest.raises(errors.QueryCancelled):
        ops.run_all(fused)


# ---------------------------------------------------------------- through SQL
@pytest.fixture()
def db():
    d = EmbeddedDatabase(":memory:")
    d.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, age INT, name TEXT)")
    d.execute("CREATE TABLE o (id INTEGER PRIMARY KEY, uid INT, amount REAL)")
    d.executemany("INSERT INTO u VALUES ($1, $2, $3)", [(i, 20 + i % 4, f"n{i % 3}") for i in range(1, 41)])
    d.executemany("INSERT INTO o VALUES ($1, $2, $3)",
                  [(i, None if i % 11 == 0 else i % 45, i / 8) for i in range(1, 121)])
    return d


def _plan(db, sql: str) -> str:
    return "\n".join(r[0] for r in db.execute("EXPLAIN " + sql).rows)


def test_planner_fuses_an_aggregate_right_above_a_hash_join(db):
    sql = "SELECT u.age, SUM(o.amount) FROM u JOIN o ON o.uid = u.id GROUP BY u.age"
    plan = _plan(db, sql)
    assert "HashJoinAggregate INNER keys=1 aggregates=1" in plan and "HashAggregate" not in plan
    assert "HashJoinAggregate LEFT" in _plan(db, "SELECT count(*) FROM u LEFT JOIN o ON o.uid = u.id")
    # A WHERE over a LEFT JOIN's output filters joined rows: the aggregate stays above it.
    plan = _plan(db, "SELECT u.age, count(o.id) FROM u LEFT JOIN o ON o.uid = u.id WHERE o.amount > 3 "
                     "GROUP BY u.age")
    assert "HashAggregate" in plan and "HashJoinAggregate" not in plan


@pytest.mark.parametrize("sql", [
    "SELECT u.age, SUM(o.amount), COUNT(*), AVG(o.amount), MIN(o.amount), MAX(u.name) FROM u JOIN o "
    "ON o.uid = u.id GROUP BY u.age",
    "SELECT u.age, COUNT(o.id), SUM(o.amount), TOTAL(o.amount) FROM u LEFT JOIN o ON o.uid = u.id GROUP BY u.age",
    "SELECT o.uid % 3, COUNT(DISTINCT u.age), SUM(u.id * o.amount) FROM u JOIN o ON o.uid = u.id "
    "GROUP BY o.uid % 3 HAVING COUNT(*) > 2",
    "SELECT u.name, u.age + o.uid % 2 AS k, COUNT(*) FROM u JOIN o ON o.uid = u.id AND o.amount > u.age / 4 "
    "GROUP BY u.name, 2 ORDER BY 1, 2",
    "SELECT COUNT(*), SUM(o.amount) FROM u JOIN o ON o.uid = u.id WHERE u.age > 100",
    "SELECT u.age, SUM((SELECT COUNT(*) FROM o o2 WHERE o2.uid = u.id AND o2.id < o.id)) FROM u "
    "JOIN o ON o.uid = u.id GROUP BY u.age",
    "SELECT u.age, u.name, SUM(o.amount) FROM u LEFT JOIN o ON o.uid = u.id AND o.amount < 2 GROUP BY 1, 2",
])
def test_fused_plans_answer_as_sqlite_does(db, sql):
    import sqlite3
    ref = sqlite3.connect(":memory:")
    ref.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, age INT, name TEXT)")
    ref.execute("CREATE TABLE o (id INTEGER PRIMARY KEY, uid INT, amount REAL)")
    ref.executemany("INSERT INTO u VALUES (?, ?, ?)", db.execute("SELECT * FROM u").rows)
    ref.executemany("INSERT INTO o VALUES (?, ?, ?)", db.execute("SELECT * FROM o").rows)
    assert "HashJoinAggregate" in _plan(db, sql)
    got, want = db.execute(sql).rows, ref.execute(sql).fetchall()
    assert _rounded(got) == _rounded(want)


def _rounded(rows: list) -> list:
    return sorted((tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in rows), key=repr)


@pytest.mark.parametrize("kind", ["INNER", "LEFT"])
@pytest.mark.parametrize("left_repeat,right_repeat", [(1, 8), (8, 1)])       # either input hashed
def test_a_lone_right_argument_is_carried_in_the_hash_table(kind, left_repeat, right_repeat):
    """SUM(right.y) ... GROUP BY left.g: the hash table holds y, not the rows (``carry``)."""
    left = [(k, None if k is None else k % 2, float(i)) for i, k in enumerate((0, 1, 2, None, 3, 1))] * left_repeat
    right = [(k, 0, y) for k, y in ((1, 0.1), (2, None), (1, 1e16), (None, 5.0), (0, -1e16), (1, 0.2))] * right_repeat
    specs = [(AGGREGATES["sum"][0], ["right y"]), (AGGREGATES["count(*)"][0], []),
             (AGGREGATES["max"][0], ["left x"])]
    plain, fused = _operators(_rt(), left, right, kind, False, ["left g"], specs, False)
    assert fused.carry is not None
    assert _exactly(ops.run_all(fused)) == _exactly(ops.run_all(plain))
    _, residual = _operators(_rt(), left, right, kind, True, ["left g"], specs, False)
    _, two = _operators(_rt(), left, right, kind, False, ["left g"], specs + [(AGGREGATES["min"][0], ["right g"])],
                        False)
    assert residual.carry is None and two.carry is None          # the rows themselves are needed
