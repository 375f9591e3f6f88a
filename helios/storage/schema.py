"""Table schemas as storage sees them: names, positions and keys, nothing of SQL.

Column types are opaque strings owned by the SQL layer; storage only needs the
column names (to adapt rows across schema versions in a merge and to report
conflicts), the primary-key positions (to derive a row's key) and the index
definitions (to maintain secondary indexes on every write).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str = ""
    nullable: bool = True
    default: Any = None          # constant used when a row gains this column
    extra: tuple = ()            # opaque to storage (e.g. the SQL text of a DEFAULT)


@dataclass(frozen=True, slots=True)
class IndexDef:
    name: str
    columns: tuple[int, ...]     # positions in the row
    unique: bool = False


@dataclass(frozen=True, slots=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[int, ...] = ()      # () -> a hidden integer row id is the key
    indexes: tuple[IndexDef, ...] = field(default=())
    created_at: float = 0.0                # Unix seconds; informational (table listings)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def has_rowid(self) -> bool:
        return not self.primary_key

    def index(self, name: str) -> IndexDef | None:
        for ix in self.indexes:
            if ix.name == name:
                return ix
        return None

    def with_index(self, ix: IndexDef) -> "TableSchema":
        return replace(self, indexes=self.indexes + (ix,))

    def without_index(self, name: str) -> "TableSchema":
        return replace(self, indexes=tuple(i for i in self.indexes if i.name != name))

    # -- plain form for the log and checkpoints ------------------------------
    def to_plain(self) -> tuple:
        return (self.name,
                tuple((c.name, c.type, c.nullable, c.default, c.extra) for c in self.columns),
                self.primary_key,
                tuple((i.name, i.columns, i.unique) for i in self.indexes), self.created_at)

    @classmethod
    def from_plain(cls, p: tuple) -> "TableSchema":
        name, cols, pk, idx, created_at = p
        return cls(name, tuple(Column(n, t, nl, d, tuple(x)) for n, t, nl, d, x in cols), tuple(pk),
                   tuple(IndexDef(n, tuple(c), u) for n, c, u in idx), created_at)


def column_sources(old: TableSchema, new: TableSchema) -> tuple[int, ...]:
    """For each column of ``new``, its position in ``old`` (-1: a new column, filled with its
    default). Columns match by name; a column whose name ``old`` lacks but which is, name
    aside, the ``old`` column at its own position, whose name ``new`` lacks, is that column
    renamed: its values carry over rather than turn into defaults."""
    pos = {c.name: i for i, c in enumerate(old.columns)}
    new_names = set(new.column_names)

    def source(i: int, c: Column) -> int:
        if c.name in pos:
            return pos[c.name]
        if i < len(old.columns) and old.columns[i].name not in new_names and \
                replace(old.columns[i], name=c.name) == c:
            return i
        return -1
    return tuple(source(i, c) for i, c in enumerate(new.columns))


def adapt_row(row: tuple, old: TableSchema, new: TableSchema) -> tuple:
    """Map a row written under ``old`` onto ``new`` (see ``column_sources``), filling defaults."""
    if old.columns == new.columns:
        return row
    return tuple(row[s] if s >= 0 else c.default for s, c in zip(column_sources(old, new), new.columns))
