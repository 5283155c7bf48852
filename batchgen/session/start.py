"""A new run (``batchgen run``, ``batchgen.run``): check and quote the job file, create the
run directory, then its first session — live, or through the Batch API (``via="batch"``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pyarrow as pa

from batchgen.config import RunConfig
from batchgen.errors import UsageError
from batchgen.jobs.inputs import may_have_inputs
from batchgen.jobs.model import Job
from batchgen.numbers import plural
from batchgen.provider.endpoints import describe
from batchgen.redaction import redact_url
from batchgen.runlog.jobindex import KEEP_JOBS, IndexBuilder, write_index
from batchgen.runlog.rundir import RunDir
from batchgen.session.builder import (
    Declined,
    Prepared,
    SessionPlan,
    has_edits,
    prepare_session,
)
from batchgen.session.connect import Connection
from batchgen.session.execute import execute
from batchgen.session.ledgering import LedgerLink
from batchgen.session.observer import Observer, Silent
from batchgen.session.outcome import Outcome, SessionResult

__all__ = ["Declined", "NewRun", "default_run_dir", "prepare_run", "start_run"]


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run checked and quoted, nothing created or sent yet."""

    prepared: Prepared
    index: IndexBuilder  # every job's (id, fingerprint, line), kept for resume
    ledger: LedgerLink | None = None  # None: the spend ledger is off


def default_run_dir(jobfile: str | Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path("runs") / f"{Path(jobfile).stem}-{stamp}"


def prepare_run(job_file: str, cfg: RunConfig) -> NewRun:
    """Everything `run` checks before it creates the run directory; raises UsageError (or
    JobFileProblems) with the fix, nothing sent."""
    _check_modes(cfg)
    index = IndexBuilder(keep=KEEP_JOBS)  # a short file's jobs: parsed once (_first_session)

    def check_connection(connection: Connection, endpoints: list[Any] | None) -> None:
        _check_connection(cfg, connection, endpoints, job_file)

    prepared = prepare_session(cfg, job_file, index=index, check_connection=check_connection)
    checked = prepared.checked
    if cfg.max_jobs is not None and checked.jobs > cfg.max_jobs:
        msg = f"{job_file}: {checked.jobs:,} jobs, more than --max-jobs {cfg.max_jobs:,}"
        raise UsageError(msg)
    if cfg.via_batch and prepared.connection.provider == "gemini":
        models = sorted({line.model for line in checked.quote.lines})
        if len(models) > 1:
            raise UsageError(
                f"{job_file}: a Gemini batch runs one model, and this job file has "
                f"{len(models)} ({', '.join(models)}): split it by model, one run each"
            )
    return NewRun(prepared, index, _open_ledger(cfg, job_file, prepared))


def _open_ledger(cfg: RunConfig, job_file: str, prepared: Prepared) -> LedgerLink | None:
    """The spend ledger, and the month's budgets checked against the run's quote."""
    checked = prepared.checked
    link = LedgerLink.open(cfg, job_file)
    if link is not None:
        need = checked.quote.expected_usd
        if cfg.max_cost is not None:
            need = min(need, cfg.max_cost)
        try:
            link.check_month(need, unpriced=checked.quote.unknown_models)
        except UsageError:
            link.close()
            raise
    return link


def _check_modes(cfg: RunConfig) -> None:
    if not cfg.via_batch and (cfg.detach or cfg.deadline is not None):
        raise UsageError("--detach and --deadline go with --via batch")


def _check_connection(
    cfg: RunConfig, connection: Connection, endpoints: list[Any] | None, job_file: str
) -> None:
    if cfg.detach and connection.provider == "sim":
        raise UsageError(
            "--detach needs a provider that outlives this process: the "
            "in-process simulator stops with it (serve one: batchgen sim)"
        )
    if cfg.via_batch and has_edits(job_file):
        raise UsageError(
            "edits (jobs with image/images/mask) go through the live API "
            "only: run them without --via batch"
        )
    if (
        endpoints
        and any(ep.protocol not in ("openai", "azure") for ep in endpoints)
        and has_edits(job_file)
    ):
        raise UsageError(
            "edits (jobs with image/images/mask) are sent by the openai and "
            "azure protocols only: keep only such endpoints in --providers"
        )


def start_run(
    job_file: str,
    cfg: RunConfig,
    *,
    run_dir: str | Path | None = None,
    observer: Observer | None = None,
    argv: Sequence[str] = (),
    handle_signals: bool = True,
    write_jobs: Callable[[], None] | None = None,
    execute_plan: Callable[[SessionPlan], SessionResult] | None = None,
) -> Outcome:
    """Check, quote (``observer.confirm``), create the run directory and run its first
    session. Raises UsageError (JobFileProblems, RunDirError, RunLocked, Declined) before
    anything is sent; what the provider does is the outcome's exit code and stop reason.

    The run directory's lock is taken before anything is written into it: of two runs
    started on one directory, the second gets RunLocked (or RunDirError once the first has
    created its run) and writes nothing. ``write_jobs`` (the API's jobs given as objects)
    writes ``job_file`` inside the run directory, under the lock. ``execute_plan`` runs the
    first session's plan another way (``--ray``: batchgen.cluster spreads it over shards)."""
    observer = observer or Silent()
    rundir = RunDir(run_dir or default_run_dir(job_file))
    rundir.refuse_existing()  # said before the lock's "in use" for a run already there
    prepared = None if write_jobs is not None else _checked_and_quoted(job_file, cfg, observer)
    with rundir.lock():
        rundir.refuse_existing()
        if write_jobs is not None:
            write_jobs()
            prepared = _checked_and_quoted(job_file, cfg, observer)
        assert prepared is not None
        settings = run_settings(prepared)
        checked = prepared.prepared.checked
        rundir.create(job_file, checked.sha256, checked.jobs, checked.images, settings)
        _store_index(rundir, prepared.index, checked.sha256, dict(cfg.job_defaults), job_file)
        return _first_session(rundir, prepared, observer, argv, handle_signals, execute_plan)


def _checked_and_quoted(job_file: str, cfg: RunConfig, observer: Observer) -> NewRun:
    new = prepare_run(job_file, cfg)
    new.prepared.confirm(observer)
    return new


def _first_session(
    rundir: RunDir,
    new: NewRun,
    observer: Observer,
    argv: Sequence[str],
    handle_signals: bool,
    execute_plan: Callable[[SessionPlan], SessionResult] | None = None,
) -> Outcome:
    prepared = new.prepared
    cfg, checked = prepared.cfg, prepared.checked
    manifest = rundir.load()
    session = rundir.begin_session({}, list(argv))
    jobs, images = plural(checked.jobs, "job"), plural(checked.images, "image")
    observer.say(f"run dir: {rundir.path}  ({jobs}, {images})")
    plan = prepared.plan(
        rundir,
        manifest,
        session,
        observer,
        jobs=_jobs(new),
        jobs_to_run=checked.jobs,
        handle_signals=handle_signals,
        ledger=_bound(new, manifest, rundir, observer),
    )
    if cfg.via_batch:
        return _batch_first(rundir, prepared, plan, observer, argv)
    try:
        result = anyio.run(execute, plan) if execute_plan is None else execute_plan(plan)
        if plan.ledger is not None and not cfg.quiet and (line := plan.ledger.share_line()):
            observer.say(line)
    finally:
        if plan.ledger is not None:
            plan.ledger.close()
    observer.session_ended(rundir, result, plan.budget, summary=not cfg.quiet)
    return Outcome(rundir, result.exit_code, result, plan.budget)


def _jobs(new: NewRun) -> Iterable[Job]:
    """The jobs the check parsed, when it kept them (a short job file, no edits, live): the
    file is not parsed a second time; else the file streamed again."""
    kept = new.index.kept()
    if kept is not None and not new.prepared.cfg.via_batch:
        return kept
    return new.prepared.jobs()


def _bound(
    new: NewRun, manifest: dict[str, Any], rundir: RunDir, observer: Observer
) -> LedgerLink | None:
    link = new.ledger
    if link is not None:
        link.bind(str(manifest["run_id"]), rundir.path)
        # live or batch, each job's worst case is held in the ledger before it is sent (a
        # batch's holds until it is collected: batchgen/batch/submit.py)
        link.attach(new.prepared.budget, observer)
    return link


def _batch_first(
    rundir: RunDir,
    prepared: Prepared,
    plan: SessionPlan,
    observer: Observer,
    argv: Sequence[str],
) -> Outcome:
    # lazy: the Batch API's session and resume read the log (pyarrow.compute, which loads
    # pandas: ~0.8 s); a live run never needs them (tests/test_startup.py)
    from batchgen.session.batchmode import run_via_batch
    from batchgen.session.resume import resume_locked

    cfg = prepared.cfg
    outcome = run_via_batch(plan, cfg, prepared.job_file, dict(cfg.job_defaults), lambda: plan.jobs)
    if outcome is not None:
        return outcome
    # the deadline: what the batches could not finish in time goes live
    live = {**cfg.given, "api_key": cfg.api_key, "via": "live", "retry_failed": False}
    return resume_locked(rundir, live, observer, argv, handle_signals=plan.handle_signals)


def run_settings(new: NewRun) -> dict[str, Any]:
    """What run.json records of the run's settings (no key: the variable's name only)."""
    prepared = new.prepared
    cfg, connection = prepared.cfg, prepared.connection
    settings: dict[str, Any] = {
        "defaults": dict(cfg.job_defaults),
        "pool": cfg.pool.record(),
        "provider": connection.provider,
        "base_url": redact_url(connection.base_url) if connection.base_url else None,
        "api_key_env": connection.key_env,
        "sim": cfg.sim_record() if connection.provider == "sim" else None,
        "prices": str(Path(cfg.prices).resolve()) if cfg.prices else None,
        "max_cost": cfg.max_cost,
        "price_per_image": cfg.price_per_image,
        "via": cfg.via or "live",
        # run --reuse / --from-pilot: where stored answers are taken from (library.reuse)
        "reuse": cfg.given.get("reuse"),
        # the spend ledger (a path given now; never the --on-budget command: it may hold a
        # webhook's secret) and the budgets, which a resume keeps unless given again
        "ledger": cfg.ledger,
        "project": new.ledger.project if new.ledger is not None else cfg.project,
        "monthly_budget": cfg.monthly_budget,
        "project_budget": cfg.project_budget,
        # --images-to: where the images go (a URL without credentials; batchgen.storage)
        "images_to": cfg.images_to,
    }
    if cfg.via_batch:
        settings["batch"] = cfg.batch.record()
    if prepared.endpoints:
        settings["endpoints"] = describe(prepared.endpoints)  # names, URLs, key variables
        settings["providers_file"] = str(Path(str(cfg.providers)).resolve())
    return settings


def _store_index(
    rundir: RunDir, index: IndexBuilder, job_sha256: str, defaults: dict[str, Any], job_file: str
) -> None:
    """Keep the job file's index for resume; without it resume rescans the file (slower).
    Not for a file of edits: its fingerprints depend on input photos that can change."""
    if may_have_inputs(job_file):
        return
    try:
        write_index(rundir.state_dir, index.table(), job_sha256, defaults)
    except OSError:
        return
    # the index is on disk: hand its buffers back before the run's own allocations start
    pa.default_memory_pool().release_unused()
