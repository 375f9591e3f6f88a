"""SQL runtime semantics: the small named functions every compiled expression calls.

Each function takes and returns plain values (see ``helios.sql.values``) and
follows SQLite 3.40 exactly, because the conformance suite's answers are
SQLite's: three-valued logic, the cross-type order NULL < numbers < text <
blob, integer arithmetic that overflows into floats, text that reads as its
numeric prefix, ``%!.15g`` rendering, SQLite's CAST, LIKE, scalar functions
and aggregates. Truth values are the integers 1 and 0, as in SQLite.

The compiler binds these functions into closures once per statement, so they
are written for speed on the common path (``type(x) is int`` first) and fall
back to the general conversions only for mixed or text operands. They apply
no column affinity: a binder that compares a column (or a CAST) with another
operand converts both with ``comparison_affinity``/``apply_comparison_affinity``
first, as SQLite does.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache, reduce
from itertools import accumulate
from operator import add as _plus
from typing import Any, Final

from helios.errors import SemanticError, UnprocessableEntity
from helios.sql.roundfloat import round_digits
from helios.sql.values import (
    INT8_MAX,
    INT8_MIN,
    Value,
    apply_numeric_affinity,
    atof,
    text_to_arith,
    text_to_numeric,
    to_blob,
    to_int32,
    to_int64,
    to_real,
    to_text,
)

__all__ = [
    "AGGREGATE_FUNCTIONS", "SCALAR_FUNCTIONS", "Avg", "Count", "CountStar", "Descending",
    "Distinct", "GroupConcat", "Max", "Min", "Sum", "Total", "add", "affinity", "aggregate_factory",
    "apply_comparison_affinity", "between", "comparison_affinity",
    "bitand", "bitnot", "bitor", "cast", "compare", "concat", "div", "in_list", "is_aggregate",
    "is_true", "like", "like_escape", "lookup_scalar", "make_aggregate", "make_sort_key", "mod",
    "mul", "neg", "pos", "shl", "shr", "sort_key", "sql_and", "sql_eq", "sql_ge", "sql_gt",
    "sql_is", "sql_is_not", "sql_le", "sql_lt", "sql_ne", "sql_not", "sql_or", "sub",
]

# Comparison ---------------------------------------------------------------------------
_RANK: Final[dict[type, int]] = {type(None): 0, bool: 1, int: 1, float: 1, str: 2, bytes: 3}
"""SQLite's storage-class order: NULL < INTEGER/REAL < TEXT < BLOB."""


def compare(a: Value, b: Value) -> int:
    """-1, 0 or 1: SQLite's total order (``sqlite3MemCompare``, BINARY collation).

    Numbers compare by value (int against float exactly), text by code point
    (the same order as UTF-8 bytes), blobs bytewise; NULL equals NULL here.
    """
    ra, rb = _RANK[type(a)], _RANK[type(b)]
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 0:
        return 0
    return -1 if a < b else (1 if a > b else 0)  # type: ignore[operator]


def sql_eq(a: Value, b: Value) -> int | None:
    """``a = b``: NULL if either is NULL, else 1 or 0 (different classes are never equal)."""
    if a is None or b is None:
        return None
    return 1 if _RANK[type(a)] == _RANK[type(b)] and a == b else 0


def sql_ne(a: Value, b: Value) -> int | None:
    """``a <> b``."""
    if a is None or b is None:
        return None
    return 0 if _RANK[type(a)] == _RANK[type(b)] and a == b else 1


def sql_lt(a: Value, b: Value) -> int | None:
    """``a < b``."""
    if a is None or b is None:
        return None
    ra, rb = _RANK[type(a)], _RANK[type(b)]
    if ra == rb:
        return 1 if a < b else 0  # type: ignore[operator]
    return 1 if ra < rb else 0


def sql_le(a: Value, b: Value) -> int | None:
    """``a <= b``."""
    if a is None or b is None:
        return None
    ra, rb = _RANK[type(a)], _RANK[type(b)]
    if ra == rb:
        return 1 if a <= b else 0  # type: ignore[operator]
    return 1 if ra < rb else 0


def sql_gt(a: Value, b: Value) -> int | None:
    """``a > b``."""
    return sql_lt(b, a)


def sql_ge(a: Value, b: Value) -> int | None:
    """``a >= b``."""
    return sql_le(b, a)


def sql_is(a: Value, b: Value) -> int:
    """``a IS b``: equality in which NULL equals NULL; never NULL itself."""
    if a is None or b is None:
        return 1 if a is b else 0
    return 1 if _RANK[type(a)] == _RANK[type(b)] and a == b else 0


def sql_is_not(a: Value, b: Value) -> int:
    """``a IS NOT b``."""
    return 1 - sql_is(a, b)


def sort_key(v: Value, nulls_first: bool = True) -> tuple[Any, ...]:
    """An ascending ORDER BY key in SQLite's order; never raises on mixed types.

    NULLs sort first (SQLite's default for ASC) unless ``nulls_first`` is False.
    """
    if v is None:
        return (0,) if nulls_first else (4,)
    return (_RANK[type(v)], v)


class Descending:
    """Wraps a sort key to reverse its order, for DESC columns in a multi-column key.

    ``sorted``/``heapq`` only use ``<``, so one method does the work. When every
    column is DESC, sorting ascending keys with ``reverse=True`` is faster.
    """

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __lt__(self, other: Descending) -> bool:
        return other.key < self.key

    def __gt__(self, other: Descending) -> bool:
        return other.key > self.key

    def __le__(self, other: Descending) -> bool:
        return other.key <= self.key

    def __ge__(self, other: Descending) -> bool:
        return other.key >= self.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descending) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Descending({self.key!r})"


def make_sort_key(descending: bool = False,
                  nulls_first: bool | None = None) -> Callable[[Value], Any]:
    """The key function for one ORDER BY term.

    ``nulls_first=None`` is SQLite's default: NULL is the smallest value, so it
    comes first in ASC and last in DESC. NULLS FIRST / NULLS LAST override it.
    """
    first = (not descending) if nulls_first is None else nulls_first
    null_key: tuple[int, ...] = (0,) if first != descending else (4,)
    if not descending:
        return lambda v: null_key if v is None else (_RANK[type(v)], v)
    return lambda v: Descending(null_key if v is None else (_RANK[type(v)], v))


# Three-valued logic ---------------------------------------------------------------
def is_true(v: Value) -> bool:
    """Is ``v`` true in a WHERE clause? NULL is not; numbers when nonzero; text and
    blobs by their numeric prefix ('1abc' is true, 'abc' false), as in SQLite."""
    t = type(v)
    if t is int or t is bool:
        return v != 0
    if t is float:
        return v != 0.0
    if v is None:
        return False
    return atof(v)[1] != 0.0  # type: ignore[arg-type]


def sql_and(a: Value, b: Value) -> int | None:
    """``a AND b``: 0 if either is false, else NULL if either is NULL, else 1."""
    if a is None:
        return None if b is None or is_true(b) else 0
    if not is_true(a):
        return 0
    if b is None:
        return None
    return 1 if is_true(b) else 0


def sql_or(a: Value, b: Value) -> int | None:
    """``a OR b``: 1 if either is true, else NULL if either is NULL, else 0."""
    if a is None:
        return 1 if b is not None and is_true(b) else None
    if is_true(a):
        return 1
    if b is None:
        return None
    return 1 if is_true(b) else 0


def sql_not(v: Value) -> int | None:
    """``NOT v``."""
    if v is None:
        return None
    return 0 if is_true(v) else 1


# Arithmetic ---------------------------------------------------------------------
def _operand(v: Value) -> int | float:
    """The number a non-NULL operand becomes (SQLite's ``numericType``)."""
    t = type(v)
    if t is int or t is float:
        return v  # type: ignore[return-value]
    if t is bool:
        return int(v)  # type: ignore[arg-type]
    return text_to_arith(v)  # type: ignore[arg-type]


def _real(r: float) -> float | None:
    return None if r != r else r  # SQLite turns a NaN result into NULL


def add(a: Value, b: Value) -> int | float | None:
    """``a + b``: integer when both are integers and it fits 64 bits, else real."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        r = a + b
        return r if INT8_MIN <= r <= INT8_MAX else float(a) + float(b)
    if (ta is float or ta is int) and (tb is float or tb is int):
        r = a + b  # the int operand converts to double, as in SQLite
        return None if r != r else r
    if a is None or b is None:
        return None
    x, y = _operand(a), _operand(b)
    if type(x) is int and type(y) is int:
        r = x + y
        if INT8_MIN <= r <= INT8_MAX:
            return r
    return _real(to_real(a) + to_real(b))


def sub(a: Value, b: Value) -> int | float | None:
    """``a - b``."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        r = a - b
        return r if INT8_MIN <= r <= INT8_MAX else float(a) - float(b)
    if (ta is float or ta is int) and (tb is float or tb is int):
        r = a - b  # the int operand converts to double, as in SQLite
        return None if r != r else r
    if a is None or b is None:
        return None
    x, y = _operand(a), _operand(b)
    if type(x) is int and type(y) is int:
        r = x - y
        if INT8_MIN <= r <= INT8_MAX:
            return r
    return _real(to_real(a) - to_real(b))


def mul(a: Value, b: Value) -> int | float | None:
    """``a * b``."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        r = a * b
        return r if INT8_MIN <= r <= INT8_MAX else float(a) * float(b)
    if (ta is float or ta is int) and (tb is float or tb is int):
        r = a * b  # the int operand converts to double, as in SQLite
        return None if r != r else r
    if a is None or b is None:
        return None
    x, y = _operand(a), _operand(b)
    if type(x) is int and type(y) is int:
        r = x * y
        if INT8_MIN <= r <= INT8_MAX:
            return r
    return _real(to_real(a) * to_real(b))


def div(a: Value, b: Value) -> int | float | None:
    """``a / b``: integer division truncating toward zero (-7/2 = -3); by zero is NULL."""
    if a is None or b is None:
        return None
    x, y = _operand(a), _operand(b)
    if type(x) is int and type(y) is int:
        if y == 0:
            return None
        if not (y == -1 and x == INT8_MIN):
            q = abs(x) // abs(y)
            return q if (x < 0) == (y < 0) else -q
    divisor = to_real(b)
    if divisor == 0.0:
        return None
    return _real(to_real(a) / divisor)


def _c_remainder(x: int, y: int) -> int | None:
    """C's ``x % y`` (sign of the dividend) with SQLite's guards; None for y == 0."""
    if y == 0:
        return None
    if y == -1:
        return 0
    r = abs(x) % abs(y)
    return -r if x < 0 else r


def mod(a: Value, b: Value) -> int | float | None:
    """``a % b``: on integers (reals are truncated first, giving a real); by zero is NULL."""
    if a is None or b is None:
        return None
    x, y = _operand(a), _operand(b)
    if type(x) is int and type(y) is int:
        return _c_remainder(x, y)
    r = _c_remainder(to_int64(a), to_int64(b))
    return None if r is None else float(r)


def neg(v: Value) -> int | float | None:
    """``-v`` (SQLite computes ``0 - v``: -'abc' is 0, -(-2**63) becomes real)."""
    if type(v) is float:
        return -v
    return sub(0, v)


def pos(v: Value) -> Value:
    """``+v``: SQLite's unary plus is a no-op, even on text."""
    return v


def _wrap64(i: int) -> int:
    i &= 0xFFFFFFFFFFFFFFFF
    return i - 0x10000000000000000 if i & 0x8000000000000000 else i


def bitand(a: Value, b: Value) -> int | None:
    """``a & b`` on the 64-bit integer readings of both operands."""
    if a is None or b is None:
        return None
    return to_int64(a) & to_int64(b)


def bitor(a: Value, b: Value) -> int | None:
    """``a | b``."""
    if a is None or b is None:
        return None
    return to_int64(a) | to_int64(b)


def bitnot(v: Value) -> int | None:
    """``~v``."""
    if v is None:
        return None
    return ~to_int64(v)


def _shift(value: int, amount: int, left: bool) -> int:
    if amount < 0:  # a negative shift goes the other way
        left, amount = not left, (-amount if amount > -64 else 64)
    if amount >= 64:
        return 0 if value >= 0 or left else -1
    return _wrap64(value << amount) if left else value >> amount


def shl(a: Value, b: Value) -> int | None:
    """``a << b``: 64-bit two's complement; shifts of 64 or more give 0 (or -1)."""
    if a is None or b is None:
        return None
    return _shift(to_int64(a), to_int64(b), True)


def shr(a: Value, b: Value) -> int | None:
    """``a >> b``: arithmetic (sign-extending) shift."""
    if a is None or b is None:
        return None
    return _shift(to_int64(a), to_int64(b), False)


def concat(a: Value, b: Value) -> str | None:
    """``a || b``: both as text (numbers as SQLite renders them: 1.0 -> '1.0')."""
    if a is None or b is None:
        return None
    return to_text(a) + to_text(b)  # type: ignore[operator]


# CAST -----------------------------------------------------------------------
INTEGER_AFFINITY: Final = "INTEGER"
TEXT_AFFINITY: Final = "TEXT"
BLOB_AFFINITY: Final = "BLOB"
REAL_AFFINITY: Final = "REAL"
NUMERIC_AFFINITY: Final = "NUMERIC"


_NUMERIC_AFFINITIES: Final = frozenset({INTEGER_AFFINITY, REAL_AFFINITY, NUMERIC_AFFINITY})


@lru_cache(maxsize=256)
def affinity(type_name: str) -> str:
    """SQLite's affinity of a type name (section 3.1 of its datatype rules).

    Contains INT -> INTEGER; CHAR, CLOB or TEXT -> TEXT; BLOB or nothing -> BLOB;
    REAL, FLOA or DOUB -> REAL; anything else (SIGNED, BOOLEAN, DECIMAL) -> NUMERIC.
    """
    name = type_name.upper()
    if "INT" in name:
        return INTEGER_AFFINITY
    if "CHAR" in name or "CLOB" in name or "TEXT" in name:
        return TEXT_AFFINITY
    if "BLOB" in name or not name.strip():
        return BLOB_AFFINITY
    if "REAL" in name or "FLOA" in name or "DOUB" in name:
        return REAL_AFFINITY
    return NUMERIC_AFFINITY


def _cast_numeric(v: Value) -> int | float:
    t = type(v)
    if t is int or t is float:
        return v  # type: ignore[return-value]
    if t is bool:
        return int(v)  # type: ignore[arg-type]
    return text_to_numeric(v)  # type: ignore[arg-type]


_CASTS: Final[dict[str, Callable[[Any], Value]]] = {
    INTEGER_AFFINITY: to_int64,  # reals truncate and clamp, text reads its integer prefix
    REAL_AFFINITY: to_real,
    TEXT_AFFINITY: to_text,
    BLOB_AFFINITY: to_blob,
    NUMERIC_AFFINITY: _cast_numeric,
}


def cast(value: Value, type_name: str) -> Value:
    """``CAST(value AS type_name)`` by the type name's affinity.

    CAST('12abc' AS INTEGER) = 12, CAST(-1.9 AS INTEGER) = -1 (reals truncate and
    clamp to 64 bits), CAST(2.0 AS TEXT) = '2.0', CAST('3.0' AS NUMERIC) = 3,
    CAST(x AS SIGNED) behaves as NUMERIC; NULL stays NULL.
    """
    if value is None:
        return None
    return _CASTS[affinity(type_name)](value)


def comparison_affinity(left: str | None, right: str | None) -> str | None:
    """The affinity SQLite applies to both operands of a comparison (``sqlite3CompareAffinity``).

    ``left``/``right`` are the operands' affinities: a column's or a CAST's (see
    ``affinity``), None for expressions without one (literals, parameters,
    arithmetic, function calls). Two affinities give NUMERIC if either is
    numeric, else none; one affinity is used as is. For ``x IN (...)`` SQLite
    uses the affinity of ``x`` alone.
    """
    if left is not None and right is not None:
        if left in _NUMERIC_AFFINITIES or right in _NUMERIC_AFFINITIES:
            return NUMERIC_AFFINITY
        return None
    aff = left if left is not None else right
    return None if aff == BLOB_AFFINITY else aff


def apply_comparison_affinity(value: Value, aff: str | None) -> Value:
    """``value`` converted for a comparison under affinity ``aff`` (from ``comparison_affinity``).

    Numeric affinities turn numeric-looking text into numbers; TEXT renders
    numbers as text; blobs, NULLs and ``None`` affinity leave the value alone.
    """
    if aff is None or value is None:
        return value
    if aff == TEXT_AFFINITY:
        t = type(value)
        return to_text(value) if t is int or t is float or t is bool else value
    return apply_numeric_affinity(value) if type(value) is str else value


# LIKE, BETWEEN, IN -------------------------------------------------------------------
_LIKE_PATTERN_LIMIT: Final = 50000  # SQLITE_LIMIT_LIKE_PATTERN_LENGTH
_NEVER: Final = re.compile(r"(?!)")


@lru_cache(maxsize=512)
def _like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    """Compile a LIKE pattern once: ``%`` any run, ``_`` one character, ASCII case folded."""
    parts = []
    chars = iter(pattern)
    for c in chars:
        if c == escape:
            literal = next(chars, None)
            if literal is None:  # a trailing escape matches nothing, as in SQLite
                return _NEVER
            parts.append(re.escape(literal))
        elif c == "%":
            parts.append(".*")
        elif c == "_":
            parts.append(".")
        else:
            parts.append(re.escape(c))
    # re.ASCII limits IGNORECASE to A-Z, which is what SQLite's LIKE folds.
    return re.compile("".join(parts), re.IGNORECASE | re.ASCII | re.DOTALL)


def like(value: Value, pattern: Value, escape: Value = None) -> int | None:
    """``value LIKE pattern [ESCAPE escape]`` (``escape=None``: no ESCAPE clause).

    Case-insensitive for ASCII letters only; numbers match as their text; NULL
    operands give NULL. A blob operand never matches, not even beside a NULL:
    the stdlib's SQLite is built with SQLITE_LIKE_DOESNT_MATCH_BLOBS (as SQLite
    recommends), and we follow it. For ``ESCAPE <expr>`` that may be NULL use
    ``like_escape``.
    """
    if type(value) is bytes or type(pattern) is bytes:
        return 0
    if value is None or pattern is None:
        return None
    p: str = to_text(pattern)  # type: ignore[assignment]
    if len(p) > _LIKE_PATTERN_LIMIT // 4 and len(p.encode()) > _LIKE_PATTERN_LIMIT:
        raise UnprocessableEntity("LIKE or GLOB pattern too complex")
    esc = None
    if escape is not None:
        esc = to_text(escape)
        if len(esc) != 1:  # type: ignore[arg-type]
            raise UnprocessableEntity("ESCAPE expression must be a single character")
    return 1 if _like_regex(p, esc).fullmatch(to_text(value)) else 0  # type: ignore[arg-type]


def like_escape(value: Value, pattern: Value, escape: Value) -> int | None:
    """``value LIKE pattern ESCAPE escape`` where a NULL escape makes the result NULL."""
    if type(value) is bytes or type(pattern) is bytes:
        return 0
    if escape is None:
        return None
    return like(value, pattern, escape)


def between(value: Value, low: Value, high: Value) -> int | None:
    """``value BETWEEN low AND high`` = ``value >= low AND value <= high``."""
    return sql_and(sql_ge(value, low), sql_le(value, high))


def in_list(value: Value, items: Iterable[Value]) -> int | None:
    """``value IN (items)``: 1 on a match; else NULL if value or any item is NULL; else 0.

    An empty list gives 0 even for a NULL value, as SQLite does. ``items`` is
    consumed lazily and no further than the first match, so a compiler may pass
    a generator that evaluates each item on demand, as SQLite does.
    """
    if value is None:
        for _ in items:
            return None
        return 0
    saw_null = False
    rank = _RANK[type(value)]
    for item in items:
        if item is None:
            saw_null = True
        elif _RANK[type(item)] == rank and item == value:
            return 1
    return None if saw_null else 0


# Scalar functions ------------------------------------------------------------------
def fn_abs(v: Value) -> int | float | None:
    """abs(X): integers stay integers (abs(-2**63) is an error); anything else is real."""
    t = type(v)
    if t is int or t is bool:
        if v == INT8_MIN:
            raise UnprocessableEntity("integer overflow")
        return abs(int(v))  # type: ignore[arg-type]
    if v is None:
        return None
    r = to_real(v)
    return -r if r < 0 else r  # abs(-0.0) stays -0.0 in SQLite


def fn_coalesce(*args: Value) -> Value:
    """coalesce(X, Y, ...): the first non-NULL argument."""
    for a in args:
        if a is not None:
            return a
    return None


def fn_ifnull(a: Value, b: Value) -> Value:
    """ifnull(X, Y): X unless it is NULL."""
    return b if a is None else a


def fn_nullif(a: Value, b: Value) -> Value:
    """nullif(X, Y): NULL when X equals Y (by SQLite's comparison), else X."""
    if a is not None and b is not None and compare(a, b) == 0:
        return None
    return a


def fn_length(v: Value) -> int | None:
    """length(X): characters of text (up to a NUL, as SQLite), bytes of a blob,
    characters of a number's text."""
    t = type(v)
    if t is str:
        nul = v.find("\x00")  # type: ignore[union-attr]
        return len(v) if nul < 0 else nul  # type: ignore[arg-type]
    if t is bytes:
        return len(v)  # type: ignore[arg-type]
    if v is None:
        return None
    return len(to_text(v))  # type: ignore[arg-type]


_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_UPPER: Final = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def fn_lower(v: Value) -> str | None:
    """lower(X): folds ASCII letters only (SQLite without ICU)."""
    return None if v is None else to_text(v).translate(_ASCII_LOWER)  # type: ignore[union-attr]


def fn_upper(v: Value) -> str | None:
    """upper(X): folds ASCII letters only."""
    return None if v is None else to_text(v).translate(_ASCII_UPPER)  # type: ignore[union-attr]


_SQLITE_MAX_LENGTH: Final = 1_000_000_000


def fn_substr(v: Value, start: Value, length: Value = ...) -> str | bytes | None:  # type: ignore[assignment]
    """substr(X, Y[, Z]): 1-based; Y <= 0 and negative Z follow SQLite's rules.

    Y and Z read as C ints (SQLite's ``sqlite3_value_int``), blobs slice bytes,
    anything else slices the characters of its text.
    """
    if v is None or start is None or length is None or v == b"":
        return None  # SQLite reads an empty blob as a NULL pointer here
    seq: str | bytes = v if type(v) is bytes else to_text(v)  # type: ignore[assignment]
    p1 = to_int32(start)
    if length is ...:
        p2, negative = _SQLITE_MAX_LENGTH, False
    else:
        p2 = to_int32(length)
        negative = p2 < 0
        if negative:
            p2 = -p2
    if p1 < 0:
        p1 += len(seq)
        if p1 < 0:
            p2 = max(p2 + p1, 0)
            p1 = 0
    elif p1 > 0:
        p1 -= 1
    elif p2 > 0:
        p2 -= 1
    if negative:
        p1 -= p2
        if p1 < 0:
            p2 += p1
            p1 = 0
    return seq[p1:p1 + p2]


def _trimmer(strip: Callable[[str, str], str]) -> Callable[..., str | None]:
    def trim(v: Value, chars: Value = " ") -> str | None:
        if v is None or chars is None:
            return None
        return strip(to_text(v), to_text(chars))  # type: ignore[arg-type]
    trim.__doc__ = f"{strip.__name__}(X[, Y]): remove any characters of Y (default space)."
    return trim


fn_trim = _trimmer(str.strip)
fn_ltrim = _trimmer(str.lstrip)
fn_rtrim = _trimmer(str.rstrip)

def fn_round(v: Value, digits: Value = 0) -> float | None:
    """round(X[, Y]): a real, rounded half away from zero to Y (0..30) decimals."""
    if v is None or digits is None:
        return None
    n = to_int32(digits)
    n = 30 if n > 30 else (0 if n < 0 else n)
    r = to_real(v)
    if r < -4503599627370496.0 or r > 4503599627370496.0:
        return r  # no fractional part left to round
    if n == 0:
        return float(int(r + (-0.5 if r < 0 else 0.5)))
    return round_digits(r, n)


def fn_min(*args: Value) -> Value:
    """min(X, Y, ...): the smallest argument in SQLite's order; NULL if any is NULL.

    Among equal arguments the last wins (min(1, 1.0) is 1.0), as in SQLite.
    """
    best = args[0]
    if best is None:
        return None
    for a in args[1:]:
        if a is None:
            return None
        if compare(best, a) >= 0:
            best = a
    return best


def fn_max(*args: Value) -> Value:
    """max(X, Y, ...): the largest argument; NULL if any is NULL; ties keep the first."""
    best = args[0]
    if best is None:
        return None
    for a in args[1:]:
        if a is None:
            return None
        if compare(best, a) < 0:
            best = a
    return best


_TYPEOF: Final[dict[type, str]] = {
    type(None): "null", bool: "integer", int: "integer", float: "real", str: "text", bytes: "blob",
}


def fn_typeof(v: Value) -> str:
    """typeof(X): 'null', 'integer', 'real', 'text' or 'blob'."""
    return _TYPEOF[type(v)]


def fn_instr(haystack: Value, needle: Value) -> int | None:
    """instr(X, Y): 1-based position of Y in X, 0 if absent; bytes when both are blobs."""
    if haystack is None or needle is None:
        return None
    if type(haystack) is bytes and type(needle) is bytes:
        return haystack.find(needle) + 1  # type: ignore[union-attr]
    return to_text(haystack).find(to_text(needle)) + 1  # type: ignore[union-attr, arg-type]


def fn_replace(v: Value, old: Value, new: Value) -> Value:
    """replace(X, Y, Z): every Y in X replaced by Z; an empty Y returns X unchanged
    (even a number; a blob comes back as text)."""
    if v is None or old is None:
        return None
    y = to_text(old)
    if not y:  # X itself, though a blob has been read as text by then (SQLite quirk)
        return to_text(v) if type(v) is bytes else v
    if new is None:
        return None
    return to_text(v).replace(y, to_text(new))  # type: ignore[union-attr, arg-type]


def fn_hex(v: Value) -> str:
    """hex(X): upper-case hex of X's bytes (text as UTF-8); '' for NULL."""
    if v is None:
        return ""
    return to_blob(v).hex().upper()  # type: ignore[union-attr]


def fn_like(pattern: Value, value: Value, escape: Value = ...) -> int | None:  # type: ignore[assignment]
    """like(Y, X[, Z]): the function form of ``X LIKE Y [ESCAPE Z]`` (note the order)."""
    if escape is ...:
        return like(value, pattern)
    return like_escape(value, pattern, escape)


ScalarEntry = tuple[Callable[..., Value], int, int | None]

SCALAR_FUNCTIONS: Final[dict[str, ScalarEntry]] = {
    "abs": (fn_abs, 1, 1),
    "coalesce": (fn_coalesce, 2, None),
    "ifnull": (fn_ifnull, 2, 2),
    "nullif": (fn_nullif, 2, 2),
    "length": (fn_length, 1, 1),
    "lower": (fn_lower, 1, 1),
    "upper": (fn_upper, 1, 1),
    "substr": (fn_substr, 2, 3),
    "substring": (fn_substr, 2, 3),
    "trim": (fn_trim, 1, 2),
    "ltrim": (fn_ltrim, 1, 2),
    "rtrim": (fn_rtrim, 1, 2),
    "round": (fn_round, 1, 2),
    "min": (fn_min, 2, None),
    "max": (fn_max, 2, None),
    "typeof": (fn_typeof, 1, 1),
    "instr": (fn_instr, 2, 2),
    "replace": (fn_replace, 3, 3),
    "hex": (fn_hex, 1, 1),
    "like": (fn_like, 2, 3),
}
"""name -> (function, min_args, max_args or None for any number). ``min``/``max``
with one argument are the aggregates."""


# Aggregates -------------------------------------------------------------------------
class Count:
    """count(X): the number of non-NULL values."""

    __slots__ = ("n",)
    min_args, max_args = 1, 1

    def __init__(self) -> None:
        self.n = 0

    def step(self, value: Value) -> None:
        if value is not None:
            self.n += 1

    def step_many(self, values: list) -> None:
        self.n += len(values) - values.count(None)

    def final(self) -> int:
        return self.n


class CountStar:
    """count(*) (and count()): the number of rows."""

    __slots__ = ("n",)
    min_args, max_args = 0, 0

    def __init__(self) -> None:
        self.n = 0

    def step(self) -> None:
        self.n += 1

    def add_rows(self, n: int) -> None:
        """``n`` rows at once (a whole group)."""
        self.n += n

    def final(self) -> int:
        return self.n


_EXACT_DOUBLE = 2 ** 53       # every integer of smaller magnitude is exactly a double


class Sum:
    """sum(X): an integer while every value is one, else a real; NULL with no values.

    Integer overflow is an error ("integer overflow") unless a real came first,
    exactly as SQLite 3.40 tracks it; reals accumulate in plain double order.
    """

    __slots__ = ("isum", "rsum", "count", "approx", "overflow")
    min_args, max_args = 1, 1

    def __init__(self) -> None:
        self.isum, self.rsum, self.count = 0, 0.0, 0
        self.approx = self.overflow = False

    def step(self, value: Value) -> None:
        t = type(value)
        if t is str:
            value = apply_numeric_affinity(value)  # '5' sums as 5, '5x' as 5.0
            t = type(value)
        elif value is None:
            return
        self.count += 1
        if t is int or t is bool:
            i = int(value)  # type: ignore[arg-type]
            self.rsum += float(i)
            if not (self.approx or self.overflow):
                s = self.isum + i
                if INT8_MIN <= s <= INT8_MAX:
                    self.isum = s
                else:
                    self.approx = self.overflow = True
        else:
            self.rsum += to_real(value)
            self.approx = True

    def step_many(self, values: list) -> None:
        """The same as ``step`` on each value, in C where the values are all numbers: the
        real sum adds them in order (``reduce``, not ``sum``, which compensates on 3.12+),
        and the integer sum checks every prefix up to the first real for overflow."""
        present = values if None not in values else [v for v in values if v is not None]
        if not present:
            return
        kinds = set(map(type, present))
        if len(kinds) == 1 and int in kinds:
            self._step_ints(present)
            return
        if not kinds <= {int, float}:
            for v in present:
                self.step(v)
            return
        first_real = next(i for i, v in enumerate(present) if type(v) is float) if float in kinds \
            else len(present)
        ints = present[:first_real]
        if ints and not (self.approx or self.overflow):
            prefix = list(accumulate(ints, initial=self.isum))
            if min(prefix) < INT8_MIN or max(prefix) > INT8_MAX:
                self.approx = self.overflow = True
            else:
                self.isum = prefix[-1]
        self.count += len(present)
        self.rsum = reduce(_plus, map(float, present), self.rsum)
        if first_real < len(present):
            self.approx = True

    def _step_ints(self, ints: list) -> None:
        """``step_many`` of integers only. No prefix sum strays further from the running
        sum than ``len * max |value|``: within int8 no prefix can overflow, and within
        2**53 every prefix is an exact double, so adding them one by one as reals gives
        exactly their exact total (as a real). Otherwise prefix by prefix."""
        reach = len(ints) * max(max(ints), -min(ints))
        total = sum(ints)
        self.count += len(ints)
        if not (self.approx or self.overflow):
            if abs(self.isum) + reach <= INT8_MAX:
                self.isum += total
            else:
                prefix = list(accumulate(ints, initial=self.isum))
                if min(prefix) < INT8_MIN or max(prefix) > INT8_MAX:
                    self.approx = self.overflow = True
                else:
                    self.isum = prefix[-1]
        if self.rsum.is_integer() and abs(self.rsum) + reach < _EXACT_DOUBLE:
            self.rsum += float(total)
        else:
            self.rsum = reduce(_plus, map(float, ints), self.rsum)

    def final(self) -> int | float | None:
        if self.count == 0:
            return None
        if self.overflow:
            raise UnprocessableEntity("integer overflow")
        return self.rsum if self.approx else self.isum


class Total(Sum):
    """total(X): the sum as a real, 0.0 with no values; never overflows."""

    __slots__ = ()

    def final(self) -> float:
        return self.rsum


class Avg(Sum):
    """avg(X): the mean as a real; NULL with no values."""

    __slots__ = ()

    def final(self) -> float | None:
        return self.rsum / self.count if self.count else None


class _Extreme:
    """min(X) / max(X): the extreme non-NULL value in SQLite's order (ties keep the first)."""

    __slots__ = ("best",)
    min_args, max_args = 1, 1
    _sign = 1                       # compare(best, value) * _sign > 0 means value is better
    _pick: Callable[..., Any] = min

    def __init__(self) -> None:
        self.best: Value = None

    def step(self, value: Value) -> None:
        if value is not None and (self.best is None or compare(self.best, value) * self._sign > 0):
            self.best = value

    def step_many(self, values: list) -> None:
        present = [v for v in values if v is not None]
        if present and all(type(v) is int or type(v) is float for v in present):
            self.step(type(self)._pick(present))        # builtins keep the first of equal extremes
        else:
            for v in present:
                self.step(v)

    def final(self) -> Value:
        return self.best


class Min(_Extreme):
    """min(X): the smallest non-NULL value (ties keep the first)."""

    __slots__ = ()
    _sign = 1
    _pick = min


class Max(_Extreme):
    """max(X): the largest non-NULL value (ties keep the first)."""

    __slots__ = ()
    _sign = -1
    _pick = max


class GroupConcat:
    """group_concat(X[, SEP]): non-NULL values as text joined by SEP (default ',').

    Each row's own SEP goes before its value; a NULL SEP adds nothing. NULL when
    there were no values.
    """

    __slots__ = ("parts",)
    min_args, max_args = 1, 2

    def __init__(self) -> None:
        self.parts: list[str] = []

    def step(self, value: Value, separator: Value = ",") -> None:
        if value is None:
            return
        if self.parts and separator is not None:
            self.parts.append(to_text(separator))  # type: ignore[arg-type]
        self.parts.append(to_text(value))  # type: ignore[arg-type]

    def final(self) -> str | None:
        return "".join(self.parts) if self.parts else None


class Distinct:
    """``agg(DISTINCT x)``: passes each distinct non-NULL value to ``inner`` once.

    Values are equal as SQL compares them (1 and 1.0 are one value, '1' another).
    """

    __slots__ = ("inner", "seen")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seen: set[Value] = set()

    def step(self, value: Value, *rest: Value) -> None:
        if value is None or value in self.seen:
            return
        self.seen.add(value)
        self.inner.step(value, *rest)

    def final(self) -> Value:
        return self.inner.final()


AGGREGATE_FUNCTIONS: Final[dict[str, type]] = {
    "count": Count,
    "sum": Sum,
    "total": Total,
    "avg": Avg,
    "min": Min,
    "max": Max,
    "group_concat": GroupConcat,
}
"""name -> factory (the class); each class carries ``min_args``/``max_args``.
``count`` with no argument (``count(*)``) is ``CountStar``."""


def _arity_error(name: str) -> SemanticError:
    return SemanticError(f"wrong number of arguments to function {name}()",
                         {"function": name})


def is_aggregate(name: str, nargs: int) -> bool:
    """Is ``name(nargs args)`` an aggregate? ``SemanticError`` if no such function
    takes that many arguments (min/max with one argument are aggregates)."""
    key = name.lower()
    agg = AGGREGATE_FUNCTIONS.get(key)
    scalar = SCALAR_FUNCTIONS.get(key)
    if agg is None and scalar is None:
        raise SemanticError(f"no such function: {name}", {"function": name})
    if agg is not None and (agg.min_args <= nargs <= agg.max_args or (key == "count" and nargs == 0)):
        return True
    if scalar is not None:
        _, lo, hi = scalar
        if lo <= nargs and (hi is None or nargs <= hi):
            return False
    raise _arity_error(name)


def lookup_scalar(name: str, nargs: int) -> Callable[..., Value]:
    """The scalar function ``name`` for ``nargs`` arguments, or ``SemanticError``."""
    key = name.lower()
    entry = SCALAR_FUNCTIONS.get(key)
    if entry is None:
        if key in AGGREGATE_FUNCTIONS:
            raise _arity_error(name)
        raise SemanticError(f"no such function: {name}", {"function": name})
    fn, lo, hi = entry
    if nargs < lo or (hi is not None and nargs > hi):
        raise _arity_error(name)
    return fn


def make_aggregate(name: str, nargs: int, *, distinct: bool = False) -> Any:
    """A fresh aggregate for ``name(nargs args)``, wrapped for DISTINCT if asked.

    ``count`` with no argument is ``count(*)``. Unknown names, wrong arity and
    DISTINCT with other than one argument are ``SemanticError``.
    """
    return aggregate_factory(name, nargs, distinct=distinct)()


def aggregate_factory(name: str, nargs: int, *, distinct: bool = False) -> Callable[[], Any]:
    """What ``make_aggregate`` checks, checked once: -> a function making fresh ones
    (a query makes one per group)."""
    key = name.lower()
    factory = AGGREGATE_FUNCTIONS.get(key)
    if factory is None:
        if key in SCALAR_FUNCTIONS:
            raise SemanticError(f"{name}() is not an aggregate function", {"function": name})
        raise SemanticError(f"no such function: {name}", {"function": name})
    if key == "count" and nargs == 0:
        if distinct:
            raise SemanticError("DISTINCT aggregates must have exactly one argument",
                                {"function": name})
        return CountStar
    if not factory.min_args <= nargs <= factory.max_args:
        raise _arity_error(name)
    if distinct:
        if nargs != 1:
            raise SemanticError("DISTINCT aggregates must have exactly one argument",
                                {"function": name})
        return lambda: Distinct(factory())
    return factory
