"""Recovery against the live store: every way of reopening a database gives back the same
branches and the same states, at the head and at every past moment.

A reopened database is compared with the live store it was copied from, state for state
and ``as_of`` for ``as_of``: after a replay of the log alone, after a checkpoint alone,
after a checkpoint plus more log, after a crash at each step of a checkpoint (a copy of
the directory taken at that moment), and after damage that must be an error, not a
database quietly missing commits.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pytest

from helios import errors
from helios.storage import fileio, store as store_mod, wal
from helios.storage.checkpoint import NodeWriter
from helios.storage.schema import Column, IndexDef, TableSchema
from helios.storage.store import Store
from storage_helpers import FakeClock, rows_of, users_schema

ITEMS = TableSchema("items", (Column("name", "text"), Column("qty", "int4")))       # rowid-keyed


# ----------------------------------------------------------------------------- comparing stores
def _view(snap) -> dict:
    out: dict[str, Any] = {"objects": {n: snap.get_object(n) for n in snap.object_names()}}
    for name in snap.table_names():
        t = snap.table(name)
        indexes = {ix.name: [list(zip(keys, rows)) for keys, rows in snap.index_scan(name, ix.name)]
                   for ix in t.schema.indexes}
        out[name] = (t.schema.to_plain(), rows_of(snap, name), indexes, t.next_rowid)
    return out


def fingerprint(db: Store, moments: list[float]) -> dict:
    """Every branch's description, and its state at the head and at each moment."""
    out = {}
    for info in db.list_branches():
        views: dict[Any, Any] = {"head": _view(db.snapshot(info.name))}
        for t in moments:
            try:
                views[t] = _view(db.snapshot(info.name, as_of=t))
            except errors.HistoryExpired:
                views[t] = "expired"
        out[info.name] = (info.to_dict(), views)
    return out


def copy_of(src: Path, dst: Path) -> Path:
    """The directory as a crash at this moment would leave it (everything written so far)."""
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------- the workload
class Workload:
    """One run of every kind of logged change, on a fake clock; ``moments`` to time-travel to."""

    def __init__(self, db: Store, clock: FakeClock) -> None:
        self.db, self.clock, self.moments = db, clock, [clock.t - 5]     # before the first commit

    def _tick(self) -> None:
        self.clock.advance(1)
        self.moments.append(self.clock.t)
        self.clock.advance(1)

    def steps(self) -> list[Callable[[], None]]:
        db = self.db

        def schema_and_rows():
            with db.write() as tx:
                tx.create_table(users_schema(unique_email=True))
                tx.create_table(ITEMS)
                for i in range(1, 40):
                    tx.insert("users", (i, f"u{i}", f"{i}@x"))
                tx.insert("items", ("bolt", 3))
                tx.insert("items", ("nut", 5))
                tx.set_object("view:v", {"sql": "select 1"})

        def bulk_and_updates():
            with db.write() as tx:
                tx.bulk_insert("users", [(i, f"u{i}", f"{i}@x") for i in range(100, 400)])
            for i in range(1, 6):
                with db.write() as tx:
                    tx.update("users", i, (i, f"v{i}", f"{i}@x"))

        def branches_from_the_past():
            db.create_branch("dev", snapshot_id=self.moments[1])          # before bulk_and_updates
            db.create_branch("ro", read_only=True)
            db.create_branch("tmp", isolated=True)
            with db.write("tmp") as tx:
                tx.delete("users", 7)

        def diverge():
            with db.write("dev") as tx:
                tx.update("users", 1, (1, "dev1", "1@x"))               # conflicts with main's v1
                tx.update("users", 20, (20, "dev20", "20@x"))
                tx.delete("users", 21)
                tx.insert("items", ("washer", 9))
            with db.write() as tx:
                tx.update("users", 22, (22, "main22", "22@x"))
                tx.create_index("users", IndexDef("users_name", (1,)))

        def merges():
            db.create_branch("a")
            db.create_branch("b")
            for br, name in (("a", "from-a"), ("b", "from-b")):
                with db.write(br) as tx:
                    tx.update("users", 30, (30, name, "30@x"))
                    tx.insert("users", (500 if br == "a" else 501, br, f"{br}@x"))
            db.merge("a", "main", "Manual")              # no conflict yet
            db.merge("b", "main", "Ours")                # users:30 conflicts, main keeps from-a
            db.merge("dev", "main", "Theirs")
            db.merge("main", "b", "Auto")
            db.merge("b", "main", "Auto")               # a second merge starts from the first

        def schema_changes():
            with db.write() as tx:
                old = tx.schema("users")
                tx.alter_table("users", replace(old, columns=old.columns + (Column("age", "int4", True, 7),)))
            with db.write() as tx:
                tx.rename_table("items", "parts")
                tx.insert("parts", ("gear", 1))
            with db.write("dev") as tx:
                tx.drop_table("items")
                tx.drop_index("users", "users_email")
            with db.write() as tx:
                tx.drop_index("users", "users_name")
                tx.set_object("view:v", None)
                tx.set_object("view:w", ("select 2", ("x",)))   # sequences are tuples (codec)

        def delete_and_recreate():
            db.delete_branch("tmp")
            db.create_branch("tmp", parent="dev", snapshot_id=self.moments[3])
            with db.write("tmp") as tx:
                tx.insert("users", (900, "again", "900@x"))
            db.delete_branch("a")

        def optimistic():
            tx = db.begin("b")
            tx.update("users", 2, (2, "opt", "2@x"))
            with db.write("b") as other:                 # disjoint row: the transaction rebases
                other.update("users", 3, (3, "other", "3@x"))
            tx.commit()

        return [schema_and_rows, bulk_and_updates, branches_from_the_past, diverge, merges,
                schema_changes, delete_and_recreate, optimistic]

    def run(self, steps: list[Callable[[], None]]) -> None:
        for step in steps:
            step()
            self._tick()


def _reopen_and_compare(path: Path, live: Store, clock: FakeClock, moments: list[float]) -> None:
    expected = fingerprint(live, moments)
    db = Store(path, clock=clock)
    try:
        assert fingerprint(db, moments) == expected
        for store in (live, db):                 # both go on from the same point: seq and time
            with store.write("dev") as tx:
                tx.insert("users", (1000, "next", "next@x"))
        assert db.snapshot("dev").commit.seq == live.snapshot("dev").commit.seq
        assert db.snapshot("dev").timestamp == live.snapshot("dev").timestamp
    finally:
        db.close()                               # checkpoint on close; then once more from it
    db = Store(path, clock=clock)
    try:
        assert fingerprint(db, moments) == fingerprint(live, moments)
    finally:
        db.close(checkpoint=False)


# checkpoints after these steps (indexes into Workload.steps()); -1: after the last one
@pytest.mark.parametrize("checkpoints", [(), (-1,), (3,), (1, 4), (0, 2, 5, -1)],
                         ids=["log-only", "checkpoint-only", "checkpoint-then-log", "two-checkpoints-then-log",
                              "many-checkpoints"])
def test_every_reopen_matches_the_live_store(tmp_path, checkpoints):
    clock = FakeClock()
    live = Store(tmp_path / "db", clock=clock)
    work = Workload(live, clock)
    steps = work.steps()
    for i, step in enumerate(steps):
        work.run([step])
        if i in checkpoints or (i == len(steps) - 1 and -1 in checkpoints):
            live.checkpoint()
    assert {b.name for b in live.list_branches()} == {"main", "dev", "ro", "tmp", "b"}
    if checkpoints:
        assert live.stats.checkpoints == len(checkpoints)
    _reopen_and_compare(copy_of(tmp_path / "db", tmp_path / "copy"), live, clock, work.moments)
    live.close()


def test_a_deleted_branch_never_comes_back_and_its_namesake_is_the_new_one(tmp_path):
    clock = FakeClock()
    db = Store(tmp_path / "db", clock=clock)
    with db.write() as tx:
        tx.create_table(users_schema())
        tx.insert("users", (1, "a", "a"))
    db.create_branch("x")
    with db.write("x") as tx:
        tx.insert("users", (2, "old-x", "b"))
    old_id = db.get_branch("x").id
    db.checkpoint()                              # the old x is in the checkpoint...
    clock.advance(1)
    db.delete_branch("x")                        # ...its deletion only in the log
    clock.advance(1)
    with db.write() as tx:
        tx.insert("users", (3, "main", "c"))
    db.create_branch("x")
    new = db.get_branch("x")
    db.close(checkpoint=False)
    for checkpoint in (False, True):
        db = Store(tmp_path / "db", clock=clock)
        x = db.get_branch("x")
        assert (x.id, x.created_at, x.snapshot_id) == (new.id, new.created_at, new.snapshot_id) != (old_id,)
        assert sorted(rows_of(db, branch="x")) == [1, 3]
        db.delete_branch("x")
        db.close(checkpoint=checkpoint)
        db = Store(tmp_path / "db", clock=clock)
        assert [b.name for b in db.list_branches()] == ["main"]
        db.create_branch("x")
        new = db.get_branch("x")
        db.close(checkpoint=False)


# ----------------------------------------------------------------------------- crashes in a checkpoint
def _prepared(tmp_path: Path) -> tuple[Store, FakeClock, list[float]]:
    clock = FakeClock()
    live = Store(tmp_path / "db", clock=clock)
    work = Workload(live, clock)
    steps = work.steps()
    work.run(steps[:3])
    live.checkpoint()                    # so the crash images hold an older checkpoint too
    work.run(steps[3:])
    return live, clock, work.moments


def test_a_crash_at_every_step_of_a_checkpoint_recovers_every_acknowledged_commit(tmp_path, monkeypatch):
    live, clock, moments = _prepared(tmp_path)
    images: list[tuple[str, Path]] = []

    def crash_here(label: str) -> None:
        images.append((label, copy_of(tmp_path / "db", tmp_path / f"crash-{len(images)}-{label}")))

    real_log, real_flush, real_replace = store_mod.LogWriter, NodeWriter.flush, os.replace
    real_dir_fsync, real_cleanup = fileio.fsync_directory, Store._cleanup

    def log_writer(*args, **kw):
        out = real_log(*args, **kw)
        crash_here("log-rotated")
        return out

    def flush(self):
        real_flush(self)
        crash_here("nodes-written")

    def replace_(src, dst):
        crash_here("manifest-temp-written")
        real_replace(src, dst)
        crash_here("manifest-renamed")

    def dir_fsync(path, **kw):
        real_dir_fsync(path, **kw)
        crash_here("directory-synced")

    def cleanup(self, wal_start):
        real_cleanup(self, wal_start)
        crash_here("old-files-removed")

    monkeypatch.setattr(store_mod, "LogWriter", log_writer)
    monkeypatch.setattr(NodeWriter, "flush", flush)
    monkeypatch.setattr(os, "replace", replace_)
    monkeypatch.setattr(fileio, "fsync_directory", dir_fsync)
    monkeypatch.setattr(Store, "_cleanup", cleanup)
    live.checkpoint()
    monkeypatch.undo()
    labels = [label for label, _ in images]
    for step in ("log-rotated", "nodes-written", "manifest-temp-written", "manifest-renamed",
                 "directory-synced", "old-files-removed"):
        assert step in labels
    expected = fingerprint(live, moments)
    for label, path in images:
        db = Store(path, clock=clock)
        assert fingerprint(db, moments) == expected, label
        with db.write() as tx:                   # and it goes on: a new write survives the next reopen
            tx.insert("users", (2000, "after", "after@x"))
        db.close()
        db = Store(path, clock=clock)
        assert rows_of(db)[2000][1] == "after", label
        db.close(checkpoint=False)
    live.close()


def _fd_is(fd: int, name: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").endswith(name)
    except OSError:
        return False


@pytest.mark.parametrize("failure", ["nodes-fsync", "nodes-write", "manifest-rename", "new-segment"])
def test_a_failed_checkpoint_refuses_writes_keeps_reads_and_loses_nothing(tmp_path, monkeypatch, failure):
    live, clock, moments = _prepared(tmp_path)
    expected = fingerprint(live, moments)
    eio = OSError(5, "Input/output error")
    real_fsync, real_write, real_open = os.fsync, os.write, os.open

    def fsync(fd):
        if _fd_is(fd, "nodes.dat"):
            raise eio
        real_fsync(fd)

    def fail_replace(src, dst):
        raise eio

    def open_(path, flags, *args, **kw):
        if str(path).endswith(".log") and flags & os.O_CREAT:
            raise eio
        return real_open(path, flags, *args, **kw)

    calls = {"n": 0}

    def write(fd, data):                  # half of the node file written, then the disk is full
        if _fd_is(fd, "nodes.dat"):
            calls["n"] += 1
            if calls["n"] > 1:
                raise OSError(28, "No space left on device")
            return real_write(fd, bytes(data)[:len(data) // 2])
        return real_write(fd, data)

    patch = {"nodes-fsync": ("fsync", fsync), "nodes-write": ("write", write),
             "manifest-rename": ("replace", fail_replace), "new-segment": ("open", open_)}[failure]
    monkeypatch.setattr(os, *patch)
    with pytest.raises(errors.StorageFailed):
        live.checkpoint()
    monkeypatch.undo()
    assert live.failed is not None
    assert fingerprint(live, moments) == expected                    # reads go on, unchanged
    with pytest.raises(errors.StorageFailed):
        with live.write() as tx:
            tx.insert("users", (3000, "refused", "r@x"))
    for refused in (lambda: live.create_branch("late"), lambda: live.delete_branch("b"),
                    lambda: live.merge("b", "main"), live.checkpoint):
        with pytest.raises(errors.StorageFailed):
            refused()
    live.close()
    assert not list((tmp_path / "db").glob(".*.tmp")), "no temporary manifest left behind"
    db = Store(tmp_path / "db", clock=clock)
    assert fingerprint(db, moments) == expected
    with db.write() as tx:
        tx.insert("users", (3000, "now", "n@x"))
    db.close()
    db = Store(tmp_path / "db", clock=clock)
    assert rows_of(db)[3000][1] == "now" and fingerprint(db, moments)["dev"] == expected["dev"]
    db.close()


def test_checkpoints_while_other_threads_commit_create_delete_and_merge(tmp_path):
    clock = FakeClock()
    db = Store(tmp_path / "db", clock=clock, fsync=lambda fd: None)      # the race, not the disk
    with db.write() as tx:
        tx.create_table(users_schema())
    failures: list[BaseException] = []
    stop = threading.Event()

    def guarded(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)
        return threading.Thread(target=run)

    def writer():
        for i in range(300):
            with db.write() as tx:
                tx.insert("users", (i, "w", f"{i}@x"))

    def brancher():
        for i in range(40):
            db.create_branch(f"f{i}")
            with db.write(f"f{i}") as tx:
                tx.insert("users", (10_000 + i, "f", f"f{i}@x"))
            db.merge(f"f{i}", "main", "Theirs")
            if i % 2:
                db.delete_branch(f"f{i}")

    def checkpointer():
        while not stop.is_set():
            db.checkpoint()

    work = [guarded(writer), guarded(brancher)]
    ck = guarded(checkpointer)
    ck.start()
    for t in work:
        t.start()
    for t in work:
        t.join()
    stop.set()
    ck.join()
    assert failures == [] and db.stats.checkpoints > 0
    expected = fingerprint(db, [])
    assert len(expected) == 21 and len(rows_of(db)) == 340
    db.close(checkpoint=False)
    db = Store(tmp_path / "db", clock=clock)
    assert fingerprint(db, []) == expected
    db.close()


# ----------------------------------------------------------------------------- retention
def test_retention_is_the_same_after_a_replay_a_checkpoint_and_a_reopen(tmp_path):
    """A reopen prunes at its clock like a checkpoint does: the same history expires either way."""
    clock = FakeClock()
    live = Store(tmp_path / "db", clock=clock, retention=30)
    work = Workload(live, clock)
    steps = work.steps()
    work.run(steps[:4])
    live.checkpoint()
    clock.advance(20)
    work.run(steps[4:])
    clock.advance(10)
    log_only = copy_of(tmp_path / "db", tmp_path / "log-only")       # pruned only when reopened
    live.checkpoint()                                                # prunes now
    expected = fingerprint(live, work.moments)
    expired = [t for t, v in expected["main"][1].items() if v == "expired"]
    assert expired and len(expired) < len(work.moments), "some history expired, some did not"
    for path in (log_only, copy_of(tmp_path / "db", tmp_path / "checkpointed")):
        db = Store(path, clock=clock, retention=30)
        assert fingerprint(db, work.moments) == expected
        db.close()
        db = Store(path, clock=clock, retention=30)
        assert fingerprint(db, work.moments) == expected
        db.close(checkpoint=False)
    live.close()


# ----------------------------------------------------------------------------- damage and locks
def _three_sessions(path: Path) -> None:
    """Three sessions closed without a checkpoint: three log segments, all replayed."""
    db = Store(path)
    with db.write() as tx:
        tx.create_table(users_schema())
    for session in range(3):
        for i in range(3):
            with db.write() as tx:
                tx.insert("users", (session * 10 + i, "x", f"{session}-{i}"))
        db.close(checkpoint=False)
        db = Store(path)
    db.close(checkpoint=False)
    assert wal.list_segments(path) == [1, 2, 3, 4]


def test_a_missing_log_segment_in_the_middle_is_corruption(tmp_path):
    _three_sessions(tmp_path / "db")
    wal.segment_path(tmp_path / "db", 2).unlink()
    with pytest.raises(errors.CorruptDatabase, match="missing"):
        Store(tmp_path / "db")


def test_the_segment_a_checkpoint_starts_from_is_required(tmp_path):
    db = Store(tmp_path / "db")
    with db.write() as tx:
        tx.create_table(users_schema())
    db.checkpoint()
    with db.write() as tx:
        tx.insert("users", (1, "after the checkpoint", "x"))
    db.close(checkpoint=False)
    first = wal.list_segments(tmp_path / "db")[0]
    wal.segment_path(tmp_path / "db", first).unlink()
    with pytest.raises(errors.CorruptDatabase, match="missing"):
        Store(tmp_path / "db")


@pytest.mark.parametrize("cut", [1, 5, 12])
def test_a_log_segment_cut_short_before_the_last_one_is_corruption(tmp_path, cut):
    _three_sessions(tmp_path / "db")
    seg = wal.segment_path(tmp_path / "db", 2)
    size = seg.stat().st_size
    with open(seg, "r+b") as f:
        f.truncate(size - cut)
    with pytest.raises(errors.CorruptDatabase, match="before the log's end"):
        Store(tmp_path / "db")
    assert seg.stat().st_size == size - cut, "the damaged segment is left as it was found"


def test_zeros_after_the_last_record_of_an_older_segment_are_harmless(tmp_path):
    """A failed trim at close leaves the preallocated zeros: nothing was lost."""
    _three_sessions(tmp_path / "db")
    with open(wal.segment_path(tmp_path / "db", 2), "ab") as f:
        f.write(bytes(4096))
    db = Store(tmp_path / "db")
    assert sorted(rows_of(db)) == [0, 1, 2, 10, 11, 12, 20, 21, 22]
    db.close()


def _damage(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("which", ["only", "both"])
def test_unreadable_manifests_are_an_error_never_an_empty_database(tmp_path, which):
    db = Store(tmp_path / "db")
    with db.write() as tx:
        tx.create_table(users_schema())
        tx.insert("users", (1, "a", "a"))
    db.checkpoint()
    if which == "both":
        with db.write() as tx:
            tx.insert("users", (2, "b", "b"))
        db.checkpoint()
    db.close(checkpoint=False)
    manifests = sorted((tmp_path / "db").glob("checkpoint-*.manifest"))
    assert len(manifests) == (1 if which == "only" else 2)
    for m in manifests:
        _damage(m, len(m.read_bytes()) - 2)
    with pytest.raises(errors.CorruptDatabase, match="no readable checkpoint"):
        Store(tmp_path / "db")


def test_damage_to_an_older_checkpoints_nodes_is_an_error(tmp_path):
    """The newest manifest is fine, but the node file's first part (an older checkpoint's,
    which the newest one builds on) is damaged: an error, not a database with a hole."""
    db = Store(tmp_path / "db")
    with db.write() as tx:
        tx.create_table(users_schema())
        tx.bulk_insert("users", [(i, "x" * 20, f"{i}@x") for i in range(2000)])
    db.checkpoint()
    first_len = (tmp_path / "db" / "nodes.dat").stat().st_size
    with db.write() as tx:
        tx.update("users", 5, (5, "y", "5@x"))
    db.close()
    assert (tmp_path / "db" / "nodes.dat").stat().st_size > first_len
    _damage(tmp_path / "db" / "nodes.dat", first_len // 3)
    with pytest.raises(errors.CorruptDatabase):
        Store(tmp_path / "db")


def _lock_is_free(path: Path) -> bool:
    fd = os.open(path / "LOCK", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_the_lock_is_released_by_close_and_by_a_failed_open(tmp_path):
    db = Store(tmp_path / "db")
    with db.write() as tx:
        tx.create_table(users_schema())
    assert not _lock_is_free(tmp_path / "db")
    db.close()
    assert _lock_is_free(tmp_path / "db")
    manifest = sorted((tmp_path / "db").glob("checkpoint-*.manifest"))[-1]
    good = manifest.read_bytes()
    _damage(manifest, len(good) - 2)
    for _ in range(2):                          # the same error twice: not DatabaseLocked the second time
        with pytest.raises(errors.CorruptDatabase, match="no readable checkpoint"):
            Store(tmp_path / "db")
        assert _lock_is_free(tmp_path / "db")
    manifest.write_bytes(good)
    db = Store(tmp_path / "db")
    assert db.snapshot().has_table("users")
    db.close(checkpoint=False)
    assert _lock_is_free(tmp_path / "db")


# ----------------------------------------------------------------------------- birth and failed branch changes
def test_a_crash_before_the_first_record_leaves_main_a_stable_identity(tmp_path):
    """The first session died after making its log segment, before main's birth record was
    durable: the next open is the birth, once; main keeps that id and time from then on."""
    clock = FakeClock()
    (tmp_path / "db").mkdir()
    wal.LogWriter(tmp_path / "db", 1).close()          # the crash image: an empty first segment
    seen = set()
    for session in range(3):
        db = Store(tmp_path / "db", clock=clock)
        main = db.get_branch("main")
        seen.add((main.id, main.created_at))
        if session == 0:
            with db.write() as tx:
                tx.create_table(users_schema())
        clock.advance(10)
        db.close(checkpoint=session == 2)
    assert len(seen) == 1 and next(iter(seen))[1] == FakeClock().t
    db = Store(tmp_path / "db", clock=clock)
    assert (db.get_branch("main").id, db.get_branch("main").created_at) in seen
    assert db.snapshot().has_table("users")
    db.close()


def _failing_fsync(monkeypatch) -> None:
    def broken(fd):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(os, "fsync", broken)


def test_a_branch_whose_creation_failed_is_not_shown_to_readers(tmp_path, monkeypatch):
    db = Store(tmp_path / "db")
    with db.write() as tx:
        tx.create_table(users_schema())
    _failing_fsync(monkeypatch)
    with pytest.raises(errors.StorageFailed):
        db.create_branch("x")
    monkeypatch.undo()
    assert [b.name for b in db.list_branches()] == ["main"]     # reads show what a reopen shows
    with pytest.raises(errors.BranchNotFound):
        db.snapshot("x")
    db.close()
    db = Store(tmp_path / "db")
    assert [b.name for b in db.list_branches()] == ["main"]
    db.close()


def test_a_branch_whose_deletion_failed_is_still_shown_to_readers(tmp_path, monkeypatch):
    db = Store(tmp_path / "db")
    with db.write() as tx:
        tx.create_table(users_schema())
    db.create_branch("x")
    with db.write("x") as tx:
        tx.insert("users", (1, "on x", "x"))
    _failing_fsync(monkeypatch)
    with pytest.raises(errors.StorageFailed):
        db.delete_branch("x")
    monkeypatch.undo()
    assert [b.name for b in db.list_branches()] == ["main", "x"]
    assert rows_of(db, branch="x") == {1: (1, "on x", "x")}
    with pytest.raises(errors.StorageFailed):
        db.delete_branch("x")                                    # and writes stay refused
    db.close()
    db = Store(tmp_path / "db")
    assert rows_of(db, branch="x") == {1: (1, "on x", "x")}
    db.close()


class _HeldFsync:
    """An fsync that, once ``hold()`` is called, stops the next caller until ``release()``."""

    def __init__(self) -> None:
        self.holding = False
        self.entered, self.gate = threading.Event(), threading.Event()

    def __call__(self, fd: int) -> None:
        if self.holding:
            self.holding = False
            self.entered.set()
            assert self.gate.wait(10)
        os.fsync(fd)

    def hold(self) -> None:
        self.entered.clear()
        self.gate.clear()
        self.holding = True

    def release(self) -> None:
        self.gate.set()


def test_readers_see_a_branch_created_or_deleted_only_once_that_is_durable(tmp_path):
    """Between a branch record's append and its fsync, readers see what a crash would leave:
    not the new branch yet (its name is taken all the same), still the deleted one (which
    writers can no longer use)."""
    fsync = _HeldFsync()
    db = Store(tmp_path / "db", fsync=fsync)
    with db.write() as tx:
        tx.create_table(users_schema())

    def in_window(action: Callable[[], Any], check: Callable[[], None]) -> None:
        fsync.hold()
        worker = threading.Thread(target=action)
        worker.start()
        assert fsync.entered.wait(10)
        try:
            check()
        finally:
            fsync.release()
            worker.join(10)

    def creating() -> None:
        assert [b.name for b in db.list_branches()] == ["main"] and db.branch_names() == ["main"]
        with pytest.raises(errors.BranchNotFound):
            db.snapshot("x")
        with pytest.raises(errors.BranchNotFound):
            db.get_branch("x")
        with pytest.raises(errors.BranchExists):
            db.create_branch("x")
    in_window(lambda: db.create_branch("x"), creating)
    assert [b.name for b in db.list_branches()] == ["main", "x"]
    with db.write("x") as tx:
        tx.insert("users", (1, "on x", "x"))

    def deleting() -> None:
        assert [b.name for b in db.list_branches()] == ["main", "x"]
        assert rows_of(db, branch="x") == {1: (1, "on x", "x")}
        with pytest.raises(errors.BranchNotFound):
            with db.write("x") as tx:
                tx.insert("users", (2, "too late", "x"))
        with pytest.raises(errors.BranchNotFound):
            db.create_branch("y", parent="x")
    in_window(lambda: db.delete_branch("x"), deleting)
    assert [b.name for b in db.list_branches()] == ["main"]
    with pytest.raises(errors.BranchNotFound):
        db.snapshot("x")
    db.close()
    db = Store(tmp_path / "db")
    assert [b.name for b in db.list_branches()] == ["main"]
    db.close()


def _set_version(path: Path, version: int) -> None:
    data = bytearray(path.read_bytes())
    data[8:10] = version.to_bytes(2, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("which", ["nodes", "newest-log-segment"])
def test_an_unknown_format_version_is_refused_not_skipped(tmp_path, which):
    """A file from a newer release is an error even when an older checkpoint could be read:
    falling back would lose (or later overwrite) what the newer release wrote."""
    db = Store(tmp_path / "db")
    with db.write() as tx:
        tx.create_table(users_schema())
    db.checkpoint()
    with db.write() as tx:
        tx.insert("users", (1, "a", "a"))
    db.checkpoint()
    with db.write() as tx:
        tx.insert("users", (2, "b", "b"))
    db.close(checkpoint=False)
    assert len(list((tmp_path / "db").glob("checkpoint-*.manifest"))) == 2
    if which == "nodes":
        target = tmp_path / "db" / "nodes.dat"
    else:
        target = wal.segment_path(tmp_path / "db", wal.list_segments(tmp_path / "db")[-1])
    before = target.read_bytes()
    _set_version(target, 99)
    with pytest.raises(errors.UnsupportedFormat, match="version 99"):
        Store(tmp_path / "db")
    assert target.read_bytes()[12:] == before[12:], "the file is left as it was found"
    assert _lock_is_free(tmp_path / "db")


def test_a_failed_periodic_checkpoint_does_not_fail_the_durable_commit_that_started_it(tmp_path, monkeypatch):
    db = Store(tmp_path / "db", checkpoint_bytes=2000)
    with db.write() as tx:
        tx.create_table(users_schema())

    def broken(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", broken)
    done = 0
    while db.failed is None and done < 1000:
        with db.write() as tx:                   # every write that returns is acknowledged...
            tx.insert("users", (done, "x" * 50, str(done)))
        done += 1
    monkeypatch.undo()
    assert db.failed is not None and db.stats.checkpoints == 0, "a checkpoint was attempted and failed"
    assert sorted(rows_of(db)) == list(range(done))
    with pytest.raises(errors.StorageFailed):    # ...and the next one is refused
        with db.write() as tx:
            tx.insert("users", (done, "refused", "r"))
    db.close()
    db = Store(tmp_path / "db")
    assert sorted(rows_of(db)) == list(range(done))
    db.close()
