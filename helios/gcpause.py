"""Pausing the cyclic garbage collector around bulk work.

Building many small containers (row tuples, tree nodes, hash-join buckets)
makes CPython's cyclic collector walk the whole heap again and again: measured
here at about half the time of a million-row load or hash join. None of those
objects form reference cycles, so the collector has nothing to find; it is
paused for the duration (nesting and threads are counted) and resumed after.
"""
from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()


def freeze_survivors() -> None:
    """Move everything alive now out of the collector's sight (after recovery)."""
    gc.freeze()
