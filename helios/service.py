"""Twisted services: the database's lifetime and its periodic checkpoints.

``DatabaseService`` opens the database when the application starts (after
twistd has daemonised) and, on stop, checkpoints and closes it. The HTTP
service is started after it, so the API never sees a closed database.
"""
from __future__ import annotations

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


class CheckpointService(service.Service):
    """Checkpoints every ``interval`` seconds, off the reactor thread, one at a time."""

    name = "checkpoint"

    def __init__(self, database: DatabaseService, interval: float, clock: Any = None) -> None:
        self.database = database
        self.interval = interval
        self._clock = clock
        self._call: Any = None
        self._running: defer.Deferred | None = None

    @property
    def clock(self) -> Any:
        if self._clock is None:
            from twisted.internet import reactor
            self._clock = reactor
        return self._clock

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
        if self._call is not None and self._call.active():
            self._call.cancel()
        return self._running
