"""The SQL engine: statements in, results out, over a storage snapshot or transaction.

Parsing is cached by SQL text (process-wide: ASTs are immutable) and plans by
SQL text per thread (a plan's closures share one mutable ``Runtime``). A cached
plan is reused only while the schemas and views it was planned against are the
ones of the snapshot at hand, so DDL, branches and time travel never see a
stale plan. The engine never imports storage internals beyond the read/write
protocol of ``StateView`` and ``Transaction``, nor anything of HTTP.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter
from typing import Any, Callable, Iterator

from ..errors import InvalidParameter, SemanticError, TransactionError
from . import ast, ddl, dml
from .catalog import Catalog, deps_check
from .compile import walk
from .fused import fuse
from .operators import run_all
from .parser import parse
from .planner import Plan, Planner, StalePlan
from .runtime import Runtime
from .values import check_param, value_type_name

PARSE_CACHE_SIZE = 1024
PLAN_CACHE_SIZE = 256

STATEMENT_TYPES: dict[type, str] = {
    ast.Select: "SELECT", ast.Compound: "SELECT", ast.Values: "SELECT", ast.Insert: "INSERT",
    ast.Update: "UPDATE", ast.Delete: "DELETE", ast.CreateTable: "CREATE_TABLE",
    ast.DropTable: "DROP_TABLE", ast.CreateIndex: "CREATE_INDEX", ast.DropIndex: "DROP_INDEX",
    ast.CreateView: "CREATE_VIEW", ast.DropView: "DROP_VIEW", ast.AddColumn: "ALTER_TABLE",
    ast.RenameTable: "ALTER_TABLE", ast.RenameColumn: "ALTER_TABLE", ast.Begin: "BEGIN",
    ast.Commit: "COMMIT", ast.Rollback: "ROLLBACK", ast.Explain: "EXPLAIN", ast.Reindex: "REINDEX",
}


@dataclass(slots=True)
class Result:
    """What a statement returns. Rows are tuples in column order."""

    columns: list[str] = field(default_factory=list)
    column_types: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    statement_type: str = "SELECT"
    affected_rows: int = 0

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)


def statement_type(stmt: ast.Statement) -> str:
    return STATEMENT_TYPES.get(type(stmt), type(stmt).__name__.upper())


def is_read_only(stmt: ast.Statement) -> bool:
    return isinstance(stmt, (ast.Query, ast.Explain))


_PLAIN = frozenset({int, float, str, bytes, type(None)})


def bind_params(params: Any) -> tuple:
    """Plain values, or the REST API's typed ``{"type": T, "value": v}`` objects."""
    if params is None:
        return ()
    if type(params) in (tuple, list) and all(type(p) in _PLAIN for p in params):
        return tuple(params)                   # the common case, checked in C
    if isinstance(params, (str, bytes)) or not hasattr(params, "__iter__") or isinstance(params, dict):
        raise InvalidParameter("params must be a list of values")
    out = []
    for i, p in enumerate(params, 1):
        if isinstance(p, dict):
            if set(p) - {"type", "value"} or "type" not in p:
                raise InvalidParameter(f"${i}: a typed parameter is {{\"type\": T, \"value\": v}}")
            out.append(check_param(p["type"], p.get("value"), position=i))
        elif p is None or isinstance(p, (bool, int, float, str, bytes)):
            out.append(int(p) if isinstance(p, bool) else p)
        else:
            raise InvalidParameter(f"${i}: unsupported parameter type {type(p).__name__}")
    return tuple(out)


def bind(params: Any, needed: int) -> tuple:
    """``bind_params``, refusing fewer than the ``needed`` parameters a statement uses."""
    if type(params) is tuple and len(params) >= needed:
        for p in params:
            if type(p) not in _PLAIN:
                break
        else:
            return params                      # the common case: what bind_params gives, unchanged
    bound = bind_params(params)
    if len(bound) < needed:
        raise InvalidParameter(f"the statement uses ${needed} but {len(bound)} parameters were given")
    return bound


_ROW_TYPES = frozenset({tuple, list})


def bind_many(seq: Any, needed: int) -> tuple[list[tuple], list[set[type]]] | None:
    """executemany's parameter sets bound in bulk, with C-level passes over columns.

    When ``seq`` is a list or tuple of tuples or lists, all as long, of at least
    ``needed`` plain values, every set binds as itself (what ``bind`` gives it): returns
    the sets as tuples and each parameter's set of value types. None for anything else:
    the caller then binds set by set, with ``bind``'s exact errors."""
    if type(seq) not in _ROW_TYPES or not seq:
        return None
    row_types = set(map(type, seq))
    widths = set(map(len, seq)) if row_types <= _ROW_TYPES else None
    if widths is None or len(widths) != 1 or (width := widths.pop()) < needed:
        return None
    kinds = [set(map(type, map(itemgetter(i), seq))) for i in range(width)]
    if not all(k <= _PLAIN for k in kinds):
        return None
    rows = seq if type(seq) is list and row_types == {tuple} else list(map(tuple, seq))
    return rows, kinds


HEAVY_ROWS = 1000
HEAVY_TABLES = 3


def is_heavy(stmt: ast.Statement) -> bool:
    """A query the API rate-limits as a heavy operation: LIMIT over 1000 rows, or more
    than three tables joined."""
    tables = 0
    for node in walk(stmt, into_subqueries=True):
        if isinstance(node, ast.TableRef):
            tables += 1
        elif isinstance(node, (ast.Select, ast.Compound, ast.Values)) and isinstance(node.limit, ast.Literal):
            v = node.limit.value
            if isinstance(v, (int, float)) and v > HEAVY_ROWS:
                return True
    return tables > HEAVY_TABLES


def param_count(stmt: Any) -> int:
    """The highest ``$n`` a statement uses, VALUES rows included (``walk`` does not
    enter them: they are tuples of tuples)."""
    top = 0
    for n in walk(stmt, into_subqueries=True):
        if isinstance(n, ast.Parameter):
            top = max(top, n.index)
        elif isinstance(n, ast.Values):
            top = max([top] + [param_count(e) for row in n.rows for e in row])
    return top


# DDL statement -> how to run it in a transaction (they change no rows: affected_rows is 0).
_DEFINITIONS: dict[type, Callable[[Any, Any, Planner], Any]] = {
    ast.CreateTable: lambda tx, stmt, p: ddl.create_table(tx, stmt, p.rt, p.compiler),
    ast.DropTable: lambda tx, stmt, p: ddl.drop_table(tx, stmt),
    ast.CreateIndex: lambda tx, stmt, p: ddl.create_index(tx, stmt),
    ast.DropIndex: lambda tx, stmt, p: ddl.drop_index(tx, stmt),
    ast.CreateView: lambda tx, stmt, p: ddl.create_view(tx, stmt, p.plan_query),
    ast.DropView: lambda tx, stmt, p: ddl.drop_view(tx, stmt),
    ast.AddColumn: lambda tx, stmt, p: ddl.add_column(tx, stmt, p.compiler),
    ast.RenameTable: lambda tx, stmt, p: ddl.rename_table(tx, stmt),
    ast.RenameColumn: lambda tx, stmt, p: ddl.rename_column(tx, stmt),
    ast.Reindex: lambda tx, stmt, p: ddl.reindex(tx, stmt),
}


class Prepared:
    """One statement of a SQL text, parsed once and cached with the text: everything
    the facade dispatches on, so a repeated statement costs one dict lookup."""

    __slots__ = ("key", "stmt", "nparams", "read_only", "control", "stype")

    def __init__(self, key: Any, stmt: ast.Statement, nparams: int) -> None:
        self.key, self.stmt, self.nparams = key, stmt, nparams     # key: the plan cache's
        self.read_only = is_read_only(stmt)
        self.control = isinstance(stmt, (ast.Begin, ast.Commit, ast.Rollback))
        self.stype = statement_type(stmt)


class _Cached:
    """A plan with its ``Runtime``, valid while ``valid(view)`` holds. For queries also
    what the result needs: the column names and types, and ``run`` (the operators, or
    a fused function when the plan is a key lookup)."""

    __slots__ = ("rt", "planner", "plan", "deps", "valid", "run", "columns", "types", "static_types")

    def __init__(self, rt: Runtime, planner: Planner, plan: Any, deps: dict, *, fused: bool) -> None:
        self.rt, self.planner, self.plan, self.deps = rt, planner, plan, deps
        self.valid = deps_check(deps)
        self.run: Callable[[], list[tuple]] | None = None
        if isinstance(plan, Plan):
            self.run = partial(self._first_run, fused)
            self.columns, self.types = list(plan.columns), list(plan.types)
            self.static_types = None not in self.types and "any" not in self.types

    def _first_run(self, fused: bool) -> list[tuple]:
        """Build the operators (as every execution does), and keep a fused function
        for later executions when the chain is a key lookup."""
        op = self.plan.make()
        f = fuse(op) if fused else None
        self.run = f or (lambda make=self.plan.make: run_all(make()))
        return run_all(op)


class _ThreadPlans(threading.local):
    """Each thread's plan cache (a plan's closures share one mutable Runtime)."""

    def __init__(self) -> None:
        self.plans: OrderedDict[Any, _Cached] = OrderedDict()


class Engine:
    def __init__(self, *, fuse_lookups: bool = True) -> None:
        self._parsed: OrderedDict[str, tuple[Prepared, ...]] = OrderedDict()
        self._parse_lock = threading.Lock()
        self._local = _ThreadPlans()
        self.fuse_lookups = fuse_lookups          # False: every query runs its operators (tests)

    # ------------------------------------------------------------------ parsing
    def prepare(self, sql: str) -> tuple[Prepared, ...]:
        """The statements of ``sql``, cached by text."""
        if not isinstance(sql, str):
            raise InvalidParameter("sql must be a string")
        hit = self._parsed.get(sql)
        if hit is not None:
            return hit
        stmts = tuple(Prepared((sql, i), s, param_count(s)) for i, s in enumerate(parse(sql)))
        with self._parse_lock:
            self._parsed[sql] = stmts
            if len(self._parsed) > PARSE_CACHE_SIZE:
                self._parsed.popitem(last=False)
        return stmts

    def _cached(self, key: Any, view: Any, build: Callable[[Runtime, Planner, Catalog], Any],
                prime: Callable[[Runtime], None] | None = None) -> _Cached:
        """The cached plan of ``key`` if still valid for ``view``, else a new one;
        ``prime`` gives the planner this execution's runtime (parameters, clock), which
        an ``AS OF SYSTEM TIME`` moment needs to be planned with the schema of then."""
        cache = self._local.plans
        hit = cache.get(key)
        if hit is not None and hit.valid(view):
            cache.move_to_end(key)
            return hit
        rt = Runtime()
        catalog = Catalog(view)
        planner = Planner(rt, catalog)
        rt.snapshot = view
        if prime is not None:
            prime(rt)
        plan = build(rt, planner, catalog)
        hit = _Cached(rt, planner, plan, catalog.deps, fused=self.fuse_lookups)
        cache[key] = hit
        if len(cache) > PLAN_CACHE_SIZE:
            cache.popitem(last=False)
        return hit

    # ------------------------------------------------------------------ execution
    def query(self, key: Any, stmt: ast.Statement, params: tuple, view: Any, *,
              timeout_ms: int | None = None, snapshot_at: Callable[[float], Any] | None = None,
              cancel: Any = None) -> Result:
        """Run a read-only statement against ``view`` (a snapshot or a transaction)."""
        if isinstance(stmt, ast.Explain):
            inner = stmt.statement
            if not isinstance(inner, ast.Query):
                raise SemanticError("EXPLAIN supports SELECT statements")
            c = self._cached(key, view, lambda rt, planner, cat: planner.plan_query(inner),
                             _primer(params, view, timeout_ms, snapshot_at, cancel))
            c.rt.reset(params, view, timeout_ms, snapshot_at, cancel)
            lines = c.plan.make().explain()
            return Result(["plan"], ["text"], [(line,) for line in lines], "EXPLAIN", 0)
        cache = self._local.plans
        c = cache.get(key)
        if c is not None and c.valid(view):             # the common case, inline
            cache.move_to_end(key)
        else:
            c = self._cached(key, view, lambda rt, planner, cat: planner.plan_query(stmt),
                             _primer(params, view, timeout_ms, snapshot_at, cancel))
        c.rt.reset(params, view, timeout_ms, snapshot_at, cancel)
        try:
            rows = c.run()
        except StalePlan:
            c = self._replan(key, view, lambda rt, planner, cat: planner.plan_query(stmt),
                             _primer(params, view, timeout_ms, snapshot_at, cancel))
            with _changed_while_planning():
                rows = c.run()
        types = c.types.copy() if c.static_types else _column_types(c.types, rows)
        return Result(c.columns.copy(), types, rows, "SELECT", 0)

    def _replan(self, key: Any, view: Any, build: Callable[[Runtime, Planner, Catalog], Any],
                prime: Callable[[Runtime], None]) -> _Cached:
        """``key``'s plan made afresh for this execution: the cached one read a table AS OF
        a moment whose schema is not the one it was planned with."""
        self._local.plans.pop(key, None)
        return self._cached(key, view, build, prime)

    def write(self, key: Any, stmt: ast.Statement, params: tuple, tx: Any, *,
              timeout_ms: int | None = None, snapshot_at: Callable[[float], Any] | None = None,
              cancel: Any = None) -> Result:
        """Run DDL or DML inside ``tx`` (a storage Transaction). ``snapshot_at`` lets its
        queries read the branch's committed past (``AS OF SYSTEM TIME``)."""
        stype = statement_type(stmt)
        if isinstance(stmt, ast.Insert):
            build = lambda rt, planner, cat: dml.InsertPlan(tx, stmt, planner)  # noqa: E731
            prime = _primer(params, tx, timeout_ms, snapshot_at, cancel)
            c = self._cached(key, tx, build, prime)
            c.rt.reset(params, tx, timeout_ms, snapshot_at, cancel)
            try:
                rows = c.plan.rows(tx)
            except StalePlan:
                c = self._replan(key, tx, build, prime)
                with _changed_while_planning():
                    rows = c.plan.rows(tx)
            return Result(statement_type=stype, affected_rows=c.plan.apply(tx, rows))
        rt = Runtime()
        rt.reset(params, tx, timeout_ms, snapshot_at, cancel)
        planner = Planner(rt, Catalog(tx))
        if isinstance(stmt, (ast.Update, ast.Delete)):
            with _changed_while_planning():          # planned for this execution: no cache
                n = (dml.update if isinstance(stmt, ast.Update) else dml.delete)(tx, stmt, planner)
        else:
            run = _DEFINITIONS.get(type(stmt))
            if run is None:
                raise TransactionError(f"{stype} cannot run here")
            run(tx, stmt, planner)
            n = 0
        return Result(statement_type=stype, affected_rows=n)

    def insert_many(self, key: Any, stmt: ast.Insert, param_sets: list[tuple], tx: Any,
                    kinds: list[set[type]] | None = None) -> int:
        """executemany for INSERT: every parameter set's rows, inserted as one batch.
        ``kinds``: each parameter's set of value types, when ``bind_many`` found them."""
        c = self._cached(key, tx, lambda rt, planner, cat: dml.InsertPlan(tx, stmt, planner))
        ins: dml.InsertPlan = c.plan
        fast = ins.rows_from_params(param_sets, kinds)
        if fast is not None:
            return ins.apply(tx, fast)
        prepared: list[list] = []
        for params in param_sets:
            c.rt.reset(params, tx, None, None)
            prepared.extend(ins.prepare())
        return ins.apply(tx, ins.finish(tx, prepared))


@contextmanager
def _changed_while_planning() -> Iterator[None]:
    """A plan made for this very execution found another schema at its AS OF moment:
    the table changed in between (a commit landed), which a retry will see."""
    try:
        yield
    except StalePlan as e:
        raise SemanticError(f"table {e.args[0]} changed while the statement was planned; "
                            f"run it again") from None


def _primer(params: tuple, view: Any, timeout_ms: int | None, snapshot_at: Callable[[float], Any] | None,
            cancel: Any) -> Callable[[Runtime], None]:
    """What ``_cached`` gives a new plan's runtime before planning: this execution's."""
    return lambda rt: rt.reset(params, view, timeout_ms, snapshot_at, cancel)


def _column_types(static: list[str | None], rows: list[tuple]) -> list[str]:
    """Static types where known, else the type of the column's first non-NULL value."""
    if None not in static and "any" not in static:
        return list(static)  # type: ignore[arg-type]
    out = []
    for i, t in enumerate(static):
        if t is None or t == "any":
            t = next((value_type_name(r[i]) for r in rows if r[i] is not None), "text")
        out.append(t)
    return out
