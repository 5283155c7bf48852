"""After a crash, before a resume sends anything: adopt images that reached the disk without
their log row, and log the jobs that were in flight (they may have been billed twice).

Which jobs were in flight: the writer's ``state/inflight-<session>.json`` is a snapshot taken
at each flush (~1 s), so it misses requests sent after the last flush, which at a few hundred
requests per second are all of those in flight at a kill. ``SentJournal`` closes that window:
the pool's in-flight set appends every job id to ``state/sent-<session>.txt`` before its
request is sent (one unbuffered ``write``, no fsync: the page cache survives kill -9).

Call these under the run lock: ``remove_torn_images`` deletes temp files a live writer would
still be renaming."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from batchgen.errors import ErrorClass
from batchgen.jobs.model import Job
from batchgen.money import PriceTable, cost_of_attempt
from batchgen.runlog import files
from batchgen.runlog.journal import SentJournal, journal_path
from batchgen.runlog.orphans import find_orphans
from batchgen.runlog.reader import read_log
from batchgen.runlog.row import Row
from batchgen.runlog.rundir import RunDir
from batchgen.runlog.schema import STATUS_ERROR, STATUS_OK
from batchgen.runlog.writer import RunLogWriter

__all__ = ["IN_FLIGHT_AT_CRASH", "SentJournal", "journal_path"]

IN_FLIGHT_AT_CRASH = "in_flight_at_crash"


def _base_row(run_id: str, session: int, job: Job) -> Row:
    now = time.time()
    fields = job.log_fields()
    return {
        "run_id": run_id,
        "session": session,
        "job_id": job.id,
        "job_line": job.line,
        "fingerprint": job.fingerprint,
        "attempt": 0,
        "provider": "recovery",
        "model": job.model,
        "prompt": job.prompt,
        "size": job.size,
        "quality": job.quality,
        "n": job.n,
        "params": job.params_json(),
        "queued_at": now,
        "finished_at": now,
        "input_hashes": fields["input_hashes"],
        "vars": fields["vars"],
    }


def settle_log(log_dir: Path) -> list[Path]:
    """Before a resume reads the log: quarantine damaged files (a truncated or overwritten
    Parquet file would stop every reader), recover a crashed writer's leftovers and compact.
    Returns the damaged files' original paths (their rows are unknown: those jobs run again,
    their saved images are adopted)."""
    damaged = files.quarantine_damaged(log_dir)
    try:
        files.compact_all(log_dir)
    except (pa.ArrowException, ValueError) as exc:
        # a file with an intact footer and a damaged page: find it by reading every row
        deeper = files.quarantine_damaged(log_dir, deep=True)
        if not deeper:
            raise exc
        damaged += deeper
        files.compact_all(log_dir)
    return damaged


def remove_torn_images(images_dir: Path) -> int:
    """Delete ``.<name>.tmp`` files an image write left when the process died mid-write: such a
    file never got its final name, so its job has no image and runs again. Returns how many."""
    removed = 0
    try:
        entries = list(os.scandir(images_dir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed


def adopt_orphans(
    rundir: RunDir, run_id: str, session: int, wanted: Mapping[str, Job], prices: PriceTable
) -> list[str]:
    """Log an ok row (cost_source=recovered) for every job whose full set of images is on disk
    and decodes. Returns the adopted job ids; they are not sent again."""
    orphans = find_orphans(rundir.images_dir, (), {i: j.n for i, j in wanted.items()})
    adoptable = [o for o in orphans if o.adoptable]
    if not adoptable:
        return []
    with RunLogWriter(
        rundir.log_dir, run_id=run_id, session=session, state_dir=rundir.state_dir
    ) as writer:
        for orphan in adoptable:
            job = wanted[orphan.job_id]
            cost, _ = cost_of_attempt(prices, job, None, orphan.wanted)
            row = _base_row(run_id, session, job)
            row.update(
                {
                    "status": STATUS_OK,
                    "final": True,
                    "image_paths": [f"images/{p.name}" for p in orphan.paths],
                    "image_count": len(orphan.paths),
                    "image_bytes": orphan.image_bytes,
                    "cost_usd": cost,
                    "cost_source": "recovered",
                    "error_message": "adopted: images saved before a crash, log row missing",
                }
            )
            writer.append(row)
    return [o.job_id for o in adoptable]


def adopt_stored(
    rundir: RunDir, run_id: str, session: int, wanted: Mapping[str, Job], prices: PriceTable
) -> tuple[list[str], list[str]]:
    """``--images-to``: log an ok row (cost_source=recovered) for every job whose objects the
    upload journal names and the store holds unchanged (size and sha256). Returns (adopted
    job ids, why each other set was not adopted): those jobs run again."""
    # lazy: a local run loads none of the remote store (tests/test_storage.py)
    from batchgen.storage.adopt import find_stored

    found = find_stored(rundir.state_dir, {i: j.n for i, j in wanted.items()})
    adoptable = [s for s in found if s.adoptable]
    if adoptable:
        with RunLogWriter(
            rundir.log_dir, run_id=run_id, session=session, state_dir=rundir.state_dir
        ) as writer:
            for stored in adoptable:
                job = wanted[stored.job_id]
                cost, _ = cost_of_attempt(prices, job, None, len(stored.objects))
                row = _base_row(run_id, session, job)
                row.update(
                    {
                        "status": STATUS_OK,
                        "final": True,
                        "image_paths": [o.uri for o in stored.objects],
                        "image_count": len(stored.objects),
                        "image_bytes": stored.image_bytes,
                        "cost_usd": cost,
                        "cost_source": "recovered",
                        "error_message": "adopted: objects stored before a crash, log row missing",
                    }
                )
                writer.append(row)
    refused = [f"{s.job_id}: {s.reason}" for s in found if not s.adoptable]
    return [s.job_id for s in adoptable], refused


def record_crashed_inflight(
    rundir: RunDir,
    run_id: str,
    session: int,
    job_ids: frozenset[str] | set[str],
    jobs: Mapping[str, Job] | None = None,
) -> int:
    """One row per job that was in flight when a session died: the report counts them as
    "possibly billed twice". Not final: the job is run again in this session. ``jobs`` (id →
    Job) fills prompt and model for jobs the log never saw (sent, then the process died)."""
    if not job_ids:
        return 0
    jobs = jobs or {}
    known = read_log(rundir.path, ["job_id", "prompt", "model", "job_line", "fingerprint"])
    mask = pc.is_in(known["job_id"], value_set=pa.array(sorted(job_ids)))
    seen: dict[str, dict[str, object]] = {}
    for row in known.filter(mask).to_pylist():
        seen.setdefault(row["job_id"], row)
    now = time.time()
    with RunLogWriter(
        rundir.log_dir, run_id=run_id, session=session, state_dir=rundir.state_dir
    ) as writer:
        for job_id in sorted(job_ids):
            job = jobs.get(job_id)
            info = seen.get(job_id) or (
                {
                    "job_line": job.line,
                    "fingerprint": job.fingerprint,
                    "model": job.model,
                    "prompt": job.prompt,
                }
                if job is not None
                else {}
            )
            writer.append(
                {
                    "run_id": run_id,
                    "session": session,
                    "job_id": job_id,
                    "job_line": info.get("job_line"),
                    "fingerprint": info.get("fingerprint"),
                    "attempt": 0,
                    "status": STATUS_ERROR,
                    "final": False,
                    "error_class": ErrorClass.CANCELLED.value,
                    "error_code": IN_FLIGHT_AT_CRASH,
                    "error_message": "in flight when the process died: possibly billed, sent again",
                    "provider": "recovery",
                    "model": info.get("model"),
                    "prompt": info.get("prompt"),
                    "queued_at": now,
                    "finished_at": now,
                    "cost_usd": 0.0,
                    "cost_source": "none",
                }
            )
    return len(job_ids)
