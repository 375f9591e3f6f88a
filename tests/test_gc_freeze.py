"""The daemon's garbage-collector policy: freeze what is alive every few seconds, sweep
the frozen set in full now and then, leave the collector as it was on stop."""
from __future__ import annotations

import gc

from twisted.internet.task import Clock

from helios.service import HistoryFreezeService
from helios.storage.store import Store


class FakeGc:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")

    def collect(self) -> int:
        self.calls.append("collect")
        return 0


def test_freezes_on_its_interval_and_sweeps_on_its_own() -> None:
    clock, fake = Clock(), FakeGc()
    svc = HistoryFreezeService(5, 12, clock=clock, gc_module=fake)
    svc.startService()
    clock.advance(4.9)
    assert fake.calls == []
    clock.advance(0.1)
    assert fake.calls == ["freeze"]
    clock.advance(5)
    assert fake.calls == ["freeze", "freeze"]
    clock.advance(5)                                     # 15 s >= 12 s since the start: sweep first
    assert fake.calls == ["freeze", "freeze", "unfreeze", "collect", "freeze"]
    clock.advance(5)
    assert fake.calls[-1] == "freeze" and fake.calls.count("collect") == 1
    svc.stopService()
    assert fake.calls[-1] == "unfreeze" and not clock.getDelayedCalls()


def test_no_sweep_when_disabled() -> None:
    clock, fake = Clock(), FakeGc()
    svc = HistoryFreezeService(1, 0, clock=clock, gc_module=fake)
    svc.startService()
    clock.pump([1] * 50)
    assert set(fake.calls) == {"freeze"} and len(fake.calls) == 50
    svc.stopService()


def test_history_leaves_the_collectors_sight_and_comes_back_on_stop(tmp_path) -> None:
    """With the real collector: after a freeze, a store's history is no longer among the
    objects a full collection walks; a sweep or stop gives them back."""
    store = Store(":memory:")
    from helios.storage.schema import Column, TableSchema
    with store.write() as tx:
        tx.create_table(TableSchema("t", (Column("id", "INTEGER"), Column("v", "TEXT")), (0,)))
    for i in range(2000):
        with store.write() as tx:
            tx.insert("t", (i, f"v{i}"))
    clock = Clock()
    svc = HistoryFreezeService(1, 0, clock=clock)
    gc.collect()
    walked_before = sum(len(gc.get_objects(g)) for g in range(3))
    svc.startService()
    try:
        clock.advance(1)
        assert gc.get_freeze_count() >= walked_before * 0.9
        assert sum(len(gc.get_objects(g)) for g in range(3)) < walked_before * 0.1
        svc.sweep()                                      # everything back, collected, then (next tick) frozen
        assert gc.get_freeze_count() == 0
    finally:
        svc.stopService()
    assert gc.get_freeze_count() == 0
    assert store.snapshot().row_count("t") == 2000
