"""A sqllogictest runner that judges results exactly as SQLite's reference driver does.

The corpus's expected answers were produced by ``sqllogictest.c`` driving SQLite
(``slt_sqlite.c``), so this module reproduces that program's observable rules:
how a script is split into records, how values are rendered per type letter
(``sqlite3_column_int``/``_double``/``_text`` semantics and SQLite's own
``printf``), how rows are sorted (``strcmp`` on rendered values) and how large
results are hashed. Any engine plugs in through a two-method adapter.

Sections: records and parser, rendering, adapters, runner, reports.
"""
from __future__ import annotations

import functools
import hashlib
import math
import re
import sqlite3
import struct
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Protocol

DATABASE_NAME = "sqlite"  # we answer skipif/onlyif as SQLite: its answers are the corpus's
DEFAULT_HASH_THRESHOLD = 8  # sqllogictest.c's default when a script sets none
SORT_MODES = ("nosort", "rowsort", "valuesort")

# ---------------------------------------------------------------------------
# Records and parser
# ---------------------------------------------------------------------------


class SltParseError(ValueError):
    """A script the reference driver would also reject (unknown record, bad type letter)."""


@dataclass(frozen=True, slots=True)
class Condition:
    """``skipif <db>`` or ``onlyif <db>`` in front of a record."""

    kind: Literal["skipif", "onlyif"]
    database: str

    def skips(self, database: str) -> bool:
        """True when this condition excludes the record for ``database``."""
        match = self.database.lower() == database.lower()
        return match if self.kind == "skipif" else not match


@dataclass(frozen=True, slots=True)
class Statement:
    """``statement ok|error`` followed by SQL."""

    line: int
    conditions: tuple[Condition, ...]
    sql: str
    expect_error: bool


@dataclass(frozen=True, slots=True)
class Query:
    """``query <types> [sort] [label]``, SQL, ``----`` and the expected result lines."""

    line: int
    conditions: tuple[Condition, ...]
    sql: str
    types: str
    sort: str
    label: str | None
    expected: tuple[str, ...]

    @property
    def expected_hash(self) -> tuple[int, str] | None:
        """(count, md5) when the expectation is a ``N values hashing to <md5>`` line."""
        if len(self.expected) == 1:
            match = HASH_LINE.match(self.expected[0])
            if match:
                return int(match.group(1)), match.group(2)
        return None


@dataclass(frozen=True, slots=True)
class HashThreshold:
    """``hash-threshold N``: results with more than N values are compared by md5."""

    line: int
    conditions: tuple[Condition, ...]
    value: int


@dataclass(frozen=True, slots=True)
class Halt:
    """``halt``: stop reading the script (its conditions still apply)."""

    line: int
    conditions: tuple[Condition, ...]


Record = Statement | Query | HashThreshold | Halt
HASH_LINE = re.compile(r"^(\d+) values hashing to ([0-9a-f]{32})$")
_LEADING_INT = re.compile(rb"[ \t\n\v\f\r]*([+-]?)0*([0-9]*)")


def _is_blank(line: str) -> bool:
    return not line.strip(" \t\n\v\f\r")


def _script_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) pairs without comments, as ``nextLine()`` yields them.

    A line of whitespace becomes empty (a record separator); a line starting with
    ``#`` vanishes entirely, so a comment never ends a record.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if _is_blank(line):
            yield number, ""
        elif not line.startswith("#"):
            yield number, line


class _Script:
    """A cursor over a script's lines, mirroring the C driver's ``Script`` struct."""

    def __init__(self, text: str, name: str) -> None:
        self.lines = list(_script_lines(text))
        self.name = name
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.lines)

    def current(self) -> str:
        return "" if self.at_end() else self.lines[self.pos][1]

    def line_number(self) -> int:
        return self.lines[min(self.pos, len(self.lines) - 1)][0]

    def skip_blank(self) -> None:
        while not self.at_end() and not self.current():
            self.pos += 1

    def take_block(self, stop_at_dashes: bool = False) -> list[str]:
        """Lines up to the next blank line (or a ``----`` line), consuming them."""
        taken: list[str] = []
        while not self.at_end() and self.current() and not (stop_at_dashes and self.current() == "----"):
            taken.append(self.current())
            self.pos += 1
        return taken


def parse(text: str, name: str = "<string>") -> list[Record]:
    """Split a script into records, following ``sqllogictest.c`` line by line."""
    script = _Script(text, name)
    records: list[Record] = []
    script.skip_blank()
    while not script.at_end():
        records.append(_parse_record(script))
        script.take_block()  # whatever the record did not use, up to the blank line
        script.skip_blank()
    return records


def _parse_record(script: _Script) -> Record:
    conditions: list[Condition] = []
    tokens = script.current().split()
    while tokens and tokens[0] in ("skipif", "onlyif"):
        if len(tokens) < 2:
            raise SltParseError(f"{script.name}:{script.line_number()}: {tokens[0]} needs a database")
        conditions.append(Condition(tokens[0], tokens[1]))  # type: ignore[arg-type]
        script.pos += 1
        tokens = script.current().split()
    line = script.line_number()
    where = f"{script.name}:{line}"
    keyword = tokens[0] if tokens else ""
    argument = tokens[1] if len(tokens) > 1 else ""
    script.pos += 1
    if keyword == "statement":
        if argument not in ("ok", "error"):
            raise SltParseError(f"{where}: statement argument should be 'ok' or 'error'")
        return Statement(line, tuple(conditions), "\n".join(script.take_block()), argument == "error")
    if keyword == "query":
        if not argument or set(argument) - set("TIR"):
            raise SltParseError(f"{where}: type string must be one or more of T, I, R: {argument!r}")
        sort = tokens[2] if len(tokens) > 2 else "nosort"
        if sort not in SORT_MODES:
            raise SltParseError(f"{where}: unknown sort method: {sort!r}")
        sql = "\n".join(script.take_block(stop_at_dashes=True))
        expected: list[str] = []
        if script.current() == "----":
            script.pos += 1
            expected = script.take_block()
        label = tokens[3] if len(tokens) > 3 else None
        return Query(line, tuple(conditions), sql, argument, sort, label, tuple(expected))
    if keyword == "hash-threshold":
        if not argument.isdigit():
            raise SltParseError(f"{where}: hash-threshold needs a number")
        return HashThreshold(line, tuple(conditions), int(argument))
    if keyword == "halt":
        return Halt(line, tuple(conditions))
    raise SltParseError(f"{where}: unknown record type: {keyword!r}")


def parse_file(path: str | Path) -> list[Record]:
    """Parse a script file (bytes decoded as UTF-8; undecodable bytes kept as escapes)."""
    path = Path(path)
    return parse(path.read_bytes().decode("utf-8", "surrogateescape"), str(path))


def skip_reason(conditions: Iterable[Condition], database: str = DATABASE_NAME) -> str | None:
    """Why the conditions exclude the record for ``database``, or None to run it."""
    for condition in conditions:
        if condition.skips(database):
            return f"{condition.kind} {condition.database}"
    return None


_TRIGGER_SQL = re.compile(r"\s*(CREATE\s+(TEMP\s+|TEMPORARY\s+)?TRIGGER|DROP\s+TRIGGER)\b", re.IGNORECASE)


def is_trigger_sql(sql: str) -> bool:
    """CREATE/DROP TRIGGER: outside the project's scope, so counted as skipped."""
    return _TRIGGER_SQL.match(sql) is not None


# ---------------------------------------------------------------------------
# Rendering: what slt_sqlite.c prints for a value under a type letter
# ---------------------------------------------------------------------------

_I64_MIN, _I64_MAX = -(2 ** 63), 2 ** 63 - 1
_NUMBER_PREFIX = re.compile(r"[ \t\n\v\f\r]*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")


def _text_bytes(value: Any) -> bytes:
    """``sqlite3_column_text``: the UTF-8 text SQLite would hand the C driver."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, float):
        return format_real(value).encode("ascii")
    return str(int(value)).encode("ascii")


def _wrap_int32(value: int) -> int:
    """C's ``(int)`` of a 64-bit value: keep the low 32 bits, two's complement."""
    value &= 0xFFFFFFFF
    return value - 0x1_0000_0000 if value & 0x8000_0000 else value


def _text_to_int64(data: bytes) -> int:
    """``sqlite3Atoi64`` on text: the leading integer prefix, clamped to 64 bits."""
    match = _LEADING_INT.match(data)
    assert match is not None  # the pattern can match the empty string
    sign, digits = match.groups()
    number = int(digits) if digits else 0
    number = -number if sign == b"-" else number
    return max(_I64_MIN, min(_I64_MAX, number))


def _real_to_int64(value: float) -> int:
    """``doubleToInt64``: truncate toward zero, saturating at the 64-bit limits."""
    if value != value:
        return 0
    if value <= _I64_MIN:
        return _I64_MIN
    if value >= _I64_MAX:
        return _I64_MAX
    return int(value)


def column_int(value: Any) -> int:
    """``sqlite3_column_int`` of a non-NULL value."""
    if isinstance(value, float):
        return _wrap_int32(_real_to_int64(value))
    if isinstance(value, int):
        return _wrap_int32(value)
    return _wrap_int32(_text_to_int64(_text_bytes(value)))


def column_double(value: Any) -> float:
    """``sqlite3_column_double`` of a non-NULL value (text: its leading number, else 0.0)."""
    if isinstance(value, int | float):
        return float(value)
    match = _NUMBER_PREFIX.match(_text_bytes(value).decode("ascii", "replace"))
    return float(match.group(1)) if match else 0.0


@dataclass(frozen=True, slots=True)
class FloatStyle:
    """How the SQLite whose output we reproduce did its printf arithmetic.

    SQLite's printf (before 3.43) computes in ``long double``. The corpus was
    generated by a build where that is a plain double (its R answers such as
    -9223372036854776000.000 only come out that way) and before 3.29 widened
    the ``%f`` rounder; the stdlib's SQLite 3.40 on x86-64 uses 64-bit x87
    significands and the wider rounder. Both are reproduced exactly.
    """

    significand_bits: int
    widened_rounder: bool


CORPUS_STYLE = FloatStyle(significand_bits=53, widened_rounder=False)
X87_SQLITE_3_40 = FloatStyle(significand_bits=64, widened_rounder=True)


def format_fixed3(value: float, style: FloatStyle = CORPUS_STYLE) -> str:
    """SQLite's ``printf("%.3f")``: what the driver prints under R.

    Unlike Python's ``%.3f`` it adds a rounder and truncates, and it zero-fills
    past the 16th significant digit (2**63 -> "9223372036854776000.000").
    """
    return _sqlite_float(value, 3, False, style)


def format_real(value: float, style: FloatStyle = CORPUS_STYLE) -> str:
    """SQLite's text for a REAL (``%!.15g``): 15 significant digits, always a '.' or 'e'.

    1.0 -> "1.0", 1e20 -> "1.0e+20", 0.1 -> "0.1", -0.0 -> "0.0".
    """
    return _sqlite_float(value, 15, True, style)


_ROUNDERS = tuple(Fraction(float(f"5.0e-{k:02d}")) for k in range(1, 11))  # printf.c: arRound[]
_E100, _E10, _E8, _E_8 = Fraction(1e100), Fraction(1e10), Fraction(1e8), Fraction(1e-8)
_E_10, _TENTH, _FUDGE = Fraction(1e-10), Fraction(0.1), Fraction(3e-16)


def _round_binary(x: Fraction, bits: int) -> Fraction:
    """Round to the nearest binary float with a ``bits``-bit significand, ties to even.

    Applied after every operation, this replays SQLite's float arithmetic step
    by step, which is what makes ties and near-ties come out as SQLite's.
    """
    if not x:
        return x
    negative = x < 0
    num, den = abs(x.numerator), x.denominator
    top = num.bit_length() - den.bit_length()
    if (num < den << top) if top >= 0 else (num << -top < den):
        top -= 1
    shift = top - (bits - 1)
    quotient, remainder = divmod(num, den << shift) if shift >= 0 else divmod(num << -shift, den)
    divisor = den << shift if shift >= 0 else den
    if 2 * remainder > divisor or (2 * remainder == divisor and quotient & 1):
        quotient += 1
    result = Fraction(quotient << shift) if shift >= 0 else Fraction(quotient, 1 << -shift)
    return -result if negative else result


@functools.lru_cache(maxsize=65536)
def _sqlite_float(value: float, precision: int, generic: bool, style: FloatStyle) -> str:
    """``sqlite3_snprintf`` of ``%.<p>f`` (generic=False) or ``%!.<p>g`` (generic=True)."""
    bits = style.significand_bits

    def _ld(x: Fraction) -> Fraction:
        return _round_binary(x, bits)

    if value != value:
        return "NaN"
    prefix = "-" if value < 0 else ""
    if math.isinf(value):
        return prefix + "Inf"
    real = Fraction(abs(value))
    if generic and precision > 0:
        precision -= 1
    rounder = _ROUNDERS[precision % 10]
    for _ in range(precision // 10):
        rounder = _ld(rounder * _E_10)
    if not generic:
        exponent_field = (struct.unpack("<Q", struct.pack("<d", abs(value)))[0] >> 52) & 0x7FF
        if style.widened_rounder and precision + int((exponent_field - 1023) / 3) < 15:
            rounder = _ld(rounder + _ld(real * _FUDGE))
        real = _ld(real + rounder)
    exp = 0
    if real > 0:
        scale = Fraction(1)
        for step, factor in ((100, _E100), (10, _E10), (1, Fraction(10))):
            while real >= _ld(factor * scale) and exp <= 350:
                scale, exp = _ld(scale * factor), exp + step
        real = _ld(real / scale)
        while real < _E_8:
            real, exp = _ld(real * _E8), exp - 8
        while real < 1:
            real, exp = _ld(real * 10), exp - 1
        if exp > 350:
            return prefix + "Inf"
    exponential = False
    if generic:
        real = _ld(real + rounder)
        if real >= 10:
            real, exp = _ld(real * _TENTH), exp + 1
        exponential = exp < -4 or exp > precision
        if not exponential:
            precision -= exp
    remaining = 26 if generic else 16  # significant digits printf will produce
    out = [prefix]

    def digit() -> str:
        nonlocal real, remaining
        if remaining <= 0:
            return "0"
        remaining -= 1
        whole = int(real)
        real = _ld(_ld(real - whole) * 10)
        return str(whole)

    e2 = 0 if exponential else exp
    if e2 < 0:
        out.append("0")
    else:
        out.extend(digit() for _ in range(e2 + 1))
    with_point = precision > 0 or generic
    if with_point:
        out.append(".")
    e2 += 1
    while e2 < 0:
        out.append("0")
        precision, e2 = precision - 1, e2 + 1
    out.extend(digit() for _ in range(precision))
    text = "".join(out)
    if generic:  # %!g drops trailing zeros but keeps one after the point
        text = text.rstrip("0")
        text += "0" if text.endswith(".") else ""
    if exponential:
        text += f"e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return text


def render_text(value: Any) -> str:
    """Type T: the text; empty -> ``(empty)``; bytes outside printable ASCII -> ``@``.

    The C driver works on UTF-8 bytes, so one non-ASCII character becomes one
    ``@`` per byte, and a NUL byte ends the string.
    """
    data = _text_bytes(value).split(b"\0", 1)[0]
    if not data:
        return "(empty)"
    return "".join(chr(b) if 0x20 <= b <= 0x7E else "@" for b in data)


def render_value(value: Any, type_letter: str) -> str:
    """One result value as ``slt_sqlite.c`` prints it under ``type_letter``."""
    if value is None:
        return "NULL"
    if type_letter == "I":
        return str(column_int(value))
    if type_letter == "R":
        return format_fixed3(column_double(value))
    if type_letter == "T":
        return render_text(value)
    raise ValueError(f"unknown type letter {type_letter!r}")


def render_rows(rows: Sequence[Sequence[Any]], types: str) -> list[str]:
    """All values row-major, each rendered under its column's letter."""
    return [render_value(value, letter) for row in rows for value, letter in zip(row, types)]


def sort_values(values: list[str], ncolumns: int, mode: str) -> list[str]:
    """Apply a sort mode: rows (strcmp column by column) or every value on its own.

    Rendered values are ASCII, so Python's string order is ``strcmp``'s.
    """
    if mode == "valuesort":
        return sorted(values)
    if mode == "rowsort":
        rows = [values[k:k + ncolumns] for k in range(0, len(values), ncolumns)]
        rows.sort()
        return [value for row in rows for value in row]
    return values


def hash_values(values: Iterable[str]) -> str:
    """md5 of the values, each followed by a newline (``md5_add(v); md5_add("\\n")``)."""
    digest = hashlib.md5()
    for value in values:
        digest.update(value.encode("utf-8", "surrogateescape"))
        digest.update(b"\n")
    return digest.hexdigest()


def hash_line(values: Sequence[str]) -> str:
    return f"{len(values)} values hashing to {hash_values(values)}"


# ---------------------------------------------------------------------------
# Adapters
# ---------------------------------------------------------------------------


class Adapter(Protocol):
    """An engine under test. ``execute`` returns rows for queries, None otherwise.

    ``error_types`` are the exceptions that mean "the engine rejected this SQL";
    anything else escaping ``execute`` is an engine bug. An adapter may also
    offer ``set_deadline(deadline)`` and poll ``deadline.expired()`` to abandon
    a record that has run past ``RunOptions.record_timeout``.
    """

    error_types: tuple[type[BaseException], ...]

    def execute(self, sql: str) -> list[tuple[Any, ...]] | None: ...

    def close(self) -> None: ...


class EngineUnavailable(RuntimeError):
    """The engine an adapter wraps cannot be imported or opened."""


class Deadline:
    """A per-record time budget an adapter may poll to give up on long work.

    The runner restarts it before each record; ``expired()`` remembers that it
    fired so the runner can tell a timeout from an ordinary engine error.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._start = clock()
        self.fired = False

    def start(self) -> None:
        self._start = self._clock()
        self.fired = False

    def expired(self) -> bool:
        if self._clock() - self._start > self.seconds:
            self.fired = True
        return self.fired


_NOTHING = re.compile(r"(?:\s+|--[^\n]*|/\*.*?(?:\*/|\Z))*", re.DOTALL)  # blanks and comments


def split_statements(sql: str) -> list[str]:
    """Split a record's SQL into statements, as ``sqlite3_exec`` runs them one by one.

    A boundary is a ``;`` that completes a statement by SQLite's own tokenizer
    (``sqlite3.complete_statement``), so semicolons in strings, comments and
    trigger bodies do not split; pieces holding only comments are dropped.
    """
    pieces: list[str] = []
    start = 0
    for index, char in enumerate(sql):
        if char == ";" and sqlite3.complete_statement(sql[start:index + 1]):
            pieces.append(sql[start:index + 1])
            start = index + 1
    pieces.append(sql[start:])
    return [piece.strip() for piece in pieces if not _NOTHING.fullmatch(piece.strip().removesuffix(";"))]


def _run_script(run: Callable[[str], list[tuple[Any, ...]] | None], sql: str) -> list[tuple[Any, ...]] | None:
    """Run a record's statements in turn; the last one's rows are the result.

    A single statement goes to the engine verbatim.
    """
    statements = split_statements(sql)
    if len(statements) <= 1:
        return run(sql)
    result = None
    for statement in statements:
        result = run(statement)
    return result


class SqliteAdapter:
    """Stdlib sqlite3 in memory: the reference the corpus's answers came from."""

    error_types: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self) -> None:
        self._conn = sqlite3.connect(":memory:", isolation_level=None)
        self._conn.text_factory = lambda data: data.decode("utf-8", "surrogateescape")

    def execute(self, sql: str) -> list[tuple[Any, ...]] | None:
        return _run_script(self._execute_one, sql)

    def _execute_one(self, sql: str) -> list[tuple[Any, ...]] | None:
        cursor = self._conn.execute(sql)
        rows = cursor.fetchall()
        return rows if cursor.description is not None else None

    def set_deadline(self, deadline: Deadline) -> None:
        """Abort a statement (sqlite3 raises "interrupted") once the deadline passes."""
        self._conn.set_progress_handler(lambda: int(deadline.expired()), 10_000)

    def close(self) -> None:
        self._conn.close()


class HeliosAdapter:
    """HeliosDB's ``EmbeddedDatabase`` in memory, imported only when first used."""

    def __init__(self) -> None:
        try:
            from helios import EmbeddedDatabase
            from helios.errors import HeliosError
        except ImportError as exc:
            raise EngineUnavailable(
                f"cannot import helios.EmbeddedDatabase ({exc}); install the package "
                "(make install) before running the conformance suite with --engine helios"
            ) from exc
        self.error_types: tuple[type[BaseException], ...] = (HeliosError,)
        self._db = EmbeddedDatabase(":memory:")

    def execute(self, sql: str) -> list[tuple[Any, ...]] | None:
        return _run_script(self._execute_one, sql)

    def _execute_one(self, sql: str) -> list[tuple[Any, ...]] | None:
        rows = self._db.execute(sql).rows
        return None if rows is None else list(rows)

    def close(self) -> None:
        self._db.close()


ENGINES: dict[str, Callable[[], Adapter]] = {"sqlite": SqliteAdapter, "helios": HeliosAdapter}


# ---------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------

Status = Literal["pass", "fail", "skip"]


@dataclass(slots=True)
class RecordResult:
    """The verdict on one statement or query record."""

    file: str
    line: int
    kind: Literal["statement", "query"]
    sql: str
    status: Status
    reason: str = ""
    expected: str | None = None
    got: str | None = None
    seconds: float = 0.0
    traceback: str | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Knobs for one run; every limit is per file."""

    database: str = DATABASE_NAME
    max_records: int | None = None  # statement/query records to take from each file
    max_failures: int | None = None  # stop a file after this many failures
    record_timeout: float | None = None  # seconds; slower records are reported
    skip_triggers: bool = True
    progress_every: int = 5000
    progress: Callable[[str], None] | None = None
    on_result: Callable[[RecordResult], None] | None = None


# Records that SQLite itself cannot pass, each with the reason; they count as skipped.
CORPUS_ERRATA: dict[tuple[str, int], str] = {
    ("slt_lang_aggfunc.test", 480): "erratum: SQLite raises 'integer overflow' for this sum(), "
                                    "but the record (marked TBD in the file) expects an empty result",
}


def target_percent(path: str | Path) -> int:
    """Pass rate a file must reach: the hand-written files all of it, the generated 95%."""
    path = Path(path)
    if path.name in ("select1.test", "select2.test", "select3.test") or path.parent.name == "evidence":
        return 100
    return 95


@dataclass(slots=True)
class FileReport:
    """Counts and notable records of one file's run."""

    file: str
    target: int = 95
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    failures: list[RecordResult] = field(default_factory=list)
    slow: list[RecordResult] = field(default_factory=list)
    skip_reasons: dict[str, int] = field(default_factory=dict)
    halted_at: int | None = None
    stopped: str | None = None  # why the run ended early (failure limit)
    error: str | None = None  # the file could not be run at all

    @property
    def run(self) -> int:
        return self.passed + self.failed

    @property
    def pass_rate(self) -> float:
        return self.passed / self.run if self.run else 1.0

    @property
    def met_target(self) -> bool:
        return (self.error is None and self.stopped is None
                and self.passed * 100 >= self.target * self.run)

    def add(self, result: RecordResult) -> None:
        if result.status == "pass":
            self.passed += 1
        elif result.status == "fail":
            self.failed += 1
            self.failures.append(result)
        else:
            self.skipped += 1
            self.skip_reasons[result.reason] = self.skip_reasons.get(result.reason, 0) + 1


@dataclass(slots=True)
class _Outcome:
    rows: list[tuple[Any, ...]] | None = None
    error: BaseException | None = None
    engine_error: bool = False
    traceback: str | None = None


class Runner:
    """Runs scripts against a fresh adapter per file, as the C driver runs one process per file."""

    def __init__(self, adapter_factory: Callable[[], Adapter], options: RunOptions = RunOptions()) -> None:
        self.adapter_factory = adapter_factory
        self.options = options

    def run_file(self, path: str | Path, display_name: str | None = None) -> FileReport:
        name = display_name or str(path)
        try:
            records = parse_file(path)
        except (OSError, SltParseError) as exc:
            return FileReport(name, target_percent(path), error=str(exc))
        return self.run_records(records, name, target_percent(path))

    def run_text(self, text: str, name: str = "<string>", target: int = 100) -> FileReport:
        return self.run_records(parse(text, name), name, target)

    def run_records(self, records: Sequence[Record], name: str, target: int = 95) -> FileReport:
        report = FileReport(name, target)
        started = time.perf_counter()
        adapter = self.adapter_factory()
        try:
            for result in self._iter_results(records, adapter, name, report):
                report.add(result)
                if self.options.on_result:
                    self.options.on_result(result)
                every = self.options.progress_every
                if self.options.progress and every and (report.run + report.skipped) % every == 0:
                    self.options.progress(
                        f"{name}: {report.run + report.skipped} records, {report.passed} passed, "
                        f"{report.failed} failed, {report.skipped} skipped, "
                        f"{time.perf_counter() - started:.1f}s")
                limit = self.options.max_failures
                if limit is not None and report.failed >= limit:
                    report.stopped = f"stopped after {report.failed} failures"
                    break
        finally:
            adapter.close()
            report.seconds = time.perf_counter() - started
        return report

    def _iter_results(self, records: Sequence[Record], adapter: Adapter, name: str,
                      report: FileReport) -> Iterator[RecordResult]:
        options = self.options
        threshold = DEFAULT_HASH_THRESHOLD
        labels: dict[str, tuple[str, int]] = {}  # label -> (md5 the file expects, line)
        deadline = Deadline(options.record_timeout) if options.record_timeout else None
        if deadline is not None and hasattr(adapter, "set_deadline"):
            adapter.set_deadline(deadline)
        taken = 0
        for record in records:
            skip = skip_reason(record.conditions, options.database)
            if isinstance(record, Halt):
                if skip is None:
                    report.halted_at = record.line
                    return
                continue
            if isinstance(record, HashThreshold):
                if skip is None:
                    threshold = record.value
                continue
            if options.max_records is not None and taken >= options.max_records:
                return
            taken += 1
            kind: Literal["statement", "query"] = "query" if isinstance(record, Query) else "statement"
            if isinstance(record, Query) and record.label and record.label not in labels:
                labels[record.label] = (_expected_md5(record), record.line)
            if skip is None and options.skip_triggers and is_trigger_sql(record.sql):
                skip = "trigger"
            if skip is None:
                skip = CORPUS_ERRATA.get((Path(name).name, record.line))
            if skip is not None:
                yield RecordResult(name, record.line, kind, record.sql, "skip", skip)
                continue
            if deadline is not None:
                deadline.start()
            began = time.perf_counter()
            outcome = self._execute(adapter, record.sql)
            seconds = time.perf_counter() - began
            if isinstance(record, Statement):
                result = self._judge_statement(record, outcome, name)
            else:
                result = self._judge_query(record, outcome, name, threshold, labels)
            result.seconds = seconds
            if deadline is not None and seconds > deadline.seconds:
                if deadline.fired:
                    result.status, result.reason = "fail", f"timed out after {seconds:.2f}s"
                report.slow.append(result)
            yield result

    @staticmethod
    def _execute(adapter: Adapter, sql: str) -> _Outcome:
        try:
            return _Outcome(rows=adapter.execute(sql))
        except Exception as exc:  # noqa: BLE001 - classified below: engine error or engine bug
            if isinstance(exc, adapter.error_types):
                return _Outcome(error=exc, engine_error=True)
            return _Outcome(error=exc, traceback=traceback.format_exc())

    @staticmethod
    def _bug(record: Statement | Query, outcome: _Outcome, name: str) -> RecordResult:
        kind: Literal["statement", "query"] = "query" if isinstance(record, Query) else "statement"
        return RecordResult(name, record.line, kind, record.sql, "fail",
                            f"engine bug: {type(outcome.error).__name__}: {outcome.error}",
                            traceback=outcome.traceback)

    def _judge_statement(self, record: Statement, outcome: _Outcome, name: str) -> RecordResult:
        if outcome.error is not None and not outcome.engine_error:
            return self._bug(record, outcome, name)
        failed = outcome.error is not None
        result = RecordResult(name, record.line, "statement", record.sql, "pass",
                              expected="error" if record.expect_error else "ok",
                              got=f"error: {outcome.error}" if failed else "ok")
        if failed != record.expect_error:
            result.status = "fail"
            result.reason = ("statement succeeded but an error was expected" if record.expect_error
                             else f"statement failed: {outcome.error}")
        return result

    def _judge_query(self, record: Query, outcome: _Outcome, name: str, threshold: int,
                     labels: dict[str, tuple[str, int]]) -> RecordResult:
        if outcome.error is not None and not outcome.engine_error:
            return self._bug(record, outcome, name)
        result = RecordResult(name, record.line, "query", record.sql, "fail",
                              expected="\n".join(record.expected))
        if outcome.error is not None:
            result.reason = f"query failed: {outcome.error}"
            return result
        if outcome.rows is None:
            result.reason = "query returned no result set"
            return result
        width = len(record.types)
        bad = next((row for row in outcome.rows if len(row) != width), None)
        if bad is not None:
            result.reason = f"wrong number of result columns: expected {width} but got {len(bad)}"
            return result
        values = sort_values(render_rows(outcome.rows, record.types), width, record.sort)
        hashed = threshold > 0 and len(values) > threshold
        result.got = hash_line(values) if hashed else "\n".join(values)
        if result.got != result.expected:
            result.reason = "wrong result hash" if record.expected_hash else "wrong result"
            return result
        if record.label:
            want, line = labels[record.label]
            if hash_values(values) != want:
                result.reason = f"label {record.label}: result differs from the one at line {line}"
                return result
        result.status = "pass"
        return result


def _expected_md5(record: Query) -> str:
    """The md5 a labelled query's group must produce, from the file's own expectation."""
    expected = record.expected_hash
    return expected[1] if expected else hash_values(record.expected)


# ---------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------


def discover(root: str | Path) -> list[Path]:
    """Every ``*.test`` under ``root``, recursively, in a stable order."""
    return sorted(Path(root).rglob("*.test"))


def format_table(reports: Sequence[FileReport]) -> str:
    """The per-file pass-rate table plus the overall figure."""
    width = max([len(r.file) for r in reports] + [len("overall")])
    header = (f"{'file':<{width}}  {'run':>7} {'passed':>7} {'failed':>7} {'skipped':>7}"
              f" {'rate':>8} {'target':>6} {'seconds':>8}  verdict")
    lines = [header, "-" * len(header)]
    for r in reports:
        verdict = "ok" if r.met_target else (r.error or r.stopped or "below target")
        lines.append(f"{r.file:<{width}}  {r.run:>7} {r.passed:>7} {r.failed:>7} {r.skipped:>7}"
                     f" {_percent(r.passed, r.run):>7}% {r.target:>5}% {r.seconds:>8.2f}  {verdict}")
    passed = sum(r.passed for r in reports)
    run = sum(r.run for r in reports)
    met = sum(r.met_target for r in reports)
    lines.append("-" * len(header))
    lines.append(f"{'overall':<{width}}  {run:>7} {passed:>7} {run - passed:>7}"
                 f" {sum(r.skipped for r in reports):>7} {_percent(passed, run):>7}%"
                 f" {'':>6} {sum(r.seconds for r in reports):>8.2f}  {met}/{len(reports)} files on target")
    return "\n".join(lines)


def _percent(passed: int, run: int) -> str:
    """Two decimals, rounded down: one failure in 100,000 must not print as 100.00."""
    return f"{math.floor(10_000 * passed / run) / 100:.2f}" if run else "100.00"


def format_failure(result: RecordResult) -> str:
    """A failure with its SQL, expected and actual results (and traceback for bugs)."""
    parts = [f"{result.where}: {result.reason}", "  sql:", _indent(result.sql)]
    if result.expected is not None:
        parts += ["  expected:", _indent(result.expected or "(no rows)")]
    if result.got is not None:
        parts += ["  got:", _indent(result.got or "(no rows)")]
    if result.traceback:
        parts += ["  traceback:", _indent(result.traceback.rstrip())]
    return "\n".join(parts)


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.split("\n"))
