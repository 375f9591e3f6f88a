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


def adapt_row(row: tuple, old: TableSchema, new: TableSchema) -> tuple:
    """Map a row written under ``old`` onto ``new`` by column name, filling defaults."""
    if old.columns == new.columns:
        return row
    pos = {c.name: i for i, c in enumerate(old.columns)}
    return tuple(row[pos[c.name]] if c.name in pos else c.default for c in new.columns)
