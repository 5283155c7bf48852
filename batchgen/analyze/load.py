"""Read what the analyzers need from a run directory: only the columns asked for.

The log is a dataset of part files (``RUN_DIR/log/*.parquet``); ``batchgen.runlog.reader``
owns the rules for reading it (temp files, compaction).  Until that module exists we read the
dataset directly, skipping temp files (their names start with ``.``) and files without a
footer (a writer killed mid-file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from batchgen.runlog.manifest import Manifest, SessionRecord, read_manifest
from batchgen.runlog.reader import read_log
from batchgen.runlog.schema import SCHEMA

# run.json has one type and one reader, the run directory's (batchgen.runlog.manifest)
Session = SessionRecord


def load_manifest(run_dir: Path) -> Manifest:
    """Read ``run.json``; a missing or damaged manifest gives an empty one (the log still
    reports), because a killed first session may not have written it completely."""
    return read_manifest(run_dir)


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
    """Use the run log's own reader (compaction-aware)."""
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
