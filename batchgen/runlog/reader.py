"""Read the run log: only the visible files, only the requested columns.

Visible = complete ``part-*`` / ``compact-*`` files not replaced by an existing compact file
(temp files start with '.' and never match). Safe while a writer runs: a listing that races a
compaction (a part deleted after we listed it) is retried.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from batchgen.runlog import files, schema

_RETRIES = 20
_warned: set[Path] = set()
log = logging.getLogger("batchgen")


def _warn_damaged(paths: list[Path]) -> None:
    """One line per damaged file per process (a report reads the log many times)."""
    for path in paths:
        if path not in _warned:
            _warned.add(path)
            log.warning("%s", files.damaged_message(path, moved=False))


def resolve_log_dir(path: Path | str) -> Path:
    """Accept a run directory (with ``log/``) or the log directory itself."""
    p = Path(path)
    return p / "log" if (p / "log").is_dir() or (p / "run.json").exists() else p


def log_files(log_dir: Path | str) -> list[Path]:
    """The visible log files in write order (session, seq)."""
    return [f.path for f in files.visible_files(resolve_log_dir(log_dir))]


def read_log(
    run_dir_or_log_dir: Path | str,
    columns: list[str] | None = None,
    filter: pc.Expression | None = None,
) -> pa.Table:
    """The log as one table, rows in write order. ``columns`` limits what is read from disk;
    ``filter`` is a pyarrow expression (``pc.field("status") == "ok"``) pushed into the scan."""
    log_dir = resolve_log_dir(run_dir_or_log_dir)
    unknown = [c for c in columns or [] if c not in schema.COLUMNS]
    if unknown:
        msg = (
            f"read_log({log_dir}): unknown columns {unknown}; the log's columns are defined in "
            "batchgen/runlog/schema.py"
        )
        raise KeyError(msg)
    last: Exception | None = None
    skip: set[Path] = set()
    for attempt in range(_RETRIES):
        paths = []
        try:
            paths = [p for p in log_files(log_dir) if p not in skip]
            if not paths:
                empty = schema.SCHEMA.empty_table()
                return empty.select(columns) if columns is not None else empty
            dataset = ds.dataset([str(p) for p in paths], schema=schema.SCHEMA, format="parquet")
            return dataset.to_table(columns=columns, filter=filter)
        except (FileNotFoundError, OSError, pa.ArrowException, ValueError) as e:
            # a damaged file (truncated by hand, a disk fault): read around it, say so once
            bad = [] if isinstance(e, FileNotFoundError) else files.find_damaged(paths, deep=True)
            if bad:
                skip.update(bad)
                _warn_damaged(bad)
                continue
            if not isinstance(e, OSError):
                raise
            # a compaction deleted a listed part between our listing and the read
            last = e
            time.sleep(0.005 * (attempt + 1))
    msg = f"read_log({log_dir}): the file list kept changing under the reader: {last}"
    raise OSError(msg)
