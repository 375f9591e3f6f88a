"""``twistd helios``: command-line options and the service tree.

    MultiService
      ├─ DatabaseService      opens ./data/helios.db on start; checkpoints and closes on stop
      ├─ ThreadPoolService    the bounded pool queries and writes run in
      ├─ CheckpointService    a checkpoint every --checkpoint-interval seconds
      ├─ HistoryFreezeService keeps full GC pauses short (--gc-freeze / --gc-sweep seconds)
      └─ HTTP server          the API on --listen (a strports description)

Services start in that order and stop in reverse, so the port closes first,
work in flight finishes, and the database is checkpointed last.

When twistd logs to stdout (``-n``), the log observer is a ``RequestLogObserver``:
the same text, with each request's line written as it was built.
"""
from __future__ import annotations

import ipaddress
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from twisted.application import service, strports
from twisted.logger import ILogObserver, Logger
from twisted.python import usage
from twisted.python.components import Componentized
from twisted.python.threadpool import ThreadPool

from .api.app import DEFAULT_MAX_BODY, HeliosAPI
from .api.auth import AuthMiddleware
from .api.ratelimit import RateLimitConfig, RateLimitMiddleware
from .api.requestlog import RequestLogObserver
from .api.server import DEFAULT_THREADS, StartingResource, site_for
from .service import CheckpointService, DatabaseService, HistoryFreezeService
from .sql.parser import parse

log = Logger(namespace="helios.tap")
DB_NAME = "helios.db"


def default_listen(environ: Any = os.environ) -> str:
    host = environ.get("HELIOSDB_API_HOST", "127.0.0.1")
    port = environ.get("HELIOSDB_API_PORT", "8080")
    return f"tcp:{port}:interface={host}"


def _duration(text: str) -> float | None:
    """Seconds from '3600', '90m', '12h', '7d'; 'forever' means no limit."""
    if text.strip().lower() in ("forever", "none", "off", ""):
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise usage.UsageError(f"not a duration: {text!r} (use seconds, or 90m, 12h, 7d, forever)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _interface(listen: str) -> str:
    """The interface= of a strports description (colons inside it escaped as \\:)."""
    fields = [f.replace("\\:", ":") for f in re.split(r"(?<!\\):", listen)]
    for f in fields:
        if f.startswith("interface="):
            return f[len("interface="):]
    return "::" if fields and fields[0] == "tcp6" else "0.0.0.0"


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("Serve a HeliosDB Nano database over the REST API v1. "
                "Example: twistd -n helios --data ./data --listen tcp:8080:interface=127.0.0.1")
    optFlags = [
        ["no-auth", None, "Serve without authentication (refused unless --listen is a loopback interface)."],
    ]
    optParameters = [
        ["data", "d", "./data", "Directory holding the database, its log and the API key store."],
        ["listen", "l", None, "strports description to listen on "
                              "(default tcp:8080:interface=127.0.0.1, or HELIOSDB_API_HOST/HELIOSDB_API_PORT)."],
        ["rate-limit", None, None, "off | public | authenticated | MAX/WINDOW_SECS/BURST "
                                   "(default: authenticated(), or HELIOSDB_RATE_LIMIT_MAX_REQUESTS/_WINDOW_SECS)."],
        ["checkpoint-interval", None, "300", "Seconds between checkpoints (0 disables the timer)."],
        ["gc-freeze", None, "5", "Seconds between moves of everything alive out of the garbage collector's "
                                 "sight (history is immutable; 0: leave the collector at its defaults)."],
        ["gc-sweep", None, "3600", "Seconds between full collections of what was frozen (reclaims cycles "
                                   "that died after a freeze; 0: never)."],
        ["retention", None, "forever", "How long history stays readable: seconds, 90m, 12h, 7d or forever."],
        ["max-body", None, str(DEFAULT_MAX_BODY), "Largest request body accepted, in bytes."],
    ]

    def postOptions(self) -> None:
        if self["listen"] is None:
            self["listen"] = default_listen()
        if self["no-auth"] and not is_loopback(_interface(self["listen"])):
            raise usage.UsageError("--no-auth is only allowed on a loopback interface "
                                   "(add interface=127.0.0.1 to --listen)")
        try:
            self["checkpoint-interval"] = float(self["checkpoint-interval"])
            self["gc-freeze"] = float(self["gc-freeze"])
            self["gc-sweep"] = float(self["gc-sweep"])
            self["max-body"] = int(self["max-body"])
        except ValueError as exc:
            raise usage.UsageError(str(exc)) from None
        if min(self["checkpoint-interval"], self["gc-freeze"], self["gc-sweep"]) < 0 or self["max-body"] < 1:
            raise usage.UsageError("--checkpoint-interval, --gc-freeze and --gc-sweep must be >= 0 "
                                   "and --max-body >= 1")
        self["retention"] = _duration(self["retention"])
        text = self["rate-limit"]
        try:
            self["rate-limit-config"] = RateLimitConfig.from_env() if text is None else RateLimitConfig.parse(text)
        except ValueError as exc:
            raise usage.UsageError(f"--rate-limit: {exc}") from None


class HeliosService(service.MultiService):
    """The top of the tree. A shutdown asked for by SIGTERM/SIGINT that completes
    cleanly (checkpoint, close) exits 0: the stop was requested, not a crash. A second
    signal during that shutdown exits at once: the log already holds every
    acknowledged write, so only the checkpoint is skipped (recovery replays more).

    ``log_observer``, if set, becomes the application's log observer when twistd
    attaches this service (twistd's documented ``ILogObserver`` component, read
    when logging starts, after ``makeService``)."""

    log_observer: Any = None

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)
        if (self.log_observer is not None and isinstance(parent, Componentized)
                and parent.getComponent(ILogObserver, None) is None):
            parent.setComponent(ILogObserver, self.log_observer)

    def startService(self) -> None:
        from twisted.internet import reactor
        reactor.addSystemEventTrigger("before", "shutdown", self._arm_second_signal)
        reactor.addSystemEventTrigger("after", "shutdown", self._clean_exit, reactor)
        super().startService()

    @staticmethod
    def _arm_second_signal() -> None:
        def now(signum: int, frame: Any) -> None:
            os.write(2, b"helios: second signal, exiting now (the log holds every acknowledged write)\n")
            os._exit(128 + signum)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, now)

    def _clean_exit(self, reactor: Any) -> None:
        if not self.running and getattr(reactor, "_exitSignal", None) in (2, 15):
            reactor._exitSignal = None       # twistd would otherwise re-raise the signal on exit


class ThreadPoolService(service.Service):
    name = "threadpool"

    def __init__(self, size: int) -> None:
        self.pool = ThreadPool(minthreads=1, maxthreads=size, name="helios-query")

    def startService(self) -> None:
        super().startService()
        self.pool.start()

    def stopService(self) -> None:
        super().stopService()
        self.pool.stop()                   # waits for work in flight


def first_run_admin_key(auth: AuthMiddleware, listen: str, out: Any = None) -> str | None:
    """With no JWT secret and no key yet, create an admin key and log it, once
    (the log, not stdout: a daemonised twistd has no terminal)."""
    store = auth.key_store
    if auth.jwt_enabled or store is None or not store.is_empty():
        return None
    key = store.create("admin", ["admin"], description="created on first start")
    port = re.search(r"tcp:(\d+)", listen)
    url = f"http://127.0.0.1:{port.group(1) if port else 8080}"
    lines = ["HeliosDB Nano: created the first API key (admin). It is shown only this once; store it now.",
             f"  curl -H 'X-API-Key: {key}' {url}/v1/branches",
             key]
    for line in lines:
        if out is not None:
            print(line, file=out, flush=True)
        else:
            log.warn("{line}", line=line)
    return key


def logs_to_stdout(options: Options) -> bool:
    """Would twistd write its log to stdout? (``-n`` with no ``--logfile`` or ``--logfile -``,
    and neither ``--syslog`` nor ``--logger``: then the same text can come from a
    ``RequestLogObserver``; any other destination is left to twistd.)"""
    twistd = getattr(options, "parent", None)
    if twistd is None or not twistd.get("nodaemon") or twistd.get("syslog") or twistd.get("logger"):
        return False
    return twistd.get("logfile") in (None, "", "-")


def makeService(options: Options) -> service.MultiService:
    data = Path(options["data"])
    data.mkdir(parents=True, exist_ok=True)
    top = HeliosService()
    if logs_to_stdout(options):
        top.log_observer = RequestLogObserver(sys.stdout)   # the real stdout: twistd redirects it later
    site = site_for(StartingResource(), options["max-body"])
    auth = None if options["no-auth"] else AuthMiddleware.from_env_or_default(str(data))
    if auth is not None:
        first_run_admin_key(auth, options["listen"])
    config = options["rate-limit-config"]
    limiter = RateLimitMiddleware(config) if config is not None else None
    public = RateLimitMiddleware(RateLimitConfig.public()) if config is not None else None
    heavy = RateLimitMiddleware(RateLimitConfig.heavy_operations()) if config is not None else None
    pool = ThreadPoolService(DEFAULT_THREADS)

    def run(f: Any, *args: Any) -> Any:
        from twisted.internet import reactor
        from twisted.internet.threads import deferToThreadPool
        return deferToThreadPool(reactor, pool.pool, f, *args)

    def on_open(db: Any) -> None:
        parse("SELECT 1")                          # build the Lark parser now, not on the first request
        api = HeliosAPI(db, auth=auth, rate_limit=limiter, public_rate_limit=public, heavy_rate_limit=heavy,
                        run=run, max_body=options["max-body"])
        site.resource = api.resource()
        top.api = api  # type: ignore[attr-defined]

    database = DatabaseService(str(data / DB_NAME), retention=options["retention"], on_open=on_open)
    database.setServiceParent(top)
    pool.setServiceParent(top)
    if options["checkpoint-interval"]:
        CheckpointService(database, options["checkpoint-interval"]).setServiceParent(top)
    if options["gc-freeze"]:
        HistoryFreezeService(options["gc-freeze"], options["gc-sweep"]).setServiceParent(top)
    http = strports.service(options["listen"], site)
    http.setName("http")
    http.setServiceParent(top)
    return top
