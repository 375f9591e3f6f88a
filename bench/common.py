"""Shared helpers for the benchmarks: machine line, timing, tables, targets, memory.

Every benchmark prints a figure next to a baseline measured in the same run on
the same machine, so the ratios mean something even where the absolute
numbers do not travel. This module imports nothing from ``helios`` (and not
``sqlite3``: the DoltLite workers must load their library before it).
"""
from __future__ import annotations

import gc
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

_T0 = time.monotonic()
REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mount_of(path: str | os.PathLike) -> tuple[str, str, str]:
    """(device, mount point, filesystem type) holding ``path``, from /proc/mounts."""
    real = os.path.realpath(path)
    best = ("?", "/", "?")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, fstype = line.split()[:3]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[1]):
                best = (dev, mnt, fstype)
    except OSError:
        pass
    return best


def mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    return 0.0


def machine_line() -> str:
    disk = bench_tmp_root()
    dev, mnt, fstype = mount_of(disk)
    free = shutil.disk_usage(disk).free / (1 << 30)
    return (f"machine: {platform.system()} {platform.release()} {platform.machine()} | "
            f"CPU {cpu_model()} x{os.cpu_count()} | RAM {mem_total_gib():.1f} GiB | "
            f"Python {platform.python_version()} ({platform.python_implementation()}) | "
            f"disk {dev} {fstype} on {mnt} ({free:.0f} GiB free), bench dir {disk} | "
            f"load avg {load_average()}")


def load_average() -> str:
    """Other processes skew timings; the 1-minute load says how busy the machine was."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def print_header(title: str) -> None:
    print()
    print("=" * 100)
    print(title)
    print(machine_line())
    print("=" * 100, flush=True)


# ---------------------------------------------------------------- temp dirs
def bench_tmp_root() -> Path:
    """Where on-disk benchmarks write: a real disk, never tmpfs (fsync there is free).

    ``HELIOS_BENCH_TMP`` overrides; otherwise the system temp dir unless it is
    tmpfs/ramfs, in which case ``.bench-tmp`` in the repository."""
    env = os.environ.get("HELIOS_BENCH_TMP")
    if env:
        root = Path(env)
    else:
        root = Path(tempfile.gettempdir())
        if mount_of(root)[2] in ("tmpfs", "ramfs"):
            root = REPO / ".bench-tmp"
    root.mkdir(parents=True, exist_ok=True)
    return root


def make_tmp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"helios-bench-{prefix}-", dir=bench_tmp_root()))


def remove_tmp_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- progress and timing
def progress(msg: str) -> None:
    """A progress line on stderr (the tables go to stdout)."""
    print(f"  [{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_time(fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None) -> float:
    """Median wall time of ``repeat`` calls; ``setup`` runs untimed before each call."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        times.append(timed(fn))
    return statistics.median(times)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


# ---------------------------------------------------------------- formatting
def fmt_rate(per_second: float, unit: str = "/s") -> str:
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f}M{unit}"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f}k{unit}"
    return f"{per_second:.0f}{unit}"


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_ratio(x: float) -> str:
    if x != x or x in (float("inf"), float("-inf")):
        return "-"
    return f"{x:.2f}x" if x < 100 else f"{x:.0f}x"


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None) -> None:
    """Left-align the first column, right-align the rest."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows if i < len(r)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    if title:
        print(f"\n{title}")
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    sys.stdout.flush()


# ---------------------------------------------------------------- targets
@dataclass(frozen=True)
class Check:
    """One target from the issues, with the figure measured against it."""

    name: str
    measured: str
    target: str
    passed: bool

    @property
    def verdict(self) -> str:
        return "ok" if self.passed else "MISS"


def print_checks(checks: Sequence[Check], title: str = "Targets") -> None:
    print_table(("target", "measured", "wanted", ""), [(c.name, c.measured, c.target, c.verdict) for c in checks],
                title=title)


# ---------------------------------------------------------------- memory
def rss_bytes() -> int:
    """Current resident set size (VmRSS); peak RSS from getrusage where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def settled_rss() -> int:
    """RSS after a full collection, so garbage does not count as data."""
    gc.collect()
    return rss_bytes()


def add_quick_flag(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a tenth of the time)")


# ---------------------------------------------------------------- workload
USERS_COLUMNS = ("id", "name", "email", "age", "created_at")
ORDERS_COLUMNS = ("id", "user_id", "amount")
_GOLDEN = 2654435761          # odd, so i -> i * _GOLDEN mod 2**32 is a bijection: unique, scrambled


def user_row(i: int) -> tuple[int, str, str, int, int]:
    """users(id, name, email, age, created_at): deterministic, no RNG state, so a
    generator can stream it; ``created_at`` is unique (ORDER BY ... LIMIT has no ties)."""
    h = (i * _GOLDEN) & 0xFFFFFFFF
    return (i, f"user{i}", f"user{i}@example.com", 18 + (h >> 7) % 72, 1_500_000_000 + h)


def user_rows(n: int, start: int = 1) -> list[tuple[int, str, str, int, int]]:
    return [user_row(i) for i in range(start, start + n)]


def order_rows(n_users: int) -> list[tuple[int, int, float]]:
    """orders(id, user_id, amount): three per user, amounts with two decimals."""
    return [(3 * (u - 1) + j + 1, u, ((u * 31 + j * 17) % 10_000) / 100)
            for u in range(1, n_users + 1) for j in range(3)]
