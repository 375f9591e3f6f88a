"""The versioned store: branches of commits over persistent states, made durable.

Concurrency: readers take a snapshot (an immutable state) and never block.
Writers serialise on one lock per database: under it a writer builds its new
state, appends its log record to the group-commit buffer and links the commit
into the branch as *pending*; it then waits for the fsync outside the lock, so
concurrent writers share one fsync, and only then is the commit *visible*.
Nothing a reader sees was not durable first.

Files in the database directory:
    LOCK                      flock'd by the one process that has it open
    wal-NNNNNNNN.log          log segments (see ``wal``), replayed from the manifest's ``wal_start``
    nodes.dat                 append-only node file (see ``checkpoint``)
    checkpoint-NNNNNNNN.manifest   the latest two checkpoints; the newer one wins
"""
from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import (BranchExists, BranchInUse, BranchNotFound, CorruptDatabase, DatabaseClosed,
                      DatabaseLocked, HistoryExpired, InvalidMerge, InvalidParameter, MergeConflict,
                      ReadOnlyBranch, StorageFailed, WriteConflict)
from ..gcpause import freeze_survivors, paused
from . import codec
from .branches import CREATING, DELETING, Branch, BranchInfo, BranchStats, check_branch_name
from .checkpoint import (NodeWriter, list_manifests, load_nodes, manifest_path, read_manifest,
                         write_manifest)
from .commits import Commit
from .merge import MergeResult, check_strategy, merge_base, plan_merge
from .state import EMPTY_STATE, DbState, StateView
from .txn import Transaction, apply_op
from .wal import LogWriter, list_segments, read_segment, segment_path

log = logging.getLogger("helios.storage")

MAIN = "main"
NODES_FILE = "nodes.dat"
DEFAULT_CHECKPOINT_BYTES = 64 << 20

LogTicket = tuple[LogWriter, int] | None    # a logged record: its segment and sequence number


MAX_SECONDS = 253_402_300_799          # 9999-12-31T23:59:59Z: a bound every client can represent


def to_micros(seconds: float) -> int:
    """Unix seconds -> microseconds; a moment outside years 1970-9999 (or NaN) is a bad request."""
    if type(seconds) is float and 0.0 <= seconds <= MAX_SECONDS:     # the clock's case: every commit
        return round(seconds * 1_000_000)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or \
            not (0 <= seconds <= MAX_SECONDS):          # NaN fails every comparison
        raise InvalidParameter(f"a point in time must be Unix seconds between 0 and {MAX_SECONDS}, "
                               f"got {seconds!r}")
    return int(round(seconds * 1_000_000))


def to_seconds(micros: int) -> float:
    return micros / 1_000_000


class Snapshot(StateView):
    """A branch's state at one commit: what a query reads."""

    __slots__ = ("branch", "commit")

    def __init__(self, branch: str, commit: Commit) -> None:
        super().__init__(commit.state)
        self.branch = branch
        self.commit = commit

    @property
    def timestamp(self) -> float:
        return to_seconds(self.commit.ts)


@dataclass
class StoreStats:
    commits: int = 0
    checkpoints: int = 0
    last_checkpoint_seconds: float = 0.0
    last_checkpoint_bytes: int = 0


class WriteBlock:
    """The context manager ``Store.write`` returns: the writer lock is held from enter to exit.

    A plain class rather than a ``@contextmanager`` generator: this is the per-commit path,
    and it allocates less (fewer objects, less garbage-collector work per commit).
    """

    __slots__ = ("_store", "_branch", "_author", "_b", "_tx", "_pending")

    def __init__(self, store: Store, branch: str, author: Any) -> None:
        self._store = store
        self._branch = branch
        self._author = author
        self._b: Branch | None = None
        self._tx: Transaction | None = None
        self._pending: tuple[Branch, LogTicket, int] | None = None

    def __enter__(self) -> Transaction:
        store = self._store
        store._wlock.acquire()
        try:
            if store._closed or store._failed is not None:
                store._check_writable()
            b = store._branch(self._branch)
            if b.read_only:
                raise ReadOnlyBranch(f"branch {self._branch!r} is read-only")
            tip = b.tip
            self._b = b
            self._tx = Transaction(self._branch, tip.state, self._author, base=tip, resolve=store._resolve,
                                   track=False, commit_fn=self._commit)
        except BaseException:
            store._wlock.release()
            raise
        return self._tx

    def _commit(self, tx: Transaction) -> None:
        b = self._b
        assert b is not None
        _, ticket, count = self._store._commit_locked(b, tx.state, tx.ops, tx.author)
        self._pending = b, ticket, count

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        tx, self._tx = self._tx, None          # tx -> self._commit -> self: break the cycle
        assert tx is not None, "a WriteBlock is entered once"
        try:
            if exc_type is not None:
                tx.rollback()
                return
            if not tx.done:
                tx.commit()
        finally:
            self._store._wlock.release()
        if self._pending is not None:
            self._store._publish(*self._pending)


class Store:
    """One database: a directory on disk, or nothing at all for ``":memory:"``."""

    def __init__(self, path: str | os.PathLike | None = None, *, retention: float | None = None,
                 clock: Callable[[], float] = time.time, fsync: Callable[[int], None] | None = None,
                 checkpoint_bytes: int = DEFAULT_CHECKPOINT_BYTES,
                 progress: Callable[[str], None] | None = None) -> None:
        self.path = None if path in (None, ":memory:") else Path(path)
        self.retention_us = None if retention is None else to_micros(retention)
        self._next_prune = 0                   # in memory: when commits next apply the retention
        self._clock = clock
        self._fsync = fsync or (lambda fd: os.fsync(fd))     # looked up per call: tests may patch os.fsync
        self.checkpoint_bytes = checkpoint_bytes
        self._progress = progress or (lambda msg: log.info("%s", msg))
        self._wlock = threading.RLock()
        self._pack = codec.packer()                # log records are packed under the writer lock
        self._ckpt_lock = threading.Lock()
        self._vis_lock = threading.Lock()
        self._failed: BaseException | None = None
        self._closed = False
        self._last_ts = 0
        self._next_seq = 1
        self.root_commit = Commit(0, 0, EMPTY_STATE, (), None, "init")
        self.root_commit.pid = -1          # implicit in every database: never written
        self._by_seq: dict[int, Commit] = {0: self.root_commit}
        self._branches: dict[str, Branch] = {}
        self._log: LogWriter | None = None
        self._lock_fd: int | None = None
        self._manifest_no = 0
        self._nodes_len = 0
        self._nodes_count = 0
        self._wal_totals = [0, 0, 0, 0.0]          # records, fsyncs, bytes, fsync seconds of closed segments
        self.stats = StoreStats()
        if self.path is None:
            self._new_main(self._next_ts())
        else:
            self._open_dir()

    # ---------------------------------------------------------------- opening
    def _new_main(self, created_at: int = 0, bid: str | None = None) -> Branch:
        b = self._branches[MAIN] = Branch(MAIN, parent=None, created_at=created_at, base=self.root_commit,
                                          snapshot_ts=0, id=bid)
        return b

    def _open_dir(self) -> None:
        assert self.path is not None
        if self.path.exists() and not self.path.is_dir():
            raise CorruptDatabase(f"{self.path} exists and is not a HeliosDB database directory")
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise DatabaseLocked(f"database {self.path} is open in another process "
                                 f"(its LOCK file is held); close that process first") from None
        try:
            with paused():
                wal_start = self._load_checkpoint()
                replayed = self._replay(wal_start)
            # A database's birth, or a crash before its birth record was durable: a log with
            # records always starts with it, and a later one would replace main's history.
            fresh = not self._manifest_no and not replayed
            self._prune()
            freeze_survivors()                 # the recovered tree is long-lived: keep the GC off it
            segs = list_segments(self.path)
            self._log = LogWriter(self.path, (max(segs) + 1) if segs else max(wal_start, 1), fsync=self._fsync)
            if fresh:                                  # the database's birth, so main has a creation time
                main = self._branches[MAIN]
                main.created_at = self._next_ts()
                self._sync(self._log_record(("i", main.id, main.created_at)))
        except BaseException:
            self._release_lock()
            raise

    def _load_checkpoint(self) -> int:
        """Load the newest readable checkpoint; returns the first log segment to replay."""
        assert self.path is not None
        numbers = list_manifests(self.path)
        if not numbers:
            self._new_main()
            segs = list_segments(self.path)
            return min(segs) if segs else 1
        errors = []
        for number in reversed(numbers):
            try:
                m = read_manifest(self.path, number)
                if m["wal_start"] > 1 and number != numbers[-1] and \
                        not segment_path(self.path, m["wal_start"]).exists():
                    raise CorruptDatabase(f"log segments after checkpoint {number} are gone")
                self._restore(m)
                self._manifest_no = number
                if errors:
                    log.warning("checkpoint %s unreadable (%s); recovered from checkpoint %s",
                                numbers[-1], errors[0], number)
                return m["wal_start"]
            except CorruptDatabase as exc:
                errors.append(exc)
                self._branches.clear()
                self._by_seq = {0: self.root_commit}
        raise CorruptDatabase(f"no readable checkpoint in {self.path}: {errors[0]}")

    def _restore(self, m: dict) -> None:
        assert self.path is not None
        t0 = time.monotonic()
        nodes_path = self.path / m["nodes_file"]
        mb = m["nodes_len"] / 1e6
        objs = load_nodes(nodes_path, m["nodes_len"], self.root_commit, progress=lambda i, n: self._progress(
            f"recovery: loaded {i:,} of {n:,} checkpoint records ({mb:.1f} MB checkpoint)"))
        self._nodes_len, self._nodes_count = m["nodes_len"], len(objs)
        for obj in objs:
            if isinstance(obj, Commit):
                self._by_seq[obj.seq] = obj
        self._next_seq, self._last_ts = m["next_seq"], m["last_ts"]
        for (name, bid, parent, created_at, snapshot_ts, base_pid, tip_pid, read_only, isolated,
             horizon) in m["branches"]:
            base = self.root_commit if base_pid == -1 else objs[base_pid]
            b = Branch(name, parent=parent, created_at=created_at, base=base, snapshot_ts=snapshot_ts,
                       read_only=read_only, isolated=isolated, id=bid)
            b.horizon = horizon
            chain = []
            c = None if tip_pid == -1 else objs[tip_pid]
            while c is not None and c is not base:
                chain.append(c)
                c = c.parents[0] if c.parents else None
            for c in reversed(chain):
                b.add(c)
            b.visible = len(b.commits)
            self._branches[name] = b
        self._progress(f"recovery: checkpoint of {len(objs):,} records ({mb:.1f} MB) loaded in "
                       f"{time.monotonic() - t0:.2f}s")

    def _replay(self, wal_start: int) -> int:
        """Apply the log from segment ``wal_start`` on; returns how many records it held."""
        assert self.path is not None
        replayed = 0
        numbers = [n for n in list_segments(self.path) if n >= wal_start]
        if numbers != list(range(wal_start, wal_start + len(numbers))) or (self._manifest_no and not numbers):
            missing = sorted(set(range(wal_start, max(numbers, default=wal_start) + 1)) - set(numbers))
            raise CorruptDatabase(f"{self.path}: log segment(s) {missing} are missing: "
                                  f"the commits they held cannot be recovered")
        for number in numbers:
            path = segment_path(self.path, number)
            records = read_segment(path, repair=True, closed=number != numbers[-1])
            mb = path.stat().st_size / 1e6
            done_bytes = 0
            for i, payload in enumerate(records):
                self._apply_record(codec.unpack(payload, where=f"log record {i} of {path}"))
                done_bytes += len(payload) + 8
                if i and i % 10_000 == 0:
                    self._progress(f"recovery: replayed {i:,} of {len(records):,} records of {path.name} "
                                   f"({done_bytes / 1e6:.1f} of {mb:.1f} MB)")
            if records:
                self._progress(f"recovery: replayed {len(records):,} records of {path.name} ({mb:.1f} MB)")
            replayed += len(records)
        return replayed

    def _apply_record(self, rec: tuple) -> None:
        kind = rec[0]
        if kind == "c":
            _, branch, seq, ts, author, ckind, merge_parent, ops = rec
            b = self._branches[branch]
            state = b.tip.state
            for op in ops:
                state = apply_op(state, op, self._resolve)
            parents = (b.tip,) + ((self._by_seq[merge_parent],) if merge_parent is not None else ())
            c = Commit(seq, ts, state, parents, tuple(author) if author is not None else None, ckind)
            b.add(c)
            b.visible = len(b.commits)
            self._by_seq[seq] = c
            self._next_seq = max(self._next_seq, seq + 1)
            self._last_ts = max(self._last_ts, ts)
        elif kind == "b":
            _, name, bid, parent, created_at, snapshot_ts, base_seq, read_only, isolated = rec
            self._branches[name] = Branch(name, parent=parent, created_at=created_at,
                                          base=self._by_seq[base_seq], snapshot_ts=snapshot_ts,
                                          read_only=read_only, isolated=isolated, id=bid)
            self._last_ts = max(self._last_ts, created_at)
        elif kind == "x":
            self._branches.pop(rec[1], None)
        elif kind == "i":
            _, bid, created_at = rec
            self._new_main(created_at, bid)
            self._last_ts = max(self._last_ts, created_at)
        else:
            raise CorruptDatabase(f"unknown log record kind {kind!r}")

    def _resolve(self, seq: int) -> Commit:
        return self._by_seq[seq]

    # ---------------------------------------------------------------- helpers
    def _next_ts(self) -> int:
        ts = to_micros(self._clock())
        if ts <= self._last_ts:
            ts = self._last_ts + 1
        self._last_ts = ts
        return ts

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosed("the database is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._failed is not None:
            raise StorageFailed(f"the store refuses writes after a storage failure: {self._failed}; "
                                f"reads still work — fix the disk and reopen the database")

    def _branch(self, name: str, *, read: bool = False) -> Branch:
        """The branch ``name`` for a writer, or with ``read`` for a reader. Readers see only
        what is durable: a branch whose creation is not yet durable exists for nobody, one
        whose deletion is not yet durable still exists for readers (not for writers)."""
        b = self._branches.get(name)
        if b is None or (b.pending is not None and (b.pending == CREATING or not read)):
            raise BranchNotFound(f"branch {name!r} not found")
        return b

    def _log_record(self, rec: tuple) -> LogTicket:
        """Append a record (under the writer lock); ``_sync`` the ticket to wait until it is durable.

        The ticket names the segment too: a checkpoint may switch to a new one
        between the append and the sync.
        """
        log = self._log
        if log is None:
            return None
        try:
            return log, log.append(self._pack(rec))
        except StorageFailed as exc:
            self._failed = exc
            raise

    def _sync(self, ticket: LogTicket) -> None:
        if ticket is None:
            return
        log, seq = ticket
        try:
            log.sync(seq)
        except StorageFailed as exc:
            self._failed = self._failed or exc
            raise

    def _commit_locked(self, b: Branch, state: DbState, ops: list, author: Any, kind: str = "write",
                       merge_parent: Commit | None = None) -> tuple[Commit, LogTicket, int]:
        ts = self._next_ts()
        seq = self._next_seq
        self._next_seq += 1
        author = tuple(author) if author is not None else None
        tip = b.tip
        if merge_parent is None:
            ticket = self._log_record(("c", b.name, seq, ts, author, kind, None, ops))
            parents: tuple[Commit, ...] = (tip,)
        else:
            ticket = self._log_record(("c", b.name, seq, ts, author, kind, merge_parent.seq, ops))
            parents = (tip, merge_parent)
        c = Commit(seq, ts, state, parents, author, kind)
        b.add(c)
        self._by_seq[seq] = c
        self.stats.commits += 1
        if ticket is None:
            b.visible = len(b.commits)
        return c, ticket, len(b.commits)

    def _publish(self, b: Branch, ticket: LogTicket, count: int) -> None:
        """Wait for durability (outside the writer lock: group commit), then let readers see it."""
        self._sync(ticket)
        with self._vis_lock:
            if count > b.visible:
                b.visible = count
        if self._log is not None and self._log.size > self.checkpoint_bytes:
            self._periodic_checkpoint()
        elif self.path is None and self.retention_us is not None:
            self._prune_in_memory()

    def _prune_in_memory(self) -> None:
        """A store in memory has no checkpoints to apply its retention at: its commits do,
        at most once per tenth of the window (and per second), so pruning stays cheap."""
        now = to_micros(self._clock())
        if now >= self._next_prune:
            assert self.retention_us is not None
            self._next_prune = now + max(1_000_000, self.retention_us // 10)
            self._prune()

    def _periodic_checkpoint(self) -> None:
        """The checkpoint a long log asks for. Its failure is not the failure of the commit
        that asked (durable and visible already): the store refuses the next write instead."""
        try:
            self.checkpoint()
        except StorageFailed as exc:
            log.error("periodic checkpoint failed; the store refuses writes from now on: %s", exc)

    # ---------------------------------------------------------------- reads
    def snapshot(self, branch: str = MAIN, as_of: float | None = None) -> Snapshot:
        self._check_open()
        b = self._branch(branch, read=True)
        ts = None if as_of is None else to_micros(as_of)
        with self._vis_lock:        # a branch's commit list is never read while pruning edits it
            commit = b.head if ts is None else self._commit_at(b, ts)
        return Snapshot(branch, commit)

    def _commit_at(self, b: Branch, ts: int) -> Commit:
        if b.horizon is not None and ts < b.horizon:
            raise HistoryExpired(f"history of branch {b.name!r} before {to_seconds(b.horizon):.6f} "
                                 f"is no longer retained")
        c = b.own_commit_at(ts)
        if c is not None:
            return c
        if ts >= b.snapshot_ts or b.parent is None:
            return b.base
        return self._commit_at(self._branch(b.parent, read=True), ts)

    # ---------------------------------------------------------------- writes
    def write(self, branch: str = MAIN, author: Any = None) -> WriteBlock:
        """An autocommit write: ``with store.write() as tx`` holds the writer lock, so it never
        conflicts. Commits when the block ends normally (and returns after the fsync), rolls
        back if it raises."""
        if self._closed or self._failed is not None:
            self._check_writable()
        return WriteBlock(self, branch, author)

    def begin(self, branch: str = MAIN, author: Any = None) -> Transaction:
        """An optimistic (snapshot-isolated) transaction; commit fails with WriteConflict
        if a concurrent commit changed a row or table it wrote."""
        self._check_writable()
        b = self._branch(branch)
        if b.read_only:
            raise ReadOnlyBranch(f"branch {branch!r} is read-only")
        head = b.head
        return Transaction(branch, head.state, author, base=head, resolve=self._resolve,
                           commit_fn=self._commit_txn)

    def _commit_txn(self, tx: Transaction) -> Commit:
        with self._wlock:
            self._check_writable()
            b = self._branch(tx.branch)
            if b.read_only:
                raise ReadOnlyBranch(f"branch {b.name!r} is read-only")
            tip = b.tip
            state = tx.state
            if tip is not tx.base:
                state = self._rebase(tx, tip)
            c, ticket, count = self._commit_locked(b, state, tx.ops, tx.author)
        self._publish(b, ticket, count)
        return c

    def _rebase(self, tx: Transaction, tip: Commit) -> DbState:
        """Replay ``tx`` onto ``tip`` unless a concurrent commit touched what it wrote."""
        old, new = tx.base.state, tip.state
        for name in tx.schema_touched:
            if name.startswith("\0object:"):
                key = name[len("\0object:"):]
                if old.objects.get(key) is not new.objects.get(key):
                    raise WriteConflict(f"catalogue object {key!r} changed concurrently; retry")
            elif old.tables.get(name) is not new.tables.get(name):
                raise WriteConflict(f"table {name!r} changed concurrently; retry the transaction")
        for name, keys in tx.written.items():
            ot, nt = old.tables.get(name), new.tables.get(name)
            if ot is nt:
                continue
            if ot is None or nt is None or ot.schema != nt.schema:
                raise WriteConflict(f"table {name!r} changed concurrently; retry the transaction")
            for key, _, _ in ot.rows.diff(nt.rows):
                if key in keys:
                    raise WriteConflict(f"row {name}:{key} changed concurrently; retry the transaction")
        state = new
        for op in tx.ops:
            state = apply_op(state, op, self._resolve)
        _check_unique_written(state, tx.written)
        return state

    # ---------------------------------------------------------------- branches
    def create_branch(self, name: str, parent: str = MAIN, snapshot_id: float | None = None, *,
                      read_only: bool = False, isolated: bool = False) -> BranchInfo:
        check_branch_name(name)
        self._check_writable()
        with self._wlock:
            self._check_writable()
            if name in self._branches:
                raise BranchExists(f"branch {name!r} already exists")
            p = self._branch(parent)
            if snapshot_id is None:
                base, snap_ts = p.head, None
            else:
                snap_ts = to_micros(snapshot_id)
                base = self._commit_at(p, snap_ts)
            created = self._next_ts()
            snap_ts = created if snap_ts is None else min(snap_ts, created)
            b = Branch(name, parent=parent, created_at=created, base=base, snapshot_ts=snap_ts,
                       read_only=bool(read_only), isolated=bool(isolated))
            ticket = self._log_record(("b", name, b.id, parent, created, snap_ts, base.seq,
                                       b.read_only, b.isolated))
            b.pending = CREATING               # the name is taken; the branch is not shown yet
            self._branches[name] = b
        try:
            self._sync(ticket)
        except StorageFailed:
            with self._wlock:                  # never acknowledged: nobody may see it
                if self._branches.get(name) is b:
                    del self._branches[name]
            raise
        finally:                               # durable (an interrupt waits for the flush)
            if self._branches.get(name) is b:
                b.pending = None
        return self.branch_info(name)

    def delete_branch(self, name: str) -> None:
        self._check_writable()
        with self._wlock:
            self._check_writable()
            gone = self._branch(name)
            if name == MAIN:
                raise BranchInUse("the main branch cannot be deleted")
            children = sorted(b.name for b in self._branches.values() if b.parent == name and b.pending != DELETING)
            if children:
                raise BranchInUse(f"branch {name!r} has child branches ({', '.join(children)}); "
                                  f"delete them first")
            ticket = self._log_record(("x", name))
            gone.pending = DELETING            # writers no longer find it; readers do until it is durable
        try:
            self._sync(ticket)
        except StorageFailed:
            gone.pending = None                # never acknowledged: the branch stays
            raise
        finally:
            with self._wlock:
                if gone.pending == DELETING and self._branches.get(name) is gone:
                    del self._branches[name]

    def list_branches(self) -> list[BranchInfo]:
        self._check_open()
        out = []
        for name in sorted(self.branch_names(), key=lambda n: (n != MAIN, n)):
            try:
                out.append(self.branch_info(name))
            except BranchNotFound:             # deleted meanwhile
                pass
        return out

    def get_branch(self, name: str) -> BranchInfo:
        self._check_open()
        return self.branch_info(name)

    def branch_info(self, name: str) -> BranchInfo:
        b = self._branch(name, read=True)
        with self._vis_lock:
            head = b.head
        state = head.state
        stats = BranchStats(total_keys=state.total_rows(), size_bytes=_estimate_bytes(state),
                            last_modified=to_seconds(max(head.ts, b.created_at)))
        return BranchInfo(id=b.id, name=b.name, parent=b.parent, created_at=to_seconds(b.created_at),
                          snapshot_id=to_seconds(b.snapshot_ts), state="Active", read_only=b.read_only,
                          isolated=b.isolated, stats=stats)

    def branch_names(self) -> list[str]:
        """The branches readers see (durable ones)."""
        return [name for name, b in list(self._branches.items()) if b.pending != CREATING]

    # ---------------------------------------------------------------- merge
    def merge(self, source: str, target: str = MAIN, strategy: str = "Auto", author: Any = None) -> MergeResult:
        strategy = check_strategy(strategy)
        self._check_writable()
        with self._wlock:
            self._check_writable()
            s, t = self._branch(source), self._branch(target)
            if s is t:
                raise InvalidMerge(f"cannot merge branch {source!r} into itself")
            if t.read_only:
                raise InvalidMerge(f"cannot merge into read-only branch {target!r}")
            s_tip, t_tip = s.tip, t.tip
            base = merge_base(s_tip, t_tip)
            if base is s_tip:
                return MergeResult(to_seconds(t_tip.ts), 0, [], True,
                                   f"Branch '{target}' already contains every change of '{source}'")
            plan = plan_merge(base, s_tip, t_tip, strategy)
            if strategy == "Manual" and plan.conflicts:
                raise MergeConflict(
                    f"merge of '{source}' into '{target}' has {len(plan.conflicts)} conflicts; "
                    f"nothing was changed (resolve them, or merge with Ours, Theirs or Auto)",
                    {"conflicts": [c.to_dict() for c in plan.conflicts]})
            # A table taken whole is the source tip's: pruning may have dropped it from _by_seq.
            state = plan.apply(t_tip.state, lambda seq: s_tip if seq == s_tip.seq else self._resolve(seq))
            _check_unique_written(state, plan.written())
            c, ticket, count = self._commit_locked(t, state, plan.ops, author, "merge", s_tip)
        self._publish(t, ticket, count)
        n = len(plan.conflicts)
        return MergeResult(to_seconds(c.ts), plan.merged_keys, plan.conflicts, True,
                           f"Successfully merged {plan.merged_keys} keys from '{source}' into "
                           f"'{target}' with {n} conflict{'s' if n != 1 else ''} resolved")

    # ---------------------------------------------------------------- retention
    def _prune(self) -> None:
        """Drop commits older than the retention window (keeping the one in force at its edge).

        Reads before the edge raise HistoryExpired; merges must not notice, so the commit
        graph is cut (freeing the history behind it) only where no merge base can lie:
        on main, below the oldest commit another branch forked from. A branch's own
        commits keep their parents: a merge base may be any of them."""
        if self.retention_us is None:
            return
        cutoff = to_micros(self._clock()) - self.retention_us
        with self._wlock, self._vis_lock:
            for b in self._branches.values():
                i = min(b.own_commit_index_before(cutoff), b.visible - 1) if b.visible else -1
                if i > 0:
                    for c in b.commits[:i]:
                        self._by_seq.pop(c.seq, None)
                    del b.commits[:i]
                    del b.stamps[:i]
                    b.visible -= i
                if b.created_at < cutoff:
                    b.horizon = max(b.horizon or 0, cutoff)
            main = self._branches[MAIN]
            if main.commits:
                _cut_below_forks(main.commits[0], {id(b.base) for b in self._branches.values() if b is not main})

    # ---------------------------------------------------------------- checkpoint
    def checkpoint(self) -> None:
        """Persist every retained commit and branch; then the log restarts. In memory: only
        apply the retention."""
        if self.path is None:
            self._prune()
            return
        self._check_writable()
        with self._ckpt_lock:
            t0 = time.monotonic()
            self._prune()
            with self._wlock:
                self._check_writable()
                assert self._log is not None
                old_log = self._log
                try:
                    old_log.close()                    # every buffered record written and fsync'd
                    self._add_wal_totals(old_log)
                    self._log = LogWriter(self.path, old_log.number + 1, fsync=self._fsync)
                except StorageFailed as exc:
                    self._failed = exc
                    raise
                for name, b in list(self._branches.items()):   # all of it is durable now
                    b.visible = len(b.commits)
                    if b.pending == DELETING:
                        del self._branches[name]
                    b.pending = None
                branches = [(b.name, b.id, b.parent, b.created_at, b.snapshot_ts, b.base, b.tip,
                             b.read_only, b.isolated, b.horizon) for b in self._branches.values()]
                wal_start, next_seq, last_ts = self._log.number, self._next_seq, self._last_ts
            writer = NodeWriter(self.path / NODES_FILE, self._nodes_len, self._nodes_count, fsync=self._fsync)
            try:
                writer.add_commits([b[5] for b in branches] + [b[6] for b in branches])
                before = writer.length
                writer.flush()
                manifest = {"nodes_file": NODES_FILE, "nodes_len": writer.length, "wal_start": wal_start,
                            "next_seq": next_seq, "last_ts": last_ts,
                            "branches": [(n, i, p, ca, st,
                                          writer.pid_of(base),
                                          -1 if tip is base else writer.pid_of(tip), ro, iso, hz)
                                         for n, i, p, ca, st, base, tip, ro, iso, hz in branches]}
                write_manifest(self.path, self._manifest_no + 1, manifest, fsync=self._fsync)
            except OSError as exc:
                self._failed = StorageFailed(f"checkpoint failed: {exc}")
                raise self._failed from exc
            self._manifest_no += 1
            self._nodes_len, self._nodes_count = writer.length, writer.count
            self._cleanup(wal_start)
            self.stats.checkpoints += 1
            self.stats.last_checkpoint_seconds = time.monotonic() - t0
            self.stats.last_checkpoint_bytes = writer.length - before

    def _cleanup(self, wal_start: int) -> None:
        """Keep the newest two manifests and the log segments the older one needs."""
        assert self.path is not None
        manifests = list_manifests(self.path)
        keep = manifests[-2:]
        for n in manifests[:-2]:
            manifest_path(self.path, n).unlink(missing_ok=True)
        oldest_needed = wal_start
        if len(keep) == 2:
            try:
                oldest_needed = read_manifest(self.path, keep[0])["wal_start"]
            except CorruptDatabase:
                oldest_needed = wal_start
        for n in list_segments(self.path):
            if n < oldest_needed:
                segment_path(self.path, n).unlink(missing_ok=True)

    # ---------------------------------------------------------------- closing
    def close(self, checkpoint: bool = True) -> None:
        """Checkpoint (when healthy and asked), close the log, release the lock. Safe twice.

        ``checkpoint=False`` is the fast exit: the log already holds every
        acknowledged write, so nothing is lost, only recovery replays more."""
        if self._closed:
            return
        try:
            if checkpoint and self.path is not None and self._failed is None:
                self.checkpoint()
        finally:
            self._closed = True
            if self._log is not None:
                try:
                    self._log.close()
                except StorageFailed:
                    pass
            self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def failed(self) -> BaseException | None:
        return self._failed

    def _add_wal_totals(self, log: LogWriter) -> None:
        st = log.stats
        for i, v in enumerate((st.records, st.fsyncs, st.bytes, st.fsync_seconds)):
            self._wal_totals[i] += v

    def metrics(self) -> dict[str, float]:
        """Counters for monitoring (the server exports them in Prometheus format)."""
        records, fsyncs, nbytes, fsync_s = self._wal_totals
        if self._log is not None:
            st = self._log.stats
            records, fsyncs, nbytes, fsync_s = records + st.records, fsyncs + st.fsyncs, \
                nbytes + st.bytes, fsync_s + st.fsync_seconds
        return {"commits": self.stats.commits, "log_records": records, "fsyncs": fsyncs, "log_bytes": nbytes,
                "fsync_seconds": fsync_s, "checkpoints": self.stats.checkpoints,
                "last_checkpoint_seconds": self.stats.last_checkpoint_seconds,
                "last_checkpoint_bytes": self.stats.last_checkpoint_bytes,
                "branches": len(self._branches), "failed": 0 if self._failed is None else 1}

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _cut_below_forks(first: Commit, forks: set[int]) -> None:
    """Drop the history behind ``first`` (down its first parents) below the oldest commit in
    ``forks`` (object ids), or behind ``first`` itself if none is there. Every merge base lies
    at or above that commit: it is an ancestor of every branch's tip."""
    cut = c = first
    while c.parents:
        c = c.parents[0]
        if id(c) in forks:
            cut = c
    cut.parents = ()


def _estimate_bytes(state: DbState) -> int:
    return sum(estimate_table_bytes(t) for t in state.tables.values())


def estimate_table_bytes(table: Any) -> int:
    """Rows times the encoded size of a small sample: good to a few percent.

    Encoding the sample costs ~30 µs, a tenth of a durable branch creation (which
    reports its stats), so the figure is kept on the table version it describes.
    """
    cached = table.size_estimate
    if cached is not None:
        return cached
    n = len(table)
    estimate = 0
    if n:
        sample: list = []
        for _, rows in table.rows.batches():
            sample.extend(rows[:64])
            break
        estimate = n * max(1, len(codec.pack(sample)) // max(1, len(sample)))
    table.size_estimate = estimate
    return estimate


def _check_unique_written(state: DbState, written: dict) -> None:
    """Unique indexes still hold for every row written (table -> keys) by a replayed or
    merged change: the other side may have taken the same values meanwhile."""
    for name, keys in written.items():
        table = state.tables.get(name)
        if table is not None and any(ix.unique for ix in table.schema.indexes):
            for key in keys:
                row = table.rows.get(key)
                if row is not None:
                    table.check_unique(row, key)
