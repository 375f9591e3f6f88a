"""Child process for the crash harness: commit forever, print what was acknowledged.

Each transaction inserts the pair (k, -k) atomically; a line "k" is printed and
flushed only after commit returned (the fsync is done). Three threads commit
concurrently so that group commit is exercised too; every 40th commit one
thread also checkpoints, so kills land inside checkpoints as well.
"""
from __future__ import annotations

import sys
import threading

from helios.storage.schema import Column, TableSchema
from helios.storage.store import Store

path, start = sys.argv[1], int(sys.argv[2])
db = Store(path)
if not db.snapshot().has_table("t"):
    with db.write() as tx:
        tx.create_table(TableSchema("t", (Column("k", "int8", False), Column("v", "text")), (0,)))
lock = threading.Lock()
counter = [start]


def worker() -> None:
    while True:
        with lock:
            k = counter[0]
            counter[0] += 1
        with db.write() as tx:
            tx.insert("t", (k, "x" * (k % 50)))
            tx.insert("t", (-k, "pair"))
        with lock:
            print(k, flush=True)
        if k % 40 == 0:
            db.checkpoint()


print("ready", flush=True)
threads = [threading.Thread(target=worker, daemon=True) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
