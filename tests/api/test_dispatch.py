"""DispatchResource: cached routing and direct synchronous answers, with Klein's behaviour.

Every answer must be the one Klein's own resource gives (status, headers, body),
for hits, misses (404, 405), mounts under a prefix, HEAD and odd paths; and the
non-synchronous paths (Deferreds, exceptions, a client that leaves) must render,
cancel and log as Klein does.
"""
from __future__ import annotations

from typing import Any

import pytest
from klein import Klein
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web import resource

from api_helpers import make_client
from helios import EmbeddedDatabase
from helios.api import dispatch
from helios.api.app import HeliosAPI
from helios.api.dispatch import DispatchResource
from helios.api.server import site_for
from http_memory import MemoryClient, Response

VOLATILE = {"date", "x-request-id"}


def _same(a: Response, b: Response) -> None:
    assert a.status == b.status, (a, b)
    assert {k: v for k, v in a.headers.items() if k not in VOLATILE} == \
           {k: v for k, v in b.headers.items() if k not in VOLATILE}
    if a.headers.get("content-type") == "application/json" and a.body and b.body:
        da, db_ = a.json(), b.json()
        for d in (da, db_):
            if isinstance(d, dict):
                d.pop("execution_time_ms", None)
        assert da == db_
    else:
        assert a.body == b.body


def _pair(mount: bytes | None = None) -> tuple[MemoryClient, MemoryClient, HeliosAPI]:
    """The same API served through DispatchResource and through Klein's own resource."""
    db = EmbeddedDatabase(":memory:")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)")
    db.executemany("INSERT INTO t VALUES ($1, $2)", [(i, f"n{i}") for i in range(10)])
    api = HeliosAPI(db)

    def site(res: Any) -> Any:
        if mount is None:
            return site_for(res)
        root = resource.Resource()
        root.putChild(mount, res)
        return site_for(root)
    return MemoryClient(site(api.resource())), MemoryClient(site(api.app.resource())), api


REQUESTS = [
    ("GET", "/health", None), ("HEAD", "/health", None), ("GET", "/version", None),
    ("GET", "/v1/branches", None), ("GET", "/v1/branches/main", None), ("GET", "/v1/branches/ghost", None),
    ("POST", "/v1/branches/main/query", {"sql": "SELECT * FROM t WHERE id = $1", "params": [3]}),
    ("POST", "/v1/branches/main/query", {"sql": "SELECT nope FROM t"}),
    ("POST", "/v1/branches/main/query", {"bad": 1}),
    ("GET", "/v1/branches/main/tables/t/data?limit=3&order_by=id", None),
    ("GET", "/nowhere", None), ("DELETE", "/health", None), ("PATCH", "/v1/branches/main/query", None),
    ("GET", "/v1/branches/{x}/tables", None), ("GET", "/v1/branches/a%20b/tables", None),
    ("GET", "/v1/branches/", None), ("GET", "/health/", None), ("GET", "//health", None), ("GET", "/", None),
    ("GET", "//v1//branches", None),
    # writes: answered through the pool's Deferred (the default runner: an already-fired one)
    ("PUT", "/v1/branches/main/tables/t/data", {"values": {"name": "z"}, "filter": "id = 1"}),
    ("POST", "/v1/branches/main/tables/t/data", {"rows": "bad"}), ("DELETE", "/v1/branches/ghost", None),
]


@pytest.mark.parametrize("mount", [None, b"db"])
def test_answers_match_klein(mount: bytes | None) -> None:
    fast, klein, _ = _pair(mount)
    prefix = "" if mount is None else "/" + mount.decode()
    for _ in range(2):                          # the second round is served from the route cache
        for method, path, body in REQUESTS:
            a = fast.request(method, prefix + path, json=body)
            b = klein.request(method, prefix + path, json=body)
            _same(a, b)


def test_a_route_that_raises_gets_the_canonical_500(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, klein, api = _pair()

    def broken(*a: Any, **kw: Any) -> Any:
        raise RuntimeError("a bug")
    monkeypatch.setattr(api, "_serve", broken)
    for client in (fast, klein):
        r = client.get("/version")
        assert r.status == 500 and r.json()["error"] == "InternalServerError", r.body
        assert "a bug" not in r.body.decode()
    _same(fast.get("/version"), klein.get("/version"))


def test_non_utf8_path_is_klein_answer() -> None:
    fast, klein, _ = _pair()
    raw = b"GET /v1/branches/\xff/tables HTTP/1.1\r\nHost: localhost\r\n\r\n"
    _same(fast.raw(raw), klein.raw(raw))


def test_hits_are_cached_and_the_cache_restarts_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, _, api = _pair()
    res = fast.site.resource
    assert isinstance(res, DispatchResource)
    assert fast.get("/health").status == 200 and fast.get("/nowhere").status == 404
    assert set(res._routes) == {(b"GET", b"health")}         # misses are never cached
    monkeypatch.setattr(dispatch, "MAX_ROUTES", 2)
    for name in ("a", "b", "c"):
        fast.get(f"/v1/branches/{name}")
    assert len(res._routes) <= 2
    assert fast.get("/v1/branches/main").json()["name"] == "main"


# ---------------------------------------------------------------- routes of any shape
class Routes:
    app = Klein()

    def __init__(self) -> None:
        self.pending: defer.Deferred | None = None
        self.cancelled = False
        self.errors: list[Any] = []

    @app.route("/bytes")
    def as_bytes(self, request: Any) -> bytes:
        request.setHeader(b"x-kind", b"bytes")
        return b"raw"

    @app.route("/text")
    def as_text(self, request: Any) -> str:
        return "t\u00e9xt"

    @app.route("/later")
    def later(self, request: Any) -> defer.Deferred:
        return defer.succeed(b"done later")

    @app.route("/fails-later")
    def fails_later(self, request: Any) -> defer.Deferred:
        return defer.fail(KeyError("later"))

    @app.route("/raises")
    def raises(self, request: Any) -> bytes:
        raise ValueError("boom")

    @app.route("/none")
    def none(self, request: Any) -> None:
        return None

    @app.route("/pending")
    def wait(self, request: Any) -> defer.Deferred:
        def cancel(_: defer.Deferred) -> None:
            self.cancelled = True
        self.pending = defer.Deferred(cancel)
        return self.pending

    def on_error(self, request: Any, failure: Any) -> bytes:
        self.errors.append(failure.value)
        request.setResponseCode(500)
        return f"error: {type(failure.value).__name__}".encode()


def _client(routes: Routes) -> MemoryClient:
    return MemoryClient(site_for(DispatchResource(routes.app, routes.on_error)))


def test_every_kind_of_answer() -> None:
    routes = Routes()
    client = _client(routes)
    r = client.get("/bytes")
    assert (r.status, r.body, r.headers["x-kind"]) == (200, b"raw", "bytes")
    assert client.get("/text").body == "t\u00e9xt".encode()
    assert client.get("/later").body == b"done later"
    r = client.get("/fails-later")
    assert (r.status, r.body) == (500, b"error: KeyError")
    r = client.get("/raises")
    assert (r.status, r.body) == (500, b"error: ValueError")
    r = client.get("/none")                                   # not a rendering: an error, not an empty 200
    assert (r.status, r.body) == (500, b"error: TypeError")
    assert [type(e) for e in routes.errors] == [KeyError, ValueError, TypeError]


def test_a_client_that_leaves_cancels_the_pending_answer() -> None:
    routes = Routes()
    site = site_for(DispatchResource(routes.app, routes.on_error))
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 8080))
    channel.callLater = Clock().callLater
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
                                hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /pending HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert routes.pending is not None and transport.value() == b""
    channel.connectionLost(Failure(ConnectionDone()))
    assert routes.cancelled
    assert routes.errors == []                                # a cancel after the client left is not rendered
    assert transport.value() == b""
