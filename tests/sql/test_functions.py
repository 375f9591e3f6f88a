"""SQL runtime semantics: table-driven cases, then a differential test against sqlite3.

Every expected value below is what SQLite 3.40 answers (checked by the
differential test at the end, which evaluates random expressions both ways).
Results are compared by type and ``repr`` so 1 never passes for 1.0, nor 0.0
for -0.0.
"""
from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from helios.errors import HeliosError, SemanticError, UnprocessableEntity
from helios.sql import functions as F
from helios.sql.functions import (
    AGGREGATE_FUNCTIONS,
    SCALAR_FUNCTIONS,
    CountStar,
    Descending,
    Distinct,
    add,
    apply_comparison_affinity,
    between,
    bitand,
    bitnot,
    bitor,
    cast,
    compare,
    comparison_affinity,
    concat,
    div,
    in_list,
    is_aggregate,
    is_true,
    like,
    like_escape,
    lookup_scalar,
    make_aggregate,
    make_sort_key,
    mod,
    mul,
    neg,
    pos,
    shl,
    shr,
    sort_key,
    sql_and,
    sql_eq,
    sql_ge,
    sql_gt,
    sql_is,
    sql_is_not,
    sql_le,
    sql_lt,
    sql_ne,
    sql_not,
    sql_or,
    sub,
)

MIN64, MAX64 = -(2**63), 2**63 - 1


def same(got: Any, expected: Any) -> bool:
    """Equal value *and* type; floats by repr, so -0.0 differs from 0.0."""
    return type(got) is type(expected) and repr(got) == repr(expected)


def run(fn: Callable[..., Any], args: tuple[Any, ...], expected: Any) -> None:
    got = fn(*args)
    assert same(got, expected), f"{getattr(fn, '__name__', fn)}{args!r} = {got!r}, expected {expected!r}"


# Comparison ---------------------------------------------------------------------
COMPARISONS = [
    (sql_eq, (1, 1), 1), (sql_eq, (1, 1.0), 1), (sql_eq, (1, "1"), 0), (sql_eq, ("a", b"a"), 0),
    (sql_eq, (None, None), None), (sql_eq, (None, 1), None), (sql_eq, ("a", "A"), 0),
    (sql_eq, (2**53 + 1, float(2**53)), 0), (sql_eq, (-0.0, 0), 1), (sql_eq, (True, 1), 1),
    (sql_ne, (1, 2), 1), (sql_ne, (1, 1.0), 0), (sql_ne, (1, "1"), 1), (sql_ne, (1, None), None),
    (sql_lt, (1, 2), 1), (sql_lt, (1.5, 2), 1), (sql_lt, (2, 1.5), 0), (sql_lt, (1, "0"), 1),
    (sql_lt, ("z", b"\x00"), 1), (sql_lt, (b"\x00", "z"), 0), (sql_lt, ("B", "a"), 1),
    (sql_lt, ("é", "z"), 0), (sql_lt, (None, 1), None), (sql_lt, (float("-inf"), MIN64), 1),
    (sql_le, (1, 1.0), 1), (sql_le, ("a", 1), 0), (sql_le, (1, None), None),
    (sql_gt, ("a", 99), 1), (sql_gt, (1, 1), 0), (sql_gt, (None, None), None),
    (sql_ge, (1.0, 1), 1), (sql_ge, (b"", "zzz"), 1), (sql_ge, (0, "0"), 0),
    (sql_is, (None, None), 1), (sql_is, (None, 0), 0), (sql_is, (1, 1.0), 1), (sql_is, ("1", 1), 0),
    (sql_is_not, (None, None), 0), (sql_is_not, (1, None), 1), (sql_is_not, (2, 2), 0),
    (compare, (None, None), 0), (compare, (None, MIN64), -1), (compare, (MAX64, ""), -1),
    (compare, ("", b""), -1), (compare, (3, 2.5), 1), (compare, (b"b", b"a"), 1),
    (between, (2, 1, 3), 1), (between, (2, 1, None), None), (between, (5, 6, None), 0),
    (between, (None, 1, 3), None), (between, ("b", "a", "c"), 1), (between, (1, "a", "c"), 0),
    (in_list, (1, (2, 1)), 1), (in_list, (1, (1.0,)), 1), (in_list, (1, ("1",)), 0),
    (in_list, (1, (None, 2)), None), (in_list, (1, (None, 1)), 1), (in_list, (None, (1,)), None),
    (in_list, (None, ()), 0), (in_list, (1, ()), 0), (in_list, ("a", iter(["b", "a"])), 1),
]


@pytest.mark.parametrize(("fn", "args", "expected"), COMPARISONS)
def test_comparison(fn: Callable[..., Any], args: tuple[Any, ...], expected: Any) -> None:
    run(fn, args, expected)


def test_sort_key_orders_mixed_types_like_sqlite() -> None:
    values = ["b", 2.5, None, b"\x01", 1, "a", -3, b"\x00", None, 2.5, True]
    assert sorted(values, key=sort_key) == [None, None, -3, 1, True, 2.5, 2.5, "a", "b",
                                             b"\x00", b"\x01"]
    assert sorted(values, key=lambda v: sort_key(v, nulls_first=False))[-2:] == [None, None]


@pytest.mark.parametrize(("descending", "nulls_first", "expected"), [
    (False, None, [None, 1, 2.5, "x"]),
    (True, None, ["x", 2.5, 1, None]),
    (False, False, [1, 2.5, "x", None]),
    (True, True, [None, "x", 2.5, 1]),
])
def test_make_sort_key(descending: bool, nulls_first: bool | None, expected: list[Any]) -> None:
    key = make_sort_key(descending, nulls_first)
    assert sorted(["x", None, 2.5, 1], key=key) == expected


def test_descending_key_in_a_multi_column_sort_is_stable() -> None:
    rows = [(1, "b", 0), (1, "a", 1), (2, "a", 2), (1, "b", 3), (None, "z", 4)]
    ordered = sorted(rows, key=lambda r: (sort_key(r[0]), Descending(sort_key(r[1]))))
    assert [r[2] for r in ordered] == [4, 0, 3, 1, 2]
    assert Descending((1, 1)) == Descending((1, 1.0)) and Descending((1, 2)) < Descending((1, 1))
    assert Descending((1, 2)) <= Descending((1, 2)) and Descending((1, 1)) >= Descending((1, 2))


# Logic ---------------------------------------------------------------------------
LOGIC = [
    (is_true, (None,), False), (is_true, (0,), False), (is_true, (-1,), True), (is_true, (0.0,), False),
    (is_true, (0.5,), True), (is_true, ("1abc",), True), (is_true, ("abc",), False),
    (is_true, ("0.0",), False), (is_true, (" .5",), True), (is_true, (b"7",), True), (is_true, ("",), False),
    (sql_not, (None,), None), (sql_not, ("abc",), 1), (sql_not, ("1abc",), 0), (sql_not, (0.5,), 0),
    (sql_and, (1, 1), 1), (sql_and, (1, 0), 0), (sql_and, (None, 0), 0), (sql_and, (0, None), 0),
    (sql_and, (None, 1), None), (sql_and, (1, None), None), (sql_and, (None, None), None),
    (sql_and, ("x", 1), 0), (sql_and, (2.5, "3"), 1),
    (sql_or, (0, 0), 0), (sql_or, (None, 1), 1), (sql_or, (1, None), 1), (sql_or, (None, 0), None),
    (sql_or, (0, None), None), (sql_or, (None, None), None), (sql_or, (0.0, "0.1"), 1),
]


@pytest.mark.parametrize(("fn", "args", "expected"), LOGIC)
def test_logic(fn: Callable[..., Any], args: tuple[Any, ...], expected: Any) -> None:
    run(fn, args, expected)


# Arithmetic ------------------------------------------------------------------------
ARITHMETIC = [
    (add, (1, 2), 3), (add, (1, 2.5), 3.5), (add, (MAX64, 1), 9.223372036854775808e18),
    (add, (None, 1), None), (add, (1, None), None), (add, ("3", "4"), 7), (add, ("3.0", 1), 4.0),
    (add, ("3abc", 1), 4), (add, ("abc", 1), 1), (add, ("1e3", 0), 1000.0), (add, ("1e", 0), 1),
    (add, ("9223372036854775808", 0), 9.223372036854775808e18), (add, (b"12", 1), 13),
    (add, (float("inf"), float("-inf")), None), (add, (True, True), 2),
    (sub, (MIN64, 1), -9.223372036854775808e18), (sub, (5, 7), -2), (sub, ("-", 0), 0),
    (mul, (4294967296, 4294967296), 1.8446744073709552e19), (mul, (3, 0.5), 1.5),
    (mul, ("-", 1.0), -0.0), (mul, (float("inf"), 0), None), (mul, (-3, 7), -21),
    (div, (-7, 2), -3), (div, (7, -2), -3), (div, (7, 2), 3), (div, (5, 0), None), (div, (5.0, 0), None),
    (div, (5, 0.0), None), (div, (7.5, 2), 3.75), (div, (MIN64, -1), 9.223372036854775808e18),
    (div, ("7", "2"), 3), (div, ("7.0", "2"), 3.5), (div, (None, 0), None), (div, (1, "x"), None),
    (mod, (-7, 2), -1), (mod, (7, -2), 1), (mod, (5, 0), None), (mod, (5, 0.5), None),
    (mod, (5.5, 2), 1.0), (mod, ("5.9", 2), 1.0), (mod, (MIN64, -1), 0), (mod, (1e20, 7), 0.0),
    (mod, (None, 1), None), (mod, (-7.5, 2), -1.0),
    (neg, (5,), -5), (neg, (MIN64,), 9.223372036854775808e18), (neg, ("abc",), 0), (neg, ("-",), 0),
    (neg, ("2.5",), -2.5), (neg, (0.0,), -0.0), (neg, (None,), None),
    (pos, ("abc",), "abc"), (pos, (None,), None),
    (bitand, (12, 10), 8), (bitand, (5, "3abc"), 1), (bitand, (None, 1), None),
    (bitor, (1.9, 0), 1), (bitor, (-1, 0), -1), (bitnot, (5,), -6), (bitnot, (None,), None),
    (bitnot, ("x",), -1),
    (shl, (1, 63), MIN64), (shl, (1, 64), 0), (shl, (3, 2.9), 12), (shl, (1e20, 2), -4),
    (shl, (1, -1), 0), (shl, (-1, 100), 0), (shl, (5, 0), 5), (shl, (None, 1), None),
    (shr, (-8, 1), -4), (shr, (-8, 100), -1), (shr, (8, 100), 0), (shr, (8, -1), 16),
    (shr, (MIN64, 63), -1), (shr, (1, None), None), (shl, (1, MIN64), 0),
    (concat, ("a", "b"), "ab"), (concat, (1, 2), "12"), (concat, (1.0, "x"), "1.0x"),
    (concat, (b"A", "b"), "Ab"), (concat, (None, "a"), None), (concat, (1e20, ""), "1.0e+20"),
    (concat, (True, ""), "1"), (concat, (-0.0, ""), "0.0"),
]


@pytest.mark.parametrize(("fn", "args", "expected"), ARITHMETIC)
def test_arithmetic(fn: Callable[..., Any], args: tuple[Any, ...], expected: Any) -> None:
    run(fn, args, expected)


# CAST -----------------------------------------------------------------------
CASTS = [
    ("12abc", "INTEGER", 12), (1.9, "INTEGER", 1), (-1.9, "INTEGER", -1), (None, "INTEGER", None),
    ("1e3", "INTEGER", 1), (" 42 ", "INT", 42), ("abc", "INTEGER", 0), (1e20, "INTEGER", MAX64),
    (-1e20, "BIGINT", MIN64), ("99999999999999999999", "INTEGER", MAX64), (True, "INTEGER", 1),
    (b"12", "INTEGER", 12), (float("inf"), "INTEGER", MAX64),
    (5, "TEXT", "5"), (2.0, "TEXT", "2.0"), (0.1, "VARCHAR(10)", "0.1"), (1e15, "TEXT", "1.0e+15"),
    (123456789012345.0, "TEXT", "123456789012345.0"), (1 / 3, "CLOB", "0.333333333333333"),
    (float("inf"), "TEXT", "Inf"), (float("-inf"), "TEXT", "-Inf"), (-0.0, "TEXT", "0.0"),
    (1234567890123445.0, "TEXT", "1.23456789012345e+15"), (b"hi", "TEXT", "hi"),
    (5e-324, "TEXT", "4.94065645841247e-324"), (1.5e-7, "TEXT", "1.5e-07"), (None, "TEXT", None),
    ("12abc", "REAL", 12.0), (5, "FLOAT", 5.0), ("-", "REAL", -0.0), (".5", "DOUBLE", 0.5),
    ("1e999", "REAL", float("inf")), ("x", "REAL", 0.0),
    ("3.0", "NUMERIC", 3), ("3.5", "NUMERIC", 3.5), ("1e3", "NUMERIC", 1000), ("1e20", "NUMERIC", 1e20),
    ("12abc", "NUMERIC", 12), ("3.0abc", "NUMERIC", 3), ("-0.0", "NUMERIC", 0), (3.0, "NUMERIC", 3.0),
    ("9223372036854775808", "NUMERIC", 9.223372036854775808e18), ("", "NUMERIC", 0),
    ("12abc", "SIGNED", 12), (2.0, "UNSIGNED", 2.0), ("7", "BOOLEAN", 7), ("1.5", "DECIMAL(10,2)", 1.5),
    (2.0, "POINT", 2), ("12abc", "CHARINT", 12), (2.0, "FLOATING POINT", 2),
    ("é", "BLOB", b"\xc3\xa9"), (5, "BLOB", b"5"), (1.5, "BLOB", b"1.5"), (b"\x00", "BLOB", b"\x00"),
]


@pytest.mark.parametrize(("value", "type_name", "expected"), CASTS)
def test_cast(value: Any, type_name: str, expected: Any) -> None:
    run(cast, (value, type_name), expected)


@pytest.mark.parametrize(("type_name", "expected"), [
    ("INTEGER", "INTEGER"), ("bigint", "INTEGER"), ("POINT", "INTEGER"), ("VARCHAR(3)", "TEXT"),
    ("CLOB", "TEXT"), ("BLOB", "BLOB"), ("", "BLOB"), ("REAL", "REAL"), ("DOUBLE PRECISION", "REAL"),
    ("FLOAT", "REAL"), ("NUMERIC", "NUMERIC"), ("BOOLEAN", "NUMERIC"), ("STRING", "NUMERIC"),
])
def test_affinity(type_name: str, expected: str) -> None:
    assert F.affinity(type_name) == expected


# LIKE -----------------------------------------------------------------------
LIKES = [
    (like, ("abc", "a%"), 1), (like, ("abc", "A_C"), 1), (like, ("abc", "a_"), 0), (like, ("é", "É"), 0),
    (like, ("É", "É"), 1), (like, ("a\nb", "a_b"), 1), (like, ("a\nb", "a%"), 1), (like, ("", "%"), 1),
    (like, ("", "_"), 0), (like, (1, 1), 1), (like, (1.0, "1.0"), 1), (like, (None, "a"), None),
    (like, ("a", None), None), (like, ("a.c", "a.c"), 1), (like, ("abc", "a.c"), 0),
    (like, ("a%", "a\\%", "\\"), 1), (like, ("ab", "a\\%", "\\"), 0), (like, ("ab", "a\\", "\\"), 0),
    (like, ("a", "a\\", "\\"), 0), (like, ("abc", "a%c", "%"), 0), (like, ("a%c", "a%%c", "%"), 1),
    (like, ("a_c", "a__c", "_"), 1), (like, ("axc", "a__c", "_"), 0), (like, ("[x]", "[%]"), 1),
    (like, ("a\\b", "a\\b"), 1), (like, ("a+b", "a+b"), 1), (like, ("aXb", "a%B%"), 1),
    (like_escape, ("a", "a", None), None), (like_escape, ("a%", "a!%", "!"), 1),
    (like, ("a", b"a"), 0), (like, (b"a", "a"), 0), (like, (None, b"a"), 0), (like, (b"", None), 0),
    (like_escape, (b"a", "a", None), 0),
]


@pytest.mark.parametrize(("fn", "args", "expected"), LIKES)
def test_like(fn: Callable[..., Any], args: tuple[Any, ...], expected: Any) -> None:
    run(fn, args, expected)


@pytest.mark.parametrize("escape", ["ab", ""])
def test_like_escape_must_be_one_character(escape: str) -> None:
    with pytest.raises(UnprocessableEntity, match="ESCAPE expression must be a single character"):
        like("a", "a", escape)


def test_like_rejects_huge_patterns() -> None:
    with pytest.raises(UnprocessableEntity, match="too complex"):
        like("a", "%" * 50001)


# Scalar functions -------------------------------------------------------------------
SCALARS = [
    ("abs", (-3,), 3), ("abs", ("x",), 0.0), ("abs", ("-5",), 5.0), ("abs", (-0.0,), -0.0),
    ("abs", (None,), None), ("abs", (-2.5,), 2.5), ("abs", (MAX64,), MAX64), ("abs", (True,), 1),
    ("coalesce", (None, 1), 1), ("coalesce", (None, None), None), ("coalesce", (None, None, "z"), "z"),
    ("ifnull", (None, 2), 2), ("ifnull", (0, 2), 0), ("ifnull", (None, None), None),
    ("nullif", (1, 1.0), None), ("nullif", (1, "1"), 1), ("nullif", (None, 1), None),
    ("nullif", (1, None), 1), ("nullif", ("a", "b"), "a"),
    ("length", ("héllo",), 5), ("length", (1.0,), 3), ("length", (-5,), 2), ("length", (b"\x00\x01",), 2),
    ("length", (None,), None), ("length", ("a\x00b",), 1), ("length", ("",), 0),
    ("lower", ("ÀBC",), "Àbc"), ("upper", ("àbc",), "àBC"), ("upper", (1.5,), "1.5"),
    ("lower", (None,), None), ("upper", (b"a",), "A"), ("lower", (10,), "10"),
    ("substr", ("hello", 0), "hello"), ("substr", ("hello", 0, 2), "h"), ("substr", ("hello", -2), "lo"),
    ("substr", ("hello", -2, 1), "l"), ("substr", ("hello", 2, -1), "h"), ("substr", ("hello", 3, -5), "he"),
    ("substr", ("hello", -10, 3), ""), ("substr", ("hello", -6, 3), "he"), ("substr", ("hello", 10), ""),
    ("substr", (b"\x01\x02\x03\x04", 2, 2), b"\x02\x03"), ("substr", (12345, 2, 2), "23"),
    ("substr", ("hello", 2.7), "ello"), ("substr", ("hello", "2"), "ello"), ("substr", ("hello", None), None),
    ("substr", (None, 1), None), ("substr", ("hello", 1, None), None), ("substr", ("hello", 1, 4294967297), "h"),
    ("substr", ("héllo", 2, 1), "é"), ("substr", ("hello", 2, 0), ""), ("substring", ("hello", 2, 2), "el"),
    ("trim", ("  ab  ",), "ab"), ("ltrim", ("xxabxx", "x"), "abxx"), ("rtrim", ("xxabxx", "xb"), "xxa"),
    ("trim", (12.50, "0"), "12.5"), ("trim", ("ab", ""), "ab"), ("trim", ("ab", None), None),
    ("trim", (None,), None), ("ltrim", ("\t a",), "\t a"), ("rtrim", ("a  ",), "a"),
    ("round", (2.5,), 3.0), ("round", (-2.5,), -3.0), ("round", (2.675, 2), 2.68), ("round", (1.005, 2), 1.01),
    ("round", ("1.5",), 2.0), ("round", (None,), None), ("round", (1.5, None), None),
    ("round", (123.456, -1), 123.0), ("round", (5,), 5.0), ("round", (0.5,), 1.0), ("round", (-0.4,), 0.0),
    ("round", (1e300, 2), 1e300), ("round", (2.5, 4294967296), 3.0), ("round", (-0.001, 2), -0.0),
    ("round", (1.23456789, 3), 1.235), ("round", (0.49999999999999994,), 1.0), ("round", ("x", 1), 0.0),
    ("round", (3.14159, 40), 3.141589999999999), ("round", (-1.5, 0), -2.0), ("round", (1234.5678, 2.9), 1234.57),
    ("min", (1, 1.0), 1.0), ("max", (1, 1.0), 1), ("min", (1.0, 1), 1), ("max", (1.0, 1), 1.0),
    ("min", (1, None), None), ("max", ("a", 2), "a"), ("min", (b"\x00", "z"), "z"), ("max", (3, 1, 2), 3),
    ("typeof", (1,), "integer"), ("typeof", (1.0,), "real"), ("typeof", ("a",), "text"),
    ("typeof", (b"",), "blob"), ("typeof", (None,), "null"), ("typeof", (False,), "integer"),
    ("instr", ("abc", ""), 1), ("instr", ("hello", "l"), 3), ("instr", (12345, 34), 3),
    ("instr", (b"\x01\x02\x03", b"\x03"), 3), ("instr", ("abc", None), None), ("instr", ("héllo", "l"), 3),
    ("instr", (b"hello", "l"), 3), ("instr", ("abc", "z"), 0),
    ("replace", ("abc", "", None), "abc"), ("replace", (5, "", "x"), 5), ("replace", (5, "5", "x"), "x"),
    ("replace", ("aaa", "a", "bb"), "bbbbbb"), ("replace", ("abc", "b", None), None),
    ("replace", (None, "a", "b"), None), ("replace", ("abc", None, "x"), None), ("replace", (1.5, ".", ","), "1,5"),
    ("hex", (None,), ""), ("hex", ("abc",), "616263"), ("hex", (12,), "3132"), ("hex", (1.5,), "312E35"),
    ("hex", (b"\x00\xff",), "00FF"), ("hex", ("é",), "C3A9"),
    ("like", ("a%", "abc"), 1), ("like", ("a!%", "a%", "!"), 1), ("like", ("a", "a", None), None),
]


@pytest.mark.parametrize(("name", "args", "expected"), SCALARS)
def test_scalar_function(name: str, args: tuple[Any, ...], expected: Any) -> None:
    run(lookup_scalar(name, len(args)), args, expected)


def test_every_scalar_function_has_a_case() -> None:
    assert {name for name, _, _ in SCALARS} == set(SCALAR_FUNCTIONS)


@pytest.mark.parametrize("value", [MIN64])
def test_abs_of_smallest_integer_overflows(value: int) -> None:
    with pytest.raises(UnprocessableEntity, match="integer overflow"):
        lookup_scalar("abs", 1)(value)


@pytest.mark.parametrize(("name", "nargs", "message"), [
    ("nosuch", 1, "no such function: nosuch"),
    ("abs", 2, r"wrong number of arguments to function abs\(\)"),
    ("coalesce", 1, r"wrong number of arguments to function coalesce\(\)"),
    ("substr", 4, r"wrong number of arguments to function substr\(\)"),
    ("sum", 1, r"wrong number of arguments to function sum\(\)"),
    ("max", 0, r"wrong number of arguments to function max\(\)"),
])
def test_lookup_scalar_errors(name: str, nargs: int, message: str) -> None:
    with pytest.raises(SemanticError, match=message) as info:
        lookup_scalar(name, nargs)
    assert info.value.status == 422 and info.value.details == {"function": name}


def test_lookup_is_case_insensitive() -> None:
    assert lookup_scalar("UPPER", 1)("a") == "A"


@pytest.mark.parametrize(("name", "nargs", "expected"), [
    ("count", 0, True), ("count", 1, True), ("min", 1, True), ("MAX", 1, True), ("min", 2, False),
    ("max", 3, False), ("group_concat", 2, True), ("abs", 1, False), ("total", 1, True),
])
def test_is_aggregate(name: str, nargs: int, expected: bool) -> None:
    assert is_aggregate(name, nargs) is expected


@pytest.mark.parametrize(("name", "nargs", "message"), [
    ("nosuch", 1, "no such function"), ("sum", 2, "wrong number of arguments"),
    ("min", 0, "wrong number of arguments"), ("abs", 3, "wrong number of arguments"),
])
def test_is_aggregate_errors(name: str, nargs: int, message: str) -> None:
    with pytest.raises(SemanticError, match=message):
        is_aggregate(name, nargs)


# Aggregates --------------------------------------------------------------------------
def aggregate(name: str, rows: list[tuple[Any, ...]], *, distinct: bool = False, nargs: int = 1) -> Any:
    agg = make_aggregate(name, nargs, distinct=distinct)
    for row in rows:
        agg.step(*row)
    return agg.final()


def col(*values: Any) -> list[tuple[Any, ...]]:
    return [(v,) for v in values]


AGGREGATES = [
    ("count", col(1, None, "a"), False, 2), ("count", col(), False, 0), ("count", col(None), False, 0),
    ("count", col(1, 1.0, "1", None), True, 2),
    ("sum", col(1, 2, None), False, 3), ("sum", col(), False, None), ("sum", col(None, None), False, None),
    ("sum", col(1, 2.5), False, 3.5), ("sum", col("5", 3), False, 8), ("sum", col("5abc", 3), False, 8.0),
    ("sum", col(" 5 ", 3), False, 8), ("sum", col("5.0", 3), False, 8.0), ("sum", col(b"5", 3), False, 8.0),
    ("sum", col(1.5, MAX64, 1), False, 9.223372036854775808e18), ("sum", col(1, 1.0, 2), True, 3),
    ("sum", col(True, True), False, 2), ("sum", col(0.1, 0.2, 0.3), False, 0.1 + 0.2 + 0.3),
    ("total", col(), False, 0.0), ("total", col(None), False, 0.0), ("total", col(1, 2), False, 3.0),
    ("total", col(MAX64, MAX64), False, 1.8446744073709552e19), ("total", col("x", 2), False, 2.0),
    ("avg", col(), False, None), ("avg", col(1, 2), False, 1.5), ("avg", col(1, None, 4), False, 2.5),
    ("avg", col(2, 2, 4), True, 3.0),
    ("min", col(3, None, 1.5, "a"), False, 1.5), ("min", col(None), False, None), ("min", col(1, 1.0), False, 1),
    ("min", col("b", b"\x00", "a"), False, "a"), ("max", col(1, 1.0), False, 1),
    ("max", col(1, "a", b"\x00", None), False, b"\x00"), ("max", col(), False, None),
    ("group_concat", col("a", None, "b"), False, "a,b"), ("group_concat", col(), False, None),
    ("group_concat", col(""), False, ""), ("group_concat", col("", ""), False, ","),
    ("group_concat", col(1.0, 2, b"A"), False, "1.0,2,A"), ("group_concat", col(None), False, None),
    ("group_concat", col(1, 1.0, "1", None), True, "1,1"),
]


@pytest.mark.parametrize(("name", "rows", "distinct", "expected"), AGGREGATES)
def test_aggregate(name: str, rows: list[tuple[Any, ...]], distinct: bool, expected: Any) -> None:
    got = aggregate(name, rows, distinct=distinct)
    assert same(got, expected), f"{name}({'DISTINCT ' if distinct else ''}{rows}) = {got!r}"


def test_every_aggregate_has_a_case() -> None:
    assert {name for name, _, _, _ in AGGREGATES} == set(AGGREGATE_FUNCTIONS)


@pytest.mark.parametrize(("rows", "expected"), [
    ([("a", "-"), ("b", "+"), ("c", "*")], "a+b*c"),
    ([("a", None), ("b", None)], "ab"),
    ([("a", 1), (None, 2), ("b", 3)], "a3b"),
])
def test_group_concat_separator_comes_from_each_row(rows: list[tuple[Any, ...]], expected: str) -> None:
    assert aggregate("group_concat", rows, nargs=2) == expected


@pytest.mark.parametrize("values", [[MAX64, 1], [MAX64, 1, -1], [MIN64, -1, 2.5]])
def test_sum_integer_overflow_is_an_error(values: list[Any]) -> None:
    with pytest.raises(UnprocessableEntity, match="integer overflow"):
        aggregate("sum", col(*values))


def test_count_star_counts_rows() -> None:
    agg = make_aggregate("count", 0)
    assert isinstance(agg, CountStar)
    for _ in range(3):
        agg.step()
    assert agg.final() == 3


def test_make_aggregate_distinct_wraps() -> None:
    agg = make_aggregate("Count", 1, distinct=True)
    assert isinstance(agg, Distinct)


@pytest.mark.parametrize(("name", "nargs", "distinct", "message"), [
    ("nosuch", 1, False, "no such function"), ("abs", 1, False, "not an aggregate"),
    ("sum", 2, False, "wrong number of arguments"), ("group_concat", 3, False, "wrong number"),
    ("group_concat", 2, True, "exactly one argument"), ("count", 0, True, "exactly one argument"),
])
def test_make_aggregate_errors(name: str, nargs: int, distinct: bool, message: str) -> None:
    with pytest.raises(SemanticError, match=message):
        make_aggregate(name, nargs, distinct=distinct)


def test_aggregates_are_independent_instances() -> None:
    a, b = make_aggregate("sum", 1), make_aggregate("sum", 1)
    a.step(5)
    assert (a.final(), b.final()) == (5, None)


# Differential test against sqlite3 ------------------------------------------------------
class Node:
    """An expression as SQL text with ``?`` parameters and its value by our functions.

    ``aff`` is the expression's affinity: a CAST's, else None, as in SQLite, so the
    model applies comparison affinity exactly where a binder would.
    """

    __slots__ = ("sql", "params", "value", "error", "aff")

    def __init__(self, sql: str, params: list[Any], value: Any = None, error: bool = False,
                 aff: str | None = None) -> None:
        self.sql, self.params, self.value, self.error, self.aff = sql, params, value, error, aff

    def __repr__(self) -> str:
        return f"{self.sql} {self.params!r}"


def apply(sql: str, fn: Callable[..., Any], *children: Node) -> Node:
    params = [p for c in children for p in c.params]
    if any(c.error for c in children):
        return Node(sql, params, error=True)
    try:
        return Node(sql, params, fn(*(c.value for c in children)))
    except HeliosError:
        return Node(sql, params, error=True)


def leaf(v: Any) -> Node:
    return Node("?", [v], v)


TEXT_ALPHABET = "0123456789.-+eE aAbBxX%_!é\t"
ints = st.one_of(st.integers(-20, 20), st.integers(MIN64, MAX64),
                 st.sampled_from([MIN64, MAX64, MIN64 + 1, 2**31, -(2**31) - 1, 2**53 + 1, 63, 64, -64]))
floats = st.one_of(st.floats(allow_nan=False), st.integers(-4000, 4000).map(lambda i: i / 8),
                   st.sampled_from([0.5, -2.5, 2.675, 1.005, 1e15 + 0.5, 1234567890123445.0, -0.0]))
texts = st.text(TEXT_ALPHABET, max_size=6)
blobs = st.text("0123456789abc.-", max_size=4).map(str.encode)
values = st.one_of(st.none(), ints, floats, texts, blobs)

BINARY = {
    "+": add, "-": sub, "*": mul, "/": div, "%": mod, "&": bitand, "|": bitor, "<<": shl, ">>": shr,
    "||": concat, "=": sql_eq, "<>": sql_ne, "<": sql_lt, "<=": sql_le, ">": sql_gt, ">=": sql_ge,
    "IS": sql_is, "IS NOT": sql_is_not, "AND": sql_and, "OR": sql_or,
}
UNARY = {"-": neg, "+": pos, "~": bitnot, "NOT": sql_not}
CAST_TYPES = ["INTEGER", "REAL", "TEXT", "NUMERIC", "BLOB", "SIGNED", "VARCHAR(5)", "FLOAT", "BOOLEAN"]
FUNCTIONS = [("abs", 1), ("length", 1), ("lower", 1), ("upper", 1), ("substr", 2), ("substr", 3),
             ("trim", 1), ("trim", 2), ("ltrim", 2), ("rtrim", 1), ("round", 1), ("round", 2),
             ("typeof", 1), ("instr", 2), ("replace", 3), ("hex", 1), ("nullif", 2), ("min", 2),
             ("max", 3), ("ifnull", 2), ("coalesce", 3)]


def lazy_coalesce(sql: str, *children: Node) -> Node:
    """coalesce/ifnull evaluate arguments only until one is non-NULL, as SQLite does."""
    params = [p for c in children for p in c.params]
    for c in children:
        if c.error:
            return Node(sql, params, error=True)
        if c.value is not None:
            return Node(sql, params, c.value)
    return Node(sql, params, None)


COMPARISON_OPS = {"=", "<>", "<", "<=", ">", ">=", "IS", "IS NOT"}


def with_affinity(fn: Callable[[Any, Any], Any], aff: str | None) -> Callable[[Any, Any], Any]:
    return lambda x, y: fn(apply_comparison_affinity(x, aff), apply_comparison_affinity(y, aff))


class ChildError(Exception):
    pass


def lazy_in(x: Node, items: list[Node]) -> Node:
    """``x IN (items)`` evaluating items only until a match, as SQLite does."""
    sql = f"({x.sql} IN ({', '.join(i.sql for i in items)}))"
    params = x.params + [p for i in items for p in i.params]
    if x.error:
        return Node(sql, params, error=True)
    aff = comparison_affinity(x.aff, None)

    def values() -> Any:
        for item in items:
            if item.error:
                raise ChildError
            yield apply_comparison_affinity(item.value, aff)

    try:
        return Node(sql, params, in_list(apply_comparison_affinity(x.value, aff), values()))
    except ChildError:
        return Node(sql, params, error=True)


@st.composite
def binary(draw: st.DrawFn, sub_: st.SearchStrategy[Node]) -> Node:
    op = draw(st.sampled_from(sorted(BINARY)))
    a, b = draw(sub_), draw(sub_)
    fn = BINARY[op]
    if op in COMPARISON_OPS:
        fn = with_affinity(fn, comparison_affinity(a.aff, b.aff))
    return apply(f"({a.sql} {op} {b.sql})", fn, a, b)


@st.composite
def unary(draw: st.DrawFn, sub_: st.SearchStrategy[Node]) -> Node:
    op = draw(st.sampled_from(sorted(UNARY)))
    a = draw(sub_)
    return apply(f"({op} {a.sql})", UNARY[op], a)


@st.composite
def casts(draw: st.DrawFn, sub_: st.SearchStrategy[Node]) -> Node:
    t = draw(st.sampled_from(CAST_TYPES))
    a = draw(sub_)
    node = apply(f"CAST({a.sql} AS {t})", lambda v: cast(v, t), a)
    node.aff = F.affinity(t)
    return node


@st.composite
def calls(draw: st.DrawFn, sub_: st.SearchStrategy[Node]) -> Node:
    name, n = draw(st.sampled_from(FUNCTIONS))
    args = [draw(sub_) for _ in range(n)]
    sql = f"{name}({', '.join(a.sql for a in args)})"
    if name in ("coalesce", "ifnull"):
        return lazy_coalesce(sql, *args)
    return apply(sql, lookup_scalar(name, n), *args)


@st.composite
def predicates(draw: st.DrawFn, sub_: st.SearchStrategy[Node]) -> Node:
    kind = draw(st.sampled_from(["like", "like_escape", "between", "in"]))
    a, b, c = draw(sub_), draw(sub_), draw(sub_)
    if kind == "like":
        return apply(f"({a.sql} LIKE {b.sql})", like, a, b)
    if kind == "like_escape":
        e = leaf(draw(st.sampled_from(["!", "%", "_", "a", None])))
        return apply(f"({a.sql} LIKE {b.sql} ESCAPE {e.sql})", like_escape, a, b, e)
    if kind == "between":
        low = with_affinity(sql_ge, comparison_affinity(a.aff, b.aff))
        high = with_affinity(sql_le, comparison_affinity(a.aff, c.aff))
        return apply(f"({a.sql} BETWEEN {b.sql} AND {c.sql})",
                     lambda x, y, z: sql_and(low(x, y), high(x, z)), a, b, c)
    return lazy_in(a, [b, c])


def extend(sub_: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(binary(sub_), unary(sub_), casts(sub_), calls(sub_), predicates(sub_))


expressions = st.recursive(values.map(leaf), extend, max_leaves=5)


def sqlite_eval(conn: sqlite3.Connection, node: Node) -> tuple[bool, Any, str | None]:
    """(errored, value, typeof) of ``SELECT node`` in sqlite3; text comes back as bytes."""
    try:
        value, kind = conn.execute(f"SELECT {node.sql}, typeof({node.sql})", node.params * 2).fetchone()
    except sqlite3.OperationalError:
        return True, None, None
    return False, value, kind.decode()


def assert_agrees(expected: tuple[bool, Any, str | None], node: Node) -> None:
    errored, value, kind = expected
    assert node.error == errored, f"{node}: sqlite error={errored}, ours error={node.error}"
    if errored:
        return
    ours = node.value
    assert F.fn_typeof(ours) == kind, f"{node}: sqlite {kind} {value!r}, ours {ours!r}"
    if kind == "text":
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            assume(False)  # SQLite made invalid UTF-8 (a blob cut mid-character): no text to compare
        assert ours == text, f"{node}: sqlite {text!r}, ours {ours!r}"
    elif kind == "real":
        assert ours == value or math.isclose(ours, value, rel_tol=1e-12, abs_tol=1e-300), \
            f"{node}: sqlite {value!r}, ours {ours!r}"
    else:
        assert ours == value, f"{node}: sqlite {value!r}, ours {ours!r}"


@pytest.fixture(scope="module")
def sqlite_conn() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.text_factory = bytes
    return conn


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node=expressions)
def test_expressions_agree_with_sqlite(sqlite_conn: sqlite3.Connection, node: Node) -> None:
    assert_agrees(sqlite_eval(sqlite_conn, node), node)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(values), max_size=6),
       name=st.sampled_from(["count", "sum", "total", "avg", "min", "max", "group_concat"]),
       distinct=st.booleans())
def test_aggregates_agree_with_sqlite(sqlite_conn: sqlite3.Connection, rows: list[tuple[Any]],
                                      name: str, distinct: bool) -> None:
    sqlite_conn.execute("CREATE TEMP TABLE IF NOT EXISTS agg_rows (seq INTEGER PRIMARY KEY, x)")
    sqlite_conn.execute("DELETE FROM agg_rows")
    sqlite_conn.executemany("INSERT INTO agg_rows (x) VALUES (?)", rows)
    call = f"{name}({'DISTINCT ' if distinct else ''}x)"
    node = Node(call, [])
    try:
        node.value = aggregate(name, rows, distinct=distinct)
    except HeliosError:
        node.error = True
    # ORDER BY in a subquery fixes the order group_concat and sum see the rows in.
    sql = f"SELECT {call}, typeof({call}) FROM (SELECT x FROM agg_rows ORDER BY seq)"
    try:
        value, kind = sqlite_conn.execute(sql).fetchone()
        expected = (False, value, kind.decode())
    except sqlite3.OperationalError:
        expected = (True, None, None)
    assert_agrees(expected, node)


# step_many (whole groups at once) must agree with step (value by value) -----------------
from hypothesis import given, strategies as st  # noqa: E402


_group_values = st.lists(st.one_of(
    st.none(), st.integers(-2**63, 2**63 - 1), st.integers(-10, 10), st.floats(allow_nan=False, width=64),
    st.sampled_from(["5", "x", "2.5"])), max_size=30)


def _final(agg):
    try:
        return ("ok", agg.final())
    except Exception as exc:          # noqa: BLE001 - the error itself is what is compared
        return ("error", type(exc).__name__, str(exc))


@given(values=_group_values, name=st.sampled_from(["count", "sum", "total", "avg", "min", "max"]))
def test_step_many_agrees_with_step(values, name):
    one, many = AGGREGATE_FUNCTIONS[name](), AGGREGATE_FUNCTIONS[name]()
    for v in values:
        one.step(v)
    if hasattr(many, "step_many"):
        many.step_many(list(values))
    else:
        for v in values:
            many.step(v)
    a, b = _final(one), _final(many)
    assert a == b or (a[0] == b[0] == "ok" and a[1] != a[1] and b[1] != b[1])   # equal, or both NaN


_int_heavy = st.lists(st.one_of(
    st.integers(-10, 10), st.integers(-2**63, 2**63 - 1), st.integers(2**52 - 4, 2**53 + 4),
    st.integers(-2**53 - 4, -2**52 + 4), st.sampled_from([0.5, -0.0, 1e16, 0.1]), st.none()), max_size=12)


@given(chunks=st.lists(_int_heavy, max_size=5), name=st.sampled_from(["sum", "total", "avg"]))
def test_step_many_of_integer_chunks_agrees_with_step_to_the_bit(chunks, name):
    """Whole groups of integers take a shortcut (one C ``sum``, no prefix list) when no
    prefix can overflow or round; across chunks, after reals, near 2**53 and 2**63 the
    answer must be the one step() gives: same type, same bits, same error."""
    one, many = AGGREGATE_FUNCTIONS[name](), AGGREGATE_FUNCTIONS[name]()
    for chunk in chunks:
        for v in chunk:
            one.step(v)
        many.step_many(list(chunk))
    a, b = _final(one), _final(many)
    assert repr(a) == repr(b) and type(a[-1]) is type(b[-1])


def test_round_with_many_digits_agrees_with_sqlite_digit_for_digit():
    """round(X, N) prints X with at most 16 significant digits in long double and reads
    the text back (SQLite 3.40): round(18, 18) is 17.99999999999999, not 18.0. Random
    reals and digit counts, compared with the real SQLite, repr for repr."""
    import random
    import sqlite3

    from helios.sql.functions import fn_round
    conn = sqlite3.connect(":memory:")
    rnd = random.Random(20261128)
    cases = [(18.0, 18), (13.0, 19), (-18.0, 18), (18.0, 30), (26.0, 25), (2.675, 2), (1e-20, 25),
             (178336.03417537524, 14), (671387.6059710924, 30), (-0.0, 3), (4503599627370495.5, 1)]
    for _ in range(3000):
        x = rnd.choice([float(rnd.randint(-100, 100)), rnd.randint(-4000, 4000) / 8, rnd.uniform(-1e6, 1e6),
                        rnd.uniform(-1, 1) * 10 ** rnd.randint(-25, 15)])
        cases.append((x, rnd.randint(1, 30)))
    for x, n in cases:
        want = conn.execute("SELECT round(?, ?)", (x, n)).fetchone()[0]
        assert repr(fn_round(x, n)) == repr(want), (x, n)
