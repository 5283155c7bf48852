"""`batchgen export RUN --to DIR --format hf|webdataset|parquet|csv|jsonl`: a run's images as a
dataset, streamed (memory flat). docs/export.md."""

from __future__ import annotations

import itertools
from pathlib import Path

from batchgen.errors import UsageError
from batchgen.export.records import Filters, iter_records
from batchgen.export.writers import FORMATS, write_manifest, write_parquet, write_webdataset

__all__ = ["FORMATS", "Filters", "export_run", "iter_records"]


def export_run(
    run_dir: str | Path,
    to: str | Path,
    fmt: str,
    filters: Filters | None = None,
    *,
    shard_images: int = 1000,
) -> int:
    """Write the run's images to ``to`` in ``fmt``; returns how many images."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    if shard_images < 1:
        raise UsageError("--shard-size: a whole number of images >= 1")
    out = Path(to)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--to {out}: not a directory; give a new or empty directory")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--to {out}: not empty; give a new or empty directory")
    filters = filters or Filters()
    records = iter_records(run_dir, filters)
    first = next(records, None)
    if first is None:
        # nothing is written: an HF folder without a shard, or a tar-less WebDataset, is no
        # dataset a reader loads, and "0 image(s) exported" hid why
        which = (
            " passes --best/--min-score" if filters.best or filters.min_score is not None else ""
        )
        msg = (
            f"{run_dir}: no image to export: no ok attempt with its image on disk{which}; "
            f"`batchgen report {run_dir}` shows how the jobs ended"
        )
        raise UsageError(msg)
    records = itertools.chain([first], records)
    if fmt in ("jsonl", "csv"):
        return write_manifest(records, out, fmt)
    if fmt == "webdataset":
        return write_webdataset(records, out, shard_images=shard_images)
    return write_parquet(records, out, hf=fmt == "hf", shard_images=shard_images)
