"""Table-level data operations (the REST data endpoints) built as ASTs, never as SQL text.

A ``filter`` is parsed by the grammar's expression rule and an ``order_by`` by
its ordering rule; the results are checked (one expression, only this table's
columns, no subqueries) and placed into a SELECT/UPDATE/DELETE tree. Values
travel as bound parameters. So ``1=1; DROP TABLE users`` is a syntax error at
the ``;`` and can never become a second statement.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import BadRequest, InvalidParameter, SqlSyntaxError
from . import ast
from .compile import is_aggregate_call, walk
from .parser import parse_expression, parse_ordering

MAX_LIMIT = 1000


def _bad_filter(what: str, text: str) -> BadRequest:
    return BadRequest(f"invalid {what} {text!r}: only a single expression over this table's columns "
                      f"is allowed")


def parse_filter(text: Any) -> ast.Expr:
    """A REST ``filter``: one expression, no subqueries, no parameters."""
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("filter must be a non-empty string such as \"id = 100\" (use \"true\" for all rows)")
    try:
        expr = parse_expression(text)
    except SqlSyntaxError as exc:
        raise BadRequest(f"invalid filter: {exc.message}", exc.details) from None
    _check_plain(expr, "filter", text)
    return expr


def parse_order(text: Any) -> tuple[ast.OrderItem, ...]:
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("order_by must be a non-empty string such as \"created_at DESC, id\"")
    try:
        items = parse_ordering(text)
    except SqlSyntaxError as exc:
        raise BadRequest(f"invalid order_by: {exc.message}", exc.details) from None
    for item in items:
        _check_plain(item.expr, "order_by", text)
    return tuple(items)


def _check_plain(expr: ast.Expr, what: str, text: str) -> None:
    for node in walk(expr, into_subqueries=True):
        if isinstance(node, (ast.ScalarSubquery, ast.Exists, ast.InSubquery, ast.Parameter, ast.Star)):
            raise _bad_filter(what, text)
        if isinstance(node, ast.FunctionCall) and is_aggregate_call(node):
            raise _bad_filter(what, text)


def _columns(names: Any) -> tuple[str, ...]:
    if names is None:
        return ()
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise BadRequest("columns must be a comma-separated list of column names")
    return tuple(names)


@dataclass(frozen=True)
class Page:
    page: int
    limit: int

    @classmethod
    def parse(cls, page: Any = None, limit: Any = None) -> "Page":
        p = _positive_int(page, "page", 1)
        n = _positive_int(limit, "limit", 100)
        if n > MAX_LIMIT:
            raise BadRequest(f"limit must be at most {MAX_LIMIT}, got {n}")
        return cls(p, n)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def _positive_int(v: Any, name: str, default: int) -> int:
    if v is None or v == "":
        return default
    try:
        n = int(v) if not isinstance(v, bool) else None
    except (TypeError, ValueError):
        n = None
    if n is None or n < 1 or (isinstance(v, float) and not v.is_integer()):
        raise BadRequest(f"{name} must be a positive integer, got {v!r}")
    return n


def select_rows(table: str, *, columns: Any = None, filter: Any = None, order_by: Any = None,
                page: Page) -> tuple[ast.Select, ast.Select]:
    """(the page's SELECT, the matching-row COUNT(*)) for the data endpoint."""
    where = parse_filter(filter) if filter is not None else None
    order = parse_order(order_by) if order_by is not None else ()
    cols = _columns(columns)
    items = tuple(ast.SelectItem(ast.ColumnRef(c)) for c in cols) or (ast.SelectItem(ast.Star()),)
    ref = ast.TableRef(table)
    query = ast.Select(items, ref, where, order_by=order, limit=ast.Literal(page.limit),
                       offset=ast.Literal(page.offset) if page.offset else None)
    count = ast.Select((ast.SelectItem(ast.FunctionCall("count", star=True)),), ref, where)
    return query, count


def insert_rows(table: str, rows: Any) -> list[tuple[ast.Insert, list[tuple]]]:
    """One parameterised INSERT per distinct column set, with the parameter rows for each."""
    if not isinstance(rows, list) or not rows:
        raise BadRequest("rows must be a non-empty list of objects")
    groups: dict[tuple[str, ...], list[tuple]] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or not row:
            raise BadRequest(f"rows[{i}] must be a non-empty object of column: value")
        cols = tuple(row.keys())
        groups.setdefault(cols, []).append(tuple(_json_value(row[c], f"rows[{i}].{c}") for c in cols))
    out = []
    for cols, values in groups.items():
        params = tuple(ast.Parameter(i + 1) for i in range(len(cols)))
        out.append((ast.Insert(table, ast.Values((params,)), cols), values))
    return out


def update_rows(table: str, values: Any, filter: Any) -> tuple[ast.Update, tuple]:
    if not isinstance(values, Mapping) or not values:
        raise BadRequest("values must be a non-empty object of column: value")
    if filter is None:
        raise BadRequest("filter is required (use \"true\" to update every row)")
    where = parse_filter(filter)
    cols = list(values.keys())
    assignments = tuple(ast.Assignment(c, ast.Parameter(i + 1)) for i, c in enumerate(cols))
    return ast.Update(table, assignments, where), tuple(_json_value(values[c], f"values.{c}") for c in cols)


def delete_rows(table: str, filter: Any) -> ast.Delete:
    if filter is None:
        raise BadRequest("filter is required (use \"true\" to delete every row)")
    return ast.Delete(table, parse_filter(filter))


def _json_value(v: Any, where: str) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise InvalidParameter(f"{where}: nested objects and arrays cannot be stored in a column")

