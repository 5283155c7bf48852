"""The spend ledger's file (batchgen.money.ledger opens it here): made user-only, another
application's SQLite file refused before anything is written into it, WAL, the schema, and
an older ledger's missing column added."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from batchgen.money.ledgerdata import ENV, HOLD_OWNER_SQL, SCHEMA_SQL, TABLES, LedgerError


def connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """A connection to the ledger at ``path``, made ready. OSError / sqlite3.Error when the
    file cannot be opened or used; LedgerError for another application's file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # created user-only before SQLite opens it (its -wal/-shm files take this mode).
    # Only a file that is not there: closing any descriptor of a database file drops
    # every POSIX lock this process holds on it, so an os.open + os.close of a ledger
    # another connection of this process has open (a session's link beside a judge's
    # sync, the writer thread's) would let other processes write under its feet: a
    # "database disk image is malformed" ledger (sqlite.org/howtocorrupt.html, 2.2)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(
        path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
    )
    _refuse_foreign(path, conn)  # before anything of another application's changes
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    _to_wal(conn, busy_timeout_s)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA_SQL)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(holds)")}
    if "owner" not in columns:
        try:
            conn.execute(HOLD_OWNER_SQL)
        except sqlite3.OperationalError as exc:  # another process added it a moment before
            if "duplicate column" not in str(exc):
                raise
    return conn


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _to_wal(conn: sqlite3.Connection, busy_timeout_s: float) -> None:
    """``PRAGMA journal_mode=WAL``, tried again while another process holds the file in the
    moment it is made WAL: SQLite answers that "database is locked" at once, without its busy
    handler (six processes opening one new ledger together: one in three rounds had a process
    exit 2 on it). Once the file is WAL the pragma is a no-op that never waits."""
    for attempt in Retrying(
        retry=retry_if_exception(_locked),
        stop=stop_after_delay(busy_timeout_s),
        wait=wait_random_exponential(multiplier=0.005, max=0.2),
        reraise=True,
    ):
        with attempt:
            conn.execute("PRAGMA journal_mode=WAL")


def _refuse_foreign(path: Path, conn: sqlite3.Connection) -> None:
    """Another application's SQLite file is not written into: a LedgerError naming it."""
    names = sorted(
        str(name)
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if str(name) not in TABLES and not str(name).startswith("sqlite_")
    )
    if names:
        conn.close()
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        msg = (
            f"{path} is not a batchgen spend ledger: it holds table(s) batchgen did not create "
            f"({shown}), and nothing was written into it. Give the ledger a file of its own "
            f"with --ledger PATH or {ENV}=PATH (a path that does not exist yet is created)"
        )
        raise LedgerError(msg)
