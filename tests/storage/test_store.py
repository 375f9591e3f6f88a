"""Versioned store semantics: branches, time travel, merge, transactions, errors."""
from __future__ import annotations

import threading

import pytest

from helios import errors
from helios.storage.store import Store
from storage_helpers import FakeClock, rows_of, users_schema


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def db(clock):
    s = Store(":memory:", clock=clock)
    with s.write() as tx:
        tx.create_table(users_schema())
        for i in range(1, 6):
            tx.insert("users", (i, f"user{i}", f"u{i}@x.io"))
    clock.advance(1)
    yield s
    s.close()


def test_old_snapshots_never_change(db, clock):
    before = db.snapshot()
    with db.write() as tx:
        tx.update("users", 1, (1, "changed", "c@x.io"))
        tx.delete("users", 2)
        tx.insert("users", (9, "new", "n@x.io"))
    assert rows_of(before)[1] == (1, "user1", "u1@x.io")
    assert 2 in rows_of(before) and 9 not in rows_of(before)
    now = rows_of(db)
    assert now[1][1] == "changed" and 2 not in now and 9 in now


def test_failed_write_block_commits_nothing(db):
    with pytest.raises(errors.DuplicateKey):
        with db.write() as tx:
            tx.insert("users", (10, "a", "a@x.io"))
            tx.insert("users", (1, "dup", "d@x.io"))
    assert 10 not in rows_of(db)


def _write_from_another_thread(db, key):
    """A write in a fresh thread: it deadlocks (and this fails) if the writer lock leaked."""
    done = []

    def work():
        with db.write() as tx:
            tx.insert("users", (key, "other", f"{key}@x.io"))
        done.append(key)
    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout=10)
    return done == [key]


def test_write_block_releases_the_writer_lock_on_every_exit(db):
    db.create_branch("ro", read_only=True)
    with pytest.raises(errors.ReadOnlyBranch):
        with db.write("ro"):
            pass
    assert _write_from_another_thread(db, 20)
    with pytest.raises(errors.BranchNotFound):
        with db.write("nope"):
            pass
    assert _write_from_another_thread(db, 21)
    with pytest.raises(ZeroDivisionError):
        with db.write() as tx:
            tx.insert("users", (22, "rolled back", "r@x.io"))
            1 / 0
    assert _write_from_another_thread(db, 23)
    with db.write() as tx:
        tx.insert("users", (24, "explicit", "e@x.io"))
        tx.commit()                          # committing inside the block: published at its end
    assert _write_from_another_thread(db, 25)
    assert {20, 21, 23, 24, 25} <= set(rows_of(db)) and 22 not in rows_of(db)


def test_an_empty_write_block_makes_no_commit(db):
    head = db.snapshot().commit
    with db.write():
        pass
    assert db.snapshot().commit is head


def test_branch_creation_shares_state_and_isolates_writes(db):
    info = db.create_branch("dev")
    assert db.snapshot("dev").state is db.snapshot("main").state     # O(1): the same root object
    assert info.parent == "main" and info.stats.total_keys == 5 and info.state == "Active"
    with db.write("dev") as tx:
        tx.insert("users", (6, "six", "6@x.io"))
    assert 6 in rows_of(db, branch="dev") and 6 not in rows_of(db, branch="main")
    assert [b.name for b in db.list_branches()] == ["main", "dev"]


def test_branch_size_estimate_follows_each_table_version(db):
    """The size estimate is cached per table version, so it must still move with writes."""
    before = db.get_branch("main").stats.size_bytes
    assert before > 0 and db.get_branch("main").stats.size_bytes == before
    with db.write() as tx:
        for i in range(6, 506):
            tx.insert("users", (i, f"user{i}", f"u{i}@x.io"))
    after = db.get_branch("main").stats.size_bytes
    assert 90 * before < after < 110 * before          # 505 rows of the same shape against 5
    assert db.create_branch("dev").stats.size_bytes == after
    with db.write() as tx:
        tx.delete("users", 1)
    assert db.get_branch("main").stats.size_bytes < after
    assert db.get_branch("dev").stats.size_bytes == after


def test_branch_errors(db):
    db.create_branch("dev")
    db.create_branch("child", parent="dev")
    with pytest.raises(errors.BranchExists):
        db.create_branch("dev")
    with pytest.raises(errors.BranchNotFound):
        db.create_branch("x", parent="nope")
    with pytest.raises(errors.InvalidName):
        db.create_branch("bad name!")
    with pytest.raises(errors.BranchInUse):
        db.delete_branch("main")
    with pytest.raises(errors.BranchInUse):
        db.delete_branch("dev")
    with pytest.raises(errors.BranchNotFound):
        db.get_branch("ghost")
    db.delete_branch("child")
    db.delete_branch("dev")
    assert [b.name for b in db.list_branches()] == ["main"]


def test_read_only_branch_refuses_writes(db):
    db.create_branch("frozen", read_only=True)
    with pytest.raises(errors.ReadOnlyBranch):
        with db.write("frozen") as tx:
            tx.insert("users", (7, "x", "x"))
    with pytest.raises(errors.InvalidMerge):
        db.merge("main", "frozen")
    assert db.get_branch("frozen").read_only


def test_time_travel_is_commit_precise(db, clock):
    t_before = db.snapshot().timestamp           # the fixture's commit
    stamps = []
    for i in range(3):
        clock.advance(0.000_001 if i else 0)     # commits a microsecond apart stay distinct
        with db.write() as tx:
            tx.update("users", 1, (1, f"v{i}", "x"))
        stamps.append(db.snapshot().timestamp)
    assert stamps == sorted(set(stamps))
    for i, ts in enumerate(stamps):
        assert rows_of(db, as_of=ts)[1][1] == f"v{i}"
    assert rows_of(db, as_of=t_before)[1][1] == "user1"
    assert rows_of(db, as_of=0) == {}                 # before the first commit: nothing


def test_branch_history_before_creation_is_parents(db, clock):
    t0 = db.snapshot().timestamp
    clock.advance(10)
    with db.write() as tx:
        tx.update("users", 1, (1, "later", "x"))
    clock.advance(10)
    db.create_branch("dev")
    assert rows_of(db, branch="dev", as_of=t0)[1][1] == "user1"
    assert rows_of(db, branch="dev")[1][1] == "later"


def test_branch_from_past_snapshot(db, clock):
    t0 = db.snapshot().timestamp
    clock.advance(5)
    with db.write() as tx:
        tx.delete("users", 5)
    info = db.create_branch("old", snapshot_id=t0)
    assert 5 in rows_of(db, branch="old") and 5 not in rows_of(db)
    assert info.snapshot_id == pytest.approx(t0)


def test_merge_fast_forwards_untouched_table(db, clock):
    db.create_branch("dev")
    with db.write("dev") as tx:
        tx.insert("users", (6, "six", "6"))
        tx.delete("users", 1)
        tx.create_table(users_schema("teams"))
        tx.insert("teams", (1, "t", "t"))
    r = db.merge("dev", "main")
    assert r.completed and r.conflicts == [] and r.merged_keys == 3
    assert r.message == "Successfully merged 3 keys from 'dev' into 'main' with 0 conflicts resolved"
    assert rows_of(db) == rows_of(db, branch="dev")
    assert rows_of(db, "teams") == {1: (1, "t", "t")}      # tables created on the source appear


def _diverge(db, clock, source_first: bool):
    db.create_branch("dev")
    writes = [("dev", "from-dev"), ("main", "from-main")]
    if not source_first:
        writes.reverse()
    for branch, name in writes:
        clock.advance(1)
        with db.write(branch) as tx:
            tx.update("users", 3, (3, name, "x"))
    clock.advance(1)
    with db.write("dev") as tx:
        tx.insert("users", (8, "eight", "8"))
    with db.write("main") as tx:
        tx.insert("users", (9, "nine", "9"))


@pytest.mark.parametrize("strategy,source_first,winner", [
    ("Ours", False, "from-main"), ("Theirs", False, "from-dev"),
    ("Auto", True, "from-main"), ("Auto", False, "from-dev")])
def test_merge_strategies(db, clock, strategy, source_first, winner):
    _diverge(db, clock, source_first)
    r = db.merge("dev", "main", strategy)
    assert len(r.conflicts) == 1
    c = r.conflicts[0]
    assert c.key == "users:3" and c.resolution == strategy
    assert c.source_value == {"id": 3, "name": "from-dev", "email": "x"}
    assert c.target_value == {"id": 3, "name": "from-main", "email": "x"}
    assert c.resolved_value["name"] == winner
    rows = rows_of(db)
    assert rows[3][1] == winner and 8 in rows and 9 in rows
    assert 9 not in rows_of(db, branch="dev")


def test_manual_merge_with_conflicts_changes_nothing(db, clock):
    _diverge(db, clock, True)
    before = db.snapshot().state
    with pytest.raises(errors.MergeConflict) as ei:
        db.merge("dev", "main", "Manual")
    assert ei.value.status == 409
    assert ei.value.details["conflicts"][0]["key"] == "users:3"
    assert db.snapshot().state is before


def test_delete_versus_update_is_a_conflict(db, clock):
    db.create_branch("dev")
    with db.write("dev") as tx:
        tx.delete("users", 2)
    with db.write("main") as tx:
        tx.update("users", 2, (2, "kept", "x"))
    r = db.merge("dev", "main", "Ours")
    assert [(c.key, c.source_value) for c in r.conflicts] == [("users:2", None)]
    assert rows_of(db)[2][1] == "kept"


def test_same_change_on_both_sides_is_not_a_conflict(db):
    db.create_branch("dev")
    for b in ("dev", "main"):
        with db.write(b) as tx:
            tx.update("users", 4, (4, "same", "s"))
    assert db.merge("dev", "main", "Manual").conflicts == []


def test_second_merge_starts_from_the_first(db, clock):
    db.create_branch("dev")
    with db.write("dev") as tx:
        tx.update("users", 1, (1, "v1", "x"))
    db.merge("dev", "main")
    clock.advance(1)
    with db.write("main") as tx:
        tx.update("users", 1, (1, "v2-main", "x"))
    with db.write("dev") as tx:
        tx.insert("users", (20, "twenty", "x"))
    r = db.merge("dev", "main", "Manual")            # users:1 changed only on main since the last merge
    assert r.conflicts == [] and rows_of(db)[1][1] == "v2-main" and 20 in rows_of(db)


def test_merge_into_itself_and_bad_strategy(db):
    with pytest.raises(errors.InvalidMerge):
        db.merge("main", "main")
    db.create_branch("dev")
    with pytest.raises(errors.BadRequest):
        db.merge("dev", "main", "Sideways")
    with pytest.raises(errors.BranchNotFound):
        db.merge("ghost", "main")


def test_merge_maintains_indexes_and_checks_uniqueness(clock):
    db = Store(":memory:", clock=clock)
    with db.write() as tx:
        tx.create_table(users_schema(unique_email=True))
        tx.insert("users", (1, "a", "a@x"))
    db.create_branch("dev")
    with db.write("dev") as tx:
        tx.insert("users", (2, "b", "b@x"))
    with db.write("main") as tx:
        tx.insert("users", (3, "c", "c@x"))
    db.merge("dev", "main")
    snap = db.snapshot()
    found = [rows for _, rows in snap.index_scan("users", "users_email", ("b@x",), ("b@x",))]
    assert found == [[(2, "b", "b@x")]]
    db.create_branch("dev2")
    with db.write("dev2") as tx:
        tx.insert("users", (4, "d", "z@x"))
    with db.write("main") as tx:
        tx.insert("users", (5, "e", "z@x"))          # each side alone is fine; merged they clash
    with pytest.raises(errors.UniqueViolation):
        db.merge("dev2", "main")
    assert 4 not in rows_of(db)


def test_unique_index_enforced_on_insert_and_update(clock):
    db = Store(":memory:", clock=clock)
    with db.write() as tx:
        tx.create_table(users_schema(unique_email=True))
        tx.insert("users", (1, "a", "a@x"))
        tx.insert("users", (2, "b", None))
        tx.insert("users", (3, "c", None))               # NULLs never clash
    with pytest.raises(errors.UniqueViolation):
        with db.write() as tx:
            tx.insert("users", (4, "d", "a@x"))
    with pytest.raises(errors.UniqueViolation):
        with db.write() as tx:
            tx.update("users", 2, (2, "b", "a@x"))
    with db.write() as tx:
        tx.replace("users", (5, "e", "a@x"))             # REPLACE removes the clashing row
    assert sorted(rows_of(db)) == [2, 3, 5]


def test_optimistic_transactions_conflict_on_same_row(db):
    t1, t2 = db.begin(), db.begin()
    t1.update("users", 1, (1, "t1", "x"))
    t2.update("users", 1, (1, "t2", "x"))
    t1.commit()
    with pytest.raises(errors.WriteConflict):
        t2.commit()
    assert rows_of(db)[1][1] == "t1"


def test_optimistic_transactions_rebase_disjoint_rows(db):
    t1, t2 = db.begin(), db.begin()
    t1.update("users", 1, (1, "t1", "x"))
    t2.update("users", 2, (2, "t2", "x"))
    t1.commit()
    t2.commit()
    rows = rows_of(db)
    assert rows[1][1] == "t1" and rows[2][1] == "t2"


def test_transaction_is_atomic_and_isolated(db):
    tx = db.begin()
    tx.insert("users", (30, "a", "a"))
    tx.insert("users", (31, "b", "b"))
    assert 30 in rows_of(tx) and 30 not in rows_of(db)   # read-your-writes; nobody else sees it
    tx.rollback()
    assert 30 not in rows_of(db)
    with pytest.raises(errors.TransactionError):
        tx.commit()


def test_retention_expires_old_history(tmp_path):
    clock = FakeClock()
    db = Store(tmp_path / "db", clock=clock, retention=60)
    with db.write() as tx:
        tx.create_table(users_schema())
    t_old = clock.t
    clock.advance(30)
    with db.write() as tx:
        tx.insert("users", (1, "a", "a"))
    clock.advance(100)
    db.checkpoint()                      # prunes: history before now-60s is gone
    with pytest.raises(errors.HistoryExpired):
        db.snapshot("main", as_of=t_old)
    assert rows_of(db, as_of=clock.t - 10) == {1: (1, "a", "a")}
    db.close()
    db = Store(tmp_path / "db", clock=clock, retention=60)
    with pytest.raises(errors.HistoryExpired):
        db.snapshot("main", as_of=t_old)
    assert rows_of(db) == {1: (1, "a", "a")}
    db.close()


def test_retention_applies_in_memory_as_commits_arrive():
    """A store in memory has no checkpoints: its commits apply the retention, at most once
    per tenth of the window, and ``checkpoint()`` applies it at once."""
    clock = FakeClock()
    db = Store(":memory:", clock=clock, retention=60)
    with db.write() as tx:
        tx.create_table(users_schema())
    t_old = clock.t
    first = db._branch("main").commits[0]
    clock.advance(10)
    with db.write() as tx:
        tx.insert("users", (1, "a", "a"))
    clock.advance(100)
    with db.write() as tx:
        tx.insert("users", (0, "z", "z"))
    with pytest.raises(errors.HistoryExpired):
        db.snapshot("main", as_of=t_old)
    assert first not in db._branch("main").commits          # freed, not only hidden
    assert rows_of(db, as_of=clock.t - 59) == {1: (1, "a", "a")}   # in force at the horizon: kept
    t_mid = clock.t
    clock.advance(100)
    with db.write() as tx:
        tx.insert("users", (2, "b", "b"))
    with pytest.raises(errors.HistoryExpired):
        db.snapshot("main", as_of=t_mid - 1)
    clock.advance(100)
    db.checkpoint()
    with pytest.raises(errors.HistoryExpired):
        db.snapshot("main", as_of=clock.t - 90)
    assert rows_of(db) == {0: (0, "z", "z"), 1: (1, "a", "a"), 2: (2, "b", "b")}
    db.close()


def test_alter_table_adds_column_with_default(db):
    from dataclasses import replace
    from helios.storage.schema import Column
    old = db.snapshot().schema("users")
    new = replace(old, columns=old.columns + (Column("age", "int4", True, 42),))
    with db.write() as tx:
        tx.alter_table("users", new)
    assert rows_of(db)[1] == (1, "user1", "u1@x.io", 42)


def test_concurrent_writers_serialise(db):
    def worker(n):
        for i in range(50):
            with db.write() as tx:
                tx.insert("users", (1000 + n * 100 + i, "w", "w"))
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(rows_of(db)) == 5 + 200


def test_reads_stay_consistent_while_retention_prunes(tmp_path):
    clock = FakeClock()
    db = Store(tmp_path / "db", clock=clock, retention=1)
    with db.write() as tx:
        tx.create_table(users_schema())
    for i in range(300):
        clock.advance(0.01)
        with db.write() as tx:
            tx.insert("users", (i, "n", "e"))
    errors_seen = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                n = len(rows_of(db))
                assert n >= 300
            except Exception as exc:            # surfaced below
                errors_seen.append(exc)
                return
    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(20):
        clock.advance(0.5)
        with db.write() as tx:
            tx.update("users", 0, (0, "m", "e"))
        db.checkpoint()                          # prunes the commits older than a second
    stop.set()
    for t in threads:
        t.join()
    assert not errors_seen, errors_seen[:1]
    db.close()


@pytest.mark.parametrize("write", ["insert", "replace", "update"])
def test_the_logged_put_is_the_row_the_table_stores(write):
    """A put op logs the row the table stored (without looking it up again): a tuple even when
    the caller passed a list, so replaying the ops rebuilds the same rows."""
    from helios.storage.txn import apply_op
    s = Store(":memory:")
    with s.write() as tx:
        tx.create_table(users_schema(unique_email=True))
        tx.insert("users", (1, "a", "a@x.io"))
        tx.insert("users", (2, "b", "b@x.io"))
    base = s.snapshot().commit.state
    tx = s.begin()
    if write == "insert":
        key = tx.insert("users", [3, "c", "c@x.io"])
    elif write == "replace":
        key = tx.replace("users", [3, "c", "b@x.io"])          # clashes with row 2 on the unique email
    else:
        key = tx.update("users", 1, [1, "z", "z@x.io"])
    put = tx.ops[-1]
    stored = tx.get("users", key)
    assert put == ("p", "users", key, stored) and type(put[3]) is tuple
    replayed = base
    for op in tx.ops:
        replayed = apply_op(replayed, op)
    assert dict(zip(*next(replayed.tables["users"].rows.batches()))) == \
        dict(zip(*next(tx.state.tables["users"].rows.batches())))
    tx.rollback()
    s.close()


def test_to_micros_fast_path_matches_the_checks():
    """Floats in range take a fast path; it must give the general path's answers and errors."""
    import math
    import random
    from helios.storage.store import MAX_SECONDS, to_micros
    rng = random.Random(5)
    for x in [0.0, 1e-7, 0.4999999, 1_700_000_000.123456, float(MAX_SECONDS)] + \
            [rng.uniform(0, MAX_SECONDS) for _ in range(1000)]:
        assert to_micros(x) == int(round(x * 1_000_000)) and type(to_micros(x)) is int
    assert to_micros(1_700_000_000) == 1_700_000_000_000_000
    for bad in [-0.5, math.nan, math.inf, -math.inf, MAX_SECONDS + 1.0, True, "1", None]:
        with pytest.raises(errors.InvalidParameter):
            to_micros(bad)


def test_commit_timestamps_stay_strictly_increasing_when_the_clock_stalls_or_steps_back(clock):
    s = Store(":memory:", clock=clock)
    with s.write() as tx:
        tx.create_table(users_schema())
    stamps = []
    for i, step in enumerate([0, 0, -5, 0.000_000_1, 3, -1]):
        clock.advance(step)
        with s.write() as tx:
            tx.insert("users", (i, "n", "e"))
        stamps.append(s.snapshot().commit.ts)
    assert all(a < b for a, b in zip(stamps, stamps[1:])), stamps
    s.close()
