"""Shared helpers for the API tests: an API over an in-memory database, one error check."""
from __future__ import annotations

from typing import Any

from helios import EmbeddedDatabase
from helios.api.app import HeliosAPI
from helios.api.server import site_for
from http_memory import MemoryClient, Response


def make_client(db: EmbeddedDatabase | None = None, **api_options: Any) -> tuple[MemoryClient, HeliosAPI]:
    db = db or EmbeddedDatabase(":memory:")
    api = HeliosAPI(db, **api_options)
    return MemoryClient(site_for(api.resource(), api.max_body)), api


def assert_error(r: Response, status: int, error: str, message: str | None = None,
                 contains: str | None = None) -> dict:
    """Every error answer: the status, JSON content type and the canonical body."""
    assert r.status == status, (r.status, r.body)
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) <= {"status", "error", "message", "details"}, body
    assert body["status"] == status and body["error"] == error, body
    assert isinstance(body["message"], str) and body["message"]
    if message is not None:
        assert body["message"] == message, body["message"]
    if contains is not None:
        assert contains in body["message"], body["message"]
    assert "Traceback" not in r.body.decode("utf-8", "replace")
    return body
