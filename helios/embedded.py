"""``EmbeddedDatabase``: the one facade the server and embedding programs share.

It joins the storage layer (branches, history, durability) and the SQL engine.
Each ``execute`` outside a transaction is atomic on its own (autocommit): a
write statement runs under the store's writer lock and returns once its
commit is fsync'd. ``transaction()`` (or ``BEGIN``/``COMMIT`` through
``execute``, bound to the calling thread) groups statements into one atomic,
snapshot-isolated commit.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from .errors import InvalidParameter, ReadOnlyBranch, SemanticError, TableNotFound, TransactionError
from .sql import ast, dataops
from .sql.engine import Engine, Prepared, Result, bind, bind_many, is_heavy
from .storage.branches import BranchInfo
from .storage.merge import MergeResult
from .storage.store import MAIN, Store, estimate_table_bytes

__all__ = ["EmbeddedDatabase", "Result", "Transaction"]


class Transaction:
    """A group of statements committed atomically on one branch."""

    def __init__(self, db: "EmbeddedDatabase", branch: str, author: Any = None) -> None:
        self.db, self.branch = db, branch
        self._tx = db.store.begin(branch, author)

    def execute(self, sql: str, params: Any = None, *, timeout_ms: int | None = None) -> Result:
        result = Result()
        for s in self.db._engine.prepare(sql):
            bound = bind(params, s.nparams)
            if s.control:
                raise TransactionError("use commit() / rollback() (or leave the with-block) "
                                       "to end this transaction")
            result = self._run(s, bound, timeout_ms)
        return result

    def _run(self, s: Prepared, params: tuple, timeout_ms: int | None) -> Result:
        engine = self.db._engine
        if s.read_only:
            return engine.query(s.key, s.stmt, params, self._tx, timeout_ms=timeout_ms,
                                snapshot_at=self.db._snapshot_at(self.branch))
        mark = self._tx.savepoint()
        try:
            return engine.write(s.key, s.stmt, params, self._tx, timeout_ms=timeout_ms,
                                snapshot_at=self.db._snapshot_at(self.branch))
        except BaseException:
            self._tx.rollback_to(mark)            # a failed statement leaves no trace
            raise

    def commit(self) -> None:
        self._tx.commit()

    def rollback(self) -> None:
        if not self._tx.done:
            self._tx.rollback()

    @property
    def active(self) -> bool:
        return not self._tx.done

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._tx.done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()


class _Session(threading.local):
    """The calling thread's open transaction (BEGIN through ``execute``), if any."""

    tx: Transaction | None = None          # a class default: reading it never raises


class EmbeddedDatabase:
    """An embedded HeliosDB database: ``EmbeddedDatabase("./data/mydb.db")`` or ``(":memory:")``."""

    def __init__(self, path: str = ":memory:", *, retention: float | None = None, **store_options: Any) -> None:
        self.path = path
        self.store = Store(path, retention=retention, **store_options)
        self._engine = Engine()
        self._session = _Session()
        self._snapshot_fns: dict[str, Callable[[float], Any]] = {}

    # ------------------------------------------------------------------ SQL
    def execute(self, sql: str, params: Any = None, *, branch: str = MAIN, as_of: float | None = None,
                timeout_ms: int | None = None, author: Any = None, cancel: Any = None) -> Result:
        """Run one or more statements; returns the last one's result.

        ``cancel`` is an optional ``threading.Event``: setting it stops a running
        statement (the server sets it when the client disconnects)."""
        stmts = self._engine.prepare(sql)
        if len(stmts) == 1:                                   # the common case, without a loop
            s = stmts[0]
            bound = bind(params, s.nparams)
            if s.read_only and self._session.tx is None:
                # An autocommit query (what _run does with no transaction open), inline.
                return self._engine.query(s.key, s.stmt, bound, self.store.snapshot(branch, as_of),
                                          timeout_ms=timeout_ms, cancel=cancel,
                                          snapshot_at=self._snapshot_fns.get(branch) or self._snapshot_at(branch))
            return self._run(s, bound, branch, as_of, timeout_ms, author, cancel)
        result = Result()
        for s in stmts:
            result = self._run(s, bind(params, s.nparams), branch, as_of, timeout_ms, author, cancel)
        return result

    def query(self, sql: str, params: Any = None, *, branch: str = MAIN, as_of: float | None = None,
              timeout_ms: int | None = None, cancel: Any = None) -> Result:
        """Like ``execute`` but refuses anything that is not a read-only query."""
        for s in self._engine.prepare(sql):
            if not s.read_only:
                raise InvalidParameter(f"only read-only statements (SELECT) are allowed here, "
                                       f"not {s.stype}")
        return self.execute(sql, params, branch=branch, as_of=as_of, timeout_ms=timeout_ms, cancel=cancel)

    def execute_script(self, sql: str, params: Any = None, *, branch: str = MAIN, timeout_ms: int | None = None,
                       author: Any = None, cancel: Any = None) -> Result:
        """DDL and DML only (the REST ``/execute``): several statements run as one atomic
        commit; the result names the last statement and sums the affected rows."""
        stmts = self._engine.prepare(sql)
        for s in stmts:
            if s.read_only:
                raise InvalidParameter(f"{s.stype} is a query: run it through /query")
            if s.control:
                raise InvalidParameter(f"{s.stype} is not available here: a request with "
                                       f"several statements already runs them as one transaction")
        if len(stmts) == 1:
            s = stmts[0]
            return self._run(s, bind(params, s.nparams), branch, None, timeout_ms, author, cancel)
        total, last = 0, Result()
        with self.transaction(branch=branch, author=author) as tx:
            for s in stmts:
                last = tx._run(s, bind(params, s.nparams), timeout_ms)
                total += last.affected_rows
        return Result(statement_type=last.statement_type, affected_rows=total)

    def is_heavy(self, sql: str) -> bool:
        """Would this SQL count as a heavy operation for rate limiting (big LIMIT, many joins)?"""
        return any(is_heavy(s.stmt) for s in self._engine.prepare(sql))

    def executemany(self, sql: str, seq_of_params: Iterable[Any], *, branch: str = MAIN,
                    author: Any = None) -> Result:
        """Run one statement once per parameter set, all in one atomic commit."""
        stmts = self._engine.prepare(sql)
        if len(stmts) != 1:
            raise InvalidParameter("executemany takes exactly one statement")
        s = stmts[0]
        if s.read_only:
            raise InvalidParameter("executemany is for INSERT, UPDATE and DELETE")
        bulk = bind_many(seq_of_params, s.nparams) if isinstance(s.stmt, ast.Insert) else None
        if bulk is not None:
            param_sets, kinds = bulk
        else:
            param_sets, kinds = [bind(p, s.nparams) for p in seq_of_params], None
        tx = self._active(branch)
        if isinstance(s.stmt, ast.Insert):
            if tx is not None:
                return Result(statement_type="INSERT",
                              affected_rows=self._engine.insert_many(s.key, s.stmt, param_sets, tx._tx, kinds))
            with self.store.write(branch, author) as wtx:
                count = self._engine.insert_many(s.key, s.stmt, param_sets, wtx, kinds)
            return Result(statement_type="INSERT", affected_rows=count)
        total = 0
        with self.transaction(branch=branch, author=author) as t:
            for p in param_sets:
                total += t._run(s, p, None).affected_rows
        return Result(statement_type=s.stype, affected_rows=total)

    def _snapshot_at(self, branch: str) -> Callable[[float], Any]:
        """AS OF SYSTEM TIME -> a snapshot of ``branch`` (one function per branch, reused)."""
        fn = self._snapshot_fns.get(branch)
        if fn is None:
            fn = self._snapshot_fns[branch] = lambda ts: self.store.snapshot(branch, ts)
        return fn

    def _active(self, branch: str) -> Transaction | None:
        tx = self._session.tx
        if tx is not None and not tx.active:
            tx = self._session.tx = None
        if tx is not None and tx.branch != branch:
            raise TransactionError(f"a transaction is open on branch {tx.branch!r}; "
                                   f"COMMIT or ROLLBACK it before using branch {branch!r}")
        return tx

    def _run(self, s: Prepared, params: tuple, branch: str, as_of: float | None,
             timeout_ms: int | None, author: Any, cancel: Any = None) -> Result:
        tx = self._active(branch)
        if s.control:
            return self._control(s, tx, branch, author)
        if tx is not None:
            if as_of is not None:
                raise SemanticError("as_of cannot be used inside a transaction")
            return tx._run(s, params, timeout_ms)
        if s.read_only:
            return self._engine.query(s.key, s.stmt, params, self.store.snapshot(branch, as_of),
                                      timeout_ms=timeout_ms, snapshot_at=self._snapshot_at(branch), cancel=cancel)
        if as_of is not None:
            raise ReadOnlyBranch("the past is read-only: as_of applies to queries only")
        with self.store.write(branch, author) as wtx:
            return self._engine.write(s.key, s.stmt, params, wtx, timeout_ms=timeout_ms,
                                      snapshot_at=self._snapshot_at(branch), cancel=cancel)

    def _control(self, s: Prepared, tx: Transaction | None, branch: str, author: Any) -> Result:
        """BEGIN, COMMIT and ROLLBACK: the calling thread's open transaction."""
        if isinstance(s.stmt, ast.Begin):
            if tx is not None:
                raise TransactionError("cannot start a transaction within a transaction")
            self._session.tx = Transaction(self, branch, author)
            return Result(statement_type="BEGIN")
        if tx is None:
            raise TransactionError(f"cannot {s.stype} - no transaction is active")
        self._session.tx = None
        tx.commit() if isinstance(s.stmt, ast.Commit) else tx.rollback()
        return Result(statement_type=s.stype)

    @contextmanager
    def transaction(self, branch: str = MAIN, author: Any = None) -> Iterator[Transaction]:
        """``with db.transaction(branch="dev") as tx: tx.execute(...)``: all or nothing."""
        t = Transaction(self, branch, author)
        try:
            yield t
        except BaseException:
            t.rollback()
            raise
        if t.active:
            t.commit()

    # ------------------------------------------------------------------ table data (REST)
    def tables(self, branch: str = MAIN, as_of: float | None = None) -> list[dict]:
        """Every table of the branch (as of a moment) with its size."""
        snap = self.store.snapshot(branch, as_of)
        out = []
        for name in snap.table_names():
            t = snap.table(name)
            out.append({"name": name, "row_count": len(t), "size_bytes": estimate_table_bytes(t),
                        "created_at": int(t.schema.created_at)})
        return out

    def _table_view(self, table: str, branch: str, as_of: float | None) -> tuple[Any, str]:
        snap = self.store.snapshot(branch, as_of)
        for name in snap.table_names():
            if name.lower() == table.lower():
                return snap, name
        raise TableNotFound(f"table {table!r} not found on branch {branch!r}")

    def read_rows(self, table: str, *, columns: Any = None, filter: Any = None, order_by: Any = None,
                  page: Any = None, limit: Any = None, branch: str = MAIN, as_of: float | None = None,
                  timeout_ms: int | None = None) -> dict:
        """A page of a table's rows: filter and order_by are parsed as SQL expressions, never pasted."""
        snap, name = self._table_view(table, branch, as_of)
        p = dataops.Page.parse(page, limit)
        query, count = dataops.select_rows(name, columns=columns, filter=filter, order_by=order_by, page=p)
        r = self._engine.query(("ast", query), query, (), snap, timeout_ms=timeout_ms)
        if filter is None:
            total = snap.row_count(name)                  # O(1): the tree knows its size
        else:
            total = self._engine.query(("ast", count), count, (), snap, timeout_ms=timeout_ms).rows[0][0]
        return {"columns": r.columns, "column_types": r.column_types, "rows": r.rows, "total": total,
                "page": p.page, "limit": p.limit, "has_more": p.offset + len(r.rows) < total}

    def insert_rows(self, table: str, rows: Any, *, branch: str = MAIN, author: Any = None) -> int:
        """Insert a batch of {column: value} objects atomically: one bad row rejects them all."""
        _, name = self._table_view(table, branch, None)
        groups = dataops.insert_rows(name, rows)
        count = 0
        with self.store.write(branch, author) as wtx:
            for stmt, param_rows in groups:
                count += self._engine.insert_many(("ast", stmt), stmt, param_rows, wtx)
        return count

    def update_rows(self, table: str, values: Any, filter: Any, *, branch: str = MAIN, author: Any = None) -> int:
        _, name = self._table_view(table, branch, None)
        stmt, params = dataops.update_rows(name, values, filter)
        with self.store.write(branch, author) as wtx:
            return self._engine.write(("ast", stmt), stmt, params, wtx).affected_rows

    def delete_rows(self, table: str, filter: Any, *, branch: str = MAIN, author: Any = None) -> int:
        _, name = self._table_view(table, branch, None)
        stmt = dataops.delete_rows(name, filter)
        with self.store.write(branch, author) as wtx:
            return self._engine.write(("ast", stmt), stmt, (), wtx).affected_rows

    # ------------------------------------------------------------------ branches
    def create_branch(self, name: str, parent: str = MAIN, snapshot_id: float | None = None,
                      read_only: bool = False, isolated: bool = False) -> BranchInfo:
        return self.store.create_branch(name, parent, snapshot_id, read_only=read_only, isolated=isolated)

    def list_branches(self) -> list[BranchInfo]:
        return self.store.list_branches()

    def get_branch(self, name: str) -> BranchInfo:
        return self.store.get_branch(name)

    def delete_branch(self, name: str) -> None:
        self.store.delete_branch(name)

    def merge(self, source: str, target: str = MAIN, strategy: str = "Auto", author: Any = None) -> MergeResult:
        return self.store.merge(source, target, strategy, author)

    # ------------------------------------------------------------------ lifecycle
    def checkpoint(self) -> None:
        self.store.checkpoint()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "EmbeddedDatabase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
