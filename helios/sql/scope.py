"""Name resolution: which position of the current row a column reference reads.

A ``Scope`` lists the columns of the rows an operator sees (the concatenation
of the joined sources, in join order). Scopes nest for subqueries: a name not
found locally is looked up in the enclosing scope, and the reference then reads
that scope's *current row* from its ``cell``, which the enclosing expression
fills just before it runs the subquery. Resolving through a parent marks every
scope on the way as correlated, so uncorrelated subqueries can be run once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SemanticError, UnknownColumn


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    table: str | None          # the alias (or table name) that qualifies it
    type: str | None = None    # client type name (int4, text, ...) when known statically
    hidden: bool = False       # not part of SELECT * (e.g. the right side of USING)


def derived_column_names(names: list[str]) -> list[str]:
    """The column names of a derived table (a subquery in FROM, or a view), made distinct
    as SQLite makes them: a repeated name gets ``:1``, ``:2``... (``a, a`` -> ``a, a:1``).

    A query may repeat a result name (``SELECT a, a``); a table built from it may not,
    or ``SELECT *`` over it could not tell its columns apart.
    """
    taken: set[str] = set()
    out: list[str] = []
    for name in names:
        unique, n = name, 0
        base = re.sub(r"(?<=.):[0-9]+$", "", name)      # a clash replaces an old ":N" suffix
        while unique.lower() in taken:
            n += 1
            unique = f"{base}:{n}"
        taken.add(unique.lower())
        out.append(unique)
    return out


class Scope:
    __slots__ = ("columns", "parent", "cell", "correlated", "_by_name")

    def __init__(self, columns: list[ColumnInfo], parent: "Scope | None" = None) -> None:
        self.columns = columns
        self.parent = parent
        self.cell: list = [None]        # the current row, for correlated subqueries below
        self.correlated = False          # something below read an enclosing scope
        self._by_name: dict[str, list[int]] = {}
        for i, c in enumerate(columns):
            self._by_name.setdefault(c.name.lower(), []).append(i)

    def find(self, name: str, table: str | None) -> int | None:
        """Position of ``table.name`` here, None if absent; SemanticError if ambiguous."""
        hits = self._by_name.get(name.lower(), [])
        if table is not None:
            t = table.lower()
            hits = [i for i in hits if (self.columns[i].table or "").lower() == t]
        elif len(hits) > 1:
            visible = [i for i in hits if not self.columns[i].hidden]
            hits = visible or hits[:1]
        if len(hits) > 1:
            raise SemanticError(f"ambiguous column name: {name}")
        return hits[0] if hits else None

    def resolve(self, name: str, table: str | None) -> tuple[int, int]:
        """(depth, position): depth 0 is this scope, 1 its parent, and so on."""
        scope: Scope | None = self
        depth = 0
        while scope is not None:
            pos = scope.find(name, table)
            if pos is not None:
                s = self
                for _ in range(depth):          # everything between reads from outside
                    s.correlated = True
                    s = s.parent  # type: ignore[assignment]
                return depth, pos
            scope = scope.parent
            depth += 1
        qualified = f"{table}.{name}" if table else name
        raise UnknownColumn(f"no such column: {qualified}")

    def ancestor(self, depth: int) -> "Scope":
        s = self
        for _ in range(depth):
            s = s.parent  # type: ignore[assignment]
        return s

    def has_table(self, table: str) -> bool:
        t = table.lower()
        return any((c.table or "").lower() == t for c in self.columns)
