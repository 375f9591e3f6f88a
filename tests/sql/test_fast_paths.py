"""The per-statement and bulk-insert fast paths give exactly what the general paths give.

Point selects (``pk = $1``) run as a fused function instead of operators, and
executemany binds and coerces whole columns at once: both are compared here with
the general path on the same data (results, column types and errors), with
sqlite3, and across everything that must invalidate a cached plan.
"""
from __future__ import annotations

import math
import sqlite3
import threading

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helios import EmbeddedDatabase, errors
from helios.sql import engine
from helios.sql.fused import fuse
from helios.sql.operators import run_all
from helios.sql.values import column_coercer, column_unchanged


def _open(fused: bool = True) -> EmbeddedDatabase:
    db = EmbeddedDatabase(":memory:")
    db._engine.fuse_lookups = fused
    return db


def _outcome(run):
    """What a call gives: ("ok", columns, types, rows) or ("error", type, message)."""
    try:
        r = run()
    except errors.HeliosError as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("ok", r.columns, r.column_types, r.rows)


# ---------------------------------------------------------------- point selects
POINT_QUERIES = [
    "SELECT * FROM t WHERE id = $1",
    "SELECT c, id FROM t WHERE id = $1",
    "SELECT id + 1, upper(c) FROM t WHERE id = $1",
    "SELECT n FROM t WHERE id = $1 AND n > $2",
    "SELECT * FROM t WHERE id IN ($1, $2)",
    "SELECT * FROM t WHERE $1 = id",
    "SELECT c FROM t WHERE id = $1 + 0",
    "SELECT c, (SELECT count(*) FROM t) FROM t WHERE id = $1",
    "SELECT * FROM s WHERE k = $1",
    "SELECT k, v FROM s WHERE k = $1 AND v IS NOT NULL",
]
values = st.one_of(st.none(), st.integers(-3, 12), st.sampled_from([2.0, 2.5, -1.0, 1e300]),
                   st.sampled_from(["3", " 4", "x", "", "5.0", "b", "abc"]), st.booleans(),
                   st.sampled_from([b"\x01", 2**63 - 1, -(2**63)]))
t_rows = st.lists(st.tuples(st.integers(-3, 12), st.one_of(st.none(), st.sampled_from(["a", "b", "ab"])),
                            st.one_of(st.none(), st.integers(-5, 5), st.floats(-3, 3))),
                  max_size=10, unique_by=lambda r: r[0])
s_rows = st.lists(st.tuples(st.sampled_from(["3", "4", "x", "", "b", "abc", "5.0"]),
                            st.one_of(st.none(), st.integers(0, 9))), max_size=6, unique_by=lambda r: r[0])


def _load(db, t, s) -> None:
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, c TEXT, n REAL)")
    db.execute("CREATE TABLE s (k TEXT PRIMARY KEY, v INT)")
    if t:
        db.executemany("INSERT INTO t VALUES ($1, $2, $3)", t)
    if s:
        db.executemany("INSERT INTO s VALUES ($1, $2)", s)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t=t_rows, s=s_rows, sql=st.sampled_from(POINT_QUERIES), params=st.lists(st.tuples(values, values), max_size=6))
def test_fused_point_selects_match_the_operators_and_sqlite(t, s, sql, params):
    fused, plain, ref = _open(True), _open(False), sqlite3.connect(":memory:")
    _load(fused, t, s)
    _load(plain, t, s)
    ref.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, c TEXT, n REAL)")
    ref.execute("CREATE TABLE s (k TEXT PRIMARY KEY, v INT)")
    ref.executemany("INSERT INTO t VALUES (?, ?, ?)", t)
    ref.executemany("INSERT INTO s VALUES (?, ?)", s)
    for p in params:
        got = _outcome(lambda: fused.execute(sql, p))
        assert got == _outcome(lambda: plain.execute(sql, p)), (sql, p)
        if got[0] == "ok" and all(type(v) is int for v in p):
            used = p[:2] if "$2" in sql else p[:1]
            want = ref.execute(sql.replace("$1", "?1").replace("$2", "?2"), used).fetchall()
            assert sorted(got[3], key=repr) == sorted(want, key=repr), (sql, p)


def test_point_select_plans_are_fused_and_others_are_not(monkeypatch):
    db = _open()
    _load(db, [(1, "a", 1.0), (2, "b", None)], [("x", 1)])
    fused = ["SELECT * FROM t WHERE id = $1", "SELECT c FROM t WHERE id = $1 AND n > 0",
             "SELECT * FROM t WHERE id IN (1, 2)", "SELECT * FROM s WHERE k = $1"]
    general = ["SELECT * FROM t WHERE id > $1", "SELECT count(*) FROM t WHERE id = $1",
               "SELECT * FROM t WHERE c = $1", "SELECT * FROM t WHERE id = $1 ORDER BY c LIMIT 1"]
    runs = []
    monkeypatch.setattr(engine, "run_all", lambda op: runs.append(op) or run_all(op))
    for sql in fused + general:
        first = db.execute(sql, (1,)).rows
        plan = db._engine._local.plans[(sql, 0)].plan
        assert (fuse(plan.make()) is not None) == (sql in fused), sql
        runs.clear()
        assert db.execute(sql, (1,)).rows == first
        assert bool(runs) == (sql not in fused), sql          # a fused plan runs no operators


def test_fused_point_select_honours_cancel_and_reads_the_transaction():
    db = _open()
    _load(db, [(1, "a", 1.0)], [])
    gone = threading.Event()
    gone.set()
    for fused in (True, False):
        db._engine.fuse_lookups = fused
        db._engine._local.plans.clear()
        with pytest.raises(errors.QueryCancelled):
            db.execute("SELECT * FROM t WHERE id = $1", (1,), cancel=gone)
    db._engine.fuse_lookups = True
    with db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (2, 'b', 2.0)")
        assert tx.execute("SELECT c FROM t WHERE id = $1", (2,)).rows == [("b",)]
        assert db.execute("SELECT c FROM t WHERE id = $1", (2,)).rows == []   # another view: main's head
        tx.rollback()
    assert db.execute("SELECT c FROM t WHERE id = $1", (2,)).rows == []


def test_cached_point_plans_follow_ddl_branches_and_time_travel():
    db = _open()
    q = "SELECT * FROM t WHERE id = $1"
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, c TEXT)")
    db.execute("INSERT INTO t VALUES (1, 'old')")
    before = db.store.snapshot("main").timestamp
    assert db.execute(q, (1,)).rows == [(1, "old")]
    db.execute("UPDATE t SET c = 'new'")
    at = "SELECT c FROM t AS OF SYSTEM TIME $2 WHERE id = $1"
    now = db.store.snapshot("main").timestamp
    assert [db.execute(at, (1, ts)).rows for ts in (before, now, before)] == [[("old",)], [("new",)], [("old",)]]
    db.create_branch("dev")
    db.execute("ALTER TABLE t ADD COLUMN extra INT", branch="dev")
    for _ in range(2):                                  # the same text alternates between schemas
        assert db.execute(q, (1,), branch="dev").rows == [(1, "new", None)]
        assert db.execute(q, (1,)).rows == [(1, "new")]
    db.execute("DROP TABLE t")
    db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, c INT)")
    db.execute("INSERT INTO t VALUES ('1', 7)")
    r = db.execute(q, (1,))
    assert (r.rows, r.column_types) == ([("1", 7)], ["text", "int4"])
    assert db.execute(q, (1,), as_of=before).rows == [(1, "old")]
    db.execute("DROP TABLE t")
    db.execute("CREATE VIEW t AS SELECT 1 AS id, 'view' AS c")
    assert db.execute(q, (1,)).rows == [(1, "view")]
    db.execute("DROP VIEW t")
    with pytest.raises(errors.UnknownTable):
        db.execute(q, (1,))


def test_cached_insert_plans_follow_ddl():
    db = _open()
    ins = "INSERT INTO t VALUES ($1, $2)"
    db.execute("CREATE TABLE t (a INT, b TEXT)")
    db.execute(ins, (1, "x"))
    db.executemany(ins, [(2, "y")])
    db.execute("DROP TABLE t")
    db.execute("CREATE TABLE t (a TEXT, b INT NOT NULL)")
    with pytest.raises(errors.NotNullViolation):
        db.execute(ins, (1, None))
    with pytest.raises(errors.NotNullViolation):
        db.executemany(ins, [(1, 5), (2, None)])
    db.executemany(ins, [(1, 5)])
    assert db.execute("SELECT * FROM t").rows == [("1", 5)]


# ---------------------------------------------------------------- executemany
BULK_DDL = ("CREATE TABLE b (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, flag BOOL, "
            "anything ANY, u INT UNIQUE)")
cells = st.one_of(st.none(), st.integers(-5, 5), st.sampled_from([2**63, -(2**63) - 1, 2**63 - 1]),
                  st.sampled_from([1.5, 2.0, math.inf, math.nan, -0.0]), st.sampled_from(["7", "x", "", "1e3"]),
                  st.just(b"\x00"))             # no bools: they bind row by row (see the test below)
bulk_rows = st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 30)), cells, cells, cells, cells, cells),
                     min_size=1, max_size=8)


def _table(db) -> list:
    return db.execute("SELECT * FROM b ORDER BY id").rows


def _bulk_outcome(db, insert) -> tuple:
    before = _table(db)
    try:
        n = insert()
    except errors.HeliosError as exc:
        assert _table(db) == before, "a failed batch left rows behind"
        return ("error", type(exc).__name__, str(exc))
    return ("ok", n, _table(db))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(existing=bulk_rows, batch=bulk_rows, as_lists=st.booleans())
def test_bulk_executemany_matches_binding_row_by_row(existing, batch, as_lists):
    """A list of plain rows takes the columnar path; a generator of the same rows binds one
    set at a time: same rows stored, same error (type and message), nothing written on error."""
    ins = "INSERT INTO b VALUES ($1, $2, $3, $4, $5, $6)"
    dbs = [_open(), _open()]
    for db in dbs:
        db.execute(BULK_DDL)
        try:
            db.executemany(ins, [r for r in existing if r[1] is not None])
        except errors.HeliosError:
            pass
    data = [list(r) for r in batch] if as_lists else batch
    bulk = _bulk_outcome(dbs[0], lambda: dbs[0].executemany(ins, data).affected_rows)
    rowwise = _bulk_outcome(dbs[1], lambda: dbs[1].executemany(ins, (r for r in data)).affected_rows)
    assert _same(bulk, rowwise), (bulk, rowwise)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=bulk_rows)
def test_bulk_executemany_agrees_with_single_inserts_on_success_and_error_kind(batch):
    """One INSERT per row inside a transaction is the slowest, most general path."""
    ins = "INSERT INTO b VALUES ($1, $2, $3, $4, $5, $6)"
    bulk_db, single_db = _open(), _open()
    bulk_db.execute(BULK_DDL)
    single_db.execute(BULK_DDL)
    bulk = _bulk_outcome(bulk_db, lambda: bulk_db.executemany(ins, batch).affected_rows)

    def one_by_one() -> int:
        with single_db.transaction() as tx:
            for r in batch:
                tx.execute(ins, r)
        return len(batch)
    single = _bulk_outcome(single_db, one_by_one)
    assert bulk[0] == single[0], (bulk, single)
    if bulk[0] == "ok":
        assert _same(bulk, single)


def _same(a: tuple, b: tuple) -> bool:
    """Outcomes equal, NaN equal to NaN."""
    return repr(a) == repr(b)


def test_bulk_executemany_in_a_transaction_is_all_or_nothing():
    db = _open()
    db.execute(BULK_DDL)
    ins = "INSERT INTO b VALUES ($1, $2, $3, $4, $5, $6)"
    db.execute("BEGIN")
    db.execute(ins, (1, "keep", None, None, None, 1))
    good = [(i, f"r{i}", float(i), None, i, 100 + i) for i in range(2, 50)]
    for bad, error in (((50, None, 1.0, None, None, 150), errors.NotNullViolation),
                       ((50, "x", "nan?", None, None, 150), errors.TypeMismatch),
                       ((1, "dup key", 1.0, None, None, 151), errors.DuplicateKey),
                       ((50, "dup unique", 1.0, None, None, 1), errors.UniqueViolation),
                       ((50, "dup in batch", 1.0, None, None, 120), errors.UniqueViolation)):
        with pytest.raises(error):
            db.executemany(ins, good[:30] + [bad] + good[30:])
        assert db.execute("SELECT count(*) FROM b").rows == [(1,)]
    db.executemany(ins, good)
    db.execute("COMMIT")
    assert db.execute("SELECT count(*), sum(u) FROM b").rows == [(49, 1 + sum(100 + i for i in range(2, 50)))]


def test_executemany_takes_tuples_lists_and_typed_parameters():
    db = _open()
    db.execute("CREATE TABLE p (id INTEGER PRIMARY KEY, v INT8, t TEXT)")
    ins = "INSERT INTO p VALUES ($1, $2, $3)"
    db.executemany(ins, [(1, 10, "a"), [2, 20, "b"]])
    db.executemany(ins, ((3, True, "c"),))
    db.executemany(ins, [[4, {"type": "int8", "value": "9007199254740993"}, "d"]])
    assert db.execute("SELECT * FROM p ORDER BY id").rows == [
        (1, 10, "a"), (2, 20, "b"), (3, 1, "c"), (4, 9007199254740993, "d")]
    with pytest.raises(errors.InvalidParameter):
        db.executemany(ins, [(5, 1, "e"), (6, [1], "f")])
    with pytest.raises(errors.InvalidParameter, match=r"uses \$3 but 2"):
        db.executemany(ins, [(5, 1, "e"), (6, 1)])          # a short row: a typed error, not IndexError
    with pytest.raises(errors.InvalidParameter, match=r"uses \$3 but 2"):
        db.execute(ins, (5, 1))
    assert db.execute("SELECT count(*) FROM p").rows == [(4,)]
    db.executemany(ins, [(5, 1, "e", "unused")])            # as execute: parameters past $3 are unused
    assert db.execute("SELECT * FROM p WHERE id = 5").rows == [(5, 1, "e")]


@settings(max_examples=300, deadline=None)
@given(type_name=st.sampled_from(["int4", "int8", "float4", "float8", "text", "bool", "timestamp", "bytea", "any"]),
       column=st.lists(st.one_of(st.none(), st.integers(-(2**64), 2**64), st.floats(), st.text(max_size=3),
                                 st.booleans(), st.binary(max_size=2)), min_size=1, max_size=6))
def test_column_unchanged_only_when_the_coercer_returns_every_value_as_is(type_name, column):
    coerce = column_coercer(type_name, column="c")
    if column_unchanged(type_name, set(map(type, column)), lambda: iter(column)):
        assert all(coerce(v) is v for v in column)
