"""Every SQL text of the sqllogictest sample that applies to SQLite parses.

The corpus lives beside the repository (``../shared/conformance``); without it
the vendored sample in ``tests/slt/corpus-sample`` is walked.  Records are
walked as sqllogictest does: ``skipif``/``onlyif`` conditions for the database
name ``sqlite``, ``halt``, ``statement ok|error`` and ``query`` records whose
SQL runs to ``----`` or a blank line.  ``statement error`` records may fail to
parse (some are syntax errors on purpose); triggers are not part of the grammar
and are counted separately.  Each distinct text is parsed once.

Run this file as a script for the per-file table:
``.venv/bin/python -P tests/grammar/test_corpus.py``.
"""
from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helios.errors import SqlSyntaxError
from helios.sql.ast_printer import to_sql
from helios.sql.parser import parse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "slt"))
from corpus import CORPUS, FULL  # noqa: E402 - tests/slt is not a package

DATABASE = "sqlite"
UNSUPPORTED = re.compile(r"\s*(CREATE\s+(TEMP\w*\s+)?TRIGGER|DROP\s+TRIGGER)\b", re.I)


@dataclass(frozen=True, slots=True)
class Record:
    kind: str  # "statement ok", "statement error" or "query"
    sql: str
    line: int


def records(path: Path) -> Iterator[Record]:
    """The records of one .test file that apply to SQLite, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        words = lines[i].split()
        if not words or words[0].startswith("#"):
            i += 1
            continue
        applies = True
        while words and words[0] in ("skipif", "onlyif"):
            if (words[0] == "skipif") == (words[1] == DATABASE):
                applies = False
            i += 1
            words = lines[i].split() if i < len(lines) else []
        if not words:
            continue
        if words[0] == "halt":
            if applies:
                return
            i += 1
            continue
        if words[0] not in ("statement", "query"):
            i += 1  # hash-threshold and the like
            continue
        start = i + 1
        i = start
        while i < len(lines) and lines[i].strip() and lines[i].strip() != "----":
            i += 1
        sql = "\n".join(lines[start:i])
        while i < len(lines) and lines[i].strip():  # expected results
            i += 1
        if applies:
            kind = "query" if words[0] == "query" else f"statement {words[1]}"
            yield Record(kind, sql, start + 1)


@dataclass(slots=True)
class FileStats:
    parsed: int = 0
    applicable: int = 0
    unsupported: int = 0
    expected_errors: int = 0
    failures: list[str] = field(default_factory=list)


def survey(root: Path) -> tuple[dict[str, FileStats], dict[str, object], float]:
    """Parse every applicable record once per distinct text; per-file stats, results by text, seconds."""
    results: dict[str, object] = {}
    stats: dict[str, FileStats] = {}
    started = time.perf_counter()
    for path in sorted(root.rglob("*.test")):
        file_stats = stats[str(path.relative_to(root))] = FileStats()
        for record in records(path):
            if UNSUPPORTED.match(record.sql):
                file_stats.unsupported += 1
                continue
            if record.sql not in results:
                try:
                    results[record.sql] = parse(record.sql)
                except SqlSyntaxError as error:
                    results[record.sql] = error
            outcome = results[record.sql]
            if record.kind == "statement error":
                file_stats.expected_errors += 1
                continue
            file_stats.applicable += 1
            if isinstance(outcome, SqlSyntaxError):
                file_stats.failures.append(f"{path.name}:{record.line}: {record.sql!r}: {outcome.message}")
            else:
                file_stats.parsed += 1
    return stats, results, time.perf_counter() - started


def report(stats: dict[str, FileStats], seconds: float, distinct: int) -> str:
    rows = [f"{'file':55} {'parsed':>14} {'rate':>7} {'unsupp.':>8} {'stmt err':>8}"]
    for name, s in stats.items():
        rate = 100.0 * s.parsed / s.applicable if s.applicable else 100.0
        rows.append(f"{name:55} {s.parsed:>6}/{s.applicable:<7} {rate:6.2f}% {s.unsupported:>8} "
                    f"{s.expected_errors:>8}")
    rows.append(f"{distinct} distinct texts in {seconds:.1f}s ({distinct / seconds:,.0f}/s)")
    return "\n".join(rows)


@pytest.fixture(scope="module")
def corpus():
    return survey(CORPUS)


def test_every_applicable_statement_parses(corpus):
    stats, results, seconds = corpus
    print("\n" + report(stats, seconds, len(results)))
    failures = [f for s in stats.values() for f in s.failures]
    # the walk found the corpus: the shared one, or the vendored sample (select1 + evidence/)
    assert sum(s.applicable for s in stats.values()) > (100_000 if FULL else 1_000)
    assert failures == []


def test_only_triggers_are_set_aside(corpus):
    stats, _, _ = corpus
    unsupported = {name: s.unsupported for name, s in stats.items() if s.unsupported}
    assert set(unsupported) == {"evidence/slt_lang_createtrigger.test", "evidence/slt_lang_droptrigger.test"}


def test_corpus_sample_round_trips_through_the_printer(corpus):
    _, results, _ = corpus
    parsed = [(sql, tree) for sql, tree in results.items() if isinstance(tree, list)]
    for sql, statements in parsed[::25]:
        printed = "; ".join(to_sql(s) for s in statements)
        assert parse(printed) == statements, sql


if __name__ == "__main__":
    corpus_stats, corpus_results, elapsed = survey(CORPUS)
    print(report(corpus_stats, elapsed, len(corpus_results)))
    for stats_of_file in corpus_stats.values():
        for failure in stats_of_file.failures:
            print(failure)
