"""Binary encoding of log records and checkpoint nodes.

msgpack (C, well kept) rather than pickle: decoding a database file must never be
able to run code, and msgpack round-trips exactly the value kinds rows hold
(None, bool, int, float, str, bytes, tuples). Sequences decode as tuples.
"""
from __future__ import annotations

from typing import Any, Callable

import msgpack

from ..errors import CorruptDatabase

_packer_opts = {"use_bin_type": True}


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, **_packer_opts)


def packer() -> Callable[[Any], bytes]:
    """A reusable ``pack``: several times faster per small record than ``pack`` (which builds
    a packer per call), but not thread-safe: one per writer, used under its lock."""
    return msgpack.Packer(**_packer_opts).pack


def unpack(data: bytes, *, where: str = "record") -> Any:
    try:
        return msgpack.unpackb(data, use_list=False, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:  # a checksummed record that does not decode
        raise CorruptDatabase(f"undecodable {where}: {exc}") from exc
