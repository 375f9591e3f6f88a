"""Fused runners: a plan whose operator chain is a key lookup under filters and
projections, run as one function instead of a volcano.

A point select (``SELECT ... FROM t WHERE pk = $1``) returns at most one row, so
opening, draining and closing three generator-backed operators costs several
times the B+tree lookup itself. ``fuse`` reads the chain a plan builds (the
planner's factories build the same shape on every call; the operators' fields
are closures over the plan's ``Runtime``, so one instance describes every
execution) and composes the same steps, in the same order, as list operations.
Anything else is left to the operators: ``fuse`` returns None.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

from .operators import Filter, KeyLookup, Operator, Project, columns_of
from .planner import key_values

Row = tuple
Runner = Callable[[], list[Row]]


def fuse(op: Operator) -> Runner | None:
    """A function giving the rows ``run_all(op)`` gives, or None when ``op`` is not a
    chain of Filter / Project operators over a KeyLookup."""
    stages: list[Operator] = []
    while type(op) in (Filter, Project):
        stages.append(op)
        op = op.children[0]
    if type(op) is not KeyLookup:
        return None
    run = _lookup(op)
    for stage in reversed(stages):
        run = _filter(run, stage) if type(stage) is Filter else _project(run, stage)  # type: ignore[arg-type]
    return run


def _lookup(op: KeyLookup) -> Runner:
    """KeyLookup's rows: each distinct non-NULL key once, in key order."""
    rt, table, view, keys_fn = op.rt, op.table, op.view, op.keys

    def run() -> list[Row]:
        rt.check()
        return _rows(view().table(table).rows.get, keys_fn())

    single = _single_number(keys_fn)
    if single is None:
        return run

    def run_one() -> list[Row]:
        """``pk = value`` on a numeric key: an int or float value is its own key."""
        if rt.deadline is not None or rt.cancel is not None:
            rt.check()                             # (what check() tests first, without the call)
        get = view().table(table).rows.get
        v = single(())
        if type(v) is int or type(v) is float:
            row = get(v)
            return [] if row is None else [row]
        return _rows(get, key_values([lambda _row: v], "num"))     # NULL, text, ...: normalised
    return run_one


def _rows(get: Callable[[Any], Row | None], keys: list) -> list[Row]:
    if len(keys) == 1:
        row = get(keys[0])
        return [] if row is None else [row]
    if len(keys) > 1:
        keys = sorted(set(k for k in keys if k is not None))
    return [r for r in map(get, keys) if r is not None]


def _single_number(keys_fn: Callable[[], list]) -> Callable[[Row], Any] | None:
    """The one value function of a numeric key's lookup (``pk = $1``), if that is what
    ``keys_fn`` is: ``key_values`` keeps an int or float value of a numeric key as it is."""
    if type(keys_fn) is not partial or keys_fn.func is not key_values or keys_fn.keywords:
        return None
    value_fns, fam = keys_fn.args
    return value_fns[0] if len(value_fns) == 1 and fam == "num" else None


def _filter(inner: Runner, op: Filter) -> Runner:
    pred = op.pred
    many = getattr(pred, "batch", None)          # the Filter operator's whole-batch form
    if many is not None:
        return lambda: many(inner())

    def run() -> list[Row]:
        return [r for r in inner() if pred(r)]
    return run


def _project(inner: Runner, op: Project) -> Runner:
    if op.positions is not None:
        columns = columns_of(op.positions)
        return lambda: columns(inner())
    exprs = op.exprs
    if len(exprs) == 1:
        (f,) = exprs
        return lambda: [(f(r),) for r in inner()]
    return lambda: [tuple([f(r) for f in exprs]) for r in inner()]
