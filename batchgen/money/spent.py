"""What a run directory has cost so far: its images (the attempts log) and its judging (the
quality loop's scores table), every session. ``--max-cost`` bounds the two together, so each
session that takes money — a resume, live or through the Batch API, a regeneration round, a
scoring pass — starts its budget from :func:`spent`'s ``total``.

The scores table is ``RUN_DIR/scores/``: part and compact files named and merged as the log's
are (batchgen/runlog/files.py), written by batchgen/quality/store.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchgen.runlog.files import visible_files
from batchgen.runlog.reader import read_log

SCORES_DIR = "scores"  # RUN_DIR/scores: the judge's rows, one per image scored


@dataclass(frozen=True, slots=True)
class Spent:
    images_usd: float  # the log's cost_usd: every attempt of every session
    judging_usd: float  # the scores' cost_usd: every verdict, re-scores included

    @property
    def total(self) -> float:
        return self.images_usd + self.judging_usd


def spent(run_dir: Path | str) -> Spent:
    """USD billed so far for the run directory's images and for judging them."""
    return Spent(images_usd(run_dir), judging_usd(run_dir))


def images_usd(run_dir: Path | str) -> float:
    table = read_log(run_dir, ["cost_usd"])
    return float(pc.sum(table["cost_usd"]).as_py() or 0.0) if table.num_rows else 0.0


def judging_usd(run_dir: Path | str) -> float:
    total = 0.0
    for f in visible_files(Path(run_dir) / SCORES_DIR):
        try:
            column = pq.read_table(f.path, columns=["cost_usd"])["cost_usd"]
        except (OSError, pa.ArrowInvalid, KeyError):
            continue  # written by rename only when complete: a damaged file is not ours
        total += float(pc.sum(column).as_py() or 0.0)
    return total
