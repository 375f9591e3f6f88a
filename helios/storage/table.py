"""An immutable table: schema, a persistent B+tree of rows and one per index.

Every write returns a new ``Table`` sharing all untouched nodes with the old one,
so a snapshot holding the old object never sees the change. Indexes map
``index_key(row) -> None`` (see ``keys``) and are maintained on every write,
merge and replay through the same methods.

Every table also carries a ``ChangeLog``: the keys written since some earlier
version, shared with the versions it derives from. Two versions of one table
whose logs meet differ at most in the keys logged above the meeting link, so a
merge finds what a branch changed in time proportional to the writes, not to
the table (``changed_since``); unrelated or too distant versions answer None
and the caller diffs the trees instead.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

from ..errors import DuplicateKey, UniqueViolation
from ..gcpause import paused
from .btree import PTree
from .keys import TOP, index_key, index_prefix, prefix_bounds
from .schema import IndexDef, TableSchema

Row = tuple

CHANGE_LOG_LIMIT = 4096     # links kept per log before a write starts a new one (bounded memory)


class ChangeLog:
    """One link of a table's write history: the key written, the link before it, and
    how many links precede it. A link with ``depth`` 0 starts a history of its own.

    Links are never changed, so versions share them; that shared tail is what
    ``Table.changed_since`` looks for.
    """

    __slots__ = ("key", "prev", "depth")

    def __init__(self, key: Any = None, prev: "ChangeLog | None" = None) -> None:
        self.key = key
        self.prev = prev
        self.depth = 0 if prev is None else prev.depth + 1

    def extended(self, keys: Sequence[Any]) -> "ChangeLog":
        """This log with ``keys`` appended, or a new history once it would exceed the limit."""
        if self.depth + len(keys) > CHANGE_LOG_LIMIT:
            return ChangeLog()
        link = self
        for k in keys:
            link = ChangeLog(k, link)
        return link


class Table:
    __slots__ = ("schema", "rows", "indexes", "next_rowid", "changes", "pid", "size_estimate")

    def __init__(self, schema: TableSchema, rows: PTree = PTree.EMPTY,
                 indexes: dict[str, PTree] | None = None, next_rowid: int = 1,
                 changes: ChangeLog | None = None) -> None:
        """``changes`` None starts a history of its own (nothing is known about earlier versions)."""
        self.schema = schema
        self.rows = rows
        self.indexes = indexes if indexes is not None else {ix.name: PTree.EMPTY for ix in schema.indexes}
        self.next_rowid = next_rowid
        self.changes = changes if changes is not None else ChangeLog()
        self.pid: int | None = None
        self.size_estimate: int | None = None   # cached by ``store.estimate_table_bytes``

    def _with(self, *, schema: TableSchema | None = None, rows: PTree | None = None,
              indexes: dict[str, PTree] | None = None, next_rowid: int | None = None,
              written: Sequence[Any] = ()) -> "Table":
        """A copy with some parts replaced; ``written`` = the keys whose rows may have changed."""
        return Table(schema or self.schema, self.rows if rows is None else rows,
                     self.indexes if indexes is None else indexes,
                     self.next_rowid if next_rowid is None else next_rowid,
                     self.changes.extended(written) if written else self.changes)

    def __len__(self) -> int:
        return len(self.rows)

    def changed_since(self, other: "Table", max_keys: int = CHANGE_LOG_LIMIT) -> set | None:
        """Every key whose row may differ between ``other`` and this table (a superset), from
        the writes logged since the two histories met; None if they never meet or if more
        than ``max_keys`` keys were written since."""
        a, b = self.changes, other.changes
        out: set = set()
        while a.depth > b.depth:
            out.add(a.key)
            a = a.prev  # type: ignore[assignment]
        while b.depth > a.depth:
            out.add(b.key)
            b = b.prev  # type: ignore[assignment]
        while a is not b:
            if not a.depth:          # two different roots: unrelated histories
                return None
            out.add(a.key)
            out.add(b.key)
            a, b = a.prev, b.prev  # type: ignore[assignment]
            if len(out) > max_keys:
                return None
        return out if len(out) <= max_keys else None

    # -- keys ----------------------------------------------------------------
    def key_of(self, row: Row) -> Any:
        pk = self.schema.primary_key
        if len(pk) == 1:
            return row[pk[0]]
        return tuple(row[i] for i in pk)

    def _new_key(self, row: Row, key: Any) -> Any:
        if key is not None:
            return key
        if self.schema.has_rowid:
            return self.next_rowid
        return self.key_of(row)

    def _bump_rowid(self, key: Any) -> int:
        if self.schema.has_rowid and isinstance(key, int) and key >= self.next_rowid:
            return key + 1
        return self.next_rowid

    def next_rowid_after(self, keys: Iterable[Any]) -> int:
        """``next_rowid`` once rows are put under ``keys``."""
        if not self.schema.has_rowid:
            return self.next_rowid
        return max(map(self._bump_rowid, keys), default=self.next_rowid)

    def with_next_rowid(self, next_rowid: int) -> "Table":
        return self if next_rowid == self.next_rowid else self._with(next_rowid=next_rowid)

    # -- reads ---------------------------------------------------------------
    def get(self, key: Any) -> Row | None:
        return self.rows.get(key)

    def index_scan(self, name: str, lo: Sequence[Any] | None = None, hi: Sequence[Any] | None = None, *,
                   lo_inclusive: bool = True, hi_inclusive: bool = True,
                   reverse: bool = False) -> Iterator[tuple[list, list]]:
        """Batches of (keys, rows) whose index values lie within the prefix bounds."""
        start, end = prefix_bounds(lo, hi, lo_inclusive, hi_inclusive)
        get = self.rows.get
        for ikeys, _ in self.indexes[name].batches(start, end, hi_inclusive=False, reverse=reverse):
            pks = [ik[-1] for ik in ikeys]
            yield pks, [get(k) for k in pks]

    def _unique_clash(self, ix: IndexDef, row: Row, key: Any) -> Any:
        """The key of another row holding the same unique values, or None."""
        vals = [row[c] for c in ix.columns]
        if any(v is None for v in vals):   # NULLs never clash (SQL semantics)
            return None
        p = index_prefix(vals)
        for ik in self.indexes[ix.name].keys(p, p + (TOP,), hi_inclusive=False):
            if ik[-1] != key:
                return ik[-1]
        return None

    def check_unique(self, row: Row, key: Any) -> None:
        for ix in self.schema.indexes:
            if ix.unique and self._unique_clash(ix, row, key) is not None:
                cols = ", ".join(self.schema.columns[c].name for c in ix.columns)
                raise UniqueViolation(
                    f"UNIQUE constraint failed: {self.schema.name}({cols}) already holds "
                    f"{tuple(row[c] for c in ix.columns)!r}")

    # -- writes --------------------------------------------------------------
    def put(self, key: Any, row: Row) -> "Table":
        """Insert or overwrite ``key`` (no constraint checks: callers check first)."""
        old = self.rows.get(key)
        indexes = self.indexes
        if self.schema.indexes:
            indexes = dict(indexes)
            for ix in self.schema.indexes:
                new_ik = index_key(row, ix.columns, key)
                tree = indexes[ix.name]
                if old is not None:
                    old_ik = index_key(old, ix.columns, key)
                    if old_ik == new_ik:
                        continue
                    tree = tree.remove(old_ik)
                indexes[ix.name] = tree.set(new_ik, None)
        return self._with(rows=self.rows.set(key, row), indexes=indexes, next_rowid=self._bump_rowid(key),
                          written=(key,))

    def delete(self, key: Any) -> "Table":
        old = self.rows.get(key)
        if old is None:
            return self
        indexes = self.indexes
        if self.schema.indexes:
            indexes = {ix.name: self.indexes[ix.name].remove(index_key(old, ix.columns, key))
                       for ix in self.schema.indexes}
        return self._with(rows=self.rows.remove(key), indexes=indexes, written=(key,))

    def apply_writes(self, puts: dict[Any, Row], deletes: Iterable[Any] = ()) -> "Table":
        """``put`` of every item and ``delete`` of every key (each key in one of the two), as
        one batched update per tree: the same rows and indexes as doing them one by one, with
        one path copy per touched leaf instead of one per write."""
        deletes = [k for k in deletes if k in self.rows]
        if not puts and not deletes:
            return self
        indexes = self.indexes
        if self.schema.indexes:
            indexes = dict(indexes)
            get = self.rows.get
            for ix in self.schema.indexes:
                add, drop = [], []
                for key, row in puts.items():
                    new_ik = index_key(row, ix.columns, key)
                    old = get(key)
                    if old is not None:
                        old_ik = index_key(old, ix.columns, key)
                        if old_ik == new_ik:
                            continue
                        drop.append(old_ik)
                    add.append((new_ik, None))
                drop.extend(index_key(get(k), ix.columns, k) for k in deletes)
                indexes[ix.name] = indexes[ix.name].update(puts=add, deletes=drop)
        next_rowid = self.next_rowid_after(puts)
        return self._with(rows=self.rows.update(puts=puts.items(), deletes=deletes), indexes=indexes,
                          next_rowid=next_rowid, written=[*puts, *deletes])

    def insert(self, row: Row, key: Any = None) -> tuple["Table", Any]:
        key = self._new_key(row, key)
        if key in self.rows:
            raise DuplicateKey(f"duplicate key {key!r} in table {self.schema.name!r}")
        self.check_unique(row, key)
        return self.put(key, row), key

    def replace(self, row: Row, key: Any = None) -> tuple["Table", Any, list[Any]]:
        """INSERT OR REPLACE: rows clashing on the key or a unique index are deleted first."""
        key = self._new_key(row, key)
        removed = [key] if key in self.rows else []
        t = self
        for ix in self.schema.indexes:
            if ix.unique:
                clash = t._unique_clash(ix, row, key)
                if clash is not None:
                    removed.append(clash)
                    t = t.delete(clash)
        return t.put(key, row), key, removed

    def update(self, key: Any, row: Row) -> tuple["Table", Any]:
        """Replace the row at ``key``; the key moves if the primary-key columns changed."""
        new_key = key if self.schema.has_rowid else self.key_of(row)
        if new_key != key and new_key in self.rows:
            raise DuplicateKey(f"duplicate key {new_key!r} in table {self.schema.name!r}")
        self.check_unique(row, new_key if new_key != key else key)
        t = self if new_key == key else self.delete(key)
        return t.put(new_key, row), new_key

    def put_new(self, keys: Sequence[Any], rows: Sequence[Row]) -> "Table":
        """Insert rows under keys that are known to be absent (a logged bulk insert
        replayed in order); one batched update per tree, no constraint checks."""
        items = list(zip(keys, rows))
        indexes = dict(self.indexes)
        for ix in self.schema.indexes:
            indexes[ix.name] = indexes[ix.name].update(puts=[(index_key(r, ix.columns, k), None) for k, r in items])
        next_rowid = self.next_rowid
        if self.schema.has_rowid and keys:
            next_rowid = max(next_rowid, max(keys) + 1)
        return self._with(rows=self.rows.update(puts=items), indexes=indexes, next_rowid=next_rowid,
                          written=keys)

    def bulk_insert(self, rows: Iterable[Row]) -> tuple["Table", list, list]:
        with paused():
            return self._bulk_insert(rows)

    def _bulk_insert(self, rows: Iterable[Row]) -> tuple["Table", list, list]:
        """Insert many rows with one batched tree update; all or nothing.

        Returns (table, keys, rows). Keys arriving in increasing order after the
        table's last key (a bulk load) need no duplicate set and build the tree
        bottom-up; anything else is checked key by key and merged in."""
        keys: list = []
        new_rows: list = []
        next_rowid = self.next_rowid
        rowid = self.schema.has_rowid
        key_of = self.key_of
        increasing = True
        last = None
        for row in rows:
            if rowid:
                key, next_rowid = next_rowid, next_rowid + 1
            else:
                key = key_of(row)
            if increasing and last is not None and not last < key:
                increasing = False
            last = key
            keys.append(key)
            new_rows.append(row)
        if not keys:
            return self, keys, new_rows
        tail = self.rows.last()
        if not (increasing and (tail is None or tail[0] < keys[0])):
            if len(set(keys)) != len(keys):
                seen: set = set()
                dup = next(k for k in keys if k in seen or seen.add(k))
                raise DuplicateKey(f"duplicate key {dup!r} in table {self.schema.name!r}")
            for key in keys:
                if key in self.rows:
                    raise DuplicateKey(f"duplicate key {key!r} in table {self.schema.name!r}")
        indexes = dict(self.indexes)
        for ix in self.schema.indexes:
            entries = [(index_key(r, ix.columns, k), None) for k, r in zip(keys, new_rows)]
            if ix.unique:
                batch_vals: set = set()
                for k, r, (ik, _) in zip(keys, new_rows, entries):
                    vals = ik[:-1]
                    if any(not present for present, _ in vals):
                        continue
                    if vals in batch_vals or self._unique_clash(ix, r, k) is not None:
                        cols = ", ".join(self.schema.columns[c].name for c in ix.columns)
                        raise UniqueViolation(f"UNIQUE constraint failed: {self.schema.name}({cols})")
                    batch_vals.add(vals)
            indexes[ix.name] = indexes[ix.name].update(puts=entries)
        if not self.rows and increasing:
            tree = PTree.from_sorted_columns(keys, new_rows)
        else:
            tree = self.rows.update(puts=zip(keys, new_rows))
        return self._with(rows=tree, indexes=indexes, next_rowid=max(next_rowid, self.next_rowid),
                          written=keys), keys, new_rows

    # -- schema changes --------------------------------------------------------
    def with_schema(self, schema: TableSchema, transform=None) -> "Table":
        """A table under a new schema; ``transform`` maps each old row to the new shape."""
        rows = self.rows
        if transform is not None and len(rows):
            rows = PTree.from_sorted((k, transform(r)) for k, r in rows.items())
        t = Table(schema, rows, {}, self.next_rowid)
        for ix in schema.indexes:
            unchanged = transform is None and self.schema.index(ix.name) == ix
            t.indexes[ix.name] = self.indexes[ix.name] if unchanged else t._build_index(ix)
        return t

    def _build_index(self, ix: IndexDef) -> PTree:
        entries = sorted(index_key(r, ix.columns, k) for k, r in self.rows.items())
        return PTree.from_sorted_columns(entries, [None] * len(entries))

    def add_index(self, ix: IndexDef) -> "Table":
        schema = self.schema.with_index(ix)
        t = self._with(schema=schema)
        if ix.unique:
            seen: dict = {}
            for k, r in self.rows.items():
                vals = tuple(r[c] for c in ix.columns)
                if None in vals:
                    continue
                if vals in seen:
                    raise UniqueViolation(f"UNIQUE constraint failed: cannot create unique index "
                                          f"{ix.name!r}: {vals!r} appears more than once")
                seen[vals] = k
        t.indexes = dict(self.indexes)
        t.indexes[ix.name] = self._build_index(ix)
        return t

    def drop_index(self, name: str) -> "Table":
        indexes = {k: v for k, v in self.indexes.items() if k != name}
        return self._with(schema=self.schema.without_index(name), indexes=indexes)
