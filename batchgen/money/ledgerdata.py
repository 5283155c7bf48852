"""The spend ledger's data: its SQLite tables, a log row as a ledger row, the ledger file's
place, calendar months (UTC). The store itself is batchgen.money.ledger."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchgen.errors import UsageError

NANO = 1_000_000_000
ENV = "BATCHGEN_LEDGER"
OFF = ("off", "none", "")  # BATCHGEN_LEDGER=off / --ledger off: no ledger
BY = ("day", "model", "project", "endpoint", "provider", "run")

SCHEMA_SQL = """
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
    expires_at REAL NOT NULL,
    owner TEXT                   -- a Batch API part's holds: 'batch RUN_ID part N'
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
    "run_id",
    "run_dir",
    "session",
    "job_id",
    "attempt",
    "kind",
    "project",
    "provider",
    "endpoint",
    "model",
    "quality",
    "size",
    "images",
    "cost_usd",
    "cost_source",
    "at",
    "month",
)
_ADD_TOTAL = (
    "INSERT INTO totals (month, project, cost_nano) VALUES (?, ?, ?) "
    "ON CONFLICT (month, project) DO UPDATE SET cost_nano = cost_nano + excluded.cost_nano"
)
INSERT_SQL = (
    f"INSERT INTO attempts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)


# a ledger made before holds had an owner gets the column when it is opened
HOLD_OWNER_SQL = "ALTER TABLE holds ADD COLUMN owner TEXT"
TABLES = frozenset({"attempts", "totals", "holds", "alerts"})
# a batch's holds outlive the process that submitted it (--detach, Ctrl-C): until its
# collection settles them, or for this long (a batch ends within 24 h; collect in time)
PARKED_TTL_S = 31 * 24 * 3600.0


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
    # lazy: platformdirs (~14 ms, ~25 modules) only when the ledger's default place is asked
    # for; the parser imports this module (--ledger's help) without it (tests/test_startup.py)
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


def host_identity() -> str:
    """Where a hold's pid means something: the host name, and on Linux the pid namespace
    (containers sharing the host's name — ``--network host`` — each have their own pids: a
    live holder's pid there is "no such process" here, and its hold was dropped as dead)."""
    name = socket.gethostname()
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # 'pid:[4026531836]'
    except OSError:
        return name
    return f"{name} {namespace}"


def pid_alive(pid: int) -> bool:
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
        run.run_id,
        run.run_dir,
        row.get("session"),
        row.get("job_id"),
        row.get("attempt"),
        kind,
        run.project,
        row.get("provider"),
        row.get("endpoint"),
        row.get("model"),
        row.get("quality"),
        row.get("size"),
        int(row.get("image_count") or 0),
        float(cost),
        row.get("cost_source"),
        at,
        month_of(at),
    )


_I_PROJECT, _I_COST, _I_MONTH = _COLUMNS.index("project"), _COLUMNS.index("cost_usd"), -1


def as_values(month: str, project: str, cost: float) -> tuple[Any, ...]:
    row: list[Any] = [None] * len(_COLUMNS)
    row[_I_PROJECT], row[_I_COST], row[_I_MONTH] = project, cost, month
    return tuple(row)


_I_ATTEMPT = tuple(_COLUMNS.index(c) for c in ("session", "job_id", "attempt", "kind", "at"))


def attempt_key(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """What names one attempt of a run across copies of its directory."""
    return tuple(values[i] for i in _I_ATTEMPT)


def add_totals(conn: sqlite3.Connection, values: list[tuple[Any, ...]], sign: int) -> None:
    sums: dict[tuple[str, str], int] = {}
    for v in values:
        key = (v[_I_MONTH], v[_I_PROJECT])
        sums[key] = sums.get(key, 0) + round(float(v[_I_COST]) * NANO)
    conn.executemany(_ADD_TOTAL, [(m, p, sign * n) for (m, p), n in sums.items()])
