"""The fast merge paths give exactly what the slow ones give.

* ``row_changes`` from the tables' change logs (point reads of the keys written
  since the versions met) against ``PTree.diff``;
* ``MergePlan.apply`` (one batched update per table) against ``txn.apply_op``
  one op at a time, which is what log replay does;
* whole merge plans with and without the logs, across checkpoint + reopen,
  retention pruning, merges of merges, branches from past snapshots and
  schema changes.
"""
from __future__ import annotations

import random

import pytest

from helios.storage import table as table_mod
from helios.storage.btree import MISSING, PTree
from helios.storage.merge import STRATEGIES, merge_base, plan_merge, row_changes
from helios.storage.schema import Column, IndexDef, TableSchema
from helios.storage.store import Store
from helios.storage.table import Table
from helios.storage.txn import apply_op
from storage_helpers import FakeClock, rows_of, users_schema

SCHEMA = TableSchema("t", (Column("k", "int8", False), Column("v", "text"), Column("n", "int8")),
                     primary_key=(0,), indexes=(IndexDef("t_v", (1,)), IndexDef("t_n", (2,), unique=True)))


def _table(n: int) -> Table:
    t, _, _ = Table(SCHEMA).bulk_insert((k, f"v{k % 7}", k) for k in range(0, 2 * n, 2))
    return t


def _random_writes(t: Table, rnd: random.Random, count: int, key_space: int) -> Table:
    for _ in range(count):
        k = rnd.randrange(key_space)
        if rnd.random() < 0.3:
            t = t.delete(k)
        else:
            t = t.put(k, (k, f"w{rnd.randrange(5)}", key_space + k * 1000 + rnd.randrange(1000)))
    return t


def _contents(t: Table) -> tuple:
    for tree in (t.rows, *t.indexes.values()):
        tree.validate()
    return (list(t.rows.items()), {n: list(ix.keys()) for n, ix in sorted(t.indexes.items())}, t.next_rowid)


# ---------------------------------------------------------------- change logs
def test_changed_since_covers_every_changed_key():
    base = _table(500)
    a = base.put(3, (3, "x", -1)).delete(4).put(10_001, (10_001, "y", -2))
    b = base.put(5, (5, "z", -3))
    assert a.changed_since(base) == {3, 4, 10_001}
    assert base.changed_since(a) == {3, 4, 10_001}
    assert a.changed_since(b) == {3, 4, 10_001, 5}              # siblings: both sides since they met
    assert a.changed_since(a) == set()
    assert a.put_new([20_001, 20_003], [(20_001, "p", -4), (20_003, "q", -5)]).changed_since(a) == {20_001, 20_003}
    grown, _, _ = a.bulk_insert([(30_001, "r", -6)])
    assert grown.changed_since(a) == {30_001}
    assert a.add_index(IndexDef("t_n2", (2,))).changed_since(a) == set()    # rows unchanged


def test_changed_since_is_none_when_histories_do_not_meet(monkeypatch):
    base = _table(100)
    assert _table(100).changed_since(base) is None                  # equal rows, unrelated versions
    assert base.with_schema(SCHEMA, lambda r: r).changed_since(base) is None    # rows rewritten
    assert base.put(1, (1, "a", -1)).put(3, (3, "b", -2)).changed_since(base, max_keys=1) is None
    monkeypatch.setattr(table_mod, "CHANGE_LOG_LIMIT", 3)
    t = base
    for k in range(5):
        t = t.put(k * 2, (k * 2, "c", -k - 1))
    assert t.changed_since(base) is None                            # the log restarted past its limit
    assert t.changed_since(t.put(0, (0, "d", -9))) == {0}           # ...and works again from there


@pytest.mark.parametrize("seed", range(12))
def test_row_changes_from_logs_equal_tree_diff(seed):
    rnd = random.Random(seed)
    base = _random_writes(_table(rnd.choice([10, 300, 1000])), rnd, rnd.randrange(30), 3000)
    left = _random_writes(base, rnd, rnd.randrange(200), 3000)
    right = _random_writes(left if rnd.random() < 0.5 else base, rnd, rnd.randrange(200), 3000)
    for b, s in ((base, left), (base, right), (left, right), (right, left), (left, base)):
        assert s.changed_since(b, 10**6) is not None
        fast = list(row_changes(b, s))
        assert fast == list(row_changes(b, s, use_log=False)) == list(b.rows.diff(s.rows))
    assert list(row_changes(None, left)) == [(k, MISSING, v) for k, v in left.rows.items()]


def test_row_changes_sees_equal_rows_as_unchanged():
    base = _table(50)
    same = base.put(2, (2, "v2", 2)).put(4, tuple(base.get(4)))     # equal values, new objects
    assert same.changed_since(base) == {2, 4}
    assert list(row_changes(base, same)) == [] == list(base.rows.diff(same.rows))



def test_a_change_to_an_equal_value_of_another_type_merges(tmp_path):
    """A branch that turned 1 into 1.0 (or True) changed the row: the merge carries it,
    on the change-log path and the tree-diff path alike."""
    for use_log in (True, False):
        base = _table(50)
        source = base.put(4, (4, "v4", 4.0)).put(6, (6, "v6", True))
        changes = sorted((k, new) for k, _, new in row_changes(base, source, use_log=use_log))
        assert changes == [(4, (4, "v4", 4.0)), (6, (6, "v6", True))]
        assert type(changes[0][1][2]) is float and changes[1][1][2] is True
    store = Store(str(tmp_path / "db"))
    with store.write() as tx:
        tx.create_table(SCHEMA)
        tx.insert("t", (1, "a", 1))
    store.create_branch("b")
    with store.write("b") as tx:
        tx.update("t", 1, (1, "a", 1.0))
    result = store.merge("b", "main", "Auto")
    assert result.merged_keys == 1 and not result.conflicts
    assert type(store.snapshot().get("t", 1)[2]) is float
    store.close()

# ---------------------------------------------------------------- batched writes
@pytest.mark.parametrize("seed", range(8))
def test_apply_writes_equals_one_write_at_a_time(seed):
    rnd = random.Random(seed)
    base = _table(rnd.choice([5, 200, 2000]))
    keys = rnd.sample(range(-50, 5000), 150)
    puts = {k: (k, f"b{rnd.randrange(3)}", 10**7 + k) for k in keys[:100]}
    deletes = keys[100:] + [0, 2]
    one_by_one = base
    for k, row in puts.items():
        one_by_one = one_by_one.put(k, row)
    for k in deletes:
        one_by_one = one_by_one.delete(k)
    batched = base.apply_writes(puts, deletes)
    assert _contents(batched) == _contents(one_by_one)
    assert set(puts) | {k for k in deletes if k in base.rows} <= batched.changed_since(base)
    assert base.apply_writes({}, [10**9]) is base


def test_apply_writes_on_a_rowid_table_bumps_next_rowid():
    schema = TableSchema("r", (Column("a", "text"),), primary_key=())
    t, _ = Table(schema).insert(("x",))
    assert t.apply_writes({7: ("y",), 3: ("z",)}).next_rowid == t.put(7, ("y",)).put(3, ("z",)).next_rowid == 8


def test_merge_plan_apply_equals_apply_op_one_by_one(tmp_path):
    db, _ = _diverged_store(tmp_path / "db")
    s_tip, t_tip = db._branch("dev").tip, db._branch("main").tip
    plan = plan_merge(merge_base(s_tip, t_tip), s_tip, t_tip, "Theirs")
    assert sum(op[0] in ("p", "d") for op in plan.ops) > 20 and any(op[0] == "ci" for op in plan.ops)
    state = t_tip.state
    for op in plan.ops:
        state = apply_op(state, op, db._resolve)
    batched = plan.apply(t_tip.state, db._resolve)
    assert sorted(batched.tables.keys()) == sorted(state.tables.keys())
    for name in state.tables.keys():
        assert _contents(batched.tables[name]) == _contents(state.tables[name])
    assert plan.written()["users"] == {op[2] for op in plan.ops if op[0] in ("p", "d") and op[1] == "users"}
    db.close()


# ---------------------------------------------------------------- whole merges, both ways
def _plans_agree(db: Store, source: str, target: str) -> None:
    s_tip, t_tip = db._branch(source).tip, db._branch(target).tip
    base = merge_base(s_tip, t_tip)
    if base is s_tip:
        return
    for strategy in STRATEGIES:
        fast = plan_merge(base, s_tip, t_tip, strategy)
        slow = plan_merge(base, s_tip, t_tip, strategy, use_log=False)
        assert fast == slow, (source, target, strategy)


def _write(db: Store, branch: str, rnd: random.Random, count: int, key_space: int = 400) -> None:
    with db.write(branch) as tx:
        for _ in range(count):
            k = rnd.randrange(key_space)
            if tx.get("users", k) is None:
                tx.insert("users", (k, f"n{rnd.randrange(4)}", f"{branch}{k}.{rnd.random()}"))
            elif rnd.random() < 0.3:
                tx.delete("users", k)
            else:
                tx.update("users", k, (k, f"n{rnd.randrange(4)}", f"{branch}{k}.{rnd.random()}"))


def _diverged_store(path, clock=None, **kw) -> tuple[Store, random.Random]:
    clock = clock or FakeClock()
    rnd = random.Random(7)
    db = Store(path, clock=clock, **kw)
    with db.write() as tx:
        tx.create_table(users_schema())
        tx.bulk_insert("users", [(k, f"n{k % 4}", f"e{k}") for k in range(0, 400, 2)])
    db.create_branch("dev")
    for _ in range(3):
        clock.advance(1)
        _write(db, "dev", rnd, 15)
        _write(db, "main", rnd, 5)
    with db.write("dev") as tx:
        tx.create_index("users", IndexDef("users_name", (1,)))
    return db, rnd


def test_both_paths_agree_and_the_log_path_is_taken(tmp_path, monkeypatch):
    db, _ = _diverged_store(tmp_path / "db")
    _plans_agree(db, "dev", "main")
    _plans_agree(db, "main", "dev")
    s_tip, t_tip = db._branch("dev").tip, db._branch("main").tip
    slow = plan_merge(merge_base(s_tip, t_tip), s_tip, t_tip, "Theirs", use_log=False)
    state = t_tip.state
    for op in slow.ops:
        state = apply_op(state, op, db._resolve)
    expected = dict(state.tables["users"].rows.items())

    def no_diff(self, other, **kw):
        raise AssertionError("tree diff used although both sides' change logs meet the base")
    monkeypatch.setattr(PTree, "diff", no_diff)
    r = db.merge("dev", "main", "Theirs")
    assert r.merged_keys == slow.merged_keys > 20 and len(r.conflicts) == len(slow.conflicts)
    assert rows_of(db) == expected
    db.close()


def test_both_paths_agree_after_reopen_merges_of_merges_and_past_snapshots(tmp_path):
    clock = FakeClock()
    db, rnd = _diverged_store(tmp_path / "db", clock)
    t_past = db.snapshot("main").timestamp
    for round_ in range(4):
        clock.advance(1)
        _write(db, "dev", rnd, 10)
        _write(db, "main", rnd, 3)
        _plans_agree(db, "dev", "main")
        db.merge("dev", "main", "Auto")
        clock.advance(1)
        _write(db, "main", rnd, 4)
        _plans_agree(db, "main", "dev")
        db.merge("main", "dev", "Ours")
        if round_ == 1:                        # reopen: loaded tables start new change logs
            db.checkpoint()
            db.close(checkpoint=False)
            db = Store(tmp_path / "db", clock=clock)
        if round_ == 2:
            db.close(checkpoint=False)         # reopen from the log alone
            db = Store(tmp_path / "db", clock=clock)
    clock.advance(1)
    db.create_branch("past", "main", snapshot_id=t_past)
    _write(db, "past", rnd, 20)
    for a, b in (("past", "main"), ("main", "past"), ("past", "dev"), ("dev", "past")):
        _plans_agree(db, a, b)
    db.merge("past", "dev", "Theirs")
    _plans_agree(db, "dev", "main")
    db.close()


def test_both_paths_agree_after_retention_pruning(tmp_path):
    clock = FakeClock()
    db, rnd = _diverged_store(tmp_path / "db", clock, retention=5)
    for _ in range(3):
        clock.advance(3)
        _write(db, "dev", rnd, 8)
        _write(db, "main", rnd, 8)
    db.checkpoint()                            # prunes: the oldest kept commits lose their parents
    db.close(checkpoint=False)
    db = Store(tmp_path / "db", clock=clock, retention=5)
    clock.advance(1)
    _write(db, "dev", rnd, 8)
    _plans_agree(db, "dev", "main")
    _plans_agree(db, "main", "dev")
    expected = plan_merge(merge_base(db._branch("dev").tip, db._branch("main").tip),
                          db._branch("dev").tip, db._branch("main").tip, "Theirs", use_log=False)
    assert db.merge("dev", "main", "Theirs").merged_keys == expected.merged_keys
    db.close()


def test_both_paths_agree_on_schema_changes_and_recreated_tables(tmp_path):
    clock = FakeClock()
    db, rnd = _diverged_store(tmp_path / "db", clock)
    with db.write("dev") as tx:
        schema = db.snapshot("dev").schema("users")
        tx.alter_table("users", TableSchema("users", schema.columns + (Column("extra", "int8", default=5),),
                                            primary_key=(0,), indexes=schema.indexes))
    _write(db, "main", rnd, 5)
    _plans_agree(db, "dev", "main")
    db.create_branch("again", "main")
    with db.write("again") as tx:
        tx.drop_table("users")
        tx.create_table(users_schema())
        tx.insert("users", (1, "one", "1"))
    _plans_agree(db, "again", "main")
    _plans_agree(db, "main", "again")
    db.close()


# ---------------------------------------------------------------- rebase: the source plus the target's changes
def _lopsided_store(path, rnd: random.Random, clock: FakeClock) -> Store:
    """``dev`` changed many rows (with a unique and a plain index, on a rowid table too),
    ``main`` a few, some of them the same rows: the shape a rebase is for."""
    db = Store(path, clock=clock)
    with db.write() as tx:
        tx.create_table(users_schema(unique_email=True))
        tx.create_index("users", IndexDef("users_name", (1,)))
        tx.bulk_insert("users", [(k, f"n{k % 4}", f"e{k}") for k in range(0, 3000, 2)])
        tx.create_table(TableSchema("log", (Column("msg", "text"),), primary_key=()))
        tx.bulk_insert("log", [(f"m{i}",) for i in range(50)])
    db.create_branch("dev")
    clock.advance(1)
    _write(db, "dev", rnd, 120, key_space=3000)
    with db.write("dev") as tx:
        keys = [tx.insert("log", (f"dev{i}",)) for i in range(6)]
        tx.delete("log", keys[-1])                      # the source's next_rowid runs past its last row
        tx.delete("log", 3)
    clock.advance(1)
    _write(db, "main", rnd, 6, key_space=3000)
    with db.write("main") as tx:
        tx.update("log", 7, ("main7",))
        tx.delete("log", 9)
    return db


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("strategy", ["Auto", "Ours", "Theirs"])
def test_rebase_gives_the_tables_the_ops_give(tmp_path, seed, strategy):
    rnd = random.Random(seed)
    clock = FakeClock()
    db = _lopsided_store(tmp_path / "db", rnd, clock)
    s_tip, t_tip = db._branch("dev").tip, db._branch("main").tip
    plan = plan_merge(merge_base(s_tip, t_tip), s_tip, t_tip, strategy)
    assert set(plan.rebases) == {"users", "log"}
    one_by_one = t_tip.state
    for op in plan.ops:
        one_by_one = apply_op(one_by_one, op, db._resolve)
    rebased = plan.apply(t_tip.state, db._resolve)
    plan.rebases.clear()
    batched = plan.apply(t_tip.state, db._resolve)
    for name in ("users", "log"):
        assert rebased.tables[name] is not batched.tables[name]
        assert _contents(rebased.tables[name]) == _contents(batched.tables[name]) == \
            _contents(one_by_one.tables[name])
    db.close()


def test_rebase_copies_only_what_the_target_changed(tmp_path):
    clock = FakeClock()
    db = _lopsided_store(tmp_path / "db", random.Random(1), clock)
    src_leaves = {id(n) for n in db._branch("dev").tip.state.tables["users"].rows.nodes()}
    r = db.merge("dev", "main", "Theirs")
    merged = db.snapshot("main").table("users")
    fresh = [n for n in merged.rows.nodes() if id(n) not in src_leaves]
    assert r.merged_keys > 100 and 0 < len(fresh) <= 2 * 6 * 3       # the target's few paths, not the source's
    db.close()
    reopened = Store(tmp_path / "db", clock=clock)                  # replay of the logged ops agrees
    assert _contents(reopened.snapshot("main").table("users")) == _contents(merged)
    reopened.close()


def test_no_rebase_across_schema_changes_or_when_the_target_changed_more(tmp_path):
    clock = FakeClock()
    db = _lopsided_store(tmp_path / "db", random.Random(2), clock)
    s_tip, t_tip = db._branch("dev").tip, db._branch("main").tip
    base = merge_base(s_tip, t_tip)
    assert plan_merge(base, t_tip, s_tip, "Theirs").rebases == {}     # main -> dev: ops are fewer already
    with db.write("dev") as tx:
        tx.create_index("users", IndexDef("users_name2", (1,)))
    assert "users" not in plan_merge(base, db._branch("dev").tip, t_tip, "Theirs").rebases
    db.close()
