"""SQLite's comparison affinity between two columns.

A column compared with a literal is handled as the compiler plans (the literal
is converted once). Two *columns* of different affinities need it per row: when
a column of numeric affinity (INTEGER, REAL, ...) meets a TEXT column, SQLite
applies NUMERIC affinity to the text value first, so ``'1' = 1`` holds between
such columns (but not between two literals, which have no affinity). This module
says which side converts and wraps that side's compiled accessor; comparisons,
hash-join keys and ``IN (subquery)`` share it so they agree with each other.
"""
from __future__ import annotations

from typing import Any, Callable

from .values import apply_numeric_affinity

Compiled = Callable[[Any], Any]

NUMERIC_TYPES = frozenset({"int4", "int8", "float4", "float8", "bool", "timestamp"})


def text_meets_numeric(text_type: str | None, other_type: str | None) -> bool:
    """Does a TEXT column meet a numeric one (so the text side reads as a number)?"""
    return text_type == "text" and other_type in NUMERIC_TYPES


def numeric_affinity(f: Compiled) -> Compiled:
    """``f`` with NUMERIC affinity applied to what it returns (text that is a number)."""
    return lambda row: apply_numeric_affinity(f(row))


def column_operands(left_type: str | None, right_type: str | None,
                    a: Compiled, b: Compiled) -> tuple[Compiled, Compiled]:
    """The two compiled columns of a comparison, the text one converted if it meets a
    numeric one; unchanged otherwise (same family, or a type not known statically)."""
    if text_meets_numeric(left_type, right_type):
        return numeric_affinity(a), b
    if text_meets_numeric(right_type, left_type):
        return a, numeric_affinity(b)
    return a, b
