"""CREATE / DROP / ALTER: SQL definitions turned into storage schemas.

Column types are stored as client type names (int4, text, ...), with the
declared SQL type and the DEFAULT's SQL text kept opaque in ``Column.extra``.
A constant DEFAULT is folded to its value once; a non-constant one (such as
CURRENT_TIMESTAMP) is evaluated on every insert. UNIQUE constraints become
unique indexes named ``<table>_unique_<n>``.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from ..errors import SemanticError, UnknownTable
from ..storage.schema import Column, IndexDef, TableSchema
from . import ast
from .ast_printer import to_sql
from .catalog import VIEW_PREFIX, Catalog
from .compile import Compiler, constant_value
from .runtime import Runtime
from .scope import Scope
from .values import coerce_for_column, declared_type_to_name

CONSTANT_DEFAULT = "const"
EXPRESSION_DEFAULT = "expr"


def column_from_def(d: ast.ColumnDef, compiler: Compiler) -> Column:
    type_name = declared_type_to_name(d.type.name, d.type.args) if d.type is not None else "any"
    declared = to_sql(d.type) if d.type is not None else ""
    default_value: Any = None
    extra: tuple = (declared,)
    if d.default is not None:
        f = compiler.compile(d.default, Scope([]))
        c = constant_value(f)
        if c is not None:
            default_value = coerce_for_column(c.value, type_name, column=d.name)
            extra = (declared, CONSTANT_DEFAULT, to_sql(d.default))
        else:
            extra = (declared, EXPRESSION_DEFAULT, to_sql(d.default))
    return Column(d.name, type_name, not (d.not_null or d.primary_key), default_value, extra)


def create_table(tx: Any, stmt: ast.CreateTable, rt: Runtime, compiler: Compiler) -> bool:
    catalog = Catalog(tx)
    if catalog.has_table(stmt.name) or catalog.view(stmt.name) is not None:
        if stmt.if_not_exists:
            return False
        raise SemanticError(f"table {stmt.name} already exists")
    names = [c.name.lower() for c in stmt.columns]
    if len(set(names)) != len(names):
        raise SemanticError(f"duplicate column name in table {stmt.name}")
    columns = [column_from_def(d, compiler) for d in stmt.columns]
    pk: tuple[int, ...] = tuple(i for i, d in enumerate(stmt.columns) if d.primary_key)
    uniques: list[tuple[int, ...]] = [(i,) for i, d in enumerate(stmt.columns) if d.unique]
    for con in stmt.constraints:
        try:
            positions = tuple(names.index(c.name.lower()) for c in con.columns)
        except ValueError:
            raise SemanticError(f"no such column in constraint of table {stmt.name}") from None
        if con.kind == "PRIMARY KEY":
            if pk:
                raise SemanticError(f"table {stmt.name} has more than one primary key")
            pk = positions
        else:
            uniques.append(positions)
    if len(pk) > 1 and len(set(pk)) != len(pk):
        raise SemanticError("duplicate column in PRIMARY KEY")
    for p in pk:
        columns[p] = replace(columns[p], nullable=False)
    indexes = tuple(IndexDef(f"{stmt.name}_unique_{n + 1}", cols, unique=True)
                    for n, cols in enumerate(u for u in uniques if u != pk))
    tx.create_table(TableSchema(stmt.name, tuple(columns), pk, indexes, created_at=round(time.time(), 6)))
    return True


def drop_table(tx: Any, stmt: ast.DropTable) -> bool:
    catalog = Catalog(tx)
    if not catalog.has_table(stmt.name):
        if stmt.if_exists:
            return False
        raise UnknownTable(f"no such table: {stmt.name}")
    tx.drop_table(catalog.table_name(stmt.name))
    return True


def create_index(tx: Any, stmt: ast.CreateIndex) -> bool:
    catalog = Catalog(tx)
    owner = catalog.index_owner(stmt.name)
    if owner is not None:
        if stmt.if_not_exists:
            return False
        raise SemanticError(f"index {stmt.name} already exists")
    schema = catalog.schema(stmt.table)
    names = [c.name.lower() for c in schema.columns]
    try:
        cols = tuple(names.index(c.name.lower()) for c in stmt.columns)
    except ValueError:
        raise SemanticError(f"table {schema.name} has no column named "
                            f"{next(c.name for c in stmt.columns if c.name.lower() not in names)}") from None
    tx.create_index(schema.name, IndexDef(stmt.name, cols, stmt.unique))
    return True


def drop_index(tx: Any, stmt: ast.DropIndex) -> bool:
    owner = Catalog(tx).index_owner(stmt.name)
    if owner is None:
        if stmt.if_exists:
            return False
        raise SemanticError(f"no such index: {stmt.name}")
    tx.drop_index(owner, stmt.name)
    return True


def create_view(tx: Any, stmt: ast.CreateView, plan_check: Any) -> bool:
    catalog = Catalog(tx)
    if catalog.view(stmt.name) is not None or catalog.has_table(stmt.name):
        if stmt.if_not_exists:
            return False
        raise SemanticError(f"view {stmt.name} already exists")
    plan = plan_check(stmt.query)             # binds every name now: a broken view is refused
    if stmt.columns and len(stmt.columns) != len(plan.columns):
        raise SemanticError(f"expected {len(plan.columns)} columns for view {stmt.name}, "
                            f"got {len(stmt.columns)}")
    tx.set_object(VIEW_PREFIX + stmt.name.lower(), (to_sql(stmt.query), tuple(stmt.columns)))
    return True


def drop_view(tx: Any, stmt: ast.DropView) -> bool:
    if Catalog(tx).view(stmt.name) is None:
        if stmt.if_exists:
            return False
        raise SemanticError(f"no such view: {stmt.name}")
    tx.set_object(VIEW_PREFIX + stmt.name.lower(), None)
    return True


def add_column(tx: Any, stmt: ast.AddColumn, compiler: Compiler) -> None:
    schema = Catalog(tx).schema(stmt.table)
    if any(c.name.lower() == stmt.column.name.lower() for c in schema.columns):
        raise SemanticError(f"duplicate column name: {stmt.column.name}")
    if stmt.column.primary_key or stmt.column.unique:
        raise SemanticError("cannot add a PRIMARY KEY or UNIQUE column")
    col = column_from_def(stmt.column, compiler)
    if not col.nullable and col.default is None and len(tx.table(schema.name)):
        raise SemanticError("cannot add a NOT NULL column with default value NULL")
    tx.alter_table(schema.name, replace(schema, columns=schema.columns + (col,)),
                   tuple(range(len(schema.columns))) + (-1,))


def rename_table(tx: Any, stmt: ast.RenameTable) -> None:
    catalog = Catalog(tx)
    schema = catalog.schema(stmt.table)
    if catalog.has_table(stmt.new_name) or catalog.view(stmt.new_name) is not None:
        raise SemanticError(f"there is already another table or view with this name: {stmt.new_name}")
    tx.rename_table(schema.name, stmt.new_name)


def rename_column(tx: Any, stmt: ast.RenameColumn) -> None:
    schema = Catalog(tx).schema(stmt.table)
    names = [c.name.lower() for c in schema.columns]
    if stmt.old_name.lower() not in names:
        raise SemanticError(f"no such column: {stmt.old_name}")
    if stmt.new_name.lower() in names:
        raise SemanticError(f"duplicate column name: {stmt.new_name}")
    i = names.index(stmt.old_name.lower())
    cols = list(schema.columns)
    cols[i] = replace(cols[i], name=stmt.new_name)
    tx.alter_table(schema.name, replace(schema, columns=tuple(cols)), tuple(range(len(cols))))


def reindex(tx: Any, stmt: ast.Reindex) -> None:
    """Indexes are maintained on every write, so there is nothing to rebuild; the name
    must still exist (a table, or an index), as in SQLite."""
    if stmt.name is None:
        return
    catalog = Catalog(tx)
    if not catalog.has_table(stmt.name) and catalog.index_owner(stmt.name) is None:
        raise SemanticError(f"unable to identify the object to be reindexed: {stmt.name}")
