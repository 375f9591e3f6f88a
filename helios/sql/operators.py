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
from collections import defaultdict
from itertools import chain, compress
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
        for rows in self.leaves():
            yield rows if isinstance(rows, list) else list(rows)

    def leaves(self) -> Iterator[Sequence[Row]]:
        """The rows of each leaf within the bounds, as storage holds them (not copied);
        ``rt.check()`` before each when there is a deadline or a cancel event to check.
        The fused runners read a scan through this."""
        empty_lo, lo = _bound(self.lo)
        empty_hi, hi = _bound(self.hi)
        if empty_lo or empty_hi:
            return iter(())
        rt = self.rt
        batches = self.view().scan(self.table, lo, hi, lo_inclusive=self.lo_inclusive,
                                   hi_inclusive=self.hi_inclusive, reverse=self.reverse)
        if rt.deadline is None and rt.cancel is None:
            return map(_VALUES, batches)            # nothing to check: no Python frame per leaf
        return _checked(batches, rt.check)

    def describe(self) -> str:
        bounds = " (key range)" if self.lo or self.hi else ""
        return f"TableScan {self.table}{bounds}{' reverse' if self.reverse else ''}"


_VALUES = itemgetter(1)


def _checked(batches: Iterable[tuple[Any, Sequence[Row]]], check: Callable[[], None]) -> Iterator[Sequence[Row]]:
    for _, rows in batches:
        check()
        yield rows


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
        many = getattr(pred, "batch", None)          # the same test over a whole batch, in C
        if many is not None:
            for batch in self._drain(self.children[0]):
                yield many(batch)
            return
        for batch in self._drain(self.children[0]):
            yield [r for r in batch if pred(r)]

    def describe(self) -> str:
        return f"Filter {self.label}".rstrip()


def columns_of(positions: list[int]) -> Callable[[Batch], Batch]:
    """rows -> tuples of their values at ``positions``. Up to three columns, a
    comprehension: its inline subscripts beat a call of ``itemgetter`` per row."""
    if len(positions) == 1:
        (a,) = positions
        return lambda rows: [(r[a],) for r in rows]
    if len(positions) == 2:
        a, b = positions
        return lambda rows: [(r[a], r[b]) for r in rows]
    if len(positions) == 3:
        a, b, c = positions
        return lambda rows: [(r[a], r[b], r[c]) for r in rows]
    get = itemgetter(*positions)
    return lambda rows: list(map(get, rows))


class Project(Operator):
    """Output expressions over each row; ``positions`` when every output is a plain
    column of the input (then ``exprs`` are not called)."""

    def __init__(self, child: Operator, exprs: list[Callable[[Row], Any]],
                 positions: list[int] | None = None) -> None:
        super().__init__()
        self.children = (child,)
        self.exprs, self.positions = exprs, positions

    def _batches(self) -> Iterator[Batch]:
        if self.positions is not None:
            columns = columns_of(self.positions)
            for batch in self._drain(self.children[0]):
                yield columns(batch)
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
        return f"Project {len(self.exprs) or len(self.positions or ())} columns"


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


Pair = tuple  # (left row, its right rows): the right rows are shared, never to be mutated
Emit = Callable[[list], Batch]   # pairs -> output rows


def pair_columns(spec: list[tuple[int, int]]) -> Emit | None:
    """Joined rows as plain columns of either side, built straight from (left row,
    right rows) pairs: ``spec`` is (0 for the left row or 1 for the right, position)
    per output. Spares concatenating every left and right row into one wide tuple
    only to pick a few columns from it. None for shapes left to ``Project``."""
    sides = [side for side, _ in spec]
    if len(spec) == 1:
        ((side, a),) = spec
        if side == 0:
            return lambda pairs: [(l[a],) for l, rs in pairs for _ in rs]
        return lambda pairs: [(r[a],) for _, rs in pairs for r in rs]
    if len(spec) == 2:
        (_, a), (_, b) = spec
        if sides == [0, 1]:
            return lambda pairs: [(l[a], r[b]) for l, rs in pairs for r in rs]
        if sides == [1, 0]:
            return lambda pairs: [(r[a], l[b]) for l, rs in pairs for r in rs]
        if sides == [0, 0]:
            return lambda pairs: [(l[a], l[b]) for l, rs in pairs for _ in rs]
        return lambda pairs: [(r[a], r[b]) for _, rs in pairs for r in rs]
    if sides != sorted(sides):
        return None                                  # interleaved sides: Project does it
    lpos = [p for side, p in spec if side == 0]
    rpos = [p for side, p in spec if side == 1]
    if not rpos:
        lget = itemgetter(*lpos)
        return lambda pairs: [lget(l) for l, rs in pairs for _ in rs]
    if not lpos:
        rget = itemgetter(*rpos)
        return lambda pairs: [rget(r) for _, rs in pairs for r in rs]
    if len(lpos) == 1:
        (a,), rget = lpos, itemgetter(*rpos)
        return lambda pairs: [(l[a],) + rget(r) for l, rs in pairs for r in rs]
    lget = itemgetter(*lpos)
    if len(rpos) == 1:
        (b,) = rpos
        return lambda pairs: [lget(l) + (r[b],) for l, rs in pairs for r in rs]
    rget = itemgetter(*rpos)
    return lambda pairs: [lget(l) + rget(r) for l, rs in pairs for r in rs]


class HashJoin(Operator):
    """Equi-join: hashes one input, probes it with the other.

    ``kind`` is INNER or LEFT; ``residual`` (over the joined row) is the rest of
    the ON condition. NULL keys never match. The matching itself (``_pairs``)
    yields each left row with its right rows; this operator concatenates them,
    ``HashJoinAggregate`` groups them without doing so."""

    def __init__(self, rt: Runtime, left: Operator, right: Operator, left_key: Callable[[Row], Any],
                 right_key: Callable[[Row], Any], kind: str, right_width: int,
                 residual: Callable[[Row], Any] | None = None, emit: Emit | None = None,
                 emit_width: int = 0) -> None:
        super().__init__()
        self.children = (left, right)
        self.rt, self.left_key, self.right_key, self.kind = rt, left_key, right_key, kind
        self.pad = (None,) * right_width
        self.residual = residual
        self.carry: Callable[[Row], Any] | None = None     # see HashJoinAggregate
        self.emit, self.emit_width = emit, emit_width      # outputs picked from each pair (pair_columns)

    def _batches(self) -> Iterator[Batch]:
        check = self.rt.check
        emit = self.emit or _concatenated
        for pairs in self._pairs():
            if sum(map(len, map(_RIGHTS, pairs))) <= 8 * BATCH:
                yield emit(pairs)
                continue
            out: list = []                       # a large fan-out: bounded batches, checked
            for pair in pairs:
                out += emit([pair])
                if len(out) >= BATCH:
                    check()
                    yield out
                    out = []
            yield out

    def _pairs(self) -> Iterator[list[Pair]]:
        """Batches of (left row, its right rows), in left order, each left row's matches
        in right order (as SQL engines usually do), whichever input is hashed: the right
        is read whole, the left buffered only until it is clearly not the smaller one
        (hashed only when under a quarter of the right). Matches that fail the residual
        are dropped; a LEFT join's unmatched row comes with one NULL-padded right row, an
        INNER join's not at all."""
        with paused():           # building makes many small lists, joining many tuples
            yield from self._pairs_paused()

    def _pairs_paused(self) -> Iterator[list[Pair]]:
        left, right = self.children
        check = self.rt.check
        right_rows = list(chain.from_iterable(self._drain(right)))
        buffered: list = []
        for batch in self._drain(left):
            buffered.extend(batch)
            if len(buffered) * 4 > len(right_rows):
                break
        else:
            matches = self._match_left(buffered, right_rows)
            check()
            for i in range(0, len(buffered), BATCH):
                yield self._pair_up(buffered[i:i + BATCH], matches[i:i + BATCH])
                check()
            return
        table = self._hash(right_rows, self.right_key, self.carry)
        check()
        get, lkey = table.get, self.left_key
        for i in range(0, len(buffered), BATCH):
            chunk = buffered[i:i + BATCH]
            yield self._pair_up(chunk, map(get, map(lkey, chunk)))
            check()
        for batch in self._drain(left):
            yield self._pair_up(batch, map(get, map(lkey, batch)))
            check()

    def _pair_up(self, lefts: list, matches: Iterable[list | None]) -> list[Pair]:
        """(left row, right rows) for each left row that has any after the residual."""
        residual = self.residual
        if residual is None:
            if self.kind == "LEFT":
                padded = [self.pad if self.carry is None else self.carry(self.pad)]
                return [(l, m or padded) for l, m in zip(lefts, matches)]
            return [(l, m) for l, m in zip(lefts, matches) if m]
        out = []
        outer = self.kind == "LEFT"
        for l, m in zip(lefts, matches):
            if m:
                m = [r for r in m if residual(l + r)]
            if m:
                out.append((l, m))
            elif outer:
                out.append((l, [self.pad]))
        return out

    @staticmethod
    def _hash(rows: list, key: Callable[[Row], Any], carry: Callable[[Row], Any] | None = None) -> dict:
        """key -> the rows (or what ``carry`` takes from them) with that key, in input
        order; NULL keys (and composite keys with a NULL part) never match, so they
        are dropped."""
        table: dict = {}
        get = table.get
        for k, r in zip(map(key, rows), rows if carry is None else map(carry, rows)):
            bucket = get(k)
            if bucket is None:
                table[k] = [r]
            else:
                bucket.append(r)
        table.pop(None, None)
        if table and type(next(iter(table))) is tuple:
            for k in [k for k in table if None in k]:
                del table[k]
        return table

    def _match_left(self, left_rows: list, right_rows: list) -> list[list | None]:
        """The left input is the smaller: hash its positions, stream the right past it
        -> each left row's right rows (None when it has none), in right order."""
        left_keys = list(map(self.left_key, left_rows))
        # Position + 1 of each key (built in C; + 1 so that no match is falsy).
        slot_of: dict = dict(zip(left_keys, range(1, len(left_keys) + 1)))
        keys = list(map(self.right_key, right_rows))
        if len(slot_of) == len(left_keys) and not (left_keys and type(left_keys[0]) is tuple):
            # A key (often the primary key): one left row each; matched and sifted in C.
            slot_of.pop(None, None)
            slots = list(map(slot_of.get, keys))
            hits = compress(right_rows, slots)
            items = hits if self.carry is None else map(self.carry, hits)
            matches: list = [None] * (len(left_keys) + 1)
            for i, r in zip(filter(None, slots), items):
                m = matches[i]
                if m is None:
                    matches[i] = [r]
                else:
                    m.append(r)
            return matches[1:]
        where: dict = {}
        for i, k in enumerate(left_keys):
            if k is None or (type(k) is tuple and None in k):
                continue
            where.setdefault(k, []).append(i)
        hit = list(map(where.__contains__, keys))       # most rows often match nothing: sift in C
        hits = compress(right_rows, hit)
        items = hits if self.carry is None else map(self.carry, hits)
        matches = [None] * len(left_rows)
        for k, r in zip(compress(keys, hit), items):
            for i in where[k]:
                m = matches[i]
                if m is None:
                    matches[i] = [r]
                else:
                    m.append(r)
        return matches

    def describe(self) -> str:
        picked = f", {self.emit_width} columns" if self.emit is not None else ""
        return f"HashJoin {self.kind}{picked}"


_RIGHTS = itemgetter(1)


def _concatenated(pairs: list) -> Batch:
    """Each left row joined with each of its right rows: the full joined rows."""
    return [l + r for l, rs in pairs for r in rs]


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
        inner = list(chain.from_iterable(self._drain(right)))
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


Aggregates = list  # of (factory, argument functions) pairs


def _fold(factory: Callable[[], Any], nrows: int, columns: list[list]) -> Any:
    """One aggregate over one group: ``columns`` holds each argument's values in row
    order (none for count(*), which only needs ``nrows``). ``step_many`` takes a whole
    column at once (C builtins where the values allow)."""
    agg = factory()
    if not columns:
        agg.add_rows(nrows)                     # count(*)
    elif len(columns) == 1:
        step_many = getattr(agg, "step_many", None)
        if step_many is not None:
            step_many(columns[0])
        else:
            step = agg.step
            for v in columns[0]:
                step(v)
    else:
        for vs in zip(*columns):
            agg.step(*vs)
    return agg.final()


def _key_fn(keys: list[Callable[[Row], Any]]) -> Callable[[Row], Any]:
    """The group key of a row: one key's value itself, several keys' as a tuple."""
    if len(keys) == 1:
        return keys[0]
    if not keys:
        return lambda r: ()
    return lambda r: tuple([k(r) for k in keys])


def _groups_out(results: Iterable[Row], check: Callable[[], None]) -> Iterator[Batch]:
    out: list = []
    for row in results:
        out.append(row)
        if len(out) >= BATCH:
            check()
            yield out
            out = []
    yield out


class HashAggregate(Operator):
    """GROUP BY: one output row per group, ``group values + aggregate results``.

    ``aggs`` are (factory, argument functions) pairs; with no group keys the
    operator always yields exactly one row (aggregates over an empty input)."""

    def __init__(self, rt: Runtime, child: Operator, keys: list[Callable[[Row], Any]],
                 aggs: Aggregates) -> None:
        super().__init__()
        self.children = (child,)
        self.rt, self.keys, self.aggs = rt, keys, aggs

    def _batches(self) -> Iterator[Batch]:
        """Rows are first bucketed by group key, then each aggregate consumes a group's
        values at once."""
        groups: dict = defaultdict(list)
        with paused():
            self._bucket(groups, _key_fn(self.keys) if self.keys else None)
        if not groups and not self.keys:
            groups[()] = []
        yield from _groups_out(self._results(groups), self.rt.check)

    def _bucket(self, groups: dict, keyfn: Callable[[Row], Any] | None) -> None:
        check = self.rt.check
        for batch in self._drain(self.children[0]):
            check()
            if keyfn is None:
                groups.setdefault((), []).extend(batch)
                continue
            for k, r in zip(map(keyfn, batch), batch):
                groups[k].append(r)

    def _results(self, groups: dict) -> Iterator[Row]:
        single, aggs = len(self.keys) == 1, self.aggs
        for k, rows in groups.items():
            yield ((k,) if single else k) + tuple([
                _fold(factory, len(rows), [list(map(a, rows)) for a in args]) for factory, args in aggs])

    def describe(self) -> str:
        return f"HashAggregate keys={len(self.keys)} aggregates={len(self.aggs)}"


Sided = tuple  # (side, function): "L" reads the left row, "R" the right row, "LR" the joined row


class HashJoinAggregate(HashJoin):
    """GROUP BY straight over a hash join, without building the joined rows.

    Over a plain ``HashJoin`` every match would become a new concatenated tuple only
    for the group key and a few arguments to be read from it. Here each group
    collects the matched right rows as they are (and the left row once per match,
    only if something reads the left side), and every key and argument is a
    ``Sided`` function evaluated on the side it reads; only "LR" ones (reading both
    sides) see a concatenated row. Rows reach each group in the join's order (left
    order, then right order), so the results are those of HashAggregate over
    HashJoin, down to the order floats are summed in."""

    def __init__(self, rt: Runtime, left: Operator, right: Operator, left_key: Callable[[Row], Any],
                 right_key: Callable[[Row], Any], kind: str, right_width: int,
                 residual: Callable[[Row], Any] | None, keys: list[Sided],
                 aggs: list[tuple[Callable[[], Any], list[Sided]]]) -> None:
        super().__init__(rt, left, right, left_key, right_key, kind, right_width, residual)
        self.keys = keys
        self.aggs = self._carried(aggs)
        self.need_left = any(side not in ("R", "V") for _, args in self.aggs for side, _ in args)

    def _carried(self, aggs: list) -> list:
        """When one argument is all that is read of the right rows (and no residual
        needs them whole), the hash table holds its values instead of the rows
        (``carry``): they are taken in one pass in storage order, not per group from
        scattered rows. That argument becomes side "V": the group's values as they are."""
        slots = [(i, j) for i, (_, args) in enumerate(aggs) for j, (side, _) in enumerate(args) if side != "L"]
        if self.residual is not None or len(slots) != 1 or any(side != "L" for side, _ in self.keys):
            return aggs
        i, j = slots[0]
        side, f = aggs[i][1][j]
        if side != "R":
            return aggs
        self.carry = f
        factory, args = aggs[i]
        return aggs[:i] + [(factory, args[:j] + [("V", f)] + args[j + 1:])] + aggs[i + 1:]

    def _batches(self) -> Iterator[Batch]:
        rights: dict = defaultdict(list)     # group key -> the right rows of its matches
        lefts: dict = defaultdict(list)      # group key -> their left rows (when read)
        with paused():
            if all(side == "L" for side, _ in self.keys):
                self._group_per_left(rights, lefts)
            else:
                self._group_per_match(rights, lefts)
        if not rights and not self.keys:
            rights[()], lefts[()] = [], []
        yield from _groups_out(self._results(rights, lefts), self.rt.check)

    def _group_per_left(self, rights: dict, lefts: dict) -> None:
        """Every key reads only the left row: one key per left row, its matches appended whole."""
        keyfn = _key_fn([f for _, f in self.keys])
        for pairs in self._pairs():
            if self.need_left:
                for l, rs in pairs:
                    k = keyfn(l)
                    rights[k] += rs
                    lefts[k] += [l] * len(rs)
            else:
                for l, rs in pairs:
                    rights[keyfn(l)] += rs

    def _group_per_match(self, rights: dict, lefts: dict) -> None:
        """Some key reads the right row: one key per match."""
        parts = [self._evaluator(side, f) for side, f in self.keys]
        if len(parts) == 1:
            keyfn = parts[0]
        else:
            keyfn = lambda l, r: tuple([p(l, r) for p in parts])  # noqa: E731
        for pairs in self._pairs():
            for l, rs in pairs:
                for r in rs:
                    k = keyfn(l, r)
                    rights[k].append(r)
                    lefts[k].append(l)

    @staticmethod
    def _evaluator(side: str, f: Callable[[Row], Any]) -> Callable[[Row, Row], Any]:
        if side == "L":
            return lambda l, r: f(l)
        if side == "R":
            return lambda l, r: f(r)
        return lambda l, r: f(l + r)

    @staticmethod
    def _column(side: str, f: Callable[[Row], Any], lefts: list, rights: list) -> list:
        """An argument's values over a group's matches."""
        if side == "V":
            return rights
        if side == "R":
            return list(map(f, rights))
        if side == "L":
            return list(map(f, lefts))
        return [f(l + r) for l, r in zip(lefts, rights)]

    def _results(self, rights: dict, lefts: dict) -> Iterator[Row]:
        single, aggs, column = len(self.keys) == 1, self.aggs, self._column
        for k, rs in rights.items():
            ls = lefts.get(k, ())                # a defaultdict's get() adds nothing
            yield ((k,) if single else k) + tuple([
                _fold(factory, len(rs), [column(side, f, ls, rs) for side, f in args])
                for factory, args in aggs])

    def describe(self) -> str:
        return f"HashJoinAggregate {self.kind} keys={len(self.keys)} aggregates={len(self.aggs)}"


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
        if None not in map(self.getter, rows):          # the usual case, checked in C
            return rows, []
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
        rows = list(chain.from_iterable(self._drain(self.children[0])))
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
        rows = chain.from_iterable(self._drain(self.children[0]))
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
        # Like SQLite's temporary index, a side keeps one row per distinct value: the one
        # that came last (SELECT 1 UNION SELECT 1.0 is 1.0, 1.0 UNION 1 is 1); INTERSECT
        # and EXCEPT answer with the left side's rows.
        rows = self._distinct(left)
        if self.op == "UNION":
            for batch in self._drain(right):
                rows.update(zip(batch, batch))
            out = list(rows.values())
        else:
            rset = {r for batch in self._drain(right) for r in batch}
            keep_in = self.op == "INTERSECT"
            out = [r for r in rows.values() if (r in rset) == keep_in]
        for i in range(0, len(out), BATCH):
            yield out[i:i + BATCH]

    def _distinct(self, child: Operator) -> dict:
        """The child's distinct rows, each as it came last (a dict keeps the first key
        object and its place, and takes the later row as its value)."""
        rows: dict = {}
        for batch in self._drain(child):
            rows.update(zip(batch, batch))
        return rows

    def describe(self) -> str:
        return f"SetOp {self.op}"
