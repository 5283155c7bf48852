"""The rest of a stopped run, as ``batchgen resume`` selects it: which jobs have no successful
result, how many of them were never sent, and their worst case. Reads only; imports nothing of
the session's execution, so a session's end can price its rest (session/execute.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from batchgen.batch.state import BatchState
from batchgen.errors import ErrorClass, UsageError
from batchgen.jobs import iter_jobs, sha256_file
from batchgen.money import Budget
from batchgen.money.budget import BudgetError
from batchgen.runlog.jobindex import load_or_build
from batchgen.runlog.rundir import RunDir
from batchgen.runlog.state import JobStates, Remaining, job_states, remaining


def open_ids_now(rundir: RunDir, run_id: str) -> set[str]:
    """The jobs in the run's batches still open at the provider."""
    state = BatchState(rundir.state_dir, run_id)
    return state.ids_in(state.open_parts())


def select_rest(
    rundir: RunDir,
    job_file: Path,
    defaults: Mapping[str, Any],
    retry_failed: bool = False,
    states: JobStates | None = None,
) -> tuple[Remaining, str]:
    """Which jobs a resume runs (``Remaining.run``) and the job file's sha256: what the log
    (``states``, read if not given) says of every job of the file as it is now. Reads only."""
    if states is None:
        states = job_states(rundir.path)
    # the crashed sessions are marked only once their requests in flight are logged (run_rest):
    # a resume killed before that leaves them to the next one, which finds the same jobs
    job_sha256 = sha256_file(job_file)
    # the index `run` stored when the file is the same; else the file is scanned (edited)
    index = load_or_build(rundir.state_dir, job_file, job_sha256, dict(defaults))
    return remaining(index, states, retry_failed), job_sha256


@dataclass(frozen=True, slots=True)
class RestQuote:
    """What a plain ``batchgen resume`` of a stopped run would finish, and its worst case."""

    jobs: int  # jobs without a successful result (what resume runs or collects)
    not_sent: int  # of them, never sent: refused by a budget or never started
    worst_usd: float  # their worst case together (open batches' jobs too: not billed yet)


def quote_rest(rundir: RunDir, budget: Budget) -> RestQuote | None:
    """The rest of a run stopped by a budget, selected as resume selects it and priced by
    ``budget`` (its prices, --price-per-image, the overruns it saw); None when it cannot be
    told (the job file gone or unreadable, a job without a price)."""
    try:
        manifest = rundir.load(strict=True)
        job_file = Path(manifest["job_file"])
        defaults = (manifest.get("settings") or {}).get("defaults") or {}
        states = job_states(rundir.path, with_inflight=False)
        rest, _ = select_rest(rundir, job_file, defaults, states=states)
        # sent: in a batch still open at the provider, or logged with another outcome than a
        # budget's refusal (a retryable error); the rest were refused or never reached
        in_batches = open_ids_now(rundir, str(manifest["run_id"]))
        table = states.table
        refused = pc.equal(pc.fill_null(table["error_class"], ""), str(ErrorClass.BUDGET))
        sent = set(table["job_id"].filter(pc.invert(refused)).to_pylist()) | in_batches
        not_sent = len(rest.run - sent)
        worst = math.fsum(
            budget.worst_case(job) for job in iter_jobs(job_file, defaults) if job.id in rest.run
        )
    except (OSError, UsageError, BudgetError, KeyError, ValueError):
        return None
    return RestQuote(len(rest.run), not_sent, worst)
