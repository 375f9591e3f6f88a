"""Branches: names that point into the commit history.

A branch owns the list of commits made on it since it forked (``commits``) and
the commit it forked from (``base``). Creating one is O(1): a name, a pointer,
an empty list. Time travel bisects the branch's own commit timestamps and falls
back to the parent's history before the fork point.
"""
from __future__ import annotations

import re
import uuid
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidName
from .commits import Commit

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def check_branch_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidName(f"invalid branch name {name!r}: use 1-128 letters, digits, '-' or '_'")
    return name


CREATING = "creating"    # its creation is logged, not yet durable: nobody sees it
DELETING = "deleting"    # its deletion is logged, not yet durable: readers still see it


class Branch:
    __slots__ = ("name", "id", "parent", "created_at", "snapshot_ts", "base", "commits", "stamps",
                 "visible", "read_only", "isolated", "horizon", "pending")

    def __init__(self, name: str, *, parent: str | None, created_at: int, base: Commit | None,
                 snapshot_ts: int, read_only: bool = False, isolated: bool = False,
                 id: str | None = None) -> None:
        self.name = name
        self.id = id or str(uuid.uuid4())
        self.parent = parent
        self.created_at = created_at          # microseconds
        self.snapshot_ts = snapshot_ts        # the parent's moment this branch starts from (microseconds)
        self.base = base                      # the parent's commit at snapshot_ts (None for main)
        self.commits: list[Commit] = []       # own commits, oldest first (durable and pending)
        self.stamps: list[int] = []           # their timestamps, for bisect
        self.visible = 0                      # how many of ``commits`` readers may see (durable ones)
        self.read_only = read_only
        self.isolated = isolated
        self.horizon: int | None = None       # reads before this moment were pruned by retention
        self.pending: str | None = None       # CREATING / DELETING until that log record is durable

    @property
    def head(self) -> Commit | None:
        """The newest durable commit: what readers see."""
        return self.commits[self.visible - 1] if self.visible else self.base

    @property
    def tip(self) -> Commit | None:
        """The newest commit including ones still waiting for fsync: what writers build on."""
        return self.commits[-1] if self.commits else self.base

    def own_commit_at(self, ts: int) -> Commit | None:
        """The last visible own commit at or before ``ts`` (None if the moment precedes them)."""
        i = bisect_right(self.stamps, ts, 0, self.visible)
        return self.commits[i - 1] if i else None

    def own_commit_index_before(self, ts: int) -> int:
        """Index of the last own commit at or before ``ts`` (-1 if none)."""
        return bisect_right(self.stamps, ts) - 1

    def add(self, commit: Commit) -> None:
        self.commits.append(commit)
        self.stamps.append(commit.ts)


@dataclass(frozen=True, slots=True)
class BranchStats:
    total_keys: int
    size_bytes: int
    last_modified: float


@dataclass(frozen=True, slots=True)
class BranchInfo:
    id: str
    name: str
    parent: str | None
    created_at: float          # Unix seconds
    snapshot_id: float         # the parent's point in time the branch was made from (Unix seconds)
    state: str
    read_only: bool
    isolated: bool
    stats: BranchStats = field(default_factory=lambda: BranchStats(0, 0, 0.0))

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "parent": self.parent,
                "created_at": self.created_at, "snapshot_id": self.snapshot_id, "state": self.state,
                "read_only": self.read_only, "isolated": self.isolated,
                "stats": {"total_keys": self.stats.total_keys, "size_bytes": self.stats.size_bytes,
                          "last_modified": self.stats.last_modified}}
