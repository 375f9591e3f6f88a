"""Volcano operators that move rows in batches.

One contract for all: ``open()``; ``next()`` returns a non-empty list of row
tuples, or an empty list at the end (and again on every later call);
``close()`` releases children and is safe to call twice. Batches are what make
a Python volcano fast: a scan hands over a whole B+tree leaf at a time, and
filters and projections are list comprehensions over it. Each operator's work
lives in a generator (``_batches``); the base class turns that into the
contract. Long loops call ``rt.check()`` once a batch, so a deadline is noticed
within a few thousand rows.
"""
from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from operator import itemgetter
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..gcpause import paused
from .runtime import Runtime

Row = tuple
Batch = list
BATCH = 1024


class _Unbounded:
    """A key bound whose type can never compare with the key (e.g. text against an
    integer key): that side of the range stays open and the residual filter decides."""

    __repr__ = lambda self: "UNBOUNDED"  # noqa: E731


UNBOUNDED = _Unbounded()


def _bound(f: Callable[[], Any] | None) -> tuple[bool, Any]:
    """(empty result?, bound value) for an optional bound function."""
    if f is None:
        return False, None
    v = f()
    if v is None:                 # comparing with NULL is never true
        return True, None
    return False, (None if v is UNBOUNDED else v)


class Operator(ABC):
    children: tuple["Operator", ...] = ()

    def __init__(self) -> None:
        self._gen: Iterator[Batch] | None = None
        self._closed = False

    def open(self) -> None:
        for c in self.children:
            c.open()
        self._gen = self._batches()
        self._closed = False

    def next(self) -> Batch:
        if self._gen is None:
            return []
        for batch in self._gen:
            if batch:
                return batch
        self._gen = None
        return []

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._gen is not None:
            self._gen.close()
            self._gen = None
        for c in self.children:
            c.close()

    @abstractmethod
    def _batches(self) -> Iterator[Batch]:
        """The operator's work: yields batches (possibly empty ones, which next() skips)."""

    # helpers ------------------------------------------------------------------
    def _drain(self, child: "Operator") -> Iterator[Batch]:
        while True:
            batch = child.next()
            if not batch:
                return
            yield batch

    def explain(self, depth: int = 0) -> list[str]:
        lines = ["  " * depth + self.describe()]
        for c in self.children:
            lines.extend(c.explain(depth + 1))
        return lines

    def describe(self) -> str:
        return type(self).__name__


def run_all(op: Operator, limit: int | None = None) -> list[Row]:
    """Open, drain (up to ``limit`` rows) and close ``op``."""
    op.open()
    try:
        out: list[Row] = []
        while True:
            batch = op.next()
            if not batch:
                return out
            out.extend(batch)
            if limit is not None and len(out) >= limit:
                return out[:limit]
    finally:
        op.close()


class TableScan(Operator):
    """Rows of a table in key order, optionally within key bounds, one leaf per batch."""

    def __init__(self, rt: Runtime, table: str, view: Callable[[], Any], *,
                 lo: Callable[[], Any] | None = None, hi: Callable[[], Any] | None = None,
                 lo_inclusive: bool = True, hi_inclusive: bool = True, reverse: bool = False) -> None:
        super().__init__()
        self.rt, self.table, self.view = rt, table, view
        self.lo, self.hi, self.lo_inclusive, self.hi_inclusive, self.reverse = \
            lo, hi, lo_inclusive, hi_inclusive, reverse

    def _batches(self) -> Iterator[Batch]:
        empty_lo, lo = _bound(self.lo)
        empty_hi, hi = _bound(self.hi)
        if empty_lo or empty_hi:
            return
        check = self.rt.check
        for _, rows in self.view().scan(self.table, lo, hi, lo_inclusive=self.lo_inclusive,
                                        hi_inclusive=self.hi_inclusive, reverse=self.reverse):
            check()
            yield rows if isinstance(rows, list) else list(rows)

    def describe(self) -> str:
        bounds = " (key range)" if self.lo or self.hi else ""
        return f"TableScan {self.table}{bounds}{' reverse' if self.reverse else ''}"


class KeyLookup(Operator):
    """Rows for a list of primary keys (``pk = x`` or ``pk IN (...)``)."""

    def __init__(self, rt: Runtime, table: str, view: Callable[[], Any], keys: Callable[[], Sequence]) -> None:
        super().__init__()
        self.rt, self.table, self.view, self.keys = rt, table, view, keys

    def _batches(self) -> Iterator[Batch]:
        self.rt.check()
        get = self.view().table(self.table).rows.get
        keys = self.keys()
        if len(keys) > 1:
            keys = sorted(set(k for k in keys if k is not None))
        rows = [r for r in map(get, keys) if r is not None]
        yield rows

    def describe(self) -> str:
        return f"KeyLookup {self.table}"


class IndexScan(Operator):
    """Rows whose index values lie within prefix bounds, in index order."""

    def __init__(self, rt: Runtime, table: str, index: str, view: Callable[[], Any], *,
                 lo: Callable[[], Any] | None = None, hi: Callable[[], Any] | None = None,
                 lo_inclusive: bool = True, hi_inclusive: bool = True,
                 points: Callable[[], Sequence] | None = None, reverse: bool = False) -> None:
        super().__init__()
        self.rt, self.table, self.index, self.view = rt, table, index, view
        self.lo, self.hi, self.lo_inclusive, self.hi_inclusive = lo, hi, lo_inclusive, hi_inclusive
        self.points, self.reverse = points, reverse

    def _batches(self) -> Iterator[Batch]:
        view, check = self.view(), self.rt.check
        if self.points is not None:
            values = sorted({v for v in self.points() if v is not None}, key=_mixed_key)
            for v in values:
                for _, rows in view.index_scan(self.table, self.index, (v,), (v,)):
                    check()
                    yield rows
            return
        empty_lo, lo = _bound(self.lo)
        empty_hi, hi = _bound(self.hi)
        if empty_lo or empty_hi:
            return
        for _, rows in view.index_scan(self.table, self.index, None if lo is None else (lo,),
                                       None if hi is None else (hi,), lo_inclusive=self.lo_inclusive,
                                       hi_inclusive=self.hi_inclusive, reverse=self.reverse):
            check()
            yield rows

    def describe(self) -> str:
        return f"IndexScan {self.table} using {self.index}"


def _mixed_key(v: Any) -> tuple:
    return (0 if isinstance(v, (int, float)) else 1, v)


class Values(Operator):
    """Constant rows (FROM-less SELECT, VALUES); expressions evaluated at open."""

    def __init__(self, rows: list[list[Callable[[Row], Any]]]) -> None:
        super().__init__()
        self.rows = rows

    def _batches(self) -> Iterator[Batch]:
        yield [tuple(f(()) for f in row) for row in self.rows]


class Rows(Operator):
    """Rows produced by a function at open (a materialised subquery, a view)."""

    def __init__(self, produce: Callable[[], list[Row]], label: str = "Rows") -> None:
        super().__init__()
        self.produce, self.label = produce, label

    def _batches(self) -> Iterator[Batch]:
        rows = self.produce()
        for i in range(0, len(rows), BATCH):
            yield rows[i:i + BATCH]

    def describe(self) -> str:
        return self.label


class Filter(Operator):
    def __init__(self, child: Operator, pred: Callable[[Row], Any], label: str = "") -> None:
        super().__init__()
        self.children = (child,)
        self.pred, self.label = pred, label

    def _batches(self) -> Iterator[Batch]:
        pred = self.pred
        for batch in self._drain(self.children[0]):
            yield [r for r in batch if pred(r)]

    def describe(self) -> str:
        return f"Filter {self.label}".rstrip()


class Project(Operator):
    def __init__(self, child: Operator, exprs: list[Callable[[Row], Any]], getter: Callable | None = None) -> None:
        super().__init__()
        self.children = (child,)
        self.exprs, self.getter = exprs, getter

    def _batches(self) -> Iterator[Batch]:
        if self.getter is not None:                      # plain columns: itemgetter in C
            g = self.getter
            for batch in self._drain(self.children[0]):
                yield list(map(g, batch))
            return
        exprs = self.exprs
        if len(exprs) == 1:
            (f,) = exprs
            for batch in self._drain(self.children[0]):
                yield [(f(r),) for r in batch]
            return
        for batch in self._drain(self.children[0]):
            yield [tuple([f(r) for f in exprs]) for r in batch]

    def describe(self) -> str:
        return f"Project {len(self.exprs)} columns"


def _join_row(out: list, left: Row, candidates: list, pred: Callable[[Row], Any] | None, outer: bool,
              pad: Row) -> None:
    """Append ``left`` joined with each candidate that satisfies ``pred``; for an outer
    join with none, ``left`` padded with NULLs."""
    if pred is None:
        joined = [left + r for r in candidates]
    else:
        joined = [j for r in candidates if pred(j := left + r)]
    if joined:
        out.extend(joined)
    elif outer:
        out.append(left + pad)


class HashJoin(Operator):
    """Equi-join: builds a hash table on the right input, probes it with the left.

    ``kind`` is INNER or LEFT; ``residual`` (over the joined row) is the rest of
    the ON condition. NULL keys never match."""

    def __init__(self, rt: Runtime, left: Operator, right: Operator, left_key: Callable[[Row], Any],
                 right_key: Callable[[Row], Any], kind: str, right_width: int,
                 residual: Callable[[Row], Any] | None = None) -> None:
        super().__init__()
        self.children = (left, right)
        self.rt, self.left_key, self.right_key, self.kind = rt, left_key, right_key, kind
        self.pad = (None,) * right_width
        self.residual = residual

    def _batches(self) -> Iterator[Batch]:
        """Hash the smaller input. The right input is read whole; the left is buffered
        only until it is clearly not the smaller one. Either way rows come out in left
        order, each left row's matches in right order, as SQL engines usually do."""
        left, right = self.children
        check = self.rt.check
        with paused():                           # building makes many small lists
            right_rows = [r for batch in self._drain(right) for r in batch]
            buffered: list = []
            exhausted = True
            for batch in self._drain(left):
                buffered.extend(batch)
                if len(buffered) * 4 > len(right_rows):    # hash the left only when far smaller
                    exhausted = False
                    break
            if exhausted:
                yield from self._build_left(buffered, right_rows, check)
                return
            table = self._hash(right_rows, self.right_key)
        yield from self._probe(table, buffered, check)
        yield from self._probe(table, (r for batch in self._drain(left) for r in batch), check)

    @staticmethod
    def _hash(rows: list, key: Callable[[Row], Any], positions: bool = False) -> dict:
        """key -> the rows (or their positions) with that key; NULL keys never match."""
        table: dict = {}
        get = table.get
        for i, r in enumerate(rows):
            k = key(r)
            if k is None or (type(k) is tuple and None in k):
                continue
            item = i if positions else r
            bucket = get(k)
            if bucket is None:
                table[k] = [item]
            else:
                bucket.append(item)
        return table

    def _probe(self, table: dict, left_rows: Iterable[Row], check: Callable[[], None]) -> Iterator[Batch]:
        lkey, residual, get = self.left_key, self.residual, table.get
        outer, pad, empty = self.kind == "LEFT", self.pad, []
        out: list = []
        for n, l in enumerate(left_rows):
            k = lkey(l)
            _join_row(out, l, get(k, empty) if k is not None else empty, residual, outer, pad)
            if len(out) >= BATCH or n % BATCH == BATCH - 1:
                check()
                yield out
                out = []
        yield out

    def _build_left(self, left_rows: list, right_rows: list, check: Callable[[], None]) -> Iterator[Batch]:
        """The left input is the smaller: hash it, stream the right past it."""
        where = self._hash(left_rows, self.left_key, positions=True)
        matches: list = [None] * len(left_rows)
        rkey, get = self.right_key, where.get
        with paused():
            for r in right_rows:
                k = rkey(r)
                if k is None:
                    continue
                for i in get(k, ()):
                    m = matches[i]
                    if m is None:
                        matches[i] = [r]
                    else:
                        m.append(r)
        check()
        residual, outer, pad, empty = self.residual, self.kind == "LEFT", self.pad, []
        out: list = []
        for l, m in zip(left_rows, matches):
            _join_row(out, l, m or empty, residual, outer, pad)
            if len(out) >= BATCH:
                check()
                yield out
                out = []
        yield out

    def describe(self) -> str:
        return f"HashJoin {self.kind}"


class NestedLoopJoin(Operator):
    """Any join condition: the right input is materialised and scanned per left row."""

    def __init__(self, rt: Runtime, left: Operator, right: Operator, kind: str, right_width: int,
                 pred: Callable[[Row], Any] | None = None) -> None:
        super().__init__()
        self.children = (left, right)
        self.rt, self.kind, self.pred = rt, kind, pred
        self.pad = (None,) * right_width

    def _batches(self) -> Iterator[Batch]:
        left, right = self.children
        inner = [r for batch in self._drain(right) for r in batch]
        pred, check, outer, pad = self.pred, self.rt.check, self.kind == "LEFT", self.pad
        for batch in self._drain(left):
            out: list = []
            for l in batch:
                _join_row(out, l, inner, pred, outer, pad)
                if len(out) >= BATCH:
                    check()
                    yield out
                    out = []
            check()
            yield out

    def describe(self) -> str:
        return f"NestedLoopJoin {self.kind}"


class HashAggregate(Operator):
    """GROUP BY: one output row per group, ``group values + aggregate results``.

    ``aggs`` are (factory, argument functions) pairs; with no group keys the
    operator always yields exactly one row (aggregates over an empty input)."""

    def __init__(self, rt: Runtime, child: Operator, keys: list[Callable[[Row], Any]],
                 aggs: list[tuple[Callable[[], Any], list[Callable[[Row], Any]]]]) -> None:
        super().__init__()
        self.children = (child,)
        self.rt, self.keys, self.aggs = rt, keys, aggs

    def _batches(self) -> Iterator[Batch]:
        """Rows are first bucketed by group key, then each aggregate consumes a group's
        values at once (``step_many``: C builtins where the values allow)."""
        keys, aggs, check = self.keys, self.aggs, self.rt.check
        single = len(keys) == 1
        if single:
            keyfn: Callable[[Row], Any] | None = keys[0]      # the value itself keys the group
        elif keys:
            keyfn = lambda r: tuple([k(r) for k in keys])  # noqa: E731
        else:
            keyfn = None
        groups: dict = {}
        with paused():
            self._bucket(groups, keyfn, check)
        if not groups and not keys:
            groups[()] = []
        yield from self._aggregate(groups, aggs, check, single)

    def _bucket(self, groups: dict, keyfn: Callable[[Row], Any] | None, check: Callable[[], None]) -> None:
        for batch in self._drain(self.children[0]):
            check()
            if keyfn is None:
                groups.setdefault((), []).extend(batch)
                continue
            for r in batch:
                k = keyfn(r)
                bucket = groups.get(k)
                if bucket is None:
                    groups[k] = [r]
                else:
                    bucket.append(r)

    @staticmethod
    def _aggregate(groups: dict, aggs: list, check: Callable[[], None], single: bool) -> Iterator[Batch]:
        out = []
        for k, rows in groups.items():
            if single:
                k = (k,)
            results = []
            for factory, args in aggs:
                agg = factory()
                if not args:
                    agg.add_rows(len(rows))                 # count(*)
                elif len(args) == 1:
                    a0 = args[0]
                    values = [a0(r) for r in rows]
                    step_many = getattr(agg, "step_many", None)
                    if step_many is not None:
                        step_many(values)
                    else:
                        for v in values:
                            agg.step(v)
                else:
                    for r in rows:
                        agg.step(*[a(r) for a in args])
                results.append(agg.final())
            out.append(k + tuple(results))
            if len(out) % BATCH == 0:
                check()
        for i in range(0, len(out), BATCH):
            yield out[i:i + BATCH]

    def describe(self) -> str:
        return f"HashAggregate keys={len(self.keys)} aggregates={len(self.aggs)}"


class ColumnOrder:
    """ORDER BY one column whose values compare directly (all numbers, or all text):
    sort the non-NULL rows by ``itemgetter`` in C and put the NULLs at their end."""

    __slots__ = ("position", "descending", "nulls_first", "getter")

    def __init__(self, position: int, descending: bool, nulls_first: bool) -> None:
        self.position, self.descending, self.nulls_first = position, descending, nulls_first
        self.getter = itemgetter(position)

    def split(self, rows: Iterable[Row]) -> tuple[list[Row], list[Row]]:
        p = self.position
        rows = rows if isinstance(rows, list) else list(rows)
        values = [r for r in rows if r[p] is not None]
        nulls = [r for r in rows if r[p] is None] if len(values) != len(rows) else []
        return values, nulls

    def sort(self, rows: Iterable[Row]) -> list[Row]:
        values, nulls = self.split(rows)
        values.sort(key=self.getter, reverse=self.descending)
        return nulls + values if self.nulls_first else values + nulls

    def top(self, rows: Iterable[Row], n: int) -> list[Row]:
        values, nulls = self.split(rows)
        pick = heapq.nlargest if self.descending else heapq.nsmallest
        if self.nulls_first:
            return (nulls + pick(max(0, n - len(nulls)), values, key=self.getter))[:n]
        return (pick(n, values, key=self.getter) + nulls)[:n]


class Sort(Operator):
    def __init__(self, child: Operator, key: Any, reverse: bool = False) -> None:
        super().__init__()
        self.children = (child,)
        self.key, self.reverse = key, reverse

    def _batches(self) -> Iterator[Batch]:
        rows = [r for batch in self._drain(self.children[0]) for r in batch]
        if isinstance(self.key, ColumnOrder):
            rows = self.key.sort(rows)
        else:
            rows.sort(key=self.key, reverse=self.reverse)
        for i in range(0, len(rows), BATCH):
            yield rows[i:i + BATCH]


class TopN(Operator):
    """ORDER BY ... LIMIT n with a bounded heap: O(rows log n), not a full sort."""

    def __init__(self, rt: Runtime, child: Operator, key: Any, n: Callable[[], int],
                 reverse: bool = False) -> None:
        super().__init__()
        self.children = (child,)
        self.rt, self.key, self.n, self.reverse = rt, key, n, reverse

    def _batches(self) -> Iterator[Batch]:
        n = self.n()
        rows = (r for batch in self._drain(self.children[0]) for r in batch)
        if n <= 0:
            for _ in rows:
                pass
            return
        if isinstance(self.key, ColumnOrder):
            yield self.key.top(rows, n)
            return
        pick = heapq.nlargest if self.reverse else heapq.nsmallest
        yield pick(n, rows, key=self.key)

    def describe(self) -> str:
        return "TopN"


class Limit(Operator):
    def __init__(self, child: Operator, limit: Callable[[], int | None], offset: Callable[[], int]) -> None:
        super().__init__()
        self.children = (child,)
        self.limit, self.offset = limit, offset

    def _batches(self) -> Iterator[Batch]:
        limit, skip = self.limit(), self.offset()
        if limit is not None and limit <= 0:
            return
        for batch in self._drain(self.children[0]):
            if skip:
                if skip >= len(batch):
                    skip -= len(batch)
                    continue
                batch, skip = batch[skip:], 0
            if limit is not None:
                if len(batch) >= limit:
                    yield batch[:limit]
                    return
                limit -= len(batch)
            yield batch


class Distinct(Operator):
    """Drops repeated rows (on the first ``width`` columns), keeping first occurrences."""

    def __init__(self, child: Operator, width: int | None = None) -> None:
        super().__init__()
        self.children = (child,)
        self.width = width

    def _batches(self) -> Iterator[Batch]:
        seen: set = set()
        w = self.width
        for batch in self._drain(self.children[0]):
            out = []
            for r in batch:
                k = r if w is None else r[:w]
                if k not in seen:
                    seen.add(k)
                    out.append(r)
            yield out


class SetOp(Operator):
    """UNION [ALL], INTERSECT, EXCEPT (the last three with set semantics, as in SQL)."""

    def __init__(self, left: Operator, right: Operator, op: str) -> None:
        super().__init__()
        self.children = (left, right)
        self.op = op

    def _batches(self) -> Iterator[Batch]:
        left, right = self.children
        if self.op == "UNION ALL":
            yield from self._drain(left)
            yield from self._drain(right)
            return
        if self.op == "UNION":
            seen: set = set()
            for child in (left, right):
                for batch in self._drain(child):
                    out = [r for r in batch if not (r in seen or seen.add(r))]
                    yield out
            return
        rset = {r for batch in self._drain(right) for r in batch}
        seen = set()
        keep_in = self.op == "INTERSECT"
        for batch in self._drain(left):
            yield [r for r in batch if (r in rset) == keep_in and not (r in seen or seen.add(r))]

    def describe(self) -> str:
        return f"SetOp {self.op}"
