"""Durability: restart, torn log tails, corrupt checkpoints, fsync failure, locking."""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from helios import errors
from helios.storage import wal
from helios.storage.store import Store
from storage_helpers import FakeClock, rows_of, users_schema


def _fill(db: Store, n: int, start: int = 1) -> None:
    for i in range(start, start + n):
        with db.write() as tx:
            tx.insert("users", (i, f"u{i}", f"{i}@x"))


def _new(path: Path, **kw) -> Store:
    db = Store(path, **kw)
    with db.write() as tx:
        tx.create_table(users_schema(unique_email=True))
    return db


def test_reopen_replays_log_without_checkpoint(tmp_path):
    db = _new(tmp_path / "db")
    _fill(db, 20)
    db.create_branch("dev")
    with db.write("dev") as tx:
        tx.delete("users", 1)
    t_mid = db.snapshot().timestamp
    _fill(db, 5, start=100)
    db.close(checkpoint=False)
    assert not list((tmp_path / "db").glob("checkpoint-*"))
    db = Store(tmp_path / "db")
    assert len(rows_of(db)) == 25 and 1 not in rows_of(db, branch="dev")
    assert len(rows_of(db, as_of=t_mid)) == 20                       # history survives too
    assert [r for _, rows in db.snapshot().index_scan("users", "users_email", ("7@x",), ("7@x",))
            for r in rows] == [(7, "u7", "7@x")]
    db.close()


def test_checkpoint_then_more_writes_then_reopen(tmp_path):
    clock = FakeClock()
    db = _new(tmp_path / "db", clock=clock)
    _fill(db, 50)
    clock.advance(1)
    t_after_50 = clock.t
    db.checkpoint()
    clock.advance(1)
    _fill(db, 10, start=200)
    db.create_branch("feature", snapshot_id=t_after_50)
    db.close(checkpoint=False)
    db = Store(tmp_path / "db", clock=clock)
    assert len(rows_of(db)) == 60
    assert len(rows_of(db, branch="feature")) == 50
    assert len(rows_of(db, as_of=t_after_50)) == 50
    db.close()                         # checkpoint on close
    db = Store(tmp_path / "db", clock=clock)
    assert len(rows_of(db)) == 60 and len(rows_of(db, as_of=t_after_50)) == 50
    assert {b.name for b in db.list_branches()} == {"main", "feature"}
    db.close()


def test_checkpoint_is_incremental(tmp_path):
    db = _new(tmp_path / "db")
    with db.write() as tx:
        tx.bulk_insert("users", [(i, f"u{i}", f"{i}@x") for i in range(20_000)])
    db.checkpoint()
    first = db.stats.last_checkpoint_bytes
    _fill(db, 3, start=100_000)
    db.checkpoint()
    assert db.stats.last_checkpoint_bytes < first / 20
    db.close()
    db = Store(tmp_path / "db")
    assert len(rows_of(db)) == 20_003
    db.close()


def _node_kinds(path: Path) -> list[int]:
    from helios.storage import codec
    from helios.storage.checkpoint import HEADER_LEN
    from helios.storage.fileio import scan_records
    payloads, _, _ = scan_records((path / "nodes.dat").read_bytes(), HEADER_LEN, path=path)
    return [codec.unpack(p)[0] for p in payloads]


def test_value_only_leaf_changes_are_written_and_reloaded_as_deltas(tmp_path):
    clock = FakeClock()
    db = _new(tmp_path / "db", clock=clock)
    with db.write() as tx:
        tx.bulk_insert("users", [(i, f"u{i}", f"{i}@x") for i in range(5000)])
    db.checkpoint()
    full = db.stats.last_checkpoint_bytes
    clock.advance(1)
    t_before = db.snapshot().timestamp
    clock.advance(1)
    with db.write() as tx:
        tx.update("users", 10, (10, "ten", "10@x"))
        tx.update("users", 11, (11, "eleven", "11@x"))
    db.checkpoint()
    assert db.stats.last_checkpoint_bytes < full / 100, (db.stats.last_checkpoint_bytes, full)
    assert _node_kinds(tmp_path / "db").count(5) == 1
    with db.write() as tx:
        tx.insert("users", (10_000, "new", "new@x"))        # keys change: whole leaf records
        tx.update("users", 12, (12, "twelve", "12@x"))
    db.checkpoint()
    assert _node_kinds(tmp_path / "db").count(5) == 2
    db.close()
    db = Store(tmp_path / "db", clock=clock)
    old, new = db.snapshot(as_of=t_before), db.snapshot()
    assert rows_of(old)[10] == (10, "u10", "10@x") and rows_of(new)[10] == (10, "ten", "10@x")
    assert rows_of(new)[11][1] == "eleven" and len(rows_of(new)) == 5001 and len(rows_of(old)) == 5000
    old_leaf, new_leaf = old.table("users").rows.leaf_for(10), new.table("users").rows.leaf_for(10)
    assert new_leaf is not old_leaf and new_leaf.keys is old_leaf.keys      # as in memory: shared
    shared = [a is b for a, b in zip(old_leaf.values, new_leaf.values)]
    assert shared.count(False) == 3 and len(shared) > 50      # rows 10, 11 and 12
    found = [rows for _, rows in new.index_scan("users", "users_email", ("10@x",), ("10@x",))]
    assert found == [[(10, "ten", "10@x")]]
    db.close()


def _set_nodes_version(path: Path, version: int) -> None:
    from helios.storage.checkpoint import NODES_MAGIC
    from helios.storage.fileio import encode_header
    nodes = path / "nodes.dat"
    data = bytearray(nodes.read_bytes())
    data[:12] = encode_header(NODES_MAGIC, version)
    nodes.write_bytes(bytes(data))


def test_a_version_1_node_file_is_read_and_appended_to_without_deltas(tmp_path):
    """Leaf deltas (kind 5) came with node-file version 2: a version-1 file keeps only
    record kinds a version-1 reader knows, so the release that wrote it can still open it."""
    db = _new(tmp_path / "db")
    with db.write() as tx:
        tx.bulk_insert("users", [(i, f"u{i}", f"{i}@x") for i in range(3000)])
    db.checkpoint()
    db.close()
    assert 5 not in _node_kinds(tmp_path / "db")
    _set_nodes_version(tmp_path / "db", 1)
    db = Store(tmp_path / "db")
    with db.write() as tx:
        tx.update("users", 10, (10, "ten", "10@x"))
    db.checkpoint()
    db.close()
    assert 5 not in _node_kinds(tmp_path / "db")                       # whole leaves only
    assert (tmp_path / "db" / "nodes.dat").read_bytes()[8:10] == (1).to_bytes(2, "little")
    db = Store(tmp_path / "db")
    assert rows_of(db)[10] == (10, "ten", "10@x") and len(rows_of(db)) == 3000
    db.close()


def test_a_leaf_delta_in_a_version_1_file_is_corruption(tmp_path):
    db = _new(tmp_path / "db")
    with db.write() as tx:
        tx.bulk_insert("users", [(i, f"u{i}", f"{i}@x") for i in range(3000)])
    db.checkpoint()
    with db.write() as tx:
        tx.update("users", 10, (10, "ten", "10@x"))
    db.checkpoint()
    db.close()
    assert 5 in _node_kinds(tmp_path / "db")                           # a version-2 file has deltas
    _set_nodes_version(tmp_path / "db", 1)
    with pytest.raises(errors.CorruptDatabase, match="unknown record kind 5"):
        Store(tmp_path / "db")


def test_a_leaf_delta_with_a_bad_base_is_corruption():
    from helios.storage.btree import Leaf
    from helios.storage.checkpoint import _delta_leaf
    leaf = Leaf([1, 2], [(1, "a"), (2, "b")])
    keys, values = _delta_leaf([leaf], {}, (5, 0, (1,), ((2, "c"),)), "x")
    assert keys is leaf.keys and values == [(1, "a"), (2, "c")] and leaf.values[1] == (2, "b")
    pending = {1: ([7], [(7, "p")])}           # a leaf whose parent record has not come yet
    assert _delta_leaf([leaf, None], pending, (5, 1, (0,), ((7, "q"),)), "x") == ([7], [(7, "q")])
    for rec in ((5, 1, (0,), ("v",)), (5, -1, (0,), ("v",)), (5, 0, (2,), ("v",)), (5, 0, (0, 1), ("v",))):
        with pytest.raises(errors.CorruptDatabase):
            _delta_leaf([leaf], {}, rec, "x")
    with pytest.raises(errors.CorruptDatabase):
        _delta_leaf([object()], {}, (5, 0, (0,), ("v",)), "x")


def test_second_process_is_locked_out(tmp_path):
    db = _new(tmp_path / "db")
    with pytest.raises(errors.DatabaseLocked):
        Store(tmp_path / "db")
    db.close()
    Store(tmp_path / "db").close()


def test_not_a_database_directory(tmp_path):
    f = tmp_path / "file.db"
    f.write_text("hello")
    with pytest.raises(errors.CorruptDatabase):
        Store(f)


def test_unknown_format_version_is_refused(tmp_path):
    db = _new(tmp_path / "db")
    _fill(db, 3)
    db.close()
    m = sorted((tmp_path / "db").glob("checkpoint-*.manifest"))[-1]
    data = bytearray(m.read_bytes())
    data[8:10] = (99).to_bytes(2, "little")
    m.write_bytes(bytes(data))
    for other in sorted((tmp_path / "db").glob("checkpoint-*.manifest"))[:-1]:
        other.unlink()
    with pytest.raises(errors.UnsupportedFormat):
        Store(tmp_path / "db")


def _closed_with_log(src: Path, commits: int) -> Path:
    """A database closed with ``commits`` commits in its log only (after a checkpoint): the log segment."""
    db = _new(src)
    db.checkpoint()
    _fill(db, commits)
    db.close(checkpoint=False)
    return wal.segment_path(src, wal.list_segments(src)[-1])


def test_torn_log_tail_recovers_a_prefix(tmp_path):
    src = tmp_path / "src"
    seg = _closed_with_log(src, 6)
    size = seg.stat().st_size
    records = wal.read_segment(seg, repair=False)
    last_two = sum(8 + 4 + len(r) for r in records[-2:])        # each commit flushed alone: one record each
    seen = set()
    for cut in range(size - last_two, size):
        trial = tmp_path / f"t{cut}"
        shutil.copytree(src, trial)
        with open(wal.segment_path(trial, wal.list_segments(trial)[-1]), "r+b") as f:
            f.truncate(cut)
        db = Store(trial)
        got = sorted(rows_of(db))
        assert got == list(range(1, len(got) + 1)) and len(got) in (4, 5)   # a prefix of the commits
        seen.add(len(got))
        _fill(db, 1, start=1000)                                         # and the log takes new writes
        db.close(checkpoint=False)
        db = Store(trial)
        assert 1000 in rows_of(db)
        db.close(checkpoint=False)
        shutil.rmtree(trial)
    assert seen == {4, 5}


def test_a_log_written_in_format_v1_is_replayed_and_the_store_goes_on(tmp_path):
    """A database whose last session wrote the v1 log (one record per commit) and crashed
    opens, drops the torn commit, replays the rest and writes new commits to a new segment."""
    from helios.storage.fileio import encode_header, encode_record
    src = tmp_path / "db"
    seg = _closed_with_log(src, 5)
    entries = wal.read_segment(seg)
    v1 = encode_header(wal.MAGIC, 1) + b"".join(encode_record(e) for e in entries)
    seg.write_bytes(v1[:-3])                                        # its last commit torn by a crash
    db = Store(src)
    assert sorted(rows_of(db)) == [1, 2, 3, 4]
    _fill(db, 1, start=6)
    db.close(checkpoint=False)
    assert seg.read_bytes() == v1[:len(v1) - len(encode_record(entries[-1]))], "repaired, never appended to"
    db = Store(src)
    assert sorted(rows_of(db)) == [1, 2, 3, 4, 6]
    db.close()


def test_corrupt_newest_checkpoint_falls_back_to_previous(tmp_path):
    db = _new(tmp_path / "db")
    _fill(db, 10)
    db.checkpoint()
    _fill(db, 10, start=11)
    db.checkpoint()
    _fill(db, 5, start=21)
    db.close(checkpoint=False)
    newest = sorted((tmp_path / "db").glob("checkpoint-*.manifest"))[-1]
    data = bytearray(newest.read_bytes())
    data[-3] ^= 0xFF
    newest.write_bytes(bytes(data))
    db = Store(tmp_path / "db")
    assert sorted(rows_of(db)) == list(range(1, 26))      # older checkpoint + its log: nothing lost
    db.close()


def test_corrupt_node_file_is_a_clear_error(tmp_path):
    db = _new(tmp_path / "db")
    _fill(db, 10)
    db.close()
    nodes = tmp_path / "db" / "nodes.dat"
    data = bytearray(nodes.read_bytes())
    data[len(data) // 2] ^= 0xFF
    nodes.write_bytes(bytes(data))
    with pytest.raises(errors.CorruptDatabase):
        Store(tmp_path / "db")


def test_fsync_failure_refuses_writes_keeps_reads(tmp_path, monkeypatch):
    db = _new(tmp_path / "db")
    _fill(db, 5)
    real = os.fsync

    def broken(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(errors.StorageFailed):
        _fill(db, 1, start=6)
    assert sorted(rows_of(db)) == [1, 2, 3, 4, 5]               # reads go on; 6 never became visible
    with pytest.raises(errors.StorageFailed) as ei:
        _fill(db, 1, start=7)
    assert ei.value.status == 503
    with pytest.raises(errors.StorageFailed):
        db.create_branch("x")
    monkeypatch.setattr(os, "fsync", real)
    db.close()
    db = Store(tmp_path / "db")
    assert {1, 2, 3, 4, 5} <= set(rows_of(db))                  # nothing acknowledged is lost
    db.close()


def test_group_commit_shares_fsyncs(tmp_path):
    calls = []
    lock = threading.Lock()

    def slow_fsync(fd):
        with lock:
            calls.append(fd)
        import time
        time.sleep(0.002)
        os.fsync(fd)

    db = _new(tmp_path / "db", fsync=slow_fsync)
    calls.clear()

    def worker(n):
        for i in range(25):
            with db.write() as tx:
                tx.insert("users", (n * 1000 + i, "w", f"{n}-{i}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(rows_of(db)) == 400
    assert len(calls) < 300, f"{len(calls)} fsyncs for 400 commits: no group commit"
    db.close(checkpoint=False)
    db = Store(tmp_path / "db")
    assert len(rows_of(db)) == 400
    db.close()


def test_commit_survives_a_checkpoint_between_its_append_and_its_fsync(tmp_path):
    """The checkpoint switches to a new log segment; the commit must wait on the segment it
    was appended to (on the new one it would name a record that does not exist)."""
    db = _new(tmp_path / "db")
    _fill(db, 3)
    publish = db._publish

    def checkpoint_first(*args):
        db._publish = publish                  # once
        db.checkpoint()
        publish(*args)

    db._publish = checkpoint_first
    _fill(db, 1, start=4)
    assert db.stats.checkpoints == 1 and sorted(rows_of(db)) == [1, 2, 3, 4]
    _fill(db, 1, start=5)
    db.close(checkpoint=False)
    db = Store(tmp_path / "db")
    assert sorted(rows_of(db)) == [1, 2, 3, 4, 5]
    db.close()


def test_checkpoints_racing_concurrent_writers_lose_nothing(tmp_path):
    db = _new(tmp_path / "db", fsync=lambda fd: None)    # the race, not the disk, is under test
    errors_seen = []
    stop = threading.Event()

    def writer(n):
        try:
            for i in range(150):
                with db.write() as tx:
                    tx.insert("users", (n * 1000 + i, "w", f"{n}-{i}"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors_seen.append(exc)

    def checkpointer():
        while not stop.is_set():
            db.checkpoint()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    ck = threading.Thread(target=checkpointer)
    ck.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    ck.join()
    assert errors_seen == [] and len(rows_of(db)) == 8 * 150
    db.close(checkpoint=False)
    db = Store(tmp_path / "db")
    assert len(rows_of(db)) == 8 * 150
    db.close()


def test_memory_database_touches_no_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = Store(":memory:")
    with db.write() as tx:
        tx.create_table(users_schema())
    db.checkpoint()
    db.close()
    assert list(tmp_path.iterdir()) == []


def test_recovery_reports_progress(tmp_path):
    db = _new(tmp_path / "db", fsync=lambda fd: None)      # durability is not what this test is about
    with db.write() as tx:
        tx.bulk_insert("users", [(i, f"u{i}", f"{i}@x") for i in range(60_000)])
    db.checkpoint()
    for i in range(25_000):
        with db.write() as tx:
            tx.update("users", i, (i, "v", f"{i}@x"))
    db.close(checkpoint=False)
    lines: list[str] = []
    db = Store(tmp_path / "db", progress=lines.append)
    assert any("loaded" in l and "checkpoint records" in l and "MB" in l for l in lines), lines
    replay = [l for l in lines if l.startswith("recovery: replayed")]
    assert len(replay) >= 3 and "of 25,000 records" in replay[0] and "MB)" in replay[0]
    assert rows_of(db)[5][1] == "v"
    db.close()
