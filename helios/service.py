"""Twisted services: the database's lifetime, its periodic checkpoints and the
daemon's garbage-collector policy.

``DatabaseService`` opens the database when the application starts (after
twistd has daemonised) and, on stop, checkpoints and closes it. The HTTP
service is started after it, so the API never sees a closed database.
"""
from __future__ import annotations

import gc
import time
from typing import Any, Callable

from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger

from .embedded import EmbeddedDatabase

log = Logger(namespace="helios.service")


class DatabaseService(service.Service):
    name = "database"

    def __init__(self, path: str, *, retention: float | None = None,
                 on_open: Callable[[EmbeddedDatabase], None] | None = None) -> None:
        self.path = path
        self.retention = retention
        self.on_open = on_open
        self.db: EmbeddedDatabase | None = None

    def startService(self) -> None:
        log.info("opening database {path}", path=self.path)
        self.db = EmbeddedDatabase(self.path, retention=self.retention,
                                   progress=lambda msg: log.info("{msg}", msg=msg))
        if self.on_open is not None:
            self.on_open(self.db)
        super().startService()

    def stopService(self) -> Any:
        super().stopService()
        if self.db is None:
            return None
        db, self.db = self.db, None
        log.info("checkpointing and closing {path}", path=self.path)
        return threads.deferToThread(db.close)


class _TimedService(service.Service):
    """A service driven by ``callLater`` on an injectable clock (``task.Clock`` in tests)."""

    def __init__(self, clock: Any = None) -> None:
        self._clock = clock
        self._call: Any = None

    @property
    def clock(self) -> Any:
        if self._clock is None:
            from twisted.internet import reactor
            self._clock = reactor
        return self._clock

    def _cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()


class CheckpointService(_TimedService):
    """Checkpoints every ``interval`` seconds, off the reactor thread, one at a time."""

    name = "checkpoint"

    def __init__(self, database: DatabaseService, interval: float, clock: Any = None) -> None:
        super().__init__(clock)
        self.database = database
        self.interval = interval
        self._running: defer.Deferred | None = None

    def startService(self) -> None:
        super().startService()
        self._schedule()

    def _schedule(self) -> None:
        self._call = self.clock.callLater(self.interval, self._tick)

    def _tick(self) -> None:
        db = self.database.db
        if db is None or db.store.failed is not None:
            self._schedule()
            return
        self._running = threads.deferToThread(db.checkpoint)
        self._running.addErrback(lambda f: log.failure("checkpoint failed", failure=f))
        self._running.addBoth(lambda _: self._schedule() if self.running else None)

    def stopService(self) -> Any:
        super().stopService()
        self._cancel()
        return self._running


class HistoryFreezeService(_TimedService):
    """Keeps CPython's full collections short in the daemon, whose heap is mostly history.

    Every commit leaves immutable, acyclic objects behind (B+tree paths, commits), and
    a full collection walks every tracked object: its pause grows with the number of
    commits (about 70 ms after 16k single-row commits), and it stops the reactor
    with everything else. Every ``freeze_every`` seconds everything alive moves to the
    permanent generation (``gc.freeze``, O(1)), so automatic collections scan only
    what was allocated since. A reference cycle that was alive at a freeze and dies
    later is not collected until the next sweep: every ``sweep_every`` seconds the
    frozen objects are released and collected once in full (one pause, logged).

    A process-wide policy, so it lives here in the daemon: an embedding program
    decides its own (``gc`` is the injected module, for tests)."""

    name = "gc-freeze"

    def __init__(self, freeze_every: float, sweep_every: float, clock: Any = None, gc_module: Any = gc) -> None:
        super().__init__(clock)
        self.freeze_every = freeze_every
        self.sweep_every = sweep_every
        self._gc = gc_module
        self._last_sweep = 0.0

    def startService(self) -> None:
        super().startService()
        self._last_sweep = self.clock.seconds()
        self._call = self.clock.callLater(self.freeze_every, self._tick)

    def _tick(self) -> None:
        now = self.clock.seconds()
        if self.sweep_every and now - self._last_sweep >= self.sweep_every:
            self.sweep()
            self._last_sweep = now
        self._gc.freeze()
        self._call = self.clock.callLater(self.freeze_every, self._tick)

    def sweep(self) -> None:
        """Release the frozen objects and collect everything once."""
        t0 = time.perf_counter()
        self._gc.unfreeze()
        found = self._gc.collect()
        log.info("gc sweep: {found} unreachable objects collected in {ms:.1f} ms", found=found,
                 ms=(time.perf_counter() - t0) * 1000)

    def stopService(self) -> Any:
        super().stopService()
        self._cancel()
        self._gc.unfreeze()          # the process may go on (tests, embedding): leave gc as it was
        return None
