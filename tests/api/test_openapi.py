"""The OpenAPI document against the server it describes.

Three promises: the document is valid OpenAPI 3.1; it lists exactly the routes
and methods the Klein app registers; and real answers (success and error) of a
realistic session validate against the schema documented for their (path,
method, status), an undocumented status failing the test.
"""
from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import pytest
from jsonschema import Draft202012Validator, ValidationError
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from api_helpers import make_client
from helios import EmbeddedDatabase, __version__
from helios.api.app import HeliosAPI
from helios.api.auth import AuthMiddleware
from helios.api.openapi import document
from helios.api.ratelimit import RateLimitConfig, RateLimitMiddleware
from http_memory import MemoryClient, Response

DOC = document()
BASE = "urn:helios:openapi"
REGISTRY = Registry().with_resource(BASE, Resource.from_contents(DOC, default_specification=DRAFT202012))
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
ROUTES = HeliosAPI.app.url_map.bind("localhost")
MAIN = "/v1/branches/main"
USERS = f"{MAIN}/tables/users/data"
KEY_RW, KEY_RO = "sk_test_rw_0123456789", "sk_test_ro_0123456789"


def _template(rule: str) -> str:
    """werkzeug's ``/v1/branches/<string:name>`` as OpenAPI's ``/v1/branches/{name}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _resolve(ref: str) -> Any:
    node: Any = DOC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _validate(pointer: str, instance: Any) -> None:
    """Validate against the schema at ``pointer`` (a JSON pointer into the document), refs resolved."""
    Draft202012Validator({"$ref": BASE + pointer}, registry=REGISTRY).validate(instance)


class Checked(MemoryClient):
    """A client whose every answer must be one the document promises for the routed operation."""

    def __init__(self, client: MemoryClient | None) -> None:
        super().__init__(client.site if client else None, client.client_ip if client else "127.0.0.1")
        self.seen: set[tuple[str, str, int]] = set()

    def request(self, method: str, path: str, **kw: Any) -> Response:
        r = super().request(method, path, **kw)
        self.check(method, path, r)
        return r

    def check(self, method: str, path: str, r: Response) -> None:
        rule, _ = ROUTES.match(urlsplit(path).path, method=method, return_rule=True)
        template, verb = _template(rule.rule), method.lower()
        op = DOC["paths"][template].get(verb)
        assert op is not None, f"{method} {template} is served but not documented"
        assert str(r.status) in op["responses"], \
            f"{method} {template} answered {r.status}, which the document does not list: {r.body[:300]!r}"
        pointer = f"#/paths/{_escape(template)}/{verb}/responses/{r.status}"
        response = op["responses"][str(r.status)]
        if "$ref" in response:
            pointer, response = response["$ref"], _resolve(response["$ref"])
        content = response.get("content")
        if content is None:
            assert r.body == b"", (method, path, r.status, r.body)
        else:
            media = r.headers.get("content-type", "").split(";")[0].strip()
            assert media in content, f"{method} {template} {r.status}: {media!r} is not one of {sorted(content)}"
            body = r.json() if media == "application/json" else r.body.decode()
            _validate(f"{pointer}/content/{_escape(media)}/schema", body)
        for name, header in response.get("headers", {}).items():
            header_pointer = header.get("$ref", f"{pointer}/headers/{_escape(name)}")
            header = _resolve(header_pointer)
            value = r.headers.get(name.lower())
            assert value is not None or not header.get("required"), f"{method} {template}: {name} missing"
            if value is not None:
                typed = int(value) if header["schema"].get("type") == "integer" else value
                _validate(f"{header_pointer}/schema", typed)
        self.seen.add((template, verb, r.status))


def _success(op: dict) -> int:
    return min(int(s) for s in op["responses"] if s.startswith("2"))


def _operations() -> list[tuple[str, str, dict]]:
    return [(path, verb, op) for path, item in DOC["paths"].items()
            for verb, op in item.items() if verb in HTTP_METHODS]


def _schemas(node: Any) -> list[dict]:
    """Every Schema Object in the document: components and each inline ``schema``."""
    found = list(DOC["components"]["schemas"].values()) if node is DOC else []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" and isinstance(value, dict):
                found.append(value)
            elif key != "schemas":
                found += _schemas(value)
    elif isinstance(node, list):
        for value in node:
            found += _schemas(value)
    return found


# ---------------------------------------------------------------------- the document itself
def test_document_is_valid_openapi_31():
    validate_openapi(DOC)
    assert DOC["openapi"] == "3.1.0"
    assert DOC["info"]["title"] == "HeliosDB Nano" and DOC["info"]["version"] == __version__
    assert DOC["servers"] == [{"url": "/"}]
    assert set(DOC["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyAuth"}
    schemas = _schemas(DOC)
    assert len(schemas) > 40
    for schema in schemas:
        Draft202012Validator.check_schema(schema)
    ids = [op["operationId"] for _, _, op in _operations()]
    assert len(ids) == len(set(ids))
    assert document() is DOC                       # built once


def test_every_error_uses_the_canonical_body():
    for path, verb, op in _operations():
        for status, response in op["responses"].items():
            if int(status) >= 400 and path not in ("/readyz",):
                assert response["$ref"].startswith("#/components/responses/"), (path, verb, status)
    for name, response in DOC["components"]["responses"].items():
        schema = response["content"]["application/json"]["schema"]
        assert schema["allOf"] == [{"$ref": "#/components/schemas/Error"}], name
    _validate("#/components/schemas/Error", {"status": 409, "error": "Conflict", "message": "m", "details": {}})
    with pytest.raises(ValidationError):
        _validate("#/components/schemas/Error", {"status": 409, "error": "Conflict", "message": "m", "trace": "x"})


def _walk(node: Any, pointer: str = "#") -> Any:
    """(JSON pointer, object) for every object in the document."""
    if isinstance(node, dict):
        yield pointer, node
        for key, value in node.items():
            yield from _walk(value, f"{pointer}/{_escape(key)}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{pointer}/{i}")


def test_every_example_fits_its_schema():
    checked = 0
    for pointer, node in _walk(DOC):
        if isinstance(node.get("examples"), list) and "/examples/" not in pointer:
            for example in node["examples"]:
                _validate(pointer, example)
                checked += 1
        if "in" in node and "example" in node:
            _validate(f"{pointer}/schema", node["example"])
            checked += 1
    assert checked >= 20


# ---------------------------------------------------------------------- routes
def test_document_and_klein_app_have_the_same_routes_and_methods():
    served: dict[str, set[str]] = {}
    arguments: dict[str, set[str]] = {}
    for rule in HeliosAPI.app.url_map.iter_rules():
        path = _template(rule.rule)
        served.setdefault(path, set()).update(m.lower() for m in rule.methods)
        arguments[path] = set(rule.arguments)
    documented = {path: {m for m in item if m in HTTP_METHODS} for path, item in DOC["paths"].items()}
    assert set(served) == set(documented)
    for path, methods in served.items():
        # werkzeug answers HEAD wherever GET is routed; the document lists HEAD where a route declares it.
        assert methods - {"head"} == documented[path] - {"head"}, path
        assert documented[path] <= methods, path
        declared = {p["name"] for p in DOC["paths"][path].get("parameters", []) if p["in"] == "path"}
        assert declared == arguments[path], path


def test_served_document_is_this_document():
    c, _ = make_client()
    r = c.get("/v1/openapi.json")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == DOC


# ---------------------------------------------------------------------- real answers
def test_the_checker_refuses_what_the_document_does_not_promise():
    c = Checked(None)
    with pytest.raises(AssertionError, match="does not list"):
        c.check("GET", "/v1/branches", Response(418, {"content-type": "application/json"}, b"{}"))
    with pytest.raises(ValidationError):
        c.check("GET", "/v1/branches", Response(200, {"content-type": "application/json"}, b'{"total": 1}'))
    with pytest.raises(ValidationError):
        c.check("GET", "/v1/branches/x", Response(404, {"content-type": "application/json"},
                                                    b'{"status": 400, "error": "NotFound", "message": "m"}'))
    with pytest.raises(AssertionError, match="not one of"):
        c.check("GET", "/version", Response(200, {"content-type": "text/html"}, b"<p>"))


def test_a_realistic_session_conforms():
    db = EmbeddedDatabase(":memory:")
    c = Checked(make_client(db)[0])

    assert c.get("/health").body == b"OK"
    assert c.request("HEAD", "/health").status == 200
    assert c.get("/readyz").body == b"ready"
    assert c.get("/version").json()["version"] == __version__
    assert c.get("/v1/openapi.json").json()["openapi"] == "3.1.0"

    sql = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, created_at INT)"
    assert c.post(f"{MAIN}/execute", json={"sql": sql}).json()["statement_type"] == "CREATE_TABLE"
    rows = [{"id": i, "name": n, "age": a, "created_at": 100 * i}
            for i, n, a in [(1, "Alice", 30), (2, "Bob", 25), (3, "Carol", 41)]]
    assert c.post(USERS, json={"rows": rows}).json()["inserted"] == 3
    t_inserted = time.time()
    assert c.post(USERS, json={"rows": [rows[0]]}).status == 409                   # duplicate key
    assert c.post(USERS, json={"rows": [{"id": 9, "colour": "red"}]}).status == 422
    assert c.post(USERS, json={"rows": [{"id": 9}]}).status == 422                  # NOT NULL
    assert c.post(f"{MAIN}/tables/ghosts/data", json={"rows": [{"id": 1}]}).status == 404
    assert c.post(USERS, json={"rows": []}).status == 400
    assert c.post(USERS, body=b'{"rows": [').status == 400
    assert c.post(USERS, json={"rows": rows, "extra": 1}).status == 400
    assert c.post(USERS, json={"rows": [{"id": 9, "name": {"nested": 1}}]}).status == 400

    page = c.get(USERS, query={"filter": "age > 20", "columns": "id,name", "order_by": "age DESC, id",
                               "page": 1, "limit": 2}).json()
    assert page["rows"] == [{"id": 3, "name": "Carol"}, {"id": 1, "name": "Alice"}] and page["has_more"]
    assert c.get(USERS, query={"as_of": t_inserted}).json()["total"] == 3
    assert c.get(USERS, query={"filter": "1=1; DROP TABLE users"}).status == 400
    assert c.get(USERS, query={"filter": "nope = 1"}).status == 422
    assert c.get(USERS, query={"limit": 5000}).status == 400
    assert c.get(f"{MAIN}/tables/ghosts/data").status == 404
    assert c.get(f"{MAIN}/tables").json()["tables"][0]["name"] == "users"
    assert c.get(f"{MAIN}/tables", query={"as_of": "soon"}).status == 400
    assert c.get("/v1/branches/ghost/tables").status == 404

    assert c.put(USERS, json={"values": {"age": 31}, "filter": "id = 1"}).json()["updated"] == 1
    assert c.put(USERS, json={"values": {"id": 2}, "filter": "id = 1"}).status == 409
    assert c.put(USERS, json={"values": {"age": "old"}, "filter": "id = 1"}).status in (400, 422)
    assert c.put(USERS, json={"values": {"age": 1}}).status == 400
    assert c.delete(USERS, json={"filter": "id = 3"}).json()["deleted"] == 1
    assert c.delete(USERS, json={}).status == 400

    q = f"{MAIN}/query"
    r = c.post(q, json={"sql": "SELECT id, name FROM users WHERE age > $1 ORDER BY id",
                        "params": [{"type": "int4", "value": 20}]}).json()
    assert r["rows"] == [{"id": 1, "name": "Alice"}, {"id": 2, "name": "Bob"}]
    r = c.post(q, json={"sql": "SELECT id, id FROM users ORDER BY id", "row_format": "array"}).json()
    assert r["rows"][0] == [1, 1]
    assert c.post(q, json={"sql": "SELECT count(*) AS n FROM users",
                           "as_of": {"type": "timestamp", "value": t_inserted}}).json()["rows"] == [{"n": 3}]
    syntax = c.post(q, json={"sql": "SELEC 1"})
    assert syntax.status == 400 and syntax.json()["details"]["line"] == 1
    assert c.post(q, json={"sql": "SELECT * FROM ghosts"}).status == 422
    assert c.post(q, json={"sql": "DELETE FROM users"}).status == 400
    assert c.post(q, json={"sql": "SELECT $1", "params": [{"type": "int4", "value": 2 ** 40}]}).status == 400
    assert c.post(q, json={"sql": "SELECT 1", "timeout_ms": 0}).status == 400
    assert c.post(q, json={"sql": "SELECT * FROM users a RIGHT JOIN users b ON a.id = b.id"}).status == 501
    assert c.post(f"{MAIN}/execute", json={"sql": "INSERT INTO users VALUES (1, 'x', 1, 1)"}).status == 409
    assert c.post(f"{MAIN}/execute", json={"sql": "SELECT 1"}).status == 400
    assert c.post("/v1/branches/ghost/execute", json={"sql": "DELETE FROM users"}).status == 404

    dev = c.post("/v1/branches", json={"name": "dev"}).json()
    assert dev["parent"] == "main" and dev["stats"]["total_keys"] == 2
    assert c.post("/v1/branches", json={"name": "dev"}).status == 409
    assert c.post("/v1/branches", json={"name": "bad name"}).status == 400
    assert c.post("/v1/branches", json={"name": "x", "parent": "ghost"}).status == 404
    assert c.post("/v1/branches", json={"name": "x", "options": {"read_only": "yes"}}).status == 400
    assert c.get("/v1/branches").json()["total"] == 2
    assert c.get("/v1/branches/dev").json()["id"] == dev["id"]
    assert c.get("/v1/branches/ghost").status == 404
    c.post("/v1/branches/dev/execute", json={"sql": "UPDATE users SET name = 'Alice Smith' WHERE id = 1"})
    c.post(f"{MAIN}/execute", json={"sql": "UPDATE users SET name = 'Alice Johnson' WHERE id = 1"})
    manual = c.post("/v1/branches/dev/merge", json={"target": "main", "strategy": "Manual"})
    assert manual.status == 409 and manual.json()["details"]["conflicts"][0]["key"] == "users:1"
    merged = c.post("/v1/branches/dev/merge", json={"target": "main", "strategy": "Theirs"}).json()
    assert merged["completed"] and merged["conflicts"][0]["resolution"] == "Theirs"
    assert c.post("/v1/branches/main/merge", json={"target": "main"}).status == 422
    assert c.post("/v1/branches/ghost/merge").status == 404
    assert c.post("/v1/branches/dev/merge", json={"strategy": "Sideways"}).status == 400
    frozen = c.post("/v1/branches", json={"name": "frozen", "options": {"read_only": True}}).json()
    assert frozen["options"] == {"read_only": True, "isolated": False}
    assert c.post("/v1/branches/frozen/execute", json={"sql": "DELETE FROM users"}).status == 422
    assert c.delete("/v1/branches/main").status == 400
    assert c.delete("/v1/branches/dev").status == 204
    assert c.delete("/v1/branches/dev").status == 404
    db.close()

    successes = {(path, verb, _success(op)) for path, verb, op in _operations() if path != "/metrics"}
    assert successes - c.seen == set()
    assert {status for _, _, status in c.seen if status >= 400} == {400, 404, 409, 422, 501}


def test_auth_rate_limit_and_metrics_answers_conform():
    auth = (AuthMiddleware(None)
            .with_api_key(KEY_RW, "u1", "t1", UUID(int=1), ["read", "write"], "rw")
            .with_api_key(KEY_RO, "u2", "t1", UUID(int=2), ["read"], "ro"))
    frozen = lambda: 1_700_000_000.0                       # noqa: E731 - no refill during the test
    db = EmbeddedDatabase(":memory:")
    c = Checked(make_client(db, auth=auth, rate_limit=RateLimitMiddleware(RateLimitConfig(60, 60, 4), clock=frozen),
                            public_rate_limit=RateLimitMiddleware(RateLimitConfig(60, 60, 4), clock=frozen))[0])
    rw, ro = {"X-API-Key": KEY_RW}, {"X-API-Key": KEY_RO}

    assert c.get("/v1/branches").status == 401
    assert c.get("/v1/branches", headers={"X-API-Key": "sk_wrong"}).status == 401
    r = c.get("/v1/branches", headers=ro)
    assert r.status == 200 and r.headers["x-ratelimit-limit"] == "60" and "ratelimit-policy" in r.headers
    assert c.post(f"{MAIN}/execute", json={"sql": "CREATE TABLE t (id INT PRIMARY KEY)"}, headers=ro).status == 403
    assert c.get("/metrics", headers=rw).body.startswith(b"# HELP")
    statuses = [c.get("/v1/branches", headers=rw).status for _ in range(5)]
    assert statuses[-1] == 429 and 200 in statuses
    public = [c.get("/version") for _ in range(3)]         # the two failed logins above used 2 of 4
    assert [r.status for r in public] == [200, 200, 429] and int(public[-1].headers["retry-after"]) >= 1
    assert c.get("/health").status == 200                  # probes are never limited
    db.close()
    assert {status for _, _, status in c.seen} == {200, 401, 403, 429}


def test_oversized_body_not_ready_and_expired_history_conform(tmp_path):
    class Clock:
        t = 1_700_000_000.0

        def __call__(self) -> float:
            return self.t

    clock = Clock()
    db = EmbeddedDatabase(str(tmp_path / "db"), retention=60, clock=clock)
    client, api = make_client(db, max_body=256)
    c = Checked(client)
    c.post(f"{MAIN}/execute", json={"sql": "CREATE TABLE t (id INT PRIMARY KEY)"})
    created = clock.t
    clock.t += 100
    c.post(f"{MAIN}/execute", json={"sql": "INSERT INTO t VALUES (1)"})
    db.checkpoint()                                        # prunes history older than 60 s
    assert c.get(f"{MAIN}/tables", query={"as_of": created}).status == 410
    assert c.get(f"{MAIN}/tables/t/data", query={"as_of": created}).status == 410
    assert c.post(f"{MAIN}/query", json={"sql": "SELECT * FROM t",
                                         "as_of": {"type": "timestamp", "value": created}}).status == 410
    assert c.post("/v1/branches", json={"name": "old", "snapshot_id": created}).status == 410
    big = {"rows": [{"id": i} for i in range(100)]}
    assert c.post(f"{MAIN}/tables/t/data", json=big).status == 413
    api.ready = False
    assert c.get("/readyz").status == 503
    db.close()
    assert {status for _, _, status in c.seen} == {200, 410, 413, 503}


def test_query_timeout_conforms():
    db = EmbeddedDatabase(":memory:")
    db.execute("CREATE TABLE n (i INT PRIMARY KEY)")
    db.executemany("INSERT INTO n VALUES ($1)", [[i] for i in range(200)])
    c = Checked(make_client(db)[0])
    r = c.post(f"{MAIN}/query", json={"sql": "SELECT count(*) FROM n a, n b, n c", "timeout_ms": 50})
    assert r.json() == {"status": 408, "error": "QueryTimeout", "message": "Query exceeded timeout of 50ms"}
    db.close()
