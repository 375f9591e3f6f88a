"""The value model: type names, storage coercion, REST parameters, SQLite conversions."""
from __future__ import annotations

import datetime
import math
import sqlite3
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helios.errors import InvalidParameter, TypeMismatch
from helios.sql.values import (
    PARAM_TYPE_NAMES,
    TYPE_NAMES,
    apply_numeric_affinity,
    atof,
    atoi,
    check_param,
    coerce_for_column,
    declared_type_to_name,
    real_to_text,
    text_to_arith,
    text_to_numeric,
    to_int32,
    to_int64,
    to_real,
    to_text,
    value_type_name,
)


def same(got: Any, expected: Any) -> bool:
    return type(got) is type(expected) and repr(got) == repr(expected)


@pytest.mark.parametrize(("declared", "args", "expected"), [
    ("INTEGER", (), "int4"), ("int", (), "int4"), ("SMALLINT", (), "int4"), ("BIGINT", (), "int8"),
    ("TEXT", (), "text"), ("VARCHAR", (255,), "text"), ("varchar(10)", (), "text"), ("CHAR", (1,), "text"),
    ("CLOB", (), "text"), ("STRING", (), "text"), ("character  varying", (), "text"),
    ("BOOLEAN", (), "bool"), ("bool", (), "bool"), ("REAL", (), "float4"), ("DOUBLE", (), "float8"),
    ("DOUBLE PRECISION", (), "float8"), ("double   precision", (), "float8"), ("FLOAT", (), "float8"),
    ("FLOAT", (10,), "float4"), ("FLOAT", (53,), "float8"), ("NUMERIC", (10, 2), "float8"),
    ("DECIMAL", (), "float8"), ("TIMESTAMP", (), "timestamp"), ("DATETIME", (), "timestamp"),
    ("BLOB", (), "bytea"), ("", (), "any"),
    # unknown names follow SQLite's affinity rules
    ("MEDIUMINTEGER", (), "int8"), ("POINT", (), "int8"), ("NVARCHAR2", (), "text"),
    ("MYBLOBTYPE", (), "bytea"), ("FLOATY", (), "float8"), ("MONEY", (), "float8"), ("JSON", (), "text"),
])
def test_declared_type_to_name(declared: str, args: tuple[Any, ...], expected: str) -> None:
    assert declared_type_to_name(declared, args) == expected
    assert expected in TYPE_NAMES


def test_param_type_names_are_the_contracts() -> None:
    assert PARAM_TYPE_NAMES == {"int4", "int8", "text", "bool", "float4", "float8", "timestamp"}


@pytest.mark.parametrize(("value", "expected"), [
    (None, "text"), (True, "bool"), (1, "int8"), (2**40, "int8"), (1.5, "float8"), ("a", "text"),
    (b"a", "bytea"),
])
def test_value_type_name(value: Any, expected: str) -> None:
    assert value_type_name(value) == expected


COERCE_OK = [
    ("int4", 12, 12), ("int4", True, 1), ("int4", 3.0, 3), ("int4", "12", 12), ("int4", " -7 ", -7),
    ("int4", "1e3", 1000), ("int4", "12.0", 12), ("int4", 2**31 - 1, 2**31 - 1), ("int4", -(2**31), -(2**31)),
    ("int4", 2**31, 2**31), ("int4", -(2**63), -(2**63)),     # INTEGER holds 64 bits, as in SQLite
    ("int8", 2**63 - 1, 2**63 - 1), ("int8", -(2**63), -(2**63)), ("int8", "9223372036854775807", 2**63 - 1),
    ("float8", 1, 1.0), ("float8", 1.5, 1.5), ("float8", "2.5", 2.5), ("float8", " .5e1 ", 5.0),
    ("float4", 3, 3.0), ("float8", False, 0.0), ("float8", math.inf, math.inf),
    ("text", "abc", "abc"), ("text", 12, "12"), ("text", 1.5, "1.5"), ("text", 2.0, "2.0"),
    ("text", 1e20, "1.0e+20"), ("text", "", ""),
    ("bool", True, True), ("bool", False, False), ("bool", 1, True), ("bool", 0, False),
    ("bool", "true", True), ("bool", "FALSE", False), ("bool", " t ", True), ("bool", "off", False),
    ("timestamp", 1701446400, 1701446400), ("timestamp", 1701446400.0, 1701446400),
    ("timestamp", 1701446400.25, 1701446400.25), ("timestamp", "1701446400", 1701446400),
    ("timestamp", "2023-12-01T16:00:00Z", 1701446400), ("timestamp", "2023-12-01 16:00:00", 1701446400),
    ("timestamp", "2023-12-01T18:00:00+02:00", 1701446400), ("timestamp", "2023-12-01T16:00:00.5", 1701446400.5),
    ("timestamp", "1970-01-01", 0), ("timestamp", datetime.datetime(2023, 12, 1, 16), 1701446400),
    ("bytea", b"\x00", b"\x00"), ("bytea", bytearray(b"ab"), b"ab"),
    ("any", "x", "x"), ("any", 5, 5), ("any", b"z", b"z"),
]


@pytest.mark.parametrize(("type_name", "value", "expected"), COERCE_OK)
def test_coerce_for_column_accepts_lossless_values(type_name: str, value: Any, expected: Any) -> None:
    assert same(coerce_for_column(value, type_name, column="c"), expected)


@pytest.mark.parametrize("type_name", sorted(TYPE_NAMES))
def test_coerce_keeps_null(type_name: str) -> None:
    assert coerce_for_column(None, type_name, column="c") is None


COERCE_BAD = [
    ("int4", 2**63), ("int4", -(2**63) - 1), ("int8", 2**63), ("int8", -(2**63) - 1), ("int4", 1.5),
    ("int4", math.inf), ("int4", math.nan), ("int4", "abc"), ("int4", "12abc"), ("int4", "12.5"),
    ("int4", ""), ("int4", b"1"), ("int8", "1e30"), ("int8", "1" * 5000), ("int4", "nan"),
    ("float8", "abc"), ("float8", "inf"), ("float8", math.nan), ("float8", b"1"), ("float8", "1,5"),
    ("float8", 10**400),
    ("text", b"abc"), ("text", True),
    ("bool", 2), ("bool", "maybe"), ("bool", 1.0), ("bool", "2"),
    ("timestamp", "yesterday"), ("timestamp", math.inf), ("timestamp", b"1"), ("timestamp", "2023-13-01"),
    ("bytea", "abc"), ("bytea", 1),
]


@pytest.mark.parametrize(("type_name", "value"), COERCE_BAD)
def test_coerce_for_column_rejects_lossy_values(type_name: str, value: Any) -> None:
    with pytest.raises(TypeMismatch) as info:
        coerce_for_column(value, type_name, column="age")
    err = info.value
    assert err.status == 422 and err.error == "UnprocessableEntity"
    assert "'age'" in err.message and type_name in err.message
    assert repr(value)[:20] in err.message
    assert err.details == {"column": "age", "type": type_name}


def test_coerce_rejects_unknown_type_names() -> None:
    with pytest.raises(ValueError, match="unknown column type"):
        coerce_for_column(1, "int3", column="c")


@given(ts=st.one_of(st.integers(-(2**40), 2**40), st.floats(-1e12, 1e12, allow_nan=False)))
def test_timestamps_round_trip_through_json(ts: int | float) -> None:
    stored = coerce_for_column(ts, "timestamp", column="t")
    assert stored == ts
    assert orjson.loads(orjson.dumps(stored)) == stored
    assert coerce_for_column(orjson.loads(orjson.dumps(stored)), "timestamp", column="t") == stored


PARAM_OK = [
    ("int4", 5, 5), ("int4", -(2**31), -(2**31)), ("int4", 5.0, 5), ("int8", 2**63 - 1, 2**63 - 1),
    ("int8", "9007199254740993", 9007199254740993), ("float8", 1, 1.0), ("float8", 1.5, 1.5),
    ("float8", "2.5", 2.5), ("float4", 3.4e38, 3.4e38), ("text", "hi", "hi"), ("text", "", ""),
    ("bool", True, True), ("bool", False, False), ("timestamp", 1701446400, 1701446400),
    ("timestamp", 1701446400.5, 1701446400.5), ("timestamp", "2023-12-01T16:00:00Z", 1701446400),
    ("int4", None, None), ("text", None, None),
]


@pytest.mark.parametrize(("type_name", "value", "expected"), PARAM_OK)
def test_check_param_accepts(type_name: str, value: Any, expected: Any) -> None:
    assert same(check_param(type_name, value), expected)


PARAM_BAD = [
    ("int4", 2**31), ("int4", -(2**31) - 1), ("int8", 2**63), ("int8", "abc"), ("int8", "1.5"),
    ("int4", 1.5), ("int4", True), ("int4", [1]), ("float8", True), ("float8", "abc"), ("float8", math.inf),
    ("float4", 3.5e38), ("float8", {"a": 1}), ("text", 5), ("text", True), ("bool", 1), ("bool", "true"),
    ("bool", 0), ("timestamp", True), ("timestamp", "soon"), ("timestamp", [1]),
]


@pytest.mark.parametrize(("type_name", "value"), PARAM_BAD)
def test_check_param_rejects(type_name: str, value: Any) -> None:
    with pytest.raises(InvalidParameter) as info:
        check_param(type_name, value, position=2)
    assert info.value.status == 400 and info.value.error == "BadRequest"
    assert info.value.message.startswith("$2: value") and type_name in info.value.message


@pytest.mark.parametrize("type_name", ["int2", "bytea", "any", "TEXT", 5])
def test_check_param_rejects_unknown_types(type_name: Any) -> None:
    with pytest.raises(InvalidParameter, match="unknown type"):
        check_param(type_name, 1)


# SQLite conversions ------------------------------------------------------------------
CONVERSIONS = [
    (atof, "3", (1, 3.0)), (atof, "3.5", (2, 3.5)), (atof, "1e3", (2, 1000.0)), (atof, "1.5e3", (3, 1500.0)),
    (atof, "3abc", (0, 3.0)), (atof, "3.0abc", (-1, 3.0)), (atof, "1e", (0, 1.0)), (atof, "1.5e", (-1, 1.5)),
    (atof, "", (0, 0.0)), (atof, "-", (0, -0.0)), (atof, ".", (0, 0.0)), (atof, " 7 ", (1, 7.0)),
    (atof, b"2.5", (2, 2.5)), (atof, "1e999", (2, math.inf)),
    (atoi, "12", (0, 12)), (atoi, "12abc", (1, 12)), (atoi, "abc", (-1, 0)), (atoi, " -5 ", (0, -5)),
    (atoi, "9223372036854775808", (3, 2**63 - 1)), (atoi, "-9223372036854775808", (0, -(2**63))),
    (atoi, "99999999999999999999", (2, 2**63 - 1)), (atoi, "-" + "9" * 5000, (2, -(2**63))),
    (atoi, "000000000000000000000000001", (0, 1)),
    (text_to_arith, "3", 3), (text_to_arith, "3.0", 3.0), (text_to_arith, "3abc", 3),
    (text_to_arith, "3.0abc", 3.0), (text_to_arith, "abc", 0), (text_to_arith, "1e5x", 100000.0),
    (text_to_arith, "9223372036854775808", 9.223372036854775808e18),
    (text_to_numeric, "3.0", 3), (text_to_numeric, "1e5x", 100000), (text_to_numeric, "1e20", 1e20),
    (text_to_numeric, "-0.0", 0), (text_to_numeric, "3.25", 3.25), (text_to_numeric, "-", 0),
    (apply_numeric_affinity, "5", 5), (apply_numeric_affinity, " 5 ", 5), (apply_numeric_affinity, "5.0", 5.0),
    (apply_numeric_affinity, "5x", "5x"), (apply_numeric_affinity, "", ""), (apply_numeric_affinity, 5, 5),
    (apply_numeric_affinity, "9223372036854775808", 9.223372036854775808e18),
    (to_int64, None, 0), (to_int64, 1.9, 1), (to_int64, -1e300, -(2**63)), (to_int64, "7x", 7),
    (to_int64, True, 1), (to_int32, 2**32 + 1, 1), (to_int32, 2**31, -(2**31)), (to_int32, "-3", -3),
    (to_real, None, 0.0), (to_real, 3, 3.0), (to_real, "2.5x", 2.5), (to_real, b"1", 1.0),
    (to_text, None, None), (to_text, 7, "7"), (to_text, True, "1"), (to_text, 1.0, "1.0"),
    (to_text, b"ab", "ab"), (to_text, "s", "s"),
    (real_to_text, 0.1, "0.1"), (real_to_text, 100.0, "100.0"), (real_to_text, 1e15, "1.0e+15"),
    (real_to_text, 1e-5, "1.0e-05"), (real_to_text, 0.0001, "0.0001"), (real_to_text, -0.0, "0.0"),
    (real_to_text, 2 / 3, "0.666666666666667"), (real_to_text, 1234567890123445.0, "1.23456789012345e+15"),
    (real_to_text, 123456789012345.5, "123456789012346.0"), (real_to_text, math.inf, "Inf"),
    (real_to_text, 1.7976931348623157e308, "1.79769313486232e+308"),
    (real_to_text, 9.9999999999999995e22, "1.0e+23"),
]


@pytest.mark.parametrize(("fn", "arg", "expected"), CONVERSIONS)
def test_conversion(fn: Any, arg: Any, expected: Any) -> None:
    assert same(fn(arg), expected), f"{fn.__name__}({arg!r}) = {fn(arg)!r}"


@pytest.fixture(scope="module")
def conn() -> sqlite3.Connection:
    return sqlite3.connect(":memory:")


@settings(max_examples=400, deadline=None)
@given(r=st.one_of(st.floats(allow_nan=False),
                   st.integers(10**14, 10**15).map(lambda i: float(i * 10 + 5)),
                   st.tuples(st.integers(10**14, 10**15), st.integers(-320, 300))
                   .map(lambda t: float(f"{t[0] * 10 + 5}e{t[1]}"))))
def test_real_to_text_matches_sqlite(conn: sqlite3.Connection, r: float) -> None:
    assert real_to_text(r) == conn.execute("SELECT CAST(? AS TEXT)", (r,)).fetchone()[0]


@settings(max_examples=400, deadline=None)
@given(s=st.text("0123456789.-+eE x\t", max_size=10))
def test_text_conversions_match_sqlite(conn: sqlite3.Connection, s: str) -> None:
    arith, numeric, real, integer = conn.execute(
        "SELECT ? + 0, CAST(? AS NUMERIC), CAST(? AS REAL), CAST(? AS INTEGER)", (s,) * 4).fetchone()
    mine = text_to_arith(s)
    mine = mine if type(mine) is int else to_real(s) + 0
    for got, expected in ((mine, arith), (text_to_numeric(s), numeric), (to_real(s), real),
                          (to_int64(s), integer)):
        assert type(got) is type(expected)
        assert got == expected or math.isclose(got, expected, rel_tol=1e-15)
