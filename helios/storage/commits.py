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


def merge_base(a: Commit, b: Commit) -> Commit | None:
    """The common ancestor of ``a`` and ``b`` with the highest generation.

    Commits are visited in decreasing generation, painting which side reaches
    them; a commit's paint is final when it is popped (all its descendants have
    higher generations), so the first commit painted by both sides is the answer.
    The walk costs the number of commits since the fork, not the size of history.
    """
    if a is b:
        return a
    paint: dict[int, int] = {id(a): 1, id(b): 2}
    heap: list[tuple[int, int, Commit]] = [(-a.gen, -a.seq, a), (-b.gen, -b.seq, b)]
    heapq.heapify(heap)
    queued = {id(a), id(b)}
    while heap:
        _, _, c = heapq.heappop(heap)
        queued.discard(id(c))
        flags = paint[id(c)]
        if flags == 3:
            return c
        for p in c.parents:
            old = paint.get(id(p), 0)
            new = old | flags
            if new != old:
                paint[id(p)] = new
                if id(p) not in queued:
                    queued.add(id(p))
                    heapq.heappush(heap, (-p.gen, -p.seq, p))
    return None
