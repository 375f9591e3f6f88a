"""Ordering of secondary-index keys.

An index key is ``(norm(v1), ..., norm(vn), primary_key)``: the primary key makes
every entry unique, and ``norm`` puts NULLs first without ever comparing None
with a value. Prefix ranges use ``TOP``, a sentinel above everything, so that
"every key starting with P" is the half-open range ``[P, P + (TOP,))``.
"""
from __future__ import annotations

from functools import total_ordering
from typing import Any, Sequence


@total_ordering
class _Top:
    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return other is self

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return other is not self

    def __hash__(self) -> int:
        return 0x70F

    def __repr__(self) -> str:
        return "TOP"


TOP = _Top()
_NULL = (False, None)


def norm(v: Any) -> tuple:
    return _NULL if v is None else (True, v)


def index_key(row: Sequence[Any], columns: tuple[int, ...], pk: Any) -> tuple:
    return tuple([norm(row[c]) for c in columns] + [pk])


def index_prefix(values: Sequence[Any]) -> tuple:
    return tuple(norm(v) for v in values)


def prefix_bounds(lo: Sequence[Any] | None, hi: Sequence[Any] | None, lo_inclusive: bool,
                  hi_inclusive: bool) -> tuple[tuple | None, tuple | None]:
    """Tree bounds (lo inclusive, hi exclusive) for index-value prefixes."""
    start = end = None
    if lo is not None:
        p = index_prefix(lo)
        start = p if lo_inclusive else p + (TOP,)
    if hi is not None:
        p = index_prefix(hi)
        end = p + (TOP,) if hi_inclusive else p
    return start, end
