"""Fused runners: a plan whose operator chain is a key lookup or a table scan under
filters and projections, run as one function instead of a volcano.

A point select (``SELECT ... FROM t WHERE pk = $1``) returns at most one row, so
opening, draining and closing three generator-backed operators costs several
times the B+tree lookup itself. A filtered scan (``SELECT a, b FROM t WHERE c > 5``)
pays the volcano per leaf instead: a generator step per operator, a list per
operator, and the kept rows walked twice (filter, then projection) before the
result copies them once more; fused, it is one comprehension over the leaves.
``fuse`` reads the chain a plan builds (the planner's factories build the same
shape on every call; the operators' fields are closures over the plan's
``Runtime``, so one instance describes every execution) and composes the same
steps, in the same order, as list operations. Anything else is left to the
operators: ``fuse`` returns None.
"""
from __future__ import annotations

from functools import partial
from itertools import chain
from operator import itemgetter
from typing import Any, Callable, Iterable, Sequence

from .compile import Leaves, batch_form, column_select
from .operators import Filter, KeyLookup, Operator, Project, TableScan, columns_of
from .planner import key_values

Row = tuple
Runner = Callable[[], list[Row]]


def fuse(op: Operator) -> Runner | None:
    """A function giving the rows ``run_all(op)`` gives, or None when ``op`` is not a
    chain of Filter / Project operators over a KeyLookup, or of Filters under at most
    one column-picking Project over a TableScan."""
    stages: list[Operator] = []
    while type(op) in (Filter, Project):
        stages.append(op)
        op = op.children[0]
    if type(op) is TableScan:
        return _scan(op, stages)
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


# ---------------------------------------------------------------------- scans
def _scan(scan: TableScan, stages: list[Operator]) -> Runner | None:
    """``stages`` (top first) over ``scan``: Filters under at most one Project of plain
    columns, on top; their rows built in one pass over the scan's leaves (``_select``)."""
    pick: slice | itemgetter | None = None
    if stages and type(stages[0]) is Project:
        positions = stages[0].positions             # type: ignore[attr-defined]
        if positions is None:
            return None                            # computed outputs: the operators
        pick = picker(positions)
        stages = stages[1:]
    if any(type(s) is not Filter for s in stages):
        return None
    select = _select([s.pred for s in reversed(stages)], pick)    # type: ignore[attr-defined]
    leaves = scan.leaves
    return lambda: select(leaves)


def _select(preds: list[Callable[[Row], Any]], pick: slice | itemgetter | None) -> Callable[[Leaves], list[Row]]:
    """leaves -> ``pick`` of the rows every predicate keeps (applied in order, as the
    Filter operators would), as one list. A single ``column <op> constant`` under a
    slice is one comprehension (``column_select``); otherwise each batch is filtered
    whole and the kept rows picked in one pass over all of them."""
    forms = [batch_form(p) for p in preds]
    test = getattr(forms[0], "test", None) if len(forms) == 1 else None
    if test is not None and type(pick) is slice:
        return column_select(test, pick)
    keep = _keep(preds, forms)

    def rows(leaves: Leaves) -> Iterable[Row]:
        return chain.from_iterable(leaves() if keep is None else map(keep, leaves()))
    if pick is None:
        return lambda leaves: list(rows(leaves))
    if type(pick) is slice:
        return lambda leaves: [r[pick] for r in rows(leaves)]
    return lambda leaves: list(map(pick, rows(leaves)))


def _keep(preds: list[Callable[[Row], Any]],
          forms: list[Callable[[list], list] | None]) -> Callable[[Sequence[Row]], list[Row]] | None:
    """One batch -> the rows every predicate keeps (None: no predicate)."""
    steps = [form if form is not None else partial(_rows_where, pred) for pred, form in zip(preds, forms)]
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def keep(rows: Sequence[Row]) -> list[Row]:
        for step in steps:
            rows = step(rows)
        return rows                                  # type: ignore[return-value]
    return keep


def _rows_where(pred: Callable[[Row], Any], rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if pred(r)]


def picker(positions: list[int]) -> slice | itemgetter:
    """What takes the values at ``positions`` of a row tuple as a tuple: a slice
    (``row[pick]``, built in C) when the positions are evenly spaced, else an
    ``itemgetter`` (of two or more positions: it then gives a tuple too)."""
    first = positions[0]
    step = positions[1] - first if len(positions) > 1 else 1
    if step == 0 or any(b - a != step for a, b in zip(positions, positions[1:])):
        return itemgetter(*positions)
    stop = first + step * len(positions)
    # None rather than a start of 0 or a step of 1: each index the slice holds is one
    # conversion per row (together about as long as building the tuple itself).
    return slice(first or None, stop if stop >= 0 else None, None if step == 1 else step)
