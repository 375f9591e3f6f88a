"""SQL text -> AST (:mod:`helios.sql.ast`), through the Lark grammar ``helios/grammar/sql.lark``.

One LALR parser is built per process, on first use and under a lock, and
shared by every thread (Lark keeps per-parse state on the stack; the lexer and
builder below are stateless).  :class:`_SqlLexer` replaces Lark's contextual
lexer with the same keyword-in-context behaviour at twice its speed.  The AST is built *during* the parse: :class:`_Builder` is handed to
Lark as its ``transformer``, so no parse tree is materialised, which halves the
cost of a parse.  For the same reason positions come from tokens rather than
``propagate_positions`` (which measured another 2x): every node records the
line and column of its first token, or of its operator.

Expressions arrive from the grammar as flat runs of operands and operators;
:class:`_Climber` applies SQLite's precedence to them (see the table in the
grammar).  Anything that does not parse raises
:class:`helios.errors.SqlSyntaxError` with the line, column, offending token and
the expected tokens in readable form.
"""
from __future__ import annotations

import importlib.resources
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer, PatternStr

from helios.errors import SqlSyntaxError
from helios.sql import ast

__all__ = ["RESERVED_WORDS", "keywords", "parse", "parse_expression", "parse_one", "parse_ordering"]

# Words that are never identifiers unless quoted.  The contextual lexer alone
# reads a keyword as a name wherever the keyword cannot appear, so
# ``SELECT FROM t`` would select a column "FROM" aliased ``t``; reserving the
# structural words makes that a syntax error at ``FROM``, as in SQLite.  Every
# other keyword (key, first, last, time, replace, temp, ...) stays usable as a name.
RESERVED_WORDS = frozenset("""
    all alter and as between by case cast create cross current_date current_time
    current_timestamp default delete distinct drop else end escape except exists
    false from full glob group having in index inner insert intersect into is isnull
    join left like limit not notnull null offset on or order outer primary right
    select set table then true union unique update using values view when where
""".split())

_START_RULES = ["statements", "expression_only", "ordering"]

# Readable names for the terminals whose pattern is a regular expression.
_TERMINAL_NAMES = {
    "NAME": "identifier", "QUOTED_NAME": "identifier", "NUMBER": "number",
    "STRING": "string", "BLOB": "blob", "PARAM": "parameter",
    "EQ": "'='", "NE": "'!='", "$END": "end of input",
}

# The tokens that can start an operand; when all are expected, the message says
# "expression" instead of listing eighteen tokens (``expected`` keeps them all).
_EXPRESSION_START = frozenset({
    "blob", "identifier", "number", "parameter", "string", "'('", "'+'", "'-'", "'~'",
    "'CASE'", "'CAST'", "'EXISTS'", "'NULL'", "'TRUE'", "'FALSE'",
    "'CURRENT_DATE'", "'CURRENT_TIME'", "'CURRENT_TIMESTAMP'",
})

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_lock = threading.Lock()
_parser: Lark | None = None
_display: dict[str, str] = {}
_keywords: frozenset[str] = frozenset()
# Highest parameter index seen so far in the statement being parsed, per thread:
# the builder is shared, and a bare ``?`` takes that index plus one.
_parameters = threading.local()


# ---------------------------------------------------------------------- the parser
def _grammar_text() -> str:
    return importlib.resources.files("helios.grammar").joinpath("sql.lark").read_text(encoding="utf-8")


def _get_parser() -> Lark:
    """The process-wide parser, built once (double-checked under a lock)."""
    global _parser
    if _parser is None:
        with _lock:
            if _parser is None:
                _parser = _build_parser()
    return _parser


def _build_parser() -> Lark:
    global _keywords
    parser = Lark(_grammar_text(), parser="lalr", lexer=_SqlLexer, start=_START_RULES,
                  maybe_placeholders=True, transformer=_Builder())
    for terminal in parser.terminals:
        if isinstance(terminal.pattern, PatternStr):
            text = terminal.pattern.value
            _display[terminal.name] = "'" + (text.upper() if _is_word(text) else text) + "'"
    _keywords = frozenset(t.pattern.value.lower() for t in parser.terminals
                          if isinstance(t.pattern, PatternStr) and _is_word(t.pattern.value))
    return parser


def _is_word(text: str) -> bool:
    return text.replace("_", "").isalpha()


class _SqlLexer(Lexer):
    """The grammar's terminals as one regular expression, with keywords in context.

    Equivalent to Lark's contextual lexer for this grammar, at about twice the
    speed: whitespace and comments are skipped inside the same match as the
    token that follows them, and keywords are not alternatives of the regex at
    all.  A word becomes a keyword token when it is reserved or when the parser
    can accept that keyword in its current state; otherwise it is a NAME, so
    non-reserved keywords (key, first, time, ...) remain usable as identifiers.
    """

    __future_interface__ = True  # lex() receives the parser state

    def __init__(self, conf: Any) -> None:
        words = {t.pattern.value.lower(): t.name for t in conf.terminals
                 if isinstance(t.pattern, PatternStr) and _is_word(t.pattern.value)}
        missing = RESERVED_WORDS - words.keys()
        if missing:  # a grammar edit dropped a keyword that the reserved list still names
            raise RuntimeError(f"reserved words missing from the grammar: {sorted(missing)}")
        self.keywords = words
        self.reserved = {word: words[word] for word in RESERVED_WORDS}
        by_name = {t.name: t for t in conf.terminals}
        skip = "|".join(by_name[name].pattern.to_regexp() for name in sorted(conf.ignore))
        tokens = sorted((t for t in conf.terminals
                         if t.name not in conf.ignore and t.name not in words.values()),
                        key=lambda t: (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name))
        self.names = [None] + [t.name for t in tokens]  # group number -> terminal name
        alternatives = "|".join(f"({t.pattern.to_regexp()})" for t in tokens)
        # Atomic: a comment must not give characters back for a token to match after it.
        self.regex = re.compile(f"(?>(?:{skip})*)(?:{alternatives})")
        self.blank = re.compile(f"(?:{skip})*")

    def lex(self, lexer_state: Any, parser_state: Any) -> Iterator[Token]:
        text = getattr(lexer_state.text, "text", lexer_state.text)  # Lark >= 1.2 passes a TextSlice
        states, names, keywords, reserved = parser_state.parse_conf.states, self.names, self.keywords, self.reserved
        match, end = self.regex.match, len(text)
        pos = last = line_start = 0
        line = 1
        while True:
            found = match(text, pos)
            if found is None:
                rest = self.blank.match(text, pos).end()
                newlines = text.count("\n", last, rest)
                if newlines:
                    line += newlines
                    line_start = text.rfind("\n", last, rest) + 1
                if rest == end:
                    return
                raise UnexpectedCharacters(text, rest, line, rest - line_start + 1,
                                           allowed=set(states[parser_state.position]), state=parser_state)
            group = found.lastindex
            start, pos = found.start(group), found.end()
            kind, value = names[group], found.group(group)
            if kind == "NAME":
                lowered = value.lower()
                keyword = keywords.get(lowered)
                if keyword is not None and (lowered in reserved or keyword in states[parser_state.position]):
                    kind = keyword
            newlines = text.count("\n", last, start)
            if newlines:
                line += newlines
                line_start = text.rfind("\n", last, start) + 1
            last = start
            yield Token(kind, value, start, line, start - line_start + 1)


def keywords() -> frozenset[str]:
    """Every keyword of the grammar, lower-case: a name spelled like one is quoted when printed."""
    _get_parser()
    return _keywords


# ---------------------------------------------------------------------- public API
def parse(sql: str) -> list[ast.Statement]:
    """Parse a script of one or more ';'-separated statements (a trailing ';' is fine)."""
    statements = _run(sql, "statements")
    if not statements:
        line, column = _end_position(sql)
        raise SqlSyntaxError(f"Syntax error at line {line}, column {column}: empty statement",
                             line=line, column=column, expected=["statement"])
    return statements


def parse_one(sql: str) -> ast.Statement:
    """Parse exactly one statement; a script of several is a syntax error."""
    statements = parse(sql)
    if len(statements) != 1:
        second = statements[1]
        raise SqlSyntaxError(
            f"Syntax error at line {second.line}, column {second.col}: "
            f"expected exactly one statement, found {len(statements)}",
            line=second.line, column=second.col)
    return statements[0]


def parse_expression(text: str) -> ast.Expr:
    """Parse one scalar expression and nothing else (REST ``filter=``)."""
    return _run(text, "expression_only")


def parse_ordering(text: str) -> list[ast.OrderItem]:
    """Parse an ORDER BY list without the keywords (REST ``order_by=``)."""
    return _run(text, "ordering")


def _run(text: str, start: str) -> Any:
    parser = _get_parser()
    _parameters.highest = 0
    try:
        return parser.parse(text, start=start)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None


# ---------------------------------------------------------------------- errors
def _readable(terminal: str) -> str:
    return _TERMINAL_NAMES.get(terminal) or _display.get(terminal) or terminal


def _sorted_names(names: set[str]) -> list[str]:
    # Words (identifier, number, ...) first, then quoted tokens, each alphabetically.
    return sorted(names, key=lambda n: (n.startswith("'"), n))


def _summary(expected: list[str]) -> str:
    names = set(expected)
    if _EXPRESSION_START <= names:
        names = (names - _EXPRESSION_START) | {"expression"}
    return ", ".join(_sorted_names(names))


def _end_position(text: str) -> tuple[int, int]:
    return text.count("\n") + 1, len(text) - text.rfind("\n")


def _error(line: int, column: int, what: str, *, token: str | None = None,
           expected: list[str] | None = None) -> SqlSyntaxError:
    message = f"Syntax error at line {line}, column {column}: {what}"
    if expected:
        message += "; expected one of: " + _summary(expected)
    return SqlSyntaxError(message, line=line, column=column, token=token, expected=expected or None)


def _syntax_error(exc: UnexpectedInput, text: str) -> SqlSyntaxError:
    if isinstance(exc, (UnexpectedToken, UnexpectedEOF)):
        expected = _sorted_names({_readable(t) for t in exc.expected})
        token = getattr(exc, "token", None)
        if token is None or token.type == "$END":
            line, column = _end_position(text)
            return _error(line, column, "unexpected end of input", expected=expected)
        # An unclosed "/*" is no comment, so it lexed as '/' then '*'.
        if token.value == "/" and text.startswith("/*", token.start_pos):
            return _error(token.line, token.column, "unterminated comment", token="/*")
        if token.value == "*" and text[token.start_pos - 1:token.start_pos] == "/":
            return _error(token.line, token.column - 1, "unterminated comment", token="/*")
        return _error(exc.line, exc.column, f"unexpected '{token.value}'", token=str(token.value),
                      expected=expected)
    if isinstance(exc, UnexpectedCharacters):
        char, rest = exc.char, text[exc.pos_in_stream:]
        if char == "'":
            what = "unterminated string literal"
        elif char in "\"`":
            what = "unterminated quoted identifier"
        elif rest.startswith("/*"):
            what = "unterminated comment"
        else:
            return _error(exc.line, exc.column, f"unexpected character '{char}'", token=char,
                          expected=_sorted_names({_readable(t) for t in exc.allowed}))
        return _error(exc.line, exc.column, what, token="/*" if what == "unterminated comment" else char)
    raise TypeError(f"unknown Lark error {type(exc).__name__}") from exc


# ---------------------------------------------------------------------- literals
def _number(text: str) -> int | float:
    lowered = text.lower()
    if lowered.startswith("0x"):
        value = int(lowered, 16)
        # SQLite reads hex literals as 64-bit two's complement.
        return value - 2**64 if _INT64_MAX < value < 2**64 else value
    if "." in lowered or "e" in lowered:
        return float(lowered)
    value = int(lowered)
    return value if _INT64_MIN <= value <= _INT64_MAX else float(value)


def _unquote(text: str) -> str:
    quote = text[0]
    return text[1:-1].replace(quote * 2, quote)


# ---------------------------------------------------------------------- expressions
# Binding power of each infix or postfix operator token (see the grammar's table).
_POWER = {
    "OR": 1, "AND": 2,
    "EQ": 4, "NE": 4, "IS": 4, "NOT": 4, "BETWEEN": 4, "LIKE": 4, "GLOB": 4,
    "ISNULL": 4, "NOTNULL": 4,
    "LT": 5, "LE": 5, "GT": 5, "GE": 5,
    "AMP": 6, "PIPE": 6, "SHL": 6, "SHR": 6,
    "PLUS": 7, "MINUS": 7, "STAR": 8, "SLASH": 8, "PERCENT": 8, "CONCAT": 9,
}
_NOT_POWER, _EQUALITY_POWER, _COMPARISON_POWER = 3, 4, 5

_BINARY_OPS = {
    "OR": "OR", "AND": "AND",
    "EQ": "=", "NE": "!=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">=",
    "AMP": "&", "PIPE": "|", "SHL": "<<", "SHR": ">>", "PLUS": "+", "MINUS": "-",
    "STAR": "*", "SLASH": "/", "PERCENT": "%", "CONCAT": "||",
}


@dataclass(frozen=True, slots=True)
class _InRhs:
    """The ``IN (...)`` / ``IN table`` part of a run, waiting for its left operand."""

    token: Token
    items: tuple[ast.Expr, ...] | None = None
    query: ast.Query | None = None

    def build(self, operand: ast.Expr, negated: bool, at: Token) -> ast.Expr:
        if self.items is not None:
            return ast.InList(operand, self.items, negated, line=at.line, col=at.column)
        assert self.query is not None
        return ast.InSubquery(operand, self.query, negated, line=at.line, col=at.column)


class _Climber:
    """Precedence climbing over one flat expression run.

    The grammar guarantees the run's shape, ``prefix* operand (infix prefix*
    operand | postfix)*``, so only BETWEEN without AND and a stray ESCAPE are
    left for this class to reject.
    """

    __slots__ = ("items", "i")

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.i = 0

    def run(self) -> ast.Expr:
        expr = self.expression(1)
        if self.i < len(self.items):  # only ESCAPE without LIKE stops the climb early
            token = self.items[self.i]
            raise _error(token.line, token.column, f"unexpected '{token.value}'", token=str(token.value),
                         expected=["'LIKE'", "'GLOB'"])
        return expr

    def expression(self, min_power: int) -> ast.Expr:
        left = self.operand()
        items = self.items
        while self.i < len(items):
            item = items[self.i]
            power = _POWER.get(item.type, 0) if type(item) is Token else _EQUALITY_POWER
            if power < min_power:
                break
            self.i += 1
            left = self.apply(left, item, power)
        return left

    def operand(self) -> ast.Expr:
        item = self.items[self.i]
        self.i += 1
        if type(item) is not Token:
            return item
        if item.type == "NOT":
            return ast.UnaryOp("NOT", self.expression(_NOT_POWER), line=item.line, col=item.column)
        # Unary - + ~ bind tighter than any infix operator: the operand is the next operand.
        return ast.UnaryOp(item.value, self.operand(), line=item.line, col=item.column)

    def next_is(self, kind: str) -> bool:
        if self.i < len(self.items):
            item = self.items[self.i]
            if type(item) is Token and item.type == kind:
                self.i += 1
                return True
        return False

    def apply(self, left: ast.Expr, op: Any, power: int) -> ast.Expr:
        if type(op) is not Token:
            return op.build(left, False, op.token)
        kind, line, col = op.type, op.line, op.column
        symbol = _BINARY_OPS.get(kind)
        if symbol is not None:
            return ast.BinaryOp(symbol, left, self.expression(power + 1), line=line, col=col)
        negated = kind == "NOT"
        if negated:  # NOT NULL, NOT IN, NOT BETWEEN, NOT LIKE, NOT GLOB
            follower = self.items[self.i]
            self.i += 1
            if type(follower) is not Token:
                return follower.build(left, True, op)
            kind = follower.type
        if kind in ("ISNULL", "NOTNULL", "NULL"):
            return ast.IsNull(left, kind != "ISNULL", line=line, col=col)
        if kind == "IS":
            negated = self.next_is("NOT")
            right = self.expression(_COMPARISON_POWER)
            if type(right) is ast.Literal and right.value is None:
                return ast.IsNull(left, negated, line=line, col=col)
            return ast.BinaryOp("IS NOT" if negated else "IS", left, right, line=line, col=col)
        if kind == "BETWEEN":
            low = self.expression(_COMPARISON_POWER)
            if not self.next_is("AND"):
                raise self.missing_and(op)
            high = self.expression(_COMPARISON_POWER)
            return ast.Between(left, low, high, negated, line=line, col=col)
        # LIKE or GLOB
        pattern = self.expression(_COMPARISON_POWER)
        escape = self.expression(_COMPARISON_POWER) if self.next_is("ESCAPE") else None
        return ast.Like(left, pattern, escape, negated, kind, line=line, col=col)

    def missing_and(self, between: Token) -> SqlSyntaxError:
        if self.i < len(self.items):
            found = self.items[self.i]
            if type(found) is Token:
                return _error(found.line, found.column, f"unexpected '{found.value}'",
                              token=str(found.value), expected=["'AND'"])
        return _error(between.line, between.column, "BETWEEN without AND", token=str(between.value),
                      expected=["'AND'"])


# ---------------------------------------------------------------------- the builder
def _at(token: Token) -> dict[str, int]:
    return {"line": token.line, "col": token.column}


def _like(node: ast.Node) -> dict[str, int]:
    """The position of an already-built node, for a node that starts where it does."""
    return {"line": node.line, "col": node.col}


_SELECT_STAR = (ast.SelectItem(ast.Star()),)


class _Builder(Transformer):
    """Lark callbacks, one per ``-> alias`` (or rule) of the grammar, building AST nodes.

    They run inside the LALR parser, bottom-up and in source order.  Clauses
    (order_by, limits, join constraints, ...) return plain values that their
    parent folds in; ``name`` returns the Token, unquoted, so parents can take
    its position.  The builder has no instance state: one instance serves
    every thread.
    """

    # ---------------------------------------------------------------- entry points
    def statements(self, statements):
        return [s for s in statements if s is not None]

    def expression_only(self, children):
        return children[0]

    def ordering(self, items):
        return list(items)

    def statement(self, children):
        _parameters.highest = 0
        return children[0]

    def explain(self, children):
        keyword, statement = children
        _parameters.highest = 0
        return ast.Explain(statement, **_at(keyword))

    def begin(self, children):
        keyword = children[0]
        return ast.Begin(**_at(keyword))

    def commit(self, children):
        keyword = children[0]
        return ast.Commit(**_at(keyword))

    def rollback(self, children):
        keyword = children[0]
        return ast.Rollback(**_at(keyword))

    # ---------------------------------------------------------------- DDL
    def create_table(self, children):
        keyword, temporary, if_not_exists, name, *elements = children
        columns = tuple(e for e in elements if type(e) is ast.ColumnDef)
        constraints = tuple(e for e in elements if type(e) is ast.TableConstraint)
        return ast.CreateTable(str(name), columns, constraints, if_not_exists=bool(if_not_exists),
                               temporary=bool(temporary), **_at(keyword))

    def primary_key_constraint(self, children):
        keyword, columns = children
        return ast.TableConstraint("PRIMARY KEY", columns, **_at(keyword))

    def unique_constraint(self, children):
        keyword, columns = children
        return ast.TableConstraint("UNIQUE", columns, **_at(keyword))

    def column_def(self, children):
        name, type_name, *constraints = children
        flags: dict[str, Any] = {}
        for constraint in constraints:
            flags.update(constraint)
        flags.pop("nullable", None)  # an explicit NULL constraint is the default
        return ast.ColumnDef(str(name), type_name, **flags, **_at(name))

    def pk_column_constraint(self, children):
        descending, autoincrement = children
        return {"primary_key": True, "primary_key_desc": bool(descending),
                "autoincrement": autoincrement is not None}

    def not_null_constraint(self, _children):
        return {"not_null": True}

    def null_constraint(self, _children):
        return {"nullable": True}

    def unique_column_constraint(self, _children):
        return {"unique": True}

    def default_constraint(self, children):
        value = children[0]
        return {"default": value}

    def signed_number(self, children):
        sign, number = children
        literal = ast.Literal(_number(number), **_at(number))
        return ast.UnaryOp(sign.value, literal, **_at(sign))

    def type_name(self, parts):
        words = [p for p in parts if type(p) is Token]
        args = tuple(p for p in parts if p is not None and type(p) is not Token)
        return ast.TypeName(" ".join(w.upper() for w in words), args, **_at(words[0]))

    def type_arg(self, children):
        sign, number = children
        value = _number(number)
        return -value if sign is not None and sign.value == "-" else value

    def indexed_columns(self, columns):
        return tuple(columns)

    def indexed_column(self, children):
        name, descending = children
        return ast.IndexedColumn(str(name), bool(descending), **_at(name))

    def drop_table(self, children):
        keyword, if_exists, name = children
        return ast.DropTable(str(name), bool(if_exists), **_at(keyword))

    def create_index(self, children):
        keyword, unique, if_not_exists, name, table, columns = children
        return ast.CreateIndex(str(name), str(table), columns, unique=unique is not None,
                               if_not_exists=bool(if_not_exists), **_at(keyword))

    def drop_index(self, children):
        keyword, if_exists, name = children
        return ast.DropIndex(str(name), bool(if_exists), **_at(keyword))

    def reindex(self, children):
        keyword, name = children
        return ast.Reindex(str(name) if name is not None else None, **_at(keyword))

    def create_view(self, children):
        keyword, temporary, if_not_exists, name, columns, query = children
        return ast.CreateView(str(name), query, columns or (), if_not_exists=bool(if_not_exists),
                              temporary=bool(temporary), **_at(keyword))

    def drop_view(self, children):
        keyword, if_exists, name = children
        return ast.DropView(str(name), bool(if_exists), **_at(keyword))

    def add_column(self, children):
        keyword, table, column = children
        return ast.AddColumn(str(table), column, **_at(keyword))

    def rename_table(self, children):
        keyword, table, new_name = children
        return ast.RenameTable(str(table), str(new_name), **_at(keyword))

    def rename_column(self, children):
        keyword, table, old_name, new_name = children
        return ast.RenameColumn(str(table), str(old_name), str(new_name), **_at(keyword))

    def if_not_exists(self, _children):
        return True

    def if_exists(self, _children):
        return True

    def temporary(self, _children):
        return True

    # ---------------------------------------------------------------- DML
    def insert(self, children):
        verb, table, columns, source = children
        keyword, on_conflict = verb
        return ast.Insert(str(table), source, columns or (), on_conflict, **_at(keyword))

    def insert_plain(self, children):
        keyword = children[0]
        return (keyword, None)

    def insert_or(self, children):
        keyword, action = children
        return (keyword, action.type)

    def replace_verb(self, children):
        keyword = children[0]
        return (keyword, "REPLACE")

    def default_values(self, _children):
        return None

    def update(self, children):
        keyword, table, *assignments, where = children
        return ast.Update(str(table), tuple(assignments), where, **_at(keyword))

    def assignment(self, children):
        column, _equals, value = children
        return ast.Assignment(str(column), value, **_at(column))

    def delete(self, children):
        keyword, table, where = children
        return ast.Delete(str(table), where, **_at(keyword))

    # ---------------------------------------------------------------- queries
    def query(self, children):
        body, order_by, limit = children
        if order_by is None and limit is None:
            return body
        limit, offset = limit or (None, None)
        return replace(body, order_by=order_by or (), limit=limit, offset=offset)

    def compound(self, children):
        left, op, right = children
        return ast.Compound(op, left, right, **_like(left))

    def compound_op(self, words):
        return " ".join(w.upper() for w in words if w is not None)

    def select(self, children):
        keyword, quantifier, items, from_, where, group_by, having = children
        return ast.Select(items, from_, where, group_by or (), having,
                          distinct=quantifier == "DISTINCT", **_at(keyword))

    def values(self, children):
        keyword, *rows = children
        return ast.Values(tuple(rows), **_at(keyword))

    def row(self, children):
        return children[0]

    def set_quantifier(self, children):
        word = children[0]
        return word.type

    def select_items(self, items):
        return tuple(items)

    def select_item(self, children):
        expr, alias = children
        return ast.SelectItem(expr, None if alias is None else str(alias), **_like(expr))

    def star_item(self, children):
        star = children[0]
        return ast.SelectItem(ast.Star(**_at(star)), **_at(star))

    def table_star_item(self, children):
        table = children[0]
        return ast.SelectItem(ast.Star(str(table), **_at(table)), **_at(table))

    def from_clause(self, children):
        item = children[0]
        return item

    def comma_join(self, children):
        left, right = children
        return ast.Join("CROSS", left, right, **_like(left))

    def join(self, children):
        left, kind, right, constraint = children
        on, using = None, ()
        if type(constraint) is tuple:
            using = constraint
        elif constraint is not None:
            on = constraint
        return ast.Join(kind, left, right, on, using, **_like(left))

    def join_kind(self, words):
        first = words[0].upper()
        return "INNER" if first == "JOIN" else first

    def join_on(self, children):
        expr = children[0]
        return expr

    def join_using(self, children):
        names = children[0]
        return names

    def table_ref(self, children):
        name, alias, as_of, hint = children
        indexed_by, not_indexed = hint if hint is not None else (None, False)
        return ast.TableRef(str(name), None if alias is None else str(alias), as_of, indexed_by,
                            not_indexed, **_at(name))

    def subquery_ref(self, children):
        query, alias = children
        return ast.SubqueryRef(query, None if alias is None else str(alias), **_like(query))

    def indexed_by(self, children):
        name = children[0]
        return (str(name), False)

    def not_indexed(self, _children):
        return (None, True)

    def order_by(self, items):
        return tuple(items)

    def order_item(self, children):
        expr, descending, nulls_first = children
        return ast.OrderItem(expr, bool(descending), nulls_first, **_like(expr))

    def sort_order(self, children):
        word = children[0]
        return word.type == "DESC"

    def nulls_order(self, children):
        word = children[0]
        return word.type == "FIRST"

    def limit_only(self, children):
        limit = children[0]
        return (limit, None)

    def limit_offset(self, children):
        limit, offset = children
        return (limit, offset)

    def limit_comma(self, children):
        offset, limit = children
        # SQLite's "LIMIT offset, count": the first number is the offset.
        return (limit, offset)

    # ---------------------------------------------------------------- expressions
    def expr(self, items):
        return items[0] if len(items) == 1 else _Climber(items).run()

    def in_list(self, children):
        keyword, items = children
        return _InRhs(keyword, items=items or ())

    def in_query(self, children):
        keyword, query = children
        return _InRhs(keyword, query=query)

    def in_table(self, children):
        keyword, table = children
        query = ast.Select(_SELECT_STAR, ast.TableRef(str(table), **_at(table)), **_at(table))
        return _InRhs(keyword, query=query)

    def param(self, children):
        token = children[0]
        digits = token.value[1:]
        index = int(digits) if digits else _parameters.highest + 1
        if index < 1:
            raise _error(token.line, token.column, f"parameter index must be at least 1, got '{token.value}'",
                         token=str(token.value))
        _parameters.highest = max(_parameters.highest, index)
        return ast.Parameter(index, **_at(token))

    def column(self, children):
        token = children[0]
        name = _unquote(token.value) if token.type == "QUOTED_NAME" else str(token.value)
        return ast.ColumnRef(name, **_at(token))

    def qualified_column(self, children):
        table, name = children
        return ast.ColumnRef(str(name), str(table), **_at(table))

    def function(self, children):
        name, args = children
        quantifier, exprs = args if args is not None else (None, ())
        return ast.FunctionCall(name.lower(), exprs, quantifier == "DISTINCT", **_at(name))

    def func_args(self, children):
        quantifier, exprs = children
        return (quantifier, exprs)

    def count_star(self, children):
        name = children[0]
        return ast.FunctionCall(name.lower(), (), star=True, **_at(name))

    def scalar_subquery(self, children):
        query = children[0]
        return ast.ScalarSubquery(query, **_like(query))

    def exists(self, children):
        keyword, query = children
        return ast.Exists(query, **_at(keyword))

    def cast(self, children):
        keyword, operand, type_name = children
        return ast.Cast(operand, type_name, **_at(keyword))

    def case(self, children):
        keyword, operand, *whens, else_ = children
        return ast.Case(operand, tuple(whens), else_, **_at(keyword))

    def when(self, children):
        condition, result = children
        return ast.When(condition, result, **_like(condition))

    def current_time(self, children):
        word = children[0]
        return ast.CurrentTime(word.type, **_at(word))

    def number(self, children):
        token = children[0]
        return ast.Literal(_number(token.value), **_at(token))

    def string(self, children):
        token = children[0]
        return ast.Literal(_unquote(token.value), **_at(token))

    def blob(self, children):
        token = children[0]
        return ast.Literal(bytes.fromhex(token.value[2:-1]), **_at(token))

    def null(self, children):
        token = children[0]
        return ast.Literal(None, **_at(token))

    def true(self, children):
        token = children[0]
        return ast.Literal(True, **_at(token))

    def false(self, children):
        token = children[0]
        return ast.Literal(False, **_at(token))

    def expr_list(self, exprs):
        return tuple(exprs)

    def name_list(self, names):
        return tuple(str(n) for n in names)

    def name(self, children):
        token = children[0]
        if token.type == "QUOTED_NAME":
            return Token.new_borrow_pos("NAME", _unquote(token.value), token)
        return token
