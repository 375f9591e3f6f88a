"""The sqllogictest runner itself: parsing, rendering, judging, and a reference run on SQLite.

The corpus's answers came from SQLite, so running the stdlib's sqlite3 through
the runner must pass every record: that is what proves the runner.
"""
from __future__ import annotations

import importlib.util
import random
import sqlite3
import struct
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

SLT_DIR = Path(__file__).resolve().parent / "slt"
sys.path.insert(0, str(SLT_DIR))
import slt  # noqa: E402 - importable only once its directory is on sys.path
from corpus import CORPUS  # noqa: E402


def script(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def run(text: str, adapter_factory: Any = slt.SqliteAdapter, **options: Any) -> slt.FileReport:
    return slt.Runner(adapter_factory, slt.RunOptions(**options)).run_text(script(text), "t.test")


# --------------------------------------------------------------------------- parsing


def test_parse_every_record_kind() -> None:
    records = slt.parse(script("""
        # a comment line
        hash-threshold 4

        statement ok
        CREATE TABLE t(a INTEGER,
                       b TEXT)

        skipif mysql
        onlyif sqlite
        statement error
        CREATE TABLE t(a)

        query IT rowsort label-x
        SELECT a, b
        # comments inside a record are dropped, not record ends
        FROM t
        ----
        1
        one

        query I nosort
        SELECT a FROM t
        ----
        30 values hashing to 0123456789abcdef0123456789abcdef

        query R
        SELECT 1.5
        ----

        onlyif mssql
        halt

        halt
        """))
    threshold, create, error, query, hashed, unsorted, guarded_halt, halt = records
    assert threshold == slt.HashThreshold(2, (), 4)
    assert create == slt.Statement(4, (), "CREATE TABLE t(a INTEGER,\n               b TEXT)", False)
    assert error.expect_error and error.sql == "CREATE TABLE t(a)" and error.line == 10
    assert error.conditions == (slt.Condition("skipif", "mysql"), slt.Condition("onlyif", "sqlite"))
    assert (query.types, query.sort, query.label) == ("IT", "rowsort", "label-x")
    assert query.sql == "SELECT a, b\nFROM t" and query.expected == ("1", "one")
    assert query.expected_hash is None
    assert hashed.expected_hash == (30, "0123456789abcdef0123456789abcdef")
    assert (unsorted.sort, unsorted.label, unsorted.expected) == ("nosort", None, ())
    assert guarded_halt == slt.Halt(31, (slt.Condition("onlyif", "mssql"),))
    assert halt == slt.Halt(33, ())


def test_parse_crlf_and_whitespace_only_separators() -> None:
    text = "statement ok\r\nCREATE TABLE t(x)\r\n   \t\r\nquery I nosort\r\nSELECT 1\r\n----\r\n1\r\n"
    statement, query = slt.parse(text)
    assert statement.sql == "CREATE TABLE t(x)"
    assert query.expected == ("1",) and query.line == 4


@pytest.mark.parametrize("bad, message", [
    ("frobnicate\nSELECT 1\n", "unknown record type"),
    ("query IX nosort\nSELECT 1\n", "type string"),
    ("query I sideways\nSELECT 1\n", "unknown sort method"),
    ("statement maybe\nSELECT 1\n", "'ok' or 'error'"),
    ("hash-threshold many\n", "needs a number"),
    ("skipif\nstatement ok\nSELECT 1\n", "needs a database"),
])
def test_parse_rejects_what_the_c_driver_rejects(bad: str, message: str) -> None:
    with pytest.raises(slt.SltParseError, match=message):
        slt.parse(bad, "bad.test")


def test_conditions_decide_for_sqlite() -> None:
    assert slt.skip_reason([slt.Condition("skipif", "SQLite")]) == "skipif SQLite"
    assert slt.skip_reason([slt.Condition("onlyif", "mysql")]) == "onlyif mysql"
    assert slt.skip_reason([slt.Condition("onlyif", "sqlite"), slt.Condition("skipif", "mssql")]) is None


def test_trigger_sql_is_recognised() -> None:
    assert slt.is_trigger_sql("CREATE TRIGGER r UPDATE ON t BEGIN SELECT 1; END;")
    assert slt.is_trigger_sql("  create temp trigger r ...")
    assert slt.is_trigger_sql("DROP TRIGGER r")
    assert not slt.is_trigger_sql("CREATE TABLE triggers(x)")


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("value, letter, rendered", [
    (None, "I", "NULL"), (None, "T", "NULL"), (None, "R", "NULL"),
    ("", "T", "(empty)"),
    (42, "I", "42"), (-7, "I", "-7"), (2.9, "I", "2"), (-2.9, "I", "-2"),
    (2 ** 32 + 5, "I", "5"), (2 ** 31, "I", "-2147483648"), (1e30, "I", "-1"),
    ("12abc", "I", "12"), ("  -3.5", "I", "-3"), ("abc", "I", "0"),
    (1, "R", "1.000"), (1.25, "R", "1.250"), (-0.0004, "R", "-0.000"), ("2.5x", "R", "2.500"),
    (float(-(2 ** 63)), "R", "-9223372036854776000.000"),
    ("hello world", "T", "hello world"), ("café", "T", "caf@@"), ("a\tb\x7f", "T", "a@b@"),
    (b"x\x00y", "T", "x"), ("\x00", "T", "(empty)"),
    (5, "T", "5"), (1.0, "T", "1.0"), (0.1, "T", "0.1"), (1e20, "T", "1.0e+20"),
    (-0.0, "T", "0.0"), (123456789012345678.0, "T", "1.23456789012346e+17"), (2.5e-07, "T", "2.5e-07"),
    (float("inf"), "R", "Inf"), (float("-inf"), "T", "-Inf"),
])
def test_render_value(value: Any, letter: str, rendered: str) -> None:
    assert slt.render_value(value, letter) == rendered


def _random_doubles(count: int, seed: int) -> list[float]:
    rnd = random.Random(seed)
    values = [0.0, 0.0625, 1.0005, 2.0005, 1e15, 1e-5, 5e-324, 1.7976931348623157e308]
    while len(values) < count:
        pick = rnd.random()
        if pick < 0.3:
            value = rnd.randint(-10 ** 9, 10 ** 9) / rnd.choice([2, 8, 64, 1000, 10000, 3, 7, 2 ** 20])
        elif pick < 0.6:
            value = rnd.uniform(-1, 1) * 10 ** rnd.randint(-12, 25)
        elif pick < 0.8:
            value = round(rnd.uniform(-100, 100), rnd.randint(0, 6))
        else:
            value = struct.unpack("<d", struct.pack("<Q", rnd.getrandbits(64)))[0]
        if value == value:
            values.append(value)
    return values


def test_printf_emulation_matches_this_sqlite_bit_for_bit() -> None:
    """With x87 arithmetic the emulation must equal the stdlib SQLite's printf and CAST."""
    if not (3, 29) <= sqlite3.sqlite_version_info < (3, 43) or struct.calcsize("P") != 8:
        pytest.skip(f"SQLite {sqlite3.sqlite_version} does not use the x87 long double printf")
    conn = sqlite3.connect(":memory:")
    for value in _random_doubles(3000, seed=5):
        fixed, text = conn.execute("SELECT printf('%.3f', ?1), CAST(?1 AS TEXT)", (value,)).fetchone()
        assert slt.format_fixed3(value, slt.X87_SQLITE_3_40) == fixed, value
        assert slt.format_real(value, slt.X87_SQLITE_3_40) == text, value


def test_corpus_style_rounds_ties_like_double_arithmetic() -> None:
    assert slt.format_fixed3(float(-(2 ** 64))) == "-18446744073709550000.000"
    assert slt.format_fixed3(float(-(2 ** 63)), slt.X87_SQLITE_3_40) == "-9223372036854775000.000"
    assert slt.format_fixed3(1.0005, slt.X87_SQLITE_3_40) == "1.001"
    assert slt.format_real(779155.3271484375, slt.X87_SQLITE_3_40) == "779155.327148437"


def test_rowsort_keeps_rows_together_and_valuesort_does_not() -> None:
    values = ["2", "a", "10", "b", "2", "A"]
    assert slt.sort_values(values, 2, "rowsort") == ["10", "b", "2", "A", "2", "a"]
    assert slt.sort_values(values, 2, "valuesort") == ["10", "2", "2", "A", "a", "b"]
    assert slt.sort_values(values, 2, "nosort") == values


def test_md5_of_values_matches_a_hand_computed_hash() -> None:
    # printf '1\nNULL\n(empty)\n' | md5sum
    assert slt.hash_values(["1", "NULL", "(empty)"]) == "2bfa912ddacec268ba6ff2eec8104441"
    assert slt.hash_line(["1", "NULL", "(empty)"]) == "3 values hashing to 2bfa912ddacec268ba6ff2eec8104441"


def test_split_statements_follows_sqlite_tokens() -> None:
    assert slt.split_statements("INSERT INTO t VALUES('a;b');\nDROP INDEX i;") == [
        "INSERT INTO t VALUES('a;b');", "DROP INDEX i;"]
    assert slt.split_statements("CREATE TRIGGER r UPDATE ON t BEGIN SELECT 1; END;") == [
        "CREATE TRIGGER r UPDATE ON t BEGIN SELECT 1; END;"]
    assert slt.split_statements("SELECT 1") == ["SELECT 1"]
    assert slt.split_statements("SELECT 1; -- done\n /* really */ ;") == ["SELECT 1;"]


def test_a_multi_statement_record_runs_every_statement() -> None:
    report = run("""
        statement ok
        CREATE TABLE t(x);
        INSERT INTO t VALUES(7);

        query I nosort
        SELECT x FROM t; -- the last statement's rows are the result
        ----
        7
        """)
    assert (report.passed, report.failed) == (2, 0)


# --------------------------------------------------------------------------- judging

TABLE = """
        statement ok
        CREATE TABLE t(a INTEGER, b TEXT)

        statement ok
        INSERT INTO t VALUES(1, 'x'), (2, NULL), (3, '')
        """  # indented like the scripts appended to it, so dedent treats them alike


def test_statements_queries_and_hashing_pass_on_sqlite() -> None:
    report = run(TABLE + """
        statement error
        CREATE TABLE t(a)

        query IT rowsort
        SELECT a, b FROM t
        ----
        1
        x
        2
        NULL
        3
        (empty)

        hash-threshold 2

        query I valuesort
        SELECT a FROM t
        ----
        3 values hashing to 6f7a3bf7d1b3ea6a8abe0af3c7a5e04c
        """.replace("6f7a3bf7d1b3ea6a8abe0af3c7a5e04c", slt.hash_values(["1", "2", "3"])))
    assert (report.passed, report.failed, report.skipped) == (5, 0, 0)
    assert report.met_target and report.pass_rate == 1.0


def test_wrong_results_fail_with_expected_and_got() -> None:
    report = run(TABLE + """
        query I nosort
        SELECT a FROM t ORDER BY a DESC
        ----
        1
        2
        3

        statement ok
        SELECT * FROM missing

        statement error
        SELECT 1

        query II nosort
        SELECT a FROM t
        ----
        """)
    assert (report.passed, report.failed) == (2, 4)
    wrong, missing, no_error, width = report.failures
    assert wrong.reason == "wrong result" and wrong.expected == "1\n2\n3" and wrong.got == "3\n2\n1"
    assert wrong.where == "t.test:7"
    assert missing.reason.startswith("statement failed: no such table")
    assert no_error.reason == "statement succeeded but an error was expected"
    assert width.reason == "wrong number of result columns: expected 2 but got 1"
    assert not report.met_target


def test_results_over_the_threshold_are_compared_by_hash() -> None:
    report = run(TABLE + """
        hash-threshold 2

        query I nosort
        SELECT a FROM t
        ----
        1
        2
        3
        """)
    assert report.failures[0].got == slt.hash_line(["1", "2", "3"])


def test_labels_must_agree() -> None:
    report = run(TABLE + """
        query I rowsort label-a
        SELECT a FROM t
        ----
        1
        2
        3

        query I rowsort label-a
        SELECT a FROM t WHERE a > 1
        ----
        2
        3
        """)
    assert report.failed == 1
    assert report.failures[0].reason == "label label-a: result differs from the one at line 7"


def test_conditions_triggers_and_halt_skip_records() -> None:
    report = run(TABLE + """
        skipif sqlite
        statement ok
        this is not sql

        onlyif mysql
        halt

        statement ok
        CREATE TRIGGER r AFTER INSERT ON t BEGIN SELECT 1; END;

        halt

        statement ok
        this is never read
        """)
    assert (report.passed, report.failed, report.skipped) == (2, 0, 2)
    assert report.skip_reasons == {"skipif sqlite": 1, "trigger": 1}
    assert report.halted_at == 17


def test_max_records_and_max_failures_limit_a_file() -> None:
    failing = "".join(f"\nstatement ok\nSELECT * FROM nothing{i}\n" for i in range(5))
    assert run(TABLE + failing, max_records=3).run == 3
    stopped = run(TABLE + failing, max_failures=2)
    assert stopped.failed == 2 and stopped.stopped == "stopped after 2 failures"
    assert not stopped.met_target


def test_every_result_and_progress_are_reported() -> None:
    seen: list[slt.RecordResult] = []
    lines: list[str] = []
    run(TABLE + "\nquery I nosort\nSELECT 1\n----\n1\n", on_result=seen.append,
        progress=lines.append, progress_every=2)
    assert [(r.line, r.status) for r in seen] == [(1, "pass"), (4, "pass"), (7, "pass")]
    assert len(lines) == 1 and lines[0].startswith("t.test: 2 records, 2 passed, 0 failed, 0 skipped, ")


class FakeAdapter:
    """Answers from a script: a value to return or an exception to raise, per SQL text."""

    error_types: tuple[type[BaseException], ...] = (ValueError,)

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.closed = False

    def execute(self, sql: str) -> list[tuple[Any, ...]] | None:
        answer = self.answers[sql]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def close(self) -> None:
        self.closed = True


def test_an_exception_outside_error_types_is_an_engine_bug_with_traceback() -> None:
    adapter = FakeAdapter({"BOOM": TypeError("oops"), "BAD": ValueError("rejected"), "DDL": None})
    report = run("""
        statement error
        BOOM

        statement error
        BAD

        query I nosort
        DDL
        ----
        """, lambda: adapter)
    assert (report.passed, report.failed) == (1, 2)
    bug, no_rows = report.failures
    assert bug.reason == "engine bug: TypeError: oops"
    assert bug.traceback is not None and bug.traceback.rstrip().endswith("TypeError: oops")
    assert no_rows.reason == "query returned no result set"
    assert adapter.closed


def test_deadline_uses_the_injected_clock() -> None:
    now = [0.0]
    deadline = slt.Deadline(1.0, clock=lambda: now[0])
    assert not deadline.expired()
    now[0] = 1.5
    assert deadline.expired() and deadline.fired
    deadline.start()
    assert not deadline.expired() and not deadline.fired


def test_a_record_over_its_budget_is_aborted_and_reported() -> None:
    report = run("""
        query I nosort
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c
        ----
        1
        """, record_timeout=0.05)
    assert report.failed == 1 and report.failures[0].reason.startswith("timed out after")
    assert report.slow == report.failures


def test_helios_adapter_classifies_helios_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import helios
    from helios.errors import HeliosError, SqlSyntaxError

    class Result:
        def __init__(self, rows: list[tuple[Any, ...]] | None) -> None:
            self.rows = rows

    class FakeDatabase:
        def __init__(self, path: str) -> None:
            assert path == ":memory:"

        def execute(self, sql: str) -> Result:
            if sql == "SELECT 1":
                return Result([(1,)])
            if sql == "CRASH":
                raise KeyError("internal")
            raise SqlSyntaxError("bad syntax", line=1, column=1)

        def close(self) -> None:
            pass

    monkeypatch.setattr(helios, "EmbeddedDatabase", FakeDatabase, raising=False)
    adapter = slt.HeliosAdapter()
    assert adapter.error_types == (HeliosError,)
    report = run("""
        query I nosort
        SELECT 1
        ----
        1

        statement error
        SELEKT

        statement error
        CRASH
        """, lambda: adapter)
    assert (report.passed, report.failed) == (2, 1)
    assert report.failures[0].reason == "engine bug: KeyError: 'internal'"


def test_helios_adapter_reports_a_missing_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "helios", types.ModuleType("helios"))
    with pytest.raises(slt.EngineUnavailable, match="cannot import helios.EmbeddedDatabase"):
        slt.HeliosAdapter()


def test_targets() -> None:
    assert slt.target_percent("x/select2.test") == 100
    assert slt.target_percent("x/evidence/in1.test") == 100
    assert slt.target_percent("x/random/expr/slt_good_0.test") == 95


# --------------------------------------------------------------------------- the CLI


def _load_cli() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("slt_run", SLT_DIR / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_exit_codes_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cli = _load_cli()
    good = tmp_path / "good.test"
    good.write_text("query I nosort\nSELECT 1\n----\n1\n")
    bad = tmp_path / "select1.test"
    bad.write_text("query I nosort\nSELECT 2\n----\n1\n")
    assert cli.main(["--engine", "sqlite", str(good)]) == 0
    assert cli.main(["--engine", "sqlite", "--show-failures", "5", "--all", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "select1.test:1: wrong result" in out and "1/2 files on target" in out
    assert cli.main(["--engine", "sqlite", str(tmp_path / "absent.test")]) == 2

    def unavailable() -> slt.Adapter:
        raise slt.EngineUnavailable("not built yet")

    monkeypatch.setitem(slt.ENGINES, "helios", unavailable)
    assert cli.main([str(good)]) == 2
    assert "engine helios is unavailable: not built yet" in capsys.readouterr().err


# --------------------------------------------------------------------------- reference run

REFERENCE_FILES = [
    "select1.test", "select2.test", "evidence/in1.test", "evidence/in2.test",
    "evidence/slt_lang_createview.test", "evidence/slt_lang_replace.test", "evidence/slt_lang_update.test",
    "evidence/slt_lang_dropindex.test", "random/expr/slt_good_0.test", "index/between/10/slt_good_1.test",
]


# The vendored sample holds select1.test and evidence/: the generated files need the shared corpus.
@pytest.mark.parametrize("name", [n for n in REFERENCE_FILES if (CORPUS / n).is_file()])
def test_sqlite_passes_every_record_of_the_corpus(name: str) -> None:
    report = slt.Runner(slt.SqliteAdapter).run_file(CORPUS / name, name)
    details = "\n\n".join(slt.format_failure(f) for f in report.failures[:5])
    assert report.failed == 0, details
    assert report.passed > 0 and report.met_target


def test_table_never_rounds_a_failure_up_to_100_percent() -> None:
    table = slt.format_table([slt.FileReport("big.test", 95, passed=99_999, failed=1),
                              slt.FileReport("empty.test", 100)])
    assert "99.99%" in table and "100.00%" in table.splitlines()[3]
    assert "2/2 files on target" in table
