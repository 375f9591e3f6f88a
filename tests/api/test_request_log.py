"""The request log: one twisted.logger event per request with method, path, status,
duration and principal, and never the body or the credentials."""
from __future__ import annotations

import io
from typing import Any

import pytest
from twisted.logger import LogLevel, formatEvent, globalLogPublisher, textFileLogObserver

from api_helpers import make_client
from helios import EmbeddedDatabase
from helios.api.auth import AuthMiddleware
from helios.api.requestlog import RequestLogObserver

KEY = "sk_writer_key_0123456789abcdef"
SECRET_VALUE = "very-private-payload-4711"


@pytest.fixture
def events() -> Any:
    seen: list[dict] = []
    observer = seen.append
    globalLogPublisher.addObserver(observer)
    yield seen
    globalLogPublisher.removeObserver(observer)


def _api_events(seen: list[dict]) -> list[dict]:
    return [e for e in seen if e.get("log_namespace") == "helios.api"]


def test_each_request_logs_one_line_with_its_principal(events: list[dict]) -> None:
    db = EmbeddedDatabase(":memory:")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, secret TEXT)")
    auth = AuthMiddleware("x" * 32).with_api_key(KEY, "alice", "acme", "cli", ["read", "write"], "writer")
    client, _ = make_client(db, auth=auth)
    r = client.post("/v1/branches/main/tables/t/data", json={"rows": [{"id": 1, "secret": SECRET_VALUE}]},
                    headers={"X-API-Key": KEY})
    assert r.status == 201
    r = client.post("/v1/branches/main/query", json={"sql": "SELECT * FROM t WHERE secret = $1",
                                                     "params": [SECRET_VALUE]}, headers={"X-API-Key": KEY})
    assert r.status == 200
    assert client.get("/v1/branches/main/tables/t/data").status == 401

    logged = _api_events(events)
    assert [(e["method"], e["path"], e["status"], e["who"]) for e in logged] == [
        ("POST", "/v1/branches/main/tables/t/data", 201, "alice@acme"),
        ("POST", "/v1/branches/main/query", 200, "alice@acme"),
        ("GET", "/v1/branches/main/tables/t/data", 401, "-"),
    ]
    for e in logged:
        text = formatEvent(e)
        assert isinstance(e["ms"], float) and e["ms"] >= 0
        assert text == f"{e['method']} {e['path']} {e['status']} {e['ms']}ms {e['who']}"
        assert SECRET_VALUE not in repr(e) and KEY not in repr(e)


def test_braces_in_a_path_are_logged_literally(events: list[dict]) -> None:
    client, _ = make_client()
    r = client.get("/v1/branches/{method}{0}/tables")
    (e,) = _api_events(events)
    assert formatEvent(e).startswith(f"GET /v1/branches/{{method}}{{0}}/tables {r.status} ")


def _twistd_text(event: dict) -> str:
    """What twistd's own text observer writes for an event."""
    out = io.StringIO()
    textFileLogObserver(out)(event)
    return out.getvalue()


def _observed(event: dict) -> str:
    out = io.StringIO()
    RequestLogObserver(out)(event)
    return out.getvalue()


def test_the_daemon_observer_writes_what_twistd_writes(events: list[dict]) -> None:
    client, _ = make_client()
    client.get("/v1/branches/{method}{0}/tables")
    client.get("/version")
    client.post("/v1/branches/main/query", json={"sql": "SELECT 1 AS one"})
    logged = _api_events(events)
    assert len(logged) == 3
    for e in logged:
        assert e["request_line"] == formatEvent(e)
        for when in (e["log_time"], 1_700_000_000.0, 1_700_000_000.999, None):
            event = {**e, "log_time": when}
            assert _observed(event) == _twistd_text(event)
    # Anything else goes to twistd's observer: other namespaces, levels, systems, failures.
    base = logged[0]
    for other in ({**base, "log_namespace": "elsewhere"}, {**base, "log_level": LogLevel.warn},
                  {**base, "log_system": "sys"}, {**base, "request_line": "POST /a\nb 200 1.0ms -",
                                                  "log_format": "POST /a\nb 200 1.0ms -"},
                  {"log_format": "hello {x}", "x": 1, "log_time": 1.5, "log_namespace": "n",
                   "log_level": LogLevel.info}):
        assert _observed(other) == _twistd_text(other)


def test_the_daemon_observer_formats_the_time_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    from helios.api import requestlog
    calls: list[float] = []
    real = requestlog.formatTime

    def counting(when: Any, *args: Any) -> str:
        calls.append(when)
        return real(when, *args)
    monkeypatch.setattr(requestlog, "formatTime", counting)
    observer = RequestLogObserver(io.StringIO())
    event = {"log_namespace": "helios.api", "log_level": LogLevel.info, "log_format": "GET / 200 1.0ms -",
             "request_line": "GET / 200 1.0ms -"}
    for t in (100.1, 100.5, 100.9, 101.0, 101.2):
        observer({**event, "log_time": t})
    assert calls == [100, 101]
