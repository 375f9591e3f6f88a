"""Who is calling, and may they do this: principals, scopes and the authentication chain.

Framework-free: :meth:`AuthMiddleware.authenticate` takes the request headers as
a mapping and returns a :class:`Principal` or raises
:class:`~helios.errors.Unauthorized`; :meth:`AuthMiddleware.authorize` raises
:class:`~helios.errors.Forbidden`. The HTTP layer maps both through the error table.

Order (contract section 2): a Bearer JWT first; if it is missing or fails, the
``X-API-Key`` header; if both fail, one 401 that does not say which part failed.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence
from uuid import UUID

from helios.errors import BadRequest, Conflict, Forbidden, Unauthorized
from helios.sync.auth import INVALID_CREDENTIALS, JwtManager

from .ratelimit import resolve_clock

if TYPE_CHECKING:
    from .keystore import KeyStore

__all__ = ["ANONYMOUS", "AuthMiddleware", "ENV_JWT_SECRET", "KNOWN_SCOPES", "Principal", "READ",
           "WRITE", "has_scope", "validate_scopes"]

logger = logging.getLogger("helios.auth")

ENV_JWT_SECRET = "HELIOSDB_JWT_SECRET"
READ, WRITE, ADMIN = "read", "write", "admin"
KNOWN_SCOPES: tuple[str, ...] = (READ, WRITE, "sync:read", "sync:write", ADMIN)
#: Each scope a route can need, and the scopes that grant it (``admin`` implies both).
_GRANTED_BY: dict[str, frozenset[str]] = {
    READ: frozenset({READ, "sync:read", ADMIN}),
    WRITE: frozenset({WRITE, "sync:write", ADMIN}),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``method`` is ``"jwt"``, ``"api_key"`` or ``"anonymous"``."""

    user_id: str
    tenant_id: str
    client_id: str
    scopes: frozenset[str]
    method: str
    key_name: str | None = None

    def author(self) -> tuple[str, str]:
        """``(user_id, tenant_id)``: what the store records as the author of this caller's commits."""
        return (self.user_id, self.tenant_id)


#: The caller when authentication is disabled (``--no-auth``, or an embedded server
#: configured without credentials): everything is allowed.
ANONYMOUS = Principal("anonymous", "default", "00000000-0000-0000-0000-000000000000",
                      frozenset({ADMIN}), "anonymous")


def has_scope(principal: Principal, need: str) -> bool:
    """Whether ``principal`` may do what needs ``need`` (``READ``, ``WRITE`` or a literal scope)."""
    granted_by = _GRANTED_BY.get(need)
    if granted_by is None:
        return need in principal.scopes or ADMIN in principal.scopes
    return not granted_by.isdisjoint(principal.scopes)


def validate_scopes(scopes: Sequence[str]) -> list[str]:
    """``scopes`` as a de-duplicated list, or :class:`BadRequest` naming the allowed ones.

    Unknown names are refused rather than stored, so a typo (``wrtie``) fails at
    creation instead of producing a credential that is silently useless.
    """
    if isinstance(scopes, str) or not isinstance(scopes, Sequence):
        raise BadRequest("scopes must be a list of scope names")
    result: list[str] = []
    for scope in scopes:
        if scope not in KNOWN_SCOPES:
            raise BadRequest(f"unknown scope {scope!r}: use {', '.join(KNOWN_SCOPES)}")
        if scope not in result:
            result.append(scope)
    if not result:
        raise BadRequest(f"at least one scope is required: {', '.join(KNOWN_SCOPES)}")
    return result


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


class AuthMiddleware:
    """The authentication chain: a JWT secret, in-memory keys and/or a key store."""

    def __init__(self, jwt_secret: bytes | str | None = None, *, clock: Any = time.time,
                 cache_seconds: float = 5.0, cache_size: int = 4096) -> None:
        self._clock = resolve_clock(clock)
        self._jwt = None if jwt_secret is None else JwtManager(jwt_secret, clock=self._clock)
        self.cache_seconds = float(cache_seconds)
        self._cache_size = cache_size
        # token -> (cached until, principal). Tokens cannot be revoked, so caching a
        # verified one only saves the ~40 us PyJWT verification; never past its exp.
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._cache_lock = threading.Lock()
        # In-memory keys keep only HMAC(salt, key) with a salt private to this instance.
        self._salt = secrets.token_bytes(32)
        self._keys: list[tuple[bytes, Principal]] = []
        self._store: KeyStore | None = None

    # -- configuration ---------------------------------------------------------------------
    def with_api_key(self, key: str, user_id: str, tenant_id: str, client_id: UUID | str,
                     scopes: Sequence[str], name: str,
                     description: str | None = None) -> AuthMiddleware:
        """Accept ``key`` as ``X-API-Key`` for this principal (embedding); returns ``self``."""
        if not isinstance(key, str) or not key or key != key.strip() or not key.isprintable():
            raise BadRequest("an API key must be a non-empty string of printable characters "
                             "without surrounding whitespace")
        digest = self._digest(key)
        if any(hmac.compare_digest(d, digest) for d, _ in self._keys):
            raise Conflict("this API key is already configured")
        if any(p.key_name == name for _, p in self._keys):
            raise Conflict(f"an API key named '{name}' is already configured")
        principal = Principal(user_id, tenant_id, str(client_id), frozenset(validate_scopes(scopes)),
                              "api_key", name)
        self._keys.append((digest, principal))
        return self

    def with_key_store(self, store: KeyStore) -> AuthMiddleware:
        """Also accept the keys of ``store`` (the daemon's data directory); returns ``self``."""
        self._store = store
        return self

    @classmethod
    def from_env_or_default(cls, data_dir: str | os.PathLike[str] | None = None, *,
                            environ: Mapping[str, str] = os.environ,
                            clock: Any = time.time) -> AuthMiddleware:
        """JWT on iff ``HELIOSDB_JWT_SECRET`` is set; the key store of ``data_dir`` if given.

        There is no default secret: a built-in one would let anyone mint tokens.
        """
        secret = environ.get(ENV_JWT_SECRET)
        if secret is not None and not secret.strip():
            logger.warning("%s is set but empty: JWT authentication is off", ENV_JWT_SECRET)
            secret = None
        auth = cls(secret, clock=clock)
        if data_dir is not None:
            from .keystore import KeyStore  # keystore imports this module
            auth.with_key_store(KeyStore(data_dir, clock=clock))
        return auth

    @property
    def enabled(self) -> bool:
        """Whether any credential source is configured; if not, everyone is :data:`ANONYMOUS`."""
        return self._jwt is not None or bool(self._keys) or self._store is not None

    @property
    def jwt_enabled(self) -> bool:
        return self._jwt is not None

    @property
    def key_store(self) -> KeyStore | None:
        return self._store

    # -- per request -----------------------------------------------------------------------
    def authenticate(self, headers: Mapping[str | bytes, str | bytes]) -> Principal:
        """The caller named by ``headers`` (names case-insensitive), or :class:`Unauthorized`."""
        if not self.enabled:
            return ANONYMOUS
        authorization = api_key = None
        for name, value in headers.items():
            lowered = _text(name).lower()
            if lowered == "authorization":
                authorization = _text(value)
            elif lowered == "x-api-key":
                api_key = _text(value)
        if authorization is not None and self._jwt is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                principal = self._from_token(token.strip())
                if principal is not None:
                    return principal
        if api_key is not None and api_key.strip():
            principal = self._from_key(api_key.strip())
            if principal is not None:
                return principal
        raise Unauthorized(INVALID_CREDENTIALS)

    def authorize(self, principal: Principal, need: str) -> None:
        """Return if ``principal`` holds ``need`` (see :func:`has_scope`), else :class:`Forbidden`."""
        if not has_scope(principal, need):
            raise Forbidden(f"Insufficient scope: this operation requires the '{need}' scope")

    def _from_token(self, token: str) -> Principal | None:
        now = self._clock()
        with self._cache_lock:
            hit = self._cache.get(token)
        if hit is not None and now < hit[0]:
            return hit[1]
        assert self._jwt is not None
        try:
            claims = self._jwt.verify(token)
        except Unauthorized:
            return None
        principal = Principal(claims.sub, claims.tenant_id, claims.client_id,
                              frozenset(claims.scopes), "jwt")
        until = min(now + self.cache_seconds, claims.exp)
        if until > now:
            with self._cache_lock:
                self._cache[token] = (until, principal)
                self._cache.move_to_end(token)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return principal

    def _from_key(self, key: str) -> Principal | None:
        """In-memory keys, then the key store (which re-reads its file, so no caching here).

        Embedded keys have no structure to index by and are few, so each is compared
        with :func:`hmac.compare_digest`; the store indexes by key id instead.
        """
        if self._keys:
            digest = self._digest(key)
            for stored, principal in self._keys:
                if hmac.compare_digest(stored, digest):
                    return principal
        if self._store is not None:
            return self._store.lookup(key)
        return None

    def _digest(self, key: str) -> bytes:
        return hmac.new(self._salt, key.encode("utf-8"), hashlib.sha256).digest()
