"""Routes of the REST API v1 (``../shared/API.md``).

Each route only parses the request, calls ``EmbeddedDatabase`` and renders
JSON. The common path lives in ``_serve``: authenticate, rate-limit, check the
scope, run the work off the reactor thread (a bounded pool; the executor's
deadline enforces ``timeout_ms``), then render the result or the one canonical
error body. Exceptions become responses in exactly one place (``_error``),
through the status and error name each ``HeliosError`` carries.

Reads first try to answer on the reactor itself, under a small budget
(``inline_budget_ms``, default 2 ms) enforced by the executor's own deadline: a
point query costs tens of microseconds, while the hop to a pool thread and back
costs more than the query. A read that runs out of budget is run again in the
pool (a read-only statement is safe to repeat) with what is left of its
``timeout_ms``, and its text is remembered so the next one goes straight there -
unless that rerun fits in the budget: then the reactor thread was preempted (or
waited for the GIL), which says nothing about the statement, and on a busy
machine one such stall would send every point query to the pool for ``_SLOW_FOR_S``.
The reactor is never held for more than the budget, so ``/health`` stays prompt.
"""
from __future__ import annotations

import itertools
import time
from typing import Any, Callable

from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from .. import __version__
from ..embedded import EmbeddedDatabase
from ..errors import (BadRequest, HeliosError, PayloadTooLarge, QueryCancelled, QueryTimeout, TooManyRequests,
                      Unauthorized)
from .dispatch import DispatchResource
from .metrics import ApiMetrics
from .render import dumps, loads_object, rows_as

log = Logger(namespace="helios.api")

READ, WRITE = "read", "write"
DEFAULT_MAX_BODY = 16 << 20
DEFAULT_TIMEOUT_MS = 30_000
MAX_TIMEOUT_MS = 3_600_000
DEFAULT_INLINE_BUDGET_MS = 2
MAX_INLINE_SQL = 4096                 # longer statements are parsed in the pool, never on the reactor
_SLOW_MEMORY = 1024                   # how many offloaded read shapes are remembered ...
_SLOW_FOR_S = 10.0                    # ... and for how long (a GC pause must not exile a point query for good)
_request_ids = itertools.count(1)
_QUERY_FIELDS = frozenset({"sql", "params", "timeout_ms", "as_of", "row_format"})


class CancelFlag:
    """Set when the client disconnects; the executor polls ``is_set()``.

    The executor only needs the flag, and a ``threading.Event`` (a Condition and a
    lock) per request was measurable on the request path."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


class Offload(Exception):
    """Inline work ran out of its reactor budget: run it again in the thread pool."""


class Ctx:
    """What a route's work function needs: the parsed body, query args and the caller.
    (A plain class with slots: a dataclass with factories was measurable per request.)"""

    __slots__ = ("request", "body", "author", "cancel", "budget_ms", "spent_ms", "pool_ms")

    def __init__(self, request: Any, body: dict | None = None) -> None:
        self.request = request
        self.body: dict = {} if body is None else body
        self.author: Any = None
        self.cancel = CancelFlag()
        self.budget_ms: int | None = None     # set while the work runs inline on the reactor
        self.spent_ms = 0.0                   # what an inline attempt used before it was offloaded
        self.pool_ms: float | None = None     # how long the pool's rerun of an overrun took

    def arg(self, name: str) -> str | None:
        values = self.request.args.get(name.encode())
        return values[-1].decode("utf-8", "replace") if values else None

    def read(self, run: Callable[[int], Any], timeout_ms: int) -> Any:
        """Call ``run(timeout)`` with the caller's timeout less what an inline attempt used,
        capped at the budget while inline; out of budget (not of the caller's time) -> Offload."""
        left = max(1, int(timeout_ms - self.spent_ms))
        if self.budget_ms is None or left <= self.budget_ms:
            try:
                return run(left)
            except QueryTimeout:
                if left == timeout_ms:
                    raise
                raise QueryTimeout.after(timeout_ms) from None   # the caller's timeout, not the remainder
        try:
            return run(self.budget_ms)
        except QueryTimeout:
            raise Offload from None


def _fields(body: dict, allowed: set[str] | frozenset[str], where: str) -> None:
    if allowed.issuperset(body):
        return
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field{'s' if len(unknown) > 1 else ''} in {where}: {', '.join(unknown)}; "
                         f"allowed: {', '.join(sorted(allowed))}")


def _as_of_value(v: Any, where: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BadRequest(f"{where} must be Unix seconds (a number), got {v!r}")
    return float(v)


def _as_of_query(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise BadRequest(f"as_of must be Unix seconds, got {text!r}") from None


def _timeout(v: Any) -> int:
    if v is None:
        return DEFAULT_TIMEOUT_MS
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_TIMEOUT_MS:
        raise BadRequest(f"timeout_ms must be an integer from 1 to {MAX_TIMEOUT_MS}, got {v!r}")
    return v


def _branch_json(info: Any) -> dict:
    return {"id": info.id, "name": info.name, "parent": info.parent, "created_at": int(info.created_at),
            "snapshot_id": int(info.snapshot_id), "state": info.state,
            "options": {"read_only": info.read_only, "isolated": info.isolated},
            "stats": {"total_keys": info.stats.total_keys, "size_bytes": info.stats.size_bytes,
                      "last_modified": int(info.stats.last_modified)}}


def _merge_json(r: Any) -> dict:
    d = r.to_dict()
    d["merge_timestamp"] = int(r.merge_timestamp)
    return d


def _timed(work: Callable[["Ctx"], tuple[int, Any]]) -> Callable[["Ctx"], tuple[int, Any]]:
    """``work`` that records in ``ctx.pool_ms`` how long it ran (in the pool, for ``_judge``)."""
    def timed(ctx: Ctx) -> tuple[int, Any]:
        started = time.perf_counter()
        try:
            return work(ctx)
        finally:
            ctx.pool_ms = (time.perf_counter() - started) * 1000
    return timed


def _elapsed_ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


class HeliosAPI:
    """The Klein application. State lives on the instance (one per database)."""

    app = Klein()

    def __init__(self, db: EmbeddedDatabase, *, auth: Any = None, rate_limit: Any = None,
                 public_rate_limit: Any = None, heavy_rate_limit: Any = None,
                 run: Callable[..., defer.Deferred] | None = None, max_body: int = DEFAULT_MAX_BODY,
                 inline_budget_ms: int = DEFAULT_INLINE_BUDGET_MS) -> None:
        """``run(f, *args)`` runs blocking work off the reactor and returns a Deferred
        (the server passes a bounded thread pool; tests may pass a synchronous runner).
        ``inline_budget_ms``: how long a read may run on the reactor before it moves to
        the pool (0: every read goes to the pool)."""
        self.db = db
        self.auth = auth
        self.rate_limit = rate_limit
        self.public_rate_limit = public_rate_limit
        self.heavy_rate_limit = heavy_rate_limit
        self._run = run or (lambda f, *a: defer.maybeDeferred(f, *a))
        self.max_body = max_body
        self.inline_budget_ms = inline_budget_ms
        self.ready = True
        self.metrics = ApiMetrics(db)
        self._slow: dict[Any, float] = {}            # read shape -> until when it goes straight to the pool
        self._heavy_sql: dict[str, bool] = {}        # SQL text -> heavy? (the AST walk is per text, not per call)

    def resource(self) -> Any:
        """An IResource serving the API: mount it anywhere in a twisted.web site."""
        return DispatchResource(self.app, self._unhandled)

    # ------------------------------------------------------------------ the common path
    def _serve(self, request: IRequest, route: str, need: str | None, work: Callable[[Ctx], tuple[int, Any]], *,
               body: str | None = None, heavy: bool | Callable[[dict], bool] = False,
               inline: Callable[[Ctx], Any] | None = None) -> Any:
        """``route`` labels metrics and logs; ``body``: None (no body), "required" or "optional";
        ``need``: the scope, or None for public endpoints; ``heavy``: also take a token from the
        heavy-operations bucket (or a function of the body deciding it); ``inline``: for reads,
        a function of the context giving the request's shape (None: not worth trying) - the work
        is tried on the reactor first (see the module docstring). Returns bytes or a Deferred."""
        t0 = time.perf_counter()
        rid = next(_request_ids)
        request.setHeader(b"x-request-id", str(rid).encode())
        ctx = Ctx(request)
        principal = None
        try:
            principal = self._authenticate(request, need)
            ctx.author = principal.author() if principal is not None and principal.method != "anonymous" else None
            self._limit(request, principal, heavy is True)
            if need is not None and self.auth is not None and self.auth.enabled:
                self.auth.authorize(principal, need)
            if body is not None:
                ctx.body = loads_object(self._read_body(request), required=body == "required")
            if callable(heavy) and self._heavy(heavy, ctx.body):
                self._limit_heavy(request, principal)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the canonical body
            return self._finish(request, route, *self._error(exc, rid), t0, principal)
        shape = inline(ctx) if inline is not None and self.inline_budget_ms > 0 else None
        if shape is not None and self._slow.get(shape, 0.0) < t0:
            ctx.budget_ms = self.inline_budget_ms
            started = time.perf_counter()
            try:
                status, payload = work(ctx)
            except Offload:
                ctx.spent_ms = (time.perf_counter() - started) * 1000
                ctx.budget_ms = None
                self._remember_slow(shape)
                return self._offload(request, route, _timed(work), ctx, rid, t0, principal, shape)
            except Exception as exc:  # noqa: BLE001
                return self._finish(request, route, *self._error(exc, rid), t0, principal)
            else:
                return self._finish(request, route, status, payload, t0, principal)
        return self._offload(request, route, work, ctx, rid, t0, principal)

    def _offload(self, request: IRequest, route: str, work: Callable[[Ctx], tuple[int, Any]], ctx: Ctx, rid: int,
                 t0: float, principal: Any, overran: Any = None) -> defer.Deferred:
        """Run ``work`` in the pool; ``overran``: the shape whose inline attempt overran the budget."""
        request.notifyFinish().addErrback(lambda _: ctx.cancel.set())   # a client that leaves cancels the work
        d = self._run(work, ctx)
        if overran is not None:
            d.addCallback(self._judge, overran, ctx)       # a failure says nothing of the statement's speed
        d.addCallbacks(lambda result: self._finish(request, route, result[0], result[1], t0, principal),
                       lambda f: self._finish(request, route, *self._error(f.value, rid, f), t0, principal))
        return d

    def _judge(self, result: Any, shape: Any, ctx: Ctx) -> Any:
        """After the pool's rerun of an overrun answered: if it fit in the budget, the overrun was
        the reactor's (preempted, or waiting for the GIL), not the statement's: forget the shape."""
        if ctx.pool_ms is not None and ctx.pool_ms < self.inline_budget_ms:
            self._slow.pop(shape, None)
        return result

    def _remember_slow(self, shape: Any) -> None:
        self._slow.pop(shape, None)
        if len(self._slow) >= _SLOW_MEMORY:
            del self._slow[next(iter(self._slow))]
        self._slow[shape] = time.perf_counter() + _SLOW_FOR_S

    def _authenticate(self, request: IRequest, need: str | None) -> Any:
        if self.auth is None or not self.auth.enabled:
            return None
        headers = {k.decode("latin-1").lower(): v[-1].decode("latin-1")
                   for k, v in request.requestHeaders.getAllRawHeaders()}
        if need is None and "authorization" not in headers and "x-api-key" not in headers:
            return None                                   # a public endpoint, called anonymously
        try:
            return self.auth.authenticate(headers)
        except Unauthorized:
            if need is None:
                return None
            self._limit(request, None, False)             # failed logins are limited by IP too
            raise

    def _key(self, request: IRequest, principal: Any) -> tuple[Any, str]:
        """(the bucket family, the caller's key in it)."""
        if principal is not None:
            return self.rate_limit, (f"principal:{principal.method}:{principal.key_name or ''}:"
                                     f"{principal.user_id}:{principal.tenant_id}")
        if self.auth is not None and self.auth.enabled:
            return self.public_rate_limit, "ip:" + _client_ip(request)
        return self.rate_limit, "ip:" + _client_ip(request)   # no auth at all: every caller by IP

    @staticmethod
    def _heavy(decide: Callable[[dict], bool], body: dict) -> bool:
        try:
            return bool(decide(body))
        except HeliosError:
            return False                   # unparsable SQL: the route itself will answer 400

    def _limit_heavy(self, request: IRequest, principal: Any) -> None:
        if self.heavy_rate_limit is not None:
            self._apply([self.heavy_rate_limit.check("heavy:" + self._key(request, principal)[1])], request)

    def _limit(self, request: IRequest, principal: Any, heavy: bool) -> None:
        if self.rate_limit is None and self.public_rate_limit is None and (not heavy or self.heavy_rate_limit is None):
            return                                        # rate limiting is off: no key to build
        limiter, key = self._key(request, principal)
        decisions = []
        if limiter is not None:
            decisions.append(limiter.check(key))
        if heavy and self.heavy_rate_limit is not None:
            decisions.append(self.heavy_rate_limit.check("heavy:" + key))
        self._apply(decisions, request)

    def _apply(self, decisions: list, request: IRequest) -> None:
        for decision in decisions:
            for name, value in decision.headers().items():
                request.setHeader(name.encode(), str(value).encode())
            if not decision.allowed:
                raise TooManyRequests("Rate limit exceeded")

    def _read_body(self, request: IRequest) -> bytes:
        content = request.content
        if content is None:
            return b""
        content.seek(0, 2)
        size = content.tell()
        if size > self.max_body:
            raise PayloadTooLarge(f"request body of {size} bytes is over the limit of {self.max_body} bytes")
        content.seek(0)
        return content.read()

    def _error(self, exc: BaseException, rid: int, failure: Any = None) -> tuple[int, dict]:
        if isinstance(exc, defer.CancelledError):          # the client went away; Klein cancelled us
            exc = QueryCancelled("the client disconnected before the answer was ready")
        if isinstance(exc, HeliosError):
            body = exc.to_body()
            if isinstance(exc, TooManyRequests):
                body = {"status": 429, "error": "TooManyRequests", "message": "Rate limit exceeded"}
            return exc.status, body
        log.failure("request {rid} failed", failure=failure, rid=rid) if failure is not None else \
            log.error("request {rid} failed: {exc!r}", rid=rid, exc=exc)
        return 500, {"status": 500, "error": "InternalServerError",
                     "message": f"internal error (request id {rid}); the server log has the details"}

    def _finish(self, request: IRequest, route: str, status: int, payload: Any, t0: float,
                principal: Any) -> bytes:
        request.setResponseCode(status)
        method = request.method.decode()
        self.metrics.observe(route, method, status, time.perf_counter() - t0)
        if status == 429:
            retry = request.responseHeaders.getRawHeaders(b"retry-after")
            if not retry:
                request.setHeader(b"retry-after", b"1")
        if status == 204:
            data = b""
        elif isinstance(payload, bytes):
            data = payload
        else:
            request.setHeader(b"content-type", b"application/json")
            data = dumps(payload)
        if isinstance(payload, bytes) and status < 400:
            request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        who = "-" if principal is None else f"{principal.user_id}@{principal.tenant_id}"
        path, ms = request.path.decode("utf-8", "replace"), _elapsed_ms(t0)
        # The line is the format itself, with no field to look up (twisted.logger's format-string
        # interpreter is pure Python and costs per field; braces in the path are escaped so they
        # print literally), and it rides on the event as ``request_line`` for the daemon's
        # observer (requestlog.py) to write as it is. The fields stay for structured observers.
        line = f"{method} {path} {status} {ms}ms {who}"
        text = line.replace("{", "{{").replace("}", "}}") if "{" in line or "}" in line else line
        log.info(text, request_line=line, method=method, path=path, status=status, ms=ms, who=who)
        return data

    # ------------------------------------------------------------------ health and version
    @app.route("/health", methods=["GET", "HEAD"])
    def health(self, request: IRequest) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"OK"

    @app.route("/readyz", methods=["GET"])
    def readyz(self, request: IRequest) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        healthy = self.ready and self.db.store.failed is None
        request.setResponseCode(200 if healthy else 503)
        return b"ready" if healthy else b"not ready"

    @app.route("/version", methods=["GET"])
    def version(self, request: IRequest) -> Any:
        return self._serve(request, "version", None, lambda ctx: (200, {"name": "HeliosDB Nano", "version": __version__,
                                                             "api_version": "v1"}))

    @app.route("/metrics", methods=["GET"])
    def prometheus(self, request: IRequest) -> Any:
        return self._serve(request, "metrics", READ, lambda ctx: (200, self.metrics.render()))

    @app.route("/v1/openapi.json", methods=["GET"])
    def openapi(self, request: IRequest) -> Any:
        from .openapi import document
        return self._serve(request, "openapi", None, lambda ctx: (200, document()))

    # ------------------------------------------------------------------ branches
    @app.route("/v1/branches", methods=["GET"])
    def list_branches(self, request: IRequest) -> Any:
        def work(ctx: Ctx) -> tuple[int, Any]:
            branches = [_branch_json(b) for b in self.db.list_branches()]
            return 200, {"total": len(branches), "branches": branches}
        return self._serve(request, "list_branches", READ, work)

    @app.route("/v1/branches", methods=["POST"])
    def create_branch(self, request: IRequest) -> Any:
        def work(ctx: Ctx) -> tuple[int, Any]:
            b = ctx.body
            _fields(b, {"name", "parent", "snapshot_id", "options"}, "the branch")
            options = b.get("options")
            options = {} if options is None else options
            if not isinstance(options, dict):
                raise BadRequest("options must be an object")
            _fields(options, {"read_only", "isolated"}, "options")
            for flag in ("read_only", "isolated"):
                if not isinstance(options.get(flag, False), bool):
                    raise BadRequest(f"options.{flag} must be true or false")
            parent = b.get("parent", "main")
            if not isinstance(parent, str):
                raise BadRequest("parent must be a branch name")
            info = self.db.create_branch(b.get("name"), parent, _as_of_value(b.get("snapshot_id"), "snapshot_id"),
                                         read_only=options.get("read_only", False),
                                         isolated=options.get("isolated", False))
            return 201, _branch_json(info)
        return self._serve(request, "create_branch", WRITE, work, body="required")

    @app.route("/v1/branches/<string:name>", methods=["GET"])
    def get_branch(self, request: IRequest, name: str) -> Any:
        return self._serve(request, "get_branch", READ, lambda ctx: (200, _branch_json(self.db.get_branch(name))))

    @app.route("/v1/branches/<string:name>", methods=["DELETE"])
    def delete_branch(self, request: IRequest, name: str) -> Any:
        def work(ctx: Ctx) -> tuple[int, Any]:
            self.db.delete_branch(name)
            return 204, None
        return self._serve(request, "delete_branch", WRITE, work)

    @app.route("/v1/branches/<string:source>/merge", methods=["POST"])
    def merge(self, request: IRequest, source: str) -> Any:
        def work(ctx: Ctx) -> tuple[int, Any]:
            b = ctx.body
            _fields(b, {"target", "strategy"}, "the merge")
            target, strategy = b.get("target", "main"), b.get("strategy", "Auto")
            if not isinstance(target, str) or not isinstance(strategy, str):
                raise BadRequest("target and strategy must be strings")
            self.db.get_branch(target)
            return 200, _merge_json(self.db.merge(source, target, strategy, author=ctx.author))
        return self._serve(request, "merge", WRITE, work, body="optional", heavy=True)

    # ------------------------------------------------------------------ tables and data
    @app.route("/v1/branches/<string:name>/tables", methods=["GET"])
    def tables(self, request: IRequest, name: str) -> Any:
        def work(ctx: Ctx) -> tuple[int, Any]:
            return 200, {"tables": self.db.tables(name, _as_of_query(ctx.arg("as_of")))}
        return self._serve(request, "tables", READ, work)

    @app.route("/v1/branches/<string:name>/tables/<string:table>/data", methods=["GET"])
    def read_data(self, request: IRequest, name: str, table: str) -> Any:
        def work(ctx: Ctx) -> tuple[int, Any]:
            as_of = _as_of_query(ctx.arg("as_of"))
            r = ctx.read(lambda timeout: self.db.read_rows(
                table, columns=ctx.arg("columns"), filter=ctx.arg("filter"), order_by=ctx.arg("order_by"),
                page=ctx.arg("page"), limit=ctx.arg("limit"), branch=name, as_of=as_of, timeout_ms=timeout),
                DEFAULT_TIMEOUT_MS)
            columns, rows = rows_as(r["columns"], r["rows"], "object")
            return 200, {"columns": columns, "rows": rows, "total": r["total"], "page": r["page"],
                         "limit": r["limit"], "has_more": r["has_more"]}
        return self._serve(request, "read_data", READ, work, inline=lambda ctx: _data_shape(ctx, name, table))

    def _row_write(self, request: IRequest, route: str, allowed: set[str], where: str, status: int, counted: str,
                   write: Callable[[Ctx], int]) -> Any:
        """A data write: only ``allowed`` body fields, then ``{counted: n, execution_time_ms}``."""
        def work(ctx: Ctx) -> tuple[int, Any]:
            t0 = time.perf_counter()
            _fields(ctx.body, allowed, where)
            n = write(ctx)
            return status, {counted: n, "execution_time_ms": _elapsed_ms(t0)}
        return self._serve(request, route, WRITE, work, body="required")

    @app.route("/v1/branches/<string:name>/tables/<string:table>/data", methods=["POST"])
    def insert_data(self, request: IRequest, name: str, table: str) -> Any:
        return self._row_write(request, "insert_data", {"rows"}, "the insert", 201, "inserted",
                               lambda ctx: self.db.insert_rows(table, ctx.body.get("rows"), branch=name,
                                                               author=ctx.author))

    @app.route("/v1/branches/<string:name>/tables/<string:table>/data", methods=["PUT"])
    def update_data(self, request: IRequest, name: str, table: str) -> Any:
        return self._row_write(request, "update_data", {"values", "filter"}, "the update", 200, "updated",
                               lambda ctx: self.db.update_rows(table, ctx.body.get("values"), ctx.body.get("filter"),
                                                               branch=name, author=ctx.author))

    @app.route("/v1/branches/<string:name>/tables/<string:table>/data", methods=["DELETE"])
    def delete_data(self, request: IRequest, name: str, table: str) -> Any:
        return self._row_write(request, "delete_data", {"filter"}, "the delete", 200, "deleted",
                               lambda ctx: self.db.delete_rows(table, ctx.body.get("filter"), branch=name,
                                                               author=ctx.author))

    # ------------------------------------------------------------------ SQL
    def _sql_fields(self, body: dict, allowed: set[str] | frozenset[str]) -> tuple[str, Any, int]:
        _fields(body, allowed, "the request")
        sql = body.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise BadRequest("sql must be a non-empty string")
        params = body.get("params")
        if params is not None and not isinstance(params, list):
            raise BadRequest("params must be a list")
        return sql, params, _timeout(body.get("timeout_ms"))

    @app.route("/v1/branches/<string:name>/query", methods=["POST"])
    def query(self, request: IRequest, name: str) -> Any:
        def work(ctx: Ctx) -> tuple[int, Any]:
            t0 = time.perf_counter()
            body = ctx.body
            sql, params, timeout = self._sql_fields(body, _QUERY_FIELDS)
            as_of = body.get("as_of")
            if as_of is not None:
                if not isinstance(as_of, dict) or as_of.get("type") != "timestamp" or set(as_of) != {"type", "value"}:
                    raise BadRequest('as_of must be {"type": "timestamp", "value": <Unix seconds>}')
                as_of = _as_of_value(as_of["value"], "as_of.value")
            row_format = body.get("row_format", "object")
            if row_format not in ("object", "array"):
                raise BadRequest('row_format must be "object" or "array"')
            r = ctx.read(lambda timeout: self.db.query(sql, params, branch=name, as_of=as_of, timeout_ms=timeout,
                                                       cancel=ctx.cancel), timeout)
            columns, rows = rows_as(r.columns, r.rows, row_format)
            return 200, {"columns": columns, "column_types": r.column_types, "rows": rows,
                         "row_count": r.row_count, "execution_time_ms": _elapsed_ms(t0)}
        return self._serve(request, "query", READ, work, body="required", heavy=self._is_heavy_sql,
                           inline=lambda ctx: _sql_shape(ctx, name))

    def _is_heavy_sql(self, body: dict) -> bool:
        sql = body.get("sql")
        if not isinstance(sql, str):
            return False
        heavy = self._heavy_sql.get(sql)
        if heavy is None:
            heavy = self.db.is_heavy(sql)
            if len(self._heavy_sql) >= _SLOW_MEMORY:
                self._heavy_sql.clear()
            self._heavy_sql[sql] = heavy
        return heavy

    @app.route("/v1/branches/<string:name>/execute", methods=["POST"])
    def execute(self, request: IRequest, name: str) -> Any:
        def work(ctx: Ctx) -> tuple[int, Any]:
            t0 = time.perf_counter()
            sql, params, timeout = self._sql_fields(ctx.body, {"sql", "params", "timeout_ms"})
            result = self.db.execute_script(sql, params, branch=name, timeout_ms=timeout, author=ctx.author,
                                            cancel=ctx.cancel)
            return 200, {"statement_type": result.statement_type, "affected_rows": result.affected_rows,
                         "execution_time_ms": _elapsed_ms(t0),
                         "message": f"{result.statement_type} statement executed successfully on branch '{name}'"}
        return self._serve(request, "execute", WRITE, work, body="required")

    # ------------------------------------------------------------------ anything else
    @app.handle_errors(Exception)
    def _unhandled(self, request: IRequest, failure: Any) -> bytes:
        from werkzeug.exceptions import MethodNotAllowed, NotFound as RouteNotFound
        if failure.check(RouteNotFound):
            status, body = 404, {"status": 404, "error": "NotFound",
                                 "message": f"no route for {request.method.decode()} "
                                            f"{request.path.decode('utf-8', 'replace')}"}
        elif failure.check(MethodNotAllowed):
            allowed = sorted(failure.value.valid_methods or [])
            request.setHeader(b"allow", ", ".join(allowed).encode())
            status, body = 405, {"status": 405, "error": "MethodNotAllowed",
                                 "message": f"{request.method.decode()} is not allowed on "
                                            f"{request.path.decode('utf-8', 'replace')}; allowed: "
                                            f"{', '.join(allowed)}"}
        else:
            status, body = self._error(failure.value, 0, failure)
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return dumps(body)


def _sql_shape(ctx: Ctx, branch: str) -> Any:
    """What identifies a /query for the inline decision: its branch and SQL text (short ones only)."""
    sql = ctx.body.get("sql")
    if not isinstance(sql, str) or len(sql) > MAX_INLINE_SQL:
        return None
    return ("query", branch, sql)


def _data_shape(ctx: Ctx, branch: str, table: str) -> Any:
    """A data read's shape: everything but the page (later pages of a slow read are slow too)."""
    args = ctx.request.args
    shape = tuple(sorted((k, tuple(v)) for k, v in args.items() if k != b"page"))
    if sum(len(x) for _, vs in shape for x in vs) > MAX_INLINE_SQL:
        return None
    return ("data", branch, table, shape)


def _client_ip(request: IRequest) -> str:
    addr = request.getClientAddress()
    return getattr(addr, "host", None) or "unknown"

