"""Small durable-file helpers shared by the write-ahead log and the checkpoint writer.

File header
    Every file starts with ``magic`` (8 bytes) + u16 format version + u16 reserved
    (zero), little-endian. A wrong magic, a cut header or a non-zero reserved field
    is ``CorruptDatabase``; a version this build does not know is
    ``UnsupportedFormat`` (a newer build wrote it: refuse rather than misread).

Record framing
    ``u32 length | u32 crc32(payload) | payload``, little-endian. A length of zero
    is reserved and never written: eight zero bytes are what a zero-filled tail
    looks like, and ``crc32(b"") == 0`` would otherwise make it a valid record.
    Lengths above ``MAX_RECORD`` (1 GiB) are treated as garbage.

Torn-tail rule (the heart of recovery)
    Records are appended sequentially and acknowledged only after an fsync, so a
    crash can leave garbage only *after* the last fsync'd record. Scanning stops at
    the first bad record: one whose header is cut by EOF, whose length is zero or
    over ``MAX_RECORD``, whose declared extent passes EOF, or whose CRC fails.

    That bad record is a **torn tail** only when both hold:

    1. its damage runs to the end of the file: the header is cut, or the length is
       garbage (its extent is unknown, so it is taken to run to EOF), or its
       declared extent reaches or passes EOF, or every byte after its declared
       extent is zero (this covers a zero-filled tail too); and
    2. no valid record starts anywhere after its first byte. A valid record past
       a bad one can only mean acknowledged data lies beyond the damage, e.g. a
       middle record whose length field was flipped to something huge.

    A torn tail yields the good prefix and ``torn=True``; the caller truncates the
    file there. Anything else is ``CorruptDatabase`` naming the file and the byte
    offset of the bad record: the database stops rather than returning silently
    wrong data. The price of rule 2 is that a crash cutting a record whose payload
    itself embeds a complete, well-framed record reads as corruption: fail-stop,
    never silent loss.

Checked records (files written in place over zeros: the log, format v2)
    ``u32 length | u32 crc32(payload) | u32 crc32(the eight bytes before) |
    payload``. The header checks itself, so a length is never trusted unless
    it is the one written: a header cut across a sector boundary by a crash,
    or a flipped length, cannot move the record's end. Such files are written
    only over zeros already on disk, so a write a crash interrupted shows zeros
    in whatever sector of it never reached the disk. Scanning stops at the
    first bad record, which is a **torn tail** only when it shows those zeros
    and nothing acknowledged can lie beyond it:

    * a header that fails its check: some sector-aligned piece of the header
      is all zeros (a zero-filled tail is the common case), and no valid
      record starts after it;
    * a checked header whose payload runs past the end of the file: no valid
      record starts after it (the file's new size never became durable);
    * a checked header whose payload fails its checksum: every byte after the
      payload is zero, some sector-aligned piece of the record is all zeros,
      and no valid record starts after it.

    Anything else is ``CorruptDatabase``: a last record damaged in every
    sector is damage, not a torn write. The price: a payload whose damage
    happens to fall beside a sector of legitimate zeros (a zero-filled blob)
    reads as torn, the rule every record followed before checked headers.
"""
from __future__ import annotations

import contextlib
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Callable, Collection
from pathlib import Path
from typing import BinaryIO

from helios.errors import CorruptDatabase, UnsupportedFormat

FsyncFn = Callable[[int], None]

HEADER = struct.Struct("<8sHH")
HEADER_SIZE = HEADER.size
RECORD_HEADER = struct.Struct("<II")
RECORD_HEADER_SIZE = RECORD_HEADER.size
CHECKED_HEADER = struct.Struct("<III")
CHECKED_HEADER_SIZE = CHECKED_HEADER.size
SECTOR = 512                            # the smallest unit a disk writes whole
MAX_RECORD = 1 << 30

_NONZERO = re.compile(rb"[^\x00]")


def _resolve(fsync: FsyncFn | None) -> FsyncFn:
    # Looked up at call time so that monkeypatching ``os.fsync`` reaches us.
    return os.fsync if fsync is None else fsync


def write_all(fd: int, data: bytes | memoryview) -> None:
    """``os.write`` until every byte is written: a short write is not an error."""
    written = os.write(fd, data)
    if written == len(data):            # the usual case: one call, no view
        return
    view = memoryview(data)[written:]
    while view:
        written = os.write(fd, view)
        view = view[written:]


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """``os.pwrite`` at ``offset`` until every byte is written: a short write is not an error."""
    written = os.pwrite(fd, data, offset)
    if written == len(data):            # the usual case: one call, no view
        return
    view = memoryview(data)[written:]
    while view:
        offset += written
        written = os.pwrite(fd, view, offset)
        view = view[written:]


def fsync_directory(path: str | os.PathLike[str], *, fsync: FsyncFn | None = None) -> None:
    """Make a directory's entries (a create, a rename) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _resolve(fsync)(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes, *, fsync: FsyncFn | None = None) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file.

    Writes a temporary file in the same directory (a rename is atomic only within
    one file system), fsyncs it, renames it over ``path`` and fsyncs the directory.
    On any failure the temporary file is removed and the error propagates.
    """
    target = Path(path)
    do_fsync = _resolve(fsync)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        try:
            write_all(fd, data)
            do_fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_directory(target.parent, fsync=do_fsync)


def encode_header(magic: bytes, version: int) -> bytes:
    """The 12-byte file header."""
    if len(magic) != 8:
        raise ValueError(f"magic must be 8 bytes, got {len(magic)}")
    return HEADER.pack(magic, version, 0)


def write_header(f: BinaryIO | int, magic: bytes, version: int) -> None:
    """Write the header to a binary file object or a raw file descriptor."""
    header = encode_header(magic, version)
    if isinstance(f, int):
        write_all(f, header)
    else:
        f.write(header)


def read_header(data_or_file: bytes | bytearray | memoryview | BinaryIO, magic: bytes,
                supported_versions: Collection[int], *, path: str | os.PathLike[str]) -> int:
    """Check a file's header and return its format version."""
    if isinstance(data_or_file, (bytes, bytearray, memoryview)):
        head = bytes(data_or_file[:HEADER_SIZE])
    else:
        head = data_or_file.read(HEADER_SIZE)
    if len(head) < HEADER_SIZE:
        raise CorruptDatabase(f"{os.fspath(path)}: header cut short at byte offset {len(head)} "
                              f"(need {HEADER_SIZE} bytes)")
    found_magic, version, reserved = HEADER.unpack(head)
    if found_magic != magic:
        raise CorruptDatabase(f"{os.fspath(path)}: bad magic {found_magic!r} at byte offset 0 "
                              f"(expected {magic!r})")
    if version not in supported_versions:
        raise UnsupportedFormat(f"{os.fspath(path)}: format version {version} is not supported "
                                f"(supported: {sorted(supported_versions)})")
    if reserved != 0:
        raise CorruptDatabase(f"{os.fspath(path)}: non-zero reserved header field at byte offset 10")
    return version


def encode_record(payload: bytes) -> bytes:
    """Frame one payload: u32 length, u32 crc32 of the payload, the payload."""
    size = len(payload)
    if not 0 < size <= MAX_RECORD:
        raise ValueError(f"record payload must be 1..{MAX_RECORD} bytes, got {size}")
    return RECORD_HEADER.pack(size, zlib.crc32(payload)) + payload


def encode_checked_record(payload: bytes) -> bytes:
    """Frame one payload with a self-checking header (see "Checked records")."""
    size = len(payload)
    if not 0 < size <= MAX_RECORD:
        raise ValueError(f"record payload must be 1..{MAX_RECORD} bytes, got {size}")
    head = RECORD_HEADER.pack(size, zlib.crc32(payload))
    return head + zlib.crc32(head).to_bytes(4, "little") + payload


def all_zero(data: bytes | bytearray | memoryview, start: int = 0) -> bool:
    """True if every byte from ``start`` on is zero (stops at the first non-zero byte)."""
    return _NONZERO.search(data, start) is None


def _valid_record_at(data: memoryview, pos: int) -> bool:
    end_of_data = len(data)
    if pos + RECORD_HEADER_SIZE > end_of_data:
        return False
    size, crc = RECORD_HEADER.unpack_from(data, pos)
    start = pos + RECORD_HEADER_SIZE
    return 0 < size <= MAX_RECORD and start + size <= end_of_data and zlib.crc32(data[start:start + size]) == crc


def _checked_header_at(data: memoryview, pos: int) -> tuple[int, int] | None:
    """(payload length, payload crc) of a checked header at ``pos`` that passes its check, else None."""
    if pos + CHECKED_HEADER_SIZE > len(data):
        return None
    size, crc, check = CHECKED_HEADER.unpack_from(data, pos)
    if zlib.crc32(data[pos:pos + RECORD_HEADER_SIZE]) != check or not 0 < size <= MAX_RECORD:
        return None
    return size, crc


def _valid_checked_record_at(data: memoryview, pos: int) -> bool:
    header = _checked_header_at(data, pos)
    if header is None:
        return False
    size, crc = header
    start = pos + CHECKED_HEADER_SIZE
    return start + size <= len(data) and zlib.crc32(data[start:start + size]) == crc


def _valid_record_after(data: memoryview, bad: int,
                        valid_at: Callable[[memoryview, int], bool] = _valid_record_at) -> int | None:
    """Offset of the first well-framed record starting after ``bad``, if any.

    A record's length is non-zero, so one of its first four bytes is non-zero:
    runs of zeros are skipped with a regex search rather than byte by byte.
    """
    pos = bad + 1
    last = len(data) - RECORD_HEADER_SIZE
    while pos <= last:
        nonzero = _NONZERO.search(data, pos)
        if nonzero is None:
            return None
        pos = max(pos, nonzero.start() - 3)
        if valid_at(data, pos):
            return pos
        pos += 1
    return None


def _has_zero_sector(data: memoryview, start: int, end: int) -> bool:
    """True if a sector-aligned piece of ``data[start:end]`` is all zeros: a sector never written."""
    pos = start
    while pos < end:
        stop = min(end, (pos // SECTOR + 1) * SECTOR)
        if _NONZERO.search(data[pos:stop]) is None:
            return True
        pos = stop
    return False


def _corrupt(path: str | os.PathLike[str], offset: int, why: str) -> CorruptDatabase:
    return CorruptDatabase(f"{os.fspath(path)}: corrupt record at byte offset {offset} ({why})",
                           {"path": os.fspath(path), "offset": offset})


def scan_records(data: bytes | bytearray | memoryview, start: int, *,
                 path: str | os.PathLike[str], copy: bool = True) -> tuple[list, int, bool]:
    """Parse records from ``start``: (payloads, end offset of the last good record, torn).

    Applies the module's torn-tail rule; raises ``CorruptDatabase`` otherwise.
    ``copy=False`` returns memoryviews into ``data`` instead of ``bytes`` copies: a
    caller decoding a large file then leaves no heap of freed copies behind.
    """
    view = memoryview(data).cast("B")
    total = len(view)
    payloads: list[bytes] = []
    pos = start
    while pos < total:
        if total - pos < RECORD_HEADER_SIZE:
            extent: int | None = None
            why = "record header cut by end of file"
        else:
            size, crc = RECORD_HEADER.unpack_from(view, pos)
            body = pos + RECORD_HEADER_SIZE
            if not 0 < size <= MAX_RECORD:
                extent, why = None, f"invalid length {size}"
            elif body + size > total:
                extent, why = None, f"length {size} runs past end of file"
            else:
                payload = view[body:body + size]
                if zlib.crc32(payload) == crc:
                    payloads.append(bytes(payload) if copy else payload)
                    pos = body + size
                    continue
                extent, why = body + size, "checksum mismatch"
        runs_to_eof = extent is None or all_zero(view, extent)
        if not runs_to_eof:
            raise _corrupt(path, pos, f"{why}, followed by more data")
        following = _valid_record_after(view, pos)
        if following is not None:
            raise _corrupt(path, pos, f"{why}, yet a valid record follows at offset {following}")
        return payloads, pos, True
    return payloads, pos, False


def scan_checked_records(data: bytes | bytearray | memoryview, start: int, *,
                         path: str | os.PathLike[str]) -> tuple[list[memoryview], int, bool]:
    """Parse checked records from ``start``: (payload views, end of the last good one, torn).

    Applies the rule of "Checked records"; raises ``CorruptDatabase`` otherwise.
    """
    view = memoryview(data).cast("B")
    total = len(view)
    payloads: list[memoryview] = []
    pos = start
    while pos < total:
        header = _checked_header_at(view, pos)
        if header is None:
            why = "record header cut by end of file" if total - pos < CHECKED_HEADER_SIZE else \
                "record header fails its check"
            if total - pos >= CHECKED_HEADER_SIZE and \
                    not _has_zero_sector(view, pos, pos + CHECKED_HEADER_SIZE):
                raise _corrupt(path, pos, f"{why}, with every sector of it written: damage, not a torn write")
        else:
            size, crc = header
            body = pos + CHECKED_HEADER_SIZE
            end = body + size
            if end > total:
                why = f"length {size} runs past end of file"
            else:
                payload = view[body:end]
                if zlib.crc32(payload) == crc:
                    payloads.append(payload)
                    pos = end
                    continue
                why = "checksum mismatch"
                if not all_zero(view, end):
                    raise _corrupt(path, pos, f"{why}, followed by more data")
                if not _has_zero_sector(view, pos, end):
                    raise _corrupt(path, pos, f"{why} in the last record, with every sector of it "
                                              "written: damage, not a torn write")
        following = _valid_record_after(view, pos, _valid_checked_record_at)
        if following is not None:
            raise _corrupt(path, pos, f"{why}, yet a valid record follows at offset {following}")
        return payloads, pos, True
    return payloads, pos, False
