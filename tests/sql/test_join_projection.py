"""A hash join that picks its output columns from each (left row, right rows) pair
(``pair_columns``) gives exactly the rows of joining whole rows and projecting after,
and of SQLite, for every shape of picked columns, LEFT joins' NULL padding included."""
from __future__ import annotations

import itertools

import pytest

from helios.sql.operators import pair_columns

SETUP = [
    "CREATE TABLE u(id INTEGER PRIMARY KEY, name TEXT, age INT)",
    "CREATE TABLE o(id INTEGER PRIMARY KEY, uid INT, amount REAL)",
    "INSERT INTO u VALUES (1, 'ann', 30), (2, 'bob', NULL), (3, 'cy', 50), (4, NULL, 61), (5, 'dee', 70)",
    "INSERT INTO o VALUES (10, 1, 1.5), (11, 1, 2.5), (12, 3, NULL), (13, 9, 4.0), (14, NULL, 5.0), "
    "(15, 5, 6.0), (16, 5, 7.0), (17, 5, 8.0)",
]
COLUMNS = ["u.id", "u.name", "u.age", "o.id", "o.uid", "o.amount"]


def shapes():
    for width in (1, 2, 3, 4):
        yield from itertools.permutations(COLUMNS, width)


@pytest.mark.parametrize("join", ["JOIN", "LEFT JOIN"])
def test_every_column_shape_agrees_with_sqlite(twins, join):
    db, ref = twins
    checked = 0
    for cols in shapes():
        for where in ("", " WHERE u.age > 40"):
            sql = f"SELECT {', '.join(cols)} FROM u {join} o ON o.uid = u.id{where}"
            got = db.query(sql).rows
            assert sorted(got, key=repr) == sorted(ref.execute(sql).fetchall(), key=repr), sql
            checked += 1
    assert checked > 600


def test_plans_pick_columns_in_the_join_and_results_keep_left_order(twins):
    db, _ = twins
    plan = [r[0] for r in db.query("EXPLAIN SELECT u.name, o.amount FROM u JOIN o ON o.uid = u.id").rows]
    assert plan[0].strip() == "HashJoin INNER, 2 columns"
    rows = db.query("SELECT u.name, o.amount FROM u JOIN o ON o.uid = u.id").rows
    assert rows == [("ann", 1.5), ("ann", 2.5), ("cy", None), ("dee", 6.0), ("dee", 7.0), ("dee", 8.0)]
    interleaved = [r[0] for r in db.query("EXPLAIN SELECT u.id, o.id, u.name FROM u JOIN o ON o.uid = u.id").rows]
    assert interleaved[0].startswith("Project")            # left to Project, not a pair_columns shape


def test_pair_columns_matches_concatenate_then_pick():
    left = [(1, "a", None), (2, "b", 7)]
    pairs = [(left[0], [(10, 1.5), (11, None)]), (left[1], [(12, 2.0)])]
    joined = [l + r for l, rs in pairs for r in rs]
    width = len(left[0])
    for n in (1, 2, 3, 4, 5):
        for positions in itertools.permutations(range(5), n):
            spec = [(0, p) if p < width else (1, p - width) for p in positions]
            emit = pair_columns(spec)
            if emit is None:
                assert [s for s, _ in spec] != sorted(s for s, _ in spec)   # only interleaved shapes
                continue
            assert emit(pairs) == [tuple(row[p] for p in positions) for row in joined], positions
