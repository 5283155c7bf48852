"""`batchgen export RUN --to DIR --format hf|webdataset|parquet|csv|jsonl`: a run's images as a
dataset, streamed (memory flat). docs/export.md."""

from __future__ import annotations

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
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--to {out}: not empty; give a new or empty directory")
    records = iter_records(run_dir, filters or Filters())
    if fmt in ("jsonl", "csv"):
        return write_manifest(records, out, fmt)
    if fmt == "webdataset":
        return write_webdataset(records, out, shard_images=shard_images)
    return write_parquet(records, out, hf=fmt == "hf", shard_images=shard_images)
