"""Authentication, scopes and rate limiting through the HTTP layer (in memory, fake clock)."""
from __future__ import annotations

from uuid import UUID

import pytest
from twisted.internet.task import Clock

from api_helpers import assert_error, make_client
from helios import EmbeddedDatabase
from helios.api.auth import AuthMiddleware
from helios.api.ratelimit import RateLimitConfig, RateLimitMiddleware
from helios.sync.auth import JwtManager

SECRET = b"s" * 40
CLIENT = UUID("12345678-1234-5678-1234-567812345678")
KEYS = {"none": [], "read": ["read"], "write": ["write"], "sync": ["sync:read", "sync:write"], "admin": ["admin"]}


def _db() -> EmbeddedDatabase:
    db = EmbeddedDatabase(":memory:")
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO users VALUES (1, 'a')")
    return db


def _auth(clock=None) -> AuthMiddleware:
    auth = AuthMiddleware(SECRET, clock=clock) if clock is not None else AuthMiddleware(SECRET)
    for who, scopes in KEYS.items():
        if scopes:
            auth.with_api_key(f"sk_{who}_key_0123456789", f"user-{who}", "tenant", CLIENT, scopes, who)
    return auth


# (method, path, body, status for an authorised caller, scope needed: "read" | "write" | None = public)
ROUTES = [
    ("GET", "/health", None, 200, None),
    ("GET", "/version", None, 200, None),
    ("GET", "/v1/openapi.json", None, 200, None),
    ("GET", "/metrics", None, 200, "read"),
    ("GET", "/v1/branches", None, 200, "read"),
    ("GET", "/v1/branches/main", None, 200, "read"),
    ("GET", "/v1/branches/main/tables", None, 200, "read"),
    ("GET", "/v1/branches/main/tables/users/data", None, 200, "read"),
    ("POST", "/v1/branches/main/query", {"sql": "SELECT 1"}, 200, "read"),
    ("POST", "/v1/branches", {"name": "b1"}, 201, "write"),
    ("DELETE", "/v1/branches/gone", None, 404, "write"),
    ("POST", "/v1/branches/dev/merge", {"target": "main"}, 200, "write"),
    ("POST", "/v1/branches/main/tables/users/data", {"rows": [{"id": 99, "name": "z"}]}, 201, "write"),
    ("PUT", "/v1/branches/main/tables/users/data", {"values": {"name": "q"}, "filter": "id = 1"}, 200, "write"),
    ("DELETE", "/v1/branches/main/tables/users/data", {"filter": "id = 1"}, 200, "write"),
    ("POST", "/v1/branches/main/execute", {"sql": "INSERT INTO users VALUES (50, 'x')"}, 200, "write"),
]
ALLOWED = {"read": {"read", "sync", "admin"}, "write": {"write", "sync", "admin"}}


def test_every_route_is_in_the_matrix():
    from helios.api.app import HeliosAPI
    registered = {(m, r.rule) for r in HeliosAPI.app.url_map.iter_rules() for m in r.methods - {"HEAD", "OPTIONS"}}
    covered = {(m, p.replace("users", "<string:table>").replace("/main", "/<string:name>")
                .replace("/gone", "/<string:name>").replace("/dev/", "/<string:source>/"))
               for m, p, *_ in ROUTES}
    missing = {(m, r) for m, r in registered if r != "/readyz"} - covered
    assert not missing, missing


@pytest.mark.parametrize("who", ["anonymous", "bad", *KEYS])
@pytest.mark.parametrize("method,path,body,ok,need", ROUTES, ids=[f"{m} {p}" for m, p, *_ in ROUTES])
def test_principal_route_matrix(who, method, path, body, ok, need):
    db = _db()
    db.create_branch("dev")
    client, _ = make_client(db, auth=_auth())
    headers = {} if who == "anonymous" else {"X-API-Key": "sk_bad_key_000" if who == "bad" else
                                             f"sk_{who}_key_0123456789"}
    if who in KEYS and not KEYS[who]:
        headers = {"X-API-Key": "sk_unknown_0123456789"}      # a key with no scopes cannot exist: unknown
    r = client.request(method, path, json=body, headers=headers)
    if need is None:
        assert r.status == ok
    elif who in ("anonymous", "bad", "none"):
        assert_error(r, 401, "Unauthorized", "Missing or invalid authentication credentials")
    elif who in ALLOWED[need]:
        assert r.status == ok, r.body
    else:
        assert_error(r, 403, "Forbidden", contains=f"'{need}' scope")
    db.close()


def test_jwt_bearer_first_then_api_key():
    clock = Clock()
    clock.advance(1_700_000_000)
    db = _db()
    client, _ = make_client(db, auth=_auth(clock.seconds))
    token = JwtManager(SECRET, clock=clock.seconds).generate_token("jwt-user", "t1", CLIENT, ["read"], ttl=60)
    r = client.get("/v1/branches", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200
    clock.advance(60 + 31)                                       # past exp and the 30 s leeway
    assert_error(client.get("/v1/branches", headers={"Authorization": f"Bearer {token}"}), 401, "Unauthorized")
    r = client.get("/v1/branches", headers={"Authorization": f"Bearer {token}",
                                            "X-API-Key": "sk_read_key_0123456789"})
    assert r.status == 200                                       # expired JWT falls back to the key


def test_author_of_commits_is_the_principal():
    db = _db()
    client, _ = make_client(db, auth=_auth())
    client.post("/v1/branches/main/execute", json={"sql": "INSERT INTO users VALUES (7, 'w')"},
                headers={"X-API-Key": "sk_write_key_0123456789"})
    assert db.store.snapshot("main").commit.author == ("user-write", "tenant")


def test_rate_limit_headers_429_and_refill_with_fake_clock():
    clock = Clock()
    clock.advance(1000)
    limiter = RateLimitMiddleware(RateLimitConfig(60, 60, 3), clock=clock)
    client, _ = make_client(_db(), rate_limit=limiter)
    seen = [client.get("/v1/branches") for _ in range(4)]
    assert [r.status for r in seen] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in seen] == ["2", "1", "0", "0"]
    assert seen[0].headers["x-ratelimit-limit"] == "60"
    assert seen[0].headers["ratelimit-policy"] == "60;w=60;burst=3"
    assert seen[2].headers["x-ratelimit-reset"] == str(1000 + 3)    # full again in 3 s at 1 token/s
    body = assert_error(seen[3], 429, "TooManyRequests", "Rate limit exceeded")
    assert body == {"status": 429, "error": "TooManyRequests", "message": "Rate limit exceeded"}
    assert seen[3].headers["retry-after"] == "1"
    assert client.get("/health").status == 200                  # never limited
    clock.advance(1)
    assert client.get("/v1/branches").status == 200
    assert client.get("/v1/branches").status == 429


def test_public_limit_applies_to_anonymous_callers_by_ip():
    clock = Clock()
    auth = _auth()
    limiter = RateLimitMiddleware(RateLimitConfig.authenticated(), clock=clock)
    public = RateLimitMiddleware(RateLimitConfig(30, 60, 2), clock=clock)
    client, _ = make_client(_db(), auth=auth, rate_limit=limiter, public_rate_limit=public)
    assert [client.get("/version").status for _ in range(3)] == [200, 200, 429]
    other, _ = make_client(_db(), auth=auth, rate_limit=limiter, public_rate_limit=public)
    other.client_ip = "127.0.0.2"
    assert other.get("/version").status == 200                   # a different IP has its own bucket
    r = client.get("/v1/branches", headers={"X-API-Key": "sk_read_key_0123456789"})
    assert r.status == 200 and r.headers["x-ratelimit-limit"] == "100"


def test_merges_are_heavy_operations():
    clock = Clock()
    db = _db()
    for i in range(3):
        db.create_branch(f"b{i}")
    heavy = RateLimitMiddleware(RateLimitConfig.heavy_operations(), clock=clock)
    client, _ = make_client(db, rate_limit=RateLimitMiddleware(RateLimitConfig.authenticated(), clock=clock),
                            heavy_rate_limit=heavy)
    statuses = [client.post(f"/v1/branches/b{i}/merge", json={"target": "main"}).status for i in range(3)]
    assert statuses == [200, 200, 429]                            # burst 2


def test_big_queries_are_heavy_operations():
    clock = Clock()
    db = _db()
    heavy = RateLimitMiddleware(RateLimitConfig.heavy_operations(), clock=clock)
    client, _ = make_client(db, rate_limit=RateLimitMiddleware(RateLimitConfig(6000, 60, 100), clock=clock),
                            heavy_rate_limit=heavy)
    light = {"sql": "SELECT * FROM users LIMIT 10"}
    big = {"sql": "SELECT * FROM users LIMIT 5000"}
    joins = {"sql": "SELECT count(*) FROM users a, users b, users c, users d"}
    assert [client.post("/v1/branches/main/query", json=light).status for _ in range(5)] == [200] * 5
    assert [client.post("/v1/branches/main/query", json=q).status for q in (big, joins, big)] == [200, 200, 429]
    assert client.post("/v1/branches/main/query", json=light).status == 200
