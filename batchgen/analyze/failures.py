"""What failed and why: errors by class (with the taxonomy's diagnosis and remedy), the most
common messages, sample jobs, and the failed jobs with their prompts.

Only rows that are not ok are read with their text columns (prompt, message), so the cost of
this module grows with the failures, not with the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from batchgen.analyze.load import read_columns
from batchgen.analyze.model import ErrorDetail, FailedJob, MessageCount, Sample
from batchgen.errors import ErrorClass
from batchgen.runlog.schema import STATUS_OK

TEXT_COLUMNS = [
    "job_id",
    "session",
    "attempt",
    "status",
    "error_class",
    "error_code",
    "http_status",
    "error_message",
    "prompt",
]
TOP_MESSAGES = 3
SAMPLES = 5
FAILED_LIST_MAX = 200


def _error_class(name: str) -> ErrorClass | None:
    try:
        return ErrorClass(name)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class FailureFigures:
    """RunReport's fields of the same names."""

    errors: dict[str, int]
    skipped: dict[str, int]
    error_details: dict[str, ErrorDetail]
    failed_jobs: tuple[FailedJob, ...]


def failure_figures(run_dir: Path, failed_ids: pa.ChunkedArray | pa.Array) -> FailureFigures:
    rows = read_columns(run_dir, TEXT_COLUMNS, filter=pc.field("status") != STATUS_OK)
    rows = rows.append_column("cls", pc.fill_null(rows["error_class"], "unknown")).append_column(
        "msg", pc.fill_null(rows["error_message"], "")
    )
    by_status = (
        rows.group_by(["cls", "status"])
        .aggregate([("job_id", "count")])
        .sort_by([("cls", "ascending"), ("status", "ascending")])
        .to_pylist()
    )
    attempts_by_class: dict[str, int] = {}
    skipped_by_class: dict[str, int] = {}
    for r in by_status:
        target = skipped_by_class if r["status"] == "skipped" else attempts_by_class
        target[r["cls"]] = target.get(r["cls"], 0) + r["job_id_count"]

    messages = (
        rows.group_by(["cls", "msg"])
        .aggregate([("job_id", "count")])
        .sort_by([("job_id_count", "descending"), ("msg", "ascending")])
        .to_pylist()
    )
    details: dict[str, ErrorDetail] = {}
    for name in sorted(set(attempts_by_class) | set(skipped_by_class)):
        cls = _error_class(name)
        details[name] = ErrorDetail(
            attempts=attempts_by_class.get(name, 0),
            skipped=skipped_by_class.get(name, 0),
            action=str(cls.action) if cls else None,
            diagnosis=cls.diagnosis if cls else "Not a class of batchgen.errors.",
            remedy=cls.remedy if cls else "Check the log rows of this class.",
            messages=tuple(
                MessageCount(message=m["msg"], count=m["job_id_count"])
                for m in messages
                if m["cls"] == name and m["msg"]
            )[:TOP_MESSAGES],
            samples=_samples(rows, name),
        )
    return FailureFigures(
        errors=dict(sorted(attempts_by_class.items(), key=lambda kv: -kv[1])),
        skipped=dict(sorted(skipped_by_class.items(), key=lambda kv: -kv[1])),
        error_details=details,
        failed_jobs=_failed_jobs(rows, failed_ids),
    )


def _samples(rows: pa.Table, name: str) -> tuple[Sample, ...]:
    picked = rows.filter(pc.equal(rows["cls"], name))
    seen: set[str] = set()
    out: list[Sample] = []
    for r in picked.select(["job_id", "prompt"]).slice(0, SAMPLES * 20).to_pylist():
        if r["job_id"] in seen:
            continue
        seen.add(r["job_id"])
        out.append(Sample(job_id=r["job_id"], prompt=r["prompt"]))
        if len(out) == SAMPLES:
            break
    return tuple(out)


def _failed_jobs(rows: pa.Table, failed_ids: pa.ChunkedArray | pa.Array) -> tuple[FailedJob, ...]:
    """The failed jobs (their last error row), at most FAILED_LIST_MAX, for the reports."""
    wanted = pc.unique(failed_ids)
    if len(wanted) == 0:
        return ()
    wanted = wanted.slice(0, FAILED_LIST_MAX) if len(wanted) > FAILED_LIST_MAX else wanted
    picked = rows.filter(pc.is_in(rows["job_id"], value_set=wanted)).sort_by(
        [("session", "ascending"), ("attempt", "ascending")]
    )
    last: dict[str, dict[str, Any]] = {}
    for r in picked.select(
        ["job_id", "session", "cls", "http_status", "error_code", "msg", "prompt"]
    ).to_pylist():
        last[r["job_id"]] = r
    return tuple(
        FailedJob(
            job_id=r["job_id"],
            error_class=r["cls"],
            http_status=r["http_status"],
            error_code=r["error_code"],
            message=r["msg"],
            prompt=r["prompt"],
        )
        for r in sorted(last.values(), key=lambda r: r["job_id"])
    )
