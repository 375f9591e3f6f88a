"""The SQL grammar and parser: every construct parses to the expected AST, errors say where and why."""
import threading

import pytest

from helios.errors import SqlSyntaxError
from helios.sql.ast import (
    AddColumn, Assignment, Begin, Between, BinaryOp, Case, Cast, ColumnDef, ColumnRef, Commit,
    Compound, CreateIndex, CreateTable, CreateView, CurrentTime, Delete, DropIndex, DropTable,
    DropView, Exists, Explain, FunctionCall, IndexedColumn, InList, Insert, InSubquery, IsNull,
    Join, Like, Literal, OrderItem, Parameter, RenameColumn, RenameTable, Rollback, ScalarSubquery,
    Select, SelectItem, Star, SubqueryRef, TableConstraint, TableRef, TypeName, UnaryOp, Update,
    Values, When,
)
from helios.sql.ast_printer import to_sql
from helios.sql.parser import parse, parse_expression, parse_one, parse_ordering

a, b, c, x = ColumnRef("a"), ColumnRef("b"), ColumnRef("c"), ColumnRef("x")
one, two, three = Literal(1), Literal(2), Literal(3)


def select(*exprs, **clauses):
    return Select(tuple(SelectItem(e) for e in exprs), **clauses)


def neg(operand):
    return UnaryOp("-", operand)


def op(symbol, left, right):
    return BinaryOp(symbol, left, right)


# --------------------------------------------------------------------------- expressions
EXPRESSIONS = [
    # literals
    ("1", one),
    ("0", Literal(0)),
    ("1.5", Literal(1.5)),
    (".5", Literal(0.5)),
    ("5.", Literal(5.0)),
    ("1e3", Literal(1000.0)),
    ("2.5E-1", Literal(0.25)),
    ("0x1F", Literal(31)),
    ("9223372036854775807", Literal(9223372036854775807)),
    ("9223372036854775808", Literal(9.223372036854775808e18)),
    ("'abc'", Literal("abc")),
    ("'it''s'", Literal("it's")),
    ("''", Literal("")),
    ("'a -- not a comment'", Literal("a -- not a comment")),
    ("X'ABcd'", Literal(b"\xab\xcd")),
    ("x''", Literal(b"")),
    ("NULL", Literal(None)),
    ("null", Literal(None)),
    ("TRUE", Literal(True)),
    ("false", Literal(False)),
    ("CURRENT_TIMESTAMP", CurrentTime("CURRENT_TIMESTAMP")),
    ("current_date", CurrentTime("CURRENT_DATE")),
    # names
    ("a", a),
    ("t.a", ColumnRef("a", "t")),
    ('"Weird Name"', ColumnRef("Weird Name")),
    ('"a""b"', ColumnRef('a"b')),
    ("`tick`", ColumnRef("tick")),
    ('"select"', ColumnRef("select")),
    ("key", ColumnRef("key")),
    ("first + last", op("+", ColumnRef("first"), ColumnRef("last"))),
    ("replace(a, 'x', 'y')", FunctionCall("replace", (a, Literal("x"), Literal("y")))),
    # parameters
    ("$1", Parameter(1)),
    ("$12", Parameter(12)),
    ("?", Parameter(1)),
    ("?3", Parameter(3)),
    ("? + ?", op("+", Parameter(1), Parameter(2))),
    ("?5 + ?", op("+", Parameter(5), Parameter(6))),
    # unary chains
    ("-a", neg(a)),
    ("- - +a", neg(neg(UnaryOp("+", a)))),
    ("+ - a", UnaryOp("+", neg(a))),
    ("~a", UnaryOp("~", a)),
    ("NOT a", UnaryOp("NOT", a)),
    ("NOT NOT a", UnaryOp("NOT", UnaryOp("NOT", a))),
    ("NOT - a", UnaryOp("NOT", neg(a))),
    ("- ( + a ) * 2", op("*", neg(UnaryOp("+", a)), two)),
    ("-1", neg(one)),
    # arithmetic precedence and associativity
    ("1 + 2 * 3", op("+", one, op("*", two, three))),
    ("(1 + 2) * 3", op("*", op("+", one, two), three)),
    ("1 - 2 - 3", op("-", op("-", one, two), three)),
    ("1 - (2 - 3)", op("-", one, op("-", two, three))),
    ("a / b % c", op("%", op("/", a, b), c)),
    ("-a * b", op("*", neg(a), b)),
    ("a || b * c", op("*", op("||", a, b), c)),
    ("a + b || c", op("+", a, op("||", b, c))),
    ("a & b + c", op("&", a, op("+", b, c))),
    ("a << 1 | b >> 2", op(">>", op("|", op("<<", a, one), b), two)),
    ("((((a))))", a),
    # comparisons and logic
    ("a = 1", op("=", a, one)),
    ("a == 1", op("=", a, one)),
    ("a <> 1", op("!=", a, one)),
    ("a != 1", op("!=", a, one)),
    ("a < b = b > c", op("=", op("<", a, b), op(">", b, c))),
    ("a <= 1 AND b >= 2", op("AND", op("<=", a, one), op(">=", b, two))),
    ("a OR b AND c", op("OR", a, op("AND", b, c))),
    ("a AND b OR c", op("OR", op("AND", a, b), c)),
    ("NOT a = b", UnaryOp("NOT", op("=", a, b))),
    ("NOT a AND b", op("AND", UnaryOp("NOT", a), b)),
    ("a = NOT b", op("=", a, UnaryOp("NOT", b))),
    ("1 + NOT 2 = 3", op("+", one, UnaryOp("NOT", op("=", two, three)))),
    ("a + b < c", op("<", op("+", a, b), c)),
    # IS / NULL tests
    ("a IS NULL", IsNull(a)),
    ("a IS NOT NULL", IsNull(a, negated=True)),
    ("a ISNULL", IsNull(a)),
    ("a NOTNULL", IsNull(a, negated=True)),
    ("a NOT NULL", IsNull(a, negated=True)),
    ("a IS b", op("IS", a, b)),
    ("a IS NOT b + 1", op("IS NOT", a, op("+", b, one))),
    ("NULL IS NOT NULL", IsNull(Literal(None), negated=True)),
    ("a = b IS NULL", IsNull(op("=", a, b))),
    # BETWEEN
    ("a BETWEEN 1 AND 2", Between(a, one, two)),
    ("a NOT BETWEEN 1 AND 2", Between(a, one, two, negated=True)),
    ("a BETWEEN b + 1 AND c * 2", Between(a, op("+", b, one), op("*", c, two))),
    ("a BETWEEN 1 AND 2 AND b", op("AND", Between(a, one, two), b)),
    ("NOT a BETWEEN 1 AND 2", UnaryOp("NOT", Between(a, one, two))),
    ("- a NOT BETWEEN - 1 AND + 2", Between(neg(a), neg(one), UnaryOp("+", two), negated=True)),
    # IN
    ("a IN (1, 2)", InList(a, (one, two))),
    ("a NOT IN (1)", InList(a, (one,), negated=True)),
    ("a IN ()", InList(a, ())),
    ("a NOT IN ()", InList(a, (), negated=True)),
    ("a IN (SELECT b FROM t)", InSubquery(a, select(b, from_=TableRef("t")))),
    ("a NOT IN (SELECT 1)", InSubquery(a, select(one), negated=True)),
    ("a IN t", InSubquery(a, Select((SelectItem(Star()),), TableRef("t")))),
    ("a IN ((SELECT 1), 2)", InList(a, (ScalarSubquery(select(one)), two))),
    # LIKE / GLOB
    ("a LIKE 'x%'", Like(a, Literal("x%"))),
    ("a NOT LIKE 'x%' ESCAPE '!'", Like(a, Literal("x%"), Literal("!"), negated=True)),
    ("a GLOB '*x'", Like(a, Literal("*x"), op="GLOB")),
    ("a NOT GLOB b || c", Like(a, op("||", b, c), negated=True, op="GLOB")),
    # subqueries
    ("EXISTS (SELECT 1)", Exists(select(one))),
    ("NOT EXISTS (SELECT 1)", UnaryOp("NOT", Exists(select(one)))),
    ("(SELECT 1) + 1", op("+", ScalarSubquery(select(one)), one)),
    ("(SELECT a FROM t ORDER BY a LIMIT 1)",
     ScalarSubquery(select(a, from_=TableRef("t"), order_by=(OrderItem(a),), limit=one))),
    # CASE
    ("CASE WHEN a THEN 1 ELSE 2 END", Case(None, (When(a, one),), two)),
    ("CASE a WHEN 1 THEN 'x' WHEN 2 THEN 'y' END",
     Case(a, (When(one, Literal("x")), When(two, Literal("y"))))),
    # CAST
    ("CAST(a AS INTEGER)", Cast(a, TypeName("INTEGER"))),
    ("CAST ( - 5 AS integer )", Cast(neg(Literal(5)), TypeName("INTEGER"))),
    ("CAST(a AS varchar(10))", Cast(a, TypeName("VARCHAR", (10,)))),
    ("CAST(a AS double precision)", Cast(a, TypeName("DOUBLE PRECISION"))),
    ("CAST(a AS DECIMAL(10, -2))", Cast(a, TypeName("DECIMAL", (10, -2)))),
    # functions
    ("count(*)", FunctionCall("count", star=True)),
    ("COUNT ( * )", FunctionCall("count", star=True)),
    ("count(DISTINCT a)", FunctionCall("count", (a,), distinct=True)),
    ("MIN ( ALL - + 32 )", FunctionCall("min", (neg(UnaryOp("+", Literal(32))),))),
    ("coalesce(a, b, NULL)", FunctionCall("coalesce", (a, b, Literal(None)))),
    ("random()", FunctionCall("random")),
    ("Abs(-1)", FunctionCall("abs", (neg(one),))),
]


@pytest.mark.parametrize(("text", "expected"), EXPRESSIONS, ids=[t for t, _ in EXPRESSIONS])
def test_expression(text, expected):
    assert parse_expression(text) == expected


@pytest.mark.parametrize(("text", "expected"), EXPRESSIONS, ids=[t for t, _ in EXPRESSIONS])
def test_expression_round_trips_through_the_printer(text, expected):
    printed = to_sql(expected)
    assert parse_expression(printed) == expected
    assert to_sql(parse_expression(printed)) == printed


def test_literal_types_are_exact():
    # Literal(True) == Literal(1) in Python; the parser must still produce the right type.
    for text, kind in [("1", int), ("1.0", float), ("TRUE", bool), ("'1'", str), ("x'01'", bytes)]:
        assert type(parse_expression(text).value) is kind


# --------------------------------------------------------------------------- statements
t = TableRef("t")
STATEMENTS = [
    # SELECT
    ("SELECT 1", select(one)),
    ("SELECT ALL a FROM t", select(a, from_=t)),
    ("SELECT DISTINCT a FROM t", select(a, from_=t, distinct=True)),
    ("SELECT *, t.* FROM t", Select((SelectItem(Star()), SelectItem(Star("t"))), t)),
    ("SELECT a AS x, b y, (c) FROM t",
     Select((SelectItem(a, "x"), SelectItem(b, "y"), SelectItem(c)), t)),
    ("SELECT a FROM t AS u", select(a, from_=TableRef("t", "u"))),
    ("SELECT a FROM t u", select(a, from_=TableRef("t", "u"))),
    ("SELECT a FROM t WHERE a > 1", select(a, from_=t, where=op(">", a, one))),
    ("SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1",
     select(a, FunctionCall("count", star=True), from_=t, group_by=(a,),
            having=op(">", FunctionCall("count", star=True), one))),
    ("SELECT a FROM t ORDER BY a DESC, 2, b ASC NULLS FIRST, c NULLS LAST",
     select(a, from_=t, order_by=(OrderItem(a, True), OrderItem(two), OrderItem(b, False, True),
                                  OrderItem(c, False, False)))),
    ("SELECT a FROM t LIMIT 10", select(a, from_=t, limit=Literal(10))),
    ("SELECT a FROM t LIMIT 10 OFFSET 5", select(a, from_=t, limit=Literal(10), offset=Literal(5))),
    ("SELECT a FROM t LIMIT 5, 10", select(a, from_=t, limit=Literal(10), offset=Literal(5))),
    ("SELECT a FROM t, u, v",
     select(a, from_=Join("CROSS", Join("CROSS", t, TableRef("u")), TableRef("v")))),
    ("SELECT * FROM t JOIN u ON t.a = u.a",
     Select((SelectItem(Star()),), Join("INNER", t, TableRef("u"),
                                         op("=", ColumnRef("a", "t"), ColumnRef("a", "u"))))),
    ("SELECT * FROM t INNER JOIN u USING (a, b)",
     Select((SelectItem(Star()),), Join("INNER", t, TableRef("u"), using=("a", "b")))),
    ("SELECT * FROM t LEFT OUTER JOIN u ON 1",
     Select((SelectItem(Star()),), Join("LEFT", t, TableRef("u"), one))),
    ("SELECT * FROM t left join u on 1",
     Select((SelectItem(Star()),), Join("LEFT", t, TableRef("u"), one))),
    ("SELECT * FROM tab0 cor0 CROSS JOIN tab1 AS cor1",
     Select((SelectItem(Star()),), Join("CROSS", TableRef("tab0", "cor0"), TableRef("tab1", "cor1")))),
    ("SELECT * FROM ( t AS a CROSS JOIN u )",
     Select((SelectItem(Star()),), Join("CROSS", TableRef("t", "a"), TableRef("u")))),
    ("SELECT * FROM (SELECT 1) AS s", Select((SelectItem(Star()),), SubqueryRef(select(one), "s"))),
    ("SELECT * FROM (SELECT 1) s", Select((SelectItem(Star()),), SubqueryRef(select(one), "s"))),
    ("SELECT * FROM (SELECT 1)", Select((SelectItem(Star()),), SubqueryRef(select(one)))),
    ("SELECT * FROM t AS OF SYSTEM TIME 1700000000",
     Select((SelectItem(Star()),), TableRef("t", as_of=Literal(1700000000)))),
    ("SELECT * FROM t x AS OF SYSTEM TIME '-1h'",
     Select((SelectItem(Star()),), TableRef("t", "x", as_of=Literal("-1h")))),
    ("SELECT * FROM t AS OF SYSTEM TIME -60",
     Select((SelectItem(Star()),), TableRef("t", as_of=neg(Literal(60))))),
    ("SELECT * FROM t AS OF SYSTEM TIME $1",
     Select((SelectItem(Star()),), TableRef("t", as_of=Parameter(1)))),
    ("SELECT * FROM t NOT INDEXED", Select((SelectItem(Star()),), TableRef("t", not_indexed=True))),
    ("SELECT * FROM t INDEXED BY i", Select((SelectItem(Star()),), TableRef("t", indexed_by="i"))),
    # compounds: left-associative, ORDER BY / LIMIT on the whole compound
    ("SELECT 1 UNION SELECT 2", Compound("UNION", select(one), select(two))),
    ("SELECT 1 UNION ALL SELECT 2 EXCEPT SELECT 3 ORDER BY 1 LIMIT 1",
     Compound("EXCEPT", Compound("UNION ALL", select(one), select(two)), select(three),
              order_by=(OrderItem(one),), limit=one)),
    ("SELECT 1 INTERSECT VALUES (2)", Compound("INTERSECT", select(one), Values(((two,),)))),
    ("VALUES (1, 2), (3, NULL)", Values(((one, two), (three, Literal(None))))),
    # DML
    ("INSERT INTO t VALUES (1, 'a')", Insert("t", Values(((one, Literal("a")),)))),
    ("INSERT INTO t (a, b) VALUES (1, 2), (3, 4)",
     Insert("t", Values(((one, two), (three, Literal(4)))), ("a", "b"))),
    ("INSERT INTO t SELECT * FROM u",
     Insert("t", Select((SelectItem(Star()),), TableRef("u")))),
    ("INSERT OR REPLACE INTO t VALUES (1)", Insert("t", Values(((one,),)), on_conflict="REPLACE")),
    ("INSERT OR IGNORE INTO t VALUES (1)", Insert("t", Values(((one,),)), on_conflict="IGNORE")),
    ("REPLACE INTO t VALUES (1)", Insert("t", Values(((one,),)), on_conflict="REPLACE")),
    ("INSERT INTO t DEFAULT VALUES", Insert("t", None)),
    ("INSERT INTO t VALUES (?, ?)", Insert("t", Values(((Parameter(1), Parameter(2)),)))),
    ("UPDATE t SET a = 1, b = b + 1 WHERE c",
     Update("t", (Assignment("a", one), Assignment("b", op("+", b, one))), c)),
    ("UPDATE t SET x=3, x=4", Update("t", (Assignment("x", three), Assignment("x", Literal(4))))),
    ("DELETE FROM t", Delete("t")),
    ("DELETE FROM t WHERE a = 1", Delete("t", op("=", a, one))),
    # DDL
    ("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, e VARCHAR(16) UNIQUE, n INT NULL)",
     CreateTable("t", (ColumnDef("id", TypeName("INTEGER"), primary_key=True),
                       ColumnDef("name", TypeName("TEXT"), not_null=True),
                       ColumnDef("e", TypeName("VARCHAR", (16,)), unique=True),
                       ColumnDef("n", TypeName("INT"))))),
    ("create table if not exists t (a double precision, b decimal(10,2), c)",
     CreateTable("t", (ColumnDef("a", TypeName("DOUBLE PRECISION")),
                       ColumnDef("b", TypeName("DECIMAL", (10, 2))), ColumnDef("c")),
                 if_not_exists=True)),
    ("CREATE TABLE t (a INT PRIMARY KEY DESC, b INT PRIMARY KEY ASC AUTOINCREMENT)",
     CreateTable("t", (ColumnDef("a", TypeName("INT"), primary_key=True, primary_key_desc=True),
                       ColumnDef("b", TypeName("INT"), primary_key=True, autoincrement=True)))),
    ("CREATE TABLE t (a INT DEFAULT 0, b TEXT DEFAULT 'x', c INT DEFAULT -1, d INT DEFAULT (1 + 2), "
     "e TIMESTAMP DEFAULT CURRENT_TIMESTAMP, f BOOLEAN DEFAULT TRUE, g INT DEFAULT NULL)",
     CreateTable("t", (ColumnDef("a", TypeName("INT"), default=Literal(0)),
                       ColumnDef("b", TypeName("TEXT"), default=Literal("x")),
                       ColumnDef("c", TypeName("INT"), default=neg(one)),
                       ColumnDef("d", TypeName("INT"), default=op("+", one, two)),
                       ColumnDef("e", TypeName("TIMESTAMP"), default=CurrentTime("CURRENT_TIMESTAMP")),
                       ColumnDef("f", TypeName("BOOLEAN"), default=Literal(True)),
                       ColumnDef("g", TypeName("INT"), default=Literal(None))))),
    ("CREATE TABLE t (a INT, b TEXT, PRIMARY KEY (a, b DESC), UNIQUE (b))",
     CreateTable("t", (ColumnDef("a", TypeName("INT")), ColumnDef("b", TypeName("TEXT"))),
                 (TableConstraint("PRIMARY KEY", (IndexedColumn("a"), IndexedColumn("b", True))),
                  TableConstraint("UNIQUE", (IndexedColumn("b"),))))),
    ("CREATE TEMPORARY TABLE t (a)", CreateTable("t", (ColumnDef("a"),), temporary=True)),
    ("DROP TABLE t", DropTable("t")),
    ("DROP TABLE IF EXISTS t", DropTable("t", if_exists=True)),
    ("CREATE INDEX i ON t (a)", CreateIndex("i", "t", (IndexedColumn("a"),))),
    ("CREATE UNIQUE INDEX IF NOT EXISTS i ON t (a DESC, b ASC)",
     CreateIndex("i", "t", (IndexedColumn("a", True), IndexedColumn("b")), unique=True,
                 if_not_exists=True)),
    ("DROP INDEX i", DropIndex("i")),
    ("DROP INDEX IF EXISTS i", DropIndex("i", if_exists=True)),
    ("CREATE VIEW v AS SELECT a FROM t", CreateView("v", select(a, from_=t))),
    ("CREATE TEMP VIEW IF NOT EXISTS v (x) AS SELECT a FROM t",
     CreateView("v", select(a, from_=t), ("x",), if_not_exists=True, temporary=True)),
    ("DROP VIEW v", DropView("v")),
    ("DROP VIEW IF EXISTS v", DropView("v", if_exists=True)),
    ("ALTER TABLE t ADD COLUMN c TEXT", AddColumn("t", ColumnDef("c", TypeName("TEXT")))),
    ("ALTER TABLE t ADD c INT NOT NULL DEFAULT 0",
     AddColumn("t", ColumnDef("c", TypeName("INT"), not_null=True, default=Literal(0)))),
    ("ALTER TABLE t RENAME TO u", RenameTable("t", "u")),
    ("ALTER TABLE t RENAME COLUMN a TO b", RenameColumn("t", "a", "b")),
    ("ALTER TABLE t RENAME a TO b", RenameColumn("t", "a", "b")),
    # transactions and EXPLAIN
    ("BEGIN", Begin()),
    ("BEGIN TRANSACTION", Begin()),
    ("COMMIT", Commit()),
    ("END TRANSACTION", Commit()),
    ("ROLLBACK", Rollback()),
    ("EXPLAIN SELECT 1", Explain(select(one))),
    ("EXPLAIN DELETE FROM t", Explain(Delete("t"))),
]


@pytest.mark.parametrize(("sql", "expected"), STATEMENTS, ids=[s for s, _ in STATEMENTS])
def test_statement(sql, expected):
    assert parse_one(sql) == expected


@pytest.mark.parametrize(("sql", "expected"), STATEMENTS, ids=[s for s, _ in STATEMENTS])
def test_statement_round_trips_through_the_printer(sql, expected):
    assert parse_one(to_sql(expected)) == expected


# --------------------------------------------------------------------------- lexical matters
def test_keywords_are_case_insensitive():
    expected = parse_one("SELECT a FROM t WHERE a IS NOT NULL ORDER BY a DESC")
    assert parse_one("select a from t where a is not null order by a desc") == expected
    assert parse_one("SeLeCt a FrOm t WhErE a Is NoT nUlL oRdEr By a DeSc") == expected


def test_comments_and_whitespace_are_ignored():
    sql = """-- leading comment
    SELECT /* inline */ a, -- trailing
           b /* multi
                line */ FROM t --end"""
    assert parse_one(sql) == select(a, b, from_=t)


def test_identifiers_keep_their_spelling():
    assert parse_expression("MyCol") == ColumnRef("MyCol")
    assert parse_expression('"My Col"') == ColumnRef("My Col")


def test_reserved_words_need_quotes():
    with pytest.raises(SqlSyntaxError):
        parse_one("SELECT select FROM t")
    assert parse_one('SELECT "select" FROM t') == select(ColumnRef("select"), from_=t)


def test_non_reserved_keywords_work_as_names():
    assert parse_one("SELECT key, first, temp, time FROM replace") == select(
        ColumnRef("key"), ColumnRef("first"), ColumnRef("temp"), ColumnRef("time"),
        from_=TableRef("replace"))
    assert parse_one("CREATE TABLE t (key TEXT, time TIMESTAMP)") == CreateTable(
        "t", (ColumnDef("key", TypeName("TEXT")), ColumnDef("time", TypeName("TIMESTAMP"))))


# --------------------------------------------------------------------------- scripts and entry points
def test_parse_script_of_several_statements():
    statements = parse("CREATE TABLE t (a INT); INSERT INTO t VALUES (1);\n SELECT a FROM t;")
    assert [type(s) for s in statements] == [CreateTable, Insert, Select]


def test_empty_statements_between_semicolons_are_skipped():
    assert parse(";;SELECT 1;;") == [select(one)]


def test_question_mark_numbering_restarts_per_statement():
    first, second = parse("SELECT ?, ?; SELECT ?")
    assert first == select(Parameter(1), Parameter(2))
    assert second == select(Parameter(1))


@pytest.mark.parametrize("sql", ["", "   ", ";", "-- only a comment", "/* */ ;"])
def test_empty_input_is_a_syntax_error(sql):
    with pytest.raises(SqlSyntaxError, match="empty statement"):
        parse(sql)


def test_parse_one_rejects_two_statements():
    with pytest.raises(SqlSyntaxError, match="exactly one statement") as info:
        parse_one("SELECT 1;\nSELECT 2")
    assert (info.value.line, info.value.column) == (2, 1)


def test_parse_one_accepts_a_trailing_semicolon():
    assert parse_one("SELECT 1;") == select(one)


def test_parse_expression_rejects_a_second_statement():
    with pytest.raises(SqlSyntaxError) as info:
        parse_expression("id = 1; DROP TABLE x")
    assert info.value.token == ";"
    assert (info.value.line, info.value.column) == (1, 7)


@pytest.mark.parametrize("text", ["id = 1 --", "id = 1) OR (1 = 1", "SELECT 1", "a b"])
def test_parse_expression_accepts_only_an_expression(text):
    if text == "id = 1 --":
        assert parse_expression(text) == op("=", ColumnRef("id"), one)
    else:
        with pytest.raises(SqlSyntaxError):
            parse_expression(text)


def test_parse_ordering():
    assert parse_ordering("created_at DESC, id") == [
        OrderItem(ColumnRef("created_at"), True), OrderItem(ColumnRef("id"))]
    assert parse_ordering("2 NULLS LAST") == [OrderItem(two, False, False)]
    with pytest.raises(SqlSyntaxError):
        parse_ordering("a; DROP TABLE t")
    with pytest.raises(SqlSyntaxError):
        parse_ordering("")


# --------------------------------------------------------------------------- positions
def test_nodes_record_where_they_start():
    statement = parse("SELECT 1;\n  SELECT a,\n    t.b + 1 FROM t")[1]
    assert (statement.line, statement.col) == (2, 3)
    first, second = statement.items
    assert (first.expr.line, first.expr.col) == (2, 10)
    plus = second.expr
    assert (plus.left.line, plus.left.col) == (3, 5)  # t.b starts at the table name
    assert (plus.line, plus.col) == (3, 9)  # operators are placed at the operator
    assert (statement.from_.line, statement.from_.col) == (3, 18)


def test_positions_do_not_affect_equality():
    assert parse_one("SELECT a") == parse_one("\n\n   SELECT    a")


# --------------------------------------------------------------------------- errors
ERRORS = [
    # (sql, line, column, token, message fragment, some expected names)
    ("SELECT FROM t", 1, 8, "FROM", "unexpected 'FROM'; expected one of: expression, '*'", ["identifier"]),
    ("SELECT a\nFROM t WHERE", 2, 13, None, "unexpected end of input", ["identifier"]),
    ("SELECT a,\n  FROM t", 2, 3, "FROM", "unexpected 'FROM'", ["'*'"]),
    ("SELEC 1", 1, 1, "SELEC", "unexpected 'SELEC'", ["'SELECT'", "'INSERT'"]),
    ("SELECT 1 +", 1, 11, None, "unexpected end of input", ["number"]),
    ("SELECT (1", 1, 10, None, "unexpected end of input", ["')'"]),
    ("SELECT a FROM t WHERE a BETWEEN 1 OR 2", 1, 35, "OR", "unexpected 'OR'", ["'AND'"]),
    ("SELECT a BETWEEN 1", 1, 10, "BETWEEN", "BETWEEN without AND", ["'AND'"]),
    ("SELECT a = 1 ESCAPE 'x'", 1, 14, "ESCAPE", "unexpected 'ESCAPE'", ["'LIKE'"]),
    ("SELECT 'abc", 1, 8, "'", "unterminated string literal", None),
    ("SELECT \"abc", 1, 8, '"', "unterminated quoted identifier", None),
    ("SELECT 1 /* never closed", 1, 10, "/*", "unterminated comment", None),
    ("/* never closed", 1, 1, "/*", "unterminated comment", None),
    ("SELECT 1 @ 2", 1, 10, "@", "unexpected character '@'", None),
    ("SELECT count(DISTINCT *) FROM t", 1, 23, "*", "unexpected '*'", ["identifier"]),
    ("CREATE TRIGGER r UPDATE ON t BEGIN SELECT 1; END", 1, 8, "TRIGGER", "unexpected 'TRIGGER'",
     ["'TABLE'", "'INDEX'", "'VIEW'"]),
    ("INSERT INTO t VALUES (1,)", 1, 25, ")", "unexpected ')'", ["number"]),
    ("SELECT $0", 1, 8, "$0", "parameter index must be at least 1", None),
]


@pytest.mark.parametrize(("sql", "line", "column", "token", "fragment", "expected"), ERRORS,
                         ids=[e[0] for e in ERRORS])
def test_syntax_errors_say_where_and_what(sql, line, column, token, fragment, expected):
    with pytest.raises(SqlSyntaxError) as info:
        parse(sql)
    error = info.value
    assert (error.line, error.column, error.token) == (line, column, token)
    assert error.message.startswith(f"Syntax error at line {line}, column {column}: ")
    assert fragment in error.message
    if expected is not None:
        assert set(expected) <= set(error.expected)
    assert error.status == 400
    assert error.to_body()["details"]["line"] == line


def test_error_details_are_in_the_rest_body():
    with pytest.raises(SqlSyntaxError) as info:
        parse("SELECT * FROM")
    body = info.value.to_body()
    assert body["error"] == "BadRequest"
    assert body["details"]["line"] == 1 and body["details"]["column"] == 14
    assert "identifier" in body["details"]["expected"]


# --------------------------------------------------------------------------- threads
def test_parser_is_shared_safely_between_threads():
    errors: list[BaseException] = []
    statements = [f"SELECT ?, a{i} FROM t{i} WHERE ? > {i}" for i in range(8)]

    def work(sql, index):
        try:
            for _ in range(200):
                expected = select(Parameter(1), ColumnRef(f"a{index}"), from_=TableRef(f"t{index}"),
                                  where=op(">", Parameter(2), Literal(index)))
                assert parse_one(sql) == expected
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(sql, i)) for i, sql in enumerate(statements)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_reindex_statement() -> None:
    from helios.sql import ast
    assert parse_one("REINDEX") == ast.Reindex()
    assert parse_one("reindex t1i1") == ast.Reindex("t1i1")
