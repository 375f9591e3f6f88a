"""Round trips over tests/grammar/identity.sql (sqlglot's identity-fixture idea).

Each line is canonical SQL: it parses, prints back to exactly itself, and the
printed text parses to an equal AST.
"""
from pathlib import Path

import pytest

from helios.sql.ast_printer import to_sql
from helios.sql.parser import parse_one

LINES = [line for line in (Path(__file__).parent / "identity.sql").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("sql", LINES)
def test_identity(sql):
    tree = parse_one(sql)
    printed = to_sql(tree)
    assert printed == sql
    assert parse_one(printed) == tree
