"""AST -> canonical SQL text, for EXPLAIN output, error messages and round-trip tests.

Canonical means: upper-case keywords, single spaces, ``$n`` parameters, ``!=``
for inequality, identifiers quoted only when they would not re-read as the same
name, and parentheses only where precedence needs them.  The guarantee, tested
over ``tests/grammar/identity.sql`` and the conformance corpus, is
``parse_one(to_sql(node)) == node`` for every tree the parser produces.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from helios.sql import ast
from helios.sql.parser import keywords

__all__ = ["quote_name", "to_sql"]

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")

# Binding strength, loosest first; mirrors the expression levels of sql.lark.
_OR, _AND, _NOT, _EQ, _CMP, _BIT, _ADD, _MUL, _CONCAT, _UNARY, _ATOM = range(1, 12)

_BINARY_LEVEL = {
    "OR": _OR, "AND": _AND,
    "=": _EQ, "!=": _EQ, "IS": _EQ, "IS NOT": _EQ,
    "<": _CMP, "<=": _CMP, ">": _CMP, ">=": _CMP,
    "&": _BIT, "|": _BIT, "<<": _BIT, ">>": _BIT,
    "+": _ADD, "-": _ADD, "*": _MUL, "/": _MUL, "%": _MUL, "||": _CONCAT,
}


def to_sql(node: ast.Node) -> str:
    """Render a statement, expression or clause node as canonical SQL text."""
    return _render(node)


def _render(node: Any) -> str:
    try:
        method = _RENDERERS[type(node)]
    except KeyError:
        raise TypeError(f"cannot render {type(node).__name__} as SQL") from None
    return method(node)


# ---------------------------------------------------------------------- names and literals
def quote_name(name: str) -> str:
    """``name`` as an identifier: bare when it re-reads as itself, else double-quoted."""
    if _PLAIN_NAME.match(name) and name.lower() not in keywords():
        return name
    return '"' + name.replace('"', '""') + '"'


def _names(names: Iterable[str]) -> str:
    return ", ".join(quote_name(n) for n in names)


def _literal(node: ast.Literal) -> str:
    value = node.value
    if value is None:
        return "NULL"
    if value is True:
        return "TRUE"
    if value is False:
        return "FALSE"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bytes):
        return "X'" + value.hex().upper() + "'"
    if isinstance(value, float):
        if math.isnan(value):
            return "NULL"
        if math.isinf(value):
            return "9e999" if value > 0 else "-9e999"
        return repr(value)
    return str(value)


# ---------------------------------------------------------------------- expressions
def _level(node: ast.Expr) -> int:
    match node:
        case ast.BinaryOp(op=op):
            return _BINARY_LEVEL[op]
        case ast.UnaryOp(op="NOT"):
            return _NOT
        case ast.UnaryOp():
            return _UNARY
        case ast.IsNull() | ast.Between() | ast.InList() | ast.InSubquery() | ast.Like():
            return _EQ
        case ast.Literal(value=int() | float() as value) if value < 0:
            return _UNARY  # re-reads as a unary minus
        case _:
            return _ATOM


def _operand(node: ast.Expr, minimum: int) -> str:
    """Render ``node``, parenthesised if it binds looser than ``minimum``."""
    text = _render(node)
    return f"({text})" if _level(node) < minimum else text


def _binary(node: ast.BinaryOp) -> str:
    level = _BINARY_LEVEL[node.op]
    return f"{_operand(node.left, level)} {node.op} {_operand(node.right, level + 1)}"


def _unary(node: ast.UnaryOp) -> str:
    if node.op == "NOT":
        return f"NOT {_operand(node.operand, _NOT)}"
    text = _operand(node.operand, _UNARY)
    # "- -x" must keep its space: "--" starts a comment.
    return f"{node.op} {text}" if text[:1] in "-+" else node.op + text


def _not(negated: bool) -> str:
    return " NOT" if negated else ""


def _is_null(node: ast.IsNull) -> str:
    return f"{_operand(node.operand, _EQ)} IS{_not(node.negated)} NULL"


def _between(node: ast.Between) -> str:
    return (f"{_operand(node.operand, _EQ)}{_not(node.negated)} BETWEEN "
            f"{_operand(node.low, _CMP)} AND {_operand(node.high, _CMP)}")


def _in_list(node: ast.InList) -> str:
    items = ", ".join(_render(item) for item in node.items)
    return f"{_operand(node.operand, _EQ)}{_not(node.negated)} IN ({items})"


def _in_subquery(node: ast.InSubquery) -> str:
    return f"{_operand(node.operand, _EQ)}{_not(node.negated)} IN ({_render(node.query)})"


def _like(node: ast.Like) -> str:
    text = f"{_operand(node.operand, _EQ)}{_not(node.negated)} {node.op} {_operand(node.pattern, _CMP)}"
    if node.escape is not None:
        text += f" ESCAPE {_operand(node.escape, _CMP)}"
    return text


def _case(node: ast.Case) -> str:
    parts = ["CASE"]
    if node.operand is not None:
        parts.append(_render(node.operand))
    parts.extend(f"WHEN {_render(w.condition)} THEN {_render(w.result)}" for w in node.whens)
    if node.else_ is not None:
        parts.append(f"ELSE {_render(node.else_)}")
    parts.append("END")
    return " ".join(parts)


def _function(node: ast.FunctionCall) -> str:
    name = quote_name(node.name)
    if node.star:
        return f"{name}(*)"
    distinct = "DISTINCT " if node.distinct else ""
    return f"{name}({distinct}{', '.join(_render(a) for a in node.args)})"


def _type_name(node: ast.TypeName) -> str:
    words = " ".join(quote_name(w) for w in node.name.split(" "))
    if node.args:
        return f"{words}({', '.join(repr(a) if isinstance(a, float) else str(a) for a in node.args)})"
    return words


def _column(node: ast.ColumnRef) -> str:
    name = quote_name(node.name)
    return f"{quote_name(node.table)}.{name}" if node.table is not None else name


def _star(node: ast.Star) -> str:
    return f"{quote_name(node.table)}.*" if node.table is not None else "*"


# ---------------------------------------------------------------------- queries
def _select_item(node: ast.SelectItem) -> str:
    text = _render(node.expr)
    return f"{text} AS {quote_name(node.alias)}" if node.alias is not None else text


def _order_item(node: ast.OrderItem) -> str:
    text = _render(node.expr) + (" DESC" if node.descending else "")
    if node.nulls_first is not None:
        text += " NULLS FIRST" if node.nulls_first else " NULLS LAST"
    return text


def _tail(order_by: tuple[ast.OrderItem, ...], limit: ast.Expr | None, offset: ast.Expr | None) -> str:
    text = ""
    if order_by:
        text += " ORDER BY " + ", ".join(_order_item(o) for o in order_by)
    if limit is not None or offset is not None:
        text += " LIMIT " + (_render(limit) if limit is not None else "-1")
        if offset is not None:
            text += " OFFSET " + _render(offset)
    return text


def _select(node: ast.Select) -> str:
    parts = ["SELECT"]
    if node.distinct:
        parts.append("DISTINCT")
    parts.append(", ".join(_select_item(i) for i in node.items))
    if node.from_ is not None:
        parts.append("FROM " + _render(node.from_))
    if node.where is not None:
        parts.append("WHERE " + _render(node.where))
    if node.group_by:
        parts.append("GROUP BY " + ", ".join(_render(e) for e in node.group_by))
    if node.having is not None:
        parts.append("HAVING " + _render(node.having))
    return " ".join(parts) + _tail(node.order_by, node.limit, node.offset)


def _compound_operand(node: ast.Query, right: bool) -> str:
    """A compound operand is a bare SELECT/VALUES core; wrap anything else as a subquery."""
    bare = not (node.order_by or node.limit is not None or node.offset is not None)
    if bare and (isinstance(node, (ast.Select, ast.Values)) or (not right and isinstance(node, ast.Compound))):
        return _render(node)
    return f"SELECT * FROM ({_render(node)})"


def _compound(node: ast.Compound) -> str:
    return (f"{_compound_operand(node.left, False)} {node.op} {_compound_operand(node.right, True)}"
            + _tail(node.order_by, node.limit, node.offset))


def _values(node: ast.Values) -> str:
    rows = ", ".join("(" + ", ".join(_render(e) for e in row) + ")" for row in node.rows)
    return "VALUES " + rows + _tail(node.order_by, node.limit, node.offset)


def _alias(alias: str | None) -> str:
    return f" AS {quote_name(alias)}" if alias is not None else ""


def _table_ref(node: ast.TableRef) -> str:
    text = quote_name(node.name) + _alias(node.alias)
    if node.as_of is not None:
        text += " AS OF SYSTEM TIME " + _render(node.as_of)
    if node.indexed_by is not None:
        text += " INDEXED BY " + quote_name(node.indexed_by)
    elif node.not_indexed:
        text += " NOT INDEXED"
    return text


def _subquery_ref(node: ast.SubqueryRef) -> str:
    return f"({_render(node.query)}){_alias(node.alias)}"


def _join(node: ast.Join) -> str:
    right = _render(node.right)
    if isinstance(node.right, ast.Join):
        right = f"({right})"
    text = f"{_render(node.left)} {'JOIN' if node.kind == 'INNER' else node.kind + ' JOIN'} {right}"
    if node.on is not None:
        text += " ON " + _render(node.on)
    elif node.using:
        text += f" USING ({_names(node.using)})"
    return text


# ---------------------------------------------------------------------- statements
def _if_not_exists(flag: bool) -> str:
    return " IF NOT EXISTS" if flag else ""


def _if_exists(flag: bool) -> str:
    return " IF EXISTS" if flag else ""


def _temporary(flag: bool) -> str:
    return " TEMP" if flag else ""


def _default(expr: ast.Expr) -> str:
    match expr:
        case ast.Literal(value=int() | float() as value) if value < 0:
            return f"({_render(expr)})"
        case ast.Literal() | ast.CurrentTime():
            return _render(expr)
        case ast.UnaryOp(op="-" | "+", operand=ast.Literal(value=int() | float() as value)) if value >= 0:
            return _render(expr)
    return f"({_render(expr)})"


def _column_def(node: ast.ColumnDef) -> str:
    parts = [quote_name(node.name)]
    if node.type is not None:
        parts.append(_type_name(node.type))
    if node.primary_key:
        parts.append("PRIMARY KEY")
        if node.primary_key_desc:
            parts.append("DESC")
        if node.autoincrement:
            parts.append("AUTOINCREMENT")
    if node.not_null:
        parts.append("NOT NULL")
    if node.unique:
        parts.append("UNIQUE")
    if node.default is not None:
        parts.append("DEFAULT " + _default(node.default))
    return " ".join(parts)


def _indexed_columns(columns: tuple[ast.IndexedColumn, ...]) -> str:
    return ", ".join(quote_name(c.name) + (" DESC" if c.descending else "") for c in columns)


def _table_constraint(node: ast.TableConstraint) -> str:
    return f"{node.kind} ({_indexed_columns(node.columns)})"


def _create_table(node: ast.CreateTable) -> str:
    elements = [_column_def(c) for c in node.columns] + [_table_constraint(c) for c in node.constraints]
    return (f"CREATE{_temporary(node.temporary)} TABLE{_if_not_exists(node.if_not_exists)} "
            f"{quote_name(node.name)} ({', '.join(elements)})")


def _create_index(node: ast.CreateIndex) -> str:
    unique = " UNIQUE" if node.unique else ""
    return (f"CREATE{unique} INDEX{_if_not_exists(node.if_not_exists)} {quote_name(node.name)} "
            f"ON {quote_name(node.table)} ({_indexed_columns(node.columns)})")


def _create_view(node: ast.CreateView) -> str:
    columns = f" ({_names(node.columns)})" if node.columns else ""
    return (f"CREATE{_temporary(node.temporary)} VIEW{_if_not_exists(node.if_not_exists)} "
            f"{quote_name(node.name)}{columns} AS {_render(node.query)}")


def _insert(node: ast.Insert) -> str:
    verb = f"INSERT OR {node.on_conflict}" if node.on_conflict else "INSERT"
    columns = f" ({_names(node.columns)})" if node.columns else ""
    source = _render(node.source) if node.source is not None else "DEFAULT VALUES"
    return f"{verb} INTO {quote_name(node.table)}{columns} {source}"


def _update(node: ast.Update) -> str:
    sets = ", ".join(f"{quote_name(a.column)} = {_render(a.value)}" for a in node.assignments)
    where = f" WHERE {_render(node.where)}" if node.where is not None else ""
    return f"UPDATE {quote_name(node.table)} SET {sets}{where}"


def _delete(node: ast.Delete) -> str:
    where = f" WHERE {_render(node.where)}" if node.where is not None else ""
    return f"DELETE FROM {quote_name(node.table)}{where}"


_RENDERERS: dict[type, Callable[[Any], str]] = {
    ast.Literal: _literal,
    ast.ColumnRef: _column,
    ast.Star: _star,
    ast.Parameter: lambda n: f"${n.index}",
    ast.UnaryOp: _unary,
    ast.BinaryOp: _binary,
    ast.IsNull: _is_null,
    ast.Between: _between,
    ast.InList: _in_list,
    ast.InSubquery: _in_subquery,
    ast.Like: _like,
    ast.Exists: lambda n: f"EXISTS ({_render(n.query)})",
    ast.ScalarSubquery: lambda n: f"({_render(n.query)})",
    ast.When: lambda n: f"WHEN {_render(n.condition)} THEN {_render(n.result)}",
    ast.Case: _case,
    ast.TypeName: _type_name,
    ast.Cast: lambda n: f"CAST({_render(n.operand)} AS {_type_name(n.type)})",
    ast.FunctionCall: _function,
    ast.CurrentTime: lambda n: n.kind,
    ast.SelectItem: _select_item,
    ast.OrderItem: _order_item,
    ast.TableRef: _table_ref,
    ast.SubqueryRef: _subquery_ref,
    ast.Join: _join,
    ast.Select: _select,
    ast.Compound: _compound,
    ast.Values: _values,
    ast.ColumnDef: _column_def,
    ast.IndexedColumn: lambda n: _indexed_columns((n,)),
    ast.TableConstraint: _table_constraint,
    ast.CreateTable: _create_table,
    ast.DropTable: lambda n: f"DROP TABLE{_if_exists(n.if_exists)} {quote_name(n.name)}",
    ast.CreateIndex: _create_index,
    ast.DropIndex: lambda n: f"DROP INDEX{_if_exists(n.if_exists)} {quote_name(n.name)}",
    ast.CreateView: _create_view,
    ast.DropView: lambda n: f"DROP VIEW{_if_exists(n.if_exists)} {quote_name(n.name)}",
    ast.AddColumn: lambda n: f"ALTER TABLE {quote_name(n.table)} ADD COLUMN {_column_def(n.column)}",
    ast.RenameTable: lambda n: f"ALTER TABLE {quote_name(n.table)} RENAME TO {quote_name(n.new_name)}",
    ast.RenameColumn: lambda n: (f"ALTER TABLE {quote_name(n.table)} RENAME COLUMN "
                                 f"{quote_name(n.old_name)} TO {quote_name(n.new_name)}"),
    ast.Insert: _insert,
    ast.Assignment: lambda n: f"{quote_name(n.column)} = {_render(n.value)}",
    ast.Update: _update,
    ast.Delete: _delete,
    ast.Begin: lambda n: "BEGIN",
    ast.Commit: lambda n: "COMMIT",
    ast.Rollback: lambda n: "ROLLBACK",
    ast.Reindex: lambda n: "REINDEX" + (f" {quote_name(n.name)}" if n.name else ""),
    ast.Explain: lambda n: f"EXPLAIN {_render(n.statement)}",
}
