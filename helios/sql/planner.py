"""Queries -> trees of operators.

The planner binds names against the snapshot's catalog, pushes each WHERE
conjunct down to the one source it reads, picks an access path per table
(primary-key lookup or range, secondary-index lookup or range, else a scan),
orders inner joins greedily so every step is a hash join when an equality
links it to what is already joined, and compiles every expression once.

A ``Plan`` holds compiled closures and a ``make()`` that builds a fresh
operator tree, so a cached plan runs again with new parameters without being
planned again. It records the schema objects it was planned against
(``deps``); the engine re-plans when any of them changed.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

from ..errors import (HeliosError, InvalidParameter, NotImplementedFeature, SemanticError, TypeMismatch,
                      UnknownTable)
from . import ast
from . import functions as fn
from .affinity import column_operands
from .ast_printer import to_sql
from .catalog import Catalog, family
from .compile import Compiled, Compiler, all_of, contains_aggregate, is_aggregate_call, walk
from .operators import (UNBOUNDED, ColumnOrder, Distinct, Filter, HashAggregate, HashJoin, HashJoinAggregate,
                        IndexScan, KeyLookup, Limit, NestedLoopJoin, Operator, Project, Rows, SetOp, Sort,
                        TableScan, TopN, Values, pair_columns, run_all)
from .runtime import Runtime
from .scope import ColumnInfo, Scope, derived_column_names

Factory = Callable[[], Operator]
NO_BOUND = object()          # a lookup value whose type can never equal the key's


@dataclass
class Plan:
    make: Factory
    columns: list[str]
    types: list[str | None]
    scope: Scope | None = None      # the scope a subquery was planned in (for correlation)

    @property
    def correlated(self) -> bool:
        return self.scope is not None and self.scope.correlated

    def run(self, limit: int | None = None) -> list[tuple]:
        return run_all(self.make(), limit)


class StalePlan(Exception):
    """A table read ``AS OF SYSTEM TIME`` had, at the moment this execution asks for,
    another schema than the one its plan was made with (a relative time crossed an
    ALTER, or a parameter moved the moment): the engine plans the statement again."""


@dataclass
class Source:
    """One item of a FROM clause, as the join planner sees it."""

    alias: str
    columns: list[ColumnInfo]
    table: str | None = None                # a base table
    as_of: Compiled | None = None           # AS OF SYSTEM TIME: its moment's expression
    schema: Any = None                      # the table's schema at that moment (planned against)
    subplan: Plan | None = None              # a view or a subquery
    pushed: list[ast.Expr] = field(default_factory=list)

    @property
    def width(self) -> int:
        return len(self.columns)


@dataclass(frozen=True)
class HashJoinPlan:
    """A planned hash join (a factory like any other), kept open so that an aggregate
    right above it can fuse with it (``HashJoinAggregate``)."""

    rt: Runtime
    lmake: Factory
    rmake: Factory
    lkey: Compiled
    rkey: Compiled
    kind: str
    lscope: Scope
    rscope: Scope
    residual: Compiled | None

    def __call__(self) -> Operator:
        return HashJoin(self.rt, self.lmake(), self.rmake(), self.lkey, self.rkey, self.kind,
                        len(self.rscope.columns), self.residual)

    def project(self, positions: list[int]) -> Factory | None:
        """The join emitting only the joined row's columns at ``positions``, picked
        from each left and right row without concatenating them (None: not a shape
        ``pair_columns`` builds)."""
        width = len(self.lscope.columns)
        emit = pair_columns([(0, p) if p < width else (1, p - width) for p in positions])
        if emit is None:
            return None
        return lambda: HashJoin(self.rt, self.lmake(), self.rmake(), self.lkey, self.rkey, self.kind,
                                len(self.rscope.columns), self.residual, emit, len(positions))

    def aggregate(self, keys: list[tuple[str, Compiled]],
                  aggs: list[tuple[Callable[[], Any], list[tuple[str, Compiled]]]]) -> Factory:
        return lambda: HashJoinAggregate(self.rt, self.lmake(), self.rmake(), self.lkey, self.rkey, self.kind,
                                         len(self.rscope.columns), self.residual, keys, aggs)


_IDENTITY = object()          # marks a projection that would copy every row unchanged


def split_and(e: ast.Expr | None) -> list[ast.Expr]:
    if e is None:
        return []
    if isinstance(e, ast.BinaryOp) and e.op == "AND":
        return split_and(e.left) + split_and(e.right)
    return [e]


class AnyValue:
    """A column read outside an aggregate in an aggregate query: SQLite gives the
    value from one row of the group; we give the first row's."""

    __slots__ = ("value", "seen")

    def __init__(self) -> None:
        self.value, self.seen = None, False

    def step(self, v: Any) -> None:
        if not self.seen:
            self.value, self.seen = v, True

    def step_many(self, values: list) -> None:
        if values and not self.seen:
            self.value, self.seen = values[0], True

    def final(self) -> Any:
        return self.value


class Planner:
    def __init__(self, rt: Runtime, catalog: Catalog) -> None:
        self.rt = rt
        self.catalog = catalog
        self.compiler = Compiler(rt, self.plan_query)

    # ------------------------------------------------------------------ queries
    def plan_query(self, q: ast.Query, outer: Scope | None = None) -> Plan:
        if isinstance(q, ast.Select):
            plan = self.plan_select(q, outer)
        elif isinstance(q, ast.Compound):
            plan = self.plan_compound(q, outer)
        elif isinstance(q, ast.Values):
            plan = self.plan_values(q, outer)
        else:
            raise SemanticError(f"not a query: {type(q).__name__}")
        plan.scope = outer
        return plan

    def plan_values(self, v: ast.Values, outer: Scope | None) -> Plan:
        width = len(v.rows[0])
        if any(len(r) != width for r in v.rows):
            raise SemanticError("all VALUES must have the same number of terms")
        scope = Scope([], parent=outer)
        rows = [[self.compiler.compile(e, scope) for e in row] for row in v.rows]
        columns = [f"column{i + 1}" for i in range(width)]
        types = [self.compiler.static_type(e, scope) for e in v.rows[0]]
        plan = Plan(lambda: Values(rows), columns, types)
        return self._order_limit_outputs(plan, v.order_by, v.limit, v.offset, outer)

    def plan_compound(self, c: ast.Compound, outer: Scope | None) -> Plan:
        left = self.plan_query(c.left, outer)
        right = self.plan_query(c.right, outer)
        if len(left.columns) != len(right.columns):
            raise SemanticError(f"SELECTs to the left and right of {c.op} do not have the same "
                                f"number of result columns")
        lm, rm, op = left.make, right.make, c.op
        types = [a if a == b else None for a, b in zip(left.types, right.types)]
        plan = Plan(lambda: SetOp(lm(), rm(), op), left.columns, types)
        return self._order_limit_outputs(plan, c.order_by, c.limit, c.offset, outer)

    def _order_limit_outputs(self, plan: Plan, order_by: tuple, limit: ast.Expr | None,
                             offset: ast.Expr | None, outer: Scope | None) -> Plan:
        """ORDER BY / LIMIT over a query's output columns (compounds and VALUES)."""
        if not order_by and limit is None and offset is None:
            return plan
        out_scope = Scope([ColumnInfo(n, None, t) for n, t in zip(plan.columns, plan.types)], parent=outer)
        make = plan.make
        if order_by:
            positions = []
            for item in order_by:
                pos = self._output_position(item.expr, plan.columns)
                if pos is None:
                    if isinstance(item.expr, ast.ColumnRef):
                        pos = out_scope.resolve(item.expr.name, None)[1]
                    else:
                        raise SemanticError(f"ORDER BY term {to_sql(item.expr)} does not match any "
                                            f"column in the result set")
                positions.append((pos, item.descending, item.nulls_first))
            key, reverse = self._sort_key(positions)
            inner = make
            make = self._sorted(inner, key, reverse, limit, offset)
        else:
            inner = make
            lim, off = self._limit_fns(limit, offset)
            make = lambda: Limit(inner(), lim, off)  # noqa: E731
        return Plan(make, plan.columns, plan.types)

    @staticmethod
    def _output_position(e: ast.Expr, columns: list[str]) -> int | None:
        if isinstance(e, ast.Literal) and type(e.value) is int:
            if not 1 <= e.value <= len(columns):
                raise SemanticError(f"ORDER BY term out of range - should be between 1 and {len(columns)}")
            return e.value - 1
        if isinstance(e, ast.ColumnRef) and e.table is None:
            names = [c.lower() for c in columns]
            if e.name.lower() in names:
                return names.index(e.name.lower())
        return None

    # ------------------------------------------------------------------ SELECT
    def plan_select(self, s: ast.Select, outer: Scope | None) -> Plan:
        compiler = self.compiler
        conjuncts = split_and(s.where)
        if s.from_ is None:
            scope = Scope([], parent=outer)
            make: Factory = lambda: Values([[]])  # noqa: E731
            star_order: list[ColumnInfo] = []
            presorted = False
        else:
            make, scope, conjuncts, star_order, presorted = self.plan_from(
                s.from_, conjuncts, outer, order_hint=self._pk_order_hint(s))
        for c in conjuncts:
            if contains_aggregate(c):
                raise SemanticError("misuse of aggregate function in WHERE")
        if conjuncts:
            pred = self._conjunction([compiler.predicate(c, scope) for c in conjuncts])
            inner_where = make
            make = lambda: Filter(inner_where(), pred, "WHERE")  # noqa: E731

        # Output items, with * expanded in FROM order.
        items: list[tuple[ast.Expr, str]] = []
        for it in s.items:
            if isinstance(it.expr, ast.Star):
                cols = [c for c in star_order if not c.hidden and
                        (it.expr.table is None or (c.table or "").lower() == it.expr.table.lower())]
                if not cols:
                    if it.expr.table is not None:
                        raise SemanticError(f"no such table: {it.expr.table}")
                    raise SemanticError("SELECT * with no tables specified is not valid")
                items.extend((ast.ColumnRef(c.name, c.table), c.name) for c in cols)
            else:
                items.append((it.expr, it.alias or self._column_name(it.expr)))
        names = [n for _, n in items]

        # Which ORDER BY terms are output columns, which are expressions of their own.
        order_terms: list[tuple[int | ast.Expr, bool, bool | None]] = []
        for item in s.order_by:
            pos = self._output_position(item.expr, names)      # output aliases win, as in SQLite
            order_terms.append((pos if pos is not None else item.expr, item.descending, item.nulls_first))

        group_by = [self._group_term(g, items) for g in s.group_by]
        aggregated = bool(group_by) or any(contains_aggregate(e) for e, _ in items) or \
            (s.having is not None) or any(not isinstance(t, int) and contains_aggregate(t)
                                          for t, _, _ in order_terms)
        agg_map: dict | None = None
        if aggregated:
            make, agg_map = self._plan_aggregate(make, scope, group_by, items, s.having, order_terms)
            if s.having is not None:
                having = compiler.predicate(s.having, scope, agg_map)
                inner_having = make
                make = lambda: Filter(inner_having(), having, "HAVING")  # noqa: E731

        exprs = [compiler.compile(e, scope, agg_map) for e, _ in items]
        types = [compiler.static_type(e, scope) for e, _ in items]
        hidden: list[Compiled] = []
        sort_positions = []
        sort_types: list[str | None] = []
        for term, desc, nulls in order_terms:
            if isinstance(term, int):
                sort_positions.append((term, desc, nulls))
                sort_types.append(types[term])
            else:
                hidden.append(compiler.compile(term, scope, agg_map))
                sort_positions.append((len(exprs) + len(hidden) - 1, desc, nulls))
                sort_types.append(compiler.static_type(term, scope))
        width = len(exprs)
        all_exprs = exprs + hidden
        getter = self._getter(all_exprs, scope, [e for e, _ in items], agg_map) if not hidden else None
        picked = make.project(getter) if isinstance(make, HashJoinPlan) and isinstance(getter, list) else None
        if picked is not None:
            make = picked                          # the join builds the output rows itself
        elif getter is not _IDENTITY:
            inner_proj = make
            make = lambda: Project(inner_proj(), all_exprs, getter)  # noqa: E731
        if s.distinct:
            inner_distinct = make
            make = lambda: Distinct(inner_distinct(), width if hidden else None)  # noqa: E731
        if sort_positions and not presorted:
            key, reverse = self._sort_key(sort_positions, sort_types)
            make = self._sorted(make, key, reverse, s.limit, s.offset)
        elif s.limit is not None or s.offset is not None:
            lim, off = self._limit_fns(s.limit, s.offset)
            inner_limit = make
            make = lambda: Limit(inner_limit(), lim, off)  # noqa: E731
        if hidden:
            inner_strip = make
            kept = list(range(width))
            make = lambda: Project(inner_strip(), [], kept)  # noqa: E731
        return Plan(make, names, types)

    def _getter(self, exprs: list[Compiled], scope: Scope, asts: list[ast.Expr], agg_map: dict | None):
        """The input positions of the outputs when every output is a plain column (fast path)."""
        positions = []
        for e in asts:
            if agg_map is not None:
                pos = agg_map.get(e)
                if pos is None:
                    return None
                positions.append(pos)
                continue
            if not isinstance(e, ast.ColumnRef):
                return None
            depth, pos = scope.resolve(e.name, e.table)
            if depth:
                return None
            positions.append(pos)
        if agg_map is None and positions == list(range(len(scope.columns))):
            return _IDENTITY                       # SELECT * of one table: rows pass through as they are
        return positions

    def _group_term(self, g: ast.Expr, items: list[tuple[ast.Expr, str]]) -> ast.Expr:
        """GROUP BY accepts output ordinals and aliases too, as SQLite does."""
        if isinstance(g, ast.Literal) and type(g.value) is int:
            if not 1 <= g.value <= len(items):
                raise SemanticError(f"GROUP BY term out of range - should be between 1 and {len(items)}")
            return items[g.value - 1][0]
        return g

    def _plan_aggregate(self, make: Factory, scope: Scope, group_by: list[ast.Expr],
                        items: list[tuple[ast.Expr, str]], having: ast.Expr | None,
                        order_terms: list) -> tuple[Factory, dict]:
        compiler = self.compiler
        agg_map: dict = {}
        keys = []
        key_asts: list[ast.Expr] = []
        for g in group_by:
            if contains_aggregate(g):
                raise SemanticError("aggregate functions are not allowed in the GROUP BY clause")
            if g not in agg_map:
                agg_map[g] = len(keys)
                keys.append(compiler.compile(g, scope))
                key_asts.append(g)
        aggs: list[tuple[Callable[[], Any], list[Compiled]]] = []
        arg_asts: list[list[ast.Expr]] = []
        exprs = [e for e, _ in items] + ([having] if having is not None else []) + \
            [t for t, _, _ in order_terms if not isinstance(t, int)]

        def visit(e: Any) -> None:
            if e is None or e in agg_map:
                return
            if isinstance(e, ast.FunctionCall) and is_aggregate_call(e):
                for a in e.args:
                    if contains_aggregate(a):
                        raise SemanticError(f"misuse of aggregate function {e.name}()")
                factory = fn.aggregate_factory(e.name, 0 if e.star else len(e.args), distinct=e.distinct)
                args = [compiler.compile(a, scope) for a in e.args]
                agg_map[e] = len(keys) + len(aggs)
                aggs.append((factory, args))
                arg_asts.append(list(e.args))
                return
            if isinstance(e, ast.ColumnRef):
                depth, _ = scope.resolve(e.name, e.table)
                if depth == 0:
                    agg_map[e] = len(keys) + len(aggs)
                    aggs.append((AnyValue, [compiler.compile(e, scope)]))
                    arg_asts.append([e])
                return
            if isinstance(e, (ast.ScalarSubquery, ast.Exists)):
                return
            for name in e.__dataclass_fields__:
                if name in ("line", "col"):
                    continue
                v = getattr(e, name)
                if isinstance(v, ast.Expr):
                    visit(v)
                elif isinstance(v, tuple):
                    for x in v:
                        if isinstance(x, ast.Expr):
                            visit(x)
                        elif isinstance(x, ast.When):
                            visit(x.condition)
                            visit(x.result)
        for e in exprs:
            visit(e)
        if isinstance(make, HashJoinPlan):
            sided_keys = [self._sided(g, f, make, "L") for g, f in zip(key_asts, keys)]
            sided_aggs = [(factory, [self._sided(a, f, make, "R") for a, f in zip(asts, args)])
                          for (factory, args), asts in zip(aggs, arg_asts)]
            return make.aggregate(sided_keys, sided_aggs), agg_map
        rt = self.rt
        inner = make
        return (lambda: HashAggregate(rt, inner(), keys, aggs)), agg_map

    def _sided(self, e: ast.Expr, joined_fn: Compiled, join: HashJoinPlan, default: str) -> tuple[str, Compiled]:
        """``e`` (already compiled over the joined row as ``joined_fn``) for a
        ``HashJoinAggregate``: compiled over the one join input it reads, else ("LR", the
        joined-row function). ``default`` is the side for expressions that read neither."""
        sides = _sides(e, join.lscope, join.rscope)
        if sides is None or len(sides) > 1:
            return "LR", joined_fn
        side = next(iter(sides)) if sides else default
        return side, self.compiler.compile(e, join.lscope if side == "L" else join.rscope)

    def _column_name(self, e: ast.Expr) -> str:
        if isinstance(e, ast.ColumnRef):
            return e.name
        return to_sql(e)

    @staticmethod
    def _conjunction(preds: list[Compiled]) -> Compiled:
        return all_of(preds)

    # ------------------------------------------------------------------ ORDER BY / LIMIT
    def _sort_key(self, positions: list[tuple[int, bool, bool | None]],
                  types: list[str | None] | None = None) -> tuple[Any, bool]:
        """A key over projected rows, and whether to sort in reverse (all-DESC fast path).

        One typed column sorts by the column itself (C comparisons, no key tuples):
        the key is then a ``ColumnOrder``, which Sort and TopN recognise."""
        if len(positions) == 1 and types is not None and family(types[0]) is not None:
            p, desc, nulls = positions[0]
            return ColumnOrder(p, desc, (not desc) if nulls is None else nulls), desc
        all_desc = all(d for _, d, n in positions) and all(n is None for _, _, n in positions)
        keyfns = [(p, fn.make_sort_key(False if all_desc else d, None if all_desc else n))
                  for p, d, n in positions]
        if len(keyfns) == 1:
            (p, k), = keyfns
            return (lambda r: k(r[p])), all_desc
        return (lambda r: tuple([k(r[p]) for p, k in keyfns])), all_desc

    def _limit_fns(self, limit: ast.Expr | None, offset: ast.Expr | None):
        scope = Scope([])
        lim_f = self.compiler.compile(limit, scope) if limit is not None else None
        off_f = self.compiler.compile(offset, scope) if offset is not None else None

        def lim() -> int | None:
            if lim_f is None:
                return None
            v = _integer(lim_f(()), "LIMIT")
            return None if v < 0 else v

        def off() -> int:
            return max(0, _integer(off_f(()), "OFFSET")) if off_f is not None else 0
        return lim, off

    def _sorted(self, make: Factory, key: Callable, reverse: bool, limit: ast.Expr | None,
                offset: ast.Expr | None) -> Factory:
        rt = self.rt
        if limit is None:
            if offset is None:
                return lambda: Sort(make(), key, reverse)
            lim, off = self._limit_fns(None, offset)
            return lambda: Limit(Sort(make(), key, reverse), lim, off)
        lim, off = self._limit_fns(limit, offset)

        def n() -> int:
            v = lim()
            return 1 << 62 if v is None else v + off()

        def build() -> Operator:
            return Limit(TopN(rt, make(), key, n, reverse), lambda: None, off)
        return build

    # ------------------------------------------------------------------ FROM
    def _pk_order_hint(self, s: ast.Select) -> tuple[str, bool] | None:
        """ORDER BY <pk> [DESC] over one table can be read in key order, without a sort."""
        if len(s.order_by) != 1 or not isinstance(s.from_, ast.TableRef) or s.group_by or s.distinct:
            return None
        item = s.order_by[0]
        if not isinstance(item.expr, ast.ColumnRef) or item.nulls_first is not None:
            return None
        if any(contains_aggregate(it.expr) for it in s.items if not isinstance(it.expr, ast.Star)):
            return None
        if any(it.alias and it.alias.lower() == item.expr.name.lower() for it in s.items):
            return None
        return item.expr.name, item.descending

    def plan_from(self, node: ast.FromItem, conjuncts: list[ast.Expr], outer: Scope | None,
                  order_hint: tuple[str, bool] | None = None):
        """-> (factory, scope of the joined rows, conjuncts left to apply, columns in FROM order,
        whether the rows already come in the order of ``order_hint``)."""
        if not _has_outer_join(node):
            sources, on_conds = self._flatten(node, outer)
            star_order = [c for s in sources for c in s.columns]
            make, scope, rest, presorted = self._plan_inner(sources, conjuncts + on_conds, outer, order_hint)
            return make, scope, rest, star_order, presorted
        if not isinstance(node, ast.Join):
            raise SemanticError("unexpected FROM item")
        if node.kind in ("RIGHT", "FULL"):
            raise NotImplementedFeature(f"{node.kind} JOIN is not supported; use LEFT JOIN")
        lmake, lscope, lrest, lorder, _ = self.plan_from(node.left, [], outer)
        right_sources, right_on = self._flatten(node.right, outer) if not _has_outer_join(node.right) \
            else (None, None)
        if right_sources is None:
            rmake, rscope, rrest, rorder, _ = self.plan_from(node.right, [], outer)
            rcols = rscope.columns
            if rrest:
                pred = self._conjunction([self.compiler.predicate(c, rscope) for c in rrest])
                r_inner = rmake
                rmake = lambda: Filter(r_inner(), pred)  # noqa: E731
        else:
            rmake, rscope, rrest, _ = self._plan_inner(right_sources, right_on, outer, None)
            rcols = rscope.columns
            rorder = [c for s in right_sources for c in s.columns]
            if rrest:
                pred = self._conjunction([self.compiler.predicate(c, rscope) for c in rrest])
                r_inner = rmake
                rmake = lambda: Filter(r_inner(), pred)  # noqa: E731
        on = split_and(node.on)
        using_hidden: set[int] = set()
        for name in node.using:
            lpos = lscope.find(name, None)
            rpos = Scope(rcols).find(name, None)
            if lpos is None or rpos is None:
                raise SemanticError(f"cannot join using column {name} - column not present in both tables")
            on.append(ast.BinaryOp("=", ast.ColumnRef(lscope.columns[lpos].name, lscope.columns[lpos].table),
                                   ast.ColumnRef(rcols[rpos].name, rcols[rpos].table)))
            using_hidden.add(rpos)
        if using_hidden:
            rcols = [ColumnInfo(c.name, c.table, c.type, True) if i in using_hidden else c
                     for i, c in enumerate(rcols)]
            rorder = [ColumnInfo(c.name, c.table, c.type, True) if any(
                c.name == rcols[i].name and c.table == rcols[i].table for i in using_hidden) else c
                for c in rorder]
        joined = Scope(lscope.columns + rcols, parent=outer)
        rscope2 = Scope(rcols, parent=outer)
        make = self._join(lmake, lscope, rmake, rscope2, joined, on, node.kind if node.kind == "LEFT" else "INNER")
        star_order = lorder + rorder
        if lrest:
            conjuncts = lrest + conjuncts
        return make, joined, conjuncts, star_order, False

    def _join(self, lmake: Factory, lscope: Scope, rmake: Factory, rscope: Scope, joined: Scope,
              on: list[ast.Expr], kind: str) -> Factory:
        """Join two inputs on ``on``: a hash join over its equalities, if any."""
        lkeys, rkeys, rest = [], [], []
        for c in on:
            pair = self._equi_pair(c, lscope, rscope)
            if pair is not None:
                lkeys.append(pair[0])
                rkeys.append(pair[1])
            else:
                rest.append(c)
        rt, rwidth = self.rt, len(rscope.columns)
        residual = self._conjunction([self.compiler.predicate(c, joined) for c in rest]) if rest else None
        if lkeys:
            lfs = [self.compiler.compile(e, lscope) for e in lkeys]
            rfs = [self.compiler.compile(e, rscope) for e in rkeys]
            for i, (le, re_) in enumerate(zip(lkeys, rkeys)):     # '1' = 1 between columns
                if isinstance(le, ast.ColumnRef) and isinstance(re_, ast.ColumnRef):
                    lfs[i], rfs[i] = column_operands(self.compiler.static_type(le, lscope),
                                                     self.compiler.static_type(re_, rscope), lfs[i], rfs[i])
            lk = self._key_fn(lfs)
            rk = self._key_fn(rfs)
            return HashJoinPlan(rt, lmake, rmake, lk, rk, kind, lscope, rscope, residual)
        return lambda: NestedLoopJoin(rt, lmake(), rmake(), kind, rwidth, residual)

    @staticmethod
    def _key_fn(fs: list[Compiled]) -> Compiled:
        if len(fs) == 1:
            return fs[0]
        return lambda r: tuple([f(r) for f in fs])

    def _equi_pair(self, c: ast.Expr, lscope: Scope, rscope: Scope) -> tuple[ast.Expr, ast.Expr] | None:
        """(left expression, right expression) if ``c`` is ``l = r`` across the two sides."""
        if not (isinstance(c, ast.BinaryOp) and c.op == "="):
            return None
        a, b = c.left, c.right
        sa, sb = _sides(a, lscope, rscope), _sides(b, lscope, rscope)
        if sa == {"L"} and sb == {"R"}:
            return a, b
        if sa == {"R"} and sb == {"L"}:
            return b, a
        return None

    def _flatten(self, node: ast.FromItem, outer: Scope | None) -> tuple[list[Source], list[ast.Expr]]:
        """Inner/cross joins as a list of sources plus their ON conditions."""
        if isinstance(node, ast.Join):
            ls, lc = self._flatten(node.left, outer)
            rs, rc = self._flatten(node.right, outer)
            conds = lc + rc + split_and(node.on)
            for name in node.using:
                left_src = next((s for s in ls if any(c.name.lower() == name.lower() for c in s.columns)), None)
                right_src = next((s for s in rs if any(c.name.lower() == name.lower() for c in s.columns)), None)
                if left_src is None or right_src is None:
                    raise SemanticError(f"cannot join using column {name} - column not present in both tables")
                conds.append(ast.BinaryOp("=", ast.ColumnRef(name, left_src.alias), ast.ColumnRef(name, right_src.alias)))
                right_src.columns = [ColumnInfo(c.name, c.table, c.type, True) if c.name.lower() == name.lower()
                                     else c for c in right_src.columns]
            return ls + rs, conds
        return [self._source(node, outer)], []

    def _source(self, node: ast.FromItem, outer: Scope | None) -> Source:
        if isinstance(node, ast.SubqueryRef):
            plan = self.plan_query(node.query, outer)
            alias = node.alias or f"subquery{id(node)}"
            cols = [ColumnInfo(n, alias, t) for n, t in zip(derived_column_names(plan.columns), plan.types)]
            return Source(alias, cols, subplan=plan)
        if not isinstance(node, ast.TableRef):
            raise SemanticError(f"unexpected FROM item {type(node).__name__}")
        alias = node.alias or node.name
        if node.as_of is not None:
            when = self.compiler.compile(node.as_of, Scope([]))
            then = self._schema_as_of(node.name, when)
            cols = [ColumnInfo(c.name, alias, c.type or None) for c in then.columns]
            return Source(alias, cols, table=then.name, as_of=when, schema=then)
        view = self.catalog.view(node.name)
        if view is not None and not self.catalog.has_table(node.name):
            query, names = view
            plan = self.plan_query(query, None)
            names = list(names) or plan.columns
            cols = [ColumnInfo(n, alias, t) for n, t in zip(derived_column_names(names), plan.types)]
            return Source(alias, cols, subplan=plan)
        schema = self.catalog.schema(node.name)
        cols = [ColumnInfo(c.name, alias, c.type or None) for c in schema.columns]
        return Source(alias, cols, table=schema.name)

    def _schema_as_of(self, name: str, when: Compiled) -> Any:
        """Table ``name`` as it was at ``AS OF SYSTEM TIME when``: a past moment is read
        with the columns and key types it had then (it may since have been altered,
        dropped or recreated). Without a clock to ask (a write statement) the plan
        uses today's schema, and the run refuses the read."""
        rt = self.rt
        if rt.snapshot_at is None:
            return self.catalog.schema(name)
        moment = parse_as_of(when(()), rt.now)
        try:
            return Catalog(rt.snapshot_at(moment)).schema(name)
        except UnknownTable:
            if self.catalog.view(name) is not None:
                raise SemanticError(f"{name} is a view; AS OF SYSTEM TIME reads tables - read the whole "
                                    f"query at that moment with the as_of parameter") from None
            raise UnknownTable(f"no such table: {name} as of {_iso(moment)}") from None

    def _plan_inner(self, sources: list[Source], conjuncts: list[ast.Expr], outer: Scope | None,
                    order_hint: tuple[str, bool] | None):
        """Greedy join order over inner-joined sources:
        -> (factory, scope, leftover conjuncts, presorted by ``order_hint``)."""
        local_scopes = [Scope(s.columns, parent=outer) for s in sources]
        multi: list[tuple[ast.Expr, set[int]]] = []
        everything = set(range(len(sources)))
        for c in conjuncts:
            used = _sources_used(c, local_scopes)
            if len(sources) > 1 and _has_subquery(c):
                multi.append((c, everything))          # runs once every source is joined
            elif len(used) == 1:
                sources[next(iter(used))].pushed.append(c)
            else:
                multi.append((c, used))
        if len(sources) > 1:
            order_hint = None
        ops = [self._source_op(s, local_scopes[i], outer, order_hint) for i, s in enumerate(sources)]
        # Start from a source with a key lookup, else the first; add sources linked by equalities first.
        start = next((i for i, (_, kind, _) in enumerate(ops) if kind == "lookup"), 0)
        order = [start]
        make = ops[start][0]
        layout_cols = list(sources[start].columns)
        pending = list(multi)
        remaining = [i for i in range(len(sources)) if i != start]
        while remaining:
            cur = Scope(layout_cols, parent=outer)
            pick = None
            for i in remaining:
                if any(used <= set(order) | {i} and i in used and self._equi_pair(c, cur, local_scopes[i])
                       for c, used in pending):
                    pick = i
                    break
            if pick is None:
                pick = remaining[0]
            remaining.remove(pick)
            now = set(order) | {pick}
            on = [c for c, used in pending if used <= now]
            pending = [(c, used) for c, used in pending if not used <= now]
            joined = Scope(layout_cols + sources[pick].columns, parent=outer)
            make = self._join(make, cur, ops[pick][0], local_scopes[pick], joined, on, "INNER")
            order.append(pick)
            layout_cols = layout_cols + sources[pick].columns
        scope = Scope(layout_cols, parent=outer)
        leftovers = [c for c, _ in pending]
        return make, scope, leftovers, len(sources) == 1 and ops[0][2]

    # ------------------------------------------------------------------ access paths
    def _source_op(self, src: Source, scope: Scope, outer: Scope | None,
                   order_hint: tuple[str, bool] | None) -> tuple[Factory, str, bool]:
        """(factory, access kind: lookup | range | scan, presorted by ``order_hint``)."""
        if src.subplan is not None:
            sub = src.subplan
            make: Factory = lambda: Rows(sub.run, f"Subquery {src.alias}")  # noqa: E731
            kind, presorted, implied = "scan", False, None
        else:
            make, kind, presorted, implied = self._access_path(src, scope, order_hint)
        # An equality the key lookup already guarantees need not be checked again per row.
        filters = [self.compiler.predicate(c, scope) for c in src.pushed if c is not implied]
        pred = self._conjunction(filters) if filters else None
        if pred is None:
            return make, kind, presorted
        base = make
        return (lambda: Filter(base(), pred, f"on {src.alias}")), kind, presorted

    def _view_fn(self, src: Source) -> Callable[[], Any]:
        rt = self.rt
        if src.as_of is None:
            return lambda: rt.snapshot
        f, planned = src.as_of, src.schema

        def at() -> Any:
            if rt.snapshot_at is None:
                raise SemanticError("AS OF SYSTEM TIME is not available here")
            when = parse_as_of(f(()), rt.now)
            snap = rt.snapshot_at(when)
            if not snap.has_table(planned.name) or snap.schema(planned.name) != planned:
                raise StalePlan(planned.name, when)
            return snap
        return at

    def _access_path(self, src: Source, scope: Scope,
                     order_hint: tuple[str, bool] | None) -> tuple[Factory, str, bool, ast.Expr | None]:
        """(factory, kind, presorted, the conjunct an exact key lookup makes redundant)."""
        rt, table = self.rt, src.table
        schema = src.schema if src.schema is not None else self.catalog.schema(table)  # type: ignore[arg-type]
        view = self._view_fn(src)
        pk = schema.primary_key
        pk_col = pk[0] if len(pk) == 1 else None
        best = None
        for c in src.pushed:
            access = self.match_access(c, scope)
            if access is None:
                continue
            col, op, value_fns = access
            if col == pk_col:
                rank = 0 if op in ("=", "IN") else 2
                best = min(best or (9,), (rank, "pk", col, op, value_fns, c), key=lambda x: x[0])
            else:
                ix = next((i for i in schema.indexes if i.columns[0] == col), None)
                if ix is not None:
                    rank = 1 if op in ("=", "IN") else 3
                    best = min(best or (9,), (rank, ix.name, col, op, value_fns, c), key=lambda x: x[0])
        reverse = presorted = False
        if order_hint is not None and pk_col is not None and \
                schema.columns[pk_col].name.lower() == order_hint[0].lower() and \
                (best is None or best[1] == "pk"):
            reverse, presorted = order_hint[1], True
        if best is None:
            return (lambda: TableScan(rt, table, view, reverse=reverse)), "scan", presorted, None
        _, where, col, op, value_fns, conjunct = best
        fam = family(schema.columns[col].type)
        # The lookup is exact (same equality, values normalised as the comparison would) only
        # for typed key columns; otherwise keep checking the condition on each row.
        implied = conjunct if op in ("=", "IN") and fam is not None else None
        if where == "pk":
            if op in ("=", "IN"):
                keys = _keys_fn(value_fns, fam)
                return (lambda: KeyLookup(rt, table, view, keys)), "lookup", presorted and not reverse, implied
            lo, hi, lo_inc, hi_inc = _range_fns(op, value_fns, fam)
            return (lambda: TableScan(rt, table, view, lo=lo, hi=hi, lo_inclusive=lo_inc,
                                      hi_inclusive=hi_inc, reverse=reverse)), "range", presorted, None
        if op in ("=", "IN"):
            keys = _keys_fn(value_fns, fam)
            return (lambda: IndexScan(rt, table, where, view, points=keys)), "lookup", False, implied
        lo, hi, lo_inc, hi_inc = _range_fns(op, value_fns, fam)
        return (lambda: IndexScan(rt, table, where, view, lo=lo, hi=hi, lo_inclusive=lo_inc,
                                  hi_inclusive=hi_inc)), "range", False, None

    def match_access(self, c: ast.Expr, scope: Scope):
        """(column position, op, value functions) when ``c`` bounds one column by values
        that do not depend on the row: col = v, col IN (...), col < v, col BETWEEN a AND b."""
        def column(e: ast.Expr) -> int | None:
            if isinstance(e, ast.ColumnRef):
                try:
                    depth, pos = scope.resolve(e.name, e.table)
                except HeliosError:
                    return None
                return pos if depth == 0 else None
            return None

        def independent(e: ast.Expr) -> bool:
            for n in walk(e, into_subqueries=True):
                if isinstance(n, ast.ColumnRef):
                    try:
                        if scope.find(n.name, n.table) is not None:
                            return False
                    except HeliosError:
                        return False
                if isinstance(n, (ast.ScalarSubquery, ast.Exists, ast.InSubquery, ast.CurrentTime)):
                    return False
                if isinstance(n, ast.FunctionCall) and is_aggregate_call(n):
                    return False
            return True

        compile_ = lambda e: self.compiler.compile(e, Scope([], parent=scope.parent))  # noqa: E731
        if isinstance(c, ast.BinaryOp) and c.op in ("=", "<", "<=", ">", ">="):
            flip = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "="}
            col = column(c.left)
            if col is not None and independent(c.right):
                return col, c.op, [compile_(c.right)]
            col = column(c.right)
            if col is not None and independent(c.left):
                return col, flip[c.op], [compile_(c.left)]
            return None
        if isinstance(c, ast.InList) and not c.negated:
            col = column(c.operand)
            if col is not None and c.items and all(independent(i) for i in c.items):
                return col, "IN", [compile_(i) for i in c.items]
            return None
        if isinstance(c, ast.Between) and not c.negated:
            col = column(c.operand)
            if col is not None and independent(c.low) and independent(c.high):
                return col, "BETWEEN", [compile_(c.low), compile_(c.high)]
        return None


# ---------------------------------------------------------------------- helpers
def _has_outer_join(node: ast.FromItem) -> bool:
    if isinstance(node, ast.Join):
        return node.kind not in ("INNER", "CROSS") or _has_outer_join(node.left) or _has_outer_join(node.right)
    return False


def _sides(e: ast.Expr, lscope: Scope, rscope: Scope) -> set[str] | None:
    sides: set[str] = set()
    for n in walk(e, into_subqueries=False):
        if isinstance(n, (ast.ScalarSubquery, ast.Exists, ast.InSubquery)):
            return None
        if isinstance(n, ast.ColumnRef):
            try:
                in_l = lscope.find(n.name, n.table) is not None
                in_r = rscope.find(n.name, n.table) is not None
            except HeliosError:
                return None
            if in_l and in_r:
                return None
            if in_l:
                sides.add("L")
            elif in_r:
                sides.add("R")
    return sides


def _sources_used(c: ast.Expr, scopes: list[Scope]) -> set[int]:
    """Indexes of the sources ``c`` reads."""
    used: set[int] = set()
    for n in walk(c, into_subqueries=True):
        if isinstance(n, ast.ColumnRef):
            hits = []
            for i, s in enumerate(scopes):
                try:
                    if s.find(n.name, n.table) is not None:
                        hits.append(i)
                except HeliosError:
                    hits.append(i)
            if len(hits) > 1 and n.table is None:
                raise SemanticError(f"ambiguous column name: {n.name}")
            used.update(hits)
    return used


def _has_subquery(c: ast.Expr) -> bool:
    return any(isinstance(n, (ast.ScalarSubquery, ast.Exists, ast.InSubquery)) for n in walk(c))


def _normalizer(fam: str | None) -> Callable[[Any], Any]:
    """Bring a lookup value into the key's type family (SQLite affinity), or NO_BOUND."""
    def norm(v: Any) -> Any:
        if v is None:
            return None
        if fam == "num":
            if isinstance(v, str):
                from .values import apply_numeric_affinity
                v = apply_numeric_affinity(v)
            return v if isinstance(v, (int, float)) else NO_BOUND
        if fam == "text":
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                from .values import to_text
                return to_text(v)
            return v if isinstance(v, str) else NO_BOUND
        return NO_BOUND
    return norm


def key_values(value_fns: list[Compiled], fam: str | None) -> list:
    """The lookup values, normalised to the key's type; those that can match nothing dropped."""
    norm = _normalizer(fam)
    out = []
    for f in value_fns:
        v = norm(f(()))
        if v is not None and v is not NO_BOUND:
            out.append(v)
    return out


def _keys_fn(value_fns: list[Compiled], fam: str | None) -> Callable[[], list]:
    return partial(key_values, value_fns, fam)        # a partial: fused.py reads its arguments


def _range_fns(op: str, value_fns: list[Compiled], fam: str | None):
    norm = _normalizer(fam)

    def bound(f: Compiled) -> Callable[[], Any]:
        def b() -> Any:
            v = norm(f(()))
            return UNBOUNDED if v is NO_BOUND else v
        return b
    if op == "BETWEEN":
        return bound(value_fns[0]), bound(value_fns[1]), True, True
    f = bound(value_fns[0])
    if op == "<":
        return None, f, True, False
    if op == "<=":
        return None, f, True, True
    if op == ">":
        return f, None, False, True
    return f, None, True, True


def _integer(v: Any, what: str) -> int:
    if type(v) is int:
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and re.fullmatch(r"\s*[+-]?\d+\s*", v):
        return int(v)
    raise TypeMismatch(f"datatype mismatch: {what} must be an integer, not {v!r}")


_RELATIVE = re.compile(r"^\s*-\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d)\s*$")
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _iso(ts: float) -> str:
    """A moment as users write it in AS OF SYSTEM TIME (UTC ISO-8601)."""
    try:
        moment = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return f"{ts:.6f}"
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_as_of(v: Any, now: float) -> float:
    """AS OF SYSTEM TIME value -> Unix seconds: a number, ISO-8601 text or '-1h' relative."""
    if isinstance(v, bool) or v is None:
        raise InvalidParameter(f"AS OF SYSTEM TIME needs a timestamp, not {v!r}")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        m = _RELATIVE.match(v)
        if m:
            return now - float(m.group(1)) * _UNIT[m.group(2)]
        try:
            return float(v)
        except ValueError:
            pass
        try:
            dt = datetime.datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameter(f"AS OF SYSTEM TIME: cannot read {v!r} as a time "
                                   f"(use Unix seconds, ISO-8601 or a relative '-1h')") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=datetime.timezone.utc)
        return dt.timestamp()
    raise InvalidParameter(f"AS OF SYSTEM TIME needs a timestamp, not {v!r}")
