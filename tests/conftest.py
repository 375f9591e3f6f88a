"""Shared fixtures. Tests import the *installed* package (``python -P``), as users do."""
from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "slt"))
import corpus  # noqa: E402 - tests/slt is not a package


def pytest_report_header(config) -> str:
    return corpus.describe()


@pytest.fixture(scope="module")
def twins(request):
    """(helios, stdlib sqlite3), both in memory and loaded with the test module's
    ``SETUP`` statements: for tests that compare answers with SQLite's."""
    from helios import EmbeddedDatabase
    helios, lite = EmbeddedDatabase(":memory:"), sqlite3.connect(":memory:")
    for sql in request.module.SETUP:
        helios.execute(sql)
        lite.execute(sql)
    yield helios, lite
    helios.close()
    lite.close()
