"""Every route of the REST contract, rendered in memory through the real HTTP channel."""
from __future__ import annotations

import time

import pytest

from api_helpers import assert_error, make_client
from helios import EmbeddedDatabase, __version__

USERS = "/v1/branches/main/tables/users/data"


@pytest.fixture
def client():
    db = EmbeddedDatabase(":memory:")
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, created_at INT)")
    db.execute("INSERT INTO users VALUES (1, 'Alice', 30, 100), (2, 'Bob', 25, 200), (3, 'Carol', 41, 300)")
    c, _ = make_client(db)
    yield c
    db.close()


def test_health_and_version(client):
    r = client.get("/health")
    assert (r.status, r.body, r.headers["content-type"]) == (200, b"OK", "text/plain; charset=utf-8")
    r = client.get("/version")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"name": "HeliosDB Nano", "version": __version__, "api_version": "v1"}


def test_branch_lifecycle(client):
    r = client.post("/v1/branches", json={"name": "dev", "options": {"read_only": False}})
    assert r.status == 201
    b = r.json()
    assert b["name"] == "dev" and b["parent"] == "main" and b["state"] == "Active"
    assert b["stats"]["total_keys"] == 3 and b["stats"]["size_bytes"] > 0
    assert isinstance(b["created_at"], int) and isinstance(b["snapshot_id"], int) and len(b["id"]) == 36
    listing = client.get("/v1/branches").json()
    assert listing["total"] == 2 and [x["name"] for x in listing["branches"]] == ["main", "dev"]
    assert client.get("/v1/branches/dev").json()["id"] == b["id"]
    r = client.delete("/v1/branches/dev")
    assert (r.status, r.body) == (204, b"")
    assert_error(client.get("/v1/branches/dev"), 404, "NotFound", "branch 'dev' not found")


def test_branch_errors(client):
    assert_error(client.post("/v1/branches", json={"name": "bad name"}), 400, "BadRequest", contains="invalid branch name")
    assert_error(client.post("/v1/branches", json={"name": "x", "parent": "nope"}), 404, "NotFound")
    client.post("/v1/branches", json={"name": "dev"})
    assert_error(client.post("/v1/branches", json={"name": "dev"}), 409, "Conflict", "branch 'dev' already exists")
    assert_error(client.delete("/v1/branches/main"), 400, "BadRequest")
    client.post("/v1/branches", json={"name": "child", "parent": "dev"})
    assert_error(client.delete("/v1/branches/dev"), 400, "BadRequest", contains="child branches")
    assert_error(client.post("/v1/branches", json={"name": "y", "colour": "red"}), 400, "BadRequest",
                 contains="unknown field")


def test_read_only_branch_refuses_writes(client):
    client.post("/v1/branches", json={"name": "frozen", "options": {"read_only": True}})
    r = client.post("/v1/branches/frozen/execute", json={"sql": "DELETE FROM users"})
    assert_error(r, 422, "UnprocessableEntity", "branch 'frozen' is read-only")
    assert client.get("/v1/branches/frozen").json()["options"] == {"read_only": True, "isolated": False}


def test_merge_with_conflict_report(client):
    client.post("/v1/branches", json={"name": "feature"})
    client.post("/v1/branches/feature/execute", json={"sql": "UPDATE users SET name = 'Alice Smith' WHERE id = 1"})
    client.post("/v1/branches/main/execute", json={"sql": "UPDATE users SET name = 'Alice Johnson' WHERE id = 1"})
    client.post("/v1/branches/feature/execute", json={"sql": "INSERT INTO users VALUES (4, 'Dan', 50, 400)"})
    r = client.post("/v1/branches/feature/merge", json={"target": "main", "strategy": "Manual"})
    body = assert_error(r, 409, "Conflict")
    assert body["details"]["conflicts"][0]["key"] == "users:1"
    r = client.post("/v1/branches/feature/merge", json={"target": "main", "strategy": "Theirs"})
    assert r.status == 200
    m = r.json()
    assert m["completed"] is True and m["merged_keys"] == 2 and isinstance(m["merge_timestamp"], int)
    assert m["conflicts"] == [{"key": "users:1",
                               "source_value": {"id": 1, "name": "Alice Smith", "age": 30, "created_at": 100},
                               "target_value": {"id": 1, "name": "Alice Johnson", "age": 30, "created_at": 100},
                               "resolution": "Theirs",
                               "resolved_value": {"id": 1, "name": "Alice Smith", "age": 30, "created_at": 100}}]
    assert m["message"] == "Successfully merged 2 keys from 'feature' into 'main' with 1 conflict resolved"
    assert_error(client.post("/v1/branches/main/merge", json={"target": "main"}), 422, "UnprocessableEntity")
    assert_error(client.post("/v1/branches/ghost/merge", json={}), 404, "NotFound")


def test_tables_listing(client):
    r = client.get("/v1/branches/main/tables")
    assert r.status == 200
    (t,) = r.json()["tables"]
    assert t["name"] == "users" and t["row_count"] == 3 and t["size_bytes"] > 0
    assert abs(t["created_at"] - time.time()) < 60
    assert_error(client.get("/v1/branches/nope/tables"), 404, "NotFound")


def test_query_data_with_filter_order_and_pages(client):
    r = client.get(USERS, query={"filter": "age > 26", "order_by": "created_at DESC, id", "limit": 1, "page": 2,
                                 "columns": "id,name"})
    assert r.status == 200
    assert r.json() == {"columns": ["id", "name"], "rows": [{"id": 1, "name": "Alice"}], "total": 2,
                        "page": 2, "limit": 1, "has_more": False}
    r = client.get(USERS).json()
    assert (r["total"], r["page"], r["limit"], r["has_more"]) == (3, 1, 100, False)
    assert_error(client.get(USERS, query={"limit": 1001}), 400, "BadRequest", contains="at most 1000")
    assert_error(client.get("/v1/branches/main/tables/nope/data"), 404, "NotFound")


@pytest.mark.parametrize("bad", ["1=1; DROP TABLE users", "id = (SELECT max(id) FROM users)",
                                 "id IN (SELECT id FROM users)", "count(*) > 1", "id = $1", "name ="])
def test_filter_injection_is_refused_and_changes_nothing(client, bad):
    assert_error(client.get(USERS, query={"filter": bad}), 400, "BadRequest")
    assert_error(client.delete(USERS, json={"filter": bad}), 400, "BadRequest")
    assert client.get(USERS).json()["total"] == 3


def test_insert_update_delete_data(client):
    r = client.post(USERS, json={"rows": [{"id": 10, "name": "X", "age": 1}, {"id": 11, "name": "Y"}]})
    assert r.status == 201
    assert r.json()["inserted"] == 2 and r.json()["execution_time_ms"] >= 0
    r = client.put(USERS, json={"values": {"age": 99}, "filter": "id >= 10"})
    assert (r.status, r.json()["updated"]) == (200, 2)
    r = client.delete(USERS, json={"filter": "age = 99"})
    assert (r.status, r.json()["deleted"]) == (200, 2)
    assert_error(client.put(USERS, json={"values": {"age": 1}}), 400, "BadRequest", contains="filter is required")
    assert_error(client.delete(USERS, json={}), 400, "BadRequest", contains="filter is required")
    r = client.delete(USERS, json={"filter": "true"})
    assert r.json()["deleted"] == 3


@pytest.mark.parametrize("row,status,error", [
    ({"id": 20, "nope": 1, "name": "n"}, 422, "UnprocessableEntity"),     # unknown column
    ({"id": 1, "name": "dup"}, 409, "Conflict"),                          # duplicate key
    ({"id": 21}, 422, "UnprocessableEntity"),                             # NOT NULL
    ({"id": 22, "name": "n", "age": "old"}, 422, "UnprocessableEntity"),  # type mismatch
])
def test_batch_insert_is_atomic(client, row, status, error):
    r = client.post(USERS, json={"rows": [{"id": 30, "name": "ok"}, row]})
    assert_error(r, status, error)
    assert client.get(USERS, query={"filter": "id = 30"}).json()["total"] == 0


def test_sql_query_and_execute(client):
    r = client.post("/v1/branches/main/query", json={"sql": "SELECT id, name FROM users WHERE age > $1 ORDER BY id",
                                                      "params": [{"type": "int4", "value": 26}]})
    assert r.status == 200
    body = r.json()
    assert body["columns"] == ["id", "name"] and body["column_types"] == ["int4", "text"]
    assert body["rows"] == [{"id": 1, "name": "Alice"}, {"id": 3, "name": "Carol"}] and body["row_count"] == 2
    r = client.post("/v1/branches/main/query", json={"sql": "SELECT id, id FROM users WHERE id = 1"})
    assert r.json()["columns"] == ["id", "id_2"] and r.json()["rows"] == [{"id": 1, "id_2": 1}]
    r = client.post("/v1/branches/main/query", json={"sql": "SELECT id, name FROM users WHERE id = 2",
                                                      "row_format": "array"})
    assert r.json()["rows"] == [[2, "Bob"]]
    r = client.post("/v1/branches/main/execute", json={"sql": "INSERT INTO users VALUES ($1, $2, 5, 5)",
                                                        "params": [7, "Gus"]})
    assert r.status == 200
    assert {k: v for k, v in r.json().items() if k != "execution_time_ms"} == {
        "statement_type": "INSERT", "affected_rows": 1,
        "message": "INSERT statement executed successfully on branch 'main'"}
    r = client.post("/v1/branches/main/execute", json={"sql": "CREATE TABLE t (id INT PRIMARY KEY); "
                                                               "INSERT INTO t VALUES (1), (2)"})
    assert r.json()["statement_type"] == "INSERT" and r.json()["affected_rows"] == 2


def test_sql_errors(client):
    body = assert_error(client.post("/v1/branches/main/query", json={"sql": "SELEC 1"}), 400, "BadRequest")
    assert body["details"]["line"] == 1 and body["details"]["column"] == 1
    assert_error(client.post("/v1/branches/main/query", json={"sql": "DELETE FROM users"}), 400, "BadRequest")
    assert_error(client.post("/v1/branches/main/execute", json={"sql": "SELECT 1"}), 400, "BadRequest")
    assert_error(client.post("/v1/branches/main/query", json={"sql": "SELECT nope FROM users"}), 422,
                 "UnprocessableEntity", "no such column: nope")
    assert_error(client.post("/v1/branches/main/query", json={"sql": "SELECT $1", "params": [
        {"type": "int4", "value": 2 ** 40}]}), 400, "BadRequest")
    assert_error(client.post("/v1/branches/main/execute", json={"sql": "INSERT INTO users VALUES (1, 'a', 1, 1)"}),
                 409, "Conflict")
    assert_error(client.post("/v1/branches/nope/query", json={"sql": "SELECT 1"}), 404, "NotFound")


@pytest.mark.parametrize("body,contains", [
    (b"{not json", "malformed JSON"), (b"[1, 2]", "JSON object"), (b"", "JSON object"),
    (b'{"sql": 5}', "sql must be"), (b'{"sql": "SELECT 1", "params": {"a": 1}}', "params must be a list"),
    (b'{"sql": "SELECT 1", "timeout_ms": "soon"}', "timeout_ms"), (b'{"sql": "SELECT 1", "extra": 1}', "unknown field"),
    (b'{"a":' * 100 + b"1" + b"}" * 100, "JSON"),
])
def test_malformed_requests(client, body, contains):
    r = client.request("POST", "/v1/branches/main/query", body=body)
    assert_error(r, 400, "BadRequest", contains=contains)


def test_payload_too_large_is_refused_before_buffering():
    c, api = make_client(max_body=1024)
    r = c.request("POST", "/v1/branches/main/query", body=b"{" + b" " * 4000 + b"}")
    assert_error(r, 413, "PayloadTooLarge", contains="over the limit of 1024 bytes")
    r = c.raw(b"POST /v1/branches/main/query HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
    assert r.status == 413


def test_time_travel_in_all_three_forms(client):
    before = time.time()
    time.sleep(0.002)
    client.post("/v1/branches/main/execute", json={"sql": "DELETE FROM users WHERE id = 1"})
    q = {"sql": "SELECT count(*) AS n FROM users", "as_of": {"type": "timestamp", "value": before}}
    assert client.post("/v1/branches/main/query", json=q).json()["rows"] == [{"n": 3}]
    assert client.get(USERS, query={"as_of": before}).json()["total"] == 3
    assert client.get("/v1/branches/main/tables", query={"as_of": before}).json()["tables"][0]["row_count"] == 3
    sql = f"SELECT count(*) AS n FROM users AS OF SYSTEM TIME {before}"
    assert client.post("/v1/branches/main/query", json={"sql": sql}).json()["rows"] == [{"n": 3}]
    assert client.post("/v1/branches/main/query", json={"sql": "SELECT count(*) AS n FROM users"}).json()["rows"] == [{"n": 2}]
    assert_error(client.post("/v1/branches/main/query", json={"sql": "SELECT 1", "as_of": 5}), 400, "BadRequest")


def test_unknown_route_and_method(client):
    assert_error(client.get("/v1/nothing"), 404, "NotFound")
    assert_error(client.request("PATCH", "/v1/branches"), 405, "MethodNotAllowed")


def test_internal_errors_do_not_leak(client, monkeypatch):
    from helios import EmbeddedDatabase as E

    def boom(*a, **k):
        raise RuntimeError("secret internals")
    monkeypatch.setattr(E, "list_branches", boom)
    r = client.get("/v1/branches")
    body = assert_error(r, 500, "InternalServerError")
    assert "secret" not in body["message"] and r.headers["x-request-id"] in body["message"]


def test_metrics_in_prometheus_format(client):
    client.get("/v1/branches")
    client.post("/v1/branches/main/execute", json={"sql": "INSERT INTO users VALUES (9, 'M', 1, 1)"})
    r = client.get("/metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    assert 'helios_http_requests_total{method="GET",route="list_branches",status="200"} 1.0' in text
    assert 'helios_http_request_duration_seconds_bucket{le="0.001",route="execute"}' in text
    assert "helios_commits_total 3.0" in text          # CREATE TABLE, INSERT (fixture) and this INSERT
    assert 'helios_rows{branch="main"} 4.0' in text and "helios_branches 1.0" in text


@pytest.mark.parametrize("as_of", ["1e308", "inf", "nan", "-5"])
def test_impossible_moments_are_bad_requests(client, as_of):
    assert_error(client.get("/v1/branches/main/tables", query={"as_of": as_of}), 400, "BadRequest")
    assert_error(client.get(USERS, query={"as_of": as_of}), 400, "BadRequest")
    assert_error(client.post("/v1/branches", json={"name": "x", "snapshot_id": float(as_of)}), 400, "BadRequest")
    sql = f"SELECT 1 FROM users AS OF SYSTEM TIME {as_of}"
    assert_error(client.post("/v1/branches/main/query", json={"sql": sql}), 400, "BadRequest")


def test_method_not_allowed_names_the_allowed_methods(client):
    r = client.request("PATCH", "/v1/branches")
    assert_error(r, 405, "MethodNotAllowed")
    assert set(r.headers["allow"].split(", ")) >= {"GET", "POST"}


def test_readyz_reflects_recovery_and_storage_health():
    db = EmbeddedDatabase(":memory:")
    c, api = make_client(db)
    r = c.get("/readyz")
    assert (r.status, r.body) == (200, b"ready")
    api.ready = False
    assert c.get("/readyz").status == 503
    api.ready = True
    from helios.errors import StorageFailed
    db.store._failed = StorageFailed("disk gone")
    r = c.get("/readyz")
    assert (r.status, r.body) == (503, b"not ready")
    assert c.get("/health").status == 200                   # liveness is not readiness
