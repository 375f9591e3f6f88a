"""Small builders shared by the storage tests."""
from __future__ import annotations

from helios.storage.schema import Column, IndexDef, TableSchema


def users_schema(name: str = "users", *, unique_email: bool = False) -> TableSchema:
    idx = (IndexDef("users_email", (2,), unique=True),) if unique_email else ()
    return TableSchema(name, (Column("id", "int8", False), Column("name", "text"), Column("email", "text")),
                       primary_key=(0,), indexes=idx)


def rows_of(store_or_snap, table: str = "users", branch: str = "main", as_of=None) -> dict:
    snap = store_or_snap.snapshot(branch, as_of) if hasattr(store_or_snap, "snapshot") else store_or_snap
    if not snap.has_table(table):
        return {}
    out = {}
    for keys, rows in snap.scan(table):
        out.update(zip(keys, rows))
    return out


class FakeClock:
    """A settable clock for commit timestamps (seconds)."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t
