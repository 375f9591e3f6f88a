"""Retention prunes old history; it must never change what a merge does.

Two stores run the same random operations on the same clock: one keeps every commit,
the other prunes at every checkpoint (and reopen). Reads inside the retention window
and every merge's result must be the same in both.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from helios import errors
from helios.storage.schema import Column, TableSchema
from helios.storage.store import Store
from storage_helpers import FakeClock, rows_of

SCHEMA = TableSchema("t", (Column("k", "int8", False), Column("v", "text")), primary_key=(0,))
RETENTION = 10.0

ops = st.lists(st.one_of(
    st.tuples(st.just("put"), st.integers(0, 5), st.integers(0, 5), st.text("ab", min_size=1, max_size=2)),
    st.tuples(st.just("del"), st.integers(0, 5), st.integers(0, 5)),
    st.tuples(st.just("branch"), st.integers(0, 5), st.floats(0, 1)),
    st.tuples(st.just("merge"), st.integers(0, 5), st.integers(0, 5), st.sampled_from(["Ours", "Theirs", "Auto"])),
    st.tuples(st.just("drop"), st.integers(0, 5)),
    st.tuples(st.just("wait"), st.floats(0.5, 8)),
    st.tuples(st.just("checkpoint"), st.booleans()),
), min_size=5, max_size=45)


class Twin:
    def __init__(self, path: Path, clock: FakeClock, retention: float | None) -> None:
        self.path, self.clock, self.retention = path, clock, retention
        self.db = Store(path, clock=clock, retention=retention)

    def reopen(self) -> None:
        self.db.close(checkpoint=False)
        self.db = Store(self.path, clock=self.clock, retention=self.retention)


def _names(db: Store) -> list[str]:
    return sorted(b.name for b in db.list_branches())


def _apply(db: Store, op: tuple, names: list[str], clock: FakeClock, born: dict, serial: int) -> object:
    kind = op[0]
    if kind == "put":
        with db.write(names[op[1] % len(names)]) as tx:
            if tx.get("t", op[2]) is None:
                tx.insert("t", (op[2], op[3]))
            else:
                tx.update("t", op[2], (op[2], op[3]))
    elif kind == "del":
        with db.write(names[op[1] % len(names)]) as tx:
            tx.delete("t", op[2])
    elif kind == "branch":
        parent = names[op[1] % len(names)]
        name = f"b{serial}"
        lo = max(born[parent], clock.t - RETENTION / 2)           # a past moment still retained
        born[name] = clock.t
        db.create_branch(name, parent, snapshot_id=lo + op[2] * (clock.t - lo))
    elif kind == "merge":
        s, t = names[op[1] % len(names)], names[op[2] % len(names)]
        if s != t:
            r = db.merge(s, t, op[3])
            return r.merged_keys, sorted(c.key for c in r.conflicts)
    elif kind == "drop":
        name = names[op[1] % len(names)]
        if name != "main" and not any(b.parent == name for b in db.list_branches()):
            db.delete_branch(name)
            born.pop(name)
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_pruned_history_merges_like_kept_history(script):
    base = Path(tempfile.mkdtemp(prefix="helios-retention-"))
    clock = FakeClock()
    kept, pruned = Twin(base / "kept", clock, None), Twin(base / "pruned", clock, RETENTION)
    twins = (kept, pruned)
    try:
        for tw in twins:
            with tw.db.write() as tx:
                tx.create_table(SCHEMA)
        clock.advance(0.01)                      # so every moment drawn below has the table
        borns = [{"main": clock.t}, {"main": clock.t}]
        moments = [clock.t]
        for serial, op in enumerate(script):
            clock.advance(0.25)
            if op[0] == "wait":
                clock.advance(op[1])
                continue
            if op[0] == "checkpoint":
                for tw in twins:
                    tw.db.checkpoint()
                    if op[1]:
                        tw.reopen()
                continue
            names = _names(kept.db)
            results = [_apply(tw.db, op, names, clock, born, serial) for tw, born in zip(twins, borns)]
            assert results[0] == results[1], op
            moments.append(clock.t)
            assert _names(pruned.db) == names or op[0] in ("branch", "drop")
            for name in _names(kept.db):
                assert rows_of(pruned.db, "t", name) == rows_of(kept.db, "t", name), (op, name)
                for t in moments[-6:]:
                    try:
                        want = rows_of(pruned.db, "t", name, as_of=t)
                    except errors.HistoryExpired:
                        continue
                    assert want == rows_of(kept.db, "t", name, as_of=t), (op, name, t)
    finally:
        for tw in twins:
            tw.db.close(checkpoint=False)
        shutil.rmtree(base, ignore_errors=True)


def test_an_old_branch_merges_into_a_pruned_main_by_its_fork_point(tmp_path):
    """The simplest case the random test found: main's history before the branch's fork
    was pruned; the merge base is still the fork point, so main's later change survives."""
    results = {}
    for retention in (None, 60):
        clock = FakeClock()
        db = Store(tmp_path / f"db-{retention}", clock=clock, retention=retention)
        with db.write() as tx:
            tx.create_table(SCHEMA)
            tx.insert("t", (1, "a"))
            tx.insert("t", (2, "b"))
        clock.advance(1)
        db.create_branch("dev")
        clock.advance(1)
        with db.write("dev") as tx:
            tx.update("t", 1, (1, "dev"))
        clock.advance(100)
        with db.write() as tx:
            tx.update("t", 2, (2, "main"))               # dev never touched row 2
        clock.advance(100)
        db.checkpoint()                                  # prunes main's commits before now-60s
        r = db.merge("dev", "main", "Theirs")
        results[retention] = (rows_of(db, "t"), [c.key for c in r.conflicts])
        db.close()
    assert results[60] == results[None] == ({1: (1, "dev"), 2: (2, "main")}, [])
