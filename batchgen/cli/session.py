"""One session of a run (the first `run`, or a `resume`): lock, log writer, signals, the pool,
and how it ended. Shared by `run` and `resume` so both stop, flush and report the same way."""

from __future__ import annotations

import contextlib
import dataclasses
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
from batchgen.errors import ErrorClass, printable
from batchgen.jobs.model import Job
from batchgen.limits import RateLimiter
from batchgen.limits.stop import RunControl
from batchgen.money import Budget, PriceTable
from batchgen.provider.openai import OpenAIImages
from batchgen.runlog.journal import SentJournal
from batchgen.runlog.rundir import RunDir
from batchgen.runlog.writer import RunLogError, RunLogWriter
from batchgen.runner.control import RowContext
from batchgen.runner.pool import PoolTally, run_pool

_ENDING = {
    None: "completed",
    ErrorClass.AUTH: "stopped_auth",
    ErrorClass.QUOTA: "stopped_quota",
    ErrorClass.BUDGET: "stopped_budget",
    ErrorClass.DISK: "stopped_disk",
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
    # `--providers FILE`: the endpoints (batchgen.cli.providers.EndpointSpec); None: one
    endpoints: list[Any] | None = None


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
    router = None
    if plan.endpoints:
        from batchgen.cli.providers import build_router, resolve_keys

        router = build_router(plan.endpoints, resolve_keys(plan.endpoints), plan.values, control)
        router.inflight = inflight  # added to the sent journal when a request really leaves
        limiter: RateLimiter = router.gate
        settings = dataclasses.replace(settings, concurrency=limiter.concurrency_cap)
    else:
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
    checker = _image_checker(plan)
    try:
        async with _base_url(plan) as base_url, anyio.create_task_group() as tg:
            provider: Any = router or OpenAIImages(
                base_url,
                plan.connection.api_key,
                connections=settings.concurrency + 4,
                extra_headers=plan.extra_headers,
            )
            tg.start_soon(_watch_signals, control, settings.grace_s, console)
            tg.start_soon(_watch_disk, writer, inflight, control)
            try:
                with progress:
                    tally = await run_pool(
                        plan.jobs,
                        provider,
                        limiter,
                        writer,
                        context=RowContext(
                            plan.manifest["run_id"],
                            plan.session,
                            plan.connection.provider,
                            plan.rundir.images_dir,
                            checker=checker,
                            image_tag=plan.image_tag,
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
                for closing in [ep.provider for ep in router.endpoints] if router else [provider]:
                    await closing.aclose()
                tg.cancel_scope.cancel()
    finally:
        # whatever happened, every row that was appended reaches a readable part file
        lost = _close_log(writer, settings.grace_s, console)
        # every sent job has its row now; else the journal stays for resume, as after a crash
        inflight.close(remove=lost is None)
        # after the last request: what is still queued, for a bounded time (Ctrl-C ends it)
        checks = checker.finish().as_dict() if checker is not None else {"where": "off"}
    if lost is not None:  # whatever stopped the run, the rows it could not save come first
        control.reason, control.message = ErrorClass.DISK, lost
    reason = control.reason
    if router is not None and reason is None and router.taken_out() and tally.skipped_jobs:
        # endpoints taken out (auth, quota) left the jobs of their models pending
        first = next(iter(router.taken_out().items()))
        reason = first[1].error_class
        control.message = "; ".join(
            f"endpoint {name} taken out: {exc}" for name, exc in router.taken_out().items()
        )
    if reason is None and tally.skipped_by_class.get(ErrorClass.BUDGET.value):
        reason = ErrorClass.BUDGET  # some jobs did not fit under the cap: they are pending
    if reason is None and tally.failed_jobs:
        how, code = "failed_jobs", EXIT_FAILED
    elif reason is None:
        how, code = "completed", EXIT_OK
    else:
        how, code = _ENDING.get(reason, "interrupted"), EXIT_STOPPED
    message = control.message
    if lost is None:
        try:
            summary = _summary(tally, plan.budget)
            if router is None:
                summary["autopilot"] = limiter.learned()
            else:
                summary["endpoints"] = _endpoint_summary(router)
            summary["image_checks"] = checks
            plan.rundir.end_session(plan.session, how, summary)
        except OSError as exc:  # the log is complete; resume treats the session as crashed
            message = f"{message}; run.json could not record the session's end ({exc})"
    # rows lost: the session stays without an end, so resume recovers it like a crash (its
    # sent journal names the jobs; their saved images are adopted)
    if not message and reason is ErrorClass.BUDGET and plan.budget is not None:
        message = plan.budget.exhausted_message()
    return SessionResult(tally, reason, message, code)


def _endpoint_summary(router: Any) -> dict[str, Any]:
    """Each endpoint's learned limits (like ``summary.autopilot`` of one endpoint) and
    whether it was taken out."""
    out = {}
    for ep in router.endpoints:
        out[ep.name] = {
            "protocol": ep.protocol,
            "autopilot": ep.limiter.learned(),
            "taken_out": None
            if ep.down is None
            else {
                "class": ep.down.error_class.value,
                "message": ep.down.message[:500],
            },
        }
    return out


def _close_log(writer: RunLogWriter, retry_for: float, console: Console) -> str | None:
    """Close the log, retrying a failing final flush (disk full) for ``retry_for`` seconds;
    None when every row is written, else what was lost, in one line."""
    if writer.last_error is not None and writer.unwritten:
        _say(
            console,
            f"[yellow]the run log cannot be written ({writer.last_error}): retrying "
            f"{writer.unwritten} row(s) for up to {retry_for:g}s — free disk space now[/]",
        )
    try:
        writer.close(compact=True, retry_for=retry_for)
    except RunLogError as exc:
        return (
            f"{exc.unwritten} row(s) of the log could not be written "
            f"({exc.__cause__ or exc}); images already saved are adopted by resume"
        )
    return None


async def _watch_disk(writer: RunLogWriter, journal: SentJournal, control: RunControl) -> None:
    """A log flush (the writer's thread) or the sent journal failing — disk full, read-only —
    stops dispatching: answers that cannot be saved must not be paid for."""
    while True:
        await anyio.sleep(0.2)
        error = writer.last_error or journal.error
        if error is not None and not control.stopping:
            control.stop(ErrorClass.DISK, f"the run log cannot be written: {error}")


def _image_checker(plan: SessionPlan) -> Any:
    if not plan.values.get("image_checks", True):
        return None
    from batchgen.checks.ingest import start_ingest_checks

    return start_ingest_checks(plan.rundir.path, plan.session)


@contextlib.asynccontextmanager
async def _base_url(plan: SessionPlan) -> AsyncIterator[str]:
    if plan.endpoints:
        yield ""  # each endpoint has its own
        return
    if plan.connection.provider != "sim":
        assert plan.connection.base_url is not None
        yield plan.connection.base_url
        return
    from batchgen.sim import run_sim

    async with run_sim(plan.sim_config) as sim:
        yield sim.base_url


async def _watch_signals(control: RunControl, grace_s: float, console: Console) -> None:
    """First Ctrl-C/SIGTERM/SIGHUP (the terminal closed, ssh dropped): stop dispatching, let
    requests in flight finish for grace_s. Second (or the grace running out): cancel them at
    once. Rows of what finished are flushed either way. The pool's end cancels this watcher."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        received = signals.__aiter__()
        signum = await received.__anext__()
        name = signal.Signals(signum).name
        control.stop(ErrorClass.CANCELLED, f"interrupted by {name}")
        _say(
            console,
            f"[yellow]{name}: stopping — no new requests; waiting up to {grace_s:g}s for "
            "requests in flight (Ctrl-C again to cancel them now)[/]",
        )
        with anyio.move_on_after(grace_s):
            await received.__anext__()
            _say(console, "[red]cancelling requests in flight[/]")
        control.cancel()


def _say(console: Console, text: str) -> None:
    """Print, unless the terminal is gone (after SIGHUP a write may fail with EIO): the stop
    must go on whatever the terminal does."""
    with contextlib.suppress(OSError):
        console.print(text)


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
    """The final lines: where things are and how the session ended. No markup: a path or a
    provider's message holding ``[/x]`` is printed as written, control sequences removed."""
    path = shlex.quote(str(rundir.path))

    def say(text: str, style: str | None = None) -> None:
        console.print(printable(text, one_line=True), markup=False, style=style)

    say(f"images: {rundir.images_dir}")
    say(
        f"log:    {rundir.log_dir}  (duckdb: SELECT * FROM read_parquet('{rundir.log_dir}/*.parquet'))"
    )
    reason = result.stop_reason
    if reason is None:
        ended = (
            "every job succeeded"
            if result.exit_code == EXIT_OK
            else (
                f"finished; {result.tally.failed_jobs} job(s) failed for good "
                f"(see `batchgen report {path}`)"
            )
        )
        say(f"ended:  {ended}")
        return
    if reason is ErrorClass.BUDGET and budget is not None:
        # the message carries the resume command with a cap that lets the rest through
        say(f"ended:  {budget.exhausted_message(str(rundir.path))}", "yellow")
        return
    say(f"ended:  stopped ({reason.value}): {result.stop_message}", "yellow")
    say(f"        {reason.remedy}")
    say(f"to finish the rest: batchgen resume {path}", "bold")


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # a pipe or a CI log gets 120 columns, not rich's 80, so tables keep their model names
    width = None if stream.isatty() else 120
    return Console(highlight=False, soft_wrap=True, file=stream, width=width)


def finish(
    console: Console, rundir: RunDir, result: SessionResult, budget: Budget | None, *, quiet: bool
) -> None:
    """The end-of-session summary (the report's short form), then the final lines."""
    if not quiet:
        from batchgen.cli.report import print_run_summary

        print_run_summary(rundir.path, console)
    print_ending(console, rundir, result, budget)
