"""Immutable, persistent (path-copying) B+tree sorted map.

This is the ordered row store of every table and secondary index. Why a B+tree
rather than only a HAMT (``immutables.Map``):

* rows come back in key order (ranges, ``ORDER BY pk``, ``OFFSET`` through the
  per-child ``counts``);
* a leaf's ``values`` tuple is a batch for the executor: iterating a tuple is
  an order of magnitude faster than iterating a HAMT;
* ``diff`` skips subtrees that both sides share by identity, so a three-way
  merge costs what the change costs, not what the table costs;
* a checkpoint writes node by node and only nodes whose ``pid`` is still None.

Nodes are never mutated once published: every write copies the path from the
root to the touched leaves and shares everything else, so the old tree object
keeps answering as before (O(1) fork, snapshot isolation for free). Their
sequences are tuples, shared freely between nodes (e.g. a value-only change
shares the leaf's keys and every ancestor's ``keys``/``counts``).

Why tuples rather than lists: every commit leaves its copied path behind as
history, and CPython's cyclic collector walks every *list* it tracks, element
by element, on each full collection - with history kept, pauses grew with the
number of commits (88 ms after 20k single-row commits on a 10k-row table). A
tuple of untracked objects (keys, rows of plain values, counts) is untracked
by the collector itself after its first collection, so old versions cost it
nothing; only the small node objects and inner ``children`` stay visible.

Invariants (checked by ``PTree.validate``):

* keys strictly increase inside a leaf and across leaves;
* ``Inner.keys[i]`` is exactly the smallest key under ``children[i + 1]``;
* ``Inner.counts[i]`` is the number of items under ``children[i]``;
* every leaf is at the same depth;
* every non-root node holds between ``min`` and ``max`` entries, where
  ``min = max // 4`` (at least 1 for leaves, 2 for inner nodes). The quarter
  (rather than half) minimum avoids split/merge thrashing when inserts and
  deletes alternate at a node boundary, and still bounds the depth at
  ``log_{inner_max/4}(n)``. Splits are balanced (each half >= max/2), except a
  split at the right edge of the tree, which keeps the left node nearly full so
  that ascending inserts (auto-increment keys) leave ~3/4-full leaves.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import accumulate, compress, islice
from operator import is_not, lt
from typing import Any, Callable, ClassVar, Generic, Iterable, Iterator, Sequence, TypeVar, Union

__all__ = [
    "DiffStats", "INNER_MAX", "Inner", "LEAF_MAX", "Leaf", "MISSING", "Node", "PTree", "same_content",
]

K = TypeVar("K")
V = TypeVar("V")

# Chosen with ``bench/bench_btree.py --sweep`` at 1M rows (2 cores, 3.11): a
# write copies the leaf's two lists and every element's refcount is touched,
# so big trees are memory-bound there. 64-item leaves halved batch-scan speed
# and batched updates without making sets faster; 256 or 512 made single
# sets 1.5-2x slower for <20% more scan speed; 32- or 128-way inner nodes
# were no better than 64 for gets, sets or diff.
LEAF_MAX = 128
INNER_MAX = 64


class _MissingType:
    """Type of ``MISSING``: the 'no value on this side' marker of ``diff``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"  # unpickles as the module global: stays a singleton

    def __bool__(self) -> bool:
        return False


MISSING: Any = _MissingType()
_DELETE: Any = object()  # op marker in batched updates; never visible outside


class Leaf:
    """Sorted ``keys`` with parallel ``values`` (tuples: lists given are copied into tuples)."""

    __slots__ = ("keys", "values", "pid")

    def __init__(self, keys: Sequence, values: Sequence, pid: Any = None) -> None:
        self.keys = keys if type(keys) is tuple else tuple(keys)
        self.values = values if type(values) is tuple else tuple(values)
        self.pid = pid

    def __repr__(self) -> str:
        return f"Leaf({len(self.keys)} items, pid={self.pid!r})"


class Inner:
    """``keys[i]`` = smallest key under ``children[i + 1]``; ``counts[i]`` = items under ``children[i]``."""

    __slots__ = ("keys", "children", "counts", "pid")

    def __init__(self, keys: Sequence, children: Sequence, counts: Sequence, pid: Any = None) -> None:
        self.keys = keys if type(keys) is tuple else tuple(keys)
        self.children = children if type(children) is tuple else tuple(children)
        self.counts = counts if type(counts) is tuple else tuple(counts)
        self.pid = pid

    def __repr__(self) -> str:
        return f"Inner({len(self.children)} children, {sum(self.counts)} items, pid={self.pid!r})"


Node = Union[Leaf, Inner]


@dataclass(frozen=True, slots=True)
class _Layout:
    """Node capacities of one tree class (tests use tiny ones to get deep trees)."""

    leaf_max: int
    inner_max: int
    leaf_min: int
    inner_min: int

    @classmethod
    def of(cls, leaf_max: int, inner_max: int) -> _Layout:
        if leaf_max < 2 or inner_max < 4:
            raise ValueError("need leaf_max >= 2 and inner_max >= 4")
        return cls(leaf_max, inner_max, max(1, leaf_max // 4), max(2, inner_max // 4))


@dataclass(slots=True)
class DiffStats:
    """Work counters of one ``diff`` run: lets tests prove it skipped shared subtrees."""

    inner_opened: int = 0   # inner nodes whose children were examined
    leaves_read: int = 0    # leaf (or partial leaf) comparisons
    shared_skipped: int = 0  # subtrees skipped because both sides hold the same object

    @property
    def total(self) -> int:
        return self.inner_opened + self.leaves_read + self.shared_skipped


# ----------------------------------------------------------------------------
# small node helpers
# ----------------------------------------------------------------------------
def _replaced(t: tuple, i: int, x: Any) -> tuple:
    """``t`` with item ``i`` replaced by ``x`` (a new tuple)."""
    return t[:i] + (x,) + t[i + 1:]


def _inserted(t: tuple, i: int, x: Any) -> tuple:
    return t[:i] + (x,) + t[i:]


def _deleted(t: tuple, i: int) -> tuple:
    return t[:i] + t[i + 1:]


def _count(node: Node) -> int:
    return len(node.keys) if type(node) is Leaf else sum(node.counts)


def _min_key(node: Node) -> Any:
    while type(node) is Inner:
        node = node.children[0]
    return node.keys[0]


def _height(node: Node | None) -> int:
    """Leaves are height 0; an absent root is -1."""
    h = -1
    while node is not None:
        h += 1
        node = node.children[0] if type(node) is Inner else None
    return h


def _bounds(n: int, cap: int) -> list[int]:
    """Cut points splitting ``n`` entries into the fewest pieces of at most ``cap``, evenly."""
    pieces = -(-n // cap)
    q, r = divmod(n, pieces)
    cuts = [0]
    for p in range(pieces):
        cuts.append(cuts[-1] + q + (1 if p < r else 0))
    return cuts


def _pack_leaves(keys: list, values: list, lay: _Layout) -> list[Leaf]:
    n = len(keys)
    if n <= lay.leaf_max:
        return [Leaf(keys, values)] if n else []
    cuts = _bounds(n, lay.leaf_max)
    return [Leaf(keys[s:e], values[s:e]) for s, e in zip(cuts, cuts[1:])]


def _pack_inners(children: list, mins: list, counts: list, lay: _Layout) -> list[Inner]:
    """Group children (``mins[i]`` = smallest key under child i; ``mins[0]`` unused) into inner nodes."""
    n = len(children)
    if n <= lay.inner_max:
        return [Inner(mins[1:], children, counts)]
    cuts = _bounds(n, lay.inner_max)
    return [Inner(mins[s + 1:e], children[s:e], counts[s:e]) for s, e in zip(cuts, cuts[1:])]


def _same_span(old: Node, new: Node) -> bool:
    """``new`` holds the same keys as ``old`` (a value-only rewrite shares the key lists)."""
    if type(new) is Leaf:
        return new.keys is old.keys
    return new.keys is old.keys and new.counts is old.counts  # type: ignore[union-attr]


def _size(node: Node) -> int:
    return len(node.keys) if type(node) is Leaf else len(node.children)


def _combine(left: Node, right: Node, right_min: Any, lay: _Layout) -> list[Node]:
    """Merge two siblings, re-splitting evenly in two if they overflow (borrow)."""
    if type(left) is Leaf:
        return _pack_leaves(left.keys + right.keys, left.values + right.values, lay)  # type: ignore[return-value]
    keys = left.keys + (right_min,) + right.keys
    children = left.children + right.children
    counts = left.counts + right.counts
    return _pack_inners(children, (None,) + keys, counts, lay)  # type: ignore[return-value]


# ----------------------------------------------------------------------------
# batched writes: ops are sorted keys ``ok`` with values ``ov`` (or _DELETE)
# ----------------------------------------------------------------------------
def _apply(node: Node, ok: list, ov: list, lo: int, hi: int, lay: _Layout) -> list[Node]:
    """Apply ops[lo:hi] (all inside ``node``'s key range) to ``node``.

    Returns the replacement nodes, at the same height: ``[node]`` itself when
    nothing changed, ``[]`` when it emptied, one node that may be underfull
    (the parent merges it), or several nodes that are each within bounds.
    """
    if type(node) is Leaf:
        return _apply_leaf(node, ok, ov, lo, hi, lay)
    return _apply_inner(node, ok, ov, lo, hi, lay)


def _apply_leaf(leaf: Leaf, ok: list, ov: list, lo: int, hi: int, lay: _Layout) -> list[Node]:
    keys, vals = leaf.keys, leaf.values
    if (hi - lo) * 16 <= len(keys) or hi - lo <= 2:
        # Few ops: bisect + list edits on list copies made at the first change.
        nk, nv = keys, vals
        kcopied = vcopied = False
        start = 0
        for p in range(lo, hi):
            k, v = ok[p], ov[p]
            i = bisect_left(nk, k, start)
            start = i
            if i < len(nk) and nk[i] == k:
                if v is _DELETE:
                    if not kcopied:
                        nk, kcopied = list(nk), True
                    if not vcopied:
                        nv, vcopied = list(nv), True
                    del nk[i]
                    del nv[i]
                elif nv[i] is not v:
                    if not vcopied:
                        nv, vcopied = list(nv), True
                    nv[i] = v
            elif v is not _DELETE:
                if not kcopied:
                    nk, kcopied = list(nk), True
                if not vcopied:
                    nv, vcopied = list(nv), True
                nk.insert(i, k)
                nv.insert(i, v)
        if not vcopied:
            return [leaf]
        if not kcopied:
            return [Leaf(keys, nv)]
        return _pack_leaves(nk, nv, lay)  # type: ignore[return-value]
    # Many ops: merge through a dict (C loops); a sort of two sorted runs is linear.
    d = dict(zip(keys, vals))
    inserted = removed = replaced = False
    for k, v in zip(ok[lo:hi], ov[lo:hi]):
        if v is _DELETE:
            if d.pop(k, _DELETE) is not _DELETE:
                removed = True
        else:
            old = d.get(k, _DELETE)
            if old is not v:
                d[k] = v
                if old is _DELETE:
                    inserted = True
                else:
                    replaced = True
    if not (inserted or removed or replaced):
        return [leaf]
    if inserted:
        nk = sorted(d)
        return _pack_leaves(nk, list(map(d.__getitem__, nk)), lay)  # type: ignore[return-value]
    if removed:
        return _pack_leaves(list(d), list(d.values()), lay)  # type: ignore[return-value]
    return [Leaf(keys, list(d.values()))]


def _apply_inner(node: Inner, ok: list, ov: list, lo: int, hi: int, lay: _Layout) -> list[Node]:
    seps, children, counts = node.keys, node.children, node.counts
    nseps = len(seps)
    repl: list[tuple[int, list[Node]]] = []
    pos = lo
    while pos < hi:
        ci = bisect_right(seps, ok[pos])
        end = hi if ci == nseps else bisect_left(ok, seps[ci], pos, hi)
        child = children[ci]
        new = _apply(child, ok, ov, pos, end, lay)
        if len(new) != 1 or new[0] is not child:
            repl.append((ci, new))
        pos = end
    if not repl:
        return [node]
    if all(len(new) == 1 and _same_span(children[ci], new[0]) for ci, new in repl):
        # Only values changed below: share the separators and counts, copy the children.
        ch = list(children)
        for ci, new in repl:
            ch[ci] = new[0]
        return [Inner(seps, tuple(ch), counts)]
    # Rebuild the child list: untouched runs are copied by slice.
    nch: list[Node] = []
    nmins: list[Any] = []
    ncnt: list[int] = []
    underfull = False
    leaf_level = type(children[0]) is Leaf
    minsize = lay.leaf_min if leaf_level else lay.inner_min
    prev = 0
    for ci, new in repl:
        if prev < ci:
            nch += children[prev:ci]
            ncnt += counts[prev:ci]
            nmins += (None,) + seps[prev:ci - 1] if prev == 0 else seps[prev - 1:ci - 1]
        for n in new:
            nch.append(n)
            ncnt.append(_count(n))
            nmins.append(n.keys[0] if leaf_level else _min_key(n))
        if len(new) == 1 and _size(new[0]) < minsize:
            underfull = True
        prev = ci + 1
    if prev < len(children):
        nch += children[prev:]
        ncnt += counts[prev:]
        nmins += (None,) + seps[prev:] if prev == 0 else seps[prev - 1:]
    if not nch:
        return []
    if underfull:
        nch, nmins, ncnt = _fix_underfull(nch, nmins, ncnt, minsize, lay)
    return _pack_inners(nch, nmins, ncnt, lay)  # type: ignore[return-value]


def _fix_underfull(nch: list, nmins: list, ncnt: list, minsize: int,
                   lay: _Layout) -> tuple[list, list, list]:
    """Merge every underfull child into a neighbour (re-splitting evenly if too big).

    Afterwards all children are within bounds unless only one is left.
    """
    oc: list[Node] = []
    om: list[Any] = []
    on: list[int] = []
    for c, m, n in zip(nch, nmins, ncnt):
        if oc and (_size(oc[-1]) < minsize or _size(c) < minsize):
            pc = oc.pop()
            pm = om.pop()
            on.pop()
            merged = _combine(pc, c, m, lay)
            for j, x in enumerate(merged):
                oc.append(x)
                om.append(pm if j == 0 else _min_key(x))
                on.append(_count(x))
        else:
            oc.append(c)
            om.append(m)
            on.append(n)
    return oc, om, on


def _grow_root(nodes: list[Node], lay: _Layout) -> Node | None:
    """Turn the result of a root-level write into a root: stack levels or collapse."""
    while len(nodes) > 1:
        mins = [_min_key(n) for n in nodes]
        nodes = _pack_inners(nodes, mins, [_count(n) for n in nodes], lay)  # type: ignore[assignment]
    if not nodes:
        return None
    root = nodes[0]
    while type(root) is Inner and len(root.children) == 1:
        root = root.children[0]
    return root


# ----------------------------------------------------------------------------
# leaf walking
# ----------------------------------------------------------------------------
def _walk(stack: list[list], leaf: Leaf, reverse: bool) -> Iterator[Leaf]:
    """Yield ``leaf`` then every following (or preceding) leaf; ``stack`` = its path [[inner, idx], ...]."""
    yield leaf
    step = -1 if reverse else 1
    while stack:
        frame = stack[-1]
        inner, i = frame
        i += step
        if 0 <= i < len(inner.children):
            frame[1] = i
            node = inner.children[i]
            while type(node) is Inner:
                j = len(node.children) - 1 if reverse else 0
                stack.append([node, j])
                node = node.children[j]
            yield node
        else:
            stack.pop()


class _Cursor:
    """One side of ``diff``: the current subtree (``node``) and the key bound ``hi`` it ends at.

    ``hi`` is the smallest key of the next subtree in the tree (None: +inf);
    ``start`` is how much of a leaf head was already compared.
    """

    __slots__ = ("stack", "node", "hi", "height", "start")

    def __init__(self, root: Node | None) -> None:
        self.stack: list[list] = []  # frames [inner, next child index, hi of inner, child height]
        self.node = root
        self.hi: Any = None
        self.height = _height(root)
        self.start = 0

    def expand(self) -> None:
        node: Inner = self.node  # type: ignore[assignment]
        self.height -= 1
        self.stack.append([node, 1, self.hi, self.height])
        self.node = node.children[0]
        self.hi = node.keys[0]
        self.start = 0

    def take(self, bound: Any) -> tuple[Sequence, Sequence]:
        """The current leaf's keys and values from ``start`` up to ``bound`` (None: its end),
        without copying a whole leaf; moves past the leaf once it is used up."""
        node = self.node
        if node is None:
            return (), ()
        s, keys = self.start, node.keys
        e = len(keys) if bound is None else bisect_left(keys, bound, s)
        run = (keys, node.values) if s == 0 and e == len(keys) else (keys[s:e], node.values[s:e])
        if e == len(keys):
            self.advance()
        else:
            self.start = e
        return run

    def advance(self) -> None:
        stack = self.stack
        while stack:
            frame = stack[-1]
            inner, i = frame[0], frame[1]
            if i < len(inner.children):
                frame[1] = i + 1
                self.node = inner.children[i]
                self.hi = inner.keys[i] if i < len(inner.keys) else frame[2]
                self.height = frame[3]
                self.start = 0
                return
            stack.pop()
        self.node = None
        self.hi = None
        self.height = -1


def _skip_shared_siblings(a: _Cursor, b: _Cursor) -> None:
    """Both cursors stand on one shared subtree of inner nodes that split their keys the
    same way (path copying shares the ``keys`` list): move both past every following
    sibling that is shared too, with identity checks instead of one ``advance`` each."""
    if not a.stack or not b.stack:
        return
    fa, fb = a.stack[-1], b.stack[-1]
    ia, ib, i = fa[0], fb[0], fa[1]
    if fb[1] != i or ia is ib or len(ia.children) != len(ib.children):
        return
    if ia.keys is not ib.keys and ia.keys != ib.keys:
        return
    ac, bc = ia.children, ib.children
    n = len(ac)
    fa[1] = fb[1] = next(compress(range(i, n), map(is_not, islice(ac, i, None), islice(bc, i, None))), n)


def same_content(a: Any, b: Any) -> bool:
    """``a`` and ``b`` hold the same data, as ``diff`` and merges tell values apart: the same
    object, or equal with the same type (item by item for tuples). ``1``, ``1.0`` and
    ``True`` are equal in Python but are different values to store: a change from one
    to another is a change."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if type(a) is tuple:
        return len(a) == len(b) and all(map(same_content, a, b))
    return a == b


def _diff_runs(ka: Sequence, va: Sequence, kb: Sequence, vb: Sequence
               ) -> Iterator[tuple[Any, Any, Any]]:
    if ka == kb:
        # Same keys (a value-only change keeps the keys list): find the replaced values
        # with C-level identity checks, then compare just those.
        for i in compress(range(len(ka)), map(is_not, va, vb)):
            x, y = va[i], vb[i]
            if not same_content(x, y):
                yield ka[i], x, y
        return
    i = j = 0
    na, nb = len(ka), len(kb)
    while i < na and j < nb:
        x, y = ka[i], kb[j]
        if x < y:
            yield x, va[i], MISSING
            i += 1
        elif y < x:
            yield y, MISSING, vb[j]
            j += 1
        else:
            p, q = va[i], vb[j]
            if not same_content(p, q):
                yield x, p, q
            i += 1
            j += 1
    for i in range(i, na):
        yield ka[i], va[i], MISSING
    for j in range(j, nb):
        yield kb[j], MISSING, vb[j]


# ----------------------------------------------------------------------------
# the tree
# ----------------------------------------------------------------------------
class PTree(Generic[K, V]):
    """An immutable sorted map. Every write returns a new tree; ``self`` never changes."""

    __slots__ = ("root", "_size")

    EMPTY: ClassVar[PTree]
    leaf_max: ClassVar[int] = LEAF_MAX
    inner_max: ClassVar[int] = INNER_MAX
    _layout: ClassVar[_Layout] = _Layout.of(LEAF_MAX, INNER_MAX)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls._layout = _Layout.of(cls.leaf_max, cls.inner_max)

    def __init__(self, root: Node | None = None, size: int | None = None) -> None:
        self.root = root
        self._size = (0 if root is None else _count(root)) if size is None else size

    # -- construction ----------------------------------------------------------
    @classmethod
    def from_sorted(cls, items: Iterable[tuple[K, V]]) -> PTree[K, V]:
        """Bulk-build bottom-up from strictly increasing keys; nodes come out (nearly) full."""
        pairs = items if isinstance(items, list) else list(items)
        return cls.from_sorted_columns([kv[0] for kv in pairs], [kv[1] for kv in pairs])

    @classmethod
    def from_sorted_columns(cls, keys: Sequence[K], values: Sequence[V]) -> PTree[K, V]:
        """``from_sorted`` of ``zip(keys, values)``, without building the pairs: a million
        two-item tuples, freed at once, leave as many holes in the allocator's pools
        between the rows that stay (about 10 bytes per row of resident memory)."""
        if len(keys) != len(values):
            raise ValueError(f"from_sorted_columns: {len(keys)} keys but {len(values)} values")
        if not all(map(lt, keys, islice(keys, 1, None))):
            bad = next(i for i in range(1, len(keys)) if not keys[i - 1] < keys[i])
            raise ValueError(f"from_sorted: keys not strictly increasing at position {bad}: "
                             f"{keys[bad - 1]!r} then {keys[bad]!r}")
        n = len(keys)
        if not n:
            return cls()
        lay = cls._layout
        cuts = _bounds(n, lay.leaf_max)
        nodes: list[Node] = [Leaf(keys[s:e], values[s:e]) for s, e in zip(cuts, cuts[1:])]
        mins = [keys[s] for s in cuts[:-1]]
        counts = [e - s for s, e in zip(cuts, cuts[1:])]
        while len(nodes) > 1:
            cuts = _bounds(len(nodes), lay.inner_max)
            nodes = [Inner(mins[s + 1:e], nodes[s:e], counts[s:e]) for s, e in zip(cuts, cuts[1:])]
            counts = [sum(counts[s:e]) for s, e in zip(cuts, cuts[1:])]
            mins = [mins[s] for s in cuts[:-1]]
        return cls(nodes[0], n)

    # -- size and point reads --------------------------------------------------
    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size != 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<{self._size} items, height {_height(self.root) + 1}>)"

    def get(self, key: K, default: Any = None) -> Any:
        node = self.root
        if node is None:
            return default
        while type(node) is Inner:
            node = node.children[bisect_right(node.keys, key)]
        keys = node.keys
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            return node.values[i]
        return default

    def leaf_for(self, key: K) -> Leaf | None:
        """The leaf whose key range holds ``key`` (None for an empty tree)."""
        node = self.root
        if node is None:
            return None
        while type(node) is Inner:
            node = node.children[bisect_right(node.keys, key)]
        return node

    def __getitem__(self, key: K) -> V:
        v = self.get(key, MISSING)
        if v is MISSING:
            raise KeyError(key)
        return v

    def __contains__(self, key: object) -> bool:
        return self.get(key, MISSING) is not MISSING  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[K]:
        return self.keys()

    # -- single-key writes -------------------------------------------------------
    def set(self, key: K, value: V) -> PTree[K, V]:
        """Insert or replace; returns ``self`` when ``value`` is already the stored object."""
        return self._put(key, value, False)

    def insert(self, key: K, value: V) -> PTree[K, V]:
        """Insert a new key; ``KeyError(key)`` if it is present."""
        return self._put(key, value, True)

    def _put(self, key: K, value: V, must_be_new: bool) -> PTree[K, V]:
        cls = type(self)
        node = self.root
        if node is None:
            return cls(Leaf((key,), (value,)), 1)
        path: list[tuple[Inner, int]] = []
        right_edge = True
        while type(node) is Inner:
            i = bisect_right(node.keys, key)
            path.append((node, i))
            right_edge = right_edge and i == len(node.keys)
            node = node.children[i]
        keys = node.keys
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            if must_be_new:
                raise KeyError(key)
            if node.values[i] is value:
                return self
            new: Node = Leaf(keys, _replaced(node.values, i, value))
            for inner, ci in reversed(path):  # shapes and counts unchanged: share keys/counts
                new = Inner(inner.keys, _replaced(inner.children, ci, new), inner.counts)
            return cls(new, self._size)
        lay = self._layout
        nk = _inserted(keys, i, key)
        nv = _inserted(node.values, i, value)
        n = len(nk)
        if n <= lay.leaf_max:
            new = Leaf(nk, nv)
            split: tuple[Node, Node, Any] | None = None
        else:
            cut = n - lay.leaf_min if right_edge and i == n - 1 else n // 2
            left, right = Leaf(nk[:cut], nv[:cut]), Leaf(nk[cut:], nv[cut:])
            split = (left, right, nk[cut])
        for inner, ci in reversed(path):
            counts = inner.counts
            if split is None:
                new = Inner(inner.keys, _replaced(inner.children, ci, new), _replaced(counts, ci, counts[ci] + 1))
                continue
            left, right, sep = split
            ch = inner.children[:ci] + (left, right) + inner.children[ci + 1:]
            cnt = counts[:ci] + (_count(left), _count(right)) + counts[ci + 1:]
            seps = _inserted(inner.keys, ci, sep)
            m = len(ch)
            if m <= lay.inner_max:
                new = Inner(seps, ch, cnt)
                split = None
            else:
                cut = m - lay.inner_min if right_edge else m // 2
                split = (Inner(seps[:cut - 1], ch[:cut], cnt[:cut]),
                         Inner(seps[cut:], ch[cut:], cnt[cut:]), seps[cut - 1])
        if split is not None:
            left, right, sep = split
            new = Inner((sep,), (left, right), (_count(left), _count(right)))
        return cls(new, self._size + 1)

    def remove(self, key: K) -> PTree[K, V]:
        """Delete a present key; ``KeyError(key)`` if absent."""
        out = self.discard(key)
        if out is self:
            raise KeyError(key)
        return out

    def discard(self, key: K) -> PTree[K, V]:
        """Delete ``key`` if present; returns ``self`` if absent."""
        node = self.root
        if node is None:
            return self
        path: list[tuple[Inner, int]] = []
        while type(node) is Inner:
            i = bisect_right(node.keys, key)
            path.append((node, i))
            node = node.children[i]
        keys = node.keys
        i = bisect_left(keys, key)
        if i == len(keys) or not keys[i] == key:
            return self
        if path and len(keys) <= self._layout.leaf_min:
            return self._write([key], [_DELETE])  # the leaf underflows: merge or borrow
        cls = type(self)
        if len(keys) == 1:
            return cls()
        nk = _deleted(keys, i)
        new: Node = Leaf(nk, _deleted(node.values, i))
        fix_separator = i == 0  # the leaf's smallest key changed
        for inner, ci in reversed(path):
            counts = inner.counts
            seps = inner.keys
            if fix_separator and ci > 0:
                seps = _replaced(seps, ci - 1, nk[0])
                fix_separator = False
            new = Inner(seps, _replaced(inner.children, ci, new), _replaced(counts, ci, counts[ci] - 1))
        return cls(new, self._size - 1)

    def update(self, puts: Iterable[tuple[K, V]] = (), deletes: Iterable[K] = ()) -> PTree[K, V]:
        """Apply many writes with one path copy per touched leaf (later puts of a key win).

        Deletes of absent keys are ignored; a key both put and deleted is a
        ``ValueError`` since the intended order is unknowable.
        """
        pd = dict(puts)
        dl = set(deletes)
        if not pd and not dl:
            return self
        both = pd.keys() & dl
        if both:
            raise ValueError(f"keys both put and deleted: {sorted(both)[:5]!r}")
        if self.root is None:
            if not pd:
                return self
            ok = sorted(pd)
            return type(self).from_sorted_columns(ok, list(map(pd.__getitem__, ok)))
        if dl:
            for k in dl:
                pd[k] = _DELETE
        ok = sorted(pd)
        return self._write(ok, list(map(pd.__getitem__, ok)))

    def _write(self, ok: list, ov: list) -> PTree[K, V]:
        root = self.root
        assert root is not None
        lay = self._layout
        new = _apply(root, ok, ov, 0, len(ok), lay)
        if len(new) == 1 and new[0] is root:
            return self
        return type(self)(_grow_root(new, lay))

    # -- ordered reads -----------------------------------------------------------
    def batches(self, lo: Any = None, hi: Any = None, *, lo_inclusive: bool = True,
                hi_inclusive: bool = True, reverse: bool = False
                ) -> Iterator[tuple[Sequence[K], Sequence[V]]]:
        """One non-empty ``(keys, values)`` pair per leaf within the bounds; None = unbounded.

        Whole leaves are yielded as the leaf's own tuples (no copy).
        """
        root = self.root
        if root is None:
            return
        if lo is not None and hi is not None and (hi < lo or (
                hi == lo and not (lo_inclusive and hi_inclusive))):
            return
        stack: list[list] = []
        node = root
        bound = hi if reverse else lo
        while type(node) is Inner:
            if bound is None:
                i = len(node.children) - 1 if reverse else 0
            else:
                i = bisect_right(node.keys, bound)
            stack.append([node, i])
            node = node.children[i]
        if reverse:
            for leaf in _walk(stack, node, True):
                ks = leaf.keys
                e = len(ks) if hi is None else (
                    bisect_right(ks, hi) if hi_inclusive else bisect_left(ks, hi))
                last = lo is not None and not lo < ks[0]  # earlier leaves hold only keys < ks[0]
                s = 0 if not last else (
                    bisect_left(ks, lo) if lo_inclusive else bisect_right(ks, lo))
                if s < e:
                    yield ks[s:e][::-1], leaf.values[s:e][::-1]
                if last:
                    return
                hi = None
        else:
            for leaf in _walk(stack, node, False):
                ks = leaf.keys
                s = 0 if lo is None else (
                    bisect_left(ks, lo) if lo_inclusive else bisect_right(ks, lo))
                last = hi is not None and not ks[-1] < hi  # later leaves hold only keys > ks[-1]
                e = len(ks) if not last else (
                    bisect_right(ks, hi) if hi_inclusive else bisect_left(ks, hi))
                if s == 0 and e == len(ks):
                    yield ks, leaf.values
                elif s < e:
                    yield ks[s:e], leaf.values[s:e]
                if last:
                    return
                lo = None

    def items(self, lo: Any = None, hi: Any = None, *, lo_inclusive: bool = True,
              hi_inclusive: bool = True, reverse: bool = False) -> Iterator[tuple[K, V]]:
        for ks, vs in self.batches(lo, hi, lo_inclusive=lo_inclusive,
                                   hi_inclusive=hi_inclusive, reverse=reverse):
            yield from zip(ks, vs)

    def keys(self, lo: Any = None, hi: Any = None, *, lo_inclusive: bool = True,
             hi_inclusive: bool = True, reverse: bool = False) -> Iterator[K]:
        for ks, _ in self.batches(lo, hi, lo_inclusive=lo_inclusive,
                                  hi_inclusive=hi_inclusive, reverse=reverse):
            yield from ks

    def values(self, lo: Any = None, hi: Any = None, *, lo_inclusive: bool = True,
               hi_inclusive: bool = True, reverse: bool = False) -> Iterator[V]:
        for _, vs in self.batches(lo, hi, lo_inclusive=lo_inclusive,
                                  hi_inclusive=hi_inclusive, reverse=reverse):
            yield from vs

    def first(self) -> tuple[K, V] | None:
        node = self.root
        if node is None:
            return None
        while type(node) is Inner:
            node = node.children[0]
        return node.keys[0], node.values[0]

    def last(self) -> tuple[K, V] | None:
        node = self.root
        if node is None:
            return None
        while type(node) is Inner:
            node = node.children[-1]
        return node.keys[-1], node.values[-1]

    def rank(self, key: K) -> int:
        """Number of keys ``< key`` in O(log n), from the per-child counts."""
        node = self.root
        if node is None:
            return 0
        r = 0
        while type(node) is Inner:
            i = bisect_right(node.keys, key)
            r += sum(node.counts[:i])
            node = node.children[i]
        return r + bisect_left(node.keys, key)

    def items_from(self, offset: int, *, reverse: bool = False) -> Iterator[tuple[K, V]]:
        """Items after skipping ``offset`` of them (from the end if ``reverse``), in O(log n)."""
        for ks, vs in self._batches_from(offset, reverse):
            yield from zip(ks, vs)

    def _batches_from(self, offset: int, reverse: bool) -> Iterator[tuple[Sequence, Sequence]]:
        if offset < 0:
            raise ValueError("offset must be >= 0")
        if offset >= self._size:
            return
        pos = self._size - 1 - offset if reverse else offset
        node = self.root
        stack: list[list] = []
        while type(node) is Inner:
            cum = list(accumulate(node.counts))
            i = bisect_right(cum, pos)
            if i:
                pos -= cum[i - 1]
            stack.append([node, i])
            node = node.children[i]
        first = True
        for leaf in _walk(stack, node, reverse):
            ks, vs = leaf.keys, leaf.values
            if not first:
                pos = len(ks) - 1 if reverse else 0
            first = False
            if reverse:
                yield ks[pos::-1], vs[pos::-1]
            elif pos:
                yield ks[pos:], vs[pos:]
            else:
                yield ks, vs

    # -- structure -----------------------------------------------------------------
    def diff(self, other: PTree[K, Any], *, stats: DiffStats | None = None
             ) -> Iterator[tuple[K, Any, Any]]:
        """``(key, value in self or MISSING, value in other or MISSING)`` for each differing key.

        Walks both trees in key order with one cursor each; whenever the two
        cursors stand on the same node object (at the same offset) the whole
        subtree is skipped. Leaf boundaries that moved (splits, merges) only
        misalign the cursors locally: the leaf-level step compares up to the
        nearer boundary and carries the rest over, after which the walk
        resynchronises on shared nodes. Cost: about changed leaves x depth x
        fanout identity checks, independent of the table size.
        """
        a, b = _Cursor(self.root), _Cursor(other.root)
        while a.node is not None or b.node is not None:
            na, nb = a.node, b.node
            if na is nb and a.start == b.start:
                if stats is not None:
                    stats.shared_skipped += 1
                _skip_shared_siblings(a, b)
                a.advance()
                b.advance()
                continue
            ha, hb = a.height, b.height
            if ha > 0 or hb > 0:
                if ha > 0 and ha >= hb:
                    a.expand()
                    if stats is not None:
                        stats.inner_opened += 1
                if hb > 0 and hb >= ha:
                    b.expand()
                    if stats is not None:
                        stats.inner_opened += 1
                continue
            if stats is not None:
                stats.leaves_read += 1
            # Both heads are leaves (or exhausted): compare keys below the nearer bound.
            h = b.hi if a.hi is None else a.hi if b.hi is None else (
                a.hi if a.hi <= b.hi else b.hi)
            ka, va = a.take(h)
            kb, vb = b.take(h)
            if ka or kb:
                yield from _diff_runs(ka, va, kb, vb)

    def nodes(self, skip: Callable[[Node], bool] | None = None) -> Iterator[Node]:
        """Every reachable node, children before parents.

        A node for which ``skip(node)`` is true is neither yielded nor entered
        (e.g. ``skip=lambda n: n.pid is not None`` for a checkpoint).
        """
        if self.root is None or (skip is not None and skip(self.root)):
            return
        stack: list[tuple[Node, int]] = [(self.root, 0)]
        while stack:
            node, i = stack.pop()
            if type(node) is Inner and i < len(node.children):
                stack.append((node, i + 1))
                child = node.children[i]
                if skip is None or not skip(child):
                    stack.append((child, 0))
            else:
                yield node

    def validate(self) -> None:
        """Check every structural invariant; ``ValueError`` names the first broken one."""
        lay = self._layout
        root = self.root
        if root is None:
            if self._size:
                raise ValueError(f"empty root but size {self._size}")
            return
        depth = _height(root)
        prev: list[Any] = []  # last key seen, across leaves

        def walk(node: Node, level: int, is_root: bool) -> tuple[Any, int]:
            if type(node) is Leaf:
                if level != 0:
                    raise ValueError(f"leaf at height {level}, expected uniform depth {depth}")
                ks = node.keys
                if len(ks) != len(node.values):
                    raise ValueError("leaf keys/values lengths differ")
                if not ks:
                    raise ValueError("empty leaf")
                if not is_root and not lay.leaf_min <= len(ks) <= lay.leaf_max:
                    raise ValueError(f"leaf size {len(ks)} outside [{lay.leaf_min}, {lay.leaf_max}]")
                if is_root and len(ks) > lay.leaf_max:
                    raise ValueError(f"root leaf size {len(ks)} > {lay.leaf_max}")
                if prev and not prev[0] < ks[0]:
                    raise ValueError(f"keys not increasing across leaves at {ks[0]!r}")
                if not all(map(lt, ks, islice(ks, 1, None))):
                    raise ValueError("keys not increasing inside a leaf")
                prev[:] = [ks[-1]]
                return ks[0], len(ks)
            if type(node) is not Inner:
                raise ValueError(f"not a node: {node!r}")
            ch = node.children
            if level == 0:
                raise ValueError("inner node at leaf level")
            if len(node.keys) != len(ch) - 1 or len(node.counts) != len(ch):
                raise ValueError("inner keys/children/counts lengths disagree")
            lo_size = 2 if is_root else lay.inner_min
            if not lo_size <= len(ch) <= lay.inner_max:
                raise ValueError(f"inner size {len(ch)} outside [{lo_size}, {lay.inner_max}]")
            total = 0
            first = None
            for i, c in enumerate(ch):
                mn, cnt = walk(c, level - 1, False)
                if cnt != node.counts[i]:
                    raise ValueError(f"counts[{i}] = {node.counts[i]} but child holds {cnt}")
                if i == 0:
                    first = mn
                elif not (node.keys[i - 1] == mn):
                    raise ValueError(f"separator {node.keys[i - 1]!r} != child min {mn!r}")
                total += cnt
            return first, total

        _, total = walk(root, depth, True)
        if total != self._size:
            raise ValueError(f"size {self._size} but tree holds {total}")


PTree.EMPTY = PTree()
