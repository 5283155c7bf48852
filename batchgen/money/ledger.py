"""The user-level ledger: every priced attempt of every run, in one SQLite file.

    Ledger.open(path) -> Ledger          (creates the file 0600, WAL mode)
    ledger.record(rows, run=RunTag)      (a live session's priced rows, as they are logged)
    ledger.replace_run(rows, run=RunTag) (a run's rows from its log: resume, `ledger rebuild`)
    ledger.hold(amount, caps, ...) / release(hold_id)   (the monthly budget's reservations)
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
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchgen.errors import UsageError

NANO = 1_000_000_000
ENV = "BATCHGEN_LEDGER"
OFF = ("off", "none", "")  # BATCHGEN_LEDGER=off / --ledger off: no ledger
BY = ("day", "model", "project", "endpoint", "provider", "run")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    run_dir TEXT,
    session INTEGER,
    job_id TEXT,
    attempt INTEGER,
    kind TEXT NOT NULL,          -- live / batch / judge
    project TEXT NOT NULL,
    provider TEXT,
    endpoint TEXT,
    model TEXT,
    quality TEXT,
    size TEXT,
    images INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    cost_source TEXT,
    at REAL NOT NULL,            -- unix seconds (the attempt's end)
    month TEXT NOT NULL          -- UTC YYYY-MM of at
);
CREATE INDEX IF NOT EXISTS attempts_month ON attempts (month, project);
CREATE INDEX IF NOT EXISTS attempts_run ON attempts (run_id);
-- the month's spend per project in whole nano-dollars, kept with every insert and delete
-- of attempts (same transaction): a reservation reads a few rows, not the month's attempts
CREATE TABLE IF NOT EXISTS totals (
    month TEXT NOT NULL,
    project TEXT NOT NULL,
    cost_nano INTEGER NOT NULL,
    PRIMARY KEY (month, project)
);
CREATE TABLE IF NOT EXISTS holds (
    id INTEGER PRIMARY KEY,
    project TEXT NOT NULL,
    month TEXT NOT NULL,
    amount_nano INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    month TEXT NOT NULL,
    scope TEXT NOT NULL,
    percent INTEGER NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (month, scope, percent)
);
"""
_COLUMNS = (
    "run_id", "run_dir", "session", "job_id", "attempt", "kind", "project", "provider",
    "endpoint", "model", "quality", "size", "images", "cost_usd", "cost_source", "at", "month",
)  # fmt: skip
_ADD_TOTAL = (
    "INSERT INTO totals (month, project, cost_nano) VALUES (?, ?, ?) "
    "ON CONFLICT (month, project) DO UPDATE SET cost_nano = cost_nano + excluded.cost_nano"
)
_INSERT = f"INSERT INTO attempts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


class LedgerError(UsageError):
    """The ledger file cannot be opened or used (the message names the file and the fix)."""


@dataclass(frozen=True, slots=True)
class RunTag:
    """What the ledger records of the run a row belongs to."""

    run_id: str
    project: str
    run_dir: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a hold did not fit: the scope (``*`` the whole ledger, else a project)."""

    scope: str
    cap_nano: int
    spent_nano: int
    held_nano: int
    amount_nano: int

    @property
    def remaining_nano(self) -> int:
        return max(self.cap_nano - self.spent_nano - self.held_nano, 0)


@dataclass(frozen=True, slots=True)
class SpendLine:
    key: str
    attempts: int
    images: int
    cost_usd: float

    @property
    def per_image(self) -> float | None:
        return self.cost_usd / self.images if self.images else None


ALL = "*"  # the scope of a budget over every project of the ledger


def default_path() -> Path:
    """The user's data directory (XDG_DATA_HOME on Linux) / batchgen / ledger.sqlite."""
    from platformdirs import user_data_path

    return user_data_path("batchgen", appauthor=False) / "ledger.sqlite"


def ledger_path(given: str | None) -> Path | None:
    """--ledger PATH, else $BATCHGEN_LEDGER, else the default; None when turned off."""
    value = given if given is not None else os.environ.get(ENV)
    if value is None:
        return default_path()
    if value.strip().lower() in OFF:
        return None
    return Path(value).expanduser()


def month_of(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m")


def month_start(at: float) -> float:
    d = datetime.fromtimestamp(at, UTC)
    return datetime(d.year, d.month, 1, tzinfo=UTC).timestamp()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _to_seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def ledger_row(row: Mapping[str, Any], run: RunTag) -> tuple[Any, ...] | None:
    """The ledger's tuple of one log row, or None when it cost nothing."""
    cost = row.get("cost_usd")
    if cost is None or not cost > 0:
        return None
    at = _to_seconds(row.get("finished_at")) or _to_seconds(row.get("started_at")) or time.time()
    kind = row.get("kind") or ("batch" if row.get("provider_batch_id") else "live")
    return (
        run.run_id, run.run_dir, row.get("session"), row.get("job_id"), row.get("attempt"),
        kind, run.project, row.get("provider"), row.get("endpoint"), row.get("model"),
        row.get("quality"), row.get("size"), int(row.get("image_count") or 0), float(cost),
        row.get("cost_source"), at, month_of(at),
    )  # fmt: skip


_I_PROJECT, _I_COST, _I_MONTH = _COLUMNS.index("project"), _COLUMNS.index("cost_usd"), -1


def _as_values(month: str, project: str, cost: float) -> tuple[Any, ...]:
    row: list[Any] = [None] * len(_COLUMNS)
    row[_I_PROJECT], row[_I_COST], row[_I_MONTH] = project, cost, month
    return tuple(row)


def _add_totals(conn: sqlite3.Connection, values: list[tuple[Any, ...]], sign: int) -> None:
    sums: dict[tuple[str, str], int] = {}
    for v in values:
        key = (v[_I_MONTH], v[_I_PROJECT])
        sums[key] = sums.get(key, 0) + round(float(v[_I_COST]) * NANO)
    conn.executemany(_ADD_TOTAL, [(m, p, sign * n) for (m, p), n in sums.items()])


class Ledger:
    """One connection to the ledger file, safe to share between the threads of a process."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.Lock()
        self.host = socket.gethostname()

    @classmethod
    def open(cls, path: str | Path, *, busy_timeout_s: float = 30.0) -> Ledger:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # created user-only before SQLite opens it (its -wal/-shm files take this mode)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
            conn = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
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
                conn.executemany(_INSERT, values)
                _add_totals(conn, values, 1)
        return len(values)

    def replace_run(self, rows: Iterable[Mapping[str, Any]], run: RunTag) -> int:
        """The run's rows become exactly these (from its log): one transaction."""
        values = [v for v in (ledger_row(r, run) for r in rows) if v is not None]
        with self._write() as conn:
            old = conn.execute(
                "SELECT month, project, cost_usd FROM attempts WHERE run_id = ?", (run.run_id,)
            ).fetchall()
            _add_totals(conn, [_as_values(m, p, c) for m, p, c in old], -1)
            conn.execute("DELETE FROM attempts WHERE run_id = ?", (run.run_id,))
            conn.executemany(_INSERT, values)
            _add_totals(conn, values, 1)
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
    ) -> int | Refusal:
        """Reserve ``amount_nano`` this month if it fits under every cap (scope -> nano);
        a hold id, or the first cap it would pass. Holds of dead processes (this host) and
        expired ones are dropped first."""
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
                "INSERT INTO holds (project, month, amount_nano, pid, host, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (project, month, amount_nano, os.getpid(), self.host, now + ttl_s),
            )
            hold_id = cur.lastrowid
        assert hold_id is not None
        return hold_id

    def release(self, hold_id: int) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM holds WHERE id = ?", (hold_id,))

    def held_nano(self, scope: str = ALL, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            return self._held_nano(self._conn, month_of(now), scope)

    @staticmethod
    def _held_nano(conn: sqlite3.Connection, month: str, scope: str) -> int:
        if scope == ALL:
            cur = conn.execute(
                "SELECT COALESCE(SUM(amount_nano), 0) FROM holds WHERE month = ?", (month,)
            )
        else:
            cur = conn.execute(
                "SELECT COALESCE(SUM(amount_nano), 0) FROM holds WHERE month = ? AND project = ?",
                (month, scope),
            )
        return int(cur.fetchone()[0])

    def _purge(self, conn: sqlite3.Connection, now: float) -> None:
        conn.execute("DELETE FROM holds WHERE expires_at < ?", (now,))
        for hold_id, pid in conn.execute(
            "SELECT id, pid FROM holds WHERE host = ? AND pid != ?", (self.host, os.getpid())
        ).fetchall():
            if not _pid_alive(int(pid)):
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
        self, *, since: float, until: float | None = None, by: str | None = None,
        project: str | None = None,
    ) -> list[SpendLine]:  # fmt: skip
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
