"""The run directories under a folder and the state of each (`batchgen runs`): read-only, from
run.json and the log; a run held by a live batchgen (its lock taken) is ``running``."""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc

from batchgen.runlog.manifest import read_manifest
from batchgen.runlog.reader import read_log
from batchgen.runlog.state import DONE, FAILED, job_states

LOCK_NAME = "run.lock"


@dataclass(frozen=True, slots=True)
class RunSummary:
    path: Path
    name: str
    created_at: float | None
    state: str  # running, completed, failed jobs, stopped (quota) ... or "no session ended"
    jobs: int | None
    succeeded: int
    failed: int
    pending: int | None
    cost_usd: float
    sessions: int


def is_running(run_dir: Path) -> bool:
    """True while a batchgen process holds the run's lock (a shared probe: it takes nothing)."""
    path = run_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def summarize(run_dir: Path) -> RunSummary:
    """One run's line: counts from the log (per job, its latest state), cost from its rows."""

    manifest = read_manifest(run_dir)
    counts = job_states(run_dir, with_inflight=False).counts()
    cost = 0.0
    with contextlib.suppress(KeyError, ValueError):
        total = pc.sum(read_log(run_dir, ["cost_usd"])["cost_usd"]).as_py()
        cost = float(total or 0.0)
    last = manifest.last_session
    if is_running(run_dir):
        state = "running"
    elif last is None or last.how is None:
        state = "no session ended (killed? `batchgen resume` finishes it)"
    else:
        state = last.how.replace("_", " ")
    done, failed = counts[DONE], counts[FAILED]
    jobs = manifest.jobs
    return RunSummary(
        path=run_dir,
        name=manifest.name or run_dir.name,
        created_at=manifest.created_at,
        state=state,
        jobs=jobs,
        succeeded=done,
        failed=failed,
        pending=None if jobs is None else max(jobs - done - failed, 0),
        cost_usd=cost,
        sessions=len(manifest.sessions),
    )


def find_runs(folder: Path | str) -> list[Path]:
    """Run directories (a run.json beside a log/) in ``folder`` and one level below, oldest
    first by their run.json's time."""
    root = Path(folder)
    found = {p.parent for p in root.glob("run.json")} | {p.parent for p in root.glob("*/run.json")}
    return sorted(
        (p for p in found if (p / "log").is_dir()), key=lambda p: (p / "run.json").stat().st_mtime
    )


__all__ = ["RunSummary", "find_runs", "is_running", "summarize"]
