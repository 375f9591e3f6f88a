"""Binary encoding of log records and checkpoint nodes.

msgpack (C, well kept) rather than pickle: decoding a database file must never be
able to run code, and msgpack round-trips exactly the value kinds rows hold
(None, bool, int, float, str, bytes, tuples). Sequences decode as tuples.
"""
from __future__ import annotations

from typing import Any

import msgpack

from ..errors import CorruptDatabase

_packer_opts = {"use_bin_type": True}


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, **_packer_opts)


def unpack(data: bytes, *, where: str = "record") -> Any:
    try:
        return msgpack.unpackb(data, use_list=False, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:  # a checksummed record that does not decode
        raise CorruptDatabase(f"undecodable {where}: {exc}") from exc
