"""The driver of a cluster run (``run --ray [ADDRESS]``): the first session's plan, spread over
shards that Ray runs on the cluster's workers, under one limit actor per endpoint.

    driver: connect to the cluster (or start one here), begin one session per shard in run.json,
            start the run's LimitActor (and its BudgetActor under --max-cost), one Ray task per
            shard (batchgen.cluster.shards), then record each shard's end as it comes back, and
            the driver session's end with the cluster's figures (shards, the limit actor's calls
            per permit, 429s, the budget's draws) and every shard's spend

A shard whose worker dies is not retried by Ray (it would send its jobs again): its session
keeps no end, the run ends ``interrupted``, and `batchgen resume` finishes exactly the rest.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.cluster.budget import BudgetActor
from batchgen.cluster.limit import LimitActor
from batchgen.cluster.shards import ShardOutcome, ShardSpec, run_shard, shard_sizes
from batchgen.config import RunConfig
from batchgen.errors import ErrorClass, UsageError
from batchgen.runlog.fsio import atomic_write_bytes
from batchgen.runner.control import PoolTally
from batchgen.session.builder import SessionPlan
from batchgen.session.outcome import EXIT_FAILED, EXIT_OK, EXIT_STOPPED, SessionResult
from batchgen.session.record import session_summary


@dataclass(frozen=True, slots=True)
class ClusterRun:
    """How to run a plan on Ray: ``address`` of a running cluster (``ray start --head``), or
    None to start a local one in this process. ``shards``: default one per CPU the cluster
    has; ``shared_limit=False`` gives each shard its own autopilot (a measurement: N shards
    then send N times the limit). ``rest=True`` (a resume): the shards run only the plan's
    jobs (what the resume left to run), not the whole job file."""

    address: str | None = None
    shards: int | None = None
    shared_limit: bool = True
    spent_before: float = 0.0
    rest: bool = False

    def check(self, cfg: RunConfig) -> None:
        """What a cluster cannot run, refused before anything is made (``refuse``)."""
        refuse(cfg)

    def __call__(self, plan: SessionPlan) -> SessionResult:
        _refuse(plan)
        ray = _connect(self.address)
        try:
            return self._run(ray, plan)
        finally:
            ray.shutdown()

    def _run(self, ray: Any, plan: SessionPlan) -> SessionResult:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = max(1, min(self.shards or cpus, plan.jobs_to_run or 1))
        sessions = [
            plan.rundir.begin_session({"ray_shard": k, "ray_shards": count}, [])
            for k in range(count)
        ]
        _write_plan(plan, sessions)
        only = _write_rest(plan) if self.rest else None
        limit = _limit_actor(ray, plan) if self.shared_limit else None
        budget = _budget_actor(ray, plan)
        sizes = shard_sizes(plan.jobs_to_run, count)
        pairs = enumerate(zip(sessions, sizes, strict=True))
        specs = [
            _spec(plan, k, count, session, size, limit, budget, only)
            for k, (session, size) in pairs
        ]
        plan.observer.say(
            f"ray: {count} shard(s) (sessions {sessions[0]}–{sessions[-1]}) on "
            f"{len(ray.nodes())} node(s), {cpus} CPU(s); "
            f"{'one shared limit' if limit is not None else 'a limit per shard'}"
        )
        task = ray.remote(run_shard).options(num_cpus=1, max_retries=0)
        refs = {task.remote(spec): spec.session for spec in specs}
        line = None if limit is None or plan.quiet else _ProgressLine(ray, limit, plan)
        outcomes, lost = _gather(ray, refs, plan, line)
        figures = ray.get(limit.figures.remote()) if limit is not None else None
        spend = ray.get(budget.figures.remote()) if budget is not None else None
        return _end(plan, sessions, outcomes, lost, {"limit": figures, "budget": spend})


def _spec(
    plan: SessionPlan,
    shard: int,
    shards: int,
    session: int,
    size: int,
    limit: Any,
    shared_budget: Any,
    only: str | None = None,
) -> ShardSpec:
    budget = plan.budget
    return ShardSpec(
        run_dir=str(Path(plan.rundir.path).resolve()),
        manifest=plan.manifest,
        session=session,
        shard=shard,
        shards=shards,
        job_file=str(plan.manifest["job_file"]),
        defaults=dict((plan.manifest.get("settings") or {}).get("defaults") or {}),
        jobs_to_run=size,
        connection=dataclasses.replace(plan.connection, api_key=""),
        pool=plan.pool,
        prices=budget.prices if budget else plan.prices,
        max_cost=budget.cap_usd if budget else None,  # drawn from the BudgetActor
        spent_before=0.0,
        price_per_image=None,  # the budget's prices have it already
        cheapest_job_usd=plan.cheapest_job_usd,
        limit=limit,
        budget=shared_budget,
        only_file=only,
    )


def refuse(cfg: RunConfig) -> None:
    """What a cluster run cannot do, said before anything is created (UsageError)."""
    if cfg.provider == "sim":
        raise UsageError(_NO_SIM)
    if cfg.providers:
        raise UsageError(_ONE_ENDPOINT)
    if cfg.via_batch:
        raise UsageError("--ray runs the live API: drop --via batch (a batch needs no cluster)")


_NO_SIM = (
    "--ray needs a provider every worker reaches: serve the simulator with "
    "`batchgen sim --port 8000 --rpm ...` and run with --base-url "
    "http://HOST:8000/v1 (the in-process one lives in the driver)"
)
_ONE_ENDPOINT = "--ray runs one endpoint for now: drop --providers"


def _refuse(plan: SessionPlan) -> None:
    if plan.connection.provider == "sim":
        raise UsageError(_NO_SIM)
    if plan.endpoints:
        raise UsageError(_ONE_ENDPOINT)


def _connect(address: str | None) -> Any:
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None or address.split(":")[0] in _LOOPBACK:
        # Ray turns a loopback address into the machine's outward one before it connects (a
        # cluster of several machines needs that); a cluster on loopback keeps it this way
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:  # lazy: Ray is an optional extra (batchgen[ray])
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'batchgen[ray]'") from None
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:  # a cluster of this machine, on loopback, gone when the run ends
            ray.init(
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
                _node_ip_address="127.0.0.1",
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        msg = (
            f"--ray: could not connect to {where} ({_first_line(exc)}); nothing was sent: "
            "start the cluster (`ray start --head`), then `batchgen resume` the run directory, "
            "or run again without --ray"
        )
        raise UsageError(msg) from None
    return ray


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _limit_actor(ray: Any, plan: SessionPlan) -> Any:

    actor = ray.remote(LimitActor).options(
        name=f"batchgen-limit-{plan.run_id}", num_cpus=0, max_restarts=0
    )
    return actor.remote(plan.pool.rpm, plan.pool.adaptive, plan.pool.ipm)


def _budget_actor(ray: Any, plan: SessionPlan) -> Any:
    """--max-cost: one reservation for the cluster, what earlier sessions spent taken off."""
    budget = plan.budget
    if budget is None or budget.cap_usd is None:
        return None
    actor = ray.remote(BudgetActor).options(
        name=f"batchgen-budget-{plan.run_id}", num_cpus=0, max_restarts=0
    )
    return actor.remote(max(0.0, budget.cap_usd - budget.spent))


def _write_plan(plan: SessionPlan, sessions: list[int]) -> None:
    folder = Path(plan.rundir.path) / "shards"
    folder.mkdir(exist_ok=True)
    doc = {
        "driver_session": plan.session,
        "sessions": sessions,
        "split": "job i of the job file (0-based, file order) runs in shard i % shards",
    }
    atomic_write_bytes(folder / "plan.json", json.dumps(doc, indent=2).encode())


def _write_rest(plan: SessionPlan) -> str:
    """A resume's jobs (the plan's, in file order), one id a line, for the shards to pick
    theirs from: RUN_DIR/shards/rest-s<driver session>.txt. A file on the shared run
    directory, not a task argument: a resume of millions of jobs would put them all in every
    shard's task specification."""
    path = Path(plan.rundir.path).resolve() / "shards" / f"rest-s{plan.session}.txt"
    ids = "".join(f"{job.id}\n" for job in plan.jobs)
    atomic_write_bytes(path, ids.encode())
    return str(path)


PROGRESS_S = 10.0  # the driver's progress line: once this often while shards run


class _ProgressLine:
    """The cluster's progress, over every shard: what the limit actor heard last from each
    (jobs ended and failed ride on the shards' calls for permits, so this costs one call to
    the actor every ``PROGRESS_S``)."""

    def __init__(self, ray: Any, limit: Any, plan: SessionPlan) -> None:
        self.ray, self.limit, self.plan = ray, limit, plan
        self.last: tuple[float, int] | None = None  # (time, jobs done) of the last line

    def say(self) -> None:
        now = time.monotonic()
        seen = self.ray.get(self.limit.progress.remote())
        done, failed = int(seen["done"]), int(seen["failed"])
        rate = ""
        if self.last is not None and now > self.last[0]:
            rate = f", {(done - self.last[1]) / (now - self.last[0]) * 60:,.0f} jobs/min"
        self.last = (now, done)
        self.plan.observer.say(
            f"cluster: {done:,} of {self.plan.jobs_to_run:,} done ({failed:,} failed){rate}; "
            f"{int(seen['sent']):,} sent, {int(seen['throttled']):,} 429s, "
            f"rate {float(seen['per_minute']):,.0f} req/min"
        )


def _gather(
    ray: Any, refs: dict[Any, int], plan: SessionPlan, line: _ProgressLine | None = None
) -> tuple[list[ShardOutcome], dict[int, str]]:
    """Each shard's outcome as it ends; a shard whose task failed (its worker died) is lost.
    ``line``: the cluster's progress every ``PROGRESS_S`` meanwhile."""
    outcomes: list[ShardOutcome] = []
    lost: dict[int, str] = {}
    pending = list(refs)
    try:
        while pending:
            timeout = None if line is None else PROGRESS_S
            done, pending = ray.wait(pending, num_returns=1, timeout=timeout)
            if not done and line is not None:
                line.say()
            for ref in done:
                session = refs[ref]
                try:
                    outcome = ray.get(ref)
                except UsageError:
                    raise
                except Exception as exc:  # Ray's task errors: the worker died, the task failed
                    lost[session] = _first_line(exc)
                    plan.observer.warn(f"shard session {session} lost: {lost[session]}")
                    continue
                plan.rundir.end_session(session, outcome.result.how, outcome.summary)
                outcomes.append(outcome)
                plan.observer.say(
                    f"shard session {session}: {outcome.result.how}, "
                    f"{outcome.result.tally.ok_jobs} ok of {outcome.result.tally.taken}"
                )
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)
        for ref in pending:
            lost[refs[ref]] = "interrupted"
    return outcomes, lost


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _end(
    plan: SessionPlan,
    sessions: list[int],
    outcomes: list[ShardOutcome],
    lost: dict[int, str],
    figures: dict[str, Any],
) -> SessionResult:
    tally = _sum(o.result.tally for o in outcomes)
    if plan.budget is not None and plan.budget.cap_usd is not None:
        for outcome in outcomes:  # the end is told as one run's: every shard's spend
            plan.budget.absorb(outcome.spent_usd, outcome.refused)
    stopped = [o.result for o in outcomes if o.result.stop_reason is not None]
    if lost:
        reason: ErrorClass | None = ErrorClass.CANCELLED
        how = "interrupted"
        message = (
            f"{len(lost)} shard(s) lost (sessions {', '.join(map(str, sorted(lost)))}): "
            f"{next(iter(lost.values()))}; `batchgen resume {plan.rundir.path}` finishes the rest"
        )
    elif stopped:
        reason, how, message = stopped[0].stop_reason, stopped[0].how, stopped[0].stop_message
        if reason is ErrorClass.BUDGET and plan.budget is not None:
            message = plan.budget.exhausted_message(str(plan.rundir.path))
    else:
        reason, message = None, ""
        how = "failed_jobs" if tally.failed_jobs else "completed"
    code = EXIT_STOPPED if reason is not None else EXIT_FAILED if tally.failed_jobs else EXIT_OK
    summary = session_summary(tally, plan.budget)
    summary["cluster"] = {"sessions": sessions, "lost": sorted(lost), **figures}
    plan.rundir.end_session(plan.session, how, summary)
    return SessionResult(tally, reason, message, code, how, None)


def _sum(tallies: Any) -> PoolTally:
    total = PoolTally()
    for t in tallies:
        for f in dataclasses.fields(PoolTally):
            mine, theirs = getattr(total, f.name), getattr(t, f.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            else:
                setattr(total, f.name, mine + theirs)
    return total
