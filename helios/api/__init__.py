"""The REST API (v1): a thin Klein adapter over ``EmbeddedDatabase``.

The only layer that imports Klein or twisted.web. ``HeliosAPI`` is the Klein
application (state on the instance); ``ApiServer`` runs or mounts it.
"""
from __future__ import annotations

from .app import HeliosAPI
from .server import ApiServer

__all__ = ["ApiServer", "HeliosAPI"]
