"""The REST API (v1): a thin Klein adapter over ``EmbeddedDatabase``.

The only layer that imports Klein or twisted.web. ``HeliosAPI`` is the Klein
application (state on the instance); ``ApiServer`` runs or mounts it. Names are
imported lazily so that ``helios.api.auth`` (used by the CLI) does not load Klein.
"""
from __future__ import annotations

from typing import Any

_EXPORTS = {
    "ApiServer": ".server", "HeliosAPI": ".app", "AuthMiddleware": ".auth", "Principal": ".auth",
    "RateLimitMiddleware": ".ratelimit", "RateLimitConfig": ".ratelimit", "KeyStore": ".keystore",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'helios.api' has no attribute {name!r}")
    from importlib import import_module
    return getattr(import_module(module, __name__), name)
