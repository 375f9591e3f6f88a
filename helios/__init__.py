"""HeliosDB Nano: an embedded SQL database with git-like branches and time travel."""
from __future__ import annotations

__version__ = "0.1.0"

from .embedded import EmbeddedDatabase, Result, Transaction  # noqa: E402

__all__ = ["EmbeddedDatabase", "Result", "Transaction", "__version__"]
