"""The per-statement and bulk-insert fast paths give exactly what the general paths give.

Point selects (``pk = $1``) run as a fused function instead of operators, and
executemany binds and coerces whole columns at once: both are compared here with
the general path on the same data (results, column types and errors), with
sqlite3, and across everything that must invalidate a cached plan.
"""
from __future__ import annotations

import itertools
import math
import sqlite3
import threading
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helios import EmbeddedDatabase, errors
from helios.sql import engine
from helios.sql.fused import fuse, picker
from helios.sql.operators import run_all
from helios.sql.runtime import Runtime
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
             "SELECT * FROM t WHERE id IN (1, 2)", "SELECT * FROM s WHERE k = $1",
             # filtered scans (see the scan tests below)
             "SELECT * FROM t WHERE id > $1", "SELECT * FROM t WHERE c = $1", "SELECT n, id FROM t WHERE n > 0"]
    general = ["SELECT count(*) FROM t WHERE id = $1", "SELECT * FROM t WHERE id = $1 ORDER BY c LIMIT 1",
               "SELECT id + 1 FROM t WHERE n > $1", "SELECT * FROM t WHERE n > $1 LIMIT 1",
               "SELECT DISTINCT c FROM t WHERE id > $1", "SELECT t.c FROM t JOIN s ON s.v = t.id WHERE t.id > $1"]
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


# ---------------------------------------------------------------- filtered scans
SCAN_OUTPUTS = ["*", "id", "b", "a, b", "b, a", "id, b, d", "d, id", "c, c", "id, a, b, c", "c, a, id", "id, c"]
SCAN_FILTERS = ["", "a > 2", "a >= 2.5", "a = '3'", "3 < a", "a != 1", "b < 'b'", "b = 'ab'", "b >= 'a'",
                "c <= 1", "c = 2", "c > -1.5", "b != 'zz'", "d > 1", "d = 'x'", "a > NULL", "a IS NULL",
                "b LIKE 'a%'", "id > 3", "id <= 5 AND a < 5", "a > 1 AND b IS NOT NULL", "a > 1 AND c < 2",
                "a < 9 AND b > 'a' AND c != 0", "a > 0 OR c > 0", "a + 0 > 1"]
u_rows = st.lists(st.tuples(st.integers(-3, 12), st.one_of(st.none(), st.integers(-2, 6)),
                            st.one_of(st.none(), st.sampled_from(["a", "b", "ab", "", "B"])),
                            st.one_of(st.none(), st.integers(-2, 3), st.sampled_from([-1.5, 0.5, 2.0, 1e300])),
                            st.one_of(st.none(), st.integers(-2, 3), st.sampled_from([1.5, "x", "2", ""]))),
                  max_size=40, unique_by=lambda r: r[0])
U_DDL = "CREATE TABLE u (id INTEGER PRIMARY KEY, a INT, b TEXT, c REAL, d)"


def _scan_db(fused: bool, rows: list) -> EmbeddedDatabase:
    db = _open(fused)
    db.execute(U_DDL)
    if rows:
        db.executemany("INSERT INTO u VALUES ($1, $2, $3, $4, $5)", rows)
    return db


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=u_rows, outputs=st.sampled_from(SCAN_OUTPUTS), where=st.sampled_from(SCAN_FILTERS))
def test_fused_scans_match_the_operators_and_sqlite(rows, outputs, where):
    """Rows (as tuples, in key order), column types and errors: the fused scan gives
    exactly what the operators give, NULLs, mixed types and empty results included;
    and the rows sqlite3 gives."""
    sql = f"SELECT {outputs} FROM u" + (f" WHERE {where}" if where else "")
    fused, plain, ref = _scan_db(True, rows), _scan_db(False, rows), sqlite3.connect(":memory:")
    ref.execute(U_DDL)
    ref.executemany("INSERT INTO u VALUES (?, ?, ?, ?, ?)", rows)
    want = _outcome(lambda: plain.execute(sql))
    for _ in range(2):                                   # the first run builds operators, later ones are fused
        assert _outcome(lambda: fused.execute(sql)) == want, sql
    assert fuse(fused._engine._local.plans[(sql, 0)].plan.make()) is not None, sql
    assert all(type(r) is tuple for r in want[3])
    assert Counter(want[3]) == Counter(ref.execute(sql).fetchall()), sql


def test_fused_scan_shapes_and_what_runs():
    db = _scan_db(True, [(1, 5, "a", 1.0, None), (2, None, "b", None, "x"), (3, 7, None, 2.5, 4)])
    assert db.execute("SELECT b, id FROM u WHERE a > 4").rows == [("a", 1), (None, 3)]
    assert db.execute("SELECT b, id FROM u WHERE a > 4").rows == [("a", 1), (None, 3)]
    assert db.execute("SELECT id FROM u WHERE a > 100").rows == []
    assert db.execute("SELECT id FROM u WHERE a > 100").rows == []
    empty = _scan_db(True, [])
    for _ in range(2):
        r = empty.execute("SELECT c, a FROM u WHERE a > 1")
        assert (r.rows, r.column_types) == ([], ["float4", "int4"])
    fused = ["SELECT * FROM u", "SELECT id, b FROM u WHERE a > 4", "SELECT d FROM u WHERE b LIKE 'a%'",
             "SELECT c, a, id FROM u WHERE a > 1 AND c < 9", "SELECT * FROM u WHERE id > 1 AND a IS NOT NULL"]
    general = ["SELECT a + 1 FROM u WHERE a > 4", "SELECT id FROM u WHERE a > 4 ORDER BY b",
               "SELECT count(*) FROM u WHERE a > 4", "SELECT id FROM u WHERE a > 4 LIMIT 1"]
    for sql in fused + general:
        assert (fuse(_plan(db, sql)) is not None) == (sql in fused), sql


def _plan(db, sql: str):
    db.execute(sql)
    return db._engine._local.plans[(sql, 0)].plan.make()


def test_fused_scan_honours_cancel_and_the_deadline_and_reads_the_transaction(monkeypatch):
    db = _scan_db(True, [(i, i % 7, "x", 1.0, None) for i in range(5000)])
    q = "SELECT id, b FROM u WHERE a > 3"
    assert db.execute(q).rows == db.execute(q).rows == [(i, "x") for i in range(5000) if i % 7 > 3]
    gone = threading.Event()
    gone.set()
    with pytest.raises(errors.QueryCancelled):
        db.execute(q, cancel=gone)
    calls = []

    def check(rt) -> None:                      # the deadline passes at the third leaf
        calls.append(1)
        if len(calls) == 3:
            raise errors.QueryTimeout.after(rt.timeout_ms)
    monkeypatch.setattr(Runtime, "check", check)
    db.execute(q)
    assert calls == []                          # no deadline, no cancel event: nothing to check
    with pytest.raises(errors.QueryTimeout):
        db.execute(q, timeout_ms=60_000)
    assert len(calls) == 3
    monkeypatch.undo()
    with db.transaction() as tx:
        tx.execute("INSERT INTO u VALUES (-1, 9, 'new', NULL, NULL)")
        assert tx.execute(q).rows[:2] == [(-1, "new"), (4, "x")]
        assert db.execute(q).rows[:1] == [(4, "x")]          # another view: main's head
        tx.rollback()


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_fused_scan_is_right_before_and_after_a_null_appears_anywhere(op):
    """An ordering first runs without a NULL test and starts over with one when a NULL
    raises: wherever the NULL is (first row, last leaf), and when NULLs come and go."""
    rows = [(i, i % 5, f"n{i}", 0.5, None) for i in range(3000)]
    fused, plain = _scan_db(True, rows), _scan_db(False, rows)
    q = f"SELECT b, id FROM u WHERE a {op} 2"
    changes = ["UPDATE u SET a = NULL WHERE id = 2999", "UPDATE u SET a = NULL WHERE id = 0",
               "UPDATE u SET a = 1 WHERE a IS NULL", "DELETE FROM u", "INSERT INTO u VALUES (1, NULL, 'x', 1, 1)",
               "INSERT INTO u VALUES (2, 2, 'y', 1, 1)"]
    for change in [None] + changes:
        for db in (fused, plain):
            if change:
                db.execute(change)
        want = plain.execute(q).rows
        assert fused.execute(q).rows == want == fused.execute(q).rows, change
    assert want == ([("y", 2)] if op in ("=", "<=", ">=") else [])


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_picker_takes_exactly_the_positions_as_a_tuple(width):
    row = tuple(range(10, 16))
    for positions in itertools.product(range(len(row)), repeat=width):
        pick = picker(list(positions))
        got = row[pick] if type(pick) is slice else pick(row)
        assert type(got) is tuple and got == tuple(row[p] for p in positions), positions


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
