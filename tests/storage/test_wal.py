"""Write-ahead log and durable-file helpers: round trips, torn tails, corruption, failure, group commit, crashes."""
from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helios.errors import CorruptDatabase, DatabaseClosed, StorageFailed, UnsupportedFormat
from helios.storage import fileio, wal
from helios.storage.fileio import (HEADER_SIZE, SECTOR, atomic_write, encode_checked_record, encode_header,
                                   encode_record, fsync_directory, read_header, scan_checked_records,
                                   scan_records, write_header)
from helios.storage.wal import LogWriter, list_segments, read_segment, segment_path

SOURCE_ROOT = Path(__file__).resolve().parents[2]


def payloads_for(count: int, seed: int = 7) -> list[bytes]:
    """Varied sizes and bytes, zeros included, so framing is not accidentally easy."""
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(1, 40)) for _ in range(count)]


def write_segment(directory: Path, payloads: list[bytes], number: int = 1) -> Path:
    """A closed segment holding ``payloads``, each flushed on its own (one record each)."""
    with LogWriter(directory, number) as writer:
        for payload in payloads:
            writer.append_and_sync(payload)
    return segment_path(directory, number)


def flush_size(payloads: list[bytes]) -> int:
    """Bytes one flush of ``payloads`` adds: one framed record of length-prefixed entries."""
    return len(encode_checked_record(b"".join(wal.ENTRY.pack(len(p)) + p for p in payloads)))


def record_offsets(payloads: list[bytes]) -> list[int]:
    """Start offset of each payload's record when each was flushed alone, then the end of the last."""
    offsets = [HEADER_SIZE]
    for payload in payloads:
        offsets.append(offsets[-1] + flush_size([payload]))
    return offsets


def records_end(segment: Path) -> int:
    """Where the segment's good records end (preallocated zeros may follow)."""
    return records_end_of(segment.read_bytes())


def records_end_of(data: bytes) -> int:
    return scan_checked_records(data, HEADER_SIZE, path="segment")[1]


class FsyncSpy:
    """An fsync that really syncs, counts calls and can be told to fail."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.fail = False
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, fd: int) -> None:
        with self._lock:
            self.calls += 1
        if self.fail:
            raise OSError(errno.EIO, "injected fsync failure")
        if self.delay:
            time.sleep(self.delay)
        os.fsync(fd)


# -- round trips -------------------------------------------------------------------------------

def test_append_sync_read_round_trip_and_sequence_numbers(tmp_path: Path) -> None:
    first, second = payloads_for(5), payloads_for(3, seed=8)
    spy = FsyncSpy()
    writer = LogWriter(tmp_path, 1, fsync=spy)
    creation_fsyncs = spy.calls
    assert [writer.append(p) for p in first] == [1, 2, 3, 4, 5]
    assert writer.size == HEADER_SIZE
    writer.sync(5)
    assert spy.calls == creation_fsyncs + 1  # five buffered records, one fsync
    assert writer.stats.records == 5 and writer.stats.fsyncs == 1
    segment = segment_path(tmp_path, 1)
    end = HEADER_SIZE + flush_size(first)    # one flush: one record holding the five
    assert writer.size == end == records_end(segment)
    assert segment.stat().st_size == HEADER_SIZE + wal.FIRST_PREALLOCATE  # zeros made with the header
    writer.sync(2)  # already durable: no new fsync
    assert spy.calls == creation_fsyncs + 1
    writer.close()
    writer.close()
    assert segment.stat().st_size == end, "close cuts the preallocated zeros off"
    assert read_segment(segment) == first

    with LogWriter(tmp_path, 1) as reopened:
        assert reopened.size == end
        assert [reopened.append_and_sync(p) for p in second] == [1, 2, 3]
    assert read_segment(segment) == first + second


def test_close_flushes_buffered_records_and_refuses_appends(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, 3)
    seq = writer.append(b"buffered only")
    writer.close()
    writer.sync(seq)  # close made it durable
    with pytest.raises(DatabaseClosed):
        writer.append(b"late")
    assert read_segment(segment_path(tmp_path, 3)) == [b"buffered only"]


def test_sync_of_unknown_sequence_and_empty_payload_are_rejected(tmp_path: Path) -> None:
    with LogWriter(tmp_path, 1) as writer:
        with pytest.raises(ValueError):
            writer.sync(1)
        with pytest.raises(ValueError):
            writer.append(b"")
        writer.append(b"x")
        with pytest.raises(ValueError):
            writer.sync(2)


def test_segment_names_and_listing(tmp_path: Path) -> None:
    assert segment_path(tmp_path, 1).name == "wal-00000001.log"
    for number in (10, 2):
        LogWriter(tmp_path, number).close()
    (tmp_path / "wal-x.log").write_bytes(b"")
    (tmp_path / "notes.txt").write_bytes(b"")
    assert list_segments(tmp_path) == [2, 10]


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_pwrite = os.pwrite

    def dribble(fd: int, data: bytes, offset: int) -> int:
        return real_pwrite(fd, bytes(data)[:3], offset)

    payloads = payloads_for(6)
    with LogWriter(tmp_path, 1) as writer:
        for payload in payloads:
            writer.append(payload)
        monkeypatch.setattr(os, "pwrite", dribble)
        writer.sync(6)
        monkeypatch.undo()
    assert read_segment(segment_path(tmp_path, 1)) == payloads


# -- torn tails ----------------------------------------------------------------------------------

def test_torn_tail_at_every_byte_offset_is_dropped_and_repaired(tmp_path: Path) -> None:
    payloads = payloads_for(8)
    source = tmp_path / "source"
    source.mkdir()
    data = write_segment(source, payloads).read_bytes()
    offsets = record_offsets(payloads)
    assert offsets[-1] == len(data)
    for cut in range(offsets[-4], len(data) + 1):
        work = tmp_path / f"cut{cut}"
        work.mkdir()
        segment = segment_path(work, 1)
        segment.write_bytes(data[:cut])
        kept = sum(1 for end in offsets[1:] if end <= cut)
        assert read_segment(segment) == payloads[:kept], cut
        assert segment.stat().st_size == offsets[kept], cut
        with LogWriter(work, 1) as writer:
            writer.append(b"after repair 1")
            writer.append_and_sync(b"after repair 2")
        assert read_segment(segment) == payloads[:kept] + [b"after repair 1", b"after repair 2"], cut
        shutil.rmtree(work)


def test_repair_false_reads_without_touching_the_file(tmp_path: Path) -> None:
    payloads = payloads_for(3)
    segment = write_segment(tmp_path, payloads)
    torn = segment.read_bytes()[:-1]
    segment.write_bytes(torn)
    assert read_segment(segment, repair=False) == payloads[:2]
    assert segment.read_bytes() == torn


@pytest.mark.parametrize("version", sorted(wal.SUPPORTED_VERSIONS))
@pytest.mark.parametrize("cut", range(HEADER_SIZE))
def test_header_cut_at_creation_reads_empty_and_can_be_reused(tmp_path: Path, cut: int, version: int) -> None:
    segment = segment_path(tmp_path, 1)
    segment.write_bytes(encode_header(wal.MAGIC, version)[:cut])    # v1: a crash under the previous release
    assert read_segment(segment) == []
    assert segment.stat().st_size == 0
    with LogWriter(tmp_path, 1) as writer:
        writer.append_and_sync(b"fresh")
    assert read_segment(segment) == [b"fresh"]


def test_zero_filled_tail_is_torn_not_corrupt(tmp_path: Path) -> None:
    payloads = payloads_for(5)
    segment = write_segment(tmp_path, payloads)
    size = segment.stat().st_size
    with open(segment, "ab") as f:
        f.write(bytes(10_000))
    assert read_segment(segment) == payloads
    assert segment.stat().st_size == size


def test_last_record_zeroed_in_place_is_torn(tmp_path: Path) -> None:
    payloads = payloads_for(5)
    segment = write_segment(tmp_path, payloads)
    offsets = record_offsets(payloads)
    data = bytearray(segment.read_bytes())
    data[offsets[-2]:] = bytes(len(data) - offsets[-2] + 100)
    segment.write_bytes(bytes(data))
    assert read_segment(segment) == payloads[:-1]
    assert segment.stat().st_size == offsets[-2]


def test_all_zero_file_is_an_unwritten_segment(tmp_path: Path) -> None:
    segment = segment_path(tmp_path, 1)
    segment.write_bytes(bytes(4096))
    assert read_segment(segment) == []
    assert segment.stat().st_size == 0


# -- preallocation and flush records (format v2) ------------------------------------------------------

def live_copy(segment: Path, into: Path) -> Path:
    """The segment as a crash would leave it on disk: copied while its writer is open."""
    into.mkdir()
    shutil.copy(segment, into / segment.name)
    return into / segment.name


def test_records_are_written_in_place_over_preallocated_zeros(tmp_path: Path) -> None:
    payloads = payloads_for(40)
    writer = LogWriter(tmp_path, 1, preallocate=256)
    segment = segment_path(tmp_path, 1)
    sizes = set()
    for i, payload in enumerate(payloads):
        writer.append_and_sync(payload)
        on_disk = segment.stat().st_size
        assert writer.size < on_disk <= writer.size + 256 + 60, i     # zeros ahead, never runaway growth
        assert segment.read_bytes()[writer.size:] == bytes(on_disk - writer.size)
        sizes.add(on_disk)
    assert 1 < len(sizes) < len(payloads), "the file grows a preallocation at a time, not per record"
    crashed = live_copy(segment, tmp_path / "crash")
    assert read_segment(crashed) == payloads                           # the zeros read as a torn tail...
    assert crashed.stat().st_size == writer.size                       # ...that repair cuts off
    with LogWriter(crashed.parent, 1) as after:                        # and the log goes on right there
        after.append_and_sync(b"after the crash")
    assert read_segment(crashed) == payloads + [b"after the crash"]
    writer.close()
    assert segment.stat().st_size == writer.size
    assert read_segment(segment) == payloads


def test_a_new_segment_starts_small_and_its_growths_double_up_to_the_preallocation(tmp_path: Path) -> None:
    """Opening a store and rotating the log at a checkpoint create segments: they start with
    ``FIRST_PREALLOCATE`` zeros, and each growth adds what the segment holds, up to ``PREALLOCATE``."""
    segment = segment_path(tmp_path, 1)
    with LogWriter(tmp_path, 1) as writer:
        sizes = [segment.stat().st_size]
        while sizes[-1] < 3 * wal.PREALLOCATE:
            writer.append_and_sync(bytes(range(1, 251)) * 40)          # 10 kB a flush
            if segment.stat().st_size != sizes[-1]:
                sizes.append(segment.stat().st_size)
    steps = [b - a for a, b in zip(sizes, sizes[1:])]
    assert sizes[0] == HEADER_SIZE + wal.FIRST_PREALLOCATE
    assert steps[0] < steps[1] < steps[2] and max(steps) <= wal.PREALLOCATE + 11_000
    assert steps[-1] > wal.PREALLOCATE // 2


def test_a_writer_refuses_a_segment_with_an_unrepaired_torn_tail(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, 1)
    writer.append_and_sync(b"acknowledged")
    crashed = live_copy(segment_path(tmp_path, 1), tmp_path / "crash")
    writer.close()
    with pytest.raises(CorruptDatabase, match="torn tail"):
        LogWriter(crashed.parent, 1)
    assert read_segment(crashed) == [b"acknowledged"]
    with LogWriter(crashed.parent, 1) as repaired:
        repaired.append_and_sync(b"next")
    assert read_segment(crashed) == [b"acknowledged", b"next"]


def unfinished_flush(tmp_path: Path) -> tuple[bytes, int, list[bytes], list[bytes]]:
    """A live segment's bytes after two acknowledged flushes and a third of several entries."""
    done, last = payloads_for(2), [bytes([i + 1]) * 700 for i in range(8)]    # the last flush spans pages
    writer = LogWriter(tmp_path, 1)
    for payload in done:
        writer.append_and_sync(payload)
    start = writer.size
    for payload in last:
        writer.append(payload)
    writer.sync(len(done) + len(last))
    assert writer.stats.fsyncs == len(done) + 1, "the last entries were flushed together"
    data = segment_path(tmp_path, 1).read_bytes()
    writer.close()
    return data, start, done, last


def sectors_of(start: int, end: int) -> list[tuple[int, int]]:
    """The sector-aligned pieces of ``[start, end)``: what a disk writes whole, or not at all."""
    pieces, pos = [], start
    while pos < end:
        stop = min(end, (pos // SECTOR + 1) * SECTOR)
        pieces.append((pos, stop))
        pos = stop
    return pieces


LOST_SECTORS = {"first": lambda n: [0], "middle": lambda n: [n // 2], "last": lambda n: [n - 1],
                "all but the first": lambda n: list(range(1, n)), "every other": lambda n: list(range(0, n, 2))}


@pytest.mark.parametrize("lost", sorted(LOST_SECTORS))
def test_a_flush_that_reached_the_disk_only_in_part_is_a_torn_tail(tmp_path: Path, lost: str) -> None:
    """Written in place, a flush's sectors can reach the disk in any order before its fsync
    completes. Every part of it is inside one record, so lost sectors (still the zeros written
    before it) drop the whole flush, which was never acknowledged, and never read as corruption."""
    (tmp_path / "src").mkdir()
    data, start, done, _ = unfinished_flush(tmp_path / "src")
    end = records_end_of(data)
    pieces = sectors_of(start, end)
    assert len(pieces) > 8
    damaged = bytearray(data)
    for index in LOST_SECTORS[lost](len(pieces)):
        first, last = pieces[index]
        damaged[first:last] = bytes(last - first)
    segment = segment_path(tmp_path, 1)
    segment.write_bytes(bytes(damaged))
    assert read_segment(segment) == done
    assert segment.stat().st_size == start


def test_power_loss_during_a_flush_recovers_what_was_acknowledged(tmp_path: Path) -> None:
    """Any subset of the sectors a flush changed may have reached the disk, at the file's old
    or new size: recovery yields the acknowledged records, or those plus the whole flush."""
    rng = random.Random(11)
    images = 0
    for trial in range(30):
        directory = tmp_path / f"t{trial}"
        directory.mkdir()
        writer = LogWriter(directory, 1, preallocate=rng.choice([64, 700, 4096, 1 << 16]))
        acked = [bytes([rng.randint(1, 255)]) * rng.randint(1, 900) for _ in range(rng.randint(1, 5))]
        for payload in acked:
            writer.append_and_sync(payload)
        segment = segment_path(directory, 1)
        old = segment.read_bytes()
        flush = [rng.randbytes(rng.randint(1, 1500)) for _ in range(rng.randint(1, 6))]
        for payload in flush:
            writer.append(payload)
        writer.sync(len(acked) + len(flush))
        new = segment.read_bytes()
        writer.close()
        sizes = {len(old), len(new)}                                    # the file may have grown
        size = max(sizes)
        old, new = old.ljust(size, b"\0"), new.ljust(size, b"\0")
        changed = [s for s in range(0, size, SECTOR) if old[s:s + SECTOR] != new[s:s + SECTOR]]
        for _ in range(40):
            image = bytearray(old)
            for s in changed:
                if rng.random() < 0.5:
                    image[s:s + SECTOR] = new[s:s + SECTOR]
            for length in sizes:
                crashed = directory / "crash"
                crashed.mkdir(exist_ok=True)
                segment_path(crashed, 1).write_bytes(bytes(image[:length]))
                assert read_segment(segment_path(crashed, 1)) in (acked, acked + flush), (trial, changed)
                images += 1
    assert images >= 1000


def test_flushes_past_the_record_limit_are_split_into_several_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal, "MAX_RECORD", 64)
    payloads = [bytes([i]) * 20 for i in range(1, 12)]                 # 24 bytes an entry: two per record
    with LogWriter(tmp_path, 1) as writer:
        for payload in payloads:
            writer.append(payload)
        writer.sync(len(payloads))
        assert writer.stats.fsyncs == 6, "each record is durable before the next is written"
    segment = segment_path(tmp_path, 1)
    records, _, torn = scan_checked_records(segment.read_bytes(), HEADER_SIZE, path=segment)
    assert not torn and [len(r) for r in records] == [48] * 5 + [24]
    assert read_segment(segment) == payloads


def test_growth_failure_fails_the_log_and_keeps_acknowledged_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = LogWriter(tmp_path, 1, preallocate=128)
    writer.append_and_sync(b"kept")
    real_pwrite = os.pwrite

    def full_disk(fd: int, data: bytes, offset: int) -> int:
        if data == bytes(len(data)):                                  # the zeros of a growth
            raise OSError(errno.ENOSPC, "no space left")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full_disk)
    with pytest.raises(StorageFailed):
        writer.append_and_sync(b"x" * 300)                            # past the preallocated zeros
    monkeypatch.undo()
    with pytest.raises(StorageFailed):
        writer.append(b"after")
    writer.close()
    segment = segment_path(tmp_path, 1)
    assert read_segment(segment) == [b"kept"]


def test_zeros_are_durable_before_records_go_over_them(tmp_path: Path) -> None:
    """Each growth is fsync'd with no new record in it: a record's lost sectors read as zeros."""
    segment = segment_path(tmp_path, 1)
    seen: list[tuple[int, int]] = []                # (file size, records end) at each fsync

    def spy(fd: int) -> None:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            data = segment.read_bytes()
            seen.append((len(data), records_end_of(data) if len(data) >= HEADER_SIZE else 0))
        os.fsync(fd)

    with LogWriter(tmp_path, 1, fsync=spy, preallocate=300) as writer:
        for i in range(30):
            writer.append_and_sync(bytes([i + 1]) * 90)
    growths = [i for i in range(1, len(seen)) if seen[i][0] > seen[i - 1][0]]
    assert len(growths) >= 5
    for i in growths:
        assert seen[i][1] == seen[i - 1][1], "a growth's fsync carried a record"
        assert seen[i + 1][0] == seen[i][0], "the record after it was written in place"


def test_close_interrupted_while_a_flush_is_in_flight_keeps_that_flush(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in ``close`` must not cut the file under a flush whose committer is about to be
    told its record is durable."""
    fsynced, go = threading.Event(), threading.Event()

    def slow_fsync(fd: int) -> None:
        os.fsync(fd)
        if threading.current_thread().name == "committer":
            fsynced.set()
            assert go.wait(10)

    writer = LogWriter(tmp_path, 1, fsync=slow_fsync)
    writer.append_and_sync(b"first")
    outcome: dict[str, object] = {}
    committer = threading.Thread(target=lambda: outcome.setdefault("seq", writer.append_and_sync(b"second")),
                                 name="committer")
    committer.start()
    assert fsynced.wait(10)
    real_join = threading.Thread.join
    interrupts = []

    def interrupted_join(self: threading.Thread, timeout: float | None = None) -> None:
        if self.name.startswith("helios-wal") and not interrupts:
            interrupts.append(self)
            threading.Timer(0.3, go.set).start()    # the flush finishes after close was interrupted
            raise KeyboardInterrupt
        real_join(self, timeout)

    monkeypatch.setattr(threading.Thread, "join", interrupted_join)
    with pytest.raises(KeyboardInterrupt):
        writer.close()
    monkeypatch.undo()
    committer.join(10)
    assert interrupts and outcome == {"seq": 2}
    assert read_segment(segment_path(tmp_path, 1)) == [b"first", b"second"]


def test_a_failed_trim_leaves_a_tail_that_repair_removes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = LogWriter(tmp_path, 1)
    writer.append_and_sync(b"kept")

    def no_truncate(fd: int, size: int) -> None:
        raise OSError(errno.EIO, "injected ftruncate failure")

    monkeypatch.setattr(os, "ftruncate", no_truncate)
    writer.close()                                  # best effort: closing still succeeds
    monkeypatch.undo()
    with pytest.raises(OSError):
        os.fstat(writer._fd)                        # and the descriptor is closed
    segment = segment_path(tmp_path, 1)
    assert segment.stat().st_size > writer.size
    with pytest.raises(CorruptDatabase, match="torn tail"):
        LogWriter(tmp_path, 1)
    assert read_segment(segment) == [b"kept"]
    with LogWriter(tmp_path, 1) as reopened:
        reopened.append_and_sync(b"next")
    assert read_segment(segment) == [b"kept", b"next"]


def write_v1_segment(segment: Path, payloads: list[bytes]) -> None:
    """A segment as format v1 wrote it: one framed record per entry."""
    segment.write_bytes(encode_header(wal.MAGIC, 1) + b"".join(encode_record(p) for p in payloads))


def test_format_v1_segments_stay_readable_and_are_never_appended_to(tmp_path: Path) -> None:
    payloads = payloads_for(5)
    segment = segment_path(tmp_path, 1)
    write_v1_segment(segment, payloads)
    assert read_segment(segment) == payloads
    with pytest.raises(UnsupportedFormat, match="older format"):
        LogWriter(tmp_path, 1)
    torn = segment.read_bytes()[:-3]                                  # v1's torn-tail rule still applies
    segment.write_bytes(torn)
    assert read_segment(segment) == payloads[:-1]


def test_a_malformed_flush_record_is_corruption(tmp_path: Path) -> None:
    segment = segment_path(tmp_path, 1)
    body = wal.ENTRY.pack(50) + b"short"                             # its checksum holds, its framing does not
    segment.write_bytes(encode_header(wal.MAGIC, wal.VERSION) + encode_checked_record(body))
    with pytest.raises(CorruptDatabase, match="invalid length 50"):
        read_segment(segment)


# -- corruption ----------------------------------------------------------------------------------

def flipped(data: bytes, position: int) -> bytes:
    out = bytearray(data)
    out[position] ^= 0xFF
    return bytes(out)


def test_flipped_byte_in_a_middle_record_is_corruption_with_path_and_offset(tmp_path: Path) -> None:
    payloads = payloads_for(6)
    segment = write_segment(tmp_path, payloads)
    data = segment.read_bytes()
    offsets = record_offsets(payloads)
    start, end = offsets[2], offsets[3]
    for position in range(start, end):  # length, crc and payload bytes alike
        segment.write_bytes(flipped(data, position))
        with pytest.raises(CorruptDatabase) as caught:
            read_segment(segment)
        assert str(segment) in caught.value.message
        assert f"byte offset {start}" in caught.value.message
        assert caught.value.details == {"path": str(segment), "offset": start}
        assert segment.read_bytes() == flipped(data, position), "corruption must not be 'repaired'"


def test_flipped_byte_in_the_last_record_is_damage_not_a_torn_write(tmp_path: Path) -> None:
    """Records go over zeros already on disk, so a torn last record shows zeros somewhere;
    one damaged in every sector held acknowledged commits and must not vanish in silence."""
    payloads = payloads_for(6)
    segment = write_segment(tmp_path, payloads)
    data = segment.read_bytes()
    offsets = record_offsets(payloads)
    for position in range(offsets[-2], offsets[-1]):   # the header (it checks itself) and the payload
        segment.write_bytes(flipped(data, position))
        with pytest.raises(CorruptDatabase, match="not a torn write"):
            read_segment(segment)
        assert segment.read_bytes() == flipped(data, position), "damage must not be 'repaired'"
    for zeros in (0, 5000):                     # a flipped length must not swallow the zeros after it
        for bit in (3, 12, 20, 30, 31):
            damaged = bytearray(data + bytes(zeros))
            damaged[offsets[-2] + bit // 8] ^= 1 << (bit % 8)
            segment.write_bytes(bytes(damaged))
            with pytest.raises(CorruptDatabase):
                read_segment(segment)


@pytest.mark.parametrize("start_in_sector", [500, 506, 508, 509, 510, 511])
def test_a_header_across_a_sector_boundary_torn_by_a_crash_is_a_torn_tail(
        tmp_path: Path, start_in_sector: int) -> None:
    """A crash may keep either side of a header that straddles two sectors: its length then
    reads wrong, and the header's own check, not the length, must decide."""
    first = bytes([7]) * (SECTOR + start_in_sector - HEADER_SIZE - 16)   # the last flush starts there
    last = [bytes([9]) * 3000, bytes([5]) * 70_000]
    writer = LogWriter(tmp_path, 1)
    writer.append_and_sync(first)
    start = writer.size
    assert start % SECTOR == start_in_sector
    for payload in last:
        writer.append(payload)
    writer.sync(3)
    data = segment_path(tmp_path, 1).read_bytes()
    writer.close()
    pieces = sectors_of(start, records_end_of(data))
    for lost in ([0], [1], [0, 2], [1, 3], list(range(1, len(pieces), 2))):
        image = bytearray(data)
        for index in lost:
            a, b = pieces[index]
            image[a:b] = bytes(b - a)
        crashed = tmp_path / f"crash{lost[0]}-{len(lost)}"
        crashed.mkdir()
        segment_path(crashed, 1).write_bytes(bytes(image))
        assert read_segment(segment_path(crashed, 1)) == [first], lost


def test_format_v1_keeps_dropping_a_last_record_that_fails_its_checksum(tmp_path: Path) -> None:
    """v1 segments were appended, not written over zeros: their tail rule stays as it was."""
    payloads = payloads_for(4)
    segment = segment_path(tmp_path, 1)
    data = encode_header(wal.MAGIC, 1) + b"".join(encode_record(p) for p in payloads)
    segment.write_bytes(flipped(data, len(data) - 1))
    assert read_segment(segment) == payloads[:-1]


def test_bad_record_followed_by_unaccounted_garbage_is_corruption(tmp_path: Path) -> None:
    payloads = payloads_for(3)
    segment = write_segment(tmp_path, payloads)
    offsets = record_offsets(payloads)
    data = flipped(segment.read_bytes(), offsets[-1] - 1)  # CRC of the last record fails
    segment.write_bytes(data + b"\x01garbage")
    with pytest.raises(CorruptDatabase, match=f"byte offset {offsets[-2]}"):
        read_segment(segment)
    segment.write_bytes(data + bytes(64))  # zeros after it do not make a damaged record a torn one
    with pytest.raises(CorruptDatabase, match="not a torn write"):
        read_segment(segment)
    torn = bytearray(data)                  # ...but the zeros of a sector that never reached the disk do
    last_sector = max(offsets[-2], (offsets[-1] - 1) // SECTOR * SECTOR)
    torn[last_sector:offsets[-1]] = bytes(offsets[-1] - last_sector)
    segment.write_bytes(bytes(torn) + bytes(64))
    assert read_segment(segment) == payloads[:-1]


def test_zero_gap_before_a_valid_record_is_corruption(tmp_path: Path) -> None:
    payloads = payloads_for(4)
    segment = write_segment(tmp_path, payloads)
    offsets = record_offsets(payloads)
    data = bytearray(segment.read_bytes())
    data[offsets[1]:offsets[2]] = bytes(offsets[2] - offsets[1])  # record 2 lost, 3 and 4 intact
    segment.write_bytes(bytes(data))
    with pytest.raises(CorruptDatabase, match=f"byte offset {offsets[1]}"):
        read_segment(segment)


def test_bad_magic_and_unknown_version(tmp_path: Path) -> None:
    segment = write_segment(tmp_path, payloads_for(2))
    data = segment.read_bytes()
    segment.write_bytes(b"NOTAWAL!" + data[8:])
    with pytest.raises(CorruptDatabase, match="magic") as caught:
        read_segment(segment)
    assert str(segment) in caught.value.message
    with pytest.raises(CorruptDatabase):
        LogWriter(tmp_path, 1)

    segment.write_bytes(encode_header(wal.MAGIC, 99) + data[HEADER_SIZE:])
    with pytest.raises(UnsupportedFormat, match="99") as unsupported:
        read_segment(segment)
    assert str(segment) in unsupported.value.message
    with pytest.raises(UnsupportedFormat):
        LogWriter(tmp_path, 1)
    assert segment.read_bytes() == encode_header(wal.MAGIC, 99) + data[HEADER_SIZE:]


# -- failure ------------------------------------------------------------------------------------

def test_fsync_failure_fails_the_log_and_keeps_acknowledged_records(tmp_path: Path) -> None:
    spy = FsyncSpy()
    acknowledged = payloads_for(3)
    writer = LogWriter(tmp_path, 1, fsync=spy)
    for payload in acknowledged:
        writer.append_and_sync(payload)
    spy.fail = True
    with pytest.raises(StorageFailed) as caught:
        writer.append_and_sync(b"never acknowledged")
    assert isinstance(caught.value.__cause__, OSError)
    assert isinstance(writer.failed, OSError)
    spy.fail = False  # a later fsync "succeeding" must not revive the log
    with pytest.raises(StorageFailed):
        writer.append(b"later")
    with pytest.raises(StorageFailed):
        writer.sync(4)
    writer.sync(3)  # acknowledged before the failure: still durable
    writer.close()
    assert read_segment(segment_path(tmp_path, 1)) == acknowledged


def test_monkeypatched_os_fsync_reaches_the_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = LogWriter(tmp_path, 1)
    writer.append_and_sync(b"kept")

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "disk gone")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(StorageFailed):
        writer.append_and_sync(b"lost")
    monkeypatch.undo()
    with pytest.raises(StorageFailed):
        writer.append(b"after")
    writer.close()
    assert read_segment(segment_path(tmp_path, 1)) == [b"kept"]


def test_write_failure_fails_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = LogWriter(tmp_path, 1)
    writer.append_and_sync(b"kept")
    real_pwrite = os.pwrite

    def half_then_enospc(fd: int, data: bytes, offset: int) -> int:
        if len(data) > 4:
            return real_pwrite(fd, bytes(data)[:4], offset)
        raise OSError(errno.ENOSPC, "no space left")

    monkeypatch.setattr(os, "pwrite", half_then_enospc)
    with pytest.raises(StorageFailed):
        writer.append_and_sync(b"a record that does not fit")
    monkeypatch.undo()
    assert writer.failed is not None
    with pytest.raises(StorageFailed):
        writer.append_and_sync(b"after")
    writer.close()
    assert read_segment(segment_path(tmp_path, 1)) == [b"kept"]


def test_waiters_of_a_failed_flush_all_raise(tmp_path: Path) -> None:
    spy = FsyncSpy(delay=0.05)
    writer = LogWriter(tmp_path, 1, fsync=spy)
    spy.fail = True
    outcomes: list[BaseException | int] = []
    lock = threading.Lock()

    def commit(i: int) -> None:
        try:
            result: BaseException | int = writer.append_and_sync(b"w%d" % i)
        except StorageFailed as exc:
            result = exc
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(outcomes) == 8
    assert all(isinstance(outcome, StorageFailed) for outcome in outcomes)
    writer.close()
    assert read_segment(segment_path(tmp_path, 1)) == []


# -- group commit ----------------------------------------------------------------------------------

def test_group_commit_shares_fsyncs_and_keeps_every_record(tmp_path: Path) -> None:
    threads_n, per_thread = 16, 50
    spy = FsyncSpy(delay=0.002)
    writer = LogWriter(tmp_path, 1, fsync=spy)
    creation_fsyncs = spy.calls
    acks: dict[int, list[int]] = {}
    start = threading.Barrier(threads_n)

    def committer(tid: int) -> None:
        start.wait()
        acks[tid] = [writer.append_and_sync(f"{tid}:{i}".encode()) for i in range(per_thread)]

    threads = [threading.Thread(target=committer, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    flush_fsyncs = spy.calls - creation_fsyncs
    assert writer.stats.fsyncs == flush_fsyncs and writer.stats.records == threads_n * per_thread
    writer.close()

    records = read_segment(segment_path(tmp_path, 1))
    assert len(records) == threads_n * per_thread
    assert flush_fsyncs < 400, flush_fsyncs
    for tid, seqs in acks.items():
        assert seqs == sorted(seqs)
        assert [records[seq - 1] for seq in seqs] == [f"{tid}:{i}".encode() for i in range(per_thread)]
    assert sorted(records) == sorted(f"{t}:{i}".encode() for t in range(threads_n) for i in range(per_thread))


class CoverageSpy:
    """A real fsync that remembers how many entries (sequence numbers) each completed call made durable."""

    def __init__(self, delay: float = 0.0) -> None:
        self.durable = 0
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):          # the segment's directory entry
            os.fsync(fd)
            return
        with open(f"/proc/self/fd/{fd}", "rb") as f:    # records written so far: what this fsync covers
            data = f.read()
        entries: list[bytes] = []
        if len(data) >= HEADER_SIZE:
            for index, record in enumerate(scan_checked_records(data, HEADER_SIZE, path="spy")[0]):
                wal._split_entries(memoryview(record), entries, Path("spy"), index)
        size = len(entries)
        if self.delay:
            time.sleep(self.delay)
        os.fsync(fd)
        with self._lock:
            self.durable = max(self.durable, size)


def flusher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("helios-wal-")]


def test_no_record_is_acknowledged_before_an_fsync_covers_it(tmp_path: Path) -> None:
    threads_n, per_thread = 12, 30
    spy = CoverageSpy(delay=0.001)
    writer = LogWriter(tmp_path, 1, fsync=spy)
    acks: list[tuple[int, int]] = []              # (seq, entries durable when sync returned)
    lock = threading.Lock()
    start = threading.Barrier(threads_n)
    flushers_seen: list[int] = []

    def committer(tid: int) -> None:
        start.wait()
        for i in range(per_thread):
            seq = writer.append_and_sync(f"{tid}:{i}".encode() * (1 + i % 5))
            with lock:
                acks.append((seq, spy.durable))
                flushers_seen.append(len(flusher_threads()))

    threads = [threading.Thread(target=committer, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert max(flushers_seen) == 1, "queued committers are served by one flusher thread"
    writer.close()
    assert flusher_threads() == [], "close stops the flusher"

    records = read_segment(segment_path(tmp_path, 1))
    assert len(records) == len(acks) == threads_n * per_thread
    for seq, durable in acks:
        assert seq <= durable, f"record {seq} acknowledged before an fsync covered it"


def test_a_lone_committer_flushes_in_its_own_thread(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, 1)
    for i in range(5):
        writer.append_and_sync(b"r%d" % i)
    assert flusher_threads() == [] and writer.stats.fsyncs == 5
    writer.close()


def test_close_waits_for_the_flush_under_way_and_flushes_the_queue(tmp_path: Path) -> None:
    armed, release, entered = threading.Event(), threading.Event(), threading.Event()

    def blocking_fsync(fd: int) -> None:
        if armed.is_set():                          # the segment header's fsync goes through
            entered.set()
            assert release.wait(timeout=30)
        os.fsync(fd)

    writer = LogWriter(tmp_path, 1, fsync=blocking_fsync)
    armed.set()
    results: dict[str, int] = {}
    leader = threading.Thread(target=lambda: results.setdefault("a", writer.append_and_sync(b"a")))
    leader.start()
    assert entered.wait(timeout=30)
    queued = threading.Thread(target=lambda: results.setdefault("b", writer.append_and_sync(b"b")))
    queued.start()
    buffered = writer.append(b"c")                  # nobody waits for it: close must flush it
    closer = threading.Thread(target=writer.close)
    closer.start()
    closer.join(timeout=0.2)
    assert closer.is_alive(), "close returned while a flush was still writing"
    release.set()
    for thread in (leader, queued, closer):
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert results == {"a": 1, "b": 2} and buffered == 3
    assert read_segment(segment_path(tmp_path, 1)) == [b"a", b"b", b"c"]
    assert flusher_threads() == []
    writer.sync(3)                                  # durable before the file closed


def test_failure_of_a_pipelined_flush_keeps_earlier_batches_and_fails_the_rest(tmp_path: Path) -> None:
    spy = FsyncSpy(delay=0.01)
    creation: list[int] = []

    def failing_after_first(fd: int) -> None:
        spy.fail = bool(creation) and spy.calls > creation[0]   # the first flush succeeds, later ones fail
        spy(fd)

    writer = LogWriter(tmp_path, 1, fsync=failing_after_first)
    creation.append(spy.calls)
    outcomes: dict[bytes, object] = {}
    lock = threading.Lock()

    def commit(payload: bytes) -> None:
        try:
            result: object = writer.append_and_sync(payload)
        except StorageFailed as exc:
            result = exc
        with lock:
            outcomes[payload] = result

    threads = [threading.Thread(target=commit, args=(b"w%d" % i,)) for i in range(10)]
    for thread in threads:
        thread.start()
        time.sleep(0.002)                          # arrivals spread over the first flush
    for thread in threads:
        thread.join(timeout=30)
    acknowledged = sorted(p for p, r in outcomes.items() if isinstance(r, int))
    failed = [r for r in outcomes.values() if not isinstance(r, int)]
    assert len(outcomes) == 10 and acknowledged and failed
    assert all(isinstance(r, StorageFailed) and isinstance(r.__cause__, OSError) for r in failed)
    with pytest.raises(StorageFailed):
        writer.append(b"later")
    writer.close()
    assert sorted(read_segment(segment_path(tmp_path, 1))) == acknowledged


@pytest.mark.parametrize("fail_at", [2, 3, 5])
def test_fsync_failure_in_a_running_pipeline_wakes_every_committer_once(tmp_path: Path, fail_at: int) -> None:
    """Committers loop until the log fails; a flush fails after earlier flushes left
    committers to wake. Each committer must end (acknowledged or StorageFailed), none hang."""
    spy = FsyncSpy(delay=0.003)
    flushes: list[int] = []

    def failing_at(fd: int) -> None:
        if flushes:                                  # flushes[0]: the fsyncs of creating the segment
            spy.fail = spy.calls - flushes[0] + 1 >= fail_at
        spy(fd)

    writer = LogWriter(tmp_path, 1, fsync=failing_at)
    flushes.append(spy.calls)
    acked: list[bytes] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def committer(tid: int) -> None:
        for i in range(1000):
            payload = b"%d:%d" % (tid, i)
            try:
                writer.append_and_sync(payload)
            except StorageFailed as exc:
                with lock:
                    failures.append(exc)
                return
            with lock:
                acked.append(payload)

    threads = [threading.Thread(target=committer, args=(t,), daemon=True) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a committer was never woken"
    assert len(failures) == 8
    writer.close()
    assert sorted(read_segment(segment_path(tmp_path, 1))) == sorted(acked)


def test_an_interrupted_wait_still_passes_the_wake_up_on() -> None:
    class InterruptedOnce:
        def __init__(self) -> None:
            self.calls = 0

        def acquire(self) -> bool:
            self.calls += 1
            if self.calls == 1:
                raise KeyboardInterrupt
            return True

    waiter = InterruptedOnce()
    interrupted = wal._to_the_end(waiter.acquire)
    assert isinstance(interrupted, KeyboardInterrupt) and waiter.calls == 2


def test_a_committer_interrupted_in_its_wait_raises_after_passing_the_wake_up_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sync``'s own wait: Ctrl-C in the first committer of a group still wakes the second."""
    from _thread import allocate_lock as real_allocate_lock

    class InterruptedOnce:
        """A lock whose first blocking wait raises KeyboardInterrupt (the take does not block)."""

        def __init__(self) -> None:
            self.lock = real_allocate_lock()
            self.calls = 0

        def acquire(self) -> bool:
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            return self.lock.acquire()

        def release(self) -> None:
            self.lock.release()

    interrupting = InterruptedOnce()
    handed_out = []

    def allocate() -> object:
        lock = interrupting if not handed_out else real_allocate_lock()
        handed_out.append(lock)
        return lock

    spy = FsyncSpy()
    writer = LogWriter(tmp_path, 1, fsync=spy)
    created, spy.delay = spy.calls, 0.3                 # the header's fsyncs are done; flushes are slow
    outcomes: dict[str, object] = {}

    def commit(name: str) -> None:
        try:
            outcomes[name] = writer.append_and_sync(name.encode())
        except BaseException as exc:  # noqa: BLE001 - the outcome under test
            outcomes[name] = exc

    def wait_for(condition) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline
            time.sleep(0.001)

    monkeypatch.setattr(wal, "allocate_lock", allocate)
    first = threading.Thread(target=commit, args=("a",), daemon=True)   # a broken hand-on must not hang pytest
    first.start()
    wait_for(lambda: spy.calls > created)               # its inline flush is under way
    threads = [first]
    for name, queued in (("b", 1), ("c", 2)):
        thread = threading.Thread(target=commit, args=(name,), daemon=True)
        thread.start()
        threads.append(thread)
        wait_for(lambda: len(handed_out) == queued)
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert outcomes["a"] == 1 and outcomes["c"] == 3
    assert isinstance(outcomes["b"], KeyboardInterrupt) and interrupting.calls == 3
    writer.close()
    assert read_segment(segment_path(tmp_path, 1)) == [b"a", b"b", b"c"]


# -- fileio -------------------------------------------------------------------------------------------

def test_atomic_write_replaces_content(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.bin"
    atomic_write(target, b"old")
    spy = FsyncSpy()
    atomic_write(target, b"new contents", fsync=spy)
    assert target.read_bytes() == b"new contents"
    assert spy.calls == 2  # the file, then the directory
    assert os.listdir(tmp_path) == ["checkpoint.bin"]


def test_atomic_write_failure_keeps_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "checkpoint.bin"
    atomic_write(target, b"old")
    spy = FsyncSpy()
    spy.fail = True
    with pytest.raises(OSError):
        atomic_write(target, b"new", fsync=spy)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["checkpoint.bin"]

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "disk gone")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["checkpoint.bin"]


def test_fsync_directory_uses_the_given_fsync(tmp_path: Path) -> None:
    spy = FsyncSpy()
    fsync_directory(tmp_path, fsync=spy)
    assert spy.calls == 1
    with pytest.raises(NotADirectoryError):
        fsync_directory(Path(__file__))


def test_header_round_trip_through_file_and_fd(tmp_path: Path) -> None:
    path = tmp_path / "f"
    with open(path, "wb") as f:
        write_header(f, b"CHECKPNT", 3)
    with open(path, "rb") as f:
        assert read_header(f, b"CHECKPNT", {2, 3}, path=path) == 3
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    write_header(fd, b"CHECKPNT", 2)
    os.close(fd)
    assert read_header(path.read_bytes(), b"CHECKPNT", {2, 3}, path=path) == 2
    with pytest.raises(CorruptDatabase, match="cut short"):
        read_header(b"CHECK", b"CHECKPNT", {2}, path=path)
    with pytest.raises(CorruptDatabase, match="reserved"):
        read_header(b"CHECKPNT\x02\x00\x01\x00", b"CHECKPNT", {2}, path=path)
    with pytest.raises(ValueError):
        encode_header(b"SHORT", 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=64), max_size=12), st.data())
def test_scan_records_returns_exactly_the_complete_records(payloads: list[bytes], data: st.DataObject) -> None:
    encoded = b"".join(encode_record(p) for p in payloads)
    cut = data.draw(st.integers(0, len(encoded)))
    got, end, torn = scan_records(encoded[:cut], 0, path="mem")
    boundaries = [0]
    for payload in payloads:
        boundaries.append(boundaries[-1] + 8 + len(payload))
    kept = sum(1 for b in boundaries[1:] if b <= cut)
    assert got == payloads[:kept]
    assert end == boundaries[kept]
    assert torn == (cut != boundaries[kept])


def test_scan_records_rejects_oversized_length_before_valid_data() -> None:
    good = encode_record(b"second")
    garbage_header = (fileio.MAX_RECORD + 1).to_bytes(4, "little") + bytes(4) + b"payload"
    with pytest.raises(CorruptDatabase, match="byte offset 0"):
        scan_records(garbage_header + good, 0, path="mem")
    assert scan_records(encode_record(b"first") + garbage_header, 0, path="mem") == ([b"first"], 13, True)


# -- crash with a real process --------------------------------------------------------------------------

CHILD = r"""
import sys, threading
from helios.storage.wal import LogWriter

writer = LogWriter(sys.argv[1], 1)
out = threading.Lock()

def work(tid):
    i = 0
    while True:
        payload = (f"t{tid}-{i}." * (1 + i % 7)).encode()
        seq = writer.append_and_sync(payload)
        with out:
            sys.stdout.write(f"{seq} {payload.decode()}\n")
            sys.stdout.flush()
        i += 1

threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


@pytest.mark.parametrize("trial", range(int(os.environ.get("HELIOS_CRASH_TRIALS", "5"))))
def test_kill_9_never_loses_an_acknowledged_record(tmp_path: Path, trial: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(SOURCE_ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = child.stdout.readline()
        assert first, child.stderr.read().decode()
        time.sleep(random.uniform(0.01, 0.25))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    acknowledged = [line.split(" ", 1) for line in (first + rest).decode().split("\n")[:-1]]
    assert acknowledged

    records = read_segment(segment_path(tmp_path, 1))
    for seq, payload in acknowledged:
        assert records[int(seq) - 1] == payload.encode(), f"trial {trial}: record {seq} lost or damaged"
    assert all(record.startswith(b"t") and record.endswith(b".") for record in records)
