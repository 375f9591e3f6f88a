"""Merge, time travel and retention at their edges: what a user of branches relies on.

Each test states one rule of the contract (three-way merge against the common
ancestor, conflicts as keys changed on both sides to different values, as-of
reads as the last commit at or before a moment, retention raising
HistoryExpired) in a case the broader suites do not reach: renamed columns,
dropped or twice-created tables, changes undone, pruned fork points, reopened
databases, Manual merges that must leave no trace.
"""
from __future__ import annotations

import random
from dataclasses import replace

import pytest

from helios import errors
from helios.storage.schema import Column, TableSchema
from helios.storage.commits import merge_bases
from helios.storage.store import Store
from storage_helpers import FakeClock, rows_of, users_schema


@pytest.fixture
def clock():
    return FakeClock()


def _seeded(path, clock, **kw) -> Store:
    db = Store(path, clock=clock, **kw)
    with db.write() as tx:
        tx.create_table(users_schema())
        for i in range(1, 6):
            tx.insert("users", (i, f"u{i}", f"e{i}"))
    clock.advance(1)
    return db


def _set(db: Store, branch: str, key: int, name: str) -> None:
    with db.write(branch) as tx:
        if tx.get("users", key) is None:
            tx.insert("users", (key, name, f"e{key}"))
        else:
            tx.update("users", key, (key, name, f"e{key}"))


# ---------------------------------------------------------------- what counts as a change
def test_a_row_changed_and_changed_back_is_no_change(clock):
    db = _seeded(":memory:", clock)
    db.create_branch("dev")
    _set(db, "dev", 1, "temp")
    _set(db, "dev", 1, "u1")                     # back to the ancestor's row
    with db.write("dev") as tx:
        tx.delete("users", 2)
        tx.insert("users", (2, "u2", "e2"))      # delete + reinsert of the same row
    _set(db, "main", 1, "main1")
    _set(db, "main", 2, "main2")
    r = db.merge("dev", "main", "Manual")        # only main changed keys 1 and 2: no conflict
    assert r.conflicts == [] and r.merged_keys == 0
    assert rows_of(db)[1][1] == "main1" and rows_of(db)[2][1] == "main2"


def test_delete_and_reinsert_with_new_values_against_an_update_is_a_conflict(clock):
    db = _seeded(":memory:", clock)
    db.create_branch("dev")
    with db.write("dev") as tx:
        tx.delete("users", 3)
        tx.insert("users", (3, "reborn", "e3"))
    _set(db, "main", 3, "main3")
    with pytest.raises(errors.MergeConflict) as ei:
        db.merge("dev", "main", "Manual")
    assert [c["key"] for c in ei.value.details["conflicts"]] == ["users:3"]
    assert rows_of(db, "users", "main")[3][1] == "main3"
    r = db.merge("dev", "main", "Theirs")
    assert r.conflicts[0].resolved_value == {"id": 3, "name": "reborn", "email": "e3"}
    assert rows_of(db)[3][1] == "reborn"


def test_both_sides_deleting_the_same_row_is_no_conflict(clock):
    db = _seeded(":memory:", clock)
    db.create_branch("dev")
    for b in ("dev", "main"):
        with db.write(b) as tx:
            tx.delete("users", 4)
    assert db.merge("dev", "main", "Manual").conflicts == []
    assert 4 not in rows_of(db)


# ---------------------------------------------------------------- tables and schemas
@pytest.mark.parametrize("strategy,kept", [("Auto", True), ("Ours", True), ("Theirs", False)])
def test_a_table_dropped_on_one_side_and_written_on_the_other_is_a_table_conflict(clock, strategy, kept):
    db = _seeded(":memory:", clock)
    db.create_branch("dev")
    with db.write("dev") as tx:
        tx.drop_table("users")
    clock.advance(1)
    _set(db, "main", 1, "main1")                 # the newer change: Auto keeps the table
    before = db.snapshot().state
    with pytest.raises(errors.MergeConflict) as ei:
        db.merge("dev", "main", "Manual")
    assert [c["key"] for c in ei.value.details["conflicts"]] == ["users:*"]
    assert db.snapshot().state is before
    r = db.merge("dev", "main", strategy)
    table = {"columns": ["id", "name", "email"], "rows": 5}
    assert [(c.key, c.source_value, c.target_value, c.resolved_value) for c in r.conflicts] == \
        [("users:*", None, table, table if kept else None)]
    assert db.snapshot().has_table("users") is kept
    if kept:
        assert rows_of(db)[1][1] == "main1"


def test_a_table_created_on_both_sides(clock):
    db = _seeded(":memory:", clock)
    db.create_branch("dev")
    same = users_schema("teams")
    for b, extra in (("dev", (2, "dev-only", "d")), ("main", (3, "main-only", "m"))):
        with db.write(b) as tx:
            tx.create_table(same)
            tx.insert("teams", (1, "shared", "s"))
            tx.insert("teams", extra)
    r = db.merge("dev", "main", "Manual")        # one schema, disjoint or equal rows: a row merge
    assert r.conflicts == []
    assert rows_of(db, "teams") == {1: (1, "shared", "s"), 2: (2, "dev-only", "d"), 3: (3, "main-only", "m")}
    db.create_branch("dev2")
    wide = TableSchema("other", (Column("id", "int8", False), Column("a", "text")), primary_key=(0,))
    narrow = TableSchema("other", (Column("id", "int8", False),), primary_key=(0,))
    for b, schema in (("dev2", wide), ("main", narrow)):
        with db.write(b) as tx:
            tx.create_table(schema)
    with pytest.raises(errors.MergeConflict) as ei:
        db.merge("dev2", "main", "Manual")
    assert [c["key"] for c in ei.value.details["conflicts"]] == ["other:*"]
    db.merge("dev2", "main", "Theirs")
    assert db.snapshot().schema("other").column_names == ("id", "a")


@pytest.mark.parametrize("renamer", ["dev", "main"])
def test_a_column_renamed_on_one_side_keeps_its_values_through_a_merge(clock, renamer):
    """RENAME COLUMN is a one-sided schema change: the values must follow the column, on
    the rows the other side changed and on the rows nobody touched."""
    db = _seeded(":memory:", clock)
    db.create_branch("dev")
    other = "main" if renamer == "dev" else "dev"
    schema = db.snapshot(renamer).schema("users")
    cols = list(schema.columns)
    cols[1] = replace(cols[1], name="nickname")
    with db.write(renamer) as tx:
        tx.alter_table("users", replace(schema, columns=tuple(cols)), (0, 1, 2))
        tx.update("users", 5, (5, "renamer5", "e5"))
    _set(db, other, 1, "other1")
    r = db.merge("dev", "main", "Manual")
    assert r.conflicts == []
    snap = db.snapshot()
    assert snap.schema("users").column_names == ("id", "nickname", "email")
    assert rows_of(snap) == {1: (1, "other1", "e1"), 2: (2, "u2", "e2"), 3: (3, "u3", "e3"),
                             4: (4, "u4", "e4"), 5: (5, "renamer5", "e5")}


def test_a_column_added_on_one_side_gets_its_default_on_the_other_sides_rows(clock):
    db = _seeded(":memory:", clock)
    db.create_branch("dev")
    schema = db.snapshot("dev").schema("users")
    with db.write("dev") as tx:
        tx.alter_table("users", replace(schema, columns=schema.columns + (Column("age", "int4", True, 7),)))
    _set(db, "main", 6, "new-on-main")
    db.merge("dev", "main", "Manual")
    rows = rows_of(db)
    assert rows[6] == (6, "new-on-main", "e6", 7) and rows[1] == (1, "u1", "e1", 7)
    db.merge("main", "dev")                      # and back: the added column's rows land adapted
    assert rows_of(db, branch="dev") == rows


def test_a_unique_clash_that_only_the_merge_creates_fails_it_without_a_trace(tmp_path, clock):
    db = Store(tmp_path / "db", clock=clock)
    with db.write() as tx:
        tx.create_table(users_schema(unique_email=True))
        tx.bulk_insert("users", [(k, "n", f"e{k}") for k in range(400)])
    db.create_branch("dev")
    with db.write("dev") as tx:                  # many source writes: the rebase route
        for k in range(100, 300):
            tx.update("users", k, (k, "dev", f"d{k}"))
    with db.write("main") as tx:                 # main moves key 1 onto an address dev gives key 150
        tx.update("users", 1, (1, "main", "d150"))
    head = db.snapshot().commit
    with pytest.raises(errors.UniqueViolation):
        db.merge("dev", "main", "Auto")
    assert db.snapshot().commit is head
    db.close(checkpoint=False)
    db = Store(tmp_path / "db", clock=clock)
    assert db.snapshot().commit.seq == head.seq and rows_of(db)[150] == (150, "n", "e150")
    db.close()


# ---------------------------------------------------------------- several merges
def test_a_change_merged_in_from_a_third_branch_travels_on(clock):
    db = _seeded(":memory:", clock)
    db.create_branch("feature")
    db.create_branch("dev")
    _set(db, "feature", 1, "feature1")
    db.merge("feature", "dev")
    _set(db, "dev", 2, "dev2")
    _set(db, "main", 3, "main3")
    r = db.merge("dev", "main", "Manual")
    assert r.conflicts == [] and r.merged_keys == 2
    assert {k: v[1] for k, v in rows_of(db).items() if k <= 3} == {1: "feature1", 2: "dev2", 3: "main3"}
    r = db.merge("feature", "main", "Manual")    # already contained: nothing to do, no commit
    assert r.merged_keys == 0 and "already contains" in r.message


def test_branches_merged_into_each_other_repeatedly_do_not_replay_old_changes(clock):
    db = _seeded(":memory:", clock)
    db.create_branch("dev")
    for round_ in range(4):
        clock.advance(1)
        _set(db, "dev", 1, f"dev{round_}")
        _set(db, "main", 2, f"main{round_}")
        assert db.merge("dev", "main", "Manual").conflicts == []
        clock.advance(1)
        _set(db, "main", 1, f"main-took-over{round_}")    # main now changes dev's key
        assert db.merge("main", "dev", "Manual").conflicts == []
        assert rows_of(db, branch="dev") == rows_of(db)
    assert rows_of(db)[1][1] == "main-took-over3" and rows_of(db)[2][1] == "main3"


def _criss_cross(clock) -> Store:
    """main and dev each took the other's first change through a helper branch, so the
    two lines have two best common ancestors: main's commit of row 1, dev's of row 2."""
    db = _seeded(":memory:", clock)
    db.create_branch("dev")
    _set(db, "main", 1, "a")
    db.create_branch("from-main", "main")
    _set(db, "dev", 2, "b")
    db.create_branch("from-dev", "dev")
    db.merge("from-main", "dev")
    db.merge("from-dev", "main")
    return db


def test_criss_cross_merges_with_agreeing_sides_merge_cleanly(clock):
    """Two merge bases (each branch took the other's change through a helper branch):
    when both sides agree on every key the merge has nothing to report."""
    db = _criss_cross(clock)
    assert rows_of(db) == rows_of(db, branch="dev")
    _set(db, "dev", 3, "c")
    r = db.merge("dev", "main", "Manual")
    assert r.conflicts == [] and rows_of(db) == rows_of(db, branch="dev")


def test_a_criss_cross_has_two_merge_bases_and_a_plain_fork_one():
    clock = FakeClock()
    db = _criss_cross(clock)
    bases = merge_bases(db._branch("dev").tip, db._branch("main").tip)
    assert {b.seq for b in bases} == {db._branch("from-main").tip.seq, db._branch("from-dev").tip.seq}
    db.create_branch("plain")
    _set(db, "plain", 4, "p")
    assert merge_bases(db._branch("plain").tip, db._branch("main").tip) == [db._branch("main").tip]


@pytest.mark.parametrize("strategy, row1, conflict", [
    ("Manual", None, True), ("Ours", "u1", True), ("Theirs", "a", True), ("Auto", "u1", True)])
def test_a_criss_cross_merge_never_undoes_a_change_in_silence(clock, strategy, row1, conflict):
    """After the criss-cross main sets row 1 back to its original value. Against main's
    commit of row 1 that is a change; against dev's it looks like no change, and taking
    that base alone would quietly bring back "a". The two bases disagree on row 1, so
    it is a conflict (Auto: main's change is the newer); rows the sides agree on merge."""
    db = _criss_cross(clock)
    clock.advance(1)
    _set(db, "main", 1, "u1")
    clock.advance(1)
    _set(db, "dev", 3, "c")
    if strategy == "Manual":
        head = db._branch("main").tip
        with pytest.raises(errors.MergeConflict) as exc:
            db.merge("dev", "main", "Manual")
        assert [c["key"] for c in exc.value.details["conflicts"]] == ["users:1"]
        assert db._branch("main").tip is head
        return
    r = db.merge("dev", "main", strategy)
    assert [c.key for c in r.conflicts] == ["users:1"]
    rows = {k: v[1] for k, v in rows_of(db).items()}
    assert rows == {1: row1, 2: "b", 3: "c", 4: "u4", 5: "u5"}


def test_auto_dates_a_change_by_when_it_was_written_not_when_it_was_merged(clock):
    """``feature`` wrote row 1 before main did; dev took feature's row only later, by a
    merge. Auto keeps the newer write, main's: the merge into dev does not make it newer."""
    db = _seeded(":memory:", clock)
    db.create_branch("dev")
    db.create_branch("feature")
    clock.advance(1)
    _set(db, "feature", 1, "feature1")
    clock.advance(1)
    _set(db, "main", 1, "main1")
    clock.advance(1)
    db.merge("feature", "dev")
    clock.advance(1)
    _set(db, "dev", 2, "dev2")
    r = db.merge("dev", "main", "Auto")
    assert [(c.key, c.resolved_value["name"]) for c in r.conflicts] == [("users:1", "main1")]
    assert {k: v[1] for k, v in rows_of(db).items()} == {1: "main1", 2: "dev2", 3: "u3", 4: "u4", 5: "u5"}


def test_merging_a_branch_made_from_a_past_snapshot(clock):
    db = _seeded(":memory:", clock)
    t0 = db.snapshot().timestamp
    clock.advance(1)
    _set(db, "main", 1, "later")
    with db.write() as tx:
        tx.delete("users", 2)
    db.create_branch("old", snapshot_id=t0)
    _set(db, "old", 1, "old1")                   # conflicts with main's later change
    _set(db, "old", 3, "old3")                   # main never touched it
    with pytest.raises(errors.MergeConflict) as ei:
        db.merge("old", "main", "Manual")
    assert [c["key"] for c in ei.value.details["conflicts"]] == ["users:1"]
    r = db.merge("old", "main", "Ours")
    rows = rows_of(db)
    assert rows[1][1] == "later" and rows[3][1] == "old3" and 2 not in rows    # main's delete stands
    assert r.merged_keys == 2


# ---------------------------------------------------------------- Manual leaves nothing behind
def test_a_refused_manual_merge_leaves_target_and_log_untouched(tmp_path, clock):
    db = _seeded(tmp_path / "db", clock)
    db.create_branch("dev")
    _set(db, "dev", 1, "dev1")
    _set(db, "dev", 9, "dev9")
    _set(db, "main", 1, "main1")
    head = db.snapshot().commit
    log_bytes = db.metrics()["log_bytes"]
    with pytest.raises(errors.MergeConflict):
        db.merge("dev", "main", "Manual")
    assert db.snapshot().commit is head and db.metrics()["log_bytes"] == log_bytes
    db.close(checkpoint=False)                   # the log alone decides what reopens
    db = Store(tmp_path / "db", clock=clock)
    assert db.snapshot().commit.seq == head.seq and db.snapshot().timestamp == head.ts / 1e6
    assert 9 not in rows_of(db) and rows_of(db)[1][1] == "main1"
    r = db.merge("dev", "main", "Ours")          # after reopen from the log: the same merge base
    assert [c.key for c in r.conflicts] == ["users:1"] and rows_of(db)[9][1] == "dev9"
    db.close()


def test_merge_after_reopen_from_a_checkpoint_finds_the_same_base(tmp_path, clock):
    db = _seeded(tmp_path / "db", clock)
    db.create_branch("dev")
    _set(db, "dev", 1, "dev1")
    db.merge("dev", "main")
    _set(db, "dev", 2, "dev2")
    _set(db, "main", 1, "main1")                 # after the first merge: not a conflict
    db.close()                                   # checkpoint on close
    db = Store(tmp_path / "db", clock=clock)
    r = db.merge("dev", "main", "Manual")
    assert r.conflicts == [] and rows_of(db)[1][1] == "main1" and rows_of(db)[2][1] == "dev2"
    db.close()


# ---------------------------------------------------------------- time travel
def test_as_of_at_between_and_before_commits_and_branch_creation(clock):
    db = _seeded(":memory:", clock)
    t_seed = db.snapshot().commit.ts
    clock.advance(10)
    _set(db, "main", 1, "m1")
    t_m1 = db.snapshot().commit.ts
    clock.advance(10)
    db.create_branch("dev")
    t_dev = db.get_branch("dev").created_at
    clock.advance(10)
    _set(db, "dev", 1, "d1")
    t_d1 = db.snapshot("dev").commit.ts
    _set(db, "main", 1, "m2")                    # after the fork: never dev's

    def name_at(branch: str, micros: int):
        return rows_of(db, branch=branch, as_of=micros / 1e6).get(1, (None, None))[1]
    assert name_at("dev", t_d1) == "d1"                  # exactly at a commit: that commit
    assert name_at("dev", t_d1 - 1) == "m1"              # a microsecond before: the fork state
    assert name_at("dev", round(t_dev * 1e6)) == "m1"
    assert name_at("dev", t_m1) == "m1"                  # before creation: the parent's history
    assert name_at("dev", t_m1 - 1) == "u1"
    assert name_at("dev", (t_seed + t_m1) // 2) == "u1"  # between two commits: the earlier
    assert name_at("main", t_d1 + 1) == "m2" and name_at("main", t_d1 - 1) == "m1"
    assert rows_of(db, branch="dev", as_of=(t_seed - 1) / 1e6) == {}


def test_as_of_on_a_branch_from_a_past_snapshot_follows_the_parent_up_to_the_fork(clock):
    db = _seeded(":memory:", clock)
    clock.advance(10)
    _set(db, "main", 1, "m1")
    t_m1 = db.snapshot().commit.ts
    clock.advance(10)
    _set(db, "main", 1, "m2")
    clock.advance(10)
    db.create_branch("old", snapshot_id=(t_m1 + 5) / 1e6)
    created = db.get_branch("old").created_at
    assert rows_of(db, branch="old")[1][1] == "m1"
    assert rows_of(db, branch="old", as_of=created - 1)[1][1] == "m1"   # not the parent's m2
    assert rows_of(db, branch="old", as_of=(t_m1 - 1) / 1e6)[1][1] == "u1"


# ---------------------------------------------------------------- retention
def _pruned_fork(path, clock, prune: bool = True) -> Store:
    """``dev`` forked, changed rows, then both branches went on long past the retention
    window, so the fork point and dev's first commits are pruned."""
    db = _seeded(path, clock, retention=60)
    db.create_branch("dev")
    clock.advance(1)
    with db.write("dev") as tx:
        tx.delete("users", 2)
    clock.advance(1)
    _set(db, "dev", 4, "dev4")
    clock.advance(1)
    _set(db, "main", 3, "main3")
    clock.advance(1)
    _set(db, "main", 5, "main5")
    clock.advance(100)
    _set(db, "dev", 7, "dev7")
    _set(db, "main", 8, "main8")
    if prune:
        db.checkpoint()                          # prunes everything older than 60 s
    return db


def _expected_after_merge() -> dict:
    return {1: "u1", 3: "main3", 4: "dev4", 5: "main5", 7: "dev7", 8: "main8"}


@pytest.mark.parametrize("reopen", [False, True])
def test_a_merge_after_the_fork_point_was_pruned_is_still_three_way(tmp_path, clock, reopen):
    """Pruning must not sever a branch from its fork point: without the common ancestor
    every row differing between the sides looks changed on both (dev's delete would be
    lost, main's updates reported as conflicts or reverted)."""
    db = _pruned_fork(tmp_path / "db", clock)
    with pytest.raises(errors.HistoryExpired):
        db.snapshot("dev", as_of=clock.t - 90)
    if reopen:
        db.close()
        db = Store(tmp_path / "db", clock=clock, retention=60)
    r = db.merge("dev", "main", "Manual")
    assert r.conflicts == [] and r.merged_keys == 3
    assert {k: v[1] for k, v in rows_of(db).items()} == _expected_after_merge()
    db.close()


def _reachable(db: Store) -> set[int]:
    """Ids of every commit some branch can still reach (through tips, fork points, parents)."""
    seen: set[int] = set()
    stack = [c for b in db._branches.values() for c in (b.tip, b.base) if c is not None]
    while stack:
        c = stack.pop()
        if id(c) not in seen:
            seen.add(id(c))
            stack.extend(c.parents)
    return seen


def test_pruning_frees_what_no_merge_can_start_from(tmp_path, clock):
    """Retention keeps every commit a merge may start from: main's history back to the
    oldest live branch's fork point, and each live branch's own commits. Below that fork
    point, and once the branch is deleted down to the commit in force at the horizon,
    the old states are freed."""
    db = _seeded(tmp_path / "db", clock, retention=60)
    _set(db, "main", 1, "old")
    old = db._branch("main").tip
    clock.advance(1)
    _set(db, "main", 2, "fork")
    db.create_branch("dev")
    fork = db._branch("dev").base
    clock.advance(1)
    _set(db, "dev", 3, "dev3")
    dev_first = db._branch("dev").tip
    _set(db, "main", 3, "mid")
    clock.advance(100)
    _set(db, "main", 4, "new")
    _set(db, "dev", 5, "dev5")
    edge = db._branch("main").commits[-2]        # in force at the horizon: it stays
    db.checkpoint()
    reach = _reachable(db)
    assert id(fork) in reach and id(dev_first) in reach and id(edge) in reach
    assert id(old) not in reach
    with pytest.raises(errors.HistoryExpired):
        db.snapshot("main", as_of=clock.t - 90)
    db.delete_branch("dev")
    db.checkpoint()
    reach = _reachable(db)
    assert id(edge) in reach and id(fork) not in reach
    assert {k: v[1] for k, v in rows_of(db).items()} == {1: "old", 2: "fork", 3: "mid", 4: "new", 5: "u5"}
    db.close()


def test_a_merge_after_pruning_still_knows_what_was_merged_before_the_horizon(tmp_path, clock):
    db = _seeded(tmp_path / "db", clock, retention=60)
    db.create_branch("dev")
    clock.advance(1)
    _set(db, "dev", 1, "dev1")
    clock.advance(1)
    db.merge("dev", "main")                      # main took dev's change of key 1
    clock.advance(1)
    _set(db, "dev", 2, "dev2")                   # dev's last commit before the horizon
    clock.advance(100)
    _set(db, "main", 1, "main-again")            # main changes key 1 afterwards
    _set(db, "dev", 3, "dev3")
    db.checkpoint()
    r = db.merge("dev", "main", "Manual")        # key 1 changed only on main since the last merge
    assert r.conflicts == []
    assert {k: v[1] for k, v in rows_of(db).items() if k <= 3} == {1: "main-again", 2: "dev2", 3: "dev3"}
    db.close()


def test_a_branch_with_no_commits_of_its_own_merges_after_its_fork_point_was_pruned(tmp_path, clock):
    """Its tip is the parent's commit it forked from: pruned from the parent's history,
    it must still be found when the merge copies a table from it."""
    db = _seeded(tmp_path / "db", clock, retention=60)
    db.create_branch("other")
    clock.advance(1)
    with db.write() as tx:
        tx.create_table(users_schema("teams"))
        tx.insert("teams", (1, "t", "t"))
    db.create_branch("snap")                     # no commits of its own, ever
    clock.advance(1)
    _set(db, "main", 1, "main1")
    clock.advance(100)
    _set(db, "main", 2, "main2")
    db.checkpoint()
    r = db.merge("snap", "other", "Manual")      # "teams" only on the source: taken whole
    assert r.conflicts == [] and rows_of(db, "teams", "other") == {1: (1, "t", "t")}
    db.close()
    db = Store(tmp_path / "db", clock=clock, retention=60)
    assert rows_of(db, "teams", "other") == {1: (1, "t", "t")}
    db.close()


def _merge_outcome(db: Store, source: str, target: str, strategy: str) -> tuple:
    try:
        r = db.merge(source, target, strategy)
    except errors.MergeConflict as exc:
        return "refused", sorted(c["key"] for c in exc.details["conflicts"])
    return r.merged_keys, sorted((c.key, str(c.resolved_value)) for c in r.conflicts)


def _maximal_common_ancestors(db: Store, a: str, b: str) -> list:
    """Naively: the common ancestors of two branch tips that no other one descends from."""
    def ancestors(c) -> dict:
        out, stack = {}, [c]
        while stack:
            c = stack.pop()
            if id(c) not in out:
                out[id(c)] = c
                stack.extend(c.parents)
        return out
    of_b = ancestors(db._branch(b).tip)
    common = {k: c for k, c in ancestors(db._branch(a).tip).items() if k in of_b}
    below: set = set()
    for c in common.values():
        for p in c.parents:
            below.update(ancestors(p))
    return [c for k, c in common.items() if k not in below]


@pytest.mark.parametrize("seed", range(12))
def test_merges_after_pruning_equal_merges_with_all_history_kept(tmp_path, seed):
    """Random branches, writes and merges (Ours, Theirs, Manual) run twice: once with a
    short retention, pruned often and sometimes reopened, once keeping every commit.
    Pruning only forgets old moments: every merge must find the same base, so the
    conflicts, merged keys and resulting rows must be the same."""
    rnd = random.Random(seed)
    clock = FakeClock()
    pruned = Store(tmp_path / "db", clock=clock, retention=5)
    full = Store(":memory:", clock=clock)
    for db in (pruned, full):
        with db.write() as tx:
            tx.create_table(users_schema())
    names, parents = ["main"], {}
    for step in range(80):
        clock.advance(rnd.choice((0.5, 1, 2, 4)))
        action = rnd.random()
        if action < 0.12 and len(names) < 5:
            name, parent = f"b{step}", rnd.choice(names)
            for db in (pruned, full):
                db.create_branch(name, parent)
            names.append(name)
            parents[name] = parent
        elif action < 0.16:
            leaves = [n for n in names[1:] if n not in parents.values()]
            if leaves:
                name = rnd.choice(leaves)       # its children's fork points must outlive it
                for db in (pruned, full):
                    db.delete_branch(name)
                names.remove(name)
                del parents[name]
        elif action < 0.6:
            branch, key = rnd.choice(names), rnd.randrange(1, 9)
            delete = rnd.random() < 0.25
            for db in (pruned, full):
                if delete:
                    with db.write(branch) as tx:
                        tx.delete("users", key)
                else:
                    _set(db, branch, key, f"s{step}")
        elif len(names) > 1:
            source, target = rnd.sample(names, 2)
            if len(_maximal_common_ancestors(full, source, target)) > 1:
                continue                # criss-cross: which base wins is not history-independent
            strategy = rnd.choice(("Ours", "Theirs", "Manual"))
            assert _merge_outcome(pruned, source, target, strategy) == \
                _merge_outcome(full, source, target, strategy), (step, source, target, strategy)
        if step % 7 == 6:
            pruned.checkpoint()
        if step % 25 == 24:
            pruned.close()
            pruned = Store(tmp_path / "db", clock=clock, retention=5)
        for name in names:
            assert rows_of(pruned, branch=name) == rows_of(full, branch=name), (step, name)
    pruned.close()
    full.close()
