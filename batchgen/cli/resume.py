"""``batchgen resume RUN_DIR``: finish exactly the rest of a run.

Runs every job without a successful result: never attempted, pending after a stop (auth,
quota, budget, interrupt), cancelled, in flight at a crash, or failed with a retryable class
after its attempts ran out. Jobs that failed for good (content policy, bad request) are rerun
only with --retry-failed. Images on disk whose log row never landed are adopted, not paid for
again. Settings come from run.json; flags given here override them for this session.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_session_arguments,
    pool_values,
    prefer_system_allocator,
    providers_connection,
    resolve_connection,
)
from batchgen.cli.run import check_served, make_sim_config, sim_settings
from batchgen.cli.score import add_scorer_arguments

if TYPE_CHECKING:
    from batchgen.runlog.rundir import RunDir


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "resume",
        help="finish an interrupted or partly failed run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", help="the run directory (holds run.json)")
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="also rerun jobs that failed for good (content policy, bad request)",
    )
    regen = parser.add_argument_group("quality loop")
    regen.add_argument(
        "--regenerate-below",
        type=float,
        metavar="S",
        help="rerun jobs whose best image scores below S (scored with the last `batchgen "
        "score`'s scorer, or --judge/--scorer given here); every image is kept",
    )
    regen.add_argument(
        "--max-rounds",
        type=int,
        default=2,
        metavar="R",
        help="regeneration rounds at most (default 2); --max-cost also stops them",
    )
    add_scorer_arguments(parser, for_resume=True)
    add_session_arguments(parser, resume=True)
    from batchgen.cli.batch import add_batch_arguments

    add_batch_arguments(parser, resume=True)
    parser.set_defaults(func=cmd_resume)


def _namespace_with(args: argparse.Namespace, recorded: dict[str, Any]) -> argparse.Namespace:
    """Flags given now win; the rest come from run.json."""
    merged = vars(args).copy()
    for key in ("prices", "max_cost", "price_per_image"):
        if merged.get(key) is None:
            merged[key] = recorded.get(key)
    for key, value in (recorded.get("sim") or {}).items():
        if merged.get(key) in (None, "", False, 0.0) or key not in merged:
            merged[key] = value
    return argparse.Namespace(**merged)


def cmd_resume(args: argparse.Namespace) -> int:
    prefer_system_allocator()
    from batchgen.cli.prepare import JobFileProblems
    from batchgen.cli.session import make_console
    from batchgen.runlog.rundir import RunDir, RunDirError

    console = make_console()
    err = make_console(stderr=True)
    rundir = RunDir(args.run_dir)
    try:
        with rundir.lock():
            return _resume_locked(args, rundir, console, err)
    except RunDirError as exc:
        err.print(f"batchgen resume: {exc}", markup=False)
        return EXIT_USAGE
    except JobFileProblems as exc:
        for line in exc.lines:
            err.print(line, markup=False)
        err.print("nothing was sent: fix the job file and resume again")
        return EXIT_USAGE
    except UsageError as exc:
        err.print(f"batchgen resume: {exc}", markup=False)
        return EXIT_USAGE


def _resume_locked(args: argparse.Namespace, rundir: RunDir, console: Any, err: Any) -> int:
    # the log readers (pyarrow.dataset), the pool and aiohttp load here, not when the CLI
    # builds its parser
    from batchgen.jobs import sha256_file
    from batchgen.runlog.files import damaged_message
    from batchgen.runlog.jobindex import load_or_build
    from batchgen.runlog.state import job_states, remaining
    from batchgen.runner.recovery import remove_torn_images, settle_log

    manifest = rundir.load(strict=True)
    recorded = manifest["settings"]
    args = _namespace_with(args, recorded)
    via = getattr(args, "via", None) or recorded.get("via") or "live"
    from batchgen.cli.batch import open_parts_of, resume_via_batch

    if via == "batch" or open_parts_of(rundir, manifest["run_id"]):
        # batches of this run: collect them first; --via batch submits the rest as batches
        code = resume_via_batch(args, rundir, manifest, via, console, err)
        if code is not None:
            return code
        manifest = rundir.load()
    job_file = Path(manifest["job_file"])
    if not job_file.exists():
        msg = f"the job file {job_file} of this run is gone: put it back to resume"
        raise UsageError(msg)
    # a crashed session left part files and an in-flight list: settle them first
    for path in settle_log(rundir.log_dir):
        err.print(damaged_message(path, moved=True), markup=False)
    remove_torn_images(rundir.images_dir)
    states = job_states(rundir.path)
    rundir.mark_crashed()
    defaults = recorded.get("defaults") or {}
    job_sha256 = sha256_file(job_file)
    # the index `run` stored when the file is the same; else the file is scanned (edited)
    index = load_or_build(rundir.state_dir, job_file, job_sha256, defaults)
    rest = remaining(index, states, args.retry_failed)
    del index
    routed = providers_connection(args, recorded.get("endpoints"))
    connection, endpoints = routed or (
        resolve_connection(
            args.provider or recorded.get("provider"),
            args.base_url or recorded.get("base_url"),
            args.api_key_env or recorded.get("api_key_env"),
        ),
        None,
    )
    _say_what_changed(console, manifest, job_file, job_sha256, rest)
    # `run --deadline` finishes live through here with the run command's arguments, which
    # have no --regenerate-below (main at 626d334 raised AttributeError there)
    if getattr(args, "regenerate_below", None) is not None:
        code = EXIT_OK
        if rest.run:
            code = _run_rest(args, rundir, console, manifest, job_file, defaults, rest,
                             connection, endpoints)  # fmt: skip
            if code not in (EXIT_OK, EXIT_FAILED):
                return code
        from batchgen.quality.regenerate import regenerate

        values = pool_values(args, recorded.get("pool"))
        regen = regenerate(
            args, rundir, manifest, console, connection=connection, values=values,
            job_file=job_file, defaults=defaults,
        )  # fmt: skip
        return max(code, regen)
    if not rest.run:
        console.print(
            f"nothing to resume: {rest.skipped_done} job(s) done, "
            f"{rest.skipped_failed} failed for good"
            + (" (rerun them with --retry-failed)" if rest.skipped_failed else "")
        )
        return EXIT_OK
    return _run_rest(args, rundir, console, manifest, job_file, defaults, rest, connection,
                     endpoints)  # fmt: skip


def _run_rest(
    args: argparse.Namespace, rundir: RunDir, console: Any, manifest: dict[str, Any],
    job_file: Path, defaults: dict[str, Any], rest: Any, connection: Any,
    endpoints: list[Any] | None = None,
) -> int:  # fmt: skip
    """Run the jobs without a successful result (the resume proper)."""
    import anyio

    from batchgen.cli.prepare import (
        check_job_file,
        load_prices,
        make_budget,
        show_quote_and_confirm,
    )
    from batchgen.cli.session import SessionPlan, execute, finish
    from batchgen.jobs import iter_jobs
    from batchgen.runlog.orphans import image_job_ids
    from batchgen.runlog.rundir import redact_argv
    from batchgen.runner.recovery import adopt_orphans, record_crashed_inflight

    recorded = manifest["settings"]
    values = pool_values(args, recorded.get("pool"))
    prices = load_prices(args)
    checked = check_job_file(
        job_file,
        defaults,
        prices,
        only=rest.run,
        rpm=values["rpm"],
        ipm=values["ipm"],
        concurrency=values["concurrency"],
    )
    if endpoints:
        check_served(endpoints, checked)
    session = rundir.begin_session(_overrides(args), redact_argv(sys.argv))
    run_id = manifest["run_id"]
    # only the jobs recovery may log are kept whole: those with images on disk (to adopt)
    # and those in flight at a crash; the rest stream from the file when the pool runs
    candidates = (image_job_ids(rundir.images_dir) & rest.run) | rest.possibly_billed_twice
    rest_jobs = {job.id: job for job in iter_jobs(job_file, defaults) if job.id in candidates}
    # an edited job's images on disk are its old body's (same file names): never adopt them
    edited = set(rest.edited)
    wanted = {i: job for i, job in rest_jobs.items() if i not in edited}
    adopted = adopt_orphans(rundir, run_id, session, wanted, prices)
    # in flight at a crash (the last in-flight snapshot and the sent journal); an adopted
    # job's answer arrived before the crash: billed once, and not sent again
    in_flight = rest.possibly_billed_twice - set(adopted)
    billed_twice = record_crashed_inflight(rundir, run_id, session, in_flight, rest_jobs)
    to_run = rest.run - set(adopted)
    if adopted:
        console.print(f"adopted {len(adopted)} job(s) whose images were saved before the crash")
    if billed_twice:
        console.print(
            f"[yellow]{billed_twice} job(s) were in flight at a crash: they may have been billed "
            "and are sent again[/]"
        )
    spent = _spent_so_far(rundir)
    if args.max_cost is not None:
        from batchgen.quality.store import scores_cost

        spent += scores_cost(rundir.path)  # --max-cost bounds images and scoring together
    budget = make_budget(args, prices, checked, spent_before=spent)
    if not show_quote_and_confirm(console, args, checked, args.quiet):
        rundir.end_session(session, "interrupted", {"jobs_taken": 0})
        return EXIT_USAGE
    console.print(
        f"resuming {rundir.path}: {len(to_run)} job(s) to run, spent so far ${spent:.4f}",
        markup=False,
    )
    plan = SessionPlan(
        rundir=rundir,
        manifest=manifest,
        session=session,
        jobs=(job for job in iter_jobs(job_file, defaults) if job.id in to_run),
        jobs_to_run=len(to_run),
        connection=connection,
        values=values,
        prices=prices,
        budget=budget,
        cheapest_job_usd=checked.cheapest_job_usd,
        sim_config=make_sim_config(args) if connection.provider == "sim" else None,
        quiet=args.quiet,
        endpoints=endpoints,
    )
    result = anyio.run(execute, plan, console)
    finish(console, rundir, result, budget, quiet=args.quiet)
    return result.exit_code


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    given = {k: v for k, v in vars(args).items() if v not in (None, False) and k != "func"}
    given.pop("run_dir", None)
    return {k: v for k, v in given.items() if not k.startswith("sim_")} | {
        "sim": sim_settings(args) or None
    }


def _spent_so_far(rundir: RunDir) -> float:
    import pyarrow.compute as pc

    from batchgen.runlog.reader import read_log

    table = read_log(rundir.path, ["cost_usd"])
    return float(pc.sum(table["cost_usd"]).as_py() or 0.0) if table.num_rows else 0.0


def _say_what_changed(
    console: Any, manifest: dict[str, Any], job_file: Path, job_sha256: str, rest: Any
) -> None:
    if job_sha256 == manifest.get("job_file_sha256"):
        if rest.edited:  # same file, other content: an edit's input photos changed
            shown = ", ".join(rest.edited[:10]) + (" ..." if len(rest.edited) > 10 else "")
            console.print(f"input images changed: {len(rest.edited)} job(s) run again: {shown}",
                          markup=False)  # fmt: skip
        return
    console.print(
        f"[yellow]the job file {job_file} changed since the run started:[/] "
        f"{len(rest.edited)} edited, {len(rest.removed)} removed, and jobs not in the log "
        f"(new or never reached): {len(rest.added)}"
    )
    for label, ids in (("edited", rest.edited), ("removed", rest.removed)):
        if ids:
            shown = ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")
            console.print(f"  {label}: {shown}")
