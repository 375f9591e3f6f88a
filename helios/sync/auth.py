"""HS256 JSON Web Tokens: issue and verify, with one failure answer for every forgery.

Verification pins ``algorithms=["HS256"]``, so ``alg: none``, RSA/EC tokens and the
HS/RS confusion attack all fail in PyJWT before any claim is read. The time
claims (``exp``, ``iat``, ``nbf``) are checked here rather than by PyJWT because
PyJWT reads the wall clock directly, and tests (and the server's cache) need an
injected clock. Every failure raises the same :class:`~helios.errors.Unauthorized`
so a caller cannot tell a bad signature from an expired token; the reason is
logged at debug level for the operator.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence
from uuid import UUID

import jwt
from jwt.algorithms import HMACAlgorithm

from helios.errors import Unauthorized

__all__ = ["ALGORITHM", "Claims", "DEFAULT_SCOPES", "INVALID_CREDENTIALS", "JwtManager",
           "MIN_SECRET_BYTES"]

logger = logging.getLogger("helios.auth")

ALGORITHM = "HS256"
DEFAULT_SCOPES: tuple[str, ...] = ("sync:read", "sync:write")
INVALID_CREDENTIALS = "Missing or invalid authentication credentials"
#: RFC 7518 3.2: an HS256 key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32
#: Far beyond any real token; refusing bigger input bounds the work a caller can cause.
MAX_TOKEN_CHARS = 8192
_REQUIRED_STRINGS = ("sub", "tenant_id", "client_id")


@dataclass(frozen=True)
class Claims:
    """The verified content of a token. ``sub`` is the user id."""

    sub: str
    tenant_id: str
    client_id: str
    exp: int
    iat: int
    scopes: tuple[str, ...] = DEFAULT_SCOPES


class _Invalid(ValueError):
    """A claim that fails validation (``verify`` turns it into ``Unauthorized``)."""


class JwtManager:
    """Issues and verifies HS256 tokens signed with one shared secret."""

    def __init__(self, secret: bytes | str, *, leeway: float = 30,
                 clock: Callable[[], float] = time.time) -> None:
        key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if not key:
            raise ValueError("the JWT secret must not be empty")
        try:
            HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(key)
        except jwt.InvalidKeyError as exc:  # a PEM/SSH public key passed as the secret
            raise ValueError(f"unusable JWT secret: {exc}") from None
        if len(key) < MIN_SECRET_BYTES:
            logger.warning("The JWT secret is %d bytes; use at least %d random bytes "
                           "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)",
                           len(key), MIN_SECRET_BYTES)
        if leeway < 0:
            raise ValueError("leeway must be >= 0")
        self._key = key
        self.leeway = float(leeway)
        self._clock = clock

    def generate_token(self, user_id: str, tenant_id: str, client_id: UUID | str,
                       scopes: Sequence[str] | None = None, ttl: float = 3600) -> str:
        """A token for ``user_id`` valid for ``ttl`` seconds from now."""
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if isinstance(scopes, str):
            raise TypeError("scopes must be a sequence of strings, not one string")
        now = int(self._clock())
        payload = {
            "sub": user_id,
            "tenant_id": tenant_id,
            "client_id": str(client_id),
            "iat": now,
            "exp": now + math.ceil(ttl),
            "scopes": list(DEFAULT_SCOPES if scopes is None else scopes),
        }
        _claims_from(payload)  # refuse to sign what verify() would reject
        return jwt.encode(payload, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> Claims:
        """The token's claims, or :class:`Unauthorized` whatever is wrong with it."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized(INVALID_CREDENTIALS)
        try:
            payload = jwt.decode(
                token, self._key, algorithms=[ALGORITHM],
                options={"require": ["exp", "iat"], "verify_exp": False,
                         "verify_iat": False, "verify_nbf": False})
            claims = _claims_from(payload)
            self._check_times(claims, payload.get("nbf"))
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            logger.debug("rejected JWT: %s", exc)
            raise Unauthorized(INVALID_CREDENTIALS) from None
        return claims

    def _check_times(self, claims: Claims, nbf: Any) -> None:
        now = self._clock()
        if now > claims.exp + self.leeway:
            raise _Invalid("token expired")
        if claims.iat > now + self.leeway:
            raise _Invalid("token issued in the future")
        if nbf is not None and _numeric_date(nbf, "nbf") > now + self.leeway:
            raise _Invalid("token not yet valid")


def _numeric_date(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Invalid(f"{name} must be a number of seconds")
    return math.floor(value)


def _claims_from(payload: Mapping[str, Any]) -> Claims:
    for name in _REQUIRED_STRINGS:
        value = payload.get(name)
        if not isinstance(value, str) or not value:
            raise _Invalid(f"claim {name!r} must be a non-empty string")
    scopes = payload.get("scopes", list(DEFAULT_SCOPES))
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
        raise _Invalid("claim 'scopes' must be a list of non-empty strings")
    return Claims(sub=payload["sub"], tenant_id=payload["tenant_id"],
                  client_id=payload["client_id"],
                  exp=_numeric_date(payload.get("exp"), "exp"),
                  iat=_numeric_date(payload.get("iat"), "iat"),
                  scopes=tuple(scopes))
