"""Checkpoints: an append-only node file plus an atomically replaced manifest.

Every persistent object (B+tree nodes, tables, states, commits) is written once,
as one checksummed record of the node file, and remembers its record number in
``pid``. A checkpoint appends only objects not yet on disk, children before
parents, so its cost follows the change since the last one (the append-only
B-tree idea of LMDB and CouchDB, and Dolt's chunk store). The manifest, written
atomically (temp, fsync, rename, fsync dir), names the node file's valid length,
the branches and the first log segment to replay; anything past that length is
the debris of an interrupted checkpoint and is cut away on open.

Record kinds: (0, keys, values) leaf; (1, keys, child_pids, counts) inner;
(2, schema, rows_root, ((index, root), ...), next_rowid) table;
(3, ((table, table_pid), ...), ((object, value), ...)) state;
(4, seq, ts, state_pid, parent_pids, author, kind) commit;
(5, base_leaf_pid, positions, values) a leaf holding the base leaf's keys and values
except ``values`` at ``positions``. Kind 5 is how a value-only change of a leaf is
written (found by the ``keys`` that path copying shares): the record costs the
change, and on load the new leaf shares its keys and unchanged rows with the
base, so a reopened store holds its history in as little memory as the live one did.
"""
from __future__ import annotations

import os
from itertools import compress
from operator import is_not
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import immutables

from ..errors import CorruptDatabase
from . import codec
from .btree import Inner, Leaf, PTree
from .commits import Commit
from .fileio import atomic_write, encode_record, fsync_directory, read_header, scan_records, write_header
from .schema import TableSchema
from .state import DbState
from .table import Table

NODES_MAGIC = b"HELINODE"
MANIFEST_MAGIC = b"HELIMANI"
MANIFEST_VERSION = 1
# Node files: version 2 added leaf deltas (record kind 5). A version-1 file is still
# read, and appended to without deltas, so an older release can keep reading it.
NODES_VERSION = 2
NODES_READABLE = (1, 2)
_DELTAS_SINCE = 2
HEADER_LEN = 12
_NONE = -1


def manifest_path(directory: Path, number: int) -> Path:
    return directory / f"checkpoint-{number:08d}.manifest"


def list_manifests(directory: Path) -> list[int]:
    out = []
    for p in directory.glob("checkpoint-*.manifest"):
        try:
            out.append(int(p.stem.split("-")[1]))
        except (IndexError, ValueError):
            continue
    return sorted(out)


def write_manifest(directory: Path, number: int, manifest: dict, *, fsync=os.fsync) -> None:
    import io
    buf = io.BytesIO()
    write_header(buf, MANIFEST_MAGIC, MANIFEST_VERSION)
    buf.write(encode_record(codec.pack(manifest)))
    atomic_write(manifest_path(directory, number), buf.getvalue(), fsync=fsync)


def read_manifest(directory: Path, number: int) -> dict:
    path = manifest_path(directory, number)
    data = path.read_bytes()
    read_header(data, MANIFEST_MAGIC, (MANIFEST_VERSION,), path=path)
    payloads, _, torn = scan_records(data, HEADER_LEN, path=path)
    if torn or len(payloads) != 1:
        raise CorruptDatabase(f"{path}: manifest is damaged")
    return codec.unpack(payloads[0], where=f"manifest {path}")


class NodeWriter:
    """Appends the not-yet-persisted part of a set of commits to the node file."""

    def __init__(self, path: Path, length: int, count: int, *, fsync: Callable[[int], None] = os.fsync) -> None:
        self.path, self.length, self.count, self._fsync = path, length, count, fsync
        self.version = NODES_VERSION if length == 0 or not path.exists() else _file_version(path)
        self._pending: dict[int, tuple[Any, int]] = {}    # id(obj) -> (obj, pid) until durable
        self._buf: list[bytes] = []

    def _pid(self, obj: Any) -> int:
        if obj is None:
            return _NONE
        if obj.pid is not None:
            return obj.pid
        return self._pending[id(obj)][1]

    def _emit(self, obj: Any, record: tuple) -> int:
        pid = self.count
        self.count += 1
        self._pending[id(obj)] = (obj, pid)
        self._buf.append(encode_record(codec.pack(record)))
        return pid

    def _known(self, obj: Any) -> bool:
        return obj is None or obj.pid is not None or id(obj) in self._pending

    def add_tree(self, tree: PTree, prev: PTree | None = None) -> None:
        """Write the tree's new nodes; leaves that only changed values since their
        version in ``prev`` (the same tree one commit earlier) as deltas."""
        for node in tree.nodes(skip=self._known):
            if self._known(node):
                continue
            if isinstance(node, Leaf):
                self._emit(node, self._leaf_record(node, prev))
            else:
                self._emit(node, (1, node.keys, [self._pid(c) for c in node.children], node.counts))

    def _leaf_record(self, leaf: Leaf, prev: PTree | None) -> tuple:
        base = prev.leaf_for(leaf.keys[0]) if prev is not None else None
        if self.version >= _DELTAS_SINCE and base is not None and base.keys is leaf.keys and self._known(base):
            values = leaf.values
            changed = list(compress(range(len(values)), map(is_not, base.values, values)))
            if 2 * len(changed) < len(values):
                return (5, self._pid(base), changed, [values[i] for i in changed])
        return (0, leaf.keys, leaf.values)

    def add_state(self, state: DbState, prev: DbState | None = None) -> None:
        """Write the state's new objects; ``prev`` is its parent commit's state."""
        if self._known(state):
            return
        for name, table in state.tables.items():
            if self._known(table):
                continue
            before = prev.tables.get(name) if prev is not None else None
            self.add_tree(table.rows, before.rows if before is not None else None)
            for ix_name, tree in table.indexes.items():
                self.add_tree(tree, before.indexes.get(ix_name) if before is not None else None)
            self._emit(table, (2, table.schema.to_plain(), self._pid(table.rows.root),
                               tuple((n, self._pid(t.root)) for n, t in table.indexes.items()),
                               table.next_rowid))
        self._emit(state, (3, tuple((n, self._pid(t)) for n, t in state.tables.items()),
                           tuple(state.objects.items())))

    def add_commits(self, tips: Iterable[Commit]) -> None:
        todo: list[Commit] = []
        stack = [c for c in tips if c is not None]
        seen: set[int] = set()
        while stack:
            c = stack.pop()
            if self._known(c) or id(c) in seen:
                continue
            seen.add(id(c))
            todo.append(c)
            stack.extend(c.parents)
        for c in sorted(todo, key=lambda c: (c.gen, c.seq)):      # parents first
            self.add_state(c.state, c.parents[0].state if c.parents else None)
            self._emit(c, (4, c.seq, c.ts, self._pid(c.state), [self._pid(p) for p in c.parents],
                           c.author, c.kind))

    def pid_of(self, obj: Any) -> int:
        return self._pid(obj)

    def flush(self) -> None:
        """Append, fsync, then mark every written object as persisted."""
        new = not self.path.exists() or self.length == 0
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, self.length if not new else 0)      # cut debris of an interrupted checkpoint
            os.lseek(fd, 0, os.SEEK_END)
            data = bytearray()
            if new:
                import io
                hb = io.BytesIO()
                write_header(hb, NODES_MAGIC, NODES_VERSION)
                data += hb.getvalue()
            for chunk in self._buf:
                data += chunk
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            self._fsync(fd)
            self.length = (self.length if not new else 0) + len(data)
        finally:
            os.close(fd)
        if new:
            fsync_directory(self.path.parent)
        for obj, pid in self._pending.values():
            obj.pid = pid
        self._pending.clear()
        self._buf.clear()


def _file_version(path: Path) -> int:
    with open(path, "rb") as f:
        return read_header(f.read(HEADER_LEN), NODES_MAGIC, NODES_READABLE, path=path)


def load_nodes(path: Path, length: int, root: Commit, *,
               progress: Callable[[int, int], None] | None = None) -> list[Any]:
    """Rebuild every object of the node file's first ``length`` bytes, indexed by pid.

    ``root`` is the store's initial empty commit: never written, referenced as pid -1."""
    with open(path, "rb") as f:
        data = f.read(length)
    if len(data) < length:
        raise CorruptDatabase(f"{path}: node file is shorter ({len(data)} bytes) than its manifest says ({length})")
    version = read_header(data, NODES_MAGIC, NODES_READABLE, path=path)
    payloads, end, torn = scan_records(data, HEADER_LEN, path=path, copy=False)
    if torn or end != length:
        raise CorruptDatabase(f"{path}: node file damaged at byte {end} (expected {length} good bytes)")
    objs: list[Any] = []
    # A leaf becomes a Leaf object only when its parent's record arrives, so the leaves
    # under one inner node sit side by side in memory instead of one per 128 decoded
    # rows: copying an inner node's children (every write path does) stays cache-friendly.
    pending: dict[int, tuple[Sequence, Sequence]] = {}

    def node(pid: int) -> Any:
        obj = objs[pid]
        if obj is None:
            keys, values = pending.pop(pid)
            obj = objs[pid] = Leaf(keys, values, pid)
        return obj

    total = len(payloads)
    for i, payload in enumerate(payloads):
        rec = codec.unpack(payload, where=f"node {i} of {path}")
        kind = rec[0]
        obj: Any = None
        if kind == 0:
            pending[i] = (_row_keys(rec[1], rec[2]), tuple(rec[2]))
        elif kind == 5 and version >= _DELTAS_SINCE:
            pending[i] = _delta_leaf(objs, pending, rec, f"{path}: node {i}")
        elif kind == 1:
            obj = Inner(tuple(rec[1]), tuple([node(c) for c in rec[2]]), tuple(rec[3]))
        elif kind == 2:
            _, schema, rows_root, idx, next_rowid = rec
            obj = Table(TableSchema.from_plain(schema), _tree(node, rows_root),
                        {n: _tree(node, r) for n, r in idx}, next_rowid)
        elif kind == 3:
            obj = DbState(immutables.Map({n: objs[p] for n, p in rec[1]}), immutables.Map(dict(rec[2])))
        elif kind == 4:
            _, seq, ts, state, parents, author, ckind = rec
            obj = Commit(seq, ts, objs[state], tuple(root if p == _NONE else objs[p] for p in parents),
                         tuple(author) if author is not None else None, ckind)
        else:
            raise CorruptDatabase(f"{path}: unknown record kind {kind} at node {i}")
        if obj is not None:
            obj.pid = i
        objs.append(obj)
        if progress is not None and i % 50_000 == 0:
            progress(i, total)
    for pid in list(pending):          # leaves no later record refers to (none in a sound file)
        node(pid)
    return objs


def _delta_leaf(objs: list[Any], pending: dict[int, tuple[Sequence, Sequence]], rec: tuple,
                where: str) -> tuple[Sequence, list]:
    """A kind-5 record: the keys and values of a leaf that is its base leaf with some values
    replaced; the keys are the base's own object, as they were in memory."""
    _, base_pid, positions, values = rec
    base = objs[base_pid] if 0 <= base_pid < len(objs) else None
    if type(base) is Leaf:
        keys, base_values = base.keys, base.values
    elif base is None and base_pid in pending:
        keys, base_values = pending[base_pid]
    else:
        raise CorruptDatabase(f"{where}: bad leaf delta (base {base_pid} is not a leaf)")
    if len(positions) != len(values):
        raise CorruptDatabase(f"{where}: bad leaf delta ({len(positions)} positions, {len(values)} values)")
    out = list(base_values)
    for i, v in zip(positions, values):
        if not 0 <= i < len(out):
            raise CorruptDatabase(f"{where}: leaf delta position {i} out of range")
        out[i] = v
    return keys, out


def _row_keys(keys: Sequence, rows: Sequence) -> list:
    """A leaf's keys, each the same object as its row's first column when they are equal
    (an INTEGER PRIMARY KEY), as in memory before the restart: one int per row, not two."""
    return [r[0] if type(r) is tuple and r and type(r[0]) is type(k) and r[0] == k else k
            for k, r in zip(keys, rows)]


def _tree(node: Callable[[int], Any], pid: int) -> PTree:
    return PTree.EMPTY if pid == _NONE else PTree(node(pid))
