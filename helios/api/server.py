"""Serving the API: a twisted.web Site around ``HeliosAPI``, or its resource for mounting.

Blocking work (queries, writes with their fsync) runs in a bounded thread pool
so the reactor keeps answering (``/health`` included) while a long query runs.
Request bodies over the limit are refused with 413 as soon as their declared
length arrives, before anything is buffered.
"""
from __future__ import annotations

import io
from typing import Any

from twisted.internet import defer, endpoints
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.web import resource, server

from ..embedded import EmbeddedDatabase
from .app import DEFAULT_MAX_BODY, HeliosAPI

# Workers mostly wait (for fsync, in group commit) rather than compute, and every writer
# waiting in the pool's queue cannot join the current group commit: size for concurrency.
DEFAULT_THREADS = 16
from .render import dumps


class LimitedRequest(server.Request):
    """A request that refuses an oversized body before reading it (413)."""

    max_body = DEFAULT_MAX_BODY
    _refused = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self._refuse(length)
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.max_body:
            self._refuse(self._received)
            return
        super().handleContentChunk(data)

    def _refuse(self, size: int) -> None:
        self._refused = True
        self.content = io.BytesIO()
        body = dumps({"status": 413, "error": "PayloadTooLarge",
                      "message": f"request body of {size} bytes is over the limit of {self.max_body} bytes"})
        transport = self.channel.transport
        transport.write(b"HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\n"
                        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        transport.loseConnection()

    def allContentReceived(self) -> None:
        if self._refused:
            return
        super().allContentReceived()


class StartingResource(resource.Resource):
    """Answers 503 until the database is open (the daemon swaps in the API then)."""

    isLeaf = True

    def render(self, request: Any) -> bytes:
        request.setResponseCode(503)
        request.setHeader(b"content-type", b"application/json")
        return dumps({"status": 503, "error": "ServiceUnavailable", "message": "starting up: recovery in progress"})


def site_for(root: Any, max_body: int = DEFAULT_MAX_BODY) -> server.Site:
    factory = type("HeliosRequest", (LimitedRequest,), {"max_body": max_body})
    # The API reads JSON bodies itself: skip twisted.web's form parsing of POST bodies,
    # whose Content-Type parse alone measured ~45 us per request.
    site = server.Site(root, requestFactory=factory, parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    site.noisy = False
    site.log = lambda request: None        # HeliosAPI logs each request itself (with the principal)
    return site


class ApiServer:
    """``ApiServer(("127.0.0.1", 8080), db).with_auth(...).with_rate_limiting(...).serve()``."""

    def __init__(self, address: tuple[str, int] | str, db: EmbeddedDatabase, *, reactor: Any = None,
                 max_body: int = DEFAULT_MAX_BODY, threads: int | None = None) -> None:
        self.address = address
        self.db = db
        self.auth: Any = None
        self.rate_limit: Any = None
        self.public_rate_limit: Any = None
        self.heavy_rate_limit: Any = None
        self.max_body = max_body
        self.threads = threads or DEFAULT_THREADS
        self._reactor = reactor
        self._pool: ThreadPool | None = None
        self._api: HeliosAPI | None = None
        self._stopping: defer.Deferred | None = None
        self.port: Any = None

    # ------------------------------------------------------------------ configuration
    def with_auth(self, auth: Any) -> "ApiServer":
        self.auth = auth
        return self

    def with_rate_limiting(self, limiter: Any, *, public: Any = None, heavy: Any = None) -> "ApiServer":
        """``limiter`` for authenticated principals (and every caller when auth is off);
        ``public`` for anonymous callers by IP; ``heavy`` in addition for merges."""
        from .ratelimit import RateLimitConfig, RateLimitMiddleware
        self.rate_limit = limiter
        clock = getattr(limiter, "clock", None)
        kw = {"clock": clock} if clock is not None else {}
        self.public_rate_limit = public or RateLimitMiddleware(RateLimitConfig.public(), **kw)
        self.heavy_rate_limit = heavy or RateLimitMiddleware(RateLimitConfig.heavy_operations(), **kw)
        return self

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor
            self._reactor = reactor
        return self._reactor

    @property
    def api(self) -> HeliosAPI:
        if self._api is None:
            self._api = HeliosAPI(self.db, auth=self.auth, rate_limit=self.rate_limit,
                                  public_rate_limit=self.public_rate_limit,
                                  heavy_rate_limit=self.heavy_rate_limit, run=self._run_in_pool,
                                  max_body=self.max_body)
        return self._api

    def _run_in_pool(self, f: Any, *args: Any) -> defer.Deferred:
        if self._pool is None:
            self._pool = ThreadPool(minthreads=1, maxthreads=self.threads, name="helios-query")
            self._pool.start()
            self.reactor.addSystemEventTrigger("during", "shutdown", self._stop_pool)
        return deferToThreadPool(self.reactor, self._pool, f, *args)

    def _stop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()

    def resource(self) -> Any:
        """The API as an IResource, to mount in an existing site (``root.putChild(b"db", ...)``)."""
        return self.api.resource()

    def site(self) -> server.Site:
        return site_for(self.resource(), self.max_body)

    def endpoint_description(self) -> str:
        if isinstance(self.address, str):
            return self.address
        host, port = self.address
        return f"tcp:{port}:interface={host}"

    # ------------------------------------------------------------------ running
    def listen(self, reactor: Any = None) -> defer.Deferred:
        """Start listening; the Deferred fires with the listening port."""
        if reactor is not None:
            self._reactor = reactor
        ep = endpoints.serverFromString(self.reactor, self.endpoint_description())
        d = ep.listen(self.site())

        def keep(port: Any) -> Any:
            self.port = port
            return port
        return d.addCallback(keep)

    def stop(self) -> defer.Deferred:
        """Stop listening, let work in flight finish, then checkpoint and close the database.
        Safe to call more than once (every call gets the same outcome)."""
        if self._stopping is None:
            d = defer.maybeDeferred(self.port.stopListening) if self.port is not None else defer.succeed(None)

            def close(_: Any) -> None:
                self._stop_pool()                       # joins the workers: in-flight queries finish
                self.db.close()
            self._stopping = d.addCallback(close)
        result: defer.Deferred = defer.Deferred()
        self._stopping.addBoth(lambda r: (result.callback(None), r)[1])
        return result

    def serve(self) -> None:
        """Run the reactor until SIGINT/SIGTERM, then stop cleanly."""
        self.serve_with_shutdown(defer.Deferred())

    def serve_with_shutdown(self, shutdown: defer.Deferred) -> None:
        """Run the reactor until ``shutdown`` fires (or SIGINT/SIGTERM arrives), then stop
        cleanly: the reactor's shutdown waits for ``stop()`` (checkpoint, close)."""
        reactor = self.reactor
        self.listen().addErrback(lambda f: (f.printTraceback(), reactor.stop()))
        shutdown.addCallback(lambda _: reactor.stop() if reactor.running else None)
        reactor.addSystemEventTrigger("before", "shutdown", self.stop)
        reactor.run()
