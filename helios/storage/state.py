"""Database states (immutable roots) and the read API over one.

A ``DbState`` maps table names to ``Table`` objects plus a small map of opaque
catalogue objects (the SQL layer keeps views there). A new state shares every
untouched table with the old one; ``immutables.Map`` makes that fork O(1).
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import immutables

from ..errors import UnknownTable
from .schema import TableSchema
from .table import Row, Table


class DbState:
    __slots__ = ("tables", "objects", "pid")

    def __init__(self, tables: immutables.Map | None = None, objects: immutables.Map | None = None) -> None:
        self.tables: immutables.Map = tables if tables is not None else immutables.Map()
        self.objects: immutables.Map = objects if objects is not None else immutables.Map()
        self.pid: int | None = None

    def with_table(self, name: str, table: Table | None) -> "DbState":
        tables = self.tables.delete(name) if table is None else self.tables.set(name, table)
        return DbState(tables, self.objects)

    def with_object(self, name: str, value: Any) -> "DbState":
        objects = self.objects.delete(name) if value is None else self.objects.set(name, value)
        return DbState(self.tables, objects)

    def total_rows(self) -> int:
        return sum(len(t) for t in self.tables.values())


EMPTY_STATE = DbState()


class StateView:
    """Read-only access to one state: what the SQL layer's catalog and scans use."""

    __slots__ = ("state",)

    def __init__(self, state: DbState) -> None:
        self.state = state

    def table_names(self) -> list[str]:
        return sorted(self.state.tables.keys())

    def has_table(self, name: str) -> bool:
        return name in self.state.tables

    def table(self, name: str) -> Table:
        try:
            return self.state.tables[name]
        except KeyError:
            raise UnknownTable(f"no such table: {name}") from None

    def schema(self, name: str) -> TableSchema:
        return self.table(name).schema

    def row_count(self, name: str) -> int:
        return len(self.table(name))

    def get(self, table: str, key: Any) -> Row | None:
        return self.table(table).rows.get(key)

    def scan(self, table: str, lo: Any = None, hi: Any = None, *, lo_inclusive: bool = True,
             hi_inclusive: bool = True, reverse: bool = False) -> Iterator[tuple[Sequence, Sequence]]:
        """Batches of (keys, rows) in key order: one batch per B+tree leaf."""
        return self.table(table).rows.batches(lo, hi, lo_inclusive=lo_inclusive,
                                              hi_inclusive=hi_inclusive, reverse=reverse)

    def index_scan(self, table: str, index: str, lo: Sequence[Any] | None = None,
                   hi: Sequence[Any] | None = None, *, lo_inclusive: bool = True,
                   hi_inclusive: bool = True, reverse: bool = False) -> Iterator[tuple[list, list]]:
        return self.table(table).index_scan(index, lo, hi, lo_inclusive=lo_inclusive,
                                            hi_inclusive=hi_inclusive, reverse=reverse)

    def get_object(self, name: str) -> Any:
        return self.state.objects.get(name)

    def object_names(self) -> list[str]:
        return sorted(self.state.objects.keys())
