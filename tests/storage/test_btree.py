"""Tests for helios.storage.btree: a dict model, old versions, invariants, diff cost."""
from __future__ import annotations

import pickle
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from helios.storage.btree import (
    INNER_MAX, LEAF_MAX, MISSING, DiffStats, Inner, Leaf, PTree,
)


class TinyTree(PTree):
    """Capacity 4 everywhere: a hundred keys already make a 4-level tree."""

    leaf_max = 4
    inner_max = 4


class SmallTree(PTree):
    """Minimums above 1 (2 items per leaf, 2 children): exercises borrow vs merge."""

    leaf_max = 9
    inner_max = 8


def model_diff(a: dict, b: dict) -> list[tuple[Any, Any, Any]]:
    out = []
    for k in sorted(a.keys() | b.keys()):
        x, y = a.get(k, MISSING), b.get(k, MISSING)
        if x is MISSING or y is MISSING or not (x is y or x == y):
            out.append((k, x, y))
    return out


def model_range(model: dict, lo, hi, lo_inc: bool, hi_inc: bool, reverse: bool) -> list:
    items = sorted(model.items(), reverse=reverse)
    return [(k, v) for k, v in items
            if (lo is None or (lo <= k if lo_inc else lo < k))
            and (hi is None or (k <= hi if hi_inc else k < hi))]


def assert_matches(tree: PTree, expected: list[tuple[Any, Any]]) -> None:
    """``expected`` is the sorted item list the tree must hold."""
    assert len(tree) == len(expected)
    assert bool(tree) == bool(expected)
    assert list(tree.items()) == expected
    assert list(tree.items(reverse=True)) == expected[::-1]
    assert tree.first() == (expected[0] if expected else None)
    assert tree.last() == (expected[-1] if expected else None)


# ----------------------------------------------------------------------------
# the model-based state machine
# ----------------------------------------------------------------------------
KEYS = st.integers(0, 120)
VALUES = st.one_of(st.integers(0, 3), st.tuples(st.integers(0, 3)))
BOUND = st.one_of(st.none(), st.integers(-2, 122))


class BTreeMachine(RuleBasedStateMachine):
    tree_cls: type[PTree] = TinyTree

    def __init__(self) -> None:
        super().__init__()
        self.tree: PTree = self.tree_cls()
        self.model: dict = {}
        self.history: list[tuple[PTree, list]] = [(self.tree, [])]

    @initialize(rnd=st.randoms(use_true_random=False))
    def setup(self, rnd: random.Random) -> None:
        self.rnd = rnd

    def commit(self, tree: PTree) -> None:
        self.tree = tree
        self.history.append((tree, sorted(self.model.items())))

    # -- writes ----------------------------------------------------------------
    @rule(k=KEYS, v=VALUES)
    def set(self, k, v) -> None:
        self.model[k] = v
        self.commit(self.tree.set(k, v))
        assert self.tree.get(k) is v

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def set_identical_is_noop(self, data) -> None:
        k = data.draw(st.sampled_from(sorted(self.model)))
        assert self.tree.set(k, self.model[k]) is self.tree

    @rule(k=KEYS, v=VALUES)
    def insert(self, k, v) -> None:
        if k in self.model:
            with pytest.raises(KeyError):
                self.tree.insert(k, v)
        else:
            self.model[k] = v
            self.commit(self.tree.insert(k, v))

    @rule(k=KEYS)
    def remove(self, k) -> None:
        if k in self.model:
            del self.model[k]
            self.commit(self.tree.remove(k))
        else:
            with pytest.raises(KeyError):
                self.tree.remove(k)

    @rule(k=KEYS)
    def discard(self, k) -> None:
        new = self.tree.discard(k)
        if k in self.model:
            del self.model[k]
            assert new is not self.tree
        else:
            assert new is self.tree
        self.commit(new)

    @rule(puts=st.lists(st.tuples(KEYS, VALUES), max_size=60),
          deletes=st.lists(KEYS, max_size=60))
    def update(self, puts, deletes) -> None:
        put_keys = {k for k, _ in puts}
        deletes = [k for k in deletes if k not in put_keys]
        new = self.tree.update(puts, deletes)
        for k in deletes:
            self.model.pop(k, None)
        self.model.update(puts)
        if not puts and not deletes:
            assert new is self.tree
        for k, v in dict(puts).items():  # the last put of a key wins, by identity
            assert new.get(k) is v
        self.commit(new)

    @rule(k=KEYS, v=VALUES)
    def update_put_and_delete_same_key_is_rejected(self, k, v) -> None:
        with pytest.raises(ValueError):
            self.tree.update([(k, v)], [k])

    @rule(content=st.dictionaries(KEYS, VALUES, max_size=150))
    def bulk_build(self, content) -> None:
        self.model = dict(content)
        self.commit(self.tree_cls.from_sorted(sorted(content.items())))

    # -- reads -----------------------------------------------------------------
    @rule(k=st.integers(-2, 122))
    def point_reads(self, k) -> None:
        assert self.tree.get(k, MISSING) is self.model.get(k, MISSING)
        assert (k in self.tree) == (k in self.model)
        assert self.tree.rank(k) == sum(1 for x in self.model if x < k)

    @rule(lo=BOUND, hi=BOUND, lo_inc=st.booleans(), hi_inc=st.booleans(), reverse=st.booleans())
    def range_reads(self, lo, hi, lo_inc, hi_inc, reverse) -> None:
        want = model_range(self.model, lo, hi, lo_inc, hi_inc, reverse)
        kw = dict(lo_inclusive=lo_inc, hi_inclusive=hi_inc, reverse=reverse)
        assert list(self.tree.items(lo, hi, **kw)) == want
        assert list(self.tree.keys(lo, hi, **kw)) == [k for k, _ in want]
        assert list(self.tree.values(lo, hi, **kw)) == [v for _, v in want]
        batches = list(self.tree.batches(lo, hi, **kw))
        assert all(len(ks) == len(vs) and ks for ks, vs in batches)
        assert [kv for ks, vs in batches for kv in zip(ks, vs)] == want

    @rule(offset=st.integers(0, 130), reverse=st.booleans())
    def items_from(self, offset, reverse) -> None:
        want = sorted(self.model.items(), reverse=reverse)[offset:]
        assert list(self.tree.items_from(offset, reverse=reverse)) == want

    @rule(i=st.integers(0, 10**6), j=st.integers(0, 10**6), rebuild=st.booleans())
    def diff_versions(self, i, j, rebuild) -> None:
        (ta, ea), (tb, eb) = self.history[i % len(self.history)], self.history[j % len(self.history)]
        if rebuild:  # no shared structure at all
            tb = self.tree_cls.from_sorted(eb)
        assert list(ta.diff(tb)) == model_diff(dict(ea), dict(eb))

    # -- after every step ------------------------------------------------------
    @invariant()
    def current_tree_is_valid_and_matches(self) -> None:
        self.tree.validate()
        assert_matches(self.tree, sorted(self.model.items()))

    @invariant()
    def old_versions_never_change(self) -> None:
        if not hasattr(self, "rnd"):
            return
        tree, expected = self.rnd.choice(self.history)
        tree.validate()
        assert_matches(tree, expected)


MACHINE_SETTINGS = settings(max_examples=150, stateful_step_count=40, deadline=None,
                            suppress_health_check=[HealthCheck.too_slow])


class SmallTreeMachine(BTreeMachine):
    tree_cls = SmallTree


class FullSizeMachine(BTreeMachine):
    tree_cls = PTree


TestTinyTree = BTreeMachine.TestCase
TestTinyTree.settings = MACHINE_SETTINGS
TestSmallTree = SmallTreeMachine.TestCase
TestSmallTree.settings = MACHINE_SETTINGS
TestFullSizeTree = FullSizeMachine.TestCase
TestFullSizeTree.settings = settings(MACHINE_SETTINGS, max_examples=40)


# ----------------------------------------------------------------------------
# diff cost: proportional to the change, not to the tree
# ----------------------------------------------------------------------------
N_BIG = 200_000


@pytest.fixture(scope="module")
def big_tree() -> PTree:
    return PTree.from_sorted((k * 10, (k, "row")) for k in range(N_BIG))


def height(tree: PTree) -> int:
    """Number of inner levels above the leaves."""
    h, node = 0, tree.root
    while isinstance(node, Inner):
        h, node = h + 1, node.children[0]
    return h


def node_count(tree: PTree) -> int:
    return sum(1 for _ in tree.nodes())


def test_diff_of_scattered_changes_reads_few_nodes(big_tree: PTree) -> None:
    rnd = random.Random(7)
    changed = {}
    for k in rnd.sample(range(N_BIG), 50):
        changed[k * 10] = (k, "new")
    new = big_tree.update(changed.items())
    stats = DiffStats()
    got = list(big_tree.diff(new, stats=stats))
    assert got == [(k, big_tree.get(k), v) for k, v in sorted(changed.items())]
    # 50 changed leaves, each read once per side; their ancestors opened once per side.
    assert stats.leaves_read <= 2 * 50
    assert stats.inner_opened <= 2 * 50 * 3
    assert stats.inner_opened + stats.leaves_read < node_count(big_tree) / 10
    # Shared children are only identity-compared inside opened parents.
    assert stats.shared_skipped <= stats.inner_opened * INNER_MAX


def test_diff_after_splits_and_merges_stays_local(big_tree: PTree) -> None:
    """Splits and merges move leaf boundaries; the walk must resynchronise at once."""
    rnd = random.Random(11)
    puts, deletes = {}, []
    for k in rnd.sample(range(N_BIG - 300), 20):
        base = k * 10
        for j in range(1, 10):  # 9 new keys in each gap of 3 * LEAF_MAX rows: several splits
            for g in range(3 * LEAF_MAX // 9):
                puts[base + 10 * g + j] = ("ins", j)
    for k in rnd.sample(range(N_BIG), 20):  # whole-leaf deletions force merges
        deletes.extend(range(k * 10, k * 10 + 10 * LEAF_MAX, 10))
    deletes = [d for d in set(deletes) if d < N_BIG * 10]
    new = big_tree.update(puts.items(), deletes)
    new.validate()
    stats = DiffStats()
    got = list(big_tree.diff(new, stats=stats))
    expected = sorted([(k, MISSING, v) for k, v in puts.items()]
                      + [(k, big_tree[k], MISSING) for k in deletes])
    assert got == expected
    touched_leaves = 20 * 3 + 20 * 2
    assert stats.leaves_read <= 4 * touched_leaves
    assert stats.inner_opened + stats.leaves_read < node_count(big_tree) / 4
    # and in the other direction
    assert list(new.diff(big_tree)) == [(k, y, x) for k, x, y in expected]


def test_diff_of_identical_trees_is_one_skip(big_tree: PTree) -> None:
    stats = DiffStats()
    assert list(big_tree.diff(big_tree, stats=stats)) == []
    assert (stats.shared_skipped, stats.inner_opened, stats.leaves_read) == (1, 0, 0)


def test_diff_against_a_rebuilt_tree_compares_values_by_equality(big_tree: PTree) -> None:
    small = PTree.from_sorted((k, (k, "v")) for k in range(5000))
    rebuilt = PTree.from_sorted((k, (k, "v")) for k in range(5000))  # equal, not identical
    assert list(small.diff(rebuilt)) == []
    changed = rebuilt.set(77, "x").remove(100)
    assert list(small.diff(changed)) == [(77, (77, "v"), "x"), (100, (100, "v"), MISSING)]


def test_diff_tells_equal_values_of_different_types_apart() -> None:
    """1, 1.0 and True are equal in Python but are different stored values."""
    base = PTree.from_sorted((k, (k, 1)) for k in range(300))
    same_keys = base.set(5, (5, 1.0)).set(6, (6, True)).set(7, (7, 1))   # 7: equal and same type
    assert list(base.diff(same_keys)) == [(5, (5, 1), (5, 1.0)), (6, (6, 1), (6, True))]
    moved = same_keys.remove(200).set(1000, (1000, 1))                  # keys differ: the merge walk
    assert [k for k, _, _ in base.diff(moved)] == [5, 6, 200, 1000]
    assert list(base.diff(PTree.from_sorted((k, (k, 1)) for k in range(300)))) == []


def test_diff_with_empty_sides() -> None:
    t = TinyTree.from_sorted((k, k) for k in range(30))
    assert list(t.diff(TinyTree())) == [(k, k, MISSING) for k in range(30)]
    assert list(TinyTree().diff(t)) == [(k, MISSING, k) for k in range(30)]
    assert list(PTree.EMPTY.diff(PTree.EMPTY)) == []


# ----------------------------------------------------------------------------
# structure and edge cases
# ----------------------------------------------------------------------------
def test_empty_tree_everywhere() -> None:
    t = PTree.EMPTY
    assert len(t) == 0 and not t
    assert t.get(1) is None and t.get(1, "d") == "d" and 1 not in t
    with pytest.raises(KeyError):
        t[1]
    for reverse in (False, True):
        assert list(t.items(reverse=reverse)) == []
        assert list(t.items(0, 10, reverse=reverse)) == []
        assert list(t.batches(reverse=reverse)) == []
        assert list(t.items_from(0, reverse=reverse)) == []
    assert list(t.keys()) == [] and list(t.values()) == []
    assert t.first() is None and t.last() is None
    assert t.rank(5) == 0
    assert list(t.nodes()) == []
    with pytest.raises(KeyError):
        t.remove(1)
    assert t.discard(1) is t
    assert t.update() is t
    assert t.update(deletes=[1, 2]) is t
    t.validate()
    assert PTree().root is None and len(PTree()) == 0


def test_single_item() -> None:
    t = PTree.EMPTY.set("a", 1)
    assert PTree.EMPTY.root is None  # the shared empty tree never changes
    assert isinstance(t.root, Leaf) and len(t) == 1
    assert t["a"] == 1 and t.first() == t.last() == ("a", 1)
    assert list(t.items("a", "a")) == [("a", 1)]
    assert list(t.items("a", "a", lo_inclusive=False)) == []
    assert list(t.items("b")) == [] and list(t.items(None, "0")) == []
    assert t.rank("a") == 0 and t.rank("b") == 1
    assert list(t.items_from(1)) == []
    empty = t.remove("a")
    assert empty.root is None and len(empty) == 0 and len(t) == 1
    t.validate()
    empty.validate()


@pytest.mark.parametrize("n", [0, 1, 2, LEAF_MAX - 1, LEAF_MAX, LEAF_MAX + 1, 3 * LEAF_MAX,
                               LEAF_MAX * INNER_MAX, LEAF_MAX * INNER_MAX + 1,
                               2 * LEAF_MAX * INNER_MAX])
def test_from_sorted_sizes(n: int) -> None:
    items = [(k, -k) for k in range(n)]
    t = PTree.from_sorted(iter(items))
    t.validate()
    assert_matches(t, items)
    leaves = [x for x in t.nodes() if isinstance(x, Leaf)]
    assert len(leaves) == -(-n // LEAF_MAX)  # leaves come out as full as possible


@pytest.mark.parametrize("bad", [[(1, "a"), (1, "b")], [(2, "a"), (1, "b")],
                                 [(k, k) for k in range(500)] + [(499, 0)]])
def test_from_sorted_rejects_non_increasing_keys(bad: list) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        PTree.from_sorted(bad)
    with pytest.raises(ValueError, match="strictly increasing"):
        PTree.from_sorted_columns([k for k, _ in bad], [v for _, v in bad])


@pytest.mark.parametrize("n", [0, 1, LEAF_MAX + 1, LEAF_MAX * INNER_MAX + 1])
def test_from_sorted_columns_builds_what_from_sorted_builds(n: int) -> None:
    keys, values = list(range(0, 2 * n, 2)), [(k, f"v{k}") for k in range(n)]
    t = PTree.from_sorted_columns(keys, values)
    t.validate()
    ref = PTree.from_sorted(zip(keys, values))
    assert list(t.items()) == list(ref.items()) and len(t) == n
    assert [len(x.keys) for x in t.nodes()] == [len(x.keys) for x in ref.nodes()]
    assert all(type(x.keys) is tuple and type(getattr(x, "values", ())) is tuple for x in t.nodes())
    assert all(a is b for a, b in zip(t.values(), values))        # the rows themselves, not copies
    with pytest.raises(ValueError, match="2 keys but 1 values"):
        PTree.from_sorted_columns([1, 2], ["a"])


def test_string_and_tuple_keys() -> None:
    words = sorted({f"w{random.Random(3).random():.6f}{i}" for i in range(800)})
    t = PTree.EMPTY
    for i, w in enumerate(reversed(words)):
        t = t.insert(w, i)
    t.validate()
    assert list(t.keys()) == words
    assert list(t.keys("w0.5", "w0.6", hi_inclusive=False)) == [w for w in words if "w0.5" <= w < "w0.6"]
    tt = TinyTree.from_sorted(((a, b), None) for a in range(20) for b in "xyz")
    assert list(tt.keys((3, "y"), (4, "x"))) == [(3, "y"), (3, "z"), (4, "x")]
    assert tt.rank((10,)) == 30  # (10,) sorts before (10, "x")


def test_setting_identical_object_returns_self_and_equal_object_copies() -> None:
    row = (1, "x")
    t = PTree.from_sorted([(1, row)])
    assert t.set(1, row) is t
    t2 = t.set(1, tuple([1, "x"]))  # equal, but a distinct object
    assert t2 is not t and t2[1] == row
    assert t.update([(1, row)]) is t  # nothing changed: same tree, nodes kept for diff/checkpoint


def test_value_change_shares_keys_and_untouched_nodes() -> None:
    t = PTree.from_sorted((k, k) for k in range(100_000))
    t2 = t.set(500, "x")
    old_nodes = {id(n) for n in t.nodes()}
    fresh = [n for n in t2.nodes() if id(n) not in old_nodes]
    assert len(fresh) == height(t2) + 1  # one leaf + its ancestors, nothing else
    leaf = next(n for n in fresh if isinstance(n, Leaf))
    assert any(leaf.keys is n.keys for n in t.nodes() if isinstance(n, Leaf))


def test_batched_value_changes_share_keys_and_counts_all_the_way_up() -> None:
    t = TinyTree.from_sorted((k, k) for k in range(500))
    t2 = t.update(puts=[(k, -k) for k in (3, 4, 250, 251, 499)])
    t2.validate()
    assert dict(t2.items()) == {k: -k if k in (3, 4, 250, 251, 499) else k for k in range(500)}
    old_nodes = {id(n) for n in t.nodes()}
    fresh = [n for n in t2.nodes() if id(n) not in old_nodes]
    for node in fresh:                 # every rewritten node kept its keys (and counts) lists
        twin = next(o for o in t.nodes() if type(o) is type(node) and o.keys is node.keys)
        if isinstance(node, Inner):
            assert node.counts is twin.counts
    assert t2.root.keys is t.root.keys
    t3 = t.update(puts=[(3, -3), (1000, 1000)])          # a key added: the right spine is rebuilt
    t3.validate()
    assert t3.root.counts is not t.root.counts and len(t3) == 501


def test_leaf_for_finds_the_leaf_holding_a_key() -> None:
    assert PTree().leaf_for(1) is None
    t = TinyTree.from_sorted((k, k) for k in range(0, 200, 2))
    for key in (-5, 0, 1, 37, 198, 500):
        leaf = t.leaf_for(key)
        assert isinstance(leaf, Leaf)
        inside = [k for k in t.keys() if k <= key] or [0]
        assert inside[-1] in leaf.keys         # the leaf a get or a put of ``key`` would use


@pytest.mark.parametrize(("cls", "n", "check_every"), [(PTree, 20_000, 1000), (SmallTree, 3000, 5)])
def test_ascending_appends_keep_leaves_mostly_full(cls: type[PTree], n: int, check_every: int) -> None:
    """Right-edge splits leave the old leaf ~3/4 full and the new one at the minimum."""
    t = cls()
    for k in range(n):
        t = t.set(k, k)
        if k % check_every == 0:
            t.validate()
    t.validate()
    leaves = [x for x in t.nodes() if isinstance(x, Leaf)]
    assert sum(len(x.keys) for x in leaves[:-1]) / (len(leaves) - 1) >= 0.7 * cls.leaf_max
    assert list(t.keys()) == list(range(n))


def test_random_deletes_keep_depth_bounded() -> None:
    t = SmallTree.from_sorted((k, k) for k in range(5000))
    keys = list(range(5000))
    random.Random(5).shuffle(keys)
    for i, k in enumerate(keys[:4990]):
        t = t.remove(k)
        if i % 500 == 0:
            t.validate()
    t.validate()
    assert sorted(keys[4990:]) == list(t.keys())


def test_nodes_post_order_and_skip() -> None:
    t = TinyTree.from_sorted((k, k) for k in range(200))
    seen: set[int] = set()
    order = list(t.nodes())
    for n in order:
        if isinstance(n, Inner):
            assert all(id(c) in seen for c in n.children)
        seen.add(id(n))
    assert order[-1] is t.root and len(seen) == len(order)
    for n in order:  # pretend a checkpoint wrote them all
        n.pid = id(n)
    t2 = t.set(57, "x")
    fresh = list(t2.nodes(skip=lambda n: n.pid is not None))
    assert fresh and all(n.pid is None for n in fresh)
    assert fresh[-1] is t2.root
    assert len(fresh) == height(t2) + 1  # only the copied path is new
    assert list(t.nodes(skip=lambda n: n.pid is not None)) == []


def test_items_from_and_rank_on_deep_tree() -> None:
    t = TinyTree.from_sorted((k * 2, k) for k in range(500))
    assert [k for k, _ in t.items_from(497)] == [994, 996, 998]
    assert [k for k, _ in t.items_from(497, reverse=True)] == [4, 2, 0]
    assert t.rank(500) == 250 and t.rank(501) == 251 and t.rank(-1) == 0 and t.rank(10**6) == 500
    with pytest.raises(ValueError):
        list(t.items_from(-1))


def test_batches_yield_whole_leaves_and_respect_bounds() -> None:
    t = PTree.from_sorted((k, str(k)) for k in range(10 * LEAF_MAX))
    full = list(t.batches())
    assert len(full) == 10 and all(len(ks) == LEAF_MAX for ks, _ in full)
    part = list(t.batches(LEAF_MAX // 2, 2 * LEAF_MAX, hi_inclusive=False, reverse=True))
    assert [len(ks) for ks, _ in part] == [LEAF_MAX, LEAF_MAX // 2]
    assert part[0][0][0] == 2 * LEAF_MAX - 1 and part[-1][0][-1] == LEAF_MAX // 2
    assert list(t.batches(5, 4)) == [] and list(t.batches(5, 5, lo_inclusive=False)) == []


def test_update_large_batch_matches_repeated_set() -> None:
    base = PTree.from_sorted((k * 3, k) for k in range(30_000))
    rnd = random.Random(2)
    puts = [(rnd.randrange(100_000), i) for i in range(20_000)]
    put_keys = {k for k, _ in puts}
    deletes = [k for k in rnd.sample(range(0, 90_000, 3), 5000) if k not in put_keys]
    by_batch = base.update(puts, deletes)
    one_by_one = base
    for k, v in puts:
        one_by_one = one_by_one.set(k, v)
    for k in deletes:
        one_by_one = one_by_one.discard(k)
    by_batch.validate()
    assert list(by_batch.items()) == list(one_by_one.items())
    assert list(base.diff(by_batch)) == list(base.diff(one_by_one))


def test_missing_sentinel() -> None:
    assert repr(MISSING) == "MISSING" and not MISSING
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING


def test_validate_reports_broken_invariants() -> None:
    t = TinyTree.from_sorted((k, k) for k in range(40))
    bad_count = TinyTree(Inner(t.root.keys, t.root.children, [c + 1 for c in t.root.counts]), 40)
    with pytest.raises(ValueError, match="counts"):
        bad_count.validate()
    leaf = next(n for n in t.nodes() if isinstance(n, Leaf))
    leaf.keys = leaf.keys[::-1]  # only ever done here: published nodes are never mutated
    with pytest.raises(ValueError, match="increasing"):
        t.validate()


def test_old_versions_are_invisible_to_the_cyclic_collector() -> None:
    """Node sequences are tuples of plain values, which CPython stops tracking after one
    collection: history kept in memory must not make every full collection longer."""
    import gc
    t = TinyTree()
    versions = []
    for k in range(300):                       # many path copies, splits and a few deletes
        t = t.set(k * 7 % 301, ("row", k, None, 1.5))
        if k % 10 == 9:
            t = t.discard((k - 5) * 7 % 301)
        versions.append(t)
    t = t.update(puts=[(k, (k,)) for k in range(0, 301, 3)], deletes=[1, 4])
    versions.append(t)
    gc.collect()
    gc.collect()          # a leaf's tuple is untracked once its rows are: at the latest one collection later
    for v in versions:
        for node in v.nodes():
            assert not gc.is_tracked(node.keys), node
            if isinstance(node, Leaf):
                assert not gc.is_tracked(node.values), node
            else:
                assert not gc.is_tracked(node.counts), node
                assert type(node.children) is tuple
        v.validate()
