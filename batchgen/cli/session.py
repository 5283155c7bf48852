"""One session of a run (the first `run`, or a `resume`): lock, log writer, signals, the pool,
and how it ended. Shared by `run` and `resume` so both stop, flush and report the same way."""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from rich.console import Console

from batchgen.cli.common import EXIT_FAILED, EXIT_OK, EXIT_STOPPED, Connection, pool_settings
from batchgen.cli.progress import Progress, total_spent
from batchgen.control import RowContext, RunControl
from batchgen.errors import ErrorClass
from batchgen.jobs.model import Job
from batchgen.limits import RateLimiter
from batchgen.money import Budget, PriceTable
from batchgen.pool import PoolTally, run_pool
from batchgen.provider.openai import OpenAIImages
from batchgen.rundir import RunDir
from batchgen.runlog.journal import SentJournal
from batchgen.runlog.writer import RunLogWriter

_ENDING = {
    None: "completed",
    ErrorClass.AUTH: "stopped_auth",
    ErrorClass.QUOTA: "stopped_quota",
    ErrorClass.BUDGET: "stopped_budget",
    ErrorClass.CANCELLED: "interrupted",
    ErrorClass.RATE_LIMIT: "stopped_rate_limit",
}


@dataclass(frozen=True, slots=True)
class SessionPlan:
    rundir: RunDir
    manifest: dict[str, Any]
    session: int
    jobs: Iterable[Job]
    jobs_to_run: int
    connection: Connection
    values: dict[str, Any]  # pool settings: concurrency, rpm, ipm, timeout, ... (common.py)
    prices: PriceTable
    budget: Budget | None
    cheapest_job_usd: float  # below this much budget left, nothing of the batch fits
    sim_config: Any  # SimConfig when connection.provider == "sim"
    quiet: bool
    # a regeneration round (resume --regenerate-below): file name tag and the round header
    image_tag: str = ""
    extra_headers: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class SessionResult:
    tally: PoolTally
    stop_reason: ErrorClass | None
    stop_message: str
    exit_code: int


async def execute(plan: SessionPlan, console: Console) -> SessionResult:
    control = RunControl()
    settings = pool_settings(plan.values)
    # journaled: a resume after kill -9 knows every request sent since the last flush
    inflight = SentJournal(plan.rundir.state_dir, plan.session)
    writer = RunLogWriter(
        plan.rundir.log_dir,
        run_id=plan.manifest["run_id"],
        session=plan.session,
        state_dir=plan.rundir.state_dir,
    )
    writer.set_inflight(inflight)
    limiter = RateLimiter(
        plan.values["rpm"], plan.values["ipm"],
        concurrency=plan.values.get("concurrency"), adapt=plan.values["adaptive"],
        max_pause_s=float(plan.values.get("max_pause") or 300.0),
    )  # fmt: skip
    progress = Progress(
        console, total=plan.jobs_to_run, quiet=plan.quiet, budget=plan.budget,
        status=limiter.describe,
    )  # fmt: skip
    tally = PoolTally()
    try:
        async with _base_url(plan) as base_url, anyio.create_task_group() as tg:
            provider = OpenAIImages(
                base_url, plan.connection.api_key, connections=settings.concurrency + 4,
                extra_headers=plan.extra_headers,
            )
            tg.start_soon(_watch_signals, control, settings.grace_s, console)
            try:
                with progress:
                    tally = await run_pool(
                        plan.jobs,
                        provider,
                        limiter,
                        writer,
                        context=RowContext(
                            plan.manifest["run_id"], plan.session, plan.connection.provider,
                            plan.rundir.images_dir, plan.image_tag,
                        ),
                        settings=settings,
                        control=control,
                        prices=plan.prices,
                        budget=plan.budget,
                        cheapest_job_usd=plan.cheapest_job_usd,
                        inflight=inflight,
                        on_progress=progress.update,
                    )
            finally:
                await provider.aclose()
                tg.cancel_scope.cancel()
    finally:
        # whatever happened, every row that was appended reaches a readable part file
        writer.close(compact=True)
        inflight.close(remove=True)  # every sent job has its row now
    reason = control.reason
    if reason is None and tally.skipped_by_class.get(ErrorClass.BUDGET.value):
        reason = ErrorClass.BUDGET  # some jobs did not fit under the cap: they are pending
    if reason is None and tally.failed_jobs:
        how, code = "failed_jobs", EXIT_FAILED
    elif reason is None:
        how, code = "completed", EXIT_OK
    else:
        how, code = _ENDING.get(reason, "interrupted"), EXIT_STOPPED
    summary = _summary(tally, plan.budget)
    summary["autopilot"] = limiter.learned()
    plan.rundir.end_session(plan.session, how, summary)
    message = control.message
    if not message and reason is ErrorClass.BUDGET and plan.budget is not None:
        message = plan.budget.exhausted_message()
    return SessionResult(tally, reason, message, code)


@contextlib.asynccontextmanager
async def _base_url(plan: SessionPlan) -> AsyncIterator[str]:
    if plan.connection.provider != "sim":
        assert plan.connection.base_url is not None
        yield plan.connection.base_url
        return
    from batchgen.sim import run_sim

    async with run_sim(plan.sim_config) as sim:
        yield sim.base_url


async def _watch_signals(control: RunControl, grace_s: float, console: Console) -> None:
    """First Ctrl-C/SIGTERM: stop dispatching, let requests in flight finish for grace_s.
    Second (or the grace running out): cancel them at once. Rows of what finished are flushed
    either way. The pool's end cancels this watcher."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        received = signals.__aiter__()
        signum = await received.__anext__()
        name = signal.Signals(signum).name
        console.print(
            f"[yellow]{name}: stopping — no new requests; waiting up to {grace_s:g}s for "
            "requests in flight (Ctrl-C again to cancel them now)[/]"
        )
        control.stop(ErrorClass.CANCELLED, f"interrupted by {name}")
        with anyio.move_on_after(grace_s):
            await received.__anext__()
            console.print("[red]cancelling requests in flight[/]")
        control.cancel()


def _summary(tally: PoolTally, budget: Budget | None) -> dict[str, Any]:
    return {
        "jobs_taken": tally.taken,
        "jobs_ok": tally.ok_jobs,
        "jobs_failed": tally.failed_jobs,
        "jobs_skipped": tally.skipped_jobs,
        "images": tally.images,
        "attempts": tally.attempts,
        "cost_usd": round(tally.cost_usd, 6),
        "spent_total_usd": round(total_spent(budget, tally), 6),
    }


def print_ending(
    console: Console, rundir: RunDir, result: SessionResult, budget: Budget | None
) -> None:
    """The final lines: where things are and how the session ended."""
    path = shlex.quote(str(rundir.path))
    console.print(f"images: {rundir.images_dir}")
    console.print(f"log:    {rundir.log_dir}  (duckdb: SELECT * FROM read_parquet('{rundir.log_dir}/*.parquet'))")
    reason = result.stop_reason
    if reason is None:
        ended = "every job succeeded" if result.exit_code == EXIT_OK else (
            f"finished; {result.tally.failed_jobs} job(s) failed for good "
            f"(see `batchgen report {path}`)"
        )
        console.print(f"ended:  {ended}")
        return
    if reason is ErrorClass.BUDGET and budget is not None:
        # the message carries the resume command with a cap that lets the rest through
        console.print(f"[yellow]ended:  {budget.exhausted_message(str(rundir.path))}[/]")
        return
    else:
        console.print(f"[yellow]ended:  stopped ({reason.value}): {result.stop_message}[/]")
        console.print(f"        {reason.remedy}")
    console.print(f"to finish the rest: [bold]batchgen resume {path}[/]")


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # a pipe or a CI log gets 120 columns, not rich's 80, so tables keep their model names
    width = None if stream.isatty() else 120
    return Console(highlight=False, soft_wrap=True, file=stream, width=width)


def finish(console: Console, rundir: RunDir, result: SessionResult, budget: Budget | None,
           *, quiet: bool) -> None:
    """The end-of-session summary (the report's short form), then the final lines."""
    if not quiet:
        from batchgen.cli.report import print_run_summary

        print_run_summary(rundir.path, console)
    print_ending(console, rundir, result, budget)
