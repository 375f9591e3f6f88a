"""The OpenAPI 3.1 description of REST API v1, served at ``GET /v1/openapi.json``.

Written by hand from the routes in ``app.py`` (not generated from them) so it
states the contract rather than echoing the code; ``tests/api/test_openapi.py``
keeps the two in step (same routes and methods, real responses validated
against these schemas) and ``tests/api/fuzz_api.py`` drives a live server from
it with schemathesis. Request schemas say what the server parses, with
``additionalProperties: false`` on every object whose unknown fields it refuses
with 400; points in time are bounded to years 1970-9999, the range a client has
any use for.
"""
from __future__ import annotations

import functools
from typing import Any

from .. import __version__

BRANCH_NAME_PATTERN = "^[A-Za-z0-9_-]{1,128}$"
MAX_LIMIT = 1000
MAX_TIMEOUT_MS = 3_600_000
PARAM_TYPES = ["bool", "float4", "float8", "int4", "int8", "text", "timestamp"]
MERGE_STRATEGIES = ["Auto", "Ours", "Theirs", "Manual"]
# Points in time are Unix seconds from the epoch to the end of year 9999 (fractions allowed).
MOMENT = {"type": "number", "minimum": 0, "maximum": 253_402_300_799}

# status -> (component name, the contract's error name, when it happens)
ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("BadRequest", "BadRequest",
          "Malformed JSON, a wrong field type, an unknown field, a bad parameter or name, or a SQL "
          "syntax error (`details` then carries `line`, `column`, `token`, `expected`)."),
    401: ("Unauthorized", "Unauthorized", "Missing or invalid credentials."),
    403: ("Forbidden", "Forbidden", "Valid credentials without the scope this operation needs."),
    404: ("NotFound", "NotFound", "A branch or table named in the path (or a parent/target branch) does not exist."),
    408: ("QueryTimeout", "QueryTimeout", "The statement ran past `timeout_ms` and was stopped."),
    409: ("Conflict", "Conflict",
          "The branch exists, a Manual merge met conflicts (listed in `details.conflicts`; nothing "
          "changed) or a write broke a uniqueness constraint."),
    410: ("HistoryExpired", "HistoryExpired", "`as_of` is older than the branch's retained history."),
    413: ("PayloadTooLarge", "PayloadTooLarge",
          "The request body is over the configured limit (default 16 MiB); refused before it is read."),
    422: ("UnprocessableEntity", "UnprocessableEntity",
          "Valid syntax but a semantic error: unknown column or table, type mismatch, NOT NULL, "
          "a read-only branch, an invalid merge."),
    429: ("TooManyRequests", "TooManyRequests", "Rate limit exceeded; retry after `Retry-After` seconds."),
    500: ("InternalServerError", "InternalServerError",
          "A bug. The message names a request id found in the server log; no traceback is sent."),
    501: ("NotImplemented", "NotImplemented", "The SQL uses a feature this engine does not implement."),
    503: ("ServiceUnavailable", "ServiceUnavailable",
          "Storage refused a write (disk full, fsync failed) or the database is closing."),
}

RATE_HEADERS = ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit-Policy", "RateLimit"]


def _ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _served_headers() -> dict:
    """Headers of every answer that passes the common path (all but /health and /readyz)."""
    return {name: _ref("headers", name) for name in ["X-Request-Id", *RATE_HEADERS]}


# ---------------------------------------------------------------------- schemas
def _schemas() -> dict[str, dict]:
    scalar = {"type": ["string", "number", "boolean", "null"],
              "description": "A column value: JSON null, boolean, number or string."}
    int_seconds = {"type": "integer", "description": "Unix seconds."}
    elapsed = {"type": "number", "minimum": 0, "description": "Server-side time in milliseconds."}
    sql = {"type": "string", "minLength": 1, "pattern": "\\S",
           "description": "SQL text; parameters are `$1`, `$2`, ... bound from `params`."}
    timeout_ms = {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_TIMEOUT_MS, "default": 30000,
                  "description": "Stop the statement after this many milliseconds (answered 408)."}
    filter_ = {"type": "string", "minLength": 1, "pattern": "\\S",
               "description": "One SQL expression over the table's columns, parsed by the grammar (never "
                              "pasted into SQL); `\"true\"` selects every row.",
               "examples": ["id = 100"]}
    return {
        "Error": {
            "type": "object",
            "description": "The one error body of every endpoint.",
            "required": ["status", "error", "message"],
            "additionalProperties": False,
            "properties": {
                "status": {"type": "integer", "minimum": 400, "maximum": 599,
                           "description": "The HTTP status, repeated."},
                "error": {"type": "string", "examples": ["BadRequest"]},
                "message": {"type": "string", "minLength": 1},
                "details": {"description": "Machine-readable context (syntax position, merge conflicts, ...)."},
            },
        },
        "Version": {
            "type": "object",
            "required": ["name", "version", "api_version"],
            "additionalProperties": False,
            "properties": {"name": {"const": "HeliosDB Nano"}, "version": {"type": "string", "minLength": 1},
                           "api_version": {"const": "v1"}},
        },
        "BranchName": {"type": "string", "pattern": BRANCH_NAME_PATTERN,
                       "description": "1-128 letters, digits, `-` or `_`."},
        "BranchOptions": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"read_only": {"type": "boolean", "default": False,
                                         "description": "Writes to the branch are refused with 422."},
                           "isolated": {"type": "boolean", "default": False}},
        },
        "BranchStats": {
            "type": "object",
            "required": ["total_keys", "size_bytes", "last_modified"],
            "additionalProperties": False,
            "properties": {"total_keys": {"type": "integer", "minimum": 0,
                                          "description": "Rows over all tables of the branch."},
                           "size_bytes": {"type": "integer", "minimum": 0},
                           "last_modified": int_seconds},
        },
        "BranchInfo": {
            "type": "object",
            "required": ["id", "name", "parent", "created_at", "snapshot_id", "state", "options", "stats"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "name": _ref("schemas", "BranchName"),
                "parent": {"anyOf": [_ref("schemas", "BranchName"), {"type": "null"}],
                           "description": "null for main."},
                "created_at": int_seconds,
                "snapshot_id": {"type": "integer",
                                "description": "The parent's point in time (Unix seconds) the branch starts from."},
                "state": {"type": "string", "examples": ["Active"]},
                "options": {"allOf": [_ref("schemas", "BranchOptions")],
                            "required": ["read_only", "isolated"]},
                "stats": _ref("schemas", "BranchStats"),
            },
        },
        "BranchList": {
            "type": "object",
            "required": ["total", "branches"],
            "additionalProperties": False,
            "properties": {"total": {"type": "integer", "minimum": 1},
                           "branches": {"type": "array", "minItems": 1, "items": _ref("schemas", "BranchInfo")}},
        },
        "CreateBranch": {
            "examples": [{"name": "feature-x", "parent": "main"}],
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": _ref("schemas", "BranchName"),
                "parent": {"allOf": [_ref("schemas", "BranchName")], "default": "main"},
                "snapshot_id": {"anyOf": [MOMENT, {"type": "null"}],
                                "description": "Start from the parent's state at this Unix time "
                                               "(fractional seconds allowed); default: its current state."},
                "options": {"anyOf": [_ref("schemas", "BranchOptions"), {"type": "null"}]},
            },
        },
        "MergeRequest": {
            "examples": [{"target": "main", "strategy": "Auto"}],
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "target": {"allOf": [_ref("schemas", "BranchName")], "default": "main"},
                "strategy": {"type": "string", "enum": MERGE_STRATEGIES, "default": "Auto",
                             "description": "Auto: the newer change wins; Ours: keep the target; Theirs: take "
                                            "the source; Manual: any conflict answers 409 and changes nothing. "
                                            "Matched case-insensitively."},
            },
        },
        "MergeConflict": {
            "type": "object",
            "required": ["key", "source_value", "target_value", "resolution", "resolved_value"],
            "additionalProperties": False,
            "properties": {"key": {"type": "string", "description": "`table:primary_key`, e.g. `users:123`.",
                                   "examples": ["users:123"]},
                           "source_value": {}, "target_value": {},
                           "resolution": {"type": "string", "enum": MERGE_STRATEGIES},
                           "resolved_value": {}},
        },
        "MergeResult": {
            "type": "object",
            "required": ["merge_timestamp", "merged_keys", "conflicts", "completed", "message"],
            "additionalProperties": False,
            "properties": {"merge_timestamp": int_seconds,
                           "merged_keys": {"type": "integer", "minimum": 0},
                           "conflicts": {"type": "array", "items": _ref("schemas", "MergeConflict")},
                           "completed": {"type": "boolean"},
                           "message": {"type": "string"}},
        },
        "TableList": {
            "type": "object",
            "required": ["tables"],
            "additionalProperties": False,
            "properties": {"tables": {"type": "array", "items": {
                "type": "object",
                "required": ["name", "row_count", "size_bytes", "created_at"],
                "additionalProperties": False,
                "properties": {"name": {"type": "string", "minLength": 1},
                               "row_count": {"type": "integer", "minimum": 0},
                               "size_bytes": {"type": "integer", "minimum": 0},
                               "created_at": int_seconds}}}},
        },
        "Row": {"type": "object", "additionalProperties": scalar,
                "description": "One row keyed by column name (repeated names get a suffix: `a`, `a_2`)."},
        "DataPage": {
            "type": "object",
            "required": ["columns", "rows", "total", "page", "limit", "has_more"],
            "additionalProperties": False,
            "properties": {"columns": {"type": "array", "items": {"type": "string"}},
                           "rows": {"type": "array", "items": _ref("schemas", "Row")},
                           "total": {"type": "integer", "minimum": 0,
                                     "description": "Rows matching the filter, over all pages."},
                           "page": {"type": "integer", "minimum": 1},
                           "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                           "has_more": {"type": "boolean"}},
        },
        "InsertRows": {
            "examples": [{"rows": [{"id": 100, "name": "Zed", "age": 33}]}],
            "type": "object",
            "required": ["rows"],
            "additionalProperties": False,
            "properties": {"rows": {"type": "array", "minItems": 1,
                                    "description": "Inserted atomically: one bad row rejects the batch.",
                                    "items": {"type": "object", "minProperties": 1, "additionalProperties": scalar}}},
        },
        "UpdateRows": {
            "examples": [{"values": {"age": 31}, "filter": "id = 1"}],
            "type": "object",
            "required": ["values", "filter"],
            "additionalProperties": False,
            "properties": {"values": {"type": "object", "minProperties": 1, "additionalProperties": scalar},
                           "filter": filter_},
        },
        "DeleteRows": {
            "examples": [{"filter": "id = 100"}],
            "type": "object",
            "required": ["filter"],
            "additionalProperties": False,
            "properties": {"filter": filter_},
        },
        "Inserted": _counted("inserted", elapsed),
        "Updated": _counted("updated", elapsed),
        "Deleted": _counted("deleted", elapsed),
        "TypedParam": {
            "type": "object",
            "required": ["type"],
            "additionalProperties": False,
            "properties": {"type": {"type": "string", "enum": PARAM_TYPES},
                           "value": {"type": ["string", "number", "boolean", "null"],
                                     "description": "Must fit `type` (else 400): a number, or text such as "
                                                    "ISO-8601 for timestamp; null is SQL NULL."}},
        },
        "Params": {"type": ["array", "null"],
                   "items": {"anyOf": [scalar, _ref("schemas", "TypedParam")]},
                   "description": "Bound to `$1`, `$2`, ...: plain JSON scalars or typed `{type, value}`."},
        "QueryRequest": {
            "examples": [{"sql": "SELECT name, age FROM users WHERE age > $1 ORDER BY id",
                          "params": [{"type": "int4", "value": 25}]}],
            "type": "object",
            "required": ["sql"],
            "additionalProperties": False,
            "properties": {
                "sql": sql,
                "params": _ref("schemas", "Params"),
                "timeout_ms": timeout_ms,
                "as_of": {"anyOf": [{"type": "null"}, {
                    "type": "object", "required": ["type", "value"], "additionalProperties": False,
                    "properties": {"type": {"const": "timestamp"},
                                   "value": {"anyOf": [MOMENT, {"type": "null"}]}}}],
                    "description": "Read the branch as of this moment (every commit at or before it)."},
                "row_format": {"type": "string", "enum": ["object", "array"], "default": "object"},
            },
        },
        "QueryResult": {
            "type": "object",
            "required": ["columns", "column_types", "rows", "row_count", "execution_time_ms"],
            "additionalProperties": False,
            "properties": {"columns": {"type": "array", "items": {"type": "string"}},
                           "column_types": {"type": "array", "items": {"type": ["string", "null"]}},
                           "rows": {"type": "array", "items": {"anyOf": [
                               _ref("schemas", "Row"), {"type": "array", "items": scalar}]},
                               "description": "Objects by default; arrays in column order with "
                                              "`\"row_format\": \"array\"`."},
                           "row_count": {"type": "integer", "minimum": 0},
                           "execution_time_ms": elapsed},
        },
        "ExecuteRequest": {
            "examples": [{"sql": "UPDATE users SET age = age + 1 WHERE id = $1",
                          "params": [{"type": "int4", "value": 1}]}],
            "type": "object",
            "required": ["sql"],
            "additionalProperties": False,
            "properties": {"sql": sql, "params": _ref("schemas", "Params"), "timeout_ms": timeout_ms},
        },
        "ExecuteResult": {
            "type": "object",
            "required": ["statement_type", "affected_rows", "execution_time_ms", "message"],
            "additionalProperties": False,
            "properties": {"statement_type": {"type": "string", "examples": ["INSERT", "CREATE_TABLE"]},
                           "affected_rows": {"type": "integer", "minimum": 0},
                           "execution_time_ms": elapsed,
                           "message": {"type": "string",
                                       "examples": ["INSERT statement executed successfully on branch 'main'"]}},
        },
    }


def _counted(name: str, elapsed: dict) -> dict:
    return {"type": "object", "required": [name, "execution_time_ms"], "additionalProperties": False,
            "properties": {name: {"type": "integer", "minimum": 0}, "execution_time_ms": elapsed}}


# ---------------------------------------------------------------------- components
def _error_responses() -> dict[str, dict]:
    out = {}
    for status, (name, error, when) in ERRORS.items():
        headers = _served_headers()
        if status == 429:
            headers["Retry-After"] = _ref("headers", "Retry-After")
        schema = {"allOf": [_ref("schemas", "Error")],
                  "properties": {"status": {"const": status}, "error": {"const": error}}}
        out[name] = {"description": when, "headers": headers, "content": _json(schema)}
    return out


def _headers() -> dict[str, dict]:
    def h(description: str, schema: dict, required: bool = False) -> dict:
        return {"description": description, "required": required, "schema": schema}
    integer = {"type": "integer", "minimum": 0}
    return {
        "X-Request-Id": h("The request's id, also in the server log.", integer),
        "X-RateLimit-Limit": h("Requests allowed per window.", integer),
        "X-RateLimit-Remaining": h("Tokens left in the bucket.", integer),
        "X-RateLimit-Reset": h("Unix time at which the bucket is full again.", integer),
        "RateLimit-Policy": h("IETF policy: `max;w=window;burst=n`.", {"type": "string"}),
        "RateLimit": h("IETF: `limit=n, remaining=n, reset=seconds`.", {"type": "string"}),
        "Retry-After": h("Seconds until a request will be accepted.", integer, True),
    }


def _security_schemes() -> dict[str, dict]:
    return {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                       "description": "HS256 JWT signed with `HELIOSDB_JWT_SECRET`; claims `sub`, `tenant_id`, "
                                      "`client_id`, `exp` (required), `iat`, `scopes`."},
        "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                       "description": "An API key (`helios keys create`); tried when no valid JWT is given."},
    }


# ---------------------------------------------------------------------- operations
def _path_param(name: str, schema: dict, description: str, example: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description,
            "example": example}


def _query_param(name: str, schema: dict, description: str, example: Any) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description,
            "example": example}


BRANCH = _path_param("name", _ref("schemas", "BranchName"), "The branch.", "main")
TABLE = _path_param("table", {"type": "string", "pattern": "^[^/]+$"}, "The table (matched case-insensitively).",
                    "users")
AS_OF = _query_param("as_of", MOMENT, "Read the branch as of this Unix time (fractional allowed).",
                     1701446400)


def _operation(op_id: str, tag: str, summary: str, *, ok: int, ok_response: dict, errors: list[int],
               scope: str | None, body: dict | None = None, body_required: bool = True,
               parameters: list[dict] | None = None, heavy: bool = False) -> dict:
    """One operation on the common path: authentication (unless public), rate limiting, the errors."""
    statuses = set(errors) | {429, 500}
    if scope is not None:
        statuses |= {401, 403, 503}
    if body is not None:
        statuses |= {400, 413}
    responses: dict[str, Any] = {str(ok): ok_response}
    for status in sorted(statuses):
        responses[str(status)] = _ref("responses", ERRORS[status][0])
    op: dict[str, Any] = {"operationId": op_id, "tags": [tag], "summary": summary, "responses": responses}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": _json(body)}
    if scope is None:
        op["security"] = [{}, {"bearerAuth": []}, {"apiKeyAuth": []}]
        op["description"] = "Public: no credentials needed (given ones identify the caller for rate limiting)."
    else:
        op["x-required-scope"] = scope
        op["description"] = f"Needs the `{scope}` or `sync:{scope}` scope (or `admin`)."
    if heavy:
        op["description"] += " Also counted against the heavy-operations limit (10 a minute, burst 2)."
    return op


def _ok(description: str, schema: dict | None, links: dict | None = None) -> dict:
    out: dict[str, Any] = {"description": description, "headers": _served_headers()}
    if schema is not None:
        out["content"] = _json(schema)
    if links:
        out["links"] = links
    return out


def _plain(description: str, text: str) -> dict:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string", "examples": [text]}}}}


def _paths() -> dict[str, dict]:
    branch_links = {
        "GetBranch": {"operationId": "getBranch", "parameters": {"name": "$response.body#/name"}},
        "ListTables": {"operationId": "listTables", "parameters": {"name": "$response.body#/name"}},
        "MergeBranch": {"operationId": "mergeBranch", "parameters": {"source": "$response.body#/name"}},
        "DeleteBranch": {"operationId": "deleteBranch", "parameters": {"name": "$response.body#/name"}},
    }
    data_params = [
        _query_param("filter", {"type": "string", "minLength": 1}, "One SQL expression.", "age > 25"),
        _query_param("columns", {"type": "string", "minLength": 1}, "Comma-separated column names (default: all).",
                     "id,name"),
        _query_param("page", {"type": "integer", "minimum": 1, "default": 1}, "1-based page number.", 1),
        _query_param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
                     "Rows per page.", 20),
        _query_param("order_by", {"type": "string", "minLength": 1}, "An ordering list.",
                     "age DESC, id"),
        AS_OF,
    ]
    return {
        "/health": {
            "get": {"operationId": "health", "tags": ["health"], "summary": "Liveness probe (never rate limited)",
                    "security": [{}], "responses": {"200": _plain("The process answers.", "OK")}},
            "head": {"operationId": "healthHead", "tags": ["health"], "summary": "Liveness probe without a body",
                     "security": [{}], "responses": {"200": {"description": "The process answers."}}},
        },
        "/readyz": {
            "get": {"operationId": "readyz", "tags": ["health"], "summary": "Readiness probe (never rate limited)",
                    "security": [{}],
                    "responses": {"200": _plain("Serving; storage accepts writes.", "ready"),
                                  "503": _plain("Not ready: shutting down or storage failed.", "not ready")}},
        },
        "/version": {"get": _operation("version", "meta", "Server name and version", ok=200, errors=[], scope=None,
                                       ok_response=_ok("Name and version.", _ref("schemas", "Version")))},
        "/metrics": {"get": _operation(
            "metrics", "meta", "Prometheus metrics", ok=200, errors=[], scope="read",
            ok_response={**_plain("Prometheus text exposition format 0.0.4: requests by route and status, "
                                  "latency, commits, fsyncs, checkpoints, branches, rows.",
                                  "helios_branches 1.0"), "headers": _served_headers()})},
        "/v1/openapi.json": {"get": _operation(
            "openapi", "meta", "This OpenAPI document", ok=200, errors=[], scope=None,
            ok_response=_ok("The OpenAPI 3.1 document.",
                            {"type": "object", "required": ["openapi", "info", "paths"]}))},
        "/v1/branches": {
            "get": _operation("listBranches", "branches", "List branches (main first)", ok=200, errors=[],
                              scope="read", ok_response=_ok("Every branch.", _ref("schemas", "BranchList"))),
            "post": _operation("createBranch", "branches", "Create a branch (O(1): structural sharing)", ok=201,
                               errors=[404, 409, 410], scope="write", body=_ref("schemas", "CreateBranch"),
                               ok_response=_ok("The new branch.", _ref("schemas", "BranchInfo"), branch_links)),
        },
        "/v1/branches/{name}": {
            "parameters": [BRANCH],
            "get": _operation("getBranch", "branches", "One branch", ok=200, errors=[404], scope="read",
                              ok_response=_ok("The branch.", _ref("schemas", "BranchInfo"))),
            "delete": _operation("deleteBranch", "branches", "Delete a branch", ok=204, errors=[400, 404],
                                 scope="write", ok_response=_ok("Deleted; no body.", None)),
        },
        "/v1/branches/{source}/merge": {
            "parameters": [_path_param("source", _ref("schemas", "BranchName"), "The branch merged from.", "dev")],
            "post": _operation("mergeBranch", "branches", "Three-way merge into a target branch", ok=200,
                               errors=[404, 409, 422], scope="write", body=_ref("schemas", "MergeRequest"),
                               body_required=False, heavy=True,
                               ok_response=_ok("The merge and its resolved conflicts.",
                                               _ref("schemas", "MergeResult"))),
        },
        "/v1/branches/{name}/tables": {
            "parameters": [BRANCH],
            "get": _operation("listTables", "data", "Tables of a branch", ok=200, errors=[400, 404, 410],
                              scope="read", parameters=[AS_OF],
                              ok_response=_ok("The tables with their sizes.", _ref("schemas", "TableList"))),
        },
        "/v1/branches/{name}/tables/{table}/data": {
            "parameters": [BRANCH, TABLE],
            "get": _operation("readData", "data", "A page of a table's rows", ok=200,
                              errors=[400, 404, 408, 410, 422], scope="read", parameters=data_params,
                              ok_response=_ok("The page.", _ref("schemas", "DataPage"))),
            "post": _operation("insertData", "data", "Insert rows (one atomic batch)", ok=201,
                               errors=[404, 409, 422], scope="write", body=_ref("schemas", "InsertRows"),
                               ok_response=_ok("Rows inserted.", _ref("schemas", "Inserted"))),
            "put": _operation("updateData", "data", "Update the rows matching a filter", ok=200,
                              errors=[404, 409, 422], scope="write", body=_ref("schemas", "UpdateRows"),
                              ok_response=_ok("Rows updated.", _ref("schemas", "Updated"))),
            "delete": _operation("deleteData", "data", "Delete the rows matching a filter", ok=200,
                                 errors=[404, 422], scope="write", body=_ref("schemas", "DeleteRows"),
                                 ok_response=_ok("Rows deleted.", _ref("schemas", "Deleted"))),
        },
        "/v1/branches/{name}/query": {
            "parameters": [BRANCH],
            "post": _operation("query", "sql", "Run a read-only statement (SELECT)", ok=200,
                               errors=[404, 408, 410, 422, 501], scope="read", body=_ref("schemas", "QueryRequest"),
                               ok_response=_ok("The result set.", _ref("schemas", "QueryResult"))),
        },
        "/v1/branches/{name}/execute": {
            "parameters": [BRANCH],
            "post": _operation("execute", "sql", "Run DDL or DML (durable when answered)", ok=200,
                               errors=[404, 408, 409, 410, 422, 501], scope="write",
                               body=_ref("schemas", "ExecuteRequest"),
                               ok_response=_ok("What the statement did.", _ref("schemas", "ExecuteResult"))),
        },
    }


@functools.cache
def document() -> dict:
    """The whole OpenAPI 3.1.0 document (built once; callers must not mutate it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "HeliosDB Nano",
            "version": __version__,
            "summary": "Embedded SQL database with git-like branches and time travel.",
            "description": "REST API v1. Bodies are JSON; timestamps are Unix seconds. Every error answers "
                           "`{status, error, message, details?}`. Authenticated responses carry rate-limit "
                           "headers; an empty bucket answers 429 with `Retry-After`.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": "health", "description": "Probes."},
                 {"name": "meta", "description": "Version and this document."},
                 {"name": "branches", "description": "Branches and merges."},
                 {"name": "data", "description": "Tables and rows without SQL."},
                 {"name": "sql", "description": "SQL statements."}],
        "security": [{"bearerAuth": []}, {"apiKeyAuth": []}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": _error_responses(),
            "headers": _headers(),
            "securitySchemes": _security_schemes(),
        },
    }
