"""The SQL layer's view of a storage snapshot: tables and views by SQL name.

SQL names are case-insensitive; storage keeps the spelling a table was created
with. Views live in the snapshot's catalogue objects as their canonical SQL
text (so they branch, merge and time-travel like tables) and are parsed once
per text. Every lookup is recorded in ``deps`` so a cached plan can tell
whether the schemas it was planned against are still the ones in force.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

from ..errors import UnknownTable
from ..storage.schema import TableSchema
from . import ast
from .parser import parse_one

VIEW_PREFIX = "view:"
_NUMERIC = frozenset({"int4", "int8", "float4", "float8", "bool", "timestamp"})


def family(type_name: str | None) -> str | None:
    """'num' or 'text' for typed columns (what key lookups normalise to), else None."""
    if type_name in _NUMERIC:
        return "num"
    if type_name == "text":
        return "text"
    return None


@lru_cache(maxsize=256)
def _parse_view(sql: str) -> ast.Query:
    q = parse_one(sql)
    assert isinstance(q, ast.Query)
    return q


class Catalog:
    def __init__(self, view: Any) -> None:
        self._view = view                    # a storage StateView
        self.deps: dict[tuple[str, str], Any] = {}
        self._names: dict[str, str] | None = None

    def _table_name(self, name: str) -> str | None:
        if self._names is None:
            self._names = {n.lower(): n for n in self._view.table_names()}
        return self._names.get(name.lower())

    def has_table(self, name: str) -> bool:
        real = self._table_name(name)
        self.deps[("table", name.lower())] = (real, None if real is None else self._view.schema(real))
        return real is not None

    def schema(self, name: str) -> TableSchema:
        real = self._table_name(name)
        if real is None:
            self.deps[("table", name.lower())] = (None, None)
            raise UnknownTable(f"no such table: {name}")
        schema = self._view.schema(real)
        self.deps[("table", name.lower())] = (real, schema)
        return schema

    def table_name(self, name: str) -> str:
        return self.schema(name).name

    def view(self, name: str) -> tuple[ast.Query, tuple[str, ...]] | None:
        obj = self._view.get_object(VIEW_PREFIX + name.lower())
        self.deps[("view", name.lower())] = obj
        if obj is None:
            return None
        sql, columns = obj
        return _parse_view(sql), tuple(columns)

    def index_owner(self, index: str) -> str | None:
        """The table holding index ``index`` (index names are database-wide, as in SQLite)."""
        for t in self._view.table_names():
            if self._view.schema(t).index(index) is not None:
                return t
        return None


def deps_valid(deps: dict[tuple[str, str], Any], view: Any) -> bool:
    """Are the schemas and views a plan was made against still those of ``view``?

    Runs before every cached execution, so the common case (the table exists under
    the same spelling with the same schema object) is one dict lookup."""
    tables = view.state.tables
    for (kind, name), token in deps.items():
        if kind == "table":
            real, schema = token
            if real is not None:
                t = tables.get(real)
                if t is None or t.schema is not schema:
                    return False
            elif any(n.lower() == name for n in tables.keys()):
                return False                       # a table that was missing exists now
        elif view.get_object(VIEW_PREFIX + name) != token:
            return False
    return True


def deps_check(deps: dict[tuple[str, str], Any]) -> Callable[[Any], bool]:
    """``deps_valid`` for one set of deps, specialised once when a plan is cached.

    The common case (every table the plan names exists; views looked up, usually to
    find none) becomes one identity test per table and one lookup per view name, with
    no loop over kinds. A table looked up in vain needs the general check."""
    if any(kind == "table" and token[0] is None for (kind, _), token in deps.items()):
        return lambda view: deps_valid(deps, view)
    tables = tuple(token for (kind, _), token in deps.items() if kind == "table")
    views = tuple((VIEW_PREFIX + name, token) for (kind, name), token in deps.items() if kind == "view")
    if len(tables) == 1 and len(views) == 1:
        ((real, schema),), ((vkey, vtoken),) = tables, views

        def one(view: Any) -> bool:
            t = view.state.tables.get(real)
            return t is not None and t.schema is schema and view.get_object(vkey) == vtoken
        return one

    def every(view: Any) -> bool:
        get = view.state.tables.get
        for real, schema in tables:
            t = get(real)
            if t is None or t.schema is not schema:
                return False
        return all(view.get_object(k) == token for k, token in views)
    return every
