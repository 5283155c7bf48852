"""CLI glue for ``--via batch``: the flags, the batch session of `run`/`resume`, and the
`collect` and `cancel` commands. The work is in batchgen/batch/; building the parser imports
nothing heavy (tests/test_startup.py)."""

from __future__ import annotations

import argparse
import re
import shlex
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.cli.common import EXIT_FAILED, EXIT_OK, EXIT_STOPPED, EXIT_USAGE, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from batchgen.batch.context import BatchOptions
    from batchgen.batch.session import BatchOutcome
    from batchgen.cli.session import SessionPlan, SessionResult
    from batchgen.jobs.model import Job
    from batchgen.runlog.rundir import RunDir

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
BATCH_DEFAULTS: dict[str, Any] = {
    "batch_max_requests": 50_000,
    "batch_max_bytes": 200 * 1024 * 1024,
    "poll_interval": 5.0,
    "poll_max": 60.0,
    "assume_latency": None,
}


def duration(text: str) -> float:
    m = _DURATION.match(text)
    if not m or float(m[1]) <= 0:
        msg = f"expected a duration like 90s, 30m, 6h or 1d, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return float(m[1]) * _UNIT[m[2]]


def add_batch_arguments(parser: argparse.ArgumentParser, *, resume: bool) -> None:
    group = parser.add_argument_group("Batch API (--via batch: half price, done within 24 h)")
    group.add_argument(
        "--via", choices=("live", "batch"), default=None,
        help="live: request by request (default); batch: through the provider's Batch API"
        + (" (default: what the run used)" if resume else ""),
    )  # fmt: skip
    group.add_argument(
        "--detach",
        action="store_true",
        help="submit the batches and exit; `batchgen collect RUN_DIR` later",
    )
    group.add_argument(
        "--deadline",
        type=duration,
        default=None,
        metavar="DURATION",
        help="e.g. 6h: what the batches cannot finish in time goes to the live "
        "API (counted from now)",
    )
    group.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        metavar="S",
        help="first poll of the batches after S seconds, doubling while "
        "nothing changes (default 5)",
    )
    group.add_argument(
        "--poll-max",
        type=float,
        default=None,
        metavar="S",
        help="longest wait between polls (default 60)",
    )
    group.add_argument(
        "--batch-max-requests",
        type=int,
        default=None,
        metavar="N",
        help="requests per input file (default 50000, the provider's limit)",
    )
    group.add_argument(
        "--batch-max-bytes",
        type=int,
        default=None,
        metavar="BYTES",
        help="bytes per input file (default 200 MB, the provider's limit)",
    )
    group.add_argument(
        "--assume-latency",
        type=float,
        default=None,
        metavar="S",
        help="seconds one live request takes, for the deadline's estimate "
        "(default: the model's typical latency, 15 s for gpt-image)",
    )


def batch_settings(
    args: argparse.Namespace, recorded: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The batch settings: BATCH_DEFAULTS, overridden by run.json, by flags given now."""
    values = {**BATCH_DEFAULTS, **(recorded or {})}
    for key in BATCH_DEFAULTS:
        given = getattr(args, key, None)
        if given is not None:
            values[key] = given
    if getattr(args, "deadline", None) is not None:
        values["deadline_at"] = time.time() + args.deadline
    return values


def batch_options(values: dict[str, Any], **extra: Any) -> BatchOptions:
    from batchgen.batch.context import BatchOptions

    return BatchOptions(
        max_requests=int(values["batch_max_requests"]), max_bytes=int(values["batch_max_bytes"]),
        poll_s=float(values["poll_interval"]), poll_max_s=float(values["poll_max"]),
        deadline_at=values.get("deadline_at"), assume_latency_s=values.get("assume_latency"),
        **extra,
    )  # fmt: skip


def jobs_lookup(job_file: Path | str, defaults: dict[str, Any]) -> Any:
    from batchgen.jobs import iter_jobs

    def jobs_of(ids: set[str]) -> dict[str, Job]:
        if not ids:
            return {}
        return {job.id: job for job in iter_jobs(job_file, defaults) if job.id in ids}

    return jobs_of


def run_batch(
    plan: SessionPlan, options: BatchOptions, console: Console,
    submit: Callable[[], Iterable[Job] | None] | None,
    job_file: Path | str, defaults: dict[str, Any],
) -> tuple[SessionResult, BatchOutcome]:  # fmt: skip
    """One batch session of ``plan``; ends it in run.json; returns what the CLI prints."""
    import anyio

    from batchgen.batch.session import BatchSession, run_batch_session
    from batchgen.cli.session import SessionResult, _base_url, _summary
    from batchgen.errors import ErrorClass

    say = (lambda _msg: None) if plan.quiet else console.print
    s = BatchSession(
        rundir=plan.rundir, run_id=plan.manifest["run_id"], session=plan.session,
        provider=plan.connection.provider, api_key=plan.connection.api_key, prices=plan.prices,
        budget=plan.budget, options=options, jobs_of=jobs_lookup(job_file, defaults),
        live_values=plan.values, say=say, timeout_s=float(plan.values.get("timeout") or 120),
    )  # fmt: skip

    async def go() -> BatchOutcome:
        async with _base_url(plan) as base_url:
            return await run_batch_session(s, base_url, submit)

    outcome = anyio.run(go)
    outcome = _with_run_pending(plan, outcome)
    tally = outcome.ctx.tally
    reason = outcome.stop_reason
    if outcome.detached:
        how, code = "detached", EXIT_OK
    elif reason is not None:
        how = (
            "stopped_budget"
            if reason is ErrorClass.BUDGET
            else {ErrorClass.AUTH: "stopped_auth", ErrorClass.QUOTA: "stopped_quota"}.get(
                reason, "interrupted"
            )
        )
        code = EXIT_STOPPED
    elif outcome.pending or outcome.ctx.state.open_parts():
        how, code = "failed_jobs", EXIT_STOPPED
    elif outcome.failed:
        how, code = "failed_jobs", EXIT_FAILED
    else:
        how, code = "completed", EXIT_OK
    summary = _summary(tally, plan.budget)
    summary["batch"] = {**outcome.ctx.state.summary(), "pending": outcome.pending,
                        "cutover": outcome.cutover}  # fmt: skip
    plan.rundir.end_session(plan.session, how, summary)
    return SessionResult(tally, reason, outcome.stop_message, code), outcome


def _with_run_pending(plan: SessionPlan, outcome: BatchOutcome) -> BatchOutcome:
    """Pending counted over the whole run (a job this session left pending may have been
    submitted again and finished in the same session): not done, not failed for good."""
    import dataclasses

    from batchgen.runlog.state import DONE, FAILED, job_states

    counts = job_states(plan.rundir.path, with_inflight=False).counts()
    pending = max(int(plan.manifest.get("jobs") or 0) - counts[DONE] - counts[FAILED], 0)
    open_ids = outcome.ctx.state.ids_in(outcome.ctx.state.open_parts())
    return dataclasses.replace(outcome, pending=max(pending - len(open_ids), 0),
                               failed=counts[FAILED])  # fmt: skip


def print_batch_ending(console: Console, rundir: RunDir, outcome: BatchOutcome, code: int) -> None:
    path = shlex.quote(str(rundir.path))
    open_parts = outcome.ctx.state.open_parts()
    if outcome.detached:
        console.print(f"submitted {len(open_parts)} batch(es); they run at the provider "
                      f"(up to 24 h). Collect the results later with: "
                      f"[bold]batchgen collect {path}[/]  (cancel them: batchgen cancel {path})")  # fmt: skip
        return
    if open_parts:
        console.print(f"{len(open_parts)} batch(es) still open at the provider: "
                      f"[bold]batchgen collect {path}[/] (or `batchgen resume {path}`) picks "
                      "them up; nothing was submitted twice")  # fmt: skip
    if outcome.pending:
        console.print(f"{outcome.pending} job(s) pending (expired, failed or cancelled batches, "
                      f"errored lines): [bold]batchgen resume {path}[/] submits them again "
                      f"(`--via live` finishes them on the live API)")  # fmt: skip
    if code == EXIT_OK:
        console.print("ended:  every job succeeded")


# ---- resume / collect / cancel --------------------------------------------------------------
def open_parts_of(rundir: RunDir, run_id: str) -> list[Any]:
    from batchgen.batch.state import BatchState

    return BatchState(rundir.state_dir, run_id).open_parts()


def register(subparsers: Any) -> None:
    from batchgen.cli.common import add_session_arguments

    collect = subparsers.add_parser(
        "collect", help="follow and collect a run's submitted batches (--via batch)",
        description="Re-attach to the batches a run submitted (after --detach, Ctrl-C or a "
        "crash): wait for them, save their images, log one row per line. Submits nothing.",
    )  # fmt: skip
    collect.add_argument("run_dir")
    add_session_arguments(collect, resume=True)
    add_batch_arguments(collect, resume=True)
    collect.set_defaults(func=cmd_collect)
    cancel = subparsers.add_parser(
        "cancel", help="cancel a run's open batches (--via batch)",
        description="Ask the provider to cancel every batch of the run that is still running. "
        "What finished before the cancel is billed and is collected by `collect`/`resume`; "
        "the rest stays pending.",
    )  # fmt: skip
    cancel.add_argument("run_dir")
    cancel.add_argument("--base-url", default=None)
    cancel.add_argument("--api-key-env", default=None, metavar="NAME")
    cancel.set_defaults(func=cmd_cancel)


def cmd_collect(args: argparse.Namespace) -> int:
    args.via = "batch"
    args.collect_only = True
    from batchgen.cli.resume import cmd_resume

    return cmd_resume(args)


def cmd_cancel(args: argparse.Namespace) -> int:
    import anyio

    from batchgen.batch.api import BatchApi
    from batchgen.batch.context import BatchContext
    from batchgen.batch.follow import cancel_open
    from batchgen.batch.state import BatchState
    from batchgen.cli.common import resolve_connection
    from batchgen.cli.session import make_console
    from batchgen.errors import AttemptError
    from batchgen.limits.stop import RunControl
    from batchgen.runlog.rundir import RunDir, RunDirError

    console, err = make_console(), make_console(stderr=True)
    rundir = RunDir(args.run_dir)
    try:
        with rundir.lock():
            manifest = rundir.load()
            recorded = manifest["settings"]
            if recorded.get("provider") == "sim" and not args.base_url:
                console.print("this run used the in-process simulator: its batches ended with it")
                return EXIT_OK
            conn = resolve_connection("openai", args.base_url or recorded.get("base_url"),
                                      args.api_key_env or recorded.get("api_key_env"))  # fmt: skip
            state = BatchState(rundir.state_dir, manifest["run_id"])
            api = BatchApi(str(conn.base_url), conn.api_key)
            ctx = BatchContext(
                rundir=rundir, run_id=manifest["run_id"], session=0, provider=conn.provider,
                api=api, state=state, sink=None, prices=None, budget=None,  # type: ignore[arg-type]
                options=batch_options(BATCH_DEFAULTS), control=RunControl(),
                jobs_of=lambda ids: {}, say=console.print,
            )  # fmt: skip

            async def go() -> int:
                try:
                    return await cancel_open(ctx)
                finally:
                    await api.aclose()

            n = anyio.run(go)
    except (RunDirError, UsageError, AttemptError) as exc:
        err.print(f"batchgen cancel: {exc}", markup=False)
        return EXIT_USAGE
    path = shlex.quote(str(rundir.path))
    console.print(f"cancelled {n} batch(es). What finished before the cancel is collected by "
                  f"`batchgen collect {path}`; `batchgen resume {path}` then sends the rest.")  # fmt: skip
    return EXIT_OK


def run_via_batch(
    args: argparse.Namespace, rundir: RunDir, plan: SessionPlan, values: dict[str, Any],
    console: Console, err: Console, job_file: Path | str, defaults: dict[str, Any],
    submit: Callable[[], Iterable[Job] | None] | None, *, collect_only: bool = False,
    cancel_open: bool = False,
) -> int | None:  # fmt: skip
    """A batch session, its summary and ending lines. None: the deadline cut over (or the
    open batches were cancelled for ``--via live``), the caller finishes the rest live."""
    from batchgen.cli.report import print_run_summary

    options = batch_options(values, detach=bool(getattr(args, "detach", False)),
                            collect_only=collect_only, cancel_open=cancel_open)  # fmt: skip
    result, outcome = run_batch(plan, options, console, submit, job_file, defaults)
    if (outcome.cutover or cancel_open) and result.stop_reason is None:
        console.print("the rest goes to the live API now")
        return None
    if not plan.quiet and not outcome.detached:
        print_run_summary(rundir.path, console)
    if result.stop_reason is not None:
        from batchgen.cli.session import print_ending

        print_ending(console, rundir, result, plan.budget)
    print_batch_ending(console, rundir, outcome, result.exit_code)
    return result.exit_code


def resume_via_batch(
    args: argparse.Namespace, rundir: RunDir, manifest: dict[str, Any], via: str,
    console: Console, err: Console,
) -> int | None:  # fmt: skip
    """`resume`/`collect` of a run with batches: follow and collect what was submitted, then
    submit what is left (``--via batch``), or cancel the open batches, collect them, and hand
    the rest to the live path (``--via live``: returns None)."""
    import sys

    from batchgen.cli.common import pool_values, resolve_connection
    from batchgen.cli.prepare import (
        check_job_file,
        load_prices,
        make_budget,
        show_quote_and_confirm,
    )
    from batchgen.cli.resume import _overrides, _spent_so_far
    from batchgen.cli.run import make_sim_config
    from batchgen.cli.session import SessionPlan
    from batchgen.jobs import iter_jobs, sha256_file
    from batchgen.money.batchrate import batch_table
    from batchgen.runlog.files import compact_all
    from batchgen.runlog.jobindex import load_or_build
    from batchgen.runlog.orphans import image_job_ids
    from batchgen.runlog.rundir import redact_argv
    from batchgen.runlog.state import job_states, remaining
    from batchgen.runner.recovery import adopt_orphans, remove_torn_images

    recorded = manifest["settings"]
    run_id = manifest["run_id"]
    job_file = Path(manifest["job_file"])
    defaults = recorded.get("defaults") or {}
    collect_only = bool(getattr(args, "collect_only", False))
    compact_all(rundir.log_dir)
    remove_torn_images(rundir.images_dir)
    states = job_states(rundir.path)
    rundir.mark_crashed()
    open_ids = set()
    for part in open_parts_of(rundir, run_id):
        open_ids.update(part_ids(rundir, run_id, part))
    to_submit: set[str] = set()
    index = None
    if via == "batch" and not collect_only:
        if not job_file.exists():
            msg = f"the job file {job_file} of this run is gone: put it back to resume"
            raise UsageError(msg)
        index = load_or_build(rundir.state_dir, job_file, sha256_file(job_file), defaults)
        rest = remaining(index, states, args.retry_failed)
        to_submit = set(rest.run) - open_ids
    if not open_ids and not to_submit:
        if collect_only:
            console.print("nothing to collect: no batch of this run is open")
            return EXIT_OK
        if via == "live":
            return None
        console.print("nothing to resume: every job is done or failed for good")
        return EXIT_OK
    connection = resolve_connection(
        args.provider or recorded.get("provider"), args.base_url or recorded.get("base_url"),
        args.api_key_env or recorded.get("api_key_env"),
    )  # fmt: skip
    prices = batch_table(load_prices(args))
    values = pool_values(args, recorded.get("pool"))
    checked = check_job_file(job_file, defaults, prices, only=frozenset(to_submit),
                             rpm=values["rpm"], ipm=values["ipm"],
                             concurrency=values["concurrency"])  # fmt: skip
    budget = make_budget(args, prices, checked, spent_before=_spent_so_far(rundir))
    if to_submit and not show_quote_and_confirm(console, args, checked, args.quiet):
        return EXIT_USAGE
    session = rundir.begin_session(_overrides(args), redact_argv(sys.argv))
    # images a crashed live session saved without their row (never those of open batches:
    # their collection logs them)
    adoptable = (image_job_ids(rundir.images_dir) & to_submit) - open_ids
    if adoptable:
        wanted = {j.id: j for j in iter_jobs(job_file, defaults) if j.id in adoptable}
        adopted = adopt_orphans(rundir, run_id, session, wanted, prices)
        to_submit -= set(adopted)
    what = "collecting" if not to_submit else "resuming"
    console.print(f"{what} {rundir.path}: {len(open_ids)} job(s) in open batches, "
                  f"{len(to_submit)} to submit")  # fmt: skip
    plan = SessionPlan(
        rundir=rundir, manifest=manifest, session=session,
        jobs=(), jobs_to_run=len(to_submit), connection=connection, values=values,
        prices=prices, budget=budget, cheapest_job_usd=checked.cheapest_job_usd,
        sim_config=make_sim_config(args) if connection.provider == "sim" else None,
        quiet=args.quiet,
    )  # fmt: skip

    def submit() -> Iterable[Job] | None:
        """Called once the open batches are collected: what is left now, their pending too."""
        if index is None:
            return None
        now = remaining(index, job_states(rundir.path, with_inflight=False), args.retry_failed)
        ids = set(now.run) - open_ids_now(rundir, run_id)
        return (j for j in iter_jobs(job_file, defaults) if j.id in ids) if ids else None

    settings = batch_settings(args, recorded.get("batch"))
    return run_via_batch(args, rundir, plan, settings, console, err, job_file, defaults,
                         submit if index is not None else None,
                         collect_only=collect_only, cancel_open=via == "live")  # fmt: skip


def open_ids_now(rundir: RunDir, run_id: str) -> set[str]:
    from batchgen.batch.state import BatchState

    state = BatchState(rundir.state_dir, run_id)
    return state.ids_in(state.open_parts())


def part_ids(rundir: RunDir, run_id: str, part: Any) -> list[str]:
    from batchgen.batch.state import BatchState

    return BatchState(rundir.state_dir, run_id).job_ids(part)
