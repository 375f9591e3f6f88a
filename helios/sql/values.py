"""The SQL value model: plain Python values, client type names, storage coercion.

A value is ``None`` (NULL), ``int``, ``float``, ``str`` or ``bytes``; ``bool``
appears only in BOOLEAN columns and otherwise behaves as the integer it is.
Expressions follow SQLite (the conformance suite's answers are SQLite's), so
this module also holds SQLite's text<->number conversions, reproduced from its
``sqlite3AtoF``/``sqlite3Atoi64``/``%!.15g`` so that ``'12abc' + 1`` and
``CAST(2.0 AS TEXT)`` give SQLite's answers exactly.

Storage is stricter than SQLite: a typed column keeps only values that convert
without loss (``coerce_for_column``), and REST parameters must fit their
declared type (``check_param``). That is the Postgres-like contract clients
expect, while SQL expressions keep SQLite's forgiving semantics.
"""
from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final

from helios.errors import InvalidParameter, TypeMismatch

Value = None | int | float | str | bytes
"""A SQL value (``bool`` is an ``int`` subclass and counts as one)."""

# Client-visible type names -------------------------------------------------------------
INT4: Final = "int4"
INT8: Final = "int8"
TEXT: Final = "text"
BOOL: Final = "bool"
FLOAT4: Final = "float4"
FLOAT8: Final = "float8"
TIMESTAMP: Final = "timestamp"
BYTEA: Final = "bytea"
"""BLOB columns and blob results; outside the REST parameter types (JSON has no bytes)."""
ANY: Final = "any"
"""A column declared without a type: SQLite keeps any value as given, and so do we."""

PARAM_TYPE_NAMES: Final = frozenset({INT4, INT8, TEXT, BOOL, FLOAT4, FLOAT8, TIMESTAMP})
"""The ``{"type": T}`` names the REST contract accepts for parameters."""
TYPE_NAMES: Final = PARAM_TYPE_NAMES | {BYTEA, ANY}
"""Every type name a column or result may carry."""

INT4_MIN: Final = -(2**31)
INT4_MAX: Final = 2**31 - 1
INT8_MIN: Final = -(2**63)
INT8_MAX: Final = 2**63 - 1
FLOAT4_MAX: Final = 3.4028234663852886e38

# SQLite's conversions ----------------------------------------------------------------
_SQLITE_SPACE: Final = " \t\n\v\f\r"
# sqlite3AtoF's grammar: sign, digits, optional '.digits', optional 'e[sign]digits'
# (an 'e' without digits is consumed but makes the exponent invalid).
_ATOF = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]*)(?:(\.)([0-9]*))?(?:([eE])([+-]?)([0-9]*))?")
_ATOI = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]*)")


def _as_str(v: str | bytes) -> str:
    # Only ASCII bytes take part in number parsing, so latin-1 is exact and cannot fail.
    return v if type(v) is str else v.decode("latin-1")  # type: ignore[union-attr]


def atof(text: str | bytes) -> tuple[int, float]:
    """SQLite's ``sqlite3AtoF``: ``(rc, value)`` of the longest numeric prefix.

    ``rc`` is 1 for a pure integer, 2/3 for a pure real (decimal point / exponent),
    -1 for a real-looking prefix followed by junk, 0 for anything else; ``value``
    is the prefix's value (0.0 or -0.0 without digits).
    """
    s = _as_str(text)
    m = _ATOF.match(s)
    assert m is not None  # every part of the pattern is optional
    sign, digits, dot, frac, e, esign, edigits = m.groups()
    frac = frac or ""
    n_digit = len(digits) + len(frac)
    e_type = 1 + (dot is not None) + (e is not None)
    e_valid = e is None or edigits != ""
    if n_digit == 0:
        value = -0.0 if sign == "-" else 0.0
    else:
        value = float(f"{sign}{digits or '0'}.{frac or '0'}e{esign or ''}{edigits or '0'}")
    end = m.end()
    at_end = s[end:].strip(_SQLITE_SPACE) == "" if end < len(s) else True
    if at_end and n_digit > 0 and e_valid:
        return e_type, value
    if e_type >= 2 and (e_type == 3 or e_valid) and n_digit > 0:
        return -1, value
    return 0, value


def atoi(text: str | bytes) -> tuple[int, int]:
    """SQLite's ``sqlite3Atoi64``: ``(rc, value)`` of the integer prefix, clamped to 64 bits.

    ``rc``: 0 exact, 1 trailing junk, -1 no digits, 2 overflow, 3 exactly 2**63.
    """
    s = _as_str(text)
    m = _ATOI.match(s)
    assert m is not None
    sign, digits = m.groups()
    if not digits:
        return -1, 0
    rc = 0 if s[m.end():].strip(_SQLITE_SPACE) == "" else 1
    significant = digits.lstrip("0")
    if len(significant) > 19:  # certainly out of range; also spares int() a huge string
        return 2, (INT8_MIN if sign == "-" else INT8_MAX)
    value = int(significant or "0")
    if sign == "-":
        value = -value
    if value > INT8_MAX:
        return (3 if value == 2**63 else 2), INT8_MAX
    if value < INT8_MIN:
        return 2, INT8_MIN
    return rc, value


def double_to_int64(r: float) -> int:
    """C's ``(i64)r`` as SQLite guards it: truncate toward zero, clamp to 64 bits."""
    if r <= -9.223372036854775808e18:
        return INT8_MIN
    if r >= 9.223372036854775807e18:  # rounds to 2.0**63
        return INT8_MAX
    return int(r)


def real_same_as_int(r: float, i: int) -> bool:
    """SQLite's ``sqlite3RealSameAsInt``: may ``r`` be stored as the integer ``i``?"""
    return r == 0.0 or (float(i) == r and -2251799813685248 <= i < 2251799813685248)


def text_to_arith(text: str | bytes) -> int | float:
    """The number a text operand becomes in arithmetic (SQLite's ``computeNumericType``)."""
    rc, r = atof(text)
    if rc <= 0:
        if rc == 0:
            irc, i = atoi(text)
            if irc <= 1:
                return i
        return r
    if rc == 1:
        irc, i = atoi(text)
        if irc == 0:
            return i
    return r


def text_to_numeric(text: str | bytes) -> int | float:
    """``CAST(text AS NUMERIC)`` (SQLite's ``sqlite3VdbeMemNumerify``)."""
    rc, r = atof(text)
    if rc in (0, 1):
        irc, i = atoi(text)
        if irc <= 1:
            return i
    if math.isfinite(r):
        i = double_to_int64(r)
        if real_same_as_int(r, i):
            return i
    return r


def apply_numeric_affinity(v: Value) -> Value:
    """SQLite's NUMERIC affinity: text that is wholly a number becomes that number.

    Used where SQLite applies affinity to a text value (``sum()``, comparisons
    against numeric columns); any other value is returned unchanged.
    """
    if type(v) is not str:
        return v
    rc, r = atof(v)
    if rc <= 0:
        return v
    if rc == 1:
        i = double_to_int64(r) if math.isfinite(r) else INT8_MAX
        if real_same_as_int(r, i):
            return i
        irc, i = atoi(v)
        if irc == 0:
            return i
    return r


def to_int64(v: Value) -> int:
    """SQLite's ``sqlite3VdbeIntValue``: the integer any value reads as (NULL -> 0)."""
    t = type(v)
    if t is int:
        return v  # type: ignore[return-value]
    if t is float:
        return double_to_int64(v)  # type: ignore[arg-type]
    if v is None:
        return 0
    if t is bool:
        return int(v)  # type: ignore[arg-type]
    return atoi(v)[1]  # type: ignore[arg-type]


def to_int32(v: Value) -> int:
    """SQLite's ``sqlite3_value_int``: the 64-bit reading wrapped to a C ``int``."""
    i = to_int64(v) & 0xFFFFFFFF
    return i - 0x100000000 if i & 0x80000000 else i


def to_real(v: Value) -> float:
    """SQLite's ``sqlite3VdbeRealValue``: the double any value reads as (NULL -> 0.0)."""
    t = type(v)
    if t is float:
        return v  # type: ignore[return-value]
    if t is int or t is bool:
        return float(v)  # type: ignore[arg-type]
    if v is None:
        return 0.0
    return atof(v)[1]  # type: ignore[arg-type]


def long_double(x: Fraction) -> Fraction:
    """``x`` rounded to an x87 80-bit long double (64-bit significand, ties to even).

    SQLite formats and rounds reals in ``long double``; reproducing that exactly
    is what makes ``CAST(1234567890123445.0 AS TEXT)`` and ``round(2.675, 2)``
    agree with it digit for digit.
    """
    if x == 0:
        return x
    n, d = abs(x.numerator), x.denominator
    shift = 63 - (n.bit_length() - d.bit_length())
    while True:
        num, den = (n << shift, d) if shift >= 0 else (n, d << -shift)
        q, rem = divmod(num, den)
        if q >= 1 << 64:
            shift -= 1
        elif q < 1 << 63:
            shift += 1
        else:
            break
    if 2 * rem > den or (2 * rem == den and q & 1):
        q += 1
    result = Fraction(q, 1 << shift) if shift >= 0 else Fraction(q << -shift)
    return -result if x < 0 else result


_LD_E100, _LD_E10, _LD_TEN, _LD_E8 = Fraction(1e100), Fraction(1e10), Fraction(10), Fraction(1e8)
_LD_EM8, _LD_ONE, _LD_TENTH = Fraction(1e-8), Fraction(1), Fraction(0.1)
_G15_ROUNDER: Final = Fraction(5.0e-5 * 1.0e-10)  # printf's rounder for 15 digits, a double


def _sqlite_g15_exact(r: float) -> str:
    """SQLite 3.40's ``%!.15g`` step by step in long double (slow; used near ties)."""
    prefix = "-" if r < 0 else ""
    v, exp, scale = Fraction(abs(r)), 0, _LD_ONE
    for factor, step in ((_LD_E100, 100), (_LD_E10, 10), (_LD_TEN, 1)):
        while v >= long_double(factor * scale) and exp <= 350:
            scale = long_double(scale * factor)
            exp += step
    v = long_double(v / scale)
    while v < _LD_EM8:
        v, exp = long_double(v * _LD_E8), exp - 8
    while v < _LD_ONE:
        v, exp = long_double(v * _LD_TEN), exp - 1
    if exp > 350:
        return prefix + "Inf"
    v = long_double(v + _G15_ROUNDER)
    if v >= _LD_TEN:
        v, exp = long_double(v * _LD_TENTH), exp + 1
    scientific = exp < -4 or exp > 14
    n_before = 1 if scientific else exp + 1
    digits = []
    for _ in range(15):
        digit = int(v)
        digits.append(chr(48 + digit))
        v = long_double((v - digit) * _LD_TEN)
    text = "".join(digits)
    if n_before <= 0:
        body = "0." + "0" * -n_before + text
    else:
        body = text[:n_before] + "." + text[n_before:]
    body = body.rstrip("0")
    if body.endswith("."):
        body += "0"
    if scientific:
        body += "e%s%02d" % ("-" if exp < 0 else "+", abs(exp))
    return prefix + body


def real_to_text(r: float) -> str:
    """A double as SQLite renders it (``%!.15g``): ``1.0``, ``0.1``, ``1.0e+20``, ``Inf``.

    Python's correctly rounded ``%.15g`` gives SQLite's digits except when the
    digits after the fifteenth are close to a tie, where SQLite's long-double
    arithmetic decides; those rare values take the exact emulation.
    """
    if r == 0.0:
        return "0.0"  # SQLite prints -0.0 without its sign
    if r != r:
        return ""  # NaN never reaches SQL values: arithmetic turns it into NULL
    if r in (math.inf, -math.inf):
        return "Inf" if r > 0 else "-Inf"
    tail = int(("%.24e" % r).lstrip("-")[16:26])  # the 16th to 25th significant digits
    # Measured: SQLite's long-double error stays under 3e-4 of the last digit below
    # 1e100 and under 0.05 above it, where it scales by the inexact constant 1e100.
    window = 1_000_000_000 if abs(r) >= 1e100 else 10_000_000
    if abs(tail - 5_000_000_000) <= window:
        return _sqlite_g15_exact(r)
    s = "%.15g" % r
    if "e" in s:
        mantissa, _, exponent = s.partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        return f"{mantissa}e{exponent}"
    return s if "." in s else s + ".0"


def to_text(v: Value) -> str | None:
    """SQLite's ``sqlite3_value_text``: the text any value reads as (NULL stays NULL)."""
    t = type(v)
    if t is str:
        return v  # type: ignore[return-value]
    if t is int:
        return str(v)
    if t is float:
        return real_to_text(v)  # type: ignore[arg-type]
    if v is None:
        return None
    if t is bool:
        return "1" if v else "0"
    return v.decode("utf-8", "replace")  # type: ignore[union-attr]


def to_blob(v: Value) -> bytes | None:
    """The bytes any value reads as (SQLite's ``sqlite3_value_blob``; text is UTF-8)."""
    if type(v) is bytes or v is None:
        return v  # type: ignore[return-value]
    return to_text(v).encode("utf-8")  # type: ignore[union-attr]


# Type names ---------------------------------------------------------------------
_DECLARED: Final[dict[str, str]] = {
    **dict.fromkeys(("INTEGER", "INT", "INT4", "SMALLINT", "INT2", "TINYINT", "MEDIUMINT",
                     "SERIAL", "SMALLSERIAL"), INT4),
    **dict.fromkeys(("BIGINT", "INT8", "BIGSERIAL", "UNSIGNED BIG INT"), INT8),
    **dict.fromkeys(("TEXT", "VARCHAR", "CHAR", "CHARACTER", "CHARACTER VARYING", "NCHAR",
                     "NVARCHAR", "VARYING CHARACTER", "NATIVE CHARACTER", "CLOB", "STRING",
                     "JSON", "JSONB", "UUID"), TEXT),
    **dict.fromkeys(("BOOLEAN", "BOOL"), BOOL),
    **dict.fromkeys(("REAL", "FLOAT4"), FLOAT4),
    **dict.fromkeys(("DOUBLE", "DOUBLE PRECISION", "FLOAT", "FLOAT8", "NUMERIC", "DECIMAL"),
                    FLOAT8),
    **dict.fromkeys(("TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE",
                     "TIMESTAMP WITHOUT TIME ZONE", "DATETIME", "DATE"), TIMESTAMP),
    **dict.fromkeys(("BLOB", "BYTEA"), BYTEA),
}


def declared_type_to_name(type_name: str, args: Sequence[Any] = ()) -> str:
    """The client type name of a column declared ``type_name(args...)``.

    Known names follow the API contract (INTEGER/INT -> int4, BIGINT -> int8,
    REAL -> float4, DOUBLE PRECISION/FLOAT -> float8, FLOAT(p) -> float4 for
    p <= 24 as in Postgres). NUMERIC/DECIMAL become float8: we have no decimal
    type, and SQLite stores them as binary numbers too. Unknown names follow
    SQLite's affinity rules (contains INT -> int8; CHAR/CLOB/TEXT -> text;
    BLOB -> bytea; REAL/FLOA/DOUB -> float8; anything else, being NUMERIC, ->
    float8); an empty name is ``any``. Lengths such as VARCHAR(10) are accepted
    and not enforced, as SQLite does.
    """
    name = " ".join(type_name.upper().split())
    if "(" in name:  # a caller that passed "VARCHAR(10)" whole
        name = name[: name.index("(")].rstrip()
    if name == "FLOAT" and args:
        try:
            precision = int(args[0])
        except (TypeError, ValueError):
            precision = 53
        return FLOAT4 if precision <= 24 else FLOAT8
    known = _DECLARED.get(name)
    if known is not None:
        return known
    if not name:
        return ANY
    if "INT" in name:
        return INT8
    if "CHAR" in name or "CLOB" in name or "TEXT" in name:
        return TEXT
    if "BLOB" in name:
        return BYTEA
    return FLOAT8


_VALUE_TYPE_NAMES: Final[dict[type, str]] = {
    bool: BOOL, int: INT8, float: FLOAT8, str: TEXT, bytes: BYTEA, type(None): TEXT,
}


def value_type_name(v: Value) -> str:
    """The type name reported for a computed column holding ``v``.

    Integers report int8 whatever their size so a column's type does not change
    from row to row; NULL reports text (a literal NULL has no better type).
    """
    return _VALUE_TYPE_NAMES[type(v)]


# Strict conversions for storage and parameters -------------------------------------
_STRICT_NUMBER = re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*\Z")
_STRICT_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*\Z")
_TRUE_WORDS: Final = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE_WORDS: Final = frozenset({"false", "f", "no", "n", "off", "0"})
_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class _Reject(Exception):
    """A value that does not fit: the caller turns it into the right public error."""


def _check_range(i: int, lo: int, hi: int) -> int:
    if not lo <= i <= hi:
        raise _Reject("out of range")
    return i


def _strict_int(s: str) -> int:
    """``int(s)`` for text already matched by ``_STRICT_INTEGER``, refusing absurd lengths."""
    if len(s.strip().lstrip("+-").lstrip("0")) > 20:
        raise _Reject("out of range")
    return int(s)


def _integral_text(s: str) -> int:
    """An integer from text written as a number with an integral value ('12', '1e3', '12.0')."""
    if _STRICT_INTEGER.match(s):
        return _strict_int(s)
    if not _STRICT_NUMBER.match(s):
        raise _Reject("not a number")
    d = Decimal(s.strip())
    if d.adjusted() > 20 or d != d.to_integral_value():
        raise _Reject("not an integer")
    return int(d)


def _to_integer(v: Any, lo: int, hi: int) -> int:
    t = type(v)
    if t is int or t is bool:
        return _check_range(int(v), lo, hi)
    if t is float:
        if not v.is_integer():  # also rejects inf and NaN
            raise _Reject("not an integer")
        return _check_range(int(v), lo, hi)
    if t is str:
        return _check_range(_integral_text(v), lo, hi)
    raise _Reject("not a number")


def _to_float(v: Any) -> float:
    t = type(v)
    if t is float:
        r = v
    elif t is int or t is bool:
        try:
            r = float(v)
        except OverflowError:
            raise _Reject("out of range") from None
    elif t is str and _STRICT_NUMBER.match(v):
        r = float(v)
    else:
        raise _Reject("not a number")
    if r != r:
        raise _Reject("not a number")
    return r


def _to_text_column(v: Any) -> str:
    t = type(v)
    if t is str:
        return v
    if t is int or t is float:
        return to_text(v)  # type: ignore[return-value]
    raise _Reject("not text")


def _to_bool(v: Any) -> bool:
    t = type(v)
    if t is bool:
        return v
    if t is int and v in (0, 1):
        return bool(v)
    if t is str:
        word = v.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise _Reject("not a boolean")


def _seconds(r: float) -> int | float:
    if not math.isfinite(r):
        raise _Reject("not a finite time")
    return int(r) if r.is_integer() else r


def _to_timestamp(v: Any) -> int | float:
    """Unix seconds: an int when whole, a float otherwise (JSON round-trips both)."""
    t = type(v)
    if t is int:
        return v
    if t is float:
        return _seconds(v)
    if t is datetime.datetime:
        return _datetime_seconds(v)
    if t is str:
        if _STRICT_NUMBER.match(v):
            return _seconds(float(v))
        try:
            return _datetime_seconds(datetime.datetime.fromisoformat(v.strip()))
        except ValueError:
            raise _Reject("not a timestamp") from None
    raise _Reject("not a timestamp")


def _datetime_seconds(dt: datetime.datetime) -> int | float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)  # naive times are UTC
    delta = dt - _EPOCH
    whole = delta.days * 86400 + delta.seconds
    return whole if delta.microseconds == 0 else whole + delta.microseconds / 1_000_000


def _to_bytea(v: Any) -> bytes:
    if type(v) is bytes:
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise _Reject("not bytes")


_COLUMN_COERCE: Final[dict[str, Callable[[Any], Any]]] = {
    # INTEGER columns are named int4 (the API contract) but hold 64-bit values, as SQLite's
    # INTEGER does and the conformance suite relies on; int4 *parameters* stay 32-bit.
    INT4: lambda v: _to_integer(v, INT8_MIN, INT8_MAX),
    INT8: lambda v: _to_integer(v, INT8_MIN, INT8_MAX),
    FLOAT4: _to_float,  # float4 is a name only: stored as a double, as SQLite's REAL is
    FLOAT8: _to_float,
    TEXT: _to_text_column,
    BOOL: _to_bool,
    TIMESTAMP: _to_timestamp,
    BYTEA: _to_bytea,
    ANY: lambda v: v,
}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce_for_column(value: Any, type_name: str, *, column: str) -> Value:
    """``value`` as stored in a column of ``type_name``, or ``TypeMismatch``.

    Only lossless conversions: int columns take ints, bools, integral floats and
    integral numeric text ('12', '1e3') within int4/int8 range; float columns
    take numbers and numeric text (ints become floats); text takes str and
    renders numbers as SQLite does ('12', '1.5'), but not bools or bytes; bool
    takes True/False, 0/1 and 'true'/'false'/'t'/'f'/'yes'/'no'/'on'/'off';
    timestamp takes Unix seconds or ISO-8601 text (naive = UTC) and stores Unix
    seconds, an int when whole; bytea takes bytes; ``any`` keeps the value. NULL
    is kept (NOT NULL is checked by the caller).
    """
    if value is None:
        return None
    try:
        convert = _COLUMN_COERCE[type_name]
    except KeyError:
        raise ValueError(f"unknown column type name {type_name!r}") from None
    try:
        return convert(value)
    except _Reject as exc:
        raise TypeMismatch(
            f"column '{column}' of type {type_name} cannot store {_show(value)} ({exc})",
            {"column": column, "type": type_name},
        ) from None


def column_coercer(type_name: str, *, column: str) -> Callable[[Any], Value]:
    """``coerce_for_column`` for one column, with the common already-right values
    (an in-range int for an integer column, a str for text, a float for a real)
    passed through without a call: it runs once per value stored."""
    if type_name == ANY:
        return lambda v: v

    def slow(v: Any) -> Value:
        return coerce_for_column(v, type_name, column=column)
    if type_name in (INT4, INT8):
        return lambda v: v if type(v) is int and INT8_MIN <= v <= INT8_MAX else slow(v)
    if type_name == TEXT:
        return lambda v: v if type(v) is str else slow(v)
    if type_name in (FLOAT4, FLOAT8):
        return lambda v: v if type(v) is float and math.isfinite(v) else slow(v)
    return slow


_NONE = type(None)


def column_unchanged(type_name: str, kinds: set[type], values: Callable[[], Iterable[Any]]) -> bool:
    """Would ``column_coercer(type_name)`` return every value of a column as it is?

    ``kinds`` is the set of the values' Python types and ``values()`` iterates them
    again: the answer comes from a few C-level passes over the column (a bulk insert's
    fast path) instead of one Python call per value. False means "coerce them one by
    one", which gives the exact values and errors."""
    if type_name == ANY:
        return True
    if type_name in (INT4, INT8):
        return kinds == {int} and INT8_MIN <= min(values()) and max(values()) <= INT8_MAX
    if type_name == TEXT:
        return kinds <= {str, _NONE}
    if type_name in (FLOAT4, FLOAT8):
        return kinds == {float} and all(map(math.isfinite, values()))
    return kinds == {_NONE}


def _param_integer(v: Any, lo: int, hi: int) -> int:
    t = type(v)
    if t is int:
        return _check_range(v, lo, hi)
    if t is float and v.is_integer():
        return _check_range(int(v), lo, hi)
    if t is str and _STRICT_INTEGER.match(v):  # int8 as text: JavaScript clients need it
        return _check_range(_strict_int(v), lo, hi)
    raise _Reject("not an integer")


def _param_float(v: Any, limit: float) -> float:
    t = type(v)
    if t is bool or not (t is int or t is float or t is str):
        raise _Reject("not a number")
    r = _to_float(v)
    if not math.isfinite(r) or abs(r) > limit:
        raise _Reject("out of range")
    return r


def _param_text(v: Any) -> str:
    if type(v) is not str:
        raise _Reject("not a string")
    return v


def _param_bool(v: Any) -> bool:
    if type(v) is not bool:
        raise _Reject("not true or false")
    return v


def _param_timestamp(v: Any) -> int | float:
    if type(v) is bool:
        raise _Reject("not a timestamp")
    return _to_timestamp(v)


_PARAM_CHECK: Final[dict[str, Callable[[Any], Any]]] = {
    INT4: lambda v: _param_integer(v, INT4_MIN, INT4_MAX),
    INT8: lambda v: _param_integer(v, INT8_MIN, INT8_MAX),
    FLOAT4: lambda v: _param_float(v, FLOAT4_MAX),
    FLOAT8: lambda v: _param_float(v, math.inf),
    TEXT: _param_text,
    BOOL: _param_bool,
    TIMESTAMP: _param_timestamp,
}


def check_param(type_name: str, value: Any, *, position: int | None = None) -> Value:
    """The Python value of a typed REST parameter ``{"type": type_name, "value": value}``.

    Strict, since the client declared the type: int4/int8 take JSON integers
    (an integral float such as 5.0, or decimal integer text for 64-bit values
    JavaScript cannot hold) within range; float4/float8 take finite numbers or
    numeric text, float4 within its range; text takes strings only; bool takes
    JSON true/false only; timestamp takes Unix seconds or ISO-8601 text. A null
    value is SQL NULL. Anything else is ``InvalidParameter`` (400).
    """
    where = f"${position}" if position is not None else "parameter"
    check = _PARAM_CHECK.get(type_name) if isinstance(type_name, str) else None
    if check is None:
        raise InvalidParameter(
            f"{where}: unknown type {type_name!r}; expected one of {', '.join(sorted(PARAM_TYPE_NAMES))}",
            {"type": type_name} if isinstance(type_name, str) else None,
        )
    if value is None:
        return None
    try:
        return check(value)
    except _Reject as exc:
        raise InvalidParameter(
            f"{where}: value {_show(value)} does not fit type {type_name} ({exc})",
            {"type": type_name},
        ) from None
