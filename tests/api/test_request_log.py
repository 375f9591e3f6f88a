"""The request log: one twisted.logger event per request with method, path, status,
duration and principal, and never the body or the credentials."""
from __future__ import annotations

from typing import Any

import pytest
from twisted.logger import formatEvent, globalLogPublisher

from api_helpers import make_client
from helios import EmbeddedDatabase
from helios.api.auth import AuthMiddleware

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
