"""Differential testing: random schemas, data and queries on HeliosDB and on stdlib sqlite3.

Both engines get the same CREATE/INSERT statements and the same SELECT; the
answers must agree as multisets (or as lists when the query orders every
column). Floats compare with a relative tolerance.
"""
from __future__ import annotations

import sqlite3

from hypothesis import HealthCheck, given, settings, strategies as st

from helios import EmbeddedDatabase, errors

COLS = ["a", "b", "c"]             # a INTEGER, b INTEGER, c TEXT in both tables
ints = st.one_of(st.none(), st.integers(-3, 7))        # small: rows often equal the literals
texts = st.one_of(st.none(), st.sampled_from(["", "x", "y", "xy", "Y", "10"]))
rows = st.lists(st.tuples(ints, ints, texts), min_size=0, max_size=12)


def literal(draw) -> str:
    return draw(st.sampled_from(["NULL", "0", "1", "-3", "7", "'x'", "2.5"]))


@st.composite
def expr(draw, depth: int = 0, tables=("t1",)) -> str:
    col = lambda: f"{draw(st.sampled_from(tables))}.{draw(st.sampled_from(['a', 'b']))}"  # noqa: E731
    if depth > 2:
        return draw(st.sampled_from([col(), literal(draw)]))
    kind = draw(st.sampled_from(["cmp", "arith", "and", "or", "not", "null", "between", "in", "case",
                                 "func", "col", "lit"]))
    sub = lambda: draw(expr(depth + 1, tables))  # noqa: E731
    if kind == "cmp":
        return f"({sub()} {draw(st.sampled_from(['=', '<>', '<', '<=', '>', '>=']))} {sub()})"
    if kind == "arith":
        return f"({sub()} {draw(st.sampled_from(['+', '-', '*', '/', '%']))} {sub()})"
    if kind in ("and", "or"):
        return f"({sub()} {kind.upper()} {sub()})"
    if kind == "not":
        return f"(NOT {sub()})"
    if kind == "null":
        return f"({sub()} IS {draw(st.sampled_from(['', 'NOT ']))}NULL)"
    if kind == "between":
        return f"({sub()} {draw(st.sampled_from(['', 'NOT ']))}BETWEEN {sub()} AND {sub()})"
    if kind == "in":
        items = ", ".join(draw(st.lists(st.sampled_from(["1", "2", "-3", "NULL", "7"]), min_size=1, max_size=4)))
        return f"({sub()} {draw(st.sampled_from(['', 'NOT ']))}IN ({items}))"
    if kind == "case":
        return f"CASE WHEN {sub()} THEN {sub()} ELSE {sub()} END"
    if kind == "func":
        f = draw(st.sampled_from(["abs", "coalesce", "nullif", "ifnull"]))
        return f"abs({sub()})" if f == "abs" else f"{f}({sub()}, {sub()})"
    if kind == "col":
        return col()
    return literal(draw)


@st.composite
def query(draw) -> tuple[str, bool]:
    shape = draw(st.sampled_from(["filter", "aggregate", "join", "join_aggregate", "distinct", "order",
                                  "order1"]))
    if shape == "order1":                  # one sort column, the only output: the order is fully determined
        col = draw(st.sampled_from(["t1.a", "t1.c"]))
        nulls = draw(st.sampled_from(["", " NULLS FIRST", " NULLS LAST"]))
        limit = draw(st.sampled_from(["", " LIMIT 3", " LIMIT 2 OFFSET 1"]))
        return (f"SELECT {col} FROM t1 WHERE {draw(expr())} "
                f"ORDER BY {col} {draw(st.sampled_from(['ASC', 'DESC']))}{nulls}{limit}"), True
    if shape == "join":
        on = f"t1.{draw(st.sampled_from(['a', 'b']))} = t2.{draw(st.sampled_from(['a', 'b']))}"
        where = draw(expr(tables=("t1", "t2")))
        kind = draw(st.sampled_from(["JOIN", "LEFT JOIN"]))
        return f"SELECT t1.a, t1.c, t2.b FROM t1 {kind} t2 ON {on} WHERE {where}", False
    if shape == "join_aggregate":           # grouped straight over a hash join (HashJoinAggregate)
        on = f"t1.{draw(st.sampled_from(['a', 'b']))} = t2.{draw(st.sampled_from(['a', 'b']))}"
        if draw(st.booleans()):
            on += f" AND {draw(expr(tables=('t1', 't2')))}"
        kind = draw(st.sampled_from(["JOIN", "LEFT JOIN"]))
        key = draw(st.sampled_from(["t1.a", "t2.b", "t1.c", "t2.c", "t1.a + t2.b", "t1.b, t2.a"]))
        agg = draw(st.sampled_from(["count(*)", "count(t2.b)", "sum(t2.a)", "sum(t1.b)", "total(t1.a + t2.b)",
                                    "min(t2.c)", "max(t1.b)", "avg(t2.b)", "count(DISTINCT t2.b)"]))
        having = draw(st.sampled_from(["", " HAVING count(*) > 1", f" HAVING {agg} IS NOT NULL"]))
        where = f" WHERE {draw(expr(tables=('t1', 't2')))}" if kind == "JOIN" and draw(st.booleans()) else ""
        return f"SELECT {key}, {agg} FROM t1 {kind} t2 ON {on}{where} GROUP BY {key}{having}", False
    if shape == "aggregate":
        agg = draw(st.sampled_from(["count(*)", "count(t1.b)", "sum(t1.b)", "min(t1.c)", "max(t1.b)",
                                    "total(t1.a)", "count(DISTINCT t1.b)"]))
        return f"SELECT t1.a, {agg} FROM t1 WHERE {draw(expr())} GROUP BY t1.a", False
    if shape == "distinct":
        return f"SELECT DISTINCT t1.c FROM t1 WHERE {draw(expr())}", False
    if shape == "order":
        return (f"SELECT t1.a, t1.b, t1.c FROM t1 WHERE {draw(expr())} "
                f"ORDER BY t1.a {draw(st.sampled_from(['ASC', 'DESC']))}, t1.b, t1.c"), True
    return f"SELECT {draw(expr())}, t1.c FROM t1 WHERE {draw(expr())}", False


def _norm(v):
    if isinstance(v, float):
        if v.is_integer():
            return ("n", v)
        return ("f", round(v, 9))
    if isinstance(v, int):
        return ("n", float(v))
    return ("v", v)


def _same(a: list, b: list, ordered: bool) -> bool:
    na = [tuple(_norm(v) for v in r) for r in a]
    nb = [tuple(_norm(v) for v in r) for r in b]
    if not ordered:
        na, nb = sorted(na, key=repr), sorted(nb, key=repr)
    return na == nb


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t1=rows, t2=rows, q=query())
def test_same_answers_as_sqlite(t1, t2, q):
    sql, ordered = q
    ref = sqlite3.connect(":memory:")
    db = EmbeddedDatabase(":memory:")
    for name, data in (("t1", t1), ("t2", t2)):
        ddl = f"CREATE TABLE {name} (a INTEGER, b INTEGER, c TEXT)"
        ref.execute(ddl)
        db.execute(ddl)
        if data:
            ref.executemany(f"INSERT INTO {name} VALUES (?, ?, ?)", data)
            db.executemany(f"INSERT INTO {name} VALUES ($1, $2, $3)", data)
    try:
        expected = ref.execute(sql).fetchall()
    except (sqlite3.Error, OverflowError):
        return                                      # not a valid query for the reference either
    try:
        got = db.execute(sql).rows
    except errors.HeliosError as exc:
        raise AssertionError(f"{sql}\nhelios raised {exc!r}; sqlite returned {expected[:5]}") from exc
    assert _same(got, expected, ordered), f"{sql}\nhelios: {got[:8]}\nsqlite: {expected[:8]}"
