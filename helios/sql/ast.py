"""The SQL abstract syntax tree: what the parser produces and the binder consumes.

Every node is a frozen, slotted dataclass, so trees are hashable values that can
key a plan cache and be compared in tests.  Positions (``line``, ``col``,
1-based) are keyword-only and excluded from equality: two parses of the same
statement compare equal however they were spaced, while error messages can
still point at the source.  A node is placed at its first token, except
operator nodes (BinaryOp, IsNull, Between, InList, InSubquery, Like), which are
placed at their operator; hand-built nodes have position 0, 0.

Conventions the consumer can rely on:

* Sequences are tuples, never lists; an absent optional clause is ``None`` (or
  an empty tuple for lists).
* Identifiers keep the spelling of the source, quotes removed (SQL compares them
  case-insensitively, which is the binder's job).  Function names are lower-case
  and type names upper-case with single spaces (``"DOUBLE PRECISION"``).
* The parser never produces negative number literals: ``-5`` is
  ``UnaryOp("-", Literal(5))``, exactly as SQLite parses it.  Integer literals
  outside the signed 64-bit range become floats, as in SQLite.
* Operators are canonical: ``==`` becomes ``=``, ``<>`` becomes ``!=``;
  ``x IS NULL``, ``x ISNULL``, ``x NOTNULL`` and ``x NOT NULL`` all become
  :class:`IsNull`.  ``x IN t`` becomes ``x IN (SELECT * FROM t)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal as Lit, TypeAlias

LiteralValue: TypeAlias = int | float | str | bytes | bool | None


@dataclass(frozen=True, slots=True)
class Node:
    """Base of every node; carries the source position for error messages."""

    line: int = field(default=0, kw_only=True, compare=False, repr=False)
    col: int = field(default=0, kw_only=True, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Expr(Node):
    """Base of scalar expressions."""


@dataclass(frozen=True, slots=True)
class Statement(Node):
    """Base of everything :func:`helios.sql.parser.parse` returns."""


@dataclass(frozen=True, slots=True)
class Query(Statement):
    """A statement that yields rows: :class:`Select`, :class:`Compound` or :class:`Values`."""


@dataclass(frozen=True, slots=True)
class FromItem(Node):
    """Something in a FROM clause: :class:`TableRef`, :class:`SubqueryRef` or :class:`Join`."""


# ---------------------------------------------------------------------- expressions
@dataclass(frozen=True, slots=True)
class Literal(Expr):
    """A constant: int, float, str, bytes (``X'..'``), bool (TRUE/FALSE) or None (NULL)."""

    value: LiteralValue


@dataclass(frozen=True, slots=True)
class ColumnRef(Expr):
    """A column, optionally qualified by a table name or alias (``t.col``)."""

    name: str
    table: str | None = None


@dataclass(frozen=True, slots=True)
class Star(Expr):
    """``*`` or ``t.*``; appears only as a :class:`SelectItem` expression."""

    table: str | None = None


@dataclass(frozen=True, slots=True)
class Parameter(Expr):
    """A bound parameter, 1-based.

    ``$n`` and ``?n`` name their index; a bare ``?`` takes one more than the
    largest index used so far in its statement (SQLite's rule), so ``?, ?`` are
    1 and 2.
    """

    index: int


@dataclass(frozen=True, slots=True)
class UnaryOp(Expr):
    """Prefix operator: ``-``, ``+``, ``~`` or ``NOT``."""

    op: Lit["-", "+", "~", "NOT"]
    operand: Expr


@dataclass(frozen=True, slots=True)
class BinaryOp(Expr):
    """Infix operator.

    ``op`` is one of ``OR AND = != < <= > >= IS, IS NOT, + - * / % || & | << >>``.
    ``IS``/``IS NOT`` are null-safe (in)equality; ``IS NULL`` is :class:`IsNull`.
    """

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class IsNull(Expr):
    """``x IS NULL`` (or ``x IS NOT NULL`` when ``negated``)."""

    operand: Expr
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Between(Expr):
    """``x [NOT] BETWEEN low AND high`` (inclusive)."""

    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass(frozen=True, slots=True)
class InList(Expr):
    """``x [NOT] IN (a, b, ...)``; ``items`` may be empty (SQLite allows ``IN ()``)."""

    operand: Expr
    items: tuple[Expr, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class InSubquery(Expr):
    """``x [NOT] IN (SELECT ...)``; also what ``x IN table`` becomes."""

    operand: Expr
    query: Query
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Like(Expr):
    """``x [NOT] LIKE pattern [ESCAPE e]``; ``op`` is ``"GLOB"`` for the case-sensitive glob form."""

    operand: Expr
    pattern: Expr
    escape: Expr | None = None
    negated: bool = False
    op: Lit["LIKE", "GLOB"] = "LIKE"


@dataclass(frozen=True, slots=True)
class Exists(Expr):
    """``EXISTS (SELECT ...)``; ``NOT EXISTS`` is ``UnaryOp("NOT", Exists(...))``."""

    query: Query


@dataclass(frozen=True, slots=True)
class ScalarSubquery(Expr):
    """``(SELECT ...)`` used as a value: its first column of its first row, or NULL."""

    query: Query


@dataclass(frozen=True, slots=True)
class When(Node):
    """One ``WHEN condition THEN result`` arm of a :class:`Case`."""

    condition: Expr
    result: Expr


@dataclass(frozen=True, slots=True)
class Case(Expr):
    """``CASE [operand] WHEN .. THEN .. [ELSE ..] END``.

    With an ``operand`` each ``When.condition`` is a value compared with ``=``;
    without one each condition is a boolean.
    """

    operand: Expr | None
    whens: tuple[When, ...]
    else_: Expr | None = None


@dataclass(frozen=True, slots=True)
class TypeName(Node):
    """A declared type: upper-case words plus up to two numeric arguments.

    Any word sequence is accepted (SQLite's leniency); mapping ``VARCHAR(16)``
    or ``DOUBLE PRECISION`` to a storage class is the binder's job.
    """

    name: str
    args: tuple[int | float, ...] = ()


@dataclass(frozen=True, slots=True)
class Cast(Expr):
    """``CAST(operand AS type)``."""

    operand: Expr
    type: TypeName


@dataclass(frozen=True, slots=True)
class FunctionCall(Expr):
    """``name([DISTINCT] args)``; ``count(*)`` has ``star=True`` and no args.

    Scalar and aggregate calls share this node: whether ``min(a)`` aggregates
    depends on its argument count, which the binder decides.
    """

    name: str
    args: tuple[Expr, ...] = ()
    distinct: bool = False
    star: bool = False


@dataclass(frozen=True, slots=True)
class CurrentTime(Expr):
    """``CURRENT_TIMESTAMP``, ``CURRENT_DATE`` or ``CURRENT_TIME``."""

    kind: Lit["CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME"]


# ---------------------------------------------------------------------- queries
@dataclass(frozen=True, slots=True)
class SelectItem(Node):
    """One output column: an expression (or :class:`Star`) with an optional alias."""

    expr: Expr
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class OrderItem(Node):
    """One ORDER BY key.

    ``expr`` may be an integer :class:`Literal` (an output ordinal) or a
    :class:`ColumnRef` naming an output alias; resolving those is the binder's
    job.  ``nulls_first`` is None when unspecified (SQLite: NULLs sort first
    ascending, last descending).
    """

    expr: Expr
    descending: bool = False
    nulls_first: bool | None = None


@dataclass(frozen=True, slots=True)
class TableRef(FromItem):
    """A named table or view in FROM.

    ``as_of`` is the ``AS OF SYSTEM TIME`` value (a Literal number or string,
    a negated number, or a Parameter); ``indexed_by``/``not_indexed`` are
    SQLite's index hints, which an engine may ignore.
    """

    name: str
    alias: str | None = None
    as_of: Expr | None = None
    indexed_by: str | None = None
    not_indexed: bool = False


@dataclass(frozen=True, slots=True)
class SubqueryRef(FromItem):
    """``(SELECT ...) [AS alias]`` in FROM."""

    query: Query
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class Join(FromItem):
    """Two FROM items joined; a comma join is ``kind="CROSS"``.

    ``kind`` is ``INNER``, ``LEFT``, ``RIGHT``, ``FULL`` or ``CROSS``; at most
    one of ``on`` and ``using`` is set.  Chains are left-deep:
    ``a, b, c`` is ``Join(Join(a, b), c)``.
    """

    kind: Lit["INNER", "LEFT", "RIGHT", "FULL", "CROSS"]
    left: FromItem
    right: FromItem
    on: Expr | None = None
    using: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Select(Query):
    """One SELECT.  ``items`` is never empty; ``from_`` is None for FROM-less selects."""

    items: tuple[SelectItem, ...]
    from_: FromItem | None = None
    where: Expr | None = None
    group_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    distinct: bool = False
    order_by: tuple[OrderItem, ...] = ()
    limit: Expr | None = None
    offset: Expr | None = None


@dataclass(frozen=True, slots=True)
class Compound(Query):
    """``left op right`` with op ``UNION``, ``UNION ALL``, ``INTERSECT`` or ``EXCEPT``.

    Left-associative; ORDER BY/LIMIT/OFFSET belong to the outermost compound
    and its operands never carry them.
    """

    op: Lit["UNION", "UNION ALL", "INTERSECT", "EXCEPT"]
    left: Query
    right: Query
    order_by: tuple[OrderItem, ...] = ()
    limit: Expr | None = None
    offset: Expr | None = None


@dataclass(frozen=True, slots=True)
class Values(Query):
    """``VALUES (..), (..)``: a statement, a compound operand or an INSERT source."""

    rows: tuple[tuple[Expr, ...], ...]
    order_by: tuple[OrderItem, ...] = ()
    limit: Expr | None = None
    offset: Expr | None = None


# ---------------------------------------------------------------------- DDL
@dataclass(frozen=True, slots=True)
class ColumnDef(Node):
    """A column in CREATE TABLE / ALTER TABLE ADD.  ``type`` is None when omitted.

    Constraints are flattened into flags; ``default`` is a literal, a signed
    number (a UnaryOp), ``CURRENT_*`` or any parenthesised expression.
    """

    name: str
    type: TypeName | None = None
    primary_key: bool = False
    primary_key_desc: bool = False
    autoincrement: bool = False
    not_null: bool = False
    unique: bool = False
    default: Expr | None = None


@dataclass(frozen=True, slots=True)
class IndexedColumn(Node):
    """A column of an index or of a table-level key, with its sort direction."""

    name: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class TableConstraint(Node):
    """A table-level ``PRIMARY KEY (..)`` or ``UNIQUE (..)``."""

    kind: Lit["PRIMARY KEY", "UNIQUE"]
    columns: tuple[IndexedColumn, ...]


@dataclass(frozen=True, slots=True)
class CreateTable(Statement):
    """``CREATE [TEMP] TABLE [IF NOT EXISTS] name (columns, constraints)``."""

    name: str
    columns: tuple[ColumnDef, ...]
    constraints: tuple[TableConstraint, ...] = ()
    if_not_exists: bool = False
    temporary: bool = False


@dataclass(frozen=True, slots=True)
class DropTable(Statement):
    """``DROP TABLE [IF EXISTS] name``."""

    name: str
    if_exists: bool = False


@dataclass(frozen=True, slots=True)
class CreateIndex(Statement):
    """``CREATE [UNIQUE] INDEX [IF NOT EXISTS] name ON table (columns)``."""

    name: str
    table: str
    columns: tuple[IndexedColumn, ...]
    unique: bool = False
    if_not_exists: bool = False


@dataclass(frozen=True, slots=True)
class DropIndex(Statement):
    """``DROP INDEX [IF EXISTS] name``."""

    name: str
    if_exists: bool = False


@dataclass(frozen=True, slots=True)
class CreateView(Statement):
    """``CREATE [TEMP] VIEW [IF NOT EXISTS] name [(columns)] AS query``."""

    name: str
    query: Query
    columns: tuple[str, ...] = ()
    if_not_exists: bool = False
    temporary: bool = False


@dataclass(frozen=True, slots=True)
class DropView(Statement):
    """``DROP VIEW [IF EXISTS] name``."""

    name: str
    if_exists: bool = False


@dataclass(frozen=True, slots=True)
class AddColumn(Statement):
    """``ALTER TABLE table ADD [COLUMN] column``."""

    table: str
    column: ColumnDef


@dataclass(frozen=True, slots=True)
class RenameTable(Statement):
    """``ALTER TABLE table RENAME TO new_name``."""

    table: str
    new_name: str


@dataclass(frozen=True, slots=True)
class RenameColumn(Statement):
    """``ALTER TABLE table RENAME [COLUMN] old_name TO new_name``."""

    table: str
    old_name: str
    new_name: str


@dataclass(frozen=True, slots=True)
class Reindex(Statement):
    """``REINDEX [name]``: accepted for SQLite compatibility; indexes never go stale here."""

    name: str | None = None


# ---------------------------------------------------------------------- DML
@dataclass(frozen=True, slots=True)
class Insert(Statement):
    """``INSERT [OR REPLACE|OR IGNORE] INTO table [(columns)] source``.

    ``source`` is a :class:`Values`, :class:`Select` or :class:`Compound`, or
    None for ``DEFAULT VALUES``.  ``REPLACE INTO`` is ``on_conflict="REPLACE"``.
    """

    table: str
    source: Query | None
    columns: tuple[str, ...] = ()
    on_conflict: Lit["REPLACE", "IGNORE"] | None = None


@dataclass(frozen=True, slots=True)
class Assignment(Node):
    """``column = value`` in UPDATE ... SET."""

    column: str
    value: Expr


@dataclass(frozen=True, slots=True)
class Update(Statement):
    """``UPDATE table SET assignments [WHERE where]``; later assignments to a column win."""

    table: str
    assignments: tuple[Assignment, ...]
    where: Expr | None = None


@dataclass(frozen=True, slots=True)
class Delete(Statement):
    """``DELETE FROM table [WHERE where]``."""

    table: str
    where: Expr | None = None


# ---------------------------------------------------------------------- control
@dataclass(frozen=True, slots=True)
class Begin(Statement):
    """``BEGIN [TRANSACTION]``."""


@dataclass(frozen=True, slots=True)
class Commit(Statement):
    """``COMMIT`` or ``END`` [TRANSACTION]."""


@dataclass(frozen=True, slots=True)
class Rollback(Statement):
    """``ROLLBACK [TRANSACTION]``."""


@dataclass(frozen=True, slots=True)
class Explain(Statement):
    """``EXPLAIN statement``: describe the plan instead of running it."""

    statement: Statement
