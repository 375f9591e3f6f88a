"""An immutable table: schema, a persistent B+tree of rows and one per index.

Every write returns a new ``Table`` sharing all untouched nodes with the old one,
so a snapshot holding the old object never sees the change. Indexes map
``index_key(row) -> None`` (see ``keys``) and are maintained on every write,
merge and replay through the same methods.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

from ..errors import DuplicateKey, UniqueViolation
from ..gcpause import paused
from .btree import PTree
from .keys import TOP, index_key, index_prefix, prefix_bounds
from .schema import IndexDef, TableSchema

Row = tuple


class Table:
    __slots__ = ("schema", "rows", "indexes", "next_rowid", "pid")

    def __init__(self, schema: TableSchema, rows: PTree = PTree.EMPTY,
                 indexes: dict[str, PTree] | None = None, next_rowid: int = 1) -> None:
        self.schema = schema
        self.rows = rows
        self.indexes = indexes if indexes is not None else {ix.name: PTree.EMPTY for ix in schema.indexes}
        self.next_rowid = next_rowid
        self.pid: int | None = None

    def _with(self, *, schema: TableSchema | None = None, rows: PTree | None = None,
              indexes: dict[str, PTree] | None = None, next_rowid: int | None = None) -> "Table":
        return Table(schema or self.schema, self.rows if rows is None else rows,
                     self.indexes if indexes is None else indexes,
                     self.next_rowid if next_rowid is None else next_rowid)

    def __len__(self) -> int:
        return len(self.rows)

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
        return self._with(rows=self.rows.set(key, row), indexes=indexes, next_rowid=self._bump_rowid(key))

    def delete(self, key: Any) -> "Table":
        old = self.rows.get(key)
        if old is None:
            return self
        indexes = self.indexes
        if self.schema.indexes:
            indexes = {ix.name: self.indexes[ix.name].remove(index_key(old, ix.columns, key))
                       for ix in self.schema.indexes}
        return self._with(rows=self.rows.remove(key), indexes=indexes)

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
        return self._with(rows=self.rows.update(puts=items), indexes=indexes, next_rowid=next_rowid)

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
            tree = PTree.from_sorted(zip(keys, new_rows))
        else:
            tree = self.rows.update(puts=zip(keys, new_rows))
        return self._with(rows=tree, indexes=indexes, next_rowid=max(next_rowid, self.next_rowid)), \
            keys, new_rows

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
        return PTree.from_sorted((e, None) for e in entries)

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
