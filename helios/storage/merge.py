"""Three-way merge of one branch's changes into another.

Both sides are diffed against their merge base: from the tables' change logs
when they reach the base's version (point reads of the keys written since, see
``Table.changed_since``), else with ``PTree.diff``, which skips subtrees shared
by identity. Either way the cost follows the size of the change, not of the
tables, and the two give the same answer (``row_changes``). The merged rows are
applied as one batched update per table (``MergePlan.apply``). A table only one
side touched is taken whole (an O(1) pointer copy, logged as
``("tc", table, commit_seq)``). A table both sides changed under one schema is
built from whichever side needs fewer writes: the source's version plus the
target's surviving changes when those are fewer (``Rebase``), so a branch that
changed many rows merges into a target that changed few by copying the few
leaves the target touched, not the many the source did. The logged ops are the
same either way (replay applies them to the target). Keys are ``table:pk``; a conflict is a
key both sides changed, to different values (a delete against an update too).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

from ..errors import BadRequest
from .btree import MISSING, PTree, same_content
from .commits import Commit, merge_bases
from .schema import TableSchema, adapt_row, column_sources
from .state import DbState
from .table import Table
from .txn import apply_op

STRATEGIES = ("Auto", "Ours", "Theirs", "Manual")
_WALK_LIMIT = 10_000     # commits walked to date a conflicting change (Auto); beyond it the tip's time is used


def check_strategy(strategy: Any) -> str:
    for s in STRATEGIES:
        if isinstance(strategy, str) and strategy.lower() == s.lower():
            return s
    raise BadRequest(f"unknown merge strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")


@dataclass(frozen=True, slots=True)
class Conflict:
    key: str
    source_value: Any
    target_value: Any
    resolution: str
    resolved_value: Any

    def to_dict(self) -> dict:
        return {"key": self.key, "source_value": self.source_value, "target_value": self.target_value,
                "resolution": self.resolution, "resolved_value": self.resolved_value}


@dataclass(frozen=True, slots=True)
class MergeResult:
    merge_timestamp: float
    merged_keys: int
    conflicts: list[Conflict] = field(default_factory=list)
    completed: bool = True
    message: str = ""

    def to_dict(self) -> dict:
        return {"merge_timestamp": self.merge_timestamp, "merged_keys": self.merged_keys,
                "conflicts": [c.to_dict() for c in self.conflicts], "completed": self.completed,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class Rebase:
    """A table's merged version as ``source`` plus writes: the same rows, indexes and
    ``next_rowid`` as the plan's ``ops`` for the table give when applied to the target."""

    source: Table
    target: Table       # the table the ops apply to: the route holds only while it is in place
    puts: dict
    deletes: set
    next_rowid: int
    ops: int            # how many row ops of the plan this stands for

    def table(self) -> Table:
        return self.source.apply_writes(self.puts, self.deletes).with_next_rowid(self.next_rowid)


@dataclass
class MergePlan:
    ops: list[tuple] = field(default_factory=list)
    merged_keys: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    rebases: dict[str, Rebase] = field(default_factory=dict, compare=False)   # table -> cheaper route

    def written(self) -> dict[str, set]:
        """Table -> keys of the rows the ops put or delete."""
        out: dict[str, set] = {}
        for op in self.ops:
            if op[0] in _ROW_OPS:
                out.setdefault(op[1], set()).add(op[2])
        return out

    def apply(self, state: DbState, resolve: Callable[[int], Any]) -> DbState:
        """The state the ops lead to: the same tables as ``txn.apply_op`` one op at a time (what
        log replay does), but each run of row writes to one table is one batched update, or
        the table's ``Rebase`` when it has one."""
        ops, i = self.ops, 0
        while i < len(ops):
            op = ops[i]
            if op[0] not in _ROW_OPS:
                state = apply_op(state, op, resolve)
                i += 1
                continue
            rebase = self.rebases.get(op[1])
            if rebase is not None:
                end = i
                while end < len(ops) and ops[end][0] in _ROW_OPS and ops[end][1] == op[1]:
                    end += 1
                if end - i == rebase.ops and state.tables.get(op[1]) is rebase.target:
                    state = state.with_table(op[1], rebase.table())
                    i = end
                    continue
            puts: dict = {}
            deletes: set = set()
            while i < len(ops) and ops[i][0] in _ROW_OPS and ops[i][1] == op[1] and \
                    ops[i][2] not in puts and ops[i][2] not in deletes:
                if ops[i][0] == "p":
                    puts[ops[i][2]] = ops[i][3]
                else:
                    deletes.add(ops[i][2])
                i += 1
            table = state.tables.get(op[1])
            if table is None:
                return apply_op(state, op, resolve)     # raises UnknownTable, as one op at a time would
            state = state.with_table(op[1], table.apply_writes(puts, deletes))
        return state


_ROW_OPS = ("p", "d")


def render_key(table: str, key: Any) -> str:
    if isinstance(key, tuple):
        return f"{table}:" + ",".join(str(k) for k in key)
    return f"{table}:{key}"


def _row_dict(schema: TableSchema | None, row: Any) -> Any:
    if row is MISSING or row is None or schema is None:
        return None
    return dict(zip(schema.column_names, row))


class _Side:
    """One side of the merge: its tip and a way to date its last change of a key."""

    def __init__(self, tip: Commit, base: Commit | None) -> None:
        self.tip = tip
        self.stop_gen = base.gen if base is not None else 0

    def changed_at(self, probe: Callable[[DbState], Any]) -> int:
        """Timestamp of the commit on this side that wrote what ``probe`` reads now.

        Down from the tip, through whichever parent already held that value (the first
        parent when both did): a value a merge brought in is dated by the commit that
        wrote it on its own branch, not by the merge."""
        c, now, steps = self.tip, probe(self.tip.state), 0
        while c.parents and c.gen > self.stop_gen and steps < _WALK_LIMIT:
            p = next((q for q in c.parents if same_content(probe(q.state), now)), None)
            if p is None:
                return c.ts
            c, steps = p, steps + 1
        return c.ts if steps < _WALK_LIMIT else self.tip.ts


@dataclass(frozen=True, slots=True)
class VirtualBase:
    """The base of a criss-cross merge (several best common ancestors): every row and
    object on which those ancestors agree, and ``AMBIGUOUS`` where they do not."""

    state: DbState
    gen: int        # the lowest of the ancestors': Auto dates changes down to it


class _Ambiguous:
    """A value equal to nothing but itself: no row or object of either side matches it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "AMBIGUOUS"


AMBIGUOUS = _Ambiguous()
_AMBIGUOUS_ROW = (AMBIGUOUS,)


def merge_base(a: Commit, b: Commit) -> Commit | VirtualBase | None:
    """What a merge of ``a`` and ``b`` compares both sides against (see ``combined_base``)."""
    return combined_base(merge_bases(a, b))


def combined_base(bases: list[Commit]) -> Commit | VirtualBase | None:
    """The base to merge from, given every best common ancestor (``commits.merge_bases``).

    With one, that commit. With several (the two lines merged into each other
    crosswise), taking any one of them can undo a change without a conflict: a
    row the target changed back to an older ancestor's value looks unchanged
    against that ancestor. So a key whose row (or an object whose value) differs
    between the ancestors counts as changed on both sides: the merge keeps it if
    both sides agree, else reports a conflict. Where the ancestors disagree on a
    table's existence or columns, the newest ancestor's table is the base.
    """
    if len(bases) < 2:
        return bases[0] if bases else None
    state = bases[0].state
    for other in bases[1:]:
        state = _mark_disagreements(state, other.state)
    return VirtualBase(state, min(b.gen for b in bases))


def _mark_disagreements(first: DbState, other: DbState) -> DbState:
    out = first
    for name in sorted(set(first.tables.keys()) | set(other.tables.keys())):
        a, b = first.tables.get(name), other.tables.get(name)
        if a is b or a is None or b is None or \
                (a.schema.columns, a.schema.primary_key) != (b.schema.columns, b.schema.primary_key):
            continue
        marks = [(key, _AMBIGUOUS_ROW) for key, _, _ in a.rows.diff(b.rows)]
        if marks:       # indexes as ``a``'s: the base's rows are compared, never looked up by index
            out = out.with_table(name, Table(a.schema, a.rows.update(marks), a.indexes, a.next_rowid))
    for name in sorted(set(first.objects.keys()) | set(other.objects.keys())):
        if not same_content(first.objects.get(name), other.objects.get(name)):
            out = out.with_object(name, AMBIGUOUS)
    return out


def plan_merge(base: Commit | VirtualBase | None, source: Commit, target: Commit, strategy: str, *,
               use_log: bool = True) -> MergePlan:
    """The ops that bring ``source``'s changes since ``base`` onto ``target``.

    ``use_log=False`` finds the changed rows by tree diff only (tests compare the two)."""
    plan = MergePlan()
    b_state = base.state if base is not None else DbState()
    s_state, t_state = source.state, target.state
    src, tgt = _Side(source, base), _Side(target, base)

    def source_wins(probe: Callable[[DbState], Any]) -> bool:
        if strategy == "Theirs":
            return True
        if strategy == "Ours":
            return False
        return src.changed_at(probe) >= tgt.changed_at(probe)     # Auto: newer change wins

    for name in sorted(set(b_state.tables.keys()) | set(s_state.tables.keys()) | set(t_state.tables.keys())):
        b, s, t = (b_state.tables.get(name), s_state.tables.get(name), t_state.tables.get(name))
        if s is b or s is t:
            continue
        if t is b:                                  # only the source touched it: take it whole
            plan.merged_keys += _count_changes(b, s, use_log)
            plan.ops.append(("tc", name, source.seq) if s is not None else ("dt", name))
            continue
        if s is not None and t is not None and _schemas_mergeable(b, s, t):
            _merge_rows(plan, name, b, s, t, source_wins, strategy, use_log)
            continue
        # Both sides changed the table's existence or its schema differently: one table-level conflict.
        probe = (lambda st, n=name: st.tables.get(n))
        win = source_wins(probe)
        plan.conflicts.append(Conflict(f"{name}:*", _table_desc(s), _table_desc(t), strategy,
                                       _table_desc(s if win else t)))
        if win:
            plan.merged_keys += _count_changes(b, s, use_log)
            plan.ops.append(("tc", name, source.seq) if s is not None else ("dt", name))
    for name in sorted(set(b_state.objects.keys()) | set(s_state.objects.keys()) | set(t_state.objects.keys())):
        bo, so, to = (b_state.objects.get(name), s_state.objects.get(name), t_state.objects.get(name))
        if same_content(so, bo) or same_content(so, to):
            continue
        if same_content(to, bo):
            plan.ops.append(("so", name, so))
            plan.merged_keys += 1
            continue
        win = source_wins(lambda st, n=name: st.objects.get(n))
        plan.conflicts.append(Conflict(f"{name}:*", so, to, strategy, so if win else to))
        if win:
            plan.ops.append(("so", name, so))
    return plan


def _table_desc(t: Table | None) -> Any:
    if t is None:
        return None
    return {"columns": list(t.schema.column_names), "rows": len(t)}


def _count_changes(b: Table | None, s: Table | None, use_log: bool) -> int:
    if b is None:
        return len(s) if s is not None else 0
    if s is None:
        return len(b)
    return sum(1 for _ in row_changes(b, s, use_log=use_log))


def row_changes(b: Table | None, s: Table, *, use_log: bool = True) -> Iterator[tuple[Any, Any, Any]]:
    """``(key, row in b or MISSING, row in s or MISSING)`` for each key whose row differs,
    in key order: exactly what ``b.rows.diff(s.rows)`` yields.

    When both tables' change logs meet (``s`` derives from ``b`` or both from one
    version by logged writes) only the keys written since are read, two point
    reads each; beyond a sixteenth of the table a tree diff is cheaper."""
    b_rows = b.rows if b is not None else PTree.EMPTY
    keys = s.changed_since(b, 64 + len(s.rows) // 16) if use_log and b is not None else None
    if keys is None:
        yield from b_rows.diff(s.rows)
        return
    old_of, new_of = b_rows.get, s.rows.get
    for key in sorted(keys):
        old, new = old_of(key, MISSING), new_of(key, MISSING)
        if not same_content(old, new):
            yield key, old, new


def _schemas_mergeable(b: Table | None, s: Table, t: Table) -> bool:
    """Row-level merge works when at most one side changed the columns and key."""
    if b is None:
        return s.schema.columns == t.schema.columns and s.schema.primary_key == t.schema.primary_key
    bs, ss, ts = b.schema, s.schema, t.schema
    s_cols = (ss.columns, ss.primary_key) != (bs.columns, bs.primary_key)
    t_cols = (ts.columns, ts.primary_key) != (bs.columns, bs.primary_key)
    return not (s_cols and t_cols and (ss.columns, ss.primary_key) != (ts.columns, ts.primary_key))


def _merge_rows(plan: MergePlan, name: str, b: Table | None, s: Table, t: Table,
                source_wins: Callable[[Callable[[DbState], Any]], bool], strategy: str, use_log: bool) -> None:
    ops = plan.ops
    # Columns: the side that changed them wins (at most one did); rows follow by column name.
    result_schema = t.schema
    if b is not None and s.schema.columns != b.schema.columns and t.schema.columns == b.schema.columns:
        result_schema = s.schema
        ops.append(("at", name, _with_indexes(s.schema, t.schema).to_plain(),
                    column_sources(t.schema, s.schema)))
    # Indexes the source added or dropped since the base.
    b_ix = {i.name: i for i in (b.schema.indexes if b is not None else ())}
    t_ix = {i.name: i for i in t.schema.indexes}
    for ix in s.schema.indexes:
        if ix.name not in b_ix and ix.name not in t_ix:
            ops.append(("ci", name, ix.name, ix.columns, ix.unique))
    for ix_name in b_ix:
        if s.schema.index(ix_name) is None and ix_name in t_ix:
            ops.append(("di", name, ix_name))
    t_changes = {k: new for k, _, new in row_changes(b, t, use_log=use_log)}
    adapt = (lambda r: r) if s.schema.columns == result_schema.columns else \
        (lambda r: adapt_row(r, s.schema, result_schema))
    first = len(ops)
    source_kept: set = set()        # keys whose merged row is the source's
    for key, _, new_s in row_changes(b, s, use_log=use_log):
        plan.merged_keys += 1
        if key in t_changes:
            new_t = t_changes[key]
            if same_content(new_s, new_t):
                source_kept.add(key)
                continue
            win = source_wins(lambda st, k=key: _probe_row(st, name, k))
            plan.conflicts.append(Conflict(
                render_key(name, key), _row_dict(s.schema, new_s), _row_dict(t.schema, new_t),
                strategy, _row_dict(s.schema if win else t.schema, new_s if win else new_t)))
            if not win:
                continue
            source_kept.add(key)
        ops.append(("d", name, key) if new_s is MISSING else ("p", name, key, adapt(new_s)))
    rebase = _rebase(s, t, t_changes, source_kept, ops[first:])
    if rebase is not None:
        plan.rebases[name] = rebase


def _rebase(s: Table, t: Table, t_changes: dict, source_kept: set, row_ops: list[tuple]) -> Rebase | None:
    """The merged table as ``s`` plus the target's changes that survive, when that is fewer
    writes than ``row_ops`` on ``t`` and both sides share one schema (so no row is adapted
    and the indexes agree).

    Row by row it is the same table: a key only the source changed holds the source's row
    in both; a key only the target changed, or one whose conflict the target won, holds
    the target's row (written here); every other key holds the base's row on both sides.
    ``next_rowid`` is what the ops give on ``t``."""
    if s.schema != t.schema or set(s.indexes) != set(t.indexes):
        return None
    writes = [(k, v) for k, v in t_changes.items() if k not in source_kept]
    if len(writes) >= len(row_ops):
        return None
    puts = {k: v for k, v in writes if v is not MISSING}
    deletes = {k for k, v in writes if v is MISSING}
    next_rowid = t.next_rowid_after(op[2] for op in row_ops if op[0] == "p")
    return Rebase(s, t, puts, deletes, next_rowid, len(row_ops))


def _with_indexes(schema: TableSchema, indexes_from: TableSchema) -> TableSchema:
    return replace(schema, indexes=indexes_from.indexes)


def _probe_row(state: DbState, table: str, key: Any) -> Any:
    t = state.tables.get(table)
    return None if t is None else t.rows.get(key)
