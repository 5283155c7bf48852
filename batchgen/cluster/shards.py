"""One shard of a cluster run, as a Ray task runs it on a worker: the same session as a local
run (``session.execute``: the pool, the crash-safe log, the sent journal), over every N-th job
of the job file, with the cluster's gate.

Each shard is a session of the one run directory (its own number, so its log parts, sent
journal and in-flight file are its own, and `report`, `jobs` and `resume` read them as the
run's). The driver records the sessions' ends in run.json, one writer at a time: a shard only
returns its ending. A shard whose worker dies keeps no end, so `resume` recovers it as it does
a crashed session (its journal names what was in flight; saved images are adopted).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import anyio

from batchgen.cluster.budget import ClusterBudget, through_actor
from batchgen.cluster.gate import ClusterGate, Permits, Seen
from batchgen.config import PoolConfig
from batchgen.errors import UsageError
from batchgen.jobs import iter_jobs
from batchgen.jobs.model import Job
from batchgen.limits import DEFAULT_CONCURRENCY_CAP, RateLimiter
from batchgen.money import Budget, PriceTable
from batchgen.runlog.fsio import atomic_write_bytes
from batchgen.runlog.rundir import RunDir
from batchgen.session.builder import SessionPlan
from batchgen.session.connect import Connection
from batchgen.session.execute import execute
from batchgen.session.observer import Silent
from batchgen.session.outcome import SessionResult


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """What a worker needs to run its shard (pickled by Ray: no key inside)."""

    run_dir: str  # absolute: a worker's working directory is not the driver's
    manifest: dict[str, Any]
    session: int
    shard: int
    shards: int
    job_file: str
    defaults: dict[str, Any]
    jobs_to_run: int
    connection: Connection  # api_key "": the worker reads the key from its own environment
    pool: PoolConfig
    prices: PriceTable
    max_cost: float | None
    spent_before: float
    price_per_image: float | None
    cheapest_job_usd: float
    limit: Any = None  # the LimitActor's handle; None: this shard's own autopilot
    budget: Any = None  # the BudgetActor's handle when --max-cost is set (max_cost: the cap)
    only_file: str | None = None  # a resume: the ids of the jobs left to run, one a line


@dataclass(frozen=True, slots=True)
class ShardOutcome:
    session: int
    result: SessionResult
    summary: dict[str, Any]  # what execute() recorded as the session's end
    spent_usd: float = 0.0  # under the cluster's --max-cost: what this shard spent
    refused: dict[str, float] = dataclasses.field(default_factory=dict)  # job id -> worst USD


def shard_sizes(total: int, shards: int) -> list[int]:
    """Jobs per shard when job i goes to shard i % shards."""
    return [total // shards + (1 if k < total % shards else 0) for k in range(shards)]


def shard_jobs(
    job_file: str,
    defaults: dict[str, Any],
    shard: int,
    shards: int,
    only: frozenset[str] | None = None,
) -> Iterator[Job]:
    """Every ``shards``-th job of the file from position ``shard`` (file order): the ids are
    the job file's own, whatever shard runs them. ``only`` (a resume): of those jobs alone."""
    jobs = iter_jobs(job_file, defaults)
    if only is not None:
        jobs = (job for job in jobs if job.id in only)
    return islice(jobs, shard, None, shards)


def _rest(path: str | None) -> frozenset[str] | None:
    if path is None:
        return None
    return frozenset(line for line in Path(path).read_text().splitlines() if line)


class _ShardRunDir(RunDir):
    """The run directory as a shard sees it: run.json is the driver's to write."""

    ended: tuple[str, dict[str, Any]] | None = None

    def end_session(self, session: int, how: str, summary: dict[str, Any]) -> None:
        self.ended = (how, summary)


def run_shard(spec: ShardSpec) -> ShardOutcome:
    """The Ray task: run the shard's session to its end (never raises for what the provider
    does: that is the outcome's stop reason)."""

    rundir = _ShardRunDir(spec.run_dir)
    _note_worker(rundir, spec)
    connection = dataclasses.replace(spec.connection, api_key=_key(spec.connection))
    budget: Budget = (
        Budget(spec.max_cost, spec.spent_before, spec.prices, spec.price_per_image)
        if spec.budget is None
        else ClusterBudget(spec.max_cost or 0.0, spec.prices, *through_actor(spec.budget))
    )
    seen = Seen()  # what this shard's answers and its pool's tally tell the limit actor
    gate = None if spec.limit is None else _gate_factory(spec, seen)
    plan = SessionPlan(
        rundir=rundir,
        manifest=spec.manifest,
        session=spec.session,
        jobs=shard_jobs(
            spec.job_file, spec.defaults, spec.shard, spec.shards, _rest(spec.only_file)
        ),
        jobs_to_run=spec.jobs_to_run,
        connection=connection,
        pool=spec.pool,
        prices=spec.prices,
        budget=budget,
        cheapest_job_usd=spec.cheapest_job_usd,
        sim_config=None,
        quiet=True,
        observer=Silent(on_progress=seen.tally),
        handle_signals=False,
        gate=gate,
    )
    result = anyio.run(execute, plan)
    how, summary = rundir.ended or (result.how, {})
    if isinstance(budget, ClusterBudget):
        budget.give_back()  # what this shard drew and did not spend, for the others
        summary["cluster_budget_calls"] = budget.calls
    return ShardOutcome(
        spec.session,
        dataclasses.replace(result, how=how),
        summary,
        budget.spent,
        budget.refused_jobs(),
    )


def _gate_factory(spec: ShardSpec, seen: Seen) -> Any:

    def make(pool: PoolConfig) -> RateLimiter:
        cap = pool.concurrency or DEFAULT_CONCURRENCY_CAP
        permits = Permits(spec.limit, f"s{spec.session}", seen=seen)
        return ClusterGate(permits, concurrency=cap, max_pause_s=pool.max_pause_s)

    return make


def _key(connection: Connection) -> str:
    """The key from the worker's environment: it never travels through Ray (its object store
    and task specs can reach disk and logs)."""
    key = os.environ.get(connection.key_env, "")
    if not key and connection.provider != "sim":
        msg = (
            f"{connection.key_env} is not set on the Ray worker {socket.gethostname()}: set it "
            "in the environment the cluster's nodes were started with (`ray start`)"
        )
        raise UsageError(msg)
    return key


def _note_worker(rundir: RunDir, spec: ShardSpec) -> None:
    """RUN_DIR/shards/s<session>.json: which process on which host runs the shard."""
    note = {
        "session": spec.session,
        "shard": spec.shard,
        "shards": spec.shards,
        "jobs": spec.jobs_to_run,
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    folder = Path(rundir.path) / "shards"
    folder.mkdir(exist_ok=True)
    atomic_write_bytes(folder / f"s{spec.session}.json", json.dumps(note).encode())
