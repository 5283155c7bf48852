"""`batchgen export RUN --to DIR --format hf|webdataset|parquet|csv|jsonl`: a run's images as a
dataset, streamed (memory flat). docs/export.md."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.errors import UsageError
from batchgen.export.records import Filters, iter_records
from batchgen.export.staging import cannot, leftover, staged
from batchgen.export.writers import FORMATS, write_manifest, write_parquet, write_webdataset
from batchgen.numbers import plural

__all__ = ["FORMATS", "Exported", "Filters", "export_run", "iter_records"]


@dataclass(frozen=True, slots=True)
class Exported:
    images: int  # images written
    missing: tuple[str, ...]  # images the log names (passing the filters) not on disk: skipped

    def missing_note(self) -> str | None:
        """The line that says what was skipped and why (None: nothing was)."""
        if not self.missing:
            return None
        n = len(self.missing)
        return (
            f"{plural(n, 'image')} skipped: the log names {'it' if n == 1 else 'them'} but "
            f"{'it is' if n == 1 else 'they are'} not on disk (deleted or moved), "
            f"e.g. {self.missing[0]}"
        )


def export_run(
    run_dir: str | Path,
    to: str | Path,
    fmt: str,
    filters: Filters | None = None,
    *,
    shard_images: int = 1000,
) -> Exported:
    """Write the run's images to ``to`` in ``fmt``: every file whole under its final name, or
    none (an I/O error is a UsageError naming the file and the cause; --to is left as it
    was). Returns how many images were written and which were skipped, not on disk."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    if shard_images < 1:
        raise UsageError("--shard-size: a whole number of images >= 1")
    out = Path(to)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--to {out}: not a directory; give a new or empty directory")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--to {out}: not empty; give a new or empty directory{leftover(out)}")
    filters = filters or Filters()
    missing: set[str] = set()
    records = iter_records(run_dir, filters, missing)
    first = next(records, None)
    if first is None:
        # nothing is written: an HF folder without a shard, or a tar-less WebDataset, is no
        # dataset a reader loads, and "0 image(s) exported" hid why
        which = (
            " passes --best/--min-score" if filters.best or filters.min_score is not None else ""
        )
        are = "is" if len(missing) == 1 else "are"
        gone = (
            f" ({plural(len(missing), 'image')} the log names {are} not on disk, "
            f"e.g. {min(missing)})"
            if missing
            else ""
        )
        msg = (
            f"{run_dir}: no image to export: no ok attempt with its image on disk{which}{gone}; "
            f"`batchgen report {run_dir}` shows how the jobs ended"
        )
        raise UsageError(msg)
    records = itertools.chain([first], records)
    with staged(out) as stage:
        try:
            count = _write(records, stage, fmt, shard_images)
        except OSError as exc:
            raise cannot(exc, stage, out) from None
    return Exported(count, tuple(sorted(missing)))


def _write(records: Iterable[dict[str, Any]], out: Path, fmt: str, shard_images: int) -> int:
    if fmt in ("jsonl", "csv"):
        return write_manifest(records, out, fmt)
    if fmt == "webdataset":
        return write_webdataset(records, out, shard_images=shard_images)
    return write_parquet(records, out, hf=fmt == "hf", shard_images=shard_images)
