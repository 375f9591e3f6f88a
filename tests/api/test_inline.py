"""Reads tried on the reactor under a budget, moved to the pool when they overrun it.

A point query answered inline must give exactly the pool's answer; a read that
overruns the budget is answered (correctly) by the pool and its shape goes
straight there next time; writes never run inline; ``timeout_ms`` still counts
the inline attempt.
"""
from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer

from api_helpers import assert_error, make_client
from helios import EmbeddedDatabase
from helios.api.app import CancelFlag, Ctx, Offload
from helios.errors import QueryTimeout

POINT = {"sql": "SELECT id, name FROM users WHERE id = $1", "params": [7]}
# 60^3 = 216k joined rows: far beyond a 1 ms budget on any machine, a fraction of a second in the pool.
SLOW = {"sql": "SELECT count(*) FROM n a, n b, n c"}


class CountingRunner:
    """The pool stand-in: runs work synchronously and counts the hand-offs."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, f: Any, *args: Any) -> defer.Deferred:
        self.calls += 1
        return defer.maybeDeferred(f, *args)


class CountingDb(EmbeddedDatabase):
    """Counts the executor runs behind /query (an inline attempt and its pool rerun are two)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.queries: list[int | None] = []

    def query(self, sql: str, params: Any = None, **kw: Any) -> Any:
        self.queries.append(kw.get("timeout_ms"))
        return super().query(sql, params, **kw)


@pytest.fixture
def db() -> CountingDb:
    db = CountingDb(":memory:")
    db.execute("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT)")
    db.executemany("INSERT INTO users VALUES ($1, $2)", [(i, f"u{i}") for i in range(100)])
    db.execute("CREATE TABLE n(x INT)")
    db.executemany("INSERT INTO n VALUES ($1)", [(i,) for i in range(60)])
    return db


def test_point_query_is_answered_on_the_reactor(db: CountingDb) -> None:
    runner = CountingRunner()
    client, _ = make_client(db, run=runner, inline_budget_ms=50)
    r = client.post("/v1/branches/main/query", json=POINT)
    assert r.status == 200, r.body
    body = r.json()
    assert body["rows"] == [{"id": 7, "name": "u7"}] and body["row_count"] == 1
    assert runner.calls == 0 and db.queries == [50]     # one run, capped at the budget


def test_inline_and_pool_answers_are_identical(db: CountingDb) -> None:
    inline, _ = make_client(db, run=CountingRunner(), inline_budget_ms=50)
    pooled, _ = make_client(db, run=CountingRunner(), inline_budget_ms=0)
    for request in (POINT, {"sql": "SELECT * FROM users WHERE id > $1 ORDER BY id DESC", "params": [90],
                            "row_format": "array"}):
        a = inline.post("/v1/branches/main/query", json=request).json()
        b = pooled.post("/v1/branches/main/query", json=request).json()
        a.pop("execution_time_ms"), b.pop("execution_time_ms")
        assert a == b


def test_budget_zero_sends_every_read_to_the_pool(db: CountingDb) -> None:
    runner = CountingRunner()
    client, _ = make_client(db, run=runner, inline_budget_ms=0)
    assert client.post("/v1/branches/main/query", json=POINT).status == 200
    assert client.get("/v1/branches/main/tables/users/data", query={"limit": "5"}).status == 200
    assert runner.calls == 2


def test_a_read_over_budget_moves_to_the_pool_and_stays_there(db: CountingDb) -> None:
    runner = CountingRunner()
    client, api = make_client(db, run=runner, inline_budget_ms=1)
    r = client.post("/v1/branches/main/query", json=SLOW)
    assert r.status == 200, r.body
    assert r.json()["rows"] == [{"count(*)": 60 ** 3}]
    assert runner.calls == 1 and len(db.queries) == 2   # the inline attempt, then the pool's run
    assert db.queries[0] == 1 and db.queries[1] > 29_000  # the pool gets the caller's time, less the attempt
    r = client.post("/v1/branches/main/query", json=SLOW)
    assert r.status == 200 and runner.calls == 2 and len(db.queries) == 3   # no second inline attempt
    assert client.post("/v1/branches/main/query", json=POINT).status == 200
    assert runner.calls == 2                            # other statements still run inline


def test_the_slow_memory_expires(db: CountingDb, monkeypatch: pytest.MonkeyPatch) -> None:
    import helios.api.app as app
    runner = CountingRunner()
    client, api = make_client(db, run=runner, inline_budget_ms=1)
    monkeypatch.setattr(app, "_SLOW_FOR_S", -1.0)       # remembered until before now: forgotten at once
    client.post("/v1/branches/main/query", json=SLOW)
    client.post("/v1/branches/main/query", json=SLOW)
    assert len(db.queries) == 4 and runner.calls == 2   # tried inline again each time


def test_a_timeout_under_the_budget_is_a_real_timeout(db: CountingDb) -> None:
    runner = CountingRunner()
    client, _ = make_client(db, run=runner, inline_budget_ms=5)
    r = client.post("/v1/branches/main/query", json={**SLOW, "timeout_ms": 3})
    assert_error(r, 408, "QueryTimeout")
    assert runner.calls == 0 and db.queries == [3]       # answered at once: no pool rerun


def test_a_timeout_after_offloading_is_still_408(db: CountingDb) -> None:
    client, _ = make_client(db, run=CountingRunner(), inline_budget_ms=1)
    r = client.post("/v1/branches/main/query", json={"sql": "SELECT count(*) FROM n a, n b, n c, n d",
                                                         "timeout_ms": 30})
    assert_error(r, 408, "QueryTimeout", "Query exceeded timeout of 30ms")   # the caller's figure
    assert len(db.queries) == 2 and db.queries[1] <= 29   # the rerun got what was left of 30 ms


def test_data_reads_run_inline_and_writes_never_do(db: CountingDb) -> None:
    runner = CountingRunner()
    client, _ = make_client(db, run=runner, inline_budget_ms=50)
    r = client.get("/v1/branches/main/tables/users/data", query={"filter": "id < 3", "order_by": "id"})
    assert r.status == 200 and [row["id"] for row in r.json()["rows"]] == [0, 1, 2]
    assert runner.calls == 0
    r = client.post("/v1/branches/main/tables/users/data", json={"rows": [{"id": 500, "name": "new"}]})
    assert r.status == 201 and runner.calls == 1
    r = client.post("/v1/branches/main/execute", json={"sql": "UPDATE users SET name = 'x' WHERE id = 500"})
    assert r.status == 200 and runner.calls == 2
    assert db.query("SELECT name FROM users WHERE id = 500").rows == [("x",)]


def test_errors_from_inline_reads_use_the_canonical_body(db: CountingDb) -> None:
    runner = CountingRunner()
    client, _ = make_client(db, run=runner, inline_budget_ms=50)
    assert_error(client.post("/v1/branches/main/query", json={"sql": "SELECT nope FROM users"}), 422,
                 "UnprocessableEntity", "no such column: nope")
    assert_error(client.post("/v1/branches/ghost/query", json=POINT), 404, "NotFound")
    assert runner.calls == 0


def test_long_statements_are_never_parsed_on_the_reactor(db: CountingDb) -> None:
    runner = CountingRunner()
    client, _ = make_client(db, run=runner, inline_budget_ms=50)
    long_sql = "SELECT id FROM users WHERE id = $1" + " " * 5000
    assert client.post("/v1/branches/main/query", json={"sql": long_sql, "params": [1]}).status == 200
    assert runner.calls == 1


def test_ctx_read_budget_arithmetic() -> None:
    ctx = Ctx(request=None)
    seen: list[int] = []

    def run(timeout: int) -> str:
        seen.append(timeout)
        raise QueryTimeout("too slow")

    with pytest.raises(QueryTimeout):                   # no budget: the caller's own timeout
        ctx.read(run, 100)
    ctx.budget_ms = 2
    with pytest.raises(Offload):                        # inline: capped, and overrunning it offloads
        ctx.read(run, 100)
    with pytest.raises(QueryTimeout):                   # the caller's timeout is within the budget
        ctx.read(run, 2)
    ctx.budget_ms, ctx.spent_ms = None, 2.6
    with pytest.raises(QueryTimeout):
        ctx.read(run, 100)
    assert seen == [100, 2, 2, 97]


def test_cancel_flag() -> None:
    flag = CancelFlag()
    assert not flag.is_set()
    flag.set()
    assert flag.is_set()


STALL_BUDGET = 200     # ms: the pool's rerun of a point query fits in it even on a loaded machine


class StallingDb(CountingDb):
    """The inline attempt overruns its budget without doing the work (as when the reactor
    thread is preempted, or waits for the GIL): the statement itself is fast."""

    def __init__(self, path: str, stalls: int) -> None:
        super().__init__(path)
        self.stalls = stalls

    def query(self, sql: str, params: Any = None, **kw: Any) -> Any:
        if self.stalls and kw.get("timeout_ms") == STALL_BUDGET:
            self.stalls -= 1
            self.queries.append(STALL_BUDGET)
            raise QueryTimeout.after(STALL_BUDGET)
        return super().query(sql, params, **kw)


def test_a_stall_on_the_reactor_does_not_exile_a_fast_statement() -> None:
    db = StallingDb(":memory:", stalls=1)
    db.execute("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO users VALUES (7, 'u7')")
    runner = CountingRunner()
    client, api = make_client(db, run=runner, inline_budget_ms=STALL_BUDGET)
    r = client.post("/v1/branches/main/query", json=POINT)
    assert r.status == 200 and r.json()["rows"] == [{"id": 7, "name": "u7"}]
    assert runner.calls == 1 and db.queries[0] == STALL_BUDGET   # overran inline, answered by the pool ...
    assert api._slow == {}                               # ... whose quick rerun cleared the shape
    r = client.post("/v1/branches/main/query", json=POINT)
    assert r.status == 200 and runner.calls == 1         # so the next one runs inline again
    assert db.queries[-1] == STALL_BUDGET
