"""Per-execution state shared by a plan's compiled closures and operators.

A plan is compiled once (and cached per thread); each execution refills its
``Runtime``: the bound parameters, the snapshot to read, the deadline. Compiled
closures read ``rt.params`` instead of capturing values, which is what lets a
cached plan run again with new parameters.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from ..errors import QueryCancelled, QueryTimeout

_monotonic = time.monotonic


class Runtime:
    __slots__ = ("params", "snapshot", "deadline", "timeout_ms", "snapshot_at", "cache", "now", "cancel")

    def __init__(self) -> None:
        self.params: tuple = ()
        self.snapshot: Any = None                      # a storage StateView (snapshot or transaction)
        self.deadline: float | None = None             # time.monotonic() value
        self.timeout_ms: int | None = None
        self.snapshot_at: Callable[[float], Any] | None = None   # AS OF SYSTEM TIME -> StateView
        self.cache: dict = {}                          # uncorrelated subquery results, per execution
        self.now: float = 0.0
        self.cancel: Any = None                        # a threading.Event set when the client left

    def reset(self, params: tuple, snapshot: Any, timeout_ms: int | None,
              snapshot_at: Callable[[float], Any] | None, cancel: Any = None) -> None:
        self.params = params
        self.snapshot = snapshot
        self.timeout_ms = timeout_ms
        self.deadline = None if timeout_ms is None else _monotonic() + timeout_ms / 1000
        self.snapshot_at = snapshot_at
        if self.cache:                                 # left empty by most executions
            self.cache = {}
        self.now = time.time()
        self.cancel = cancel

    def check(self) -> None:
        """Raise QueryTimeout once the deadline has passed, QueryCancelled once the
        client has gone (called every batch)."""
        if self.deadline is not None and _monotonic() > self.deadline:
            raise QueryTimeout.after(self.timeout_ms)
        if self.cancel is not None and self.cancel.is_set():
            raise QueryCancelled("the query was cancelled: the client disconnected")
