"""Read what the analyzers need from a run directory: only the columns asked for.

The log is a dataset of part files (``RUN_DIR/log/*.parquet``); ``batchgen.runlog.reader``
owns the rules for reading it (temp files, compaction).  Until that module exists we read the
dataset directly, skipping temp files (their names start with ``.``) and files without a
footer (a writer killed mid-file).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from batchgen.runlog.schema import SCHEMA


@dataclass(frozen=True, slots=True)
class Session:
    session: int
    started_at: float | None
    ended_at: float | None
    how: str | None
    autopilot: dict[str, Any] | None = None  # what the session's limiter learned
    # `run --providers`: per endpoint, what its limiter learned and whether it was taken out
    endpoints: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """The parts of ``run.json`` the report uses; missing keys stay None."""

    jobs: int | None = None
    images: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    sessions: tuple[Session, ...] = ()
    name: str | None = None
    job_file: str | None = None  # resolved path of the job file (edits' inputs are relative)


def _epoch(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _autopilot(summary: Any) -> dict[str, Any] | None:
    found = summary.get("autopilot") if isinstance(summary, dict) else None
    return dict(found) if isinstance(found, dict) else None


def _endpoints(summary: Any) -> dict[str, Any] | None:
    found = summary.get("endpoints") if isinstance(summary, dict) else None
    return dict(found) if isinstance(found, dict) else None


def load_manifest(run_dir: Path) -> Manifest:
    """Read ``run.json``; a missing or damaged manifest gives an empty one (the log still
    reports), because a killed first session may not have written it completely."""
    path = Path(run_dir) / "run.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Manifest(name=Path(run_dir).name)
    job_file = raw.get("job_file") if isinstance(raw.get("job_file"), dict) else {}
    jobs = raw.get("jobs", job_file.get("jobs", job_file.get("job_count")))
    images = raw.get("images", job_file.get("images"))
    sessions = []
    for i, s in enumerate(raw.get("sessions") or [], start=1):
        if not isinstance(s, dict):
            continue
        sessions.append(
            Session(
                session=_int_or_none(s.get("session", s.get("id", i))) or i,
                started_at=_epoch(s.get("started_at")),
                ended_at=_epoch(s.get("ended_at")),
                how=s.get("how"),
                autopilot=_autopilot(s.get("summary")),
                endpoints=_endpoints(s.get("summary")),
            )
        )
    settings = raw.get("settings") if isinstance(raw.get("settings"), dict) else {}
    return Manifest(
        jobs=_int_or_none(jobs),
        images=_int_or_none(images),
        settings=dict(settings),
        sessions=tuple(sessions),
        name=raw.get("name") or Path(run_dir).name,
        job_file=raw["job_file"] if isinstance(raw.get("job_file"), str) else None,
    )


def _log_files(log_dir: Path) -> list[str]:
    return sorted(
        str(p) for p in log_dir.glob("*.parquet") if not p.name.startswith(".") and p.is_file()
    )


def read_columns(
    run_dir: Path, columns: list[str], filter: pc.Expression | None = None
) -> pa.Table:
    """Read ``columns`` of the run's log (rows matching ``filter``); an empty table with
    those columns if the log has no readable file yet."""
    unknown = [c for c in columns if c not in SCHEMA.names]
    if unknown:
        msg = (
            f"batchgen/analyze/load.py: unknown log columns {unknown}; "
            "use names from batchgen.runlog.schema.COLUMNS"
        )
        raise ValueError(msg)
    table = _read_via_reader(Path(run_dir), columns, filter)
    if table is not None:
        return table
    files = _log_files(Path(run_dir) / "log")
    if not files:
        return SCHEMA.empty_table().select(columns)
    dataset = ds.dataset(files, format="parquet", schema=SCHEMA, exclude_invalid_files=True)
    return dataset.to_table(columns=columns, filter=filter)


def _read_via_reader(
    run_dir: Path, columns: list[str], filter: pc.Expression | None
) -> pa.Table | None:
    """Use the run log's own reader (compaction-aware) once it exists."""
    try:
        from batchgen.runlog.reader import read_log
    except ImportError:
        return None
    return read_log(run_dir, columns=columns, filter=filter)


def seconds(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamps (or float epoch seconds) as float64 epoch seconds; null → NaN."""
    if pa.types.is_timestamp(column.type):
        unit = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[column.type.unit]
        ints = pc.cast(column, pa.int64())
        return pc.divide(pc.cast(ints, pa.float64()), unit).to_numpy(zero_copy_only=False)
    return floats(column)


def floats(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as float64 with NaN for null."""
    arr = pc.cast(column, pa.float64())
    return pc.fill_null(arr, np.nan).to_numpy(zero_copy_only=False)


def strings(column: pa.ChunkedArray | pa.Array, fill: str = "") -> np.ndarray:
    return np.asarray(pc.fill_null(column, fill).to_numpy(zero_copy_only=False), dtype=object)
