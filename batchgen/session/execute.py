"""One live session of a run (the first `run`, a `resume`, a regeneration round): the log
writer, signals, the disk watch, the pool, and how it ended (recorded in run.json)."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import anyio

from batchgen.checks import ingest
from batchgen.config import PoolConfig
from batchgen.errors import ErrorClass
from batchgen.jobs.model import Job
from batchgen.limits import Gate, RateLimiter
from batchgen.limits.stop import RunControl
from batchgen.provider.endpoints import build_router, limiter_for, resolve_keys
from batchgen.provider.openai import OpenAIImages
from batchgen.runlog.journal import SentJournal
from batchgen.runlog.writer import RunLogError, RunLogWriter
from batchgen.runner.control import PoolSettings, RowContext
from batchgen.runner.pool import PoolTally, run_pool
from batchgen.runner.signals import watch_signals
from batchgen.session.builder import SessionPlan
from batchgen.session.connect import Connection
from batchgen.session.observer import Observer
from batchgen.session.outcome import EXIT_FAILED, EXIT_OK, EXIT_STOPPED, SessionResult
from batchgen.session.record import budget_stop, session_summary
from batchgen.storage import ImageStore, open_store

ENDING = {
    None: "completed",
    ErrorClass.AUTH: "stopped_auth",
    ErrorClass.QUOTA: "stopped_quota",
    ErrorClass.BUDGET: "stopped_budget",
    ErrorClass.DISK: "stopped_disk",
    ErrorClass.CANCELLED: "interrupted",
    ErrorClass.RATE_LIMIT: "stopped_rate_limit",
    ErrorClass.NETWORK: "stopped_network",
}


def pool_settings(pool: PoolConfig) -> PoolSettings:
    return PoolSettings.from_config(pool)


def make_limiter(pool: PoolConfig) -> RateLimiter:
    return limiter_for(pool)


@dataclass(slots=True)
class _Parts:
    """What one session wires together before the pool starts."""

    control: RunControl
    settings: PoolSettings
    inflight: SentJournal
    writer: RunLogWriter
    limiter: Gate
    router: Any  # batchgen.provider.router.Router with endpoints, else None
    checker: Any
    store: ImageStore


def _wire(plan: SessionPlan) -> _Parts:
    control = RunControl()
    settings = pool_settings(plan.pool)
    # journaled: a resume after kill -9 knows every request sent since the last flush
    inflight = SentJournal(plan.rundir.state_dir, plan.session)
    writer = RunLogWriter(
        plan.rundir.log_dir,
        run_id=plan.run_id,
        session=plan.session,
        state_dir=plan.rundir.state_dir,
    )
    writer.set_inflight(inflight)
    router = None
    if plan.endpoints:
        # the Router adds to the sent journal when a request really leaves
        router = build_router(
            plan.endpoints, resolve_keys(plan.endpoints), plan.pool, control, inflight
        )
        limiter: Gate = router.gate
        settings = dataclasses.replace(settings, concurrency=limiter.concurrency_cap)
    else:
        limiter = (plan.gate or make_limiter)(plan.pool)
    store = open_store(plan.images_to, plan.rundir.images_dir, plan.rundir.state_dir, plan.session)
    return _Parts(control, settings, inflight, writer, limiter, router, _image_checker(plan), store)


async def execute(plan: SessionPlan) -> SessionResult:
    """Run the plan's jobs through the pool; end the session in run.json; never raises for
    what the jobs or the provider do (that is the result's stop reason)."""
    parts = _wire(plan)
    tally = PoolTally()
    try:
        tally = await _run(plan, parts)
    finally:
        # whatever happened, every row that was appended reaches a readable part file
        lost = _close_log(parts.writer, parts.settings.grace_s, plan.observer)
        # every sent job has its row now; else the journal stays for resume, as after a crash
        parts.inflight.close(remove=lost is None)
        # after the last request: what is still queued, for a bounded time (Ctrl-C ends it)
        checks = parts.checker.finish().as_dict() if parts.checker is not None else {"where": "off"}
    close = getattr(parts.store, "close", None)
    if close is not None:
        close()
    ended = _end(plan, parts, tally, lost, checks)
    if lost is None:
        _add_to_library(plan)
        _copy_log_beside_images(plan)
    return ended


def _copy_log_beside_images(plan: SessionPlan) -> None:
    """``--images-to URL``: the log, checks and run.json go beside the images (a copy: the
    run directory, with its lock and journals, stays where it is)."""
    if not plan.images_to:
        return
    # lazy: a local run loads none of the remote store (tests/test_storage.py)
    from batchgen.storage.upload import upload_run_files

    try:
        copied = upload_run_files(plan.rundir.path, plan.images_to)
    except OSError as exc:  # StorageError: redacted; the run itself lost nothing
        plan.observer.warn(f"{exc}; the next session's end copies it again")
        return
    if copied:
        plan.observer.say(f"log copied beside the images: {plan.images_to}/log/ ({copied} files)")


def _add_to_library(plan: SessionPlan) -> None:
    """``run --reuse LIBRARY``: the run's answers go into the library at the session's end
    (what it reused is stored already; a failure here loses nothing of the run)."""
    spec = (plan.manifest.get("settings") or {}).get("reuse") or {}
    libraries = [s["path"] for s in spec.get("sources") or [] if s.get("kind") == "library"]
    if not libraries:
        return

    # lazy: loads pyarrow.compute; this module is imported without it
    from batchgen.library.entries import run_entries
    from batchgen.library.index import Library

    try:
        entries = run_entries(plan.rundir.path)
        for path in libraries:
            added, new = Library(path).add_entries(entries)
            plan.observer.say(f"library {path}: {added} answer(s) indexed, {new} new file(s)")
    except (OSError, sqlite3.Error) as exc:
        plan.observer.warn(f"the run's images could not be added to the library: {exc}")


async def _run(plan: SessionPlan, parts: _Parts) -> PoolTally:
    router, settings, observer = parts.router, parts.settings, plan.observer
    tally = PoolTally()
    async with _base_url(plan) as base_url, anyio.create_task_group() as tg:
        provider: Any = router or OpenAIImages(
            base_url,
            plan.connection.api_key,
            connections=settings.concurrency + 4,
            extra_headers=plan.extra_headers,
        )
        if plan.handle_signals:
            tg.start_soon(watch_signals, parts.control, settings.grace_s, observer.say)
        tg.start_soon(_watch_disk, parts.writer, parts.inflight, parts.control)
        if callable(getattr(observer, "closed", None)):
            tg.start_soon(_watch_output, observer, parts.control)
        try:
            progress = observer.progress(plan.jobs_to_run, plan.budget, parts.limiter.describe)
            sink: Any = parts.writer if plan.ledger is None else plan.ledger.sink(parts.writer)
            with progress as on_progress:
                tally = await run_pool(
                    _reusing(plan, parts),
                    provider,
                    parts.limiter,
                    sink,
                    context=RowContext(
                        plan.run_id,
                        plan.session,
                        plan.connection.provider,
                        plan.rundir.images_dir,
                        checker=parts.checker,
                        image_tag=plan.image_tag,
                        retag=plan.retag,
                        store=parts.store,
                    ),
                    settings=settings,
                    control=parts.control,
                    prices=plan.prices,
                    budget=plan.budget,
                    cheapest_job_usd=plan.cheapest_job_usd,
                    inflight=parts.inflight,
                    on_progress=on_progress,
                )
                # the final counts (jobs cancelled in flight report no progress of their own):
                # the last progress line agrees with the summary printed after it
                on_progress(tally)
        finally:
            for closing in [ep.provider for ep in router.endpoints] if router else [provider]:
                await closing.aclose()
            tg.cancel_scope.cancel()
    return tally


def _reusing(plan: SessionPlan, parts: _Parts) -> Iterable[Job]:
    """The plan's jobs; with ``settings.reuse`` (run --reuse / --from-pilot), those a source
    holds take its images and a row here instead of a request (batchgen.library.reuse)."""
    spec = (plan.manifest.get("settings") or {}).get("reuse")
    if not spec or plan.image_tag:  # a regeneration round wants a new picture
        return plan.jobs
    # lazy: loads pyarrow.compute; this module is imported without it
    from batchgen.library.reuse import reuse_filter

    return reuse_filter(
        plan.jobs,
        spec,
        parts.writer.append,
        run_id=plan.run_id,
        session=plan.session,
        images_dir=plan.rundir.images_dir,
    )


def _end(
    plan: SessionPlan, parts: _Parts, tally: PoolTally, lost: str | None, checks: Any
) -> SessionResult:
    control, router = parts.control, parts.router
    if lost is not None:  # whatever stopped the run, the rows it could not save come first
        control.reason, control.message = ErrorClass.DISK, lost
    reason = _stop_reason(control, router, tally)
    if reason is None and tally.failed_jobs:
        how, code = "failed_jobs", EXIT_FAILED
    elif reason is None:
        how, code = "completed", EXIT_OK
    else:
        how, code = ENDING.get(reason, "interrupted"), EXIT_STOPPED
    message = control.message
    stop = None
    if reason is ErrorClass.BUDGET and lost is None:
        stop = budget_stop(plan.rundir, plan.budget)
    if stop is not None:
        message = stop[0]  # the ending's text, with the rest of the run (not the gate's)
    learned = parts.limiter.learned() if router is None else None
    if lost is None:
        try:
            summary = session_summary(tally, plan.budget, stop)
            if router is None:
                summary["autopilot"] = learned
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
    return SessionResult(tally, reason, message, code, how, learned)


def _stop_reason(control: RunControl, router: Any, tally: PoolTally) -> ErrorClass | None:
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
    return reason


def _endpoint_summary(router: Any) -> dict[str, Any]:
    """Each endpoint's learned limits (like ``summary.autopilot`` of one endpoint) and
    whether it was taken out."""
    out = {}
    for ep in router.endpoints:
        down = ep.down
        out[ep.name] = {
            "protocol": ep.protocol,
            "autopilot": ep.limiter.learned(),
            "taken_out": None
            if down is None
            else {"class": down.error_class.value, "message": down.message[:500]},
        }
    return out


def _close_log(writer: RunLogWriter, retry_for: float, observer: Observer) -> str | None:
    """Close the log, retrying a failing final flush (disk full) for ``retry_for`` seconds;
    None when every row is written, else what was lost, in one line."""
    if writer.last_error is not None and writer.unwritten:
        observer.say(
            f"the run log cannot be written ({writer.last_error}): retrying "
            f"{writer.unwritten} row(s) for up to {retry_for:g}s — free disk space now",
            "yellow",
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


async def _watch_output(observer: Any, control: RunControl) -> None:
    """The caller's output went away (the CLI's stdout piped into `head`): stop dispatching,
    like a first Ctrl-C — requests in flight finish, the session ends as interrupted."""
    while not control.stopping:
        await anyio.sleep(0.2)
        why = observer.closed()
        if why:
            control.stop(ErrorClass.CANCELLED, f"{why}: stopped; the jobs left are pending")
            return


def _image_checker(plan: SessionPlan) -> Any:
    if not plan.pool.image_checks:
        return None

    if plan.images_to:  # the workers read no file: each is handed the bytes just uploaded
        return ingest.start_ingest_checks(plan.rundir.path, plan.session, kind="thread")
    return ingest.start_ingest_checks(plan.rundir.path, plan.session)


@contextlib.asynccontextmanager
async def _base_url(plan: SessionPlan) -> AsyncIterator[str]:
    async with base_url_of(plan.connection, plan.sim_config, bool(plan.endpoints)) as url:
        yield url


@contextlib.asynccontextmanager
async def base_url_of(
    connection: Connection, sim_config: Any, endpoints: bool = False
) -> AsyncIterator[str]:
    """The connection's base URL; for the simulator, one started for the block."""
    if endpoints:
        yield ""  # each endpoint has its own
        return
    if connection.provider != "sim":
        assert connection.base_url is not None
        yield connection.base_url
        return
    # lazy: the simulator (its server, Pillow rendering) loads only for --provider sim
    from batchgen.sim import SimConfig, run_sim

    async with run_sim(sim_config or SimConfig()) as sim:
        yield sim.base_url
