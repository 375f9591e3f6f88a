"""Hypothesis state machine: the store against a plain-dict model.

The model keeps every commit as a dict with its parents, finds the best merge bases
naively (intersection of ancestor sets; several in a criss-cross, whose disagreements
count as changes on both sides), and merges with Ours/Theirs. After
every step the store must match the model on every branch, at the head and at
random past moments, and snapshots taken earlier must still read as they did.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from helios.storage.merge import STRATEGIES, merge_base, plan_merge
from helios.storage.schema import Column, TableSchema
from helios.storage.store import Store
from storage_helpers import FakeClock, rows_of

SCHEMA = TableSchema("t", (Column("k", "int8", False), Column("v", "text")), primary_key=(0,))
keys = st.integers(0, 4)
values = st.text("abc", min_size=1, max_size=3)


AMBIG = object()     # a base row the best common ancestors disagree on: equal to no side's row


class ModelCommit:
    def __init__(self, rows: dict, parents: tuple, ts: float) -> None:
        self.rows, self.parents, self.ts = rows, parents, ts
        self.gen = 1 + max((p.gen for p in parents), default=0)

    def ancestors(self) -> set:
        out, stack = set(), [self]
        while stack:
            c = stack.pop()
            if c not in out:
                out.add(c)
                stack.extend(c.parents)
        return out


class StoreMachine(RuleBasedStateMachine):

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="helios-model-"))
        self.clock = FakeClock()
        self.store = Store(self.dir / "db", clock=self.clock)
        with self.store.write() as tx:
            tx.create_table(SCHEMA)
        root = ModelCommit({}, (), self.store.snapshot().timestamp)
        self.heads = {"main": root}
        self.history = {"main": [root]}      # a branch's commits as seen through its own history
        self.parents = {"main": None}
        self.held = []                       # (snapshot, expected rows): old versions must not change
        self.counter = 0

    def teardown(self) -> None:
        self.store.close(checkpoint=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _commit(self, branch: str, rows: dict, extra_parent=None) -> None:
        ts = self.store.snapshot(branch).timestamp
        parents = (self.heads[branch],) + ((extra_parent,) if extra_parent is not None else ())
        c = ModelCommit(rows, parents, ts)
        self.heads[branch] = c
        self.history[branch].append(c)

    def _pick(self, data, exclude: str | None = None) -> str:
        return data.draw(st.sampled_from(sorted(b for b in self.heads if b != exclude)))

    @initialize()
    def first_branch(self):
        self._branch("main")

    @rule(data=st.data(), k=keys, v=values, dt=st.floats(0.001, 5))
    def put(self, data, k, v, dt):
        branch = self._pick(data)
        self.clock.advance(dt)
        with self.store.write(branch) as tx:
            if tx.get("t", k) is None:
                tx.insert("t", (k, v))
            else:
                tx.update("t", k, (k, v))
        self._commit(branch, {**self.heads[branch].rows, k: (k, v)})

    @rule(data=st.data(), k=keys)
    def delete(self, data, k):
        branch = self._pick(data)
        if k not in self.heads[branch].rows:
            return
        self.clock.advance(0.5)
        with self.store.write(branch) as tx:
            assert tx.delete("t", k)
        rows = dict(self.heads[branch].rows)
        del rows[k]
        self._commit(branch, rows)

    @precondition(lambda self: len(self.heads) < 6)
    @rule(data=st.data())
    def create_branch(self, data):
        self._branch(self._pick(data))

    def _branch(self, parent: str, at: ModelCommit | None = None) -> None:
        self.counter += 1
        name = f"b{self.counter}"
        self.clock.advance(0.25)
        self.store.create_branch(name, parent, snapshot_id=None if at is None else at.ts)
        start = self.heads[parent] if at is None else at
        self.heads[name] = start
        self.history[name] = [start]
        self.parents[name] = parent

    @precondition(lambda self: len(self.heads) < 6)
    @rule(data=st.data())
    def create_branch_from_the_past(self, data):
        parent = self._pick(data)
        self._branch(parent, data.draw(st.sampled_from(self.history[parent][-4:])))

    @precondition(lambda self: len(self.heads) > 1)
    @rule(data=st.data(), theirs=st.booleans())
    def merge(self, data, theirs):
        source = self._pick(data)
        target = self._pick(data, exclude=source)
        s, t = self.heads[source], self.heads[target]
        common = s.ancestors() & t.ancestors()
        bests = [c for c in common if not any(o is not c and c in o.ancestors() for o in common)]
        self.clock.advance(0.5)
        self._plans_agree(source, target)
        r = self.store.merge(source, target, "Theirs" if theirs else "Ours")
        if bests == [s]:
            assert r.merged_keys == 0
            return
        # Several best common ancestors (a criss-cross): a key they disagree on is a change on both sides.
        base = {k: bests[0].rows.get(k) if all(b.rows.get(k) == bests[0].rows.get(k) for b in bests) else AMBIG
                for k in set().union(*(b.rows for b in bests))}
        rows = dict(t.rows)
        conflicts = set()
        for k in set(base) | set(s.rows):
            if s.rows.get(k) == base.get(k):
                continue
            if t.rows.get(k) != base.get(k) and t.rows.get(k) != s.rows.get(k):
                conflicts.add(k)
                if not theirs:
                    continue
            if k in s.rows:
                rows[k] = s.rows[k]
            else:
                rows.pop(k, None)
        assert {c.key for c in r.conflicts} == {f"t:{k}" for k in conflicts}
        self._commit(target, rows, extra_parent=s)

    def _plans_agree(self, source: str, target: str) -> None:
        """The merge plan from the tables' change logs equals the one from tree diffs."""
        s_tip, t_tip = self.store._branch(source).tip, self.store._branch(target).tip
        base = merge_base(s_tip, t_tip)
        for strategy in STRATEGIES:
            assert plan_merge(base, s_tip, t_tip, strategy) == \
                plan_merge(base, s_tip, t_tip, strategy, use_log=False), strategy

    @precondition(lambda self: len(self.heads) > 2)
    @rule(data=st.data())
    def delete_leaf_branch(self, data):
        leaves = sorted(b for b in self.heads if b != "main" and b not in self.parents.values())
        if not leaves:
            return
        name = data.draw(st.sampled_from(leaves))
        self.store.delete_branch(name)
        for d in (self.heads, self.history, self.parents):
            del d[name]

    @rule(data=st.data())
    def hold_snapshot(self, data):
        branch = self._pick(data)
        self.held.append((self.store.snapshot(branch), dict(self.heads[branch].rows)))

    @rule(checkpoint=st.booleans())
    def reopen(self, checkpoint):
        if checkpoint:
            self.store.checkpoint()
        self.store.close(checkpoint=False)
        self.store = Store(self.dir / "db", clock=self.clock)

    @invariant()
    def heads_match(self):
        assert sorted(self.store.branch_names()) == sorted(self.heads)
        for name, head in self.heads.items():
            assert rows_of(self.store, "t", name) == head.rows, name

    @invariant()
    def history_matches(self):
        for name, commits in self.history.items():
            for c in commits[-4:]:
                assert rows_of(self.store, "t", name, as_of=c.ts) == c.rows

    @invariant()
    def held_snapshots_unchanged(self):
        for snap, rows in self.held[-6:]:
            assert rows_of(snap, "t") == rows


StoreMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
TestStoreModel = StoreMachine.TestCase
