"""One exception tree for every layer.

Each class carries the HTTP ``status`` and the contract's ``error`` name it maps
to, so the API layer translates exceptions with one table lookup and never by
matching words in messages. Storage and SQL raise these; they import nothing
above themselves.
"""
from __future__ import annotations

from typing import Any


class HeliosError(Exception):
    """Base of every error HeliosDB raises on purpose."""

    status: int = 500
    error: str = "InternalServerError"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_body(self) -> dict[str, Any]:
        """The contract's canonical error body."""
        body: dict[str, Any] = {"status": self.status, "error": self.error, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


# 400 ------------------------------------------------------------------------
class BadRequest(HeliosError):
    status, error = 400, "BadRequest"


class SqlSyntaxError(BadRequest):
    """SQL text that does not parse; says where and what was expected."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None,
                 token: str | None = None, expected: list[str] | None = None) -> None:
        details = {k: v for k, v in
                   (("line", line), ("column", column), ("token", token), ("expected", expected))
                   if v is not None}
        super().__init__(message, details or None)
        self.line, self.column, self.token, self.expected = line, column, token, expected


class InvalidParameter(BadRequest):
    """A bound parameter is missing, malformed or does not fit its type."""


class InvalidName(BadRequest):
    """A branch, table or key name outside the allowed alphabet."""


class BranchInUse(BadRequest):
    """The branch cannot be deleted: it is ``main`` or has children."""


# 401 / 403 ------------------------------------------------------------------
class Unauthorized(HeliosError):
    status, error = 401, "Unauthorized"


class Forbidden(HeliosError):
    status, error = 403, "Forbidden"


# 404 ------------------------------------------------------------------------
class NotFound(HeliosError):
    status, error = 404, "NotFound"


class BranchNotFound(NotFound):
    pass


class TableNotFound(NotFound):
    """A table named in a request path (not in SQL text) does not exist."""


# 408 / 409 / 410 / 413 --------------------------------------------------------
class QueryTimeout(HeliosError):
    status, error = 408, "QueryTimeout"

    @classmethod
    def after(cls, timeout_ms: int) -> "QueryTimeout":
        """The contract's message for a query stopped by its ``timeout_ms``."""
        return cls(f"Query exceeded timeout of {timeout_ms}ms")


class QueryCancelled(HeliosError):
    """The client went away (or the caller cancelled); the query stopped early."""

    status, error = 499, "ClientClosedRequest"


class Conflict(HeliosError):
    status, error = 409, "Conflict"


class BranchExists(Conflict):
    pass


class MergeConflict(Conflict):
    """A Manual merge met conflicts; the target is unchanged. ``details`` lists them."""


class WriteConflict(Conflict):
    """A transaction wrote a key that a concurrent commit changed first; retry it."""


class ConstraintViolation(Conflict):
    """A write breaks a uniqueness constraint."""


class DuplicateKey(ConstraintViolation):
    pass


class UniqueViolation(ConstraintViolation):
    pass


class HistoryExpired(HeliosError):
    status, error = 410, "HistoryExpired"


class PayloadTooLarge(HeliosError):
    status, error = 413, "PayloadTooLarge"


# 422 ------------------------------------------------------------------------
class UnprocessableEntity(HeliosError):
    status, error = 422, "UnprocessableEntity"


class SemanticError(UnprocessableEntity):
    """Valid syntax that means nothing here: unknown table, column or function."""


class UnknownTable(SemanticError):
    pass


class UnknownColumn(SemanticError):
    pass


class TypeMismatch(SemanticError):
    pass


class NotNullViolation(UnprocessableEntity):
    pass


class ReadOnlyBranch(UnprocessableEntity):
    pass


class InvalidMerge(UnprocessableEntity):
    pass


class TransactionError(UnprocessableEntity):
    """BEGIN inside a transaction, COMMIT without one, use after close."""


# 429 / 5xx ------------------------------------------------------------------
class TooManyRequests(HeliosError):
    status, error = 429, "TooManyRequests"


class InternalError(HeliosError):
    status, error = 500, "InternalServerError"


class CorruptDatabase(InternalError):
    """On-disk data failed its checksum before the log's tail: never guess, stop."""


class UnsupportedFormat(InternalError):
    """A file written by an unknown (newer) on-disk format version."""


class NotImplementedFeature(HeliosError):
    status, error = 501, "NotImplemented"


class ServiceUnavailable(HeliosError):
    status, error = 503, "ServiceUnavailable"


class StorageFailed(ServiceUnavailable):
    """A write or fsync failed: the store refuses writes from now on, reads go on."""


class DatabaseLocked(ServiceUnavailable):
    """Another process holds the database directory's lock."""


class DatabaseClosed(ServiceUnavailable):
    pass
