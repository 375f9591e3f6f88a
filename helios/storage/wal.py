"""The append-only write-ahead log, with group commit.

A log is a directory of segments ``wal-00000001.log``, ``wal-00000002.log``...
Each segment is a ``HELIOWAL`` v1 header followed by CRC-framed records (see
``fileio`` for the framing and the torn-tail rule recovery relies on).

Durability contract: ``sync(seq)`` returns only once record ``seq`` and every
record before it have been written and fsync'd, so a caller that acknowledges a
write after ``sync`` never loses it to kill -9 or power loss.

Group commit: concurrent committers share one write + fsync. The first thread
to need a flush becomes the leader and takes every buffered record; threads
that arrive meanwhile wait on a condition and either find their record covered
by that flush or elect the next leader, who takes everything that piled up.
The cost of one fsync is thus spread over every committer that arrived while
the previous one ran.

Failure is permanent: after a failed write or fsync the kernel may already
have dropped the dirty pages and a retried fsync could falsely succeed
("fsyncgate"), so the writer never retries. Every later append and every sync
of a record not yet durable raises ``StorageFailed``; the unacknowledged bytes
are truncated away on a best-effort basis so recovery does not resurrect them.
"""
from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from helios.errors import CorruptDatabase, DatabaseClosed, StorageFailed
from helios.storage.fileio import (HEADER_SIZE, FsyncFn, all_zero, encode_header, encode_record,
                                   fsync_directory, read_header, scan_records, write_all)

MAGIC = b"HELIOWAL"
VERSION = 1
SUPPORTED_VERSIONS = frozenset({VERSION})

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
    return len(data) < HEADER_SIZE and encode_header(MAGIC, VERSION).startswith(data)


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_segment(path: str | os.PathLike[str], *, repair: bool = True) -> list[bytes]:
    """Payloads of the segment's good records, in append order.

    A torn tail is dropped and, with ``repair``, truncated away on disk (so a new
    ``LogWriter`` appends right after the last good record). A torn header leaves
    an empty file. Corruption raises ``CorruptDatabase``; an unknown format
    version raises ``UnsupportedFormat``.
    """
    path = Path(path)
    data = path.read_bytes()
    if _is_torn_header(data):
        if repair and data:
            _truncate(path, 0)
        return []
    read_header(data, MAGIC, SUPPORTED_VERSIONS, path=path)
    payloads, end, torn = scan_records(data, HEADER_SIZE, path=path)
    if torn and repair:
        _truncate(path, end)
    return payloads


@dataclass(frozen=True, slots=True)
class WalStats:
    """Counters since the writer opened: for metrics and the group-commit benchmark."""

    records: int = 0
    fsyncs: int = 0
    bytes: int = 0
    fsync_seconds: float = 0.0


class LogWriter:
    """Appends records to one segment; thread-safe; group-commits concurrent syncs."""

    def __init__(self, directory: str | os.PathLike[str], number: int, *,
                 fsync: FsyncFn | None = None) -> None:
        self._path = segment_path(directory, number)
        self._number = number
        self._fsync_override = fsync
        self._lock = threading.Lock()
        self._flushed = threading.Condition(self._lock)
        self._buffer: list[bytes] = []
        self._appended = 0
        self._durable = 0
        self._flushing = False
        self._closed = False  # no more appends
        self._fd_closed = False  # nothing more can be written
        self._failed: BaseException | None = None
        self._stats = WalStats()
        try:
            self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageFailed(f"{self._path}: cannot open log segment: {exc}") from exc
        try:
            self._size = self._prepare(directory)
        except BaseException:
            os.close(self._fd)
            raise

    def _do_fsync(self, fd: int) -> None:
        # Resolved per call so that monkeypatching ``os.fsync`` reaches the writer.
        (self._fsync_override or os.fsync)(fd)

    def _prepare(self, directory: str | os.PathLike[str]) -> int:
        """Write and fsync the header of a new (or repaired-to-empty) segment; check an old one."""
        size = os.fstat(self._fd).st_size
        if size:
            if size < HEADER_SIZE:
                raise CorruptDatabase(f"{self._path}: header cut short at byte offset {size}; "
                                      "read_segment() repairs it before a writer opens it")
            with open(self._path, "rb") as existing:
                read_header(existing, MAGIC, SUPPORTED_VERSIONS, path=self._path)
            return size
        try:
            write_all(self._fd, encode_header(MAGIC, VERSION))
            self._do_fsync(self._fd)
            fsync_directory(self._path.parent, fsync=self._do_fsync)
        except OSError as exc:
            raise StorageFailed(f"{self._path}: cannot create log segment: {exc}") from exc
        return HEADER_SIZE

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
            return self._stats

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
        record = encode_record(payload)
        with self._lock:
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
            while seq > self._durable:
                if self._failed is not None:
                    self._raise_if_unusable()
                if not self._flushing:
                    if self._fd_closed:
                        raise DatabaseClosed(f"{self._path}: closed before record {seq} was written")
                    self._lead_flush()
                    return
                self._flushed.wait()

    def _lead_flush(self) -> None:
        """Write and fsync every buffered record as one batch. Called and returns with the lock held."""
        batch, self._buffer = self._buffer, []
        last = self._appended
        self._flushing = True
        self._lock.release()
        error: BaseException | None = None
        data = b"".join(batch)
        fsync_seconds = 0.0
        try:
            write_all(self._fd, data)
            started = time.perf_counter()
            self._do_fsync(self._fd)
            fsync_seconds = time.perf_counter() - started
        except BaseException as exc:  # noqa: BLE001 - any failure leaves the file state unknown
            error = exc
            self._discard_unacknowledged()
        finally:
            self._lock.acquire()
            self._flushing = False
            self._flushed.notify_all()
        if error is not None:
            self._buffer.clear()
            self._failed = error
            if not isinstance(error, Exception):
                raise error
            raise StorageFailed(f"{self._path}: write or fsync failed ({error}); the log "
                                "refuses writes from now on") from error
        self._durable = last
        self._size += len(data)
        stats = self._stats
        self._stats = WalStats(stats.records + len(batch), stats.fsyncs + 1,
                               stats.bytes + len(data), stats.fsync_seconds + fsync_seconds)

    def _discard_unacknowledged(self) -> None:
        """Best effort: cut the failed batch off so recovery cannot resurrect it.

        Every byte up to ``self._size`` was fsync'd, so nothing acknowledged is
        lost. If this fails too the bytes may survive; they were never
        acknowledged, the same ambiguity as a crash before the reply.
        """
        try:
            os.ftruncate(self._fd, self._size)
            self._do_fsync(self._fd)
        except Exception:  # noqa: BLE001 - the log is failing already; the first error is the one to report
            pass

    def append_and_sync(self, payload: bytes) -> int:
        """Append one record and return its sequence number once it is durable."""
        seq = self.append(payload)
        self.sync(seq)
        return seq

    def close(self) -> None:
        """Flush and fsync anything buffered, then close. Safe to call twice.

        Raises ``StorageFailed`` if that last flush fails; the file is closed anyway.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                while self._flushing:
                    self._flushed.wait()
                if self._failed is None and self._buffer:
                    self._lead_flush()
            finally:
                self._fd_closed = True
                self._buffer.clear()
                os.close(self._fd)

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "failed" if self._failed else "closed" if self._closed else "open"
        return f"<LogWriter {self._path} {state} appended={self._appended} durable={self._durable}>"
