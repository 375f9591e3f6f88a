"""Expressions compiled once into Python closures over a row.

Every expression becomes a function ``f(row) -> value``: column references are
``operator.itemgetter`` (C), constants fold at compile time, comparisons of
statically typed operands skip the generic type-ranking path, and only what is
left calls the SQLite-compatible functions in ``functions``. No per-row tree
walking and no ``eval`` of text.

Subqueries are planned once, through the ``plan_query`` callback the planner
passes in; an uncorrelated one runs once per execution (its result is cached
in ``rt.cache``), a correlated one per row, after the enclosing scope's current
row is put in its ``cell``.
"""
from __future__ import annotations

import datetime
from operator import itemgetter
from typing import Any, Callable, Iterable, NamedTuple, Sequence

from ..errors import HeliosError, SemanticError
from . import ast
from . import functions as fn
from .affinity import column_operands, numeric_affinity, text_meets_numeric
from .runtime import Runtime
from .scope import Scope
from .values import apply_numeric_affinity, declared_type_to_name, to_text, value_type_name

Row = tuple
Compiled = Callable[[Row], Any]

_NUMERIC = frozenset({"int4", "int8", "float4", "float8", "bool", "timestamp"})
_BOOLEAN_NODES = (ast.IsNull, ast.Between, ast.InList, ast.InSubquery, ast.Like, ast.Exists)
_COMPARE_OPS = {"=": fn.sql_eq, "!=": fn.sql_ne, "<": fn.sql_lt, "<=": fn.sql_le,
                ">": fn.sql_gt, ">=": fn.sql_ge, "IS": fn.sql_is, "IS NOT": fn.sql_is_not}
_ARITH_OPS = {"+": fn.add, "-": fn.sub, "*": fn.mul, "/": fn.div, "%": fn.mod, "||": fn.concat,
              "&": fn.bitand, "|": fn.bitor, "<<": fn.shl, ">>": fn.shr}
_UNARY_OPS = {"-": fn.neg, "+": fn.pos, "~": fn.bitnot, "NOT": fn.sql_not}


class Constant:
    """Marks a compiled closure that always returns ``value`` (for folding and planning)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def constant_value(f: Compiled) -> Constant | None:
    return getattr(f, "constant", None)


def _const(value: Any) -> Compiled:
    f = lambda row: value  # noqa: E731
    f.constant = Constant(value)  # type: ignore[attr-defined]
    return f


def is_aggregate_call(e: ast.Expr) -> bool:
    return isinstance(e, ast.FunctionCall) and fn.is_aggregate(e.name, 0 if e.star else len(e.args))


def walk(e: Any, *, into_subqueries: bool = False):
    """Every expression node under ``e`` (pre-order), not entering subqueries by default."""
    stack = [e]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        yield node
        if isinstance(node, (ast.Exists, ast.ScalarSubquery)) and not into_subqueries:
            continue
        if isinstance(node, ast.InSubquery) and not into_subqueries:
            stack.append(node.operand)
            continue
        for name in getattr(node, "__dataclass_fields__", ()):
            if name in ("line", "col"):
                continue
            v = getattr(node, name)
            if isinstance(v, ast.Node):
                stack.append(v)
            elif isinstance(v, tuple):
                stack.extend(x for x in v if isinstance(x, ast.Node))


def contains_aggregate(e: Any) -> bool:
    return any(isinstance(n, ast.FunctionCall) and is_aggregate_call(n) for n in walk(e))


class Compiler:
    """Compiles expressions against a scope, for one plan (shares its ``Runtime``)."""

    def __init__(self, rt: Runtime, plan_query: Callable[[ast.Query, Scope], Any]) -> None:
        self.rt = rt
        self.plan_query = plan_query

    # ------------------------------------------------------------------ entry points
    def compile(self, e: ast.Expr, scope: Scope, agg_map: dict | None = None) -> Compiled:
        """``agg_map`` maps whole expressions (group keys, aggregate calls) to positions of
        an aggregated row; they are matched before descending into the expression."""
        if agg_map is not None:
            pos = agg_map.get(e)
            if pos is not None:
                return itemgetter(pos)
        f = self._compile(e, scope, agg_map)
        return f

    def predicate(self, e: ast.Expr, scope: Scope, agg_map: dict | None = None) -> Compiled:
        """A filter: truthy exactly when SQL would keep the row (NULL and 0 drop it).

        Where it can, the filter also gets a ``batch`` attribute: the same test over a
        whole batch of rows at once (see ``_batch_filter``)."""
        f = self.compile(e, scope, agg_map)
        if not self.is_boolean(e):
            is_true = fn.is_true
            g = f
            f = lambda row: is_true(g(row))  # noqa: E731
        elif constant_value(f) is None and agg_map is None:
            many = self._batch_filter(e, scope)
            if many is not None and hasattr(f, "__dict__"):
                f.batch = many  # type: ignore[attr-defined]
        return f

    def _batch_filter(self, e: ast.Expr, scope: Scope) -> BatchFilter | None:
        """``column <op> constant`` over statically typed operands (``all_of`` combines
        such filters): one list comprehension over the batch instead of a call per row."""
        if not (isinstance(e, ast.BinaryOp) and e.op in _FLIPPED):
            return None
        left, right = self._affinity(e.left, e.right, scope), self._affinity(e.right, e.left, scope)
        op = e.op
        if not isinstance(left, ast.ColumnRef):
            left, right, op = right, left, _FLIPPED[op]
        if not isinstance(left, ast.ColumnRef) or not self._fast_typed(left, right, scope):
            return None
        depth, pos = scope.resolve(left.name, left.table)
        c = constant_value(self._sub(right, scope, None))
        if depth or c is None or c.value is None:
            return None
        return column_test(pos, op, c.value)

    def static_type(self, e: ast.Expr, scope: Scope | None) -> str | None:
        """The client type of ``e`` when it is known without running it."""
        if isinstance(e, ast.Literal):
            if isinstance(e.value, bool):
                return "int8"                # TRUE/FALSE are the integers 1/0, as in SQLite
            return None if e.value is None else value_type_name(e.value)
        if isinstance(e, ast.ColumnRef) and scope is not None:
            try:
                depth, pos = scope.resolve(e.name, e.table)
            except HeliosError:
                return None
            return scope.ancestor(depth).columns[pos].type
        if self.is_boolean(e):
            return "int8"
        if isinstance(e, ast.Cast):
            t = declared_type_to_name(e.type.name, e.type.args)
            return None if t == "any" else t
        if isinstance(e, ast.FunctionCall):
            name = e.name.lower()
            if name in ("count", "length", "instr"):
                return "int8"
            if name in ("avg", "total"):
                return "float8"
            if name in ("lower", "upper", "substr", "trim", "ltrim", "rtrim", "group_concat",
                        "typeof", "hex", "replace"):
                return "text"
            if name == "round":
                return "float8"
        if isinstance(e, ast.BinaryOp) and e.op == "||":
            return "text"
        return None

    @staticmethod
    def is_boolean(e: ast.Expr) -> bool:
        """Does ``e`` always yield 0, 1 or NULL (so Python truthiness is SQL truth)?"""
        if isinstance(e, _BOOLEAN_NODES):
            return True
        if isinstance(e, ast.BinaryOp):
            return e.op in _COMPARE_OPS or e.op in ("AND", "OR")
        if isinstance(e, ast.UnaryOp):
            return e.op == "NOT"
        return False

    # ------------------------------------------------------------------ the compiler
    def _compile(self, e: ast.Expr, scope: Scope, agg_map: dict | None) -> Compiled:
        method = getattr(self, "_c_" + type(e).__name__, None)
        if method is None:
            raise SemanticError(f"unsupported expression: {type(e).__name__}")
        f = method(e, scope, agg_map)
        if constant_value(f) is None and self._foldable(e):
            try:
                return _const(f(()))
            except HeliosError:
                return f          # e.g. an overflow: raise it when (if) the row is evaluated
        return f

    def _foldable(self, e: ast.Expr) -> bool:
        for n in walk(e, into_subqueries=True):
            if isinstance(n, (ast.ColumnRef, ast.Parameter, ast.Star, ast.CurrentTime, ast.Exists,
                              ast.ScalarSubquery, ast.InSubquery)):
                return False
            if isinstance(n, ast.FunctionCall) and (n.name.lower() == "random" or is_aggregate_call(n)):
                return False
        return True

    def _sub(self, e: ast.Expr, scope: Scope, agg_map: dict | None) -> Compiled:
        return self.compile(e, scope, agg_map)

    def _c_Literal(self, e: ast.Literal, scope: Scope, agg_map: dict | None) -> Compiled:
        v = e.value
        if type(v) is bool:
            v = int(v)
        return _const(v)

    def _c_Parameter(self, e: ast.Parameter, scope: Scope, agg_map: dict | None) -> Compiled:
        rt, i = self.rt, e.index - 1
        return lambda row: rt.params[i]

    def _c_ColumnRef(self, e: ast.ColumnRef, scope: Scope, agg_map: dict | None) -> Compiled:
        depth, pos = scope.resolve(e.name, e.table)
        if depth == 0:
            if agg_map is not None:
                raise SemanticError(f"column {e.name!r} must appear in the GROUP BY clause "
                                    f"or be used in an aggregate function")
            return itemgetter(pos)
        cell = scope.ancestor(depth).cell
        return lambda row: cell[0][pos]

    def _c_Star(self, e: ast.Star, scope: Scope, agg_map: dict | None) -> Compiled:
        raise SemanticError("'*' is only allowed as a select item or in count(*)")

    def _c_UnaryOp(self, e: ast.UnaryOp, scope: Scope, agg_map: dict | None) -> Compiled:
        f = self._sub(e.operand, scope, agg_map)
        op = _UNARY_OPS[e.op]
        if e.op == "+":
            return f
        return lambda row: op(f(row))

    def _c_BinaryOp(self, e: ast.BinaryOp, scope: Scope, agg_map: dict | None) -> Compiled:
        if e.op == "AND":
            return self._and(e, scope, agg_map)
        if e.op == "OR":
            return self._or(e, scope, agg_map)
        left, right = e.left, e.right
        if e.op in _COMPARE_OPS:
            left, right = self._affinity(left, right, scope), self._affinity(right, left, scope)
        a = self._sub(left, scope, agg_map)
        b = self._sub(right, scope, agg_map)
        if e.op in _COMPARE_OPS and isinstance(left, ast.ColumnRef) and isinstance(right, ast.ColumnRef):
            a, b = column_operands(self.static_type(left, scope), self.static_type(right, scope), a, b)
        if e.op in ("=", "!=", "<", "<=", ">", ">="):
            fast = self._fast_compare(e.op, left, right, a, b, scope)
            if fast is not None:
                return fast
            op = _COMPARE_OPS[e.op]
        else:
            op = _COMPARE_OPS.get(e.op) or _ARITH_OPS[e.op]
        ca, cb = constant_value(a), constant_value(b)
        if cb is not None:
            bv = cb.value
            return lambda row: op(a(row), bv)
        if ca is not None:
            av = ca.value
            return lambda row: op(av, b(row))
        return lambda row: op(a(row), b(row))

    def _affinity(self, e: ast.Expr, other: ast.Expr, scope: Scope) -> ast.Expr:
        """SQLite's comparison affinity for a literal compared with a typed column:
        text beside a numeric column reads as a number, a number beside text as text
        (a signed number such as ``-1`` is a literal here too)."""
        lit = _signed_number(e) if isinstance(e, ast.UnaryOp) else e
        if not isinstance(lit, ast.Literal) or lit.value is None:
            return e
        t = self.static_type(other, scope) if isinstance(other, ast.ColumnRef) else None
        if t in _NUMERIC and isinstance(lit.value, str):
            v = apply_numeric_affinity(lit.value)
            return ast.Literal(v) if v is not lit.value else e
        if t == "text" and isinstance(lit.value, (int, float)) and not isinstance(lit.value, bool):
            return ast.Literal(to_text(lit.value))
        return e

    def _fast_typed(self, left: ast.Expr, right: ast.Expr, scope: Scope) -> bool:
        """Are both sides statically numbers, or both text (so Python compares them as SQL does)?"""
        ta, tb = self.static_type(left, scope), self.static_type(right, scope)
        return (ta in _NUMERIC and tb in _NUMERIC) or (ta == "text" and tb == "text")

    def _fast_compare(self, op: str, left: ast.Expr, right: ast.Expr, a: Compiled, b: Compiled,
                      scope: Scope) -> Compiled | None:
        """Direct Python comparison when both sides are statically numbers, or both text."""
        if not self._fast_typed(left, right, scope):
            return None
        cb = constant_value(b)
        if cb is not None and cb.value is None:
            return _const(None)
        if isinstance(left, ast.ColumnRef) and constant_value(a) is None and cb is not None:
            c = cb.value
            pos_get = a
            if op == "=":
                return lambda row: None if (v := pos_get(row)) is None else (1 if v == c else 0)
            if op == "!=":
                return lambda row: None if (v := pos_get(row)) is None else (1 if v != c else 0)
            if op == "<":
                return lambda row: None if (v := pos_get(row)) is None else (1 if v < c else 0)
            if op == "<=":
                return lambda row: None if (v := pos_get(row)) is None else (1 if v <= c else 0)
            if op == ">":
                return lambda row: None if (v := pos_get(row)) is None else (1 if v > c else 0)
            return lambda row: None if (v := pos_get(row)) is None else (1 if v >= c else 0)
        pyop = {"=": _eq, "!=": _ne, "<": _lt, "<=": _le, ">": _gt, ">=": _ge}[op]
        return lambda row: pyop(a(row), b(row))

    def _and(self, e: ast.BinaryOp, scope: Scope, agg_map: dict | None) -> Compiled:
        return self._connective(e, scope, agg_map, 0)

    def _or(self, e: ast.BinaryOp, scope: Scope, agg_map: dict | None) -> Compiled:
        return self._connective(e, scope, agg_map, 1)

    def _connective(self, e: ast.BinaryOp, scope: Scope, agg_map: dict | None, dominant: int) -> Compiled:
        """Three-valued AND (``dominant`` 0) or OR (1): a dominant operand decides (the right
        one is not evaluated after a dominant left one); else NULL if either is NULL."""
        a = self._truth(e.left, scope, agg_map)
        b = self._truth(e.right, scope, agg_map)
        other = 1 - dominant

        def f(row: Row) -> Any:
            x = a(row)
            if x == dominant:
                return dominant
            y = b(row)
            if y == dominant:
                return dominant
            return None if x is None or y is None else other
        return f

    def _truth(self, e: ast.Expr, scope: Scope, agg_map: dict | None) -> Compiled:
        """``e`` as 1, 0 or None."""
        f = self.compile(e, scope, agg_map)
        if self.is_boolean(e):
            return f
        is_true = fn.is_true
        return lambda row: None if (v := f(row)) is None else (1 if is_true(v) else 0)

    def _c_IsNull(self, e: ast.IsNull, scope: Scope, agg_map: dict | None) -> Compiled:
        f = self._sub(e.operand, scope, agg_map)
        if e.negated:
            return lambda row: 0 if f(row) is None else 1
        return lambda row: 1 if f(row) is None else 0

    def _c_Between(self, e: ast.Between, scope: Scope, agg_map: dict | None) -> Compiled:
        v = self._sub(e.operand, scope, agg_map)
        lo = self._sub(self._affinity(e.low, e.operand, scope), scope, agg_map)
        hi = self._sub(self._affinity(e.high, e.operand, scope), scope, agg_map)
        between, negate = fn.between, fn.sql_not
        if e.negated:
            return lambda row: negate(between(v(row), lo(row), hi(row)))
        return lambda row: between(v(row), lo(row), hi(row))

    def _c_InList(self, e: ast.InList, scope: Scope, agg_map: dict | None) -> Compiled:
        v = self._sub(e.operand, scope, agg_map)
        items = [self._sub(self._affinity(i, e.operand, scope), scope, agg_map) for i in e.items]
        consts = [constant_value(i) for i in items]
        in_list, negate = fn.in_list, fn.sql_not
        if all(c is not None for c in consts):
            values = tuple(c.value for c in consts)  # type: ignore[union-attr]
            kinds = {fn._RANK[type(x)] for x in values}
            if values and None not in values and len(kinds) == 1:
                members = frozenset(values)
                rank = next(iter(kinds))
                ranks = fn._RANK

                def member(row: Row) -> Any:
                    x = v(row)
                    if x is None:
                        return None
                    if ranks[type(x)] != rank:
                        return 0
                    return 1 if x in members else 0
                if e.negated:
                    return lambda row: None if (m := member(row)) is None else 1 - m
                return member
            f = lambda row: in_list(v(row), values)  # noqa: E731
        else:
            f = lambda row: in_list(v(row), [i(row) for i in items])  # noqa: E731
        if e.negated:
            return lambda row: negate(f(row))
        return f

    def _c_Like(self, e: ast.Like, scope: Scope, agg_map: dict | None) -> Compiled:
        if e.op == "GLOB":
            raise SemanticError("GLOB is not supported; use LIKE")
        v = self._sub(e.operand, scope, agg_map)
        p = self._sub(e.pattern, scope, agg_map)
        negate = fn.sql_not
        if e.escape is not None:
            esc = self._sub(e.escape, scope, agg_map)
            like_escape = fn.like_escape
            f = lambda row: like_escape(v(row), p(row), esc(row))  # noqa: E731
        else:
            like = fn.like
            f = lambda row: like(v(row), p(row))  # noqa: E731
        if e.negated:
            return lambda row: negate(f(row))
        return f

    def _c_Case(self, e: ast.Case, scope: Scope, agg_map: dict | None) -> Compiled:
        default = self._sub(e.else_, scope, agg_map) if e.else_ is not None else _const(None)
        arms = []
        if e.operand is not None:
            base = self._sub(e.operand, scope, agg_map)
            eq = fn.sql_eq
            for w in e.whens:
                arms.append((self._sub(w.condition, scope, agg_map), self._sub(w.result, scope, agg_map)))

            def simple(row: Row) -> Any:
                x = base(row)
                for cond, result in arms:
                    if eq(x, cond(row)) == 1:
                        return result(row)
                return default(row)
            return simple
        for w in e.whens:
            arms.append((self._truth(w.condition, scope, agg_map), self._sub(w.result, scope, agg_map)))

        def searched(row: Row) -> Any:
            for cond, result in arms:
                if cond(row) == 1:
                    return result(row)
            return default(row)
        return searched

    def _c_Cast(self, e: ast.Cast, scope: Scope, agg_map: dict | None) -> Compiled:
        f = self._sub(e.operand, scope, agg_map)
        cast, type_name = fn.cast, e.type.name
        return lambda row: cast(f(row), type_name)

    def _c_CurrentTime(self, e: ast.CurrentTime, scope: Scope, agg_map: dict | None) -> Compiled:
        rt = self.rt
        fmt = {"CURRENT_TIMESTAMP": "%Y-%m-%d %H:%M:%S", "CURRENT_DATE": "%Y-%m-%d",
               "CURRENT_TIME": "%H:%M:%S"}[e.kind]
        return lambda row: datetime.datetime.fromtimestamp(rt.now, datetime.timezone.utc).strftime(fmt)

    def _c_FunctionCall(self, e: ast.FunctionCall, scope: Scope, agg_map: dict | None) -> Compiled:
        if is_aggregate_call(e):
            raise SemanticError(f"misuse of aggregate function {e.name}()")
        func = fn.lookup_scalar(e.name, len(e.args))
        args = [self._sub(a, scope, agg_map) for a in e.args]
        if len(args) == 1:
            a0 = args[0]
            return lambda row: func(a0(row))
        if len(args) == 2:
            a0, a1 = args
            return lambda row: func(a0(row), a1(row))
        return lambda row: func(*[a(row) for a in args])

    # ------------------------------------------------------------------ subqueries
    def _subplan(self, query: ast.Query, scope: Scope) -> tuple[Any, Scope]:
        inner = Scope([], parent=scope)          # marks correlation when resolved through
        plan = self.plan_query(query, inner)
        return plan, inner

    def _rows(self, plan: Any, inner: Scope, scope: Scope, limit: int | None = None) -> Callable[[Row], list]:
        """A function row -> the subquery's rows (cached once when uncorrelated)."""
        rt, cell, key = self.rt, scope.cell, object()
        if not plan.correlated:
            def cached(row: Row) -> list:
                hit = rt.cache.get(key)
                if hit is None:
                    hit = rt.cache[key] = plan.run(limit)
                return hit
            return cached

        def correlated(row: Row) -> list:
            saved = cell[0]
            cell[0] = row
            try:
                return plan.run(limit)
            finally:
                cell[0] = saved
        return correlated

    def _c_ScalarSubquery(self, e: ast.ScalarSubquery, scope: Scope, agg_map: dict | None) -> Compiled:
        plan, inner = self._subplan(e.query, scope)
        if len(plan.columns) != 1:
            raise SemanticError(f"sub-select returns {len(plan.columns)} columns - expected 1")
        rows = self._rows(plan, inner, scope, limit=1)
        return lambda row: r[0][0] if (r := rows(row)) else None

    def _c_Exists(self, e: ast.Exists, scope: Scope, agg_map: dict | None) -> Compiled:
        plan, inner = self._subplan(e.query, scope)
        rows = self._rows(plan, inner, scope, limit=1)
        return lambda row: 1 if rows(row) else 0

    def _c_InSubquery(self, e: ast.InSubquery, scope: Scope, agg_map: dict | None) -> Compiled:
        v = self._sub(e.operand, scope, agg_map)
        plan, inner = self._subplan(e.query, scope)
        if len(plan.columns) != 1:
            raise SemanticError(f"sub-select returns {len(plan.columns)} columns - expected 1")
        rt, key, cell = self.rt, object(), scope.cell
        # Comparison affinity, as in SQLite: text beside a numeric column reads as a number,
        # be it the subquery's values or the operand (beside a bare numeric column).
        operand_type = self.static_type(e.operand, scope) if isinstance(e.operand, ast.ColumnRef) else None
        members_to_number = text_meets_numeric(plan.types[0], operand_type)
        if text_meets_numeric(operand_type, plan.types[0]) and _selects_one_column(e.query):
            v = numeric_affinity(v)

        def members(row: Row) -> tuple[frozenset, bool]:
            """The subquery's non-NULL values (Python's == already keeps 1 and '1'
            apart and 1 and 1.0 together, as SQL does) and whether it had a NULL."""
            if not plan.correlated:
                hit = rt.cache.get(key)
                if hit is not None:
                    return hit
            saved = cell[0]
            cell[0] = row
            try:
                values = [r[0] for r in plan.run(None)]
            finally:
                cell[0] = saved
            if members_to_number:
                values = [apply_numeric_affinity(x) for x in values]
            non_null = frozenset(x for x in values if x is not None)
            result = (non_null, any(x is None for x in values))
            if not plan.correlated:
                rt.cache[key] = result
            return result

        def member(row: Row) -> Any:
            s, has_null = members(row)
            if not s and not has_null:
                return 0
            x = v(row)
            if x is None:
                return None
            if x in s:
                return 1
            return None if has_null else 0
        if e.negated:
            return lambda row: None if (m := member(row)) is None else 1 - m
        return member


def _signed_number(e: ast.UnaryOp) -> ast.Expr:
    """``-1`` or ``+2.5`` as the literal it evaluates to; any other prefix operation unchanged."""
    if e.op in ("-", "+") and isinstance(e.operand, ast.Literal) and type(e.operand.value) in (int, float):
        v = e.operand.value
        return ast.Literal(fn.neg(v) if e.op == "-" else v)
    return e


def _selects_one_column(q: ast.Query) -> bool:
    """Is ``q`` a SELECT of a bare column (which has its column's affinity)?"""
    return isinstance(q, ast.Select) and len(q.items) == 1 and isinstance(q.items[0].expr, ast.ColumnRef)


BatchFilter = Callable[[list], list]
_FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def batch_form(pred: Compiled) -> BatchFilter | None:
    """The batch form of a filter, if it has one: rows -> the rows it keeps, in order."""
    return getattr(pred, "batch", None)


def all_of(preds: list[Compiled]) -> Compiled:
    """The conjunction of filters, with a batch form when each has one."""
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        f = lambda r: a(r) and b(r)  # noqa: E731
    else:
        f = lambda r: all(p(r) for p in preds)  # noqa: E731
    forms = [batch_form(p) for p in preds]
    if any(m is None for m in forms):
        return f

    def many(rows: list) -> list:
        for m in forms:
            rows = m(rows)
        return rows
    f.batch = many  # type: ignore[attr-defined]
    return f


class ColumnTest(NamedTuple):
    """``column <op> value``, as a batch filter keeps it: the column not NULL and the
    comparison true (``value`` is not NULL and of the column's kind)."""

    pos: int
    op: str
    value: Any


def column_test(pos: int, op: str, c: Any) -> BatchFilter:
    """Rows whose column ``pos`` is not NULL and compares with ``c`` (not NULL, of the
    column's kind) by ``op``: exactly what the row filter keeps. One comprehension per
    operator, so the interpreter's specialised subscripts and comparisons run inline
    (no Python call per row; about twice as fast as ``compress`` over ``map``). The
    function carries its ``ColumnTest`` (``test``) for ``column_select``."""
    if op == "=":
        f = lambda rows: [r for r in rows if (v := r[pos]) is not None and v == c]  # noqa: E731
    elif op == "!=":
        f = lambda rows: [r for r in rows if (v := r[pos]) is not None and v != c]  # noqa: E731
    elif op == "<":
        f = lambda rows: [r for r in rows if (v := r[pos]) is not None and v < c]  # noqa: E731
    elif op == "<=":
        f = lambda rows: [r for r in rows if (v := r[pos]) is not None and v <= c]  # noqa: E731
    elif op == ">":
        f = lambda rows: [r for r in rows if (v := r[pos]) is not None and v > c]  # noqa: E731
    elif op == ">=":
        f = lambda rows: [r for r in rows if (v := r[pos]) is not None and v >= c]  # noqa: E731
    else:
        raise ValueError(f"not a comparison: {op}")
    f.test = ColumnTest(pos, op, c)  # type: ignore[attr-defined]
    return f


Leaves = Callable[[], Iterable[Sequence[Row]]]

# batches -> row[pick] of each row whose column ``pos`` is not NULL and compares with ``c``:
# the NULL test written out (NULL != c would be true in Python, NULL < c raises).
_WITH_NULLS: dict[str, Callable[[int, Any, slice], Callable[[Iterable], list]]] = {
    "!=": lambda pos, c, pick: lambda batches: [
        r[pick] for rows in batches for r in rows if (v := r[pos]) is not None and v != c],
    "<": lambda pos, c, pick: lambda batches: [
        r[pick] for rows in batches for r in rows if (v := r[pos]) is not None and v < c],
    "<=": lambda pos, c, pick: lambda batches: [
        r[pick] for rows in batches for r in rows if (v := r[pos]) is not None and v <= c],
    ">": lambda pos, c, pick: lambda batches: [
        r[pick] for rows in batches for r in rows if (v := r[pos]) is not None and v > c],
    ">=": lambda pos, c, pick: lambda batches: [
        r[pick] for rows in batches for r in rows if (v := r[pos]) is not None and v >= c],
}
# The same without the NULL test: exact for "=" (NULL == c is false), and for the
# orderings as long as no NULL is met (NULL < c raises TypeError).
_NO_NULLS: dict[str, Callable[[int, Any, slice], Callable[[Iterable], list]]] = {
    "=": lambda pos, c, pick: lambda batches: [r[pick] for rows in batches for r in rows if r[pos] == c],
    "<": lambda pos, c, pick: lambda batches: [r[pick] for rows in batches for r in rows if r[pos] < c],
    "<=": lambda pos, c, pick: lambda batches: [r[pick] for rows in batches for r in rows if r[pos] <= c],
    ">": lambda pos, c, pick: lambda batches: [r[pick] for rows in batches for r in rows if r[pos] > c],
    ">=": lambda pos, c, pick: lambda batches: [r[pick] for rows in batches for r in rows if r[pos] >= c],
}


def column_select(test: ColumnTest, pick: slice) -> Callable[[Leaves], list[Row]]:
    """leaves -> ``row[pick]`` of each row ``test`` keeps, in order, as one list, from the
    batches ``leaves()`` gives (called again to start over).

    Filter and projection in one comprehension over all the batches: no list per
    batch, no second pass over the kept rows. ``pick`` is a slice: a tuple's slice is
    built in C without a Python call (within a few per cent of an inline
    ``(r[a], r[b])``), and one slice covers the shapes a template per width would
    (one column, a run, any two columns, any evenly spaced ones).

    An ordering first runs without testing each value for NULL (a few per cent of
    the scan); a NULL makes that comparison raise TypeError, and then the scan starts
    over with the test, as does every later run of this function (a column that had
    a NULL likely has more)."""
    pos, op, c = test
    if op not in _FLIPPED:
        raise ValueError(f"not a comparison: {op}")
    if op not in _WITH_NULLS:
        fast = _NO_NULLS[op](pos, c, pick)
        return lambda leaves: fast(leaves())
    careful = _WITH_NULLS[op](pos, c, pick)
    if op not in _NO_NULLS:
        return lambda leaves: careful(leaves())
    fast = _NO_NULLS[op](pos, c, pick)
    nulls = False

    def select(leaves: Leaves) -> list[Row]:
        nonlocal nulls
        if not nulls:
            try:
                return fast(leaves())
            except TypeError:
                nulls = True
        return careful(leaves())
    return select


def _eq(a: Any, b: Any) -> Any:
    return None if a is None or b is None else (1 if a == b else 0)


def _ne(a: Any, b: Any) -> Any:
    return None if a is None or b is None else (1 if a != b else 0)


def _lt(a: Any, b: Any) -> Any:
    return None if a is None or b is None else (1 if a < b else 0)


def _le(a: Any, b: Any) -> Any:
    return None if a is None or b is None else (1 if a <= b else 0)


def _gt(a: Any, b: Any) -> Any:
    return None if a is None or b is None else (1 if a > b else 0)


def _ge(a: Any, b: Any) -> Any:
    return None if a is None or b is None else (1 if a >= b else 0)
