"""INSERT / UPDATE / DELETE against a storage transaction.

Every value stored goes through ``coerce_for_column`` (lossless conversions
only, else TypeMismatch) and the NOT NULL check; the storage layer enforces
keys and unique indexes. A statement is all or nothing: the engine runs it in
a transaction that is discarded on any error. UPDATE and DELETE first collect
the rows to change and then change them, so a row is never visited twice.
"""
from __future__ import annotations

from operator import itemgetter
from typing import Any, Callable

from ..errors import ConstraintViolation, NotNullViolation, SemanticError
from ..storage.schema import TableSchema
from . import ast
from .catalog import Catalog, family
from .compile import Compiler
from .ddl import EXPRESSION_DEFAULT
from .parser import parse_expression
from .planner import Planner, key_values, split_and
from .scope import ColumnInfo, Scope
from .values import column_coercer, column_unchanged


def _defaults(schema: TableSchema, compiler: Compiler) -> list[Callable[[], Any]]:
    out = []
    for c in schema.columns:
        if len(c.extra) >= 3 and c.extra[1] == EXPRESSION_DEFAULT:
            f = compiler.compile(parse_expression(c.extra[2]), Scope([]))
            out.append(lambda f=f: f(()))
        else:
            out.append(lambda v=c.default: v)
    return out


def coercers(schema: TableSchema) -> list[Callable[[Any], Any]]:
    return [column_coercer(c.type or "any", column=c.name) for c in schema.columns]


def _finish_rows(tx: Any, schema: TableSchema, prepared: list[list],
                 coerce: list[Callable[[Any], Any]], *, number_keys: bool = True) -> list[tuple]:
    """Coerce every value to its column's type, number NULL INTEGER PRIMARY KEYs and
    check NOT NULL. Numbering follows SQLite's rowid alias: one more than the largest
    key so far, counting the rows of this same statement inserted before it."""
    rows = [[f(v) for f, v in zip(coerce, row)] for row in prepared]
    pk = schema.primary_key
    if number_keys and len(pk) == 1 and schema.columns[pk[0]].type in ("int4", "int8"):
        p = pk[0]
        if any(r[p] is None for r in rows):
            last = tx.table(schema.name).rows.last()
            top = last[0] if last is not None and isinstance(last[0], int) else 0
            for r in rows:
                k = r[p]
                if k is None:
                    top += 1
                    r[p] = top
                elif isinstance(k, int) and k > top:
                    top = k
    for r in rows:
        if None in r:
            for c, v in zip(schema.columns, r):
                if v is None and not c.nullable:
                    raise NotNullViolation(f"NOT NULL constraint failed: {schema.name}.{c.name}")
    return [tuple(r) for r in rows]


class InsertPlan:
    """An INSERT bound to its table once: run it again with new parameters (executemany)."""

    def __init__(self, tx: Any, stmt: ast.Insert, planner: Planner) -> None:
        catalog = planner.catalog          # the plan cache checks the deps it records
        self.schema = schema = catalog.schema(stmt.table)
        self.deps = catalog.deps
        self.stmt, self.planner = stmt, planner
        names = [c.name.lower() for c in schema.columns]
        if stmt.columns:
            targets = []
            for c in stmt.columns:
                if c.lower() not in names:
                    raise SemanticError(f"table {schema.name} has no column named {c}")
                targets.append(names.index(c.lower()))
            if len(set(targets)) != len(targets):
                raise SemanticError("a column is named more than once in the INSERT column list")
        else:
            targets = list(range(len(names)))
        self.defaults = _defaults(schema, planner.compiler)
        self.coerce = coercers(schema)
        self.values: list[list] | None = None
        self.query = None
        if stmt.source is None:
            targets = []
            self.values = [[]]
        elif isinstance(stmt.source, ast.Values):
            scope = Scope([])
            self.values = [[planner.compiler.compile(e, scope) for e in row] for row in stmt.source.rows]
        else:
            self.query = planner.plan_query(stmt.source)
        self.targets = targets
        self.full = len(targets) == len(names)
        # VALUES ($1, $2, ...) naming every column in order: a parameter set *is* the row.
        src = stmt.source
        self.params_are_rows = (isinstance(src, ast.Values) and len(src.rows) == 1 and self.full
                                and targets == list(range(len(names)))
                                and [getattr(e, "index", None) for e in src.rows[0]] == list(range(1, len(names) + 1))
                                and all(isinstance(e, ast.Parameter) for e in src.rows[0]))
        width = len(self.values[0]) if self.values else len(self.query.columns)
        if width != len(targets):
            raise SemanticError(
                f"table {schema.name} has {len(names)} columns but {width} values were supplied"
                if not stmt.columns else f"{width} values for {len(targets)} columns")

    def prepare(self) -> list[list]:
        """Rows for the current parameters (``planner.rt.params``), values in place,
        defaults filled, not yet coerced."""
        if self.values is not None:
            source = [tuple(f(()) for f in row) for row in self.values]
        else:
            source = self.query.run()
        out = []
        n = len(self.schema.columns)
        for src in source:
            row = [None] * n if self.full else [d() for d in self.defaults]
            for pos, v in zip(self.targets, src):
                row[pos] = v
            out.append(row)
        return out

    def finish(self, tx: Any, prepared: list[list]) -> list[tuple]:
        return _finish_rows(tx, self.schema, prepared, self.coerce)

    def rows(self, tx: Any) -> list[tuple]:
        return self.finish(tx, self.prepare())

    def rows_from_params(self, param_sets: list[tuple],
                         kinds: list[set[type]] | None = None) -> list[tuple] | None:
        """executemany's fast path (``params_are_rows``): coerce column by column and
        check NOT NULL once per column. None when a row needs more (a NULL key to number,
        a wrong row width): the caller then finishes rows one at a time.

        ``kinds`` (each column's set of Python types, when the caller knows them) lets
        a column whose values are already stored as they are skip the per-value coercer;
        when no column changes, the parameter tuples themselves are the rows."""
        if not self.params_are_rows or not param_sets:
            return None
        columns = self.schema.columns
        width = len(columns)
        if any(len(p) != width for p in param_sets):
            return None
        getters = [itemgetter(i) for i in range(width)]
        if kinds is None:
            kinds = [set(map(type, map(g, param_sets))) for g in getters]
        coerced: dict[int, list] = {}
        for i, (c, f, g) in enumerate(zip(columns, self.coerce, getters)):
            if not column_unchanged(c.type or "any", kinds[i], lambda g=g: map(g, param_sets)):
                coerced[i] = list(map(f, map(g, param_sets)))
        for i, c in enumerate(columns):
            if c.nullable or (None not in coerced[i] if i in coerced else type(None) not in kinds[i]):
                continue
            if i in self.schema.primary_key:
                return None                        # maybe an INTEGER PRIMARY KEY to number
            raise NotNullViolation(f"NOT NULL constraint failed: {self.schema.name}.{c.name}")
        if not coerced:
            return param_sets if set(map(type, param_sets)) == {tuple} else list(map(tuple, param_sets))
        return list(zip(*(coerced[i] if i in coerced else map(g, param_sets) for i, g in enumerate(getters))))

    def apply(self, tx: Any, rows: list[tuple]) -> int:
        table, mode = self.schema.name, self.stmt.on_conflict
        if mode is None:
            if len(rows) > 1:
                return tx.bulk_insert(table, rows)
            for r in rows:
                tx.insert(table, r)
            return len(rows)
        if mode == "REPLACE":
            for r in rows:
                tx.replace(table, r)
            return len(rows)
        count = 0                                   # OR IGNORE: skip rows that clash
        for r in rows:
            try:
                tx.insert(table, r)
                count += 1
            except ConstraintViolation:
                continue
        return count


def insert(tx: Any, stmt: ast.Insert, planner: Planner) -> int:
    plan = InsertPlan(tx, stmt, planner)
    return plan.apply(tx, plan.rows(tx))


def _matching(tx: Any, schema: TableSchema, where: ast.Expr | None, planner: Planner,
              scope: Scope) -> list[tuple[Any, tuple]]:
    """(key, row) of every row WHERE selects; a primary-key equality reads one row."""
    pred = planner.compiler.predicate(where, scope) if where is not None else None
    table = tx.table(schema.name)
    pk = schema.primary_key
    if where is not None and len(pk) == 1:
        for c in split_and(where):
            access = planner.match_access(c, scope)
            if access is not None and access[0] == pk[0] and access[1] in ("=", "IN"):
                keys = key_values(access[2], family(schema.columns[pk[0]].type))
                found = [(k, r) for k in sorted(set(keys)) if (r := table.rows.get(k)) is not None]
                return [(k, r) for k, r in found if pred(r)]
    out = []
    for keys, rows in table.rows.batches():
        planner.rt.check()
        if pred is None:
            out.extend(zip(keys, rows))
        else:
            out.extend((k, r) for k, r in zip(keys, rows) if pred(r))
    return out


def _table_scope(schema: TableSchema) -> Scope:
    return Scope([ColumnInfo(c.name, schema.name, c.type or None) for c in schema.columns])


def update(tx: Any, stmt: ast.Update, planner: Planner) -> int:
    schema = Catalog(tx).schema(stmt.table)
    scope = _table_scope(schema)
    names = [c.name.lower() for c in schema.columns]
    sets: dict[int, Any] = {}
    for a in stmt.assignments:
        if a.column.lower() not in names:
            raise SemanticError(f"no such column: {a.column}")
        sets[names.index(a.column.lower())] = planner.compiler.compile(a.value, scope)
    targets = _matching(tx, schema, stmt.where, planner, scope)
    prepared = []
    for _, row in targets:
        new = list(row)
        for pos, f in sets.items():
            new[pos] = f(row)
        prepared.append(new)
    finished = _finish_rows(tx, schema, prepared, coercers(schema), number_keys=False)
    for (key, _), row in zip(targets, finished):
        tx.update(schema.name, key, row)
    return len(finished)


def delete(tx: Any, stmt: ast.Delete, planner: Planner) -> int:
    schema = Catalog(tx).schema(stmt.table)
    targets = _matching(tx, schema, stmt.where, planner, _table_scope(schema))
    for key, _ in targets:
        tx.delete(schema.name, key)
    return len(targets)
