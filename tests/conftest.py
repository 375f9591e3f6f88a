"""Shared fixtures. Tests import the *installed* package (``python -P``), as users do."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "slt"))
import corpus  # noqa: E402 - tests/slt is not a package


def pytest_report_header(config) -> str:
    return corpus.describe()
