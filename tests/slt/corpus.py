"""Where the sqllogictest corpus the tests run on is.

The project's corpus is ``../shared/conformance``, beside the repository (CI
places it there; ``make conformance`` runs all of it). A clone on its own has no
such folder, so the tests then run on ``corpus-sample/``: ``select1.test`` and
``evidence/``, vendored unchanged from the same suite. Nothing is skipped either
way; ``FULL`` says which one it is, for checks that only hold on the whole
corpus (its size) and for the pytest header.
"""
from __future__ import annotations

from pathlib import Path

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
SAMPLE = Path(__file__).resolve().parent / "corpus-sample"
FULL = SHARED.is_dir()
CORPUS = SHARED if FULL else SAMPLE


def describe() -> str:
    return (f"conformance corpus: {CORPUS}" if FULL else
            f"conformance corpus: the vendored sample {CORPUS} ({SHARED} is absent)")
