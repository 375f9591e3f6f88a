"""Write transactions: a private working state plus the list of physical ops.

The same ``apply_op`` runs a live write, replays it from the log after a crash
and re-applies it when an optimistic transaction rebases onto a newer head, so
the three can never disagree. Ops are plain tuples (they go into the log):

    ("ct", schema)            create table          ("dt", name)               drop table
    ("at", name, schema, src) alter: new column i takes old column src[i] (-1: its default)
    ("rt", old, new)          rename table
    ("ci", table, name, cols, unique)  create index ("di", table, name)      drop index
    ("p", table, key, row)    put row               ("d", table, key)          delete row
    ("P", table, keys, rows)  insert many new rows at once (what bulk_insert logs)
    ("so", name, value)       set catalogue object (value None deletes it)
    ("tc", name, commit_seq)  set table to its version in that commit (a merge's O(1) take-whole)
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable

from ..errors import SemanticError, TransactionError, UnknownTable
from .schema import IndexDef, TableSchema
from .state import DbState, StateView
from .table import Row, Table

Op = tuple


class Transaction(StateView):
    """Reads see the transaction's own writes; nothing is visible to others until commit."""

    __slots__ = ("branch", "author", "base", "ops", "written", "schema_touched", "_commit_fn", "done",
                 "resolve", "track")

    def __init__(self, branch: str, base_state: DbState, author: Any = None,
                 commit_fn: Callable[["Transaction"], Any] | None = None, base: Any = None,
                 resolve: Callable[[int], Any] | None = None, track: bool = True) -> None:
        """``track=False`` skips recording written keys: a transaction holding the writer
        lock is never rebased, so it needs no conflict checks (and saves memory per row)."""
        self.state = base_state                # StateView's one slot, set directly: a commit per call
        self.branch = branch
        self.author = author
        self.base = base                       # the commit this transaction started from
        self.ops: list[Op] = []
        self.written: dict[str, set] = {}
        self.schema_touched: set[str] = set()
        self._commit_fn = commit_fn
        self.done = False
        self.resolve = resolve                 # commit seq -> Commit, for "tc" ops
        self.track = track

    # -- lifecycle -------------------------------------------------------------
    def commit(self) -> Any:
        self._check_open()
        self.done = True
        if not self.ops or self._commit_fn is None:
            return None
        try:
            return self._commit_fn(self)
        finally:                                # committed (or failed): the op log is not needed again
            self.ops = []
            self.written = {}

    def rollback(self) -> None:
        self.done = True
        self.ops.clear()

    def savepoint(self) -> tuple:
        """A mark to return to if the next statement fails (statement-level atomicity)."""
        return self.state, len(self.ops)

    def rollback_to(self, mark: tuple) -> None:
        # ``written`` may keep keys of the undone statement: conflict checks stay conservative.
        self.state, n = mark
        del self.ops[n:]

    def _check_open(self) -> None:
        if self.done:
            raise TransactionError("transaction already committed or rolled back")

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    # -- the one place state changes ---------------------------------------------
    def apply_op(self, op: Op) -> None:
        self.state = apply_op(self.state, op, self.resolve)
        self.ops.append(op)
        kind = op[0]
        if kind in ("p", "d"):
            if self.track:
                self.written.setdefault(op[1], set()).add(op[2])
        elif kind == "P":
            if self.track:
                self.written.setdefault(op[1], set()).update(op[2])
        elif kind == "rt":
            self.schema_touched.update((op[1], op[2]))
        elif kind in ("ct", "at"):
            self.schema_touched.add(op[1][0] if kind == "ct" else op[1])
        elif kind in ("dt", "ci", "di", "tc"):
            self.schema_touched.add(op[1])
        elif kind == "so":
            self.schema_touched.add("\0object:" + op[1])

    # -- high-level writes (validate, then apply physical ops) ---------------------
    def _table(self, name: str) -> Table:
        if self.done:
            self._check_open()
        try:
            return self.state.tables[name]
        except KeyError:
            return self.table(name)            # raises UnknownTable

    def create_table(self, schema: TableSchema) -> None:
        self._check_open()
        if self.has_table(schema.name):
            raise SemanticError(f"table {schema.name!r} already exists")
        self.apply_op(("ct", schema.to_plain()))

    def drop_table(self, name: str) -> None:
        self._table(name)
        self.apply_op(("dt", name))

    def alter_table(self, name: str, schema: TableSchema, sources: tuple[int, ...] | None = None) -> None:
        """Change a table's schema; ``sources[i]`` is the old position feeding new column i
        (-1 for a new column, filled with its default). By default columns match by name."""
        old = self._table(name).schema
        if sources is None:
            pos = {c.name: i for i, c in enumerate(old.columns)}
            sources = tuple(pos.get(c.name, -1) for c in schema.columns)
        self.apply_op(("at", name, schema.to_plain(), tuple(sources)))

    def rename_table(self, old: str, new: str) -> None:
        self._table(old)
        if self.has_table(new):
            raise SemanticError(f"table {new!r} already exists")
        self.apply_op(("rt", old, new))

    def create_index(self, table: str, index: IndexDef) -> None:
        t = self._table(table)
        if t.schema.index(index.name) is not None:
            raise SemanticError(f"index {index.name!r} already exists")
        t.add_index(index)             # validates uniqueness before anything is logged
        self.apply_op(("ci", table, index.name, index.columns, index.unique))

    def drop_index(self, table: str, name: str) -> None:
        if self._table(table).schema.index(name) is None:
            raise SemanticError(f"no such index: {name}")
        self.apply_op(("di", table, name))

    def insert(self, table: str, row: Row, key: Any = None) -> Any:
        row = tuple(row)
        t, key = self._table(table).insert(row, key)
        self._record_put(table, t, key, row)
        return key

    def replace(self, table: str, row: Row, key: Any = None) -> Any:
        row = tuple(row)
        t, key, removed = self._table(table).replace(row, key)
        for k in removed:
            if k != key:
                self.apply_op(("d", table, k))
        self._record_put(table, t, key, row)
        return key

    def update(self, table: str, key: Any, row: Row) -> Any:
        row = tuple(row)
        t, new_key = self._table(table).update(key, row)
        if new_key != key:
            self.apply_op(("d", table, key))
        self._record_put(table, t, new_key, row)
        return new_key

    def delete(self, table: str, key: Any) -> bool:
        if self._table(table).rows.get(key) is None:
            return False
        self.apply_op(("d", table, key))
        return True

    def bulk_insert(self, table: str, rows: Iterable[Row]) -> int:
        """All-or-nothing insert of many rows through one batched tree update, logged as
        one op (not one tuple per row: a million-row load stays compact)."""
        t, keys, new_rows = self._table(table).bulk_insert(tuple(r) for r in rows)
        if not keys:
            return 0
        self.state = self.state.with_table(table, t)
        self.ops.append(("P", table, keys, new_rows))
        if self.track:
            self.written.setdefault(table, set()).update(keys)
        return len(keys)

    def set_object(self, name: str, value: Any) -> None:
        self._check_open()
        self.apply_op(("so", name, value))

    def _record_put(self, table: str, t: Table, key: Any, row: Row) -> None:
        """Log the physical put of ``row``, which ``t`` already holds at ``key`` (constraints
        were checked): the tuple the table stored, so no lookup is needed to log it."""
        self.state = self.state.with_table(table, t)
        self.ops.append(("p", table, key, row))
        if self.track:
            self.written.setdefault(table, set()).add(key)


def apply_op(state: DbState, op: Op, resolve: Callable[[int], Any] | None = None) -> DbState:
    """Apply one physical op to a state (no constraint checks beyond existence)."""
    kind = op[0]
    if kind == "tc":
        _, name, seq = op
        if resolve is None:
            raise ValueError("a table-copy op needs a commit resolver")
        return state.with_table(name, resolve(seq).state.tables[name])
    if kind == "p":
        _, name, key, row = op
        return state.with_table(name, _get(state, name).put(key, row))
    if kind == "d":
        _, name, key = op
        return state.with_table(name, _get(state, name).delete(key))
    if kind == "P":
        _, name, keys, rows = op
        return state.with_table(name, _get(state, name).put_new(keys, rows))
    if kind == "ct":
        schema = TableSchema.from_plain(op[1])
        return state.with_table(schema.name, Table(schema))
    if kind == "dt":
        return state.with_table(op[1], None)
    if kind == "at":
        _, name, plain, sources = op
        t = _get(state, name)
        schema = TableSchema.from_plain(plain)
        transform = None
        if tuple(sources) != tuple(range(len(t.schema.columns))) or len(sources) != len(t.schema.columns):
            defaults = [c.default for c in schema.columns]
            pick = [(i, s) for i, s in enumerate(sources)]
            transform = lambda r: tuple(r[s] if s >= 0 else defaults[i] for i, s in pick)  # noqa: E731
        return state.with_table(name, t.with_schema(schema, transform))
    if kind == "rt":
        _, old, new = op
        t = _get(state, old)
        moved = t.with_schema(replace(t.schema, name=new))
        return state.with_table(old, None).with_table(new, moved)
    if kind == "ci":
        _, name, ix_name, cols, unique = op
        return state.with_table(name, _get(state, name).add_index(IndexDef(ix_name, tuple(cols), unique)))
    if kind == "di":
        _, name, ix_name = op
        return state.with_table(name, _get(state, name).drop_index(ix_name))
    if kind == "so":
        return state.with_object(op[1], op[2])
    raise ValueError(f"unknown op {kind!r}")


def _get(state: DbState, name: str) -> Table:
    try:
        return state.tables[name]
    except KeyError:
        raise UnknownTable(f"no such table: {name}") from None
