"""A run's jobs by state, as job-file lines (what ``batchgen jobs RUN_DIR --status S`` writes):
each an ``id`` and the request body as sent, an edit's local photos as absolute paths, so the
lines can re-drive the jobs elsewhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from batchgen.jobs import iter_jobs
from batchgen.jobs.inputs import portable_body
from batchgen.runlog.rundir import RunDir, RunDirError
from batchgen.runlog.state import DONE, FAILED, RETRYABLE_FAILED, job_states
from batchgen.runlog.statuses import STATUSES


def states_for(status: str) -> frozenset[str]:
    """The job states (batchgen.runlog.state's names) that ``status`` exports; "pending" is
    every other state."""
    finished = {
        "ok": frozenset({DONE}),
        "failed": frozenset({FAILED, RETRYABLE_FAILED}),
    }
    if status == "pending":
        return frozenset()
    return finished[status]


def export_jobs(run_dir: str | Path, status: str) -> Iterator[dict[str, Any]]:
    """The jobs of ``run_dir`` in ``status`` ("ok", "failed" or "pending"), in job-file order.
    Raises RunDirError (a bad run directory, or its job file is gone) before the first line."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    rundir = RunDir(run_dir)
    manifest = rundir.load(strict=True)
    job_file = Path(manifest["job_file"])
    if not job_file.exists():
        raise RunDirError(f"the run's job file {job_file} is gone")
    table = job_states(rundir.path, with_inflight=False).table
    state_of = dict(zip(table["job_id"].to_pylist(), table["state"].to_pylist(), strict=True))
    finished = states_for("ok") | states_for("failed")
    wanted: Callable[[str | None], bool] = (
        (lambda s: s not in finished) if status == "pending" else states_for(status).__contains__
    )
    defaults = manifest["settings"].get("defaults") or {}
    return _lines(job_file, defaults, state_of, wanted)


def _lines(
    job_file: Path,
    defaults: dict[str, Any],
    state_of: dict[str, str],
    wanted: Callable[[str | None], bool],
) -> Iterator[dict[str, Any]]:
    for job in iter_jobs(job_file, defaults):
        if wanted(state_of.get(job.id)):
            yield {"id": job.id, **portable_body(job.body, job.inputs)}
