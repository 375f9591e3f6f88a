"""The SQL engine through EmbeddedDatabase: results, errors, plans, transactions."""
from __future__ import annotations

import threading
import time

import pytest

from helios import EmbeddedDatabase, errors


@pytest.fixture
def db():
    d = EmbeddedDatabase(":memory:")
    d.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, age INT)")
    d.executemany("INSERT INTO users VALUES ($1, $2, $3, $4)",
                  [(i, f"user{i}", f"u{i}@x.io", 20 + i % 40) for i in range(1, 101)])
    d.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INT, amount REAL)")
    d.executemany("INSERT INTO orders VALUES ($1, $2, $3)",
                  [(i, 1 + i % 100, i * 1.5) for i in range(1, 301)])
    yield d
    d.close()


def test_result_shape(db):
    r = db.execute("SELECT id, name, age FROM users WHERE id = $1", [7])
    assert r.columns == ["id", "name", "age"]
    assert r.column_types == ["int4", "text", "int4"]
    assert r.rows == [(7, "user7", 27)] and r.row_count == 1
    assert r.statement_type == "SELECT"
    w = db.execute("UPDATE users SET age = age + 1 WHERE age > $1", [55])
    assert (w.statement_type, w.affected_rows) == ("UPDATE", 8)


def test_typed_rest_parameters(db):
    r = db.execute("SELECT name FROM users WHERE id = $1", [{"type": "int4", "value": 3}])
    assert r.rows == [("user3",)]
    with pytest.raises(errors.InvalidParameter):
        db.execute("SELECT 1 WHERE $1", [{"type": "int4", "value": 2**40}])
    with pytest.raises(errors.InvalidParameter):
        db.execute("SELECT $1, $2", [1])                      # too few parameters


def test_statement_types(db):
    assert db.execute("CREATE INDEX users_age ON users(age)").statement_type == "CREATE_INDEX"
    assert db.execute("CREATE VIEW adults AS SELECT * FROM users WHERE age >= 50").statement_type == "CREATE_VIEW"
    assert db.execute("ALTER TABLE users ADD COLUMN city TEXT DEFAULT 'x'").statement_type == "ALTER_TABLE"
    assert db.execute("DROP VIEW adults").statement_type == "DROP_VIEW"
    assert db.execute("DROP INDEX users_age").statement_type == "DROP_INDEX"
    assert db.execute("DELETE FROM orders WHERE id > 250").affected_rows == 50
    assert db.execute("DROP TABLE orders").statement_type == "DROP_TABLE"


def test_errors_are_typed_and_change_nothing(db):
    with pytest.raises(errors.SqlSyntaxError) as e:
        db.execute("SELECT * FORM users")
    assert e.value.status == 400 and e.value.line == 1 and e.value.column == 10
    with pytest.raises(errors.UnknownTable):
        db.execute("SELECT * FROM nope")
    with pytest.raises(errors.UnknownColumn):
        db.execute("SELECT nope FROM users")
    with pytest.raises(errors.DuplicateKey) as e:
        db.execute("INSERT INTO users VALUES (200, 'a', 'a@x', 1), (1, 'dup', 'd@x', 1)")
    assert e.value.status == 409
    assert db.execute("SELECT count(*) FROM users WHERE id = 200").rows == [(0,)]   # atomic batch
    with pytest.raises(errors.NotNullViolation):
        db.execute("INSERT INTO users (id, email) VALUES (300, 'z@x')")
    with pytest.raises(errors.UniqueViolation):
        db.execute("UPDATE users SET email = 'u1@x.io' WHERE id = 2")
    with pytest.raises(errors.TypeMismatch) as e:
        db.execute("INSERT INTO users VALUES (301, 'n', 'n@x', 'not a number')")
    assert e.value.status == 422
    assert db.execute("SELECT count(*) FROM users").rows == [(100,)]


def test_integer_primary_key_autoincrements(db):
    db.execute("INSERT INTO users (name, email) VALUES ('auto', 'auto@x')")
    assert db.execute("SELECT id FROM users WHERE name = 'auto'").rows == [(101,)]


def test_joins_aggregates_order_limit(db):
    r = db.execute("""SELECT u.name, count(*) AS n, sum(o.amount) FROM users u JOIN orders o ON o.user_id = u.id
                      WHERE u.id <= 3 GROUP BY u.name ORDER BY u.name""")
    assert r.columns == ["name", "n", "sum(o.amount)"]
    assert r.rows == [("user1", 3, 1.5 * (100 + 200 + 300)),
                      ("user2", 3, 1.5 * (1 + 101 + 201)), ("user3", 3, 1.5 * (2 + 102 + 202))]
    left = db.execute("""SELECT u.id, o.id FROM users u LEFT JOIN orders o ON o.user_id = u.id AND o.amount > 1000
                         WHERE u.id IN (1, 2) ORDER BY 1, 2""").rows
    assert left == [(1, None), (2, None)]                # no order of theirs is over 1000
    top = db.execute("SELECT id FROM orders ORDER BY amount DESC LIMIT 3 OFFSET 1").rows
    assert top == [(299,), (298,), (297,)]


def test_explain_shows_access_paths(db):
    db.execute("CREATE INDEX users_age ON users(age)")
    plan = "\n".join(r[0] for r in db.execute("EXPLAIN SELECT * FROM users WHERE id = 5").rows)
    assert "KeyLookup users" in plan
    plan = "\n".join(r[0] for r in db.execute("EXPLAIN SELECT * FROM users WHERE age = 30").rows)
    assert "IndexScan users using users_age" in plan
    plan = "\n".join(r[0] for r in db.execute(
        "EXPLAIN SELECT * FROM users u, orders o WHERE o.user_id = u.id").rows)
    assert "HashJoin" in plan
    assert db.execute("SELECT count(*) FROM users WHERE age = 30").rows == [(3,)]


def test_plan_cache_sees_schema_changes(db):
    q = "SELECT * FROM users WHERE id = 1"
    assert len(db.execute(q).columns) == 4
    db.execute("ALTER TABLE users ADD COLUMN city TEXT")
    assert db.execute(q).columns == ["id", "name", "email", "age", "city"]


def test_views(db):
    db.execute("CREATE VIEW old AS SELECT id, name FROM users WHERE age > 55")
    assert db.execute("SELECT count(*) FROM old").rows == [(8,)]
    with pytest.raises(errors.SemanticError):
        db.execute("CREATE VIEW broken AS SELECT nope FROM users")


def test_transactions_commit_and_roll_back(db):
    with db.transaction() as tx:
        tx.execute("INSERT INTO users VALUES (500, 'tx', 'tx@x', 1)")
        assert tx.execute("SELECT name FROM users WHERE id = 500").rows == [("tx",)]
        assert db.execute("SELECT count(*) FROM users WHERE id = 500").rows == [(0,)]
    assert db.execute("SELECT count(*) FROM users WHERE id = 500").rows == [(1,)]
    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            tx.execute("DELETE FROM users")
            raise RuntimeError("boom")
    assert db.execute("SELECT count(*) FROM users").rows == [(101,)]
    db.execute("BEGIN")
    db.execute("DELETE FROM users WHERE id = 500")
    db.execute("ROLLBACK")
    assert db.execute("SELECT count(*) FROM users WHERE id = 500").rows == [(1,)]
    with pytest.raises(errors.TransactionError):
        db.execute("COMMIT")


def test_failed_statement_inside_transaction_leaves_no_trace(db):
    with db.transaction() as tx:
        with pytest.raises(errors.DuplicateKey):
            tx.execute("INSERT INTO users VALUES (600, 'a', 'a6@x', 1), (1, 'b', 'b@x', 1)")
        tx.execute("INSERT INTO users VALUES (601, 'c', 'c6@x', 1)")
    ids = [r[0] for r in db.execute("SELECT id FROM users WHERE id >= 600").rows]
    assert ids == [601]


def test_branches_and_time_travel_through_sql(db):
    t0 = time.time()
    time.sleep(0.002)
    db.create_branch("dev")
    db.execute("UPDATE users SET name = 'changed' WHERE id = 1", branch="dev")
    assert db.execute("SELECT name FROM users WHERE id = 1").rows == [("user1",)]
    assert db.execute("SELECT name FROM users WHERE id = 1", branch="dev").rows == [("changed",)]
    db.execute("DELETE FROM users WHERE id = 2")
    assert db.execute("SELECT count(*) FROM users", as_of=t0).rows == [(100,)]
    assert db.execute(f"SELECT count(*) FROM users AS OF SYSTEM TIME {t0}").rows == [(100,)]
    with pytest.raises(errors.UnknownTable):          # an hour ago the table did not exist yet
        db.execute("SELECT count(*) FROM users AS OF SYSTEM TIME '-1h'")
    with pytest.raises(errors.ReadOnlyBranch):
        db.execute("DELETE FROM users", as_of=t0)
    r = db.merge("dev", "main")
    assert r.merged_keys == 1
    assert db.execute("SELECT name FROM users WHERE id = 1").rows == [("changed",)]


def test_timeout_stops_a_long_query(db):
    db.executemany("INSERT INTO orders VALUES ($1, 1, 1.0)", [(i,) for i in range(1000, 4000)])
    t = time.monotonic()
    with pytest.raises(errors.QueryTimeout) as e:
        db.execute("SELECT count(*) FROM orders a, orders b, orders c", timeout_ms=100)
    assert time.monotonic() - t < 2
    assert e.value.message == "Query exceeded timeout of 100ms" and e.value.status == 408


def test_concurrent_readers_and_writers(db):
    errors_seen = []

    def reader():
        try:
            for _ in range(50):
                n = db.execute("SELECT count(*) FROM users").rows[0][0]
                assert n >= 100
        except Exception as exc:          # surfaced below
            errors_seen.append(exc)

    def writer(base):
        try:
            for i in range(25):
                db.execute("INSERT INTO users VALUES ($1, 'w', $2, 1)", [base + i, f"w{base + i}@x"])
        except Exception as exc:
            errors_seen.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)] + \
        [threading.Thread(target=writer, args=(10_000 * (k + 1),)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors_seen
    assert db.execute("SELECT count(*) FROM users").rows == [(175,)]


def test_durable_database_survives_reopen(tmp_path):
    path = str(tmp_path / "my.db")
    with EmbeddedDatabase(path) as d:
        d.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        d.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        d.execute("CREATE VIEW v AS SELECT v FROM t WHERE id = 2")
    with EmbeddedDatabase(path) as d:
        assert d.execute("SELECT * FROM t ORDER BY id").rows == [(1, "a"), (2, "b")]
        assert d.execute("SELECT * FROM v").rows == [("b",)]


def test_select5_style_eight_table_join_finishes_fast():
    """Comma joins of many tables with equality chains must hash-join, not nest loops."""
    d = EmbeddedDatabase(":memory:")
    for t in range(1, 9):
        d.execute(f"CREATE TABLE t{t} (a{t} INTEGER PRIMARY KEY, b{t} INTEGER, x{t} TEXT)")
        d.executemany(f"INSERT INTO t{t} VALUES ($1, $2, $3)", [(i, (i * 7 + t) % 500, f"r{i}") for i in range(500)])
    where = " AND ".join(f"a{t} = b{t + 1}" for t in range(1, 8))
    sql = f"SELECT count(*) FROM t1, t2, t3, t4, t5, t6, t7, t8 WHERE {where} AND a8 < 250"
    t0 = time.monotonic()
    r = d.execute(sql, timeout_ms=20_000)
    assert time.monotonic() - t0 < 5
    import sqlite3
    ref = sqlite3.connect(":memory:")
    for t in range(1, 9):
        ref.execute(f"CREATE TABLE t{t} (a{t} INTEGER PRIMARY KEY, b{t} INTEGER, x{t} TEXT)")
        ref.executemany(f"INSERT INTO t{t} VALUES (?, ?, ?)", [(i, (i * 7 + t) % 500, f"r{i}") for i in range(500)])
    assert r.rows == ref.execute(sql).fetchall()
    plan = "\n".join(x[0] for x in d.execute("EXPLAIN " + sql).rows)
    assert plan.count("HashJoin") == 7 and "NestedLoopJoin" not in plan


def test_executemany_fast_path_keeps_every_check():
    d = EmbeddedDatabase(":memory:")
    d.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)")
    d.executemany("INSERT INTO t VALUES ($1, $2, $3)", [(1, "a", 1), (2, "b", None), (None, "auto", 2.5)])
    assert d.execute("SELECT * FROM t ORDER BY id").rows == [(1, "a", 1.0), (2, "b", None), (3, "auto", 2.5)]
    with pytest.raises(errors.NotNullViolation):
        d.executemany("INSERT INTO t VALUES ($1, $2, $3)", [(10, "ok", 1.0), (11, None, 1.0)])
    with pytest.raises(errors.TypeMismatch):
        d.executemany("INSERT INTO t VALUES ($1, $2, $3)", [(12, "ok", 1.0), (13, "x", "not a number")])
    with pytest.raises(errors.DuplicateKey):
        d.executemany("INSERT INTO t VALUES ($1, $2, $3)", [(14, "ok", 1.0), (1, "dup", 1.0)])
    assert d.execute("SELECT count(*) FROM t").rows == [(3,)]          # every failed batch changed nothing


def test_left_join_without_condition_pads_when_the_right_side_is_empty():
    d = EmbeddedDatabase(":memory:")
    d.execute("CREATE TABLE a (x INT)")
    d.execute("CREATE TABLE b (y INT)")
    d.execute("INSERT INTO a VALUES (1), (2)")
    assert d.execute("SELECT * FROM a LEFT JOIN b ORDER BY x").rows == [(1, None), (2, None)]
    d.execute("INSERT INTO b VALUES (7)")
    assert d.execute("SELECT * FROM a LEFT JOIN b ORDER BY x").rows == [(1, 7), (2, 7)]


def test_batch_filters_keep_exactly_the_rows_the_row_filter_keeps():
    """``column <op> constant`` filters run over whole batches in C; with NULLs, mixed
    ints and reals, text, and the constant on either side, they keep the same rows."""
    import sqlite3
    d = EmbeddedDatabase(":memory:")
    ref = sqlite3.connect(":memory:")
    rows = [(i, None if i % 7 == 0 else i % 13 - 6, None if i % 5 == 0 else (i % 9) / 2,
             None if i % 11 == 0 else f"k{i % 17}") for i in range(1, 3000)]
    no_nulls = [r for r in rows if None not in r]          # every batch passes in C, none falls back
    for conn, mark in ((d, "$"), (ref, "?")):
        for table, data in (("t", rows), ("u", no_nulls)):
            conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, n INT, r REAL, s TEXT)")
            params = ", ".join(f"${i}" if mark == "$" else "?" for i in range(1, 5))
            conn.executemany(f"INSERT INTO {table} VALUES ({params})", data)
    for op in ("=", "!=", "<>", "<", "<=", ">", ">="):
        for cond in (f"n {op} 2", f"2 {op} n", f"r {op} 1.5", f"n {op} 1.5", f"r {op} 2", f"s {op} 'k5'",
                     f"n {op} '3'", f"n {op} 2 AND r {op} 2.5", f"id {op} 1500"):
            for table in ("t", "u"):
                sql = f"SELECT id FROM {table} WHERE {cond}"
                assert sorted(d.execute(sql).rows) == sorted(ref.execute(sql).fetchall()), sql


def test_typed_column_against_a_constant_gets_a_batch_filter():
    from helios.sql import ast, parser
    from helios.sql.compile import Compiler, all_of, batch_form
    from helios.sql.runtime import Runtime
    from helios.sql.scope import ColumnInfo, Scope
    scope = Scope([ColumnInfo("n", "t", "int8"), ColumnInfo("s", "t", "text"), ColumnInfo("x", "t", None)])
    compiler = Compiler(Runtime(), None)

    def pred(cond: str):
        select = parser.parse(f"SELECT 1 FROM t WHERE {cond}")[0]
        assert isinstance(select, ast.Select)
        return compiler.predicate(select.where, scope)
    rows = [(1, "a", 1), (None, "b", 2), (5, None, 3), (3, "c", None)]
    for cond in ("n > 2", "2 < n", "s = 'a'", "n != 1", "s >= 'b'"):
        f = pred(cond)
        assert batch_form(f) is not None, cond
        assert batch_form(f)(rows) == [r for r in rows if f(r)], cond
    both = all_of([pred("n > 0"), pred("s != 'c'")])
    assert batch_form(both)(rows) == [(1, "a", 1)]
    for cond in ("x > 2", "n > x", "n + 1 > 2", "n > $1"):     # untyped, two columns, expressions, parameters
        assert batch_form(pred(cond)) is None, cond


def _moment() -> float:
    """A timestamp strictly between the commits before and after it."""
    import time as _time
    _time.sleep(0.002)
    t = _time.time()
    _time.sleep(0.002)
    return t


def test_as_of_system_time_reads_with_the_schema_of_then():
    """A table read AS OF a moment before an ALTER, a DROP or a recreation comes back
    with the columns and key types it had then, exactly as the as_of parameter reads it."""
    from helios import EmbeddedDatabase
    from helios.errors import UnknownColumn
    db = EmbeddedDatabase(":memory:")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    db.execute("INSERT INTO t VALUES (1, 'a')")
    before_alter = _moment()
    db.execute("INSERT INTO t VALUES (2, 'b')")
    assert db.query(f"SELECT v FROM t AS OF SYSTEM TIME {before_alter}").rows == [("a",)]
    db.execute("ALTER TABLE t ADD COLUMN w INT")
    db.execute("UPDATE t SET w = 7")
    old = db.query(f"SELECT * FROM t AS OF SYSTEM TIME {before_alter}")
    assert (old.columns, old.rows) == (["id", "v"], [(1, "a")])
    assert db.query(f"SELECT v FROM t AS OF SYSTEM TIME {before_alter} WHERE id = 1").rows == [("a",)]
    with pytest.raises(UnknownColumn):
        db.query(f"SELECT w FROM t AS OF SYSTEM TIME {before_alter}")
    # then and now side by side, in one statement
    both = db.query(f"SELECT n.id, o.v, n.w FROM t n LEFT JOIN t o AS OF SYSTEM TIME {before_alter} "
                    f"ON o.id = n.id ORDER BY n.id")
    assert both.rows == [(1, "a", 7), (2, None, 7)]
    before_drop = _moment()
    db.execute("DROP TABLE t")
    db.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)")
    db.execute("INSERT INTO t VALUES ('1', 'new')")
    for sql in (f"SELECT * FROM t AS OF SYSTEM TIME {before_alter} WHERE id = 1",
                f"SELECT * FROM t AS OF SYSTEM TIME {before_alter} WHERE id > 0"):
        assert db.query(sql).rows == [(1, "a")]
        assert db.query(sql).rows == db.query(sql.replace(f" AS OF SYSTEM TIME {before_alter}", ""),
                                              as_of=before_alter).rows
    assert db.query(f"SELECT * FROM t AS OF SYSTEM TIME {before_drop} ORDER BY id").rows == [(1, "a", 7), (2, "b", 7)]
    assert db.query("SELECT * FROM t WHERE id = '1'").rows == [("1", "new")]


def test_as_of_system_time_of_a_dropped_table_and_before_a_table_existed():
    from helios import EmbeddedDatabase
    from helios.errors import SemanticError, UnknownTable
    db = EmbeddedDatabase(":memory:")
    db.execute("CREATE TABLE early(x INT)")
    before = _moment()
    db.execute("CREATE TABLE gone(id INTEGER PRIMARY KEY, v TEXT)")
    db.execute("INSERT INTO gone VALUES (1, 'kept in history')")
    db.execute("CREATE VIEW v AS SELECT * FROM gone")
    alive = _moment()
    db.execute("DROP VIEW v")
    db.execute("DROP TABLE gone")
    with pytest.raises(UnknownTable):
        db.query("SELECT * FROM gone")
    assert db.query(f"SELECT v FROM gone AS OF SYSTEM TIME {alive}").rows == [("kept in history",)]
    with pytest.raises(UnknownTable, match=r"no such table: gone as of \d{4}-\d\d-\d\dT.*Z"):
        db.query(f"SELECT * FROM gone AS OF SYSTEM TIME {before}")
    db.execute("CREATE VIEW w AS SELECT * FROM early")
    with pytest.raises(SemanticError, match="w is a view.*as_of parameter"):
        db.query(f"SELECT * FROM w AS OF SYSTEM TIME {alive}")


def test_a_cached_as_of_plan_is_replanned_when_the_moment_has_another_schema():
    """One statement text, its moment a parameter: each execution reads the schema of
    its own moment (the cached plan is replaced, not reused with the wrong columns)."""
    from helios import EmbeddedDatabase
    db = EmbeddedDatabase(":memory:")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    db.execute("INSERT INTO t VALUES (1, 'a')")
    t1 = _moment()
    db.execute("ALTER TABLE t ADD COLUMN w INT")
    db.execute("UPDATE t SET w = 5")
    t2 = _moment()
    sql = "SELECT * FROM t AS OF SYSTEM TIME $1 WHERE id = 1"
    for _ in range(2):                                 # both orders hit a cached plan of the other
        first, second = db.query(sql, [t1]), db.query(sql, [t2])
        assert (first.columns, first.rows) == (["id", "v"], [(1, "a")])
        assert (second.columns, second.rows) == (["id", "v", "w"], [(1, "a", 5)])


def test_writes_restore_the_past_with_as_of_system_time():
    """The undo a user reaches for: put back rows deleted or changed since a moment,
    reading the branch's committed past inside INSERT, UPDATE and DELETE - also in an
    explicit transaction, and with a schema that has changed since."""
    from helios import EmbeddedDatabase
    db = EmbeddedDatabase(":memory:")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    db.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    good = _moment()
    db.execute("DELETE FROM t WHERE id >= 2")
    db.execute("UPDATE t SET v = 'oops' WHERE id = 1")
    db.execute("ALTER TABLE t ADD COLUMN w INT")
    restore = (f"INSERT INTO t (id, v) SELECT id, v FROM t AS OF SYSTEM TIME {good} "
               f"WHERE id NOT IN (SELECT id FROM t)")
    assert db.execute(restore).affected_rows == 2
    assert db.execute(f"UPDATE t SET v = (SELECT o.v FROM t o AS OF SYSTEM TIME {good} WHERE o.id = t.id) "
                      f"WHERE id = 1").affected_rows == 1
    assert db.query("SELECT * FROM t ORDER BY id").rows == [(1, "a", None), (2, "b", None), (3, "c", None)]
    db.execute("INSERT INTO t VALUES (4, 'new', 0)")
    with db.transaction() as tx:
        assert tx.execute(f"DELETE FROM t WHERE id NOT IN (SELECT id FROM t AS OF SYSTEM TIME {good})"
                          ).affected_rows == 1
    assert db.query("SELECT id FROM t ORDER BY id").rows == [(1,), (2,), (3,)]
    assert db.execute(restore).affected_rows == 0          # a cached plan, same moment: nothing left to restore
