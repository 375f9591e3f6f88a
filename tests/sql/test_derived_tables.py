"""Derived tables (subqueries in FROM, views) whose query repeats a result name.

``SELECT a, a`` is a valid query; a table built from it gets distinct column
names the way SQLite makes them (``a``, ``a:1``, ``a:2``...), so ``SELECT *``
over it works and a plain ``a`` reads the first one. Every case is checked
against stdlib sqlite3: the same rows and the same column names.
"""
from __future__ import annotations

import sqlite3

import pytest

from helios.sql.scope import derived_column_names

SETUP = [
    "CREATE TABLE t(a INTEGER, b INTEGER)",
    "INSERT INTO t VALUES(1, 2)",
    "INSERT INTO t VALUES(3, 4)",
    "CREATE VIEW v AS SELECT a, b AS a FROM t",
]

CASES = [
    "SELECT * FROM (SELECT a, a FROM t)",
    "SELECT * FROM (SELECT a, a, a FROM t) AS s",
    "SELECT s.* FROM (SELECT a, b AS a FROM t) AS s",
    "SELECT * FROM (SELECT a, A FROM t)",
    "SELECT * FROM (SELECT a AS \"a:1\", a, a FROM t)",
    "SELECT * FROM (SELECT NULL, NULL) AS n",
    "SELECT a FROM (SELECT a, b AS a FROM t)",
    "SELECT \"a:1\" FROM (SELECT a, b AS a FROM t)",
    "SELECT * FROM (SELECT a, a FROM t UNION SELECT b, a FROM t) ORDER BY 1",
    "SELECT * FROM (SELECT a, a FROM t) AS x, (SELECT b, b FROM t) AS y ORDER BY 1, 3",
    "SELECT * FROM v",
]


@pytest.mark.parametrize("sql", CASES)
def test_same_rows_and_names_as_sqlite(twins, sql):
    helios, lite = twins
    cursor = lite.execute(sql)
    expected_rows, expected_names = cursor.fetchall(), [d[0] for d in cursor.description]
    result = helios.execute(sql)
    assert sorted(result.rows) == sorted(expected_rows)
    assert list(result.columns) == expected_names


def test_names_are_made_distinct_as_sqlite_does():
    assert derived_column_names(["a", "b"]) == ["a", "b"]
    assert derived_column_names(["a", "a", "a"]) == ["a", "a:1", "a:2"]
    assert derived_column_names(["a", "A"]) == ["a", "A:1"]                 # case-insensitive clash
    assert derived_column_names(["a:1", "a", "a"]) == ["a:1", "a", "a:2"]  # skips a taken suffix
    assert derived_column_names(["x:1", "x:1"]) == ["x:1", "x:2"]           # an old ":N" is replaced
