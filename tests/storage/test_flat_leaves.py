"""Flat leaves: a leaf whose values are all tuples of one width holds them end to end.

The form is picked per leaf and must never show: values come back as the same items
(1, 1.0, True and None stay apart), mixed widths and non-tuples stay plain, a leaf
changes form as its values do, and ``diff`` tells rows apart item by item whichever
form each side holds (the state machine in ``test_btree`` runs all of this at random).
"""
from __future__ import annotations

import random
from collections import namedtuple

import pytest

from helios.storage.btree import MISSING, DiffStats, Leaf, PTree, flat_width, same_content, same_value


class TinyTree(PTree):
    leaf_max = 4
    inner_max = 4


def leaves(tree: PTree) -> list[Leaf]:
    return [n for n in tree.nodes() if isinstance(n, Leaf)]


def items_are(tree: PTree, want: dict) -> bool:
    """The tree holds exactly ``want``, every value's items the same objects."""
    got = list(tree.items())
    return [k for k, _ in got] == sorted(want) and all(same_value(v, want[k]) for k, v in got)


Pair = namedtuple("Pair", "a b")


@pytest.mark.parametrize("values, width", [
    ([(1, "a"), (2, "b")], 2),
    ([(1,), (None,)], 1),
    ([(1, "a"), (2, "b", 3)], 0),          # mixed widths
    ([(1, "a"), [2, "b"]], 0),             # a list is not a row
    ([(1, "a"), Pair(2, "b")], 0),         # nor is a tuple subclass: it would come back a tuple
    ([(), ()], 0),                         # width 0 could not be told apart from plain
    ([None, 1], 0),
    ([], 0),
])
def test_the_form_is_picked_per_leaf_from_its_values(values, width):
    assert flat_width(values) == width
    leaf = Leaf(list(range(len(values))), values)
    assert leaf.width == width
    assert all(same_value(leaf.value(i), v) and type(leaf.value(i)) is type(v) for i, v in enumerate(values))
    assert len(leaf.data) == len(values) * (width or 1)


def test_one_and_one_point_oh_and_true_and_none_stay_apart():
    rows = {k: (k, v, [1, 1.0, True, None, 0, False, 0.0][k % 7]) for k, v in
            enumerate([1, 1.0, True, None, "1", b"1", 1.5] * 20)}
    t = TinyTree.from_sorted(sorted(rows.items()))
    assert all(leaf.width == 3 for leaf in leaves(t))
    assert items_are(t, rows)
    for k, row in rows.items():
        assert [type(x) for x in t[k]] == [type(x) for x in row]
    swapped = t.set(0, (0, 1.0, 1))                    # equal items of other types: a change
    assert swapped is not t and [type(x) for x in swapped[0]] == [int, float, int]
    assert list(t.diff(swapped)) == [(0, (0, 1, 1), (0, 1.0, 1))]
    assert list(t.diff(t.set(1, (1, True, 1.0)))) == [(1, (1, 1.0, 1.0), (1, True, 1.0))]
    assert t.set(2, (2, True, True)) is t              # the same items: no change


def test_a_row_of_another_width_makes_its_leaf_plain_until_the_widths_agree_again():
    rows = {k: (k, f"v{k}") for k in range(40)}
    t = TinyTree.from_sorted(sorted(rows.items()))
    wide = t.set(10, (10, "v10", "extra"))              # ALTER TABLE ADD COLUMN, one row at a time
    leaf = wide.leaf_for(10)
    assert leaf.width == 0 and wide.leaf_for(30).width == 2
    rows[10] = (10, "v10", "extra")
    assert items_are(wide, rows)
    for k in leaf.keys:                                 # the rest of that leaf widens too
        rows[k] = (k, f"v{k}", "extra")
        wide = wide.set(k, rows[k])
    wide.validate()
    assert wide.leaf_for(10).width == 3 and items_are(wide, rows)
    batched = t.update(puts=[(k, (k, f"v{k}", 0)) for k in range(40)])   # many ops: rebuilt
    assert {leaf.width for leaf in leaves(batched)} == {3}
    batched.validate()


@pytest.mark.parametrize("seed", range(4))
def test_splits_merges_and_deletes_down_to_empty(seed):
    rnd = random.Random(seed)
    t, model = TinyTree(), {}
    keys = list(range(300))
    rnd.shuffle(keys)
    for k in keys:                                      # splits, one insert at a time
        model[k] = (k, str(k), k * 0.5)
        t = t.insert(k, model[k])
    t.validate()
    assert {leaf.width for leaf in leaves(t)} == {3} and items_are(t, model)
    rnd.shuffle(keys)
    for i, k in enumerate(keys):                        # merges and borrows, down to nothing
        if i % 3:
            t = t.remove(k)
        else:
            t = t.update(deletes=[k])
        del model[k]
        if i % 25 == 0:
            t.validate()
            assert items_are(t, model)
    assert len(t) == 0 and t.root is None


def test_diff_between_flat_and_plain_leaves_holding_the_same_rows():
    rows = [(k, (k, f"r{k}", k % 3 == 0)) for k in range(200)]
    flat = TinyTree.from_sorted(rows)
    plain_leaves = [Leaf(leaf.keys, leaf.values, width=0) for leaf in leaves(flat)]   # the same rows, plain
    plain = TinyTree.from_sorted(rows)
    for leaf, p in zip(leaves(plain), plain_leaves):
        leaf.data, leaf.width = p.data, p.width
    plain.validate()
    assert all(leaf.width == 0 for leaf in leaves(plain))
    assert list(flat.diff(plain)) == [] == list(plain.diff(flat))
    changed = plain.set(50, (50, "new", False)).remove(70).insert(1000, (1000, "x", True))
    want = [(50, (50, "r50", False), (50, "new", False)), (70, (70, "r70", False), MISSING),
            (1000, MISSING, (1000, "x", True))]
    assert list(flat.diff(changed)) == want
    assert list(changed.diff(flat)) == [(k, b, a) for k, a, b in want]


def test_diff_of_flat_trees_compares_items_and_still_skips_shared_subtrees():
    big = PTree.from_sorted((k, (k, f"name{k}", k % 90)) for k in range(50_000))
    same_items = big.update(puts=[(k, tuple(big[k])) for k in range(0, 50_000, 5000)])
    assert same_items is big                     # rebuilt rows of the same items: no change
    new = big.set(123, (123, "other", 5)).set(40_000, (40_000, "name40000", 90))
    stats = DiffStats()
    assert list(big.diff(new, stats=stats)) == [(123, (123, "name123", 33), (123, "other", 5)),
                                                (40_000, (40_000, "name40000", 40), (40_000, "name40000", 90))]
    assert stats.leaves_read <= 4 and stats.shared_skipped > 0
    copy = PTree.from_sorted((k, (k, f"name{k}", k % 90)) for k in range(50_000))   # equal, not identical
    assert list(big.diff(copy)) == []


def test_same_content_and_same_value():
    assert same_value((1, "a"), (1, "a")) and not same_value((1, "a"), (1.0, "a"))
    s = "".join(["a", "b"])
    assert not same_value((1, s), (1, "ab")) and same_content((1, s), (1, "ab"))
    assert not same_content((1, "a"), (True, "a")) and not same_content(1, 1.0)
    assert not same_content((1, (2, 3)), (1, (2, 3.0))) and same_content((1, (2, 3)), (1, (2, 3)))
    assert not same_content((1,), (1, 2)) and not same_content((1,), [1])


def test_point_reads_and_single_writes_are_slices_of_the_leaf():
    t = PTree.from_sorted((k, (k, f"n{k}", None)) for k in range(1000))
    leaf = t.leaf_for(500)
    assert leaf.width == 3 and t[500] == (500, "n500", None) and t[500][0] is leaf.keys[leaf.keys.index(500)]
    t2 = t.set(500, (t[500][0], "x", 1))                               # the same key object
    new_leaf = t2.leaf_for(500)
    assert new_leaf.keys is leaf.keys and new_leaf.width == 3          # keys shared: a value-only change
    assert sum(a is not b for a, b in zip(leaf.data, new_leaf.data)) == 2
    assert t.first() == (0, (0, "n0", None)) and t.last() == (999, (999, "n999", None))
    chunks = list(t.chunks(10, 20))
    assert [(list(k), w) for k, _, w in chunks] == [(list(range(10, 21)), 3)]
    assert chunks[0][1] == tuple(x for k in range(10, 21) for x in (k, f"n{k}", None))
    assert [k for ks, _, w in t.chunks(10, 20, reverse=True) for k in ks] == list(range(20, 9, -1))
    assert all(w == 0 for _, _, w in t.chunks(reverse=True))          # reverse chunks are rows


@pytest.mark.parametrize("n", [0, 1, 31, 128, 129, 130, 160, 1000, 128 * 64 + 5])
def test_from_sorted_flat_takes_leaf_sized_pieces(n):
    keys = list(range(n))
    rows = [(k, f"r{k}") for k in keys]
    pieces = [tuple(x for r in rows[s:s + PTree.leaf_max] for x in r) for s in range(0, n, PTree.leaf_max)]
    t = PTree.from_sorted_flat(keys, pieces, 2)
    t.validate()
    assert items_are(t, dict(zip(keys, rows))) and all(leaf.width == 2 for leaf in leaves(t))
    if n > 1:
        with pytest.raises(ValueError):
            PTree.from_sorted_flat(keys, pieces, 3)                    # not that width
        with pytest.raises(ValueError):
            PTree.from_sorted_flat(keys[::-1], pieces, 2)              # not increasing
    if n > PTree.leaf_max:
        with pytest.raises(ValueError):
            PTree.from_sorted_flat(keys, [pieces[0][:-2]] + pieces[1:], 2)   # a short piece before the last


def _load(rows, *, as_list: bool, schema=None):
    from helios.storage.schema import Column, TableSchema
    from helios.storage.table import Table
    schema = schema or TableSchema("t", (Column("id", "int8", False), Column("v")), primary_key=(0,))
    return Table(schema).bulk_insert(list(rows) if as_list else iter(rows))


@pytest.mark.parametrize("make", [
    lambda n: [(k, f"v{k}") for k in range(n)],                                   # flat
    lambda n: [(k, f"v{k}") if k != 300 else (k, "v", "wide") for k in range(n)],  # one wider row mid-piece
    lambda n: [(k, f"v{k}", 1) if k < 200 else (k, 1.0) for k in range(n)],        # width changes at a piece
    lambda n: [(n - k, k) for k in range(n)],                                      # decreasing keys
])
@pytest.mark.parametrize("n", [1, 129, 700])
def test_a_bulk_insert_streamed_or_from_a_list_holds_and_logs_the_rows_given(make, n):
    import gc
    rows = make(n)
    gc.collect()                          # the list's rows have outlived a collection: kept as given
    kept = _load(rows, as_list=True)
    streamed = _load((tuple(r) if i % 2 else tuple(list(r)) for i, r in enumerate(rows)), as_list=False)
    want = dict((r[0], r) for r in rows)
    for table, keys, logged in (kept, streamed):
        table.rows.validate()
        assert [k for k, _ in table.rows.items()] == sorted(want)
        assert all(same_content(v, want[k]) and same_value(v, r) for (k, v), r in
                   zip(sorted(table.rows.items()), sorted(logged, key=lambda r: r[0])))
        assert keys == [r[0] for r in rows] and [same_content(a, b) for a, b in zip(logged, rows)] == [True] * n
    assert all(a is b for a, b in zip(kept[2], rows))                 # the rows themselves
