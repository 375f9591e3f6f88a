"""sqllogictest conformance of the engine, in the default suite.

select1-3 and evidence/ run whole (target 100%, trigger records excluded); the
generated files run their first records only, to stay inside the suite's time
budget. ``make conformance`` runs everything and prints the table. Without the
shared corpus beside the repository the vendored sample runs (``corpus.py``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "slt"))
import slt  # noqa: E402
from corpus import CORPUS  # noqa: E402

SAMPLE = 1500
FILES = sorted(p.relative_to(CORPUS).as_posix() for p in slt.discover(CORPUS))


@pytest.mark.parametrize("name", FILES)
def test_conformance_file(name: str) -> None:
    path = CORPUS / name
    target = slt.target_percent(path)
    options = slt.RunOptions(max_records=None if target == 100 else SAMPLE, record_timeout=30)
    report = slt.Runner(slt.HeliosAdapter, options).run_file(path, name)
    failures = "\n\n".join(slt.format_failure(f) for f in report.failures[:5])
    assert report.error is None, report.error
    assert report.run > 0
    assert report.met_target, f"{name}: {report.pass_rate:.2f}% < {target}%\n{failures}"
    if target == 100:
        assert report.failed == 0, failures
