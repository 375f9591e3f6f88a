"""A KleinResource that routes from a cache and answers synchronous renders directly.

Klein's own ``render`` builds a werkzeug adapter, matches the path and threads
every answer through two ``maybeDeferred`` and four callbacks, even when the
route returned its bytes at once (as ``HeliosAPI`` does for inline reads): on a
point query that machinery cost about a fifth of the server's CPU. Here:

- a successful match is a pure function of (method, path below the mount
  point) for this app (no host or subdomain rules), so it is cached;
  anything unusual (no route, wrong method, redirect, undecodable path) is left
  to Klein, which answers exactly as before;
- a route that returns bytes (or text) is written and finished at once;
- a Deferred gets Klein's treatment: cancelled when the client goes away, its
  failure rendered by the app's error handler, nothing written after the
  connection is gone;
- an exception goes to the same error handler Klein would call.

Routes of this resource must render bytes, text or a Deferred of those (every
``HeliosAPI`` route does); anything else is an error (500), not a silent change.
"""
from __future__ import annotations

from typing import Any, Callable

from klein import Klein
from klein.resource import KleinResource
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IRequest

log = Logger(namespace="helios.api")

MAX_ROUTES = 4096            # cached (method, path) matches; the cache restarts when full
Route = tuple[str, dict, int]  # (endpoint, its arguments from the path, the segments it consumes)


class DispatchResource(KleinResource):
    """``app``'s routes, with ``on_error(request, failure) -> bytes`` rendering any failure."""

    def __init__(self, app: Klein, on_error: Callable[[IRequest, Failure], bytes]) -> None:
        super().__init__(app)
        self._on_error = on_error
        self._routes: dict[tuple[bytes, bytes], Route] = {}

    def render(self, request: IRequest) -> Any:
        key = (request.method, b"/".join(request.postpath))
        route = self._routes.get(key)
        if route is None:
            route = self._match(*key)
            if route is None:
                return super().render(request)   # 404, 405, a redirect, a bad path: Klein's answer
        endpoint, kwargs, segments = route
        if segments:
            request.prepath.extend(request.postpath[:segments])
            request.postpath = request.postpath[segments:]
        try:
            result = self._app.execute_endpoint(endpoint, request, **kwargs)
        except Exception:  # noqa: BLE001 - rendered by the error handler, as Klein does
            result = defer.fail(Failure())
        if isinstance(result, str):
            result = result.encode("utf-8")
        if isinstance(result, bytes):
            request.write(result)
            if not request.finished:
                request.finish()
            return server.NOT_DONE_YET
        return self._later(request, result)

    def _match(self, method: bytes, path: bytes) -> Route | None:
        """Klein's match of this method and path, or None if it is anything but a plain hit."""
        try:
            path_info = (path if path.startswith(b"/") else b"/" + path).decode("utf-8")   # as Klein builds it
            adapter = self._app.url_map.bind("localhost", "", path_info=path_info,
                                             default_method=method.decode("utf-8"))
            rule, kwargs = adapter.match(return_rule=True)
        except Exception:  # noqa: BLE001 - NotFound, MethodNotAllowed, RequestRedirect, bad UTF-8
            return None
        segments = getattr(self._app.endpoints[rule.endpoint], "segment_count", 0)
        if len(self._routes) >= MAX_ROUTES:
            self._routes.clear()
        route = self._routes[method, path] = (rule.endpoint, kwargs, segments)
        return route

    def _later(self, request: IRequest, result: Any) -> Any:
        """A Deferred (or a failure): rendered when it fires, cancelled if the client leaves first."""
        gone = [False]
        request.notifyFinish().addBoth(lambda _: gone.__setitem__(0, True))
        d = result if isinstance(result, defer.Deferred) else defer.succeed(result)
        request.notifyFinish().addErrback(lambda _: d.cancel())

        def failed(failure: Failure) -> Any:
            if gone[0]:                            # nowhere to write: as Klein, log all but a cancel
                if not failure.check(defer.CancelledError):
                    log.failure("Unhandled Error Processing Request.", failure)
                return None
            return self._on_error(request, failure)

        def write(body: bytes | str | None) -> None:
            if gone[0]:
                return
            if body is not None:
                request.write(body.encode("utf-8") if isinstance(body, str) else body)
            request.finish()

        d.addCallback(check_rendered)
        d.addErrback(failed)
        d.addCallback(write)
        d.addErrback(lambda f: log.failure("Unhandled Error writing response", f))
        return server.NOT_DONE_YET


def check_rendered(body: Any) -> Any:
    """A route's (deferred) answer must be bytes or text: the error handler gets anything else."""
    if isinstance(body, (bytes, str)):
        return body
    raise TypeError(f"a route rendered {type(body).__name__}, not bytes")
