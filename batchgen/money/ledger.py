"""The user-level ledger: every priced attempt of every run, in one SQLite file.

    Ledger.open(path) -> Ledger          (creates the file 0600, WAL mode)
    ledger.record(rows, run=RunTag)      (a live session's priced rows, as they are logged)
    ledger.replace_run(rows, run=RunTag) (a run's rows from its log: resume, `ledger rebuild`)
    ledger.hold(amount, caps, ...) / release(hold_id)   (the monthly budget's reservations)
    ledger.own(ids, owner) / park(owner) / adopt(owner) / release_owner(owner)
                                         (a Batch API part's holds, until it is collected)
    ledger.spend(since=, by=) -> list[SpendLine]

The run's Parquet log stays the source of truth for the run; the ledger is the view across
runs (and processes) that a monthly budget needs, so it can always be rebuilt from the logs.
SQLite because several runs write it at once: WAL lets readers go on while one writes, and a
reservation is one short ``BEGIN IMMEDIATE`` transaction, so two processes cannot both see
the same free money. Amounts of budgets are whole nano-dollars (as in money/budget.py).

No key ever reaches it: a row carries run, project, provider, endpoint name, model, quality,
size, images, cost and time — never a URL, a header or a prompt.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from batchgen.errors import UsageError
from batchgen.money.ledgerdata import (
    ALL,
    BY,
    ENV,
    INSERT_SQL,
    NANO,
    OFF,
    PARKED_TTL_S,
    LedgerError,
    Refusal,
    RunTag,
    SpendLine,
    add_totals,
    as_values,
    attempt_key,
    default_path,
    host_identity,
    ledger_path,
    ledger_row,
    month_of,
    month_start,
    pid_alive,
)
from batchgen.money.ledgerfile import connect

__all__ = [
    "ALL",
    "BY",
    "ENV",
    "NANO",
    "OFF",
    "Ledger",
    "LedgerError",
    "Refusal",
    "RunTag",
    "SpendLine",
    "default_path",
    "ledger_path",
    "ledger_row",
    "month_of",
    "month_start",
]


class Ledger:
    """One connection to the ledger file, safe to share between the threads of a process."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.Lock()
        self.host = host_identity()

    @classmethod
    def open(cls, path: str | Path, *, busy_timeout_s: float = 30.0, create: bool = True) -> Ledger:
        """``create=False`` for a reader (``batchgen spend``): a ledger that is not there is a
        LedgerError naming the path, never a new empty one read as "$0 spent" (a typo)."""
        path = Path(path)
        if not create and not path.is_file():
            msg = (
                f"no spend ledger at {path}: check the path (--ledger PATH, {ENV}, or "
                "config.toml's ledger); runs record their spend at the default place unless "
                "told otherwise"
            )
            raise LedgerError(msg)
        try:
            conn = connect(path, busy_timeout_s)
        except (OSError, sqlite3.Error) as exc:
            msg = (
                f"the spend ledger {path} cannot be opened ({exc}): give another file with "
                f"--ledger PATH or {ENV}=PATH, or turn it off with --ledger off"
            )
            raise LedgerError(msg) from exc
        return cls(path, conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, taken at once (BEGIN IMMEDIATE)."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise LedgerError(f"the spend ledger {self.path} is busy or broken: {exc}") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    msg = f"the spend ledger {self.path} cannot be written: {exc}"
                    raise LedgerError(msg) from exc
                raise

    # ---- attempts -------------------------------------------------------------------------
    def record(self, rows: Iterable[Mapping[str, Any]], run: RunTag) -> int:
        """Add the priced rows (as logged); returns how many."""
        values = [v for v in (ledger_row(r, run) for r in rows) if v is not None]
        if values:
            with self._write() as conn:
                conn.executemany(INSERT_SQL, values)
                add_totals(conn, values, 1)
        return len(values)

    def replace_run(self, rows: Iterable[Mapping[str, Any]], run: RunTag) -> int:
        """The run's rows from this directory become exactly these (from its log): one
        transaction. Rows of the same run id from another directory that still exists (a
        copy, ``cp -r``, resumed on its own) are kept, and the attempts both logs hold (those
        from before the copy) are counted once; rows of a directory that is gone (moved) are
        replaced."""
        values = [v for v in (ledger_row(r, run) for r in rows) if v is not None]
        with self._lock:
            dirs = [
                d
                for (d,) in self._conn.execute(
                    "SELECT DISTINCT run_dir FROM attempts WHERE run_id = ?", (run.run_id,)
                ).fetchall()
            ]
        others = [d for d in dirs if d and d != run.run_dir and Path(d).is_dir()]
        keep = f"run_dir IN ({', '.join('?' * len(others))})" if others else "0"
        mine = f"run_id = ? AND NOT ({keep})"
        with self._write() as conn:
            old = conn.execute(
                f"SELECT month, project, cost_usd FROM attempts WHERE {mine}",
                (run.run_id, *others),
            ).fetchall()
            add_totals(conn, [as_values(m, p, c) for m, p, c in old], -1)
            conn.execute(f"DELETE FROM attempts WHERE {mine}", (run.run_id, *others))
            if others:
                kept = set(
                    conn.execute(
                        "SELECT session, job_id, attempt, kind, at FROM attempts WHERE run_id = ?",
                        (run.run_id,),
                    ).fetchall()
                )
                values = [v for v in values if attempt_key(v) not in kept]
            conn.executemany(INSERT_SQL, values)
            add_totals(conn, values, 1)
        return len(values)

    def run_total(self, run_id: str) -> float:
        with self._lock:
            cur = self._conn.execute(
                "SELECT COALESCE(SUM(cost_usd), 0) FROM attempts WHERE run_id = ?", (run_id,)
            )
            return float(cur.fetchone()[0])

    def spent_nano(self, month: str, scope: str = ALL) -> int:
        with self._lock:
            return self._spent_nano(self._conn, month, scope)

    @staticmethod
    def _spent_nano(conn: sqlite3.Connection, month: str, scope: str) -> int:
        if scope == ALL:
            cur = conn.execute(
                "SELECT COALESCE(SUM(cost_nano), 0) FROM totals WHERE month = ?", (month,)
            )
        else:
            cur = conn.execute(
                "SELECT COALESCE(SUM(cost_nano), 0) FROM totals WHERE month = ? AND project = ?",
                (month, scope),
            )
        return int(cur.fetchone()[0])

    # ---- reservations -----------------------------------------------------------------
    def hold(
        self,
        amount_nano: int,
        caps: Mapping[str, int],
        *,
        project: str,
        ttl_s: float,
        now: float | None = None,
        owner: str | None = None,
    ) -> int | Refusal:
        """Reserve ``amount_nano`` this month (and every later one until it is released) if it
        fits under every cap (scope -> nano) beside the month's spend and every hold still out;
        a hold id, or the first cap it would pass. Holds of dead processes (this host) and
        expired ones are dropped first. No caps: held whatever the budget (money already
        committed: a batch submitted earlier, whose hold a crash dropped)."""
        now = time.time() if now is None else now
        month = month_of(now)
        with self._write() as conn:
            self._purge(conn, now)
            for scope, cap in caps.items():
                spent = self._spent_nano(conn, month, scope)
                held = self._held_nano(conn, month, scope)
                if spent + held + amount_nano > cap:
                    return Refusal(scope, cap, spent, held, amount_nano)
            cur = conn.execute(
                "INSERT INTO holds (project, month, amount_nano, pid, host, expires_at, owner) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (project, month, amount_nano, os.getpid(), self.host, now + ttl_s, owner),
            )
            hold_id = cur.lastrowid
        assert hold_id is not None
        return hold_id

    def release(self, hold_id: int) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM holds WHERE id = ?", (hold_id,))

    def own(self, hold_ids: Iterable[int], owner: str) -> None:
        """The holds become ``owner``'s (a batch part's): released together by it."""
        ids = list(hold_ids)
        if ids:
            with self._write() as conn:
                conn.executemany(
                    "UPDATE holds SET owner = ? WHERE id = ?", [(owner, i) for i in ids]
                )

    def park(self, owner: str, now: float | None = None) -> None:
        """``owner``'s holds outlive this process (its batch runs on at the provider after a
        --detach or a Ctrl-C): no pid of theirs is checked; collection settles them."""
        now = time.time() if now is None else now
        with self._write() as conn:
            conn.execute(
                "UPDATE holds SET pid = 0, expires_at = ? WHERE owner = ?",
                (now + PARKED_TTL_S, owner),
            )

    def adopt(self, owner: str, ttl_s: float, now: float | None = None) -> int:
        """``owner``'s holds (parked by an earlier process) become this process's; the
        amount they hold (0: none left, e.g. dropped with a killed process)."""
        now = time.time() if now is None else now
        with self._write() as conn:
            self._purge(conn, now)
            conn.execute(
                "UPDATE holds SET pid = ?, host = ?, expires_at = ? WHERE owner = ?",
                (os.getpid(), self.host, now + ttl_s, owner),
            )
            cur = conn.execute(
                "SELECT COALESCE(SUM(amount_nano), 0) FROM holds WHERE owner = ?", (owner,)
            )
            return int(cur.fetchone()[0])

    def release_owner(self, owner: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM holds WHERE owner = ?", (owner,))

    def held_nano(self, scope: str = ALL, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            return self._held_nano(self._conn, month_of(now), scope)

    @staticmethod
    def _held_nano(conn: sqlite3.Connection, month: str, scope: str) -> int:
        """What ``month`` has held: every hold taken in it or before and not released yet.
        A hold taken on the 31st whose spend is recorded when it is collected (the 1st: a
        batch's) holds the next month too, until its cost is there instead."""
        if scope == ALL:
            cur = conn.execute(
                "SELECT COALESCE(SUM(amount_nano), 0) FROM holds WHERE month <= ?", (month,)
            )
        else:
            cur = conn.execute(
                "SELECT COALESCE(SUM(amount_nano), 0) FROM holds WHERE month <= ? AND project = ?",
                (month, scope),
            )
        return int(cur.fetchone()[0])

    def _purge(self, conn: sqlite3.Connection, now: float) -> None:
        conn.execute("DELETE FROM holds WHERE expires_at < ?", (now,))
        for hold_id, pid in conn.execute(
            # pid 0: parked (a batch's holds, no process of theirs)
            "SELECT id, pid FROM holds WHERE host = ? AND pid != ? AND pid != 0",
            (self.host, os.getpid()),
        ).fetchall():
            if not pid_alive(int(pid)):
                conn.execute("DELETE FROM holds WHERE id = ?", (hold_id,))

    # ---- alerts -----------------------------------------------------------------------
    def claim_alert(self, month: str, scope: str, percent: int, now: float | None = None) -> bool:
        """True for the one process that first reports this threshold this month."""
        with self._write() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO alerts (month, scope, percent, at) VALUES (?, ?, ?, ?)",
                (month, scope, percent, time.time() if now is None else now),
            )
            return cur.rowcount == 1

    # ---- reading ----------------------------------------------------------------------
    def spend(
        self,
        *,
        since: float,
        until: float | None = None,
        by: str | None = None,
        project: str | None = None,
    ) -> list[SpendLine]:
        """Attempts, images and cost from ``since`` (unix s), grouped ``by`` one of BY."""
        if by is not None and by not in BY:
            raise UsageError(f"--by must be one of {', '.join(BY)}, got {by!r}")
        key = {
            None: "'total'",
            "day": "strftime('%Y-%m-%d', at, 'unixepoch')",
            "run": "run_id",
        }.get(by, f"COALESCE({by}, '-')")
        where: list[str] = ["at >= ?"]
        args: list[Any] = [since]
        if until is not None:
            where.append("at < ?")
            args.append(until)
        if project is not None:
            where.append("project = ?")
            args.append(project)
        sql = (
            f"SELECT {key} AS k, COUNT(*), COALESCE(SUM(images), 0), COALESCE(SUM(cost_usd), 0) "
            f"FROM attempts WHERE {' AND '.join(where)} GROUP BY k ORDER BY k"
        )
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [SpendLine(str(k), int(a), int(i), float(c)) for k, a, i, c in rows]
