"""The append-only write-ahead log, with group commit.

A log is a directory of segments ``wal-00000001.log``, ``wal-00000002.log``...
Each segment is a ``HELIOWAL`` header followed by CRC-framed records (see
``fileio`` for the framing and the torn-tail rule recovery relies on).

Format v2 (written): one record per flush, framed with a self-checking header
(``fileio``'s checked records), its payload the flush's entries, each
``u32 length | payload``; ``read_segment`` returns the entries.
The checksum covers the whole flush, so a crash mid-flush loses all of it or
none, and any part of an unfinished flush that reached the disk is inside one
torn record (see Preallocation). Format v1 (still read): one framed record per
entry.

Durability contract: ``sync(seq)`` returns only once record ``seq`` and every
record before it have been written and fsync'd, so a caller that acknowledges a
write after ``sync`` never loses it to kill -9 or power loss.

Group commit: concurrent committers share one write + fsync. A ``sync`` that
finds the log idle flushes in its own thread (a lone writer pays no hand-off).
Committers that arrive while a flush is under way queue up and sleep, each on
a lock of its own; when the flush ends, a flusher thread takes everything that
piled up as the next batch, so the disk is kept busy while the committers
(who need the GIL) prepare the batch after it. fsync releases the GIL, so
their CPU work overlaps it. A finished batch's committers are woken one by one,
each waking the next, and only once the next batch is written: the flusher
needs the GIL between its write and its fsync, and a herd of woken threads
would make it wait.

Preallocation: a segment is kept zero-filled a little (``PREALLOCATE``) past
its last record, and records are written in place over those zeros. An fsync
that only overwrites blocks already on disk has no file size or block map to
journal, and on ext4 it took about three quarters of the time of an appending
one (150 vs 205 us on the benchmark machine): every acknowledged write waits
for one. The zeros are what recovery already treats as a torn tail (``fileio``):
it stops there and truncates them away. ``close`` truncates them too, so a
cleanly closed segment ends at its last record.

The zeros are written and fsync'd before any record goes over them (a new
segment gets its first ``FIRST_PREALLOCATE`` with its header; each growth then
adds as much as the segment holds, up to ``PREALLOCATE``, so opening a store
and rotating the log at a checkpoint stay cheap), so whatever part of
an unfinished flush a crash keeps from the disk reads as zeros. Recovery
therefore takes a bad last record for a torn write only if some sector of it
is still all zeros (``fileio``, "Checked records"); a last record damaged in
every sector is ``CorruptDatabase``, not a group of acknowledged commits
dropped in silence. A
flush too big for one record (over ``MAX_RECORD``) is written and fsync'd one
record at a time, so only its last record can be torn. The exception is a
single record longer than ``PREALLOCATE`` (a bulk load): zeroing its place
first would write it twice, so it is written like an append, which relies on
the file system never showing stale blocks after a crash (ext4's default
``data=ordered``, XFS and btrfs all guarantee it). Disk full while growing
fails the log like any failed write.

Failure is permanent: after a failed write or fsync the kernel may already
have dropped the dirty pages and a retried fsync could falsely succeed
("fsyncgate"), so the writer never retries. Every later append and every sync
of a record not yet durable raises ``StorageFailed``; the unacknowledged bytes
are truncated away on a best-effort basis so recovery does not resurrect them.
"""
from __future__ import annotations

import os
import re
import struct
import threading
import time
from _thread import LockType, allocate_lock
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from helios.errors import CorruptDatabase, DatabaseClosed, StorageFailed, UnsupportedFormat
from helios.storage.fileio import (HEADER_SIZE, MAX_RECORD, FsyncFn, all_zero, encode_checked_record,
                                   encode_header, fsync_directory, pwrite_all, read_header,
                                   scan_checked_records, scan_records, write_all)

MAGIC = b"HELIOWAL"
VERSION = 2
SUPPORTED_VERSIONS = frozenset({1, VERSION})
ENTRY = struct.Struct("<I")                 # v2: an entry's length, then its payload
MAX_ENTRY = MAX_RECORD - ENTRY.size         # one entry alone always fits in a record

PREALLOCATE = 1 << 20          # the most zeros one growth adds: at most one growth (size change) per MiB
FIRST_PREALLOCATE = 64 << 10   # zeros a new segment starts with

_SEGMENT = re.compile(r"wal-(\d{8,})\.log")


def segment_path(directory: str | os.PathLike[str], number: int) -> Path:
    """The path of segment ``number`` (zero-padded so names sort like numbers)."""
    if number < 1:
        raise ValueError(f"segment numbers start at 1, got {number}")
    return Path(directory) / f"wal-{number:08d}.log"


def list_segments(directory: str | os.PathLike[str]) -> list[int]:
    """Sorted numbers of the segments present in ``directory``."""
    numbers = []
    for name in os.listdir(directory):
        match = _SEGMENT.fullmatch(name)
        if match:
            numbers.append(int(match.group(1)))
    return sorted(numbers)


def _is_torn_header(data: bytes) -> bool:
    """A file a crash cut short while it was created: all zeros, or a strict prefix of a header.

    Nothing can have been acknowledged in such a file: ``LogWriter`` fsyncs the
    header before it accepts the first append.
    """
    if all_zero(data):
        return True
    return len(data) < HEADER_SIZE and any(encode_header(MAGIC, version).startswith(data)
                                           for version in SUPPORTED_VERSIONS)


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_segment(path: str | os.PathLike[str], *, repair: bool = True, closed: bool = False) -> list[bytes]:
    """Payloads of the segment's good records, in append order.

    A torn tail is dropped and, with ``repair``, truncated away on disk (so a new
    ``LogWriter`` appends right after the last good record). A torn header leaves
    an empty file. Corruption raises ``CorruptDatabase``; an unknown format
    version raises ``UnsupportedFormat``.

    ``closed``: a later segment exists, so this one was closed (or repaired) before
    that one was made and no crash can have torn it; a tail of anything but zeros
    (a failed trim leaves zeros) is then damage, not a write that was never acknowledged.
    """
    path = Path(path)
    data = path.read_bytes()
    if _is_torn_header(data):
        if repair and data:
            _truncate(path, 0)
        return []
    version = read_header(data, MAGIC, SUPPORTED_VERSIONS, path=path)
    if version == 1:
        entries, end, torn = scan_records(data, HEADER_SIZE, path=path)
    else:       # written in place over zeros: a torn record must show the zeros (see Preallocation)
        records, end, torn = scan_checked_records(data, HEADER_SIZE, path=path)
        entries = []
        for index, record in enumerate(records):
            _split_entries(record, entries, path, index)
    if torn and closed and not all_zero(data, end):
        raise CorruptDatabase(f"{path}: damaged at byte offset {end}, before the log's end "
                              "(a later segment exists)")
    if torn and repair:         # only once everything before the tail has been read and checked
        _truncate(path, end)
    return entries


def _split_entries(record: memoryview, out: list[bytes], path: Path, index: int) -> None:
    """Append a v2 record's entries to ``out``. Its checksum held, so bad framing is a bug's work."""
    pos, total = 0, len(record)
    while pos < total:
        if total - pos < ENTRY.size:
            raise CorruptDatabase(f"{path}: record {index} ends inside an entry header")
        (size,) = ENTRY.unpack_from(record, pos)
        pos += ENTRY.size
        if not 0 < size <= total - pos:
            raise CorruptDatabase(f"{path}: record {index} holds an entry of invalid length {size}")
        out.append(bytes(record[pos:pos + size]))
        pos += size


def frame_flush(entries: list[bytes]) -> list[bytes]:
    """The framed v2 record(s) of one flush: one record unless the entries pass ``MAX_RECORD``."""
    body = b"".join(entries)
    if len(body) <= MAX_RECORD:
        return [encode_checked_record(body)]
    records: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for entry in entries:
        if size + len(entry) > MAX_RECORD:
            records.append(encode_checked_record(b"".join(chunk)))
            chunk, size = [], 0
        chunk.append(entry)
        size += len(entry)
    records.append(encode_checked_record(b"".join(chunk)))
    return records


@dataclass(frozen=True, slots=True)
class WalStats:
    """Counters since the writer opened: for metrics and the group-commit benchmark."""

    records: int = 0
    fsyncs: int = 0
    bytes: int = 0
    fsync_seconds: float = 0.0


class LogWriter:
    """Appends records to one segment; thread-safe; group-commits concurrent syncs.

    The flusher thread is started the first time committers queue up behind a
    flush, and stopped by ``close``.
    """

    def __init__(self, directory: str | os.PathLike[str], number: int, *,
                 fsync: FsyncFn | None = None, preallocate: int = PREALLOCATE) -> None:
        if preallocate < 1:
            raise ValueError(f"preallocate must be at least 1 byte, got {preallocate}")
        self._path = segment_path(directory, number)
        self._number = number
        self._fsync_override = fsync
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)   # the flusher sleeps here while nobody waits
        self._buffer: list[bytes] = []                  # appended, not yet taken by a flush
        self._waiting: list[LockType] = []              # committers whose record is in ``_buffer``
        self._in_flight: list[LockType] = []            # committers whose record is being flushed
        self._in_flight_last = 0                        # last sequence number of that flush
        self._flushing = False
        self._flusher: threading.Thread | None = None
        self._appended = 0
        self._durable = 0
        self._closed = False  # no more appends
        self._fd_closed = False  # nothing more can be written
        self._failed: BaseException | None = None
        self._counts = [0, 0, 0.0]                      # records, fsyncs, fsync seconds
        self._preallocate = preallocate
        try:
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageFailed(f"{self._path}: cannot open log segment: {exc}") from exc
        try:
            self._size, self._allocated = self._prepare(directory)   # records end / file size
            self._initial_size = self._size
        except BaseException:
            os.close(self._fd)
            raise

    def _do_fsync(self, fd: int) -> None:
        # Resolved per call so that monkeypatching ``os.fsync`` reaches the writer.
        (self._fsync_override or os.fsync)(fd)

    def _prepare(self, directory: str | os.PathLike[str]) -> tuple[int, int]:
        """Write and fsync the header and first zeros of a new (or repaired-to-empty) segment;
        check an old one. Returns where records end and the file's size.

        An old segment must end at its last record: appending after a torn tail
        (a crash's zeros included) would put acknowledged records behind damage.
        """
        size = os.fstat(self._fd).st_size
        if size:
            if size < HEADER_SIZE:
                raise CorruptDatabase(f"{self._path}: header cut short at byte offset {size}; "
                                      "read_segment() repairs it before a writer opens it")
            data = self._path.read_bytes()
            if read_header(data, MAGIC, SUPPORTED_VERSIONS, path=self._path) != VERSION:
                raise UnsupportedFormat(f"{self._path}: a segment of an older format version is read-only; "
                                        "new records go to a new segment")
            _, end, torn = scan_checked_records(data, HEADER_SIZE, path=self._path)
            if torn:
                raise CorruptDatabase(f"{self._path}: torn tail at byte offset {end}; "
                                      "read_segment() repairs it before a writer opens it")
            return size, size
        try:
            first = min(self._preallocate, FIRST_PREALLOCATE)
            write_all(self._fd, encode_header(MAGIC, VERSION) + bytes(first))
            self._do_fsync(self._fd)
            fsync_directory(self._path.parent, fsync=self._do_fsync)
        except OSError as exc:
            raise StorageFailed(f"{self._path}: cannot create log segment: {exc}") from exc
        return HEADER_SIZE, HEADER_SIZE + first

    @property
    def path(self) -> Path:
        return self._path

    @property
    def number(self) -> int:
        return self._number

    @property
    def failed(self) -> BaseException | None:
        """The error that failed the log, or None while it is healthy."""
        return self._failed

    @property
    def size(self) -> int:
        """Bytes written to the segment, header included (buffered records excluded)."""
        return self._size

    @property
    def stats(self) -> WalStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            records, fsyncs, fsync_seconds = self._counts
            return WalStats(records, fsyncs, self._size - self._initial_size, fsync_seconds)

    def _raise_if_unusable(self) -> None:
        if self._failed is not None:
            raise StorageFailed(f"{self._path}: the write-ahead log failed earlier; "
                                "writes are refused") from self._failed
        if self._closed:
            raise DatabaseClosed(f"{self._path}: the write-ahead log is closed")

    def append(self, payload: bytes) -> int:
        """Buffer one record and return its sequence number (1, 2, 3... per writer).

        Not durable until ``sync`` covers it.
        """
        size = len(payload)
        if not 0 < size <= MAX_ENTRY:
            raise ValueError(f"record payload must be 1..{MAX_ENTRY} bytes, got {size}")
        record = ENTRY.pack(size) + payload
        with self._lock:
            if self._failed is not None or self._closed:
                self._raise_if_unusable()
            self._buffer.append(record)
            self._appended += 1
            return self._appended

    def sync(self, seq: int) -> None:
        """Return once record ``seq`` and all before it are written and fsync'd.

        A record already durable returns even if a later flush failed: it is on
        disk. Otherwise a failed log raises ``StorageFailed``.
        """
        with self._lock:
            if not 0 < seq <= self._appended:
                raise ValueError(f"no record {seq} was appended (last is {self._appended})")
            if seq <= self._durable:
                return
            if self._failed is not None:
                self._raise_if_unusable()
            if self._fd_closed:
                raise DatabaseClosed(f"{self._path}: closed before record {seq} was written")
            if not self._flushing:
                self._flush_inline()
                return
            group = self._in_flight if seq <= self._in_flight_last else self._waiting
            waiter = allocate_lock()
            waiter.acquire()
            index = len(group)
            group.append(waiter)
        try:
            waiter.acquire()                            # until the flush is over: done or failed
            interrupted = None
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the hand-on
            interrupted = _to_the_end(waiter.acquire, exc)
        if index + 1 < len(group):                      # the group is complete now: wake the next one
            group[index + 1].release()
        if interrupted is not None:
            raise interrupted
        if seq > self._durable:
            raise self._failure()

    def _flush_inline(self) -> None:
        """Flush in the calling thread: the log was idle, so a handoff would only add latency.

        Called and returns with the lock held. Committers who arrive meanwhile
        are left to the flusher thread, which is woken at the end.
        """
        batch, last = self._take_batch()
        self._lock.release()
        try:
            written, fsyncs, fsync_seconds, error = self._write_and_fsync(batch, [])
        finally:
            self._lock.acquire()
        woken = self._finish_batch(last, len(batch), written, fsyncs, fsync_seconds, error)
        if self._waiting or self._closed:
            self._start_flush()
        _wake(woken)
        if error is not None:
            if not isinstance(error, Exception):    # KeyboardInterrupt and the like: let them through
                raise error
            raise self._failure()

    def _failure(self) -> StorageFailed:
        error = StorageFailed(f"{self._path}: write or fsync failed ({self._failed}); the log "
                              "refuses writes from now on")
        error.__cause__ = self._failed
        return error

    def _start_flush(self) -> None:
        """Wake the idle flusher thread, or start it. Called with the lock held."""
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_loop, name=f"helios-wal-{self._number}",
                                             daemon=True)
            self._flusher.start()
        else:
            self._work.notify()

    def _flush_loop(self) -> None:
        """The flusher thread: flush each batch someone waits for, until close or failure.

        The committers of a batch are woken only after the next batch has been
        written: they would otherwise compete for the GIL with the flusher
        between its write and its fsync, and the disk would sit idle meanwhile.
        """
        woken: list[LockType] = []
        lock = self._lock
        lock.acquire()
        try:
            while True:
                if self._flushing or not (self._waiting or (self._closed and self._buffer)):
                    _wake(woken)
                    woken = []
                    if self._closed and not self._flushing:
                        return
                    self._work.wait()
                    continue
                batch, last = self._take_batch()
                lock.release()
                try:
                    written, fsyncs, fsync_seconds, error = self._write_and_fsync(batch, woken)
                finally:
                    lock.acquire()
                woken = self._finish_batch(last, len(batch), written, fsyncs, fsync_seconds, error)
                if error is not None:
                    _wake(woken)
                    return
        finally:
            lock.release()

    def _write_and_fsync(self, batch: list[bytes], woken: list[LockType]
                         ) -> tuple[int, int, float, BaseException | None]:
        """Write and fsync a batch, waking the previous batch's committers once it is written.

        The batch goes right after the last durable record (``_size`` holds still
        while a flush is under way), over the preallocated zeros (see
        Preallocation). Returns the bytes written, the fsyncs and their time, and
        the error that failed the log, if any (the unacknowledged bytes are then
        cut off, best effort).
        """
        offset, fsyncs, fsync_seconds = self._size, 0, 0.0
        try:
            for record in frame_flush(batch):
                end = offset + len(record)
                grown, seconds = self._make_room(end)
                fsyncs += grown
                fsync_seconds += seconds
                pwrite_all(self._fd, record, offset)
                if woken:               # durable before this batch was written
                    _wake(woken)
                    woken = []
                started = time.perf_counter()
                self._do_fsync(self._fd)
                fsync_seconds += time.perf_counter() - started
                fsyncs += 1
                offset = end
        except BaseException as exc:  # noqa: BLE001 - the file state is unknown: never retry ("fsyncgate")
            _wake(woken)
            self._cut_after_records()
            return offset - self._size, fsyncs, fsync_seconds, exc
        return offset - self._size, fsyncs, fsync_seconds, None

    def _make_room(self, end: int) -> tuple[int, float]:
        """Grow the preallocated zeros to reach past ``end``; returns the fsyncs it took and their time.

        Usually the zeros are written and fsync'd before the records go over them;
        a record longer than the preallocation is written like an append instead
        (see Preallocation), with zeros after it that its own fsync covers.
        """
        allocated = self._allocated
        if end <= allocated:
            return 0, 0.0
        step = min(self._preallocate, max(FIRST_PREALLOCATE, allocated - HEADER_SIZE))
        grown = end + step
        if end - allocated <= self._preallocate:
            pwrite_all(self._fd, bytes(grown - allocated), allocated)
            started = time.perf_counter()
            self._do_fsync(self._fd)
            self._allocated = grown
            return 1, time.perf_counter() - started
        pwrite_all(self._fd, bytes(step), end)
        self._allocated = grown
        return 0, 0.0

    def _take_batch(self) -> tuple[list[bytes], int]:
        """Hand every buffered record and its waiters to a flush. Called with the lock held."""
        batch, self._buffer = self._buffer, []
        self._in_flight, self._waiting = self._waiting, []
        self._in_flight_last = self._appended
        self._flushing = True
        return batch, self._appended

    def _finish_batch(self, last: int, records: int, size: int, fsyncs: int, fsync_seconds: float,
                      error: BaseException | None) -> list[LockType]:
        """Record a flush's outcome; returns the committers to wake. Called with the lock held.

        A failure fails the log for good, so the pending committers are woken too, to raise.
        """
        self._flushing = False
        woken, self._in_flight = self._in_flight, []
        if error is None:
            self._durable = last
            self._size += size
            counts = self._counts
            counts[0] += records
            counts[1] += fsyncs
            counts[2] += fsync_seconds
        else:
            self._failed = error
            self._buffer.clear()
            _wake(self._waiting)
            self._waiting = []
        return woken

    def _cut_after_records(self) -> None:
        """Best effort: cut the file at the end of its last durable record (``self._size``).

        After a failed flush it keeps recovery from resurrecting the batch; at
        close it trims the preallocated zeros. Every byte up to ``self._size`` was
        fsync'd, so nothing acknowledged depends on it: bytes left behind if it
        fails were never acknowledged (the same ambiguity as a crash before the
        reply), and zeros left behind read as a torn tail that recovery drops.
        The log's first error, if any, is the one to report.
        """
        try:
            os.ftruncate(self._fd, self._size)
            self._allocated = self._size
            self._do_fsync(self._fd)
        except Exception:  # noqa: BLE001 - see above
            pass

    def append_and_sync(self, payload: bytes) -> int:
        """Append one record and return its sequence number once it is durable."""
        seq = self.append(payload)
        self.sync(seq)
        return seq

    def close(self) -> None:
        """Flush and fsync anything buffered, then close. Safe to call twice.

        Raises ``StorageFailed`` if that last flush fails; the file is closed anyway.
        It waits for a flush under way even through Ctrl-C (raised afterwards):
        the file must not be cut or closed under committers about to be told
        their records are durable. A hung fsync therefore holds ``close`` too.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            failed_before = self._failed
            if self._flusher is not None or self._flushing or self._buffer:
                self._start_flush()             # it waits for a flush under way, flushes the rest, exits
            flusher = self._flusher
        interrupted = None
        try:
            if flusher is not None:             # no flush may be under way once the file closes
                interrupted = _to_the_end(flusher.join)
            if interrupted is None and self._failed is not None and failed_before is None:
                raise StorageFailed(f"{self._path}: the last flush failed ({self._failed}); "
                                    "records buffered before close are lost") from self._failed
        finally:
            with self._lock:
                self._fd_closed = True
                self._buffer.clear()
                try:
                    self._trim()
                finally:
                    os.close(self._fd)
        if interrupted is not None:
            raise interrupted

    def _trim(self) -> None:
        """Cut the preallocated zeros off a closing segment, so that it ends at its last record."""
        if self._failed is None and not self._flushing and self._allocated > self._size:
            self._cut_after_records()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "failed" if self._failed else "closed" if self._closed else "open"
        return f"<LogWriter {self._path} {state} appended={self._appended} durable={self._durable}>"


def _wake(group: list[LockType]) -> None:
    """Wake a group of committers one after the other: each wakes the next (see ``sync``).

    Waking them all at once would have them all compete for the GIL with the
    flusher, which needs it right after each fsync to start the next one.
    """
    if group:
        group[0].release()


def _to_the_end(block: Callable[[], object], interrupted: BaseException | None = None
                ) -> BaseException | None:
    """Call ``block`` until it returns; an exception meanwhile (Ctrl-C) is returned, not raised.

    For the waits nobody may leave early: a committer before its turn in the
    wake-up chain (every committer after it in the group would sleep forever,
    so an interrupt waits for the flush in progress, one fsync, and is raised
    after the hand-on), and ``close`` before the flusher ends (the file must not
    be cut or closed under a flush whose committers are about to be
    acknowledged). ``interrupted`` is an exception that already cut a first
    wait short.
    """
    while True:
        try:
            block()
            return interrupted
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            interrupted = interrupted or exc
