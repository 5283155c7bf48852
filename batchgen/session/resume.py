"""The rest of a run (``batchgen resume``, ``batchgen.resume``): under the run's lock, settle
what a crash left (part files, torn images, sessions without an end), work out which jobs have
no successful result, adopt images saved without their row, then run the rest — live, through
the Batch API, or as regeneration rounds of the quality loop."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from batchgen import faultpoints
from batchgen.config import RunConfig
from batchgen.errors import UsageError
from batchgen.jobs import iter_jobs
from batchgen.money import Budget, Quote
from batchgen.money.spent import spent
from batchgen.numbers import plural
from batchgen.runlog.files import damaged_message
from batchgen.runlog.orphans import image_job_ids
from batchgen.runlog.rundir import RunDir
from batchgen.runlog.state import Remaining
from batchgen.runner.recovery import (
    adopt_orphans,
    adopt_stored,
    record_crashed_inflight,
    remove_torn_images,
    settle_log,
)
from batchgen.session.batchmode import open_parts_of, resume_via_batch
from batchgen.session.builder import Declined, PlanExecutor, prepare_session, session_overrides
from batchgen.session.execute import execute
from batchgen.session.ledgering import LedgerLink
from batchgen.session.observer import Observer, Silent
from batchgen.session.outcome import EXIT_FAILED, EXIT_OK, Outcome
from batchgen.session.regenerate import Regenerate, run_rounds
from batchgen.session.rest import select_rest


def resume_run(
    run_dir: str | Path,
    flags: Mapping[str, Any],
    *,
    observer: Observer | None = None,
    argv: Sequence[str] = (),
    regenerate: Regenerate | None = None,
    handle_signals: bool = True,
    execute_plan: PlanExecutor | None = None,
) -> Outcome:
    """Take the run's lock and finish the rest of it. ``flags`` (CLI names) override what
    run.json recorded for this session. ``execute_plan`` runs the session's plan instead of
    this process's pool (``cluster.ClusterRun(rest=True)``: over a Ray cluster). Raises
    UsageError (RunDirError, RunLocked, JobFileProblems) before anything is sent."""
    rundir = RunDir(run_dir)
    with rundir.lock():
        return resume_locked(
            rundir,
            flags,
            observer or Silent(),
            argv,
            regenerate=regenerate,
            handle_signals=handle_signals,
            execute_plan=execute_plan,
        )


def resume_locked(
    rundir: RunDir,
    flags: Mapping[str, Any],
    observer: Observer,
    argv: Sequence[str],
    *,
    regenerate: Regenerate | None = None,
    handle_signals: bool = True,
    execute_plan: PlanExecutor | None = None,
) -> Outcome:
    manifest = rundir.load(strict=True)
    recorded = manifest["settings"]
    cfg = RunConfig.build(flags, recorded)
    via = cfg.via or recorded.get("via") or "live"
    if execute_plan is not None:
        if via == "batch" or regenerate is not None:
            msg = "resume --ray runs the live rest: drop --via batch, --regenerate-below"
            raise UsageError(msg)
        # what the executor cannot run (ClusterRun.check: the in-process simulator, several
        # endpoints), refused before a session is begun
        execute_plan.check(cfg)
    if via == "batch" or open_parts_of(rundir, manifest["run_id"]):
        # batches of this run: collect them first; --via batch submits the rest as batches
        outcome = resume_via_batch(
            rundir, manifest, cfg, via, observer, argv, handle_signals=handle_signals
        )
        if outcome is not None:
            return outcome
        manifest = rundir.load()
    job_file = Path(manifest["job_file"])
    if not job_file.exists():
        msg = f"the job file {job_file} of this run is gone: put it back to resume"
        raise UsageError(msg)
    rest, job_sha256 = _recover(rundir, cfg, job_file, observer)
    _say_what_changed(observer, manifest, job_file, job_sha256, rest)
    ctx = _Resume(rundir, cfg, manifest, job_file, observer, argv, handle_signals, execute_plan)
    if regenerate is not None:
        return _with_rounds(ctx, rest, regenerate)
    if not rest.run:
        rundir.mark_crashed()  # no job of theirs is left to run: nothing to log first
        observer.say(
            f"nothing to resume: {plural(rest.skipped_done, 'job')} done, "
            f"{rest.skipped_failed} failed for good"
            + (" (rerun them with --retry-failed)" if rest.skipped_failed else "")
        )
        return Outcome(rundir, EXIT_OK)
    return run_rest(ctx, rest)


def _recover(
    rundir: RunDir, cfg: RunConfig, job_file: Path, observer: Observer
) -> tuple[Remaining, str]:
    """Settle what a crashed session left; which jobs still need a run."""
    # a crashed session left part files and an in-flight list: settle them first
    for path in settle_log(rundir.log_dir):
        observer.warn(damaged_message(path, moved=True))
    remove_torn_images(rundir.images_dir)
    return select_rest(rundir, job_file, cfg.job_defaults, cfg.retry_failed)


class _Resume:
    """What every step of one resume shares."""

    def __init__(
        self,
        rundir: RunDir,
        cfg: RunConfig,
        manifest: dict[str, Any],
        job_file: Path,
        observer: Observer,
        argv: Sequence[str],
        handle_signals: bool,
        execute_plan: PlanExecutor | None = None,
    ) -> None:
        self.rundir, self.cfg, self.manifest = rundir, cfg, manifest
        self.job_file, self.observer, self.argv = job_file, observer, argv
        self.handle_signals = handle_signals
        self.defaults = dict(cfg.job_defaults)
        self.execute_plan = execute_plan


def _with_rounds(ctx: _Resume, rest: Remaining, regen: Regenerate) -> Outcome:
    code = EXIT_OK
    last: Outcome | None = None
    if rest.run:
        last = run_rest(ctx, rest)
        code = last.exit_code
        if code not in (EXIT_OK, EXIT_FAILED):
            return last
    else:
        ctx.rundir.mark_crashed()  # no job of theirs is left to run: nothing to log first
    rounds = run_rounds(
        ctx.rundir,
        ctx.cfg,
        ctx.manifest,
        regen,
        ctx.job_file,
        ctx.observer,
        ctx.argv,
        ctx.handle_signals,
    )
    result = rounds.result or (last.result if last else None)
    return Outcome(ctx.rundir, max(code, rounds.exit_code), result, rounds.budget)


def run_rest(ctx: _Resume, rest: Remaining) -> Outcome:
    """Run the jobs without a successful result (the resume proper)."""
    cfg, rundir = ctx.cfg, ctx.rundir
    prepared = prepare_session(cfg, ctx.job_file, only=rest.run)
    session = rundir.begin_session(session_overrides(cfg), list(ctx.argv))
    faultpoints.hit("resume:before_recovery_rows")
    to_run = rest.run - _adopt(ctx, rest, session, prepared.prices)
    rundir.mark_crashed(before=session)  # what they left is in the log now
    # --max-cost bounds images and judging together, the adopted images' cost included
    prepared = prepared.with_spent(spent(rundir.path).total)
    try:
        link = _ledger(ctx, prepared.budget, prepared.checked.quote)
    except UsageError:
        rundir.end_session(session, "interrupted", {"jobs_taken": 0})
        raise
    try:
        prepared.confirm(ctx.observer)
    except Declined:
        if link is not None:
            link.close()
        rundir.end_session(session, "interrupted", {"jobs_taken": 0})
        raise
    ctx.observer.say(
        f"resuming {rundir.path}: {plural(len(to_run), 'job')} to run, "
        f"spent so far ${prepared.budget.spent:.4f}"
    )
    plan = prepared.plan(
        rundir,
        ctx.manifest,
        session,
        ctx.observer,
        jobs=prepared.jobs(to_run),
        jobs_to_run=len(to_run),
        handle_signals=ctx.handle_signals,
        ledger=link,
        retag=frozenset(rest.edited) & to_run,
    )
    try:
        result = anyio.run(execute, plan) if ctx.execute_plan is None else ctx.execute_plan(plan)
        if link is not None and not cfg.quiet and (line := link.share_line()):
            ctx.observer.say(line)
    finally:
        if link is not None:
            link.close()
    ctx.observer.session_ended(rundir, result, plan.budget, summary=not cfg.quiet)
    return Outcome(rundir, result.exit_code, result, plan.budget)


def _ledger(ctx: _Resume, budget: Budget, quote: Quote) -> LedgerLink | None:
    """The spend ledger for this session: the run's rows made its log's (what a crash left
    unlogged is not in the log either, and recovery's rows are), then the month checked."""
    settings = ctx.manifest.get("settings") or {}
    link = LedgerLink.open(ctx.cfg, ctx.job_file, settings.get("project"))
    if link is None:
        return None
    try:
        link.bind(str(ctx.manifest["run_id"]), ctx.rundir.path)
        link.sync_run(ctx.rundir)
        cap, need = ctx.cfg.max_cost, quote.expected_usd
        need = need if cap is None else min(need, max(cap - budget.spent, 0))
        link.check_month(need, str(ctx.rundir.path), quote.unknown_models)
    except BaseException:
        link.close()
        raise
    link.attach(budget, ctx.observer)
    return link


def _adopt(ctx: _Resume, rest: Remaining, session: int, prices: Any) -> set[str]:
    """Jobs whose images were saved before a crash (logged now, not paid again); jobs in
    flight at a crash are recorded as possibly billed twice. Returns the adopted ids."""

    # lazy: a local run loads none of the remote store (tests/test_storage.py)
    from batchgen.storage.adopt import uploaded_job_ids

    rundir, run_id = ctx.rundir, ctx.manifest["run_id"]
    # only the jobs recovery may log are kept whole: those with images on disk (to adopt)
    # and those in flight at a crash; the rest stream from the file when the pool runs
    on_disk = image_job_ids(rundir.images_dir)
    stored = uploaded_job_ids(rundir.state_dir)  # --images-to: sets the journal names
    candidates = ((on_disk | stored) & rest.run) | rest.possibly_billed_twice
    rest_jobs = {j.id: j for j in iter_jobs(ctx.job_file, ctx.defaults) if j.id in candidates}
    # an edited job's images on disk are its old body's (same file names): never adopt them
    edited = set(rest.edited)
    wanted = {i: job for i, job in rest_jobs.items() if i not in edited}
    adopted = adopt_orphans(rundir, run_id, session, wanted, prices)
    if stored:
        objects, refused = adopt_stored(
            rundir, run_id, session, {i: j for i, j in wanted.items() if i not in adopted}, prices
        )
        adopted += objects
        for why in refused[:5]:
            ctx.observer.warn(f"not adopted, sent again: {why}")
    # in flight at a crash (the last in-flight snapshot and the sent journal); an adopted
    # job's answer arrived before the crash: billed once, and not sent again
    in_flight = rest.possibly_billed_twice - set(adopted)
    billed_twice = record_crashed_inflight(rundir, run_id, session, in_flight, rest_jobs)
    if adopted:
        ctx.observer.say(
            f"adopted {plural(len(adopted), 'job')} whose images were saved before the crash"
        )
    if billed_twice:
        ctx.observer.say(
            f"{plural(billed_twice, 'job')} {'was' if billed_twice == 1 else 'were'} in flight "
            "at a crash: they may have been billed and are sent again",
            "yellow",
        )
    return set(adopted)


def _say_what_changed(
    observer: Observer,
    manifest: dict[str, Any],
    job_file: Path,
    job_sha256: str,
    rest: Remaining,
) -> None:
    def shown(ids: Sequence[str]) -> str:
        return ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")

    if job_sha256 == manifest.get("job_file_sha256"):
        if rest.edited:  # same file, other content: an edit's input photos changed
            observer.say(
                f"input images changed: {plural(len(rest.edited), 'job')} run again: "
                f"{shown(rest.edited)}"
            )
        return
    observer.say(
        f"the job file {job_file} changed since the run started: "
        f"{len(rest.edited)} edited, {len(rest.removed)} removed, and jobs not in the log "
        f"(new or never reached): {len(rest.added)}"
    )
    for label, ids in (("edited", rest.edited), ("removed", rest.removed)):
        if ids:
            observer.say(f"  {label}: {shown(ids)}")
