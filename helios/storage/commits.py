"""Commits: the nodes of the history DAG, and finding a merge base.

A commit is (state, timestamp in microseconds, author, parents). Every write
transaction makes one; a merge commit has two parents (target, source), so a
second merge of the same branches starts from the first merge, as in git.
"""
from __future__ import annotations

import heapq
from typing import Any

from .state import DbState


class Commit:
    __slots__ = ("seq", "ts", "state", "parents", "author", "kind", "gen", "pid")

    def __init__(self, seq: int, ts: int, state: DbState, parents: tuple["Commit", ...] = (),
                 author: Any = None, kind: str = "write") -> None:
        self.seq = seq                  # database-wide commit number: the log's reference to it
        self.ts = ts                    # microseconds since the epoch, strictly increasing per database
        self.state = state
        self.parents = parents
        self.author = author            # (user id, tenant id) or None
        self.kind = kind                # write | merge | init
        self.gen = 1 + (parents[0].gen if len(parents) == 1 else max((p.gen for p in parents), default=0))
        self.pid: int | None = None

    def __repr__(self) -> str:
        return f"Commit(seq={self.seq}, ts={self.ts}, kind={self.kind})"


def merge_bases(a: Commit, b: Commit) -> list[Commit]:
    """Every best common ancestor of ``a`` and ``b`` (none an ancestor of another),
    highest generation first: one, unless the two lines merged into each other
    crosswise (a criss-cross), as git's ``merge-base --all``.

    Commits are visited in decreasing generation, painting which side reaches
    them; a commit's paint is final when it is popped (all its descendants have
    higher generations). A commit painted by both sides is a best common ancestor
    unless it is stale: below one found already, whose ancestors inherit the stale
    mark. The walk ends when only stale commits are queued, so it costs the
    commits since the fork, not the size of history.
    """
    if a is b:
        return [a]
    side_a, side_b, stale = 1, 2, 4
    paint: dict[int, int] = {id(a): side_a, id(b): side_b}
    heap: list[tuple[int, int, int, Commit]] = [(-a.gen, -a.seq, id(a), a), (-b.gen, -b.seq, id(b), b)]
    heapq.heapify(heap)
    live = 2                                    # queued commits not marked stale
    found: list[Commit] = []
    while live:
        _, _, key, c = heapq.heappop(heap)
        flags = paint[key]
        if not flags & stale:
            live -= 1
            if flags == side_a | side_b:
                found.append(c)
                flags |= stale
        for p in c.parents:
            old = paint.get(id(p))
            new = (old or 0) | flags
            if new == old:
                continue
            paint[id(p)] = new
            if old is None:
                heapq.heappush(heap, (-p.gen, -p.seq, id(p), p))
                live += not new & stale
            elif new & stale and not old & stale:
                live -= 1                   # queued and live until now
    return found
