"""One batch session (``run --via batch``, ``resume``, ``collect``): the log writer, Ctrl-C,
reconciliation of what a crash left half-submitted, submission, following and collection.

Ctrl-C (or SIGTERM) stops following at once — a collection cut short is taken up again by the
next ``collect``/``resume`` without duplicates — and never cancels a batch: what was paid for
runs on at the provider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import pyarrow as pa
import pyarrow.compute as pc

from batchgen.batch.api import BatchApi, BatchBackend
from batchgen.batch.context import BatchContext, BatchOptions, Say
from batchgen.batch.follow import follow
from batchgen.batch.gemini import GeminiBatchApi
from batchgen.batch.state import BatchState
from batchgen.batch.submit import reconcile, submit_jobs
from batchgen.config import PoolConfig
from batchgen.errors import Action, AttemptError, ErrorClass
from batchgen.jobs.model import Job
from batchgen.limits.stop import RunControl
from batchgen.money import Budget, PriceTable
from batchgen.runlog.reader import read_log
from batchgen.runlog.rundir import RunDir
from batchgen.runlog.writer import RunLogWriter
from batchgen.runner.signals import watch_signals


@dataclass(frozen=True, slots=True)
class BatchSession:
    rundir: RunDir
    run_id: str
    session: int
    provider: str
    api_key: str
    prices: PriceTable  # batch rates
    budget: Budget | None
    options: BatchOptions
    jobs_of: Callable[[set[str]], dict[str, Job]]
    pool: PoolConfig  # the live settings: the deadline's estimate of the rest done live
    say: Say
    timeout_s: float = 120.0
    # the spend ledger's sink around the log writer (batchgen.session.ledgering); None: off
    wrap_sink: Callable[[Any], Any] | None = None
    protocol: str = "openai"  # "gemini": Gemini's Batch API (batchgen/batch/gemini.py)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    ctx: BatchContext
    stop_reason: ErrorClass | None
    stop_message: str
    detached: bool
    pending: int  # jobs left pending (retryable errors, not run); the CLI counts the run's
    failed: int = 0  # jobs of the run failed for good (content policy, bad request)

    @property
    def cutover(self) -> bool:
        return self.ctx.cutover


async def run_batch_session(
    s: BatchSession, base_url: str, submit: Callable[[], Iterable[Job] | None] | None
) -> BatchOutcome:
    """Reconcile, collect the batches already out there, then submit ``submit()`` (called
    once they are collected, so a job they left pending is sent again) and follow those."""
    control = RunControl()
    writer = RunLogWriter(
        s.rundir.log_dir, run_id=s.run_id, session=s.session, state_dir=s.rundir.state_dir
    )
    state = BatchState(s.rundir.state_dir, s.run_id)
    api = batch_backend(s.protocol, base_url, s.api_key, state, s.timeout_s)
    sink = writer if s.wrap_sink is None else s.wrap_sink(writer)
    ctx = BatchContext(
        rundir=s.rundir,
        run_id=s.run_id,
        session=s.session,
        provider=s.provider,
        api=api,
        state=state,
        sink=sink,
        prices=s.prices,
        budget=s.budget,
        options=s.options,
        control=control,
        jobs_of=s.jobs_of,
        say=s.say,
        pool=s.pool,
    )
    _from_log(ctx)
    detached = False
    try:
        async with anyio.create_task_group() as tg:
            work = anyio.CancelScope()
            # a signal stops following at once (grace 0): the batches run on at the provider
            tg.start_soon(
                partial(watch_signals, stopping=_STOPPED_FOLLOWING),
                control,
                0.0,
                lambda text, style: s.say(text, warning=style is not None),
            )
            try:
                with work, control.cancels(work):
                    await reconcile(ctx)
                    if ctx.state.open_parts() and not (s.options.detach or s.options.collect_only):
                        await follow(ctx)  # what earlier sessions submitted comes first
                    jobs = None
                    if submit is not None and not (s.options.collect_only or ctx.cutover):
                        jobs = None if control.stopping else submit()
                    if jobs is not None:
                        await submit_jobs(ctx, jobs)
                    if s.options.detach and not control.stopping:
                        detached = True
                    elif not control.stopping:
                        await follow(ctx)
            except AttemptError as exc:
                klass = exc.error_class
                reason = klass if klass.action is Action.STOP_RUN else ErrorClass.CANCELLED
                control.stop(reason, f"the Batch API answered: {exc}")
            finally:
                tg.cancel_scope.cancel()
    finally:
        writer.close(compact=True)
        await api.aclose()
        for hold in ctx.holds.values():
            hold.park()  # the batch runs on: its money stays held until it is collected
    pending = ctx.tally.skipped_jobs + sum(
        n for k, n in ctx.tally.failed_by_class.items() if ErrorClass(k).retryable
    )
    return BatchOutcome(ctx, control.reason, control.message, detached, pending)


def batch_backend(
    protocol: str, base_url: str, api_key: str, state: BatchState, timeout_s: float = 120.0
) -> BatchBackend:
    """The Batch API client of the endpoint's protocol (OpenAI's, or Gemini's)."""
    if protocol == "gemini":
        return GeminiBatchApi(base_url, api_key, input_path=state.input_path, timeout=timeout_s)
    return BatchApi(base_url, api_key, timeout=timeout_s)


def _from_log(ctx: BatchContext) -> None:
    """Jobs already done, rows already logged per open batch, money held by open batches
    (their holds in the spend ledger, parked by the session that submitted them, become
    this one's)."""
    t = read_log(ctx.rundir.path, ["job_id", "status", "provider_batch_id", "cost_usd"])
    ok = pc.equal(t["status"], "ok")
    ctx.done_ids = set(t["job_id"].filter(ok).to_pylist())
    open_parts = ctx.state.open_parts()
    wanted = [p.batch_id for p in open_parts if p.batch_id]
    if wanted:
        mine = t.filter(pc.is_in(t["provider_batch_id"], value_set=pa.array(wanted, pa.string())))
        for job_id, batch_id in zip(
            mine["job_id"].to_pylist(), mine["provider_batch_id"].to_pylist(), strict=True
        ):
            ctx.logged.setdefault(batch_id, set()).add(job_id)
    if ctx.budget is None or not ctx.budget.limited:
        return
    for part in open_parts:
        logged_cost = 0.0
        if part.batch_id:
            costs = t.filter(pc.equal(t["provider_batch_id"], part.batch_id))["cost_usd"]
            logged_cost = float(pc.sum(costs).as_py() or 0.0)
        ctx.holds[part.part] = ctx.budget.hold(
            max(part.reserved_usd - logged_cost, 0.0),
            f"part-{part.part}",
            owner=ctx.state.hold_owner(part.part),
        )


_STOPPED_FOLLOWING = "stopped following; the batches run on at the provider (nothing was cancelled)"
