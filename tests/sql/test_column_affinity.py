"""SQLite's comparison affinity where a comparison is planned per row, not folded.

A TEXT column compared with a numeric column reads its text as a number
(``'01' = 1`` holds), whether the comparison is a filter, a select-list value,
a hash-join key or an ``IN (subquery)``; and a signed number such as ``-1``
beside a TEXT column reads as text, like any other number literal. Every case
is checked against stdlib sqlite3.
"""
from __future__ import annotations

import sqlite3

import pytest


SETUP = [
    "CREATE TABLE p(k INTEGER PRIMARY KEY, i INTEGER, t VARCHAR(10), r REAL)",
    "CREATE TABLE q(k INTEGER PRIMARY KEY, i INTEGER, t VARCHAR(10), r REAL)",
    "INSERT INTO p VALUES(1, 1, '1', 1.0)",
    "INSERT INTO p VALUES(2, 2, '02', 2.5)",
    "INSERT INTO p VALUES(3, 3, 'abc', -1.0)",
    "INSERT INTO p VALUES(4, NULL, '-1', NULL)",
    "INSERT INTO p VALUES(5, -1, '2.5', 3.0)",
    "INSERT INTO q VALUES(1, 2, '1.0', 1.0)",
    "INSERT INTO q VALUES(2, 1, ' 2', 2.5)",
    "INSERT INTO q VALUES(3, -1, 'x', -1.0)",
    "INSERT INTO q VALUES(4, NULL, '3', NULL)",
]

CASES = [
    # column against column, in a filter and as a value (also IS, <, the other way round)
    "SELECT k FROM p WHERE t = i",
    "SELECT k FROM p WHERE i = t",
    "SELECT k FROM p WHERE t = r",
    "SELECT k, t = i, i = t, t < i, t IS i, t IS NOT r FROM p",
    # two tables: a comma join and JOINs are hash joins on these keys
    "SELECT p.k, q.k FROM p, q WHERE p.t = q.i",
    "SELECT p.k, q.k FROM p, q WHERE q.r = p.t",
    "SELECT p.k, q.k FROM p JOIN q ON p.i = q.t",
    "SELECT p.k, q.k FROM p LEFT JOIN q ON q.t = p.r",
    "SELECT p.k, q.k FROM p, q WHERE p.t = q.i AND p.k = 1",
    # IN (subquery), both ways, and correlated
    "SELECT k FROM p WHERE i IN (SELECT t FROM q)",
    "SELECT k FROM p WHERE r NOT IN (SELECT t FROM q WHERE t IS NOT NULL)",
    "SELECT k FROM p WHERE t IN (SELECT i FROM q)",
    "SELECT k FROM p WHERE EXISTS (SELECT 1 FROM q WHERE q.i = p.t)",
    # signed numbers beside a text column are literals too
    "SELECT k FROM p WHERE t = -1",
    "SELECT k FROM p WHERE -1 = t",
    "SELECT k FROM p WHERE t IN (-1, +2.5)",
    "SELECT k FROM p WHERE t > -5",
    "SELECT k FROM p WHERE r = -1",
    # what must stay as it was: literals have no affinity, set operations compare as stored
    "SELECT '1' = 1, 1 = '1'",
    "SELECT t FROM p INTERSECT SELECT i FROM p",
    "SELECT k FROM p WHERE t = 1",
    "SELECT k FROM p WHERE i = '02'",
]


@pytest.mark.parametrize("sql", CASES)
def test_same_answers_as_sqlite(twins, sql):
    helios, lite = twins
    expected = sorted(lite.execute(sql).fetchall(), key=repr)
    assert sorted((tuple(r) for r in helios.execute(sql).rows), key=repr) == expected


def test_the_cases_exercise_both_outcomes(twins):
    """Guard against a vacuous suite: the mixed-type join really matches rows."""
    _, lite = twins
    assert lite.execute("SELECT count(*) FROM p, q WHERE p.t = q.i").fetchone()[0] > 0
