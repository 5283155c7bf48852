"""The Batch API mode of a session (``via="batch"``): submit, follow and collect the run's
batches, end the session in run.json, and hand what the deadline cut over (or ``--via live``)
to the live path. The work is in batchgen/batch/; this is its lifecycle."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from batchgen.batch.context import BatchContext, BatchOptions, say_nothing
from batchgen.batch.follow import cancel_open
from batchgen.batch.session import BatchSession, batch_backend, run_batch_session
from batchgen.batch.state import BatchState
from batchgen.config import BatchConfig, RunConfig
from batchgen.errors import ErrorClass, UsageError
from batchgen.jobs import iter_jobs, sha256_file
from batchgen.limits.stop import RunControl
from batchgen.money.spent import spent
from batchgen.provider.endpoints import from_records
from batchgen.runlog.files import compact_all
from batchgen.runlog.jobindex import load_or_build
from batchgen.runlog.orphans import image_job_ids
from batchgen.runlog.rundir import RunDir
from batchgen.runlog.state import DONE, FAILED, job_states, remaining
from batchgen.runner.recovery import adopt_orphans, remove_torn_images
from batchgen.session.builder import Prepared, SessionPlan, prepare_session, session_overrides
from batchgen.session.connect import Connection, batch_connection, resolve_connection
from batchgen.session.execute import base_url_of
from batchgen.session.ledgering import LedgerLink
from batchgen.session.observer import Observer
from batchgen.session.outcome import EXIT_FAILED, EXIT_OK, EXIT_STOPPED, Outcome, SessionResult
from batchgen.session.record import budget_stop, session_summary
from batchgen.session.rest import open_ids_now

if TYPE_CHECKING:
    from batchgen.batch.context import BatchOptions, Say
    from batchgen.batch.session import BatchOutcome
    from batchgen.jobs.model import Job

Submit = Callable[[], "Iterable[Job] | None"]
_BATCH_ENDING = {
    ErrorClass.BUDGET: "stopped_budget",
    ErrorClass.AUTH: "stopped_auth",
    ErrorClass.QUOTA: "stopped_quota",
}


def batch_options(batch: BatchConfig, **extra: Any) -> BatchOptions:
    return BatchOptions(
        max_requests=int(batch.batch_max_requests),
        max_bytes=int(batch.batch_max_bytes),
        poll_s=float(batch.poll_interval),
        poll_max_s=float(batch.poll_max),
        deadline_at=batch.deadline_at,
        assume_latency_s=batch.assume_latency,
        **extra,
    )


def jobs_lookup(job_file: Path | str, defaults: dict[str, Any]) -> Callable[[set[str]], Any]:
    def jobs_of(ids: set[str]) -> dict[str, Job]:
        if not ids:
            return {}
        return {job.id: job for job in iter_jobs(job_file, defaults) if job.id in ids}

    return jobs_of


def say_for(observer: Observer) -> Say:
    """What batchgen/batch/ says, to the observer: a warning in yellow."""

    def say(text: str, /, *, warning: bool = False) -> None:
        observer.say(text, "yellow" if warning else None)

    return say


def run_batch(
    plan: SessionPlan,
    options: BatchOptions,
    submit: Submit | None,
    job_file: Path | str,
    defaults: dict[str, Any],
) -> tuple[SessionResult, BatchOutcome]:
    """One batch session of ``plan``; ends it in run.json."""

    say = say_nothing if plan.quiet else say_for(plan.observer)
    s = BatchSession(
        rundir=plan.rundir,
        run_id=plan.run_id,
        session=plan.session,
        provider=plan.connection.provider,
        api_key=plan.connection.api_key,
        prices=plan.prices,
        budget=plan.budget,
        options=options,
        jobs_of=jobs_lookup(job_file, defaults),
        pool=plan.pool,
        say=say,
        timeout_s=float(plan.pool.timeout),
        wrap_sink=None if plan.ledger is None else plan.ledger.sink,
        protocol="gemini" if plan.connection.provider == "gemini" else "openai",
    )

    async def go() -> BatchOutcome:
        async with base_url_of(plan.connection, plan.sim_config) as base_url:
            return await run_batch_session(s, base_url, submit)

    try:
        outcome = _with_run_pending(plan, anyio.run(go))
    finally:
        if plan.ledger is not None:
            plan.ledger.close()
    how, code = _ending(outcome)
    # a budget's stop is recorded and sent as the ending tells it (with the rest of the run)
    budget_stopped = outcome.stop_reason is ErrorClass.BUDGET
    stop = budget_stop(plan.rundir, plan.budget) if budget_stopped else None
    message = outcome.stop_message if stop is None else stop[0]
    summary = session_summary(outcome.ctx.tally, plan.budget, stop)
    summary["batch"] = {
        **outcome.ctx.state.summary(),
        "pending": outcome.pending,
        "cutover": outcome.cutover,
    }
    plan.rundir.end_session(plan.session, how, summary)
    result = SessionResult(outcome.ctx.tally, outcome.stop_reason, message, code, how)
    return result, outcome


def _ending(outcome: BatchOutcome) -> tuple[str, int]:
    reason = outcome.stop_reason
    if outcome.detached:
        return "detached", EXIT_OK
    if reason is not None:
        return _BATCH_ENDING.get(reason, "interrupted"), EXIT_STOPPED
    if outcome.pending or outcome.ctx.state.open_parts():
        return "failed_jobs", EXIT_STOPPED
    if outcome.failed:
        return "failed_jobs", EXIT_FAILED
    return "completed", EXIT_OK


def _with_run_pending(plan: SessionPlan, outcome: BatchOutcome) -> BatchOutcome:
    """Pending counted over the whole run (a job this session left pending may have been
    submitted again and finished in the same session): not done, not failed for good."""

    counts = job_states(plan.rundir.path, with_inflight=False).counts()
    pending = max(int(plan.manifest.get("jobs") or 0) - counts[DONE] - counts[FAILED], 0)
    open_ids = outcome.ctx.state.ids_in(outcome.ctx.state.open_parts())
    return dataclasses.replace(
        outcome, pending=max(pending - len(open_ids), 0), failed=counts[FAILED]
    )


def run_via_batch(
    plan: SessionPlan,
    cfg: RunConfig,
    job_file: Path | str,
    defaults: dict[str, Any],
    submit: Submit | None,
    *,
    collect_only: bool = False,
    cancel_open: bool = False,
) -> Outcome | None:
    """A batch session and what it tells the observer. None: the deadline cut over (or the
    open batches were cancelled for ``--via live``), the caller finishes the rest live."""
    options = batch_options(
        cfg.batch, detach=cfg.detach, collect_only=collect_only, cancel_open=cancel_open
    )
    result, outcome = run_batch(plan, options, submit, job_file, defaults)
    if (outcome.cutover or cancel_open) and result.stop_reason is None:
        plan.observer.say("the rest goes to the live API now")
        return None
    plan.observer.batch_ended(plan.rundir, result, outcome, plan.budget)
    return Outcome(plan.rundir, result.exit_code, result, plan.budget)


def open_parts_of(rundir: RunDir, run_id: str) -> list[Any]:
    return BatchState(rundir.state_dir, run_id).open_parts()


@dataclasses.dataclass(slots=True)
class _Pending:
    """What a resume of a run with batches has to do: the open batches' jobs, what to submit."""

    open_ids: set[str]
    to_submit: set[str]
    index: Any  # the job index when --via batch submits the rest, else None


def _what_is_pending(
    rundir: RunDir, manifest: dict[str, Any], cfg: RunConfig, via: str, collect_only: bool
) -> _Pending:
    run_id, job_file = manifest["run_id"], Path(manifest["job_file"])
    compact_all(rundir.log_dir)
    remove_torn_images(rundir.images_dir)
    states = job_states(rundir.path)
    rundir.mark_crashed()
    state = BatchState(rundir.state_dir, run_id)
    open_ids: set[str] = set()
    for part in state.open_parts():
        open_ids.update(state.job_ids(part))
    if via != "batch" or collect_only:
        return _Pending(open_ids, set(), None)
    if not job_file.exists():
        msg = f"the job file {job_file} of this run is gone: put it back to resume"
        raise UsageError(msg)
    index = load_or_build(rundir.state_dir, job_file, sha256_file(job_file), dict(cfg.job_defaults))
    rest = remaining(index, states, cfg.retry_failed)
    return _Pending(open_ids, set(rest.run) - open_ids, index)


def resume_via_batch(
    rundir: RunDir,
    manifest: dict[str, Any],
    cfg: RunConfig,
    via: str,
    observer: Observer,
    argv: Sequence[str],
    *,
    handle_signals: bool = True,
) -> Outcome | None:
    """`resume`/`collect` of a run with batches: follow and collect what was submitted, then
    submit what is left (``--via batch``), or cancel the open batches, collect them, and hand
    the rest to the live path (``--via live``: returns None)."""
    collect_only = bool(cfg.given.get("collect_only"))
    pending = _what_is_pending(rundir, manifest, cfg, via, collect_only)
    if not pending.open_ids and not pending.to_submit:
        if collect_only:
            observer.say("nothing to collect: no batch of this run is open")
            return Outcome(rundir, EXIT_OK)
        if via == "live":
            return None
        observer.say("nothing to resume: every job is done or failed for good")
        return Outcome(rundir, EXIT_OK)
    plan = _resume_plan(rundir, manifest, cfg, pending, observer, argv, handle_signals)
    job_file, defaults = Path(manifest["job_file"]), dict(cfg.job_defaults)
    index, run_id = pending.index, manifest["run_id"]

    def submit() -> Iterable[Job] | None:
        """Called once the open batches are collected: what is left now, their pending too."""

        now = remaining(index, job_states(rundir.path, with_inflight=False), cfg.retry_failed)
        ids = set(now.run) - open_ids_now(rundir, run_id)
        return (j for j in iter_jobs(job_file, defaults) if j.id in ids) if ids else None

    return run_via_batch(
        plan,
        cfg,
        job_file,
        defaults,
        submit if index is not None else None,
        collect_only=collect_only,
        cancel_open=via == "live",
    )


def _resume_plan(
    rundir: RunDir,
    manifest: dict[str, Any],
    cfg: RunConfig,
    pending: _Pending,
    observer: Observer,
    argv: Sequence[str],
    handle_signals: bool,
) -> SessionPlan:
    # --max-cost bounds images and judging together, as on every resume
    prepared = prepare_session(
        cfg,
        manifest["job_file"],
        only=frozenset(pending.to_submit),
        spent_before=spent(rundir.path).total,
        via_batch=True,
    )
    if pending.to_submit:
        prepared.confirm(observer)
    session = rundir.begin_session(session_overrides(cfg), list(argv))
    _adopt_live_orphans(rundir, manifest, pending, session, prepared)
    link = _ledger(rundir, manifest, cfg)
    if link is not None:
        # the open batches' holds become this session's, what it submits is held as it goes
        link.attach(prepared.budget, observer)
    what = "collecting" if not pending.to_submit else "resuming"
    observer.say(
        f"{what} {rundir.path}: {len(pending.open_ids)} job(s) in open batches, "
        f"{len(pending.to_submit)} to submit"
    )
    return prepared.plan(
        rundir,
        manifest,
        session,
        observer,
        jobs=(),
        jobs_to_run=len(pending.to_submit),
        handle_signals=handle_signals,
        ledger=link,
    )


def _ledger(rundir: RunDir, manifest: dict[str, Any], cfg: RunConfig) -> Any:
    """The spend ledger: the run's rows made its log's; what the batches collected now is
    added as it is logged."""

    settings = manifest.get("settings") or {}
    link = LedgerLink.open(cfg, manifest["job_file"], settings.get("project"))
    if link is not None:
        link.bind(str(manifest["run_id"]), rundir.path)
        link.sync_run(rundir)
    return link


def _adopt_live_orphans(
    rundir: RunDir,
    manifest: dict[str, Any],
    pending: _Pending,
    session: int,
    prepared: Prepared,
) -> None:
    """Images a crashed live session saved without their row (never those of open batches:
    their collection logs them) are adopted, and not submitted again."""
    adoptable = (image_job_ids(rundir.images_dir) & pending.to_submit) - pending.open_ids
    if not adoptable:
        return
    wanted = {j.id: j for j in prepared.jobs(adoptable)}
    adopted = adopt_orphans(rundir, manifest["run_id"], session, wanted, prepared.prices)
    pending.to_submit -= set(adopted)


def cancel_batches(
    run_dir: str | Path, base_url: str | None, api_key_env: str | None, observer: Observer
) -> int | None:
    """Ask the provider to cancel the run's open batches; how many. None: the run used the
    in-process simulator, whose batches ended with it."""

    rundir = RunDir(run_dir)
    with rundir.lock():
        manifest = rundir.load()
        recorded = manifest["settings"]
        if recorded.get("provider") == "sim" and not base_url:
            return None
        conn = _cancel_connection(recorded, base_url, api_key_env)
        state = BatchState(rundir.state_dir, manifest["run_id"])
        api = batch_backend(conn.provider, str(conn.base_url), conn.api_key, state)
        ctx = BatchContext(
            rundir=rundir,
            run_id=manifest["run_id"],
            session=0,
            provider=conn.provider,
            api=api,
            state=state,
            sink=None,
            prices=None,  # type: ignore[arg-type]
            budget=None,
            options=batch_options(BatchConfig()),
            control=RunControl(),
            jobs_of=lambda ids: {},
            say=say_for(observer),
        )

        async def go() -> int:
            try:
                return await cancel_open(ctx)
            finally:
                await api.aclose()

        return anyio.run(go)


def _cancel_connection(
    recorded: dict[str, Any], base_url: str | None, api_key_env: str | None
) -> Any:
    """Where the run's batches are: the one endpoint run.json recorded (``--providers``), or
    the OpenAI-compatible URL (the one given now winning)."""
    endpoints = recorded.get("endpoints")
    if endpoints and not base_url:
        return batch_connection(Connection("providers", None, "", ""), from_records(endpoints))
    return resolve_connection(
        "openai", base_url or recorded.get("base_url"), api_key_env or recorded.get("api_key_env")
    )
