"""Figures of money from the attempt log: total and wasted cost, cost per image, cost by
setting (model × quality × size) and by source, and the requests possibly billed twice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batchgen.analyze.figures import Columns
from batchgen.analyze.load import floats
from batchgen.analyze.model import CostGroup, CostSource
from batchgen.errors import ErrorClass
from batchgen.numbers import plural
from batchgen.runlog.manifest import Manifest
from batchgen.runlog.schema import STATUS_ERROR


@dataclass(frozen=True, slots=True)
class CostFigures:
    cost_usd_total: float
    cost_per_image_usd: float | None
    cost_wasted_usd: float
    cost_by_group: tuple[CostGroup, ...]
    cost_by_source: dict[str, CostSource]
    cost_unknown_rows: int
    cost_note: str | None


def cost_figures(cols: Columns, images: int) -> CostFigures:
    cost = np.nan_to_num(cols.cost_usd)
    total = float(cost.sum())
    wasted = float(cost[~cols.ok].sum())
    table = cols.table
    # images taken from an earlier run (run --reuse / --from-pilot) cost nothing here: they
    # are counted apart and left out of the cost per image
    is_reused = np.asarray(pc.fill_null(pc.equal(table["cost_source"], "reused"), False))
    groups = (
        pa.table(
            {
                "model": pc.fill_null(table["model"], "?"),
                "quality": pc.fill_null(table["quality"], "default"),
                "size": pc.fill_null(table["size"], "default"),
                "cost": pa.array(cost),
                "images": pa.array(np.where(is_reused, 0.0, cols.images_per_row())),
                "attempts": pa.array(cols.sent.astype(np.int64)),
            }
        )
        .group_by(["model", "quality", "size"])
        .aggregate([("cost", "sum"), ("images", "sum"), ("attempts", "sum")])
        # group_by's order varies between calls (threads): ties and all sorted, so the same
        # run gives the same document byte for byte
        .sort_by(
            [
                ("cost_sum", "descending"),
                ("model", "ascending"),
                ("quality", "ascending"),
                ("size", "ascending"),
            ]
        )
    )
    by_group = tuple(
        CostGroup(
            model=r["model"],
            quality=r["quality"],
            size=r["size"],
            cost_usd=r["cost_sum"],
            images=int(r["images_sum"]),
            attempts=int(r["attempts_sum"]),
            cost_per_image_usd=(r["cost_sum"] / r["images_sum"]) if r["images_sum"] else None,
        )
        for r in groups.to_pylist()
    )
    sources = (
        pa.table({"source": pc.fill_null(table["cost_source"], "none"), "cost": pa.array(cost)})
        .group_by("source")
        .aggregate([("cost", "sum"), ("cost", "count")])
        .sort_by("source")
    )
    by_source = {
        r["source"]: CostSource(rows=r["cost_count"], cost_usd=r["cost_sum"])
        for r in sources.to_pylist()
    }
    unknown = by_source["unknown"].rows if "unknown" in by_source else 0
    reused = int(cols.images_per_row()[is_reused].sum())
    paid = images - reused
    notes = []
    if unknown:
        have = "has" if unknown == 1 else "have"
        notes.append(f"{plural(unknown, 'row')} {have} unknown cost: the totals are a lower bound")
    if reused:
        notes.append(
            f"{plural(reused, 'image')} reused from earlier runs (no request, no cost; "
            "`reused_from` names the run): left out of the cost per image"
        )
    return CostFigures(
        cost_usd_total=total,
        cost_per_image_usd=(total / paid) if paid > 0 else None,
        cost_wasted_usd=wasted,
        cost_by_group=by_group,
        cost_by_source=by_source,
        cost_unknown_rows=int(unknown),
        cost_note="; ".join(notes) or None,
    )


def possibly_billed_twice(cols: Columns, run_dir: Path, manifest: Manifest) -> int:
    """Requests sent again after one of the same job was lost in flight: the provider may
    have billed the answer we never saw. A lost request is a row with error_class cancelled
    and status error — error_code ``in_flight_at_crash`` (logged by resume for a crash), or
    a request cancelled in flight by a forced stop (a second Ctrl-C, the grace running out).
    It counts once a real request of that job (attempt >= 1) follows it: not when the job's
    saved images were adopted, not while the run was never resumed."""
    lost = (cols.status == STATUS_ERROR) & (cols.error_class == ErrorClass.CANCELLED)
    if not lost.any():
        return 0
    # a batch line the provider says never ran (batch_expired, batch_cancelled, a batch that
    # failed validation: error code batch_*) was not billed: sending it again costs once
    where = np.flatnonzero(lost)
    never_ran = [isinstance(c, str) and c.startswith("batch_") for c in cols.error_code[where]]
    lost[where[np.array(never_ran, dtype=bool)]] = False
    if not lost.any():
        return 0
    n = len(cols.status)
    attempt = (
        floats(cols.table["attempt"]) if "attempt" in cols.table.column_names else (np.ones(n))
    )
    crash_row = cols.error_code == "in_flight_at_crash"
    sent = cols.sent & (attempt >= 1) & ~crash_row
    # order: session first, then the row's place in the log (rows are in write order)
    session = np.nan_to_num(cols.session, nan=0.0).astype(np.int64)
    order = session * (n + 1) + np.arange(n, dtype=np.int64)
    codes = pc.dictionary_encode(cols.job_id.combine_chunks()).indices.to_numpy(
        zero_copy_only=False
    )
    last_sent = np.full(int(codes.max()) + 1 if n else 0, -1, dtype=np.int64)
    np.maximum.at(last_sent, codes[sent], order[sent])
    return int((last_sent[codes[lost]] > order[lost]).sum())
